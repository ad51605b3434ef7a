"""Read LOBSTER message and order-book files.

LOBSTER (lobsterdata.com) rebuilds a Nasdaq book from TotalView-ITCH and publishes two CSV
files per symbol and day:

- the message file, one row per book event: time (seconds after midnight, a decimal),
  event type, order id, size in shares, price times 10,000, direction (+1 a resting buy
  order, -1 a resting sell order);
- the order-book file, where row *k* is the book after message *k*: per level, ask price,
  ask size, bid price, bid size. An empty level has price 9999999999 (ask) or -9999999999
  (bid) and size 0.

Files are named ``SYMBOL_DATE_START_END_message_LEVELS.csv``. LOBSTER's own files have no
header row and nanosecond timestamps. Some copies add a header row and round the time, so
the reader detects a header instead of assuming one.

Prices stay integers throughout: LOBSTER's price times 10,000 becomes the engine's price
(``PRICE_SCALE``, 8 decimals) by multiplying by 10**4, and times are parsed with
:class:`~decimal.Decimal` into integer nanoseconds.
"""

from __future__ import annotations

import csv
import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from engine.orders import PRICE_SCALE, Side

__all__ = [
    "BookSnapshot",
    "EMPTY_ASK_PRICE",
    "EMPTY_BID_PRICE",
    "EventType",
    "LOBSTER_PRICE_SCALE",
    "LobsterFormatError",
    "LobsterMessage",
    "engine_price",
    "read_messages",
    "read_orderbook",
    "symbol_from_path",
]

# LOBSTER prices are dollars times 10,000.
LOBSTER_PRICE_SCALE = 10_000
_TO_ENGINE_PRICE = PRICE_SCALE // LOBSTER_PRICE_SCALE

# Price columns of an empty order-book level.
EMPTY_ASK_PRICE = 9_999_999_999
EMPTY_BID_PRICE = -9_999_999_999

_NANOS_PER_SECOND = 10**9
_MESSAGE_COLUMNS = 6
_FILE_NAME = re.compile(r"^(?P<symbol>[A-Za-z0-9.]+)_\d{4}-\d{2}-\d{2}_")


class LobsterFormatError(ValueError):
    """A LOBSTER file row that does not have the documented layout."""


class EventType(enum.IntEnum):
    """The type column of a LOBSTER message row."""

    NEW = 1  # a new limit order enters the book
    PARTIAL_CANCEL = 2  # part of a resting order is cancelled
    DELETE = 3  # a resting order is deleted in full
    EXECUTE_VISIBLE = 4  # a visible resting order trades
    EXECUTE_HIDDEN = 5  # a hidden order trades; order id 0, not in the book
    CROSS = 6  # an auction cross trade
    HALT = 7  # a trading halt marker: price -1 halt, 0 quoting resumes, 1 trading resumes


@dataclass(frozen=True, slots=True)
class LobsterMessage:
    """One row of a message file. ``price`` is in LOBSTER units (dollars times 10,000)."""

    time_ns: int
    event_type: EventType
    order_id: int
    size: int
    price: int
    direction: int

    @property
    def side(self) -> Side:
        """Side (54) of the resting order the event acts on."""
        return Side.BUY if self.direction == 1 else Side.SELL


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """One row of an order-book file: the visible levels after one event, best first.

    Each level is ``(price, size)`` in LOBSTER price units. Empty levels are left out, so a
    side can hold fewer than ``levels``, the number of levels the file has columns for.
    """

    asks: tuple[tuple[int, int], ...]
    bids: tuple[tuple[int, int], ...]
    levels: int

    @property
    def best_ask(self) -> tuple[int, int] | None:
        return self.asks[0] if self.asks else None

    @property
    def best_bid(self) -> tuple[int, int] | None:
        return self.bids[0] if self.bids else None


def engine_price(lobster_price: int) -> int:
    """Convert a LOBSTER price (dollars times 10,000) to engine price units."""
    return lobster_price * _TO_ENGINE_PRICE


def symbol_from_path(path: Path) -> str:
    """Return the symbol a LOBSTER file name starts with (``AMZN_2012-06-21_...`` → AMZN)."""
    match = _FILE_NAME.match(path.name)
    if match is None:
        raise LobsterFormatError(
            f"cannot read a symbol from file name {path.name!r}; expected LOBSTER's "
            "SYMBOL_YYYY-MM-DD_START_END_message_LEVELS.csv naming"
        )
    return match.group("symbol").upper()


def read_messages(path: Path) -> list[LobsterMessage]:
    """Read a LOBSTER message file, with or without a header row."""
    return [_parse_message(row, path, line) for line, row in _data_rows(path)]


def read_orderbook(path: Path) -> list[BookSnapshot]:
    """Read a LOBSTER order-book file, with or without a header row."""
    return [_parse_snapshot(row, path, line) for line, row in _data_rows(path)]


def _data_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line number, fields)`` for each data row, skipping a header row if present."""
    with path.open(newline="") as stream:
        for line, row in enumerate(csv.reader(stream), start=1):
            if not row:
                continue
            # A header row starts with a column name where a number would be.
            if line == 1 and not _is_number(row[0]):
                continue
            yield line, row


def _is_number(text: str) -> bool:
    try:
        Decimal(text)
    except InvalidOperation:
        return False
    return True


def _parse_message(row: list[str], path: Path, line: int) -> LobsterMessage:
    if len(row) < _MESSAGE_COLUMNS:
        raise LobsterFormatError(
            f"{path.name} line {line}: expected {_MESSAGE_COLUMNS} columns "
            f"(time, type, order id, size, price, direction), found {len(row)}: {row!r}"
        )
    if len(row) > _MESSAGE_COLUMNS and len(row) % 4 == 0:
        raise LobsterFormatError(
            f"{path.name} line {line}: found {len(row)} columns, the shape of an order-book "
            f"file; a message file has {_MESSAGE_COLUMNS} (time, type, order id, size, price, "
            "direction). Pass the message file as --lobster and the order-book file as --orderbook"
        )
    try:
        time_ns = int(Decimal(row[0]) * _NANOS_PER_SECOND)
        event_type = EventType(int(row[1]))
        order_id, size, price, direction = (int(field) for field in row[2:_MESSAGE_COLUMNS])
    except (InvalidOperation, ValueError) as exc:
        raise LobsterFormatError(f"{path.name} line {line}: invalid message row {row!r}: {exc}") from exc
    if direction not in (1, -1):
        raise LobsterFormatError(
            f"{path.name} line {line}: expected direction 1 or -1, found {direction!r}"
        )
    return LobsterMessage(time_ns, event_type, order_id, size, price, direction)


def _parse_snapshot(row: list[str], path: Path, line: int) -> BookSnapshot:
    if not row or len(row) % 4:
        raise LobsterFormatError(
            f"{path.name} line {line}: expected 4 columns per level (ask price, ask size, "
            f"bid price, bid size), found {len(row)} columns"
        )
    try:
        values = [int(field) for field in row]
    except ValueError as exc:
        raise LobsterFormatError(f"{path.name} line {line}: invalid order-book row: {exc}") from exc
    asks = tuple(
        (values[i], values[i + 1])
        for i in range(0, len(values), 4)
        if values[i] != EMPTY_ASK_PRICE and values[i + 1] > 0
    )
    bids = tuple(
        (values[i + 2], values[i + 3])
        for i in range(0, len(values), 4)
        if values[i + 2] != EMPTY_BID_PRICE and values[i + 3] > 0
    )
    return BookSnapshot(asks=asks, bids=bids, levels=len(values) // 4)
