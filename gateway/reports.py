"""Build ExecutionReport (8), OrderCancelReject (9) and OrderMassCancelReport (r) bodies.

ExecutionReports follow each version's definition:

- FIX 4.0 to 4.2 carry ExecTransType (20): 0 (new) on every report, 3 (status) on answers
  to an OrderStatusRequest. A trade is ExecType (150) 1 (partial fill) or 2 (fill), and a
  status answer repeats OrdStatus (39) as ExecType. FIX 4.0 has neither ExecType nor
  LeavesQty (151).
- FIX 4.3 and later drop ExecTransType; a trade is ExecType F and a status answer I.
"""

from __future__ import annotations

from engine.events import CancelReject, ExecutionEvent
from engine.orders import EXEC_INST_POST_ONLY, ExecType
from gateway import tags
from gateway.normalise import (
    EXEC_INST,
    EXPIRE_DATE,
    EXPIRE_TIME,
    MAX_FLOOR,
    MIN_QTY,
    STOP_PX,
    format_price,
)
from gateway.timefmt import format_utc_timestamp

Field = tuple[int, "str | bytes | int"]

_EXEC_TRANS_TYPE_VERSIONS = frozenset({"FIX.4.0", "FIX.4.1", "FIX.4.2"})
_STATUS_EXEC_TRANS_TYPE = "3"
_NEW_EXEC_TRANS_TYPE = "0"
_PARTIAL_FILL = "1"
_FILL = "2"
_UNKNOWN_ORDER_ID = "NONE"
# ExecType (150) L (triggered) exists from FIX 5.0 on; earlier versions get D (restated).
_RESTATED = "D"


def execution_report(event: ExecutionEvent, begin_string: str, transact_time: str) -> list[Field]:
    """Return the body of the ExecutionReport (8) for ``event`` in ``begin_string``."""
    body: list[Field] = [
        (tags.ORDER_ID, event.order_id or _UNKNOWN_ORDER_ID),
        (tags.CL_ORD_ID, event.cl_ord_id),
    ]
    if event.orig_cl_ord_id and begin_string != "FIX.4.0":
        body.append((tags.ORIG_CL_ORD_ID, event.orig_cl_ord_id))
    body.append((tags.EXEC_ID, event.exec_id))

    if begin_string in _EXEC_TRANS_TYPE_VERSIONS:
        is_status = event.exec_type is ExecType.ORDER_STATUS
        body.append((tags.EXEC_TRANS_TYPE, _STATUS_EXEC_TRANS_TYPE if is_status else _NEW_EXEC_TRANS_TYPE))
        if begin_string != "FIX.4.0":
            body.append((tags.EXEC_TYPE, _legacy_exec_type(event)))
    elif event.exec_type is ExecType.TRIGGERED and begin_string != "FIXT.1.1":
        body.append((tags.EXEC_TYPE, _RESTATED))
    else:
        body.append((tags.EXEC_TYPE, event.exec_type.value))

    body += [
        (tags.ORD_STATUS, event.ord_status.value),
        (tags.SYMBOL, event.symbol),
        (tags.SIDE, event.side.value),
        (tags.ORD_TYPE, event.ord_type.value),
        (tags.TIME_IN_FORCE, event.time_in_force.value),
        (tags.ORDER_QTY, event.order_qty),
    ]
    if event.price is not None:
        body.append((tags.PRICE, format_price(event.price)))
    body += _order_model_fields(event, begin_string)
    body += [
        (tags.LAST_QTY, event.last_qty),
        (tags.LAST_PX, format_price(event.last_px)),
    ]
    if begin_string != "FIX.4.0":
        body.append((tags.LEAVES_QTY, event.leaves_qty))
    body += [
        (tags.CUM_QTY, event.cum_qty),
        (tags.AVG_PX, format_price(event.avg_px)),
        (tags.TRANSACT_TIME, transact_time),
    ]
    if event.ord_rej_reason is not None:
        body.append(
            (tags.ORD_REJ_REASON, _defined_reason(_ORD_REJ_REASONS, begin_string, event.ord_rej_reason.value))
        )
    if event.text:
        body.append((tags.TEXT, event.text))
    return body


def _order_model_fields(event: ExecutionEvent, begin_string: str) -> list[Field]:
    """Return StopPx (99), MaxFloor (111), MinQty (110), ExecInst (18) and expiry, when set."""
    fields: list[Field] = []
    if event.stop_px is not None:
        fields.append((STOP_PX, format_price(event.stop_px)))
    if event.display_qty:
        fields.append((MAX_FLOOR, event.display_qty))
    if event.min_qty:
        fields.append((MIN_QTY, event.min_qty))
    if event.post_only:
        fields.append((EXEC_INST, EXEC_INST_POST_ONLY))
    if event.expire_time_us is not None:
        fields.append((EXPIRE_TIME, format_utc_timestamp(event.expire_time_us, begin_string)))
    if event.expire_date is not None:
        fields.append((EXPIRE_DATE, event.expire_date))
    return fields


def _legacy_exec_type(event: ExecutionEvent) -> str:
    if event.exec_type is ExecType.TRADE:
        return _FILL if event.leaves_qty == 0 else _PARTIAL_FILL
    if event.exec_type is ExecType.ORDER_STATUS:
        return event.ord_status.value
    if event.exec_type is ExecType.TRIGGERED:
        return _RESTATED
    return event.exec_type.value


# Reason codes each version defines, from the field definitions of the FIX specifications.
# A validating counterparty rejects a value its version does not define, so a newer
# reason falls back to Other (99) or, before FIX 4.4 defined 99, to the reason that
# leaves the explanation to Text (58). FIXT.1.1 sessions use the FIX 5.0 set, which
# FIX 5.0 SP1 and SP2 only extend.
_ORD_REJ_REASONS: dict[str, tuple[frozenset[str], str | None]] = {
    "FIX.4.0": (frozenset("0 1 2 3 4".split()), "0"),
    "FIX.4.1": (frozenset("0 1 2 3 4 5 6".split()), "0"),
    "FIX.4.2": (frozenset("0 1 2 3 4 5 6 7 8".split()), "0"),
    "FIX.4.3": (frozenset("0 1 2 3 4 5 6 7 8 9 10 11 12".split()), "0"),
    "FIX.4.4": (frozenset("0 1 2 3 4 5 6 7 8 9 10 11 13 14 15 99".split()), "99"),
    "FIXT.1.1": (frozenset("0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 18 99".split()), "99"),
}
_CXL_REJ_REASONS: dict[str, tuple[frozenset[str], str | None]] = {
    # FIX 4.0 and 4.1 define only 0 (too late to cancel) and 1 (unknown order), and the
    # field is optional there, so any other reason is left out.
    "FIX.4.0": (frozenset("0 1".split()), None),
    "FIX.4.1": (frozenset("0 1".split()), None),
    "FIX.4.2": (frozenset("0 1 2 3".split()), "2"),
    "FIX.4.3": (frozenset("0 1 2 3 4 5 6".split()), "2"),
    "FIX.4.4": (frozenset("0 1 2 3 4 5 6 99".split()), "99"),
    "FIXT.1.1": (frozenset("0 1 2 3 4 5 6 18 99".split()), "99"),
}


def _defined_reason(
    table: dict[str, tuple[frozenset[str], str | None]], begin_string: str, value: str
) -> str | None:
    """Return ``value`` if ``begin_string`` defines it, else that version's fallback."""
    defined, fallback = table.get(begin_string, table["FIXT.1.1"])
    return value if value in defined else fallback


def order_cancel_reject(
    event: CancelReject, transact_time: str, begin_string: str = "FIX.4.4"
) -> list[Field]:
    """Return the body of the OrderCancelReject (9) for ``event``.

    OrderID (37) and OrdStatus (39) are required even when the order is unknown, so an
    unknown order is reported as OrderID NONE with OrdStatus 8 (rejected).
    """
    body: list[Field] = [
        (tags.ORDER_ID, event.order_id or _UNKNOWN_ORDER_ID),
        (tags.CL_ORD_ID, event.cl_ord_id),
    ]
    # FIX 4.0 has no OrigClOrdID (41) here, and FIX 4.0 and 4.1 have neither
    # CxlRejResponseTo (434) nor TransactTime (60).
    if begin_string != "FIX.4.0":
        body.append((tags.ORIG_CL_ORD_ID, event.orig_cl_ord_id))
    body.append((tags.ORD_STATUS, event.ord_status.value if event.ord_status else "8"))
    if begin_string not in ("FIX.4.0", "FIX.4.1"):
        body.append((tags.CXL_REJ_RESPONSE_TO, event.response_to.value))
    reason = _defined_reason(_CXL_REJ_REASONS, begin_string, event.reason.value)
    if reason is not None:
        body.append((tags.CXL_REJ_REASON, reason))
    if begin_string not in ("FIX.4.0", "FIX.4.1"):
        body.append((tags.TRANSACT_TIME, transact_time))
    if event.text:
        body.append((tags.TEXT, event.text))
    return body


def order_mass_cancel_report(
    cl_ord_id: str,
    order_id: str,
    request_type: str,
    response: str,
    total_affected_orders: int,
    text: str = "",
    reject_reason: str | None = None,
) -> list[Field]:
    """Return the body of an OrderMassCancelReport (r).

    ``response`` is MassCancelResponse (531): 0 when rejected, else the request type.
    """
    body: list[Field] = [
        (tags.CL_ORD_ID, cl_ord_id),
        (tags.ORDER_ID, order_id),
        (tags.MASS_CANCEL_REQUEST_TYPE, request_type),
        (tags.MASS_CANCEL_RESPONSE, response),
    ]
    if reject_reason is not None:
        body.append((tags.MASS_CANCEL_REJECT_REASON, reject_reason))
    body.append((tags.TOTAL_AFFECTED_ORDERS, total_affected_orders))
    if text:
        body.append((tags.TEXT, text))
    return body
