"""Order types, time in force, self-match prevention, instrument rules, phases and market data."""

from __future__ import annotations

import dataclasses

import pytest

from engine import (
    AdvanceTime,
    CancelReject,
    EndOfDay,
    Event,
    ExecType,
    ExecutionEvent,
    Firm,
    Instrument,
    MatchingEngine,
    NewOrder,
    OrdRejReason,
    OrdStatus,
    OrdType,
    PostOnlyPolicy,
    ReplaceOrder,
    SelfMatchPrevention,
    SetTradingPhase,
    Side,
    TimeInForce,
    Trade,
    TradingPhase,
    Uncross,
    command_from_dict,
    command_to_dict,
)
from engine.auction import uncross_price

BUY, SELL = Side.BUY, Side.SELL
_cl_ord_ids = iter(range(1, 10**6))


def new(
    side: Side, qty: int, price: int | None, session: str = "S1", symbol: str = "AAA",
    ord_type: OrdType = OrdType.LIMIT, tif: TimeInForce = TimeInForce.DAY, **fields: object,
) -> NewOrder:
    return NewOrder(
        session, f"c{next(_cl_ord_ids)}", symbol, side, ord_type, qty, price, tif,
        **fields,  # type: ignore[arg-type]
    )


def run(engine: MatchingEngine, *commands: object) -> list[Event]:
    events: list[Event] = []
    for command in commands:
        events += engine.process(command)  # type: ignore[arg-type]
        engine.check()
    return events


def reports(events: list[Event]) -> list[tuple[str, str, str, int]]:
    """Return (OrderID, ExecType, OrdStatus, LeavesQty) per ExecutionEvent."""
    return [
        (e.order_id, e.exec_type.name, e.ord_status.name, e.leaves_qty)
        for e in events
        if isinstance(e, ExecutionEvent)
    ]


def trades(events: list[Event]) -> list[tuple[int, int]]:
    return [(e.price, e.qty) for e in events if isinstance(e, Trade)]


@pytest.fixture
def engine() -> MatchingEngine:
    return MatchingEngine(["AAA"])


# Stop and stop-limit orders.


def test_stop_waits_then_triggers(engine: MatchingEngine) -> None:
    run(engine, new(SELL, 5, 101), new(SELL, 5, 105))
    stop = run(engine, new(BUY, 5, None, ord_type=OrdType.STOP, stop_px=101))

    assert reports(stop) == [("O3", "NEW", "NEW", 5)]
    assert engine.book("AAA").best_bid() is None

    events = run(engine, new(BUY, 5, 102, session="S2"))

    assert trades(events) == [(101, 5), (105, 5)]
    assert ("O3", "TRIGGERED", "NEW", 5) in reports(events)
    assert reports(events)[-1] == ("O2", "TRADE", "FILLED", 0)


def test_stop_limit_rests_after_trigger(engine: MatchingEngine) -> None:
    run(engine, new(BUY, 5, 100))
    run(engine, new(SELL, 5, 99, ord_type=OrdType.STOP_LIMIT, stop_px=100))
    events = run(engine, new(SELL, 5, 100, session="S2"))

    assert ("O2", "TRIGGERED", "NEW", 5) in reports(events)
    assert engine.book("AAA").best_ask() == (99, 5)


def test_stop_already_reached_triggers(engine: MatchingEngine) -> None:
    run(engine, new(BUY, 5, 100), new(SELL, 5, 100, session="S2"), new(SELL, 5, 110))
    events = run(engine, new(BUY, 5, None, ord_type=OrdType.STOP, stop_px=100))

    assert [r[1] for r in reports(events)] == ["NEW", "TRIGGERED", "TRADE", "TRADE"]


# Icebergs.


def test_iceberg_refreshes_at_back(engine: MatchingEngine) -> None:
    run(engine, new(SELL, 30, 100, display_qty=10), new(SELL, 5, 100, session="S2"))
    assert engine.book("AAA").best_ask() == (100, 15)

    events = run(engine, new(BUY, 14, 100, session="S3"))

    # The first slice fills, the next one goes behind S2's order, which fills next.
    assert [(e.resting_order_id, e.qty) for e in events if isinstance(e, Trade)] == [
        ("O1", 10), ("O2", 4),
    ]
    assert engine.book("AAA").best_ask() == (100, 11)


# Post-only.


@pytest.mark.parametrize(
    ("policy", "expected_status", "expected_price"),
    [(PostOnlyPolicy.REJECT, "REJECTED", 101), (PostOnlyPolicy.REPRICE, "NEW", 99)],
)
def test_post_only_crossing(policy: PostOnlyPolicy, expected_status: str, expected_price: int) -> None:
    engine = MatchingEngine([Instrument("AAA", post_only_policy=policy)])
    run(engine, new(SELL, 5, 100))
    event = run(engine, new(BUY, 5, 101, post_only=True))[0]

    assert isinstance(event, ExecutionEvent)
    assert event.ord_status.name == expected_status
    assert event.price == expected_price
    assert trades(run(engine)) == []


def test_post_only_not_crossing_rests(engine: MatchingEngine) -> None:
    run(engine, new(SELL, 5, 100))
    assert reports(run(engine, new(BUY, 5, 99, post_only=True))) == [("O2", "NEW", "NEW", 5)]


# MinQty.


@pytest.mark.parametrize(
    ("min_qty", "expected"),
    [(5, [("O3", "NEW", "NEW", 10), ("O3", "CANCELED", "CANCELED", 0)]), (4, None)],
)
def test_min_qty(engine: MatchingEngine, min_qty: int, expected: list[object] | None) -> None:
    run(engine, new(SELL, 2, 100), new(SELL, 2, 101))
    events = run(engine, new(BUY, 10, 101, session="S2", min_qty=min_qty))

    if expected is not None:
        assert reports(events) == expected
    else:
        assert trades(events) == [(100, 2), (101, 2)]
        assert engine.book("AAA").best_bid() == (101, 6)


def test_min_qty_no_cross_rests(engine: MatchingEngine) -> None:
    assert reports(run(engine, new(BUY, 10, 99, min_qty=5))) == [("O1", "NEW", "NEW", 10)]


# Time in force and expiry.


def test_gtd_expire_time(engine: MatchingEngine) -> None:
    run(engine, new(BUY, 5, 100, tif=TimeInForce.GTD, expire_time_us=1_000))

    assert run(engine, AdvanceTime(999)) == []
    events = run(engine, AdvanceTime(1_000))

    assert reports(events) == [("O1", "EXPIRED", "EXPIRED", 0)]
    assert events[0].orig_cl_ord_id is None  # type: ignore[union-attr]
    assert engine.book("AAA").best_bid() is None


def test_end_of_day_expires_day_and_gtd(engine: MatchingEngine) -> None:
    run(
        engine,
        new(BUY, 5, 100),
        new(BUY, 5, 99, tif=TimeInForce.GTC),
        new(BUY, 5, 98, tif=TimeInForce.GTD, expire_date="20240102"),
        new(BUY, 5, 97, tif=TimeInForce.GTD, expire_date="20240103"),
    )
    events = run(engine, EndOfDay("20240102"))

    assert reports(events) == [("O1", "EXPIRED", "EXPIRED", 0), ("O3", "EXPIRED", "EXPIRED", 0)]
    assert engine.book("AAA").depth(5)[0] == [(99, 5), (97, 5)]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"expire_time_us": 500}, OrdRejReason.TOO_LATE_TO_ENTER),
        ({"expire_date": "20240101"}, OrdRejReason.TOO_LATE_TO_ENTER),
        ({}, OrdRejReason.OTHER),
        ({"expire_date": "2024-01-05"}, OrdRejReason.OTHER),
    ],
)
def test_gtd_rejected(engine: MatchingEngine, fields: dict[str, object], reason: OrdRejReason) -> None:
    run(engine, AdvanceTime(500), EndOfDay("20240101"))
    event = run(engine, new(BUY, 5, 100, tif=TimeInForce.GTD, **fields))[0]

    assert isinstance(event, ExecutionEvent)
    assert event.ord_rej_reason is reason


# Cancel/replace priority rules.


def test_replace_decrease_keeps_priority(engine: MatchingEngine) -> None:
    first = new(BUY, 10, 100)
    run(engine, first, new(BUY, 10, 100, session="S2"))
    run(engine, ReplaceOrder("S1", "r1", first.cl_ord_id, "AAA", BUY, OrdType.LIMIT, 4, 100))
    events = run(engine, new(SELL, 4, 100, session="S3"))

    assert [e.resting_order_id for e in events if isinstance(e, Trade)] == ["O1"]


def test_replace_increase_loses_priority(engine: MatchingEngine) -> None:
    first = new(BUY, 10, 100)
    run(engine, first, new(BUY, 10, 100, session="S2"))
    run(engine, ReplaceOrder("S1", "r1", first.cl_ord_id, "AAA", BUY, OrdType.LIMIT, 12, 100))
    events = run(engine, new(SELL, 4, 100, session="S3"))

    assert [e.resting_order_id for e in events if isinstance(e, Trade)] == ["O2"]


def test_replace_below_filled_rejected(engine: MatchingEngine) -> None:
    first = new(BUY, 10, 100)
    run(engine, first, new(SELL, 6, 100, session="S2"))
    event = run(engine, ReplaceOrder("S1", "r1", first.cl_ord_id, "AAA", BUY, OrdType.LIMIT, 5, 100))[0]

    assert isinstance(event, CancelReject)
    assert event.text == "OrderQty (38) 5 is not above CumQty (14) 6"


# Self-match prevention.


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (SelfMatchPrevention.CANCEL_RESTING, [("O1", "CANCELED", "CANCELED", 0), ("O3", "TRADE", "FILLED", 0)]),
        (SelfMatchPrevention.CANCEL_INCOMING, [("O3", "CANCELED", "CANCELED", 0)]),
        (SelfMatchPrevention.CANCEL_BOTH, [("O1", "CANCELED", "CANCELED", 0), ("O3", "CANCELED", "CANCELED", 0)]),
    ],
)
def test_self_match_prevention(mode: SelfMatchPrevention, expected: list[object]) -> None:
    engine = MatchingEngine(["AAA"], firms=[Firm("F1", ("S1", "S2"), mode)])
    run(engine, new(SELL, 5, 100, session="S1"), new(SELL, 5, 101, session="S3"))
    events = run(engine, new(BUY, 5, 101, session="S2"))

    got = [r for r in reports(events) if r[0] != "O2" and r[1] != "NEW"]
    assert got[: len(expected)] == expected


def test_self_match_other_firm_trades() -> None:
    firms = [Firm("F1", ("S1",), SelfMatchPrevention.CANCEL_BOTH)]
    engine = MatchingEngine(["AAA"], firms=firms)
    run(engine, new(SELL, 5, 100, session="S2"))

    assert trades(run(engine, new(BUY, 5, 100, session="S1"))) == [(100, 5)]


def test_firm_session_in_two_firms() -> None:
    firms = [Firm("F1", ("S1",)), Firm("F2", ("S1",))]
    with pytest.raises(ValueError, match="session 'S1' is in firm 'F1' and in firm 'F2'"):
        MatchingEngine(["AAA"], firms=firms)


# Instrument rules.


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (new(BUY, 7, 100, symbol="RUL"), OrdRejReason.INCORRECT_QUANTITY),
        (new(BUY, 10, 101, symbol="RUL"), OrdRejReason.INVALID_PRICE_INCREMENT),
        (new(BUY, 10, 80, symbol="RUL"), OrdRejReason.PRICE_EXCEEDS_CURRENT_PRICE_BAND),
        (new(BUY, 10, 122, symbol="RUL"), OrdRejReason.PRICE_EXCEEDS_CURRENT_PRICE_BAND),
        (new(BUY, 10, None, symbol="RUL", ord_type=OrdType.STOP, stop_px=103), OrdRejReason.INVALID_PRICE_INCREMENT),
        (new(BUY, 10, 100, symbol="RUL", display_qty=3), OrdRejReason.INCORRECT_QUANTITY),
        (new(BUY, 10, None, symbol="RUL", ord_type=OrdType.MARKET, post_only=True),
         OrdRejReason.UNSUPPORTED_ORDER_CHARACTERISTIC),
        (new(BUY, 10, 100, symbol="RUL", tif=TimeInForce.AT_THE_CLOSE),
         OrdRejReason.UNSUPPORTED_ORDER_CHARACTERISTIC),
    ],
)
def test_instrument_rules_reject(command: NewOrder, reason: OrdRejReason) -> None:
    rules = Instrument("RUL", tick_size=2, lot_size=5, low_limit_price=90, high_limit_price=120)
    event = run(MatchingEngine([rules]), command)[0]

    assert isinstance(event, ExecutionEvent)
    assert event.ord_rej_reason is reason, event.text


def test_instrument_invalid_limits() -> None:
    with pytest.raises(ValueError, match="low_limit_price 10 is above high_limit_price 5"):
        Instrument("X", low_limit_price=10, high_limit_price=5)


# Trading phases and auctions.


def test_pre_open_rests_crossed_then_uncrosses() -> None:
    engine = MatchingEngine([Instrument("AAA", initial_phase=TradingPhase.PRE_OPEN, reference_price=100)])
    run(engine, new(BUY, 10, 102), new(BUY, 5, 100), new(SELL, 8, 99, session="S2"), new(SELL, 4, 101, session="S2"))

    snapshot = engine.market_data("AAA", 5)
    assert snapshot.indicative == Uncross(price=101, volume=10, imbalance=2)

    events = run(engine, SetTradingPhase(TradingPhase.CONTINUOUS, "AAA"))

    assert trades(events) == [(101, 8), (101, 2)]
    assert all(e.auction for e in events if isinstance(e, Trade))
    assert engine.book("AAA").depth(5) == ([(100, 5)], [(101, 2)])
    assert engine.market_data("AAA").last_px == 101


@pytest.mark.parametrize(
    ("bids", "asks", "reference", "expected"),
    [
        ([(102, 10)], [(99, 10)], None, Uncross(99, 10, 0)),
        ([(102, 10)], [(99, 10)], 101, Uncross(101, 10, 0)),
        ([(102, 10)], [(99, 10)], 105, Uncross(102, 10, 0)),
        ([(102, 10), (100, 5)], [(99, 8), (101, 4)], 100, Uncross(101, 10, 2)),
        ([(99, 10)], [(100, 10)], 100, None),
    ],
)
def test_uncross_price(
    bids: list[tuple[int, int]], asks: list[tuple[int, int]], reference: int | None,
    expected: Uncross | None,
) -> None:
    assert uncross_price(bids, asks, reference) == expected


@pytest.mark.parametrize("phase", [TradingPhase.HALTED, TradingPhase.CLOSED])
def test_closed_phase_rejects_orders(engine: MatchingEngine, phase: TradingPhase) -> None:
    resting = new(BUY, 5, 100)
    run(engine, resting, SetTradingPhase(phase))
    event = run(engine, new(SELL, 5, 100))[0]

    assert isinstance(event, ExecutionEvent)
    assert event.ord_rej_reason is OrdRejReason.EXCHANGE_CLOSED
    assert engine.book("AAA").best_bid() == (100, 5)


def test_pre_open_rejects_market(engine: MatchingEngine) -> None:
    run(engine, SetTradingPhase(TradingPhase.PRE_OPEN, "AAA"))
    event = run(engine, new(BUY, 5, None, ord_type=OrdType.MARKET))[0]

    assert isinstance(event, ExecutionEvent)
    assert event.ord_rej_reason is OrdRejReason.UNSUPPORTED_ORDER_CHARACTERISTIC


# Market data and commands.


def test_market_data_snapshot(engine: MatchingEngine) -> None:
    run(engine, new(BUY, 5, 100), new(BUY, 3, 100), new(SELL, 30, 102, display_qty=10))
    snapshot = engine.market_data("AAA", 1)

    assert (snapshot.best_bid.price, snapshot.best_bid.qty, snapshot.best_bid.order_count) == (100, 8, 2)  # type: ignore[union-attr]
    assert snapshot.best_ask.qty == 10  # type: ignore[union-attr]
    assert snapshot.phase is TradingPhase.CONTINUOUS
    assert snapshot.indicative is None
    with pytest.raises(ValueError, match="depth must be 0 or more, got -1"):
        engine.market_data("AAA", -1)


@pytest.mark.parametrize(
    "command",
    [
        AdvanceTime(123),
        EndOfDay("20240102"),
        SetTradingPhase(TradingPhase.PRE_CLOSE, "AAA"),
        new(BUY, 5, 100, ord_type=OrdType.STOP_LIMIT, stop_px=99, display_qty=0,
            tif=TimeInForce.GTD, expire_date="20240105", post_only=False, min_qty=2),
    ],
)
def test_command_round_trip(command: object) -> None:
    assert command_from_dict(command_to_dict(command)) == command  # type: ignore[arg-type]


def test_events_work_as_dataclasses(engine: MatchingEngine) -> None:
    event = run(engine, new(BUY, 5, 100))[0]

    assert [f.name for f in dataclasses.fields(event)][:3] == ["exec_id", "exec_type", "ord_status"]  # type: ignore[arg-type]
    assert dataclasses.asdict(event)["exec_type"] is ExecType.NEW  # type: ignore[call-overload]
    assert dataclasses.replace(event, text="x").text == "x"  # type: ignore[type-var]
    assert event.ord_status is OrdStatus.NEW  # type: ignore[union-attr]
