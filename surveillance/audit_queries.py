"""Compliance queries over the audit trail that :class:`surveillance.audit.AuditTrail` writes.

:func:`order_life` collects everything the appliance recorded about one order: the FIX
messages in and out, the commands journaled for the engine, the risk decisions and the
engine events. :func:`format_order_life` prints them one line each, for
``fixgw audit order CLORDID --db PATH``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlite_utils

from engine.commands import command_from_dict
from engine.orders import PRICE_DECIMALS, CxlRejReason, ExecType, OrdStatus, Side
from surveillance.audit_rows import event_fields

__all__ = [
    "MSG_TYPE_NAMES",
    "AuditRow",
    "AuditRowKind",
    "decision_summary",
    "event_summary",
    "format_count",
    "format_order_life",
    "format_price",
    "format_ts_us",
    "open_audit_db",
    "order_life",
]

# MsgType (35) names of the messages the appliance sends and receives.
MSG_TYPE_NAMES: dict[str, str] = {
    "0": "Heartbeat",
    "1": "TestRequest",
    "2": "ResendRequest",
    "3": "Reject",
    "4": "SequenceReset",
    "5": "Logout",
    "8": "ExecutionReport",
    "9": "OrderCancelReject",
    "A": "Logon",
    "D": "NewOrderSingle",
    "F": "OrderCancelRequest",
    "G": "OrderCancelReplaceRequest",
    "H": "OrderStatusRequest",
    "j": "BusinessMessageReject",
    "q": "OrderMassCancelRequest",
    "r": "OrderMassCancelReport",
}

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


class AuditRowKind(str, enum.Enum):
    """The audit table that a row of an order's life comes from."""

    IN = "IN"  # a FIX message received
    OUT = "OUT"  # a FIX message sent
    RISK = "RISK"  # a pre-trade risk decision
    COMMAND = "COMMAND"  # a command journaled for the engine
    EVENT = "EVENT"  # an event the engine reported


# Rows with the same timestamp sort in order-path order: request, risk decision, command,
# engine event, reply.
_KIND_RANK = {kind: rank for rank, kind in enumerate(AuditRowKind)}


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One recorded fact about an order. ``ts_us`` is microseconds since the epoch, UTC."""

    ts_us: int
    kind: AuditRowKind
    session_id: str | None
    cl_ord_id: str | None
    summary: str
    row_id: int  # the row's key in its table: messages.id, commands.seq and so on


def order_life(
    db_path: str | os.PathLike[str], cl_ord_id: str, *, session_id: str | None = None
) -> list[AuditRow]:
    """Return every audit row of the order with ClOrdID (11) ``cl_ord_id``, in time order.

    When no order has that ClOrdID, ``cl_ord_id`` is looked up as an OrderID (37).

    The order is followed through its cancels and replaces in both directions along
    OrigClOrdID (41), within its FIX session, and through the OrderIDs (37) the engine gave
    it, which also bring in the trades where it rested. A ClOrdID is unique only per
    session, so without ``session_id`` the orders of every session that used it are merged.

    NOTE: a cancel or replace that was rejected before it became a command has no stored
    OrigClOrdID, so it is found only when its own ClOrdID is asked for.
    """
    with open_audit_db(db_path) as db:
        keys = _order_keys(db, cl_ord_id, session_id)
        if not keys:
            # Not a ClOrdID (11): try it as the OrderID (37) the venue gave the order.
            keys = _keys_of_order_id(db, cl_ord_id, session_id)
        order_ids = _order_ids(db, keys)
        events = _event_rows(db, keys, order_ids)
        rows = (
            _message_rows(db, keys)
            + _command_rows(db, keys, {event["command_seq"] for event in events})
            + _decision_rows(db, keys)
            + [_event_audit_row(event) for event in events]
        )
    return sorted(rows, key=lambda row: (row.ts_us, _KIND_RANK[row.kind], row.row_id))


def format_order_life(rows: Iterable[AuditRow]) -> str:
    """Format rows one per line: UTC time to the microsecond, kind, session and summary."""
    return "\n".join(
        f"{format_ts_us(row.ts_us)} {row.kind.value:<7} {row.session_id or '-'} {row.summary}"
        for row in rows
    )


def format_ts_us(ts_us: int) -> str:
    """Format microseconds since the epoch as ``2012-06-21T13:30:00.123456Z``."""
    # timedelta keeps whole microseconds, but a float of seconds would round them.
    moment = _EPOCH + datetime.timedelta(microseconds=ts_us)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_count(count: int, noun: str, plural: str | None = None) -> str:
    """Format a count with its noun, singular for 1: ``1 row``, ``2 rows``.

    ``plural`` defaults to ``noun`` + "s"; pass it for other nouns, such as ``batches``.
    """
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {plural if plural is not None else noun + 's'}"


def format_price(price: int | None) -> str:
    """Format integer price units as a decimal number, "-" for no price."""
    if price is None:
        return "-"
    return format(Decimal(price).scaleb(-PRICE_DECIMALS).normalize(), "f")


@contextlib.contextmanager
def open_audit_db(db_path: str | os.PathLike[str]) -> Iterator[sqlite_utils.Database]:
    """Open the audit trail on a query-only connection, closed on exit."""
    path = os.fspath(db_path)
    # sqlite3.connect would create a missing file, so check first.
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"audit trail {path!r} not found; pass the SQLite file the appliance writes to"
        )
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA query_only=ON")
        db = sqlite_utils.Database(conn, execute_plugins=False)
        tables = ("messages", "commands", "events", "decisions")
        missing = [name for name in tables if not db[name].exists()]
        if missing:
            raise ValueError(
                f"{path!r} is not an audit trail: tables {missing} are missing; pass the file "
                "the appliance writes its audit trail to"
            )
        yield db
    finally:
        conn.close()


def _order_keys(
    db: sqlite_utils.Database, cl_ord_id: str, session_id: str | None
) -> set[tuple[str, str]]:
    """Return the (session_id, cl_ord_id) pairs of the order and of its cancels and replaces."""
    seeds: set[tuple[str, str]] = set()
    for table in ("messages", "commands", "decisions", "events"):
        sql = f"SELECT DISTINCT session_id FROM {table} WHERE cl_ord_id = ?"
        for row in db.query(sql, [cl_ord_id]):
            if row["session_id"] is not None and session_id in (None, row["session_id"]):
                seeds.add((row["session_id"], cl_ord_id))

    # Walk OrigClOrdID (41) links both ways: to the order a request replaced, and to the
    # requests that later replaced or canceled it.
    keys = set(seeds)
    frontier = seeds
    while frontier:
        found: set[tuple[str, str]] = set()
        for session, key in frontier:
            sql = (
                "SELECT cl_ord_id, orig_cl_ord_id FROM commands"
                " WHERE session_id = ? AND (cl_ord_id = ? OR orig_cl_ord_id = ?)"
            )
            for row in db.query(sql, [session, key, key]):
                found.add((session, row["cl_ord_id"]))
                if row["orig_cl_ord_id"] is not None:
                    found.add((session, row["orig_cl_ord_id"]))
        frontier = found - keys
        keys |= frontier
    return keys


def _keys_of_order_id(
    db: sqlite_utils.Database, order_id: str, session_id: str | None
) -> set[tuple[str, str]]:
    sql = "SELECT DISTINCT session_id, cl_ord_id FROM events WHERE order_id = ? AND cl_ord_id IS NOT NULL"
    seeds = [
        (row["session_id"], row["cl_ord_id"]) for row in db.query(sql, [order_id])
        if session_id in (None, row["session_id"])
    ]
    keys: set[tuple[str, str]] = set()
    for session, cl_ord_id in seeds:
        keys |= _order_keys(db, cl_ord_id, session)
    return keys


def _order_ids(db: sqlite_utils.Database, keys: set[tuple[str, str]]) -> set[str]:
    sql = (
        "SELECT DISTINCT order_id FROM events WHERE session_id = ? AND cl_ord_id = ?"
        " AND kind = 'ExecutionEvent'"
    )
    return {row["order_id"] for key in keys for row in db.query(sql, list(key))}


def _select_by_keys(
    db: sqlite_utils.Database, table: str, keys: set[tuple[str, str]]
) -> dict[int, dict[str, Any]]:
    sql = f"SELECT rowid AS row_id, * FROM {table} WHERE session_id = ? AND cl_ord_id = ?"
    return {row["row_id"]: row for key in keys for row in db.query(sql, list(key))}


def _message_rows(db: sqlite_utils.Database, keys: set[tuple[str, str]]) -> list[AuditRow]:
    # Every message of the order carries a ClOrdID (11) of its chain, so the keys find
    # them all. The messages table has no OrderID (37) index, which keeps inserts cheap.
    found = _select_by_keys(db, "messages", keys)
    return [_message_audit_row(row) for row in found.values()]


def _message_audit_row(row: dict[str, Any]) -> AuditRow:
    msg_type = row["msg_type"]
    name = MSG_TYPE_NAMES.get(msg_type, f"MsgType {msg_type}")
    poss_dup = " PossDup" if row["poss_dup"] else ""
    raw = bytes(row["raw"]).decode("ascii", errors="backslashreplace").replace("\x01", "|")
    return AuditRow(
        ts_us=row["ts_us"],
        kind=AuditRowKind.IN if row["direction"] == "in" else AuditRowKind.OUT,
        session_id=row["session_id"],
        cl_ord_id=row["cl_ord_id"],
        summary=f"{name}{poss_dup} {raw}",
        row_id=row["row_id"],
    )


def _command_rows(
    db: sqlite_utils.Database, keys: set[tuple[str, str]], event_command_seqs: set[int]
) -> list[AuditRow]:
    found = _select_by_keys(db, "commands", keys)
    # A MassCancel has a ClOrdID of its own, but it belongs here when it canceled the order.
    for seq in event_command_seqs:
        sql = "SELECT rowid AS row_id, * FROM commands WHERE seq = ? AND type = 'MassCancel'"
        found.update((row["row_id"], row) for row in db.query(sql, [seq]))
    return [_command_audit_row(row) for row in found.values()]


def _command_audit_row(row: dict[str, Any]) -> AuditRow:
    command = command_from_dict(json.loads(row["body"]))
    return AuditRow(
        ts_us=row["ts_us"],
        kind=AuditRowKind.COMMAND,
        session_id=row["session_id"],
        cl_ord_id=row["cl_ord_id"],
        summary=f"#{row['seq']} {row['type']} {_format_fields(command)}",
        row_id=row["row_id"],
    )


def _format_fields(value: Any) -> str:
    """Format a command's fields as ``name=value``, leaving out the session and empty ones."""
    parts = []
    for field in dataclasses.fields(value):
        name = field.name
        field_value = getattr(value, name)
        if name == "session_id" or field_value is None or field_value == "":
            continue
        # Optional fields left at a falsy default (display_qty=0, post_only=False) add nothing.
        if not field_value and field.default is not dataclasses.MISSING:
            continue
        if name == "price":
            text = format_price(field_value)
        elif isinstance(field_value, enum.Enum):
            text = field_value.name
        elif dataclasses.is_dataclass(field_value):
            text = f"({_format_fields(field_value)})"
        else:
            text = str(field_value)
        parts.append(f"{name}={text}")
    return " ".join(parts)


def _decision_rows(db: sqlite_utils.Database, keys: set[tuple[str, str]]) -> list[AuditRow]:
    return [
        AuditRow(
            ts_us=row["ts_us"],
            kind=AuditRowKind.RISK,
            session_id=row["session_id"],
            cl_ord_id=row["cl_ord_id"],
            summary=decision_summary(row),
            row_id=row["row_id"],
        )
        for row in _select_by_keys(db, "decisions", keys).values()
    ]


def decision_summary(row: dict[str, Any]) -> str:
    """Format a ``decisions`` row as ``REJECT control=... limit=... value=... text=...``.

    Empty fields are left out: an accept compares nothing, so it has no limit or value.
    The reason code is shown only where it adds to the control and the verdict, because
    the appliance records a reject's control as its reason code and an accept as ACCEPTED.
    """
    accepted = bool(row["accepted"])
    parts = ["ACCEPT" if accepted else "REJECT", f"control={row['control']}"]
    reason_code = row["reason_code"]
    if reason_code and reason_code != row["control"] and not (accepted and reason_code == "ACCEPTED"):
        parts.append(f"reason={reason_code}")
    for name, column in (("limit", "limit_value"), ("value", "observed_value")):
        if row[column] not in (None, ""):
            parts.append(f"{name}={row[column]}")
    if row["text"]:
        parts.append(f"text={row['text']!r}")
    return " ".join(parts)


def _event_rows(
    db: sqlite_utils.Database, keys: set[tuple[str, str]], order_ids: set[str]
) -> list[dict[str, Any]]:
    found = _select_by_keys(db, "events", keys)
    for order_id in order_ids:
        sql = "SELECT rowid AS row_id, * FROM events WHERE order_id = ? OR contra_order_id = ?"
        found.update((row["row_id"], row) for row in db.query(sql, [order_id, order_id]))
    return list(found.values())


def _event_audit_row(row: dict[str, Any]) -> AuditRow:
    return AuditRow(
        ts_us=row["ts_us"],
        kind=AuditRowKind.EVENT,
        session_id=row["session_id"],
        cl_ord_id=row["cl_ord_id"],
        summary=event_summary(row),
        row_id=row["row_id"],
    )


def event_summary(row: dict[str, Any]) -> str:
    """Format an ``events`` row (all its columns) as ``#COMMAND_SEQ Kind name=value ...``.

    Enum fields print their names (``exec_type=NEW``), as :func:`order_life` shows them.
    """
    body = event_fields(row)
    kind = row["kind"]
    if kind == "ExecutionEvent":
        summary = _execution_summary(body)
    elif kind == "CancelReject":
        status = OrdStatus(body["ord_status"]).name if body["ord_status"] is not None else "-"
        summary = (
            f"CancelReject orig_cl_ord_id={body['orig_cl_ord_id']} order_id={body['order_id']}"
            f" ord_status={status} reason={CxlRejReason(body['reason']).name}"
            f" text={body['text']!r}"
        )
    elif kind == "Trade":
        summary = (
            f"Trade trade_id={body['trade_id']} {body['symbol']} qty={body['qty']}"
            f" price={format_price(body['price'])}"
            f" aggressor={body['aggressor_order_id']} ({Side(body['aggressor_side']).name})"
            f" resting={body['resting_order_id']} ({body['resting_session_id']})"
        )
    else:
        summary = f"{kind} {body}"
    return f"#{row['command_seq']} {summary}"


def _execution_summary(body: dict[str, Any]) -> str:
    summary = (
        f"ExecutionEvent exec_type={ExecType(body['exec_type']).name}"
        f" ord_status={OrdStatus(body['ord_status']).name} order_id={body['order_id']}"
        f" exec_id={body['exec_id']} {Side(body['side']).name} {body['symbol']}"
        f" order_qty={body['order_qty']} price={format_price(body['price'])}"
        f" cum_qty={body['cum_qty']} leaves_qty={body['leaves_qty']}"
    )
    if body["last_qty"]:
        summary += f" last_qty={body['last_qty']} last_px={format_price(body['last_px'])}"
    if body["text"]:
        summary += f" text={body['text']!r}"
    return summary
