"""Market data out of the engine: a snapshot of one book for the gateway to publish.

The engine keeps its books current after every command, so the gateway polls
:meth:`engine.engine.MatchingEngine.market_data` for the symbols an event touched and
publishes trades from the :class:`engine.events.Trade` events.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING

from engine.auction import Uncross
from engine.orders import TradingPhase

if TYPE_CHECKING:
    from engine.book import BookSide, OrderBook


@dataclass(frozen=True, slots=True)
class DepthLevel:
    """One price level as market data shows it: hidden iceberg quantity is left out."""

    price: int
    qty: int
    order_count: int


@dataclass(frozen=True, slots=True)
class MarketDataSnapshot:
    """Top of book, depth, last trade and phase of one instrument.

    ``bids`` and ``asks`` are best first. ``last_px`` is None before the first trade.
    ``indicative`` is where the book would uncross now, outside continuous trading only,
    and None when it does not cross.
    """

    symbol: str
    phase: TradingPhase
    bids: tuple[DepthLevel, ...]
    asks: tuple[DepthLevel, ...]
    last_px: int | None
    last_qty: int
    indicative: Uncross | None = None

    @property
    def best_bid(self) -> DepthLevel | None:
        """The highest bid, or None."""
        return self.bids[0] if self.bids else None

    @property
    def best_ask(self) -> DepthLevel | None:
        """The lowest ask, or None."""
        return self.asks[0] if self.asks else None


def snapshot(book: OrderBook, depth: int, indicative: Uncross | None) -> MarketDataSnapshot:
    """Return the market data of ``book`` with up to ``depth`` levels per side."""
    if depth < 0:
        raise ValueError(f"depth must be 0 or more, got {depth!r}")
    return MarketDataSnapshot(
        symbol=book.symbol,
        phase=book.phase,
        bids=_levels(book.bids, depth),
        asks=_levels(book.asks, depth),
        last_px=book.last_px,
        last_qty=book.last_qty,
        indicative=indicative,
    )


def _levels(side: BookSide, depth: int) -> tuple[DepthLevel, ...]:
    return tuple(
        DepthLevel(level.price, level.total_qty, len(level.orders))
        for level in islice(side.in_priority(), depth)
    )
