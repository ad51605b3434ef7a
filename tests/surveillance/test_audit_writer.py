"""The writer process: batches in flight, skipped behind a failed one, and sent again in order."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import NoReturn

import pytest

from surveillance.audit import AuditTrail, AuditTrailError
from surveillance.audit_chain import verify_chain
from surveillance.audit_writer import Batch, WriterProcess, WriterProcessError

# Every test runs with both audit writers (tests/surveillance/conftest.py).
pytestmark = pytest.mark.usefixtures("writer")

SESSION = "FIX.4.4:VENUE->BRK1"
FAIL_SEQ_NUM = 25


def execute(path: Path, sql: str) -> None:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(sql)


def query(path: Path, sql: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        return conn.execute(sql).fetchall()


def fail_message(path: Path, msg_seq_num: int) -> None:
    execute(path, "CREATE TRIGGER fail BEFORE INSERT ON messages WHEN new.msg_seq_num = "
                  f"{msg_seq_num} BEGIN SELECT RAISE(ABORT, 'simulated disk full'); END")


def message_batch(first_id: int, count: int) -> Batch:
    batch = Batch()
    for row_id in range(first_id, first_id + count):
        batch.tables["messages"] += (row_id, row_id, SESSION, "out", "8", row_id, None, None, 0, b"8=")
    batch.rows = count
    return batch


def test_batch_behind_failed_one_skipped(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"

    async def scenario() -> list[bool]:
        process = WriterProcess(str(path))
        process.open()
        first, second = message_batch(1, 2), message_batch(3, 2)
        outcomes = []
        try:
            fail_message(path, 2)
            await process.send(first, process.batch_no + 1)
            await process.send(second, process.batch_no + 2)
            with pytest.raises(sqlite3.IntegrityError, match="simulated disk full"):
                await process.receive()
            outcomes.append(await process.receive())

            execute(path, "DROP TRIGGER fail")
            await process.send(first, process.batch_no + 1)
            await process.send(second, process.batch_no + 2)
            outcomes.append(await process.receive())
            outcomes.append(await process.receive())
        finally:
            process.close()
        return outcomes

    assert asyncio.run(scenario()) == [False, True, True]
    assert query(path, "SELECT id FROM messages") == [(1,), (2,), (3,), (4,)]
    assert verify_chain(path).ok


def test_trail_resends_batches_in_order(tmp_path: Path) -> None:
    """Full batches queued behind a failed commit go out again after it, in order."""
    path = tmp_path / "audit.db"

    async def scenario() -> int:
        trail = AuditTrail(path, max_batch_rows=10)
        await trail.start()
        fail_message(path, FAIL_SEQ_NUM)
        for turn in range(6):
            for msg_seq_num in range(10 * turn + 1, 10 * turn + 11):
                trail.record_message(SESSION, "out", b"8=", msg_type="8", msg_seq_num=msg_seq_num)
            # The end of each turn closes a full batch, so several wait behind the failure.
            await asyncio.sleep(0)
        with pytest.raises(Exception, match="simulated disk full"):
            await trail.flush()
        trail.check()
        assert trail.pending_rows > 0
        execute(path, "DROP TRIGGER fail")
        await trail.flush()
        trail.check()
        await trail.close()
        return trail.committed_rows

    assert asyncio.run(scenario()) == 60
    assert query(path, "SELECT msg_seq_num FROM messages ORDER BY id") == [
        (msg_seq_num,) for msg_seq_num in range(1, 61)
    ]
    assert verify_chain(path).ok



def _lose_next_reply(path: Path, writer: WriterProcess, reason: str) -> None:
    """Make the writer's next reply go missing: kill the writer process once the file has
    the messages, as a crash after the commit would."""
    receive = writer.receive

    async def lose_reply() -> bool:
        writer.receive = receive  # type: ignore[method-assign]
        # Start-up commits a batch of its own (the clock_log row), so wait for the messages.
        while query(path, "SELECT count(*) FROM messages") == [(0,)]:
            await asyncio.sleep(0.01)
        _kill(writer, reason)

    writer.receive = lose_reply  # type: ignore[method-assign]


def _lose_next_send(writer: WriterProcess, reason: str) -> None:
    """Kill the writer process instead of sending it the next batch."""
    send = writer.send

    async def die_before_send(batch: object, batch_no: int) -> None:
        writer.send = send  # type: ignore[method-assign]
        _kill(writer, reason)

    writer.send = die_before_send  # type: ignore[method-assign]


def _kill(writer: WriterProcess, reason: str) -> NoReturn:
    """Kill the writer process, as a crash would, and raise the error the trail receives."""
    assert writer._process is not None
    writer._process.kill()
    writer._process.wait()
    writer._broken = True
    raise WriterProcessError(reason)


def test_commit_before_lost_reply_kept_once(tmp_path: Path) -> None:
    """A writer process that dies after its commit but before the loop reads its reply.

    The successor reports the batch as committed, so the trail counts it, runs its
    callbacks and does not insert its rows again.
    """
    path = tmp_path / "audit.db"
    released: list[int] = []

    async def scenario() -> None:
        trail = AuditTrail(path)
        await trail.start()
        _lose_next_reply(path, trail._writer, "writer process killed after its commit")
        for msg_seq_num in range(1, 6):
            trail.record_message(SESSION, "out", b"8=", msg_type="8", msg_seq_num=msg_seq_num)
        trail.after_commit(lambda: released.append(1))
        with pytest.raises(AuditTrailError, match="killed after its commit"):
            await trail.flush()
        await trail.flush()
        assert trail.failed is None
        assert trail.committed_rows == 5
        trail.record_message(SESSION, "out", b"8=", msg_type="8", msg_seq_num=6)
        await trail.close()

    asyncio.run(scenario())
    assert released == [1]
    assert query(path, "SELECT msg_seq_num FROM messages ORDER BY id") == [(n,) for n in range(1, 7)]
    assert verify_chain(path).ok


def test_writer_lost_before_commit_resends(tmp_path: Path) -> None:
    """A writer process that dies before the batch reaches it.

    Its successor commits a clock_log batch at open, which takes the lost batch's
    number. The trail must still send the lost batch again, and run its callbacks only
    once it is in the file.
    """
    path = tmp_path / "audit.db"
    released: list[int] = []

    async def scenario() -> None:
        trail = AuditTrail(path)
        await trail.start()
        _lose_next_send(trail._writer, "writer process killed before the batch reached it")
        for msg_seq_num in range(1, 6):
            trail.record_message(SESSION, "out", b"8=", msg_type="8", msg_seq_num=msg_seq_num)
        trail.after_commit(lambda: released.append(len(query(path, "SELECT id FROM messages"))))
        with pytest.raises(AuditTrailError, match="killed before the batch"):
            await trail.flush()
        assert released == []
        await trail.flush()
        assert trail.failed is None
        assert trail.committed_rows == 5
        await trail.close()

    asyncio.run(scenario())
    assert released == [5]
    assert query(path, "SELECT msg_seq_num FROM messages ORDER BY id") == [(n,) for n in range(1, 6)]
    assert verify_chain(path).ok


def test_lost_upsert_batch_not_replayed(tmp_path: Path) -> None:
    """A batch of session_store upserts only, committed before the writer process died.

    It has no row key to look up, but a later batch that was committed with it shows
    that it is in the file. Sending it again would put back the older MsgSeqNum (34)
    state over the later batch's upsert.
    """
    path = tmp_path / "audit.db"

    async def scenario() -> None:
        trail = AuditTrail(path)
        await trail.start()
        # Both batches are in the file once the second one's message is.
        _lose_next_reply(path, trail._writer, "writer process killed after its commits")
        trail.save_session_state(SESSION, next_sender_seq_num=5, next_target_seq_num=5)
        trail._close_open_batch()
        trail.record_message(SESSION, "out", b"8=", msg_type="8", msg_seq_num=5)
        trail.save_session_state(SESSION, next_sender_seq_num=6, next_target_seq_num=5)
        trail._close_open_batch()
        with pytest.raises(AuditTrailError, match="killed after its commits"):
            await trail.flush()
        await trail.flush()
        assert trail.failed is None
        assert trail.committed_rows == 3
        await trail.close()

    asyncio.run(scenario())
    stored = query(path, "SELECT next_sender_seq_num, next_target_seq_num FROM session_store")
    assert stored == [(6, 5)]
    assert query(path, "SELECT msg_seq_num FROM messages") == [(5,)]
    assert verify_chain(path).ok
