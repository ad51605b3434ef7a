"""Events: what the engine reports after each command.

The engine returns, for every command, a list of events in the order they happened.
:class:`ExecutionEvent` carries the order's full state after the change, so the gateway
builds an ExecutionReport (8) from one event without looking anything up.
:class:`CancelReject` becomes an OrderCancelReject (9). :class:`Trade` is the public trade
feed for market data and surveillance: one per match, naming both orders.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.orders import (
    CxlRejReason,
    CxlRejResponseTo,
    ExecType,
    OrdRejReason,
    OrdStatus,
    OrdType,
    Side,
    TimeInForce,
)


@dataclass(frozen=True, slots=True)
class ExecutionEvent:
    """One change of one order, the content of an ExecutionReport (8).

    Quantities are whole units and prices integer price units (see ``PRICE_SCALE``).
    ``cum_notional`` is the sum of ``last_px * last_qty`` over the order's fills, so
    AvgPx (6) is ``cum_notional / cum_qty``. ``last_qty`` and ``last_px`` are 0 except on
    ExecType TRADE. ``orig_cl_ord_id`` is set on cancels and replaces.
    """

    exec_id: str
    exec_type: ExecType
    ord_status: OrdStatus
    order_id: str
    session_id: str
    cl_ord_id: str
    orig_cl_ord_id: str | None
    symbol: str
    side: Side
    ord_type: OrdType
    time_in_force: TimeInForce
    price: int | None
    order_qty: int
    cum_qty: int
    leaves_qty: int
    cum_notional: int
    last_qty: int = 0
    last_px: int = 0
    trade_id: str | None = None
    ord_rej_reason: OrdRejReason | None = None
    text: str = ""

    @property
    def avg_px(self) -> float:
        """AvgPx (6) in price units, 0.0 before the first fill."""
        return self.cum_notional / self.cum_qty if self.cum_qty else 0.0


@dataclass(frozen=True, slots=True)
class CancelReject:
    """An OrderCancelReject (9) for a cancel or replace the engine cannot carry out."""

    session_id: str
    cl_ord_id: str
    orig_cl_ord_id: str
    order_id: str | None
    ord_status: OrdStatus | None
    response_to: CxlRejResponseTo
    reason: CxlRejReason
    text: str


@dataclass(frozen=True, slots=True)
class Trade:
    """One match between an incoming (aggressor) order and a resting order."""

    trade_id: str
    symbol: str
    price: int
    qty: int
    aggressor_side: Side
    aggressor_order_id: str
    aggressor_session_id: str
    resting_order_id: str
    resting_session_id: str


Event = ExecutionEvent | CancelReject | Trade
