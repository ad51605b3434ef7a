"""Compliance reports over the audit trail, one function per compliance question.

Each function opens the file read-only and returns a :class:`Report`: a title, column
names and rows of plain values, which :func:`format_table` prints as text and
:func:`report_to_json` as JSON. Times in and out are microseconds since the Unix epoch,
UTC. A FIX session stands for a firm: the firm is the counterparty's CompID, the
TargetCompID (56) in the venue's session ID ``FIX.4.4:VENUE->FIRM``, and a trader is the
Account (1) on the order.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from surveillance.audit_queries import (
    MSG_TYPE_NAMES,
    decision_summary,
    event_summary,
    format_count,
    format_ts_us,
    open_audit_db,
)

__all__ = [
    "Report",
    "activity",
    "alerts",
    "firm_of",
    "format_table",
    "halts",
    "limit_changes",
    "order_to_trade",
    "recorded_values",
    "rejects",
    "report_to_json",
    "session_report",
]

_MAX_US = 2**63 - 1

# EndSeqNo (16) values of a ResendRequest (2) that mean "up to the last message sent":
# 0, and 999999 in FIX 4.0 and 4.1.
_TO_THE_END_SEQ_NOS = frozenset({0, 999999})


@dataclass(frozen=True, slots=True)
class Report:
    """A report's rows, each a dict with one value per column."""

    title: str
    columns: tuple[str, ...]
    rows: list[dict[str, Any]] = field(default_factory=list)


def firm_of(session_id: str | None) -> str | None:
    """Return the counterparty CompID of a session ID such as ``FIX.4.4:VENUE->BRK1``."""
    if not session_id or "->" not in session_id:
        return None
    return session_id.rsplit("->", 1)[1]


def format_table(report: Report) -> str:
    """Format a report as a title line and aligned columns, microsecond times as UTC."""
    header = list(report.columns)
    lines = [[_cell(column, row.get(column)) for column in header] for row in report.rows]
    widths = [max([len(name)] + [len(line[i]) for line in lines]) for i, name in enumerate(header)]
    out = [f"{report.title} ({format_count(len(report.rows), 'row')})"]
    out.append("  ".join(name.ljust(width) for name, width in zip(header, widths)).rstrip())
    out.append("  ".join("-" * width for width in widths))
    out.extend("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)
    return "\n".join(out)


def report_to_json(report: Report) -> str:
    """Return the report as a JSON object with ``title``, ``columns`` and ``rows``."""
    rows = [{name: _json_value(row.get(name)) for name in report.columns} for row in report.rows]
    return json.dumps({"title": report.title, "columns": report.columns, "rows": rows}, indent=1)


def _cell(column: str, value: Any) -> str:
    # An empty string is an ID the venue left empty, such as the ClOrdID (11) of a mass
    # cancel the venue made itself on a disconnect.
    if value is None or value == "":
        return "-"
    if column == "end_seq_no" and value == 0:
        # Only a ResendRequest's EndSeqNo (16) can be 0, because MsgSeqNum (34) starts at 1.
        return "0 (to the end)"
    if column.endswith("_us") and isinstance(value, int) and column != "duration_us":
        return format_ts_us(value)
    if isinstance(value, bytes):
        return value.decode("ascii", errors="backslashreplace").replace("\x01", "|")
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("ascii", errors="backslashreplace")
    return value


def _window(start_us: int | None, end_us: int | None) -> tuple[int, int]:
    return (start_us if start_us is not None else 0, end_us if end_us is not None else _MAX_US)


def _sessions(db: sqlite_utils.Database) -> list[str]:
    rows = db.query(
        "SELECT session_id FROM session_store UNION SELECT session_id FROM messages"
        " UNION SELECT session_id FROM commands UNION SELECT session_id FROM decisions"
    )
    return sorted(row["session_id"] for row in rows)


# Account (1) of a command: a NewOrder carries it, a RejectOrder in its order.
_ACCOUNT_SQL = "coalesce(json_extract(body, '$.account'), json_extract(body, '$.order.account'))"

# The SQL that lists the values a filter can match, for the filters that name one table.
_VALUES_SQL = {
    "trader": f"SELECT DISTINCT {_ACCOUNT_SQL} AS value FROM commands",
    "control": "SELECT DISTINCT control AS value FROM decisions WHERE accepted = 0",
    "scope": "SELECT DISTINCT scope AS value FROM limit_changes",
    "detector": "SELECT DISTINCT detector AS value FROM alerts",
}


def recorded_values(db_path: str | os.PathLike[str], kind: str) -> list[str]:
    """Return the values in the file that a report filter can match, sorted.

    ``kind`` is ``session`` (FIX session IDs), ``firm`` (counterparty CompIDs), ``trader``
    (Account (1) of orders), ``control`` (controls with a reject), ``scope`` (of limit
    changes) or ``detector`` (of alerts).
    """
    if kind not in _VALUES_SQL and kind not in ("session", "firm"):
        raise ValueError(
            f"unknown filter kind {kind!r}; use session, firm or one of {sorted(_VALUES_SQL)}"
        )
    with open_audit_db(db_path) as db:
        if kind in ("session", "firm"):
            sessions = _sessions(db)
            values = sessions if kind == "session" else [firm_of(s) for s in sessions]
        else:
            values = [row["value"] for row in db.query(_VALUES_SQL[kind])]
    return sorted({value for value in values if value})


# ------------------------------------------------------------------ 2. activity


def activity(
    db_path: str | os.PathLike[str],
    *,
    start_us: int | None = None,
    end_us: int | None = None,
    session_id: str | None = None,
    firm: str | None = None,
    trader: str | None = None,
) -> Report:
    """Return every message, risk decision, command and event of a session, firm or trader
    between ``start_us`` (inclusive) and ``end_us`` (exclusive), in time order."""
    start, end = _window(start_us, end_us)
    with open_audit_db(db_path) as db:
        sessions = [
            s for s in _sessions(db)
            if (session_id is None or s == session_id) and (firm is None or firm_of(s) == firm)
        ]
        orders = _trader_orders(db, trader) if trader is not None else None
        rows: list[dict[str, Any]] = []
        for session in sessions:
            rows += _session_activity(db, session, start, end)
    if orders is not None:
        rows = [row for row in rows if (row["session_id"], row["cl_ord_id"]) in orders]
    rows.sort(key=lambda row: (row["ts_us"], row["source"], row["row_id"]))
    if session_id is not None:
        subject = session_id
    elif firm is not None:
        subject = f"firm {firm}"
    elif trader is not None:
        subject = f"trader {trader}"
    else:
        subject = "all sessions"
    return Report(
        f"Activity of {subject}",
        ("ts_us", "source", "session_id", "cl_ord_id", "summary", "row_id"),
        rows,
    )


def _trader_orders(db: sqlite_utils.Database, trader: str) -> set[tuple[str, str]]:
    """Return the (session, ClOrdID) pairs of the orders with Account (1) ``trader``."""
    sql = f"SELECT session_id, cl_ord_id FROM commands WHERE {_ACCOUNT_SQL} = ?"
    keys = {(row["session_id"], row["cl_ord_id"]) for row in db.query(sql, [trader])}
    # Cancels and replaces of those orders belong to the trader too.
    chain = "SELECT session_id, cl_ord_id, orig_cl_ord_id FROM commands WHERE orig_cl_ord_id IS NOT NULL"
    links = [(row["session_id"], row["orig_cl_ord_id"], row["cl_ord_id"]) for row in db.query(chain)]
    grown = True
    while grown:
        new = {(session, child) for session, parent, child in links if (session, parent) in keys}
        grown = not new <= keys
        keys |= new
    return keys


def _session_activity(
    db: sqlite_utils.Database, session: str, start: int, end: int
) -> list[dict[str, Any]]:
    params = [session, start, end]
    where = "session_id = ? AND ts_us >= ? AND ts_us < ?"
    rows = []
    for row in db.query(f"SELECT id, ts_us, direction, msg_type, msg_seq_num, cl_ord_id, poss_dup FROM messages WHERE {where}", params):
        name = MSG_TYPE_NAMES.get(row["msg_type"], f"MsgType {row['msg_type']}")
        dup = " PossDup" if row["poss_dup"] else ""
        summary = f"{row['direction'].upper()} {name}{dup} MsgSeqNum={row['msg_seq_num']}"
        rows.append(_activity_row(row, "message", session, summary, row["id"]))
    # Decisions and events read as in `fixgw audit order`: enum names, no empty fields.
    for row in db.query(f"SELECT * FROM decisions WHERE {where}", params):
        rows.append(_activity_row(row, "decision", session, decision_summary(row), row["id"]))
    for row in db.query(f"SELECT * FROM commands WHERE {where}", params):
        rows.append(_activity_row(row, "command", session, f"#{row['seq']} {row['type']}", row["seq"]))
    for row in db.query(f"SELECT * FROM events WHERE {where}", params):
        rows.append(_activity_row(row, "event", session, event_summary(row), row["id"]))
    return rows


def _activity_row(
    row: dict[str, Any], source: str, session: str, summary: str, row_id: int
) -> dict[str, Any]:
    return {
        "ts_us": row["ts_us"], "source": source, "session_id": session,
        "cl_ord_id": row.get("cl_ord_id"), "summary": summary, "row_id": row_id,
    }


# ------------------------------------------------------------------ 3. rejects


def rejects(
    db_path: str | os.PathLike[str],
    *,
    start_us: int | None = None,
    end_us: int | None = None,
    control: str | None = None,
    summary: bool = False,
) -> Report:
    """Return every risk reject with the limit in force when it was decided, or with
    ``summary`` the count per control and limit."""
    start, end = _window(start_us, end_us)
    sql = (
        "SELECT id, ts_us, session_id, cl_ord_id, control, reason_code, limit_value,"
        " observed_value, text FROM decisions WHERE accepted = 0 AND ts_us >= ? AND ts_us < ?"
    )
    params: list[Any] = [start, end]
    if control is not None:
        sql += " AND control = ?"
        params.append(control)
    with open_audit_db(db_path) as db:
        rows = list(db.query(sql + " ORDER BY ts_us, id", params))
    # The appliance records a reject's control as its reason code too, so the reports
    # leave reason_code out; the decisions table keeps it.
    if not summary:
        columns = ("ts_us", "session_id", "cl_ord_id", "control", "limit_value",
                   "observed_value", "text")
        return Report("Risk rejects", columns, rows)
    counts = Counter((row["control"], row["limit_value"]) for row in rows)
    first: dict[tuple[str, str], int] = {}
    for row in rows:
        first.setdefault((row["control"], row["limit_value"]), row["ts_us"])
    grouped = [
        {"control": key[0], "limit_value": key[1], "rejects": count, "first_us": first[key]}
        for key, count in sorted(counts.items(), key=lambda item: (item[0][0], str(item[0][1])))
    ]
    return Report("Risk rejects by control and limit",
                  ("control", "limit_value", "rejects", "first_us"), grouped)


# ------------------------------------------------------------------ 4. limit changes


def limit_changes(
    db_path: str | os.PathLike[str],
    *,
    start_us: int | None = None,
    end_us: int | None = None,
    scope: str | None = None,
) -> Report:
    """Return every change of a limit or setting: who, when, old value, new value, why."""
    start, end = _window(start_us, end_us)
    sql = "SELECT * FROM limit_changes WHERE ts_us >= ? AND ts_us < ?"
    params: list[Any] = [start, end]
    if scope is not None:
        sql += " AND scope = ?"
        params.append(scope)
    with open_audit_db(db_path) as db:
        rows = list(db.query(sql + " ORDER BY ts_us, id", params))
    return Report("Limit and setting changes",
                  ("ts_us", "actor", "scope", "setting", "old_value", "new_value", "reason"), rows)


# ------------------------------------------------------------------ 5. halts


def halts(db_path: str | os.PathLike[str]) -> Report:
    """Return every halt and kill switch with its end, and the orders it canceled.

    A HALT ends at the next RESUME of the same scope, a KILL_SWITCH at the next
    KILL_SWITCH_RELEASE. One still in force has no end.
    """
    with open_audit_db(db_path) as db:
        records = list(db.query("SELECT * FROM halts ORDER BY ts_us, id"))
    ends = {"RESUME": "HALT", "KILL_SWITCH_RELEASE": "KILL_SWITCH"}
    open_by_scope: dict[tuple[str, str], dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for record in records:
        action = record["action"]
        if action in ends:
            started = open_by_scope.pop((ends[action], record["scope"]), None)
            if started is not None:
                started.update(end_us=record["ts_us"], ended_by=record["actor"],
                               duration_us=record["ts_us"] - started["start_us"])
            continue
        row = {
            "action": action, "scope": record["scope"], "actor": record["actor"],
            "reason": record["reason"], "start_us": record["ts_us"], "end_us": None,
            "ended_by": None, "duration_us": None,
            "canceled_order_ids": ",".join(json.loads(record["canceled_order_ids"])),
        }
        open_by_scope[(action, record["scope"])] = row
        rows.append(row)
    columns = ("action", "scope", "actor", "reason", "start_us", "end_us", "ended_by",
               "duration_us", "canceled_order_ids")
    return Report("Halts and kill switches", columns, rows)


# ------------------------------------------------------------------ 7. alerts


def alerts(
    db_path: str | os.PathLike[str],
    *,
    start_us: int | None = None,
    end_us: int | None = None,
    detector: str | None = None,
) -> Report:
    """Return every surveillance alert with detector version, features, score and action."""
    start, end = _window(start_us, end_us)
    sql = "SELECT * FROM alerts WHERE ts_us >= ? AND ts_us < ?"
    params: list[Any] = [start, end]
    if detector is not None:
        sql += " AND detector = ?"
        params.append(detector)
    with open_audit_db(db_path) as db:
        rows = list(db.query(sql + " ORDER BY ts_us, id", params))
    columns = ("ts_us", "detector", "version", "symbol", "session_id", "trade_id", "score",
               "threshold", "action", "features", "text")
    return Report("Surveillance alerts", columns, rows)


# ------------------------------------------------------------------ 8. order-to-trade


_ORDERS_PER_DAY = """
SELECT date(ts_us / 1000000, 'unixepoch') AS day, session_id,
       coalesce(json_extract(body, '$.symbol'), json_extract(body, '$.order.symbol')) AS symbol,
       type, count(*) AS n
FROM commands
WHERE type IN ('NewOrder', 'ReplaceOrder', 'CancelOrder', 'RejectOrder')
GROUP BY day, session_id, symbol, type
"""

_FILLS_PER_DAY = """
SELECT date(ts_us / 1000000, 'unixepoch') AS day, session_id, symbol, count(*) AS n
FROM events WHERE kind = 'ExecutionEvent' AND exec_type = 'F'
GROUP BY day, session_id, symbol
"""


def order_to_trade(db_path: str | os.PathLike[str], *, day: str | None = None) -> Report:
    """Return orders, trades and their ratio per firm, instrument and UTC day.

    Orders count new orders, modifications and cancels, rejected ones included, as the
    MiFID II order-to-trade ratio does; trades count the firm's fills. A firm with orders
    and no trade has no ratio.
    """
    totals: dict[tuple[str, str, str], dict[str, int]] = defaultdict(
        lambda: {"new": 0, "modified": 0, "canceled": 0, "trades": 0}
    )
    kinds = {"NewOrder": "new", "RejectOrder": "new", "ReplaceOrder": "modified",
             "CancelOrder": "canceled"}
    with open_audit_db(db_path) as db:
        for row in db.query(_ORDERS_PER_DAY):
            totals[(row["day"], firm_of(row["session_id"]) or "", row["symbol"])][kinds[row["type"]]] += row["n"]
        for row in db.query(_FILLS_PER_DAY):
            totals[(row["day"], firm_of(row["session_id"]) or "", row["symbol"])]["trades"] += row["n"]
    rows = []
    for (row_day, firm, symbol), counts in sorted(totals.items()):
        if day is not None and row_day != day:
            continue
        orders = counts["new"] + counts["modified"] + counts["canceled"]
        ratio = round(orders / counts["trades"], 2) if counts["trades"] else None
        rows.append({"day": row_day, "firm": firm, "symbol": symbol, **counts,
                     "orders": orders, "order_to_trade": ratio})
    columns = ("day", "firm", "symbol", "new", "modified", "canceled", "orders", "trades",
               "order_to_trade")
    return Report("Order-to-trade ratio per firm, instrument and day", columns, rows)


# ------------------------------------------------------------------ 9. session events


def session_report(db_path: str | os.PathLike[str], *, session_id: str | None = None) -> Report:
    """Return each session's sequence gaps, resends, PossDup messages and disconnect events.

    Gaps and resends come from the stored messages: a ResendRequest (2) the venue sent
    is a gap it detected, one it received is a resend it served, and a SequenceReset (4)
    with GapFillFlag (123) Y skipped administrative messages. Each resend has its own
    PossDup row with the range and count of the messages it sent again.
    """
    rows: list[dict[str, Any]] = []
    with open_audit_db(db_path) as db:
        sessions = [s for s in _sessions(db) if session_id is None or s == session_id]
        for session in sessions:
            rows += _resend_rows(db, session)
            rows += _poss_dup_rows(db, session)
            for event in db.query("SELECT * FROM session_events WHERE session_id = ?", [session]):
                rows.append({
                    "ts_us": event["ts_us"], "session_id": session, "event": event["kind"],
                    "begin_seq_no": event["begin_seq_no"], "end_seq_no": event["end_seq_no"],
                    "detail": event["text"],
                })
    rows.sort(key=lambda row: (row["session_id"], row["ts_us"]))
    columns = ("ts_us", "session_id", "event", "begin_seq_no", "end_seq_no", "detail")
    return Report("Session gaps, resends, PossDup messages and disconnects", columns, rows)


def _resend_rows(db: sqlite_utils.Database, session: str) -> list[dict[str, Any]]:
    sql = ("SELECT ts_us, direction, msg_type, msg_seq_num, raw FROM messages"
           " WHERE session_id = ? AND msg_type IN ('2', '4') ORDER BY id")
    rows = []
    for row in db.query(sql, [session]):
        fields = _fields(row["raw"])
        if row["msg_type"] == "2":
            event = "GAP_DETECTED" if row["direction"] == "out" else "RESEND_REQUESTED"
            begin, end = fields.get("7"), fields.get("16")
        elif fields.get("123") == "Y":
            event = "GAP_FILL_SENT" if row["direction"] == "out" else "GAP_FILL_RECEIVED"
            begin, end = row["msg_seq_num"], _int(fields.get("36"))
            end = end - 1 if end is not None else None
        else:
            event = "SEQUENCE_RESET_" + ("SENT" if row["direction"] == "out" else "RECEIVED")
            begin, end = row["msg_seq_num"], fields.get("36")
        rows.append({"ts_us": row["ts_us"], "session_id": session, "event": event,
                     "begin_seq_no": _int(begin), "end_seq_no": _int(end), "detail": ""})
    return rows


@dataclass(slots=True)
class _Resend:
    """The messages of one resend, sent for one ResendRequest (2), gap fills included.

    ``begin_seq_no`` and ``end_seq_no`` are the request's range, None where it is unknown
    or open-ended. ``request_seq_num`` is the request's MsgSeqNum (34), None when the
    audit trail has no request for these messages.
    """

    direction: str
    request_seq_num: int | None
    begin_seq_no: int | None
    end_seq_no: int | None
    last_seq_num: int = 0  # the last MsgSeqNum (34) of the resend, gap fills included
    first_us: int | None = None
    low: int | None = None
    high: int | None = None
    poss_dup_count: int = 0

    def covers(self, msg_seq_num: int) -> bool:
        """Return whether the request's range includes ``msg_seq_num``."""
        if self.begin_seq_no is not None and msg_seq_num < self.begin_seq_no:
            return False
        return self.end_seq_no is None or msg_seq_num <= self.end_seq_no

    def add(self, row: dict[str, Any]) -> None:
        """Add one message of the resend. Gap fills move last_seq_num but are not counted."""
        msg_seq_num = row["msg_seq_num"]
        self.last_seq_num = msg_seq_num
        if row["msg_type"] == "4":
            return
        if self.first_us is None:
            self.first_us = row["ts_us"]
        self.low = msg_seq_num if self.low is None else min(self.low, msg_seq_num)
        self.high = msg_seq_num if self.high is None else max(self.high, msg_seq_num)
        self.poss_dup_count += 1


def _poss_dup_rows(db: sqlite_utils.Database, session: str) -> list[dict[str, Any]]:
    """Return one POSS_DUP_SENT or POSS_DUP_RECEIVED row per resend, in time order.

    A resend serves the oldest waiting ResendRequest (2) from the other side whose range
    includes its first MsgSeqNum (34), and runs while MsgSeqNum rises within that range. A
    new ResendRequest ends the resend in progress, so a request answered twice gives two
    rows. Requests whose range includes no resent message are skipped as unanswered.
    """
    sql = ("SELECT ts_us, direction, msg_type, msg_seq_num, poss_dup, raw FROM messages"
           " WHERE session_id = ? AND (msg_type = '2' OR poss_dup = 1) ORDER BY id")
    # Keyed by the direction of the resend: "out" serves the requests received.
    waiting: dict[str, deque[_Resend]] = {"in": deque(), "out": deque()}
    current: dict[str, _Resend | None] = {"in": None, "out": None}
    resends: list[_Resend] = []
    for row in db.query(sql, [session]):
        if row["msg_type"] == "2":
            answer_direction = "out" if row["direction"] == "in" else "in"
            waiting[answer_direction].append(_requested_resend(row, answer_direction))
            current[answer_direction] = None
            continue
        direction, msg_seq_num = row["direction"], row["msg_seq_num"]
        if msg_seq_num is None:
            continue
        resend = current[direction]
        if resend is None or msg_seq_num <= resend.last_seq_num or not resend.covers(msg_seq_num):
            resend = _next_resend(waiting[direction], direction, msg_seq_num)
            current[direction] = resend
            resends.append(resend)
        resend.add(row)
    return [_poss_dup_row(session, resend) for resend in resends if resend.poss_dup_count]


def _requested_resend(row: dict[str, Any], answer_direction: str) -> _Resend:
    fields = _fields(row["raw"])
    begin_seq_no, end_seq_no = _int(fields.get("7")), _int(fields.get("16"))
    if end_seq_no in _TO_THE_END_SEQ_NOS:
        end_seq_no = None
    return _Resend(answer_direction, row["msg_seq_num"], begin_seq_no, end_seq_no)


def _next_resend(waiting: deque[_Resend], direction: str, msg_seq_num: int) -> _Resend:
    """Return the oldest waiting request that ``msg_seq_num`` answers, dropping older ones."""
    while waiting:
        resend = waiting.popleft()
        if resend.covers(msg_seq_num):
            return resend
    return _Resend(direction, None, None, None)


def _poss_dup_row(session: str, resend: _Resend) -> dict[str, Any]:
    detail = f"{format_count(resend.poss_dup_count, 'message')} with PossDupFlag (43) Y"
    if resend.request_seq_num is not None:
        detail += f" for the ResendRequest (2) with MsgSeqNum (34) {resend.request_seq_num}"
    else:
        detail += ", no ResendRequest (2) for them in this audit trail"
    return {
        "ts_us": resend.first_us, "session_id": session,
        "event": "POSS_DUP_" + ("SENT" if resend.direction == "out" else "RECEIVED"),
        "begin_seq_no": resend.low, "end_seq_no": resend.high, "detail": detail,
    }


def _fields(raw: bytes) -> dict[str, str]:
    pairs = bytes(raw).decode("ascii", errors="replace").split("\x01")
    return dict(pair.split("=", 1) for pair in pairs if "=" in pair)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
