"""The audit trail: one SQLite file with every FIX message, command, event and risk decision.

Compliance queries read it (see :mod:`surveillance.audit_queries`), the FIX session layer
keeps its sequence numbers in it (``session_store``) and serves ResendRequests from its
outbound messages, and restart recovery replays its command journal into a fresh engine.

Writes are group commits. ``record_*`` calls only append a row to the pending batch in
memory. A committer task hands the whole batch to one writer thread, which inserts it with
``executemany`` inside one transaction, while new rows collect in the next batch. Under load
batches grow, and at low load a row waits for about one commit. A caller that must not act
before its rows are durable, such as sending an outbound message to the socket, registers
:meth:`AuditTrail.after_commit`.

Timestamps are integer microseconds since the Unix epoch, UTC, all from :meth:`AuditTrail.now_us`.
Prices are integer price units (``engine.orders.PRICE_SCALE``).

NOTE: the file runs in WAL mode with ``synchronous=NORMAL``. A committed batch survives a
crash of the process, but a power loss or OS crash can roll back the last few commits.
``PRAGMA synchronous=FULL`` would close that gap at the cost of one fsync per commit.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import enum
import json
import logging
import os
import platform
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from engine.commands import Command, RejectOrder, command_from_dict, command_to_dict
from engine.events import CancelReject, Event, ExecutionEvent, Trade

__all__ = ["AuditTrail", "AuditTrailError", "SessionState", "SCHEMA_VERSION"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = "1"
DEFAULT_MAX_BATCH_ROWS = 5000

_DIRECTIONS = frozenset({"in", "out"})
_CLOCK = "time.time_ns"


class AuditTrailError(Exception):
    """The audit trail could not open its SQLite file or commit a batch to it."""


@dataclass(frozen=True, slots=True)
class SessionState:
    """The stored state of one FIX session.

    ``creation_time_us`` is when the sequence numbers were last reset to 1. Outbound
    messages stored before it belong to an earlier sequence and are never resent.
    """

    session_id: str
    next_sender_seq_num: int
    next_target_seq_num: int
    creation_time_us: int


class _State(enum.Enum):
    NEW = "new"  # constructed, start() not yet called
    OPEN = "open"  # recording and committing
    CLOSING = "closing"  # close() is flushing, records still accepted
    CLOSED = "closed"  # connection closed, every call except close() raises


@dataclass(slots=True, eq=False)
class _Batch:
    """Rows waiting for one transaction, and the callbacks to run once it commits.

    Rows are parameter tuples in the column order of the ``_INSERT_*`` statements.
    ``sessions`` contains one upsert per FIX session, so a later save replaces an earlier one.
    """

    messages: list[tuple[Any, ...]] = field(default_factory=list)
    commands: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    decisions: list[tuple[Any, ...]] = field(default_factory=list)
    sessions: dict[str, tuple[str, int, int, int]] = field(default_factory=dict)
    callbacks: list[Callable[[], None]] = field(default_factory=list)
    rows: int = 0


# Column types for sqlite-utils. Every ts_us is integer microseconds since the Unix epoch,
# UTC, and every price integer price units.
_TABLES: dict[str, tuple[dict[str, type], str]] = {
    "meta": ({"key": str, "value": str}, "key"),
    "messages": (
        {
            "id": int,
            "ts_us": int,
            "session_id": str,
            "direction": str,  # "in" from the counterparty, "out" to it
            "msg_type": str,  # MsgType (35)
            "msg_seq_num": int,  # MsgSeqNum (34), NULL for a garbled message
            "cl_ord_id": str,
            "order_id": str,
            "poss_dup": int,  # 1 when PossDupFlag (43) is Y
            "raw": bytes,  # the message as sent or received, SOH separators included
        },
        "id",
    ),
    "commands": (
        {
            "seq": int,  # journal sequence number, 1, 2, ... in engine order
            "ts_us": int,
            "session_id": str,
            "cl_ord_id": str,
            "orig_cl_ord_id": str,
            "type": str,  # class name in engine.commands
            "body": str,  # JSON from engine.commands.command_to_dict
        },
        "seq",
    ),
    "events": (
        {
            "id": int,
            "ts_us": int,
            "command_seq": int,  # the command that produced the event
            "kind": str,  # class name in engine.events
            "session_id": str,  # for a Trade, the aggressor's session
            "cl_ord_id": str,
            "orig_cl_ord_id": str,
            "order_id": str,  # for a Trade, the aggressor's order
            "exec_id": str,
            "exec_type": str,  # ExecType (150)
            "ord_status": str,  # OrdStatus (39)
            "symbol": str,
            "side": str,  # Side (54), the aggressor's side for a Trade
            "price": int,
            "last_qty": int,
            "last_px": int,
            "cum_qty": int,
            "leaves_qty": int,
            "trade_id": str,
            "contra_order_id": str,  # for a Trade, the resting order
            "body": str,  # JSON of every field of the event
        },
        "id",
    ),
    "decisions": (
        {
            "id": int,
            "ts_us": int,
            "command_seq": int,
            "session_id": str,
            "cl_ord_id": str,
            "control": str,  # which risk control decided
            "accepted": int,  # 1 accepted, 0 rejected
            "reason_code": str,
            "limit_value": str,  # the limit in force, as text
            "observed_value": str,  # the value the control measured, as text
            "text": str,
        },
        "id",
    ),
    "session_store": (
        {
            "session_id": str,
            "next_sender_seq_num": int,
            "next_target_seq_num": int,
            "creation_time_us": int,
        },
        "session_id",
    ),
}

_NOT_NULL: dict[str, set[str]] = {
    "meta": {"key", "value"},
    "messages": {"ts_us", "session_id", "direction", "msg_type", "poss_dup", "raw"},
    "commands": {"ts_us", "session_id", "cl_ord_id", "type", "body"},
    "events": {"ts_us", "command_seq", "kind", "body"},
    "decisions": {"ts_us", "session_id", "cl_ord_id", "control", "accepted", "reason_code"},
    "session_store": {"next_sender_seq_num", "next_target_seq_num", "creation_time_us"},
}

_INDEXES: list[tuple[str, list[str]]] = [
    ("messages", ["cl_ord_id"]),
    ("messages", ["order_id"]),
    ("messages", ["session_id", "ts_us"]),
    ("messages", ["session_id", "direction", "msg_seq_num"]),
    ("commands", ["cl_ord_id"]),
    ("commands", ["orig_cl_ord_id"]),
    ("commands", ["session_id", "ts_us"]),
    ("events", ["cl_ord_id"]),
    ("events", ["order_id"]),
    ("events", ["contra_order_id"]),
    ("events", ["command_seq"]),
    ("events", ["session_id", "ts_us"]),
    ("decisions", ["cl_ord_id"]),
    ("decisions", ["session_id", "ts_us"]),
]

_INSERT_MESSAGE = (
    "INSERT INTO messages (ts_us, session_id, direction, msg_type, msg_seq_num, cl_ord_id,"
    " order_id, poss_dup, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_COMMAND = (
    "INSERT INTO commands (seq, ts_us, session_id, cl_ord_id, orig_cl_ord_id, type, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_EVENT = (
    "INSERT INTO events (ts_us, command_seq, kind, session_id, cl_ord_id, orig_cl_ord_id,"
    " order_id, exec_id, exec_type, ord_status, symbol, side, price, last_qty, last_px,"
    " cum_qty, leaves_qty, trade_id, contra_order_id, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_DECISION = (
    "INSERT INTO decisions (ts_us, command_seq, session_id, cl_ord_id, control, accepted,"
    " reason_code, limit_value, observed_value, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_SESSION = (
    "INSERT INTO session_store (session_id, next_sender_seq_num, next_target_seq_num,"
    " creation_time_us) VALUES (?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET"
    " next_sender_seq_num = excluded.next_sender_seq_num,"
    " next_target_seq_num = excluded.next_target_seq_num,"
    " creation_time_us = excluded.creation_time_us"
)

# The latest copy of each outbound MsgSeqNum in a range: a resent message is stored again
# with PossDupFlag (43) Y, and the newest copy is what the counterparty last saw.
_SELECT_OUTBOUND = (
    "SELECT m.msg_seq_num, m.raw FROM messages AS m JOIN ("
    " SELECT msg_seq_num, max(id) AS id FROM messages"
    " WHERE session_id = ? AND direction = 'out' AND msg_seq_num BETWEEN ? AND ?"
    " AND ts_us >= ? GROUP BY msg_seq_num"
    ") AS latest ON m.id = latest.id ORDER BY m.msg_seq_num"
)


@dataclass(frozen=True, slots=True)
class _StoredState:
    """State that :meth:`_Writer.open` reads back from an existing file."""

    last_command_seq: int
    sessions: dict[str, SessionState]


class _Writer:
    """The SQLite connection that writes. Every method runs in the single writer thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    def open(self) -> _StoredState:
        # isolation_level=None leaves BEGIN and COMMIT to commit(), one pair per batch.
        conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn = conn
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise AuditTrailError(
                f"cannot switch {self.path!r} to WAL journal mode (SQLite kept {mode!r}); "
                "compliance queries must read while the gateway writes, so put the file "
                "on a local filesystem"
            )
        conn.execute("PRAGMA synchronous=NORMAL")
        _create_schema(conn)
        _record_meta(conn, self.path)
        return _read_stored_state(conn)

    def commit(self, batch: _Batch) -> None:
        conn = self._connection()
        conn.execute("BEGIN")
        try:
            conn.executemany(_INSERT_MESSAGE, batch.messages)
            conn.executemany(_INSERT_COMMAND, batch.commands)
            conn.executemany(_INSERT_EVENT, batch.events)
            conn.executemany(_INSERT_DECISION, batch.decisions)
            conn.executemany(_UPSERT_SESSION, batch.sessions.values())
            conn.execute("COMMIT")
        except BaseException:
            # SQLite rolls back by itself after some errors (SQLITE_FULL among them).
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _connection(self) -> sqlite3.Connection:
        if self.conn is None:
            raise RuntimeError(f"audit trail {self.path!r} is not open")
        return self.conn


def _create_schema(conn: sqlite3.Connection) -> None:
    """Create the tables and indexes that are missing, leaving existing ones unchanged."""
    db = sqlite_utils.Database(conn, execute_plugins=False)
    for name, (columns, pk) in _TABLES.items():
        db.create_table(name, columns, pk=pk, not_null=_NOT_NULL[name], if_not_exists=True)
    for table, columns in _INDEXES:
        db[table].create_index(columns, if_not_exists=True)


def _record_meta(conn: sqlite3.Connection, path: str) -> None:
    """Record the schema version and the clock once, and check the version on every start."""
    platform_name = platform.platform()
    rows = [
        ("schema_version", SCHEMA_VERSION),
        ("clock", _CLOCK),
        ("clock_platform", platform_name),
        ("created_us", str(AuditTrail.now_us())),
    ]
    conn.executemany("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", rows)
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if meta["schema_version"] != SCHEMA_VERSION:
        raise AuditTrailError(
            f"{path!r} has audit schema version {meta['schema_version']!r}, expected "
            f"{SCHEMA_VERSION!r}; open it with the fixgw release that wrote it"
        )


def _read_stored_state(conn: sqlite3.Connection) -> _StoredState:
    last_seq = conn.execute("SELECT coalesce(max(seq), 0) FROM commands").fetchone()[0]
    sessions = {
        row[0]: SessionState(*row)
        for row in conn.execute(
            "SELECT session_id, next_sender_seq_num, next_target_seq_num, creation_time_us"
            " FROM session_store"
        )
    }
    return _StoredState(last_command_seq=last_seq, sessions=sessions)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _event_body(event: Event) -> str:
    body = {f.name: _plain(getattr(event, f.name)) for f in dataclasses.fields(event)}
    body["type"] = type(event).__name__
    return json.dumps(body, separators=(",", ":"))


def _event_row(event: Event, command_seq: int, ts_us: int) -> tuple[Any, ...]:
    """Return the ``events`` parameters of one event, in ``_INSERT_EVENT`` order."""
    kind = type(event).__name__
    body = _event_body(event)
    if isinstance(event, ExecutionEvent):
        return (
            ts_us, command_seq, kind, event.session_id, event.cl_ord_id,
            event.orig_cl_ord_id, event.order_id, event.exec_id, event.exec_type.value,
            event.ord_status.value, event.symbol, event.side.value, event.price,
            event.last_qty, event.last_px, event.cum_qty, event.leaves_qty, event.trade_id,
            None, body,
        )
    if isinstance(event, CancelReject):
        ord_status = event.ord_status.value if event.ord_status is not None else None
        return (
            ts_us, command_seq, kind, event.session_id, event.cl_ord_id,
            event.orig_cl_ord_id, event.order_id, None, None, ord_status, None, None, None,
            None, None, None, None, None, None, body,
        )
    if isinstance(event, Trade):
        return (
            ts_us, command_seq, kind, event.aggressor_session_id, None, None,
            event.aggressor_order_id, None, None, None, event.symbol,
            event.aggressor_side.value, event.price, event.qty, event.price, None, None,
            event.trade_id, event.resting_order_id, body,
        )
    raise TypeError(f"unknown event type {kind!r}; expected ExecutionEvent, CancelReject or Trade")


def _command_row(command: Command, seq: int, ts_us: int) -> tuple[Any, ...]:
    """Return the ``commands`` parameters of one command, in ``_INSERT_COMMAND`` order."""
    # A RejectOrder belongs to the order it wraps.
    owner = command.order if isinstance(command, RejectOrder) else command
    body = json.dumps(command_to_dict(command), separators=(",", ":"))
    orig_cl_ord_id = getattr(owner, "orig_cl_ord_id", None)
    command_type = type(command).__name__
    return (seq, ts_us, owner.session_id, owner.cl_ord_id, orig_cl_ord_id, command_type, body)


def _connect_reader(path: str) -> sqlite3.Connection:
    """Open the read-only connection of the loop thread.

    In WAL mode it reads only committed rows and never blocks the writer.
    """
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA query_only=ON")
    return conn


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


# SQLite's largest INTEGER, the upper bound of an open-ended resend range.
_MAX_SEQ_NUM = 2**63 - 1


class AuditTrail:
    """The audit trail, command journal and FIX session store in one SQLite file.

    Call :meth:`start` on the event loop before anything else and :meth:`close` at the end.
    Every other method must be called from the loop's thread. Recording never blocks: it
    appends to the pending batch, and :meth:`after_commit` or :meth:`flush` tell the
    caller when the rows are in the file.

    When a commit fails, ``failed`` holds the error, the rows stay in memory and their
    callbacks wait. The committer retries the next time it is woken (by the first row of a
    new batch, by :meth:`after_commit` or by :meth:`flush`), and ``failed`` returns to None
    once a commit succeeds.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS
    ) -> None:
        self.path = os.fspath(path)
        if self.path in ("", ":memory:"):
            raise ValueError(
                f"the audit trail needs a file path, got {self.path!r}; an in-memory database "
                "cannot be read by compliance queries or survive a restart"
            )
        if max_batch_rows < 1:
            raise ValueError(f"max_batch_rows must be at least 1, got {max_batch_rows!r}")
        self.max_batch_rows = max_batch_rows
        self.failed: Exception | None = None

        self._state = _State.NEW
        self._batches: collections.deque[_Batch] = collections.deque([_Batch()])
        self._in_flight: _Batch | None = None
        self._wake = asyncio.Event()
        self._flush_waiters: set[asyncio.Future[None]] = set()
        self._failed_attempts = 0
        self._committed_batches = 0
        self._committed_rows = 0

        self._writer = _Writer(self.path)
        self._executor: ThreadPoolExecutor | None = None
        self._reader: sqlite3.Connection | None = None
        self._committer: asyncio.Task[None] | None = None
        self._sessions: dict[str, SessionState] = {}
        self._next_command_seq = 1

    @staticmethod
    def now_us() -> int:
        """Return the audit clock: microseconds since the Unix epoch, UTC."""
        return time.time_ns() // 1000

    @property
    def pending_rows(self) -> int:
        """Rows recorded but not yet committed, the batch being committed included."""
        in_flight = self._in_flight.rows if self._in_flight is not None else 0
        return in_flight + sum(batch.rows for batch in self._batches)

    @property
    def committed_batches(self) -> int:
        """Transactions committed since :meth:`start`."""
        return self._committed_batches

    @property
    def committed_rows(self) -> int:
        """Rows committed since :meth:`start`; a session upsert counts as one row."""
        return self._committed_rows

    async def start(self) -> None:
        """Open the file in the writer thread, create the schema and start the committer."""
        if self._state is not _State.NEW:
            raise RuntimeError(
                f"audit trail {self.path!r} is {self._state.value}; create a new AuditTrail "
                "to open the file again"
            )
        loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-writer")
        try:
            stored = await loop.run_in_executor(self._executor, self._writer.open)
            self._reader = _connect_reader(self.path)
        except BaseException as exc:
            await self._shut_down_connections()
            if isinstance(exc, sqlite3.Error):
                raise AuditTrailError(
                    f"cannot open audit trail {self.path!r}: {exc}; check that its folder "
                    "exists and is writable"
                ) from exc
            raise

        self._sessions = dict(stored.sessions)
        self._next_command_seq = stored.last_command_seq + 1
        self._committer = loop.create_task(self._run_committer(), name=f"audit {self.path}")
        self._committer.add_done_callback(self._on_committer_done)
        self._state = _State.OPEN
        logger.info(
            "audit trail %s opened: %d commands journaled, %d FIX sessions stored",
            self.path,
            stored.last_command_seq,
            len(self._sessions),
        )

    async def close(self) -> None:
        """Commit everything pending, run its callbacks and close the file.

        Raises :class:`AuditTrailError` if the last commit fails. The file is closed anyway,
        so the rows that were not written are lost.
        """
        if self._state is _State.CLOSED:
            return
        if self._state is _State.NEW:
            self._state = _State.CLOSED
            return
        self._state = _State.CLOSING
        try:
            await self.flush()
        except AuditTrailError:
            logger.error(
                "audit trail %s: closing with %d rows not written", self.path, self.pending_rows
            )
            raise
        finally:
            await self._stop()

    async def flush(self) -> None:
        """Commit everything recorded so far and wait until it is in the file.

        Raises :class:`AuditTrailError` if a commit fails before that point.
        """
        self._require_running()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flush_waiters.add(waiter)
        self.after_commit(lambda: _resolve(waiter))
        try:
            await waiter
        finally:
            self._flush_waiters.discard(waiter)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop once everything recorded before this call is committed.

        Callbacks run in registration order. An exception from one is logged and the next
        one still runs. While commits fail, no callback runs.
        """
        self._require_running()
        self._batches[-1].callbacks.append(callback)
        self._wake.set()

    def record_message(
        self,
        session_id: str,
        direction: str,
        raw: bytes,
        *,
        msg_type: str,
        msg_seq_num: int | None,
        cl_ord_id: str | None = None,
        order_id: str | None = None,
        poss_dup: bool = False,
        ts_us: int | None = None,
    ) -> None:
        """Record one FIX message, ``direction`` "in" (received) or "out" (sent).

        An outbound message serves later ResendRequests, so the caller must write it to
        the socket only from an :meth:`after_commit` callback.
        """
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be 'in' or 'out', got {direction!r}")
        if ts_us is None:
            ts_us = time.time_ns() // 1000
        row = (
            ts_us, session_id, direction, msg_type, msg_seq_num, cl_ord_id, order_id,
            int(poss_dup), raw,
        )
        batch = self._open_batch()
        batch.messages.append(row)
        batch.rows += 1

    def record_command(self, command: Command, *, ts_us: int | None = None) -> int:
        """Journal one command and return its journal sequence number.

        Numbers run 1, 2, ... in the order of the calls and continue after a restart.
        """
        if ts_us is None:
            ts_us = time.time_ns() // 1000
        seq = self._next_command_seq
        row = _command_row(command, seq, ts_us)
        batch = self._open_batch()
        batch.commands.append(row)
        batch.rows += 1
        self._next_command_seq = seq + 1
        return seq

    def record_decision(
        self,
        *,
        session_id: str,
        cl_ord_id: str,
        control: str,
        accepted: bool,
        reason_code: str,
        limit: str,
        value: str,
        text: str,
        command_seq: int | None,
        ts_us: int | None = None,
    ) -> None:
        """Record one risk decision with the limit in force and the value it measured."""
        if ts_us is None:
            ts_us = time.time_ns() // 1000
        row = (
            ts_us, command_seq, session_id, cl_ord_id, control, int(accepted), reason_code,
            limit, value, text,
        )
        batch = self._open_batch()
        batch.decisions.append(row)
        batch.rows += 1

    def record_event(self, event: Event, *, command_seq: int, ts_us: int | None = None) -> None:
        """Record one engine event produced by the command journaled as ``command_seq``."""
        if ts_us is None:
            ts_us = time.time_ns() // 1000
        row = _event_row(event, command_seq, ts_us)
        batch = self._open_batch()
        batch.events.append(row)
        batch.rows += 1

    def save_session_state(
        self,
        session_id: str,
        *,
        next_sender_seq_num: int,
        next_target_seq_num: int,
        creation_time_us: int | None = None,
    ) -> None:
        """Store the next MsgSeqNum (34) in each direction of a FIX session.

        The upsert commits in the pending batch, atomically with the messages recorded
        beside it. Pass ``creation_time_us`` on a sequence reset. None keeps the stored
        creation time, or uses now for a new session, so save a new session's state before
        recording its first outbound message: older messages are never resent.
        """
        if next_sender_seq_num < 1 or next_target_seq_num < 1:
            raise ValueError(
                f"MsgSeqNum (34) starts at 1, got next_sender_seq_num={next_sender_seq_num!r} "
                f"and next_target_seq_num={next_target_seq_num!r} for session {session_id!r}"
            )
        if creation_time_us is None:
            stored = self._sessions.get(session_id)
            creation_time_us = stored.creation_time_us if stored is not None else self.now_us()
        batch = self._open_batch()
        if session_id not in batch.sessions:
            batch.rows += 1
        batch.sessions[session_id] = (
            session_id, next_sender_seq_num, next_target_seq_num, creation_time_us
        )
        self._sessions[session_id] = SessionState(
            session_id, next_sender_seq_num, next_target_seq_num, creation_time_us
        )

    def load_session_state(self, session_id: str) -> SessionState | None:
        """Return the latest saved state of a FIX session, committed or not, or None."""
        self._require_running()
        return self._sessions.get(session_id)

    def load_outbound(
        self, session_id: str, begin_seq_no: int, end_seq_no: int
    ) -> list[tuple[int, bytes]]:
        """Return the committed outbound messages with MsgSeqNum (34) in [begin, end].

        ``end_seq_no`` 0 means no upper bound, as EndSeqNo (16) 0 does in a ResendRequest.
        Only messages sent since the session's creation time (its last sequence reset)
        count, and for a MsgSeqNum sent more than once the latest copy wins. The result is
        ``(msg_seq_num, raw)`` pairs by MsgSeqNum; gaps are left to the caller to fill.
        """
        reader = self._require_reader()
        if begin_seq_no < 1 or end_seq_no < 0:
            raise ValueError(
                f"invalid resend range BeginSeqNo (7) {begin_seq_no!r}, EndSeqNo (16) "
                f"{end_seq_no!r}; BeginSeqNo starts at 1 and EndSeqNo is 0 or more"
            )
        end = end_seq_no if end_seq_no != 0 else _MAX_SEQ_NUM
        stored = self._sessions.get(session_id)
        since_us = stored.creation_time_us if stored is not None else 0
        cursor = reader.execute(_SELECT_OUTBOUND, (session_id, begin_seq_no, end, since_us))
        return [(seq, raw) for seq, raw in cursor]

    def load_journal(self) -> Iterator[tuple[int, Command]]:
        """Return every committed command with its journal sequence number, in order.

        Rows still pending are not included, so call :meth:`flush` first when that matters.
        """
        reader = self._require_reader()
        cursor = reader.execute("SELECT seq, body FROM commands ORDER BY seq")
        return ((seq, command_from_dict(json.loads(body))) for seq, body in cursor)

    def check(self) -> None:
        """Raise RuntimeError if the pending batches or the session store are inconsistent.

        Tests call it after each operation. With nothing pending, it also compares the
        session states in memory with the ``session_store`` table.
        """
        batches = ([self._in_flight] if self._in_flight is not None else []) + list(self._batches)
        for batch in batches:
            tables = (batch.messages, batch.commands, batch.events, batch.decisions, batch.sessions)
            counted = sum(len(table) for table in tables)
            if batch.rows != counted or batch.rows > self.max_batch_rows:
                raise RuntimeError(
                    f"batch row count {batch.rows} differs from its {counted} rows or "
                    f"exceeds max_batch_rows {self.max_batch_rows}"
                )
            for session_id, row in batch.sessions.items():
                if batch is _last_upsert_of(batches, session_id):
                    _check_session_row(row, self._sessions.get(session_id))

        pending_seqs = [row[0] for batch in batches for row in batch.commands]
        expected = list(range(self._next_command_seq - len(pending_seqs), self._next_command_seq))
        if pending_seqs != expected:
            raise RuntimeError(f"pending journal numbers {pending_seqs} are not {expected}")

        if self.pending_rows == 0 and self._reader is not None:
            stored = _read_stored_state(self._reader).sessions
            if stored != self._sessions:
                raise RuntimeError(f"session_store {stored} differs from memory {self._sessions}")

    def _require_running(self) -> None:
        if self._state is not _State.OPEN and self._state is not _State.CLOSING:
            raise RuntimeError(
                f"audit trail {self.path!r} is {self._state.value}; call it between "
                "start() and close()"
            )

    def _require_reader(self) -> sqlite3.Connection:
        self._require_running()
        if self._reader is None:
            raise RuntimeError(f"audit trail {self.path!r} has no reader connection")
        return self._reader

    def _open_batch(self) -> _Batch:
        """Return the batch that takes the next row, starting a new one when it is full."""
        self._require_running()
        batch = self._batches[-1]
        if batch.rows >= self.max_batch_rows:
            batch = _Batch()
            self._batches.append(batch)
        if batch.rows == 0:
            self._wake.set()
        return batch

    async def _run_committer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._commit_pending()

    async def _commit_pending(self) -> None:
        """Commit the queued batches in order and run their callbacks, until none is left
        or a commit fails."""
        while self._has_work():
            batch = self._batches.popleft()
            if not self._batches:
                self._batches.append(_Batch())

            if batch.rows and not await self._commit(batch):
                # Keep the rows and callbacks at the head of the queue for the retry.
                self._batches.appendleft(batch)
                self._fail_flush_waiters()
                return

            self._run_callbacks(batch.callbacks)

    def _has_work(self) -> bool:
        head = self._batches[0]
        return len(self._batches) > 1 or head.rows > 0 or bool(head.callbacks)

    async def _commit(self, batch: _Batch) -> bool:
        loop = asyncio.get_running_loop()
        self._in_flight = batch
        try:
            await loop.run_in_executor(self._executor, self._writer.commit, batch)
        except Exception as exc:
            self._on_commit_failed(batch, exc)
            return False
        finally:
            self._in_flight = None

        self._committed_batches += 1
        self._committed_rows += batch.rows
        if self.failed is not None:
            logger.warning(
                "audit trail %s: commit succeeded after %d failed attempts",
                self.path,
                self._failed_attempts,
            )
            self.failed = None
            self._failed_attempts = 0
        return True

    def _on_commit_failed(self, batch: _Batch, exc: Exception) -> None:
        self.failed = exc
        self._failed_attempts += 1
        # One ERROR line per outage. The retries that fail again go to DEBUG.
        log = logger.error if self._failed_attempts == 1 else logger.debug
        log(
            "audit trail %s: commit of %d rows failed (attempt %d): %r; the rows stay in "
            "memory and their after_commit callbacks wait",
            self.path,
            batch.rows,
            self._failed_attempts,
            exc,
        )

    def _fail_flush_waiters(self) -> None:
        for waiter in self._flush_waiters:
            if not waiter.done():
                error = AuditTrailError(
                    f"commit to audit trail {self.path!r} failed: {self.failed!r}; "
                    f"{self.pending_rows} rows are still pending"
                )
                error.__cause__ = self.failed
                waiter.set_exception(error)

    def _run_callbacks(self, callbacks: list[Callable[[], None]]) -> None:
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception(
                    "audit trail %s: after_commit callback %r raised", self.path, callback
                )

    def _on_committer_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # A bug in the committer: stop order entry the same way a failed commit does.
            self.failed = exc if isinstance(exc, Exception) else RuntimeError(repr(exc))
            logger.error("audit trail %s: committer stopped: %r", self.path, exc, exc_info=exc)
            self._fail_flush_waiters()

    async def _stop(self) -> None:
        if self._committer is not None:
            # A committer that died of a bug was already logged by _on_committer_done.
            self._committer.cancel()
            await asyncio.wait([self._committer])
            self._committer = None
        await self._shut_down_connections()
        self._state = _State.CLOSED
        logger.info(
            "audit trail %s closed: %d rows committed in %d batches",
            self.path,
            self._committed_rows,
            self._committed_batches,
        )

    async def _shut_down_connections(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._writer.close)
            self._executor.shutdown(wait=True)
            self._executor = None


def _last_upsert_of(batches: list[_Batch], session_id: str) -> _Batch | None:
    for batch in reversed(batches):
        if session_id in batch.sessions:
            return batch
    return None


def _check_session_row(row: tuple[str, int, int, int], state: SessionState | None) -> None:
    if state is None or row != (
        state.session_id,
        state.next_sender_seq_num,
        state.next_target_seq_num,
        state.creation_time_us,
    ):
        raise RuntimeError(f"pending session upsert {row} differs from memory {state}")
