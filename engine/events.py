"""Events: what the engine reports after each command.

The engine returns, for every command, a list of events in the order they happened.
:class:`ExecutionEvent` carries the order's full state after the change, so the gateway
builds an ExecutionReport (8) from one event without looking anything up.
:class:`CancelReject` becomes an OrderCancelReject (9). :class:`Trade` is the public trade
feed for market data and surveillance: one per match, naming both orders.

Events are named tuples: immutable, and cheap to build. A frozen dataclass sets each
field through ``object.__setattr__``, and the engine builds two ExecutionEvents per fill.
With timeit on CPython 3.11.7 (the machine in docs/benchmarks.md), the 21-field frozen
dataclass took 3.1 µs to build, a 27-field slotted dataclass takes 0.54 µs, and
``tuple.__new__`` on the 27-field named tuple takes 0.1 µs. Each class also carries the
``__dataclass_fields__`` of an equivalent dataclass, so ``dataclasses.fields()`` and
``dataclasses.asdict()`` work on events as they did when events were dataclasses.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

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


class ExecutionEvent(NamedTuple):
    """One change of one order, the content of an ExecutionReport (8).

    Quantities are whole units and prices integer price units (see ``PRICE_SCALE``).
    ``cum_notional`` is the sum of ``last_px * last_qty`` over the order's fills, so
    AvgPx (6) is ``cum_notional / cum_qty``. ``last_qty`` and ``last_px`` are 0 except on
    ExecType TRADE. ``orig_cl_ord_id`` is set on cancels and replaces. ``price`` is the
    order's limit price, None for a market or an untriggered stop order, and after a
    post-only reprice it is the new price. The fields after ``text`` echo the order's
    StopPx (99), MaxFloor (111), MinQty (110), ExecInst (18) 6, ExpireTime (126) and
    ExpireDate (432) as :class:`engine.commands.NewOrder` names them.
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
    stop_px: int | None = None
    display_qty: int = 0
    min_qty: int = 0
    post_only: bool = False
    expire_time_us: int | None = None
    expire_date: str | None = None

    @property
    def avg_px(self) -> float:
        """AvgPx (6) in price units, 0.0 before the first fill."""
        return self.cum_notional / self.cum_qty if self.cum_qty else 0.0


class CancelReject(NamedTuple):
    """An OrderCancelReject (9) for a cancel or replace the engine cannot carry out."""

    session_id: str
    cl_ord_id: str
    orig_cl_ord_id: str
    order_id: str | None
    ord_status: OrdStatus | None
    response_to: CxlRejResponseTo
    reason: CxlRejReason
    text: str


class Trade(NamedTuple):
    """One match between an incoming (aggressor) order and a resting order.

    In an auction uncross no order is the aggressor: ``auction`` is True, the buy order
    is named as the aggressor and the sell order as the resting one.
    """

    trade_id: str
    symbol: str
    price: int
    qty: int
    aggressor_side: Side
    aggressor_order_id: str
    aggressor_session_id: str
    resting_order_id: str
    resting_session_id: str
    auction: bool = False


Event = ExecutionEvent | CancelReject | Trade


def _declare_dataclass_fields(cls: Any) -> None:
    """Give the named tuple ``cls`` the fields of an equivalent dataclass."""
    twin = dataclasses.make_dataclass(
        cls.__name__,
        [
            (name, cls.__annotations__[name], dataclasses.field(default=cls._field_defaults[name]))
            if name in cls._field_defaults
            else (name, cls.__annotations__[name])
            for name in cls._fields
        ],
    )
    cls.__dataclass_fields__ = twin.__dataclass_fields__  # type: ignore[attr-defined]


for _event_class in (ExecutionEvent, CancelReject, Trade):
    _declare_dataclass_fields(_event_class)
