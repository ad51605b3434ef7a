"""Pre-trade risk gate: per-instrument limits checked before an order reaches a book.

Every NewOrderSingle (D) and OrderCancelReplaceRequest (G) passes :meth:`RiskGate.check`,
which returns a :class:`RiskDecision`. A reject is a value, not an exception. It carries a
stable reason code (:class:`RiskControl`) and the OrdRejReason (103) to send. Its Text (58)
names the field, the value and the limit, which it also carries as strings for the audit
trail.

Prices and notionals are engine price units (``engine.orders.PRICE_SCALE`` per currency
unit), quantities whole units, so every check is integer arithmetic.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from engine.commands import NewOrder, ReplaceOrder
from engine.events import Trade
from engine.orders import PRICE_DECIMALS, PRICE_SCALE, OrdRejReason, OrdType

__all__ = [
    "ACCEPT",
    "DEFAULT_COLLAR_PCT",
    "DEFAULT_LOT_SIZE",
    "InstrumentConfig",
    "RiskControl",
    "RiskDecision",
    "RiskGate",
]

DEFAULT_LOT_SIZE = 1
DEFAULT_COLLAR_PCT = Decimal(10)


class RiskControl(str, enum.Enum):
    """Pre-trade control that rejected an order; the values are stable audit reason codes."""

    UNKNOWN_INSTRUMENT = "RISK_UNKNOWN_INSTRUMENT"
    MAX_ORDER_QTY = "RISK_MAX_ORDER_QTY"
    MAX_NOTIONAL = "RISK_MAX_NOTIONAL"
    PRICE_COLLAR = "RISK_PRICE_COLLAR"
    TICK_SIZE = "RISK_TICK_SIZE"
    LOT_SIZE = "RISK_LOT_SIZE"

    @property
    def ord_rej_reason(self) -> OrdRejReason:
        """OrdRejReason (103) sent on an ExecutionReport (8) for this control."""
        return _ORD_REJ_REASONS[self]


_ORD_REJ_REASONS: dict[RiskControl, OrdRejReason] = {
    RiskControl.UNKNOWN_INSTRUMENT: OrdRejReason.UNKNOWN_SYMBOL,
    RiskControl.MAX_ORDER_QTY: OrdRejReason.ORDER_EXCEEDS_LIMIT,
    RiskControl.MAX_NOTIONAL: OrdRejReason.ORDER_EXCEEDS_LIMIT,
    RiskControl.PRICE_COLLAR: OrdRejReason.PRICE_EXCEEDS_CURRENT_PRICE_BAND,
    RiskControl.TICK_SIZE: OrdRejReason.INVALID_PRICE_INCREMENT,
    RiskControl.LOT_SIZE: OrdRejReason.INCORRECT_QUANTITY,
}


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """Outcome of a pre-trade check.

    ``limit`` and ``value`` are what the failing control compared, as readable strings
    (``"1000000"`` and ``"2000000"``). Both are empty on accept, and ``limit`` is empty
    for an unknown instrument, which has no numeric limit.
    """

    accepted: bool
    control: RiskControl | None
    ord_rej_reason: OrdRejReason | None
    text: str
    limit: str
    value: str


ACCEPT = RiskDecision(
    accepted=True, control=None, ord_rej_reason=None, text="", limit="", value=""
)


@dataclass(frozen=True, slots=True)
class InstrumentConfig:
    """Trading parameters and pre-trade limits of one instrument.

    ``tick_size``, ``reference_price`` and ``max_notional`` are engine price units, so a
    0.01 tick is ``PRICE_SCALE // 100`` and a notional of 50,000,000 is
    ``50_000_000 * PRICE_SCALE``. ``collar_pct`` is a percentage of the reference price on
    each side. With no ``reference_price``, the collar follows the last trade price, and
    there is no collar before the first trade.
    """

    symbol: str
    tick_size: int
    max_order_qty: int
    max_notional: int
    lot_size: int = DEFAULT_LOT_SIZE
    collar_pct: Decimal = DEFAULT_COLLAR_PCT
    reference_price: int | None = None

    def __post_init__(self) -> None:
        if not self.symbol:
            raise ValueError("InstrumentConfig.symbol must not be empty")
        for name in ("tick_size", "max_order_qty", "max_notional", "lot_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(
                    f"InstrumentConfig.{name} for {self.symbol} must be a positive int, "
                    f"got {value!r}"
                )
        if self.reference_price is not None and self.reference_price <= 0:
            raise ValueError(
                f"InstrumentConfig.reference_price for {self.symbol} must be positive or None, "
                f"got {self.reference_price!r}"
            )
        if not Decimal(0) < self.collar_pct <= Decimal(100):
            raise ValueError(
                f"InstrumentConfig.collar_pct for {self.symbol} must be above 0 and at most 100, "
                f"got {self.collar_pct!r}"
            )


class _Instrument:
    """An instrument's configuration plus what the gate derives from it and learns from trades."""

    __slots__ = (
        "config",
        "collar_scale",
        "collar_low",
        "collar_high",
        "decimals",
        "last_trade_price",
    )

    def __init__(self, config: InstrumentConfig) -> None:
        self.config = config

        # The collar is the exact fraction num / (den * 100) of the reference on each side,
        # so a price is inside when price * scale lies between reference * low and
        # reference * high. Integer products avoid rounding at the band edges.
        num, den = config.collar_pct.as_integer_ratio()
        self.collar_scale = den * 100
        self.collar_low = self.collar_scale - num
        self.collar_high = self.collar_scale + num

        self.decimals = _tick_decimals(config.tick_size)
        self.last_trade_price: int | None = None

    def reference_price(self) -> int | None:
        if self.config.reference_price is not None:
            return self.config.reference_price
        return self.last_trade_price


class RiskGate:
    """Check orders against per-instrument limits; the collar follows trades where needed.

    The controls run in a fixed order and the first that fails decides: unknown instrument,
    lot size, tick size, maximum order quantity, maximum notional, price collar.
    A market order has no price, so its notional is checked at the reference price when
    one is known, and the collar does not apply to it. A limit order without a price fails
    the tick size control before any other.
    """

    def __init__(self, instruments: Iterable[InstrumentConfig]) -> None:
        self._instruments: dict[str, _Instrument] = {}
        for config in instruments:
            if config.symbol in self._instruments:
                raise ValueError(
                    f"instrument {config.symbol!r} is configured twice; keep one entry per symbol"
                )
            self._instruments[config.symbol] = _Instrument(config)

    def check(self, command: NewOrder | ReplaceOrder) -> RiskDecision:
        """Return ACCEPT or the reject of the first control the order fails."""
        instrument = self._instruments.get(command.symbol)
        if instrument is None:
            return _reject(
                RiskControl.UNKNOWN_INSTRUMENT,
                f"Symbol (55) {command.symbol!r} is not an instrument of this venue",
                limit="",
                value=command.symbol,
            )

        order_qty = command.order_qty
        if command.ord_type is OrdType.MARKET or command.ord_type is OrdType.STOP:
            # A stop order becomes a market order when triggered, so it has no Price (44).
            # Its notional is taken at StopPx (99), the price that triggers it.
            stop_px = command.stop_px if command.ord_type is OrdType.STOP else None
            notional_price, basis = (
                (stop_px, "StopPx (99)") if stop_px is not None
                else (instrument.reference_price(), "reference price")
            )
            return (
                _check_lot_size(instrument, order_qty)
                or _check_max_order_qty(instrument, order_qty)
                or _check_max_notional(instrument, order_qty, notional_price, basis)
                or ACCEPT
            )

        price = command.price
        if price is None:
            return _reject_missing_price(instrument)
        return (
            _check_lot_size(instrument, order_qty)
            or _check_tick_size(instrument, price)
            or _check_max_order_qty(instrument, order_qty)
            or _check_max_notional(instrument, order_qty, price, "Price (44)")
            or _check_collar(instrument, price)
            or ACCEPT
        )

    def on_trade(self, trade: Trade) -> None:
        """Record the trade price as the collar reference where none is configured."""
        instrument = self._instruments.get(trade.symbol)
        if instrument is not None:
            instrument.last_trade_price = trade.price

    def reference_price(self, symbol: str) -> int | None:
        """Return the collar reference in price units, None before the first trade or for an
        unknown symbol."""
        instrument = self._instruments.get(symbol)
        return None if instrument is None else instrument.reference_price()


def _check_lot_size(instrument: _Instrument, order_qty: int) -> RiskDecision | None:
    lot_size = instrument.config.lot_size
    if order_qty > 0 and order_qty % lot_size == 0:
        return None
    return _reject(
        RiskControl.LOT_SIZE,
        f"OrderQty (38) {order_qty} is not a positive multiple of the lot size {lot_size} "
        f"for {instrument.config.symbol}",
        limit=str(lot_size),
        value=str(order_qty),
    )


def _reject_missing_price(instrument: _Instrument) -> RiskDecision:
    return _reject(
        RiskControl.TICK_SIZE,
        f"Price (44) is missing on a limit order for {instrument.config.symbol}",
        limit=_format_units(instrument.config.tick_size, instrument.decimals),
        value="",
    )


def _check_tick_size(instrument: _Instrument, price: int) -> RiskDecision | None:
    config = instrument.config
    if price > 0 and price % config.tick_size == 0:
        return None
    tick = _format_units(config.tick_size, instrument.decimals)
    price_text = _format_units(price, instrument.decimals)
    return _reject(
        RiskControl.TICK_SIZE,
        f"Price (44) {price_text} is not a positive multiple of the tick size {tick} "
        f"for {config.symbol}",
        limit=tick,
        value=price_text,
    )


def _check_max_order_qty(instrument: _Instrument, order_qty: int) -> RiskDecision | None:
    max_order_qty = instrument.config.max_order_qty
    if order_qty <= max_order_qty:
        return None
    return _reject(
        RiskControl.MAX_ORDER_QTY,
        f"OrderQty (38) {order_qty} exceeds the maximum order quantity {max_order_qty} "
        f"for {instrument.config.symbol}",
        limit=str(max_order_qty),
        value=str(order_qty),
    )


def _check_max_notional(
    instrument: _Instrument, order_qty: int, price: int | None, price_name: str
) -> RiskDecision | None:
    """Check ``order_qty * price`` against the limit; ``price_name`` names the price in the
    text. A market order before the first trade has no price, and the check is skipped."""
    config = instrument.config
    if price is None or order_qty * price <= config.max_notional:
        return None
    notional = _format_units(order_qty * price, 0)
    limit = _format_units(config.max_notional, 0)
    return _reject(
        RiskControl.MAX_NOTIONAL,
        f"Notional {notional} (OrderQty (38) {order_qty} x {price_name} "
        f"{_format_units(price, instrument.decimals)}) exceeds the maximum notional {limit} "
        f"for {config.symbol}",
        limit=limit,
        value=notional,
    )


def _check_collar(instrument: _Instrument, price: int) -> RiskDecision | None:
    reference = instrument.reference_price()
    if reference is None:
        return None
    scaled = price * instrument.collar_scale
    if reference * instrument.collar_low <= scaled <= reference * instrument.collar_high:
        return None

    # The band is shown as its lowest and highest prices on the tick grid.
    tick = instrument.config.tick_size
    tick_scale = instrument.collar_scale * tick
    low = -(-reference * instrument.collar_low // tick_scale) * tick
    high = reference * instrument.collar_high // tick_scale * tick
    band = f"{_format_units(low, instrument.decimals)}-{_format_units(high, instrument.decimals)}"
    price_text = _format_units(price, instrument.decimals)
    return _reject(
        RiskControl.PRICE_COLLAR,
        f"Price (44) {price_text} is outside the collar {band} "
        f"({instrument.config.collar_pct.normalize():f}% around reference "
        f"{_format_units(reference, instrument.decimals)}) for {instrument.config.symbol}",
        limit=band,
        value=price_text,
    )


def _reject(control: RiskControl, text: str, *, limit: str, value: str) -> RiskDecision:
    return RiskDecision(
        accepted=False,
        control=control,
        ord_rej_reason=control.ord_rej_reason,
        text=text,
        limit=limit,
        value=value,
    )


def _tick_decimals(tick_size: int) -> int:
    """Return how many decimals the tick size has in currency units (0.01 has 2)."""
    decimals = PRICE_DECIMALS
    while decimals > 0 and tick_size % 10 == 0:
        tick_size //= 10
        decimals -= 1
    return decimals


def _format_units(units: int, min_decimals: int) -> str:
    """Format price units in currency units with at least ``min_decimals`` decimals."""
    whole, fraction = divmod(abs(units), PRICE_SCALE)
    digits = f"{fraction:0{PRICE_DECIMALS}d}".rstrip("0").ljust(min_decimals, "0")
    sign = "-" if units < 0 else ""
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"
