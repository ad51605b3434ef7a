"""Test support: an appliance on its own event-loop thread and a scripted raw FIX client.

The raw client encodes and parses with simplefix, the independent reference codec, and
sends exactly the messages the test builds, wrong sequence numbers included. It never
replies to anything by itself, so every session-level exchange is visible in the test.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from typing import Iterable

import simplefix

from gateway.appliance import Appliance

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
RECEIVE_TIMEOUT_S = 5.0


def utc_now() -> str:
    return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime()) + ".000"


class ApplianceThread:
    """Runs an appliance's event loop in a daemon thread, like a separate venue process."""

    def __init__(self, appliance: Appliance) -> None:
        self.appliance = appliance
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.ports: dict[str, int] = {}

    def start(self) -> dict[str, int]:
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(self.appliance.start(), self.loop)
        self.ports = future.result(10)
        return self.ports

    @property
    def port(self) -> int:
        return next(iter(self.ports.values()))

    def call(self, function, *args):  # type: ignore[no-untyped-def]
        """Run ``function`` on the appliance's loop and return its result."""

        async def run():  # type: ignore[no-untyped-def]
            return function(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.appliance.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class RawFixClient:
    """A blocking FIX client whose every message the test writes by hand."""

    def __init__(self, port: int, *, begin_string: str = "FIX.4.4", sender: str = "BRK1",
                 target: str = "FIXGW") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=RECEIVE_TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.begin_string = begin_string
        self.sender = sender
        self.target = target
        self.next_seq_num = 1
        self.parser = simplefix.FixParser()

    def close(self) -> None:
        self.sock.close()

    def build(self, msg_type: str, fields: Iterable[tuple[int, object]] = (), *,
              seq_num: int | None = None, header: Iterable[tuple[int, object]] = ()) -> bytes:
        """Encode a message; MsgSeqNum (34) is the next one unless ``seq_num`` is given."""
        if seq_num is None:
            seq_num = self.next_seq_num
            self.next_seq_num += 1
        message = simplefix.FixMessage()
        message.append_pair(8, self.begin_string, header=True)
        message.append_pair(35, msg_type, header=True)
        message.append_pair(49, self.sender, header=True)
        message.append_pair(56, self.target, header=True)
        message.append_pair(34, seq_num, header=True)
        message.append_pair(52, utc_now(), header=True)
        for tag, value in header:
            message.append_pair(tag, value, header=True)
        for tag, value in fields:
            message.append_pair(tag, value)
        return message.encode()

    def send(self, msg_type: str, fields: Iterable[tuple[int, object]] = (), **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.sock.sendall(self.build(msg_type, fields, **kwargs))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def logon(self, heartbeat_interval_s: int = 30, *, reset: bool = False) -> simplefix.FixMessage:
        fields: list[tuple[int, object]] = [(98, 0), (108, heartbeat_interval_s)]
        if reset:
            fields.append((141, "Y"))
        self.send("A", fields)
        reply = self.receive()
        assert reply.get(35) == b"A", f"expected Logon, received {reply}"
        return reply

    def receive(self, timeout_s: float = RECEIVE_TIMEOUT_S) -> simplefix.FixMessage:
        """Return the next message; fail the test on timeout or on EOF."""
        deadline = time.monotonic() + timeout_s
        while True:
            message = self.parser.get_message()
            if message is not None:
                return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no message from the venue within {timeout_s}s")
            self.sock.settimeout(remaining)
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError("the venue closed the connection while a message was expected")
            self.parser.append_buffer(data)

    def receive_type(self, msg_type: str, timeout_s: float = RECEIVE_TIMEOUT_S) -> simplefix.FixMessage:
        message = self.receive(timeout_s)
        assert message.get(35) == msg_type.encode(), (
            f"expected MsgType (35) {msg_type!r}, received {message}"
        )
        return message

    def expect_disconnect(self, timeout_s: float = RECEIVE_TIMEOUT_S) -> list[simplefix.FixMessage]:
        """Read until EOF; return the messages received before it."""
        received = []
        deadline = time.monotonic() + timeout_s
        while True:
            message = self.parser.get_message()
            if message is not None:
                received.append(message)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"the venue did not disconnect within {timeout_s}s; received {received}")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return received
            if not data:
                return received
            self.parser.append_buffer(data)


def new_order_fields(cl_ord_id: str, side: str = "1", qty: int = 100, price: str = "100.00",
                     symbol: str = "AAPL", tif: str = "0") -> list[tuple[int, object]]:
    return [(11, cl_ord_id), (55, symbol), (54, side), (60, utc_now()), (38, qty),
            (40, "2"), (44, price), (59, tif)]
