"""The echo application: the counterparty that FIX session acceptance scripts expect.

``fixgw serve --app echo`` runs it in place of the matching engine. It sends
NewOrderSingle (D), SecurityDefinition (d) and Email (C) back to the peer as new messages
of its own, and rejects every other application message as unsupported. Sessions,
sequence numbers, validation and resends stay the ordinary session layer's.
"""

from __future__ import annotations

import logging

from gateway import tags
from gateway.codec import FixMessage
from gateway.session import Field, Session
from gateway.tags import BusinessRejectReason, MsgType, SessionRejectReason

__all__ = ["ECHOED_MSG_TYPES", "EchoApplication"]

logger = logging.getLogger(__name__)

ECHOED_MSG_TYPES = frozenset({MsgType.NEW_ORDER_SINGLE, "d", "C"})

# Header fields the session writes itself on every outbound message. PossDupFlag (43) and
# OrigSendingTime (122) describe the inbound copy, not the echo, so they go too;
# PossResend (97) and the routing fields stay as received.
_REPLACED_HEADER_TAGS = frozenset(
    {
        tags.BEGIN_STRING, tags.BODY_LENGTH, tags.MSG_TYPE, tags.SENDER_COMP_ID,
        tags.TARGET_COMP_ID, tags.MSG_SEQ_NUM, tags.SENDING_TIME, tags.POSS_DUP_FLAG,
        tags.ORIG_SENDING_TIME, tags.SENDER_SUB_ID, tags.TARGET_SUB_ID,
        tags.SENDER_LOCATION_ID, tags.TARGET_LOCATION_ID, tags.CHECK_SUM,
    }
)
_TRAILER_TAGS = frozenset({tags.CHECK_SUM, 89, 93})  # CheckSum, Signature, SignatureLength

_LEGACY_VERSIONS = frozenset({"FIX.4.0", "FIX.4.1"})  # no BusinessMessageReject (j)


class EchoApplication:
    """Echoes D, d and C; drops a PossResend (97)=Y order whose ClOrdID (11) it has seen."""

    def __init__(self) -> None:
        # ClOrdIDs seen per session, kept across logons for the life of the appliance.
        self._cl_ord_ids: dict[str, set[bytes]] = {}

    def on_logon(self, session: Session) -> None:
        pass

    def on_logout(self, session: Session) -> None:
        pass

    def on_app_message(self, session: Session, message: FixMessage) -> None:
        """Echo a supported message or reject it as unsupported."""
        if message.msg_type not in ECHOED_MSG_TYPES:
            self.send_unsupported(session, message)
            return
        if message.msg_type == MsgType.NEW_ORDER_SINGLE and self.is_duplicate_order(session, message):
            logger.info(
                "%s: PossResend order ClOrdID (11) %r already received; dropped",
                session.session_id, message.get_str(tags.CL_ORD_ID),
            )
            return
        header, body = split_fields(session, message)
        session.send(message.msg_type, body, header=header, allow_empty=True)

    def is_duplicate_order(self, session: Session, message: FixMessage) -> bool:
        """Record the order's ClOrdID (11); return whether a PossResend copy repeats one."""
        seen = self._cl_ord_ids.setdefault(session.session_id, set())
        cl_ord_id = message.get(tags.CL_ORD_ID) or b""
        if message.get(tags.POSS_RESEND) == b"Y" and cl_ord_id in seen:
            return True
        seen.add(cl_ord_id)
        return False

    @staticmethod
    def send_unsupported(session: Session, message: FixMessage) -> None:
        """Reject an application message type the echo application does not handle.

        FIX 4.0 and 4.1 have no BusinessMessageReject (j), so they get a session Reject (3).
        """
        msg_seq_num = message.get_int(tags.MSG_SEQ_NUM, None)
        if session.begin_string in _LEGACY_VERSIONS:
            session.send_reject(
                message, msg_seq_num, SessionRejectReason.INVALID_MSG_TYPE,
                text="Unsupported message type",
            )
            return
        session.send_business_reject(
            message, BusinessRejectReason.UNSUPPORTED_MESSAGE_TYPE, "Unsupported Message Type"
        )


def split_fields(session: Session, message: FixMessage) -> tuple[list[Field], list[Field]]:
    """Return the header fields an echo keeps and the body fields, in wire order."""
    header: list[Field] = []
    body: list[Field] = []
    for tag, value in message.fields:
        if session.is_header_tag(tag):
            if tag not in _REPLACED_HEADER_TAGS:
                header.append((tag, value))
        elif tag not in _TRAILER_TAGS:
            body.append((tag, value))
    return header, body
