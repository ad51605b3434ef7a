"""Crash recovery of a LOBSTER replay: ``fixgw serve`` SIGKILLed while the replay runs.

The AAPL excerpt is replayed twice against ``fixgw serve`` in a subprocess: once without
interruption, and once with the venue SIGKILLed and restarted on the same audit trail
each time its journal reaches one of KILLS seeded command counts. The replay's sessions
log on again and recover by ResendRequest (2) and PossDupFlag (43) resends. Afterwards the
books rebuilt from both journals are equal, no order was booked twice, the replay made
the same requests, and the hash chain verifies.

Set FIXGW_REPLAY_KILLS (default 3) and FIXGW_REPLAY_SEED (default 11) for other runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import select
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from crashsupport import RecoveringClient, Venue, utc_timestamp
from engine.commands import NewOrder, command_from_dict
from gateway.replay import run_replay, write_serve_config
from gateway.summary import RunSummary

KILLS = int(os.environ.get("FIXGW_REPLAY_KILLS", "3"))
SEED = int(os.environ.get("FIXGW_REPLAY_SEED", "11"))
SYMBOL = "AAPL"
DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MESSAGES = DATA_DIR / "AAPL_2012-06-21_34200000_57600000_message_10.csv"
ORDERBOOK = DATA_DIR / "AAPL_2012-06-21_34200000_57600000_orderbook_10.csv"
REPO = Path(__file__).resolve().parents[2]
# Kills land at journal counts at least this many commands apart, and never in the first
# or last commands of the run.
KILL_SPACING = 5
KILL_MARGIN = 20
# Each kill lands up to this long after its count is reached: inside the next request,
# between a commit and the write of its reports, or while the venue is idle.
MAX_KILL_DELAY_S = 0.003
POLL_INTERVAL_S = 0.002


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def journal_length(db: Path) -> int:
    """Return how many commands the venue has committed, 0 before the table exists."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1)) as conn:
            (count,) = conn.execute("SELECT count(*) FROM commands").fetchone()
    except sqlite3.Error:
        return 0
    return count


def journal(db: Path) -> list[dict]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return [json.loads(body) for (body,) in conn.execute("SELECT body FROM commands ORDER BY seq")]


def fixgw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args], cwd=REPO, capture_output=True, text=True,
        timeout=120,
    )


def book(db: Path) -> dict:
    """Return the book that ``fixgw audit book`` rebuilds from the whole journal."""
    far_future_us = str(int((time.time() + 86_400) * 1e6))
    result = fixgw("audit", "book", SYMBOL, "--at", far_future_us, "--depth", "100000",
                   "--json", "--db", str(db))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


class Killer(threading.Thread):
    """SIGKILLs the venue once its journal reaches each target length, then restarts it."""

    def __init__(self, venue: Venue, targets: list[int], rng: random.Random) -> None:
        super().__init__(name="venue killer", daemon=True)
        self.venue = venue
        self.targets = targets
        self.rng = rng
        self.kills = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        for target in self.targets:
            while journal_length(self.venue.db) < target:
                if self.stopped.wait(POLL_INTERVAL_S):
                    return
            time.sleep(self.rng.uniform(0.0, MAX_KILL_DELAY_S))
            self.venue.kill()
            self.kills += 1
            self.venue.start()


@dataclass
class Run:
    venue: Venue
    summary: RunSummary
    kills: int


def replay(root: Path, name: str, kill_targets: list[int], rng: random.Random) -> Run:
    folder = root / name
    port = free_port()
    sessions_cfg, venue_toml = write_serve_config(folder, SYMBOL, port)
    venue = Venue(folder, folder / "audit.sqlite", sessions_cfg=sessions_cfg,
                  serve_args=("--venue", str(venue_toml)))
    venue.start()
    killer = Killer(venue, kill_targets, rng)
    killer.start()
    try:
        summary = asyncio.run(
            run_replay(MESSAGES, ORDERBOOK, host="127.0.0.1", port=port, audit_path=venue.db)
        )
    finally:
        killer.stopped.set()
        killer.join()
        venue.stop()
    return Run(venue, summary, killer.kills)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    for path in (MESSAGES, ORDERBOOK):
        if not path.is_file():
            pytest.skip(f"LOBSTER sample {path} not found")
    root = tmp_path_factory.mktemp("replay-recovery")
    rng = random.Random(SEED)
    reference = replay(root, "reference", [], rng)
    length = journal_length(reference.venue.db)
    targets = sorted(rng.sample(range(KILL_MARGIN, length - KILL_MARGIN, KILL_SPACING), KILLS))
    yield {"reference": reference, "crashed": replay(root, "crashed", targets, rng)}


def test_recovery_was_killed(runs: dict[str, Run]) -> None:
    crashed = runs["crashed"]
    assert crashed.kills == KILLS
    assert crashed.venue.starts == KILLS + 1


def test_recovery_books_equal_reference(runs: dict[str, Run]) -> None:
    crashed = book(runs["crashed"].venue.db)
    reference = book(runs["reference"].venue.db)
    for key in ("bids", "asks", "orders", "last_trade_price"):
        assert crashed[key] == reference[key], key
    assert crashed["orders"]


def test_recovery_no_order_booked_twice(runs: dict[str, Run]) -> None:
    orders = {}
    for name, run in runs.items():
        commands = [command_from_dict(body) for body in journal(run.venue.db)]
        orders[name] = [(c.session_id, c.cl_ord_id) for c in commands if isinstance(c, NewOrder)]
        assert len(set(orders[name])) == len(orders[name]), name
    assert orders["crashed"] == orders["reference"]


def test_recovery_journal_matches_reference(runs: dict[str, Run]) -> None:
    # Cancels of one level go out together on several sessions, so their order in the
    # journal may differ between runs; the commands themselves may not.
    crashed = Counter(json.dumps(body, sort_keys=True) for body in journal(runs["crashed"].venue.db))
    reference = Counter(json.dumps(body, sort_keys=True) for body in journal(runs["reference"].venue.db))
    assert crashed == reference


def test_recovery_replay_figures_equal_reference(runs: dict[str, Run]) -> None:
    crashed, reference = runs["crashed"].summary, runs["reference"].summary
    assert crashed.replay == reference.replay
    assert (crashed.orders_sent, crashed.messages_sent, crashed.fills) == (
        reference.orders_sent, reference.messages_sent, reference.fills
    )
    assert crashed.replay is not None
    assert crashed.replay.executions_reproduced == crashed.replay.executions


@pytest.mark.parametrize("name", ["reference", "crashed"])
def test_recovery_chain_verifies(runs: dict[str, Run], name: str) -> None:
    result = fixgw("audit", "verify", "--db", str(runs[name].venue.db))
    assert result.returncode == 0, result.stdout + result.stderr


def wait_for(client: RecoveringClient, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10.0
    while not done():
        assert time.monotonic() < deadline, "timed out waiting for the venue"
        assert client.sock is not None, "the venue closed the connection"
        readable, _, _ = select.select([client.sock], [], [], 0.05)
        if readable:
            client.pump()


def test_poss_dup_order_not_booked_twice(tmp_path: Path) -> None:
    port = free_port()
    sessions_cfg, venue_toml = write_serve_config(tmp_path, SYMBOL, port)
    venue = Venue(tmp_path, tmp_path / "audit.sqlite", sessions_cfg=sessions_cfg,
                  serve_args=("--venue", str(venue_toml)))
    venue.start()
    client = RecoveringClient("BRK1")
    try:
        assert client.connect(port)
        wait_for(client, lambda: client.logged_on)
        for cl_ord_id in ("X1", "X2"):
            client.send_app("D", [(11, cl_ord_id), (55, SYMBOL), (54, "1"), (60, utc_timestamp()),
                                  (38, "100"), (40, "2"), (44, "100.25"), (59, "0")])
            wait_for(client, lambda: cl_ord_id in client.answered)
            if cl_ord_id == "X1":
                # The same NewOrderSingle again, as a resend after a lost connection would
                # carry it: its MsgSeqNum (34) is below the venue's expected number.
                msg_seq_num = client.next_sender_seq_num - 1
                _, fields, sending_time = client.sent[msg_seq_num]
                client._write("D", fields, msg_seq_num, utc_timestamp(), orig_sending_time=sending_time)
    finally:
        client.drop()
        venue.stop()
    commands = [command_from_dict(body) for body in journal(venue.db)]
    booked = [c.cl_ord_id for c in commands if isinstance(c, NewOrder)]
    assert booked == ["X1", "X2"]
    assert [r.cl_ord_id for r in client.received] == ["X1", "X2"]
