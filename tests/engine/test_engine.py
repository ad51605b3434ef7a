"""MatchingEngine: order entry, matching, cancels, replaces, status, mass cancel and IDs."""

from __future__ import annotations

import pytest

import engine as engine_package
from engine import (
    CancelOrder,
    CancelReject,
    CxlRejReason,
    CxlRejResponseTo,
    DuplicateInstrumentError,
    EngineInvariantError,
    Event,
    ExecType,
    ExecutionEvent,
    MassCancel,
    MatchingEngine,
    NewOrder,
    OrderStatusRequest,
    OrdRejReason,
    OrdStatus,
    OrdType,
    RejectOrder,
    ReplaceOrder,
    Side,
    TimeInForce,
    Trade,
    UnknownInstrumentError,
    UnsupportedCommandError,
)

BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrdType.LIMIT, OrdType.MARKET
DAY, GTC, IOC, FOK = TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK


def new(
    cl_ord_id: str,
    side: Side,
    qty: int,
    price: int | None,
    *,
    session: str = "S1",
    symbol: str = "AAA",
    ord_type: OrdType = LIMIT,
    tif: TimeInForce = DAY,
) -> NewOrder:
    return NewOrder(session, cl_ord_id, symbol, side, ord_type, qty, price, tif)


def market(
    cl_ord_id: str, side: Side, qty: int, *, tif: TimeInForce = DAY, session: str = "S2"
) -> NewOrder:
    return new(cl_ord_id, side, qty, None, ord_type=MARKET, tif=tif, session=session)


def cancel(
    cl_ord_id: str,
    orig_cl_ord_id: str,
    side: Side,
    *,
    session: str = "S1",
    symbol: str = "AAA",
    order_id: str | None = None,
) -> CancelOrder:
    return CancelOrder(session, cl_ord_id, orig_cl_ord_id, symbol, side, order_id)


def replace(
    cl_ord_id: str,
    orig_cl_ord_id: str,
    side: Side,
    qty: int,
    price: int | None,
    *,
    session: str = "S1",
    symbol: str = "AAA",
    ord_type: OrdType = LIMIT,
    tif: TimeInForce = DAY,
) -> ReplaceOrder:
    return ReplaceOrder(
        session, cl_ord_id, orig_cl_ord_id, symbol, side, ord_type, qty, price, tif
    )


def status(
    cl_ord_id: str,
    side: Side,
    *,
    session: str = "S1",
    symbol: str = "AAA",
    order_id: str | None = None,
) -> OrderStatusRequest:
    return OrderStatusRequest(session, cl_ord_id, symbol, side, order_id)


def run(engine: MatchingEngine, command: object) -> list[Event]:
    events = engine.process(command)  # type: ignore[arg-type]
    engine.check()
    return events


def kinds(events: list[Event]) -> list[tuple[str, ...]]:
    """Summarise events as (order_id, ExecType name, OrdStatus name) or ("Trade", price, qty)."""
    summary: list[tuple[str, ...]] = []
    for event in events:
        if isinstance(event, ExecutionEvent):
            summary.append((event.order_id, event.exec_type.name, event.ord_status.name))
        elif isinstance(event, Trade):
            summary.append(("Trade", str(event.price), str(event.qty)))
        else:
            summary.append(("CancelReject", event.reason.name))
    return summary


def only(events: list[Event]) -> Event:
    assert len(events) == 1, events
    return events[0]


@pytest.fixture
def engine() -> MatchingEngine:
    return MatchingEngine(["AAA", "BBB"])


# Engine API.


def test_symbols_in_listing_order() -> None:
    engine = MatchingEngine(["ZZZ", "AAA"])
    engine.add_instrument("MMM")

    assert engine.symbols == ["ZZZ", "AAA", "MMM"]
    assert engine.book("MMM").symbol == "MMM"
    engine.check()


def test_add_instrument_twice(engine: MatchingEngine) -> None:
    with pytest.raises(DuplicateInstrumentError, match="symbol 'AAA' is already listed"):
        engine.add_instrument("AAA")


@pytest.mark.parametrize("symbol", ["", None, 7])
def test_add_instrument_invalid(engine: MatchingEngine, symbol: object) -> None:
    with pytest.raises(ValueError, match="symbol must be a non-empty string"):
        engine.add_instrument(symbol)  # type: ignore[arg-type]


def test_book_unknown_symbol(engine: MatchingEngine) -> None:
    with pytest.raises(KeyError) as caught:
        engine.book("XYZ")

    assert isinstance(caught.value, UnknownInstrumentError)
    assert str(caught.value) == "symbol 'XYZ' is not listed; add it with add_instrument() first"


def test_process_unsupported_type(engine: MatchingEngine) -> None:
    with pytest.raises(UnsupportedCommandError, match="cannot process 'str'; expected one of"):
        engine.process("NewOrder")  # type: ignore[arg-type]


def test_public_api_exports() -> None:
    for name in engine_package.__all__:
        assert hasattr(engine_package, name), name
    for name in ("MatchingEngine", "OrderBook", "NewOrder", "ExecutionEvent", "Side"):
        assert name in engine_package.__all__


# New orders.


def test_new_order_rests(engine: MatchingEngine) -> None:
    event = only(run(engine, new("c1", BUY, 10, 100)))

    assert isinstance(event, ExecutionEvent)
    assert event.exec_type is ExecType.NEW
    assert event.ord_status is OrdStatus.NEW
    assert (event.order_id, event.exec_id) == ("O1", "E1")
    assert (event.cl_ord_id, event.orig_cl_ord_id) == ("c1", None)
    assert (event.price, event.order_qty, event.cum_qty, event.leaves_qty) == (100, 10, 0, 10)
    assert engine.book("AAA").best_bid() == (100, 10)


@pytest.mark.parametrize("tif", [DAY, GTC])
def test_resting_time_in_force(engine: MatchingEngine, tif: TimeInForce) -> None:
    run(engine, new("c1", SELL, 10, 100, tif=tif))

    assert engine.book("AAA").best_ask() == (100, 10)


def test_new_order_fills_at_resting_price(engine: MatchingEngine) -> None:
    run(engine, new("s1", SELL, 10, 100))
    events = run(engine, new("b1", BUY, 10, 105, session="S2"))

    assert kinds(events) == [
        ("O2", "NEW", "NEW"),
        ("O2", "TRADE", "FILLED"),
        ("O1", "TRADE", "FILLED"),
        ("Trade", "100", "10"),
    ]
    aggressor, resting, trade = events[1], events[2], events[3]
    assert isinstance(aggressor, ExecutionEvent) and isinstance(resting, ExecutionEvent)
    assert isinstance(trade, Trade)
    assert (aggressor.last_px, aggressor.last_qty, aggressor.price) == (100, 10, 105)
    assert (resting.last_px, resting.last_qty) == (100, 10)
    assert aggressor.trade_id == resting.trade_id == trade.trade_id == "T1"
    assert (trade.aggressor_side, trade.aggressor_order_id) == (BUY, "O2")
    assert trade.resting_order_id == "O1"
    assert (trade.aggressor_session_id, trade.resting_session_id) == ("S2", "S1")
    assert engine.book("AAA").best_ask() is None
    assert engine.book("AAA").best_bid() is None


def test_partial_fill_rests_remainder(engine: MatchingEngine) -> None:
    run(engine, new("s1", SELL, 4, 100))
    events = run(engine, new("b1", BUY, 10, 100))

    assert kinds(events) == [
        ("O2", "NEW", "NEW"),
        ("O2", "TRADE", "PARTIALLY_FILLED"),
        ("O1", "TRADE", "FILLED"),
        ("Trade", "100", "4"),
    ]
    assert events[1].leaves_qty == 6  # type: ignore[union-attr]
    assert engine.book("AAA").best_bid() == (100, 6)


def test_price_then_time_priority(engine: MatchingEngine) -> None:
    run(engine, new("s1", SELL, 5, 101))
    run(engine, new("s2", SELL, 5, 100))
    run(engine, new("s3", SELL, 5, 100))
    events = run(engine, new("b1", BUY, 12, 101, session="S2"))

    trades = [event for event in events if isinstance(event, Trade)]
    assert [(t.resting_order_id, t.price, t.qty) for t in trades] == [
        ("O2", 100, 5),
        ("O3", 100, 5),
        ("O1", 101, 2),
    ]
    assert engine.book("AAA").best_ask() == (101, 3)


def test_cum_notional_and_avg_px(engine: MatchingEngine) -> None:
    run(engine, new("s1", SELL, 1, 100))
    run(engine, new("s2", SELL, 3, 104))
    events = run(engine, new("b1", BUY, 4, 104, session="S2"))

    last = events[-3]
    assert isinstance(last, ExecutionEvent)
    assert last.cum_notional == 100 + 3 * 104
    assert last.avg_px == pytest.approx(103.0)


def test_other_symbol_no_match(engine: MatchingEngine) -> None:
    run(engine, new("s1", SELL, 5, 100, symbol="BBB"))
    events = run(engine, new("b1", BUY, 5, 100))

    assert kinds(events) == [("O2", "NEW", "NEW")]
    assert engine.book("BBB").best_ask() == (100, 5)


@pytest.mark.parametrize(
    ("command", "reason", "text"),
    [
        (new("c1", BUY, 10, 100, symbol="XYZ"), OrdRejReason.UNKNOWN_SYMBOL,
         "Symbol (55) 'XYZ' is not listed"),
        (new("c1", BUY, 0, 100), OrdRejReason.INCORRECT_QUANTITY,
         "OrderQty (38) must be positive, got 0"),
        (new("c1", BUY, -5, 100), OrdRejReason.INCORRECT_QUANTITY,
         "OrderQty (38) must be positive, got -5"),
        (new("c1", BUY, 10, None), OrdRejReason.OTHER,
         "Price (44) must be a positive integer on a limit order, got None"),
        (new("c1", BUY, 10, 0), OrdRejReason.OTHER,
         "Price (44) must be a positive integer on a limit order, got 0"),
        (new("c1", SELL, 10, -3), OrdRejReason.OTHER,
         "Price (44) must be a positive integer on a limit order, got -3"),
        (new("c1", BUY, 10, 100, ord_type=MARKET), OrdRejReason.OTHER,
         "Price (44) must be empty on a market order, got 100"),
    ],
)
def test_new_order_rejected(
    engine: MatchingEngine, command: NewOrder, reason: OrdRejReason, text: str
) -> None:
    event = only(run(engine, command))

    assert isinstance(event, ExecutionEvent)
    assert (event.exec_type, event.ord_status) == (ExecType.REJECTED, OrdStatus.REJECTED)
    assert event.ord_rej_reason is reason
    assert event.text == text
    assert event.order_id == "O1"
    assert (event.cum_qty, event.leaves_qty) == (0, 0)
    assert engine.book("AAA").depth(5) == ([], [])


def test_duplicate_cl_ord_id_live(engine: MatchingEngine) -> None:
    run(engine, new("c1", BUY, 10, 100))
    event = only(run(engine, new("c1", SELL, 5, 120)))

    assert isinstance(event, ExecutionEvent)
    assert event.ord_rej_reason is OrdRejReason.DUPLICATE_ORDER
    assert event.text == "ClOrdID (11) 'c1' is already used by live order O1 of this session"
    answer = only(run(engine, status("c1", BUY)))
    assert answer.order_id == "O1"  # type: ignore[union-attr]
    assert answer.ord_status is OrdStatus.NEW  # type: ignore[union-attr]


def test_duplicate_cl_ord_id_other_session(engine: MatchingEngine) -> None:
    run(engine, new("c1", BUY, 10, 100))
    event = only(run(engine, new("c1", BUY, 10, 100, session="S2")))

    assert event.exec_type is ExecType.NEW  # type: ignore[union-attr]


def test_cl_ord_id_reused_after_fill(engine: MatchingEngine) -> None:
    run(engine, new("c1", BUY, 10, 100))
    run(engine, new("x1", SELL, 10, 100, session="S2"))
    events = run(engine, new("c1", SELL, 5, 120))

    assert kinds(events) == [("O3", "NEW", "NEW")]
    answer = only(run(engine, status("c1", SELL)))
    assert answer.order_id == "O3"  # type: ignore[union-attr]


# Time in force and market orders.


def test_ioc_partial_fill_cancels_rest(engine: MatchingEngine) -> None:
    run(engine, new("s1", SELL, 4, 100))
    run(engine, new("s2", SELL, 4, 102))
    events = run(engine, new("b1", BUY, 10, 101, tif=IOC, session="S2"))

    assert kinds(events) == [
        ("O3", "NEW", "NEW"),
        ("O3", "TRADE", "PARTIALLY_FILLED"),
        ("O1", "TRADE", "FILLED"),
        ("Trade", "100", "4"),
        ("O3", "CANCELED", "CANCELED"),
    ]
    canceled = events[-1]
    assert isinstance(canceled, ExecutionEvent)
    assert (canceled.cum_qty, canceled.leaves_qty) == (4, 0)
    assert canceled.text == (
        "IOC order: no liquidity left at the limit price for the remaining 6 of OrderQty (38) 10"
    )
    assert engine.book("AAA").depth(5) == ([], [(102, 4)])


def test_ioc_without_match(engine: MatchingEngine) -> None:
    events = run(engine, new("b1", BUY, 10, 101, tif=IOC))

    assert kinds(events) == [("O1", "NEW", "NEW"), ("O1", "CANCELED", "CANCELED")]
    assert engine.book("AAA").best_bid() is None


def test_ioc_full_fill_no_cancel(engine: MatchingEngine) -> None:
    run(engine, new("s1", SELL, 10, 100))
    events = run(engine, new("b1", BUY, 10, 100, tif=IOC, session="S2"))

    assert kinds(events)[-1] == ("Trade", "100", "10")


@pytest.mark.parametrize(
    ("qty", "limit_price", "fills"),
    [
        (9, 102, [(100, 4), (101, 5)]),
        (4, 100, [(100, 4)]),
        (12, 103, [(100, 4), (101, 5), (103, 3)]),
    ],
)
def test_fok_fills_in_full(
    engine: MatchingEngine, qty: int, limit_price: int, fills: list[tuple[int, int]]
) -> None:
    run(engine, new("s1", SELL, 4, 100))
    run(engine, new("s2", SELL, 5, 101))
    run(engine, new("s3", SELL, 6, 103))
    events = run(engine, new("b1", BUY, qty, limit_price, tif=FOK, session="S2"))

    assert [(t.price, t.qty) for t in events if isinstance(t, Trade)] == fills
    assert events[-3].ord_status is OrdStatus.FILLED  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("qty", "limit_price", "available"),
    [(10, 101, 9), (5, 100, 4), (20, None, 15)],
)
def test_fok_kill_without_fill(
    engine: MatchingEngine, qty: int, limit_price: int | None, available: int
) -> None:
    run(engine, new("s1", SELL, 4, 100))
    run(engine, new("s2", SELL, 5, 101))
    run(engine, new("s3", SELL, 6, 103))
    ord_type = LIMIT if limit_price is not None else MARKET
    command = new("b1", BUY, qty, limit_price, tif=FOK, session="S2", ord_type=ord_type)
    events = run(engine, command)

    assert kinds(events) == [("O4", "NEW", "NEW"), ("O4", "CANCELED", "CANCELED")]
    assert events[-1].text == (  # type: ignore[union-attr]
        f"FOK order canceled without a fill: only {available} of OrderQty (38) {qty} "
        "could be filled at once"
    )
    assert engine.book("AAA").depth(5) == ([], [(100, 4), (101, 5), (103, 6)])


@pytest.mark.parametrize("tif", [DAY, GTC, IOC])
def test_market_sweeps_then_cancels(engine: MatchingEngine, tif: TimeInForce) -> None:
    run(engine, new("b1", BUY, 3, 99, session="S1"))
    run(engine, new("b2", BUY, 2, 90, session="S1"))
    events = run(engine, market("m1", SELL, 10, tif=tif))

    assert [(t.price, t.qty) for t in events if isinstance(t, Trade)] == [(99, 3), (90, 2)]
    canceled = events[-1]
    assert isinstance(canceled, ExecutionEvent)
    assert canceled.exec_type is ExecType.CANCELED
    assert (canceled.cum_qty, canceled.leaves_qty) == (5, 0)
    assert canceled.price is None
    assert canceled.text == (
        "market order: no liquidity left for the remaining 5 of OrderQty (38) 10"
    )
    assert engine.book("AAA").depth(5) == ([], [])


def test_market_order_empty_book(engine: MatchingEngine) -> None:
    events = run(engine, market("m1", BUY, 10))

    assert kinds(events) == [("O1", "NEW", "NEW"), ("O1", "CANCELED", "CANCELED")]
    assert engine.book("AAA").best_bid() is None


def test_market_order_filled_in_full(engine: MatchingEngine) -> None:
    run(engine, new("s1", SELL, 10, 100))
    events = run(engine, market("m1", BUY, 6))

    assert kinds(events)[-1] == ("Trade", "100", "6")
    assert engine.book("AAA").best_ask() == (100, 4)


# RejectOrder.


def test_reject_order_command(engine: MatchingEngine) -> None:
    order = new("c1", BUY, 10, 100)
    command = RejectOrder(order, OrdRejReason.ORDER_EXCEEDS_LIMIT, "notional limit")
    event = only(run(engine, command))

    assert isinstance(event, ExecutionEvent)
    assert (event.exec_type, event.ord_status) == (ExecType.REJECTED, OrdStatus.REJECTED)
    assert event.ord_rej_reason is OrdRejReason.ORDER_EXCEEDS_LIMIT
    assert event.text == "notional limit"
    assert (event.order_id, event.cl_ord_id) == ("O1", "c1")
    assert (event.price, event.order_qty) == (100, 10)
    assert engine.book("AAA").best_bid() is None

    answer = only(run(engine, status("c1", BUY)))
    assert answer.ord_status is OrdStatus.REJECTED  # type: ignore[union-attr]
    assert answer.order_id == "O1"  # type: ignore[union-attr]


def test_reject_order_keeps_live_cl_ord_id(engine: MatchingEngine) -> None:
    run(engine, new("c1", BUY, 10, 100))
    run(engine, RejectOrder(new("c1", BUY, 5, 100), OrdRejReason.DUPLICATE_ORDER, "duplicate"))

    answer = only(run(engine, status("c1", BUY)))
    assert answer.order_id == "O1"  # type: ignore[union-attr]
    rejected = only(run(engine, status("c1", BUY, order_id="O2")))
    assert rejected.ord_status is OrdStatus.REJECTED  # type: ignore[union-attr]


# Cancels.


def test_cancel_live_order(engine: MatchingEngine) -> None:
    run(engine, new("c1", BUY, 10, 100))
    event = only(run(engine, cancel("c2", "c1", BUY)))

    assert isinstance(event, ExecutionEvent)
    assert (event.exec_type, event.ord_status) == (ExecType.CANCELED, OrdStatus.CANCELED)
    assert (event.cl_ord_id, event.orig_cl_ord_id) == ("c2", "c1")
    assert (event.order_id, event.cum_qty, event.leaves_qty) == ("O1", 0, 0)
    assert engine.book("AAA").best_bid() is None

    answer = only(run(engine, status("c2", BUY)))
    assert (answer.order_id, answer.cl_ord_id) == ("O1", "c2")  # type: ignore[union-attr]


def test_cancel_partly_filled_order(engine: MatchingEngine) -> None:
    run(engine, new("c1", BUY, 10, 100))
    run(engine, new("x1", SELL, 3, 100, session="S2"))
    event = only(run(engine, cancel("c2", "c1", BUY)))

    assert event.ord_status is OrdStatus.CANCELED  # type: ignore[union-attr]
    assert (event.cum_qty, event.leaves_qty) == (3, 0)  # type: ignore[union-attr]


def test_cancel_by_order_id(engine: MatchingEngine) -> None:
    run(engine, new("c1", BUY, 10, 100))
    event = only(run(engine, cancel("c2", "wrong", BUY, order_id="O1")))

    assert event.exec_type is ExecType.CANCELED  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "order_id", ["O01", "O0", "O2", "o1", "X1", "O", "O1 ", "O\u0661", "O-1", "", "O" + "9" * 5000]
)
def test_cancel_unknown_order_id(engine: MatchingEngine, order_id: str) -> None:
    run(engine, new("c1", BUY, 10, 100))
    event = only(run(engine, cancel("c2", "c1", BUY, order_id=order_id)))

    assert isinstance(event, CancelReject)
    assert event.reason is CxlRejReason.UNKNOWN_ORDER
    assert f"OrderID (37) {order_id!r}" in event.text


def test_cancel_keeps_queue_order(engine: MatchingEngine) -> None:
    run(engine, new("c1", SELL, 5, 100))
    run(engine, new("c2", SELL, 5, 100))
    run(engine, new("c3", SELL, 5, 100))
    run(engine, cancel("c4", "c2", SELL))
    events = run(engine, new("b1", BUY, 10, 100, session="S2"))

    assert [t.resting_order_id for t in events if isinstance(t, Trade)] == ["O1", "O3"]


@pytest.mark.parametrize(
    ("setup", "command", "reason", "order_id", "ord_status", "text"),
    [
        ([], cancel("c2", "c1", BUY), CxlRejReason.UNKNOWN_ORDER, "NONE", OrdStatus.REJECTED,
         "unknown order: no order with OrigClOrdID (41) 'c1' in this session"),
        ([new("c1", BUY, 10, 100)], cancel("c2", "c1", BUY, session="S2"),
         CxlRejReason.UNKNOWN_ORDER, "NONE", OrdStatus.REJECTED,
         "unknown order: no order with OrigClOrdID (41) 'c1' in this session"),
        ([new("c1", BUY, 10, 100)], cancel("c2", "x", BUY, session="S2", order_id="O1"),
         CxlRejReason.UNKNOWN_ORDER, "NONE", OrdStatus.REJECTED,
         "unknown order: no order with OrderID (37) 'O1' in this session"),
        ([new("c1", BUY, 10, 100), new("x1", SELL, 10, 100, session="S2")],
         cancel("c2", "c1", BUY), CxlRejReason.TOO_LATE_TO_CANCEL, "O1", OrdStatus.FILLED,
         "order O1 is already FILLED"),
        ([new("c1", BUY, 10, 100), cancel("c2", "c1", BUY)],
         cancel("c3", "c2", BUY), CxlRejReason.TOO_LATE_TO_CANCEL, "O1", OrdStatus.CANCELED,
         "order O1 is already CANCELED"),
        ([new("c1", BUY, 10, 100, tif=IOC)],
         cancel("c2", "c1", BUY), CxlRejReason.TOO_LATE_TO_CANCEL, "O1", OrdStatus.CANCELED,
         "order O1 is already CANCELED"),
        ([new("c1", BUY, 0, 100)],
         cancel("c2", "c1", BUY), CxlRejReason.TOO_LATE_TO_CANCEL, "O1", OrdStatus.REJECTED,
         "order O1 is already REJECTED"),
        ([new("c1", BUY, 10, 100)], cancel("c2", "c1", SELL), CxlRejReason.OTHER, "O1",
         OrdStatus.NEW, "Side (54) SELL does not match BUY of order O1"),
        ([new("c1", BUY, 10, 100)], cancel("c2", "c1", BUY, symbol="BBB"), CxlRejReason.OTHER,
         "O1", OrdStatus.NEW, "Symbol (55) 'BBB' does not match 'AAA' of order O1"),
        ([new("c1", BUY, 10, 100), new("c2", BUY, 10, 99)], cancel("c2", "c1", BUY),
         CxlRejReason.DUPLICATE_CL_ORD_ID, "O1", OrdStatus.NEW,
         "ClOrdID (11) 'c2' is already used by live order O2 of this session"),
        ([new("c1", BUY, 10, 100)], cancel("c1", "c1", BUY),
         CxlRejReason.DUPLICATE_CL_ORD_ID, "O1", OrdStatus.NEW,
         "ClOrdID (11) 'c1' is already used by live order O1 of this session"),
    ],
)
def test_cancel_rejected(
    engine: MatchingEngine,
    setup: list[object],
    command: CancelOrder,
    reason: CxlRejReason,
    order_id: str,
    ord_status: OrdStatus,
    text: str,
) -> None:
    for step in setup:
        run(engine, step)
    depth_before = engine.book("AAA").depth(5)

    event = only(run(engine, command))

    assert isinstance(event, CancelReject)
    assert event.response_to is CxlRejResponseTo.CANCEL
    assert event.reason is reason
    assert (event.order_id, event.ord_status) == (order_id, ord_status)
    assert event.text == text
    assert (event.cl_ord_id, event.orig_cl_ord_id) == (command.cl_ord_id, command.orig_cl_ord_id)
    assert engine.book("AAA").depth(5) == depth_before


# Replaces.


def test_replace_decrease_keeps_priority(engine: MatchingEngine) -> None:
    run(engine, new("c1", SELL, 10, 100))
    run(engine, new("c2", SELL, 10, 100))
    event = only(run(engine, replace("c3", "c1", SELL, 6, 100)))

    assert isinstance(event, ExecutionEvent)
    assert (event.exec_type, event.ord_status) == (ExecType.REPLACED, OrdStatus.NEW)
    assert (event.cl_ord_id, event.orig_cl_ord_id) == ("c3", "c1")
    assert (event.order_qty, event.leaves_qty) == (6, 6)
    assert engine.book("AAA").best_ask() == (100, 16)

    events = run(engine, new("b1", BUY, 7, 100, session="S2"))
    assert [(t.resting_order_id, t.qty) for t in events if isinstance(t, Trade)] == [
        ("O1", 6),
        ("O2", 1),
    ]


@pytest.mark.parametrize(
    ("qty", "price", "book_after"),
    [
        (15, 100, [(100, 25)]),
        (10, 101, [(100, 10), (101, 10)]),
        (5, 101, [(100, 10), (101, 5)]),
    ],
)
def test_replace_loses_priority(
    engine: MatchingEngine, qty: int, price: int, book_after: list[tuple[int, int]]
) -> None:
    run(engine, new("c1", SELL, 10, 100))
    run(engine, new("c2", SELL, 10, 100))
    run(engine, replace("c3", "c1", SELL, qty, price))

    assert engine.book("AAA").depth(5) == ([], book_after)
    events = run(engine, new("b1", BUY, 1, 101, session="S2"))
    assert [t.resting_order_id for t in events if isinstance(t, Trade)] == ["O2"]


def test_replace_unchanged_keeps_priority(engine: MatchingEngine) -> None:
    run(engine, new("c1", SELL, 10, 100))
    run(engine, new("c2", SELL, 10, 100))
    run(engine, replace("c3", "c1", SELL, 10, 100, tif=GTC))

    events = run(engine, new("b1", BUY, 1, 100, session="S2"))
    assert [t.resting_order_id for t in events if isinstance(t, Trade)] == ["O1"]
    answer = only(run(engine, status("c3", SELL)))
    assert answer.time_in_force is GTC  # type: ignore[union-attr]


def test_replace_crossing_trades_after_replaced(engine: MatchingEngine) -> None:
    run(engine, new("b1", BUY, 5, 99, session="S2"))
    run(engine, new("c1", SELL, 10, 101))
    events = run(engine, replace("c2", "c1", SELL, 10, 98))

    assert kinds(events) == [
        ("O2", "REPLACED", "NEW"),
        ("O2", "TRADE", "PARTIALLY_FILLED"),
        ("O1", "TRADE", "FILLED"),
        ("Trade", "99", "5"),
    ]
    trade = events[-1]
    assert isinstance(trade, Trade)
    assert (trade.aggressor_order_id, trade.aggressor_side) == ("O2", SELL)
    assert events[1].cl_ord_id == "c2"  # type: ignore[union-attr]
    assert engine.book("AAA").depth(5) == ([], [(98, 5)])


def test_replace_partly_filled_order(engine: MatchingEngine) -> None:
    run(engine, new("c1", SELL, 10, 100))
    run(engine, new("b1", BUY, 4, 100, session="S2"))
    event = only(run(engine, replace("c2", "c1", SELL, 8, 100)))

    assert isinstance(event, ExecutionEvent)
    assert event.ord_status is OrdStatus.PARTIALLY_FILLED
    assert (event.order_qty, event.cum_qty, event.leaves_qty) == (8, 4, 4)
    assert engine.book("AAA").best_ask() == (100, 4)


def test_replace_then_find_by_new_cl_ord_id(engine: MatchingEngine) -> None:
    run(engine, new("c1", SELL, 10, 100))
    run(engine, replace("c2", "c1", SELL, 10, 101))
    run(engine, replace("c3", "c2", SELL, 9, 101))
    event = only(run(engine, cancel("c4", "c3", SELL)))

    assert (event.order_id, event.orig_cl_ord_id) == ("O1", "c3")  # type: ignore[union-attr]


def test_replace_old_cl_ord_id_still_duplicate(engine: MatchingEngine) -> None:
    run(engine, new("c1", SELL, 10, 100))
    run(engine, replace("c2", "c1", SELL, 10, 101))
    event = only(run(engine, new("c1", BUY, 1, 90)))

    assert event.ord_rej_reason is OrdRejReason.DUPLICATE_ORDER  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("command", "reason", "text"),
    [
        (replace("c2", "c1", SELL, 4, 100), CxlRejReason.OTHER,
         "OrderQty (38) 4 is not above CumQty (14) 4"),
        (replace("c2", "c1", SELL, 3, 101), CxlRejReason.OTHER,
         "OrderQty (38) 3 is not above CumQty (14) 4"),
        (replace("c2", "c1", SELL, 10, None), CxlRejReason.OTHER,
         "Price (44) must be a positive integer on a limit order, got None"),
        (replace("c2", "c1", SELL, 10, 0), CxlRejReason.OTHER,
         "Price (44) must be a positive integer on a limit order, got 0"),
        (replace("c2", "c1", SELL, 10, None, ord_type=MARKET), CxlRejReason.OTHER,
         "OrdType (40) cannot change from LIMIT to MARKET"),
        (replace("c2", "c1", SELL, 10, 100, tif=IOC), CxlRejReason.OTHER,
         "TimeInForce (59) of a resting order can be DAY, GTC or GTD, got IOC"),
        (replace("c2", "c1", BUY, 10, 100), CxlRejReason.OTHER,
         "Side (54) BUY does not match SELL of order O1"),
        (replace("c2", "c1", SELL, 10, 100, symbol="BBB"), CxlRejReason.OTHER,
         "Symbol (55) 'BBB' does not match 'AAA' of order O1"),
        (replace("c2", "zz", SELL, 10, 100), CxlRejReason.UNKNOWN_ORDER,
         "unknown order: no order with OrigClOrdID (41) 'zz' in this session"),
        (replace("c1", "c1", SELL, 10, 100), CxlRejReason.DUPLICATE_CL_ORD_ID,
         "ClOrdID (11) 'c1' is already used by live order O1 of this session"),
    ],
)
def test_replace_rejected(
    engine: MatchingEngine, command: ReplaceOrder, reason: CxlRejReason, text: str
) -> None:
    run(engine, new("c1", SELL, 10, 100))
    run(engine, new("b1", BUY, 4, 100, session="S2"))

    event = only(run(engine, command))

    assert isinstance(event, CancelReject)
    assert event.response_to is CxlRejResponseTo.REPLACE
    assert event.reason is reason
    assert event.text == text
    assert engine.book("AAA").best_ask() == (100, 6)


def test_replace_filled_order_too_late(engine: MatchingEngine) -> None:
    run(engine, new("c1", SELL, 10, 100))
    run(engine, new("b1", BUY, 10, 100, session="S2"))
    event = only(run(engine, replace("c2", "c1", SELL, 20, 100)))

    assert isinstance(event, CancelReject)
    assert (event.reason, event.ord_status) == (CxlRejReason.TOO_LATE_TO_CANCEL, OrdStatus.FILLED)


# Order status.


def test_status_live_order(engine: MatchingEngine) -> None:
    run(engine, new("c1", BUY, 10, 100))
    run(engine, new("x1", SELL, 4, 100, session="S2"))
    event = only(run(engine, status("c1", BUY)))

    assert isinstance(event, ExecutionEvent)
    assert event.exec_type is ExecType.ORDER_STATUS
    assert event.ord_status is OrdStatus.PARTIALLY_FILLED
    assert (event.cum_qty, event.leaves_qty, event.cum_notional) == (4, 6, 400)
    assert (event.last_qty, event.last_px) == (0, 0)


@pytest.mark.parametrize(
    ("setup", "ord_status"),
    [
        ([new("x1", SELL, 10, 100, session="S2")], OrdStatus.FILLED),
        ([cancel("c2", "c1", BUY)], OrdStatus.CANCELED),
    ],
)
def test_status_finished_order(
    engine: MatchingEngine, setup: list[object], ord_status: OrdStatus
) -> None:
    run(engine, new("c1", BUY, 10, 100))
    for step in setup:
        run(engine, step)

    event = only(run(engine, status("c1", BUY, order_id="O1")))

    assert event.ord_status is ord_status  # type: ignore[union-attr]
    assert event.leaves_qty == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("command", "text"),
    [
        (status("zz", BUY), "unknown order"),
        (status("c1", BUY, session="S2"), "unknown order"),
        (status("c1", BUY, order_id="O9"), "unknown order"),
        (status("c1", SELL), "unknown order: Side (54) SELL does not match BUY of order O1"),
    ],
)
def test_status_unknown_order(
    engine: MatchingEngine, command: OrderStatusRequest, text: str
) -> None:
    run(engine, new("c1", BUY, 10, 100))

    event = only(run(engine, command))

    assert isinstance(event, ExecutionEvent)
    assert (event.exec_type, event.ord_status) == (ExecType.ORDER_STATUS, OrdStatus.REJECTED)
    assert event.text == text
    assert event.order_id == "NONE"
    assert (event.order_qty, event.cum_qty, event.leaves_qty) == (0, 0, 0)


# Mass cancel.


def mass_cancel_setup(engine: MatchingEngine) -> None:
    run(engine, new("a1", BUY, 1, 90))  # O1
    run(engine, new("a2", SELL, 1, 110, symbol="BBB"))  # O2
    run(engine, new("a3", SELL, 1, 111))  # O3
    run(engine, new("z1", BUY, 1, 91, session="S2"))  # O4
    run(engine, new("a4", BUY, 1, 89))  # O5
    run(engine, replace("a5", "a1", BUY, 2, 90))  # O1 loses priority


@pytest.mark.parametrize(
    ("symbol", "side", "canceled"),
    [
        (None, None, ["O2", "O3", "O5", "O1"]),
        ("AAA", None, ["O3", "O5", "O1"]),
        (None, BUY, ["O5", "O1"]),
        ("BBB", BUY, []),
        ("XYZ", None, []),
    ],
)
def test_mass_cancel(
    engine: MatchingEngine, symbol: str | None, side: Side | None, canceled: list[str]
) -> None:
    mass_cancel_setup(engine)

    events = run(engine, MassCancel("S1", "m1", symbol, side))

    assert [event.order_id for event in events] == canceled  # type: ignore[union-attr]
    for event in events:
        assert isinstance(event, ExecutionEvent)
        assert (event.exec_type, event.ord_status, event.leaves_qty) == (
            ExecType.CANCELED, OrdStatus.CANCELED, 0,
        )
        assert event.text == "canceled by OrderMassCancelRequest ClOrdID (11) 'm1'"
    assert engine.book("AAA").best_bid() == (91, 1)


def test_mass_cancel_unknown_session(engine: MatchingEngine) -> None:
    mass_cancel_setup(engine)

    assert run(engine, MassCancel("S9", "m1")) == []


# Identifiers and determinism.


def test_ids_use_prefix_and_counters() -> None:
    engine = MatchingEngine(["AAA"], id_prefix="X1-")
    run(engine, new("s1", SELL, 5, 100))
    events = run(engine, new("b1", BUY, 5, 100, session="S2"))

    executions = [event for event in events if isinstance(event, ExecutionEvent)]
    assert [event.exec_id for event in executions] == ["X1-E2", "X1-E3", "X1-E4"]
    assert executions[0].order_id == "X1-O2"
    assert executions[1].trade_id == "X1-T1"


def test_cancel_reject_uses_no_ids(engine: MatchingEngine) -> None:
    run(engine, cancel("c1", "zz", BUY))
    event = only(run(engine, new("c2", BUY, 1, 100)))

    assert (event.order_id, event.exec_id) == ("O1", "E1")  # type: ignore[union-attr]


# Invariant checker.


def test_check_order_id_index(engine: MatchingEngine) -> None:
    run(engine, new("c1", BUY, 10, 100))
    engine._orders.clear()

    with pytest.raises(EngineInvariantError, match=r"resting order O1 is not indexed by its OrderID \(37\)"):
        engine.check()


def test_check_cl_ord_id_index(engine: MatchingEngine) -> None:
    run(engine, new("c1", BUY, 10, 100))
    del engine._by_cl_ord_id["S1"]["c1"]

    expected = r"ClOrdID \(11\) 'c1' of resting order O1 points at None"
    with pytest.raises(EngineInvariantError, match=expected):
        engine.check()


def test_check_book_error_propagates(engine: MatchingEngine) -> None:
    run(engine, new("c1", BUY, 10, 100))
    engine.book("AAA").bids.best().total_qty = 3  # type: ignore[union-attr]

    with pytest.raises(EngineInvariantError, match="AAA BUY level 100: cached total_qty 3"):
        engine.check()
