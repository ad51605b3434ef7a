"""OrderBook: resting, removing, amending and matching orders, and its invariant checker."""

from __future__ import annotations

import itertools

import pytest

from engine import EngineInvariantError, OrderBook, OrderNotRestingError
from engine.book import Order
from engine.orders import OrdStatus, OrdType, Side, TimeInForce

_order_numbers = itertools.count(1)
_seqs = itertools.count(1)


def make_order(side: Side, price: int, qty: int, symbol: str = "AAA") -> Order:
    number = next(_order_numbers)
    order = Order(
        f"O{number}", "S1", f"C{number}", symbol, side, OrdType.LIMIT, TimeInForce.DAY, price, qty
    )
    order.seq = next(_seqs)
    return order


def rest(book: OrderBook, side: Side, price: int, qty: int) -> Order:
    order = make_order(side, price, qty, book.symbol)
    book.add(order)
    book.check()
    return order


@pytest.fixture
def book() -> OrderBook:
    return OrderBook("AAA")


def test_empty_book(book: OrderBook) -> None:
    assert book.best_bid() is None
    assert book.best_ask() is None
    assert book.depth(5) == ([], [])
    assert list(book.orders()) == []
    book.check()


def test_best_prices_and_totals(book: OrderBook) -> None:
    rest(book, Side.BUY, 99, 10)
    rest(book, Side.BUY, 100, 5)
    rest(book, Side.BUY, 100, 7)
    rest(book, Side.SELL, 102, 3)
    rest(book, Side.SELL, 101, 4)

    assert book.best_bid() == (100, 12)
    assert book.best_ask() == (101, 4)


def test_depth_best_first(book: OrderBook) -> None:
    for price in (97, 99, 98):
        rest(book, Side.BUY, price, price - 90)
    for price in (103, 101, 102):
        rest(book, Side.SELL, price, price - 100)

    assert book.depth(2) == ([(99, 9), (98, 8)], [(101, 1), (102, 2)])
    assert book.depth(10) == ([(99, 9), (98, 8), (97, 7)], [(101, 1), (102, 2), (103, 3)])
    assert book.depth(0) == ([], [])


def test_depth_negative_levels(book: OrderBook) -> None:
    with pytest.raises(ValueError, match="levels must be 0 or more, got -1"):
        book.depth(-1)


def test_orders_in_priority_order(book: OrderBook) -> None:
    first = rest(book, Side.BUY, 100, 1)
    better = rest(book, Side.BUY, 101, 1)
    second = rest(book, Side.BUY, 100, 1)
    ask = rest(book, Side.SELL, 105, 1)

    assert list(book.orders()) == [better, first, second, ask]


def test_remove_keeps_other_orders(book: OrderBook) -> None:
    first = rest(book, Side.SELL, 101, 5)
    middle = rest(book, Side.SELL, 101, 6)
    last = rest(book, Side.SELL, 101, 7)

    book.remove(middle)
    book.check()

    assert book.best_ask() == (101, 12)
    assert list(book.orders()) == [first, last]


def test_remove_last_order_drops_level(book: OrderBook) -> None:
    order = rest(book, Side.BUY, 100, 5)
    rest(book, Side.BUY, 99, 5)

    book.remove(order)
    book.check()

    assert book.depth(5) == ([(99, 5)], [])


def test_remove_order_not_in_book(book: OrderBook) -> None:
    rest(book, Side.BUY, 100, 5)
    stranger = make_order(Side.BUY, 100, 5)

    with pytest.raises(OrderNotRestingError, match=f"order {stranger.order_id} .* 'AAA' book"):
        book.remove(stranger)


def test_amend_qty_keeps_priority(book: OrderBook) -> None:
    first = rest(book, Side.BUY, 100, 10)
    second = rest(book, Side.BUY, 100, 10)

    book.amend_qty(first, 4)
    book.check()

    assert first.order_qty == 4
    assert first.leaves_qty == 4
    assert book.best_bid() == (100, 14)
    fills = book.match(Side.SELL, 100, 5)
    assert fills == [(first, 4), (second, 1)]


@pytest.mark.parametrize("order_qty", [11, 3, 0])
def test_amend_qty_invalid(book: OrderBook, order_qty: int) -> None:
    order = rest(book, Side.SELL, 100, 10)
    book.match(Side.BUY, 100, 3)

    with pytest.raises(ValueError, match=f"got {order_qty}"):
        book.amend_qty(order, order_qty)


def test_match_price_then_time(book: OrderBook) -> None:
    first_best = rest(book, Side.SELL, 100, 5)
    worse = rest(book, Side.SELL, 101, 5)
    second_best = rest(book, Side.SELL, 100, 5)

    fills = book.match(Side.BUY, 101, 12)
    book.check()

    assert fills == [(first_best, 5), (second_best, 5), (worse, 2)]
    assert book.best_ask() == (101, 3)


def test_match_stops_at_limit(book: OrderBook) -> None:
    near = rest(book, Side.BUY, 100, 5)
    rest(book, Side.BUY, 98, 5)

    fills = book.match(Side.SELL, 99, 20)
    book.check()

    assert fills == [(near, 5)]
    assert book.depth(5) == ([(98, 5)], [])


def test_match_market_takes_every_level(book: OrderBook) -> None:
    for price in (100, 110, 120):
        rest(book, Side.SELL, price, 1)

    fills = book.match(Side.BUY, None, 10)
    book.check()

    assert [order.price for order, _ in fills] == [100, 110, 120]
    assert book.best_ask() is None


def test_match_updates_resting_state(book: OrderBook) -> None:
    full = rest(book, Side.SELL, 100, 4)
    partial = rest(book, Side.SELL, 100, 10)

    book.match(Side.BUY, 100, 7)
    book.check()

    assert (full.ord_status, full.cum_qty, full.leaves_qty) == (OrdStatus.FILLED, 4, 0)
    assert full.cum_notional == 400
    assert (partial.ord_status, partial.cum_qty, partial.leaves_qty) == (
        OrdStatus.PARTIALLY_FILLED,
        3,
        7,
    )
    assert list(book.orders()) == [partial]


def test_match_no_cross_leaves_book(book: OrderBook) -> None:
    rest(book, Side.SELL, 101, 5)

    assert book.match(Side.BUY, 100, 5) == []
    assert book.best_ask() == (101, 5)


def test_match_drains_long_level(book: OrderBook) -> None:
    orders = [rest(book, Side.BUY, 100, 1) for _ in range(500)]

    taken = [book.match(Side.SELL, 100, 1)[0][0] for _ in range(499)]
    book.check()

    assert taken == orders[:499]
    assert list(book.orders()) == orders[499:]


@pytest.mark.parametrize(
    ("side", "limit_price", "qty", "expected"),
    [
        (Side.BUY, 101, 100, 15),
        (Side.BUY, 101, 12, 12),
        (Side.BUY, 100, 100, 5),
        (Side.BUY, 99, 100, 0),
        (Side.BUY, None, 100, 35),
        (Side.SELL, 98, 100, 9),
        (Side.SELL, 97, 100, 11),
        (Side.SELL, None, 3, 3),
    ],
)
def test_fillable_qty(
    book: OrderBook, side: Side, limit_price: int | None, qty: int, expected: int
) -> None:
    rest(book, Side.SELL, 100, 5)
    rest(book, Side.SELL, 101, 10)
    rest(book, Side.SELL, 105, 20)
    rest(book, Side.BUY, 98, 9)
    rest(book, Side.BUY, 97, 2)

    assert book.fillable_qty(side, limit_price, qty) == expected
    assert book.depth(5) == ([(98, 9), (97, 2)], [(100, 5), (101, 10), (105, 20)])


def test_check_cached_total(book: OrderBook) -> None:
    rest(book, Side.BUY, 100, 5)
    book._bids.peekitem(0)[1].total_qty = 7

    with pytest.raises(EngineInvariantError, match="cached total_qty 7 != sum of leaves_qty 5"):
        book.check()


def test_check_crossed_book(book: OrderBook) -> None:
    rest(book, Side.BUY, 100, 5)
    book.add(make_order(Side.SELL, 100, 5))

    with pytest.raises(EngineInvariantError, match="crossed: best bid 100 >= best ask 100"):
        book.check()


def test_check_time_priority(book: OrderBook) -> None:
    first = rest(book, Side.SELL, 100, 5)
    second = rest(book, Side.SELL, 100, 5)
    first.seq, second.seq = second.seq, first.seq

    with pytest.raises(EngineInvariantError, match="not in time priority"):
        book.check()


def test_check_finished_order_resting(book: OrderBook) -> None:
    order = rest(book, Side.SELL, 100, 5)
    order.ord_status = OrdStatus.CANCELED

    with pytest.raises(EngineInvariantError, match=f"resting order {order.order_id} has"):
        book.check()


def test_check_leaves_qty(book: OrderBook) -> None:
    order = rest(book, Side.BUY, 100, 5)
    order.cum_qty = 1

    with pytest.raises(EngineInvariantError, match="leaves_qty 5 with order_qty 5 and cum_qty 1"):
        book.check()


def test_check_wrong_symbol(book: OrderBook) -> None:
    book.add(make_order(Side.BUY, 100, 5, symbol="BBB"))

    with pytest.raises(EngineInvariantError, match="symbol 'BBB'"):
        book.check()
