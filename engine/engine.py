"""The matching engine: one order book per instrument, driven by commands.

``MatchingEngine.process`` takes one command and returns the events it caused, in the order
they happened. The engine reads no clock and draws no random numbers: time reaches it as
journaled AdvanceTime and EndOfDay commands, and it numbers OrderID (37), ExecID (17) and
TradeID (1003) from counters. So the same commands always give the same events, and
replaying the audit journal rebuilds the same books.

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
* Self-match prevention works per broker firm (see :class:`engine.instrument.Firm`);
  orders of sessions outside any firm trade with each other. It does not apply in an
  auction uncross, where no order is the aggressor.
* A stop order waits outside the book until a trade prints at or through its StopPx (99):
  at or above it for a buy, at or below it for a sell. It then reports ExecType (150)
  TRIGGERED and enters as a market (STOP) or limit (STOP_LIMIT) order. A stop whose
  StopPx the last trade already reached triggers on arrival. Stops trigger only in
  continuous trading, in arrival order.
* MinQty (110) applies on arrival only: an order that crosses the book but could fill
  less than MinQty at once is cancelled without trading. Once resting it fills in any size.
* An iceberg (MaxFloor (111)) shows one slice at a time. When a slice is filled the next
  one joins the back of the level with new time priority, within the same match.
* Finished orders (filled, cancelled, expired, rejected) stay in memory for status
  requests and too-late-to-cancel rejects, so memory grows with the number of orders.
"""

from __future__ import annotations

import heapq
import importlib
import logging
import os
from bisect import insort
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

from engine.auction import uncross_price
from engine.book import (
    LIVE_STATUSES, RESTING_TIME_IN_FORCE, Order, OrderBook, PriceLevel, event_terms,
)
from engine.commands import (
    AdvanceTime,
    CancelOrder,
    Command,
    EndOfDay,
    MassCancel,
    NewOrder,
    OrderStatusRequest,
    RejectOrder,
    ReplaceOrder,
    SetTradingPhase,
)
from engine.errors import (
    DuplicateInstrumentError,
    EngineInvariantError,
    UnknownInstrumentError,
    UnsupportedCommandError,
)
from engine.events import CancelReject, Event, ExecutionEvent, Trade
from engine.instrument import Firm, Instrument, firm_by_session
from engine.market_data import MarketDataSnapshot, snapshot
from engine.orders import (
    CxlRejReason,
    CxlRejResponseTo,
    ExecType,
    OrdRejReason,
    OrdStatus,
    OrdType,
    PostOnlyPolicy,
    SelfMatchPrevention,
    Side,
    TimeInForce,
    TradingPhase,
)
from engine.validation import is_plain_limit, new_order_problem, order_problem, type_name

logger = logging.getLogger(__name__)

# OrderID (37) reported for an unknown order, in cancel rejects and status reports alike.
# "NONE" is the value FIX venues use in OrderCancelReject (9) for this case.
UNKNOWN_ORDER_ID = "NONE"

_new_tuple = tuple.__new__

# Reading an enum member from its class costs about 60 ns on CPython 3.11, several times a
# module global, so the per-order code reads these aliases.
_BUY = Side.BUY
_EXEC_NEW = ExecType.NEW
_EXEC_TRADE = ExecType.TRADE
_FOK = TimeInForce.FOK
_LIMIT = OrdType.LIMIT
_NEW = OrdStatus.NEW
_PARTIALLY_FILLED = OrdStatus.PARTIALLY_FILLED
_FILLED = OrdStatus.FILLED
_CONTINUOUS = TradingPhase.CONTINUOUS
_CANCEL_RESTING = SelfMatchPrevention.CANCEL_RESTING
_CANCEL_INCOMING = SelfMatchPrevention.CANCEL_INCOMING
_SMP_NONE = SelfMatchPrevention.NONE
_CANCELED = OrdStatus.CANCELED
_EXEC_CANCELED = ExecType.CANCELED
_EXEC_REPLACED = ExecType.REPLACED
_GTD = TimeInForce.GTD
_DAY = TimeInForce.DAY
_GTC = TimeInForce.GTC

# Phases whose books may be crossed, and which an uncross ends.
_UNCROSS_FROM = frozenset({TradingPhase.PRE_OPEN, TradingPhase.PRE_CLOSE, TradingPhase.HALTED})
_UNCROSS_INTO = frozenset({TradingPhase.CONTINUOUS, TradingPhase.CLOSED})
_ORDER_ENTRY_CLOSED = frozenset({TradingPhase.HALTED, TradingPhase.CLOSED})


class Counters:
    """The engine's numbering: the last OrderID (37), ExecID (17) and TradeID (1003)
    numbers, and ``seq``, which grows each time an order joins the back of a level and so
    gives time priority. The compiled fast paths bring a C twin with the same fields."""

    __slots__ = ("order_count", "exec_count", "trade_count", "seq")

    def __init__(self) -> None:
        self.order_count = 0
        self.exec_count = 0
        self.trade_count = 0
        self.seq = 0


class MatchingEngine:
    """Price-time priority matching for a set of instruments.

    Commands reach the engine after the risk gate accepted them, so the engine checks only
    what matching needs: a listed symbol, the instrument's tick, lot and price limits, the
    trading phase, order characteristics that fit together, and ClOrdID (11) uniqueness.
    """

    def __init__(
        self,
        instruments: Iterable[str | Instrument] = (),
        *,
        firms: Iterable[Firm] = (),
        id_prefix: str = "",
        compiled: bool | None = None,
    ) -> None:
        """List ``instruments``, with the broker ``firms`` for self-match prevention.

        ``id_prefix`` starts every OrderID (37), ExecID (17) and TradeID (1003).
        ``compiled`` chooses the compiled fast paths of :mod:`engine._cengine`: None uses
        them when they are built (and ``FIXGW_NO_EXTENSIONS`` is not set), True requires
        them, False runs pure Python. Both give the same events.
        """
        self._books: dict[str, OrderBook] = {}
        # Every order received, finished ones included: the order numbered n, whose
        # OrderID (37) is the prefix and n, is at index n - 1.
        self._orders: list[Order] = []
        # session_id -> ClOrdID -> the latest order of the session that used that ClOrdID.
        # Nested, because a (session_id, ClOrdID) tuple key costs an allocation that the
        # garbage collector then tracks, on every order. The inner index is a dict, or
        # the compiled ClOrdIdIndex with the same interface (see _index_cl_ord_id).
        self._by_cl_ord_id: dict[str, MutableMapping[str, Order]] = {}
        self._firms = firm_by_session(firms)

        self._order_prefix = f"{id_prefix}O"
        self._exec_prefix = f"{id_prefix}E"
        self._trade_prefix = f"{id_prefix}T"
        self.compiled = _use_compiled(compiled)
        # The compiled fast paths keep the counters as C integers in the same object,
        # so handing a command between C and Python copies nothing.
        self._counters: Counters = _cengine.Counters() if self.compiled else Counters()

        # Venue time from AdvanceTime, and the last trading day EndOfDay closed.
        self._now_us = 0
        self._closed_date = ""
        # GTD orders with an ExpireTime (126): (expire_time_us, num, order), lazily pruned.
        self._expiry_heap: list[tuple[int, int, Order]] = []

        self._handlers: dict[type, Callable[[Any], list[Event]]] = {
            NewOrder: self._on_new_order,
            CancelOrder: self._on_cancel_order,
            ReplaceOrder: self._on_replace_order,
            OrderStatusRequest: self._on_order_status_request,
            MassCancel: self._on_mass_cancel,
            RejectOrder: self._on_reject_order,
            AdvanceTime: self._on_advance_time,
            EndOfDay: self._on_end_of_day,
            SetTradingPhase: self._on_set_trading_phase,
        }
        for instrument in instruments:
            self.add_instrument(instrument)
        if self.compiled:
            # An instance attribute, so engine.process(command) calls the compiled code,
            # which hands every case it does not take to MatchingEngine.process.
            self.process = _cengine.Accelerator(self, MatchingEngine.process).process  # type: ignore[method-assign]

    # Public API.

    @property
    def symbols(self) -> list[str]:
        """The listed symbols, in the order they were added."""
        return list(self._books)

    @property
    def now_us(self) -> int:
        """The venue time the last AdvanceTime set, in microseconds since the epoch."""
        return self._now_us

    def add_instrument(self, instrument: str | Instrument) -> None:
        """List an instrument, given as a symbol or with its rules, with an empty book."""
        if not isinstance(instrument, Instrument):
            # Instrument() raises ValueError for anything but a non-empty string.
            instrument = Instrument(instrument)  # type: ignore[arg-type]
        if instrument.symbol in self._books:
            raise DuplicateInstrumentError(f"symbol {instrument.symbol!r} is already listed")
        # Compiled engines keep each level's orders in the compiled OrderQueue, which the
        # fast paths read directly. The pure-Python engine uses an OrderedDict.
        queue_type = _cengine.OrderQueue if self.compiled else OrderedDict
        self._books[instrument.symbol] = OrderBook(instrument, queue_type)
        logger.debug("listed symbol %s", instrument.symbol)

    def book(self, symbol: str) -> OrderBook:
        """Return the order book of ``symbol``."""
        book = self._books.get(symbol)
        if book is None:
            raise UnknownInstrumentError(
                f"symbol {symbol!r} is not listed; add it with add_instrument() first"
            )
        return book

    def knows_cl_ord_id(self, session_id: str, cl_ord_id: str) -> bool:
        """Return whether ``session_id`` has used ``cl_ord_id`` for an order, live or finished."""
        cl_ord_ids = self._by_cl_ord_id.get(session_id)
        return cl_ord_ids is not None and cl_ord_id in cl_ord_ids

    def next_expiry_us(self) -> int | None:
        """Return the earliest ExpireTime (126) of a waiting GTD order, or None.

        The time may belong to an order that has since finished. An AdvanceTime to it then
        expires nothing, so a scheduler may use this value without checking.
        """
        return self._expiry_heap[0][0] if self._expiry_heap else None

    def market_data(self, symbol: str, depth: int = 10) -> MarketDataSnapshot:
        """Return the top ``depth`` levels, last trade, phase and indicative auction of ``symbol``."""
        book = self.book(symbol)
        indicative = None
        if book.phase is not _CONTINUOUS:
            indicative = self._uncross_of(book)
        return snapshot(book, depth, indicative)

    def process(self, command: Command) -> list[Event]:
        """Carry out one command and return its events in the order they happened."""
        handler = self._handlers.get(type(command))
        if handler is None:
            raise UnsupportedCommandError(
                f"cannot process {type(command).__name__!r}; expected one of "
                f"{sorted(cls.__name__ for cls in self._handlers)}"
            )
        return handler(command)

    # New orders.

    def _on_new_order(self, command: NewOrder) -> list[Event]:
        book = self._books.get(command.symbol)
        session_id, cl_ord_id = command.session_id, command.cl_ord_id
        cl_ord_ids = self._by_cl_ord_id.get(session_id)
        # A ClOrdID (11) used before, by a live order or a finished one, takes the full
        # checks, which tell the two apart.
        if (
            book is None
            or cl_ord_ids is None
            or cl_ord_id in cl_ord_ids
            or not is_plain_limit(command, book)
        ):
            return self._on_new_order_checked(command, book)

        # The common case, a plain limit order in continuous trading, passed every check.
        # Opening it, building its NEW report and resting it inline saves several calls.
        counters = self._counters
        counters.order_count = num = counters.order_count + 1
        order_id = f"{self._order_prefix}{num}"
        symbol, side, tif = command.symbol, command.side, command.time_in_force
        price, qty = command.price, command.order_qty
        order = Order(
            order_id, session_id, cl_ord_id, symbol, side, _LIMIT, tif, price, qty,
            command.account,
        )
        self._orders.append(order)
        cl_ord_ids[cl_ord_id] = order
        order.firm = self._firms.get(session_id)
        counters.exec_count = exec_count = counters.exec_count + 1
        events: list[Event] = [_new_tuple(ExecutionEvent, (
            f"{self._exec_prefix}{exec_count}", _EXEC_NEW, _NEW, order_id, session_id,
            cl_ord_id, None, symbol, side, _LIMIT, tif, price, qty, 0, qty, 0, 0, 0, None,
            None, "", None, 0, 0, False, None, None,
        ))]

        if not (tif is _DAY or tif is _GTC):
            self._execute(order, book, events)
        else:
            if side is _BUY:
                keys = book.asks.keys
                crosses = keys and -keys[-1] <= price
            else:
                keys = book.bids.keys
                crosses = keys and keys[-1] >= price
            if not crosses:
                self._rest(order, book)
            elif self._match(order, book, events):
                events.append(self._cancel_remainder(order, _SELF_MATCH_INCOMING_TEXT))
            elif order.leaves_qty:
                self._rest(order, book)
        if book.stops:
            self._run_stops(book, events)
        return events

    def _on_new_order_checked(self, command: NewOrder, book: OrderBook | None) -> list[Event]:
        """Accept or reject a NewOrder after the full checks, then carry it out."""
        rejection = self._check_new_order(command, book)
        if rejection is not None:
            return [self._reject(command, *rejection)]

        order = self._open_order(command)
        self._index_cl_ord_id(order)
        events: list[Event] = []
        if order.post_only and book.phase is _CONTINUOUS:  # type: ignore[union-attr]
            self._reprice_post_only(order, book)  # type: ignore[arg-type]
        events.append(self._execution(order, _EXEC_NEW))

        if order.triggered:
            self._execute(order, book, events)  # type: ignore[arg-type]
        else:
            self._park_stop(order, book)  # type: ignore[arg-type]
        if book.stops:  # type: ignore[union-attr]
            self._run_stops(book, events)  # type: ignore[arg-type]
        return events

    def _check_new_order(
        self, command: NewOrder, book: OrderBook | None
    ) -> tuple[OrdRejReason, str] | None:
        """Return (OrdRejReason (103), text) if the order cannot be accepted, else None."""
        holder = self._cl_ord_id_holder(command.session_id, command.cl_ord_id)
        if holder is not None and holder.ord_status in LIVE_STATUSES:
            return OrdRejReason.DUPLICATE_ORDER, (
                f"ClOrdID (11) {command.cl_ord_id!r} is already used by live order "
                f"{holder.order_id} of this session"
            )
        if book is None:
            return OrdRejReason.UNKNOWN_SYMBOL, f"Symbol (55) {command.symbol!r} is not listed"
        problem = order_problem(
            command, book.instrument, self._now_us, self._closed_date
        ) or new_order_problem(command, book)
        if problem is None and command.post_only:
            problem = _post_only_problem(command.side, command.price, book)
        return problem

    def _reprice_post_only(self, order: Order, book: OrderBook) -> None:
        """Move a crossing post-only order to one tick short of the best opposite price."""
        tick = book.instrument.tick_size
        if order.side is _BUY:
            best = book.asks.best()
            if best is not None and order.price >= best.price:  # type: ignore[operator]
                order.price = best.price - tick
        else:
            best = book.bids.best()
            if best is not None and order.price <= best.price:  # type: ignore[operator]
                order.price = best.price + tick

    def _on_reject_order(self, command: RejectOrder) -> list[Event]:
        return [self._reject(command.order, command.reason, command.text)]

    # Matching.

    def _execute(
        self, order: Order, book: OrderBook, events: list[Event], arriving: bool = True
    ) -> None:
        """Match a live order as the aggressor, then rest or cancel what is left.

        In a call phase the order only rests: validation lets through only orders that
        may rest there. MinQty (110) counts only when the order is ``arriving``, not when
        a replace makes it an aggressor again.
        """
        if book.phase is not _CONTINUOUS:
            self._rest(order, book)
            return
        if order.time_in_force is _FOK or (arriving and order.min_qty):
            refusal = self._fill_refusal(order, book)
            if refusal is not None:
                events.append(self._cancel_remainder(order, refusal))
                return

        incoming_cancelled = self._match(order, book, events)
        if incoming_cancelled:
            events.append(self._cancel_remainder(order, _SELF_MATCH_INCOMING_TEXT))
        elif order.leaves_qty:
            tif = order.time_in_force
            if order.price is not None and (tif is _DAY or tif is _GTC or tif is _GTD):
                self._rest(order, book)
            else:
                events.append(self._cancel_remainder(order, _remainder_text(order)))

    def _fill_refusal(self, order: Order, book: OrderBook) -> str | None:
        """Return why an arriving FOK or MinQty (110) order must be cancelled unfilled, else None."""
        available = book.fillable_qty(order, order.price)
        if order.time_in_force is _FOK and available < order.leaves_qty:
            return (
                f"FOK order canceled without a fill: only {available} of OrderQty (38) "
                f"{order.order_qty} could be filled at once"
            )
        if order.min_qty and available < order.min_qty and (
            available or _crosses(book, order.side, order.price)
        ):
            return (
                f"MinQty (110) {order.min_qty} not met: only {available} could be filled "
                f"at once, so the order was canceled without a fill"
            )
        return None

    def _match(self, order: Order, book: OrderBook, events: list[Event]) -> bool:
        """Match ``order`` as the aggressor, appending TRADE and Trade events.

        Returns True when self-match prevention cancels what is left of ``order``.

        This is the engine's hot loop, so it is one function that reads attributes into
        locals and builds the events inline as tuples. Per fill it updates both orders and
        the level, takes a filled resting order off the front, or shows an iceberg's next
        slice at the back, then reports TRADE for the aggressor, TRADE for the resting
        order and the Trade.
        """
        if order.side is _BUY:
            opposite = book.asks
            limit_key = None if order.price is None else -order.price
        else:
            opposite = book.bids
            limit_key = order.price
        keys = opposite.keys
        if not keys or (limit_key is not None and keys[-1] < limit_key):
            return False

        levels = opposite.levels
        append = events.append
        self_match = order.self_match
        exec_prefix = self._exec_prefix
        trade_prefix = self._trade_prefix
        # The aggressor's fields that no fill changes.
        order_id, session_id, cl_ord_id = order.order_id, order.session_id, order.cl_ord_id
        symbol, side, ord_type = order.symbol, order.side, order.ord_type
        time_in_force, limit_price, order_qty = order.time_in_force, order.price, order.order_qty
        stop_px, display_qty, min_qty, post_only, expire_time_us, expire_date = event_terms(order)
        cum_qty, cum_notional = order.cum_qty, order.cum_notional
        leaves = order.leaves_qty
        firm = order.firm
        # The counters stay in locals during the loop and are stored back before any
        # call that numbers events itself, and at the end.
        counters = self._counters
        exec_count, trade_count = counters.exec_count, counters.trade_count
        price = take = traded_px = 0
        while keys:
            key = keys[-1]
            if limit_key is not None and key < limit_key:
                break
            level = levels[key]
            orders = level.orders
            price = level.price
            while orders:
                resting = next(iter(orders))
                if self_match is not None and resting.firm is firm:
                    order.leaves_qty = leaves
                    order.cum_qty, order.cum_notional = cum_qty, cum_notional
                    counters.exec_count, counters.trade_count = exec_count, trade_count
                    if self._prevent_self_match(self_match, resting, level, events):
                        if not orders:
                            opposite.drop_level(key)
                        if traded_px:
                            book.last_px = traded_px
                            book.last_qty = take
                        return True
                    exec_count = counters.exec_count
                    continue
                take = resting.visible_qty
                if take > leaves:
                    take = leaves
                notional = take * price

                resting.cum_qty += take
                resting_leaves = resting.leaves_qty = resting.leaves_qty - take
                resting.visible_qty -= take
                resting.cum_notional += notional
                level.total_qty -= take
                level.leaves_qty -= take
                leaves -= take
                cum_qty += take
                cum_notional += notional
                if resting_leaves:
                    resting.ord_status = _PARTIALLY_FILLED
                    if not resting.visible_qty:
                        self._refresh_iceberg(resting, level)
                else:
                    resting.ord_status = _FILLED
                    resting.seq = 0
                    orders.popitem(last=False)

                trade_count += 1
                trade_id = f"{trade_prefix}{trade_count}"
                exec_count += 2
                resting_id = resting.order_id
                resting_session_id = resting.session_id
                append(_new_tuple(ExecutionEvent, (
                    f"{exec_prefix}{exec_count - 1}", _EXEC_TRADE,
                    _PARTIALLY_FILLED if leaves else _FILLED, order_id, session_id, cl_ord_id,
                    None, symbol, side, ord_type, time_in_force, limit_price, order_qty,
                    cum_qty, leaves, cum_notional, take, price, trade_id, None, "", stop_px,
                    display_qty, min_qty, post_only, expire_time_us, expire_date,
                )))
                r_stop_px, r_display_qty, r_min_qty, r_post_only, r_expire_time_us, r_expire_date = (
                    event_terms(resting)
                )
                append(_new_tuple(ExecutionEvent, (
                    f"{exec_prefix}{exec_count}", _EXEC_TRADE, resting.ord_status, resting_id,
                    resting_session_id, resting.cl_ord_id, None, symbol, resting.side,
                    resting.ord_type, resting.time_in_force, price, resting.order_qty,
                    resting.cum_qty, resting_leaves, resting.cum_notional, take, price,
                    trade_id, None, "", r_stop_px, r_display_qty, r_min_qty, r_post_only,
                    r_expire_time_us, r_expire_date,
                )))
                append(_new_tuple(Trade, (
                    trade_id, symbol, price, take, side, order_id, session_id, resting_id,
                    resting_session_id, False,
                )))
                traded_px = price
                if not leaves:
                    break
            if not orders:
                opposite.drop_level(key)
            if not leaves:
                break

        counters.exec_count, counters.trade_count = exec_count, trade_count
        order.leaves_qty = leaves
        order.cum_qty, order.cum_notional = cum_qty, cum_notional
        if leaves == 0:
            order.ord_status = _FILLED
        elif cum_qty:
            order.ord_status = _PARTIALLY_FILLED
        if traded_px:
            book.last_px = traded_px
            book.last_qty = take
        return False

    def _prevent_self_match(
        self, mode: SelfMatchPrevention, resting: Order, level: PriceLevel, events: list[Event]
    ) -> bool:
        """Apply ``mode`` to the front order of ``level``, which belongs to the aggressor's firm.

        Returns True when the incoming order must be cancelled.
        """
        if mode is not _CANCEL_INCOMING:
            level.orders.popitem(last=False)
            resting.seq = 0
            level.total_qty -= resting.visible_qty
            level.leaves_qty -= resting.leaves_qty
            events.append(self._cancel_remainder(resting, _SELF_MATCH_RESTING_TEXT))
        return mode is not _CANCEL_RESTING

    def _refresh_iceberg(self, order: Order, level: PriceLevel) -> None:
        """Show the next slice of an iceberg whose slice was filled, at the back of the level."""
        order.show_next_slice()
        level.total_qty += order.visible_qty
        level.orders.move_to_end(order)
        counters = self._counters
        counters.seq = order.seq = counters.seq + 1

    # Stop orders.

    def _park_stop(self, order: Order, book: OrderBook) -> None:
        """Hold a stop order outside the book until its StopPx (99) is reached."""
        counters = self._counters
        counters.seq = order.seq = counters.seq + 1
        book.stops[order.num] = order

    def _run_stops(self, book: OrderBook, events: list[Event]) -> None:
        """Trigger every stop the last trade price reached, in arrival order, until none is left.

        Each triggered order matches in full before the next; its trades may move the last
        trade price and trigger further stops on the next pass.
        """
        while book.stops and book.phase is _CONTINUOUS and book.last_px is not None:
            last_px = book.last_px
            triggered = [
                order
                for order in book.stops.values()
                if (order.stop_px <= last_px if order.side is _BUY else order.stop_px >= last_px)  # type: ignore[operator]
            ]
            if not triggered:
                return
            triggered.sort(key=_arrival)
            for order in triggered:
                del book.stops[order.num]
                order.triggered = True
                order.seq = 0
                events.append(self._execution(order, ExecType.TRIGGERED))
                self._execute(order, book, events)

    # Cancels and replaces.

    def _on_cancel_order(self, command: CancelOrder) -> list[Event]:
        order, cancel_reject = self._find_for_change(command, CxlRejResponseTo.CANCEL)
        if cancel_reject is not None:
            return [cancel_reject]

        previous_cl_ord_id = order.cl_ord_id
        order.cl_ord_id = command.cl_ord_id
        self._index_cl_ord_id(order)
        self._unrest(order, self._books[order.symbol])
        order.ord_status = _CANCELED
        order.leaves_qty = 0
        order.visible_qty = 0
        return [self._execution(order, _EXEC_CANCELED, previous_cl_ord_id)]

    def _on_replace_order(self, command: ReplaceOrder) -> list[Event]:
        order, cancel_reject = self._find_for_change(command, CxlRejResponseTo.REPLACE)
        if cancel_reject is None:
            cancel_reject = self._check_replace(command, order)
        if cancel_reject is not None:
            return [cancel_reject]

        book = self._books[order.symbol]
        previous_cl_ord_id = order.cl_ord_id
        order.cl_ord_id = command.cl_ord_id
        self._index_cl_ord_id(order)
        order.time_in_force = command.time_in_force
        self._set_expiry(order, command.expire_time_us, command.expire_date)

        if not order.triggered:
            return self._replace_stop(order, command, book, previous_cl_ord_id)
        # A lower or equal quantity at the same price and display keeps time priority.
        # Any other change makes the order an aggressor at its new price, and what is
        # left joins the back.
        if (
            command.price == order.price
            and command.order_qty <= order.order_qty
            and command.display_qty == order.display_qty
        ):
            self._amend_qty(order, command.order_qty, book)
            return [self._execution(order, _EXEC_REPLACED, previous_cl_ord_id)]

        self._unrest(order, book)
        order.price = command.price
        order.order_qty = command.order_qty
        order.leaves_qty = command.order_qty - order.cum_qty
        order.display_qty = command.display_qty
        order.show_next_slice()
        if order.post_only and book.phase is _CONTINUOUS:
            self._reprice_post_only(order, book)
        events: list[Event] = [self._execution(order, _EXEC_REPLACED, previous_cl_ord_id)]
        self._execute(order, book, events, arriving=False)
        if book.stops:
            self._run_stops(book, events)
        return events

    def _replace_stop(
        self, order: Order, command: ReplaceOrder, book: OrderBook, previous_cl_ord_id: str
    ) -> list[Event]:
        """Change a waiting stop order; it triggers at once if the last trade reached it."""
        order.price = command.price
        order.stop_px = command.stop_px
        order.order_qty = command.order_qty
        order.leaves_qty = order.visible_qty = command.order_qty
        events: list[Event] = [self._execution(order, _EXEC_REPLACED, previous_cl_ord_id)]
        self._run_stops(book, events)
        return events

    def _amend_qty(self, order: Order, order_qty: int, book: OrderBook) -> None:
        """Lower or keep OrderQty (38) of a resting order without changing its time priority."""
        level = book.side(order.side).level_of(order)
        leaves_qty = order_qty - order.cum_qty
        visible_qty = min(order.visible_qty, leaves_qty)
        level.leaves_qty -= order.leaves_qty - leaves_qty
        level.total_qty -= order.visible_qty - visible_qty
        order.order_qty = order_qty
        order.leaves_qty = leaves_qty
        order.visible_qty = visible_qty

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

        holder = self._cl_ord_id_holder(command.session_id, command.cl_ord_id)
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
        book = self._books[order.symbol]
        text = None
        if command.ord_type is not order.ord_type:
            text = (
                f"OrdType (40) cannot change from {order.ord_type.name} to "
                f"{command.ord_type.name}"
            )
        elif command.time_in_force not in RESTING_TIME_IN_FORCE:
            text = (
                f"TimeInForce (59) of a resting order can be DAY, GTC or GTD, "
                f"got {command.time_in_force.name}"
            )
        elif book.phase in _ORDER_ENTRY_CLOSED:
            text = f"{order.symbol} is {book.phase.name}: replaces are not accepted"
        elif (problem := self._replace_problem(command, order, book)) is not None:
            text = problem[1]
        if text is None:
            return None
        return self._cancel_reject(
            command, CxlRejResponseTo.REPLACE, order, CxlRejReason.OTHER, text
        )

    def _replace_problem(
        self, command: ReplaceOrder, order: Order, book: OrderBook
    ) -> tuple[OrdRejReason, str] | None:
        problem = order_problem(command, book.instrument, self._now_us, self._closed_date)
        if problem is not None:
            return problem
        if command.order_qty <= order.cum_qty:
            return OrdRejReason.OTHER, (
                f"OrderQty (38) {command.order_qty} is not above CumQty (14) {order.cum_qty}"
            )
        if order.post_only and command.price != order.price:
            return _post_only_problem(command.side, command.price, book)
        return None

    # Status requests and mass cancels.

    def _on_order_status_request(self, command: OrderStatusRequest) -> list[Event]:
        order = self._find(command.session_id, command.cl_ord_id, command.order_id)
        mismatch = None if order is None else _mismatch(command, order)
        if order is None or mismatch is not None:
            text = "unknown order" if mismatch is None else f"unknown order: {mismatch}"
            return [self._unknown_status(command, text)]
        return [self._execution(order, ExecType.ORDER_STATUS)]

    def _on_mass_cancel(self, command: MassCancel) -> list[Event]:
        if command.symbol is None:
            books: Iterable[OrderBook] = self._books.values()
        else:
            book = self._books.get(command.symbol)
            books = () if book is None else (book,)
        session_id, side = command.session_id, command.side
        targets = sorted(
            (
                order
                for order in self._live_orders(books)
                if order.session_id == session_id and (side is None or order.side is side)
            ),
            key=_time_priority,
        )
        text = command.text or (
            f"canceled by OrderMassCancelRequest ClOrdID (11) {command.cl_ord_id!r}"
        )
        return [self._finish(order, ExecType.CANCELED, OrdStatus.CANCELED, text) for order in targets]

    # Time, end of day and trading phases.

    def _on_advance_time(self, command: AdvanceTime) -> list[Event]:
        if command.ts_us <= self._now_us:
            return []
        self._now_us = now_us = command.ts_us
        heap = self._expiry_heap
        due = []
        while heap and heap[0][0] <= now_us:
            expire_time_us, _, order = heapq.heappop(heap)
            # Entries of orders since finished or replaced to another expiry are stale.
            if order.ord_status in LIVE_STATUSES and order.expire_time_us == expire_time_us:
                due.append(order)
        text = f"GTD order expired: ExpireTime (126) reached at venue time {now_us} µs"
        return [self._finish(order, ExecType.EXPIRED, OrdStatus.EXPIRED, text) for order in due]

    def _on_end_of_day(self, command: EndOfDay) -> list[Event]:
        trade_date = command.trade_date
        if trade_date > self._closed_date:
            self._closed_date = trade_date
        due = [
            order
            for order in self._live_orders(self._books.values())
            if order.time_in_force is TimeInForce.DAY
            or (order.expire_date is not None and order.expire_date <= trade_date)
        ]
        due.sort(key=_arrival)
        text = f"expired at the end of trading day {trade_date}"
        return [self._finish(order, ExecType.EXPIRED, OrdStatus.EXPIRED, text) for order in due]

    def _on_set_trading_phase(self, command: SetTradingPhase) -> list[Event]:
        books = self._books.values() if command.symbol is None else [self.book(command.symbol)]
        events: list[Event] = []
        for book in books:
            previous, book.phase = book.phase, command.phase
            logger.info("%s: trading phase %s -> %s", book.symbol, previous.name, command.phase.name)
            if previous in _UNCROSS_FROM and command.phase in _UNCROSS_INTO:
                self._uncross(book, events)
            if book.stops:
                self._run_stops(book, events)
        return events

    def _uncross_of(self, book: OrderBook) -> Any:
        bids = [(level.price, level.leaves_qty) for level in book.bids.in_priority()]
        asks = [(level.price, level.leaves_qty) for level in book.asks.in_priority()]
        reference = book.last_px if book.last_px is not None else book.instrument.reference_price
        return uncross_price(bids, asks, reference)

    def _uncross(self, book: OrderBook, events: list[Event]) -> None:
        """Trade the crossed part of the book at the auction price, in price-time priority."""
        result = self._uncross_of(book)
        if result is None:
            return
        remaining = result.volume
        counters = self._counters
        while remaining:
            bid_level, ask_level = book.bids.best(), book.asks.best()
            buy = next(iter(bid_level.orders))  # type: ignore[union-attr]
            sell = next(iter(ask_level.orders))  # type: ignore[union-attr]
            qty = min(buy.leaves_qty, sell.leaves_qty, remaining)
            remaining -= qty
            counters.trade_count = trade_count = counters.trade_count + 1
            trade_id = f"{self._trade_prefix}{trade_count}"
            for order in (buy, sell):
                self._auction_fill(order, qty, result.price, book)
                events.append(self._fill(order, qty, result.price, trade_id))
            events.append(
                Trade(
                    trade_id, book.symbol, result.price, qty, Side.BUY, buy.order_id,
                    buy.session_id, sell.order_id, sell.session_id, auction=True,
                )
            )
            book.last_qty = qty
        book.last_px = result.price

    def _auction_fill(self, order: Order, qty: int, price: int, book: OrderBook) -> None:
        """Fill a resting order in an uncross; it keeps its place unless it is done."""
        side = book.side(order.side)
        level = side.level_of(order)
        level.total_qty -= order.visible_qty
        level.leaves_qty -= qty
        order.cum_qty += qty
        order.leaves_qty -= qty
        order.cum_notional += qty * price
        if order.leaves_qty:
            order.ord_status = _PARTIALLY_FILLED
            # Hidden quantity trades in an auction too, so a used-up slice is refilled in
            # place: the uncross has no arrival order to lose priority to.
            if qty < order.visible_qty:
                order.visible_qty -= qty
            else:
                order.show_next_slice()
            level.total_qty += order.visible_qty
            return
        order.ord_status = _FILLED
        order.visible_qty = 0
        order.seq = 0
        del level.orders[order]
        if not level.orders:
            side.drop_level(side.sign * level.price)

    # Order state.

    def _find(self, session_id: str, cl_ord_id: str, order_id: str | None) -> Order | None:
        """Return the session's order by OrderID (37) if given, else by ClOrdID (11)."""
        if order_id is None:
            return self._cl_ord_id_holder(session_id, cl_ord_id)
        order = self._order_by_id(order_id)
        if order is None or order.session_id != session_id:
            return None
        return order

    def _order_by_id(self, order_id: str) -> Order | None:
        """Return the order this engine numbered ``order_id`` (37), or None."""
        prefix = self._order_prefix
        digits = order_id[len(prefix):]
        # No engine numbers 10**18 orders; the bound also keeps int() off huge strings.
        if not (
            order_id.startswith(prefix) and len(digits) <= 18 and digits.isascii() and digits.isdigit()
        ):
            return None
        index = int(digits) - 1
        if not 0 <= index < len(self._orders):
            return None
        order = self._orders[index]
        # "O007" names no order: OrderIDs carry no leading zeros.
        return order if order.order_id == order_id else None

    def _open_order(self, command: NewOrder) -> Order:
        counters = self._counters
        counters.order_count = num = counters.order_count + 1
        order = Order(
            f"{self._order_prefix}{num}",
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
        if command.stop_px is not None:
            order.stop_px = command.stop_px
            order.triggered = False
        if command.display_qty:
            order.display_qty = command.display_qty
            order.show_next_slice()
        if command.min_qty:
            order.min_qty = command.min_qty
        if command.post_only:
            order.post_only = True
        if command.time_in_force is _GTD:
            self._set_expiry(order, command.expire_time_us, command.expire_date)
        if self._firms:
            self._assign_firm(order)
        self._orders.append(order)
        return order

    def _assign_firm(self, order: Order) -> None:
        """Record the order's broker firm, which also gives its self-match prevention."""
        order.firm = self._firms.get(order.session_id)

    def _set_expiry(self, order: Order, expire_time_us: int | None, expire_date: str | None) -> None:
        order.expire_time_us = expire_time_us
        order.expire_date = expire_date
        if expire_time_us is not None:
            heapq.heappush(self._expiry_heap, (expire_time_us, order.num, order))

    def _index_cl_ord_id(self, order: Order) -> None:
        cl_ord_ids = self._by_cl_ord_id.get(order.session_id)
        if cl_ord_ids is None:
            # A session's index grows by one entry per order all day. Once it no longer
            # fits in the CPU's caches, the compiled index is cheaper to probe.
            cl_ord_ids = _cengine.ClOrdIdIndex() if self.compiled else {}
            self._by_cl_ord_id[order.session_id] = cl_ord_ids
        cl_ord_ids[order.cl_ord_id] = order

    def _cl_ord_id_holder(self, session_id: str, cl_ord_id: str) -> Order | None:
        """Return the latest order of the session that used ``cl_ord_id``, or None."""
        cl_ord_ids = self._by_cl_ord_id.get(session_id)
        return None if cl_ord_ids is None else cl_ord_ids.get(cl_ord_id)

    def _rest(self, order: Order, book: OrderBook) -> None:
        """Rest ``order`` at the back of its level and add it to its session's live orders.

        This inlines BookSide.add, because nearly every order rests.
        """
        counters = self._counters
        counters.seq = order.seq = counters.seq + 1
        # A partly filled aggressor shows what is left, or its next iceberg slice.
        display_qty = order.display_qty
        leaves_qty = order.leaves_qty
        visible_qty = order.visible_qty = (
            display_qty if 0 < display_qty < leaves_qty else leaves_qty
        )
        side = book.bids if order.side is _BUY else book.asks
        key = side.sign * order.price  # type: ignore[operator]
        level = side.levels.get(key)
        if level is None:
            level = side.levels[key] = PriceLevel(order.price, side.queue_type())  # type: ignore[arg-type]
            keys = side.keys
            if not keys or key > keys[-1]:
                keys.append(key)
            else:
                insort(keys, key)
        level.orders[order] = None
        level.total_qty += visible_qty
        level.leaves_qty += leaves_qty

    def _live_orders(self, books: Iterable[OrderBook]) -> Iterator[Order]:
        """Yield the live orders of ``books``: resting orders, then waiting stop orders.

        The engine keeps no index of live orders by session, because keeping it costs
        two dict updates on every order. Mass cancels and the end of day, which need
        the live orders, walk the books instead.
        """
        for book in books:
            yield from book.orders()
            yield from book.stops.values()

    def _unrest(self, order: Order, book: OrderBook) -> None:
        """Take a live order out of the book or the stop book, and out of the live index."""
        if order.triggered:
            book.side(order.side).remove(order)
        else:
            del book.stops[order.num]
        order.seq = 0

    def _finish(self, order: Order, exec_type: ExecType, ord_status: OrdStatus, text: str) -> ExecutionEvent:
        """End a live order unsolicited (cancel or expiry) and build its event."""
        self._unrest(order, self._books[order.symbol])
        order.ord_status = ord_status
        order.leaves_qty = 0
        order.visible_qty = 0
        return self._execution(order, exec_type, text=text)

    # Events.

    def _execution(
        self,
        order: Order,
        exec_type: ExecType,
        orig_cl_ord_id: str | None = None,
        text: str = "",
        ord_rej_reason: OrdRejReason | None = None,
    ) -> ExecutionEvent:
        """Build an ExecutionEvent with the order's current state."""
        counters = self._counters
        counters.exec_count = exec_count = counters.exec_count + 1
        stop_px, display_qty, min_qty, post_only, expire_time_us, expire_date = event_terms(order)
        return _new_tuple(ExecutionEvent, (
            f"{self._exec_prefix}{exec_count}", exec_type, order.ord_status,
            order.order_id, order.session_id, order.cl_ord_id, orig_cl_ord_id, order.symbol,
            order.side, order.ord_type, order.time_in_force, order.price, order.order_qty,
            order.cum_qty, order.leaves_qty, order.cum_notional, 0, 0, None, ord_rej_reason,
            text, stop_px, display_qty, min_qty, post_only, expire_time_us, expire_date,
        ))

    def _fill(self, order: Order, qty: int, price: int, trade_id: str) -> ExecutionEvent:
        """Build the ExecType (150) TRADE event for one side of an auction match."""
        counters = self._counters
        counters.exec_count = exec_count = counters.exec_count + 1
        stop_px, display_qty, min_qty, post_only, expire_time_us, expire_date = event_terms(order)
        return _new_tuple(ExecutionEvent, (
            f"{self._exec_prefix}{exec_count}", _EXEC_TRADE, order.ord_status,
            order.order_id, order.session_id, order.cl_ord_id, None, order.symbol,
            order.side, order.ord_type, order.time_in_force, order.price, order.order_qty,
            order.cum_qty, order.leaves_qty, order.cum_notional, qty, price, trade_id, None,
            "", stop_px, display_qty, min_qty, post_only, expire_time_us, expire_date,
        ))

    def _cancel_remainder(self, order: Order, text: str) -> ExecutionEvent:
        """Cancel what an order that may not rest has left, with the reason in ``text``."""
        order.ord_status = _CANCELED
        order.leaves_qty = 0
        order.visible_qty = 0
        return self._execution(order, _EXEC_CANCELED, text=text)

    def _reject(self, command: NewOrder, reason: OrdRejReason, text: str) -> ExecutionEvent:
        """Record a rejected order under a new OrderID (37) and build its REJECTED event."""
        order = self._open_order(command)
        order.ord_status = OrdStatus.REJECTED
        order.leaves_qty = 0
        order.visible_qty = 0

        # A rejected order must not take its ClOrdID (11) away from a live order, so a
        # duplicate can be found by OrderID (37) only.
        holder = self._cl_ord_id_holder(command.session_id, command.cl_ord_id)
        if holder is None or holder.ord_status not in LIVE_STATUSES:
            self._index_cl_ord_id(order)

        return self._execution(order, ExecType.REJECTED, text=text, ord_rej_reason=reason)

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
        counters = self._counters
        counters.exec_count = exec_count = counters.exec_count + 1
        return ExecutionEvent(
            f"{self._exec_prefix}{exec_count}",
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
        cancelled, expired or rejected, so checking them on every call would only cost time.
        """
        live_orders: dict[Order, str] = {}
        for symbol, book in self._books.items():
            if book.symbol != symbol:
                raise EngineInvariantError(
                    f"book listed as {symbol!r} has symbol {book.symbol!r}"
                )
            book.check()
            for order in book.orders():
                live_orders[order] = symbol
            for order in book.stops.values():
                live_orders[order] = symbol

        for order in live_orders:
            self._check_indexed(order)
        self._check_counters()

    def _check_indexed(self, order: Order) -> None:
        if self._order_by_id(order.order_id) is not order:
            raise EngineInvariantError(
                f"resting order {order.order_id} is not indexed by its OrderID (37)"
            )
        holder = self._cl_ord_id_holder(order.session_id, order.cl_ord_id)
        if holder is not order:
            raise EngineInvariantError(
                f"ClOrdID (11) {order.cl_ord_id!r} of resting order {order.order_id} "
                f"points at {holder!r}"
            )
        if order.seq > self._counters.seq:
            raise EngineInvariantError(
                f"resting order {order.order_id} has seq {order.seq} above the counter "
                f"{self._counters.seq}"
            )
        if order.expire_time_us is not None and order.expire_time_us <= self._now_us:
            raise EngineInvariantError(
                f"GTD order {order.order_id} is live past its ExpireTime (126) "
                f"{order.expire_time_us} at venue time {self._now_us}"
            )

    def _check_counters(self) -> None:
        if len(self._orders) != self._counters.order_count:
            raise EngineInvariantError(
                f"{len(self._orders)} orders are indexed by OrderID (37) but "
                f"{self._counters.order_count} OrderIDs were assigned"
            )


def compiled_status() -> str:
    """Return whether new engines use the compiled fast paths, and why not, in words."""
    if _cengine is not None:
        return "compiled fast paths"
    return f"pure Python: {_CENGINE_MISSING or 'FIXGW_NO_EXTENSIONS is set'}"


def _use_compiled(compiled: bool | None) -> bool:
    if compiled is None:
        return _cengine is not None
    if compiled and _cengine is None:
        raise RuntimeError(
            "the compiled engine is not available: "
            + (_CENGINE_MISSING or "it is turned off by FIXGW_NO_EXTENSIONS")
            + "; reinstall with a C compiler (pip install -e .) or pass compiled=False"
        )
    return compiled


_SELF_MATCH_RESTING_TEXT = "self-match prevention: canceled the resting order of the same firm"
_SELF_MATCH_INCOMING_TEXT = (
    "self-match prevention: canceled the incoming order, which would trade with its own firm"
)


def _arrival(order: Order) -> int:
    return order.num


def _time_priority(order: Order) -> int:
    return order.seq


def _post_only_problem(
    side: Side, price: int | None, book: OrderBook
) -> tuple[OrdRejReason, str] | None:
    """Return the reject of a post-only order that would take liquidity, or None."""
    if book.instrument.post_only_policy is not PostOnlyPolicy.REJECT:
        return None
    if book.phase is not _CONTINUOUS or not _crosses(book, side, price):
        return None
    return OrdRejReason.OTHER, (
        f"post-only order at Price (44) {price} would take liquidity from the best "
        f"{'ask' if side is _BUY else 'bid'}; send a price that does not cross"
    )


def _crosses(book: OrderBook, side: Side, price: int | None) -> bool:
    """True when an order on ``side`` at ``price`` (None for market) would trade now."""
    best = book.asks.best() if side is _BUY else book.bids.best()
    if best is None:
        return False
    if price is None:
        return True
    return price >= best.price if side is _BUY else price <= best.price


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
    if order.price is None:
        return (
            f"{type_name(order.ord_type)} order: no liquidity left for the remaining "
            f"{order.leaves_qty} of OrderQty (38) {order.order_qty}"
        )
    return (
        f"{order.time_in_force.name} order: no liquidity left at the limit price for the "
        f"remaining {order.leaves_qty} of OrderQty (38) {order.order_qty}"
    )


def _load_compiled() -> tuple[Any, str]:
    """Return the compiled fast paths, configured, or None and why they are not used."""
    # Any value but "" or "0" turns the extensions off, as for the audit writer.
    if os.environ.get("FIXGW_NO_EXTENSIONS", "") not in ("", "0"):
        return None, ""
    try:
        module = importlib.import_module("engine._cengine")
    except ModuleNotFoundError:
        return None, "engine._cengine is not built (no C compiler at install time)"
    except ImportError as exc:
        return None, f"engine._cengine does not load: {exc}"
    from engine.book import BookSide

    module.configure({
        "Order": Order, "PriceLevel": PriceLevel, "BookSide": BookSide, "OrderBook": OrderBook,
        "Instrument": Instrument, "Firm": Firm,
        "ExecutionEvent": ExecutionEvent, "Trade": Trade,
        "NewOrder": NewOrder, "CancelOrder": CancelOrder, "ReplaceOrder": ReplaceOrder,
        "BUY": _BUY, "LIMIT": _LIMIT, "CONTINUOUS": _CONTINUOUS, "DAY": _DAY, "GTC": _GTC,
        "SMP_NONE": _SMP_NONE, "NEW": _NEW, "PARTIALLY_FILLED": _PARTIALLY_FILLED,
        "FILLED": _FILLED, "CANCELED": _CANCELED, "EXEC_NEW": _EXEC_NEW,
        "EXEC_TRADE": _EXEC_TRADE, "EXEC_CANCELED": _EXEC_CANCELED,
        "EXEC_REPLACED": _EXEC_REPLACED,
        "CancelReject": CancelReject, "CXL_REPLACE": CxlRejResponseTo.REPLACE,
        "CXL_OTHER": CxlRejReason.OTHER,
        "SELF_MATCH_INCOMING_TEXT": _SELF_MATCH_INCOMING_TEXT,
    })
    return module, ""


_cengine, _CENGINE_MISSING = _load_compiled()
