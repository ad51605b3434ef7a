"""order_life and format_order_life over an audit trail written by AuditTrail."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from engine.commands import CancelOrder, MassCancel, NewOrder, ReplaceOrder
from engine.events import ExecutionEvent, Trade
from engine.orders import PRICE_SCALE, ExecType, OrdStatus, OrdType, Side, TimeInForce
from surveillance.audit import AuditTrail
from surveillance.audit_queries import (
    AuditRowKind,
    format_order_life,
    format_price,
    format_ts_us,
    order_life,
)

# Every test runs with both audit writers (tests/surveillance/conftest.py).
pytestmark = pytest.mark.usefixtures("writer")

SESSION = "FIX.4.4:VENUE->BRK1"

OTHER_SESSION = "FIX.4.4:VENUE->BRK2"
T0 = 1_340_285_400_000_000  # 2012-06-21T13:30:00Z
PRICE = 223 * PRICE_SCALE


def execution(
    cl_ord_id: str, order_id: str, exec_type: ExecType, **changes: object
) -> ExecutionEvent:
    event = ExecutionEvent(
        exec_id=f"E-{order_id}-{exec_type.name}", exec_type=exec_type, ord_status=OrdStatus.NEW,
        order_id=order_id, session_id=SESSION, cl_ord_id=cl_ord_id, orig_cl_ord_id=None,
        symbol="AAPL", side=Side.BUY, ord_type=OrdType.LIMIT, time_in_force=TimeInForce.DAY,
        price=PRICE, order_qty=100, cum_qty=0, leaves_qty=100, cum_notional=0,
    )
    return replace(event, **changes)


def fix(msg_type: str, cl_ord_id: str) -> bytes:
    return f"8=FIX.4.4\x0135={msg_type}\x0111={cl_ord_id}\x01".encode()


def record_request(
    trail: AuditTrail, ts_us: int, msg_type: str, command: NewOrder | ReplaceOrder | CancelOrder
) -> int:
    """Record an inbound request, its risk decision and its command, and return its seq."""
    trail.record_message(
        command.session_id, "in", fix(msg_type, command.cl_ord_id), msg_type=msg_type,
        msg_seq_num=ts_us % 1000, cl_ord_id=command.cl_ord_id, ts_us=ts_us,
    )
    seq = trail.record_command(command, ts_us=ts_us + 2)
    trail.record_decision(
        session_id=command.session_id, cl_ord_id=command.cl_ord_id, control="max_order_qty",
        accepted=True, reason_code="OK", limit="1000", value="100", text="",
        command_seq=seq, ts_us=ts_us + 1,
    )
    return seq


def record_report(trail: AuditTrail, ts_us: int, event: ExecutionEvent, command_seq: int) -> None:
    trail.record_event(event, command_seq=command_seq, ts_us=ts_us)
    trail.record_message(
        event.session_id, "out", fix("8", event.cl_ord_id), msg_type="8",
        msg_seq_num=ts_us % 1000, cl_ord_id=event.cl_ord_id, order_id=event.order_id,
        ts_us=ts_us + 1,
    )


async def write_replace_chain(path: Path) -> None:
    """A1 is replaced by A2, filled in part against BRK2's X1, then canceled by A3.

    B1 in the same session and an unrelated A1 in BRK2 must not show up in A1's life.
    """
    trail = AuditTrail(path)
    await trail.start()
    new = NewOrder(SESSION, "A1", "AAPL", Side.BUY, OrdType.LIMIT, 100, PRICE)
    seq = record_request(trail, T0 + 100, "D", new)
    record_report(trail, T0 + 103, execution("A1", "O1", ExecType.NEW), seq)

    other = replace(new, cl_ord_id="B1")
    seq = record_request(trail, T0 + 105, "D", other)
    record_report(trail, T0 + 108, execution("B1", "O2", ExecType.NEW), seq)

    replace_request = ReplaceOrder(SESSION, "A2", "A1", "AAPL", Side.BUY, OrdType.LIMIT, 100, PRICE)
    seq = record_request(trail, T0 + 110, "G", replace_request)
    replaced = execution("A2", "O1", ExecType.REPLACED, orig_cl_ord_id="A1")
    record_report(trail, T0 + 113, replaced, seq)

    aggressor = NewOrder(OTHER_SESSION, "X1", "AAPL", Side.SELL, OrdType.LIMIT, 40, PRICE)
    seq = record_request(trail, T0 + 120, "D", aggressor)
    fill = {"ord_status": OrdStatus.PARTIALLY_FILLED, "last_qty": 40, "last_px": PRICE}
    aggressor_fill = execution(
        "X1", "O3", ExecType.TRADE, session_id=OTHER_SESSION, side=Side.SELL, order_qty=40,
        cum_qty=40, leaves_qty=0, **fill,
    )
    record_report(trail, T0 + 123, aggressor_fill, seq)
    resting_fill = execution("A2", "O1", ExecType.TRADE, cum_qty=40, leaves_qty=60, **fill)
    record_report(trail, T0 + 125, resting_fill, seq)
    trade = Trade("T1", "AAPL", PRICE, 40, Side.SELL, "O3", OTHER_SESSION, "O1", SESSION)
    trail.record_event(trade, command_seq=seq, ts_us=T0 + 127)

    cancel = CancelOrder(SESSION, "A3", "A2", "AAPL", Side.BUY, order_id="O1")
    seq = record_request(trail, T0 + 130, "F", cancel)
    canceled = execution(
        "A3", "O1", ExecType.CANCELED, orig_cl_ord_id="A2", ord_status=OrdStatus.CANCELED
    )
    record_report(trail, T0 + 133, canceled, seq)

    unrelated = replace(new, session_id=OTHER_SESSION)
    seq = record_request(trail, T0 + 140, "D", unrelated)
    unrelated_new = execution("A1", "O4", ExecType.NEW, session_id=OTHER_SESSION)
    record_report(trail, T0 + 143, unrelated_new, seq)
    await trail.close()


A1_LIFE = [
    (AuditRowKind.IN, "A1"), (AuditRowKind.RISK, "A1"), (AuditRowKind.COMMAND, "A1"),
    (AuditRowKind.EVENT, "A1"), (AuditRowKind.OUT, "A1"),
    (AuditRowKind.IN, "A2"), (AuditRowKind.RISK, "A2"), (AuditRowKind.COMMAND, "A2"),
    (AuditRowKind.EVENT, "A2"), (AuditRowKind.OUT, "A2"),
    (AuditRowKind.EVENT, "A2"), (AuditRowKind.OUT, "A2"), (AuditRowKind.EVENT, None),
    (AuditRowKind.IN, "A3"), (AuditRowKind.RISK, "A3"), (AuditRowKind.COMMAND, "A3"),
    (AuditRowKind.EVENT, "A3"), (AuditRowKind.OUT, "A3"),
]


@pytest.fixture(scope="module")
def chain_db(tmp_path_factory: pytest.TempPathFactory, writer: str) -> Path:
    path = tmp_path_factory.mktemp("audit") / "audit.db"
    asyncio.run(write_replace_chain(path))
    return path


@pytest.mark.parametrize("cl_ord_id", ["A1", "A2", "A3"])
def test_order_life_follows_replace_chain(chain_db: Path, cl_ord_id: str) -> None:
    rows = order_life(chain_db, cl_ord_id, session_id=SESSION)
    assert [(row.kind, row.cl_ord_id) for row in rows] == A1_LIFE
    assert [row.ts_us for row in rows] == sorted(row.ts_us for row in rows)


def test_order_life_includes_resting_trade(chain_db: Path) -> None:
    rows = order_life(chain_db, "A2", session_id=SESSION)
    trades = [row for row in rows if row.summary.startswith("#4 Trade")]
    assert len(trades) == 1
    assert trades[0].session_id == OTHER_SESSION
    assert "resting=O1" in trades[0].summary


def test_order_life_merges_sessions(chain_db: Path) -> None:
    rows = order_life(chain_db, "A1")
    sessions = {row.session_id for row in rows if row.cl_ord_id == "A1"}
    assert sessions == {SESSION, OTHER_SESSION}
    assert len(rows) == len(A1_LIFE) + 5


def test_order_life_unknown_order(chain_db: Path) -> None:
    assert order_life(chain_db, "NOPE") == []


def test_format_order_life_lines(chain_db: Path) -> None:
    text = format_order_life(order_life(chain_db, "A1", session_id=SESSION))
    lines = text.splitlines()
    assert len(lines) == len(A1_LIFE)
    assert lines[0] == (
        f"2012-06-21T13:30:00.000100Z IN      {SESSION} NewOrderSingle 8=FIX.4.4|35=D|11=A1|"
    )
    assert lines[2] == (
        f"2012-06-21T13:30:00.000102Z COMMAND {SESSION} #1 NewOrder cl_ord_id=A1 symbol=AAPL"
        " side=BUY ord_type=LIMIT order_qty=100 price=223 time_in_force=DAY"
    )
    assert lines[4].startswith(f"2012-06-21T13:30:00.000104Z OUT     {SESSION} ExecutionReport ")
    assert "RISK    " in lines[1]
    assert "ACCEPT control=max_order_qty" in lines[1]
    assert "exec_type=TRADE" in lines[10]
    assert "last_qty=40 last_px=223" in lines[10]
    for line in lines:
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z ", line), line


def test_order_life_includes_mass_cancel(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"

    async def write() -> None:
        trail = AuditTrail(path)
        await trail.start()
        for index, cl_ord_id in enumerate(["C1", "C2"]):
            new = NewOrder(SESSION, cl_ord_id, "AAPL", Side.BUY, OrdType.LIMIT, 10, PRICE)
            seq = record_request(trail, T0 + 10 * index, "D", new)
            accepted = execution(cl_ord_id, f"O{index}", ExecType.NEW)
            record_report(trail, T0 + 10 * index + 3, accepted, seq)
        seq = trail.record_command(MassCancel(SESSION, "MC1"), ts_us=T0 + 50)
        for index, cl_ord_id in enumerate(["C1", "C2"]):
            canceled = execution(
                cl_ord_id, f"O{index}", ExecType.CANCELED, ord_status=OrdStatus.CANCELED
            )
            record_report(trail, T0 + 51 + 2 * index, canceled, seq)
        await trail.close()

    asyncio.run(write())
    rows = order_life(path, "C1")
    commands = [row.summary for row in rows if row.kind is AuditRowKind.COMMAND]
    assert commands == [
        "#1 NewOrder cl_ord_id=C1 symbol=AAPL side=BUY ord_type=LIMIT order_qty=10 price=223"
        " time_in_force=DAY",
        "#3 MassCancel cl_ord_id=MC1",
    ]
    assert {row.cl_ord_id for row in rows} == {"C1", "MC1"}
    assert not [row for row in rows if "O1" in row.summary]


def test_order_life_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.db"):
        order_life(tmp_path / "missing.db", "A1")
    assert not (tmp_path / "missing.db").exists()


def test_order_life_rejects_other_database(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE messages (id INTEGER)")
    with pytest.raises(ValueError, match="not an audit trail"):
        order_life(path, "A1")


@pytest.mark.parametrize(
    ("ts_us", "expected"),
    [
        (0, "1970-01-01T00:00:00.000000Z"),
        (T0 + 123_456, "2012-06-21T13:30:00.123456Z"),
        (T0 + 999_999, "2012-06-21T13:30:00.999999Z"),
    ],
)
def test_format_ts_us(ts_us: int, expected: str) -> None:
    assert format_ts_us(ts_us) == expected


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        (22_382_000_000, "223.82"),
        (100 * PRICE_SCALE, "100"),
        (1, "0.00000001"),
        (-5 * PRICE_SCALE // 10, "-0.5"),
        (None, "-"),
    ],
)
def test_format_price(price: int | None, expected: str) -> None:
    assert format_price(price) == expected
