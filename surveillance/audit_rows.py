"""Rows of the ``events`` and ``commands`` tables, built in the writer process.

The event loop hands each engine event and command to the audit trail as it is. The
writer process turns it into a row, the command's JSON included, off the order path.
:func:`event_fields` turns an ``events`` row back into the event's fields.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from engine.commands import COMMAND_TYPES, Command, RejectOrder, command_to_dict
from engine.events import CancelReject, Event, ExecutionEvent, Trade

__all__ = ["command_body", "command_row", "event_fields", "event_row"]

_dumps = json.JSONEncoder(separators=(",", ":")).encode

# Fields with a column of their own; anything else an event carries goes to ``extra``.
_COLUMN_FIELDS: dict[type, frozenset[str]] = {
    ExecutionEvent: frozenset({
        "exec_id", "exec_type", "ord_status", "order_id", "session_id", "cl_ord_id",
        "orig_cl_ord_id", "symbol", "side", "ord_type", "time_in_force", "price",
        "order_qty", "cum_qty", "leaves_qty", "cum_notional", "last_qty", "last_px",
        "trade_id", "ord_rej_reason", "text",
    }),
    CancelReject: frozenset({
        "session_id", "cl_ord_id", "orig_cl_ord_id", "order_id", "ord_status", "response_to",
        "reason", "text",
    }),
    Trade: frozenset({
        "trade_id", "symbol", "price", "qty", "aggressor_side", "aggressor_order_id",
        "aggressor_session_id", "resting_order_id", "resting_session_id",
    }),
}


def _extra_fields(cls: type) -> tuple[tuple[int, str, Any], ...]:
    """Return (index, name, default) of each field of ``cls`` without a column."""
    defaults = getattr(cls, "_field_defaults", {})
    return tuple(
        (index, name, defaults.get(name))
        for index, name in enumerate(cls._fields)  # type: ignore[attr-defined]
        if name not in _COLUMN_FIELDS[cls]
    )


_EXTRA_FIELDS = {cls: _extra_fields(cls) for cls in _COLUMN_FIELDS}


def _extra(event: Event) -> str | None:
    extra = {
        name: event[index]
        for index, name, default in _EXTRA_FIELDS[type(event)]
        if event[index] != default
    }
    # The engine's enums are str enums, which JSON writes as their FIX values.
    return _dumps(extra) if extra else None


def _value(member: Any) -> Any:
    return None if member is None else member._value_


def event_row(row_id: int, ts_us: int, command_seq: int, event: Event) -> tuple[Any, ...]:
    """Return the ``events`` row of one event, in schema column order."""
    # Enum members are read as ``_value_``: ``.value`` is a descriptor, several times
    # slower, and marshal (the hash chain) needs a plain str, not the str-enum member.
    kind = type(event).__name__
    e: Any = event
    if kind == "ExecutionEvent":
        return (
            row_id, ts_us, command_seq, kind, e.session_id, e.cl_ord_id, e.orig_cl_ord_id,
            e.order_id, e.exec_id, e.exec_type._value_, e.ord_status._value_, e.symbol,
            e.side._value_, e.ord_type._value_, e.time_in_force._value_, e.price, e.order_qty,
            e.last_qty, e.last_px, e.cum_qty, e.leaves_qty, e.cum_notional, e.trade_id, None,
            None, _value(e.ord_rej_reason), None, e.text, _extra(event),
        )
    if kind == "CancelReject":
        return (
            row_id, ts_us, command_seq, kind, e.session_id, e.cl_ord_id, e.orig_cl_ord_id,
            e.order_id, None, None, _value(e.ord_status), None, None, None, None, None, None,
            None, None, None, None, None, None, None, None, e.reason._value_,
            e.response_to._value_, e.text, _extra(event),
        )
    if kind == "Trade":
        return (
            row_id, ts_us, command_seq, kind, e.aggressor_session_id, None, None,
            e.aggressor_order_id, None, None, None, e.symbol, e.aggressor_side._value_, None,
            None, e.price, None, e.qty, e.price, None, None, None, e.trade_id,
            e.resting_order_id, e.resting_session_id, None, None, None, _extra(event),
        )
    raise TypeError(f"unknown event type {kind!r}; expected ExecutionEvent, CancelReject or Trade")


def event_fields(row: dict[str, Any]) -> dict[str, Any]:
    """Return the fields of the event in an ``events`` row, named as in engine.events.

    Enum fields hold their FIX values, as the row does.
    """
    kind = row["kind"]
    if kind == "ExecutionEvent":
        fields = {name: row[name] for name in _COLUMN_FIELDS[ExecutionEvent] if name in row}
        fields["ord_rej_reason"] = row["reason"]
    elif kind == "CancelReject":
        fields = {name: row[name] for name in _COLUMN_FIELDS[CancelReject]}
    elif kind == "Trade":
        fields = {
            "trade_id": row["trade_id"], "symbol": row["symbol"], "price": row["price"],
            "qty": row["last_qty"], "aggressor_side": row["side"],
            "aggressor_order_id": row["order_id"], "aggressor_session_id": row["session_id"],
            "resting_order_id": row["contra_order_id"],
            "resting_session_id": row["contra_session_id"],
        }
    else:
        raise ValueError(f"unknown event kind {kind!r} in events row {row.get('id')!r}")
    if row.get("extra"):
        fields.update(json.loads(row["extra"]))
    return fields


# Field names of each command class, so the hot path skips dataclasses.fields().
_COMMAND_FIELDS = {
    cls: tuple(field.name for field in dataclasses.fields(cls)) for cls in COMMAND_TYPES.values()
}


def command_body(command: Command) -> str:
    """Return the command as the JSON of :func:`engine.commands.command_to_dict`, faster.

    The engine's enums are str enums, which JSON writes as their values, just as
    command_to_dict does; any other value falls back to command_to_dict.
    """
    try:
        return _dumps(_command_dict(command))
    except TypeError:
        return _dumps(command_to_dict(command))


def _command_dict(command: Any) -> dict[str, Any]:
    if isinstance(command, RejectOrder):
        body = {"order": _command_dict(command.order), "reason": command.reason, "text": command.text}
    else:
        body = {name: getattr(command, name) for name in _COMMAND_FIELDS[type(command)]}
    body["type"] = type(command).__name__
    return body


def command_row(seq: int, ts_us: int, command: Command) -> tuple[Any, ...]:
    """Return the ``commands`` row of one command, in schema column order."""
    # A RejectOrder belongs to the order it wraps.
    owner = command.order if isinstance(command, RejectOrder) else command
    orig_cl_ord_id = getattr(owner, "orig_cl_ord_id", None)
    command_type = type(command).__name__
    return (
        seq, ts_us, owner.session_id, owner.cl_ord_id, orig_cl_ord_id, command_type,
        command_body(command),
    )
