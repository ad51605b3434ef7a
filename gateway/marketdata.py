"""Market data for FIX sessions: MarketDataRequest (V) in, snapshots and updates out.

The appliance hands this class every MarketDataRequest (V) and, after each command, the
engine's events. A request gets a MarketDataSnapshotFullRefresh (W) per symbol, or a
MarketDataRequestReject (Y), and a request for updates is kept as a subscription. After events it sends
each subscriber what changed in the books the events touched: a
MarketDataIncrementalRefresh (X) keyed by price level, or a new W when the subscription
asked for full refreshes (MDUpdateType (265) 0). Trades go out as MDEntryType (269) 2.

Books are read from :meth:`engine.engine.MatchingEngine.market_data`, so quantities are
the visible ones: hidden iceberg quantity is never published.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.engine import MatchingEngine
from engine.events import Event, ExecutionEvent, Trade
from engine.market_data import DepthLevel, MarketDataSnapshot
from gateway import tags
from gateway.codec import FixMessage
from gateway.normalise import format_price

logger = logging.getLogger(__name__)

Field = tuple[int, "str | int"]

# MsgType (35) values of market data.
MARKET_DATA_REQUEST = "V"
MARKET_DATA_SNAPSHOT_FULL_REFRESH = "W"
MARKET_DATA_INCREMENTAL_REFRESH = "X"
MARKET_DATA_REQUEST_REJECT = "Y"

# Market data tags, kept here because only this module reads or writes them.
MD_REQ_ID = 262
SUBSCRIPTION_REQUEST_TYPE = 263
MARKET_DEPTH = 264
MD_UPDATE_TYPE = 265
NO_MD_ENTRY_TYPES = 267
NO_MD_ENTRIES = 268
MD_ENTRY_TYPE = 269
MD_ENTRY_PX = 270
MD_ENTRY_SIZE = 271
MD_UPDATE_ACTION = 279
MD_REQ_REJ_REASON = 281
MD_ENTRY_POSITION_NO = 290
NUMBER_OF_ORDERS = 346
NO_RELATED_SYM = 146

# SubscriptionRequestType (263).
SNAPSHOT = "0"
SNAPSHOT_PLUS_UPDATES = "1"
DISABLE_PREVIOUS = "2"

# MDEntryType (269) values the venue publishes.
BID = "0"
OFFER = "1"
TRADE = "2"
ENTRY_TYPES = frozenset({BID, OFFER, TRADE})

# MDUpdateAction (279).
NEW = "0"
CHANGE = "1"
DELETE = "2"

# MDReqRejReason (281).
REJECT_UNKNOWN_SYMBOL = "0"
REJECT_DUPLICATE_MD_REQ_ID = "1"
REJECT_UNSUPPORTED_SUBSCRIPTION_REQUEST_TYPE = "4"
REJECT_UNSUPPORTED_MARKET_DEPTH = "5"
REJECT_UNSUPPORTED_MD_UPDATE_TYPE = "6"
REJECT_UNSUPPORTED_MD_ENTRY_TYPE = "8"

# MarketDepth (264) 0 means the full book.
FULL_BOOK_DEPTH = 1_000_000

Outgoing = tuple[str, list[Field]]  # (MsgType (35), body)


class MarketDataRequestError(Exception):
    """A MarketDataRequest (V) the venue rejects, with its MDReqRejReason (281)."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text


@dataclass
class Subscription:
    """One session's MarketDataRequest (V) that asked for updates."""

    md_req_id: str
    symbols: tuple[str, ...]
    depth: int
    entry_types: frozenset[str]
    full_refresh: bool
    # symbol -> the bids and asks last sent, to compute the next incremental refresh.
    sent: dict[str, tuple[tuple[DepthLevel, ...], tuple[DepthLevel, ...]]] = field(
        default_factory=dict
    )


class MarketDataPublisher:
    """Handles MarketDataRequest (V) messages and publishes book changes to subscribers."""

    def __init__(self, engine: MatchingEngine) -> None:
        self._engine = engine
        # session_id -> MDReqID (262) -> subscription.
        self._subscriptions: dict[str, dict[str, Subscription]] = {}

    def on_request(self, session_id: str, message: FixMessage) -> list[Outgoing]:
        """Handle a MarketDataRequest (V) of ``session_id``; return the messages to send it."""
        md_req_id = message.get_str(MD_REQ_ID) or ""
        try:
            request = self._parse(session_id, md_req_id, message)
        except MarketDataRequestError as exc:
            logger.info("%s: MarketDataRequest %s rejected: %s", session_id, md_req_id, exc.text)
            return [(MARKET_DATA_REQUEST_REJECT, _reject_body(md_req_id, exc.reason, exc.text))]

        if request is None:  # a DISABLE_PREVIOUS that was carried out
            return []
        replies = [
            (MARKET_DATA_SNAPSHOT_FULL_REFRESH, self._snapshot_body(request, symbol))
            for symbol in request.symbols
        ]
        if message.get_str(SUBSCRIPTION_REQUEST_TYPE) == SNAPSHOT_PLUS_UPDATES:
            self._subscriptions.setdefault(session_id, {})[md_req_id] = request
            logger.info(
                "%s: subscribed MDReqID %s to %s", session_id, md_req_id, ", ".join(request.symbols)
            )
        return replies

    def on_events(self, events: Iterable[Event]) -> list[tuple[str, str, list[Field]]]:
        """Return (session_id, MsgType (35), body) for every subscriber of a touched book."""
        touched: dict[str, list[Trade]] = {}
        for event in events:
            if isinstance(event, Trade):
                touched.setdefault(event.symbol, []).append(event)
            elif isinstance(event, ExecutionEvent):
                touched.setdefault(event.symbol, [])
        if not touched:
            return []

        outgoing = []
        for session_id, subscriptions in self._subscriptions.items():
            for subscription in subscriptions.values():
                for symbol in subscription.symbols:
                    if symbol in touched:
                        message = self._update(subscription, symbol, touched[symbol])
                        if message is not None:
                            outgoing.append((session_id, *message))
        return outgoing

    def on_logout(self, session_id: str) -> None:
        """Drop the subscriptions of a session that logged out or disconnected."""
        self._subscriptions.pop(session_id, None)

    # Requests.

    def _parse(self, session_id: str, md_req_id: str, message: FixMessage) -> Subscription | None:
        if not md_req_id:
            raise MarketDataRequestError("", "MDReqID (262) is missing")
        request_type = message.get_str(SUBSCRIPTION_REQUEST_TYPE)
        existing = self._subscriptions.get(session_id, {})
        if request_type == DISABLE_PREVIOUS:
            if existing.pop(md_req_id, None) is None:
                raise MarketDataRequestError(
                    REJECT_DUPLICATE_MD_REQ_ID, f"MDReqID (262) {md_req_id!r} has no subscription to disable"
                )
            return None
        if request_type not in (SNAPSHOT, SNAPSHOT_PLUS_UPDATES):
            raise MarketDataRequestError(
                REJECT_UNSUPPORTED_SUBSCRIPTION_REQUEST_TYPE,
                f"SubscriptionRequestType (263) {request_type!r} is not supported; send 0, 1 or 2",
            )
        if md_req_id in existing:
            raise MarketDataRequestError(
                REJECT_DUPLICATE_MD_REQ_ID, f"MDReqID (262) {md_req_id!r} is already subscribed"
            )
        return Subscription(
            md_req_id=md_req_id,
            symbols=self._symbols(message),
            depth=_depth(message),
            entry_types=_entry_types(message),
            full_refresh=_full_refresh(message, request_type),
        )

    def _symbols(self, message: FixMessage) -> tuple[str, ...]:
        symbols = tuple(value.decode("latin-1") for value in message.get_all(tags.SYMBOL))
        if not symbols:
            raise MarketDataRequestError(REJECT_UNKNOWN_SYMBOL, "NoRelatedSym (146) names no Symbol (55)")
        for symbol in symbols:
            if symbol not in self._engine.symbols:
                raise MarketDataRequestError(REJECT_UNKNOWN_SYMBOL, f"Symbol (55) {symbol!r} is not listed")
        return symbols

    # Outgoing messages.

    def _snapshot_body(self, subscription: Subscription, symbol: str) -> list[Field]:
        snapshot = self._engine.market_data(symbol, subscription.depth)
        subscription.sent[symbol] = (snapshot.bids, snapshot.asks)
        entries: list[Field] = []
        count = 0
        for entry_type, levels in ((BID, snapshot.bids), (OFFER, snapshot.asks)):
            if entry_type in subscription.entry_types:
                for position, level in enumerate(levels, start=1):
                    entries += _level_fields(entry_type, level, position)
                    count += 1
        if TRADE in subscription.entry_types and snapshot.last_px is not None:
            entries += _trade_fields(snapshot)
            count += 1
        return [
            (MD_REQ_ID, subscription.md_req_id),
            (tags.SYMBOL, symbol),
            (NO_MD_ENTRIES, count),
            *entries,
        ]

    def _update(
        self, subscription: Subscription, symbol: str, trades: list[Trade]
    ) -> Outgoing | None:
        """Return the W or X for ``subscription`` after a change to ``symbol``, or None."""
        if subscription.full_refresh:
            return MARKET_DATA_SNAPSHOT_FULL_REFRESH, self._snapshot_body(subscription, symbol)

        snapshot = self._engine.market_data(symbol, subscription.depth)
        old_bids, old_asks = subscription.sent.get(symbol, ((), ()))
        entries: list[list[Field]] = []
        if BID in subscription.entry_types:
            entries += _level_changes(BID, symbol, old_bids, snapshot.bids)
        if OFFER in subscription.entry_types:
            entries += _level_changes(OFFER, symbol, old_asks, snapshot.asks)
        if TRADE in subscription.entry_types:
            entries += [_trade_entry(trade) for trade in trades]
        subscription.sent[symbol] = (snapshot.bids, snapshot.asks)
        if not entries:
            return None
        body: list[Field] = [(MD_REQ_ID, subscription.md_req_id), (NO_MD_ENTRIES, len(entries))]
        for entry in entries:
            body += entry
        return MARKET_DATA_INCREMENTAL_REFRESH, body


def _depth(message: FixMessage) -> int:
    raw = message.get_str(MARKET_DEPTH)
    if raw is None or not raw.isdigit():
        raise MarketDataRequestError(
            REJECT_UNSUPPORTED_MARKET_DEPTH, f"MarketDepth (264) must be 0 or more, got {raw!r}"
        )
    depth = int(raw)
    return FULL_BOOK_DEPTH if depth == 0 else depth


def _entry_types(message: FixMessage) -> frozenset[str]:
    entry_types = frozenset(value.decode("latin-1") for value in message.get_all(MD_ENTRY_TYPE))
    unsupported = sorted(entry_types - ENTRY_TYPES)
    if not entry_types or unsupported:
        raise MarketDataRequestError(
            REJECT_UNSUPPORTED_MD_ENTRY_TYPE,
            f"MDEntryType (269) {unsupported or 'missing'} is not supported; send 0, 1 or 2",
        )
    return entry_types


def _full_refresh(message: FixMessage, request_type: str) -> bool:
    update_type = message.get_str(MD_UPDATE_TYPE)
    if request_type == SNAPSHOT or update_type == "0":
        return True
    if update_type in (None, "1"):
        return False
    raise MarketDataRequestError(
        REJECT_UNSUPPORTED_MD_UPDATE_TYPE, f"MDUpdateType (265) {update_type!r} is not supported; send 0 or 1"
    )


def _level_fields(entry_type: str, level: DepthLevel, position: int) -> list[Field]:
    return [
        (MD_ENTRY_TYPE, entry_type),
        (MD_ENTRY_PX, format_price(level.price)),
        (MD_ENTRY_SIZE, level.qty),
        (NUMBER_OF_ORDERS, level.order_count),
        (MD_ENTRY_POSITION_NO, position),
    ]


def _trade_fields(snapshot: MarketDataSnapshot) -> list[Field]:
    return [
        (MD_ENTRY_TYPE, TRADE),
        (MD_ENTRY_PX, format_price(snapshot.last_px)),  # type: ignore[arg-type]
        (MD_ENTRY_SIZE, snapshot.last_qty),
    ]


def _level_changes(
    entry_type: str, symbol: str, old: tuple[DepthLevel, ...], new: tuple[DepthLevel, ...]
) -> list[list[Field]]:
    """Return incremental entries, keyed by price, that turn ``old`` levels into ``new``."""
    old_by_price = {level.price: level for level in old}
    new_by_price = {level.price: level for level in new}
    changes = []
    for price, level in old_by_price.items():
        if price not in new_by_price:
            changes.append(_change(DELETE, entry_type, symbol, level))
    for price, level in new_by_price.items():
        previous = old_by_price.get(price)
        if previous is None:
            changes.append(_change(NEW, entry_type, symbol, level))
        elif previous != level:
            changes.append(_change(CHANGE, entry_type, symbol, level))
    return changes


def _change(action: str, entry_type: str, symbol: str, level: DepthLevel) -> list[Field]:
    fields: list[Field] = [
        (MD_UPDATE_ACTION, action),
        (MD_ENTRY_TYPE, entry_type),
        (tags.SYMBOL, symbol),
        (MD_ENTRY_PX, format_price(level.price)),
    ]
    if action != DELETE:
        fields += [(MD_ENTRY_SIZE, level.qty), (NUMBER_OF_ORDERS, level.order_count)]
    return fields


def _trade_entry(trade: Trade) -> list[Field]:
    return [
        (MD_UPDATE_ACTION, NEW),
        (MD_ENTRY_TYPE, TRADE),
        (tags.SYMBOL, trade.symbol),
        (MD_ENTRY_PX, format_price(trade.price)),
        (MD_ENTRY_SIZE, trade.qty),
    ]


def _reject_body(md_req_id: str, reason: str, text: str) -> list[Field]:
    body: list[Field] = [(MD_REQ_ID, md_req_id or "NONE")]
    if reason:
        body.append((MD_REQ_REJ_REASON, reason))
    body.append((tags.TEXT, text))
    return body
