"""The batch hash chain: sealing on commit, and verify_chain finding each kind of tampering."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

from engine.commands import NewOrder
from engine.orders import PRICE_SCALE, OrdType, Side
from surveillance.audit import AuditTrail, HaltAction
from surveillance.audit_chain import GENESIS_HASH, verify_chain

# Every test runs with both audit writers (tests/surveillance/conftest.py).
pytestmark = pytest.mark.usefixtures("writer")

SESSION = "FIX.4.4:VENUE->BRK1"

def execute(path: Path, *statements: str) -> None:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for statement in statements:
            conn.execute(statement)


def query(path: Path, sql: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        return conn.execute(sql).fetchall()


def write_batches(path: Path, batches: int = 3, per_batch: int = 4) -> None:
    """Write ``batches`` commits of messages, commands and alerts."""

    async def scenario() -> None:
        trail = AuditTrail(path)
        await trail.start()
        for batch in range(batches):
            for index in range(per_batch):
                number = batch * per_batch + index + 1
                trail.record_message(
                    SESSION, "in", f"8=FIX.4.4\x0134={number}\x01".encode(), msg_type="D",
                    msg_seq_num=number, cl_ord_id=f"C{number}",
                )
                order = NewOrder(SESSION, f"C{number}", "AAPL", Side.BUY, OrdType.LIMIT, 10,
                                 100 * PRICE_SCALE)
                trail.record_command(order)
            trail.record_alert(
                detector="wash_trade", version="1", score=1, threshold=1.0, action="LOGGED",
                text="same session", features={"trades": 1},
            )
            await trail.flush()
        await trail.close()

    asyncio.run(scenario())


@pytest.fixture
def sealed_db(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    write_batches(path)
    return path


def test_chain_links_batches(sealed_db: Path) -> None:
    seals = query(sealed_db, "SELECT batch_no, row_count, prev_hash, hash FROM audit_batches")
    # Batch 1 holds the clock_log row of start().
    assert [seal[:2] for seal in seals] == [(1, 1), (2, 9), (3, 9), (4, 9)]
    assert seals[0][2] == GENESIS_HASH
    for before, after in zip(seals, seals[1:]):
        assert after[2] == before[3]


def test_verify_passes_untouched(sealed_db: Path) -> None:
    report = verify_chain(sealed_db)
    assert report.ok
    assert report.problem is None
    assert report.batches == 4
    assert report.rows == 28
    assert report.head_hash == query(sealed_db, "SELECT max(hash) FROM audit_batches WHERE batch_no = 4")[0][0]


def test_verify_passes_across_restart(sealed_db: Path) -> None:
    write_batches(sealed_db, batches=1)
    report = verify_chain(sealed_db)
    assert report.ok, report.problem
    assert report.batches == 6


@pytest.mark.parametrize(
    ("statements", "table", "row_id", "batch_no"),
    [
        (["UPDATE messages SET msg_seq_num = 99 WHERE id = 6"], "messages", 6, 3),
        (["UPDATE commands SET body = replace(body, '10', '11') WHERE seq = 2"], "commands", 2, 2),
        (["UPDATE alerts SET score = 0.5 WHERE id = 3"], "alerts", 3, 4),
        (["DELETE FROM messages WHERE id = 7"], "messages", 7, 3),
        (["DELETE FROM messages WHERE id = 12"], "messages", 12, 4),
        (
            [
                "UPDATE messages SET id = 100 WHERE id = 5",
                "UPDATE messages SET id = 5 WHERE id = 6",
                "UPDATE messages SET id = 6 WHERE id = 100",
            ],
            "messages", 5, 3,
        ),
        (
            ["INSERT INTO messages (id, ts_us, session_id, direction, msg_type, poss_dup, raw)"
             " VALUES (13, 1, 'X', 'in', 'D', 0, x'00')"],
            "messages", 13, None,
        ),
        (["UPDATE messages SET cl_ord_id = NULL WHERE id = 1"], "messages", 1, 2),
        (["UPDATE messages SET raw = CAST(raw AS TEXT) WHERE id = 1"], "messages", 1, 2),
    ],
    ids=[
        "edited-message", "edited-command", "edited-alert", "deleted-row", "deleted-last-row",
        "swapped-rows", "inserted-row", "nulled-value", "retyped-value",
    ],
)
def test_verify_names_first_bad_row(
    sealed_db: Path, statements: list[str], table: str, row_id: int, batch_no: int | None
) -> None:
    execute(sealed_db, *statements)
    report = verify_chain(sealed_db)
    assert not report.ok
    assert report.problem is not None
    assert report.problem.table == table
    assert report.problem.row_id == row_id
    assert report.problem.batch_no == batch_no


@pytest.mark.parametrize(
    ("statement", "batch_no", "text"),
    [
        ("DELETE FROM audit_batches WHERE batch_no = 2", 3, "batch 2 expected"),
        ("UPDATE audit_batches SET committed_us = committed_us + 1 WHERE batch_no = 3", 3,
         "batch row was changed"),
        ("UPDATE audit_batches SET hash = prev_hash WHERE batch_no = 2", 2,
         "batch row was changed"),
        ("UPDATE audit_batches SET prev_hash = hash WHERE batch_no = 3", 3, "previous hash"),
        ("UPDATE audit_batches SET row_crcs = x'00' WHERE batch_no = 2", 2, "row_crcs"),
    ],
    ids=["deleted-batch", "edited-batch", "rehashed-batch", "relinked-batch", "truncated-crcs"],
)
def test_verify_names_bad_batch(sealed_db: Path, statement: str, batch_no: int, text: str) -> None:
    execute(sealed_db, statement)
    report = verify_chain(sealed_db)
    assert report.problem is not None
    assert report.problem.batch_no == batch_no
    assert text in report.problem.text


def test_verify_finds_rows_of_deleted_batch(sealed_db: Path) -> None:
    """Deleting a whole batch with its rows still breaks the link to the next batch."""
    execute(
        sealed_db,
        "DELETE FROM messages WHERE id BETWEEN 5 AND 8",
        "DELETE FROM commands WHERE seq BETWEEN 5 AND 8",
        "DELETE FROM alerts WHERE id = 2",
        "DELETE FROM audit_batches WHERE batch_no = 3",
    )
    report = verify_chain(sealed_db)
    assert report.problem is not None
    assert report.problem.batch_no == 4


def test_verify_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.db"):
        verify_chain(tmp_path / "missing.db")


def test_failed_commit_keeps_chain(tmp_path: Path) -> None:
    """A commit that fails leaves no seal behind, and the retry seals the same rows."""
    path = tmp_path / "audit.db"

    async def scenario() -> None:
        trail = AuditTrail(path)
        await trail.start()
        execute(path, "CREATE TRIGGER fail BEFORE INSERT ON halts BEGIN SELECT RAISE(ABORT, 'full'); END")
        trail.record_halt(HaltAction.HALT, actor="ops", scope="AAPL", reason="news")
        with pytest.raises(Exception, match="full"):
            await trail.flush()
        execute(path, "DROP TRIGGER fail")
        await trail.flush()
        await trail.close()

    asyncio.run(scenario())
    assert verify_chain(path).ok
    assert query(path, "SELECT batch_no, row_count FROM audit_batches") == [(1, 1), (2, 1)]
