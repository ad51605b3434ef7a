"""The writing side of the audit trail: one SQLite connection in a process of its own.

:class:`BatchWriter` opens the file, creates the schema, reads back the state a restart
needs, and commits each :class:`Batch` in one transaction together with the batch's seal
in the hash chain (see :mod:`surveillance.audit_chain`). It commits through the C
extension ``surveillance._cwriter`` when that is built (see :mod:`surveillance.audit_native`),
otherwise in Python, and both write the same rows and hashes.

:class:`WriterProcess` runs it in a child process and talks to it over a socket pair, one
pickled batch per message (:func:`dumps_batch`). Building, hashing and inserting rows then
use a core of their own and never hold the event loop's GIL. The loop pays for pickling
instead: with ``bench/bench_audit.py``'s writer run, about 4 µs of CPU per order against
about 20 µs for the C writer's work.
"""

from __future__ import annotations

import asyncio
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
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from surveillance.audit_chain import GENESIS_HASH, insert_seal, seal_batch
from surveillance.audit_native import NativeWriter, load_cwriter
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

# The page size of a new file. With the C writer on bench/bench_audit.py's machine, 8 KiB
# pages took about 1.5 µs less of the writer's CPU per order than 4 KiB pages: fewer
# pages to write to the WAL and copy back at checkpoints. A file keeps the page size it
# was created with.
PAGE_SIZE = 8192
# Checkpoints copy the WAL into the file in the writer process; fewer, larger ones cost
# less per row. The WAL is checkpointed when it reaches about this size.
WAL_CHECKPOINT_BYTES = 64 * 1024 * 1024

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
    # The batch pickled by dumps_batch once it is closed to new rows, or None.
    payload: bytes | None = None
    # The batch number it was last sent as, and whether the file already contains it. A
    # writer process that died after its commit but before its reply leaves the batch
    # committed, and its successor's open finds the batch's rows in the file.
    sent_as: int | None = None
    settled: bool = False


# (session_id, next_sender_seq_num, next_target_seq_num, creation_time_us)
StoredSession = tuple[str, int, int, int]


@dataclass(frozen=True, slots=True)
class StoredState:
    """State read back from an existing file by :meth:`BatchWriter.open`."""

    next_ids: dict[str, int]
    sessions: list[StoredSession]


class BatchWriter:
    """The SQLite connection that writes. Every method runs in the single writer thread.

    With ``native`` None, batches commit through the C extension ``surveillance._cwriter``
    when it is built and not disabled (see :func:`surveillance.audit_native.load_cwriter`),
    otherwise in Python. True requires the extension and False forces Python. Both paths
    write the same rows and seal them with the same hashes.
    """

    def __init__(
        self,
        path: str,
        clock: Callable[[], int],
        owner_pid: int | None = None,
        *,
        native: bool | None = None,
    ) -> None:
        self.path = path
        self.clock = clock
        # The appliance's process ID for clock_log, when this runs in the writer process.
        self.owner_pid = owner_pid if owner_pid is not None else os.getpid()
        self.conn: sqlite3.Connection | None = None
        self.native: NativeWriter | None = None
        self.batch_no = 0
        self.head_hash = GENESIS_HASH
        self._cwriter = load_cwriter() if native is not False else None
        if native and self._cwriter is None:
            raise ImportError(
                "surveillance._cwriter is not built or FIXGW_NO_EXTENSIONS is set; run "
                "`pip install -e .` with a C compiler and SQLite's headers, or pass native=None"
            )

    def open(self) -> StoredState:
        _bind_none_and_bytes_directly()
        # isolation_level=None leaves BEGIN and COMMIT to commit(), one pair per batch.
        conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn = conn
        # Ignored by SQLite unless the file is new.
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise sqlite3.OperationalError(
                f"cannot switch {self.path!r} to WAL journal mode (SQLite kept {mode!r}); "
                "compliance queries must read while the gateway writes, so put the file "
                "on a local filesystem"
            )
        pragmas = _connection_pragmas(conn.execute("PRAGMA page_size").fetchone()[0])
        for pragma in pragmas:
            conn.execute(pragma)
        create_schema(conn)
        self._record_meta(conn)
        head = conn.execute(
            "SELECT batch_no, hash FROM audit_batches ORDER BY batch_no DESC LIMIT 1"
        ).fetchone()
        if head is not None:
            self.batch_no, self.head_hash = head
        stored = _read_stored_state(conn)
        if self._cwriter is not None:
            # A second connection from the same SQLite library in this process, which
            # commits every batch from now on; the first stays idle until close().
            self.native = NativeWriter(self._cwriter, self.path, pragmas)
        self._record_clock(stored.next_ids)
        return stored

    def commit(self, batch: Batch) -> None:
        """Insert the batch and its seal in one transaction; advance the chain on success."""
        if self.native is not None:
            seal = self.native.commit(
                self.batch_no + 1, self.head_hash, self.clock, batch.tables,
                batch.sessions.values(), _UPSERT_SESSION,
            )
        else:
            seal = self._commit_in_python(batch)
        self.batch_no += 1
        self.head_hash = seal[-1]

    def _commit_in_python(self, batch: Batch) -> tuple[Any, ...]:
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
        return seal

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
        if self.native is not None:
            self.native.close()
            self.native = None
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


def _connection_pragmas(page_size: int) -> tuple[str, ...]:
    """Return the settings of each writing connection, for the file's page size."""
    return (
        "PRAGMA synchronous=NORMAL",
        f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_BYTES // page_size}",
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


def serve(sock: socket.socket, path: str, owner_pid: int) -> None:
    """Run in the writer process: open ``path``, then commit each batch the socket brings."""
    _die_with_parent()
    writer = BatchWriter(path, _now_us, owner_pid)
    try:
        stored = writer.open()
    except Exception as exc:
        _write_message(sock, ("error", exc))
        return
    _write_message(sock, ("ok", stored, writer.batch_no, writer.head_hash))
    while True:
        request = _read_request(sock)
        if request is None:
            break
        batch_no, payload = request
        if batch_no != writer.batch_no + 1:
            # A batch sent behind one whose commit failed: its rows would follow rows
            # that are not in the file. The parent sends it again after the retry.
            _write_message(sock, ("skipped", None, writer.batch_no, writer.head_hash))
            continue
        tables, sessions = pickle.loads(payload)
        try:
            writer.commit(Batch(tables=tables, sessions=sessions))
        except Exception as exc:
            _write_message(sock, ("error", exc))
            continue
        _write_message(sock, ("ok", None, writer.batch_no, writer.head_hash))
    writer.close()


# ------------------------------------------------------------------ framing

# Every message on the socket is its length as 8 bytes little-endian, then the pickle.
# A request to commit also carries, after its length, the number the batch gets in the
# hash chain. A length of 0 ends the stream: the writer process closes the file and exits.
_HEADER = struct.Struct("<Q")
_REQUEST_HEADER = struct.Struct("<QQ")


def _frame_header(size: int) -> bytes:
    return _HEADER.pack(size)


def _read_request(sock: socket.socket) -> tuple[int, bytearray] | None:
    """Read one commit request (batch number, payload); None at the end of the stream."""
    header = _read_exactly(sock, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size == 0:
        return None
    rest = _read_exactly(sock, _REQUEST_HEADER.size - _HEADER.size + size)
    if rest is None:
        return None
    (batch_no,) = _HEADER.unpack_from(rest)
    return batch_no, rest[_HEADER.size:]


def _write_message(sock: socket.socket, message: Any) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_frame_header(len(payload)) + payload)


def _read_exactly(sock: socket.socket, size: int) -> bytearray | None:
    """Read ``size`` bytes from a blocking socket; None at the end of the stream."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    while view:
        received = sock.recv_into(view)
        if received == 0:
            return None
        view = view[received:]
    return buffer


def _read_frame(sock: socket.socket) -> bytearray | None:
    """Read one message's bytes from a blocking socket; None at the end of the stream."""
    header = _read_exactly(sock, _HEADER.size)
    if header is None:
        return None
    return _read_exactly(sock, _HEADER.unpack(header)[0])


# Replies are about 100 bytes, so one read usually contains a whole reply or several.
_READ_SIZE = 65536
# The send buffer asked for; a full batch of 5,000 rows is about 0.6 MB pickled.
_SEND_BUFFER_BYTES = 8 * 1024 * 1024
# A payload up to this size goes out in one send together with its header.
_SMALL_PAYLOAD = 65536
# The marker _handle_reply returns for a batch that the writer process skipped.
_SKIPPED = object()


class WriterProcess:
    """The parent's end of the writer process.

    The writer runs as ``python -m surveillance.audit_writer FD PATH PID`` with one end of
    a socket pair, so it never imports the caller's main module as multiprocessing's
    spawn would. :meth:`open`, :meth:`restart` and :meth:`close` block, so the event loop
    runs them in a thread. :meth:`send` and :meth:`receive` run on the event loop itself:
    a thread that hands each batch over would wait for the GIL while the loop is busy,
    sometimes for hundreds of milliseconds, and the writer process would wait with it.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.batch_no = 0
        self.head_hash = GENESIS_HASH
        # The next row key of each table in the file when the writer process last opened
        # it: every row below it had been committed by then.
        self.opened_next_ids: dict[str, int] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        # Bytes received from the writer process and not yet parsed into replies.
        self._received = bytearray()
        # A send or receive stopped half way (cancelled), so the stream is out of step.
        self._broken = False

    def open(self) -> StoredState:
        """Start the writer process and return the state it read from the file."""
        parent_end, child_end = socket.socketpair()
        fd = child_end.fileno()
        # The child imports surveillance from wherever this process did.
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        # sqlite-utils imports numpy, whose OpenBLAS starts a thread per core that spins
        # for a while: about 0.1 s of CPU at each start on bench/bench_audit.py's machine.
        # The writer never calls BLAS.
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "surveillance.audit_writer", str(fd), self.path,
                 str(os.getpid())],
                pass_fds=[fd], env=env,
            )
        finally:
            child_end.close()
        # A batch that fits in the socket's send buffer goes out in one call, without
        # waiting for turns of a busy event loop to send the rest. Linux caps the size at
        # net.core.wmem_max (212992 bytes by default) and then doubles it, so a default
        # system takes about 500 orders of bench/bench_audit.py's rows in one call.
        parent_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER_BYTES)
        self._sock = parent_end
        self._received.clear()
        self._broken = False
        stored = self._handle_reply(_read_frame(parent_end))
        if not isinstance(stored, StoredState):
            raise WriterProcessError(f"audit writer for {self.path!r} returned {stored!r} on open")
        self.opened_next_ids = dict(stored.next_ids)
        parent_end.setblocking(False)
        return stored

    def committed_at_open(self, batch: Batch) -> bool:
        """Return True when the file contained ``batch`` when the writer process opened it.

        A batch commits whole, so its first row decides. Batch numbers cannot decide: a
        new writer process commits a batch of its own at open (its clock_log row), which
        may take the number of a batch that its predecessor never committed.
        """
        for table, values in batch.tables.items():
            if values:
                # Every record starts with its row key (id, or seq for commands).
                return bool(values[0] < self.opened_next_ids.get(table, 1))
        return False

    def needs_restart(self) -> bool:
        """Return True when the writer process is gone or its stream is out of step."""
        return self._broken or self._process is None or self._process.poll() is not None

    def restart(self) -> None:
        """Stop what is left of the writer process and start a new one."""
        self.close()
        self.open()

    async def send(self, batch: Batch, batch_no: int) -> None:
        """Send the batch to the writer process, which commits it as batch ``batch_no``.

        :meth:`receive` returns the outcome, and the writer process replies in the order
        the batches were sent. It skips a batch whose number does not follow its last
        commit.
        """
        sock = self._socket()
        payload = batch.payload
        if payload is None:
            payload = dumps_batch(batch.tables, batch.sessions)
        loop = asyncio.get_running_loop()
        header = _REQUEST_HEADER.pack(len(payload), batch_no)
        try:
            if len(payload) <= _SMALL_PAYLOAD:
                await loop.sock_sendall(sock, header + payload)
            else:
                await loop.sock_sendall(sock, header)
                await loop.sock_sendall(sock, payload)
        except OSError as exc:
            self._broken = True
            raise WriterProcessError(f"audit writer for {self.path!r} is gone: {exc}") from exc
        except BaseException:
            self._broken = True
            raise

    async def receive(self) -> bool:
        """Wait for the outcome of the oldest batch sent; raise what its commit raised.

        Return True when it was committed, False when the writer process skipped it.
        """
        sock = self._socket()
        try:
            reply = await self._read_reply(sock)
        except OSError:
            reply = None
        except BaseException:
            self._broken = True
            raise
        return self._handle_reply(reply) is not _SKIPPED

    async def _read_reply(self, sock: socket.socket) -> bytes | None:
        """Return the next reply's bytes; None at the end of the stream."""
        loop = asyncio.get_running_loop()
        received = self._received
        while True:
            if len(received) >= _HEADER.size:
                end = _HEADER.size + _HEADER.unpack_from(received)[0]
                if len(received) >= end:
                    reply = bytes(received[_HEADER.size:end])
                    del received[:end]
                    return reply
            data = await loop.sock_recv(sock, _READ_SIZE)
            if not data:
                return None
            received += data

    def close(self) -> None:
        if self._sock is not None:
            if not self._broken:
                with contextlib.suppress(OSError):
                    self._sock.setblocking(True)
                    self._sock.sendall(_frame_header(0))
            self._sock.close()
            self._sock = None
        if self._process is not None:
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def _handle_reply(self, reply: bytes | bytearray | None) -> Any:
        if reply is None:
            self._broken = True
            code = self._process.poll() if self._process is not None else None
            raise WriterProcessError(
                f"audit writer for {self.path!r} exited (code {code!r}) before replying; "
                "check its standard error for the cause"
            )
        message = pickle.loads(reply)
        if message[0] == "error":
            raise message[1]
        outcome, result, self.batch_no, self.head_hash = message
        return _SKIPPED if outcome == "skipped" else result

    def _socket(self) -> socket.socket:
        if self._sock is None:
            raise RuntimeError(f"audit writer for {self.path!r} is not open")
        return self._sock


if __name__ == "__main__":
    # Ctrl-C reaches the whole process group. The appliance shuts down on it and closes
    # the socket, after which this process commits what it has and exits, so it ignores
    # SIGINT instead of printing a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Import under the package name, so what the socket carries names surveillance.audit_writer
    # classes rather than __main__ ones.
    from surveillance.audit_writer import serve as _serve

    _serve(socket.socket(fileno=int(sys.argv[1])), sys.argv[2], int(sys.argv[3]))
