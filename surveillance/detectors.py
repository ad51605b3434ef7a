"""Post-trade rule detectors that watch the trade feed and raise alerts.

A detector is fed every :class:`engine.events.Trade` in order and returns an
:class:`Alert` or None. Detectors keep their own state and never reach into the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

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
