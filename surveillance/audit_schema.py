"""The tables of the audit trail: columns, descriptions, indexes and insert statements.

One description per table and column serves three readers: ``CREATE TABLE`` (through
sqlite-utils), the Datasette metadata that ``fixgw audit datasette-metadata`` prints, and
the hash chain, which encodes each row as the tuple of its columns in the order listed here.

Every ``ts_us`` is integer microseconds since the Unix epoch, UTC, from the audit clock
(see the ``clock_log`` table), and every price is integer price units
(``engine.orders.PRICE_SCALE``).

Every index entry costs a row about 0.8 µs to write (``bench/bench_audit.py``'s machine).
So the tables written for every order (messages, commands, events, decisions) carry only
the indexes that ResendRequests and the lookups by ClOrdID (11) and OrderID (37) need.
Most are partial, so rows without the key cost nothing. NOTE: no index covers
``session_id, ts_us``, so queries of one session's activity in a time window read the
whole table. Files written before this index set keep their older, larger set.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import sqlite_utils

__all__ = ["CHAINED_TABLES", "Column", "Table", "TABLES", "create_schema", "insert_sql"]


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its name, Python type for sqlite-utils, and what it holds."""

    name: str
    type: type
    description: str
    not_null: bool = False


@dataclass(frozen=True, slots=True)
class Table:
    """One table. ``chained`` tables are append-only and covered by the batch hash chain."""

    name: str
    description: str
    columns: tuple[Column, ...]
    pk: str
    indexes: tuple[tuple[str, ...], ...] = ()
    chained: bool = True
    # (index name, columns, WHERE clause): an index of only the rows a query looks for.
    partial_indexes: tuple[tuple[str, str, str], ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


def _ts(description: str = "when it was recorded") -> Column:
    return Column("ts_us", int, f"{description}: microseconds since the Unix epoch, UTC", True)


_ID = Column("id", int, "row number, assigned in recording order", True)
_SESSION = Column("session_id", str, "FIX session ID, BeginString:SenderCompID->TargetCompID")

TABLES: tuple[Table, ...] = (
    Table(
        "messages",
        "Every FIX message received or sent, as it was on the wire.",
        (
            _ID,
            _ts("received, or sent to the socket's queue"),
            Column("session_id", str, _SESSION.description, True),
            Column("direction", str, "'in' from the counterparty, 'out' to it", True),
            Column("msg_type", str, "MsgType (35)", True),
            Column("msg_seq_num", int, "MsgSeqNum (34), NULL for a message without one"),
            Column("cl_ord_id", str, "ClOrdID (11), when the message carries one"),
            Column("order_id", str, "OrderID (37), when the message carries one"),
            Column("poss_dup", int, "1 when PossDupFlag (43) is Y", True),
            Column("raw", bytes, "the whole message, SOH separators included", True),
        ),
        "id",
        partial_indexes=(
            ("idx_messages_cl_ord_id", "cl_ord_id", "cl_ord_id IS NOT NULL"),
            # ResendRequests read the outbound messages of one session by MsgSeqNum (34).
            ("idx_messages_outbound", "session_id, msg_seq_num", "direction = 'out'"),
            # The session gaps report; ResendRequests, SequenceResets and PossDup are rare.
            ("idx_messages_resends", "session_id", "msg_type IN ('2', '4')"),
            ("idx_messages_poss_dup", "session_id", "poss_dup = 1"),
        ),
    ),
    Table(
        "commands",
        "The command journal: every request the engine processed, in engine order. "
        "Replaying it into a fresh engine rebuilds the books.",
        (
            Column("seq", int, "journal sequence number, 1, 2, ... in engine order", True),
            _ts("journaled"),
            Column("session_id", str, "the order owner's FIX session", True),
            Column("cl_ord_id", str, "ClOrdID (11) of the request", True),
            Column("orig_cl_ord_id", str, "OrigClOrdID (41) of a cancel or replace"),
            Column("type", str, "command class in engine.commands", True),
            Column("body", str, "the command as JSON (engine.commands.command_to_dict)", True),
        ),
        "seq",
        (("cl_ord_id",),),
        partial_indexes=(
            ("idx_commands_orig_cl_ord_id", "orig_cl_ord_id", "orig_cl_ord_id IS NOT NULL"),
        ),
    ),
    Table(
        "events",
        "Every event the matching engine reported: executions, cancel rejects and trades. "
        "A Trade names the aggressor in session_id, order_id and side, the resting order in "
        "contra_session_id and contra_order_id, and its quantity in last_qty.",
        (
            _ID,
            _ts(),
            Column("command_seq", int, "commands.seq of the command that produced it", True),
            Column("kind", str, "ExecutionEvent, CancelReject or Trade", True),
            Column("session_id", str, "the order's FIX session; the aggressor's for a Trade"),
            Column("cl_ord_id", str, "ClOrdID (11)"),
            Column("orig_cl_ord_id", str, "OrigClOrdID (41)"),
            Column("order_id", str, "OrderID (37); the aggressor's for a Trade"),
            Column("exec_id", str, "ExecID (17)"),
            Column("exec_type", str, "ExecType (150)"),
            Column("ord_status", str, "OrdStatus (39)"),
            Column("symbol", str, "Symbol (55)"),
            Column("side", str, "Side (54); the aggressor's for a Trade"),
            Column("ord_type", str, "OrdType (40)"),
            Column("time_in_force", str, "TimeInForce (59)"),
            Column("price", int, "Price (44) in price units; the trade price for a Trade"),
            Column("order_qty", int, "OrderQty (38)"),
            Column("last_qty", int, "LastQty (32); the traded quantity for a Trade"),
            Column("last_px", int, "LastPx (31) in price units"),
            Column("cum_qty", int, "CumQty (14)"),
            Column("leaves_qty", int, "LeavesQty (151)"),
            Column("cum_notional", int, "sum of last_px * last_qty over the order's fills"),
            Column("trade_id", str, "the venue's trade ID"),
            Column("contra_order_id", str, "for a Trade, the resting order's OrderID (37)"),
            Column("contra_session_id", str, "for a Trade, the resting order's FIX session"),
            Column("reason", str, "OrdRejReason (103) of a reject, CxlRejReason (102) of a "
                   "cancel reject"),
            Column("response_to", str, "CxlRejResponseTo (434) of a cancel reject"),
            Column("text", str, "Text (58)"),
            Column("extra", str, "JSON object of the event's other fields that differ from "
                   "their defaults, such as stop_px or display_qty; NULL when none do"),
        ),
        "id",
        partial_indexes=(
            ("idx_events_cl_ord_id", "cl_ord_id", "cl_ord_id IS NOT NULL"),
            ("idx_events_order_id", "order_id", "order_id IS NOT NULL"),
            # Only Trade rows name a contra order.
            ("idx_events_contra_order_id", "contra_order_id", "contra_order_id IS NOT NULL"),
        ),
    ),
    Table(
        "decisions",
        "Every pre-trade risk decision, with the limit in force and the value measured.",
        (
            _ID,
            _ts("decided"),
            Column("command_seq", int, "commands.seq of the command, when known"),
            Column("session_id", str, _SESSION.description, True),
            Column("cl_ord_id", str, "ClOrdID (11) of the order checked", True),
            Column("control", str, "the control that decided (RiskControl value)", True),
            Column("accepted", int, "1 accepted, 0 rejected", True),
            Column("reason_code", str, "stable reason code of the decision", True),
            Column("limit_value", str, "the limit in force, as text"),
            Column("observed_value", str, "the value the control measured, as text"),
            Column("text", str, "the reject text sent to the client"),
        ),
        "id",
        (("cl_ord_id",),),
        partial_indexes=(("idx_decisions_rejects", "ts_us", "accepted = 0"),),
    ),
    Table(
        "alerts",
        "Every surveillance alert, with the detector's version, features, score and action.",
        (
            _ID,
            _ts("raised"),
            Column("detector", str, "detector or model name", True),
            Column("version", str, "detector or model version", True),
            Column("symbol", str, "instrument"),
            Column("session_id", str, "the FIX session the alert is about"),
            Column("trade_id", str, "the trade that raised it, if any"),
            Column("features", str, "the detector's inputs as a JSON object", True),
            Column("score", float, "the detector's score", True),
            Column("threshold", float, "the score at or above which it alerts", True),
            Column("action", str, "what the venue did: LOGGED, BLOCKED, HALTED, ...", True),
            Column("text", str, "the alert in words", True),
        ),
        "id",
        (("ts_us",), ("detector", "ts_us")),
    ),
    Table(
        "limit_changes",
        "Every change of a risk limit or venue setting: who, when, old and new value, why.",
        (
            _ID,
            _ts("changed"),
            Column("actor", str, "who changed it: an operator name or 'config' at start", True),
            Column("scope", str, "what it applies to: a symbol, a session, or '*'", True),
            Column("setting", str, "the setting's name, such as max_order_qty", True),
            Column("old_value", str, "value before, NULL when first set"),
            Column("new_value", str, "value after, NULL when removed"),
            Column("reason", str, "why it changed", True),
        ),
        "id",
        (("scope", "setting", "ts_us"), ("ts_us",)),
    ),
    Table(
        "halts",
        "Every trading halt, resumption and kill switch, with the orders it canceled.",
        (
            _ID,
            _ts("started or ended"),
            Column("action", str, "HALT, RESUME, KILL_SWITCH or KILL_SWITCH_RELEASE", True),
            Column("actor", str, "who or what acted: an operator, a detector, the venue", True),
            Column("scope", str, "a symbol, a session ID, or '*' for the whole venue", True),
            Column("reason", str, "why", True),
            Column("command_seq", int, "commands.seq of the MassCancel it issued, if any"),
            Column("canceled_order_ids", str, "JSON array of the OrderIDs (37) it canceled",
                   True),
        ),
        "id",
        (("scope", "ts_us"), ("ts_us",)),
    ),
    Table(
        "session_events",
        "FIX session events the messages table does not show by itself: logons, "
        "disconnects and cancel-on-disconnect.",
        (
            _ID,
            _ts(),
            Column("session_id", str, _SESSION.description, True),
            Column("kind", str, "LOGON, LOGOUT, DISCONNECT or CANCEL_ON_DISCONNECT", True),
            Column("begin_seq_no", int, "first MsgSeqNum (34) concerned, if any"),
            Column("end_seq_no", int, "last MsgSeqNum (34) concerned, if any"),
            Column("command_seq", int, "commands.seq of a MassCancel it issued, if any"),
            Column("text", str, "details", True),
        ),
        "id",
        (("session_id", "ts_us"),),
    ),
    Table(
        "clock_log",
        "The clock every ts_us comes from, recorded at each start for clock traceability.",
        (
            _ID,
            _ts("the appliance started"),
            Column("clock", str, "the Python clock read: time.time_ns", True),
            Column("implementation", str, "the OS clock behind it (time.get_clock_info)", True),
            Column("resolution_ns", int, "the OS clock's resolution in nanoseconds", True),
            Column("granularity_us", int, "granularity of every ts_us: 1 microsecond", True),
            Column("host", str, "host name of the machine", True),
            Column("platform", str, "operating system and version", True),
            Column("pid", int, "process ID of the appliance", True),
        ),
        "id",
    ),
    Table(
        "audit_batches",
        "One row per committed batch: the row ranges it holds and its SHA-256 chain hash.",
        (
            Column("batch_no", int, "1, 2, ... in commit order", True),
            Column("committed_us", int, "when the batch was sealed, microseconds UTC", True),
            Column("row_count", int, "chained rows in the batch", True),
            Column("ranges", str, "JSON object: table name to [first id, last id]", True),
            Column("row_crcs", bytes, "CRC-32 of each encoded row, 4 bytes little-endian, "
                   "to name the first changed row", True),
            Column("prev_hash", str, "hash of the previous batch, hex", True),
            Column("hash", str, "SHA-256 of prev_hash, the header and every row, hex", True),
        ),
        "batch_no",
        chained=False,
    ),
    Table(
        "session_store",
        "The FIX session store: next sequence numbers of each session (state, not history).",
        (
            Column("session_id", str, _SESSION.description, True),
            Column("next_sender_seq_num", int, "next MsgSeqNum (34) the venue sends", True),
            Column("next_target_seq_num", int, "next MsgSeqNum (34) the venue expects", True),
            Column("creation_time_us", int, "when the sequence numbers were last reset", True),
        ),
        "session_id",
        chained=False,
    ),
    Table(
        "meta",
        "Schema version and facts about the file, set when it was created.",
        (
            Column("key", str, "name", True),
            Column("value", str, "value", True),
        ),
        "key",
        chained=False,
    ),
)

TABLE_BY_NAME: dict[str, Table] = {table.name: table for table in TABLES}

# The hash chain covers these tables in this order.
CHAINED_TABLES: tuple[Table, ...] = tuple(table for table in TABLES if table.chained)


def insert_sql(table: Table) -> str:
    """Return the INSERT statement taking every column of ``table`` in schema order."""
    names = ", ".join(table.column_names)
    marks = ", ".join("?" for _ in table.columns)
    return f"INSERT INTO {table.name} ({names}) VALUES ({marks})"


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the tables and indexes that are missing, leaving existing ones unchanged."""
    db = sqlite_utils.Database(conn, execute_plugins=False)
    for table in TABLES:
        columns = {column.name: column.type for column in table.columns}
        not_null = {column.name for column in table.columns if column.not_null}
        db.create_table(table.name, columns, pk=table.pk, not_null=not_null, if_not_exists=True)
        for index in table.indexes:
            db[table.name].create_index(list(index), if_not_exists=True)
        for name, columns, where in table.partial_indexes:
            conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table.name} ({columns}) WHERE {where}")
