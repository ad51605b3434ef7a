"""Framing over real TCP: split reads, batched reads, garbage, and MaxMessageSize."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import pytest

from fixsupport import ApplianceThread, RawFixClient
from gateway.appliance import Appliance
from gateway.settings import default_session_settings
from gateway.venue import default_venue_config

MAX_MESSAGE_SIZE_BYTES = 4096


@pytest.fixture()
def venue(tmp_path: Path):
    sessions = [
        dataclasses.replace(s, max_message_size_bytes=MAX_MESSAGE_SIZE_BYTES)
        for s in default_session_settings(port=0)
    ]
    venue = ApplianceThread(
        Appliance(sessions, default_venue_config(), audit_path=tmp_path / "audit.sqlite")
    )
    venue.start()
    yield venue
    venue.stop()


@pytest.fixture()
def client(venue: ApplianceThread):
    client = RawFixClient(venue.port)
    client.logon()
    yield client
    client.close()


def _send_split(client: RawFixClient, data: bytes, at: int) -> None:
    client.send_raw(data[:at])
    # A pause long enough for the venue to read the first part on its own.
    time.sleep(0.002)
    client.send_raw(data[at:])


def test_split_at_every_byte(client: RawFixClient) -> None:
    sample = client.build("1", [(112, "SPLIT")], seq_num=2)
    for at in range(1, len(sample)):
        request = client.build("1", [(112, f"SPLIT-{at}")])
        _send_split(client, request, at)
        assert client.receive_type("0").get(112) == f"SPLIT-{at}".encode()


@pytest.mark.parametrize("size", [1_000, 3_900])
def test_large_message_split(client: RawFixClient, size: int) -> None:
    test_req_id = "L" * size
    for at in (1, 9, size // 3, size // 2, size + 40):
        request = client.build("1", [(112, test_req_id)])
        _send_split(client, request, at)
        assert client.receive_type("0").get(112) == test_req_id.encode()


def test_many_messages_in_one_read(client: RawFixClient) -> None:
    batch = b"".join(client.build("1", [(112, f"B-{i}")]) for i in range(50))

    client.send_raw(batch)

    replies = [client.receive_type("0").get(112) for _ in range(50)]
    assert replies == [f"B-{i}".encode() for i in range(50)]


@pytest.mark.parametrize(
    "garbage",
    [b"noise", b"\x01\x01\x01", b"8=", b"8=FIX.4.4\x01", b"9=12\x0110=000\x01", b"\x00\xff" * 40],
    ids=["text", "soh", "begin_prefix", "begin_only", "stray_fields", "binary"],
)
def test_garbage_between_messages(client: RawFixClient, garbage: bytes) -> None:
    first = client.build("1", [(112, "BEFORE")])
    second = client.build("1", [(112, "AFTER")])

    client.send_raw(garbage + first + garbage + second + garbage)

    assert client.receive_type("0").get(112) == b"BEFORE"
    assert client.receive_type("0").get(112) == b"AFTER"


def test_message_within_max_size(client: RawFixClient) -> None:
    client.send("1", [(112, "M" * (MAX_MESSAGE_SIZE_BYTES - 100))])

    assert len(client.receive_type("0").get(112)) == MAX_MESSAGE_SIZE_BYTES - 100


def test_oversized_message_disconnects(client: RawFixClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway.acceptor"):
        client.send("1", [(112, "X" * (MAX_MESSAGE_SIZE_BYTES + 1))])
        assert client.expect_disconnect() == []

    reasons = [r.getMessage() for r in caplog.records if r.name == "gateway.acceptor"]
    assert any("above max_message_size 4096" in reason for reason in reasons), reasons


def test_oversized_declared_length_disconnects(client: RawFixClient) -> None:
    client.send_raw(b"8=FIX.4.4\x019=999999\x0135=0\x01")

    assert client.expect_disconnect() == []


def test_garbled_logon_disconnects(venue: ApplianceThread) -> None:
    client = RawFixClient(venue.port)
    logon = client.build("A", [(98, 0), (108, 30)])

    client.send_raw(logon[:-4] + b"000\x01")

    assert client.expect_disconnect() == []
    client.close()
