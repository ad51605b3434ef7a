"""Post-trade rule detectors that watch the trade feed and raise alerts.

A detector is fed every :class:`engine.events.Trade` in order and returns an
:class:`Alert` or None. Detectors keep their own state and never reach into the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from engine.events import Trade


@dataclass(frozen=True, slots=True)
class Alert:
    """A surveillance alert, with the detector's name and version for the audit trail."""

    detector: str
    version: str
    symbol: str
    session_id: str
    score: float
    threshold: float
    text: str


class WashTradeDetector:
    """Flags a trade whose buyer and seller are the same FIX session.

    A session trading with itself transfers no beneficial ownership; without self-match
    prevention the venue must at least report it. Sessions stand in for firms until
    firms are configured.
    """

    name = "wash_trade"
    version = "1"

    def on_trade(self, trade: Trade) -> Alert | None:
        if trade.aggressor_session_id != trade.resting_session_id:
            return None
        return Alert(
            detector=self.name,
            version=self.version,
            symbol=trade.symbol,
            session_id=trade.aggressor_session_id,
            score=1.0,
            threshold=1.0,
            text=(
                f"trade {trade.trade_id} in {trade.symbol}: session "
                f"{trade.aggressor_session_id} is both buyer and seller "
                f"(orders {trade.aggressor_order_id} and {trade.resting_order_id})"
            ),
        )


class PriceMoveDetector:
    """Flags a trade whose price moved more than ``threshold_pct`` from the previous trade
    in the same instrument: a marking-the-close or momentum-ignition pattern starts so."""

    name = "price_move"
    version = "1"

    def __init__(self, threshold_pct: Decimal) -> None:
        if threshold_pct <= 0:
            raise ValueError(f"threshold_pct must be above 0, got {threshold_pct!r}")
        self.threshold_pct = threshold_pct
        self._last_price: dict[str, int] = {}

    def on_trade(self, trade: Trade) -> Alert | None:
        previous = self._last_price.get(trade.symbol)
        self._last_price[trade.symbol] = trade.price
        if previous is None:
            return None
        move_pct = Decimal(abs(trade.price - previous) * 100) / Decimal(previous)
        if move_pct <= self.threshold_pct:
            return None
        return Alert(
            detector=self.name,
            version=self.version,
            symbol=trade.symbol,
            session_id=trade.aggressor_session_id,
            score=float(move_pct),
            threshold=float(self.threshold_pct),
            text=(
                f"trade {trade.trade_id} in {trade.symbol} moved the price {move_pct:.2f}% "
                f"from the previous trade, above the {self.threshold_pct}% threshold"
            ),
        )
