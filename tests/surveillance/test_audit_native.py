"""The C writer (surveillance._cwriter): the same rows and hashes as the Python writer."""

from __future__ import annotations

import contextlib
import json
import marshal
import pickle
import sqlite3
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.commands import CancelOrder, MassCancel, NewOrder, RejectOrder
from engine.events import CancelReject, ExecutionEvent, Trade
from engine.orders import (
    CxlRejReason,
    CxlRejResponseTo,
    ExecType,
    OrdRejReason,
    OrdStatus,
    OrdType,
    Side,
    TimeInForce,
)
from surveillance.audit_chain import verify_chain
from surveillance.audit_native import NO_EXTENSIONS_ENV, load_cwriter
from surveillance.audit_rows import command_record, event_record
from surveillance.audit_schema import TABLES
from surveillance.audit_writer import Batch, BatchWriter, dumps_batch

cwriter = load_cwriter()
needs_cwriter = pytest.mark.skipif(
    cwriter is None,
    reason=f"surveillance._cwriter is not built or {NO_EXTENSIONS_ENV} is set; "
    "run `pip install -e .` with a C compiler and SQLite's headers",
)

SESSION = "FIX.4.4:VENUE->BRK1"
CLOCK_US = 1_700_000_000_000_000
EXECUTION = ExecutionEvent(
    exec_id="E1", exec_type=ExecType.NEW, ord_status=OrdStatus.NEW, order_id="O1",
    session_id=SESSION, cl_ord_id="A1", orig_cl_ord_id=None, symbol="AAPL", side=Side.BUY,
    ord_type=OrdType.LIMIT, time_in_force=TimeInForce.DAY, price=5, order_qty=100, cum_qty=0,
    leaves_qty=100, cum_notional=0,
)
ORDER = NewOrder(SESSION, "A1", "AAPL", Side.BUY, OrdType.LIMIT, 100, 5)

# Values of every type a row holds, and the edges of marshal's int encodings.
SCALARS = [
    None, True, False, 0, 1, -1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**62, 2**63 - 1,
    -(2**63), 0.0, -0.0, 1.5, float("inf"), "", "AAPL", "é", "\U0001f600", "a\x00b", b"",
    b"\x00\x01\xff",
]


@needs_cwriter
@pytest.mark.parametrize("value", SCALARS, ids=repr)
def test_encode_row_matches_marshal(value: Any) -> None:
    row = (7, value, "x")
    assert cwriter.encode_row(row) == marshal.dumps(row, 2)


@needs_cwriter
@pytest.mark.parametrize("value", [2**64, -(2**100), "\ud800", (1, 2)], ids=repr)
def test_encode_row_other_types(value: Any) -> None:
    # Values the C encoder hands to marshal itself.
    assert cwriter.encode_row((value,)) == marshal.dumps((value,), 2)


@needs_cwriter
def test_encode_row_rejects_enum() -> None:
    with pytest.raises(ValueError, match="unmarshallable"):
        cwriter.encode_row((Side.BUY,))


@needs_cwriter
@given(st.tuples(st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False),
    st.text(), st.binary(),
)))
def test_encode_row_property(row: tuple[Any, ...]) -> None:
    assert cwriter.encode_row(row) == marshal.dumps(row, 2)


@needs_cwriter
@given(st.binary(max_size=300))
def test_crc32_matches_zlib(data: bytes) -> None:
    assert cwriter.crc32(data) == zlib.crc32(data)


@needs_cwriter
@given(st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text()))
def test_json_value_matches_json(value: Any) -> None:
    assert cwriter.json_value(value) == json.dumps(value)


@needs_cwriter
@pytest.mark.parametrize("value", [1.5, 2**64, Side.BUY, [1]], ids=repr)
def test_json_value_leaves_to_python(value: Any) -> None:
    assert cwriter.json_value(value) is None


def mixed_batch(next_ids: dict[str, int]) -> Batch:
    """Return a batch with records of every table, the cases the C writer hands back included.

    Ids start at ``next_ids``, which advances past them.
    """

    def take(table: str) -> int:
        next_ids[table] += 1
        return next_ids[table] - 1

    batch = Batch()
    tables = batch.tables
    tables["messages"] += (take("messages"), 1, SESSION, "in", "D", 3, "A1", None, 0, b"8=FIX.4.4\x01")
    tables["messages"] += (take("messages"), 2, SESSION, "out", "8", 4, "A1", "O1", 1, b"\x00\xff")
    commands = [
        ORDER,
        NewOrder(SESSION, "caf\u00e9 \"quoted\"", "AAPL", Side.SELL, OrdType.MARKET, 7, None),
        RejectOrder(ORDER, OrdRejReason.OTHER, "too big"),
        CancelOrder(SESSION, "A2", "A1", "AAPL", Side.BUY, order_id="O1"),
        MassCancel(SESSION, "M1"),
    ]
    for command in commands:
        tables["commands"] += command_record(take("commands"), 3, command)
    events = [
        EXECUTION,
        EXECUTION._replace(display_qty=10, post_only=True, text="iceberg"),
        CancelReject(SESSION, "A2", "A1", "O1", None, CxlRejResponseTo.CANCEL,
                     CxlRejReason.UNKNOWN_ORDER, "gone"),
        Trade("T1", "AAPL", 5, 2**40, Side.BUY, "O1", SESSION, "O9", "FIX.4.4:VENUE->BRK2"),
        Trade("T2", "AAPL", 5, 1, Side.SELL, "O1", SESSION, "O9", SESSION, auction=True),
    ]
    for event in events:
        tables["events"] += event_record(take("events"), 4, 1, event)
    tables["decisions"] += (take("decisions"), 5, None, SESSION, "A1", "RISK_ALL", 0, "MAX_QTY",
                            "10", "100", "no")
    tables["alerts"] += (take("alerts"), 6, "wash_trade", "1", "AAPL", SESSION, "T1",
                         {"b": 1.5, "a": "x"}, 0.9, 0.5, "LOGGED", "same owner")
    tables["alerts"] += (take("alerts"), 7, "spoofing", "2", None, None, None, '{"n":1}', 1.0, 0.5,
                         "BLOCKED", "layering")
    tables["limit_changes"] += (take("limit_changes"), 8, "ops", "AAPL", "max_order_qty", None,
                                "100", "start")
    tables["halts"] += (take("halts"), 9, "HALT", "ops", "AAPL", "news", None, "[]")
    tables["session_events"] += (take("session_events"), 10, SESSION, "LOGON", None, None, None, "")
    batch.sessions[SESSION] = (SESSION, next_ids["messages"], next_ids["commands"], 11)
    batch.rows = 18
    return batch


def through_pipe(batch: Batch) -> Batch:
    """Return the batch as the writer process receives it: enum members as their values."""
    tables, sessions = pickle.loads(dumps_batch(batch.tables, batch.sessions))
    return Batch(tables=tables, sessions=sessions, rows=batch.rows)


def write_batches(path: Path, native: bool, batches: int = 3) -> str:
    """Commit mixed batches, pickled as for the pipe, and close; return the chain head."""
    writer = BatchWriter(str(path), lambda: CLOCK_US, owner_pid=1, native=native)
    next_ids = dict(writer.open().next_ids)
    try:
        for _ in range(batches):
            writer.commit(through_pipe(mixed_batch(next_ids)))
    finally:
        writer.close()
    return writer.head_hash


def table_contents(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {
            table.name: conn.execute(f"SELECT * FROM {table.name} ORDER BY 1").fetchall()
            for table in TABLES
        }


@needs_cwriter
def test_writers_same_file(tmp_path: Path) -> None:
    python_head = write_batches(tmp_path / "python.db", native=False)
    c_head = write_batches(tmp_path / "c.db", native=True)
    assert c_head == python_head
    python_rows = table_contents(tmp_path / "python.db")
    c_rows = table_contents(tmp_path / "c.db")
    for table in TABLES:
        assert c_rows[table.name] == python_rows[table.name], table.name
    assert verify_chain(tmp_path / "c.db").ok


@needs_cwriter
def test_writers_take_turns(tmp_path: Path) -> None:
    """A file written by one writer and continued by the other verifies."""
    path = tmp_path / "audit.db"
    for native in (True, False, True):
        write_batches(path, native, batches=1)
    report = verify_chain(path)
    assert report.ok, report.problem
    assert report.batches == 6  # a clock_log row at each open, then one batch


def failing_insert(path: Path) -> Callable[[], None]:
    """Add a trigger that fails every ``halts`` insert; return a function that drops it."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("CREATE TRIGGER fail BEFORE INSERT ON halts BEGIN SELECT RAISE(ABORT, 'full'); END")

    def drop() -> None:
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
            conn.execute("DROP TRIGGER fail")

    return drop


@pytest.mark.parametrize("native", [pytest.param(True, marks=needs_cwriter), False], ids=["c", "python"])
def test_failed_commit_rolls_back(tmp_path: Path, native: bool) -> None:
    path = tmp_path / "audit.db"
    writer = BatchWriter(str(path), lambda: CLOCK_US, native=native)
    next_ids = dict(writer.open().next_ids)
    try:
        drop_trigger = failing_insert(path)
        batch = through_pipe(mixed_batch(next_ids))
        with pytest.raises(sqlite3.IntegrityError, match="full"):
            writer.commit(batch)
        assert writer.batch_no == 1  # the clock_log row of open()
        drop_trigger()
        writer.commit(batch)
        assert writer.batch_no == 2
    finally:
        writer.close()
    assert verify_chain(path).ok
    assert table_contents(path)["messages"][0][0] == 1


@pytest.mark.parametrize("native", [pytest.param(True, marks=needs_cwriter), False], ids=["c", "python"])
def test_unencodable_value_commits_nothing(tmp_path: Path, native: bool) -> None:
    path = tmp_path / "audit.db"
    writer = BatchWriter(str(path), lambda: CLOCK_US, native=native)
    writer.open()
    try:
        batch = Batch()
        batch.tables["messages"] += (1, 1, SESSION, "in", "D", 1, None, None, 0, object())
        with pytest.raises(ValueError, match="unmarshallable"):
            writer.commit(batch)
    finally:
        writer.close()
    assert table_contents(path)["messages"] == []
    assert verify_chain(path).ok


def test_environment_disables_cwriter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NO_EXTENSIONS_ENV, "1")
    assert load_cwriter() is None
    with pytest.raises(ImportError, match=NO_EXTENSIONS_ENV):
        BatchWriter("unused.db", lambda: CLOCK_US, native=True)
