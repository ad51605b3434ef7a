"""The writing side of the audit trail: one SQLite connection in a process of its own.

:class:`BatchWriter` opens the file, creates the schema, reads back the state a restart
needs, and commits each :class:`Batch` in one transaction together with the batch's seal
in the hash chain (see :mod:`surveillance.audit_chain`).

:class:`WriterProcess` runs it in a child process and talks to it over a pipe, one pickled
batch per message (:func:`dumps_batch`). Building, hashing and inserting rows then use
a core of their own and never hold the event loop's GIL. The loop pays for pickling
instead: with ``bench/bench_audit.py``'s end-to-end run, 5 to 8 µs of CPU per order
against about 50 µs for the writer's work.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import io
import os
import pickle
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from surveillance.audit_chain import GENESIS_HASH, insert_seal, seal_batch
from surveillance.audit_rows import alert_row, command_row, event_row, split_records
from surveillance.audit_schema import CHAINED_TABLES, create_schema, insert_sql

__all__ = [
    "SCHEMA_VERSION",
    "Batch",
    "BatchWriter",
    "StoredSession",
    "StoredState",
    "WriterProcess",
    "WriterProcessError",
    "dumps_batch",
]

SCHEMA_VERSION = "2"

_INSERTS = {table.name: insert_sql(table) for table in CHAINED_TABLES}
_CHAIN_ENCODING = "sha256; rows as marshal format 2 tuples in schema column order"

_UPSERT_SESSION = (
    "INSERT INTO session_store (session_id, next_sender_seq_num, next_target_seq_num,"
    " creation_time_us) VALUES (?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET"
    " next_sender_seq_num = excluded.next_sender_seq_num,"
    " next_target_seq_num = excluded.next_target_seq_num,"
    " creation_time_us = excluded.creation_time_us"
)


def _bind_none_and_bytes_directly() -> None:
    """Register identity adapters for None and bytes, which sqlite3 then binds faster.

    CPython's sqlite3 (3.11) binds int, float and str parameters directly but first looks
    for an adapter for any other type: a registry lookup, then ``__adapt__`` and
    ``__conform__`` attribute lookups that all fail. With an adapter registered, the first
    lookup succeeds and returns the value unchanged. Event and message rows bind about ten
    None or bytes values each. On ``bench/bench_audit.py``'s machine, inserting rows of ten
    None values took 3.4 µs a row without these adapters and 1.7 µs with them.
    Registration is process-wide, and harmless because both adapters return their argument.
    """
    sqlite3.register_adapter(type(None), {}.get)  # {}.get(None) is None, in C
    sqlite3.register_adapter(bytes, bytes)  # bytes(b) is b for a bytes object


class SchemaVersionError(sqlite3.DatabaseError):
    """The file was written by a release with another audit schema."""


@dataclass(eq=False)
class Batch:
    """Rows waiting for one transaction, and the callbacks to run once it commits.

    ``tables`` maps each chained table to its records, end to end in one flat list (see
    :func:`surveillance.audit_rows.split_records`). A record is a row's values in schema
    column order, its id first. ``commands`` and ``events`` contain the records of
    :func:`surveillance.audit_rows.command_record` and
    :func:`surveillance.audit_rows.event_record` instead, which the writer makes into rows.
    ``sessions`` contains one upsert per FIX session, so a later save replaces an earlier one.
    """

    tables: dict[str, list[Any]] = field(
        default_factory=lambda: {table.name: [] for table in CHAINED_TABLES}
    )
    sessions: dict[str, tuple[str, int, int, int]] = field(default_factory=dict)
    callbacks: list[Callable[[], None]] = field(default_factory=list)
    rows: int = 0


# (session_id, next_sender_seq_num, next_target_seq_num, creation_time_us)
StoredSession = tuple[str, int, int, int]


@dataclass(frozen=True, slots=True)
class StoredState:
    """State read back from an existing file by :meth:`BatchWriter.open`."""

    next_ids: dict[str, int]
    sessions: list[StoredSession]


class BatchWriter:
    """The SQLite connection that writes. Every method runs in the single writer thread."""

    def __init__(self, path: str, clock: Callable[[], int], owner_pid: int | None = None) -> None:
        self.path = path
        self.clock = clock
        # The appliance's process ID for clock_log, when this runs in the writer process.
        self.owner_pid = owner_pid if owner_pid is not None else os.getpid()
        self.conn: sqlite3.Connection | None = None
        self.batch_no = 0
        self.head_hash = GENESIS_HASH

    def open(self) -> StoredState:
        _bind_none_and_bytes_directly()
        # isolation_level=None leaves BEGIN and COMMIT to commit(), one pair per batch.
        conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn = conn
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise sqlite3.OperationalError(
                f"cannot switch {self.path!r} to WAL journal mode (SQLite kept {mode!r}); "
                "compliance queries must read while the gateway writes, so put the file "
                "on a local filesystem"
            )
        conn.execute("PRAGMA synchronous=NORMAL")
        # Checkpoints copy the WAL into the file in the writer thread; fewer, larger ones
        # cost less per row. 16384 pages of 4 KiB bound the WAL near 64 MiB.
        conn.execute("PRAGMA wal_autocheckpoint=16384")
        create_schema(conn)
        self._record_meta(conn)
        head = conn.execute(
            "SELECT batch_no, hash FROM audit_batches ORDER BY batch_no DESC LIMIT 1"
        ).fetchone()
        if head is not None:
            self.batch_no, self.head_hash = head
        stored = _read_stored_state(conn)
        self._record_clock(stored.next_ids)
        return stored

    def commit(self, batch: Batch) -> None:
        """Insert the batch and its seal in one transaction; advance the chain on success."""
        conn = self._connection()
        tables = {name: split_records(name, values) for name, values in batch.tables.items()}
        # The loop recorded commands and events as plain field values; rows are built here.
        tables["commands"] = list(map(command_row, tables["commands"]))
        tables["events"] = list(map(event_row, tables["events"]))
        tables["alerts"] = list(map(alert_row, tables["alerts"]))
        chained = [(table.name, tables[table.name]) for table in CHAINED_TABLES]
        seal = seal_batch(self.batch_no + 1, self.head_hash, self.clock(), chained)
        conn.execute("BEGIN")
        try:
            for name, rows in chained:
                if rows:
                    conn.executemany(_INSERTS[name], rows)
            conn.executemany(_UPSERT_SESSION, batch.sessions.values())
            insert_seal(conn, seal)
            conn.execute("COMMIT")
        except BaseException:
            # SQLite rolls back by itself after some errors (SQLITE_FULL among them).
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.batch_no += 1
        self.head_hash = seal[-1]

    def _record_clock(self, next_ids: dict[str, int]) -> None:
        """Commit one ``clock_log`` row naming the clock behind every timestamp of this run."""
        info = time.get_clock_info("time")
        row = (
            next_ids["clock_log"], self.clock(), "time.time_ns", info.implementation,
            round(info.resolution * 1e9), 1, socket.gethostname(), platform.platform(),
            self.owner_pid,
        )
        batch = Batch()
        batch.tables["clock_log"] += row
        self.commit(batch)
        next_ids["clock_log"] += 1

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _connection(self) -> sqlite3.Connection:
        if self.conn is None:
            raise RuntimeError(f"audit trail {self.path!r} is not open")
        return self.conn

    def _record_meta(self, conn: sqlite3.Connection) -> None:
        """Record the schema version once, and check it on every start."""
        rows = [
            ("schema_version", SCHEMA_VERSION),
            ("clock", "time.time_ns"),
            ("clock_platform", platform.platform()),
            ("timestamp_unit", "microseconds since the Unix epoch, UTC"),
            ("chain", _CHAIN_ENCODING),
            ("created_us", str(self.clock())),
        ]
        conn.executemany("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", rows)
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if meta["schema_version"] != SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{self.path!r} has audit schema version {meta['schema_version']!r}, expected "
                f"{SCHEMA_VERSION!r}; open it with the fixgw release that wrote it"
            )


def _read_stored_state(conn: sqlite3.Connection) -> StoredState:
    next_ids = {}
    for table in CHAINED_TABLES:
        sql = f"SELECT coalesce(max({table.pk}), 0) FROM {table.name}"
        next_ids[table.name] = conn.execute(sql).fetchone()[0] + 1
    sessions = conn.execute(
        "SELECT session_id, next_sender_seq_num, next_target_seq_num, creation_time_us"
        " FROM session_store"
    ).fetchall()
    return StoredState(next_ids=next_ids, sessions=sessions)


# ------------------------------------------------------------------ writer process


def _reduce_enum(member: enum.Enum) -> tuple[type, tuple[Any]]:
    value = member._value_
    return type(value), (value,)


class _PlainEnums(dict):  # type: ignore[type-arg]
    """A pickle dispatch table that sends every enum member as its plain value.

    The pickle memo stores each member once per batch, so this reducer runs once per
    distinct member, and the writer process unpickles plain str values that the hash
    chain's marshal encoding accepts. Other classes pickle as usual.
    """

    def __missing__(self, cls: type) -> Any:
        if isinstance(cls, type) and issubclass(cls, enum.Enum):
            self[cls] = _reduce_enum
            return _reduce_enum
        raise KeyError(cls)


_DISPATCH_TABLE = _PlainEnums()


def dumps_batch(tables: dict[str, list[Any]], sessions: dict[str, Any]) -> bytes:
    """Pickle a batch's rows for the writer process, enum members as their values."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _DISPATCH_TABLE
    pickler.dump((tables, sessions))
    return buffer.getvalue()



class WriterProcessError(OSError):
    """The writer process exited or its pipe broke; the next commit starts a new one."""


def _now_us() -> int:
    return time.time_ns() // 1000


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies, even by SIGKILL.

    Without it, a writer left behind by a killed appliance could commit into the file
    that the restarted appliance has just opened. Elsewhere the writer exits at the end
    of the pipe instead, after finishing the commit in progress.
    """
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() == 1:
        # The parent died before prctl took effect.
        os._exit(1)


def serve(conn: Connection, path: str, owner_pid: int) -> None:
    """Run in the writer process: open ``path``, then commit each batch the pipe brings."""
    _die_with_parent()
    writer = BatchWriter(path, _now_us, owner_pid)
    try:
        stored = writer.open()
    except Exception as exc:
        conn.send(("error", exc))
        return
    conn.send(("ok", stored, writer.batch_no, writer.head_hash))
    while True:
        try:
            request = conn.recv_bytes()
        except EOFError:
            break
        if not request:
            break
        tables, sessions = pickle.loads(request)
        try:
            writer.commit(Batch(tables=tables, sessions=sessions))
        except Exception as exc:
            conn.send(("error", exc))
            continue
        conn.send(("ok", None, writer.batch_no, writer.head_hash))
    writer.close()


class WriterProcess:
    """The parent's end of the writer process. Call every method from one thread.

    The writer runs as ``python -m surveillance.audit_writer FD PATH PID`` with one end of
    a socket pair, so it never imports the caller's main module as multiprocessing's
    spawn would.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.batch_no = 0
        self.head_hash = GENESIS_HASH
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    def open(self) -> StoredState:
        """Start the writer process and return the state it read from the file."""
        parent_end, child_end = socket.socketpair()
        fd = child_end.fileno()
        # The child imports surveillance from wherever this process did.
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "surveillance.audit_writer", str(fd), self.path,
                 str(os.getpid())],
                pass_fds=[fd], env=env,
            )
        finally:
            child_end.close()
        self._conn = Connection(parent_end.detach())
        stored = self._call_reply()
        if not isinstance(stored, StoredState):
            raise WriterProcessError(f"audit writer for {self.path!r} returned {stored!r} on open")
        return stored

    def commit(self, batch: Batch) -> None:
        """Commit the batch in the writer process; raise what the commit raised there."""
        if self._process is None or self._process.poll() is not None:
            self.close()
            self.open()
        conn = self._connection()
        try:
            conn.send_bytes(dumps_batch(batch.tables, batch.sessions))
        except OSError as exc:
            raise WriterProcessError(f"audit writer for {self.path!r} is gone: {exc}") from exc
        self._call_reply()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send_bytes(b"")
            self._conn.close()
            self._conn = None
        if self._process is not None:
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def _call_reply(self) -> Any:
        conn = self._connection()
        try:
            reply = conn.recv()
        except (EOFError, OSError) as exc:
            code = self._process.poll() if self._process is not None else None
            raise WriterProcessError(
                f"audit writer for {self.path!r} exited (code {code!r}) before replying; "
                "check its standard error for the cause"
            ) from exc
        if reply[0] == "error":
            raise reply[1]
        _, result, self.batch_no, self.head_hash = reply
        return result

    def _connection(self) -> Connection:
        if self._conn is None:
            raise RuntimeError(f"audit writer for {self.path!r} is not open")
        return self._conn


if __name__ == "__main__":
    # Import under the package name, so what the pipe pickles names surveillance.audit_writer
    # classes rather than __main__ ones.
    from surveillance.audit_writer import serve as _serve

    _serve(Connection(int(sys.argv[1])), sys.argv[2], int(sys.argv[3]))
