"""The audit writer's C path: rows bound and encoded by ``surveillance._cwriter``.

:class:`NativeWriter` commits a batch as :class:`surveillance.audit_writer.BatchWriter`
does in Python, with the same rows and the same hash chain, so ``fixgw audit verify``
checks a file written by either. The C extension builds the ``events`` and ``commands``
rows from the records that the event loop keeps (see :mod:`surveillance.audit_rows`),
binds every value straight into prepared INSERT statements, and encodes each row for the
chain as it goes. Python still hashes the batch and writes the seal. It also builds the
rare rows that the extension leaves to it: alerts, RejectOrder commands, events with
fields that have no column of their own, and commands with a value other than None,
bool, int and str.

The extension is optional. :func:`load_cwriter` returns None when it is not built, or
when the environment sets ``FIXGW_NO_EXTENSIONS`` to anything but "" or "0", and the writer
then runs in Python.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from types import ModuleType
from typing import Any

from surveillance.audit_chain import insert_seal, seal_encoded
from surveillance.audit_rows import (
    alert_row,
    command_row,
    command_widths,
    event_row,
    native_command_layouts,
    native_event_layouts,
    split_records,
)
from surveillance.audit_schema import CHAINED_TABLES, insert_sql

__all__ = ["NO_EXTENSIONS_ENV", "NativeWriter", "load_cwriter"]

NO_EXTENSIONS_ENV = "FIXGW_NO_EXTENSIONS"

_INSERTS = tuple(insert_sql(table) for table in CHAINED_TABLES)
_INDEX = {table.name: index for index, table in enumerate(CHAINED_TABLES)}
_WIDTHS = {table.name: len(table.columns) for table in CHAINED_TABLES}


def load_cwriter() -> ModuleType | None:
    """Return the ``surveillance._cwriter`` module, or None when it is not built or disabled."""
    if os.environ.get(NO_EXTENSIONS_ENV, "") not in ("", "0"):
        return None
    try:
        from surveillance import _cwriter
    except ImportError:
        return None
    return _cwriter


class NativeWriter:
    """A second connection to an open audit file, through which every batch commits.

    The caller creates the file, its schema and WAL mode first; ``pragmas`` are the
    per-connection settings to apply, such as ``PRAGMA synchronous=NORMAL``.
    """

    def __init__(self, module: ModuleType, path: str, pragmas: Sequence[str]) -> None:
        self.path = path
        self._writer = module.Writer(path, _INSERTS)
        for pragma in pragmas:
            self._writer.execute(pragma)
        self._event_layouts = native_event_layouts()
        self._command_layouts = native_command_layouts()
        self._command_widths = command_widths()

    def commit(
        self,
        batch_no: int,
        prev_hash: str,
        clock: Callable[[], int],
        tables: dict[str, list[Any]],
        sessions: Iterable[tuple[Any, ...]],
        upsert_sql: str,
    ) -> tuple[Any, ...]:
        """Insert a batch's records and its seal in one transaction; return the seal row.

        ``tables`` maps each chained table to its flat list of records, as
        :class:`surveillance.audit_writer.Batch` keeps them.
        """
        writer = self._writer
        writer.execute("BEGIN")
        try:
            ranges = self._insert_tables(tables)
            for session in sessions:
                writer.execute(upsert_sql, session)
            encoded, crcs = writer.take_encoded()
            seal = seal_encoded(batch_no, prev_hash, clock(), ranges, encoded, crcs)
            insert_seal(writer, seal)
            writer.execute("COMMIT")
        except BaseException:
            writer.take_encoded()
            # SQLite rolls back by itself after some errors (SQLITE_FULL among them).
            if writer.in_transaction:
                writer.execute("ROLLBACK")
            raise
        return seal

    def close(self) -> None:
        self._writer.close()

    def _insert_tables(self, tables: dict[str, list[Any]]) -> dict[str, tuple[int, int]]:
        """Insert every chained table's records in chain order; return their id ranges."""
        ranges = {}
        for table in CHAINED_TABLES:
            values = tables[table.name]
            if values:
                ranges[table.name] = self._insert(table.name, values)
        return ranges

    def _insert(self, name: str, values: list[Any]) -> tuple[int, int]:
        writer = self._writer
        index = _INDEX[name]
        if name == "events":
            return writer.insert_events(index, values, self._event_layouts, event_row)
        if name == "commands":
            return writer.insert_commands(
                index, values, self._command_layouts, self._command_widths, command_row
            )
        if name == "alerts":
            # Features may still be a dict; alerts are rare, so Python writes their JSON.
            rows = map(alert_row, split_records(name, values))
            values = [value for row in rows for value in row]
        return writer.insert_rows(index, values, _WIDTHS[name])
