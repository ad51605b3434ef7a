"""Normalise FIX application messages into engine commands.

:func:`normalise` returns either a command or the reject the FIX specification prescribes
for the message: a session-level Reject (3) when a field is missing, empty or malformed,
a BusinessMessageReject (j) for an application message the venue does not support, and
a :class:`RejectOrder` command (an ExecutionReport with OrdStatus 8) for a well-formed
order with a characteristic the venue does not support.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Union

from engine.commands import (
    CancelOrder,
    Command,
    MassCancel,
    NewOrder,
    OrderStatusRequest,
    RejectOrder,
    ReplaceOrder,
)
from engine.orders import (
    EXEC_INST_POST_ONLY,
    PRICE_DECIMALS,
    PRICE_SCALE,
    OrdRejReason,
    OrdType,
    Side,
    TimeInForce,
)
from gateway import tags
from gateway.codec import FixMessage
from gateway.tags import BusinessRejectReason, MsgType, SessionRejectReason
from gateway.timefmt import parse_utc_timestamp

SUPPORTED_ORD_TYPES = frozenset({OrdType.MARKET, OrdType.LIMIT, OrdType.STOP, OrdType.STOP_LIMIT})
SUPPORTED_TIME_IN_FORCE = frozenset(
    {TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTD}
)
# Order types that carry Price (44), and those that carry StopPx (99).
_PRICED_ORD_TYPES = frozenset({OrdType.LIMIT, OrdType.STOP_LIMIT})
_STOP_ORD_TYPES = frozenset({OrdType.STOP, OrdType.STOP_LIMIT})

# Order fields of the full order model that gateway.tags does not list.
EXEC_INST = 18
STOP_PX = 99
MIN_QTY = 110
MAX_FLOOR = 111
EXPIRE_TIME = 126
EXPIRE_DATE = 432
DISPLAY_QTY = 1138  # MaxFloor (111) was renamed DisplayQty (1138) in FIX 5.0

# OrderMassCancelRequest (q) types the venue carries out: 1 by security, 7 all orders.
MASS_CANCEL_BY_SECURITY = "1"
MASS_CANCEL_ALL = "7"


@dataclass(frozen=True, slots=True)
class SessionReject:
    """A Reject (3): the message is malformed for the session layer."""

    reason: int
    ref_tag_id: int | None
    text: str


@dataclass(frozen=True, slots=True)
class BusinessReject:
    """A BusinessMessageReject (j): well formed, but not something the venue does."""

    reason: int
    text: str
    ref_id: str | None = None


@dataclass(frozen=True, slots=True)
class MassCancelRejected:
    """An OrderMassCancelRequest (q) of a type the venue does not carry out."""

    cl_ord_id: str
    mass_cancel_request_type: str
    text: str


Outcome = Union[Command, SessionReject, BusinessReject, MassCancelRejected]


class _FieldError(Exception):
    def __init__(self, reject: SessionReject) -> None:
        super().__init__(reject.text)
        self.reject = reject


_NO_SYMBOLS: Mapping[str, str] = {}


def normalise(
    session_id: str, message: FixMessage, symbols: Mapping[str, str] = _NO_SYMBOLS
) -> Outcome:
    """Turn one application message of ``session_id`` into a command or a reject.

    ``symbols`` maps each listed Symbol (55) to the venue's own str object for it, and
    the command carries that object. The engine's compiled code finds the books of recent
    symbols by the identity of their str objects.
    """
    builder = _BUILDERS.get(message.msg_type)
    if builder is None:
        return BusinessReject(
            BusinessRejectReason.UNSUPPORTED_MESSAGE_TYPE,
            f"MsgType (35) {message.msg_type!r} is not supported by the venue",
        )
    try:
        return builder(session_id, message, symbols)
    except _FieldError as exc:
        return exc.reject


# ---------------------------------------------------------------------- field readers


def _required_str(message: FixMessage, tag: int, name: str) -> str:
    value = message.get(tag)
    if value is None:
        raise _FieldError(
            SessionReject(SessionRejectReason.REQUIRED_TAG_MISSING, tag, f"{name} ({tag}) is missing")
        )
    if not value:
        raise _FieldError(
            SessionReject(SessionRejectReason.TAG_WITHOUT_VALUE, tag, f"{name} ({tag}) has no value")
        )
    return value.decode("latin-1")


def _symbol(message: FixMessage, symbols: Mapping[str, str]) -> str:
    symbol = _required_str(message, tags.SYMBOL, "Symbol")
    return symbols.get(symbol, symbol)


def _optional_str(message: FixMessage, tag: int) -> str | None:
    value = message.get(tag)
    return value.decode("latin-1") if value else None


def _enum(message: FixMessage, tag: int, name: str, enum_type: type, default: object = None):
    if default is not None and message.get(tag) is None:
        return default
    raw = _required_str(message, tag, name)
    try:
        return enum_type(raw)
    except ValueError:
        raise _FieldError(
            SessionReject(
                SessionRejectReason.VALUE_INCORRECT, tag,
                f"{name} ({tag}) {raw!r} is not a valid value",
            )
        ) from None


def _quantity(message: FixMessage, tag: int, name: str) -> int:
    raw = _required_str(message, tag, name)
    try:
        value = parse_decimal(raw, 0)
    except ValueError:
        raise _FieldError(
            SessionReject(
                SessionRejectReason.INCORRECT_DATA_FORMAT, tag,
                f"{name} ({tag}) {raw!r} is not a whole quantity",
            )
        ) from None
    return value


def _price(message: FixMessage, tag: int = tags.PRICE, name: str = "Price") -> int | None:
    raw = _optional_str(message, tag)
    if raw is None:
        return None
    try:
        return parse_decimal(raw, PRICE_DECIMALS)
    except ValueError:
        raise _FieldError(
            SessionReject(
                SessionRejectReason.INCORRECT_DATA_FORMAT, tag,
                f"{name} ({tag}) {raw!r} is not a price with at most {PRICE_DECIMALS} decimals",
            )
        ) from None


def _optional_quantity(message: FixMessage, tag: int, name: str) -> int:
    """Return the quantity in ``tag``, or 0 when the field is absent."""
    return _quantity(message, tag, name) if message.get(tag) is not None else 0


def _display_qty(message: FixMessage) -> int:
    """Return MaxFloor (111), or DisplayQty (1138) from FIX 5.0, 0 when neither is sent."""
    if message.get(MAX_FLOOR) is not None:
        return _quantity(message, MAX_FLOOR, "MaxFloor")
    return _optional_quantity(message, DISPLAY_QTY, "DisplayQty")


def _is_post_only(message: FixMessage) -> bool:
    """True when ExecInst (18), a space-separated list, contains 6 (participate don't initiate)."""
    exec_inst = _optional_str(message, EXEC_INST)
    return exec_inst is not None and EXEC_INST_POST_ONLY in exec_inst.split()


def _expire_time_us(message: FixMessage) -> int | None:
    raw = _optional_str(message, EXPIRE_TIME)
    if raw is None:
        return None
    try:
        return parse_utc_timestamp(raw)
    except ValueError as exc:
        raise _FieldError(
            SessionReject(
                SessionRejectReason.INCORRECT_DATA_FORMAT, EXPIRE_TIME, f"ExpireTime (126): {exc}"
            )
        ) from None


def _optional_order_fields(message: FixMessage) -> dict[str, object]:
    """Return StopPx (99), MaxFloor (111), ExpireTime (126) and ExpireDate (432) as command fields."""
    return {
        "stop_px": _price(message, STOP_PX, "StopPx"),
        "display_qty": _display_qty(message),
        "expire_time_us": _expire_time_us(message),
        "expire_date": _optional_str(message, EXPIRE_DATE),
    }


def parse_decimal(text: str, decimals: int) -> int:
    """Parse a FIX decimal into an integer of ``10**-decimals`` units, exactly.

    Raises ValueError when the text is not a decimal number or has more significant
    decimals than ``decimals``.
    """
    negative = text.startswith("-")
    digits = text[1:] if negative else text
    whole, _, fraction = digits.partition(".")
    fraction = fraction.rstrip("0")
    if (
        not (whole.isdigit() or (whole == "" and fraction.isdigit()))
        or (fraction and not fraction.isdigit())
        or len(fraction) > decimals
        or not digits.isascii()
    ):
        raise ValueError(f"invalid decimal {text!r}")
    value = int(whole or "0") * 10**decimals + (int(fraction.ljust(decimals, "0")) if fraction else 0)
    return -value if negative else value


def format_price(price: int | float) -> str:
    """Format engine price units as a FIX Price, without trailing zeros."""
    if isinstance(price, float):
        text = f"{price / PRICE_SCALE:.{PRICE_DECIMALS}f}"
    else:
        sign = "-" if price < 0 else ""
        whole, fraction = divmod(abs(price), PRICE_SCALE)
        text = f"{sign}{whole}.{fraction:0{PRICE_DECIMALS}d}"
    text = text.rstrip("0")
    return text + "0" if text.endswith(".") else text


# ---------------------------------------------------------------------- builders


def _new_order(session_id: str, message: FixMessage, symbols: Mapping[str, str]) -> Command:
    cl_ord_id = _required_str(message, tags.CL_ORD_ID, "ClOrdID")
    symbol = _symbol(message, symbols)
    side = _side(message)
    order_qty = _quantity(message, tags.ORDER_QTY, "OrderQty")
    ord_type = _enum(message, tags.ORD_TYPE, "OrdType", OrdType)
    time_in_force = _enum(message, tags.TIME_IN_FORCE, "TimeInForce", TimeInForce, TimeInForce.DAY)
    price = _price(message)
    order = NewOrder(
        session_id=session_id,
        cl_ord_id=cl_ord_id,
        symbol=symbol,
        side=side,
        ord_type=ord_type,
        order_qty=order_qty,
        price=price if ord_type in _PRICED_ORD_TYPES else None,
        time_in_force=time_in_force,
        account=_optional_str(message, tags.ACCOUNT) or "",
        min_qty=_optional_quantity(message, MIN_QTY, "MinQty"),
        post_only=_is_post_only(message),
        **_optional_order_fields(message),  # type: ignore[arg-type]
    )
    problem = _unsupported_characteristic(ord_type, time_in_force, price, order.stop_px)
    if problem is not None:
        reason, text = problem
        return RejectOrder(order=order, reason=reason, text=text)
    return order


def _unsupported_characteristic(
    ord_type: OrdType, time_in_force: TimeInForce, price: int | None, stop_px: int | None
) -> tuple[OrdRejReason, str] | None:
    if ord_type not in SUPPORTED_ORD_TYPES:
        return (
            OrdRejReason.UNSUPPORTED_ORDER_CHARACTERISTIC,
            f"OrdType (40) {ord_type.value!r} ({ord_type.name}) is not supported; "
            "send market (1), limit (2), stop (3) or stop-limit (4)",
        )
    if time_in_force not in SUPPORTED_TIME_IN_FORCE:
        return (
            OrdRejReason.UNSUPPORTED_ORDER_CHARACTERISTIC,
            f"TimeInForce (59) {time_in_force.value!r} ({time_in_force.name}) is not supported; "
            "send Day (0), GTC (1), IOC (3), FOK (4) or GTD (6)",
        )
    if ord_type in _PRICED_ORD_TYPES and price is None:
        return (OrdRejReason.OTHER, f"Price (44) is required for OrdType (40) {ord_type.name}")
    if ord_type in _PRICED_ORD_TYPES and price is not None and price <= 0:
        return (OrdRejReason.OTHER, f"Price (44) {format_price(price)} must be above 0")
    if ord_type in _STOP_ORD_TYPES and stop_px is None:
        return (OrdRejReason.OTHER, f"StopPx (99) is required for OrdType (40) {ord_type.name}")
    return None


def _side(message: FixMessage) -> Side:
    side = _enum(message, tags.SIDE, "Side", _SideValue)
    if side not in (Side.BUY.value, Side.SELL.value):
        raise _FieldError(
            SessionReject(
                SessionRejectReason.VALUE_INCORRECT, tags.SIDE,
                f"Side (54) {side!r} is not supported; send buy (1) or sell (2)",
            )
        )
    return Side(side)


class _SideValue(str):
    """Side (54) values defined by FIX 4.4; the venue matches buy and sell only."""

    _VALID = frozenset("1 2 3 4 5 6 7 8 9 A B C D E F G".split())

    def __new__(cls, value: str) -> _SideValue:
        if value not in cls._VALID:
            raise ValueError(value)
        return super().__new__(cls, value)


def _cancel(session_id: str, message: FixMessage, symbols: Mapping[str, str]) -> Command:
    return CancelOrder(
        session_id=session_id,
        cl_ord_id=_required_str(message, tags.CL_ORD_ID, "ClOrdID"),
        orig_cl_ord_id=_required_str(message, tags.ORIG_CL_ORD_ID, "OrigClOrdID"),
        symbol=_symbol(message, symbols),
        side=_side(message),
        order_id=_optional_str(message, tags.ORDER_ID),
    )


def _replace(session_id: str, message: FixMessage, symbols: Mapping[str, str]) -> Command:
    ord_type = _enum(message, tags.ORD_TYPE, "OrdType", OrdType)
    price = _price(message)
    time_in_force = _enum(message, tags.TIME_IN_FORCE, "TimeInForce", TimeInForce, TimeInForce.DAY)
    return ReplaceOrder(
        session_id=session_id,
        cl_ord_id=_required_str(message, tags.CL_ORD_ID, "ClOrdID"),
        orig_cl_ord_id=_required_str(message, tags.ORIG_CL_ORD_ID, "OrigClOrdID"),
        symbol=_symbol(message, symbols),
        side=_side(message),
        ord_type=ord_type,
        order_qty=_quantity(message, tags.ORDER_QTY, "OrderQty"),
        price=price if ord_type in _PRICED_ORD_TYPES else None,
        time_in_force=time_in_force,
        order_id=_optional_str(message, tags.ORDER_ID),
        **_optional_order_fields(message),  # type: ignore[arg-type]
    )


def _status(session_id: str, message: FixMessage, symbols: Mapping[str, str]) -> Command:
    return OrderStatusRequest(
        session_id=session_id,
        cl_ord_id=_required_str(message, tags.CL_ORD_ID, "ClOrdID"),
        symbol=_symbol(message, symbols),
        side=_side(message),
        order_id=_optional_str(message, tags.ORDER_ID),
    )


def _mass_cancel(session_id: str, message: FixMessage, symbols: Mapping[str, str]) -> Outcome:
    cl_ord_id = _required_str(message, tags.CL_ORD_ID, "ClOrdID")
    request_type = _required_str(message, tags.MASS_CANCEL_REQUEST_TYPE, "MassCancelRequestType")
    side_raw = message.get(tags.SIDE)
    side = _side(message) if side_raw else None
    if request_type == MASS_CANCEL_ALL:
        return MassCancel(session_id=session_id, cl_ord_id=cl_ord_id, symbol=None, side=side)
    if request_type == MASS_CANCEL_BY_SECURITY:
        symbol = _symbol(message, symbols)
        return MassCancel(session_id=session_id, cl_ord_id=cl_ord_id, symbol=symbol, side=side)
    return MassCancelRejected(
        cl_ord_id, request_type,
        f"MassCancelRequestType (530) {request_type!r} is not supported; "
        "send 1 (by security) or 7 (all orders)",
    )


_BUILDERS: dict[str, Callable[[str, FixMessage, Mapping[str, str]], Outcome]] = {
    MsgType.NEW_ORDER_SINGLE: _new_order,
    MsgType.ORDER_CANCEL_REQUEST: _cancel,
    MsgType.ORDER_CANCEL_REPLACE_REQUEST: _replace,
    MsgType.ORDER_STATUS_REQUEST: _status,
    MsgType.ORDER_MASS_CANCEL_REQUEST: _mass_cancel,
}
