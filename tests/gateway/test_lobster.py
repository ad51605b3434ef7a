"""LOBSTER message and order-book files: both layouts, header detection, prices, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.orders import PRICE_SCALE, Side
from gateway.lobster import (
    EMPTY_ASK_PRICE,
    EMPTY_BID_PRICE,
    EventType,
    LobsterFormatError,
    engine_price,
    read_messages,
    read_orderbook,
    symbol_from_path,
)

# Layout of a LOBSTER copy with a header row, times rounded to 10 µs and one level.
AMZN_MESSAGES = """Time,Type,OrderId,Size,Price,Direction
34200.01746,5,0,1,2238200,-1
34200.18961,1,11885113,21,2238100,1
34200.19023,4,11885113,21,2238100,1
34713.68659,2,16085616,100,2241500,-1
35000.5,7,0,0,-1,-1
"""
AMZN_ORDERBOOK = """BestAsk,BestAskVolume,BestBid,BestBidVolume
2239500,100,2231800,100
2239500,100,2238100,21
2239500,100,2237500,100
2241500,100,2237500,100
9999999999,0,-9999999999,0
"""
AMZN_NAME = "AMZN_2012-06-21_34200000_57600000_{}_1.csv"
AAPL_NAME = "AAPL_2012-06-21_34200000_57600000_{}_10.csv"

# LOBSTER's own layout: no header and nanosecond times.
AAPL_MESSAGES = """34200.004241176,1,16113575,18,5853300,1
34200.025551909,1,16120456,18,5859100,-1
34200.190008231,3,16113575,18,5853300,1
"""


def _aapl_row(asks: list[tuple[int, int]], bids: list[tuple[int, int]]) -> str:
    """Return a 10-level row, padding missing levels with LOBSTER's empty markers."""
    asks = asks + [(EMPTY_ASK_PRICE, 0)] * (10 - len(asks))
    bids = bids + [(EMPTY_BID_PRICE, 0)] * (10 - len(bids))
    columns = []
    for (ask_price, ask_size), (bid_price, bid_size) in zip(asks, bids):
        columns += [ask_price, ask_size, bid_price, bid_size]
    return ",".join(str(value) for value in columns)


AAPL_ASKS = [(5859400 + 100 * level, 100 + level) for level in range(10)]
AAPL_BIDS = [(5853300 - 100 * level, 18 + level) for level in range(10)]
AAPL_ORDERBOOK = "\n".join(
    [
        _aapl_row(AAPL_ASKS, AAPL_BIDS),
        _aapl_row([(5859100, 18)] + AAPL_ASKS[:9], AAPL_BIDS),
        _aapl_row([(5859100, 18)], []),
    ]
) + "\n"


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_messages_with_header(tmp_path: Path) -> None:
    messages = read_messages(_write(tmp_path, AMZN_NAME.format("message"), AMZN_MESSAGES))
    assert len(messages) == 5
    first = messages[0]
    assert first.time_ns == 34_200_017_460_000
    assert first.event_type is EventType.EXECUTE_HIDDEN
    assert (first.order_id, first.size, first.price) == (0, 1, 2238200)
    assert first.side is Side.SELL
    assert messages[1].side is Side.BUY
    assert [m.event_type for m in messages[1:]] == [
        EventType.NEW, EventType.EXECUTE_VISIBLE, EventType.PARTIAL_CANCEL, EventType.HALT
    ]


def test_messages_without_header(tmp_path: Path) -> None:
    messages = read_messages(_write(tmp_path, AAPL_NAME.format("message"), AAPL_MESSAGES))
    assert len(messages) == 3
    assert messages[0].time_ns == 34_200_004_241_176
    assert messages[2].time_ns == 34_200_190_008_231
    assert messages[2].event_type is EventType.DELETE
    assert messages[1].side is Side.SELL


def test_halt_marker_price(tmp_path: Path) -> None:
    messages = read_messages(_write(tmp_path, AMZN_NAME.format("message"), AMZN_MESSAGES))
    halt = messages[-1]
    assert halt.event_type is EventType.HALT
    assert halt.price == -1


def test_orderbook_level_one(tmp_path: Path) -> None:
    snapshots = read_orderbook(_write(tmp_path, AMZN_NAME.format("orderbook"), AMZN_ORDERBOOK))
    assert len(snapshots) == 5
    assert snapshots[0].levels == 1
    assert snapshots[0].best_ask == (2239500, 100)
    assert snapshots[1].best_bid == (2238100, 21)


def test_orderbook_empty_level(tmp_path: Path) -> None:
    snapshots = read_orderbook(_write(tmp_path, AMZN_NAME.format("orderbook"), AMZN_ORDERBOOK))
    empty = snapshots[-1]
    assert empty.asks == ()
    assert empty.bids == ()
    assert empty.best_ask is None
    assert empty.best_bid is None


def test_orderbook_ten_levels(tmp_path: Path) -> None:
    snapshots = read_orderbook(_write(tmp_path, AAPL_NAME.format("orderbook"), AAPL_ORDERBOOK))
    assert len(snapshots) == 3
    full, improved, thin = snapshots
    assert full.levels == 10
    assert full.asks == tuple(AAPL_ASKS)
    assert full.bids == tuple(AAPL_BIDS)
    assert improved.best_ask == (5859100, 18)
    assert len(improved.asks) == 10
    assert thin.asks == ((5859100, 18),)
    assert thin.bids == ()
    assert thin.levels == 10


@pytest.mark.parametrize(
    ("lobster_price", "engine"),
    [
        (2238200, 22_382_000_000),
        (5853300, 585 * PRICE_SCALE + 33 * PRICE_SCALE // 100),
        (1, 10_000),
        (2206550, 22_065_500_000),
    ],
)
def test_engine_price(lobster_price: int, engine: int) -> None:
    assert engine_price(lobster_price) == engine


@pytest.mark.parametrize(
    ("name", "symbol"),
    [
        ("AMZN_2012-06-21_34200000_57600000_message_1.csv", "AMZN"),
        ("AAPL_2012-06-21_34200000_57600000_orderbook_10.csv", "AAPL"),
        ("msft_2012-06-21_34200000_57600000_message_5.csv", "MSFT"),
    ],
)
def test_symbol_from_path(name: str, symbol: str) -> None:
    assert symbol_from_path(Path("/data") / name) == symbol


def test_symbol_from_bad_name() -> None:
    with pytest.raises(LobsterFormatError, match="messages.csv"):
        symbol_from_path(Path("messages.csv"))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("34200.1,1,5,100,2238100\n", "line 1: expected 6 columns"),
        ("34200.1,1,5,100,2238100,1\n34200.2,9,5,100,2238100,1\n", "line 2: invalid message row"),
        ("34200.1,1,5,100,2238100,0\n", "expected direction 1 or -1"),
        ("34200.1,1,5,1e2x,2238100,1\n", "line 1"),
    ],
)
def test_bad_message_row(tmp_path: Path, text: str, match: str) -> None:
    path = _write(tmp_path, AAPL_NAME.format("message"), text)
    with pytest.raises(LobsterFormatError, match=match):
        read_messages(path)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("2239500,100,2231800\n", "expected 4 columns per level"),
        ("2239500,100,2231800,1x\n", "line 1: invalid order-book row"),
    ],
)
def test_bad_orderbook_row(tmp_path: Path, text: str, match: str) -> None:
    path = _write(tmp_path, AMZN_NAME.format("orderbook"), text)
    with pytest.raises(LobsterFormatError, match=match):
        read_orderbook(path)
