"""A crash harness: ``fixgw serve`` in a subprocess, SIGKILLed while a client sends orders.

:class:`RecoveringClient` is a FIX initiator with its own message store: it resends its
application messages with PossDupFlag (43) Y on the venue's ResendRequest (2), fills its own gaps with
a ResendRequest (2), and records every ExecutionReport (8) it receives. :func:`run_flow`
sends a seeded order flow one request at a time (each waits for its answer, so the engine
sees the same order of commands in every run), killing and restarting the venue at chosen
steps.
"""

from __future__ import annotations

import random
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import simplefix

SESSIONS_CFG = """\
[DEFAULT]
ConnectionType=acceptor
SenderCompID=FIXGW
SocketAcceptHost=127.0.0.1
SocketAcceptPort=0
HeartBtInt=30
ResetOnLogon=N
ResetOnLogout=N
ResetOnDisconnect=N

[SESSION]
BeginString=FIX.4.4
TargetCompID=BRK1

[SESSION]
BeginString=FIX.4.4
TargetCompID=BRK2
"""

SENDERS = ("BRK1", "BRK2")
SYMBOLS = ("AAPL", "MSFT")
STEP_TIMEOUT_S = 30.0
_ADMIN_TYPES = frozenset({"0", "1", "2", "3", "4", "5", "A"})


def utc_timestamp() -> str:
    now = time.time()
    return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}"


@dataclass(frozen=True, slots=True)
class Received:
    """One ExecutionReport (8) or OrderCancelReject (9) as the client received it."""

    msg_seq_num: int
    msg_type: str
    cl_ord_id: str
    exec_id: str | None
    poss_dup: bool


class RecoveringClient:
    """One FIX 4.4 initiator session with a store of everything it sent."""

    def __init__(self, sender: str) -> None:
        self.sender = sender
        self.next_sender_seq_num = 1
        self.next_target_seq_num = 1
        # MsgSeqNum -> (MsgType, body fields, SendingTime) of every message sent.
        self.sent: dict[int, tuple[str, list[tuple[int, str]], str]] = {}
        self.received: list[Received] = []
        self.answered: set[str] = set()
        self.sock: socket.socket | None = None
        self.parser = simplefix.FixParser()
        self.logged_on = False
        self._queued: dict[int, simplefix.FixMessage] = {}
        self._resend_requested = False

    # -- connection

    def connect(self, port: int) -> bool:
        """Open the TCP connection and send Logon (A); False when the venue is not up."""
        try:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=1.0)
        except OSError:
            return False
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.parser = simplefix.FixParser()
        self.logged_on = False
        self._queued.clear()
        self._resend_requested = False
        return self._send("A", [(98, "0"), (108, "30")])

    def drop(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self.logged_on = False

    # -- outbound

    def send_app(self, msg_type: str, fields: list[tuple[int, str]]) -> bool:
        return self._send(msg_type, fields)

    def _send(self, msg_type: str, fields: list[tuple[int, str]]) -> bool:
        seq = self.next_sender_seq_num
        self.next_sender_seq_num += 1
        sending_time = utc_timestamp()
        self.sent[seq] = (msg_type, fields, sending_time)
        return self._write(msg_type, fields, seq, sending_time)

    def _write(self, msg_type: str, fields: Iterable[tuple[int, str]], seq: int,
               sending_time: str, orig_sending_time: str | None = None) -> bool:
        message = simplefix.FixMessage()
        for tag, value in ((8, "FIX.4.4"), (35, msg_type), (49, self.sender), (56, "FIXGW"),
                           (34, str(seq)), (52, sending_time)):
            message.append_pair(tag, value, header=True)
        if orig_sending_time is not None:
            message.append_pair(43, "Y", header=True)
            message.append_pair(122, orig_sending_time, header=True)
        for tag, value in fields:
            message.append_pair(tag, value)
        if self.sock is None:
            return False
        try:
            self.sock.sendall(message.encode())
        except OSError:
            self.drop()
            return False
        return True

    def _resend(self, begin: int, end: int) -> None:
        last = self.next_sender_seq_num - 1
        end = last if end == 0 or end > last else end
        gap_start: int | None = None
        for seq in range(begin, end + 1):
            msg_type, fields, sending_time = self.sent[seq]
            if msg_type in _ADMIN_TYPES:
                gap_start = seq if gap_start is None else gap_start
                continue
            if gap_start is not None:
                self._gap_fill(gap_start, seq)
                gap_start = None
            self._write(msg_type, fields, seq, utc_timestamp(), orig_sending_time=sending_time)
        if gap_start is not None:
            self._gap_fill(gap_start, end + 1)

    def _gap_fill(self, begin: int, new_seq_no: int) -> None:
        now = utc_timestamp()
        self._write("4", [(123, "Y"), (36, str(new_seq_no))], begin, now, orig_sending_time=now)

    # -- inbound

    def pump(self) -> None:
        """Read what is waiting on the socket and process every whole message."""
        if self.sock is None:
            return
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, socket.timeout):
            return
        except OSError:
            self.drop()
            return
        if not data:
            self.drop()
            return
        self.parser.append_buffer(data)
        while (message := self.parser.get_message()) is not None:
            self._on_message(message)

    def _on_message(self, message: simplefix.FixMessage) -> None:
        msg_type = message.get(35).decode()
        seq = int(message.get(34))
        if msg_type == "4" and message.get(123) != b"Y":
            self.next_target_seq_num = int(message.get(36))
            return
        if msg_type == "A":
            self.logged_on = True
        if msg_type == "2":
            # Served at once, gap or not: waiting would deadlock two sides with gaps.
            self._resend(int(message.get(7)), int(message.get(16)))
        if seq > self.next_target_seq_num:
            self._queued[seq] = message
            if not self._resend_requested:
                self._resend_requested = True
                self._send("2", [(7, str(self.next_target_seq_num)), (16, "0")])
            return
        if seq < self.next_target_seq_num:
            if message.get(43) != b"Y":
                raise AssertionError(f"{self.sender}: MsgSeqNum {seq} below {self.next_target_seq_num} without PossDupFlag")
            return
        self._process(msg_type, message)
        while self.next_target_seq_num in self._queued:
            queued = self._queued.pop(self.next_target_seq_num)
            self._process(queued.get(35).decode(), queued)
        if not self._queued:
            self._resend_requested = False

    def _process(self, msg_type: str, message: simplefix.FixMessage) -> None:
        if msg_type == "4":
            self.next_target_seq_num = int(message.get(36))
            return
        self.next_target_seq_num += 1
        if msg_type in ("8", "9"):
            exec_id = message.get(17)
            cl_ord_id = message.get(11).decode()
            self.received.append(Received(
                int(message.get(34)), msg_type, cl_ord_id, exec_id.decode() if exec_id else None,
                message.get(43) == b"Y",
            ))
            self.answered.add(cl_ord_id)
        elif msg_type == "5":
            self.drop()


@dataclass
class Venue:
    """``fixgw serve`` in a subprocess, restarted after every kill."""

    folder: Path
    db: Path
    # A sessions file of the caller's and more ``fixgw serve`` options; without the file
    # the venue writes SESSIONS_CFG into ``folder``.
    sessions_cfg: Path | None = None
    serve_args: tuple[str, ...] = ()
    process: subprocess.Popen[str] | None = None
    port: int = 0
    kills: int = 0
    starts: int = 0
    _log: IO[str] | None = None

    def start(self) -> None:
        cfg = self.sessions_cfg
        if cfg is None:
            cfg = self.folder / "sessions.cfg"
            cfg.write_text(SESSIONS_CFG)
        command = [sys.executable, "-m", "gateway.cli", "serve", "--sessions", str(cfg),
                   "--db", str(self.db), *self.serve_args]
        self._close_pipes()
        self._log = open(self.folder / f"serve-{self.starts}.log", "w")
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self._log, text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.search(r"listening on port (\d+)", line)
        if match is None:
            raise RuntimeError(f"fixgw serve printed {line!r}; see {self.folder}/serve-{self.starts}.log")
        self.port = int(match.group(1))
        self.starts += 1

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.kills += 1

    def is_dead(self) -> bool:
        return self.process is None or self.process.poll() is not None

    def stop(self) -> None:
        """SIGTERM and wait: the venue logs the sessions out and closes the audit trail."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self.process is not None:
            self.process.wait()
            if self.process.stdout is not None:
                self.process.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass
class FlowResult:
    clients: dict[str, RecoveringClient] = field(default_factory=dict)
    kills: int = 0
    steps: int = 0


def order_flow(seed: int, steps: int) -> list[tuple[str, str, list[tuple[int, str]]]]:
    """Return ``steps`` requests (sender, MsgType, body): new orders, cancels, replaces."""
    rng = random.Random(seed)
    placed: list[tuple[str, str, str, str]] = []  # sender, cl_ord_id, symbol, side
    flow = []
    for step in range(steps):
        sender = rng.choice(SENDERS)
        cl_ord_id = f"{sender}-{step}"
        mine = [p for p in placed if p[0] == sender]
        roll = rng.random()
        if roll < 0.15 and mine:
            _, orig, symbol, side = rng.choice(mine)
            fields = [(41, orig), (11, cl_ord_id), (55, symbol), (54, side), (60, utc_timestamp())]
            flow.append((sender, "F", fields))
            continue
        if roll < 0.25 and mine:
            _, orig, symbol, side = rng.choice(mine)
            price = f"{100 + rng.randint(-5, 5) / 100:.2f}"
            fields = [(41, orig), (11, cl_ord_id), (55, symbol), (54, side), (60, utc_timestamp()),
                      (38, str(rng.randint(1, 5) * 100)), (40, "2"), (44, price), (59, "0")]
            flow.append((sender, "G", fields))
            placed.append((sender, cl_ord_id, symbol, side))
            continue
        symbol, side = rng.choice(SYMBOLS), rng.choice("12")
        price = f"{100 + rng.randint(-5, 5) / 100:.2f}"
        fields = [(11, cl_ord_id), (55, symbol), (54, side), (60, utc_timestamp()),
                  (38, str(rng.randint(1, 5) * 100)), (40, "2"), (44, price), (59, "0")]
        flow.append((sender, "D", fields))
        placed.append((sender, cl_ord_id, symbol, side))
    return flow


def run_flow(venue: Venue, flow: list[tuple[str, str, list[tuple[int, str]]]],
             kill_steps: dict[int, float]) -> FlowResult:
    """Send ``flow`` step by step; at each step in ``kill_steps`` SIGKILL the venue after
    that many seconds, then restart it and let the clients recover."""
    clients = {sender: RecoveringClient(sender) for sender in SENDERS}
    venue.start()
    for client in clients.values():
        _reconnect(venue, client)
    for step, (sender, msg_type, fields) in enumerate(flow):
        if step in kill_steps:
            threading.Timer(kill_steps[step], venue.kill).start()
        cl_ord_id = dict(fields)[11]
        clients[sender].send_app(msg_type, fields)
        _wait(venue, clients, lambda: cl_ord_id in clients[sender].answered, f"answer to {cl_ord_id}")
    _wait(venue, clients, lambda: all(_is_quiet(c) for c in clients.values()), "quiet sessions")
    return FlowResult(clients, venue.kills, len(flow))


def _is_quiet(client: RecoveringClient) -> bool:
    return client.logged_on and not client._queued


def _reconnect(venue: Venue, client: RecoveringClient) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while not client.connect(venue.port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{client.sender}: venue on port {venue.port} not reachable")
        time.sleep(0.02)


def _wait(venue: Venue, clients: dict[str, RecoveringClient], done, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        if venue.is_dead():
            if venue.process is not None:
                venue.process.wait()
            for client in clients.values():
                client.drop()
            venue.start()
        for client in clients.values():
            # One attempt per turn: a refused connection means the venue is restarting.
            if client.sock is None and not client.connect(venue.port):
                time.sleep(0.01)
        socks = [c.sock for c in clients.values() if c.sock is not None]
        if not socks:
            continue
        readable, _, _ = select.select(socks, [], [], 0.05)
        for client in clients.values():
            if client.sock is not None and client.sock in readable:
                client.pump()


def received_reports(client: RecoveringClient) -> set[tuple[str, str | None, str]]:
    """Return (MsgType, ExecID, ClOrdID) of each report, once however often it was resent."""
    return {(r.msg_type, r.exec_id, r.cl_ord_id) for r in client.received}
