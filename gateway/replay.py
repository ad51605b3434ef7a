"""``fixgw replay``: drive a LOBSTER trading day through real FIX sessions, in lock-step.

Each message-file event becomes FIX traffic from one of three broker sessions:

- new limit order (type 1): a Day NewOrderSingle (D) from the maker session;
- partial cancel (2): an OrderCancelReplaceRequest (G) down to the reduced quantity;
- deletion (3): an OrderCancelRequest (F);
- execution of a visible order (4): an IOC NewOrderSingle from the taker session on the
  opposite side, at the resting order's price and for the executed size, so it trades
  against the resting order;
- hidden executions (5), crosses (6) and halt markers (7) are counted but not sent: they
  do not change the visible book.

After each event the driver waits for the replies (and for the ExecutionReports of every
fill the event caused), then compares the appliance's best bid and offer with the
order-book row of that event.

The message file shows only the orders that entered the book after 09:30 within the
levels the file was cut to. Orders resting before 09:30, and orders added or cancelled at
deeper levels, show up only as unknown order ids and as sizes in the order-book rows. So
the driver reconciles a price when it enters a row's window: the prices from the best to
the last shown level, or the whole side when the row shows fewer levels than the file has.
A price inside the window that the row does not show is empty. Before each event, every
price inside this row's window and outside the previous row's (every price in the window
before the first event) is set to the row's size with the event undone. The seed session
adds an order for missing size, and surplus is cancelled. Events on unknown order ids then
act on these seed orders. Prices that stay inside the window change only through events.

With a level-1 file most moves of the best price bring a new price into the window. So the
summary also gives the BBO agreement over rows whose event needed no reconciling, where
the book reached the row through the event's FIX messages alone.

A level is treated as one pool, because the engine, not the driver, picks which order at
a price a taker fills. A cancel or deletion reduces the named order first, then the level's
other orders: orders LOBSTER has already finished, then seed orders, then the newest. So
the level's total stays right even when a fill went to a different order at that price.

With ``host`` and ``port`` the driver replays against a venue running in another process,
such as ``fixgw serve`` on the files :func:`write_serve_config` writes, and acts only as
the three broker sessions. Those sessions reconnect whenever the venue restarts (see
:mod:`gateway.reconnect`), so each request is processed once even across a crash. The
venue's books are out of reach there, so no BBO agreement is measured, and fills and
rejects are counted from the ExecutionReports the sessions receive. The venue must start
with empty books, because the driver waits for both reports of every trade by checking
that its own orders have bought as much as they have sold.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from sortedcontainers import SortedDict

from engine.orders import PRICE_DECIMALS, PRICE_SCALE, Side, TimeInForce
from gateway.appliance import Appliance
from gateway.demo import broker_sessions, new_audit_path
from gateway.initiator import (
    FixInitiator,
    OrderTracker,
    ReceiveTimeoutError,
    Reply,
    TrackedOrder,
    order_cancel_replace_request,
    order_cancel_request,
)
from gateway.lobster import (
    BookSnapshot,
    EventType,
    LobsterMessage,
    engine_price,
    read_messages,
    read_orderbook,
    symbol_from_path,
)
from gateway.reconnect import ReconnectingInitiator
from gateway.settings import SessionSettings, default_session_settings
from gateway.summary import ReplayFigures, RunSummary, latency_percentiles_us
from gateway.venue import VenueConfig, default_venue_config
from surveillance.risk import InstrumentConfig

__all__ = ["replay_session_settings", "replay_venue_config", "run_replay", "write_serve_config"]

logger = logging.getLogger(__name__)

REPLY_TIMEOUT_S = 10.0
# Against a remote venue a reply may wait for the venue to restart and rebuild its books.
REMOTE_REPLY_TIMEOUT_S = 60.0
# Maker, taker and seed sessions, in the order of the default broker sessions.
_SESSION_COUNT = 3
# Limits wide enough for any recorded order: the collar is the widest allowed (100 %).
_REPLAY_MAX_ORDER_QTY = 10**9
_REPLAY_MAX_NOTIONAL = 10**12 * PRICE_SCALE
_REPLAY_COLLAR_PCT = Decimal(100)
# The audit trail named in the venue file write_serve_config writes; --db overrides it.
_SERVE_AUDIT_DB = "fixgw-audit.sqlite"
_SENT_TYPES = frozenset(
    {EventType.NEW, EventType.PARTIAL_CANCEL, EventType.DELETE, EventType.EXECUTE_VISIBLE}
)


def replay_venue_config(symbol: str, audit_path: Path) -> VenueConfig:
    """Return the default venue with ``symbol`` listed at LOBSTER's price resolution
    ($0.0001) and limits that admit every order of a recorded day."""
    default = default_venue_config(audit_path)
    instrument = InstrumentConfig(
        symbol=symbol,
        tick_size=engine_price(1),
        max_order_qty=_REPLAY_MAX_ORDER_QTY,
        max_notional=_REPLAY_MAX_NOTIONAL,
        collar_pct=_REPLAY_COLLAR_PCT,
    )
    others = tuple(i for i in default.instruments if i.symbol != symbol)
    return VenueConfig(
        name=default.name,
        audit_db=default.audit_db,
        instruments=(instrument, *others),
        surveillance=default.surveillance,
    )


def replay_session_settings(port: int = 0) -> list[SessionSettings]:
    """Return the venue's side of the replay's maker, taker and seed sessions."""
    return default_session_settings(port=port)[:_SESSION_COUNT]


def write_serve_config(folder: Path, symbol: str, port: int) -> tuple[Path, Path]:
    """Write ``sessions.cfg`` and ``venue.toml`` into ``folder`` for ``fixgw serve`` to
    accept a replay of ``symbol``; return their paths.

    The sessions listen on 127.0.0.1 at ``port`` and keep their sequence numbers over
    restarts (ResetOnLogon=N), which a replay that survives a crash needs. The venue lists
    ``symbol`` as :func:`replay_venue_config` does, with its audit trail in ``folder``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sessions_cfg = folder / "sessions.cfg"
    sessions_cfg.write_text(_sessions_cfg_text(replay_session_settings(port)), encoding="utf-8")
    venue_toml = folder / "venue.toml"
    venue_toml.write_text(_venue_toml_text(symbol), encoding="utf-8")
    return sessions_cfg, venue_toml


def _sessions_cfg_text(sessions: list[SessionSettings]) -> str:
    first = sessions[0]
    lines = [
        "[DEFAULT]",
        "ConnectionType=acceptor",
        f"SenderCompID={first.sender_comp_id}",
        f"SocketAcceptHost={first.socket_accept_host}",
        f"SocketAcceptPort={first.socket_accept_port}",
        f"HeartBtInt={first.heartbeat_interval_s}",
        "ResetOnLogon=N",
        "ResetOnLogout=N",
        "ResetOnDisconnect=N",
    ]
    for session in sessions:
        lines += ["", "[SESSION]", f"BeginString={session.begin_string}",
                  f"TargetCompID={session.target_comp_id}"]
    return "\n".join(lines) + "\n"


def _venue_toml_text(symbol: str) -> str:
    instrument = replay_venue_config(symbol, Path(_SERVE_AUDIT_DB)).instruments[0]
    tick_size = Decimal(instrument.tick_size).scaleb(-PRICE_DECIMALS).normalize()
    max_notional = Decimal(instrument.max_notional).scaleb(-PRICE_DECIMALS).normalize()
    return (
        "# Written by fixgw replay for fixgw serve: one instrument at LOBSTER's price\n"
        "# resolution, with limits that admit every order of a recorded day.\n"
        "[venue]\n"
        'name = "fixgw-replay"\n'
        f'audit_db = "{_SERVE_AUDIT_DB}"\n\n'
        "[[instruments]]\n"
        f"symbol = {_toml_string(symbol)}\n"
        f'tick_size = "{tick_size:f}"\n'
        f"max_order_qty = {instrument.max_order_qty}\n"
        f'max_notional = "{max_notional:f}"\n'
        f'collar_pct = "{instrument.collar_pct:f}"\n'
    )


def _toml_string(text: str) -> str:
    # A basic TOML string has JSON's escapes for quotes, backslashes and control characters.
    return json.dumps(text)


async def run_replay(
    message_csv: Path,
    orderbook_csv: Path | None,
    *,
    audit_path: Path | None = None,
    limit: int | None = None,
    host: str | None = None,
    port: int | None = None,
) -> RunSummary:
    """Replay ``message_csv`` (the first ``limit`` events) and return the run summary.

    Without ``orderbook_csv`` nothing is seeded and no agreement is measured: cancels of
    orders that rested before the file starts find no order to act on, and executions of
    them find nothing to trade against. With ``host`` and ``port`` the events go to a
    venue already listening there (see the module docstring), and ``audit_path``, the
    venue's audit trail, is only shown in the summary.
    """
    message_csv = Path(message_csv)
    messages = read_messages(message_csv)[:limit]
    snapshots = _read_snapshots(orderbook_csv, len(messages))
    symbol = symbol_from_path(message_csv)
    if (host is None) != (port is None):
        raise ValueError(f"host {host!r} and port {port!r} go together: give both or neither")
    if host is not None and port is not None:
        return await _run_remote(messages, snapshots, symbol, (host, port), audit_path)
    audit_path = new_audit_path(audit_path, "fixgw-replay-")
    if audit_path.exists():
        raise ValueError(
            f"audit trail {str(audit_path)!r} already exists; the appliance would rebuild its "
            "books from it. Remove it or pass another path"
        )
    venue = replay_venue_config(symbol, audit_path)
    settings = replay_session_settings()

    async with broker_sessions(settings, venue, audit_path) as brokers:
        replayer = _Replayer(brokers.tracker, brokers.initiators, symbol, brokers.appliance)
        started = time.perf_counter()
        await replayer.run(messages, snapshots)
        duration_s = time.perf_counter() - started
        stats = brokers.appliance.stats

    p50, p99 = latency_percentiles_us(brokers.tracker.new_order_latencies_ns)
    return RunSummary(
        sessions=len(settings),
        orders_sent=replayer.orders_sent,
        messages_sent=replayer.requests_sent,
        fills=stats.executions,
        rejects_by_reason=dict(stats.rejects_by_reason),
        alerts=stats.alerts,
        duration_s=duration_s,
        latency_p50_us=p50,
        latency_p99_us=p99,
        audit_path=audit_path,
        replay=replayer.figures(),
        extensions=brokers.appliance.extensions,
    )


async def _run_remote(
    messages: list[LobsterMessage],
    snapshots: list[BookSnapshot] | None,
    symbol: str,
    address: tuple[str, int],
    audit_path: Path | None,
) -> RunSummary:
    async with _remote_sessions(*address) as (initiators, tracker):
        replayer = _Replayer(tracker, initiators, symbol, None)
        started = time.perf_counter()
        await replayer.run(messages, snapshots)
        duration_s = time.perf_counter() - started
    reconnects = sum(initiator.reconnects for initiator in initiators)
    if reconnects:
        logger.info("%s replay: the sessions logged on again %d times", symbol, reconnects)

    p50, p99 = latency_percentiles_us(tracker.new_order_latencies_ns)
    return RunSummary(
        sessions=len(initiators),
        orders_sent=replayer.orders_sent,
        messages_sent=replayer.requests_sent,
        # Both sides of every trade are the replay's own orders.
        fills=sum(tracker.fills_by_session.values()) // 2,
        rejects_by_reason=dict(tracker.rejects),
        # Surveillance alerts stay in the venue's audit trail.
        alerts=0,
        duration_s=duration_s,
        latency_p50_us=p50,
        latency_p99_us=p99,
        audit_path=audit_path or Path(f"kept by the venue at {address[0]}:{address[1]}"),
        replay=replayer.figures(),
    )


@contextlib.asynccontextmanager
async def _remote_sessions(
    host: str, port: int
) -> AsyncIterator[tuple[list[ReconnectingInitiator], OrderTracker]]:
    """Log the replay's sessions on to the venue at ``host``:``port``, one tracker for all."""
    tracker = OrderTracker()
    initiators: list[ReconnectingInitiator] = []
    try:
        for settings in replay_session_settings(port):
            initiator = ReconnectingInitiator(
                host, port, begin_string=settings.begin_string,
                sender_comp_id=settings.target_comp_id, target_comp_id=settings.sender_comp_id,
                heartbeat_interval_s=settings.heartbeat_interval_s,
            )
            await initiator.logon()
            initiators.append(initiator)
            tracker.watch(initiator)  # type: ignore[arg-type]
        yield initiators, tracker
    finally:
        await asyncio.gather(*(initiator.logout() for initiator in initiators))
        await tracker.close()


def _read_snapshots(orderbook_csv: Path | None, events: int) -> list[BookSnapshot] | None:
    if orderbook_csv is None:
        return None
    snapshots = read_orderbook(Path(orderbook_csv))[:events]
    if len(snapshots) < events:
        raise ValueError(
            f"order-book file {str(orderbook_csv)!r} has {len(snapshots)} rows for {events} "
            "events; LOBSTER writes one row per message, so pass the matching pair of files"
        )
    return snapshots


class _Kind(enum.Enum):
    """Role of one of the driver's resting orders."""

    LOBSTER = "lobster"  # a message-file order LOBSTER still shows resting
    FINISHED = "finished"  # LOBSTER deleted or filled it; size left here belongs to the level
    SEED = "seed"  # size the message file does not account for, from the order-book file


@dataclass(slots=True)
class _Resting:
    """One of the driver's orders resting at a level; ``cl_ord_id`` follows replaces."""

    cl_ord_id: str
    initiator: FixInitiator | ReconnectingInitiator
    side: Side
    price: int  # LOBSTER units
    kind: _Kind
    lobster_remaining: int = 0


class _Replayer:
    """Lock-step replay state: the driver's orders by level and the running figures."""

    def __init__(
        self,
        tracker: OrderTracker,
        initiators: Sequence[FixInitiator | ReconnectingInitiator],
        symbol: str,
        appliance: Appliance | None,
    ) -> None:
        """``appliance`` is the in-process venue, None for a venue in another process."""
        self.tracker = tracker
        self.maker, self.taker, self.seed = initiators[:_SESSION_COUNT]
        self.symbol = symbol
        self.appliance = appliance
        self.book = appliance.engine.book(symbol) if appliance is not None else None
        self.reply_timeout_s = REPLY_TIMEOUT_S if appliance is not None else REMOTE_REPLY_TIMEOUT_S
        # The driver's resting orders per side and LOBSTER price, oldest first.
        self.levels: dict[Side, SortedDict[int, list[_Resting]]] = {
            Side.BUY: SortedDict(),
            Side.SELL: SortedDict(),
        }
        self.by_lobster_id: dict[int, _Resting] = {}
        self._cl_ord_ids = (f"R{n}" for n in itertools.count(1))

        self.events_by_type: Counter[int] = Counter()
        self.events_sent = 0
        self.orders_sent = 0
        self.requests_sent = 0
        self.bbo_compared = 0
        self.bbo_agreed = 0
        self.bbo_compared_unreconciled = 0
        self.bbo_agreed_unreconciled = 0
        self.executions = 0
        self.executions_reproduced = 0
        self.order_rejects = 0
        self.cancel_rejects = 0
        self.reconciled_levels = 0
        self.reconciled_qty = 0
        self.unmatched_cancel_qty = 0

    def figures(self) -> ReplayFigures:
        return ReplayFigures(
            symbol=self.symbol,
            events_by_type=dict(self.events_by_type),
            events_sent=self.events_sent,
            bbo_compared=self.bbo_compared,
            bbo_agreed=self.bbo_agreed,
            bbo_compared_unreconciled=self.bbo_compared_unreconciled,
            bbo_agreed_unreconciled=self.bbo_agreed_unreconciled,
            executions=self.executions,
            executions_reproduced=self.executions_reproduced,
            order_rejects=self.order_rejects,
            cancel_rejects=self.cancel_rejects,
            reconciled_levels=self.reconciled_levels,
            reconciled_qty=self.reconciled_qty,
            unmatched_cancel_qty=self.unmatched_cancel_qty,
        )

    async def run(self, messages: list[LobsterMessage], snapshots: list[BookSnapshot] | None) -> None:
        previous: BookSnapshot | None = None
        for index, message in enumerate(messages):
            snapshot = snapshots[index] if snapshots is not None else None
            reconciled_before = self.reconciled_levels
            if snapshot is not None:
                await self._reconcile(message, snapshot, previous)
            await self._replay_event(index, message)
            if snapshot is not None:
                self._compare_bbo(snapshot, reconciled=self.reconciled_levels > reconciled_before)
            previous = snapshot
        if self.unmatched_cancel_qty:
            logger.warning(
                "%s replay: %d shares of cancels found no order at their level",
                self.symbol, self.unmatched_cancel_qty,
            )

    # One event.

    async def _replay_event(self, index: int, message: LobsterMessage) -> None:
        self.events_by_type[message.event_type] += 1
        if message.event_type not in _SENT_TYPES:
            return
        self.events_sent += 1
        try:
            if message.event_type is EventType.NEW:
                await self._on_new(message)
            elif message.event_type is EventType.EXECUTE_VISIBLE:
                await self._on_execute(message)
            else:
                await self._on_cancel(message)
        except ReceiveTimeoutError as exc:
            raise ReceiveTimeoutError(f"{self.symbol} event {index + 1} {message!r}: {exc}") from exc

    async def _on_new(self, message: LobsterMessage) -> None:
        resting = _Resting(
            next(self._cl_ord_ids), self.maker, message.side, message.price, _Kind.LOBSTER, message.size
        )
        if await self._add(resting, message.size):
            self.by_lobster_id[message.order_id] = resting

    async def _on_cancel(self, message: LobsterMessage) -> None:
        named = self._take_from_named(message)
        await self._reduce(message.side, message.price, message.size, named)

    def _take_from_named(self, message: LobsterMessage) -> _Resting | None:
        """Book ``message``'s size against the order it names; None for an unknown id."""
        named = self.by_lobster_id.get(message.order_id)
        if named is None:
            return None
        named.lobster_remaining -= message.size
        if message.event_type is EventType.DELETE or named.lobster_remaining <= 0:
            # Any size the engine still shows for it belongs to the level's pool.
            del self.by_lobster_id[message.order_id]
            named.kind = _Kind.FINISHED
        return named

    async def _on_execute(self, message: LobsterMessage) -> None:
        self.executions += 1
        self._take_from_named(message)
        taker = TrackedOrder(
            session_id=self.taker.session_id,
            cl_ord_id=next(self._cl_ord_ids),
            symbol=self.symbol,
            side=message.side.opposite,
            price=engine_price(message.price),
            order_qty=message.size,
            time_in_force=TimeInForce.IOC,
        )
        reply = await self._send_order(self.taker, taker)
        await self._settle([reply], lambda: not taker.is_open, f"IOC {taker.cl_ord_id} to finish")
        expected_px = engine_price(message.price)
        if sum(qty for qty, _ in taker.fills) == message.size and all(
            px == expected_px for _, px in taker.fills
        ):
            self.executions_reproduced += 1

    # Level operations.

    async def _add(self, resting: _Resting, qty: int) -> bool:
        """Send ``resting`` as a Day limit order of ``qty``; return True if it rests."""
        order = TrackedOrder(
            session_id=resting.initiator.session_id,
            cl_ord_id=resting.cl_ord_id,
            symbol=self.symbol,
            side=resting.side,
            price=engine_price(resting.price),
            order_qty=qty,
        )
        reply = await self._send_order(resting.initiator, order)
        await self._settle([reply], lambda: True, f"NewOrderSingle {order.cl_ord_id} to be acknowledged")
        if not order.is_open:
            return False
        self.levels[resting.side].setdefault(resting.price, []).append(resting)
        return True

    async def _reduce(self, side: Side, price: int, qty: int, named: _Resting | None) -> None:
        """Take ``qty`` off the level, from ``named`` first (see the module docstring)."""
        level = self.levels[side].get(price)
        replies: list[asyncio.Future[Reply]] = []
        for resting in self._reduction_order(level, named):
            if qty <= 0:
                break
            order = self.tracker.orders.get(resting.cl_ord_id)
            if order is None or not order.is_open:
                continue
            take = min(qty, order.leaves_qty)
            replies.append(await self._send_reduction(resting, order, take))
            qty -= take
        self.unmatched_cancel_qty += max(qty, 0)
        if replies:
            await self._settle(replies, lambda: True, f"cancels at {side.name} {price}")
        self._prune(side, price)

    def _reduction_order(self, level: list[_Resting] | None, named: _Resting | None) -> list[_Resting]:
        first = [named] if named is not None else []
        if level is None:
            return first
        newest_first = [r for r in reversed(level) if r is not named]
        by_kind = sorted(newest_first, key=lambda r: _REDUCTION_PREFERENCE[r.kind])
        return first + by_kind

    async def _send_reduction(self, resting: _Resting, order: TrackedOrder, take: int) -> asyncio.Future[Reply]:
        """Cancel ``order`` if ``take`` is all it has left, else replace it down by ``take``."""
        cl_ord_id = next(self._cl_ord_ids)
        begin_string = resting.initiator.begin_string
        if take >= order.leaves_qty:
            msg_type = "F"
            fields = order_cancel_request(
                begin_string,
                cl_ord_id=cl_ord_id,
                orig_cl_ord_id=order.cl_ord_id,
                symbol=self.symbol,
                side=order.side,
                order_qty=order.order_qty,
            )
        else:
            msg_type = "G"
            fields = order_cancel_replace_request(
                begin_string,
                cl_ord_id=cl_ord_id,
                orig_cl_ord_id=order.cl_ord_id,
                symbol=self.symbol,
                side=order.side,
                order_qty=order.order_qty - take,
                price=order.price,
            )
        self.requests_sent += 1
        reply = await self.tracker.send_request(
            resting.initiator, msg_type, fields, cl_ord_id  # type: ignore[arg-type]
        )
        reply.add_done_callback(lambda future: self._on_reduction_reply(resting, cl_ord_id, future))
        return reply

    def _on_reduction_reply(self, resting: _Resting, cl_ord_id: str, reply: asyncio.Future[Reply]) -> None:
        if reply.result().is_reject:
            self.cancel_rejects += 1
        else:
            resting.cl_ord_id = cl_ord_id

    async def _reconcile(
        self, message: LobsterMessage, snapshot: BookSnapshot, previous: BookSnapshot | None
    ) -> None:
        """Seed or adjust the prices that enter the row's window with this event.

        The window is described in the module docstring. Each entering price is set to the
        row's size at that price with the event undone, which is 0 for a price not shown.
        """
        for side, levels, previous_levels in (
            (Side.SELL, snapshot.asks, previous.asks if previous else None),
            (Side.BUY, snapshot.bids, previous.bids if previous else None),
        ):
            sizes = dict(levels)
            entering = _entering(side, levels, previous_levels, snapshot.levels)
            bounds = entering.bounds()
            if bounds is None:
                continue
            prices = {price for price in sizes if price in entering}
            prices.update(price for price in self.levels[side].irange(*bounds) if price in entering)
            for price in sorted(prices):
                target = sizes.get(price, 0) - _effect(message, side, price)
                await self._reconcile_level(side, price, target)

    async def _reconcile_level(self, side: Side, price: int, target: int) -> None:
        difference = max(target, 0) - self._level_qty(side, price)
        if difference == 0:
            return
        self.reconciled_levels += 1
        self.reconciled_qty += abs(difference)
        if difference > 0:
            seed = _Resting(next(self._cl_ord_ids), self.seed, side, price, _Kind.SEED)
            await self._add(seed, difference)
        else:
            await self._reduce(side, price, -difference, None)

    def _level_qty(self, side: Side, price: int) -> int:
        level = self.levels[side].get(price)
        if level is None:
            return 0
        return sum(
            order.leaves_qty
            for resting in level
            if (order := self.tracker.orders.get(resting.cl_ord_id)) is not None and order.is_open
        )

    def _prune(self, side: Side, price: int) -> None:
        """Drop closed orders from a level, and the level once it is empty."""
        level = self.levels[side].get(price)
        if level is None:
            return
        level[:] = [resting for resting in level if self._is_open(resting)]
        if not level:
            del self.levels[side][price]

    def _is_open(self, resting: _Resting) -> bool:
        order = self.tracker.orders.get(resting.cl_ord_id)
        return order is not None and order.is_open

    # Waiting and comparing.

    async def _send_order(
        self, initiator: FixInitiator | ReconnectingInitiator, order: TrackedOrder
    ) -> asyncio.Future[Reply]:
        self.orders_sent += 1
        self.requests_sent += 1
        reply = await self.tracker.send_new_order(initiator, order)  # type: ignore[arg-type]
        reply.add_done_callback(self._count_order_reject)
        return reply

    def _count_order_reject(self, reply: asyncio.Future[Reply]) -> None:
        if reply.result().is_reject:
            self.order_rejects += 1

    async def _settle(
        self, replies: Iterable[asyncio.Future[Reply]], done: Callable[[], bool], expecting: str
    ) -> None:
        """Wait for every reply, for ``done()``, and for both reports of every trade."""
        try:
            await asyncio.wait_for(asyncio.gather(*replies), self.reply_timeout_s)
        except TimeoutError:
            raise ReceiveTimeoutError(
                f"timed out after {self.reply_timeout_s} s waiting for {expecting}"
            ) from None
        await self.tracker.wait_until(
            lambda: done() and self._have_fill_reports(),
            self.reply_timeout_s,
            expecting=f"{expecting} and the fill reports of every trade",
        )

    def _have_fill_reports(self) -> bool:
        """Return whether both fill ExecutionReports of every trade so far have arrived."""
        if self.appliance is not None:
            # The engine has already counted the trade when the first reply arrives.
            fills = sum(self.tracker.fills_by_session.values())
            return fills >= 2 * self.appliance.stats.executions
        # Every trade is between two of the replay's orders, so once both reports of each
        # have arrived its orders have bought as much as they have sold. A later fill
        # report of the same request could still be on its way when the totals balance,
        # but the venue writes one request's reports to a session together.
        filled = {Side.BUY: 0, Side.SELL: 0}
        for order in self.tracker.orders.values():
            filled[order.side] += order.cum_qty
        return filled[Side.BUY] == filled[Side.SELL]

    def _compare_bbo(self, snapshot: BookSnapshot, *, reconciled: bool) -> None:
        if self.book is None:
            return
        agrees = _same_level(self.book.best_bid(), snapshot.best_bid) and _same_level(
            self.book.best_ask(), snapshot.best_ask
        )
        self.bbo_compared += 1
        self.bbo_agreed += agrees
        if not reconciled:
            self.bbo_compared_unreconciled += 1
            self.bbo_agreed_unreconciled += agrees


# Order in which a level's orders give up size to a cancel that does not name them.
_REDUCTION_PREFERENCE = {_Kind.FINISHED: 0, _Kind.SEED: 1, _Kind.LOBSTER: 2}


@dataclass(frozen=True, slots=True)
class _Entering:
    """Prices inside one side's window in this row and outside it in the previous row."""

    side: Side
    edge: int | None  # last price of this row's window; None when the whole side is shown
    previous_edge: int | None
    has_previous: bool

    def __contains__(self, price: int) -> bool:
        if not self.has_previous:
            return self._inside(price, self.edge)
        if self.previous_edge is None:
            return False
        return self._inside(price, self.edge) and not self._inside(price, self.previous_edge)

    def bounds(self) -> tuple[int | None, int | None] | None:
        """Return inclusive (low, high) bounds around the entering prices, for ``irange``,
        or None when no price can enter."""
        if self.has_previous and self.previous_edge is None:
            return None
        if self.side is Side.SELL:
            return self.previous_edge, self.edge
        return self.edge, self.previous_edge

    def _inside(self, price: int, edge: int | None) -> bool:
        # Asks are shown from the lowest price up, bids from the highest down.
        return edge is None or (price <= edge if self.side is Side.SELL else price >= edge)


def _entering(
    side: Side,
    levels: tuple[tuple[int, int], ...],
    previous_levels: tuple[tuple[int, int], ...] | None,
    depth: int,
) -> _Entering:
    return _Entering(
        side=side,
        edge=_window_edge(levels, depth),
        previous_edge=_window_edge(previous_levels, depth) if previous_levels is not None else None,
        has_previous=previous_levels is not None,
    )


def _window_edge(levels: tuple[tuple[int, int], ...], depth: int) -> int | None:
    """Return the last shown price of a side cut at ``depth`` levels, None if not cut."""
    return levels[-1][0] if len(levels) >= depth else None


def _effect(message: LobsterMessage, side: Side, price: int) -> int:
    """Return how much ``message`` changed the size at ``price`` on ``side``."""
    if message.side is not side or message.price != price or message.event_type not in _SENT_TYPES:
        return 0
    return message.size if message.event_type is EventType.NEW else -message.size


def _same_level(engine_level: tuple[int, int] | None, lobster_level: tuple[int, int] | None) -> bool:
    if engine_level is None or lobster_level is None:
        return engine_level is None and lobster_level is None
    price, qty = lobster_level
    return engine_level == (engine_price(price), qty)
