"""Rebuild an instrument's book at any moment from the command journal.

The journal holds every command the engine processed, in engine order, and the engine is
deterministic, so replaying the commands journaled up to time T into a fresh
:class:`engine.MatchingEngine` gives the book as it was at T, OrderIDs included.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from engine.commands import command_from_dict
from engine.engine import MatchingEngine
from engine.events import Trade
from surveillance.audit_queries import format_price, format_ts_us, open_audit_db

__all__ = ["BookAt", "book_at", "format_book_at"]

EngineFactory = Callable[[Iterable[str]], MatchingEngine]


@dataclass(frozen=True, slots=True)
class BookAt:
    """The book of ``symbol`` after every command journaled at or before ``at_us``.

    ``reference_price`` is what the price collar compared with at that moment: the
    configured reference price in force (``reference_source`` "configured"), else the
    last trade price ("last trade"), else None before the first trade.
    """

    symbol: str
    at_us: int
    last_command_seq: int
    orders: list[dict[str, Any]]
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]
    last_trade_price: int | None
    reference_price: int | None
    reference_source: str
    collar_pct: str | None


def book_at(
    db_path: str | os.PathLike[str],
    symbol: str,
    at_us: int,
    *,
    depth: int = 10,
    engine_factory: EngineFactory = MatchingEngine,
) -> BookAt:
    """Replay the journal up to ``at_us`` into a fresh engine and return ``symbol``'s book.

    ``engine_factory`` builds the engine from the symbols found in the journal; pass one
    that builds it the way the appliance does when instruments carry settings of their own.
    """
    with open_audit_db(db_path) as db:
        rows = list(db.query("SELECT seq, body FROM commands WHERE ts_us <= ? ORDER BY seq", [at_us]))
        settings = _settings_at(db, symbol, at_us)
    commands = [command_from_dict(json.loads(row["body"])) for row in rows]
    symbols = sorted({_symbol_of(command) for command in commands} - {None} | {symbol})
    engine = engine_factory(symbols)
    last_trade: int | None = None
    for command in commands:
        for event in engine.process(command):
            if isinstance(event, Trade) and event.symbol == symbol:
                last_trade = event.price

    book = engine.book(symbol)
    bids, asks = book.depth(depth)
    configured = settings.get("reference_price")
    if configured is not None:
        reference, source = int(configured), "configured"
    else:
        reference, source = last_trade, "last trade" if last_trade is not None else "none"
    return BookAt(
        symbol=symbol, at_us=at_us, last_command_seq=rows[-1]["seq"] if rows else 0,
        orders=[_order_row(order) for order in book.orders()], bids=bids, asks=asks,
        last_trade_price=last_trade, reference_price=reference, reference_source=source,
        collar_pct=settings.get("collar_pct"),
    )


def _symbol_of(command: Any) -> str | None:
    owner = getattr(command, "order", command)
    return getattr(owner, "symbol", None)


def _settings_at(db: Any, symbol: str, at_us: int) -> dict[str, str | None]:
    """Return each setting of ``symbol`` as the last change at or before ``at_us`` left it."""
    sql = (
        "SELECT setting, new_value FROM limit_changes WHERE scope = ? AND ts_us <= ?"
        " ORDER BY ts_us, id"
    )
    return {row["setting"]: row["new_value"] for row in db.query(sql, [symbol, at_us])}


def _order_row(order: Any) -> dict[str, Any]:
    return {
        "order_id": order.order_id, "session_id": order.session_id,
        "cl_ord_id": order.cl_ord_id, "side": order.side.name, "price": order.price,
        "leaves_qty": order.leaves_qty, "cum_qty": order.cum_qty,
    }


def format_book_at(book: BookAt) -> str:
    """Format the book as a header, the levels of each side and the resting orders."""
    reference = format_price(book.reference_price)
    lines = [
        f"{book.symbol} at {format_ts_us(book.at_us)} after command #{book.last_command_seq}",
        f"collar reference price {reference} ({book.reference_source}), "
        f"collar {book.collar_pct or '-'}%, last trade {format_price(book.last_trade_price)}",
        f"{'bid qty':>10} {'bid':>12} | {'ask':<12} {'ask qty':<10}",
    ]
    for level in range(max(len(book.bids), len(book.asks))):
        bid = book.bids[level] if level < len(book.bids) else None
        ask = book.asks[level] if level < len(book.asks) else None
        lines.append(
            f"{bid[1] if bid else '':>10} {format_price(bid[0]) if bid else '':>12} | "
            f"{format_price(ask[0]) if ask else '':<12} {ask[1] if ask else '':<10}".rstrip()
        )
    lines.append("orders:")
    lines += [
        f"  {o['order_id']} {o['side']} {o['leaves_qty']} @ {format_price(o['price'])}"
        f" {o['session_id']} {o['cl_ord_id']}"
        for o in book.orders
    ]
    return "\n".join(lines)


def book_at_to_dict(book: BookAt) -> dict[str, Any]:
    """Return the book as JSON-ready values; prices stay integer price units."""
    return {
        "symbol": book.symbol, "at_us": book.at_us, "at": format_ts_us(book.at_us),
        "last_command_seq": book.last_command_seq,
        "bids": [{"price": p, "qty": q} for p, q in book.bids],
        "asks": [{"price": p, "qty": q} for p, q in book.asks],
        "orders": book.orders, "last_trade_price": book.last_trade_price,
        "reference_price": book.reference_price, "reference_source": book.reference_source,
        "collar_pct": book.collar_pct,
    }
