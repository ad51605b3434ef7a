"""AuditTrail: group commit, after_commit, session store, resend store, journal, failures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from pathlib import Path

import pytest

from engine.commands import (
    CancelOrder,
    Command,
    MassCancel,
    NewOrder,
    OrderStatusRequest,
    RejectOrder,
    ReplaceOrder,
)
from engine.events import CancelReject, ExecutionEvent, Trade
from engine.orders import (
    PRICE_SCALE,
    CxlRejReason,
    CxlRejResponseTo,
    ExecType,
    OrdRejReason,
    OrdStatus,
    OrdType,
    Side,
    TimeInForce,
)
from surveillance.audit import AuditTrail, AuditTrailError, SessionState

# Every test runs with both audit writers (tests/surveillance/conftest.py).
pytestmark = pytest.mark.usefixtures("writer")

SESSION = "FIX.4.4:VENUE->BRK1"
OTHER_SESSION = "FIX.4.4:VENUE->BRK2"
NEW_ORDER = NewOrder(SESSION, "A1", "AAPL", Side.BUY, OrdType.LIMIT, 100, 223 * PRICE_SCALE)


def out_raw(msg_seq_num: int, text: str = "") -> bytes:
    return f"8=FIX.4.4\x0135=8\x0134={msg_seq_num}\x0158={text}\x01".encode()


def query(path: Path, sql: str) -> list[tuple]:
    """Run one statement on a connection of its own, which sees only committed rows."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        return conn.execute(sql).fetchall()


def record_out(trail: AuditTrail, msg_seq_num: int, *, session_id: str = SESSION, **kwargs) -> None:
    trail.record_message(
        session_id, "out", out_raw(msg_seq_num), msg_type="8", msg_seq_num=msg_seq_num, **kwargs
    )


def test_constructor_rejects_memory_path() -> None:
    with pytest.raises(ValueError, match="':memory:'"):
        AuditTrail(":memory:")


def test_constructor_rejects_zero_batch_cap(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_batch_rows must be at least 1, got 0"):
        AuditTrail(tmp_path / "audit.db", max_batch_rows=0)


def test_now_us_is_microseconds() -> None:
    before_ns = time.time_ns()
    now_us = AuditTrail.now_us()
    assert before_ns // 1000 <= now_us
    assert now_us < before_ns // 1000 + 60_000_000


def test_start_creates_wal_schema_and_meta(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"

    async def scenario() -> None:
        trail = AuditTrail(path)
        await trail.start()
        await trail.close()

    asyncio.run(scenario())
    assert query(path, "PRAGMA journal_mode") == [("wal",)]
    tables = {row[0] for row in query(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {
        "meta", "messages", "commands", "events", "decisions", "session_store", "alerts",
        "limit_changes", "halts", "session_events", "clock_log", "audit_batches",
    }
    meta = dict(query(path, "SELECT key, value FROM meta"))
    assert meta["clock"] == "time.time_ns"
    assert meta["clock_platform"]
    assert meta["schema_version"] == "2"
    clock = query(path, "SELECT clock, granularity_us, pid FROM clock_log")
    assert clock == [("time.time_ns", 1, os.getpid())]


def test_start_on_missing_folder_names_path(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "audit.db"

    async def scenario() -> None:
        await AuditTrail(path).start()

    with pytest.raises(AuditTrailError, match="missing/audit.db"):
        asyncio.run(scenario())


def test_batch_holds_many_rows(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"

    async def scenario() -> AuditTrail:
        trail = AuditTrail(path)
        await trail.start()
        for msg_seq_num in range(1, 2001):
            record_out(trail, msg_seq_num)
        assert trail.pending_rows == 2000
        trail.check()
        await trail.flush()
        trail.check()
        await trail.close()
        return trail

    trail = asyncio.run(scenario())
    assert trail.committed_batches == 1
    assert trail.committed_rows == 2000
    assert trail.pending_rows == 0
    assert query(path, "SELECT count(*) FROM messages") == [(2000,)]


def test_batch_cap_splits_between_turns(tmp_path: Path) -> None:
    async def scenario() -> None:
        trail = AuditTrail(tmp_path / "audit.db", max_batch_rows=100)
        await trail.start()
        for msg_seq_num in range(1, 1001):
            record_out(trail, msg_seq_num)
            if msg_seq_num % 100 == 0:
                await asyncio.sleep(0)
        trail.check()
        await trail.close()
        return trail

    asyncio.run(scenario())
    sizes = [row[0] for row in query(tmp_path / "audit.db", "SELECT row_count FROM audit_batches")]
    # Batch 1 is the clock_log row that start() commits.
    assert sizes[0] == 1
    assert sum(sizes[1:]) == 1000
    assert max(sizes[1:]) <= 100


def test_batch_cap_never_splits_a_turn(tmp_path: Path) -> None:
    """Rows recorded in one turn of the loop commit together, past the cap if need be."""

    async def scenario() -> AuditTrail:
        trail = AuditTrail(tmp_path / "audit.db", max_batch_rows=100)
        await trail.start()
        for msg_seq_num in range(1, 351):
            record_out(trail, msg_seq_num)
        trail.check()
        await trail.close()
        return trail

    trail = asyncio.run(scenario())
    assert trail.committed_batches == 1
    assert trail.committed_rows == 350


def test_rows_during_commit_join_next_batch(tmp_path: Path) -> None:
    async def scenario() -> AuditTrail:
        trail = AuditTrail(tmp_path / "audit.db")
        await trail.start()
        record_out(trail, 1)
        # One turn of the loop lets the committer hand the first row to the writer process,
        # which may even commit it before the turn ends.
        await asyncio.sleep(0)
        for msg_seq_num in range(2, 502):
            record_out(trail, msg_seq_num)
        assert trail.committed_batches in (0, 1)
        assert trail.pending_rows == 501 - trail.committed_rows
        trail.check()
        await trail.close()
        return trail

    trail = asyncio.run(scenario())
    assert trail.committed_batches == 2
    assert trail.committed_rows == 501


def test_commit_without_flush(tmp_path: Path) -> None:
    async def scenario() -> AuditTrail:
        trail = AuditTrail(tmp_path / "audit.db")
        await trail.start()
        committed = asyncio.Event()
        record_out(trail, 1)
        trail.after_commit(committed.set)
        await asyncio.wait_for(committed.wait(), timeout=10)
        await trail.close()
        return trail

    trail = asyncio.run(scenario())
    assert trail.committed_batches == 1


def test_after_commit_runs_in_order_after_commit(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    visible_counts: list[tuple[int, int]] = []

    def on_commit(index: int) -> None:
        (count,) = query(path, "SELECT count(*) FROM messages")[0]
        visible_counts.append((index, count))

    async def scenario() -> None:
        trail = AuditTrail(path, max_batch_rows=7)
        await trail.start()
        for index in range(1, 51):
            record_out(trail, index)
            trail.after_commit(lambda index=index: on_commit(index))
            if index % 9 == 0:
                await asyncio.sleep(0)
        await trail.close()

    asyncio.run(scenario())
    assert [index for index, _ in visible_counts] == list(range(1, 51))
    for index, count in visible_counts:
        assert count >= index, f"callback {index} ran with only {count} rows committed"


def test_after_commit_with_nothing_pending(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        trail = AuditTrail(tmp_path / "audit.db")
        await trail.start()
        calls: list[str] = []
        trail.after_commit(lambda: calls.append("idle"))
        record_out(trail, 1)
        trail.after_commit(lambda: calls.append("after row"))
        trail.after_commit(lambda: calls.append("empty batch"))
        assert calls == []
        await trail.flush()
        await trail.close()
        return calls

    assert asyncio.run(scenario()) == ["idle", "after row", "empty batch"]


def test_after_commit_error_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise ZeroDivisionError("callback bug")

    async def scenario() -> list[int]:
        trail = AuditTrail(tmp_path / "audit.db")
        await trail.start()
        calls: list[int] = []
        record_out(trail, 1)
        trail.after_commit(broken)
        trail.after_commit(lambda: calls.append(1))
        await trail.close()
        return calls

    with caplog.at_level(logging.ERROR, logger="surveillance.audit"):
        assert asyncio.run(scenario()) == [1]
    assert "after_commit callback" in caplog.text
    assert "ZeroDivisionError" in caplog.text


def test_session_state_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"

    async def first_run() -> SessionState | None:
        trail = AuditTrail(path)
        await trail.start()
        trail.save_session_state(
            SESSION, next_sender_seq_num=2, next_target_seq_num=2, creation_time_us=1_000
        )
        trail.save_session_state(SESSION, next_sender_seq_num=8, next_target_seq_num=5)
        trail.check()
        pending = trail.load_session_state(SESSION)
        await trail.close()
        return pending

    async def second_run() -> tuple[SessionState | None, SessionState | None]:
        trail = AuditTrail(path)
        await trail.start()
        trail.check()
        stored = trail.load_session_state(SESSION)
        unknown = trail.load_session_state(OTHER_SESSION)
        await trail.close()
        return stored, unknown

    expected = SessionState(SESSION, 8, 5, 1_000)
    assert asyncio.run(first_run()) == expected
    assert asyncio.run(second_run()) == (expected, None)
    assert query(path, "SELECT count(*) FROM session_store") == [(1,)]


def test_new_session_creation_time_is_now(tmp_path: Path) -> None:
    async def scenario() -> SessionState | None:
        trail = AuditTrail(tmp_path / "audit.db")
        await trail.start()
        trail.save_session_state(OTHER_SESSION, next_sender_seq_num=1, next_target_seq_num=1)
        state = trail.load_session_state(OTHER_SESSION)
        await trail.close()
        return state

    before_us = AuditTrail.now_us()
    state = asyncio.run(scenario())
    assert state is not None
    assert before_us <= state.creation_time_us <= AuditTrail.now_us()


def test_session_state_rejects_zero(tmp_path: Path) -> None:
    async def scenario() -> None:
        trail = AuditTrail(tmp_path / "audit.db")
        await trail.start()
        try:
            trail.save_session_state(SESSION, next_sender_seq_num=0, next_target_seq_num=1)
        finally:
            await trail.close()

    with pytest.raises(ValueError, match="next_sender_seq_num=0"):
        asyncio.run(scenario())


async def start_with_outbound(path: Path) -> AuditTrail:
    """Open a trail whose SESSION sent MsgSeqNum 1-10, 4 twice, beside unrelated messages."""
    trail = AuditTrail(path)
    await trail.start()
    trail.save_session_state(
        SESSION, next_sender_seq_num=11, next_target_seq_num=1, creation_time_us=1_000
    )
    for msg_seq_num in range(1, 11):
        record_out(trail, msg_seq_num, ts_us=1_000 + msg_seq_num)
        record_out(trail, msg_seq_num, session_id=OTHER_SESSION, ts_us=1_000 + msg_seq_num)
        trail.record_message(
            SESSION, "in", b"in", msg_type="D", msg_seq_num=msg_seq_num, ts_us=1_000
        )
    resent = out_raw(4, "resent")
    trail.record_message(
        SESSION, "out", resent, msg_type="8", msg_seq_num=4, poss_dup=True, ts_us=1_020
    )
    await trail.flush()
    return trail


@pytest.mark.parametrize(
    ("begin_seq_no", "end_seq_no", "expected"),
    [
        (1, 0, list(range(1, 11))),
        (3, 5, [3, 4, 5]),
        (8, 0, [8, 9, 10]),
        (5, 5, [5]),
        (9, 200, [9, 10]),
        (11, 0, []),
        (6, 3, []),
    ],
)
def test_load_outbound_range(
    tmp_path: Path, begin_seq_no: int, end_seq_no: int, expected: list[int]
) -> None:
    async def scenario() -> list[tuple[int, bytes]]:
        trail = await start_with_outbound(tmp_path / "audit.db")
        messages = trail.load_outbound(SESSION, begin_seq_no, end_seq_no)
        await trail.close()
        return messages

    messages = asyncio.run(scenario())
    assert [msg_seq_num for msg_seq_num, _ in messages] == expected
    for msg_seq_num, raw in messages:
        wanted = out_raw(4, "resent") if msg_seq_num == 4 else out_raw(msg_seq_num)
        assert raw == wanted


def test_load_outbound_skips_pending(tmp_path: Path) -> None:
    async def scenario() -> list[tuple[int, bytes]]:
        trail = await start_with_outbound(tmp_path / "audit.db")
        record_out(trail, 11)
        messages = trail.load_outbound(SESSION, 10, 0)
        await trail.close()
        return messages

    assert asyncio.run(scenario()) == [(10, out_raw(10))]


def test_load_outbound_after_sequence_reset(tmp_path: Path) -> None:
    async def scenario() -> list[tuple[int, bytes]]:
        trail = await start_with_outbound(tmp_path / "audit.db")
        trail.save_session_state(
            SESSION, next_sender_seq_num=3, next_target_seq_num=1, creation_time_us=5_000
        )
        record_out(trail, 1, ts_us=5_001, cl_ord_id="after reset")
        record_out(trail, 2, ts_us=5_002)
        await trail.flush()
        messages = trail.load_outbound(SESSION, 1, 0)
        await trail.close()
        return messages

    assert asyncio.run(scenario()) == [(1, out_raw(1)), (2, out_raw(2))]


@pytest.mark.parametrize(("begin_seq_no", "end_seq_no"), [(0, 5), (1, -1)])
def test_load_outbound_rejects_range(tmp_path: Path, begin_seq_no: int, end_seq_no: int) -> None:
    async def scenario() -> None:
        trail = AuditTrail(tmp_path / "audit.db")
        await trail.start()
        try:
            trail.load_outbound(SESSION, begin_seq_no, end_seq_no)
        finally:
            await trail.close()

    with pytest.raises(ValueError, match="invalid resend range"):
        asyncio.run(scenario())


COMMANDS: list[Command] = [
    NEW_ORDER,
    NewOrder(SESSION, "M1", "AAPL", Side.SELL, OrdType.MARKET, 5, None, TimeInForce.IOC, "ACC1"),
    CancelOrder(SESSION, "A2", "A1", "AAPL", Side.BUY, order_id="O1"),
    ReplaceOrder(
        SESSION, "A3", "A2", "AAPL", Side.BUY, OrdType.LIMIT, 80, 224 * PRICE_SCALE,
        TimeInForce.GTC, "O1",
    ),
    OrderStatusRequest(SESSION, "S1", "AAPL", Side.BUY),
    MassCancel(SESSION, "MC1"),
    MassCancel(SESSION, "MC2", "AAPL", Side.SELL),
    RejectOrder(NEW_ORDER, OrdRejReason.ORDER_EXCEEDS_LIMIT, "order_qty above 50"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: type(command).__name__)
def test_journal_round_trip(tmp_path: Path, command: Command) -> None:
    path = tmp_path / "audit.db"

    async def write() -> list[int]:
        trail = AuditTrail(path)
        await trail.start()
        seqs = [trail.record_command(NEW_ORDER), trail.record_command(command)]
        await trail.close()
        return seqs

    async def read() -> tuple[list, int]:
        trail = AuditTrail(path)
        await trail.start()
        journal = list(trail.load_journal())
        next_seq = trail.record_command(NEW_ORDER)
        await trail.close()
        return journal, next_seq

    assert asyncio.run(write()) == [1, 2]
    journal, next_seq = asyncio.run(read())
    assert journal == [(1, NEW_ORDER), (2, command)]
    assert next_seq == 3


def test_journal_columns_name_owner(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"

    async def scenario() -> None:
        trail = AuditTrail(path)
        await trail.start()
        for command in COMMANDS:
            trail.record_command(command, ts_us=7)
        await trail.close()

    asyncio.run(scenario())
    columns = "seq, ts_us, session_id, cl_ord_id, orig_cl_ord_id, type"
    rows = query(path, f"SELECT {columns} FROM commands")
    assert rows[2] == (3, 7, SESSION, "A2", "A1", "CancelOrder")
    assert rows[7] == (8, 7, SESSION, "A1", None, "RejectOrder")


EXECUTION = ExecutionEvent(
    exec_id="E1", exec_type=ExecType.TRADE, ord_status=OrdStatus.PARTIALLY_FILLED,
    order_id="O1", session_id=SESSION, cl_ord_id="A1", orig_cl_ord_id=None, symbol="AAPL",
    side=Side.BUY, ord_type=OrdType.LIMIT, time_in_force=TimeInForce.DAY,
    price=223 * PRICE_SCALE, order_qty=100, cum_qty=40, leaves_qty=60,
    cum_notional=40 * 223 * PRICE_SCALE, last_qty=40, last_px=223 * PRICE_SCALE, trade_id="T1",
)
CANCEL_REJECT = CancelReject(
    SESSION, "A2", "A1", "O1", OrdStatus.PARTIALLY_FILLED, CxlRejResponseTo.CANCEL,
    CxlRejReason.TOO_LATE_TO_CANCEL, "filled",
)
TRADE = Trade("T1", "AAPL", 223 * PRICE_SCALE, 40, Side.BUY, "O1", SESSION, "O9", OTHER_SESSION)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            EXECUTION,
            ("ExecutionEvent", SESSION, "A1", None, "O1", "E1", "F", "1", "1", 40, 60, "T1", None),
        ),
        (
            CANCEL_REJECT,
            ("CancelReject", SESSION, "A2", "A1", "O1", None, None, "1", None, None, None, None,
             None),
        ),
        (
            TRADE,
            ("Trade", SESSION, None, None, "O1", None, None, None, "1", None, None, "T1", "O9"),
        ),
    ],
    ids=["ExecutionEvent", "CancelReject", "Trade"],
)
def test_event_columns(tmp_path: Path, event: object, expected: tuple) -> None:
    path = tmp_path / "audit.db"

    async def scenario() -> None:
        trail = AuditTrail(path)
        await trail.start()
        trail.record_event(event, command_seq=4)
        await trail.close()

    asyncio.run(scenario())
    rows = query(
        path,
        "SELECT kind, session_id, cl_ord_id, orig_cl_ord_id, order_id, exec_id, exec_type,"
        " ord_status, side, cum_qty, leaves_qty, trade_id, contra_order_id FROM events"
        " WHERE command_seq = 4",
    )
    assert rows == [expected]


def test_decision_columns(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"

    async def scenario() -> None:
        trail = AuditTrail(path)
        await trail.start()
        trail.record_decision(
            session_id=SESSION, cl_ord_id="A1", control="max_order_qty", accepted=False,
            reason_code="ORDER_QTY_LIMIT", limit="50", value="100", text="order_qty above 50",
            command_seq=None, ts_us=9,
        )
        await trail.close()

    asyncio.run(scenario())
    assert query(path, "SELECT * FROM decisions") == [
        (1, 9, None, SESSION, "A1", "max_order_qty", 0, "ORDER_QTY_LIMIT", "50", "100",
         "order_qty above 50"),
    ]


def test_record_rejects_direction(tmp_path: Path) -> None:
    async def scenario() -> None:
        trail = AuditTrail(tmp_path / "audit.db")
        await trail.start()
        try:
            trail.record_message(SESSION, "sent", b"", msg_type="0", msg_seq_num=1)
        finally:
            await trail.close()

    with pytest.raises(ValueError, match="got 'sent'"):
        asyncio.run(scenario())


def test_record_after_close_raises(tmp_path: Path) -> None:
    async def scenario() -> None:
        trail = AuditTrail(tmp_path / "audit.db")
        await trail.start()
        await trail.close()
        trail.record_command(NEW_ORDER)

    with pytest.raises(RuntimeError, match="is closed"):
        asyncio.run(scenario())


FAIL_INSERTS = (
    "CREATE TRIGGER fail_inserts BEFORE INSERT ON messages"
    " BEGIN SELECT RAISE(ABORT, 'simulated disk full'); END"
)


def test_failed_commit_keeps_rows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "audit.db"
    calls: list[str] = []

    async def scenario() -> AuditTrail:
        trail = AuditTrail(path)
        await trail.start()
        query(path, FAIL_INSERTS)
        record_out(trail, 1)
        trail.save_session_state(SESSION, next_sender_seq_num=2, next_target_seq_num=1)
        trail.after_commit(lambda: calls.append("sent"))
        with pytest.raises(AuditTrailError, match="simulated disk full"):
            await trail.flush()

        assert isinstance(trail.failed, sqlite3.Error)
        assert calls == []
        assert trail.pending_rows == 2
        trail.check()
        # The session state and the message commit together, so neither is in the file.
        assert query(path, "SELECT count(*) FROM session_store") == [(0,)]

        query(path, "DROP TRIGGER fail_inserts")
        await trail.flush()
        assert trail.failed is None
        await trail.close()
        return trail

    with caplog.at_level(logging.ERROR, logger="surveillance.audit"):
        trail = asyncio.run(scenario())
    assert calls == ["sent"]
    assert trail.committed_rows == 2
    assert query(path, "SELECT msg_seq_num FROM messages") == [(1,)]
    assert str(path) in caplog.text
    assert "simulated disk full" in caplog.text


def test_close_with_failed_commit_raises(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    calls: list[str] = []

    async def scenario() -> None:
        trail = AuditTrail(path)
        await trail.start()
        query(path, FAIL_INSERTS)
        record_out(trail, 1)
        trail.after_commit(lambda: calls.append("sent"))
        await trail.close()

    with pytest.raises(AuditTrailError, match="1 rows are still pending"):
        asyncio.run(scenario())
    assert calls == []
