"""Appliance wiring over real TCP: GTD expiry, market data and self-match prevention."""

from __future__ import annotations

import dataclasses
import datetime
import time
from pathlib import Path

import pytest

from engine.instrument import Firm
from engine.orders import SelfMatchPrevention
from fixsupport import ApplianceThread, RawFixClient, new_order_fields, utc_now
from gateway.appliance import Appliance
from gateway.errors import ConfigError
from gateway.settings import default_session_settings
from gateway.venue import default_venue_config

BRK1 = "FIX.4.4:FIXGW->BRK1"
BRK2 = "FIX.4.4:FIXGW->BRK2"


def _start(db: Path, firms: tuple[Firm, ...] = ()) -> ApplianceThread:
    venue_config = dataclasses.replace(default_venue_config(), firms=firms)
    venue = ApplianceThread(Appliance(default_session_settings(port=0), venue_config, audit_path=db))
    venue.start()
    return venue


@pytest.fixture()
def venue(tmp_path: Path):
    venue = _start(tmp_path / "audit.sqlite")
    yield venue
    venue.stop()


def _utc_in(seconds: float) -> str:
    moment = time.time() + seconds
    return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(moment)) + f".{int(moment % 1 * 1000):03d}"


def test_gtd_order_expires_at_expire_time(venue: ApplianceThread) -> None:
    client = RawFixClient(venue.port)
    client.logon()
    fields = [(t, "6" if t == 59 else v) for t, v in new_order_fields("GTD-1", price="50.00")]
    client.send("D", fields + [(126, _utc_in(1.0))])
    ack = client.receive_type("8")
    assert ack.get(150) == b"0"

    expired = client.receive_type("8", timeout_s=5)
    assert expired.get(150) == b"C"
    assert expired.get(39) == b"C"
    assert expired.get(11) == b"GTD-1"
    assert expired.get(151) == b"0"
    client.close()


def test_market_data_snapshot_shows_book(venue: ApplianceThread) -> None:
    maker = RawFixClient(venue.port)
    maker.logon()
    maker.send("D", new_order_fields("BID-1", side="1", qty=300, price="99.50"))
    maker.receive_type("8")

    viewer = RawFixClient(venue.port, sender="BRK2")
    viewer.logon()
    viewer.send("V", [(262, "MD-1"), (263, "0"), (264, 5), (267, 2), (269, "0"), (269, "1"),
                      (146, 1), (55, "AAPL")])
    snapshot = viewer.receive_type("W")
    assert snapshot.get(262) == b"MD-1"
    assert snapshot.get(55) == b"AAPL"
    assert snapshot.get(269) == b"0"
    assert snapshot.get(270) == b"99.5"
    assert snapshot.get(271) == b"300"
    maker.close()
    viewer.close()


def test_market_data_unknown_symbol_rejected(venue: ApplianceThread) -> None:
    viewer = RawFixClient(venue.port)
    viewer.logon()
    viewer.send("V", [(262, "MD-2"), (263, "0"), (264, 1), (267, 1), (269, "0"),
                      (146, 1), (55, "NOPE")])
    reject = viewer.receive_type("Y")
    assert reject.get(262) == b"MD-2"
    assert reject.get(281) == b"0"
    viewer.close()


def test_same_firm_orders_do_not_trade(tmp_path: Path) -> None:
    firm = Firm(name="Alpha", session_ids=(BRK1, BRK2),
                self_match_prevention=SelfMatchPrevention.CANCEL_RESTING)
    venue = _start(tmp_path / "audit.sqlite", firms=(firm,))
    try:
        seller = RawFixClient(venue.port, sender="BRK1")
        seller.logon()
        seller.send("D", new_order_fields("ASK-1", side="2", qty=100, price="80.00"))
        seller.receive_type("8")

        buyer = RawFixClient(venue.port, sender="BRK2")
        buyer.logon()
        buyer.send("D", new_order_fields("BUY-1", side="1", qty=100, price="80.00"))
        buyer_ack = buyer.receive_type("8")
        assert buyer_ack.get(150) == b"0"

        canceled = seller.receive_type("8")
        assert canceled.get(11) == b"ASK-1"
        assert canceled.get(150) == b"4"
        assert canceled.get(14) == b"0"
        assert venue.appliance.stats.executions == 0
        seller.close()
        buyer.close()
    finally:
        venue.stop()


def test_day_orders_expire_at_end_of_day(tmp_path: Path) -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    end_of_day = (now + datetime.timedelta(seconds=1.5)).time()
    if end_of_day < now.time():
        pytest.skip("end of day would fall after midnight UTC; run again in two seconds")
    venue_config = dataclasses.replace(default_venue_config(), end_of_day=end_of_day)
    venue = ApplianceThread(
        Appliance(default_session_settings(port=0), venue_config, audit_path=tmp_path / "a.sqlite")
    )
    venue.start()
    try:
        client = RawFixClient(venue.port)
        client.logon()
        client.send("D", new_order_fields("DAY-1", price="70.00", tif="0"))
        client.receive_type("8")
        client.send("D", new_order_fields("GTC-1", price="69.00", tif="1"))
        client.receive_type("8")

        expired = client.receive_type("8", timeout_s=5)
        assert expired.get(11) == b"DAY-1"
        assert expired.get(150) == b"C"
        assert expired.get(39) == b"C"
        client.send("H", [(11, "GTC-1"), (55, "AAPL"), (54, "1")])
        status = client.receive_type("8")
        assert status.get(39) == b"0"
        client.close()
    finally:
        venue.stop()


def test_poss_resend_of_finished_order_not_booked(venue: ApplianceThread) -> None:
    client = RawFixClient(venue.port)
    client.logon()
    client.send("D", new_order_fields("PR-1", price="60.00"))
    order_id = client.receive_type("8").get(37)
    client.send("F", [(41, "PR-1"), (11, "PR-1-X"), (55, "AAPL"), (54, "1"), (60, utc_now())])
    assert client.receive_type("8").get(150) == b"4"

    client.send("D", new_order_fields("PR-1", price="60.00"), header=[(97, "Y")])
    status = client.receive_type("8")
    assert status.get(150) == b"I"
    assert status.get(39) == b"4"
    assert status.get(37) == order_id

    bids = venue.call(lambda: venue.appliance.engine.book("AAPL").best_bid())
    assert bids is None
    client.close()


def test_poss_resend_of_new_order_booked(venue: ApplianceThread) -> None:
    client = RawFixClient(venue.port)
    client.logon()
    client.send("D", new_order_fields("PR-2", price="61.00"), header=[(97, "Y")])
    ack = client.receive_type("8")
    assert ack.get(150) == b"0"
    client.close()


@pytest.mark.parametrize("session_id", ["FIX.4.4:FIXGW->BRK9", "FIX.4.4:FIXGW-BRK3"])
def test_firm_with_unknown_session_rejected(tmp_path: Path, session_id: str) -> None:
    firm = Firm(name="Alpha", session_ids=(BRK1, session_id))
    venue_config = dataclasses.replace(default_venue_config(), firms=(firm,))
    with pytest.raises(ConfigError, match=f"firm 'Alpha' .* session '{session_id}'.*BRK1"):
        Appliance(default_session_settings(port=0), venue_config, audit_path=tmp_path / "a.db")
