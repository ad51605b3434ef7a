"""FIX tag=value codec of the order path: a streaming frame decoder and an encoder.

The decoder frames a message by BodyLength (9) and CheckSum (10), as the FIX session layer
specifies. It then checks and splits the fields with bytes methods and regular expressions,
so no Python code runs per byte or per field on the usual path. simplefix is the reference
that the tests compare against: both return the same fields for every message. This codec
exists because simplefix's byte-by-byte parser is too slow for the order path.

A message that carries a data field (RawData (96), XmlData (213) and the others in
``_DATA_FIELDS``) takes a slower exact path, because a data field's value may contain SOH
and only the length field before it says where it ends.

A piece without "=" after a field that follows MsgType (35), in a frame whose BodyLength (9)
and CheckSum (10) check out, is a SOH inside that field's value: the sender put it there,
and the frame counts it. The message is parsed with the SOH in the value, and
``FixMessage.embedded_soh_tag`` names the field, so that the session can reject it with
SessionRejectReason (373) 17 instead of dropping a message whose MsgSeqNum (34) counts.

Not checked here: which fields a message type requires, value formats (``get_int`` checks
an integer when asked), field order after MsgType (35), and repeated tags outside repeating
groups. The session layer checks those. Empty values are parsed as ``b""``, so that the
session can reject them with SessionRejectReason (373) 4, "tag specified without a value".
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from collections.abc import Sequence
from itertools import chain, repeat

from gateway.errors import FieldFormatError, GarbledMessageError, MessageTooLargeError

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "SOH",
    "FieldValue",
    "FixMessage",
    "FrameDecoder",
    "GarbledFrame",
    "checksum",
    "decode_message",
    "encode",
]

SOH = b"\x01"

FieldValue = str | bytes | int

DEFAULT_MAX_MESSAGE_SIZE = 1 << 20

# BeginString (8) and BodyLength (9) values are short ("FIXT.1.1", a few digits). Longer
# values mark garbage or a garbled frame, so that bytes which happen to contain "8=" cannot
# make the decoder buffer without limit.
_HEADER_VALUE_LIMIT = 32

# The usual case: a well-formed header right where the previous frame ended. One match
# reads it faster than the general path in FrameDecoder._find_frame_start, which must also
# skip garbage and tell an incomplete header from a garbled one.
_HEADER = re.compile(
    rb"8=[^\x01]{0,%d}\x019=([0-9]{1,%d})\x01" % (_HEADER_VALUE_LIMIT, _HEADER_VALUE_LIMIT)
)

# "10=" + three digits + SOH.
_TRAILER_SIZE = 7

# Data fields as length tag -> data tag, from FIX 4.2 to FIX 5.0 SP2.
# NOTE: later extension packs define more data fields (EncodedRejectText (1665) and others
# in QuickFIX's FIX50SP2.xml). Until their tags are added here, a SOH in one of those
# values is read as a SOH in a non-data value, which the session rejects with
# SessionRejectReason (373) 17. When the bytes after that SOH contain "=", the frame is
# garbled or gains an extra field instead.
_DATA_FIELDS: dict[int, int] = {
    90: 91,  # SecureDataLen, SecureData
    93: 89,  # SignatureLength, Signature
    95: 96,  # RawDataLength, RawData
    212: 213,  # XmlDataLen, XmlData
    348: 349,  # EncodedIssuerLen, EncodedIssuer
    350: 351,  # EncodedSecurityDescLen, EncodedSecurityDesc
    352: 353,  # EncodedListExecInstLen, EncodedListExecInst
    354: 355,  # EncodedTextLen, EncodedText
    356: 357,  # EncodedSubjectLen, EncodedSubject
    358: 359,  # EncodedHeadlineLen, EncodedHeadline
    360: 361,  # EncodedAllocTextLen, EncodedAllocText
    362: 363,  # EncodedUnderlyingIssuerLen, EncodedUnderlyingIssuer
    364: 365,  # EncodedUnderlyingSecurityDescLen, EncodedUnderlyingSecurityDesc
    445: 446,  # EncodedListStatusTextLen, EncodedListStatusText
    618: 619,  # EncodedLegIssuerLen, EncodedLegIssuer
    621: 622,  # EncodedLegSecurityDescLen, EncodedLegSecurityDesc
    1277: 1278,  # DerivativeEncodedIssuerLen, DerivativeEncodedIssuer
    1280: 1281,  # DerivativeEncodedSecurityDescLen, DerivativeEncodedSecurityDesc
    1282: 1283,  # DerivativeSecurityXMLLen, DerivativeSecurityXML
    1397: 1398,  # EncodedMktSegmDescLen, EncodedMktSegmDesc
    1401: 1402,  # EncryptedPasswordLen, EncryptedPassword
    1403: 1404,  # EncryptedNewPasswordLen, EncryptedNewPassword
    1468: 1469,  # EncodedSecurityListDescLen, EncodedSecurityListDesc
}
_DATA_TAG_BY_LENGTH_KEY = {
    b"%d" % length_tag: b"%d" % data_tag for length_tag, data_tag in _DATA_FIELDS.items()
}
_DATA_LENGTH_KEYS = frozenset(_DATA_TAG_BY_LENGTH_KEY)

# Every field of a framed message: a tag of digits without a leading zero, "=", a value
# without SOH, then SOH. One fullmatch checks all fields in C; the possessive quantifiers
# (*+, ++) halve its time on CPython 3.11, because the regex engine keeps no backtracking
# state.
_WELL_FORMED_FIELDS = re.compile(rb"(?:[1-9][0-9]*+=[^\x01]*+\x01)++")
# Tag 0 and negative tags are framed so that the session can reject them as invalid tag
# numbers (SessionRejectReason (373) 0) instead of dropping the message as garbled.
_TAG_PATTERN = re.compile(rb"0|-?[1-9][0-9]*")

# Tags that encode() writes itself and so rejects in a caller's header or body.
_FRAMING_TAGS = frozenset({8, 9, 10, 35})


class _TagKeys(dict[int, bytes]):
    """Tag number -> its wire bytes (55 -> b"55"), filled on first use.

    FixMessage indexes fields by wire bytes, so parsing never converts a tag to int.
    Callers pass tag constants, so the cache stays as small as the set of tags they read.
    """

    def __missing__(self, tag: int) -> bytes:
        key = b"%d" % tag
        self[tag] = key
        return key


_TAG_KEYS = _TagKeys()


def checksum(data: bytes) -> int:
    """Return the FIX CheckSum (10) of ``data``: the sum of its bytes modulo 256."""
    # The low 16 bits of zlib.adler32 are 1 + the byte sum modulo 65521, which is the exact
    # byte sum for up to 256 bytes (1 + 255 * 256 < 65521). Summing 256-byte chunks in C is
    # about seven times faster than sum(data) on a 230-byte message (CPython 3.11). The high
    # 16 bits of each chunk's value are a multiple of 65536 and vanish modulo 256.
    if len(data) <= 256:
        return (zlib.adler32(data) - 1) & 0xFF
    view = memoryview(data)
    total = 0
    for offset in range(0, len(view), 256):
        total += zlib.adler32(view[offset : offset + 256]) - 1
    return total & 0xFF


@dataclass(frozen=True, slots=True)
class GarbledFrame:
    """Bytes that began like a message but failed the framing or field checks.

    ``raw`` contains the bytes the decoder checked, from ``8=``: the frame as far as its
    BodyLength (9) reaches, or the header up to the field at fault when BodyLength is
    unusable. A wrong BodyLength may reach into the next message, so ``raw`` may overlap a
    frame that the decoder returns later. The session discards a garbled frame without
    advancing the expected MsgSeqNum (34), because nothing in it can be trusted, its
    sequence number included.
    """

    raw: bytes
    reason: str


class FixMessage:
    """One parsed message, read-only: ``raw``, ``fields``, ``begin_string``, ``msg_type``.

    FrameDecoder and decode_message build these. ``get`` and ``in`` look a tag up in a dict
    of first occurrences, built at parse and keyed by the tag's wire bytes (b"55").
    """

    __slots__ = ("_raw", "_tokens", "_index", "_begin_string", "_msg_type", "_embedded_soh_tag")

    def __init__(
        self, raw: bytes, tokens: list[bytes], index: dict[bytes, bytes],
        embedded_soh_tag: int | None = None,
    ) -> None:
        """Wrap fields that _parse_message has checked.

        ``tokens`` alternates tag and value in wire order ([b"8", b"FIX.4.4", b"9", ...]),
        and ``index`` maps each tag to its first value.
        """
        self._raw = raw
        self._tokens = tokens
        self._index = index
        self._begin_string = tokens[1].decode("latin-1")
        self._msg_type = tokens[5].decode("latin-1")
        self._embedded_soh_tag = embedded_soh_tag

    @property
    def raw(self) -> bytes:
        """The message's exact bytes, from ``8=`` through the SOH after CheckSum (10)."""
        return self._raw

    @property
    def fields(self) -> list[tuple[int, bytes]]:
        """Every field in wire order, repeated tags kept; a new list on each access."""
        return list(zip(map(int, self._tokens[0::2]), self._tokens[1::2]))

    @property
    def embedded_soh_tag(self) -> int | None:
        """The first field other than a data field whose value contains SOH, or None."""
        return self._embedded_soh_tag

    @property
    def begin_string(self) -> str:
        """BeginString (8), such as ``"FIX.4.4"``."""
        return self._begin_string

    @property
    def msg_type(self) -> str:
        """MsgType (35), such as ``"D"``."""
        return self._msg_type

    def get(self, tag: int, default: bytes | None = None) -> bytes | None:
        """Return the first value of ``tag``, or ``default`` when the tag is absent."""
        return self._index.get(_TAG_KEYS[tag], default)

    def get_str(self, tag: int, default: str | None = None) -> str | None:
        """Return the first value of ``tag`` decoded as latin-1, or ``default``."""
        value = self._index.get(_TAG_KEYS[tag])
        if value is None:
            return default
        return value.decode("latin-1")

    def get_int(self, tag: int, default: int | None = None) -> int | None:
        """Return the first value of ``tag`` as an int, or ``default`` when it is absent.

        Raises FieldFormatError unless the value is a FIX int: an optional "-" and digits.
        """
        value = self._index.get(_TAG_KEYS[tag])
        if value is None:
            return default
        # int() alone would also accept spaces, "+" and "_", which FIX does not.
        if value.isdigit() or (value[:1] == b"-" and value[1:].isdigit()):
            return int(value)
        raise FieldFormatError(
            f"tag {tag} is {value!r}, expected an integer (an optional '-' and digits)",
            tag=tag,
            value=value,
        )

    def get_all(self, tag: int) -> list[bytes]:
        """Return every value of ``tag`` in wire order, such as one per repeating group entry."""
        key = _TAG_KEYS[tag]
        tokens = self._tokens
        pairs = zip(tokens[0::2], tokens[1::2])
        return [value for field_tag, value in pairs if field_tag == key]

    def __contains__(self, tag: object) -> bool:
        if not isinstance(tag, int):
            return False
        return _TAG_KEYS[tag] in self._index

    def __repr__(self) -> str:
        return f"FixMessage({self._raw.replace(SOH, b'|')!r})"


def _parse_message(raw: bytes) -> FixMessage | str:
    """Parse the fields of a well-framed message; return it, or the reason it is malformed."""
    if _WELL_FORMED_FIELDS.fullmatch(raw) is None:
        return _parse_message_exact(raw)

    # Splitting on both separators at once alternates tag and value, unless a value
    # contains "=": then there are more tokens than two per field.
    tokens = raw.replace(SOH, b"=").split(b"=")
    tokens.pop()  # the empty token after the last SOH
    if len(tokens) != 2 * raw.count(SOH):
        fields = raw.split(SOH)
        fields.pop()
        tokens = list(chain.from_iterable(map(bytes.split, fields, repeat(b"="), repeat(1))))

    pairs = iter(tokens)
    index = dict(zip(pairs, pairs))
    if 2 * len(index) != len(tokens):
        index = _index_first_values(tokens)
    if not _DATA_LENGTH_KEYS.isdisjoint(index):
        return _parse_message_exact(raw)
    if tokens[4] != b"35" or not tokens[5]:
        return _msg_type_error(tokens)
    return FixMessage(raw, tokens, index)


def _index_first_values(tokens: list[bytes]) -> dict[bytes, bytes]:
    """Map each tag in ``tokens`` (tag, value, tag, value...) to its first value."""
    # Built from the end, so that the first occurrence of a repeated tag (a repeating
    # group field) is written last and wins.
    return dict(zip(reversed(tokens[0::2]), reversed(tokens[1::2])))


def _parse_message_exact(raw: bytes) -> FixMessage | str:
    """Parse field by field, honouring data field lengths; slower, and precise on errors."""
    tokens: list[bytes] = []
    data_tag = b""
    data_length = 0
    position = 0
    value_start = 0
    previous_is_data = False
    embedded_soh_tag: int | None = None
    while position < len(raw):
        equals = raw.find(b"=", position)
        field_end = raw.find(SOH, position)
        if equals < 0 or field_end < equals:
            if len(tokens) <= 6 or data_tag or previous_is_data:
                return f"field {raw[position:field_end]!r} at byte {position} has no '='"
            # A SOH inside the previous field's value (which is not a data field, or its
            # length would have covered it): keep the value whole, SOH included.
            tokens[-1] = raw[value_start:field_end]
            if embedded_soh_tag is None:
                embedded_soh_tag = int(tokens[-2])
            position = field_end + 1
            continue
        tag = raw[position:equals]
        if _TAG_PATTERN.fullmatch(tag) is None:
            return f"tag {tag!r} at byte {position} is not a tag number (an integer, no leading 0)"

        previous_is_data = tag == data_tag
        if previous_is_data:
            field_end = equals + 1 + data_length
            if raw[field_end : field_end + 1] != SOH:
                return f"data field {tag.decode()} has no SOH after its {data_length} bytes"
        value_start = equals + 1
        value = raw[value_start:field_end]
        tokens += (tag, value)
        position = field_end + 1

        data_tag = _DATA_TAG_BY_LENGTH_KEY.get(tag, b"")
        if data_tag:
            if not value.isdigit():
                return f"data length field {tag.decode()} is {value!r}, expected a count"
            data_length = int(value)

    if tokens[-2] != b"10":
        return f"the last field is tag {tokens[-2].decode()}, expected CheckSum (10)"
    if tokens[4] != b"35" or not tokens[5]:
        return _msg_type_error(tokens)
    return FixMessage(raw, tokens, _index_first_values(tokens), embedded_soh_tag)


def _msg_type_error(tokens: list[bytes]) -> str:
    """Return why MsgType (35) is unusable, given tokens whose third field is not a MsgType."""
    if tokens[4] != b"35":
        return f"MsgType (35) is not the third field; tag {tokens[4].decode()} is"
    return "MsgType (35) is empty"


class FrameDecoder:
    """Streaming framer for one TCP connection: ``feed`` it bytes, take frames out.

    ``next_frame`` returns a FixMessage, a GarbledFrame, or None when it needs more bytes.
    A frame starts at ``8=<value><SOH>9=``, the first two fields of every FIX message, and
    bytes before that are skipped. Requiring BodyLength (9) second keeps the "8=" inside
    fields such as OrderQty (38) or Text (58) from starting frames while the decoder
    resynchronises. A frame whose CheckSum (10) is not where its BodyLength (9) puts it
    ends at the first CheckSum field after that position, and the decoder goes on after
    it: this is how QuickFIX-based engines frame, so a peer that sends a wrong BodyLength
    loses the same messages with either. After any other garbled frame (a wrong CheckSum
    value, an unreadable BodyLength) the decoder looks for the next start one byte after
    the garbled frame's start, because bytes before a real message may have looked like
    the start of a frame.
    """

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if isinstance(max_message_size, bool) or not isinstance(max_message_size, int):
            raise TypeError(f"max_message_size is {max_message_size!r}, expected an int")
        if max_message_size < 1:
            raise ValueError(f"max_message_size is {max_message_size}, expected at least 1 byte")
        self._max_message_size = max_message_size
        self._buffer = b""
        self._pos = 0  # index in _buffer of the first byte not yet framed or skipped
        self._chunks: list[bytes] = []  # fed bytes not yet joined into _buffer
        self._chunk_bytes = 0
        # Bytes needed from _pos before framing can make progress. Joining waits for them,
        # so a large message fed in small pieces is copied once, not once per piece.
        self._needed_bytes = 1

    def feed(self, data: bytes) -> None:
        """Add bytes received from the connection."""
        if not data:
            return
        if data.__class__ is not bytes:
            data = bytes(data)
        self._chunks.append(data)
        self._chunk_bytes += len(data)

    def next_frame(self) -> FixMessage | GarbledFrame | None:
        """Return the next message or garbled frame, or None until more bytes are fed.

        Raises MessageTooLargeError when a frame declares a BodyLength (9) above
        ``max_message_size``. The decoder drops its buffered bytes first, because the
        session disconnects the peer.
        """
        if self._chunks:
            if len(self._buffer) - self._pos + self._chunk_bytes < self._needed_bytes:
                return None
            self._join_chunks()
        elif len(self._buffer) - self._pos < self._needed_bytes:
            return None

        start = self._pos
        header = _HEADER.match(self._buffer, start)
        if header is not None:
            return self._read_frame(start, header.end(), int(header[1]))
        return self._next_frame_after_skip()

    def _join_chunks(self) -> None:
        buffer = self._buffer
        if self._pos == len(buffer) and len(self._chunks) == 1:
            self._buffer = self._chunks[0]
        else:
            self._buffer = b"".join([buffer[self._pos :], *self._chunks])
        self._pos = 0
        self._chunks = []
        self._chunk_bytes = 0

    def _next_frame_after_skip(self) -> FixMessage | GarbledFrame | None:
        """Skip garbage to the next frame start, then read the frame; the general path."""
        length_start = self._find_frame_start()
        if length_start < 0:
            return None
        start = self._pos
        body = self._read_body_length(start, length_start)
        if not isinstance(body, tuple):
            return body
        return self._read_frame(start, *body)

    def _find_frame_start(self) -> int:
        """Skip to the next ``8=<value><SOH>9=`` and return the index of BodyLength's value.

        Sets _pos to the frame's start. Returns -1 when no frame start is buffered yet,
        with _pos at the first byte that could still begin one.
        """
        buffer = self._buffer
        start = buffer.find(b"8=", self._pos)
        while start >= 0:
            # The SOH after BeginString (8) may be at most _HEADER_VALUE_LIMIT bytes on.
            value_limit = start + 3 + _HEADER_VALUE_LIMIT
            begin_end = buffer.find(SOH, start + 2, value_limit)
            length_start = begin_end + 3
            if begin_end < 0:
                undecided = len(buffer) < value_limit
            elif buffer[begin_end + 1 : length_start] == b"9=":
                self._pos = start
                return length_start
            else:
                undecided = len(buffer) < length_start
            if undecided:
                # The next bytes may complete BeginString (8) or "9=".
                self._pos = start
                self._needed_bytes = len(buffer) - start + 1
                return -1
            start = buffer.find(b"8=", start + 1)

        # Keep the last byte: it may be the "8" of an "8=" that the next feed completes.
        self._pos = max(self._pos, len(buffer) - 1)
        self._needed_bytes = 2
        return -1

    def _read_body_length(
        self, start: int, length_start: int
    ) -> tuple[int, int] | GarbledFrame | None:
        """Read BodyLength (9); return (index of the body's first byte, body length)."""
        buffer = self._buffer
        value_limit = length_start + 1 + _HEADER_VALUE_LIMIT
        length_end = buffer.find(SOH, length_start, value_limit)
        if length_end < 0:
            if len(buffer) < value_limit:
                self._need(len(buffer) + 1)
                return None
            reason = f"BodyLength (9) has no SOH within {_HEADER_VALUE_LIMIT} bytes"
            return self._garbled_frame(start, value_limit, reason)

        length_text = buffer[length_start:length_end]
        if not length_text.isdigit():
            reason = f"BodyLength (9) is {length_text!r}, expected a byte count"
            return self._garbled_frame(start, length_end + 1, reason)
        return length_end + 1, int(length_text)

    def _read_frame(
        self, start: int, body_start: int, body_length: int
    ) -> FixMessage | GarbledFrame | None:
        """Check the trailer and CheckSum (10) of the frame at ``start``, then parse it."""
        if body_length > self._max_message_size:
            self._drop_buffer()
            raise MessageTooLargeError(
                f"BodyLength (9) is {body_length}, above max_message_size "
                f"{self._max_message_size}; disconnect the peer, or raise max_message_size "
                "if messages this large are expected"
            )
        buffer = self._buffer
        trailer = body_start + body_length
        frame_end = trailer + _TRAILER_SIZE
        if len(buffer) < frame_end:
            self._need(frame_end)
            return None
        if (
            buffer[trailer : trailer + 3] != b"10="
            or buffer[frame_end - 1] != 0x01
            or buffer[trailer - 1] != 0x01
        ):
            return self._misplaced_trailer(start, body_start, body_length)

        raw = buffer[start:frame_end]
        declared = raw[-4:-1]
        computed = checksum(raw[:-_TRAILER_SIZE])
        if not declared.isdigit() or int(declared) != computed:
            # Framing goes on one byte after the start: bytes before a real message may
            # have looked like its start ("8=" + "8=FIX.4.4...").
            reason = f"CheckSum (10) is {declared.decode('latin-1')}, computed {computed:03d}"
            return self._garbled_frame(start, frame_end, reason)

        # The frame checked out, so its end is certain even if its fields are malformed.
        self._pos = frame_end
        self._needed_bytes = 1
        message = _parse_message(raw)
        if isinstance(message, str):
            return GarbledFrame(raw, message)
        return message

    def _misplaced_trailer(
        self, start: int, body_start: int, body_length: int
    ) -> GarbledFrame | None:
        """Discard a frame whose CheckSum (10) is not where BodyLength (9) puts it.

        The frame ends at the first CheckSum field from the declared position on, as
        QuickFIX-based engines frame it, so both sides discard the same bytes. With a
        BodyLength too large, that is the trailer of the next message, which is lost too.
        A CheckSum value other than three digits ends the frame the same way.
        """
        buffer = self._buffer
        trailer = body_start + body_length
        found = buffer.find(b"\x0110=", max(trailer - 1, body_start - 1))
        value_end = buffer.find(SOH, found + 4, found + 4 + _HEADER_VALUE_LIMIT) if found >= 0 else -1
        if value_end < 0:
            if len(buffer) - start <= self._max_message_size + 2 * _HEADER_VALUE_LIMIT:
                self._need(len(buffer) + 1)
                return None
            reason = f"no CheckSum (10) within max_message_size {self._max_message_size} bytes"
            return self._garbled_frame(start, len(buffer), reason)

        frame_end = value_end + 1
        if found + 1 == trailer:
            declared = buffer[trailer + 3 : value_end].decode("latin-1")
            reason = f"CheckSum (10) is {declared}, expected three digits"
        else:
            found_text = buffer[trailer : trailer + _TRAILER_SIZE]
            reason = (
                f"CheckSum (10) is not at byte {trailer - start}, where BodyLength (9) "
                f"{body_length} puts it; found {found_text!r}"
            )
        return self._garbled_frame(start, frame_end, reason, frame_end)

    def _need(self, end: int) -> None:
        """Wait until the buffer reaches index ``end`` before framing again."""
        self._needed_bytes = end - self._pos

    def _garbled_frame(
        self, start: int, end: int, reason: str, resume: int | None = None
    ) -> GarbledFrame:
        """Return the bytes from ``start`` to ``end`` as garbled; framing goes on at
        ``resume``, or one byte after ``start`` when the frame's end is unknown."""
        self._pos = start + 1 if resume is None else resume
        self._needed_bytes = 1
        return GarbledFrame(self._buffer[start:end], reason)

    def _drop_buffer(self) -> None:
        self._buffer = b""
        self._pos = 0
        self._chunks = []
        self._chunk_bytes = 0
        self._needed_bytes = 1


def decode_message(data: bytes) -> FixMessage:
    """Decode bytes that contain exactly one message, such as a stored outbound message.

    Raises GarbledMessageError when ``data`` is incomplete, garbled, or has bytes before
    or after the message.
    """
    decoder = FrameDecoder(max_message_size=max(len(data), 1))
    decoder.feed(data)
    try:
        frame = decoder.next_frame()
    except MessageTooLargeError as exc:
        raise GarbledMessageError(
            f"incomplete message: BodyLength (9) declares more than the {len(data)} bytes given"
        ) from exc
    if frame is None:
        raise GarbledMessageError(f"incomplete message: {bytes(data[:80])!r}")
    if isinstance(frame, GarbledFrame):
        raise GarbledMessageError(f"garbled message: {frame.reason}: {frame.raw[:80]!r}")
    if len(frame.raw) != len(data):
        extra = len(data) - len(frame.raw)
        raise GarbledMessageError(f"expected one message, found {extra} more bytes around it")
    return frame


def encode(
    begin_string: str,
    msg_type: str,
    header: Sequence[tuple[int, FieldValue]],
    body: Sequence[tuple[int, FieldValue]],
    *,
    allow_empty: bool = False,
) -> bytes:
    """Encode one message with its BodyLength (9) and CheckSum (10).

    The fields go out as BeginString (8), BodyLength (9), MsgType (35), ``header``, ``body``
    and CheckSum (10). A str value is encoded as latin-1, an int (or IntEnum) as decimal
    digits, bytes verbatim, and a str enum member as its value.

    ``allow_empty`` lets a field go out without a value, for echoing one back to a peer
    whose session does not validate that fields have values.

    Raises FieldFormatError for an empty value (unless ``allow_empty``), a str outside
    latin-1, or tag 8, 9, 10 or 35 in ``header`` or ``body``. It also raises for a value
    containing SOH, except a data field right after its length field. Each of these
    would corrupt the frame. Raises TypeError for any
    other value type, bool and float included. Tag numbers are written as given, unchecked.
    """
    try:
        encoded_begin_string = begin_string.encode("latin-1")
        parts = [b"35=%s\x01" % msg_type.encode("latin-1")]
        append = parts.append
        for tag, value in chain(header, body):
            if tag in _FRAMING_TAGS:
                _check_fields(begin_string, msg_type, header, body)
            if type(value) is str and value:
                append(b"%d=%s\x01" % (tag, value.encode("latin-1")))
            elif type(value) is int:
                append(b"%d=%d\x01" % (tag, value))
            elif type(value) is bytes and value:
                append(b"%d=%s\x01" % (tag, value))
            else:
                append(b"%d=%s\x01" % (tag, _value_bytes(tag, value, allow_empty)))
    except UnicodeEncodeError:
        _check_fields(begin_string, msg_type, header, body, allow_empty)
        raise

    payload = b"".join(parts)
    # Each field ends with one SOH; more means a value carries one and would split the frame.
    if (
        payload.count(SOH) != len(parts)
        or not msg_type
        or not encoded_begin_string
        or SOH in encoded_begin_string
    ):
        _check_fields(begin_string, msg_type, header, body, allow_empty)

    message = b"8=%s\x019=%d\x01%s" % (encoded_begin_string, len(payload), payload)
    return b"%s10=%03d\x01" % (message, checksum(message))


def _value_bytes(tag: int, value: object, allow_empty: bool = False) -> bytes:
    """Encode a value that is not a plain non-empty str, int or bytes, or raise naming it."""
    if isinstance(value, bool):
        raise TypeError(f"tag {tag} value {value!r} is a bool; FIX Booleans are 'Y' or 'N'")
    if isinstance(value, str):
        encoded = _latin1(tag, value)
    elif isinstance(value, int):
        encoded = b"%d" % value
    elif isinstance(value, (bytes, bytearray, memoryview)):
        encoded = bytes(value)
    else:
        raise TypeError(
            f"tag {tag} value {value!r} is a {type(value).__name__}; encode takes str, int "
            "or bytes, so format prices and quantities before encoding"
        )
    if not encoded and not allow_empty:
        raise FieldFormatError(
            f"tag {tag} has an empty value, which FIX forbids; omit the field", tag=tag, value=value
        )
    return encoded


def _latin1(tag: int, text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise FieldFormatError(
            f"tag {tag} value {text!r} has characters outside latin-1; "
            "send such text in an Encoded* data field",
            tag=tag,
            value=text,
        ) from exc


def _check_fields(
    begin_string: str,
    msg_type: str,
    header: Sequence[tuple[int, FieldValue]],
    body: Sequence[tuple[int, FieldValue]],
    allow_empty: bool = False,
) -> None:
    """Raise FieldFormatError naming the first field that would corrupt the frame.

    encode's fast path calls this only when a cheap check failed. It returns when that
    check was a false alarm, such as a data field that may contain SOH.
    """
    for tag, text in ((8, begin_string), (35, msg_type)):
        if not text or "\x01" in text:
            raise FieldFormatError(
                f"tag {tag} is {text!r}, expected a non-empty value without SOH",
                tag=tag,
                value=text,
            )
        _latin1(tag, text)

    previous: tuple[int, bytes] = (0, b"")
    for tag, value in chain(header, body):
        if tag in _FRAMING_TAGS:
            raise FieldFormatError(
                f"tag {tag} is in the header or body, but encode writes it; remove it",
                tag=tag,
                value=value,
            )
        encoded = _value_bytes(tag, value, allow_empty)
        if SOH in encoded and not _is_data_field(tag, encoded, previous):
            raise FieldFormatError(
                f"tag {tag} value {value!r} contains SOH, which ends a field; only a data field "
                "right after its length field may contain SOH",
                tag=tag,
                value=value,
            )
        previous = (tag, encoded)


def _is_data_field(tag: int, value: bytes, previous: tuple[int, bytes]) -> bool:
    previous_tag, previous_value = previous
    return _DATA_FIELDS.get(previous_tag) == tag and previous_value == b"%d" % len(value)
