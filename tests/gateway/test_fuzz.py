"""Fuzzing the frame decoder, the dictionary validator and a live session with hypothesis.

Budget: 1000 parser examples and 300 live-session examples, together about 10 s on a
laptop, with PROBE_TIMEOUT_S bounding each wait for a reply. The live test sends random
and mutated messages on a logged-on session, then checks that the session still replies to a TestRequest (1), or closed the
connection and accepts a new Logon, and that the appliance's event loop saw no uncaught
exception.
"""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixsupport import ApplianceThread, RawFixClient
from gateway.appliance import Appliance
from gateway.codec import FixMessage, FrameDecoder, GarbledFrame, encode
from gateway.dictionary import venue_dictionary
from gateway.errors import MessageTooLargeError
from gateway.settings import default_session_settings
from gateway.venue import default_venue_config

MAX_MESSAGE_SIZE_BYTES = 4096
PROBE_TIMEOUT_S = 3.0
HEADER = [(49, "BRK1"), (56, "FIXGW"), (34, 2), (52, "20240102-13:45:12.123")]
TEMPLATES = [
    encode("FIX.4.4", "0", HEADER, []),
    encode("FIX.4.4", "1", HEADER, [(112, "T-1")]),
    encode("FIX.4.4", "2", HEADER, [(7, 1), (16, 0)]),
    encode("FIX.4.4", "4", HEADER, [(123, "Y"), (36, 9)]),
    encode("FIX.4.4", "D", HEADER, [(11, "F-1"), (55, "AAPL"), (54, "1"), (38, 100), (40, "2"),
                                    (44, "100.00"), (59, "0"), (60, "20240102-13:45:12.123")]),
    encode("FIX.4.4", "F", HEADER, [(11, "F-2"), (41, "F-1"), (55, "AAPL"), (54, "1")]),
    encode("FIX.4.4", "q", HEADER, [(11, "F-3"), (530, "7"), (453, 2), (448, "P"), (448, "Q")]),
]


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    """A template message with a few bytes replaced, inserted or deleted."""
    data = bytearray(draw(st.sampled_from(TEMPLATES)))
    for _ in range(draw(st.integers(0, 4))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = draw(st.sampled_from([0x01, ord("="), ord("8"), ord("9"), ord("0"), ord("A"), 0xFF]))
        if action == "insert" or position == len(data):
            data.insert(position, byte)
        elif action == "replace":
            data[position] = byte
        else:
            del data[position]
    return bytes(data)


streams = st.lists(st.one_of(mutated_messages(), st.binary(max_size=80)), max_size=6)


@settings(max_examples=1000, deadline=None)
@given(parts=streams, chunk=st.integers(1, 64))
def test_decoder_never_raises(parts: list[bytes], chunk: int) -> None:
    decoder = FrameDecoder(max_message_size=MAX_MESSAGE_SIZE_BYTES)
    data = b"".join(parts)
    dictionary = venue_dictionary()
    for offset in range(0, len(data), chunk):
        decoder.feed(data[offset : offset + chunk])
        while True:
            try:
                frame = decoder.next_frame()
            except MessageTooLargeError:
                break
            if frame is None:
                break
            assert isinstance(frame, (FixMessage, GarbledFrame))
            if isinstance(frame, FixMessage):
                assert frame.raw in data
                dictionary.validate(frame)


class _Recorder:
    """Collects the contexts the appliance's event loop reports as uncaught errors."""

    def __init__(self) -> None:
        self.contexts: list[dict[str, Any]] = []

    def __call__(self, loop: object, context: dict[str, Any]) -> None:
        self.contexts.append(context)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    sessions = [
        dataclasses.replace(s, reset_on_logon=True, max_message_size_bytes=MAX_MESSAGE_SIZE_BYTES)
        for s in default_session_settings(port=0, brokers=("BRK1",))
    ]
    db = Path(tmp_path_factory.mktemp("fuzz")) / "audit.sqlite"
    venue = ApplianceThread(Appliance(sessions, default_venue_config(), audit_path=db, app="echo"))
    recorder = _Recorder()
    venue.loop.set_exception_handler(recorder)
    venue.start()
    yield venue, recorder
    venue.stop()


def _with_seq_num(raw: bytes, seq_num: int) -> bytes:
    return raw.replace(b"\x0134=2\x01", b"\x0134=%d\x01" % seq_num)


def _send_all(client: RawFixClient, messages: list[bytes]) -> bool:
    """Send the fuzzed messages; return False when the venue hung up meanwhile."""
    try:
        for seq_num, raw in enumerate(messages, start=2):
            client.send_raw(_with_seq_num(raw, seq_num))
    except OSError:
        return False
    return True


def _probe(client: RawFixClient) -> bool:
    """Return True when a TestRequest gets its Heartbeat, False when the venue hung up.

    A fuzzed frame may still wait for the bytes its BodyLength (9) promises, and then
    ends at the next CheckSum (10), swallowing one message (as QuickFIX frames it). So the
    probe first sends MAX_MESSAGE_SIZE_BYTES of SOH padding and a sacrificial
    SequenceReset (4). A SequenceReset in Reset mode then moves the expected MsgSeqNum
    (34) to a known value, whatever the fuzz did to it.
    """
    try:
        client.send_raw(b"\x01" * (MAX_MESSAGE_SIZE_BYTES + 100))
        client.send("4", [(36, 1000)], seq_num=998)
        client.send("4", [(36, 1000)], seq_num=999)
        client.send("1", [(112, "PROBE")], seq_num=1000)
    except OSError:
        return False
    for _ in range(50):
        try:
            message = client.receive(timeout_s=PROBE_TIMEOUT_S)
        except AssertionError as exc:
            if "closed the connection" in str(exc):
                return False
            raise
        except ConnectionResetError:
            return False
        if message.get(35) == b"0" and message.get(112) == b"PROBE":
            return True
    raise AssertionError("no Heartbeat for the TestRequest among 50 messages")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(st.one_of(mutated_messages(), st.binary(max_size=60)), min_size=1, max_size=5))
def test_live_session_keeps_answering(live, messages: list[bytes]) -> None:
    venue, recorder = live
    client = RawFixClient(venue.port)
    try:
        client.logon()
        answered = _send_all(client, messages) and _probe(client)
    finally:
        client.close()

    if not answered:
        again = RawFixClient(venue.port)
        try:
            assert again.logon().get(35) == b"A"
        finally:
            again.close()
    assert recorder.contexts == []


def test_probe_detects_hangup(live) -> None:
    venue, _ = live
    client = RawFixClient(venue.port)
    client.logon()
    client.sock.shutdown(socket.SHUT_WR)
    try:
        assert _probe(client) is False
    finally:
        client.close()
