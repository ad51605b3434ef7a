"""Commands: what the gateway asks of the engine, after risk has accepted them.

Commands are plain, frozen, serialisable values. The audit trail journals every command in
order, and replaying that journal into a fresh engine rebuilds the same books, so a command
must carry everything the engine needs and nothing that depends on the wire.

``session_id`` names the order's owner (a FIX session ID such as ``FIX.4.4:VENUE->BRK1``).
A ClOrdID (11) is unique per owner, so the engine keys client order IDs by
``(session_id, cl_ord_id)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Union, get_args

from engine.orders import OrdRejReason, OrdType, Side, TimeInForce, TradingPhase

# session_id of the commands the venue itself issues: time, end of day and phase changes.
VENUE_SESSION_ID = "VENUE"


@dataclass(frozen=True, slots=True)
class NewOrder:
    """A NewOrderSingle (D). ``price`` is None for a market or stop order.

    ``stop_px`` is StopPx (99) of a stop or stop-limit order. ``display_qty`` is MaxFloor
    (111), DisplayQty (1138) from FIX 5.0: 0 shows the whole order, a smaller positive
    quantity makes an iceberg. ``min_qty`` is MinQty (110), 0 for none. ``post_only`` is
    ExecInst (18) 6. ``expire_time_us`` (ExpireTime (126), microseconds since the epoch)
    or ``expire_date`` (ExpireDate (432), YYYYMMDD) ends a GTD order.
    """

    session_id: str
    cl_ord_id: str
    symbol: str
    side: Side
    ord_type: OrdType
    order_qty: int
    price: int | None
    time_in_force: TimeInForce = TimeInForce.DAY
    account: str = ""
    stop_px: int | None = None
    display_qty: int = 0
    min_qty: int = 0
    post_only: bool = False
    expire_time_us: int | None = None
    expire_date: str | None = None


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """An OrderCancelRequest (F) for the order whose ClOrdID was ``orig_cl_ord_id``."""

    session_id: str
    cl_ord_id: str
    orig_cl_ord_id: str
    symbol: str
    side: Side
    order_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReplaceOrder:
    """An OrderCancelReplaceRequest (G): new price and quantity for a resting order.

    ``order_qty`` is the new total quantity, filled part included, as OrderQty (38) means
    in FIX. A decrease keeps time priority; a price change or an increase loses it, and
    so does a new ``display_qty``. The other fields replace the order's as in
    :class:`NewOrder`; ``post_only`` and MinQty (110) stay as the order was entered.
    """

    session_id: str
    cl_ord_id: str
    orig_cl_ord_id: str
    symbol: str
    side: Side
    ord_type: OrdType
    order_qty: int
    price: int | None
    time_in_force: TimeInForce = TimeInForce.DAY
    order_id: str | None = None
    stop_px: int | None = None
    display_qty: int = 0
    expire_time_us: int | None = None
    expire_date: str | None = None


@dataclass(frozen=True, slots=True)
class OrderStatusRequest:
    """An OrderStatusRequest (H)."""

    session_id: str
    cl_ord_id: str
    symbol: str
    side: Side
    order_id: str | None = None


@dataclass(frozen=True, slots=True)
class MassCancel:
    """An OrderMassCancelRequest (q): every resting order of the session, optionally
    narrowed to one symbol and one side.

    ``text`` is the Text (58) of the cancel reports. Empty, the reports name the
    request's ClOrdID (11). The venue sets it when it cancels on its own account, as on
    a disconnect.
    """

    session_id: str
    cl_ord_id: str
    symbol: str | None = None
    side: Side | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class RejectOrder:
    """A NewOrderSingle that risk or validation rejected before it reached a book.

    It is journaled like any command so that ExecIDs stay a pure function of the journal.
    """

    order: NewOrder
    reason: OrdRejReason
    text: str


@dataclass(frozen=True, slots=True)
class AdvanceTime:
    """The venue clock moved to ``ts_us`` (microseconds since the epoch, UTC).

    The engine reads no clock, so GTD orders with an ExpireTime (126) expire only when a
    journaled AdvanceTime reaches it. A time earlier than the engine's is ignored.
    ``session_id`` and ``cl_ord_id`` name the sender and request for the audit trail.
    """

    ts_us: int
    session_id: str = VENUE_SESSION_ID
    cl_ord_id: str = ""


@dataclass(frozen=True, slots=True)
class EndOfDay:
    """The trading day ``trade_date`` (YYYYMMDD) ended.

    DAY orders expire, and so do GTD orders whose ExpireDate (432) is ``trade_date`` or
    earlier. A later GTD order with such an ExpireDate is rejected.
    """

    trade_date: str
    session_id: str = VENUE_SESSION_ID
    cl_ord_id: str = ""


@dataclass(frozen=True, slots=True)
class SetTradingPhase:
    """Move ``symbol``, or every instrument when it is None, to ``phase``.

    Leaving a call phase or a halt for CONTINUOUS or CLOSED uncrosses the book first.
    An unlisted ``symbol`` makes ``process`` raise UnknownInstrumentError, so the venue
    must validate the symbol before journaling the command.
    """

    phase: TradingPhase
    symbol: str | None = None
    session_id: str = VENUE_SESSION_ID
    cl_ord_id: str = ""


Command = Union[
    NewOrder,
    CancelOrder,
    ReplaceOrder,
    OrderStatusRequest,
    MassCancel,
    RejectOrder,
    AdvanceTime,
    EndOfDay,
    SetTradingPhase,
]

COMMAND_TYPES: dict[str, type] = {cls.__name__: cls for cls in get_args(Command)}


def command_to_dict(command: Command) -> dict[str, Any]:
    """Return the command as a JSON-ready dict with its type under ``"type"``."""
    if isinstance(command, RejectOrder):
        body: dict[str, Any] = {
            "order": command_to_dict(command.order),
            "reason": command.reason.value,
            "text": command.text,
        }
    else:
        body = {
            field.name: _plain(getattr(command, field.name))
            for field in dataclasses.fields(command)
        }
    body["type"] = type(command).__name__
    return body


def command_from_dict(data: dict[str, Any]) -> Command:
    """Rebuild a command from :func:`command_to_dict` output."""
    data = dict(data)
    type_name = data.pop("type")
    cls = COMMAND_TYPES.get(type_name)
    if cls is None:
        raise ValueError(f"unknown command type {type_name!r}; expected one of {sorted(COMMAND_TYPES)}")
    if cls is RejectOrder:
        order = command_from_dict(data["order"])
        if not isinstance(order, NewOrder):
            raise ValueError(f"RejectOrder must wrap a NewOrder, got {type(order).__name__}")
        return RejectOrder(order=order, reason=OrdRejReason(data["reason"]), text=data["text"])
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name not in data:
            continue
        value = data[field.name]
        if value is not None and field.name in _ENUM_FIELDS:
            value = _ENUM_FIELDS[field.name](value)
        kwargs[field.name] = value
    return cls(**kwargs)


_ENUM_FIELDS: dict[str, type] = {
    "side": Side,
    "ord_type": OrdType,
    "time_in_force": TimeInForce,
    "phase": TradingPhase,
}


def _plain(value: Any) -> Any:
    if isinstance(value, (Side, OrdType, TimeInForce, OrdRejReason, TradingPhase)):
        return value.value
    return value
