"""gateway.codec against simplefix, the reference codec, and on garbled input.

Frames that tests build by hand compute BodyLength (9) and CheckSum (10) here, with plain
len() and sum(), so that a bug in the codec's own checksum cannot hide in both.
"""

from __future__ import annotations

import enum

import pytest
import simplefix
from hypothesis import given, settings
from hypothesis import strategies as st
from simplefix.data import RAW_DATA_TAGS, RAW_LEN_TAGS

from engine.orders import Side
from gateway.codec import (
    FixMessage,
    FrameDecoder,
    GarbledFrame,
    checksum,
    decode_message,
    encode,
)
from gateway.errors import (
    CodecError,
    FieldFormatError,
    FixError,
    GarbledMessageError,
    MessageTooLargeError,
)

BEGIN_STRINGS = ["FIX.4.2", "FIX.4.4", "FIXT.1.1"]

HEADER = [(49, "BRK1"), (56, "VENUE"), (34, 12), (52, "20240102-13:45:12.123")]

# (name, MsgType (35), body) of the messages the differential tests run on.
MESSAGES = [
    (
        "new_order_single",
        "D",
        [
            (11, "ORD-1"), (1, "ACCT-7"), (21, "1"), (55, "AAPL"), (54, "1"),
            (60, "20240102-13:45:12.120"), (38, 100), (40, "2"), (44, "223.82"), (59, "0"),
        ],
    ),
    (
        "execution_report",
        "8",
        [
            (37, "O-1"), (11, "ORD-1"), (17, "E-1"), (150, "F"), (39, "1"), (55, "AAPL"),
            (54, "1"), (38, 100), (32, 40), (31, "223.82"), (151, 60), (14, 40), (6, "223.82"),
            (60, "20240102-13:45:12.124"), (58, "partial fill, 40 of 100"),
        ],
    ),
    ("logon", "A", [(98, 0), (108, 30), (141, "Y"), (553, "user"), (554, "pass=word")]),
    ("resend_request", "2", [(7, 5), (16, 0)]),
    (
        "party_ids_group",
        "D",
        [
            (11, "ORD-2"), (453, 2), (448, "TRADER1"), (447, "D"), (452, 11),
            (448, "FIRM1"), (447, "D"), (452, 1), (55, "MSFT"), (54, "2"), (38, 5),
            (40, "1"), (60, "20240102-13:45:12.120"),
        ],
    ),
    (
        "market_data_group",
        "W",
        [
            (55, "AAPL"), (268, 3), (269, "0"), (270, "223.80"), (271, 300),
            (269, "1"), (270, "223.84"), (271, 200), (269, "2"), (270, "223.82"), (271, 100),
        ],
    ),
]


def wire(fields: list[tuple[int, object]]) -> bytes:
    """Join fields as tag=value<SOH> with no framing checks, for hand-built frames."""
    return b"".join(b"%d=%s\x01" % (tag, str(value).encode()) for tag, value in fields)


def frame(body: bytes, begin_string: bytes = b"FIX.4.4") -> bytes:
    """Frame ``body`` (everything between BodyLength and CheckSum) with correct 9 and 10."""
    head = b"8=" + begin_string + b"\x019=%d\x01" % len(body) + body
    return head + b"10=%03d\x01" % (sum(head) % 256)


# The part of a NewOrderSingle between BodyLength (9) and CheckSum (10).
VALID_BODY = wire([(35, "D"), (49, "BRK1"), (56, "VENUE"), (34, 2), (11, "ORD-1")])


def with_checksum(raw: bytes, value: bytes) -> bytes:
    return raw[:-4] + value + b"\x01"


def simplefix_encode(begin_string: str, msg_type: str, header, body) -> bytes:
    message = simplefix.FixMessage()
    message.append_pair(8, begin_string)
    message.append_pair(35, msg_type)
    for tag, value in header:
        message.append_pair(tag, value, header=True)
    for tag, value in body:
        message.append_pair(tag, value)
    return message.encode()


def simplefix_message(raw: bytes) -> simplefix.FixMessage:
    parser = simplefix.FixParser()
    parser.append_buffer(raw)
    message = parser.get_message()
    assert message is not None
    return message


def simplefix_fields(raw: bytes) -> list[tuple[int, bytes]]:
    return [(int(tag), value) for tag, value in simplefix_message(raw).pairs]


def decode_all(chunks: list[bytes], decoder: FrameDecoder | None = None) -> list:
    decoder = decoder or FrameDecoder()
    frames = []
    for chunk in chunks:
        decoder.feed(chunk)
        while (result := decoder.next_frame()) is not None:
            frames.append(result)
    return frames


def decode_one(raw: bytes) -> FixMessage | GarbledFrame:
    frames = decode_all([raw])
    assert len(frames) == 1, frames
    return frames[0]


# Differential tests against simplefix.


@pytest.mark.parametrize("begin_string", BEGIN_STRINGS)
@pytest.mark.parametrize("name, msg_type, body", MESSAGES, ids=[m[0] for m in MESSAGES])
def test_encode_matches_simplefix(begin_string, name, msg_type, body):
    header = HEADER + ([(1128, "9")] if begin_string == "FIXT.1.1" else [])

    ours = encode(begin_string, msg_type, header, body)

    assert ours == simplefix_encode(begin_string, msg_type, header, body)


@pytest.mark.parametrize("begin_string", BEGIN_STRINGS)
@pytest.mark.parametrize("name, msg_type, body", MESSAGES, ids=[m[0] for m in MESSAGES])
def test_parse_matches_simplefix(begin_string, name, msg_type, body):
    raw = simplefix_encode(begin_string, msg_type, HEADER, body)

    message = decode_one(raw)

    assert isinstance(message, FixMessage)
    assert message.fields == simplefix_fields(raw)
    assert message.raw == raw
    assert message.begin_string == begin_string
    assert message.msg_type == msg_type


def test_parse_repeating_group_values():
    body = next(body for name, _, body in MESSAGES if name == "party_ids_group")
    raw = simplefix_encode("FIX.4.4", "D", HEADER, body)

    message = decode_one(raw)

    assert message.get(448) == b"TRADER1"
    assert message.get_all(448) == [b"TRADER1", b"FIRM1"]
    assert message.get_all(452) == [b"11", b"1"]
    assert message.get_all(9999) == []


def test_parse_value_with_equals_sign():
    raw = encode("FIX.4.4", "A", HEADER, [(98, 0), (108, 30), (554, "a=b=c")])

    message = decode_one(raw)

    assert message.get(554) == b"a=b=c"
    assert message.fields == simplefix_fields(raw)


def test_parse_raw_data_with_soh():
    body = [(98, 0), (108, 30), (95, 7), (96, b"ab\x01c=d\x01")]
    raw = encode("FIX.4.4", "A", HEADER, body)

    message = decode_one(raw)

    assert isinstance(message, FixMessage)
    assert message.get(96) == b"ab\x01c=d\x01"
    assert message.fields == simplefix_fields(raw)


def test_parse_empty_value():
    raw = frame(VALID_BODY + b"58=\x01")
    parser = simplefix.FixParser(allow_empty_values=True)
    parser.append_buffer(raw)

    message = decode_one(raw)

    assert message.get(58) == b""
    assert message.fields == [(int(tag), value) for tag, value in parser.get_message().pairs]


# Property tests.

# Framing tags are encode's own, and data fields are covered by their own tests.
EXCLUDED_TAGS = frozenset({8, 9, 10, 35, *RAW_DATA_TAGS, *RAW_LEN_TAGS})
TAGS = st.integers(min_value=1, max_value=9999).filter(lambda tag: tag not in EXCLUDED_TAGS)
VALUES = st.binary(min_size=1, max_size=20).map(
    lambda value: value.replace(b"\x01", b"_")
) | st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=20)
FIELD_LISTS = st.lists(st.tuples(TAGS, VALUES), min_size=0, max_size=30)
MSG_TYPES = st.sampled_from(["0", "A", "D", "8", "W", "AE"])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(BEGIN_STRINGS), MSG_TYPES, FIELD_LISTS)
def test_random_fields_match_simplefix(begin_string, msg_type, fields):
    raw = encode(begin_string, msg_type, HEADER, fields)

    message = decode_one(raw)

    assert raw == simplefix_encode(begin_string, msg_type, HEADER, fields)
    assert isinstance(message, FixMessage)
    assert message.fields == simplefix_fields(raw)
    reference = simplefix_message(raw)
    for tag, _ in fields:
        assert message.get(tag) == reference.get(tag)


GARBAGE = st.binary(max_size=40).filter(lambda garbage: b"8=" not in garbage)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(MSG_TYPES, FIELD_LISTS, GARBAGE), min_size=1, max_size=5),
    st.lists(st.integers(min_value=0, max_value=5000), max_size=12),
)
def test_random_splits_same_frames(messages, split_points):
    raws = [encode("FIX.4.4", msg_type, HEADER, fields) for msg_type, fields, _ in messages]
    stream = b"".join(garbage + raw for raw, (_, _, garbage) in zip(raws, messages))
    cuts = sorted({point % (len(stream) + 1) for point in split_points})
    chunks = [stream[start:end] for start, end in zip([0, *cuts], [*cuts, len(stream)])]

    frames = decode_all(chunks)

    assert [frame.raw for frame in frames] == raws
    assert all(isinstance(frame, FixMessage) for frame in frames)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1000))
def test_checksum_equals_byte_sum(data):
    assert checksum(data) == sum(data) % 256


@pytest.mark.parametrize("size", [0, 1, 255, 256, 257, 512, 70_000])
def test_checksum_chunk_edges(size):
    data = bytes([255]) * size

    assert checksum(data) == sum(data) % 256


# Framing.


def test_many_messages_one_feed():
    raws = [encode("FIX.4.4", "D", HEADER, [(11, f"ORD-{n}")]) for n in range(50)]

    frames = decode_all([b"".join(raws)])

    assert [frame.raw for frame in frames] == raws


def test_byte_by_byte_feed():
    raw = encode("FIX.4.4", "D", HEADER, MESSAGES[0][2])
    decoder = FrameDecoder()

    results = []
    for index in range(len(raw)):
        decoder.feed(raw[index : index + 1])
        results.append(decoder.next_frame())

    assert results[:-1] == [None] * (len(raw) - 1)
    assert results[-1].raw == raw


def test_large_message_small_chunks():
    raw = encode("FIX.4.4", "B", HEADER, [(58, "x" * 200_000)])
    chunks = [raw[offset : offset + 1000] for offset in range(0, len(raw), 1000)]

    frames = decode_all(chunks)

    assert [frame.raw for frame in frames] == [raw]


@pytest.mark.parametrize(
    "garbage",
    [
        b"\r\n",
        b"junk",
        b"38=100\x0140=2\x01",
        b"58=8=FIX\x01",
        b"8=FIX.4.4\x0135=D\x01",
        b"9=12\x01",
    ],
    ids=["crlf", "text", "order_fields", "begin_string_in_text", "no_body_length", "body_length"],
)
def test_garbage_between_frames_skipped(garbage):
    first = encode("FIX.4.4", "0", HEADER, [])
    second = encode("FIX.4.4", "1", HEADER, [(112, "TEST")])

    frames = decode_all([garbage + first + garbage + second + garbage])

    assert [frame.raw for frame in frames] == [first, second]


def test_frame_start_split_across_feeds():
    raw = encode("FIX.4.4", "0", HEADER, [])

    frames = decode_all([b"xx8", raw[1:5], raw[5:]])

    assert [frame.raw for frame in frames] == [raw]


def test_empty_feed_ignored():
    decoder = FrameDecoder()
    decoder.feed(b"")

    assert decoder.next_frame() is None


def test_bytearray_feed():
    raw = encode("FIX.4.4", "0", HEADER, [])

    frames = decode_all([bytearray(raw)])

    assert frames[0].raw == raw
    assert type(frames[0].raw) is bytes


@pytest.mark.parametrize("size, error", [(0, ValueError), (-1, ValueError), ("1", TypeError)])
def test_max_message_size_invalid(size, error):
    with pytest.raises(error, match="max_message_size"):
        FrameDecoder(max_message_size=size)


# Garbled frames.

GARBLED = [
    ("bad_checksum", with_checksum(frame(VALID_BODY), b"000"), "CheckSum (10) is 000, computed"),
    ("checksum_not_digits", with_checksum(frame(VALID_BODY), b"1x3"), "CheckSum (10) is 1x3"),
    (
        "body_length_not_digits",
        b"8=FIX.4.4\x019=1x0\x01" + VALID_BODY + b"10=000\x01",
        "BodyLength (9) is b'1x0'",
    ),
    (
        "body_length_empty",
        b"8=FIX.4.4\x019=\x01" + VALID_BODY + b"10=000\x01",
        "BodyLength (9) is b''",
    ),
    (
        "body_length_too_small",
        frame(VALID_BODY).replace(b"9=%d" % len(VALID_BODY), b"9=%d" % (len(VALID_BODY) - 3)),
        "CheckSum (10) is not at byte",
    ),
    ("msg_type_not_third", frame(wire([(49, "BRK1"), (35, "D")])), "MsgType (35) is not the third"),
    ("msg_type_missing", frame(b""), "MsgType (35) is not the third"),
    ("msg_type_empty", frame(b"35=\x0149=BRK1\x01"), "MsgType (35) is empty"),
    ("tag_not_integer", frame(VALID_BODY + b"5x=1\x01"), "tag b'5x'"),
    ("tag_leading_zero", frame(VALID_BODY + b"055=AAPL\x01"), "tag b'055'"),
    ("tag_empty", frame(VALID_BODY + b"=AAPL\x01"), "tag b''"),
    ("field_without_equals", frame(b"55AAPL\x01" + VALID_BODY), "has no '='"),
    ("soh_after_data_length", frame(VALID_BODY + b"95=3\x01AB\x01"), "has no '='"),
    ("soh_after_data_field", frame(VALID_BODY + b"95=3\x0196=abc\x01AB\x01"), "has no '='"),
    ("data_length_not_digits", frame(VALID_BODY + b"95=x\x0196=a\x01"), "data length field 95"),
    ("data_longer_than_field", frame(VALID_BODY + b"95=9\x0196=abc\x01"), "data field 96"),
]


def test_embedded_soh_kept_in_value():
    raw = frame(VALID_BODY + b"58=PRE-\x01OPEN\x01\x0158=NEXT\x01")

    message = decode_all([raw])[0]

    assert isinstance(message, FixMessage)
    assert message.embedded_soh_tag == 58
    assert message.get_all(58) == [b"PRE-\x01OPEN\x01", b"NEXT"]
    assert message.get(11) == b"ORD-1"


def test_well_formed_message_has_no_embedded_soh():
    message = decode_all([frame(VALID_BODY + b"95=3\x0196=a\x01b\x01")])[0]

    assert isinstance(message, FixMessage)
    assert message.embedded_soh_tag is None
    assert message.get(96) == b"a\x01b"


@pytest.mark.parametrize("raw, reason", [g[1:] for g in GARBLED], ids=[g[0] for g in GARBLED])
def test_garbled_frame_reason(raw, reason):
    result = decode_all([raw])[0]

    assert isinstance(result, GarbledFrame)
    assert reason in result.reason
    assert result.raw.startswith(b"8=FIX.4.4\x019=")


@pytest.mark.parametrize("raw, reason", [g[1:] for g in GARBLED], ids=[g[0] for g in GARBLED])
def test_garbled_frame_then_resync(raw, reason):
    good = encode("FIX.4.4", "0", HEADER, [])

    frames = decode_all([raw + good])

    assert isinstance(frames[0], GarbledFrame)
    assert frames[-1].raw == good
    assert all(isinstance(frame, GarbledFrame) for frame in frames[:-1])


def test_checksum_reason_names_values():
    raw = frame(VALID_BODY)
    right = raw[-4:-1].decode()
    wrong = b"%03d" % ((int(right) + 1) % 256)

    result = decode_one(with_checksum(raw, wrong))

    assert result.reason == f"CheckSum (10) is {wrong.decode()}, computed {right}"


def test_truncated_frame_swallows_next():
    # BodyLength (9) of the truncated frame reaches into the second message, so the
    # garbled frame ends at the second message's CheckSum (10), as QuickFIX frames it.
    first = encode("FIX.4.4", "D", HEADER, MESSAGES[0][2])
    second = encode("FIX.4.4", "0", HEADER, [])
    third = encode("FIX.4.4", "1", HEADER, [(112, "T")])

    frames = decode_all([first[:-20] + second + third])

    assert isinstance(frames[0], GarbledFrame)
    assert frames[0].raw == first[:-20] + second
    assert [frame.raw for frame in frames[1:]] == [third]


def test_short_checksum_ends_frame():
    good = encode("FIX.4.4", "0", HEADER, [])
    short = good[: good.rindex(b"10=")] + b"10=0\x01"

    frames = decode_all([short + good])

    assert isinstance(frames[0], GarbledFrame)
    assert "expected three digits" in frames[0].reason
    assert [frame.raw for frame in frames[1:]] == [good]


@pytest.mark.parametrize("tag", [b"0", b"-1"])
def test_invalid_tag_number_parsed(tag):
    message = decode_one(frame(VALID_BODY + tag + b"=HI\x01"))

    assert isinstance(message, FixMessage)
    assert (int(tag), b"HI") in message.fields


def test_truncated_frame_waits():
    raw = encode("FIX.4.4", "D", HEADER, MESSAGES[0][2])
    decoder = FrameDecoder()
    decoder.feed(raw[:-1])

    assert decoder.next_frame() is None
    decoder.feed(raw[-1:])
    assert decoder.next_frame().raw == raw


def test_body_length_unterminated():
    raw = b"8=FIX.4.4\x019=" + b"1" * 40

    result = decode_one(raw)

    assert isinstance(result, GarbledFrame)
    assert "BodyLength (9) has no SOH within 32 bytes" in result.reason


def test_too_large_raises():
    raw = encode("FIX.4.4", "B", HEADER, [(58, "x" * 500)])
    decoder = FrameDecoder(max_message_size=100)
    decoder.feed(raw)

    expected = r"BodyLength \(9\) is \d+, above max_message_size 100"
    with pytest.raises(MessageTooLargeError, match=expected):
        decoder.next_frame()
    assert decoder.next_frame() is None


def test_too_large_before_body_arrives():
    decoder = FrameDecoder(max_message_size=1000)
    decoder.feed(b"8=FIX.4.4\x019=1001\x01")

    with pytest.raises(MessageTooLargeError):
        decoder.next_frame()


def test_malformed_fields_resync_after_frame():
    # The CheckSum is right, so the decoder trusts the frame's end and does not rescan its
    # body, where "58=8=FIX.4.4\x019=5" would otherwise look like a frame start.
    raw = frame(VALID_BODY + b"5x=1\x0158=8=FIX.4.4\x019=5\x01")
    good = encode("FIX.4.4", "0", HEADER, [])

    frames = decode_all([raw + good])

    assert [type(frame) for frame in frames] == [GarbledFrame, FixMessage]


# FixMessage accessors.


@pytest.fixture
def order() -> FixMessage:
    body = [(11, "ORD-1"), (38, 100), (44, "223.82"), (31, "-5"), (58, "12x"), (453, 2)]
    return decode_message(encode("FIX.4.4", "D", HEADER, body))


def test_get_values(order):
    assert order.get(11) == b"ORD-1"
    assert order.get(9999) is None
    assert order.get(9999, b"x") == b"x"
    assert order.get_str(11) == "ORD-1"
    assert order.get_str(9999, "none") == "none"


@pytest.mark.parametrize("tag, expected", [(38, 100), (31, -5), (34, 12), (9999, None)])
def test_get_int(order, tag, expected):
    assert order.get_int(tag) == expected


def test_get_int_default(order):
    assert order.get_int(9999, 7) == 7


@pytest.mark.parametrize("value", ["12x", " 12", "+5", "1_0", "-", "1.5"])
def test_get_int_rejects(value):
    message = decode_message(encode("FIX.4.4", "D", HEADER, [(38, value)]))

    with pytest.raises(FieldFormatError, match=r"tag 38 is .*expected an integer") as caught:
        message.get_int(38)
    assert caught.value.tag == 38
    assert caught.value.value == value.encode()


def test_contains(order):
    assert 11 in order
    assert 35 in order
    assert 9999 not in order
    assert "11" not in order


def test_message_read_only(order):
    with pytest.raises(AttributeError):
        order.raw = b""  # type: ignore[misc]
    order.fields.append((1, b"x"))
    assert (1, b"x") not in order.fields


def test_repr_shows_fields(order):
    assert repr(order).startswith("FixMessage(b'8=FIX.4.4|9=")


# decode_message.


def test_decode_message_one():
    raw = encode("FIX.4.4", "0", HEADER, [])

    assert decode_message(raw).raw == raw


@pytest.mark.parametrize(
    "raw, match",
    [
        (encode("FIX.4.4", "0", HEADER, [])[:-1], "incomplete"),
        (encode("FIX.4.4", "0", HEADER, []) * 2, "more bytes"),
        (b"x" + encode("FIX.4.4", "0", HEADER, []), "more bytes"),
        (with_checksum(frame(VALID_BODY), b"000"), "CheckSum"),
        (b"8=FIX.4.4\x019=99999\x0135=0\x0110=000\x01", "BodyLength"),
        (b"", "incomplete"),
    ],
    ids=["truncated", "two", "leading_byte", "bad_checksum", "body_length_too_big", "empty"],
)
def test_decode_message_rejects(raw, match):
    with pytest.raises(GarbledMessageError, match=match):
        decode_message(raw)


# Encoder values and errors.


class Priority(enum.IntEnum):
    HIGH = 2


def test_encode_value_types():
    raw = encode("FIX.4.4", "D", [], [(54, Side.BUY), (25, Priority.HIGH), (58, b"raw"), (38, 0)])

    message = decode_message(raw)

    assert message.fields[3:7] == [(54, b"1"), (25, b"2"), (58, b"raw"), (38, b"0")]


def test_encode_latin1_text():
    raw = encode("FIX.4.4", "B", [], [(58, "caf\u00e9")])

    assert decode_message(raw).get_str(58) == "caf\u00e9"


def test_encode_body_length_and_checksum():
    raw = encode("FIX.4.4", "0", [(49, "A")], [])

    assert raw == b"8=FIX.4.4\x019=10\x0135=0\x0149=A\x0110=%03d\x01" % (sum(raw[:-7]) % 256)


@pytest.mark.parametrize(
    "field, match",
    [
        ((58, ""), "tag 58 has an empty value"),
        ((58, b""), "tag 58 has an empty value"),
        ((58, "a\x01b"), "tag 58 value 'a\\\\x01b' contains SOH"),
        ((96, b"a\x01b"), "tag 96 value .* contains SOH"),
        ((35, "D"), "tag 35 is in the header or body"),
        ((10, "000"), "tag 10 is in the header or body"),
        ((9, 12), "tag 9 is in the header or body"),
        ((58, "\u20ac"), "outside latin-1"),
    ],
    ids=["empty_str", "empty_bytes", "soh", "data_without_length", "msg_type", "checksum",
         "body_length", "not_latin1"],
)
def test_encode_rejects_field(field, match):
    with pytest.raises(FieldFormatError, match=match) as caught:
        encode("FIX.4.4", "D", HEADER, [(11, "ORD-1"), field])
    assert caught.value.tag == field[0]


@pytest.mark.parametrize(
    "begin_string, msg_type, match",
    [("FIX.4.4", "", "tag 35 is ''"), ("", "D", "tag 8 is ''"), ("FIX\x014.4", "D", "tag 8")],
    ids=["empty_msg_type", "empty_begin_string", "soh_in_begin_string"],
)
def test_encode_rejects_header_value(begin_string, msg_type, match):
    with pytest.raises(FieldFormatError, match=match):
        encode(begin_string, msg_type, HEADER, [])


@pytest.mark.parametrize("value", [True, 1.5, None, [1]], ids=["bool", "float", "none", "list"])
def test_encode_rejects_type(value):
    with pytest.raises(TypeError, match="tag 44 value"):
        encode("FIX.4.4", "D", HEADER, [(44, value)])


def test_encode_data_field_soh_allowed():
    raw = encode("FIX.4.4", "A", HEADER, [(95, 3), (96, b"a\x01b")])

    assert decode_message(raw).get(96) == b"a\x01b"


def test_encode_data_length_mismatch():
    with pytest.raises(FieldFormatError, match="tag 96"):
        encode("FIX.4.4", "A", HEADER, [(95, 4), (96, b"a\x01b")])


def test_error_tree():
    assert issubclass(CodecError, FixError)
    assert issubclass(MessageTooLargeError, CodecError)
    assert issubclass(GarbledMessageError, CodecError)
    assert issubclass(FieldFormatError, CodecError)
    assert issubclass(FieldFormatError, ValueError)
