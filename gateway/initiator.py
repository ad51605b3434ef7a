"""Broker-side FIX client: an asyncio initiator and the order tracking the drivers share.

This is the counterparty the demo and replay drivers, and tests, log on to the appliance
with. It uses simplefix, not the gateway's own codec, so the appliance is always exercised by
an independent encoder and parser.

:class:`FixInitiator` runs one FIX session over TCP. It logs on with ResetSeqNumFlag (141),
sends Heartbeats when idle and a Heartbeat (0) in reply to each TestRequest (1), and logs
out in either direction. It keeps no message store, so it replies to a ResendRequest (2)
with a SequenceReset-GapFill. Application messages, and session-level Reject (3), reach the caller through
:meth:`FixInitiator.receive`.

:class:`OrderTracker` reads the replies of several sessions and keeps each order's state as
the ExecutionReports (8) report it, resolves a future per request on its first reply, and
measures order-to-ack latency on the client side.

Not validated here: the data dictionary (required fields, enum values) of inbound messages.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

import simplefix

from engine.orders import PRICE_DECIMALS, PRICE_SCALE, OrdType, Side, TimeInForce

__all__ = [
    "ExecutionReport",
    "FixInitiator",
    "FixSessionError",
    "LogonError",
    "OrderTracker",
    "ReceiveTimeoutError",
    "Reply",
    "SessionClosedError",
    "SessionState",
    "TrackedOrder",
    "format_price",
    "new_order_single",
    "order_cancel_replace_request",
    "order_cancel_request",
    "parse_price",
]

logger = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_INTERVAL_S = 30
DEFAULT_RECEIVE_TIMEOUT_S = 10.0
DEFAULT_LOGOUT_TIMEOUT_S = 5.0

# After this many heartbeat intervals of silence the peer gets a TestRequest (1), as the
# FIX session rules require. After the second number of intervals the connection is lost.
TEST_REQUEST_AFTER_INTERVALS = 1.2
CONNECTION_LOST_AFTER_INTERVALS = 2.4

# Message types the session layer handles itself; everything else goes to receive().
_SESSION_MSG_TYPES = frozenset({"0", "1", "2", "4", "5", "A"})
_CHECKSUM_TRAILER_LEN = len(b"10=000\x01")
_BODY_LENGTH = re.compile(rb"^8=[^\x01]+\x019=(\d+)\x01$")


class FixSessionError(Exception):
    """Base of the initiator's errors.

    FixSessionError
    ├── LogonError            the acceptor did not accept the Logon (A) in time
    ├── ReceiveTimeoutError   no application message arrived in time
    └── SessionClosedError    the session was logged out or the connection was lost
    """


class LogonError(FixSessionError):
    """The acceptor rejected the Logon (A), closed the connection or sent no reply in time."""


class ReceiveTimeoutError(FixSessionError, TimeoutError):
    """No application message arrived within the timeout."""


class SessionClosedError(FixSessionError):
    """The session ended: Logout (5) received, connection closed or lost."""


class SessionState(enum.Enum):
    """State of the initiator's session."""

    DISCONNECTED = "disconnected"  # no TCP connection yet
    LOGON_SENT = "logon sent"  # connected, waiting for the acceptor's Logon (A)
    ACTIVE = "active"  # logged on: application messages may flow
    LOGOUT_SENT = "logout sent"  # our Logout (5) is out, waiting for the reply
    CLOSED = "closed"  # logged out or connection lost; create a new initiator to reconnect


def format_price(price: int) -> str:
    """Return an engine price (integer units of 10**-8) as a FIX decimal string."""
    whole, fraction = divmod(abs(price), PRICE_SCALE)
    digits = f"{fraction:0{PRICE_DECIMALS}d}".rstrip("0")
    text = f"{whole}.{digits}" if digits else str(whole)
    return f"-{text}" if price < 0 else text


def parse_price(text: str) -> int:
    """Return a FIX decimal price string as an engine price (integer units of 10**-8)."""
    try:
        scaled = Decimal(text).scaleb(PRICE_DECIMALS)
    except InvalidOperation as exc:
        raise ValueError(f"invalid FIX price {text!r}; expected a decimal such as '223.82'") from exc
    if scaled != scaled.to_integral_value():
        raise ValueError(f"FIX price {text!r} has more than {PRICE_DECIMALS} decimals")
    return int(scaled)


def utc_timestamp() -> str:
    """Return the current UTC time as a FIX UTCTimestamp with milliseconds."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H:%M:%S.%f")[:-3]


def encode_message(
    begin_string: str,
    msg_type: str,
    sender_comp_id: str,
    target_comp_id: str,
    msg_seq_num: int,
    sending_time: str,
    fields: list[tuple[int, str]],
    *,
    poss_dup: bool = False,
    orig_sending_time: str | None = None,
) -> bytes:
    """Encode one message with simplefix, the broker-side tools' reference codec."""
    message = simplefix.FixMessage()
    for tag, value in ((8, begin_string), (35, msg_type), (49, sender_comp_id),
                       (56, target_comp_id), (34, str(msg_seq_num))):
        message.append_pair(tag, value, header=True)
    if poss_dup:
        message.append_pair(43, "Y", header=True)
    if orig_sending_time is not None:
        message.append_pair(122, orig_sending_time, header=True)
    message.append_pair(52, sending_time, header=True)
    for tag, value in fields:
        message.append_pair(tag, value)
    return message.encode()


def new_order_single(
    begin_string: str,
    *,
    cl_ord_id: str,
    symbol: str,
    side: Side,
    order_qty: int,
    price: int | None,
    ord_type: OrdType = OrdType.LIMIT,
    time_in_force: TimeInForce = TimeInForce.DAY,
    account: str | None = None,
) -> list[tuple[int, str]]:
    """Build the body of a NewOrderSingle (D); ``price`` is in engine units, None for market.

    FIX 4.2 requires HandlInst (21), sent as 1 (automated execution, no broker
    intervention); FIX 4.4 makes it optional, so it is left out there.
    """
    fields: list[tuple[int, str]] = [(11, cl_ord_id)]
    if account:
        fields.append((1, account))
    if begin_string == "FIX.4.2":
        fields.append((21, "1"))
    fields += [(55, symbol), (54, side.value), (60, utc_timestamp()), (38, str(order_qty))]
    fields.append((40, ord_type.value))
    if price is not None:
        fields.append((44, format_price(price)))
    fields.append((59, time_in_force.value))
    return fields


def order_cancel_request(
    begin_string: str,
    *,
    cl_ord_id: str,
    orig_cl_ord_id: str,
    symbol: str,
    side: Side,
    order_qty: int,
    order_id: str | None = None,
) -> list[tuple[int, str]]:
    """Build the body of an OrderCancelRequest (F).

    OrderQty (38) is required by FIX 4.4 and optional in FIX 4.2; it is sent in both.
    """
    fields: list[tuple[int, str]] = [(11, cl_ord_id), (41, orig_cl_ord_id)]
    if order_id:
        fields.append((37, order_id))
    fields += [(55, symbol), (54, side.value), (60, utc_timestamp()), (38, str(order_qty))]
    return fields


def order_cancel_replace_request(
    begin_string: str,
    *,
    cl_ord_id: str,
    orig_cl_ord_id: str,
    symbol: str,
    side: Side,
    order_qty: int,
    price: int | None,
    ord_type: OrdType = OrdType.LIMIT,
    time_in_force: TimeInForce = TimeInForce.DAY,
    order_id: str | None = None,
) -> list[tuple[int, str]]:
    """Build the body of an OrderCancelReplaceRequest (G).

    ``order_qty`` is the new total quantity, filled part included, as OrderQty (38) means.
    """
    fields: list[tuple[int, str]] = [(11, cl_ord_id), (41, orig_cl_ord_id)]
    if order_id:
        fields.append((37, order_id))
    if begin_string == "FIX.4.2":
        fields.append((21, "1"))
    fields += [(55, symbol), (54, side.value), (60, utc_timestamp()), (38, str(order_qty))]
    fields.append((40, ord_type.value))
    if price is not None:
        fields.append((44, format_price(price)))
    fields.append((59, time_in_force.value))
    return fields


class FixInitiator:
    """One broker-side FIX session over TCP.

    Use ``await logon()`` … ``await logout()``, or ``async with FixInitiator(...)``.
    Sequence numbers are kept in memory only: every session starts at MsgSeqNum (34) 1 with
    ResetSeqNumFlag (141) Y unless ``reset_seq_num`` is False.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        begin_string: str,
        sender_comp_id: str,
        target_comp_id: str,
        heartbeat_interval_s: int = DEFAULT_HEARTBEAT_INTERVAL_S,
        reset_seq_num: bool = True,
    ) -> None:
        if heartbeat_interval_s <= 0:
            raise ValueError(f"heartbeat_interval_s must be positive, got {heartbeat_interval_s!r}")
        self.host = host
        self.port = port
        self.begin_string = begin_string
        self.sender_comp_id = sender_comp_id
        self.target_comp_id = target_comp_id
        self.heartbeat_interval_s = heartbeat_interval_s
        self.reset_seq_num = reset_seq_num
        self.state = SessionState.DISCONNECTED
        self.next_sender_seq_num = 1
        self.next_target_seq_num = 1
        # Counts every inbound message, session-level ones included.
        self.messages_received = 0

        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        # Holds application messages, then the SessionClosedError once the session ends.
        self._inbox: asyncio.Queue[simplefix.FixMessage | SessionClosedError] = asyncio.Queue()
        self._closed_error: SessionClosedError | None = None
        self._logon_reply: asyncio.Future[simplefix.FixMessage] | None = None
        self._logout_reply: asyncio.Future[simplefix.FixMessage] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._last_sent = self._last_received = time.monotonic()
        self._test_request_ids = itertools.count(1)
        self._test_request_pending = False

    @property
    def session_id(self) -> str:
        """The session ID as ``BeginString:SenderCompID->TargetCompID``."""
        return f"{self.begin_string}:{self.sender_comp_id}->{self.target_comp_id}"

    async def __aenter__(self) -> FixInitiator:
        await self.logon()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.logout()

    async def logon(self, timeout_s: float = DEFAULT_RECEIVE_TIMEOUT_S) -> None:
        """Connect, send Logon (A) and wait for the acceptor's Logon (A)."""
        if self.state is not SessionState.DISCONNECTED:
            raise FixSessionError(f"{self.session_id}: logon() called in state {self.state.value!r}")
        try:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        except OSError as exc:
            raise LogonError(f"{self.session_id}: cannot connect to {self.host}:{self.port}: {exc}") from exc
        self._logon_reply = asyncio.get_running_loop().create_future()
        self._tasks.append(asyncio.create_task(self._read_loop(), name=f"{self.session_id} reader"))
        self.state = SessionState.LOGON_SENT
        fields = [(98, "0"), (108, str(self.heartbeat_interval_s))]
        if self.reset_seq_num:
            fields.append((141, "Y"))
        await self._send("A", fields)

        try:
            await asyncio.wait_for(asyncio.shield(self._logon_reply), timeout_s)
        except TimeoutError:
            await self._close()
            raise LogonError(
                f"{self.session_id}: no Logon (A) reply from {self.host}:{self.port} within "
                f"{timeout_s} s; check the CompIDs and BeginString against the acceptor's settings"
            ) from None
        except SessionClosedError as exc:
            raise LogonError(f"{self.session_id}: logon rejected: {exc}") from exc
        self._tasks.append(asyncio.create_task(self._heartbeat_loop(), name=f"{self.session_id} heartbeat"))
        logger.info("%s logged on to %s:%d", self.session_id, self.host, self.port)

    async def send(self, msg_type: str, fields: list[tuple[int, str]]) -> int:
        """Send an application message; return the MsgSeqNum (34) it went out with.

        The header (8, 9, 35, 49, 56, 34, 52) and CheckSum (10) are added here, so ``fields``
        is the body only.
        """
        if self.state is not SessionState.ACTIVE:
            raise SessionClosedError(
                f"{self.session_id}: cannot send MsgType (35) {msg_type!r} in state "
                f"{self.state.value!r}; log on first"
            )
        return await self._send(msg_type, fields)

    async def receive(
        self,
        timeout_s: float | None = DEFAULT_RECEIVE_TIMEOUT_S,
        *,
        expecting: str = "an application message",
    ) -> simplefix.FixMessage:
        """Return the next application message (or session-level Reject (3)).

        ``timeout_s`` None waits without limit. ``expecting`` names what the caller waits for
        in the timeout error. Raises :class:`SessionClosedError` once the session has ended
        and every message received before that has been returned.
        """
        try:
            item = await asyncio.wait_for(self._inbox.get(), timeout_s)
        except TimeoutError:
            raise ReceiveTimeoutError(
                f"{self.session_id}: timed out after {timeout_s} s waiting for {expecting}"
            ) from None
        if isinstance(item, SessionClosedError):
            # Left in the queue so that every later call raises it too.
            self._inbox.put_nowait(item)
            raise item
        return item

    async def logout(self, timeout_s: float = DEFAULT_LOGOUT_TIMEOUT_S, text: str = "") -> None:
        """Send Logout (5), wait for the acceptor's Logout (5), and close the connection."""
        if self.state is SessionState.ACTIVE:
            self._logout_reply = asyncio.get_running_loop().create_future()
            self.state = SessionState.LOGOUT_SENT
            await self._send("5", [(58, text)] if text else [])
            try:
                await asyncio.wait_for(asyncio.shield(self._logout_reply), timeout_s)
            except TimeoutError:
                logger.warning("%s: no Logout (5) reply within %s s; closing anyway", self.session_id, timeout_s)
            except SessionClosedError:
                pass
        await self._close()
        logger.info("%s logged out", self.session_id)

    # Inbound.

    async def _read_loop(self) -> None:
        reader = self._reader
        if reader is None:
            raise RuntimeError("read loop started before the connection was opened")
        try:
            while True:
                frame = await self._read_frame(reader)
                if frame is None:
                    self._end_session("the acceptor closed the connection")
                    return
                self._on_frame(frame)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self._end_session(f"connection lost: {exc}")
        except Exception as exc:
            # A bug, not a protocol outcome: logged with its traceback, and receive()
            # raises it to the caller as the reason the session ended.
            logger.exception("%s: reader failed", self.session_id)
            self._end_session(f"reader failed: {exc!r}")

    async def _read_frame(self, reader: asyncio.StreamReader) -> bytes | None:
        """Read one whole message: BeginString (8), BodyLength (9), body, CheckSum (10)."""
        try:
            begin = await reader.readuntil(b"\x01")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
            return None
        length_field = await reader.readuntil(b"\x01")
        match = _BODY_LENGTH.match(begin + length_field)
        if match is None:
            raise ConnectionError(f"garbled message start {begin + length_field!r}; expected 8=…|9=…|")
        rest = await reader.readexactly(int(match.group(1)) + _CHECKSUM_TRAILER_LEN)
        return begin + length_field + rest

    def _on_frame(self, frame: bytes) -> None:
        checksum = sum(frame[:-_CHECKSUM_TRAILER_LEN]) % 256
        if frame[-_CHECKSUM_TRAILER_LEN:] != b"10=%03d\x01" % checksum:
            # A garbled message is ignored, as the FIX session rules require.
            logger.warning("%s: ignored message with bad CheckSum (10): %r", self.session_id, frame)
            return
        parser = simplefix.FixParser()
        parser.append_buffer(frame)
        message = parser.get_message()
        self._last_received = time.monotonic()
        self._test_request_pending = False
        self.messages_received += 1
        self._check_seq_num(message)
        self._dispatch(message)

    def _check_seq_num(self, message: simplefix.FixMessage) -> None:
        msg_seq_num = int(message.get(34) or 0)
        if message.message_type == b"4":
            return
        if msg_seq_num > self.next_target_seq_num:
            # The client keeps no store and talks to a local acceptor, so a gap is a bug
            # on the acceptor's side. It is logged, and the session continues from the new number.
            logger.error(
                "%s: expected MsgSeqNum (34) %d, received %d; messages were lost",
                self.session_id, self.next_target_seq_num, msg_seq_num,
            )
        elif msg_seq_num < self.next_target_seq_num and message.get(43) != b"Y":
            logger.error(
                "%s: expected MsgSeqNum (34) %d, received %d without PossDupFlag (43)",
                self.session_id, self.next_target_seq_num, msg_seq_num,
            )
            return
        self.next_target_seq_num = max(self.next_target_seq_num, msg_seq_num + 1)

    def _dispatch(self, message: simplefix.FixMessage) -> None:
        msg_type = message.message_type.decode()
        if msg_type not in _SESSION_MSG_TYPES:
            self._inbox.put_nowait(message)
        elif msg_type == "A":
            self._on_logon(message)
        elif msg_type == "1":
            self._schedule_send("0", [(112, message.get(112).decode())] if message.get(112) else [])
        elif msg_type == "2":
            self._on_resend_request(message)
        elif msg_type == "4":
            self.next_target_seq_num = int(message.get(36))
        elif msg_type == "5":
            self._on_logout(message)

    def _on_logon(self, message: simplefix.FixMessage) -> None:
        if self._logon_reply is not None and not self._logon_reply.done():
            # Active from here on, because the acceptor may follow its Logon with a
            # TestRequest (1) that needs a Heartbeat before logon() resumes.
            self.state = SessionState.ACTIVE
            self._logon_reply.set_result(message)

    def _on_resend_request(self, message: simplefix.FixMessage) -> None:
        # Nothing is stored, so the whole range is gap-filled and no application message
        # is sent twice.
        begin_seq_no = int(message.get(7))
        logger.info(
            "%s: ResendRequest from %d; gap fill to %d",
            self.session_id, begin_seq_no, self.next_sender_seq_num,
        )
        self._write(
            "4",
            [(123, "Y"), (36, str(self.next_sender_seq_num))],
            msg_seq_num=begin_seq_no,
            poss_dup=True,
        )

    def _on_logout(self, message: simplefix.FixMessage) -> None:
        text = (message.get(58) or b"").decode(errors="replace")
        if self._logout_reply is not None and not self._logout_reply.done():
            self._logout_reply.set_result(message)
            self._end_session("logged out")
            return
        if self.state is SessionState.ACTIVE:
            self._write("5", [])
        self._end_session(f"Logout (5) from the acceptor: {text!r}")

    def _end_session(self, reason: str) -> None:
        if self._closed_error is not None:
            return
        logger.info("%s: session ended: %s", self.session_id, reason)
        self._closed_error = SessionClosedError(f"{self.session_id}: {reason}")
        self.state = SessionState.CLOSED
        self._inbox.put_nowait(self._closed_error)
        for future in (self._logon_reply, self._logout_reply):
            if future is not None and not future.done():
                future.set_exception(self._closed_error)
                # Marks the exception as retrieved so asyncio does not log it at shutdown.
                future.exception()

    # Outbound.

    async def _send(self, msg_type: str, fields: list[tuple[int, str]]) -> int:
        msg_seq_num = self._write(msg_type, fields)
        if self._writer is not None:
            await self._writer.drain()
        return msg_seq_num

    def _schedule_send(self, msg_type: str, fields: list[tuple[int, str]]) -> None:
        if self.state in (SessionState.ACTIVE, SessionState.LOGOUT_SENT):
            self._write(msg_type, fields)

    def _write(
        self,
        msg_type: str,
        fields: list[tuple[int, str]],
        *,
        msg_seq_num: int | None = None,
        poss_dup: bool = False,
    ) -> int:
        if self._writer is None or self._writer.is_closing():
            raise SessionClosedError(f"{self.session_id}: connection is closed; cannot send {msg_type!r}")
        if msg_seq_num is None:
            msg_seq_num = self.next_sender_seq_num
            self.next_sender_seq_num += 1
        self._writer.write(encode_message(
            self.begin_string, msg_type, self.sender_comp_id, self.target_comp_id,
            msg_seq_num, utc_timestamp(), fields, poss_dup=poss_dup,
        ))
        self._last_sent = time.monotonic()
        return msg_seq_num

    async def _heartbeat_loop(self) -> None:
        interval_s = self.heartbeat_interval_s
        tick_s = min(1.0, interval_s / 4)
        while self.state is SessionState.ACTIVE:
            await asyncio.sleep(tick_s)
            now = time.monotonic()
            silent_s = now - self._last_received
            if silent_s > CONNECTION_LOST_AFTER_INTERVALS * interval_s:
                self._end_session(f"no message from the acceptor for {silent_s:.1f} s")
                await self._close()
                return
            if silent_s > TEST_REQUEST_AFTER_INTERVALS * interval_s and not self._test_request_pending:
                self._test_request_pending = True
                self._schedule_send("1", [(112, f"TEST-{next(self._test_request_ids)}")])
            elif now - self._last_sent >= interval_s:
                self._schedule_send("0", [])

    async def _close(self) -> None:
        self._end_session("closed by the initiator")
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        self._tasks.clear()
        if self._writer is not None and not self._writer.is_closing():
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except ConnectionError:
                pass


# Order tracking.

# ExecType (150) values for a fill: F since FIX 4.3, 1 (partial fill) and 2 (fill) before.
_FILL_EXEC_TYPES = frozenset({"F", "1", "2"})
# Pending acknowledgements do not resolve a request's reply future.
_PENDING_EXEC_TYPES = frozenset({"A", "6", "E"})
# OrdStatus (39) values after which an order can no longer trade.
_CLOSED_ORD_STATUSES = frozenset({"2", "4", "8", "C", "3"})


def _text(message: simplefix.FixMessage, tag: int) -> str | None:
    value = message.get(tag)
    return None if value is None else value.decode(errors="replace")


def _quantity(message: simplefix.FixMessage, tag: int) -> int:
    value = message.get(tag)
    return 0 if value is None else int(Decimal(value.decode()))


def _price(message: simplefix.FixMessage, tag: int) -> int | None:
    value = message.get(tag)
    return None if value is None else parse_price(value.decode())


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """The fields of an ExecutionReport (8) the drivers use; prices in engine units."""

    session_id: str
    cl_ord_id: str
    orig_cl_ord_id: str | None
    order_id: str
    exec_type: str
    ord_status: str
    symbol: str
    side: str
    order_qty: int
    cum_qty: int
    leaves_qty: int
    last_qty: int
    last_px: int | None
    price: int | None
    ord_rej_reason: str | None
    text: str

    @property
    def is_fill(self) -> bool:
        return self.exec_type in _FILL_EXEC_TYPES

    @classmethod
    def from_message(cls, session_id: str, message: simplefix.FixMessage) -> ExecutionReport:
        return cls(
            session_id=session_id,
            cl_ord_id=_text(message, 11) or "",
            orig_cl_ord_id=_text(message, 41),
            order_id=_text(message, 37) or "",
            exec_type=_text(message, 150) or "",
            ord_status=_text(message, 39) or "",
            symbol=_text(message, 55) or "",
            side=_text(message, 54) or "",
            order_qty=_quantity(message, 38),
            cum_qty=_quantity(message, 14),
            leaves_qty=_quantity(message, 151),
            last_qty=_quantity(message, 32),
            last_px=_price(message, 31),
            price=_price(message, 44),
            ord_rej_reason=_text(message, 103),
            text=_text(message, 58) or "",
        )


@dataclass(frozen=True, slots=True)
class Reply:
    """The first reply to a request: an ExecutionReport (8), OrderCancelReject (9),
    Reject (3) or BusinessMessageReject (j).

    ``reason`` is OrdRejReason (103), CxlRejReason (102), SessionRejectReason (373) or
    BusinessRejectReason (380), whichever the message carries.
    """

    msg_type: str
    exec_type: str | None
    reason: str | None
    text: str

    @property
    def is_reject(self) -> bool:
        return self.msg_type != "8" or self.exec_type == "8"


@dataclass(slots=True)
class TrackedOrder:
    """An order as its ExecutionReports (8) have reported it so far.

    ``cl_ord_id`` follows the ClOrdID (11) chain: after a replace it is the replacing
    request's ClOrdID. ``fills`` lists ``(last_qty, last_px)`` per fill.
    """

    session_id: str
    cl_ord_id: str
    symbol: str
    side: Side
    price: int | None
    order_qty: int
    time_in_force: TimeInForce = TimeInForce.DAY
    order_id: str | None = None
    ord_status: str = ""
    cum_qty: int = 0
    leaves_qty: int = 0
    fills: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.ord_status:
            self.leaves_qty = self.order_qty

    @property
    def is_open(self) -> bool:
        """True while the order can still trade, pending acknowledgement included."""
        return self.leaves_qty > 0 and self.ord_status not in _CLOSED_ORD_STATUSES


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[Reply]
    sent_ns: int
    is_new_order: bool


class OrderTracker:
    """Tracks the orders of several sessions from the replies they receive.

    Call :meth:`watch` for each logged-on :class:`FixInitiator`; from then on the tracker
    owns that initiator's :meth:`~FixInitiator.receive`. Latency is measured from just
    before a NewOrderSingle (D) is written to the socket to the moment its first reply is
    read, in nanoseconds of ``time.perf_counter_ns``.
    """

    def __init__(self) -> None:
        self.orders: dict[str, TrackedOrder] = {}
        self.new_order_latencies_ns: list[int] = []
        self.fills_by_session: Counter[str] = Counter()
        # Reject counts keyed by MsgType (35) and reason, such as "8:1" or "9:1".
        self.rejects: Counter[str] = Counter()
        # Messages matched to no tracked order or request, by MsgType (35).
        self.unsolicited: Counter[str] = Counter()
        self._pending: dict[str, _Pending] = {}
        # Maps (session ID, MsgSeqNum (34)) of each request to its ClOrdID, for rejects that
        # name only RefSeqNum (45). It grows by one entry per request for the tracker's life.
        self._cl_ord_id_by_seq: dict[tuple[str, int], str] = {}
        self._conditions: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []

    def watch(self, initiator: FixInitiator) -> None:
        """Start reading ``initiator``'s application messages into the tracker."""
        self._tasks.append(asyncio.create_task(self._consume(initiator), name=f"{initiator.session_id} tracker"))

    async def close(self) -> None:
        """Stop reading; call after the sessions have logged out."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def send_new_order(self, initiator: FixInitiator, order: TrackedOrder) -> asyncio.Future[Reply]:
        """Send ``order`` as a NewOrderSingle (D); return a future for its first reply."""
        fields = new_order_single(
            initiator.begin_string,
            cl_ord_id=order.cl_ord_id,
            symbol=order.symbol,
            side=order.side,
            order_qty=order.order_qty,
            price=order.price,
            ord_type=OrdType.LIMIT if order.price is not None else OrdType.MARKET,
            time_in_force=order.time_in_force,
        )
        self.orders[order.cl_ord_id] = order
        return await self.send_request(initiator, "D", fields, order.cl_ord_id, is_new_order=True)

    async def send_request(
        self,
        initiator: FixInitiator,
        msg_type: str,
        fields: list[tuple[int, str]],
        cl_ord_id: str,
        *,
        is_new_order: bool = False,
    ) -> asyncio.Future[Reply]:
        """Send a request whose replies carry ``cl_ord_id``; return a future for the first."""
        if cl_ord_id in self._pending:
            raise ValueError(f"ClOrdID (11) {cl_ord_id!r} already has a request waiting for its reply")
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        # Registered before the write: the reply may be read while send() awaits drain().
        self._pending[cl_ord_id] = _Pending(future, time.perf_counter_ns(), is_new_order)
        self._cl_ord_id_by_seq[(initiator.session_id, initiator.next_sender_seq_num)] = cl_ord_id
        await initiator.send(msg_type, fields)
        return future

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float, *, expecting: str) -> None:
        """Wait until ``predicate()`` holds, checked after every message the tracker reads."""
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._conditions.append(entry)
        try:
            await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise ReceiveTimeoutError(f"timed out after {timeout_s} s waiting for {expecting}") from None
        finally:
            if entry in self._conditions:
                self._conditions.remove(entry)

    async def _consume(self, initiator: FixInitiator) -> None:
        while True:
            try:
                message = await initiator.receive(None)
            except SessionClosedError:
                return
            self.on_message(initiator.session_id, message)

    def on_message(self, session_id: str, message: simplefix.FixMessage) -> None:
        """Apply one inbound application message."""
        msg_type = message.message_type.decode()
        if msg_type == "8":
            report = ExecutionReport.from_message(session_id, message)
            self._apply(report)
            if report.exec_type not in _PENDING_EXEC_TYPES:
                reason = report.ord_rej_reason if report.exec_type == "8" else None
                self._resolve(report.cl_ord_id, Reply("8", report.exec_type, reason, report.text))
        elif msg_type == "9":
            self._resolve(_text(message, 11) or "", Reply("9", None, _text(message, 102), _text(message, 58) or ""))
        elif msg_type in ("3", "j"):
            ref_seq_num = int(message.get(45) or 0)
            cl_ord_id = _text(message, 379) or self._cl_ord_id_by_seq.get((session_id, ref_seq_num), "")
            reason = _text(message, 373 if msg_type == "3" else 380)
            self._resolve(cl_ord_id, Reply(msg_type, None, reason, _text(message, 58) or ""))
        else:
            self.unsolicited[msg_type] += 1
        self._check_conditions()

    def _apply(self, report: ExecutionReport) -> None:
        order = self.orders.get(report.cl_ord_id)
        if order is None and report.orig_cl_ord_id in self.orders:
            # A replace or cancel moves the order to the request's ClOrdID (11).
            order = self.orders.pop(report.orig_cl_ord_id)
            order.cl_ord_id = report.cl_ord_id
            self.orders[report.cl_ord_id] = order
        if order is None:
            self.unsolicited["8"] += 1
            return
        order.order_id = report.order_id or order.order_id
        order.ord_status = report.ord_status
        order.cum_qty = report.cum_qty
        order.leaves_qty = report.leaves_qty
        order.order_qty = report.order_qty or order.order_qty
        if report.price is not None:
            order.price = report.price
        if report.is_fill and report.last_px is not None:
            order.fills.append((report.last_qty, report.last_px))
            self.fills_by_session[report.session_id] += 1

    def _resolve(self, cl_ord_id: str, reply: Reply) -> None:
        if reply.is_reject:
            self.rejects[f"{reply.msg_type}:{reply.reason}"] += 1
        pending = self._pending.pop(cl_ord_id, None)
        if pending is None:
            return
        if pending.is_new_order:
            self.new_order_latencies_ns.append(time.perf_counter_ns() - pending.sent_ns)
        if not pending.future.done():
            pending.future.set_result(reply)

    def _check_conditions(self) -> None:
        for predicate, future in list(self._conditions):
            if not future.done() and predicate():
                future.set_result(None)
