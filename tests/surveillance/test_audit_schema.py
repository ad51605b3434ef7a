"""The audit schema's index set: the lookups the appliance and compliance run use an index."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from pathlib import Path

import pytest

from surveillance.audit import AuditTrail


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schema") / "audit.db"

    async def create() -> None:
        trail = AuditTrail(path)
        await trail.start()
        await trail.close()

    asyncio.run(create())
    return path


@pytest.mark.parametrize(
    ("sql", "index"),
    [
        ("SELECT msg_seq_num FROM messages WHERE session_id = ? AND direction = 'out'"
         " AND msg_seq_num BETWEEN ? AND ?", "idx_messages_outbound"),
        ("SELECT id FROM messages WHERE cl_ord_id = ?", "idx_messages_cl_ord_id"),
        ("SELECT id FROM messages WHERE session_id = ? AND msg_type IN ('2', '4')",
         "idx_messages_resends"),
        ("SELECT id FROM messages WHERE session_id = ? AND poss_dup = 1", "idx_messages_poss_dup"),
        ("SELECT seq FROM commands WHERE cl_ord_id = ?", "idx_commands_cl_ord_id"),
        ("SELECT seq FROM commands WHERE orig_cl_ord_id = ?", "idx_commands_orig_cl_ord_id"),
        ("SELECT id FROM events WHERE cl_ord_id = ?", "idx_events_cl_ord_id"),
        ("SELECT id FROM events WHERE order_id = ?", "idx_events_order_id"),
        ("SELECT id FROM events WHERE contra_order_id = ?", "idx_events_contra_order_id"),
        ("SELECT id FROM decisions WHERE cl_ord_id = ?", "idx_decisions_cl_ord_id"),
        ("SELECT id FROM decisions WHERE accepted = 0 AND ts_us >= ?", "idx_decisions_rejects"),
    ],
    ids=[
        "resend", "message-cl-ord-id", "resends-report", "poss-dup-report", "command-cl-ord-id",
        "command-orig-cl-ord-id", "event-cl-ord-id", "event-order-id", "event-contra",
        "decision-cl-ord-id", "rejects",
    ],
)
def test_lookup_uses_index(empty_db: Path, sql: str, index: str) -> None:
    with contextlib.closing(sqlite3.connect(empty_db)) as conn:
        plan = conn.execute(f"EXPLAIN QUERY PLAN {sql}", [1] * sql.count("?")).fetchall()
    details = " ".join(row[3] for row in plan)
    assert re.search(rf"USING (COVERING )?INDEX {index} ", details), details
