"""The limit order book of one instrument, with price-time priority.

Each side is a ``SortedDict`` of price levels. Asks are keyed by price and bids by the
negated price, so on both sides the first key is the best level and a walk from the front
visits levels in matching order. A level keeps its orders in an ``OrderedDict`` used as an
ordered set: arrival order is time priority, and appending, cancelling and taking the oldest
order are all O(1).

The book stores and matches orders; it does not validate them or build events. The engine
does both, and it calls :meth:`OrderBook.check` in tests after every command.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from itertools import islice

from sortedcontainers import SortedDict

from engine.errors import EngineInvariantError, OrderNotRestingError
from engine.orders import OrdStatus, OrdType, Side, TimeInForce

# Statuses of an order that may rest in a book: ordered and not yet finished.
LIVE_STATUSES = frozenset({OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED})

# Reading an enum member from its class costs about 60 ns on CPython 3.11, several times a
# module global, so the per-order code reads these aliases.
_BUY = Side.BUY
_NEW = OrdStatus.NEW
_PARTIALLY_FILLED = OrdStatus.PARTIALLY_FILLED
_FILLED = OrdStatus.FILLED

# One match against a resting order: the order and the quantity taken from it.
Fill = tuple["Order", int]


class Order:
    """An order the engine has received, with its current state.

    Rejected and finished orders keep their last state, so status requests and late
    cancels still find them. ``leaves_qty`` is ``order_qty - cum_qty`` while the order
    is live and 0 once it is filled, cancelled or rejected. ``seq`` is the time priority:
    it is assigned each time the order joins the back of a price level.
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
        "cum_notional",
        "ord_status",
        "account",
        "seq",
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
        # Sum of last_px * last_qty over the fills, so AvgPx (6) is cum_notional / cum_qty.
        self.cum_notional = 0
        self.ord_status = _NEW
        self.account = account
        self.seq = 0

    def __repr__(self) -> str:
        return (
            f"Order({self.order_id!r}, {self.session_id!r}, cl_ord_id={self.cl_ord_id!r}, "
            f"{self.symbol!r}, {self.side.name}, price={self.price!r}, "
            f"order_qty={self.order_qty}, cum_qty={self.cum_qty}, "
            f"leaves_qty={self.leaves_qty}, {self.ord_status.name}, seq={self.seq})"
        )


class PriceLevel:
    """The orders resting at one price on one side, oldest first."""

    __slots__ = ("price", "total_qty", "orders")

    def __init__(self, price: int) -> None:
        self.price = price
        # Sum of leaves_qty over the orders, kept up to date so that BBO and depth are O(1).
        self.total_qty = 0
        self.orders: OrderedDict[Order, None] = OrderedDict()

    def fill(self, qty: int, fills: list[Fill]) -> int:
        """Take up to ``qty`` from the oldest orders, append the fills and return what is left.

        Filled orders leave the level. A partly filled order keeps its place at the front.
        """
        price = self.price
        filled_count = 0
        for order in self.orders:
            take = order.leaves_qty if order.leaves_qty <= qty else qty
            order.cum_qty += take
            order.leaves_qty -= take
            order.cum_notional += take * price
            fills.append((order, take))
            self.total_qty -= take
            qty -= take
            if order.leaves_qty:
                order.ord_status = _PARTIALLY_FILLED
                break
            order.ord_status = _FILLED
            filled_count += 1
            if not qty:
                break

        # Filled orders are a prefix of the level, so they come off the front.
        popitem = self.orders.popitem
        for _ in range(filled_count):
            popitem(last=False)
        return qty


class OrderBook:
    """The bids and asks of one instrument, matched by price, then time.

    Prices are integers in units of ``PRICE_SCALE``. All quantity is visible, because the
    book has no iceberg orders.
    """

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self._bids: SortedDict[int, PriceLevel] = SortedDict()  # keyed by -price
        self._asks: SortedDict[int, PriceLevel] = SortedDict()  # keyed by price

    def __repr__(self) -> str:
        return f"OrderBook({self.symbol!r}, bid={self.best_bid()!r}, ask={self.best_ask()!r})"

    # Queries.

    def best_bid(self) -> tuple[int, int] | None:
        """Return the highest bid as (price, total quantity at that price), or None."""
        if not self._bids:
            return None
        level = self._bids.peekitem(0)[1]
        return level.price, level.total_qty

    def best_ask(self) -> tuple[int, int] | None:
        """Return the lowest ask as (price, total quantity at that price), or None."""
        if not self._asks:
            return None
        level = self._asks.peekitem(0)[1]
        return level.price, level.total_qty

    def depth(self, levels: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Return up to ``levels`` (price, quantity) pairs per side: bids, then asks, best first."""
        if levels < 0:
            raise ValueError(f"levels must be 0 or more, got {levels!r}")
        bids = [(level.price, level.total_qty) for level in islice(self._bids.values(), levels)]
        asks = [(level.price, level.total_qty) for level in islice(self._asks.values(), levels)]
        return bids, asks

    def orders(self) -> Iterator[Order]:
        """Yield every resting order: bids best level first, then asks, oldest first in a level."""
        for side in (self._bids, self._asks):
            for level in side.values():
                yield from level.orders

    def fillable_qty(self, side: Side, limit_price: int | None, qty: int) -> int:
        """Return how much of ``qty`` an order on ``side`` could fill now, without filling it.

        ``limit_price`` None means a market order, which accepts any price.
        """
        levels, key_limit = self._opposite(side, limit_price)
        available = 0
        for key, level in levels.items():
            if key_limit is not None and key > key_limit:
                break
            available += level.total_qty
            if available >= qty:
                return qty
        return available

    # Changes, made by the engine.

    def add(self, order: Order) -> None:
        """Rest ``order`` at the back of the level at its price."""
        if order.side is _BUY:
            levels, key = self._bids, -order.price  # type: ignore[operator]
        else:
            levels, key = self._asks, order.price
        level = levels.get(key)
        if level is None:
            level = levels[key] = PriceLevel(order.price)  # type: ignore[arg-type]
        level.orders[order] = None
        level.total_qty += order.leaves_qty

    def remove(self, order: Order) -> None:
        """Take a resting order out of the book, leaving its state unchanged."""
        levels, key, level = self._level_of(order)
        del level.orders[order]
        level.total_qty -= order.leaves_qty
        if not level.orders:
            del levels[key]

    def amend_qty(self, order: Order, order_qty: int) -> None:
        """Lower or keep the OrderQty (38) of a resting order without changing its time priority."""
        leaves_qty = order_qty - order.cum_qty
        if not 0 < leaves_qty <= order.leaves_qty:
            raise ValueError(
                f"amend_qty accepts an order_qty above cum_qty {order.cum_qty} and at most "
                f"order_qty {order.order_qty} of order {order.order_id}, got {order_qty!r}; "
                f"remove and add the order to change it otherwise"
            )
        level = self._level_of(order)[2]
        level.total_qty -= order.leaves_qty - leaves_qty
        order.order_qty = order_qty
        order.leaves_qty = leaves_qty

    def match(self, side: Side, limit_price: int | None, qty: int) -> list[Fill]:
        """Fill up to ``qty`` for an incoming order on ``side`` and return the fills in order.

        Resting orders trade at their own price, best level first and oldest first within a
        level. ``limit_price`` None means a market order. Filled resting orders leave the
        book with OrdStatus (39) FILLED; the incoming order itself is not changed.
        """
        levels, key_limit = self._opposite(side, limit_price)
        fills: list[Fill] = []
        while qty and levels:
            key, level = levels.peekitem(0)
            if key_limit is not None and key > key_limit:
                break
            qty = level.fill(qty, fills)
            if not level.orders:
                del levels[key]
        return fills

    def _opposite(
        self, side: Side, limit_price: int | None
    ) -> tuple[SortedDict[int, PriceLevel], int | None]:
        """Return the levels an order on ``side`` trades against and its limit as a key."""
        if side is _BUY:
            return self._asks, limit_price
        return self._bids, None if limit_price is None else -limit_price

    def _level_of(self, order: Order) -> tuple[SortedDict[int, PriceLevel], int, PriceLevel]:
        if order.side is _BUY:
            levels, key = self._bids, -order.price  # type: ignore[operator]
        else:
            levels, key = self._asks, order.price
        level = levels.get(key)
        if level is None or order not in level.orders:
            raise OrderNotRestingError(
                f"order {order.order_id} ({order.side.name} at {order.price!r}) does not "
                f"rest in the {self.symbol!r} book"
            )
        return levels, key, level  # type: ignore[return-value]

    # Invariants.

    def check(self) -> None:
        """Raise EngineInvariantError if the book's structure or cached totals are wrong."""
        for side, levels, sign in ((Side.BUY, self._bids, -1), (Side.SELL, self._asks, 1)):
            for key, level in levels.items():
                if key != sign * level.price:
                    raise EngineInvariantError(
                        f"{self.symbol} {side.name} level {level.price} is stored under key "
                        f"{key}, expected {sign * level.price}"
                    )
                self._check_level(side, level)

        bid, ask = self.best_bid(), self.best_ask()
        if bid is not None and ask is not None and bid[0] >= ask[0]:
            raise EngineInvariantError(
                f"{self.symbol} book is crossed: best bid {bid[0]} >= best ask {ask[0]}"
            )

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

        total = sum(order.leaves_qty for order in level.orders)
        if level.total_qty != total:
            raise EngineInvariantError(
                f"{where}: cached total_qty {level.total_qty} != sum of leaves_qty {total}"
            )


def _check_resting_order(order: Order, where: str, symbol: str, side: Side, price: int) -> None:
    """Raise EngineInvariantError if ``order`` cannot rest at this level."""
    problems = []
    if order.symbol != symbol:
        problems.append(f"symbol {order.symbol!r}")
    if order.side is not side:
        problems.append(f"side {order.side.name}")
    if order.price != price:
        problems.append(f"price {order.price!r}")
    if order.ord_type is not OrdType.LIMIT:
        problems.append(f"ord_type {order.ord_type.name}")
    if order.time_in_force not in (TimeInForce.DAY, TimeInForce.GTC):
        problems.append(f"time_in_force {order.time_in_force.name}")
    if order.ord_status not in LIVE_STATUSES:
        problems.append(f"ord_status {order.ord_status.name}")
    if order.leaves_qty <= 0 or order.leaves_qty != order.order_qty - order.cum_qty:
        problems.append(
            f"leaves_qty {order.leaves_qty} with order_qty {order.order_qty} "
            f"and cum_qty {order.cum_qty}"
        )
    expected_status = OrdStatus.PARTIALLY_FILLED if order.cum_qty else OrdStatus.NEW
    if order.ord_status is not expected_status:
        problems.append(f"ord_status {order.ord_status.name} with cum_qty {order.cum_qty}")
    if problems:
        raise EngineInvariantError(
            f"{where}: resting order {order.order_id} has " + ", ".join(problems)
        )
