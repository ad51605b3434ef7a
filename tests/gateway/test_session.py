"""Session layer over real TCP: logon, heartbeats, gaps, resends, resets, rejects, restart."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from fixsupport import ApplianceThread, RawFixClient, new_order_fields, utc_now
from gateway.appliance import Appliance
from gateway.settings import default_session_settings
from gateway.venue import default_venue_config


def _start(db: Path, **overrides) -> ApplianceThread:  # type: ignore[no-untyped-def]
    sessions = [dataclasses.replace(s, **overrides) for s in default_session_settings(port=0)]
    venue = ApplianceThread(Appliance(sessions, default_venue_config(), audit_path=db))
    venue.start()
    return venue


@pytest.fixture()
def venue(tmp_path: Path):
    venue = _start(tmp_path / "audit.sqlite")
    yield venue
    venue.stop()


@pytest.fixture()
def client(venue: ApplianceThread):
    client = RawFixClient(venue.port)
    yield client
    client.close()


def test_logon_reply_echoes_heartbeat(client: RawFixClient) -> None:
    reply = client.logon(heartbeat_interval_s=17)
    assert reply.get(108) == b"17"
    assert reply.get(98) == b"0"
    assert reply.get(34) == b"1"
    assert reply.get(49) == b"FIXGW"
    assert reply.get(56) == b"BRK1"


def test_test_request_answered_with_heartbeat(client: RawFixClient) -> None:
    client.logon()
    client.send("1", [(112, "PING-7")])
    heartbeat = client.receive_type("0")
    assert heartbeat.get(112) == b"PING-7"


def test_first_message_not_logon_disconnects(client: RawFixClient) -> None:
    client.send("0")
    assert client.expect_disconnect() == []


def test_unknown_comp_id_disconnects_without_logout(venue: ApplianceThread) -> None:
    client = RawFixClient(venue.port, sender="NOBODY")
    client.send("A", [(98, 0), (108, 30)])
    assert client.expect_disconnect() == []
    client.close()


def test_second_logon_of_live_session_dropped(venue: ApplianceThread, client: RawFixClient) -> None:
    client.logon()
    intruder = RawFixClient(venue.port)
    intruder.send("A", [(98, 0), (108, 30)])
    assert intruder.expect_disconnect() == []
    intruder.close()
    client.send("1", [(112, "STILL-UP")])
    assert client.receive_type("0").get(112) == b"STILL-UP"


def test_seq_num_too_high_requests_resend(client: RawFixClient) -> None:
    client.logon()
    client.send("0", seq_num=5)
    resend = client.receive_type("2")
    assert resend.get(7) == b"2"
    assert resend.get(16) == b"0"

    # Gap-fill 2..4, then the queued 5 is processed and 6 is expected.
    client.send("4", [(123, "Y"), (36, 5)], seq_num=2, header=[(43, "Y"), (122, utc_now())])
    client.next_seq_num = 6
    client.send("1", [(112, "AFTER-GAP")])
    assert client.receive_type("0").get(112) == b"AFTER-GAP"


def test_seq_num_too_low_logs_out(client: RawFixClient) -> None:
    client.logon()
    client.send("0", seq_num=1)
    received = client.expect_disconnect()
    assert [m.get(35) for m in received] == [b"5"]
    assert b"too low" in received[0].get(58)


@pytest.mark.parametrize("msg_seq_num", [b"", b"2a"])
def test_malformed_seq_num_logs_out(client: RawFixClient, msg_seq_num: bytes) -> None:
    client.logon()
    heartbeat = client.build("0", seq_num=2).replace(b"\x0134=2\x01", b"\x0134=" + msg_seq_num + b"\x01")
    client.send_raw(_fix_checksum(heartbeat))
    received = client.expect_disconnect()
    assert [m.get(35) for m in received] == [b"5"]
    assert received[0].get(58) == b"MsgSeqNum (34) is missing or not a number"


def _fix_checksum(raw: bytes) -> bytes:
    """Recompute BodyLength (9) and CheckSum (10) after an edit of the body."""
    head, _, rest = raw.partition(b"\x019=")
    body = rest.split(b"\x01", 1)[1].rsplit(b"10=", 1)[0]
    framed = head + b"\x019=" + str(len(body)).encode() + b"\x01" + body
    return framed + b"10=%03d\x01" % (sum(framed) % 256)


def test_poss_dup_below_expected_ignored(client: RawFixClient) -> None:
    client.logon()
    client.send("0")
    client.send("0", seq_num=2, header=[(43, "Y"), (122, utc_now())])
    client.send("1", [(112, "NEXT")])
    assert client.receive_type("0").get(112) == b"NEXT"


def test_poss_dup_without_orig_sending_time_rejected(client: RawFixClient) -> None:
    client.logon()
    client.send("0")
    client.send("0", seq_num=2, header=[(43, "Y")])
    reject = client.receive_type("3")
    assert reject.get(373) == b"1"
    assert reject.get(371) == b"122"


def test_embedded_soh_rejected_and_counted(client: RawFixClient) -> None:
    client.logon()
    request = client.build("1", [(112, "PING")], seq_num=2)
    client.send_raw(_fix_checksum(request.replace(b"\x01112=PING\x01", b"\x01112=PI\x01NG\x01")))
    client.next_seq_num = 3

    reject = client.receive_type("3")
    assert reject.get(45) == b"2"
    assert reject.get(371) == b"112"
    assert reject.get(372) == b"1"
    assert reject.get(373) == b"17"
    assert reject.get(58) == b"Non-data value includes field delimiter (SOH character)"

    client.send("1", [(112, "AFTER")])
    assert client.receive_type("0").get(112) == b"AFTER"


def test_embedded_soh_in_routing_rejected(client: RawFixClient) -> None:
    client.logon()
    request = client.build("1", [(112, "PING")], seq_num=2, header=[(115, "DESK")])
    client.send_raw(_fix_checksum(request.replace(b"\x01115=DESK\x01", b"\x01115=DE\x01SK\x01")))
    client.next_seq_num = 3

    reject = client.receive_type("3")
    assert reject.get(371) == b"115"
    assert reject.get(373) == b"17"
    assert reject.get(128) is None

    client.send("1", [(112, "AFTER")])
    assert client.receive_type("0").get(112) == b"AFTER"


def test_sequence_reset_reset_mode_moves_expected(client: RawFixClient) -> None:
    client.logon()
    client.send("4", [(36, 20)], seq_num=99)
    client.next_seq_num = 20
    client.send("1", [(112, "AT-20")])
    assert client.receive_type("0").get(112) == b"AT-20"


def test_sequence_reset_lowering_rejected(client: RawFixClient) -> None:
    client.logon()
    client.send("0")
    client.send("0")
    client.send("4", [(36, 2)], seq_num=4)
    reject = client.receive_type("3")
    assert reject.get(373) == b"5"
    assert reject.get(371) == b"36"


def test_resend_request_gap_fills_admin_and_resends_orders(client: RawFixClient) -> None:
    client.logon()
    client.send("D", new_order_fields("R-1", price="150.00"))
    ack = client.receive_type("8")
    assert ack.get(34) == b"2"
    client.send("1", [(112, "HB")])
    client.receive_type("0")

    client.send("2", [(7, 1), (16, 0)])
    gap_fill = client.receive_type("4")
    assert gap_fill.get(34) == b"1"
    assert gap_fill.get(123) == b"Y"
    assert gap_fill.get(36) == b"2"
    assert gap_fill.get(43) == b"Y"
    resent = client.receive_type("8")
    assert resent.get(34) == b"2"
    assert resent.get(43) == b"Y"
    assert resent.get(122) == ack.get(52)
    assert resent.get(11) == b"R-1"
    assert resent.get(17) == ack.get(17)
    trailing = client.receive_type("4")
    assert trailing.get(34) == b"3"
    assert trailing.get(36) == b"4"


def test_second_resend_keeps_first_sending_time(tmp_path: Path) -> None:
    venue = _start(tmp_path / "audit.sqlite", target_sub_id="DESK1")
    client = RawFixClient(venue.port)
    try:
        client.logon()
        client.send("D", new_order_fields("R-2", price="150.00"))
        ack = client.receive_type("8")
        for _ in range(2):
            client.send("2", [(7, 2), (16, 2)])
            resent = client.receive_type("8")
            assert resent.get(43) == b"Y"
            assert resent.get(122) == ack.get(52)
            assert resent.encode().count(b"\x0157=") == 1
            assert resent.get(57) == b"DESK1"
    finally:
        client.close()
        venue.stop()


def test_garbled_message_does_not_advance_seq_num(client: RawFixClient) -> None:
    client.logon()
    good = client.build("1", [(112, "LOST")], seq_num=2)
    garbled = good[:-4] + b"000\x01"  # wrong CheckSum (10)
    client.send_raw(garbled)
    client.send("1", [(112, "KEPT")], seq_num=2)
    assert client.receive_type("0").get(112) == b"KEPT"


def test_order_missing_side_session_rejected(client: RawFixClient) -> None:
    client.logon()
    fields = [f for f in new_order_fields("M-1") if f[0] != 54]
    client.send("D", fields)
    reject = client.receive_type("3")
    assert reject.get(373) == b"1"
    assert reject.get(371) == b"54"
    assert reject.get(372) == b"D"
    assert reject.get(45) == b"2"


def test_unsupported_message_business_rejected(client: RawFixClient) -> None:
    client.logon()
    client.send("R", [(131, "Q-1"), (55, "AAPL")])
    reject = client.receive_type("j")
    assert reject.get(380) == b"3"
    assert reject.get(372) == b"R"
    assert reject.get(45) == b"2"


def test_unknown_symbol_order_rejected_with_reason(client: RawFixClient) -> None:
    client.logon()
    client.send("D", new_order_fields("U-1", symbol="NOPE"))
    report = client.receive_type("8")
    assert report.get(39) == b"8"
    assert report.get(150) == b"8"
    assert report.get(103) == b"1"
    assert b"NOPE" in report.get(58)


def test_unsupported_time_in_force_rejected(client: RawFixClient) -> None:
    client.logon()
    fields = [(t, "7" if t == 59 else v) for t, v in new_order_fields("S-1")]
    client.send("D", fields)
    report = client.receive_type("8")
    assert report.get(39) == b"8"
    assert report.get(103) == b"11"
    assert b"TimeInForce (59)" in report.get(58)


def test_logout_answered_then_disconnected(venue: ApplianceThread, client: RawFixClient) -> None:
    client.logon()
    client.send("5")
    received = client.expect_disconnect()
    assert [m.get(35) for m in received] == [b"5"]
    session = venue.appliance.sessions["FIX.4.4:FIXGW->BRK1"]
    assert venue.call(lambda: session.disconnect_reason) == "peer logged out"


def test_silent_peer_gets_test_request_then_dropped(client: RawFixClient) -> None:
    client.logon(heartbeat_interval_s=1)
    started = time.monotonic()
    messages = client.expect_disconnect(timeout_s=6)
    elapsed = time.monotonic() - started
    types = [m.get(35) for m in messages]
    assert b"1" in types
    assert [m.get(112) for m in messages if m.get(35) == b"1"] == [b"TEST"]
    assert 2.0 <= elapsed <= 4.0


def test_seq_nums_survive_restart(tmp_path: Path) -> None:
    db = tmp_path / "audit.sqlite"
    venue = _start(db)
    client = RawFixClient(venue.port)
    client.logon()
    client.send("D", new_order_fields("P-1", price="120.00"))
    client.receive_type("8")
    client.send("5")
    client.expect_disconnect()
    client.close()
    venue.stop()

    venue = _start(db)
    try:
        client = RawFixClient(venue.port)
        client.next_seq_num = 4
        reply = client.logon()
        assert reply.get(34) == b"4"
        client.send("H", [(11, "P-1"), (55, "AAPL"), (54, "1")])
        status = client.receive_type("8")
        assert status.get(39) == b"0"
        assert status.get(150) == b"I"
        client.close()
    finally:
        venue.stop()


def test_reset_on_logon_flag_accepted(venue: ApplianceThread) -> None:
    client = RawFixClient(venue.port)
    client.logon()
    client.send("0")
    client.close()
    time.sleep(0.2)
    again = RawFixClient(venue.port)
    reply = again.logon(reset=True)
    assert reply.get(141) == b"Y"
    assert reply.get(34) == b"1"
    again.close()

