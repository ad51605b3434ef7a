"""FIX session protocol for one acceptor session (FIX 4.0 to 4.4 and FIXT.1.1).

A :class:`Session` outlives TCP connections: it owns the sequence numbers (persisted in the
session store, a table of the audit database) and binds to one :class:`Connection` between a
valid Logon and the end of that connection. Inbound messages arrive parsed and framed; the
session verifies the header and MsgSeqNum (34), runs the administrative messages itself and
hands application messages to its :class:`Application`. Every inbound message is checked
against the session's data dictionaries first (:mod:`gateway.dictionary`), and a message
that fails gets a Reject (3) naming SessionRejectReason (373) and RefTagID (371).

Every outbound message is recorded in the audit trail first and written to the socket only
once the batch holding it is committed, so a crash never loses a message the peer has seen.
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import logging
from typing import TYPE_CHECKING, Protocol, Sequence

from gateway import tags
from gateway.codec import SOH, FixMessage, decode_message, encode
from gateway.dictionary import (
    STANDARD_HEADER_TAGS,
    DataDictionary,
    ValidationOptions,
    Violation,
    load_dictionary,
    reason_text,
    venue_dictionary,
)
from gateway.errors import CodecError, FieldFormatError
from gateway.tags import MsgType, SessionRejectReason
from gateway.timefmt import format_utc_timestamp, parse_utc_timestamp

if TYPE_CHECKING:
    from gateway.settings import SessionSettings
    from surveillance.audit import AuditTrail

logger = logging.getLogger(__name__)

Field = tuple[int, "str | bytes | int"]

# Header fields that a resent message rebuilds; every other field is copied unchanged.
_REBUILT_HEADER_TAGS = frozenset(
    {
        tags.BEGIN_STRING,
        tags.BODY_LENGTH,
        tags.MSG_TYPE,
        tags.SENDER_COMP_ID,
        tags.TARGET_COMP_ID,
        tags.MSG_SEQ_NUM,
        tags.SENDING_TIME,
        tags.POSS_DUP_FLAG,
        tags.ORIG_SENDING_TIME,
        tags.CHECK_SUM,
    }
)

# FIX 4.0 and 4.1 mark an unbounded ResendRequest with EndSeqNo (16) 999999, later
# versions with 0.
_INFINITY_END_SEQ_NOS = frozenset({0, 999999})

# FIX 4.0 and 4.1 have no RefTagID (371), RefMsgType (372) or SessionRejectReason (373);
# FIX 4.2 defines SessionRejectReason values 0 to 11 only.
_LEGACY_VERSIONS = frozenset({"FIX.4.0", "FIX.4.1"})
_FIX42_MAX_REJECT_REASON = SessionRejectReason.INVALID_MSG_TYPE

# Routing fields a reply carries reversed: the peer's OnBehalfOf* become DeliverTo* and
# the other way round. The location IDs exist from FIX 4.1.
_REVERSED_ROUTING = (
    (tags.ON_BEHALF_OF_COMP_ID, tags.DELIVER_TO_COMP_ID),
    (tags.DELIVER_TO_COMP_ID, tags.ON_BEHALF_OF_COMP_ID),
    (tags.ON_BEHALF_OF_SUB_ID, tags.DELIVER_TO_SUB_ID),
    (tags.DELIVER_TO_SUB_ID, tags.ON_BEHALF_OF_SUB_ID),
)
_REVERSED_LOCATIONS = (
    (tags.ON_BEHALF_OF_LOCATION_ID, tags.DELIVER_TO_LOCATION_ID),
    (tags.DELIVER_TO_LOCATION_ID, tags.ON_BEHALF_OF_LOCATION_ID),
)

_FIXT = "FIXT.1.1"

# Test request and disconnect thresholds, as multiples of HeartBtInt (108) of silence.
TEST_REQUEST_FACTOR = 1.2
DISCONNECT_FACTOR = 2.4


class SessionState(enum.Enum):
    """The stage of a session's life, kept as one value rather than parallel flags."""

    DISCONNECTED = "disconnected"  # no TCP connection is bound to the session
    ACTIVE = "active"  # Logon exchanged; messages flow both ways
    LOGOUT_SENT = "logout_sent"  # the venue sent Logout and waits for the peer's Logout


class Connection(Protocol):
    """The transport a session writes to (an asyncio transport wrapper)."""

    peer: str

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    @property
    def is_closing(self) -> bool: ...


class Application(Protocol):
    """Receives the application messages of logged-on sessions."""

    def on_app_message(self, session: Session, message: FixMessage) -> None: ...

    def on_logon(self, session: Session) -> None: ...

    def on_logout(self, session: Session) -> None: ...


class Session:
    """One FIX session of the acceptor: sequence numbers, state, timers and resends."""

    def __init__(
        self, settings: SessionSettings, audit: AuditTrail, application: Application
    ) -> None:
        self.settings = settings
        self.session_id: str = settings.session_id
        self.begin_string: str = settings.begin_string
        self.audit = audit
        self.application = application
        self.state = SessionState.DISCONNECTED
        self.connection: Connection | None = None
        self.heartbeat_interval_s: float = float(settings.heartbeat_interval_s)
        self.transport_dictionary, self.app_dictionary = load_session_dictionaries(settings)
        self.validation_options = ValidationOptions(
            fields_have_values=settings.validate_fields_have_values,
            user_defined_fields=settings.validate_user_defined_fields,
            fields_out_of_order=settings.validate_fields_out_of_order,
        )

        stored = audit.load_session_state(self.session_id)
        if stored is None:
            self.next_sender_seq_num = 1
            self.next_target_seq_num = 1
            self._save_seq_nums(creation_time_us=audit.now_us())
        else:
            self.next_sender_seq_num = stored.next_sender_seq_num
            self.next_target_seq_num = stored.next_target_seq_num

        # Messages that arrived above the expected MsgSeqNum, kept until the gap is filled.
        self._queued: dict[int, FixMessage] = {}
        # The highest MsgSeqNum our outstanding ResendRequest covers, 0 when none is out.
        self._resend_requested_to = 0
        self._test_request_pending = False
        self.last_received_us = 0
        self.last_sent_us = 0
        # Why the last connection ended, for the audit trail: the reason the venue closed
        # it, or that the peer closed it without one.
        self.disconnect_reason = ""
        self._closing_reason: str | None = None
        self._header_prefix: list[Field] = [
            (tags.SENDER_COMP_ID, settings.sender_comp_id),
            (tags.TARGET_COMP_ID, settings.target_comp_id),
        ]
        if settings.sender_sub_id:
            self._header_prefix.append((tags.SENDER_SUB_ID, settings.sender_sub_id))
        if settings.target_sub_id:
            self._header_prefix.append((tags.TARGET_SUB_ID, settings.target_sub_id))

    def __repr__(self) -> str:
        return f"Session({self.session_id!r}, {self.state.value})"

    # ------------------------------------------------------------------ connection life

    def on_logon(self, message: FixMessage, connection: Connection) -> None:
        """Bind ``connection`` to this session for a valid Logon (A), or drop it.

        The acceptor has matched BeginString and CompIDs already. A Logon that fails the
        data dictionary, has a bad HeartBtInt (108), lacks DefaultApplVerID (1137) on
        FIXT.1.1 or has MsgSeqNum (34) too low is refused without a Logon in reply.
        """
        problem = self._logon_problem(message)
        if problem is not None:
            logger.warning("%s: Logon from %s rejected: %s", self.session_id, connection.peer, problem)
            connection.close()
            return
        heartbeat_interval_s = message.get_int(tags.HEART_BT_INT, 0) or 0

        reset_requested = message.get(tags.RESET_SEQ_NUM_FLAG) == b"Y"
        if reset_requested or self.settings.reset_on_logon:
            self.reset_seq_nums()
        msg_seq_num = message.get_int(tags.MSG_SEQ_NUM, 0) or 0
        self.connection = connection
        self.state = SessionState.ACTIVE
        self.heartbeat_interval_s = float(heartbeat_interval_s)
        self.last_received_us = self.audit.now_us()
        self._record_inbound(message)

        if msg_seq_num < self.next_target_seq_num:
            self.send_logout(
                f"MsgSeqNum (34) too low, expecting {self.next_target_seq_num} "
                f"but received {msg_seq_num}"
            )
            self.disconnect("Logon MsgSeqNum too low")
            return

        logger.info(
            "%s: logon from %s, HeartBtInt=%ds, next sender %d, next target %d",
            self.session_id, connection.peer, heartbeat_interval_s,
            self.next_sender_seq_num, self.next_target_seq_num,
        )
        self.send_logon(reset_requested)
        self.application.on_logon(self)
        if msg_seq_num > self.next_target_seq_num:
            self.send_resend_request(self.next_target_seq_num)
        else:
            self._advance_target()

    def _logon_problem(self, message: FixMessage) -> str | None:
        """Return why a Logon (A) cannot open the session, or None when it can."""
        violation = self.validate(message)
        if violation is not None:
            return f"{violation.text}, tag {violation.tag}"
        try:
            heartbeat_interval_s = message.get_int(tags.HEART_BT_INT, None)
            message.get_int(tags.MSG_SEQ_NUM, None)
        except FieldFormatError as exc:
            return str(exc)
        if heartbeat_interval_s is None or heartbeat_interval_s < 0:
            return f"HeartBtInt (108) {message.get_str(tags.HEART_BT_INT)!r} is missing or negative"
        if self.begin_string == _FIXT and tags.DEFAULT_APPL_VER_ID not in message:
            return "DefaultApplVerID (1137) is missing, and FIXT.1.1 requires it"
        return None

    def validate(self, message: FixMessage) -> Violation | None:
        """Check ``message`` against the session's data dictionaries; None when it passes
        or when the session uses none (UseDataDictionary=N).

        A SOH inside the value of a field other than a data field fails whether or not
        the session uses dictionaries.
        """
        soh_tag = message.embedded_soh_tag
        if soh_tag is not None:
            reason = SessionRejectReason.NON_DATA_VALUE_INCLUDES_SOH
            return Violation(reason, soh_tag, reason_text(reason))
        if self.transport_dictionary is None:
            return None
        app = None
        if self.begin_string == _FIXT and message.msg_type not in tags.ADMIN_MSG_TYPES:
            app = self.app_dictionary
        return self.transport_dictionary.validate(message, self.validation_options, app)

    def is_header_tag(self, tag: int) -> bool:
        """Return whether ``tag`` belongs in the standard header of this session's version."""
        if self.transport_dictionary is None:
            return tag in STANDARD_HEADER_TAGS
        return self.transport_dictionary.is_header_tag(tag)

    def on_disconnect(self) -> None:
        """Forget the connection; sequence numbers stay for the next Logon."""
        if self.state is SessionState.DISCONNECTED:
            return
        logger.info(
            "%s: disconnected, next sender %d, next target %d",
            self.session_id, self.next_sender_seq_num, self.next_target_seq_num,
        )
        self.state = SessionState.DISCONNECTED
        self.connection = None
        self.disconnect_reason = self._closing_reason or "connection closed by the peer without Logout"
        self._closing_reason = None
        self._queued.clear()
        self._resend_requested_to = 0
        self._test_request_pending = False
        if self.settings.reset_on_disconnect:
            self.reset_seq_nums()
        self.application.on_logout(self)

    def disconnect(self, reason: str) -> None:
        """Close the TCP connection once everything sent before is committed and written."""
        connection = self.connection
        if connection is None:
            return
        logger.info("%s: disconnecting: %s", self.session_id, reason)
        self.audit.after_commit(connection.close)
        self._closing_reason = reason
        self.on_disconnect()

    def reset_seq_nums(self) -> None:
        """Start both directions again at MsgSeqNum 1 (ResetSeqNumFlag or ResetOnLogon)."""
        logger.info(
            "%s: sequence reset from sender %d / target %d to 1 / 1",
            self.session_id, self.next_sender_seq_num, self.next_target_seq_num,
        )
        self.next_sender_seq_num = 1
        self.next_target_seq_num = 1
        self._queued.clear()
        self._save_seq_nums(creation_time_us=self.audit.now_us())

    # ------------------------------------------------------------------ inbound

    def on_message(self, message: FixMessage) -> None:
        """Process one inbound message of a logged-on session.

        The steps follow QuickFIX-based engines, so that a peer gets the same replies from
        either: MsgSeqNum (34) present, BeginString (8), the data dictionary, a Logon (A)
        with ResetSeqNumFlag (141), SendingTime (52) and CompIDs, then the sequence rules.
        """
        self.last_received_us = self.audit.now_us()
        self._test_request_pending = False
        msg_seq_num = _msg_seq_num(message)
        if msg_seq_num is None:
            self._record_inbound(message)
            self.send_logout("MsgSeqNum (34) is missing or not a number")
            self.disconnect("message without a valid MsgSeqNum (34)")
            return
        if message.begin_string != self.begin_string:
            self._record_inbound(message)
            self._advance_target_if(msg_seq_num)
            self.send_logout("Incorrect BeginString")
            self.disconnect(
                f"BeginString (8) {message.begin_string!r} is not {self.begin_string!r}"
            )
            return
        violation = self.validate(message)
        if violation is not None:
            self._on_invalid(message, msg_seq_num, violation)
            return
        if message.msg_type == MsgType.LOGON:
            self._record_inbound(message)
            self._on_logon_while_active(message, msg_seq_num)
            return
        if not self._is_header_valid(message, msg_seq_num):
            return
        self._on_sequenced(message, msg_seq_num)

    def _on_sequenced(self, message: FixMessage, msg_seq_num: int) -> None:
        """Apply the MsgSeqNum (34) rules, then dispatch the message and any it unblocks."""
        msg_type = message.msg_type
        is_gap_fill = message.get(tags.GAP_FILL_FLAG) == b"Y"
        if msg_type == MsgType.SEQUENCE_RESET and not is_gap_fill:
            # Reset mode ignores MsgSeqNum (34) by definition.
            self._record_inbound(message)
            self.on_sequence_reset(message, msg_seq_num)
            return
        if msg_seq_num > self.next_target_seq_num:
            self._on_target_too_high(message, msg_seq_num)
            return
        if msg_seq_num < self.next_target_seq_num:
            if msg_type in (MsgType.RESEND_REQUEST, MsgType.LOGOUT):
                # A ResendRequest or Logout is acted on whatever its MsgSeqNum (34), so a
                # peer that lost count can still recover or leave; neither advances it.
                self._record_inbound(message)
                self._dispatch(message, msg_seq_num)
                return
            self._on_target_too_low(message, msg_seq_num)
            return

        self._record_inbound(message)
        self._dispatch(message, msg_seq_num)
        self._drain_queue()

    def _on_invalid(self, message: FixMessage, msg_seq_num: int, violation: Violation) -> None:
        """Reject a message that fails the data dictionary.

        The rejected message counts as received when it carries the expected MsgSeqNum,
        except a SequenceReset (4), whose NewSeqNo (36) decides the next number instead.
        """
        self._record_inbound(message)
        if message.msg_type != MsgType.SEQUENCE_RESET:
            self._advance_target_if(msg_seq_num)
        self.send_reject(
            message, msg_seq_num, violation.reason, ref_tag_id=violation.tag, text=violation.text
        )
        self._drain_queue()

    def _on_logon_while_active(self, message: FixMessage, msg_seq_num: int) -> None:
        """Restart both directions at MsgSeqNum 1 for a Logon (A) with ResetSeqNumFlag=Y,
        or log out a Logon without it."""
        if message.get(tags.RESET_SEQ_NUM_FLAG) != b"Y":
            self.send_logout("Logon received on a logged-on session without ResetSeqNumFlag")
            self.disconnect("second Logon without ResetSeqNumFlag (141)")
            return
        logger.info("%s: Logon with ResetSeqNumFlag during the session", self.session_id)
        self.reset_seq_nums()
        self.send_logon(reset_seq_num=True)
        self.next_target_seq_num = msg_seq_num + 1
        self._save_seq_nums()

    def _dispatch(self, message: FixMessage, msg_seq_num: int) -> None:
        handler = self._admin_handlers.get(message.msg_type)
        if handler is not None:
            handler(self, message, msg_seq_num)
            return
        self._advance_target()
        if self.state is SessionState.ACTIVE:
            self.application.on_app_message(self, message)

    def _drain_queue(self) -> None:
        while self._queued and self.connection is not None:
            message = self._queued.pop(self.next_target_seq_num, None)
            if message is None:
                # Anything queued below the expected number was covered by a gap fill.
                for seq in [s for s in self._queued if s < self.next_target_seq_num]:
                    del self._queued[seq]
                return
            self._record_inbound(message)
            self._dispatch(message, self.next_target_seq_num)
        if self._resend_requested_to and self.next_target_seq_num > self._resend_requested_to:
            self._resend_requested_to = 0

    def _on_target_too_high(self, message: FixMessage, msg_seq_num: int) -> None:
        # A ResendRequest or Logout is acted on at once, before our own ResendRequest:
        # waiting for the gap to fill first would deadlock two sessions that both have gaps.
        self._record_inbound(message)
        if message.msg_type == MsgType.RESEND_REQUEST:
            self.on_resend_request(message, msg_seq_num)
        elif message.msg_type == MsgType.LOGOUT:
            self.on_logout(message, msg_seq_num)
            return
        else:
            self._queued[msg_seq_num] = message
        if self._resend_requested_to == 0:
            self.send_resend_request(self.next_target_seq_num)

    def _on_target_too_low(self, message: FixMessage, msg_seq_num: int) -> None:
        self._record_inbound(message)
        if message.get(tags.POSS_DUP_FLAG) != b"Y":
            text = (
                f"MsgSeqNum (34) too low, expecting {self.next_target_seq_num} "
                f"but received {msg_seq_num}"
            )
            logger.warning("%s: %s; logging out", self.session_id, text)
            self.send_logout(text)
            self.disconnect("MsgSeqNum too low without PossDupFlag")
            return
        # A possible duplicate below the expected number was processed before: drop it,
        # after the OrigSendingTime (122) checks every PossDupFlag=Y message must pass.
        self._is_poss_dup_valid(message, msg_seq_num)

    # ------------------------------------------------------------------ header checks

    def _is_header_valid(self, message: FixMessage, msg_seq_num: int) -> bool:
        """Check SendingTime (52), then the CompIDs; reject and log out on failure."""
        if self.settings.check_latency and not self._is_sending_time_accurate(message):
            self._record_inbound(message)
            self._advance_target_if(msg_seq_num)
            self.send_reject(
                message, msg_seq_num, SessionRejectReason.SENDING_TIME_ACCURACY_PROBLEM,
                ref_tag_id=tags.SENDING_TIME,
                text=f"SendingTime (52) {message.get_str(tags.SENDING_TIME)!r} is not within "
                f"{self.settings.max_latency_s}s of the venue's clock",
            )
            self.send_logout("SendingTime accuracy problem")
            self.disconnect("SendingTime accuracy problem")
            return False

        sender = message.get_str(tags.SENDER_COMP_ID)
        target = message.get_str(tags.TARGET_COMP_ID)
        if sender != self.settings.target_comp_id or target != self.settings.sender_comp_id:
            self._record_inbound(message)
            self._advance_target_if(msg_seq_num)
            self.send_reject(
                message, msg_seq_num, SessionRejectReason.COMPID_PROBLEM,
                text=f"CompID problem: SenderCompID (49) {sender!r}, TargetCompID (56) {target!r}",
            )
            self.send_logout("CompID problem")
            self.disconnect("CompID problem")
            return False
        return True

    def _is_sending_time_accurate(self, message: FixMessage) -> bool:
        value = message.get_str(tags.SENDING_TIME)
        if value is None:
            return False
        try:
            sending_time_us = parse_utc_timestamp(value)
        except ValueError:
            return False
        return abs(self.audit.now_us() - sending_time_us) <= self.settings.max_latency_s * 1_000_000

    def _is_poss_dup_valid(self, message: FixMessage, msg_seq_num: int) -> bool:
        orig_sending_time = message.get_str(tags.ORIG_SENDING_TIME)
        if orig_sending_time is None:
            self.send_reject(
                message, msg_seq_num, SessionRejectReason.REQUIRED_TAG_MISSING,
                ref_tag_id=tags.ORIG_SENDING_TIME,
                text="OrigSendingTime (122) is required when PossDupFlag (43) is Y",
            )
            return False
        try:
            orig_us = parse_utc_timestamp(orig_sending_time)
            sending_us = parse_utc_timestamp(message.get_str(tags.SENDING_TIME) or "")
        except ValueError:
            return True
        if orig_us > sending_us:
            self.send_reject(
                message, msg_seq_num, SessionRejectReason.SENDING_TIME_ACCURACY_PROBLEM,
                ref_tag_id=tags.ORIG_SENDING_TIME,
                text="OrigSendingTime (122) is later than SendingTime (52)",
            )
            self.send_logout("OrigSendingTime later than SendingTime")
            self.disconnect("OrigSendingTime later than SendingTime")
            return False
        return True

    # ------------------------------------------------------------------ admin handlers

    def on_heartbeat(self, message: FixMessage, msg_seq_num: int) -> None:
        self._advance_target()

    def on_test_request(self, message: FixMessage, msg_seq_num: int) -> None:
        self._advance_target()
        self.send_heartbeat(message.get(tags.TEST_REQ_ID))

    def on_reject(self, message: FixMessage, msg_seq_num: int) -> None:
        self._advance_target()
        logger.warning(
            "%s: peer rejected our MsgSeqNum %s: %s",
            self.session_id, message.get_str(tags.REF_SEQ_NUM), message.get_str(tags.TEXT),
        )

    def on_logout(self, message: FixMessage, msg_seq_num: int) -> None:
        if msg_seq_num == self.next_target_seq_num:
            self._advance_target()
        if self.state is SessionState.LOGOUT_SENT:
            self.disconnect("Logout confirmed by the peer")
        else:
            logger.info(
                "%s: Logout from the peer%s", self.session_id,
                f": {message.get_str(tags.TEXT)}" if tags.TEXT in message else "",
            )
            self.send_logout()
            self.disconnect("peer logged out")
        if self.settings.reset_on_logout:
            self.reset_seq_nums()

    def on_sequence_reset(self, message: FixMessage, msg_seq_num: int) -> None:
        """SequenceReset (4): GapFill mode follows MsgSeqNum rules, Reset mode does not."""
        new_seq_no = message.get_int(tags.NEW_SEQ_NO, None)
        if new_seq_no is None:
            self._advance_target_if(msg_seq_num)
            self.send_reject(
                message, msg_seq_num, SessionRejectReason.REQUIRED_TAG_MISSING,
                ref_tag_id=tags.NEW_SEQ_NO, text="NewSeqNo (36) is missing",
            )
            return
        if new_seq_no < self.next_target_seq_num:
            self.send_reject(
                message, msg_seq_num, SessionRejectReason.VALUE_INCORRECT,
                ref_tag_id=tags.NEW_SEQ_NO,
                text=f"NewSeqNo (36) {new_seq_no} would lower the expected MsgSeqNum "
                f"{self.next_target_seq_num}",
            )
            return
        logger.info(
            "%s: SequenceReset (%s) from %d to %d",
            self.session_id,
            "GapFill" if message.get(tags.GAP_FILL_FLAG) == b"Y" else "Reset",
            self.next_target_seq_num, new_seq_no,
        )
        self.next_target_seq_num = new_seq_no
        self._save_seq_nums()
        self._drain_queue()

    def on_resend_request(self, message: FixMessage, msg_seq_num: int) -> None:
        """ResendRequest (2): resend application messages, gap-fill administrative ones."""
        if msg_seq_num == self.next_target_seq_num:
            self._advance_target()
        begin_seq_no = message.get_int(tags.BEGIN_SEQ_NO, None)
        end_seq_no = message.get_int(tags.END_SEQ_NO, None)
        if begin_seq_no is None or end_seq_no is None:
            missing = tags.BEGIN_SEQ_NO if begin_seq_no is None else tags.END_SEQ_NO
            self.send_reject(
                message, msg_seq_num, SessionRejectReason.REQUIRED_TAG_MISSING,
                ref_tag_id=missing, text=f"tag {missing} is missing from the ResendRequest",
            )
            return
        last_sent = self.next_sender_seq_num - 1
        if end_seq_no in _INFINITY_END_SEQ_NOS or end_seq_no > last_sent:
            end_seq_no = last_sent
        logger.info(
            "%s: ResendRequest from %d to %s",
            self.session_id, begin_seq_no,
            "infinity" if message.get_int(tags.END_SEQ_NO) in _INFINITY_END_SEQ_NOS else end_seq_no,
        )
        # Outbound messages may still sit in an uncommitted batch; commit them before
        # reading the store, so nothing the peer may already have seen is gap-filled.
        asyncio.get_running_loop().create_task(self._resend(begin_seq_no, end_seq_no))

    async def _resend(self, begin_seq_no: int, end_seq_no: int) -> None:
        await self.audit.flush()
        if self.connection is None:
            return
        stored = dict(self.audit.load_outbound(self.session_id, begin_seq_no, end_seq_no))
        gap_start: int | None = None
        for seq in range(begin_seq_no, end_seq_no + 1):
            original = _decode_stored(stored.get(seq))
            if original is None or original.msg_type in tags.ADMIN_MSG_TYPES:
                if gap_start is None:
                    gap_start = seq
                continue
            if gap_start is not None:
                self.send_gap_fill(gap_start, seq)
                gap_start = None
            self._send_poss_dup(original, seq)
        if gap_start is not None:
            self.send_gap_fill(gap_start, end_seq_no + 1)

    _admin_handlers = {
        MsgType.HEARTBEAT: on_heartbeat,
        MsgType.TEST_REQUEST: on_test_request,
        MsgType.RESEND_REQUEST: on_resend_request,
        MsgType.REJECT: on_reject,
        MsgType.SEQUENCE_RESET: on_sequence_reset,
        MsgType.LOGOUT: on_logout,
    }

    # ------------------------------------------------------------------ timers

    def on_timer(self, now_us: int) -> None:
        """Send Heartbeat or TestRequest, or disconnect, by the time since the last traffic.

        At EndTime an active session is logged out.
        """
        if self.connection is None:
            return
        if self.state is SessionState.ACTIVE and not self.settings.is_session_time(
            datetime.datetime.fromtimestamp(now_us / 1e6, datetime.timezone.utc)
        ):
            logger.info("%s: outside the session time; logging out", self.session_id)
            self.send_logout("session time ended")
            return
        interval_us = self.heartbeat_interval_s * 1_000_000
        if interval_us <= 0:
            return
        silent_us = now_us - self.last_received_us
        if silent_us >= DISCONNECT_FACTOR * interval_us:
            logger.warning(
                "%s: nothing received for %.1fs (HeartBtInt %ss); disconnecting",
                self.session_id, silent_us / 1e6, self.heartbeat_interval_s,
            )
            self.disconnect("heartbeat timeout")
            return
        if silent_us >= TEST_REQUEST_FACTOR * interval_us and not self._test_request_pending:
            self._test_request_pending = True
            self.send_test_request("TEST")
            return
        # While a TestRequest is unanswered, the peer's reply or the timeout comes next;
        # a Heartbeat of our own in between would only add traffic.
        if now_us - self.last_sent_us >= interval_us and not self._test_request_pending:
            self.send_heartbeat(None)

    # ------------------------------------------------------------------ outbound

    def send_logon(self, reset_seq_num: bool) -> None:
        body: list[Field] = [
            (tags.ENCRYPT_METHOD, 0),
            (tags.HEART_BT_INT, int(self.heartbeat_interval_s)),
        ]
        if reset_seq_num:
            body.append((tags.RESET_SEQ_NUM_FLAG, "Y"))
        if self.begin_string == "FIXT.1.1" and self.settings.default_appl_ver_id:
            body.append((tags.DEFAULT_APPL_VER_ID, self.settings.default_appl_ver_id))
        self.send(MsgType.LOGON, body)

    def send_logout(self, text: str | None = None) -> None:
        body: list[Field] = [(tags.TEXT, text)] if text else []
        self.send(MsgType.LOGOUT, body)
        if self.state is SessionState.ACTIVE:
            self.state = SessionState.LOGOUT_SENT

    def send_heartbeat(self, test_req_id: str | bytes | None) -> None:
        # An empty TestReqID (112) is echoed empty: it only arrives here when the session
        # does not validate that fields have values.
        body: list[Field] = [] if test_req_id is None else [(tags.TEST_REQ_ID, test_req_id)]
        self.send(MsgType.HEARTBEAT, body, allow_empty=True)

    def send_test_request(self, test_req_id: str) -> None:
        self.send(MsgType.TEST_REQUEST, [(tags.TEST_REQ_ID, test_req_id)])

    def send_resend_request(self, begin_seq_no: int) -> None:
        end_seq_no = 999999 if self.begin_string in ("FIX.4.0", "FIX.4.1") else 0
        logger.info(
            "%s: gap detected, ResendRequest from %d to infinity", self.session_id, begin_seq_no
        )
        self._resend_requested_to = max(self.next_target_seq_num, 1)
        self.send(MsgType.RESEND_REQUEST, [(tags.BEGIN_SEQ_NO, begin_seq_no), (tags.END_SEQ_NO, end_seq_no)])

    def send_reject(
        self,
        message: FixMessage,
        ref_seq_num: int | None,
        reason: int,
        *,
        ref_tag_id: int | None = None,
        text: str,
    ) -> None:
        """Send a session-level Reject (3) for ``message``, routed back the way it came.

        RefTagID (371) and RefMsgType (372) exist from FIX 4.2, and SessionRejectReason
        (373) from FIX 4.2 for reasons 0 to 11 and from FIX 4.3 for the rest. FIX 4.0 and
        4.1 get RefSeqNum (45) and Text (58) only, so the tag goes into the Text.
        """
        body: list[Field] = []
        if ref_seq_num is not None:
            body.append((tags.REF_SEQ_NUM, ref_seq_num))
        if self.begin_string in _LEGACY_VERSIONS:
            body.append((tags.TEXT, f"{text} ({ref_tag_id})" if ref_tag_id is not None else text))
        else:
            if ref_tag_id is not None:
                body.append((tags.REF_TAG_ID, ref_tag_id))
            if message.msg_type:
                body.append((tags.REF_MSG_TYPE, message.msg_type))
            if self.begin_string != "FIX.4.2" or reason <= _FIX42_MAX_REJECT_REASON:
                body.append((tags.SESSION_REJECT_REASON, reason))
            body.append((tags.TEXT, text))
        logger.info("%s: Reject of MsgSeqNum %s: %s, tag %s", self.session_id, ref_seq_num, text, ref_tag_id)
        self.send(MsgType.REJECT, body, header=self.reverse_route(message))

    def send_business_reject(
        self, message: FixMessage, reason: int, text: str, ref_id: str | None = None
    ) -> None:
        """Send a BusinessMessageReject (j) for an application message (FIX 4.2 and later).

        On FIXT.1.1 it carries the session's DefaultApplVerID (1137), as QuickFIX-based
        acceptors send it.
        """
        body: list[Field] = [
            (tags.REF_SEQ_NUM, _msg_seq_num(message) or 0),
            (tags.REF_MSG_TYPE, message.msg_type),
        ]
        if ref_id:
            body.append((tags.BUSINESS_REJECT_REF_ID, ref_id))
        body += [(tags.BUSINESS_REJECT_REASON, reason), (tags.TEXT, text)]
        if self.begin_string == _FIXT and self.settings.default_appl_ver_id:
            body.append((tags.DEFAULT_APPL_VER_ID, self.settings.default_appl_ver_id))
        self.send(MsgType.BUSINESS_MESSAGE_REJECT, body, header=self.reverse_route(message))

    def reverse_route(self, message: FixMessage) -> list[Field]:
        """Return the routing header of a reply to ``message``: OnBehalfOf* as DeliverTo*
        and DeliverTo* as OnBehalfOf*.

        A value that contains SOH is left out, because encode() cannot send it, and the
        Reject (3) of that message must still go out.
        """
        pairs: tuple[tuple[int, int], ...] = _REVERSED_ROUTING
        if self.begin_string != "FIX.4.0":
            pairs = pairs + _REVERSED_LOCATIONS
        header: list[Field] = []
        for inbound_tag, reply_tag in pairs:
            value = message.get(inbound_tag)
            if value and SOH not in value:
                header.append((reply_tag, value))
        return header

    def send_gap_fill(self, begin_seq_no: int, new_seq_no: int) -> None:
        now_us = self.audit.now_us()
        sending_time = format_utc_timestamp(now_us, self.begin_string)
        header: list[Field] = [
            *self._header_prefix,
            (tags.MSG_SEQ_NUM, begin_seq_no),
            (tags.POSS_DUP_FLAG, "Y"),
            (tags.SENDING_TIME, sending_time),
            (tags.ORIG_SENDING_TIME, sending_time),
        ]
        body: list[Field] = [(tags.NEW_SEQ_NO, new_seq_no), (tags.GAP_FILL_FLAG, "Y")]
        raw = encode(self.begin_string, MsgType.SEQUENCE_RESET, header, body)
        self._write(raw, MsgType.SEQUENCE_RESET, begin_seq_no, now_us, poss_dup=True)

    def send(self, msg_type: str, body: Sequence[Field], *, header: Sequence[Field] = (),
             cl_ord_id: str | None = None, order_id: str | None = None,
             allow_empty: bool = False) -> int:
        """Send a new message with the next MsgSeqNum (34); return that number.

        ``header`` adds header fields after SendingTime (52), such as routing fields.
        """
        msg_seq_num = self.next_sender_seq_num
        self.next_sender_seq_num += 1
        now_us = self.audit.now_us()
        full_header: list[Field] = [
            *self._header_prefix,
            (tags.MSG_SEQ_NUM, msg_seq_num),
            (tags.SENDING_TIME, format_utc_timestamp(now_us, self.begin_string)),
            *header,
        ]
        raw = encode(self.begin_string, msg_type, full_header, body, allow_empty=allow_empty)
        self._save_seq_nums()
        self._write(raw, msg_type, msg_seq_num, now_us, cl_ord_id=cl_ord_id, order_id=order_id)
        return msg_seq_num

    def _send_poss_dup(self, original: FixMessage, msg_seq_num: int) -> None:
        """Send a stored message again with PossDupFlag (43) Y.

        ``original`` may itself be a copy sent by an earlier resend: OrigSendingTime (122)
        then keeps the first SendingTime (52). The session's own header fields are
        rebuilt, other header fields stay in the header, and the body is copied unchanged.
        """
        now_us = self.audit.now_us()
        orig_sending_time = original.get(tags.ORIG_SENDING_TIME) or original.get(tags.SENDING_TIME)
        header: list[Field] = [
            *self._header_prefix,
            (tags.MSG_SEQ_NUM, msg_seq_num),
            (tags.POSS_DUP_FLAG, "Y"),
            (tags.SENDING_TIME, format_utc_timestamp(now_us, self.begin_string)),
            (tags.ORIG_SENDING_TIME, orig_sending_time or b""),
        ]
        rebuilt = _REBUILT_HEADER_TAGS.union(tag for tag, _ in self._header_prefix)
        body: list[Field] = []
        for tag, value in original.fields:
            if tag in rebuilt:
                continue
            if self.is_header_tag(tag):
                header.append((tag, value))
            else:
                body.append((tag, value))
        raw = encode(self.begin_string, original.msg_type, header, body)
        self._write(
            raw, original.msg_type, msg_seq_num, now_us, poss_dup=True,
            cl_ord_id=original.get_str(tags.CL_ORD_ID), order_id=original.get_str(tags.ORDER_ID),
        )

    def _write(self, raw: bytes, msg_type: str, msg_seq_num: int, now_us: int, *,
               poss_dup: bool = False, cl_ord_id: str | None = None,
               order_id: str | None = None) -> None:
        self.last_sent_us = now_us
        self.audit.record_message(
            self.session_id, "out", raw, msg_type=msg_type, msg_seq_num=msg_seq_num,
            cl_ord_id=cl_ord_id, order_id=order_id, poss_dup=poss_dup, ts_us=now_us,
        )
        connection = self.connection
        if connection is not None:
            self.audit.after_commit(lambda: _write_if_open(connection, raw))

    # ------------------------------------------------------------------ store

    def _record_inbound(self, message: FixMessage) -> None:
        self.audit.record_message(
            self.session_id, "in", message.raw, msg_type=message.msg_type,
            # A malformed MsgSeqNum (34) is recorded as NULL; the raw message keeps it, and
            # the session logs the peer out after recording it.
            msg_seq_num=_msg_seq_num(message),
            cl_ord_id=message.get_str(tags.CL_ORD_ID),
            poss_dup=message.get(tags.POSS_DUP_FLAG) == b"Y",
            ts_us=self.last_received_us or None,
        )

    def _advance_target(self) -> None:
        self.next_target_seq_num += 1
        self._save_seq_nums()

    def _advance_target_if(self, msg_seq_num: int) -> None:
        if msg_seq_num == self.next_target_seq_num:
            self._advance_target()

    def _save_seq_nums(self, creation_time_us: int | None = None) -> None:
        self.audit.save_session_state(
            self.session_id,
            next_sender_seq_num=self.next_sender_seq_num,
            next_target_seq_num=self.next_target_seq_num,
            creation_time_us=creation_time_us,
        )


def _write_if_open(connection: Connection, raw: bytes) -> None:
    if not connection.is_closing:
        connection.write(raw)



def _decode_stored(raw: bytes | None) -> FixMessage | None:
    """Parse one stored outbound message; None when it is missing or unreadable, so the
    resend gap-fills over it instead of stopping."""
    if raw is None:
        return None
    try:
        return decode_message(raw)
    except CodecError:
        logger.exception("stored outbound message %r cannot be parsed; gap-filling over it", raw[:60])
        return None


def _msg_seq_num(message: FixMessage) -> int | None:
    """Return MsgSeqNum (34), or None when it is missing or not an integer."""
    try:
        return message.get_int(tags.MSG_SEQ_NUM, None)
    except FieldFormatError:
        return None


def load_session_dictionaries(
    settings: SessionSettings,
) -> tuple[DataDictionary | None, DataDictionary | None]:
    """Return the (transport, application) dictionaries a session validates with.

    A FIX 4.x session uses DataDictionary for both, a FIXT.1.1 session
    TransportDataDictionary and AppDataDictionary. A dictionary the settings do not name
    is the venue dictionary shipped with the gateway; UseDataDictionary=N gives none.
    """
    if not settings.use_data_dictionary:
        return None, None
    if settings.begin_string != _FIXT:
        dictionary = _dictionary_or_venue(settings.data_dictionary)
        return dictionary, dictionary
    return (
        _dictionary_or_venue(settings.transport_data_dictionary),
        _dictionary_or_venue(settings.app_data_dictionary),
    )


def _dictionary_or_venue(path: object) -> DataDictionary:
    if path is None:
        return venue_dictionary()
    return load_dictionary(str(path))
