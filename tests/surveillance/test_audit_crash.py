"""Crash recovery: ``fixgw serve`` SIGKILLed at random moments while orders flow.

Set FIXGW_CRASH_KILLS (default 3) and FIXGW_CRASH_STEPS (default 300) for a longer run.
After the run, every report a client received is in the audit trail, the session store
matches what the clients saw, the journal and the rebuilt books equal an uninterrupted
run's, and the hash chain verifies.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import select
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from crashsupport import (
    SENDERS,
    SYMBOLS,
    FlowResult,
    RecoveringClient,
    Venue,
    order_flow,
    received_reports,
    run_flow,
)
from engine.commands import command_from_dict
from engine.engine import MatchingEngine
from surveillance.audit_chain import verify_chain

# Every test runs with both audit writers (tests/surveillance/conftest.py).
pytestmark = pytest.mark.usefixtures("writer")

KILLS = int(os.environ.get("FIXGW_CRASH_KILLS", "3"))
STEPS = int(os.environ.get("FIXGW_CRASH_STEPS", "300"))
SEED = int(os.environ.get("FIXGW_CRASH_SEED", "7"))
# Reports still on the way after the last step's reply are read until the sockets stay
# quiet this long.
DRAIN_QUIET_S = 0.3


def query(path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        return conn.execute(sql, params).fetchall()


def journal(path: Path) -> list[dict]:
    """Return every journaled command without its timestamp."""
    return [json.loads(body) for (body,) in query(path, "SELECT body FROM commands ORDER BY seq")]


def rebuilt_books(path: Path) -> dict[str, list[tuple]]:
    engine = MatchingEngine(list(SYMBOLS))
    for command in journal(path):
        engine.process(command_from_dict(command))
    return {
        symbol: [
            (o.order_id, o.session_id, o.cl_ord_id, o.side.value, o.price, o.leaves_qty)
            for o in engine.book(symbol).orders()
        ]
        for symbol in SYMBOLS
    }


def session_id(sender: str) -> str:
    return f"FIX.4.4:FIXGW->{sender}"


def run(folder: Path, kill_steps: dict[int, float]) -> tuple[Venue, FlowResult]:
    folder.mkdir()
    venue = Venue(folder, folder / "audit.sqlite")
    try:
        result = run_flow(venue, order_flow(SEED, STEPS), kill_steps)
        drain(result.clients)
    except BaseException:
        venue.kill()
        venue.stop()
        raise
    return venue, result


def drain(clients: dict[str, RecoveringClient]) -> None:
    """Read the reports that the flow does not wait for after the last step's reply.

    The flow moves on once the reply to each request arrives, so fills of resting orders
    that the last order traded with can still be in flight. They went out in the same
    commit, a few writes later, and the comparisons below count them.
    """
    while True:
        sockets = [client.sock for client in clients.values() if client.sock is not None]
        if not sockets:
            return
        readable, _, _ = select.select(sockets, [], [], DRAIN_QUIET_S)
        if not readable:
            return
        for client in clients.values():
            if client.sock is not None and client.sock in readable:
                client.pump()


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, writer: str
) -> Iterator[dict[str, tuple[Venue, FlowResult]]]:
    root = tmp_path_factory.mktemp("crash")
    rng = random.Random(SEED)
    # Kills at least 10 steps apart, so each one hits a venue that is up.
    steps = sorted(rng.sample(range(10, STEPS, 10), KILLS))
    # Each kill lands 0 to 5 ms after its step's request is sent: before the venue reads
    # it, between commit and write, or while the reports go out.
    kill_steps = {step: rng.uniform(0.0, 0.005) for step in steps}
    runs = {"reference": run(root / "reference", {})}
    try:
        runs["crashed"] = run(root / "crashed", kill_steps)
        yield runs
    finally:
        for venue, result in runs.values():
            venue.stop()
            for client in result.clients.values():
                client.drop()


def test_crash_run_was_killed(runs: dict) -> None:
    venue, result = runs["crashed"]
    assert result.kills == KILLS
    assert venue.starts == KILLS + 1


def test_crash_reports_in_audit_trail(runs: dict) -> None:
    venue, result = runs["crashed"]
    for sender, client in result.clients.items():
        stored = query(
            venue.db,
            "SELECT msg_seq_num, raw FROM messages WHERE session_id = ? AND direction = 'out'"
            " AND msg_type IN ('8', '9')",
            (session_id(sender),),
        )
        stored_keys = set()
        for msg_seq_num, raw in stored:
            exec_id = re.search(rb"\x0117=([^\x01]*)\x01", raw)
            stored_keys.add((msg_seq_num, exec_id.group(1).decode() if exec_id else None))
        for report in client.received:
            assert (report.msg_seq_num, report.exec_id) in stored_keys, report


def test_crash_reports_match_reference(runs: dict) -> None:
    _, reference = runs["reference"]
    _, crashed = runs["crashed"]
    for sender in SENDERS:
        assert received_reports(crashed.clients[sender]) == received_reports(reference.clients[sender])


def test_crash_session_store_matches_clients(runs: dict) -> None:
    venue, result = runs["crashed"]
    venue.stop()
    for sender, client in result.clients.items():
        rows = query(
            venue.db,
            "SELECT next_sender_seq_num, next_target_seq_num FROM session_store WHERE session_id = ?",
            (session_id(sender),),
        )
        # The graceful stop sent one Logout (5) that the client did not read.
        assert rows == [(client.next_target_seq_num + 1, client.next_sender_seq_num)]


def test_crash_journal_equals_reference(runs: dict) -> None:
    assert journal(runs["crashed"][0].db) == journal(runs["reference"][0].db)


def test_crash_books_equal_reference(runs: dict) -> None:
    crashed = rebuilt_books(runs["crashed"][0].db)
    assert crashed == rebuilt_books(runs["reference"][0].db)
    assert any(crashed.values())


def test_crash_chain_verifies(runs: dict) -> None:
    for name in ("crashed", "reference"):
        report = verify_chain(runs[name][0].db)
        assert report.ok, (name, report.problem)
