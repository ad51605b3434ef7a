"""The limit order book of one instrument, with price-time priority.

Each side is a dict of price levels plus a plain list of the level keys sorted ascending,
the best level last. Bids are keyed by price and asks by the negated price, so on both
sides a higher key is a better price, ``keys[-1]`` is the best level and taking it off
is ``list.pop()``. Inserting a new level is a ``bisect.insort`` into a list of a few
hundred ints, which is cheaper than a balanced tree at the book sizes a venue sees.

A level keeps its orders in an ``OrderedDict`` used as an ordered set: arrival order is
time priority, and appending, cancelling, taking the oldest order and moving an iceberg
to the back are all O(1). An engine with the compiled fast paths gives its books
``engine._cengine.OrderQueue`` instead, which takes the same operations without a node
per order or a dict lookup per change (see :class:`BookSide`).

A plain dict would be about 20 ns cheaper per insert and delete on CPython 3.11, but it is
not O(1) here: deleting from the front leaves dead entries that ``next(iter(d))`` skips
one by one until the dict is resized, so draining a deep level would cost quadratic time.

The book stores orders and answers queries; the engine matches and builds the events,
and tests call :meth:`OrderBook.check` after every command.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Callable, Iterator, MutableMapping
from itertools import islice
from operator import attrgetter
from typing import Any

from engine.errors import EngineInvariantError, OrderNotRestingError
from engine.instrument import Firm, Instrument
from engine.orders import OrdStatus, OrdType, SelfMatchPrevention, Side, TimeInForce, TradingPhase

# Statuses of an order that may rest in a book: ordered and not yet finished.
LIVE_STATUSES = frozenset({OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED})

# Time in force values with which an order may rest in the book.
RESTING_TIME_IN_FORCE = frozenset({TimeInForce.DAY, TimeInForce.GTC, TimeInForce.GTD})

# Reading an enum member from its class costs about 60 ns on CPython 3.11, several times a
# module global, so the per-order code reads these aliases.
_BUY = Side.BUY
_NEW = OrdStatus.NEW
_SMP_NONE = SelfMatchPrevention.NONE


# Each term's value on an order without terms.
TERM_DEFAULTS: dict[str, Any] = {
    "stop_px": None,
    "display_qty": 0,
    "min_qty": 0,
    "post_only": False,
    "expire_time_us": None,
    "expire_date": None,
    "triggered": True,
}


class OrderTerms:
    """The terms of an order that a plain limit order leaves at their defaults.

    StopPx (99) and whether the stop has triggered, the iceberg's display quantity, MinQty
    (110), post-only and the GTD expiry. An :class:`Order` has None in place of these
    until one of them is set to a value other than its default.
    """

    __slots__ = tuple(TERM_DEFAULTS)

    def __init__(self) -> None:
        for name, default in TERM_DEFAULTS.items():
            setattr(self, name, default)


# The terms an ExecutionEvent carries, in its field order, and their values for an order
# without terms.
EVENT_TERMS = ("stop_px", "display_qty", "min_qty", "post_only", "expire_time_us", "expire_date")
PLAIN_EVENT_TERMS = tuple(TERM_DEFAULTS[name] for name in EVENT_TERMS)
_read_event_terms = attrgetter(*EVENT_TERMS)


def event_terms(order: Order) -> tuple[Any, ...]:
    """Return the order's terms in an ExecutionEvent's field order."""
    terms = order.terms
    return PLAIN_EVENT_TERMS if terms is None else _read_event_terms(terms)


def _term(name: str) -> Any:
    """Return a property of Order that reads and writes the term ``name`` in ``Order.terms``."""
    default = TERM_DEFAULTS[name]
    read = attrgetter(name)

    def get(order: Order) -> Any:
        terms = order.terms
        return default if terms is None else read(terms)

    def set_(order: Order, value: Any) -> None:
        terms = order.terms
        if terms is None:
            if type(value) is type(default) and value == default:
                return
            terms = order.terms = OrderTerms()
        setattr(terms, name, value)

    return property(get, set_, doc=f"The order's {name}; {default!r} when it has no terms.")


class Order:
    """An order the engine has received, with its current state.

    Rejected and finished orders keep their last state, so status requests and late
    cancels still find them. ``leaves_qty`` is ``order_qty - cum_qty`` while the order
    is live and 0 once it is filled, cancelled, expired or rejected.

    ``visible_qty`` is the part of ``leaves_qty`` shown in the book: all of it, except for
    an iceberg (``display_qty`` above 0), which shows at most ``display_qty``. ``seq`` is
    the time priority, assigned each time the order joins the back of a price level or
    the stop book, and 0 once it has left them. ``num`` is the order's arrival number,
    the order of reports when many orders change at once: the digits that end the
    OrderID (37), as the engine numbers its orders. ``self_match`` is the
    self-match prevention of the order's firm, None when it is off. ``triggered`` is
    False for a stop order still waiting for its StopPx (99).

    The engine keeps every order of the day in memory, so an order keeps only what it
    needs. The terms most orders leave at their defaults live in ``terms``, None until
    one is set. ``num`` is read from the OrderID, and an order that leaves the book gives
    up its ``seq``. A plain limit order then takes 64 bytes less, and two int objects
    fewer, than with every field in a slot of its own.
    """

    __slots__ = (
        "order_id",
        "session_id",
        "cl_ord_id",
        "symbol",
        "side",
        "ord_type",
        "time_in_force",
        "price",
        "order_qty",
        "cum_qty",
        "leaves_qty",
        "visible_qty",
        "cum_notional",
        "ord_status",
        "account",
        "seq",
        "terms",
        "firm",
    )

    def __init__(
        self,
        order_id: str,
        session_id: str,
        cl_ord_id: str,
        symbol: str,
        side: Side,
        ord_type: OrdType,
        time_in_force: TimeInForce,
        price: int | None,
        order_qty: int,
        account: str = "",
    ) -> None:
        self.order_id = order_id
        self.session_id = session_id
        self.cl_ord_id = cl_ord_id
        self.symbol = symbol
        self.side = side
        self.ord_type = ord_type
        self.time_in_force = time_in_force
        self.price = price
        self.order_qty = order_qty
        self.cum_qty = 0
        self.leaves_qty = order_qty
        self.visible_qty = order_qty
        # Sum of last_px * last_qty over the fills, so AvgPx (6) is cum_notional / cum_qty.
        self.cum_notional = 0
        self.ord_status = _NEW
        self.account = account
        self.seq = 0
        self.terms: OrderTerms | None = None
        self.firm: Firm | None = None

    stop_px = _term("stop_px")
    display_qty = _term("display_qty")
    min_qty = _term("min_qty")
    post_only = _term("post_only")
    expire_time_us = _term("expire_time_us")
    expire_date = _term("expire_date")
    triggered = _term("triggered")

    @property
    def num(self) -> int:
        order_id = self.order_id
        return int(order_id[len(order_id.rstrip("0123456789")):])

    @property
    def self_match(self) -> SelfMatchPrevention | None:
        firm = self.firm
        if firm is None or firm.self_match_prevention is _SMP_NONE:
            return None
        return firm.self_match_prevention

    def __repr__(self) -> str:
        return (
            f"Order({self.order_id!r}, {self.session_id!r}, cl_ord_id={self.cl_ord_id!r}, "
            f"{self.symbol!r}, {self.side.name}, {self.ord_type.name}, price={self.price!r}, "
            f"order_qty={self.order_qty}, cum_qty={self.cum_qty}, "
            f"leaves_qty={self.leaves_qty}, visible_qty={self.visible_qty}, "
            f"{self.ord_status.name}, seq={self.seq})"
        )

    def show_next_slice(self) -> None:
        """Set ``visible_qty`` to the next iceberg slice, or to all of ``leaves_qty``."""
        display_qty = self.display_qty
        leaves_qty = self.leaves_qty
        self.visible_qty = display_qty if 0 < display_qty < leaves_qty else leaves_qty


class PriceLevel:
    """The orders resting at one price on one side, oldest first.

    ``total_qty`` is the sum of visible_qty, the quantity market data shows, and
    ``leaves_qty`` the sum of leaves_qty, hidden iceberg reserves included. Both are kept
    up to date so that BBO, depth and fillable quantity never walk the orders.
    """

    __slots__ = ("price", "total_qty", "leaves_qty", "orders")

    def __init__(self, price: int, orders: MutableMapping[Order, None] | None = None) -> None:
        self.price = price
        self.total_qty = 0
        self.leaves_qty = 0
        # An empty OrderedDict, or an empty mapping with the OrderedDict operations the
        # engine uses: the book side's queue type.
        self.orders: MutableMapping[Order, None] = OrderedDict() if orders is None else orders


class BookSide:
    """The levels of one side, keyed so that a higher key is a better price.

    ``queue_type`` makes each new level's ordered set of orders: ``OrderedDict``, or a
    class with the same operations (``q[order] = None``, ``del q[order]``, ``in``,
    ``len``, iteration oldest first, ``popitem(last=False)`` and ``move_to_end``).
    """

    __slots__ = ("side", "sign", "keys", "levels", "queue_type")

    def __init__(
        self, side: Side, queue_type: Callable[[], MutableMapping[Order, None]] = OrderedDict
    ) -> None:
        self.side = side
        self.queue_type = queue_type
        # key = sign * price: bids by price, asks by negated price.
        self.sign = 1 if side is _BUY else -1
        self.keys: list[int] = []
        self.levels: dict[int, PriceLevel] = {}

    def best(self) -> PriceLevel | None:
        """Return the best level, or None when the side is empty."""
        keys = self.keys
        return self.levels[keys[-1]] if keys else None

    def in_priority(self) -> Iterator[PriceLevel]:
        """Yield the levels best first."""
        levels = self.levels
        for key in reversed(self.keys):
            yield levels[key]

    def add(self, order: Order) -> None:
        """Rest ``order`` at the back of the level at its price."""
        key = self.sign * order.price  # type: ignore[operator]
        level = self.levels.get(key)
        if level is None:
            level = self.levels[key] = PriceLevel(order.price, self.queue_type())  # type: ignore[arg-type]
            keys = self.keys
            if not keys or key > keys[-1]:
                keys.append(key)
            else:
                insort(keys, key)
        level.orders[order] = None
        level.total_qty += order.visible_qty
        level.leaves_qty += order.leaves_qty

    def remove(self, order: Order) -> None:
        """Take a resting order out of its level, leaving the order's state unchanged."""
        key = self.sign * order.price  # type: ignore[operator]
        level = self.levels.get(key)
        if level is None or order not in level.orders:
            raise OrderNotRestingError(
                f"order {order.order_id} ({order.side.name} at {order.price!r}) does not "
                f"rest in its book"
            )
        del level.orders[order]
        level.total_qty -= order.visible_qty
        level.leaves_qty -= order.leaves_qty
        if not level.orders:
            self.drop_level(key)

    def drop_level(self, key: int) -> None:
        """Remove the empty level at ``key``."""
        del self.levels[key]
        keys = self.keys
        if keys[-1] == key:
            keys.pop()
        else:
            del keys[bisect_left(keys, key)]

    def level_of(self, order: Order) -> PriceLevel:
        """Return the level ``order`` rests in, or raise OrderNotRestingError."""
        level = self.levels.get(self.sign * order.price)  # type: ignore[operator]
        if level is None or order not in level.orders:
            raise OrderNotRestingError(
                f"order {order.order_id} ({order.side.name} at {order.price!r}) does not "
                f"rest in its book"
            )
        return level

    def depth(self, levels: int) -> list[tuple[int, int]]:
        """Return up to ``levels`` (price, visible quantity) pairs, best first."""
        return [(level.price, level.total_qty) for level in islice(self.in_priority(), levels)]


class OrderBook:
    """The bids, asks and waiting stop orders of one instrument, and its trading state.

    Prices are integers in units of ``PRICE_SCALE``. ``last_px`` and ``last_qty`` are the
    last trade, None and 0 before the first one.
    """

    __slots__ = ("instrument", "symbol", "bids", "asks", "phase", "last_px", "last_qty", "stops")

    def __init__(
        self,
        instrument: Instrument,
        queue_type: Callable[[], MutableMapping[Order, None]] = OrderedDict,
    ) -> None:
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.bids = BookSide(Side.BUY, queue_type)
        self.asks = BookSide(Side.SELL, queue_type)
        self.phase = instrument.initial_phase
        self.last_px: int | None = None
        self.last_qty = 0
        # Stop orders waiting for their StopPx (99), by arrival number.
        self.stops: dict[int, Order] = {}

    def __repr__(self) -> str:
        return (
            f"OrderBook({self.symbol!r}, {self.phase.name}, bid={self.best_bid()!r}, "
            f"ask={self.best_ask()!r})"
        )

    # Queries.

    def best_bid(self) -> tuple[int, int] | None:
        """Return the highest bid as (price, visible quantity at that price), or None."""
        level = self.bids.best()
        return None if level is None else (level.price, level.total_qty)

    def best_ask(self) -> tuple[int, int] | None:
        """Return the lowest ask as (price, visible quantity at that price), or None."""
        level = self.asks.best()
        return None if level is None else (level.price, level.total_qty)

    def depth(self, levels: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Return up to ``levels`` (price, visible quantity) pairs per side, best first."""
        if levels < 0:
            raise ValueError(f"levels must be 0 or more, got {levels!r}")
        return self.bids.depth(levels), self.asks.depth(levels)

    def orders(self) -> Iterator[Order]:
        """Yield every resting order: bids best level first, then asks, oldest first in a level."""
        for side in (self.bids, self.asks):
            for level in side.in_priority():
                yield from level.orders

    def side(self, side: Side) -> BookSide:
        """Return the levels of ``side``."""
        return self.bids if side is _BUY else self.asks

    def is_crossed(self) -> bool:
        """True when the best bid is at or above the best ask."""
        bid, ask = self.bids.best(), self.asks.best()
        return bid is not None and ask is not None and bid.price >= ask.price

    def fillable_qty(self, order: Order, limit_price: int | None) -> int:
        """Return how much of ``order`` could fill now at ``limit_price`` or better.

        ``limit_price`` None means any price. Hidden iceberg quantity counts, because the
        reserve refreshes into the same level. With self-match prevention, orders of the
        same firm do not count, and when the incoming order would be cancelled at the
        first of them, nothing behind it counts either.
        """
        opposite = self.asks if order.side is _BUY else self.bids
        limit_key = None if limit_price is None else opposite.sign * limit_price
        wanted = order.leaves_qty
        available = 0
        for level in opposite.in_priority():
            if limit_key is not None and opposite.sign * level.price < limit_key:
                break
            if order.self_match is None:
                available += level.leaves_qty
            elif order.self_match is SelfMatchPrevention.CANCEL_RESTING:
                available += sum(o.leaves_qty for o in level.orders if o.firm is not order.firm)
            else:
                reachable, stopped = _reachable_before_own_firm(level, order.firm)
                available += reachable
                if stopped:
                    return min(available, wanted)
            if available >= wanted:
                return wanted
        return available

    # Invariants.

    def check(self) -> None:
        """Raise EngineInvariantError if the book's structure or cached totals are wrong.

        A book may be crossed only in a call phase or a halt, before the uncross.
        """
        for side in (self.bids, self.asks):
            self._check_side(side)
        crossed_allowed = self.phase.is_call or self.phase is TradingPhase.HALTED
        if not crossed_allowed and self.is_crossed():
            raise EngineInvariantError(
                f"{self.symbol} book is crossed in {self.phase.name}: best bid "
                f"{self.best_bid()} >= best ask {self.best_ask()}"
            )
        for num, order in self.stops.items():
            if order.num != num or order.triggered or order.ord_status is not _NEW:
                raise EngineInvariantError(
                    f"{self.symbol} stop book contains {order!r} under arrival number {num}"
                )

    def _check_side(self, side: BookSide) -> None:
        keys = side.keys
        if any(a >= b for a, b in zip(keys, keys[1:])):
            raise EngineInvariantError(f"{self.symbol} {side.side.name} keys are not sorted: {keys}")
        if set(keys) != set(side.levels) or len(keys) != len(side.levels):
            raise EngineInvariantError(
                f"{self.symbol} {side.side.name} keys {keys} differ from the levels "
                f"{sorted(side.levels)}"
            )
        for key, level in side.levels.items():
            if key != side.sign * level.price:
                raise EngineInvariantError(
                    f"{self.symbol} {side.side.name} level {level.price} is stored under key "
                    f"{key}, expected {side.sign * level.price}"
                )
            self._check_level(side.side, level)

    def _check_level(self, side: Side, level: PriceLevel) -> None:
        where = f"{self.symbol} {side.name} level {level.price}"
        if not level.orders:
            raise EngineInvariantError(f"{where} is empty but still in the book")

        previous_seq = 0
        for order in level.orders:
            _check_resting_order(order, where, self.symbol, side, level.price)
            if order.seq <= previous_seq:
                raise EngineInvariantError(
                    f"{where}: order {order.order_id} has seq {order.seq} after seq "
                    f"{previous_seq}, so the level is not in time priority"
                )
            previous_seq = order.seq

        visible = sum(order.visible_qty for order in level.orders)
        leaves = sum(order.leaves_qty for order in level.orders)
        if (level.total_qty, level.leaves_qty) != (visible, leaves):
            raise EngineInvariantError(
                f"{where}: cached total_qty {level.total_qty} and leaves_qty "
                f"{level.leaves_qty} != sums {visible} and {leaves} over the orders"
            )


def _reachable_before_own_firm(level: PriceLevel, firm: Firm | None) -> tuple[int, bool]:
    """Return what an order of ``firm`` fills from ``level`` before it meets its own firm.

    The second value is True when an order of ``firm`` rests in the level. An iceberg
    ahead of it then gives only its visible slice, because its next slice joins the
    back of the level, behind the order of the same firm.
    """
    visible = 0
    for resting in level.orders:
        if resting.firm is firm:
            return visible, True
        visible += resting.visible_qty
    return level.leaves_qty, False


def _check_resting_order(order: Order, where: str, symbol: str, side: Side, price: int) -> None:
    """Raise EngineInvariantError if ``order`` cannot rest at this level."""
    problems = []
    if order.symbol != symbol:
        problems.append(f"symbol {order.symbol!r}")
    if order.side is not side:
        problems.append(f"side {order.side.name}")
    if order.price != price:
        problems.append(f"price {order.price!r}")
    if order.ord_type not in (OrdType.LIMIT, OrdType.STOP_LIMIT) or not order.triggered:
        problems.append(f"ord_type {order.ord_type.name}, triggered {order.triggered}")
    if order.time_in_force not in RESTING_TIME_IN_FORCE:
        problems.append(f"time_in_force {order.time_in_force.name}")
    if order.leaves_qty <= 0 or order.leaves_qty != order.order_qty - order.cum_qty:
        problems.append(
            f"leaves_qty {order.leaves_qty} with order_qty {order.order_qty} "
            f"and cum_qty {order.cum_qty}"
        )
    expected_visible = order.leaves_qty
    if 0 < order.display_qty < order.leaves_qty:
        expected_visible = order.display_qty
    if not 0 < order.visible_qty <= expected_visible:
        problems.append(
            f"visible_qty {order.visible_qty} with display_qty {order.display_qty} "
            f"and leaves_qty {order.leaves_qty}"
        )
    expected_status = OrdStatus.PARTIALLY_FILLED if order.cum_qty else OrdStatus.NEW
    if order.ord_status is not expected_status:
        problems.append(f"ord_status {order.ord_status.name} with cum_qty {order.cum_qty}")
    if problems:
        raise EngineInvariantError(
            f"{where}: resting order {order.order_id} has " + ", ".join(problems)
        )
