"""A broker-side FIX session that outlives its TCP connections, for venues that restart.

:class:`ReconnectingInitiator` keeps what :class:`~gateway.initiator.FixInitiator` does not:
a message store of everything it sent and sequence numbers that carry over from one
connection to the next. When the connection drops, it connects again and logs on without
ResetSeqNumFlag (141), so both sides recover by the FIX session rules alone:

- the venue requests what it has not processed with a ResendRequest (2), and the initiator
  resends those application messages from its store with PossDupFlag (43) Y and
  OrigSendingTime (122), and gap-fills its administrative ones;
- the initiator requests what it has not received with a ResendRequest of its own, holds
  messages above the gap until it is filled, and drops those below the expected
  MsgSeqNum (34), which it has processed already.

A message the venue committed before it went down is therefore never resent, and one it
did not commit is resent until it does, so each request is processed once. This depends on
the venue storing its expected MsgSeqNum in the same transaction as the effects of the
message, as the appliance's audit trail does. The store lives in memory: the session
survives a restart of the venue, not of the initiator.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import simplefix

from gateway.initiator import (
    encode_message,
    utc_timestamp,
    DEFAULT_HEARTBEAT_INTERVAL_S,
    DEFAULT_LOGOUT_TIMEOUT_S,
    DEFAULT_RECEIVE_TIMEOUT_S,
    FixInitiator,
    FixSessionError,
    LogonError,
    ReceiveTimeoutError,
    SessionClosedError,
    SessionState,
)

__all__ = ["DEFAULT_RECONNECT_TIMEOUT_S", "ReconnectingInitiator"]

logger = logging.getLogger(__name__)

# How long a dropped session keeps trying to log on again before it gives up.
DEFAULT_RECONNECT_TIMEOUT_S = 30.0
RECONNECT_INTERVAL_S = 0.05

_ADMIN_MSG_TYPES = frozenset({"0", "1", "2", "3", "4", "5", "A"})


@dataclass(slots=True)
class _Sent:
    msg_type: str
    fields: list[tuple[int, str]]
    sending_time: str


@dataclass(slots=True)
class _MessageStore:
    """Sequence numbers and sent messages of one session, shared by its connections."""

    next_sender_seq_num: int = 1
    next_target_seq_num: int = 1
    sent: dict[int, _Sent] = field(default_factory=dict)

    def reset(self) -> None:
        self.next_sender_seq_num = self.next_target_seq_num = 1
        self.sent.clear()


class _StoredConnection(FixInitiator):
    """One connection of a :class:`ReconnectingInitiator`.

    Sequence numbers live in the shared store, so the next connection starts where this
    one stopped. Inbound messages go through the FIX sequence rules in :meth:`_dispatch`,
    which can hold a message back until a gap before it is filled.
    """

    def __init__(self, store: _MessageStore, host: str, port: int, *, reset_seq_num: bool,
                 begin_string: str, sender_comp_id: str, target_comp_id: str,
                 heartbeat_interval_s: int) -> None:
        self._store = store
        # FixInitiator.__init__ sets both numbers to 1, through the properties below.
        kept = (store.next_sender_seq_num, store.next_target_seq_num)
        super().__init__(
            host, port, begin_string=begin_string, sender_comp_id=sender_comp_id,
            target_comp_id=target_comp_id, heartbeat_interval_s=heartbeat_interval_s,
            reset_seq_num=reset_seq_num,
        )
        if reset_seq_num:
            store.reset()
        else:
            store.next_sender_seq_num, store.next_target_seq_num = kept
        # Messages above the expected MsgSeqNum (34), kept until the gap below is filled.
        self._queued: dict[int, simplefix.FixMessage] = {}
        self._resend_requested = False

    @property  # type: ignore[override]
    def next_sender_seq_num(self) -> int:
        return self._store.next_sender_seq_num

    @next_sender_seq_num.setter
    def next_sender_seq_num(self, value: int) -> None:
        self._store.next_sender_seq_num = value

    @property  # type: ignore[override]
    def next_target_seq_num(self) -> int:
        return self._store.next_target_seq_num

    @next_target_seq_num.setter
    def next_target_seq_num(self, value: int) -> None:
        self._store.next_target_seq_num = value

    # Inbound.

    def _check_seq_num(self, message: simplefix.FixMessage) -> None:
        """Do nothing: :meth:`_dispatch` applies the sequence rules, because it may have to
        hold a message back."""

    def _dispatch(self, message: simplefix.FixMessage) -> None:
        msg_type = message.message_type.decode()
        msg_seq_num = int(message.get(34) or 0)
        if msg_type == "4" and message.get(123) != b"Y":
            # SequenceReset in Reset mode ignores MsgSeqNum (34).
            self.next_target_seq_num = int(message.get(36))
            return
        if msg_type in ("A", "2", "5"):
            # Acted on at once: the Logon starts the session, and waiting for our own gap
            # fill before serving the venue's ResendRequest would deadlock two sides that
            # both have gaps.
            super()._dispatch(message)
        if msg_seq_num > self.next_target_seq_num:
            self._on_gap(msg_type, msg_seq_num, message)
        elif msg_seq_num == self.next_target_seq_num:
            self._process(msg_type, message)
            self._drain_queue()
        elif message.get(43) != b"Y":
            logger.error(
                "%s: expected MsgSeqNum (34) %d, received %d without PossDupFlag (43); ignored",
                self.session_id, self.next_target_seq_num, msg_seq_num,
            )

    def _on_gap(self, msg_type: str, msg_seq_num: int, message: simplefix.FixMessage) -> None:
        if msg_type not in ("A", "2", "5"):
            self._queued[msg_seq_num] = message
        if not self._resend_requested:
            self._resend_requested = True
            logger.info(
                "%s: expected MsgSeqNum (34) %d, received %d; sending ResendRequest",
                self.session_id, self.next_target_seq_num, msg_seq_num,
            )
            self._write("2", [(7, str(self.next_target_seq_num)), (16, "0")])

    def _process(self, msg_type: str, message: simplefix.FixMessage) -> None:
        """Apply one in-sequence message; Logon, ResendRequest and Logout were acted on."""
        if msg_type == "4":
            self.next_target_seq_num = int(message.get(36))
            return
        self.next_target_seq_num += 1
        if msg_type not in ("A", "2", "5"):
            super()._dispatch(message)

    def _drain_queue(self) -> None:
        while (message := self._queued.pop(self.next_target_seq_num, None)) is not None:
            self._process(message.message_type.decode(), message)
        for msg_seq_num in [seq for seq in self._queued if seq < self.next_target_seq_num]:
            # Covered by a gap fill.
            del self._queued[msg_seq_num]
        if not self._queued:
            self._resend_requested = False

    def _on_resend_request(self, message: simplefix.FixMessage) -> None:
        begin_seq_no = int(message.get(7))
        end_seq_no = int(message.get(16))
        last_sent = self.next_sender_seq_num - 1
        if end_seq_no == 0 or end_seq_no > last_sent:
            end_seq_no = last_sent
        logger.info("%s: ResendRequest from %d to %d", self.session_id, begin_seq_no, end_seq_no)
        gap_start: int | None = None
        for msg_seq_num in range(begin_seq_no, end_seq_no + 1):
            sent = self._store.sent.get(msg_seq_num)
            if sent is None or sent.msg_type in _ADMIN_MSG_TYPES:
                gap_start = msg_seq_num if gap_start is None else gap_start
                continue
            if gap_start is not None:
                self._send_gap_fill(gap_start, msg_seq_num)
                gap_start = None
            self._write(sent.msg_type, sent.fields, msg_seq_num=msg_seq_num, poss_dup=True,
                        orig_sending_time=sent.sending_time)
        if gap_start is not None:
            self._send_gap_fill(gap_start, end_seq_no + 1)

    # Outbound.

    def _send_gap_fill(self, begin_seq_no: int, new_seq_no: int) -> None:
        self._write("4", [(123, "Y"), (36, str(new_seq_no))], msg_seq_num=begin_seq_no,
                    poss_dup=True, orig_sending_time=utc_timestamp())

    async def _send(self, msg_type: str, fields: list[tuple[int, str]]) -> int:
        msg_seq_num = self._write(msg_type, fields)
        try:
            if self._writer is not None:
                await self._writer.drain()
        except ConnectionError:
            # The message is in the store, so the venue requests it again after the reconnect
            # if it did not process it.
            logger.info("%s: connection lost while sending MsgSeqNum (34) %d", self.session_id, msg_seq_num)
        return msg_seq_num

    def _write(
        self,
        msg_type: str,
        fields: list[tuple[int, str]],
        *,
        msg_seq_num: int | None = None,
        poss_dup: bool = False,
        orig_sending_time: str | None = None,
    ) -> int:
        """Write one message; a new one (``msg_seq_num`` None) is stored first."""
        if self._writer is None or self._writer.is_closing():
            raise SessionClosedError(f"{self.session_id}: connection is closed; cannot send {msg_type!r}")
        sending_time = utc_timestamp()
        if msg_seq_num is None:
            msg_seq_num = self.next_sender_seq_num
            self.next_sender_seq_num += 1
            self._store.sent[msg_seq_num] = _Sent(msg_type, fields, sending_time)
        self._writer.write(encode_message(
            self.begin_string, msg_type, self.sender_comp_id, self.target_comp_id,
            msg_seq_num, sending_time, fields,
            poss_dup=poss_dup, orig_sending_time=orig_sending_time,
        ))
        self._last_sent = time.monotonic()
        return msg_seq_num


class ReconnectingInitiator:
    """A broker-side FIX session that logs on again whenever its connection drops.

    It offers the part of :class:`~gateway.initiator.FixInitiator` that
    :class:`~gateway.initiator.OrderTracker` and the replay use: :meth:`logon`,
    :meth:`send`, :meth:`receive`, :meth:`logout`, ``session_id``, ``begin_string`` and
    ``next_sender_seq_num``. The first Logon (A) resets both sequence numbers to 1 with
    ResetSeqNumFlag (141) Y, later ones keep them. :meth:`send` waits while the session is
    down. After ``reconnect_timeout_s`` without a successful Logon the session ends, and
    :meth:`send` and :meth:`receive` raise :class:`SessionClosedError`.
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
        reconnect_timeout_s: float = DEFAULT_RECONNECT_TIMEOUT_S,
    ) -> None:
        self.host = host
        self.port = port
        self.begin_string = begin_string
        self.sender_comp_id = sender_comp_id
        self.target_comp_id = target_comp_id
        self.heartbeat_interval_s = heartbeat_interval_s
        self.reconnect_timeout_s = reconnect_timeout_s
        # Logons after the first one, each after a lost connection.
        self.reconnects = 0
        self._store = _MessageStore()
        self._connection: _StoredConnection | None = None
        self._inbox: asyncio.Queue[simplefix.FixMessage | SessionClosedError] = asyncio.Queue()
        self._up = asyncio.Event()
        self._closed_error: SessionClosedError | None = None
        self._logging_out = False
        self._forwarder: asyncio.Task[None] | None = None

    @property
    def session_id(self) -> str:
        return f"{self.begin_string}:{self.sender_comp_id}->{self.target_comp_id}"

    @property
    def next_sender_seq_num(self) -> int:
        return self._store.next_sender_seq_num

    @property
    def next_target_seq_num(self) -> int:
        return self._store.next_target_seq_num

    async def logon(self, timeout_s: float = DEFAULT_RECEIVE_TIMEOUT_S) -> None:
        """Connect and log on with ResetSeqNumFlag (141) Y; later logons happen by themselves."""
        if self._connection is not None:
            raise FixSessionError(f"{self.session_id}: logon() called twice; it logs on again by itself")
        connection = self._new_connection(reset_seq_num=True)
        await connection.logon(timeout_s)
        self._connection = connection
        self._up.set()
        self._forwarder = asyncio.create_task(self._forward(), name=f"{self.session_id} forwarder")

    async def send(self, msg_type: str, fields: list[tuple[int, str]]) -> int:
        """Send an application message, once the session is up; return its MsgSeqNum (34)."""
        while True:
            await self._up.wait()
            if self._closed_error is not None:
                raise self._closed_error
            connection = self._connection
            if connection is None:
                raise SessionClosedError(f"{self.session_id}: cannot send before logon()")
            try:
                return await connection.send(msg_type, fields)
            except SessionClosedError:
                # Raised before the message took a MsgSeqNum (34). The forwarder may not
                # have seen the connection end yet, so poll until it has logged on again.
                await asyncio.sleep(RECONNECT_INTERVAL_S)

    async def receive(self, timeout_s: float | None = DEFAULT_RECEIVE_TIMEOUT_S, *,
                      expecting: str = "an application message") -> simplefix.FixMessage:
        """Return the next application message, from whichever connection brought it."""
        try:
            item = await asyncio.wait_for(self._inbox.get(), timeout_s)
        except TimeoutError:
            raise ReceiveTimeoutError(
                f"{self.session_id}: timed out after {timeout_s} s waiting for {expecting}"
            ) from None
        if isinstance(item, SessionClosedError):
            self._inbox.put_nowait(item)
            raise item
        return item

    async def logout(self, timeout_s: float = DEFAULT_LOGOUT_TIMEOUT_S) -> None:
        """Log out and stop reconnecting."""
        self._logging_out = True
        connection, forwarder = self._connection, self._forwarder
        if connection is not None and connection.state is SessionState.ACTIVE:
            # The forwarder reads the end of the session and stops.
            await connection.logout(timeout_s)
            if forwarder is not None:
                await forwarder
            return
        if forwarder is not None and not forwarder.done():
            # Down and logging on again: stop trying.
            forwarder.cancel()
            await asyncio.gather(forwarder, return_exceptions=True)
            self._end(SessionClosedError(f"{self.session_id}: logged out while reconnecting"))
        if connection is not None:
            await connection.logout(timeout_s)

    def _new_connection(self, *, reset_seq_num: bool) -> _StoredConnection:
        return _StoredConnection(
            self._store, self.host, self.port, reset_seq_num=reset_seq_num,
            begin_string=self.begin_string, sender_comp_id=self.sender_comp_id,
            target_comp_id=self.target_comp_id, heartbeat_interval_s=self.heartbeat_interval_s,
        )

    async def _forward(self) -> None:
        """Move each connection's messages to the inbox; reconnect when one ends."""
        while True:
            connection = self._connection
            assert connection is not None, "the forwarder starts after the first logon"
            try:
                while True:
                    self._inbox.put_nowait(await connection.receive(None))
            except SessionClosedError as exc:
                self._up.clear()
                # Closes the dropped connection's socket and stops its tasks.
                await connection.logout()
                if self._logging_out:
                    self._end(exc)
                    return
                logger.warning("%s: %s; logging on again", self.session_id, exc)
            try:
                await self._reconnect()
            except LogonError as exc:
                self._end(SessionClosedError(str(exc)))
                return

    async def _reconnect(self) -> None:
        deadline = time.monotonic() + self.reconnect_timeout_s
        while True:
            connection = self._new_connection(reset_seq_num=False)
            try:
                await connection.logon(max(deadline - time.monotonic(), RECONNECT_INTERVAL_S))
            except LogonError:
                await connection.logout()
                if time.monotonic() >= deadline:
                    raise LogonError(
                        f"{self.session_id}: no logon to {self.host}:{self.port} within "
                        f"{self.reconnect_timeout_s} s of losing the connection"
                    ) from None
                await asyncio.sleep(RECONNECT_INTERVAL_S)
                continue
            self._connection = connection
            self.reconnects += 1
            self._up.set()
            logger.info(
                "%s: logged on again, next sender %d, next target %d",
                self.session_id, self.next_sender_seq_num, self.next_target_seq_num,
            )
            return

    def _end(self, error: SessionClosedError) -> None:
        self._closed_error = error
        self._inbox.put_nowait(error)
        # Wakes any send() waiting for a logon, which then raises the error.
        self._up.set()
