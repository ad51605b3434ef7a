"""The SHA-256 hash chain over committed batches, and its verification.

Each batch the audit trail commits gets one ``audit_batches`` row, written in the same
transaction as the batch's rows::

    hash = SHA-256(prev_hash || header || row_1 || row_2 || ...)

``prev_hash`` is the previous batch's hash as 32 bytes (32 zero bytes for batch 1), the
header encodes ``(batch_no, committed_us, ranges)``, and the rows are every row of the
chained tables (see :data:`surveillance.audit_schema.CHAINED_TABLES`) in table order, then id
order. A row is encoded as the tuple of its column values in schema order with
:func:`marshal.dumps` format version 2, which is fixed, has no back-references (so equal
values always encode alike) and keeps int, str, bytes, float and None apart.

The chain alone proves every batch against the one before it. To name the first changed
row rather than only its batch, each batch also stores the CRC-32 of each encoded row.

NOTE: a chain cannot show that its newest batches were cut off together with their rows.
:func:`verify_chain` returns the head hash; keeping it outside the file (a log, a daily
report) closes that gap.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import marshal
import os
import sqlite3
import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from surveillance.audit_schema import CHAINED_TABLES, Table

__all__ = [
    "GENESIS_HASH", "ChainProblem", "ChainReport", "seal_batch", "seal_encoded", "verify_chain",
]

GENESIS_HASH = "0" * 64
_MARSHAL_VERSION = 2
_INSERT_SEAL = (
    "INSERT INTO audit_batches (batch_no, committed_us, row_count, ranges, row_crcs,"
    " prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def encode_row(row: tuple[Any, ...]) -> bytes:
    """Return the bytes of one row that the chain hashes."""
    return marshal.dumps(row, _MARSHAL_VERSION)


def _header(batch_no: int, committed_us: int, ranges: str) -> bytes:
    return marshal.dumps((batch_no, committed_us, ranges), _MARSHAL_VERSION)


def seal_batch(
    batch_no: int,
    prev_hash: str,
    committed_us: int,
    tables: Sequence[tuple[str, Sequence[tuple[Any, ...]]]],
) -> tuple[Any, ...]:
    """Return the ``audit_batches`` row that seals ``tables``: (name, rows) in chain order.

    Each row's first value is its id, and ids within a table run without gaps.
    """
    ranges: dict[str, tuple[int, int]] = {}
    encoded: list[bytes] = []
    for name, rows in tables:
        if rows:
            ranges[name] = (rows[0][0], rows[-1][0])
            # encode_row for each row, with marshal called from C rather than per row.
            encoded.extend(map(marshal.dumps, rows, itertools.repeat(_MARSHAL_VERSION)))
    crcs = struct.pack(f"<{len(encoded)}I", *map(zlib.crc32, encoded))
    return seal_encoded(batch_no, prev_hash, committed_us, ranges, b"".join(encoded), crcs)


def seal_encoded(
    batch_no: int,
    prev_hash: str,
    committed_us: int,
    ranges: Mapping[str, tuple[int, int]],
    encoded: bytes,
    row_crcs: bytes,
) -> tuple[Any, ...]:
    """Return the ``audit_batches`` row for rows that are already encoded.

    ``ranges`` maps each table with rows, in chain order, to its first and last id.
    ``encoded`` is every row's :func:`encode_row` bytes end to end, and ``row_crcs`` the
    CRC-32 of each, 4 bytes little-endian.
    """
    ranges_text = json.dumps(
        {name: [first, last] for name, (first, last) in ranges.items()}, separators=(",", ":")
    )
    digest = hashlib.sha256(bytes.fromhex(prev_hash))
    digest.update(_header(batch_no, committed_us, ranges_text))
    digest.update(encoded)
    return (
        batch_no, committed_us, len(row_crcs) // 4, ranges_text, row_crcs, prev_hash,
        digest.hexdigest(),
    )


def insert_seal(conn: Any, seal: tuple[Any, ...]) -> None:
    """Insert the row :func:`seal_batch` returned, inside the batch's transaction.

    ``conn`` is a :class:`sqlite3.Connection` or a ``surveillance._cwriter.Writer``.
    """
    conn.execute(_INSERT_SEAL, seal)


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """The first place where the file and its chain disagree."""

    batch_no: int | None
    table: str | None
    row_id: int | None
    text: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What :func:`verify_chain` checked, and the first problem found, if any."""

    batches: int
    rows: int
    head_hash: str
    problem: ChainProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


class _Mismatch(Exception):
    """Carries a ChainProblem out of the nested checks."""

    def __init__(self, problem: ChainProblem) -> None:
        super().__init__(problem.text)
        self.problem = problem


def verify_chain(db_path: str | os.PathLike[str]) -> ChainReport:
    """Check every batch's hash and every chained row; report the first problem.

    Finds a changed, deleted, inserted or reordered row (naming its table, id and batch),
    and a deleted, changed or reordered batch row.
    """
    path = os.fspath(db_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"audit trail {path!r} not found; pass the file the appliance writes")
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA query_only=ON")
        # One read transaction, so a running appliance's later commits are not half seen.
        conn.execute("BEGIN")
        verifier = _Verifier(conn)
        try:
            verifier.run()
        except _Mismatch as mismatch:
            return verifier.report(mismatch.problem)
        return verifier.report(None)


class _Verifier:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.prev_hash = GENESIS_HASH
        self.batches = 0
        self.rows = 0
        self.next_ids = {table.name: 1 for table in CHAINED_TABLES}

    def report(self, problem: ChainProblem | None) -> ChainReport:
        return ChainReport(self.batches, self.rows, self.prev_hash, problem)

    def run(self) -> None:
        cursor = self.conn.execute(
            "SELECT batch_no, committed_us, row_count, ranges, row_crcs, prev_hash, hash"
            " FROM audit_batches ORDER BY rowid"
        )
        for seal in cursor:
            self._check_batch(seal)
            self.batches += 1
        for table in CHAINED_TABLES:
            self._check_unsealed(table)

    def _check_batch(self, seal: tuple[Any, ...]) -> None:
        batch_no, committed_us, row_count, ranges_text, crc_blob, prev_hash, expected = seal
        expected_no = self.batches + 1
        if batch_no != expected_no:
            self._fail(batch_no, None, None,
                       f"batch {expected_no} expected, found batch {batch_no}: a batch row was "
                       "deleted, inserted or renumbered")
        if prev_hash != self.prev_hash:
            self._fail(batch_no, None, None,
                       f"batch {batch_no} names previous hash {prev_hash[:16]}…, but batch "
                       f"{batch_no - 1} hashes to {self.prev_hash[:16]}…")
        ranges = json.loads(ranges_text)
        crcs = _unpack_crcs(crc_blob, row_count, batch_no)

        digest = hashlib.sha256(bytes.fromhex(prev_hash))
        digest.update(_header(batch_no, committed_us, ranges_text))
        position = 0
        for table in CHAINED_TABLES:
            if table.name not in ranges:
                continue
            first, last = ranges[table.name]
            for row_id, encoded in self._table_rows(batch_no, table, first, last):
                if position >= len(crcs) or zlib.crc32(encoded) != crcs[position]:
                    self._fail(batch_no, table.name, row_id,
                               f"{table.name} row {row_id} differs from what batch {batch_no} "
                               "sealed: it was changed or moved")
                digest.update(encoded)
                position += 1
        if position != row_count:
            self._fail(batch_no, None, None,
                       f"batch {batch_no} sealed {row_count} rows, its ranges cover {position}")
        if digest.hexdigest() != expected:
            self._fail(batch_no, None, None,
                       f"batch {batch_no} hashes to {digest.hexdigest()[:16]}…, sealed as "
                       f"{expected[:16]}…: its batch row was changed")
        self.prev_hash = expected
        self.rows += row_count

    def _table_rows(
        self, batch_no: int, table: Table, first: int, last: int
    ) -> Iterator[tuple[int, bytes]]:
        if first != self.next_ids[table.name]:
            missing = self.next_ids[table.name]
            self._fail(batch_no, table.name, missing,
                       f"{table.name} rows from {missing} to {first - 1} are in no batch: "
                       f"batch {batch_no} starts at {first}")
        columns = ", ".join(table.column_names)
        sql = f"SELECT {columns} FROM {table.name} WHERE {table.pk} BETWEEN ? AND ? ORDER BY {table.pk}"
        expected_id = first
        for row in self.conn.execute(sql, (first, last)):
            if row[0] != expected_id:
                self._fail(batch_no, table.name, expected_id,
                           f"{table.name} row {expected_id} of batch {batch_no} is missing")
            yield expected_id, encode_row(row)
            expected_id += 1
        if expected_id <= last:
            self._fail(batch_no, table.name, expected_id,
                       f"{table.name} row {expected_id} of batch {batch_no} is missing")
        self.next_ids[table.name] = last + 1

    def _check_unsealed(self, table: Table) -> None:
        sql = f"SELECT min({table.pk}) FROM {table.name} WHERE {table.pk} >= ? OR {table.pk} < 1"
        (row_id,) = self.conn.execute(sql, (self.next_ids[table.name],)).fetchone()
        if row_id is not None:
            self._fail(None, table.name, row_id,
                       f"{table.name} row {row_id} is in no batch: it was inserted after the fact")

    def _fail(self, batch_no: int | None, table: str | None, row_id: int | None, text: str) -> None:
        raise _Mismatch(ChainProblem(batch_no, table, row_id, text))


def _unpack_crcs(blob: Any, row_count: int, batch_no: int) -> tuple[int, ...]:
    if not isinstance(blob, bytes) or len(blob) != 4 * row_count:
        raise _Mismatch(ChainProblem(
            batch_no, None, None,
            f"batch {batch_no} row_crcs holds {len(blob) if isinstance(blob, bytes) else blob!r} "
            f"bytes, expected {4 * row_count}",
        ))
    return struct.unpack(f"<{row_count}I", blob)
