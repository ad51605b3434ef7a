"""Rows of the ``events`` and ``commands`` tables, built in the writer process.

The event loop records each engine event and command as its plain field values
(:func:`event_record`, :func:`command_record`), which are cheap to keep and to pickle,
and a batch keeps each table's records end to end in one flat list (:func:`split_records`).
The writer process turns each record into a row, the command's JSON included, off the
order path. :func:`event_fields` turns an ``events`` row back into the event's fields.

The records reach the writer pickled by :func:`surveillance.audit_writer.dumps_batch`,
which sends every enum member as its plain value, so the rows built here hold only the
int, str, bytes, float and None values that the hash chain encodes.
"""

from __future__ import annotations

import dataclasses
import json
import operator
from collections.abc import Callable
from typing import Any

from engine.commands import COMMAND_TYPES, Command, RejectOrder, command_to_dict
from engine.events import CancelReject, Event, ExecutionEvent, Trade
from surveillance.audit_schema import CHAINED_TABLES

__all__ = [
    "alert_row",
    "command_body",
    "command_record",
    "command_row",
    "event_fields",
    "event_record",
    "event_row",
    "command_widths",
    "features_json",
    "native_command_layouts",
    "native_event_layouts",
    "split_records",
]

_dumps = json.JSONEncoder(separators=(",", ":")).encode

# An event record is (row_id, ts_us, command_seq, kind, *fields of the event).
_EVENT_FIELDS_AT = 4

# The source field of each ``events`` column from ``session_id`` to ``text``, per event
# class; None leaves the column NULL. ``extra`` takes every field not named here.
_EVENT_COLUMNS: dict[type, tuple[str | None, ...]] = {
    ExecutionEvent: (
        "session_id", "cl_ord_id", "orig_cl_ord_id", "order_id", "exec_id", "exec_type",
        "ord_status", "symbol", "side", "ord_type", "time_in_force", "price", "order_qty",
        "last_qty", "last_px", "cum_qty", "leaves_qty", "cum_notional", "trade_id", None,
        None, "ord_rej_reason", None, "text",
    ),
    CancelReject: (
        "session_id", "cl_ord_id", "orig_cl_ord_id", "order_id", None, None, "ord_status",
        None, None, None, None, None, None, None, None, None, None, None, None, None, None,
        "reason", "response_to", "text",
    ),
    Trade: (
        "aggressor_session_id", None, None, "aggressor_order_id", None, None, None, "symbol",
        "aggressor_side", None, None, "price", None, "qty", "price", None, None, None,
        "trade_id", "resting_order_id", "resting_session_id", None, None, None,
    ),
}

# Fields with a column of their own, as event_fields names them.
_COLUMN_FIELDS: dict[type, frozenset[str]] = {
    cls: frozenset(name for name in columns if name is not None)
    for cls, columns in _EVENT_COLUMNS.items()
}


@dataclasses.dataclass(frozen=True, slots=True)
class _EventLayout:
    """The getters that turn records of one event class into ``events`` rows."""

    columns: Callable[[tuple[Any, ...]], tuple[Any, ...]]  # record + (None,) -> columns
    extra_values: Callable[[tuple[Any, ...]], tuple[Any, ...]]  # record -> extra fields
    extra_names: tuple[str, ...]
    extra_defaults: tuple[Any, ...]
    # The record position of each column but ``extra``, None for NULL; then of each field
    # without a column. The C writer reads these (see native_event_layouts).
    sources: tuple[int | None, ...]
    extra_at: tuple[int, ...]


def _event_layout(cls: Any) -> _EventLayout:
    fields: tuple[str, ...] = cls._fields
    null = _EVENT_FIELDS_AT + len(fields)  # the None appended to the record
    at = {name: _EVENT_FIELDS_AT + index for index, name in enumerate(fields)}
    sources = (0, 1, 2, 3, *(null if name is None else at[name] for name in _EVENT_COLUMNS[cls]))
    extra = tuple(name for name in fields if name not in _COLUMN_FIELDS[cls])
    defaults = tuple(cls._field_defaults.get(name) for name in extra)
    extra_at = tuple(at[name] for name in extra)
    return _EventLayout(
        operator.itemgetter(*sources), _tuple_getter(list(extra_at)), extra, defaults,
        tuple(None if source == null else source for source in sources), extra_at,
    )


def _tuple_getter(indexes: list[int]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """Return a function picking ``indexes`` out of a tuple, always as a tuple."""
    if len(indexes) == 1:
        index = indexes[0]
        return lambda record: (record[index],)
    if not indexes:
        return lambda record: ()
    return operator.itemgetter(*indexes)


_EVENT_LAYOUTS = {cls.__name__: _event_layout(cls) for cls in _EVENT_COLUMNS}
_NULL = (None,)


def event_record(row_id: int, ts_us: int, command_seq: int, event: Event) -> tuple[Any, ...]:
    """Return what the event loop records for one event: ids, kind, then its fields."""
    return (row_id, ts_us, command_seq, type(event).__name__, *event)


def event_row(record: tuple[Any, ...]) -> tuple[Any, ...]:
    """Return the ``events`` row of one :func:`event_record`, in schema column order."""
    layout = _EVENT_LAYOUTS.get(record[3])
    if layout is None:
        raise TypeError(
            f"unknown event type {record[3]!r}; expected ExecutionEvent, CancelReject or Trade"
        )
    values = layout.extra_values(record)
    extra = None
    if values != layout.extra_defaults:
        changed = {
            name: value
            for name, value, default in zip(layout.extra_names, values, layout.extra_defaults)
            if value != default
        }
        extra = _dumps(changed)
    return (*layout.columns(record + _NULL), extra)


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
# Every command class has at least two fields, so each getter returns a tuple.
_COMMAND_VALUES = {cls: operator.attrgetter(*names) for cls, names in _COMMAND_FIELDS.items()}


def command_record(seq: int, ts_us: int, command: Command) -> tuple[Any, ...]:
    """Return what the event loop records for one command: seq, ts_us, class, then fields."""
    cls = type(command)
    return (seq, ts_us, cls, *_COMMAND_VALUES[cls](command))


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


def command_row(record: tuple[Any, ...]) -> tuple[Any, ...]:
    """Return the ``commands`` row of one :func:`command_record`, in schema column order."""
    seq, ts_us, cls = record[:3]
    values = record[3:]
    body = dict(zip(_COMMAND_FIELDS[cls], values))
    if cls is RejectOrder:
        # A RejectOrder belongs to the order it wraps.
        body["order"] = owner = _command_dict(body["order"])
    else:
        owner = body
    body["type"] = cls.__name__
    try:
        text = _dumps(body)
    except TypeError:
        text = _dumps(command_to_dict(cls(*values)))
    return (
        seq, ts_us, owner["session_id"], owner["cl_ord_id"], owner.get("orig_cl_ord_id"),
        cls.__name__, text,
    )


def features_json(features: dict[str, Any]) -> str:
    """Return the ``alerts.features`` JSON of a detector's inputs, keys sorted."""
    return json.dumps(features, sort_keys=True, separators=(",", ":"))


def alert_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """Return the ``alerts`` row with its features as JSON; the loop may send them as a dict."""
    features = row[7]
    if isinstance(features, str):
        return row
    return (*row[:7], features_json(features), *row[8:])


# Values per record in the flat lists of a batch, for the tables whose records have one
# width. Events and commands take their width from their kind or class.
_WIDTHS = {table.name: len(table.columns) for table in CHAINED_TABLES}
_EVENT_WIDTHS = {name: _EVENT_FIELDS_AT + len(cls._fields) for name, cls in (
    (cls.__name__, cls) for cls in _EVENT_COLUMNS
)}
_COMMAND_WIDTHS = {cls: 3 + len(names) for cls, names in _COMMAND_FIELDS.items()}


def split_records(table: str, values: list[Any]) -> list[tuple[Any, ...]]:
    """Return the records of ``table`` that a batch keeps end to end in one flat list.

    The event loop appends each record's values to the list rather than the record as a
    tuple: a pending tuple of many fields would be scanned by every garbage collection
    until its batch commits.
    """
    if table == "events":
        return _split_by_width(values, 3, _EVENT_WIDTHS)
    if table == "commands":
        return _split_by_width(values, 2, _COMMAND_WIDTHS)
    width = _WIDTHS[table]
    return list(zip(*[iter(values)] * width))


def _split_by_width(values: list[Any], key_at: int, widths: dict[Any, int]) -> list[tuple[Any, ...]]:
    records = []
    start = 0
    while start < len(values):
        end = start + widths[values[start + key_at]]
        records.append(tuple(values[start:end]))
        start = end
    return records


# ------------------------------------------------------------------ layouts for the C writer


def native_event_layouts() -> dict[str, tuple[Any, ...]]:
    """Return, per event kind, what ``surveillance._cwriter`` needs to build its rows.

    Each value is (record width, the record position of each column but ``extra`` or -1
    for NULL, the positions of the fields without a column, their defaults), the layout
    that :func:`event_row` applies.
    """
    return {
        name: (
            _EVENT_WIDTHS[name],
            tuple(-1 if source is None else source for source in layout.sources),
            layout.extra_at,
            layout.extra_defaults,
        )
        for name, layout in _EVENT_LAYOUTS.items()
    }


def native_command_layouts() -> dict[type, tuple[Any, ...]]:
    """Return, per command class, what ``surveillance._cwriter`` needs to build its rows.

    Each value is (record width, JSON fragments, type name, record positions of
    ``session_id``, ``cl_ord_id`` and ``orig_cl_ord_id`` or -1). The body is fragment 0,
    field 0, fragment 1, ..., the last field, the last fragment: the text that
    :func:`command_row` writes with ``separators=(",", ":")``. RejectOrder nests its order,
    so it is left to :func:`command_row`.
    """
    layouts = {}
    for cls, names in _COMMAND_FIELDS.items():
        if cls is RejectOrder:
            continue
        keys = [json.dumps(name) for name in names]
        fragments = ("{" + keys[0] + ":", *("," + key + ":" for key in keys[1:]),
                     ',"type":' + json.dumps(cls.__name__) + "}")
        at = {name: 3 + index for index, name in enumerate(names)}
        layouts[cls] = (
            _COMMAND_WIDTHS[cls], fragments, cls.__name__, at["session_id"], at["cl_ord_id"],
            at.get("orig_cl_ord_id", -1),
        )
    return layouts


def command_widths() -> dict[type, int]:
    """Return the record width of each command class: seq, ts_us, class, then its fields."""
    return dict(_COMMAND_WIDTHS)
