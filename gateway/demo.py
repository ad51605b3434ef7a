"""``fixgw demo``: the appliance on built-in defaults, traded by simulated brokers over TCP.

The appliance listens on an ephemeral port on 127.0.0.1. Each broker session logs on with
:class:`~gateway.initiator.FixInitiator` and sends a seeded random order flow for the given
time. The flow has limit orders a few ticks around a drifting mid price, some of them
crossing the spread, and cancels and replaces of the session's own resting orders. Now and
then it sends an order the risk gate must reject: a quantity above the limit, an unknown
symbol, or a price outside the collar. Each session keeps up to :data:`WINDOW` requests in flight. Then the brokers log out, the
appliance stops, and the run's :class:`~gateway.summary.RunSummary` is returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from engine.orders import PRICE_SCALE, Side
from gateway.appliance import Appliance
from gateway.initiator import (
    FixInitiator,
    OrderTracker,
    Reply,
    TrackedOrder,
    order_cancel_replace_request,
    order_cancel_request,
)
from gateway.settings import SessionSettings, default_session_settings
from gateway.summary import RunSummary, latency_percentiles_us
from gateway.venue import DEFAULT_MAX_ORDER_QTY, VenueConfig, default_venue_config

__all__ = ["WINDOW", "broker_sessions", "run_demo"]

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
MAX_SESSIONS = 4
# Requests one session keeps in flight before it waits for a reply. The brokers and the
# appliance share one Python process, so a deeper window mostly adds queueing delay: on a
# 2-core machine, a window of 4 gave about 3 % more orders/s at 3 times the p50 latency.
WINDOW = 1
REPLY_TIMEOUT_S = 10.0

# Starting mid prices of the built-in instruments, in currency units.
_START_MIDS = {"AAPL": 190, "AMZN": 180, "MSFT": 420, "GOOG": 170, "IBM": 185}
_TICK = PRICE_SCALE // 100
_UNKNOWN_SYMBOL = "ZZZZ"

# Share of a session's orders on its own side of an instrument. Sessions lean to one side
# so that most trades are between two brokers. The rest can cross the session's own
# orders, and the wash-trade monitor raises an alert for each such trade.
_PREFERRED_SIDE_SHARE = 0.97

# Action weights per request: new limit order, cancel, replace, risk reject.
_ACTIONS = ("new", "cancel", "replace", "reject")
_ACTION_WEIGHTS = (70, 12, 12, 2)


@dataclass
class BrokerSessions:
    """A running appliance and the logged-on broker sessions connected to it."""

    appliance: Appliance
    initiators: list[FixInitiator]
    tracker: OrderTracker


def initiator_for(settings: SessionSettings, port: int) -> FixInitiator:
    """Return the broker-side initiator for one acceptor session of the appliance."""
    return FixInitiator(
        LOOPBACK,
        port,
        begin_string=settings.begin_string,
        sender_comp_id=settings.target_comp_id,
        target_comp_id=settings.sender_comp_id,
        heartbeat_interval_s=settings.heartbeat_interval_s,
    )


@contextlib.asynccontextmanager
async def broker_sessions(
    sessions: list[SessionSettings], venue: VenueConfig, audit_path: Path
) -> AsyncIterator[BrokerSessions]:
    """Start an appliance, log every session on and watch them with one tracker.

    On exit the sessions log out and the appliance stops, which commits the audit trail.
    """
    appliance = Appliance(sessions, venue, audit_path=audit_path)
    ports = await appliance.start()
    tracker = OrderTracker()
    initiators: list[FixInitiator] = []
    try:
        for settings in sessions:
            initiator = initiator_for(settings, ports[settings.session_id])
            await initiator.logon()
            initiators.append(initiator)
            tracker.watch(initiator)
        yield BrokerSessions(appliance, initiators, tracker)
    finally:
        await asyncio.gather(*(initiator.logout() for initiator in initiators))
        await tracker.close()
        await appliance.stop()


def new_audit_path(audit_path: Path | None, prefix: str) -> Path:
    """Return ``audit_path``, or a fresh file in a new temporary folder that is kept."""
    if audit_path is not None:
        return Path(audit_path)
    return Path(tempfile.mkdtemp(prefix=prefix)) / "audit.sqlite"


async def run_demo(
    *, seconds: float = 5.0, sessions: int = 4, audit_path: Path | None = None, seed: int = 1
) -> RunSummary:
    """Run the demo for ``seconds`` of order flow with ``sessions`` brokers (1 to 4)."""
    if not 1 <= sessions <= MAX_SESSIONS:
        raise ValueError(f"sessions must be from 1 to {MAX_SESSIONS}, got {sessions!r}")
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds!r}")
    audit_path = new_audit_path(audit_path, "fixgw-demo-")
    venue = default_venue_config(audit_path)
    settings = default_session_settings(port=0)[:sessions]
    rng = random.Random(seed)
    market = _Market({symbol: mid * PRICE_SCALE for symbol, mid in _START_MIDS.items()}, rng)
    # A run prefix keeps ClOrdIDs unique when the demo reuses an audit trail.
    run_id = f"{int(time.time() * 1000) % 10**8:08d}"

    async with broker_sessions(settings, venue, audit_path) as brokers:
        flows = [
            _SessionFlow(
                initiator, brokers.tracker, market, random.Random(rng.random()), f"{run_id}-{n}-", n
            )
            for n, initiator in enumerate(brokers.initiators, start=1)
        ]
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(*(flow.run(deadline) for flow in flows))
        duration_s = time.perf_counter() - started
        stats = brokers.appliance.stats

    p50, p99 = latency_percentiles_us(brokers.tracker.new_order_latencies_ns)
    return RunSummary(
        sessions=sessions,
        orders_sent=sum(flow.orders_sent for flow in flows),
        messages_sent=sum(flow.requests_sent for flow in flows),
        fills=stats.executions,
        rejects_by_reason=dict(stats.rejects_by_reason),
        alerts=stats.alerts,
        duration_s=duration_s,
        latency_p50_us=p50,
        latency_p99_us=p99,
        audit_path=audit_path,
        extensions=brokers.appliance.extensions,
    )


@dataclass
class _Market:
    """Mid prices the brokers quote around; each new order moves its mid by up to a tick."""

    mids: dict[str, int]
    rng: random.Random
    traded: set[str] = field(default_factory=set)

    def next_mid(self, symbol: str) -> int:
        self.mids[symbol] += self.rng.choice((-_TICK, 0, _TICK))
        return self.mids[symbol]


class _SessionFlow:
    """One broker's order flow, with up to WINDOW requests awaiting their first reply."""

    def __init__(
        self,
        initiator: FixInitiator,
        tracker: OrderTracker,
        market: _Market,
        rng: random.Random,
        cl_ord_id_prefix: str,
        number: int,
    ) -> None:
        self.initiator = initiator
        self.tracker = tracker
        self.market = market
        self.rng = rng
        self.orders_sent = 0
        self.requests_sent = 0
        self._cl_ord_ids = (f"{cl_ord_id_prefix}{n}" for n in itertools.count(1))
        # ClOrdIDs of this session's orders that may still rest; closed ones are pruned lazily.
        self._live: list[str] = []
        self._in_flight = asyncio.Semaphore(WINDOW)
        # Odd sessions lean to buying the 1st, 3rd, 5th instrument, even ones to selling it.
        self._preferred_side = {
            symbol: Side.BUY if (number + k) % 2 == 0 else Side.SELL
            for k, symbol in enumerate(market.mids)
        }
        self._replies: set[asyncio.Future[Reply]] = set()

    async def run(self, deadline: float) -> None:
        while time.perf_counter() < deadline:
            await self._in_flight.acquire()
            reply = await self._send_next(self.rng.choices(_ACTIONS, _ACTION_WEIGHTS)[0])
            self.requests_sent += 1
            self._replies.add(reply)
            reply.add_done_callback(self._on_reply)
        if self._replies:
            await self.tracker.wait_until(
                lambda: all(reply.done() for reply in self._replies),
                REPLY_TIMEOUT_S,
                expecting=f"{self.initiator.session_id}: replies to {len(self._replies)} requests",
            )

    async def _send_next(self, action: str) -> asyncio.Future[Reply]:
        if action == "reject":
            return await self._send_rejected_order()
        target = self._pick_live_order() if action in ("cancel", "replace") else None
        if target is None:
            return await self._send_limit_order()
        if action == "cancel":
            return await self._send_cancel(target)
        return await self._send_replace(target)

    def _on_reply(self, reply: asyncio.Future[Reply]) -> None:
        self._replies.discard(reply)
        self._in_flight.release()

    def _pick_live_order(self) -> TrackedOrder | None:
        while self._live:
            index = self.rng.randrange(len(self._live))
            order = self.tracker.orders.get(self._live[index])
            # Swap-remove, so that picking stays O(1).
            self._live[index] = self._live[-1]
            self._live.pop()
            if order is not None and order.is_open and order.order_id:
                # Kept listed: if the venue rejects the change, the order still rests
                # under this ClOrdID; if it accepts, the ClOrdID is pruned later.
                self._live.append(order.cl_ord_id)
                return order
        return None

    async def _send_limit_order(self) -> asyncio.Future[Reply]:
        symbol = self.rng.choice(list(self.market.mids))
        side = self._preferred_side[symbol]
        if self.rng.random() > _PREFERRED_SIDE_SHARE:
            side = side.opposite
        # Buys from 5 ticks below to 2 above the mid, sells the mirror image, so about a
        # quarter of the orders cross the spread and trade.
        offset = self.rng.randint(-5, 2) * _TICK
        mid = self.market.next_mid(symbol)
        price = mid + offset if side is Side.BUY else mid - offset
        order = self._order(symbol, side, price, self.rng.randint(1, 10) * 100)
        self._live.append(order.cl_ord_id)
        return await self._send_order(order)

    async def _send_rejected_order(self) -> asyncio.Future[Reply]:
        symbol = self.rng.choice(list(self.market.mids))
        mid = self.market.mids[symbol]
        kind = self.rng.choice(("oversize", "unknown symbol", "collar"))
        if kind == "oversize":
            order = self._order(symbol, Side.BUY, mid - 10 * _TICK, 2 * DEFAULT_MAX_ORDER_QTY)
        elif kind == "unknown symbol":
            order = self._order(_UNKNOWN_SYMBOL, Side.BUY, mid, 100)
        else:
            # Half the mid is outside the default collar once the instrument has traded.
            order = self._order(symbol, Side.BUY, mid // 2 // _TICK * _TICK, 100)
        return await self._send_order(order)

    async def _send_cancel(self, order: TrackedOrder) -> asyncio.Future[Reply]:
        cl_ord_id = next(self._cl_ord_ids)
        fields = order_cancel_request(
            self.initiator.begin_string,
            cl_ord_id=cl_ord_id,
            orig_cl_ord_id=order.cl_ord_id,
            symbol=order.symbol,
            side=order.side,
            order_qty=order.order_qty,
        )
        return await self.tracker.send_request(self.initiator, "F", fields, cl_ord_id)

    async def _send_replace(self, order: TrackedOrder) -> asyncio.Future[Reply]:
        cl_ord_id = next(self._cl_ord_ids)
        new_qty = order.cum_qty + max(1, order.leaves_qty + self.rng.choice((-100, 100)))
        price = order.price + self.rng.choice((-_TICK, 0, _TICK)) if order.price else None
        fields = order_cancel_replace_request(
            self.initiator.begin_string,
            cl_ord_id=cl_ord_id,
            orig_cl_ord_id=order.cl_ord_id,
            symbol=order.symbol,
            side=order.side,
            order_qty=new_qty,
            price=price,
        )
        # The replaced order lives on under the new ClOrdID if the venue accepts it.
        self._live.append(cl_ord_id)
        return await self.tracker.send_request(self.initiator, "G", fields, cl_ord_id)

    def _order(self, symbol: str, side: Side, price: int, order_qty: int) -> TrackedOrder:
        return TrackedOrder(
            session_id=self.initiator.session_id,
            cl_ord_id=next(self._cl_ord_ids),
            symbol=symbol,
            side=side,
            price=price,
            order_qty=order_qty,
        )

    async def _send_order(self, order: TrackedOrder) -> asyncio.Future[Reply]:
        self.orders_sent += 1
        return await self.tracker.send_new_order(self.initiator, order)
