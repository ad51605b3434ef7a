"""The matching engine: one order book per instrument, driven by commands.

``MatchingEngine.process`` takes one command and returns the events it caused, in the order
they happened. The engine reads no clock and draws no random numbers, and it numbers
OrderID (37), ExecID (17) and TradeID (1003) from three counters. So the same commands
always give the same events, and replaying the audit journal rebuilds the same books.

Policy decisions a FIX engineer would ask about:

* A ClOrdID (11) is unique per session among live orders. A NewOrder whose ClOrdID is held
  by a live order of the same session is rejected with OrdRejReason (103) DUPLICATE_ORDER,
  and a cancel or replace whose ClOrdID is held by a live order gets CxlRejReason (102)
  DUPLICATE_CL_ORD_ID. Once the order is finished, its ClOrdIDs may be used again.
* Every ClOrdID in an order's cancel/replace chain keeps pointing at the order until a
  later order takes it over, so OrigClOrdID (41) may name any of them. When OrderID (37)
  is given it takes precedence over OrigClOrdID (41).
* Orders of other sessions are reported as unknown, so a session cannot probe another
  session's orders.
* Orders of the same session may trade with each other: there is no self-trade prevention.
* Finished orders (filled, cancelled, rejected) stay in memory for status requests and
  too-late-to-cancel rejects, so memory grows with the number of orders in a session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from engine.book import LIVE_STATUSES, Order, OrderBook
from engine.commands import (
    CancelOrder,
    Command,
    MassCancel,
    NewOrder,
    OrderStatusRequest,
    RejectOrder,
    ReplaceOrder,
)
from engine.errors import (
    DuplicateInstrumentError,
    EngineInvariantError,
    UnknownInstrumentError,
    UnsupportedCommandError,
)
from engine.events import CancelReject, Event, ExecutionEvent, Trade
from engine.orders import (
    CxlRejReason,
    CxlRejResponseTo,
    ExecType,
    OrdRejReason,
    OrdStatus,
    OrdType,
    TimeInForce,
)

logger = logging.getLogger(__name__)

# OrderID (37) reported for an unknown order, in cancel rejects and status reports alike.
# "NONE" is the value FIX venues use in OrderCancelReject (9) for this case.
UNKNOWN_ORDER_ID = "NONE"

# Time in force values with which a limit order rests in the book.
RESTING_TIME_IN_FORCE = frozenset({TimeInForce.DAY, TimeInForce.GTC})

# Reading an enum member from its class costs about 60 ns on CPython 3.11, several times a
# module global, so the per-order code reads these aliases.
_EXEC_NEW = ExecType.NEW
_EXEC_TRADE = ExecType.TRADE
_FOK = TimeInForce.FOK
_LIMIT = OrdType.LIMIT
_PARTIALLY_FILLED = OrdStatus.PARTIALLY_FILLED
_FILLED = OrdStatus.FILLED


class MatchingEngine:
    """Price-time priority matching for a set of instruments.

    Commands reach the engine after the risk gate accepted them, so the engine checks only
    what matching needs: a listed symbol, a positive quantity, a price that fits the order
    type, and ClOrdID (11) uniqueness. It keeps no trading calendar, so DAY orders do not
    expire and ExecType (150) EXPIRED is never sent.
    """

    def __init__(self, symbols: Iterable[str] = (), *, id_prefix: str = "") -> None:
        self._books: dict[str, OrderBook] = {}
        # Every order received, finished ones included, by OrderID (37).
        self._orders: dict[str, Order] = {}
        # (session_id, ClOrdID) -> the latest order that used that ClOrdID.
        self._by_cl_ord_id: dict[tuple[str, str], Order] = {}
        # session_id -> the session's resting orders, used as an ordered set.
        self._live: dict[str, dict[Order, None]] = {}

        self._order_prefix = f"{id_prefix}O"
        self._exec_prefix = f"{id_prefix}E"
        self._trade_prefix = f"{id_prefix}T"
        self._order_count = 0
        self._exec_count = 0
        self._trade_count = 0
        # Time priority: incremented each time an order joins the back of a level.
        self._seq = 0

        self._handlers: dict[type, Callable[[Any], list[Event]]] = {
            NewOrder: self._on_new_order,
            CancelOrder: self._on_cancel_order,
            ReplaceOrder: self._on_replace_order,
            OrderStatusRequest: self._on_order_status_request,
            MassCancel: self._on_mass_cancel,
            RejectOrder: self._on_reject_order,
        }
        for symbol in symbols:
            self.add_instrument(symbol)

    # Public API.

    @property
    def symbols(self) -> list[str]:
        """The listed symbols, in the order they were added."""
        return list(self._books)

    def add_instrument(self, symbol: str) -> None:
        """List ``symbol`` with an empty order book."""
        if not isinstance(symbol, str) or not symbol:
            raise ValueError(f"symbol must be a non-empty string, got {symbol!r}")
        if symbol in self._books:
            raise DuplicateInstrumentError(f"symbol {symbol!r} is already listed")
        self._books[symbol] = OrderBook(symbol)
        logger.debug("listed symbol %s", symbol)

    def book(self, symbol: str) -> OrderBook:
        """Return the order book of ``symbol``."""
        book = self._books.get(symbol)
        if book is None:
            raise UnknownInstrumentError(
                f"symbol {symbol!r} is not listed; add it with add_instrument() first"
            )
        return book

    def process(self, command: Command) -> list[Event]:
        """Carry out one command and return its events in the order they happened."""
        handler = self._handlers.get(type(command))
        if handler is None:
            raise UnsupportedCommandError(
                f"cannot process {type(command).__name__!r}; expected one of "
                f"{sorted(cls.__name__ for cls in self._handlers)}"
            )
        return handler(command)

    # Command handlers.

    def _on_new_order(self, command: NewOrder) -> list[Event]:
        rejection = self._check_new_order(command)
        if rejection is not None:
            return [self._reject(command, *rejection)]

        order = self._open_order(command)
        self._index_cl_ord_id(order)
        events: list[Event] = [self._execution(order, _EXEC_NEW)]
        book = self._books[command.symbol]

        if command.time_in_force is _FOK:
            available = book.fillable_qty(order.side, order.price, order.order_qty)
            if available < order.order_qty:
                text = (
                    f"FOK order canceled without a fill: only {available} of OrderQty (38) "
                    f"{order.order_qty} could be filled at once"
                )
                events.append(self._cancel_remainder(order, text))
                return events

        self._match(order, book, events)
        if order.leaves_qty:
            if order.ord_type is _LIMIT and order.time_in_force in RESTING_TIME_IN_FORCE:
                self._rest(order, book)
            else:
                events.append(self._cancel_remainder(order, _remainder_text(order)))
        return events

    def _on_reject_order(self, command: RejectOrder) -> list[Event]:
        return [self._reject(command.order, command.reason, command.text)]

    def _on_cancel_order(self, command: CancelOrder) -> list[Event]:
        order, cancel_reject = self._find_for_change(command, CxlRejResponseTo.CANCEL)
        if cancel_reject is not None:
            return [cancel_reject]

        previous_cl_ord_id = order.cl_ord_id
        order.cl_ord_id = command.cl_ord_id
        self._index_cl_ord_id(order)
        self._unrest(order)
        order.ord_status = OrdStatus.CANCELED
        order.leaves_qty = 0
        return [self._execution(order, ExecType.CANCELED, previous_cl_ord_id)]

    def _on_replace_order(self, command: ReplaceOrder) -> list[Event]:
        order, cancel_reject = self._find_for_change(command, CxlRejResponseTo.REPLACE)
        if cancel_reject is None:
            cancel_reject = self._check_replace(command, order)
        if cancel_reject is not None:
            return [cancel_reject]

        previous_cl_ord_id = order.cl_ord_id
        order.cl_ord_id = command.cl_ord_id
        order.time_in_force = command.time_in_force
        self._index_cl_ord_id(order)
        book = self._books[order.symbol]

        # A lower or equal quantity at the same price keeps time priority. Any other change
        # makes the order an aggressor at its new price, and what is left joins the back.
        if command.price == order.price and command.order_qty <= order.order_qty:
            book.amend_qty(order, command.order_qty)
            return [self._execution(order, ExecType.REPLACED, previous_cl_ord_id)]

        self._unrest(order)
        order.price = command.price
        order.order_qty = command.order_qty
        order.leaves_qty = command.order_qty - order.cum_qty
        events: list[Event] = [self._execution(order, ExecType.REPLACED, previous_cl_ord_id)]
        self._match(order, book, events)
        if order.leaves_qty:
            self._rest(order, book)
        return events

    def _on_order_status_request(self, command: OrderStatusRequest) -> list[Event]:
        order = self._find(command.session_id, command.cl_ord_id, command.order_id)
        mismatch = None if order is None else _mismatch(command, order)
        if order is None or mismatch is not None:
            text = "unknown order" if mismatch is None else f"unknown order: {mismatch}"
            return [self._unknown_status(command, text)]
        return [self._execution(order, ExecType.ORDER_STATUS)]

    def _on_mass_cancel(self, command: MassCancel) -> list[Event]:
        live = self._live.get(command.session_id)
        if not live:
            return []
        # The live index is in time priority order already, see _rest.
        targets = [
            order
            for order in live
            if (command.symbol is None or order.symbol == command.symbol)
            and (command.side is None or order.side is command.side)
        ]

        text = f"canceled by OrderMassCancelRequest ClOrdID (11) {command.cl_ord_id!r}"
        events: list[Event] = []
        for order in targets:
            self._unrest(order)
            order.ord_status = OrdStatus.CANCELED
            order.leaves_qty = 0
            events.append(self._execution(order, ExecType.CANCELED, text=text))
        return events

    # Validation.

    def _check_new_order(self, command: NewOrder) -> tuple[OrdRejReason, str] | None:
        """Return (OrdRejReason (103), text) if the order cannot be accepted, else None."""
        holder = self._by_cl_ord_id.get((command.session_id, command.cl_ord_id))
        if holder is not None and holder.ord_status in LIVE_STATUSES:
            return OrdRejReason.DUPLICATE_ORDER, (
                f"ClOrdID (11) {command.cl_ord_id!r} is already used by live order "
                f"{holder.order_id} of this session"
            )
        if command.symbol not in self._books:
            return OrdRejReason.UNKNOWN_SYMBOL, f"Symbol (55) {command.symbol!r} is not listed"
        if command.order_qty <= 0:
            return OrdRejReason.INCORRECT_QUANTITY, (
                f"OrderQty (38) must be positive, got {command.order_qty!r}"
            )
        price_problem = _price_problem(command.ord_type, command.price)
        if price_problem is not None:
            return OrdRejReason.OTHER, price_problem
        return None

    def _find_for_change(
        self, command: CancelOrder | ReplaceOrder, response_to: CxlRejResponseTo
    ) -> tuple[Order, None] | tuple[None, CancelReject]:
        """Find the live order a cancel or replace names, or build the CancelReject."""
        order = self._find(command.session_id, command.orig_cl_ord_id, command.order_id)
        if order is None:
            name = (
                f"OrigClOrdID (41) {command.orig_cl_ord_id!r}"
                if command.order_id is None
                else f"OrderID (37) {command.order_id!r}"
            )
            text = f"unknown order: no order with {name} in this session"
            return None, self._cancel_reject(
                command, response_to, None, CxlRejReason.UNKNOWN_ORDER, text
            )

        mismatch = _mismatch(command, order)
        if mismatch is not None:
            return None, self._cancel_reject(
                command, response_to, order, CxlRejReason.OTHER, mismatch
            )
        if order.ord_status not in LIVE_STATUSES:
            text = f"order {order.order_id} is already {order.ord_status.name}"
            return None, self._cancel_reject(
                command, response_to, order, CxlRejReason.TOO_LATE_TO_CANCEL, text
            )

        holder = self._by_cl_ord_id.get((command.session_id, command.cl_ord_id))
        if holder is not None and holder.ord_status in LIVE_STATUSES:
            text = (
                f"ClOrdID (11) {command.cl_ord_id!r} is already used by live order "
                f"{holder.order_id} of this session"
            )
            return None, self._cancel_reject(
                command, response_to, order, CxlRejReason.DUPLICATE_CL_ORD_ID, text
            )
        return order, None

    def _check_replace(self, command: ReplaceOrder, order: Order) -> CancelReject | None:
        """Return the CancelReject for a replace the live ``order`` cannot take, else None."""
        text = None
        if command.ord_type is not order.ord_type:
            text = (
                f"OrdType (40) cannot change from {order.ord_type.name} to "
                f"{command.ord_type.name}"
            )
        elif command.time_in_force not in RESTING_TIME_IN_FORCE:
            text = (
                f"TimeInForce (59) of a resting order can be DAY or GTC, "
                f"got {command.time_in_force.name}"
            )
        elif (price_problem := _price_problem(command.ord_type, command.price)) is not None:
            text = price_problem
        elif command.order_qty <= order.cum_qty:
            text = (
                f"OrderQty (38) {command.order_qty} is not above CumQty (14) {order.cum_qty}"
            )
        if text is None:
            return None
        return self._cancel_reject(
            command, CxlRejResponseTo.REPLACE, order, CxlRejReason.OTHER, text
        )

    # Order state.

    def _find(self, session_id: str, cl_ord_id: str, order_id: str | None) -> Order | None:
        """Return the session's order by OrderID (37) if given, else by ClOrdID (11)."""
        if order_id is None:
            return self._by_cl_ord_id.get((session_id, cl_ord_id))
        order = self._orders.get(order_id)
        if order is None or order.session_id != session_id:
            return None
        return order

    def _open_order(self, command: NewOrder) -> Order:
        self._order_count += 1
        order = Order(
            f"{self._order_prefix}{self._order_count}",
            command.session_id,
            command.cl_ord_id,
            command.symbol,
            command.side,
            command.ord_type,
            command.time_in_force,
            command.price,
            command.order_qty,
            command.account,
        )
        self._orders[order.order_id] = order
        return order

    def _index_cl_ord_id(self, order: Order) -> None:
        self._by_cl_ord_id[(order.session_id, order.cl_ord_id)] = order

    def _rest(self, order: Order, book: OrderBook) -> None:
        """Rest ``order`` at the back of its level and of its session's live index.

        Both get the order at the same moment, so the live index stays in time priority
        order and mass cancels need no sort.
        """
        self._seq += 1
        order.seq = self._seq
        book.add(order)
        live = self._live.get(order.session_id)
        if live is None:
            live = self._live[order.session_id] = {}
        live[order] = None

    def _unrest(self, order: Order) -> None:
        self._books[order.symbol].remove(order)
        del self._live[order.session_id][order]

    def _match(self, order: Order, book: OrderBook, events: list[Event]) -> None:
        """Match ``order`` as the aggressor and append the TRADE and Trade events."""
        fills = book.match(order.side, order.price, order.leaves_qty)
        for resting, qty in fills:
            price = resting.price
            order.cum_qty += qty
            order.leaves_qty -= qty
            order.cum_notional += qty * price
            order.ord_status = _PARTIALLY_FILLED if order.leaves_qty else _FILLED
            if not resting.leaves_qty:
                del self._live[resting.session_id][resting]

            self._trade_count += 1
            trade_id = f"{self._trade_prefix}{self._trade_count}"
            events.append(self._fill(order, qty, price, trade_id))
            events.append(self._fill(resting, qty, price, trade_id))
            events.append(
                Trade(
                    trade_id,
                    order.symbol,
                    price,
                    qty,
                    order.side,
                    order.order_id,
                    order.session_id,
                    resting.order_id,
                    resting.session_id,
                )
            )

    # Events.

    def _next_exec_id(self) -> str:
        self._exec_count += 1
        return f"{self._exec_prefix}{self._exec_count}"

    def _execution(
        self, order: Order, exec_type: ExecType, orig_cl_ord_id: str | None = None, text: str = ""
    ) -> ExecutionEvent:
        """Build an ExecutionEvent with the order's current state."""
        return ExecutionEvent(
            self._next_exec_id(),
            exec_type,
            order.ord_status,
            order.order_id,
            order.session_id,
            order.cl_ord_id,
            orig_cl_ord_id,
            order.symbol,
            order.side,
            order.ord_type,
            order.time_in_force,
            order.price,
            order.order_qty,
            order.cum_qty,
            order.leaves_qty,
            order.cum_notional,
            text=text,
        )

    def _fill(self, order: Order, qty: int, price: int, trade_id: str) -> ExecutionEvent:
        """Build the ExecType (150) TRADE event for one side of a match."""
        return ExecutionEvent(
            self._next_exec_id(),
            _EXEC_TRADE,
            order.ord_status,
            order.order_id,
            order.session_id,
            order.cl_ord_id,
            None,
            order.symbol,
            order.side,
            order.ord_type,
            order.time_in_force,
            order.price,
            order.order_qty,
            order.cum_qty,
            order.leaves_qty,
            order.cum_notional,
            qty,
            price,
            trade_id,
        )

    def _cancel_remainder(self, order: Order, text: str) -> ExecutionEvent:
        """Cancel what an order that may not rest has left, with the reason in ``text``."""
        order.ord_status = OrdStatus.CANCELED
        order.leaves_qty = 0
        return self._execution(order, ExecType.CANCELED, text=text)

    def _reject(self, command: NewOrder, reason: OrdRejReason, text: str) -> ExecutionEvent:
        """Record a rejected order under a new OrderID (37) and build its REJECTED event."""
        order = self._open_order(command)
        order.ord_status = OrdStatus.REJECTED
        order.leaves_qty = 0

        # A rejected order must not take its ClOrdID (11) away from a live order, so a
        # duplicate can be found by OrderID (37) only.
        holder = self._by_cl_ord_id.get((command.session_id, command.cl_ord_id))
        if holder is None or holder.ord_status not in LIVE_STATUSES:
            self._index_cl_ord_id(order)

        return ExecutionEvent(
            self._next_exec_id(),
            ExecType.REJECTED,
            OrdStatus.REJECTED,
            order.order_id,
            order.session_id,
            order.cl_ord_id,
            None,
            order.symbol,
            order.side,
            order.ord_type,
            order.time_in_force,
            order.price,
            order.order_qty,
            0,
            0,
            0,
            ord_rej_reason=reason,
            text=text,
        )

    def _cancel_reject(
        self,
        command: CancelOrder | ReplaceOrder,
        response_to: CxlRejResponseTo,
        order: Order | None,
        reason: CxlRejReason,
        text: str,
    ) -> CancelReject:
        # An unknown order has no status of its own, so the reject reports REJECTED.
        if order is None:
            order_id, ord_status = UNKNOWN_ORDER_ID, OrdStatus.REJECTED
        else:
            order_id, ord_status = order.order_id, order.ord_status
        return CancelReject(
            command.session_id,
            command.cl_ord_id,
            command.orig_cl_ord_id,
            order_id,
            ord_status,
            response_to,
            reason,
            text,
        )

    def _unknown_status(self, command: OrderStatusRequest, text: str) -> ExecutionEvent:
        """Build the ORDER_STATUS event for an order the session does not have.

        The request carries no OrdType (40) or TimeInForce (59), so the event reports
        LIMIT and DAY with zero quantities.
        """
        return ExecutionEvent(
            self._next_exec_id(),
            ExecType.ORDER_STATUS,
            OrdStatus.REJECTED,
            UNKNOWN_ORDER_ID,
            command.session_id,
            command.cl_ord_id,
            None,
            command.symbol,
            command.side,
            OrdType.LIMIT,
            TimeInForce.DAY,
            None,
            0,
            0,
            0,
            0,
            text=text,
        )

    # Invariants.

    def check(self) -> None:
        """Raise EngineInvariantError if a book or an index of live orders is inconsistent.

        Finished orders are not rescanned: no command changes an order once it is filled,
        cancelled or rejected, so checking them on every call would only cost time.
        """
        resting: dict[Order, str] = {}
        for symbol, book in self._books.items():
            if book.symbol != symbol:
                raise EngineInvariantError(
                    f"book listed as {symbol!r} has symbol {book.symbol!r}"
                )
            book.check()
            for order in book.orders():
                resting[order] = symbol

        live_count = 0
        for session_id, live in self._live.items():
            self._check_live_index(session_id, live, resting)
            live_count += len(live)
        if live_count != len(resting):
            raise EngineInvariantError(
                f"{len(resting)} orders rest in the books but the live index contains {live_count}"
            )

        for order in resting:
            self._check_indexed(order)
        self._check_counters()

    def _check_live_index(
        self, session_id: str, live: dict[Order, None], resting: dict[Order, str]
    ) -> None:
        previous_seq = 0
        for order in live:
            if order not in resting or order.session_id != session_id:
                raise EngineInvariantError(
                    f"live index of session {session_id!r} contains {order!r}, which does "
                    f"not rest in a book under that session"
                )
            if order.seq <= previous_seq:
                raise EngineInvariantError(
                    f"live index of session {session_id!r} has order {order.order_id} with "
                    f"seq {order.seq} after seq {previous_seq}, so it is not in time order"
                )
            previous_seq = order.seq

    def _check_indexed(self, order: Order) -> None:
        if self._orders.get(order.order_id) is not order:
            raise EngineInvariantError(
                f"resting order {order.order_id} is not indexed by its OrderID (37)"
            )
        holder = self._by_cl_ord_id.get((order.session_id, order.cl_ord_id))
        if holder is not order:
            raise EngineInvariantError(
                f"ClOrdID (11) {order.cl_ord_id!r} of resting order {order.order_id} "
                f"points at {holder!r}"
            )
        if order.seq > self._seq:
            raise EngineInvariantError(
                f"resting order {order.order_id} has seq {order.seq} above the counter "
                f"{self._seq}"
            )

    def _check_counters(self) -> None:
        if len(self._orders) != self._order_count:
            raise EngineInvariantError(
                f"{len(self._orders)} orders are indexed by OrderID (37) but "
                f"{self._order_count} OrderIDs were assigned"
            )


def _price_problem(ord_type: OrdType, price: int | None) -> str | None:
    """Return why ``price`` does not fit ``ord_type``, or None if it does."""
    if ord_type is OrdType.MARKET:
        if price is not None:
            return f"Price (44) must be empty on a market order, got {price!r}"
        return None
    if price is None or price <= 0:
        return f"Price (44) must be a positive integer on a limit order, got {price!r}"
    return None


def _mismatch(command: CancelOrder | ReplaceOrder | OrderStatusRequest, order: Order) -> str | None:
    """Return which of Symbol (55) and Side (54) differ from the order's, or None."""
    if command.symbol != order.symbol:
        return (
            f"Symbol (55) {command.symbol!r} does not match {order.symbol!r} "
            f"of order {order.order_id}"
        )
    if command.side is not order.side:
        return (
            f"Side (54) {command.side.name} does not match {order.side.name} "
            f"of order {order.order_id}"
        )
    return None


def _remainder_text(order: Order) -> str:
    """Return why the unfilled rest of a market or IOC order is cancelled."""
    if order.ord_type is OrdType.MARKET:
        return (
            f"market order: no liquidity left for the remaining {order.leaves_qty} "
            f"of OrderQty (38) {order.order_qty}"
        )
    return (
        f"IOC order: no liquidity left at the limit price for the remaining "
        f"{order.leaves_qty} of OrderQty (38) {order.order_qty}"
    )
