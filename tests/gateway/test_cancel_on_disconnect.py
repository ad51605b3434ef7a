"""Cancel-on-disconnect over real TCP: a session with CancelOnDisconnect=Y loses its
resting orders when its connection ends, gets the cancels by resend, and the audit trail
records the event with the command that canceled them."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fixsupport import ApplianceThread, RawFixClient, new_order_fields
from gateway.appliance import Appliance
from gateway.settings import default_session_settings
from gateway.venue import default_venue_config

BRK1 = "FIX.4.4:FIXGW->BRK1"
BRK2 = "FIX.4.4:FIXGW->BRK2"


def _start(db: Path) -> ApplianceThread:
    sessions = [
        dataclasses.replace(s, cancel_on_disconnect=s.session_id == BRK1)
        for s in default_session_settings(port=0)
    ]
    venue = ApplianceThread(Appliance(sessions, default_venue_config(), audit_path=db))
    venue.start()
    return venue


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    return tmp_path / "audit.sqlite"


def _resting(venue: ApplianceThread, session_id: str) -> list[str]:
    def read() -> list[str]:
        book = venue.appliance.engine.book("AAPL")
        return [o.cl_ord_id for o in book.orders() if o.session_id == session_id]

    return venue.call(read)


def _wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the appliance"
        time.sleep(0.02)


def _place(client: RawFixClient, *cl_ord_ids: str) -> None:
    for cl_ord_id in cl_ord_ids:
        client.send("D", new_order_fields(cl_ord_id, side="1", qty=100, price="90.00"))
        assert client.receive_type("8").get(150) == b"0"


def _session_events(db: Path, kind: str) -> list[tuple[str, int | None, str]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT session_id, command_seq, text FROM session_events WHERE kind = ?", (kind,)
        ).fetchall()


def test_disconnect_cancels_resting_orders(db: Path) -> None:
    venue = _start(db)
    try:
        broker = RawFixClient(venue.port)
        broker.logon()
        _place(broker, "COD-1", "COD-2")
        broker.close()
        _wait_until(lambda: not _resting(venue, BRK1))

        # The cancels took MsgSeqNum (34) 4 and 5; the next Logon shows the gap.
        again = RawFixClient(venue.port)
        again.next_seq_num = broker.next_seq_num
        logon = again.logon()
        assert int(logon.get(34)) == 6
        again.send("2", [(7, 4), (16, 0)])
        cancels = [again.receive_type("8"), again.receive_type("8")]
        assert [m.get(11) for m in cancels] == [b"COD-1", b"COD-2"]
        assert {m.get(150) for m in cancels} == {b"4"}
        assert {m.get(43) for m in cancels} == {b"Y"}
        assert b"CancelOnDisconnect=Y" in cancels[0].get(58)
        again.close()
        _wait_until(lambda: venue.call(lambda: BRK1 not in venue.appliance._logged_on))
    finally:
        venue.stop()
    disconnects = [text for _, _, text in _session_events(db, "DISCONNECT")]
    assert disconnects[0].startswith("connection closed by the peer without Logout; ")
    # The second disconnect, with nothing left to cancel, is recorded too.
    events = _session_events(db, "CANCEL_ON_DISCONNECT")
    assert [(session_id, text) for session_id, _, text in events] == [
        (BRK1, "2 resting orders canceled"), (BRK1, "0 resting orders canceled"),
    ]
    assert all(command_seq is not None for _, command_seq, _ in events)


def test_session_without_setting_keeps_orders(db: Path) -> None:
    venue = _start(db)
    try:
        broker = RawFixClient(venue.port, sender="BRK2")
        broker.logon()
        _place(broker, "KEEP-1")
        broker.close()
        _wait_until(lambda: venue.call(lambda: BRK2 not in venue.appliance._logged_on))
        assert _resting(venue, BRK2) == ["KEEP-1"]
    finally:
        venue.stop()
    assert _session_events(db, "CANCEL_ON_DISCONNECT") == []


def test_venue_shutdown_keeps_orders(db: Path) -> None:
    venue = _start(db)
    broker = RawFixClient(venue.port)
    broker.logon()
    _place(broker, "STAY-1")
    venue.stop()
    broker.close()
    assert _session_events(db, "CANCEL_ON_DISCONNECT") == []

    restarted = _start(db)
    try:
        assert _resting(restarted, BRK1) == ["STAY-1"]
    finally:
        restarted.stop()
