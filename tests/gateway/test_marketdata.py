"""MarketDataPublisher: MarketDataRequest (V) handling, snapshots and incremental refreshes."""

from __future__ import annotations

import pytest

from engine import MatchingEngine, NewOrder, OrdType, PRICE_SCALE, Side
from gateway.codec import FixMessage, decode_message, encode
from gateway.marketdata import (
    MARKET_DATA_INCREMENTAL_REFRESH,
    MARKET_DATA_REQUEST_REJECT,
    MARKET_DATA_SNAPSHOT_FULL_REFRESH,
    MarketDataPublisher,
)

HEADER = [(49, "BRK1"), (56, "VENUE"), (34, 2), (52, "20240102-13:45:12.123")]
_cl_ord_ids = iter(range(1, 10**6))


def request(
    md_req_id: str = "m1", request_type: str = "1", depth: str = "5", update_type: str | None = "1",
    entry_types: tuple[str, ...] = ("0", "1", "2"), symbols: tuple[str, ...] = ("AAA",),
) -> FixMessage:
    body: list[tuple[int, str | int]] = [(262, md_req_id), (263, request_type), (264, depth)]
    if update_type is not None:
        body.append((265, update_type))
    body.append((267, len(entry_types)))
    body += [(269, entry_type) for entry_type in entry_types]
    body.append((146, len(symbols)))
    body += [(55, symbol) for symbol in symbols]
    return decode_message(encode("FIX.4.4", "V", HEADER, body))


def order(side: Side, qty: int, price: int, session: str = "S1") -> NewOrder:
    return NewOrder(session, f"c{next(_cl_ord_ids)}", "AAA", side, OrdType.LIMIT, qty, price * PRICE_SCALE)


@pytest.fixture
def engine() -> MatchingEngine:
    engine = MatchingEngine(["AAA", "BBB"])
    engine.process(order(Side.BUY, 10, 100))
    engine.process(order(Side.SELL, 7, 101))
    return engine


def test_snapshot_lists_levels(engine: MatchingEngine) -> None:
    publisher = MarketDataPublisher(engine)
    [(msg_type, body)] = publisher.on_request("S9", request(request_type="0"))

    assert msg_type == MARKET_DATA_SNAPSHOT_FULL_REFRESH
    assert body == [
        (262, "m1"), (55, "AAA"), (268, 2),
        (269, "0"), (270, "100.0"), (271, 10), (346, 1), (290, 1),
        (269, "1"), (270, "101.0"), (271, 7), (346, 1), (290, 1),
    ]
    assert publisher.on_events(engine.process(order(Side.BUY, 1, 99))) == []


def test_incremental_after_trade(engine: MatchingEngine) -> None:
    publisher = MarketDataPublisher(engine)
    publisher.on_request("S9", request())

    [(session, msg_type, body)] = publisher.on_events(engine.process(order(Side.BUY, 7, 101, "S2")))

    assert (session, msg_type) == ("S9", MARKET_DATA_INCREMENTAL_REFRESH)
    assert body == [
        (262, "m1"), (268, 2),
        (279, "2"), (269, "1"), (55, "AAA"), (270, "101.0"),
        (279, "0"), (269, "2"), (55, "AAA"), (270, "101.0"), (271, 7),
    ]


def test_incremental_level_change(engine: MatchingEngine) -> None:
    publisher = MarketDataPublisher(engine)
    publisher.on_request("S9", request(entry_types=("0",)))

    [(_, _, body)] = publisher.on_events(engine.process(order(Side.BUY, 5, 100, "S2")))

    assert body[2:] == [(279, "1"), (269, "0"), (55, "AAA"), (270, "100.0"), (271, 15), (346, 2)]


def test_full_refresh_subscription(engine: MatchingEngine) -> None:
    publisher = MarketDataPublisher(engine)
    publisher.on_request("S9", request(update_type="0", entry_types=("1",)))

    [(_, msg_type, body)] = publisher.on_events(engine.process(order(Side.SELL, 3, 102)))

    assert msg_type == MARKET_DATA_SNAPSHOT_FULL_REFRESH
    assert body[:3] == [(262, "m1"), (55, "AAA"), (268, 2)]


def test_unsubscribe_and_logout(engine: MatchingEngine) -> None:
    publisher = MarketDataPublisher(engine)
    publisher.on_request("S9", request())
    assert publisher.on_request("S9", request(request_type="2")) == []
    assert publisher.on_events(engine.process(order(Side.BUY, 1, 99))) == []

    publisher.on_request("S9", request(md_req_id="m2"))
    publisher.on_logout("S9")
    assert publisher.on_events(engine.process(order(Side.BUY, 1, 98))) == []


@pytest.mark.parametrize(
    ("message", "reason", "text"),
    [
        (request(symbols=("ZZZ",)), "0", "Symbol (55) 'ZZZ' is not listed"),
        (request(request_type="7"), "4", "SubscriptionRequestType (263) '7' is not supported; send 0, 1 or 2"),
        (request(depth="x"), "5", "MarketDepth (264) must be 0 or more, got 'x'"),
        (request(update_type="3"), "6", "MDUpdateType (265) '3' is not supported; send 0 or 1"),
        (request(entry_types=("0", "B")), "8", "MDEntryType (269) ['B'] is not supported; send 0, 1 or 2"),
        (request(request_type="2"), "1", "MDReqID (262) 'm1' has no subscription to disable"),
    ],
)
def test_request_rejected(engine: MatchingEngine, message: FixMessage, reason: str, text: str) -> None:
    [(msg_type, body)] = MarketDataPublisher(engine).on_request("S9", message)

    assert msg_type == MARKET_DATA_REQUEST_REJECT
    assert body == [(262, "m1"), (281, reason), (58, text)]


def test_duplicate_subscription_rejected(engine: MatchingEngine) -> None:
    publisher = MarketDataPublisher(engine)
    publisher.on_request("S9", request())
    [(msg_type, body)] = publisher.on_request("S9", request())

    assert msg_type == MARKET_DATA_REQUEST_REJECT
    assert body[1] == (281, "1")
