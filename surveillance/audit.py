"""The audit trail: one SQLite file with every FIX message, command, event and risk decision.

Compliance queries read it (see :mod:`surveillance.audit_queries` and
:mod:`surveillance.audit_reports`), the FIX session layer keeps its sequence numbers in it
(``session_store``) and serves ResendRequests from its outbound messages, and restart
recovery replays its command journal into a fresh engine. The tables are described in
:mod:`surveillance.audit_schema`.

Writes are group commits. ``record_*`` calls only append a row to the pending batch in
memory: a tuple of plain fields, with JSON and derived columns left to the writer. A
committer task hands the whole batch, pickled, to the writer process
(:mod:`surveillance.audit_writer`), which builds the rows and inserts them inside one
transaction, while new rows collect in the next batch. Under load batches grow, and at low
load a row waits for about one commit. A caller that must not act before its rows are
durable, such as sending an outbound message to the socket, registers
:meth:`AuditTrail.after_commit`.

Under load a second full batch waits in the writer process's socket while the first
commits (``MAX_IN_FLIGHT``). When a commit fails, the writer process skips the batches
sent behind it, and all of them are sent again in order.

A batch that reaches ``max_batch_rows`` is closed at the end of the current turn of the
event loop, never in the middle of one. Everything one inbound message causes is recorded
in one turn: the message, the raised MsgSeqNum (34) expected next, the command, its events
and the replies. So it commits all together or not at all, and a crash cannot keep the
raised sequence number but lose the order.

Every committed batch is sealed in a SHA-256 hash chain (:mod:`surveillance.audit_chain`),
which ``fixgw audit verify`` checks.

Timestamps are integer microseconds since the Unix epoch, UTC, all from :meth:`AuditTrail.now_us`
(``time.time_ns``); each start records that clock in ``clock_log``. Prices are integer price
units (``engine.orders.PRICE_SCALE``).

NOTE: the file runs in WAL mode with ``synchronous=NORMAL``. A committed batch survives a
crash of the process, but a power loss or OS crash can roll back the last few commits.
``PRAGMA synchronous=FULL`` would close that gap at the cost of one fsync per commit.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from engine.commands import Command, command_from_dict
from engine.events import Event
from surveillance.audit_rows import command_record, features_json, split_records
from surveillance.audit_schema import CHAINED_TABLES
from surveillance.audit_writer import (
    SCHEMA_VERSION,
    Batch,
    SchemaVersionError,
    WriterProcess,
    WriterProcessError,
    dumps_batch,
)

__all__ = [
    "AuditTrail",
    "AuditTrailError",
    "HaltAction",
    "SessionEventKind",
    "SessionState",
    "SCHEMA_VERSION",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BATCH_ROWS = 5000
# Batches handed to the writer process before it replies to the first of them.
MAX_IN_FLIGHT = 2
RETRY_INTERVAL_S = 1.0

_DIRECTIONS = frozenset({"in", "out"})
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


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


class HaltAction(str, enum.Enum):
    """Action recorded in a ``halts`` row."""

    HALT = "HALT"  # trading stopped in the scope
    RESUME = "RESUME"  # trading resumed after a HALT
    KILL_SWITCH = "KILL_SWITCH"  # order entry cut off and resting orders canceled
    KILL_SWITCH_RELEASE = "KILL_SWITCH_RELEASE"  # order entry allowed again


class SessionEventKind(str, enum.Enum):
    """Kind of event recorded in a ``session_events`` row."""

    LOGON = "LOGON"
    LOGOUT = "LOGOUT"
    DISCONNECT = "DISCONNECT"
    CANCEL_ON_DISCONNECT = "CANCEL_ON_DISCONNECT"


class _State(enum.Enum):
    NEW = "new"  # constructed, start() not yet called
    OPEN = "open"  # recording and committing
    CLOSING = "closing"  # close() is flushing, records still accepted
    CLOSED = "closed"  # connection closed, every call except close() raises


# The latest copy of each outbound MsgSeqNum in a range: a resent message is stored again
# with PossDupFlag (43) Y, and the newest copy is what the counterparty last saw.
_SELECT_OUTBOUND = (
    "SELECT m.msg_seq_num, m.raw FROM messages AS m JOIN ("
    " SELECT msg_seq_num, max(id) AS id FROM messages"
    " WHERE session_id = ? AND direction = 'out' AND msg_seq_num BETWEEN ? AND ?"
    " AND ts_us >= ? GROUP BY msg_seq_num"
    ") AS latest ON m.id = latest.id ORDER BY m.msg_seq_num"
)


def _connect_reader(path: str) -> sqlite3.Connection:
    """Open the read-only connection of the loop thread.

    In WAL mode it reads only committed rows, and its reads do not block the writer's commits.
    """
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA query_only=ON")
    return conn


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


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
        self._batches: collections.deque[Batch] = collections.deque([Batch()])
        # Batches handed to the writer process that it has not replied to yet, oldest
        # first, and batches of callbacks only that wait for them.
        self._in_flight: collections.deque[Batch] = collections.deque()
        self._wake = asyncio.Event()
        self._flush_waiters: set[asyncio.Future[None]] = set()
        self._failed_attempts = 0
        self._committed_batches = 0
        self._committed_rows = 0

        self._writer = WriterProcess(self.path)
        self._executor: ThreadPoolExecutor | None = None
        self._reader: sqlite3.Connection | None = None
        self._committer: asyncio.Task[None] | None = None
        # Session ID to (session_id, next_sender_seq_num, next_target_seq_num,
        # creation_time_us), the tuple the session_store upsert takes.
        self._sessions: dict[str, tuple[str, int, int, int]] = {}
        self._next_ids: dict[str, int] = {table.name: 1 for table in CHAINED_TABLES}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seal_scheduled = False
        self._listeners: list[Callable[[Exception | None], None]] = []

    @staticmethod
    def now_us() -> int:
        """Return the audit clock: microseconds since the Unix epoch, UTC."""
        return time.time_ns() // 1000

    @property
    def pending_rows(self) -> int:
        """Rows recorded but not yet committed, the batch being committed included."""
        in_flight = sum(batch.rows for batch in self._in_flight)
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
        """Start the writer process, which opens the file and creates the schema, and the committer."""
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
            if isinstance(exc, SchemaVersionError):
                raise AuditTrailError(str(exc)) from exc
            if isinstance(exc, sqlite3.Error):
                raise AuditTrailError(
                    f"cannot open audit trail {self.path!r}: {exc}; check that its folder "
                    "exists and is writable"
                ) from exc
            raise

        self._sessions = {row[0]: tuple(row) for row in stored.sessions}
        self._next_ids = dict(stored.next_ids)
        self._loop = loop
        self._committer = loop.create_task(self._run_committer(), name=f"audit {self.path}")
        self._committer.add_done_callback(self._on_committer_done)
        self._state = _State.OPEN
        logger.info(
            "audit trail %s opened: %d commands journaled, %d FIX sessions stored, "
            "%d batches sealed, chain head %s",
            self.path,
            stored.next_ids["commands"] - 1,
            len(self._sessions),
            self._writer.batch_no,
            self._writer.head_hash,
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
        rows, row_id = self._next_row("messages")
        rows += (
            row_id, ts_us, session_id, direction, msg_type, msg_seq_num, cl_ord_id, order_id,
            int(poss_dup), raw,
        )

    def record_command(self, command: Command, *, ts_us: int | None = None) -> int:
        """Journal one command and return its journal sequence number.

        Numbers run 1, 2, ... in the order of the calls and continue after a restart.
        """
        if ts_us is None:
            ts_us = time.time_ns() // 1000
        rows, seq = self._next_row("commands")
        # The writer process turns the record into the row: see audit_rows.
        rows += command_record(seq, ts_us, command)
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
        self._append("decisions", (
            ts_us, command_seq, session_id, cl_ord_id, control, int(accepted), reason_code,
            limit, value, text,
        ))

    def record_event(self, event: Event, *, command_seq: int, ts_us: int | None = None) -> None:
        """Record one engine event produced by the command journaled as ``command_seq``."""
        if ts_us is None:
            ts_us = time.time_ns() // 1000
        rows, row_id = self._next_row("events")
        # audit_rows.event_record, inlined because this runs for every event.
        rows += (row_id, ts_us, command_seq, type(event).__name__)
        rows += event

    def record_alert(
        self,
        *,
        detector: str,
        version: str,
        score: float,
        threshold: float,
        action: str,
        text: str,
        features: Mapping[str, Any],
        symbol: str | None = None,
        session_id: str | None = None,
        trade_id: str | None = None,
        ts_us: int | None = None,
    ) -> None:
        """Record one surveillance alert: which detector version saw what, and what was done.

        ``features`` are the detector's inputs and must be JSON-serialisable.
        """
        encoded = dict(features)
        # A flat dict of str keys and JSON scalars goes to the writer process as it is,
        # which writes its JSON (audit_rows.alert_row). Anything else is encoded here, so
        # that a value JSON cannot encode raises in the caller, not in a commit.
        if not all(type(key) is str and type(value) in _JSON_SCALARS for key, value in encoded.items()):
            encoded = features_json(encoded)
        self._append("alerts", (
            self._ts(ts_us), detector, version, symbol, session_id, trade_id, encoded,
            float(score), float(threshold), action, text,
        ))

    def record_limit_change(
        self,
        *,
        actor: str,
        scope: str,
        setting: str,
        old_value: str | None,
        new_value: str | None,
        reason: str,
        ts_us: int | None = None,
    ) -> None:
        """Record a change of one risk limit or setting; ``scope`` is a symbol, session or '*'."""
        self._append("limit_changes", (
            self._ts(ts_us), actor, scope, setting, _text_or_none(old_value),
            _text_or_none(new_value), reason,
        ))

    def record_halt(
        self,
        action: HaltAction,
        *,
        actor: str,
        scope: str,
        reason: str,
        command_seq: int | None = None,
        canceled_order_ids: Sequence[str] = (),
        ts_us: int | None = None,
    ) -> None:
        """Record a halt, resumption or kill switch on ``scope`` (a symbol, session or '*').

        ``command_seq`` names the MassCancel journaled for it, ``canceled_order_ids`` the
        OrderIDs (37) that cancel removed.
        """
        self._append("halts", (
            self._ts(ts_us), HaltAction(action).value, actor, scope, reason, command_seq,
            json.dumps(list(canceled_order_ids)),
        ))

    def record_session_event(
        self,
        session_id: str,
        kind: SessionEventKind,
        *,
        text: str = "",
        begin_seq_no: int | None = None,
        end_seq_no: int | None = None,
        command_seq: int | None = None,
        ts_us: int | None = None,
    ) -> None:
        """Record a FIX session event such as a disconnect or a cancel-on-disconnect."""
        self._append("session_events", (
            self._ts(ts_us), session_id, SessionEventKind(kind).value, begin_seq_no, end_seq_no,
            command_seq, text,
        ))

    def add_failure_listener(self, listener: Callable[[Exception | None], None]) -> None:
        """Call ``listener(error)`` when commits start failing, and ``listener(None)`` when
        a commit succeeds again. It runs on the loop's thread."""
        self._listeners.append(listener)

    def _ts(self, ts_us: int | None) -> int:
        return self.now_us() if ts_us is None else int(ts_us)

    def _next_row(self, table: str) -> tuple[list[Any], int]:
        """Count one more row in the open batch; return its list for ``table`` and the id.

        This is :meth:`_open_batch` and the id counter in one call, because it runs for
        every row recorded.
        """
        batch = self._open_batch()
        batch.rows += 1
        next_ids = self._next_ids
        row_id = next_ids[table]
        next_ids[table] = row_id + 1
        return batch.tables[table], row_id

    def _append(self, table: str, row: tuple[Any, ...]) -> None:
        """Add one row to the pending batch, with the table's next id in front."""
        rows, row_id = self._next_row(table)
        rows.append(row_id)
        rows += row

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
            creation_time_us = stored[3] if stored is not None else self.now_us()
        batch = self._open_batch()
        if session_id not in batch.sessions:
            batch.rows += 1
        row = (session_id, next_sender_seq_num, next_target_seq_num, creation_time_us)
        batch.sessions[session_id] = row
        self._sessions[session_id] = row

    def load_session_state(self, session_id: str) -> SessionState | None:
        """Return the latest saved state of a FIX session, committed or not, or None."""
        self._require_running()
        row = self._sessions.get(session_id)
        return SessionState(*row) if row is not None else None

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
        since_us = stored[3] if stored is not None else 0
        cursor = reader.execute(_SELECT_OUTBOUND, (session_id, begin_seq_no, end, since_us))
        return [(seq, raw) for seq, raw in cursor]

    def load_settings(self) -> dict[tuple[str, str], str | None]:
        """Return the latest committed value of each (scope, setting) in ``limit_changes``."""
        reader = self._require_reader()
        cursor = reader.execute(
            "SELECT scope, setting, new_value FROM limit_changes ORDER BY ts_us, id"
        )
        return {(scope, setting): value for scope, setting, value in cursor}

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
        batches = list(self._in_flight) + list(self._batches)
        for batch in batches:
            counted = len(batch.sessions) + sum(
                len(split_records(name, values)) for name, values in batch.tables.items()
            )
            if batch.rows != counted:
                raise RuntimeError(f"batch row count {batch.rows} differs from its {counted} rows")
            for session_id, row in batch.sessions.items():
                if batch is _last_upsert_of(batches, session_id):
                    _check_session_row(row, self._sessions.get(session_id))

        for table in CHAINED_TABLES:
            pending_ids = [
                row[0] for batch in batches
                for row in split_records(table.name, batch.tables[table.name])
            ]
            end = self._next_ids[table.name]
            expected = list(range(end - len(pending_ids), end))
            if pending_ids != expected:
                raise RuntimeError(f"pending {table.name} ids {pending_ids} are not {expected}")

        if self.pending_rows == 0 and self._reader is not None:
            rows = self._reader.execute(
                "SELECT session_id, next_sender_seq_num, next_target_seq_num, creation_time_us"
                " FROM session_store"
            )
            stored = {row[0]: row for row in rows}
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

    def _open_batch(self) -> Batch:
        """Return the batch that takes the next row.

        A full batch keeps taking rows until the current turn of the event loop ends, so
        that the rows of one inbound message never straddle two transactions.
        """
        if self._state is not _State.OPEN and self._state is not _State.CLOSING:
            self._require_running()
        batch = self._batches[-1]
        if batch.rows + 1 >= self.max_batch_rows and not self._seal_scheduled:
            self._seal_scheduled = True
            if self._loop is not None:
                self._loop.call_soon(self._close_open_batch)
        if batch.rows == 0:
            self._wake.set()
        return batch

    def _close_open_batch(self) -> None:
        self._seal_scheduled = False
        batch = self._batches[-1]
        if batch.rows:
            # A full batch usually waits for the commit before it. Pickled now, it reaches
            # the writer process as soon as that commit is done. A value that cannot be
            # pickled fails the batch's commit instead, which reports it.
            with contextlib.suppress(Exception):
                batch.payload = dumps_batch(batch.tables, batch.sessions)
            self._batches.append(Batch())

    async def _run_committer(self) -> None:
        while True:
            if self.failed is None:
                await self._wake.wait()
            else:
                # A full disk or a read-only file may be fixed without anything new being
                # recorded, so a failed commit is retried on a timer too.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), RETRY_INTERVAL_S)
            self._wake.clear()
            await self._commit_pending()

    async def _commit_pending(self) -> None:
        """Commit the queued batches in order and run their callbacks, until none is left
        or a commit fails.

        Up to MAX_IN_FLIGHT batches wait in the writer process's socket, so it goes from
        one commit straight to the next while the loop runs the callbacks of the batch
        just committed. Only the first may be the open batch: later ones are full, so a
        busy writer gets large batches rather than many small ones.
        """
        in_flight = self._in_flight
        while True:
            if not await self._send_batches():
                return
            if not in_flight:
                return
            batch = in_flight[0]
            if batch.settled:
                self._mark_committed(batch)
            elif batch.rows and not await self._receive_outcome(batch):
                self._requeue_in_flight()
                self._fail_flush_waiters()
                return
            in_flight.popleft()
            self._run_callbacks(batch.callbacks)

    def _has_work(self) -> bool:
        head = self._batches[0]
        return len(self._batches) > 1 or head.rows > 0 or bool(head.callbacks)

    async def _send_batches(self) -> bool:
        """Hand queued batches to the writer process; return False if a send failed."""
        in_flight = self._in_flight
        while len(in_flight) < MAX_IN_FLIGHT and self._has_work():
            if in_flight and len(self._batches) == 1:
                # Only the open batch is left: it keeps filling while the writer works.
                return True
            if self._batches[0].rows and in_flight and self._writer.needs_restart():
                # The batches in flight fail first, then the retry restarts the writer.
                return True
            batch = self._batches.popleft()
            if not self._batches:
                self._batches.append(Batch())
            in_flight.append(batch)
            if not batch.rows:
                continue
            try:
                if self._writer.needs_restart():
                    loop = asyncio.get_running_loop()
                    await loop.run_in_executor(self._executor, self._writer.restart)
                if self._committed_before_restart(batch):
                    # Committed by a writer process that died before it replied.
                    logger.warning(
                        "audit trail %s: batch %d was committed before the writer process "
                        "stopped; not sending it again", self.path, batch.sent_as,
                    )
                    batch.settled = True
                    continue
                sent = sum(1 for queued in in_flight if queued.rows and not queued.settled)
                batch.sent_as = self._writer.batch_no + sent
                await self._writer.send(batch, batch.sent_as)
            except Exception as exc:
                self._on_commit_failed(batch, exc)
                self._requeue_in_flight()
                self._fail_flush_waiters()
                return False
        return True

    def _committed_before_restart(self, batch: Batch) -> bool:
        """Return True when a batch sent before was in the file when the writer opened it.

        A batch of session_store upserts only has no row key to look up. The writer
        process commits batches in the order sent, so the first later batch that was sent
        with table rows decides for it. Sending it again after that batch committed would
        put an older session state back over a newer one.
        """
        if batch.sent_as is None:
            return False
        if any(batch.tables.values()):
            return self._writer.committed_at_open(batch)
        for later in self._batches:
            if later.sent_as is not None and any(later.tables.values()):
                return self._writer.committed_at_open(later)
        return False

    async def _receive_outcome(self, batch: Batch) -> bool:
        """Wait until the writer process has committed ``batch``, the oldest one sent."""
        try:
            if not await self._writer.receive():
                raise WriterProcessError(
                    f"audit writer for {self.path!r} skipped batch {self._writer.batch_no + 1} "
                    "although no batch before it failed; this is a bug in the audit trail"
                )
        except Exception as exc:
            self._on_commit_failed(batch, exc)
            await self._drain_in_flight()
            return False
        self._mark_committed(batch)
        return True

    def _mark_committed(self, batch: Batch) -> None:
        """Count a committed batch and end the failed state, if any."""
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
            self._notify(None)

    async def _drain_in_flight(self) -> None:
        """Read the writer process's replies to the batches sent after a failed one.

        It skips each of them, because their rows follow rows that are not in the file.
        A broken stream has no replies left to read.
        """
        for batch in list(self._in_flight)[1:]:
            if not batch.rows or batch.settled or self._writer.needs_restart():
                continue
            try:
                await self._writer.receive()
            except Exception as exc:
                logger.debug("audit trail %s: batch behind a failed one: %r", self.path, exc)

    def _requeue_in_flight(self) -> None:
        """Put every batch in flight back at the head of the queue, in order, for the retry."""
        self._batches.extendleft(reversed(self._in_flight))
        self._in_flight.clear()

    def _on_commit_failed(self, batch: Batch, exc: Exception) -> None:
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
        if self._failed_attempts == 1:
            self._notify(exc)

    def _notify(self, error: Exception | None) -> None:
        for listener in self._listeners:
            try:
                listener(error)
            except Exception:
                logger.exception("audit trail %s: failure listener %r raised", self.path, listener)

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
            self._notify(self.failed)

    async def _stop(self) -> None:
        if self._committer is not None:
            # A committer that died of a bug was already logged by _on_committer_done.
            self._committer.cancel()
            await asyncio.wait([self._committer])
            self._committer = None
        await self._shut_down_connections()
        self._state = _State.CLOSED
        # `fixgw audit verify` counts differently (every run, the start-up batch, chained
        # rows only), so the message names what it counts.
        logger.info(
            "audit trail %s closed: this run committed %d rows in %d batches, counting each "
            "session_store upsert as a row and leaving out the start-up clock_log batch",
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


def _last_upsert_of(batches: list[Batch], session_id: str) -> Batch | None:
    for batch in reversed(batches):
        if session_id in batch.sessions:
            return batch
    return None


def _check_session_row(
    row: tuple[str, int, int, int], state: tuple[str, int, int, int] | None
) -> None:
    if row != state:
        raise RuntimeError(f"pending session upsert {row} differs from memory {state}")
