"""Checks of new orders and replaces against the instrument's rules and trading phase.

Each check returns None when the order is acceptable, else the OrdRejReason (103) and a
text naming the field, the value received and what to send instead. The engine turns
that into a rejected ExecutionReport, or an OrderCancelReject for a replace.
"""

from __future__ import annotations

from engine.book import RESTING_TIME_IN_FORCE, OrderBook
from engine.commands import NewOrder, ReplaceOrder
from engine.instrument import Instrument
from engine.orders import OrdRejReason, OrdType, TimeInForce, TradingPhase

Problem = tuple[OrdRejReason, str]

# Time in force values the engine carries out.
SUPPORTED_TIME_IN_FORCE = frozenset(
    {TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTD}
)
_PRICED_TYPES = frozenset({OrdType.LIMIT, OrdType.STOP_LIMIT})
_STOP_TYPES = frozenset({OrdType.STOP, OrdType.STOP_LIMIT})
_CLOSED_PHASES = frozenset({TradingPhase.HALTED, TradingPhase.CLOSED})
_UNSUPPORTED = OrdRejReason.UNSUPPORTED_ORDER_CHARACTERISTIC


# Aliases, because reading an enum member from its class costs about 75 ns on CPython 3.11
# and hashing one calls Enum.__hash__ in Python.
_LIMIT = OrdType.LIMIT
_CONTINUOUS = TradingPhase.CONTINUOUS
_DAY = TimeInForce.DAY
_GTC = TimeInForce.GTC
_IOC = TimeInForce.IOC
_FOK = TimeInForce.FOK


def is_plain_limit(command: NewOrder, book: OrderBook) -> bool:
    """True for a valid limit order with no optional characteristic, in continuous trading.

    Most orders are such, so the engine tries this one expression before the full checks.
    It returns True only where :func:`order_problem` and :func:`new_order_problem` both
    return None; False means "run the full checks", not "invalid".
    """
    price = command.price
    qty = command.order_qty
    tif = command.time_in_force
    instrument = book.instrument
    low, high = instrument.low_limit_price, instrument.high_limit_price
    return (
        command.ord_type is _LIMIT
        and book.phase is _CONTINUOUS
        and (tif is _DAY or tif is _GTC or tif is _IOC or tif is _FOK)
        and type(qty) is int
        and qty > 0
        and not qty % instrument.lot_size
        and type(price) is int
        and price > 0
        and not price % instrument.tick_size
        and (low is None or price >= low)
        and (high is None or price <= high)
        and command.stop_px is None
        and not command.display_qty
        and not command.min_qty
        and not command.post_only
        and command.expire_time_us is None
        and command.expire_date is None
    )


def order_problem(
    order: NewOrder | ReplaceOrder, instrument: Instrument, now_us: int, closed_date: str
) -> Problem | None:
    """Return why ``order`` breaks the instrument's rules, or None.

    ``now_us`` is the engine's time and ``closed_date`` the last trading day that ended
    (YYYYMMDD, "" before the first), against which GTD expiry is checked.
    """
    return (
        _quantity_problem(order, instrument)
        or _price_problem(order.ord_type, order.price, order.stop_px, instrument)
        or _display_problem(order, instrument)
        or _expiry_problem(order, now_us, closed_date)
    )


def new_order_problem(command: NewOrder, book: OrderBook) -> Problem | None:
    """Return why a NewOrder cannot be accepted in the book's phase, or None.

    This covers the checks that only a new order needs: MinQty (110), ExecInst (18) and
    the trading phase. :func:`order_problem` covers the rest.
    """
    ord_type = command.ord_type
    if command.min_qty:
        if ord_type not in (OrdType.LIMIT, OrdType.MARKET):
            return _UNSUPPORTED, f"MinQty (110) is accepted on limit and market orders, not {ord_type.name}"
        if not 0 < command.min_qty <= command.order_qty:
            return OrdRejReason.INCORRECT_QUANTITY, (
                f"MinQty (110) {command.min_qty} must be between 1 and OrderQty (38) "
                f"{command.order_qty}"
            )
    if command.post_only and (
        ord_type is not OrdType.LIMIT or command.time_in_force not in RESTING_TIME_IN_FORCE
    ):
        return _UNSUPPORTED, (
            f"ExecInst (18) 6 (post-only) needs a limit order that may rest, got "
            f"{ord_type.name} {command.time_in_force.name}"
        )
    return _phase_problem(command, book.phase)


def _phase_problem(command: NewOrder, phase: TradingPhase) -> Problem | None:
    if phase in _CLOSED_PHASES:
        return OrdRejReason.EXCHANGE_CLOSED, (
            f"{command.symbol} is {phase.name}: new orders are not accepted"
        )
    if not phase.is_call:
        return None
    if command.ord_type is OrdType.MARKET:
        return _UNSUPPORTED, (
            f"market orders are not accepted during {phase.name}; send a limit order"
        )
    if command.time_in_force not in RESTING_TIME_IN_FORCE:
        return _UNSUPPORTED, (
            f"TimeInForce (59) {command.time_in_force.name} is not accepted during "
            f"{phase.name}, where nothing matches; send DAY, GTC or GTD"
        )
    if command.min_qty:
        return _UNSUPPORTED, f"MinQty (110) is not accepted during {phase.name}"
    return None


def _quantity_problem(order: NewOrder | ReplaceOrder, instrument: Instrument) -> Problem | None:
    qty = order.order_qty
    if type(qty) is not int or qty <= 0:
        return OrdRejReason.INCORRECT_QUANTITY, f"OrderQty (38) must be positive, got {qty!r}"
    if qty % instrument.lot_size:
        return OrdRejReason.INCORRECT_QUANTITY, (
            f"OrderQty (38) {qty} is not a multiple of the lot size {instrument.lot_size} "
            f"of {instrument.symbol}"
        )
    return None


def _price_problem(
    ord_type: OrdType, price: int | None, stop_px: int | None, instrument: Instrument
) -> Problem | None:
    """Return why Price (44) or StopPx (99) does not fit the order type and instrument."""
    if ord_type in _PRICED_TYPES:
        if price is None or price <= 0:
            return OrdRejReason.OTHER, (
                f"Price (44) must be a positive integer on a {type_name(ord_type)} order, got {price!r}"
            )
    elif price is not None:
        return OrdRejReason.OTHER, f"Price (44) must be empty on a {type_name(ord_type)} order, got {price!r}"
    if ord_type in _STOP_TYPES:
        if stop_px is None or stop_px <= 0:
            return OrdRejReason.OTHER, (
                f"StopPx (99) must be a positive integer on a {type_name(ord_type)} order, got {stop_px!r}"
            )
    elif stop_px is not None:
        return _UNSUPPORTED, f"StopPx (99) is only valid on stop orders, got {stop_px!r}"
    return _grid_problem(price, "Price (44)", instrument) or _grid_problem(
        stop_px, "StopPx (99)", instrument
    )


def type_name(ord_type: OrdType) -> str:
    """Return OrdType (40) as prose: "limit", "market", "stop" or "stop-limit"."""
    return ord_type.name.lower().replace("_", "-")


def _grid_problem(price: int | None, name: str, instrument: Instrument) -> Problem | None:
    """Return why ``price`` is off the tick grid or outside the price limits, or None."""
    if price is None:
        return None
    if price % instrument.tick_size:
        return OrdRejReason.INVALID_PRICE_INCREMENT, (
            f"{name} {price} is not a multiple of the tick size {instrument.tick_size} "
            f"of {instrument.symbol}"
        )
    low, high = instrument.low_limit_price, instrument.high_limit_price
    if (low is not None and price < low) or (high is not None and price > high):
        return OrdRejReason.PRICE_EXCEEDS_CURRENT_PRICE_BAND, (
            f"{name} {price} is outside the price limits [{low}, {high}] of {instrument.symbol}"
        )
    return None


def _display_problem(order: NewOrder | ReplaceOrder, instrument: Instrument) -> Problem | None:
    display_qty = order.display_qty
    if not display_qty:
        return None
    if order.ord_type is not OrdType.LIMIT:
        return _UNSUPPORTED, f"MaxFloor (111) is accepted on limit orders only, not {order.ord_type.name}"
    if display_qty < 0 or display_qty > order.order_qty or display_qty % instrument.lot_size:
        return OrdRejReason.INCORRECT_QUANTITY, (
            f"MaxFloor (111) {display_qty} must be a positive multiple of the lot size "
            f"{instrument.lot_size} and at most OrderQty (38) {order.order_qty}"
        )
    return None


def _expiry_problem(
    order: NewOrder | ReplaceOrder, now_us: int, closed_date: str
) -> Problem | None:
    tif = order.time_in_force
    if tif not in SUPPORTED_TIME_IN_FORCE:
        return _UNSUPPORTED, (
            f"TimeInForce (59) {tif.value!r} ({tif.name}) is not supported; "
            "send Day (0), GTC (1), IOC (3), FOK (4) or GTD (6)"
        )
    time_us, date = order.expire_time_us, order.expire_date
    if tif is not TimeInForce.GTD:
        if time_us is not None or date is not None:
            return _UNSUPPORTED, f"ExpireTime (126) and ExpireDate (432) need TimeInForce (59) GTD, got {tif.name}"
        return None
    if (time_us is None) == (date is None):
        return OrdRejReason.OTHER, "a GTD order needs exactly one of ExpireTime (126) and ExpireDate (432)"
    if date is not None and not (len(date) == 8 and date.isdigit()):
        return OrdRejReason.OTHER, f"ExpireDate (432) must be YYYYMMDD, got {date!r}"
    if time_us is not None and time_us <= now_us:
        return OrdRejReason.TOO_LATE_TO_ENTER, (
            f"ExpireTime (126) {time_us} µs is not after the venue time {now_us} µs"
        )
    if date is not None and date <= closed_date:
        return OrdRejReason.TOO_LATE_TO_ENTER, (
            f"ExpireDate (432) {date} is not after the last closed trading day {closed_date}"
        )
    return None
