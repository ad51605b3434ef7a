"""Post-trade detectors: wash trades and price moves."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.events import Trade
from engine.orders import PRICE_SCALE, Side
from surveillance.detectors import PriceMoveDetector, WashTradeDetector


def _trade(price: float, buyer: str = "S1", seller: str = "S2", trade_id: str = "T1") -> Trade:
    return Trade(
        trade_id=trade_id, symbol="AAPL", price=int(price * PRICE_SCALE), qty=100,
        aggressor_side=Side.BUY, aggressor_order_id="O1", aggressor_session_id=buyer,
        resting_order_id="O2", resting_session_id=seller,
    )


def test_wash_trade_same_session_alerts() -> None:
    alert = WashTradeDetector().on_trade(_trade(10.0, buyer="S1", seller="S1"))
    assert alert is not None
    assert alert.detector == "wash_trade"
    assert "S1" in alert.text


def test_wash_trade_two_sessions_silent() -> None:
    assert WashTradeDetector().on_trade(_trade(10.0)) is None


@pytest.mark.parametrize(
    ("prices", "alerts"),
    [
        ((100.0, 104.99), 0),
        ((100.0, 105.0), 0),
        ((100.0, 105.01), 1),
        ((100.0, 94.0), 1),
        ((100.0, 106.0, 106.5), 1),
    ],
)
def test_price_move_threshold_boundary(prices: tuple[float, ...], alerts: int) -> None:
    detector = PriceMoveDetector(Decimal(5))
    raised = [detector.on_trade(_trade(p, trade_id=f"T{i}")) for i, p in enumerate(prices)]
    assert sum(alert is not None for alert in raised) == alerts


def test_price_move_first_trade_silent() -> None:
    assert PriceMoveDetector(Decimal(1)).on_trade(_trade(50.0)) is None


def test_price_move_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="above 0"):
        PriceMoveDetector(Decimal(0))
