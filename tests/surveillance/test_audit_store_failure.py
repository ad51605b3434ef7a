"""A full disk or a read-only audit trail stops order entry; nothing unrecorded goes out."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixsupport import ApplianceThread, RawFixClient, new_order_fields
from gateway.appliance import Appliance
from gateway.settings import default_session_settings
from gateway.venue import default_venue_config
from surveillance.audit_chain import verify_chain
from surveillance.audit_guard import REJECT_TEXT

# Every test runs with both audit writers (tests/surveillance/conftest.py).
pytestmark = pytest.mark.usefixtures("writer")

FAIL_INSERTS = (
    "CREATE TRIGGER fail_inserts BEFORE INSERT ON messages"
    " BEGIN SELECT RAISE(ABORT, 'simulated disk full'); END"
)
NO_ANSWER_S = 0.5

def execute(path: Path, sql: str) -> None:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(sql)


def start_venue(db: Path) -> ApplianceThread:
    sessions = [dataclasses.replace(s) for s in default_session_settings(port=0)]
    venue = ApplianceThread(Appliance(sessions, default_venue_config(), audit_path=db))
    venue.start()
    return venue


@pytest.fixture()
def venue(tmp_path: Path) -> Iterator[ApplianceThread]:
    venue = start_venue(tmp_path / "audit.sqlite")
    yield venue
    venue.stop()


def assert_no_answer(client: RawFixClient) -> None:
    with pytest.raises((AssertionError, TimeoutError)):
        client.receive(NO_ANSWER_S)


def test_failed_store_rejects_new_orders(
    venue: ApplianceThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "audit.sqlite"
    client = RawFixClient(venue.port)
    client.logon()
    client.send("D", new_order_fields("BEFORE", side="2", price="101.00"))
    assert client.receive_type("8").get(39) == b"0"

    execute(db, FAIL_INSERTS)
    with caplog.at_level(logging.ERROR):
        # The first order after the failure is matched before the commit fails: the
        # engine accepted it, but its report waits in memory with everything else.
        client.send("D", new_order_fields("DURING-1"))
        assert_no_answer(client)
        assert "order entry stopped" in caplog.text
        client.send("D", new_order_fields("DURING-2"))
        client.send("G", [(41, "BEFORE"), (11, "REPLACE-1"), (55, "AAPL"), (54, "2"),
                          (60, "20240101-00:00:00"), (38, 100), (40, "2"), (44, "101.50")])
        assert_no_answer(client)

    execute(db, "DROP TRIGGER fail_inserts")
    reports = [client.receive(5.0) for _ in range(3)]
    by_cl_ord_id = {m.get(11).decode(): m for m in reports}
    assert by_cl_ord_id["DURING-1"].get(150) == b"0"
    rejected = by_cl_ord_id["DURING-2"]
    assert (rejected.get(150), rejected.get(103), rejected.get(58).decode()) == (b"8", b"2", REJECT_TEXT)
    assert by_cl_ord_id["REPLACE-1"].get(35) == b"9"

    client.send("D", new_order_fields("AFTER"))
    assert client.receive_type("8").get(39) == b"0"
    client.close()


def test_failed_store_journal_and_chain(venue: ApplianceThread, tmp_path: Path) -> None:
    db = tmp_path / "audit.sqlite"
    client = RawFixClient(venue.port)
    client.logon()
    execute(db, FAIL_INSERTS)
    client.send("D", new_order_fields("D1"))
    assert_no_answer(client)
    client.send("D", new_order_fields("D2"))
    assert_no_answer(client)
    execute(db, "DROP TRIGGER fail_inserts")
    client.receive(5.0)
    client.receive(5.0)
    client.close()
    venue.call(lambda: None)

    with contextlib.closing(sqlite3.connect(db)) as conn:
        types = conn.execute("SELECT cl_ord_id, type FROM commands ORDER BY seq").fetchall()
    assert types == [("D1", "NewOrder"), ("D2", "RejectOrder")]
    assert verify_chain(db).ok


def _can_mount_tmpfs(folder: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)],
                            capture_output=True)
    return result.returncode == 0


@pytest.fixture()
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "tiny"
    folder.mkdir()
    if not _can_mount_tmpfs(folder):
        pytest.skip("mounting a 4 MiB tmpfs needs root and mount(8)")
    yield folder
    # Lazy, so a file still open after a failed test cannot keep the mount behind.
    subprocess.run(["umount", "--lazy", str(folder)], check=True)


def fill(folder: Path) -> Path:
    """Write a file until the filesystem is full; return it."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as stream:
        with contextlib.suppress(OSError):
            while True:
                stream.write(b"\0" * 4096)
    return filler


def test_full_disk_stops_and_resumes(tiny_disk: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tiny_disk / "audit.sqlite"
    venue = start_venue(db)
    client = RawFixClient(venue.port)
    try:
        client.logon()
        filler = fill(tiny_disk)
        unanswered = None
        with caplog.at_level(logging.ERROR):
            # The WAL may still have room for a few commits, so send until one gets no reply.
            for number in range(500):
                cl_ord_id = f"FULL-{number}"
                client.send("D", new_order_fields(cl_ord_id, price="100.00"))
                try:
                    client.receive(NO_ANSWER_S)
                except (AssertionError, TimeoutError):
                    unanswered = cl_ord_id
                    break
        assert unanswered is not None, "the audit trail never ran out of space"
        assert "order entry stopped" in caplog.text
        client.send("D", new_order_fields("WHILE-FULL"))
        assert_no_answer(client)

        filler.unlink()
        answers = {client.receive(5.0).get(11).decode() for _ in range(2)}
        assert answers == {unanswered, "WHILE-FULL"}
    finally:
        with contextlib.suppress(OSError):
            client.close()
        venue.stop()
    assert verify_chain(db).ok
