"""The echo application and the session rules behind it, over real TCP.

The sessions validate with the venue dictionary shipped in ``gateway/spec``, so these
tests need no external files.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import simplefix

from fixsupport import ApplianceThread, RawFixClient, utc_now
from gateway.appliance import Appliance
from gateway.codec import decode_message, encode
from gateway.settings import SessionSettings
from gateway.venue import default_venue_config

VERSIONS = ("FIX.4.0", "FIX.4.2", "FIX.4.4", "FIXT.1.1")
ORDER = [(11, "E-1"), (21, "1"), (55, "AAPL"), (54, "1"), (38, 100), (40, "1"), (60, utc_now())]


def _session(begin_string: str, broker: str = "BRK1", **overrides) -> SessionSettings:  # type: ignore[no-untyped-def]
    appl_ver_id = "9" if begin_string == "FIXT.1.1" else None
    return SessionSettings(
        begin_string=begin_string, sender_comp_id="FIXGW", target_comp_id=broker,
        socket_accept_port=0, reset_on_logon=True, default_appl_ver_id=appl_ver_id, **overrides,
    )


@pytest.fixture(scope="module")
def venue(tmp_path_factory: pytest.TempPathFactory):
    sessions = [_session(v) for v in VERSIONS]
    sessions.append(_session("FIX.4.4", "NOVAL", validate_fields_have_values=False))
    db = Path(tmp_path_factory.mktemp("echo")) / "audit.sqlite"
    venue = ApplianceThread(Appliance(sessions, default_venue_config(), audit_path=db, app="echo"))
    venue.start()
    yield venue
    venue.stop()


def _connect(venue: ApplianceThread, begin_string: str, broker: str = "BRK1") -> RawFixClient:
    client = RawFixClient(venue.port, begin_string=begin_string, sender=broker)
    fields: list[tuple[int, object]] = [(98, 0), (108, 30)]
    if begin_string == "FIXT.1.1":
        fields.append((1137, "9"))
    client.send("A", fields)
    assert client.receive_type("A").get(34) == b"1"
    return client


@pytest.fixture()
def client(venue: ApplianceThread):
    client = _connect(venue, "FIX.4.4")
    yield client
    client.close()


def test_order_echoed_with_new_header(client: RawFixClient) -> None:
    client.send("D", ORDER, header=[(97, "Y")])

    echo = client.receive_type("D")
    assert echo.get(34) == b"2"
    assert echo.get(49) == b"FIXGW"
    assert echo.get(11) == b"E-1"
    assert echo.get(97) == b"Y"
    assert echo.get(43) is None


def test_poss_resend_duplicate_dropped(client: RawFixClient) -> None:
    order = [(t, "DUP-1" if t == 11 else v) for t, v in ORDER]
    client.send("D", order)
    client.receive_type("D")

    client.send("D", order, header=[(97, "Y")])
    client.send("1", [(112, "AFTER")])

    assert client.receive_type("0").get(112) == b"AFTER"


@pytest.mark.parametrize(
    "begin_string, msg_type, expected",
    [
        ("FIX.4.0", "3", {45: b"2", 373: None, 380: None}),
        ("FIX.4.2", "j", {45: b"2", 372: b"R", 380: b"3", 1137: None}),
        ("FIXT.1.1", "j", {45: b"2", 372: b"R", 380: b"3", 1137: b"9"}),
    ],
)
def test_unsupported_message_rejected(venue, begin_string, msg_type, expected) -> None:  # type: ignore[no-untyped-def]
    client = _connect(venue, begin_string)
    client.send("R", [(131, "Q-1"), (55, "AAPL")])

    reject = client.receive_type(msg_type)
    client.close()
    assert {tag: reject.get(tag) for tag in expected} == expected


@pytest.mark.parametrize(
    "begin_string, body, expected",
    [
        ("FIX.4.0", [(999, "HI")], {371: None, 372: None, 373: None}),
        ("FIX.4.2", [(999, "HI")], {371: b"999", 372: b"0", 373: b"0"}),
        ("FIX.4.4", [(999, "HI")], {371: b"999", 372: b"0", 373: b"0"}),
        ("FIX.4.2", [(112, "A"), (112, "B")], {371: b"112", 372: b"0", 373: None}),
        ("FIX.4.4", [(112, "A"), (112, "B")], {371: b"112", 372: b"0", 373: b"13"}),
    ],
    ids=["fix40_text_only", "fix42_invalid_tag", "fix44_invalid_tag", "fix42_reason_above_11",
         "fix44_repeated_tag"],
)
def test_reject_fields_by_version(venue, begin_string, body, expected) -> None:  # type: ignore[no-untyped-def]
    client = _connect(venue, begin_string)
    client.send("0", body)

    reject = client.receive_type("3")
    client.close()
    assert reject.get(45) == b"2"
    assert {tag: reject.get(tag) for tag in expected} == expected


def test_reject_reverses_routing(client: RawFixClient) -> None:
    order = [(t, "w" if t == 40 else v) for t, v in ORDER]
    client.send("D", order, header=[(115, "JCD"), (116, "CS"), (144, "CHI")])

    reject = client.receive_type("3")
    assert (reject.get(128), reject.get(129), reject.get(145)) == (b"JCD", b"CS", b"CHI")
    assert (reject.get(371), reject.get(373)) == (b"40", b"5")


def test_session_reset_mid_session(client: RawFixClient) -> None:
    client.send("0")
    client.send("0")
    client.send("A", [(98, 0), (108, 30), (141, "Y")], seq_num=1)

    logon = client.receive_type("A")
    assert (logon.get(34), logon.get(141)) == (b"1", b"Y")
    client.next_seq_num = 2
    client.send("1", [(112, "RESET")])
    heartbeat = client.receive_type("0")
    assert (heartbeat.get(34), heartbeat.get(112)) == (b"2", b"RESET")


def test_resend_request_too_low_answered(client: RawFixClient) -> None:
    client.send("1", [(112, "ONE")])
    client.receive_type("0")

    client.send("2", [(7, 1), (16, 0)], seq_num=2)

    gap_fill = client.receive_type("4")
    assert (gap_fill.get(34), gap_fill.get(36), gap_fill.get(123)) == (b"1", b"3", b"Y")


def test_empty_test_req_id_echoed(venue: ApplianceThread) -> None:
    client = _connect(venue, "FIX.4.4", "NOVAL")
    header = [(49, "NOVAL"), (56, "FIXGW"), (34, 2), (52, utc_now())]
    try:
        client.send_raw(encode("FIX.4.4", "1", header, [(112, b"")], allow_empty=True))
        # simplefix rejects empty values, so the reply is read and parsed here.
        client.sock.settimeout(5)
        heartbeat = decode_message(client.sock.recv(4096))
    finally:
        client.close()

    assert heartbeat.msg_type == "0"
    assert heartbeat.get(112) == b""


def test_fixt_logon_without_default_appl_ver_id(venue: ApplianceThread) -> None:
    client = RawFixClient(venue.port, begin_string="FIXT.1.1")
    client.send("A", [(98, 0), (108, 30)])

    assert client.expect_disconnect() == []
    client.close()


def test_out_of_order_header_rejected(client: RawFixClient) -> None:
    message = simplefix.FixParser()
    message.append_buffer(client.build("D", ORDER))
    order = message.get_message()
    sending_time = order.get(52)
    order.remove(52)
    order.append_pair(52, sending_time)  # after the body fields

    client.send_raw(order.encode())

    reject = client.receive_type("3")
    assert (reject.get(371), reject.get(373)) == (b"52", b"14")
