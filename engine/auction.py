"""The auction price: where a crossed book uncrosses at the end of a call phase.

The price maximises the executed volume. Ties go to the smallest imbalance (the volume
left unmatched on the heavier side at that price), then to the price closest to the
reference price, then to the lower price, so the result is one price for any book.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Uncross:
    """The auction price, the volume that trades there and the imbalance left over."""

    price: int
    volume: int
    imbalance: int


def uncross_price(
    bids: list[tuple[int, int]], asks: list[tuple[int, int]], reference_price: int | None
) -> Uncross | None:
    """Return where ``bids`` and ``asks`` uncross, or None when they do not cross.

    Each side is a list of (price, quantity) levels, best first, hidden quantity included.
    The candidates are the prices at which some order rests, and the reference price
    when it lies between them. Between two adjacent resting prices the volume cannot
    exceed that at the lower one, so no other price can do better than these.
    """
    if not bids or not asks or bids[0][0] < asks[0][0]:
        return None

    candidates = sorted({price for price, _ in bids} | {price for price, _ in asks})
    if reference_price is not None and candidates[0] < reference_price < candidates[-1]:
        candidates = sorted({*candidates, reference_price})
    demand = _cumulative(bids)  # price -> bid quantity at that price or higher
    supply = _cumulative(asks)  # price -> ask quantity at that price or lower
    bid_prices = sorted(demand)
    ask_prices = sorted(supply)

    best: tuple[int, int, int, int] | None = None
    best_uncross = None
    for price in candidates:
        bought = _demand_at(demand, bid_prices, price)
        sold = _supply_at(supply, ask_prices, price)
        volume = min(bought, sold)
        if not volume:
            continue
        imbalance = abs(bought - sold)
        distance = 0 if reference_price is None else abs(price - reference_price)
        # Lower tuples win: more volume, less imbalance, nearer the reference, lower price.
        rank = (-volume, imbalance, distance, price)
        if best is None or rank < best:
            best = rank
            best_uncross = Uncross(price, volume, imbalance)
    return best_uncross


def _cumulative(levels: list[tuple[int, int]]) -> dict[int, int]:
    """Return price -> quantity at that level and every better one (levels best first)."""
    running = 0
    totals = {}
    for price, qty in levels:
        running += qty
        totals[price] = running
    return totals


def _demand_at(demand: dict[int, int], bid_prices: list[int], price: int) -> int:
    """Return the bid quantity willing to buy at ``price``: bids at ``price`` or higher."""
    # The lowest bid price at or above ``price`` carries the running total down to it.
    index = bisect_left(bid_prices, price)
    return demand[bid_prices[index]] if index < len(bid_prices) else 0


def _supply_at(supply: dict[int, int], ask_prices: list[int], price: int) -> int:
    """Return the ask quantity willing to sell at ``price``: asks at ``price`` or lower."""
    index = bisect_right(ask_prices, price)
    return supply[ask_prices[index - 1]] if index else 0
