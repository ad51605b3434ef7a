"""OrderBook and BookSide: resting and removing orders, queries, and the invariant checker.

Matching lives in the engine (tests/engine/test_engine.py); these tests drive the book's
own structure directly.
"""

from __future__ import annotations

import itertools

import pytest

from engine import (
    EngineInvariantError, Firm, Instrument, OrderBook, OrderNotRestingError, SelfMatchPrevention,
    TradingPhase,
)
from engine.book import TERM_DEFAULTS, Order
from engine.orders import OrdStatus, OrdType, Side, TimeInForce

_order_numbers = itertools.count(1)
_seqs = itertools.count(1)


def make_order(side: Side, price: int, qty: int, symbol: str = "AAA", display_qty: int = 0) -> Order:
    number = next(_order_numbers)
    order = Order(
        f"O{number}", "S1", f"C{number}", symbol, side, OrdType.LIMIT,
        TimeInForce.DAY, price, qty,
    )
    order.seq = next(_seqs)
    if display_qty:
        order.display_qty = display_qty
        order.show_next_slice()
    return order


def rest(book: OrderBook, side: Side, price: int, qty: int, display_qty: int = 0) -> Order:
    order = make_order(side, price, qty, book.symbol, display_qty)
    book.side(side).add(order)
    book.check()
    return order


@pytest.fixture
def book() -> OrderBook:
    return OrderBook(Instrument("AAA"))


def test_empty_book(book: OrderBook) -> None:
    assert book.best_bid() is None
    assert book.best_ask() is None
    assert book.depth(5) == ([], [])
    assert list(book.orders()) == []
    assert not book.is_crossed()
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


def test_depth_negative_levels(book: OrderBook) -> None:
    with pytest.raises(ValueError, match="levels must be 0 or more, got -1"):
        book.depth(-1)


def test_iceberg_shows_slice(book: OrderBook) -> None:
    iceberg = rest(book, Side.SELL, 101, 50, display_qty=10)
    rest(book, Side.SELL, 101, 4)

    assert iceberg.visible_qty == 10
    assert book.best_ask() == (101, 14)
    assert book.asks.best().leaves_qty == 54  # type: ignore[union-attr]


def test_orders_in_priority_order(book: OrderBook) -> None:
    first = rest(book, Side.BUY, 100, 1)
    second = rest(book, Side.BUY, 100, 2)
    better = rest(book, Side.BUY, 101, 3)
    ask = rest(book, Side.SELL, 105, 4)

    assert list(book.orders()) == [better, first, second, ask]


def test_remove_keeps_other_orders(book: OrderBook) -> None:
    first = rest(book, Side.SELL, 101, 5)
    second = rest(book, Side.SELL, 101, 6)

    book.asks.remove(first)
    book.check()

    assert list(book.orders()) == [second]
    assert book.best_ask() == (101, 6)


def test_remove_last_order_drops_level(book: OrderBook) -> None:
    order = rest(book, Side.BUY, 100, 5)
    rest(book, Side.BUY, 99, 5)

    book.bids.remove(order)
    book.check()

    assert book.bids.keys == [99]
    assert book.best_bid() == (99, 5)


def test_remove_order_not_in_book(book: OrderBook) -> None:
    rest(book, Side.BUY, 100, 5)
    stranger = make_order(Side.BUY, 100, 5)

    with pytest.raises(OrderNotRestingError, match=f"order {stranger.order_id} .* does not rest"):
        book.bids.remove(stranger)


def test_keys_sorted_on_insert(book: OrderBook) -> None:
    for price in (100, 98, 103, 99, 101):
        rest(book, Side.BUY, price, 1)
        rest(book, Side.SELL, price + 10, 1)

    assert book.bids.keys == [98, 99, 100, 101, 103]
    assert book.asks.keys == [-113, -111, -110, -109, -108]


@pytest.mark.parametrize(
    ("limit_price", "qty", "expected"),
    [(None, 100, 15), (101, 100, 5), (102, 8, 8), (100, 10, 0), (103, 15, 15)],
)
def test_fillable_qty(book: OrderBook, limit_price: int | None, qty: int, expected: int) -> None:
    rest(book, Side.SELL, 101, 5)
    rest(book, Side.SELL, 102, 10, display_qty=2)
    buyer = make_order(Side.BUY, 0, qty)

    assert book.fillable_qty(buyer, limit_price) == expected


def test_check_cached_total(book: OrderBook) -> None:
    rest(book, Side.BUY, 100, 5)
    book.bids.best().total_qty = 7  # type: ignore[union-attr]

    with pytest.raises(EngineInvariantError, match="cached total_qty 7 and leaves_qty 5 != sums 5 and 5"):
        book.check()


def test_check_crossed_book(book: OrderBook) -> None:
    rest(book, Side.SELL, 100, 5)
    book.bids.add(make_order(Side.BUY, 100, 5))

    with pytest.raises(EngineInvariantError, match="crossed in CONTINUOUS"):
        book.check()


@pytest.mark.parametrize("phase", [TradingPhase.PRE_OPEN, TradingPhase.PRE_CLOSE, TradingPhase.HALTED])
def test_check_crossed_allowed_in_call(book: OrderBook, phase: TradingPhase) -> None:
    book.phase = phase
    rest(book, Side.SELL, 100, 5)
    rest(book, Side.BUY, 101, 5)

    assert book.is_crossed()


def test_check_time_priority(book: OrderBook) -> None:
    first = rest(book, Side.BUY, 100, 5)
    rest(book, Side.BUY, 100, 5)
    first.seq = 10**9

    with pytest.raises(EngineInvariantError, match="not in time priority"):
        book.check()


def test_check_finished_order_resting(book: OrderBook) -> None:
    order = rest(book, Side.BUY, 100, 5)
    order.ord_status = OrdStatus.FILLED

    with pytest.raises(EngineInvariantError, match=f"resting order {order.order_id} has"):
        book.check()


def test_check_leaves_qty(book: OrderBook) -> None:
    order = rest(book, Side.BUY, 100, 5)
    order.cum_qty = 1

    with pytest.raises(EngineInvariantError, match="leaves_qty 5 with order_qty 5 and cum_qty 1"):
        book.check()


def test_check_visible_above_display(book: OrderBook) -> None:
    order = rest(book, Side.BUY, 100, 50, display_qty=10)
    order.visible_qty = 20
    book.bids.best().total_qty = 20  # type: ignore[union-attr]

    with pytest.raises(EngineInvariantError, match="visible_qty 20 with display_qty 10"):
        book.check()


def test_check_unsorted_keys(book: OrderBook) -> None:
    rest(book, Side.BUY, 100, 5)
    rest(book, Side.BUY, 99, 5)
    book.bids.keys.reverse()

    with pytest.raises(EngineInvariantError, match="keys are not sorted"):
        book.check()


def test_check_wrong_symbol(book: OrderBook) -> None:
    book.bids.add(make_order(Side.BUY, 100, 5, symbol="BBB"))

    with pytest.raises(EngineInvariantError, match="symbol 'BBB'"):
        book.check()


def test_plain_order_has_no_terms() -> None:
    order = make_order(Side.BUY, 100, 10)
    order.display_qty = 0
    order.expire_time_us = None
    order.post_only = False
    order.triggered = True

    assert order.terms is None
    for name, default in TERM_DEFAULTS.items():
        assert getattr(order, name) is default, name


def test_terms_set_one_by_one() -> None:
    order = make_order(Side.SELL, 100, 10)
    order.stop_px = 95
    order.triggered = False

    assert order.terms is not None
    assert order.stop_px == 95
    assert order.triggered is False
    assert order.display_qty == 0
    order.triggered = True
    assert order.triggered is True


def test_term_false_not_zero() -> None:
    # False is equal to 0, but an event must carry the value as it was set.
    order = make_order(Side.BUY, 100, 10)
    order.display_qty = False

    assert order.terms is not None
    assert order.display_qty is False


def test_num_from_order_id() -> None:
    order = Order("X1O17", "S1", "C1", "AAA", Side.BUY, OrdType.LIMIT, TimeInForce.DAY, 100, 1)
    assert order.num == 17


def test_self_match_follows_the_firm() -> None:
    order = make_order(Side.BUY, 100, 10)
    assert order.self_match is None
    order.firm = Firm("F1", ("S1",), SelfMatchPrevention.NONE)
    assert order.self_match is None
    order.firm = Firm("F1", ("S1",), SelfMatchPrevention.CANCEL_BOTH)
    assert order.self_match is SelfMatchPrevention.CANCEL_BOTH
