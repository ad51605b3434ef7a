"""What the appliance does while the audit trail cannot commit (disk full, read-only file).

Decision: order entry stops, sessions stay connected, and nothing is released that is
not recorded.

- Every outbound message must be committed before it is written to the socket, because
  a later ResendRequest is served from the store. A reject that cannot be committed
  therefore cannot be sent either, and neither can a Logout (5), which also takes a
  MsgSeqNum (34). Sending either unrecorded would leave a sequence number the store
  cannot resend.
- So while commits fail, each NewOrderSingle (D) is journaled as a reject with
  OrdRejReason (103) 2 (exchange closed) and OrderCancelReplaceRequest (G) is answered
  with an OrderCancelReject (9), and the engine never sees them. Both stay in memory with
  everything else pending and go out, in order, the moment a retry commits. A client
  therefore sees no answer during the outage and a reject after it, never an order it
  believed accepted that the venue did not record.
- Cancels and mass cancels still reach the engine: they only reduce risk, and their
  reports wait for the store like every other message.
- The committer retries every second, so freeing disk space or making the file writable
  again resumes the venue without a restart; if the process dies before that, nothing
  that was not committed was ever acknowledged.
"""

from __future__ import annotations

import logging

from engine.commands import Command, NewOrder, RejectOrder, ReplaceOrder
from engine.events import CancelReject
from engine.orders import CxlRejReason, CxlRejResponseTo, OrdRejReason

__all__ = ["REJECT_TEXT", "OrderEntryGuard"]

logger = logging.getLogger(__name__)

REJECT_TEXT = "order entry stopped: the venue cannot record orders (audit trail unavailable)"


class OrderEntryGuard:
    """Turns new orders and replaces into rejects while the audit trail is failing."""

    def __init__(self, audit_path: str) -> None:
        self.audit_path = audit_path
        self.stopped_orders = 0

    def on_audit_failure(self, error: Exception | None) -> None:
        """Log the start and end of an outage; the audit trail calls it on each change."""
        if error is not None:
            logger.error(
                "audit trail %s cannot commit (%r): order entry stopped; new orders and "
                "replaces are rejected, and every reply waits until the file is writable",
                self.audit_path, error,
            )
        else:
            logger.warning(
                "audit trail %s commits again: order entry resumed after %d orders and "
                "replaces were rejected", self.audit_path, self.stopped_orders,
            )
            self.stopped_orders = 0

    def screen(self, command: Command) -> Command | CancelReject:
        """Return the command to journal instead of ``command``, or the reject to send."""
        if isinstance(command, NewOrder):
            self.stopped_orders += 1
            return RejectOrder(order=command, reason=OrdRejReason.EXCHANGE_CLOSED, text=REJECT_TEXT)
        if isinstance(command, ReplaceOrder):
            self.stopped_orders += 1
            return CancelReject(
                session_id=command.session_id, cl_ord_id=command.cl_ord_id,
                orig_cl_ord_id=command.orig_cl_ord_id, order_id=command.order_id,
                ord_status=None, response_to=CxlRejResponseTo.REPLACE,
                reason=CxlRejReason.OTHER, text=REJECT_TEXT,
            )
        return command
