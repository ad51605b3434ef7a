"""Event and command rows built in the writer process, and the null trail's interface."""

from __future__ import annotations

import asyncio
import inspect
import json
import pickle

import pytest

from engine.commands import CancelOrder, MassCancel, NewOrder, RejectOrder, ReplaceOrder, command_to_dict
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
from surveillance.audit import AuditTrail
from surveillance.audit_null import NullAuditTrail
from surveillance.audit_rows import (
    command_body,
    command_record,
    command_row,
    event_fields,
    event_record,
    event_row,
)
from surveillance.audit_writer import dumps_batch
from surveillance.audit_schema import TABLE_BY_NAME

SESSION = "FIX.4.4:VENUE->BRK1"
EXECUTION = ExecutionEvent(
    exec_id="E1", exec_type=ExecType.TRADE, ord_status=OrdStatus.PARTIALLY_FILLED,
    order_id="O1", session_id=SESSION, cl_ord_id="A1", orig_cl_ord_id=None, symbol="AAPL",
    side=Side.BUY, ord_type=OrdType.LIMIT, time_in_force=TimeInForce.DAY, price=5,
    order_qty=100, cum_qty=40, leaves_qty=60, cum_notional=200, last_qty=40, last_px=5,
    trade_id="T1",
)
EVENTS = [
    EXECUTION,
    EXECUTION._replace(display_qty=10, text="iceberg", ord_rej_reason=OrdRejReason.OTHER),
    CancelReject(SESSION, "A2", "A1", "O1", None, CxlRejResponseTo.CANCEL, CxlRejReason.UNKNOWN_ORDER, "gone"),
    Trade("T1", "AAPL", 5, 40, Side.BUY, "O1", SESSION, "O9", "FIX.4.4:VENUE->BRK2"),
]


@pytest.mark.parametrize("event", EVENTS, ids=["execution", "execution-extra", "cancel-reject", "trade"])
def test_event_row_round_trip(event: object) -> None:
    columns = TABLE_BY_NAME["events"].column_names
    row = dict(zip(columns, event_row(through_pipe(event_record(7, 11, 3, event)))))  # type: ignore[arg-type]
    assert len(row) == len(columns)
    assert (row["id"], row["ts_us"], row["command_seq"]) == (7, 11, 3)
    fields = event_fields(row)
    expected = {name: getattr(value, "value", value) for name, value in event._asdict().items()}  # type: ignore[attr-defined]
    defaults = type(event)._field_defaults  # type: ignore[attr-defined]
    for name, value in expected.items():
        default = getattr(defaults.get(name), "value", defaults.get(name))
        assert fields.get(name, default) == value, name


COMMANDS = [
    NewOrder(SESSION, "A1", "AAPL", Side.BUY, OrdType.LIMIT, 100, 5, account="T7"),
    ReplaceOrder(SESSION, "A2", "A1", "AAPL", Side.BUY, OrdType.LIMIT, 50, 5),
    CancelOrder(SESSION, "A3", "A2", "AAPL", Side.BUY, order_id="O1"),
    MassCancel(SESSION, "M1", symbol="AAPL"),
    RejectOrder(NewOrder(SESSION, "A4", "AAPL", Side.SELL, OrdType.MARKET, 1, None),
                OrdRejReason.ORDER_EXCEEDS_LIMIT, "too big"),
]
COMMAND_IDS = ["new", "replace", "cancel", "mass-cancel", "reject"]


def through_pipe(record: tuple[object, ...]) -> tuple[object, ...]:
    """Return the record as the writer process unpickles it."""
    tables, _ = pickle.loads(dumps_batch({"t": [record]}, {}))
    return tables["t"][0]  # type: ignore[no-any-return]


@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_command_body_matches_command_to_dict(command: object) -> None:
    assert json.loads(command_body(command)) == command_to_dict(command)  # type: ignore[arg-type]


@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_command_row_matches_command_to_dict(command: object) -> None:
    row = command_row(through_pipe(command_record(5, 9, command)))  # type: ignore[arg-type]
    owner = command.order if isinstance(command, RejectOrder) else command
    assert row[:6] == (
        5, 9, owner.session_id, owner.cl_ord_id, getattr(owner, "orig_cl_ord_id", None),
        type(command).__name__,
    )
    assert json.loads(row[6]) == command_to_dict(command)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("record", "fields_at"),
    [(event_record(1, 2, 3, EXECUTION), 4), (command_record(4, 5, COMMANDS[0]), 3)],
    ids=["event", "command"],
)
def test_pipe_sends_enums_as_str(record: tuple[object, ...], fields_at: int) -> None:
    """Enum members reach the writer as plain str, which the hash chain's marshal needs."""
    fields = through_pipe(record)[fields_at:]
    assert {type(value) for value in fields if isinstance(value, str)} == {str}


def test_null_trail_has_every_public_method() -> None:
    public = {name for name, _ in inspect.getmembers(AuditTrail) if not name.startswith("_")}
    missing = {name for name in public if not hasattr(NullAuditTrail, name)}
    assert missing == set()


def test_null_trail_runs_callbacks_in_order() -> None:
    calls: list[int] = []

    async def scenario() -> None:
        trail = NullAuditTrail()
        await trail.start()
        trail.save_session_state(SESSION, next_sender_seq_num=3, next_target_seq_num=2)
        for index in range(3):
            trail.after_commit(lambda index=index: calls.append(index))
        assert calls == []
        await trail.flush()
        assert trail.record_command(EXECUTION) == 1  # type: ignore[arg-type]
        state = trail.load_session_state(SESSION)
        assert state is not None and state.next_sender_seq_num == 3
        assert trail.load_outbound(SESSION, 1, 0) == []
        await trail.close()

    asyncio.run(scenario())
    assert calls == [0, 1, 2]
