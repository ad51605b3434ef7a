"""Seeded random commands: the engine against a plain reference model, and determinism.

The reference keeps every resting order in one list and finds the best match by a linear
scan, so it is slow and easy to read. After every command the test compares the fills, the
summary of each execution report and cancel reject, and the BBO and depth of every book.
Raise ``STRESS_OPS`` for a longer run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from engine import (
    CancelOrder,
    CancelReject,
    Command,
    CxlRejReason,
    Event,
    ExecType,
    ExecutionEvent,
    MassCancel,
    MatchingEngine,
    NewOrder,
    OrderStatusRequest,
    OrdRejReason,
    OrdType,
    RejectOrder,
    ReplaceOrder,
    Side,
    TimeInForce,
    Trade,
    command_from_dict,
    command_to_dict,
)

STRESS_OPS = 20_000
SEED = 20240601
SYMBOLS = ("AAA", "BBB")
SESSIONS = ("S1", "S2", "S3")
DEPTH_LEVELS = 10

LIVE = ("NEW", "PARTIALLY_FILLED")


@dataclass
class RefOrder:
    """The reference's view of one order."""

    order_id: str
    session_id: str
    cl_ord_id: str
    symbol: str
    side: Side
    ord_type: OrdType
    time_in_force: TimeInForce
    price: int | None
    order_qty: int
    cum_qty: int = 0
    status: str = "NEW"
    seq: int = 0
    chain: list[str] = field(default_factory=list)

    @property
    def leaves(self) -> int:
        return self.order_qty - self.cum_qty if self.status in LIVE else 0


class ReferenceEngine:
    """Obviously correct, slow model of the engine's rules, producing event summaries.

    A summary is ("exec", order_id, cl_ord_id, exec_type, status, cum_qty, leaves_qty),
    ("trade", symbol, price, qty, aggressor_id, resting_id) or ("reject", reason).
    """

    def __init__(self) -> None:
        self.orders: list[RefOrder] = []
        self.resting: list[RefOrder] = []
        self.latest_use: dict[tuple[str, str], RefOrder] = {}
        self.seq = 0
        self.out: list[tuple[object, ...]] = []

    # Queries.

    def levels(self, symbol: str, side: Side) -> list[tuple[int, int]]:
        totals: dict[int, int] = {}
        for order in self.resting:
            if order.symbol == symbol and order.side is side:
                price = resting_price(order)
                totals[price] = totals.get(price, 0) + order.leaves
        prices = sorted(totals, reverse=side is Side.BUY)
        return [(price, totals[price]) for price in prices]

    def find(self, session_id: str, cl_ord_id: str, order_id: str | None) -> RefOrder | None:
        if order_id is not None:
            for order in self.orders:
                if order.order_id == order_id and order.session_id == session_id:
                    return order
            return None
        return self.latest_use.get((session_id, cl_ord_id))

    def live_holder(self, session_id: str, cl_ord_id: str) -> RefOrder | None:
        holder = self.latest_use.get((session_id, cl_ord_id))
        return holder if holder is not None and holder.status in LIVE else None

    # Commands.

    def process(self, command: Command) -> list[tuple[object, ...]]:
        self.out = []
        if isinstance(command, NewOrder):
            self.new_order(command)
        elif isinstance(command, RejectOrder):
            self.reject(command.order)
        elif isinstance(command, CancelOrder):
            self.cancel(command)
        elif isinstance(command, ReplaceOrder):
            self.replace(command)
        elif isinstance(command, OrderStatusRequest):
            self.status(command)
        elif isinstance(command, MassCancel):
            self.mass_cancel(command)
        return self.out

    def emit(self, order: RefOrder, exec_type: str) -> None:
        self.out.append((
            "exec", order.order_id, order.cl_ord_id, exec_type, order.status,
            order.cum_qty, order.leaves,
        ))

    def new_order_id(self) -> str:
        return f"O{len(self.orders) + 1}"

    def reject(self, command: NewOrder) -> None:
        order = RefOrder(
            self.new_order_id(), command.session_id, command.cl_ord_id, command.symbol,
            command.side, command.ord_type, command.time_in_force, command.price,
            command.order_qty, status="REJECTED",
        )
        self.orders.append(order)
        if self.live_holder(command.session_id, command.cl_ord_id) is None:
            self.latest_use[(command.session_id, command.cl_ord_id)] = order
        self.emit(order, "REJECTED")

    def new_order(self, command: NewOrder) -> None:
        valid_price = (
            command.price is None if command.ord_type is OrdType.MARKET
            else command.price is not None and command.price > 0
        )
        if (
            self.live_holder(command.session_id, command.cl_ord_id) is not None
            or command.symbol not in SYMBOLS
            or command.order_qty <= 0
            or not valid_price
        ):
            self.reject(command)
            return

        order = RefOrder(
            self.new_order_id(), command.session_id, command.cl_ord_id, command.symbol,
            command.side, command.ord_type, command.time_in_force, command.price,
            command.order_qty, chain=[command.cl_ord_id],
        )
        self.orders.append(order)
        self.latest_use[(order.session_id, order.cl_ord_id)] = order
        self.emit(order, "NEW")

        if order.time_in_force is TimeInForce.FOK and self.available(order) < order.order_qty:
            order.status = "CANCELED"
            self.emit(order, "CANCELED")
            return
        self.match(order)
        if order.leaves:
            may_rest = order.ord_type is OrdType.LIMIT and order.time_in_force in (
                TimeInForce.DAY, TimeInForce.GTC,
            )
            if may_rest:
                self.rest(order)
            else:
                order.status = "CANCELED"
                self.emit(order, "CANCELED")

    def acceptable(self, aggressor: RefOrder, resting: RefOrder) -> bool:
        if resting.symbol != aggressor.symbol or resting.side is aggressor.side:
            return False
        if aggressor.price is None:
            return True
        if aggressor.side is Side.BUY:
            return resting_price(resting) <= aggressor.price
        return resting_price(resting) >= aggressor.price

    def available(self, order: RefOrder) -> int:
        return sum(other.leaves for other in self.resting if self.acceptable(order, other))

    def match(self, order: RefOrder) -> None:
        while order.leaves:
            candidates = [other for other in self.resting if self.acceptable(order, other)]
            if not candidates:
                return
            sign = 1 if order.side is Side.BUY else -1
            best = min(candidates, key=lambda other: (sign * resting_price(other), other.seq))
            qty = min(order.leaves, best.leaves)
            order.cum_qty += qty
            best.cum_qty += qty
            order.status = "FILLED" if order.cum_qty == order.order_qty else "PARTIALLY_FILLED"
            best.status = "FILLED" if best.cum_qty == best.order_qty else "PARTIALLY_FILLED"
            if best.status == "FILLED":
                self.resting.remove(best)
            self.emit(order, "TRADE")
            self.emit(best, "TRADE")
            self.out.append(("trade", order.symbol, best.price, qty, order.order_id, best.order_id))

    def rest(self, order: RefOrder) -> None:
        self.seq += 1
        order.seq = self.seq
        self.resting.append(order)

    def change_problem(self, command: CancelOrder | ReplaceOrder) -> tuple[str, RefOrder | None]:
        order = self.find(command.session_id, command.orig_cl_ord_id, command.order_id)
        if order is None:
            return "UNKNOWN_ORDER", None
        if order.symbol != command.symbol or order.side is not command.side:
            return "OTHER", order
        if order.status not in LIVE:
            return "TOO_LATE_TO_CANCEL", order
        if self.live_holder(command.session_id, command.cl_ord_id) is not None:
            return "DUPLICATE_CL_ORD_ID", order
        return "", order

    def take_cl_ord_id(self, order: RefOrder, cl_ord_id: str) -> None:
        order.cl_ord_id = cl_ord_id
        order.chain.append(cl_ord_id)
        self.latest_use[(order.session_id, cl_ord_id)] = order

    def cancel(self, command: CancelOrder) -> None:
        problem, order = self.change_problem(command)
        if problem:
            self.out.append(("reject", problem))
            return
        assert order is not None
        self.take_cl_ord_id(order, command.cl_ord_id)
        self.resting.remove(order)
        order.status = "CANCELED"
        self.emit(order, "CANCELED")

    def replace(self, command: ReplaceOrder) -> None:
        problem, order = self.change_problem(command)
        if not problem:
            assert order is not None
            if (
                command.ord_type is not OrdType.LIMIT
                or command.time_in_force not in (TimeInForce.DAY, TimeInForce.GTC)
                or command.price is None
                or command.price <= 0
                or command.order_qty <= order.cum_qty
            ):
                problem = "OTHER"
        if problem:
            self.out.append(("reject", problem))
            return
        assert order is not None

        self.take_cl_ord_id(order, command.cl_ord_id)
        order.time_in_force = command.time_in_force
        keeps_priority = command.price == order.price and command.order_qty <= order.order_qty
        order.order_qty = command.order_qty
        if keeps_priority:
            self.emit(order, "REPLACED")
            return
        self.resting.remove(order)
        order.price = command.price
        self.emit(order, "REPLACED")
        self.match(order)
        if order.leaves:
            self.rest(order)

    def status(self, command: OrderStatusRequest) -> None:
        order = self.find(command.session_id, command.cl_ord_id, command.order_id)
        if order is None or order.symbol != command.symbol or order.side is not command.side:
            self.out.append(("exec", "NONE", command.cl_ord_id, "ORDER_STATUS", "REJECTED", 0, 0))
            return
        self.emit(order, "ORDER_STATUS")

    def mass_cancel(self, command: MassCancel) -> None:
        targets = [
            order
            for order in self.resting
            if order.session_id == command.session_id
            and command.symbol in (None, order.symbol)
            and command.side in (None, order.side)
        ]
        for order in sorted(targets, key=lambda order: order.seq):
            self.resting.remove(order)
            order.status = "CANCELED"
            self.emit(order, "CANCELED")


def resting_price(order: RefOrder) -> int:
    """Return the price of an order in the book, which is always a limit order."""
    assert order.price is not None, order
    return order.price


def summarise(events: list[Event]) -> list[tuple[object, ...]]:
    summary: list[tuple[object, ...]] = []
    for event in events:
        if isinstance(event, ExecutionEvent):
            summary.append((
                "exec", event.order_id, event.cl_ord_id, event.exec_type.name,
                event.ord_status.name, event.cum_qty, event.leaves_qty,
            ))
        elif isinstance(event, Trade):
            summary.append((
                "trade", event.symbol, event.price, event.qty,
                event.aggressor_order_id, event.resting_order_id,
            ))
        else:
            summary.append(("reject", event.reason.name))
    return summary


class CommandGenerator:
    """Random but plausible commands, aimed at orders the reference knows about."""

    def __init__(self, rng: random.Random, reference: ReferenceEngine) -> None:
        self.rng = rng
        self.reference = reference
        self.counter = 0

    def next_cl_ord_id(self) -> str:
        self.counter += 1
        return f"C{self.counter}"

    def command(self) -> Command:
        roll = self.rng.random()
        if roll < 0.55:
            return self.new_order()
        if roll < 0.67:
            return self.cancel()
        if roll < 0.82:
            return self.replace()
        if roll < 0.88:
            return self.status()
        if roll < 0.885:
            return self.mass_cancel()
        if roll < 0.90:
            return RejectOrder(self.new_order(), OrdRejReason.ORDER_EXCEEDS_LIMIT, "limit")
        return self.odd_new_order()

    def price(self, side: Side) -> int:
        """Return a price that mostly rests and sometimes crosses the spread near 1000."""
        offset = self.rng.randint(-2, 8)
        return 1000 - offset if side is Side.BUY else 1000 + offset

    def new_order(self) -> NewOrder:
        rng = self.rng
        tif = rng.choices(
            [TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK], [60, 15, 15, 10]
        )[0]
        is_market = rng.random() < 0.04
        side = rng.choice((Side.BUY, Side.SELL))
        return NewOrder(
            rng.choice(SESSIONS), self.next_cl_ord_id(), rng.choice(SYMBOLS), side,
            OrdType.MARKET if is_market else OrdType.LIMIT,
            rng.randint(1, 30), None if is_market else self.price(side), tif,
        )

    def odd_new_order(self) -> NewOrder:
        """A new order that reuses a ClOrdID or has a bad symbol, quantity or price."""
        base = self.new_order()
        kind = self.rng.randrange(4)
        if kind == 0 and self.reference.orders:
            target = self.target()
            assert target is not None
            return NewOrder(
                target.session_id, self.rng.choice(target.chain or [target.cl_ord_id]),
                base.symbol, base.side, base.ord_type, base.order_qty, base.price,
            )
        session_id, cl_ord_id, side = base.session_id, base.cl_ord_id, base.side
        if kind == 1:
            return NewOrder(session_id, cl_ord_id, "ZZZ", side, OrdType.LIMIT, 5, 1000)
        if kind == 2:
            return NewOrder(session_id, cl_ord_id, base.symbol, side, OrdType.LIMIT, 0, 1000)
        return NewOrder(session_id, cl_ord_id, base.symbol, side, OrdType.LIMIT, 5, None)

    def target(self) -> RefOrder | None:
        """A resting order most of the time, sometimes any order at all."""
        reference = self.reference
        if reference.resting and self.rng.random() < 0.85:
            return self.rng.choice(reference.resting)
        return self.rng.choice(reference.orders) if reference.orders else None

    def target_fields(self) -> tuple[str, str, str, Side, str | None]:
        """Return session, OrigClOrdID, symbol, side and OrderID for a cancel or replace."""
        rng = self.rng
        order = self.target()
        if order is None or rng.random() < 0.05:
            return rng.choice(SESSIONS), "NOPE", "AAA", Side.BUY, None
        orig = rng.choice(order.chain) if order.chain and rng.random() < 0.2 else order.cl_ord_id
        side = order.side if rng.random() < 0.95 else order.side.opposite
        order_id = order.order_id if rng.random() < 0.1 else None
        session = order.session_id if rng.random() < 0.97 else rng.choice(SESSIONS)
        return session, orig, order.symbol, side, order_id

    def cancel(self) -> CancelOrder:
        session, orig, symbol, side, order_id = self.target_fields()
        return CancelOrder(session, self.next_cl_ord_id(), orig, symbol, side, order_id)

    def replace(self) -> ReplaceOrder:
        rng = self.rng
        session, orig, symbol, side, order_id = self.target_fields()
        order = self.reference.find(session, orig, order_id)
        old_price = order.price if order is not None and order.price else self.price(side)
        old_qty = order.order_qty if order is not None else 10
        price = old_price if rng.random() < 0.5 else self.price(side)
        qty = max(1, old_qty + rng.randint(-8, 8))
        tif = rng.choices([TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC], [70, 25, 5])[0]
        cl_ord_id = orig if rng.random() < 0.02 else self.next_cl_ord_id()
        return ReplaceOrder(
            session, cl_ord_id, orig, symbol, side, OrdType.LIMIT, qty, price, tif, order_id
        )

    def status(self) -> OrderStatusRequest:
        session, orig, symbol, side, order_id = self.target_fields()
        return OrderStatusRequest(session, orig, symbol, side, order_id)

    def mass_cancel(self) -> MassCancel:
        rng = self.rng
        symbol = rng.choice((None, *SYMBOLS))
        side = rng.choice((None, Side.BUY, Side.SELL))
        return MassCancel(rng.choice(SESSIONS), self.next_cl_ord_id(), symbol, side)


def generate_commands(seed: int, count: int) -> list[Command]:
    """Return ``count`` commands, each aimed at the state the previous ones left."""
    reference = ReferenceEngine()
    generator = CommandGenerator(random.Random(seed), reference)
    commands = []
    for _ in range(count):
        command = generator.command()
        reference.process(command)
        commands.append(command)
    return commands


def check_fill_reports(events: list[Event], notional: dict[str, int]) -> None:
    """Check cum_notional against the fills so far, and each TRADE report against its Trade.

    ``notional`` maps OrderID (37) to the sum of price * qty over that order's fills.
    """
    pending: list[ExecutionEvent] = []
    for event in events:
        if isinstance(event, ExecutionEvent) and event.exec_type is ExecType.TRADE:
            previous = notional.get(event.order_id, 0)
            notional[event.order_id] = previous + event.last_px * event.last_qty
            pending.append(event)
        elif isinstance(event, Trade):
            aggressor, resting = pending
            pending = []
            assert aggressor.order_id == event.aggressor_order_id, event
            assert resting.order_id == event.resting_order_id, event
            for report in (aggressor, resting):
                assert report.trade_id == event.trade_id, report
                assert (report.last_px, report.last_qty) == (event.price, event.qty), report

        if isinstance(event, ExecutionEvent) and event.order_id != "NONE":
            assert event.cum_notional == notional.get(event.order_id, 0), event
    assert not pending, pending


def test_engine_matches_reference() -> None:
    engine = MatchingEngine(SYMBOLS)
    reference = ReferenceEngine()
    generator = CommandGenerator(random.Random(SEED), reference)
    notional: dict[str, int] = {}
    trades = 0

    for step in range(STRESS_OPS):
        command = generator.command()
        events = engine.process(command)
        engine.check()
        expected = reference.process(command)

        assert summarise(events) == expected, f"step {step}: {command!r}"
        check_fill_reports(events, notional)
        for symbol in SYMBOLS:
            bids = reference.levels(symbol, Side.BUY)
            asks = reference.levels(symbol, Side.SELL)
            book = engine.book(symbol)
            assert book.depth(DEPTH_LEVELS) == (bids[:DEPTH_LEVELS], asks[:DEPTH_LEVELS]), (
                f"step {step}: {symbol} depth after {command!r}"
            )
            assert book.best_bid() == (bids[0] if bids else None), f"step {step}"
            assert book.best_ask() == (asks[0] if asks else None), f"step {step}"
        trades += sum(isinstance(event, Trade) for event in events)

    # The run must have exercised matching and every reject path, or it proves little.
    assert trades > STRESS_OPS // 10


def test_generated_commands_cover_outcomes() -> None:
    engine = MatchingEngine(SYMBOLS)
    seen: set[object] = set()
    for command in generate_commands(SEED, 5_000):
        for event in engine.process(command):
            if isinstance(event, ExecutionEvent):
                seen.add(event.exec_type.name)
                seen.add(event.ord_rej_reason)
            elif isinstance(event, CancelReject):
                seen.add(event.reason)

    for expected in ("NEW", "TRADE", "CANCELED", "REPLACED", "REJECTED", "ORDER_STATUS"):
        assert expected in seen
    for reason in CxlRejReason.UNKNOWN_ORDER, CxlRejReason.TOO_LATE_TO_CANCEL, CxlRejReason.OTHER:
        assert reason in seen
    assert CxlRejReason.DUPLICATE_CL_ORD_ID in seen
    assert OrdRejReason.DUPLICATE_ORDER in seen
    assert OrdRejReason.UNKNOWN_SYMBOL in seen


@pytest.mark.parametrize("id_prefix", ["", "N1-"])
def test_same_commands_same_events(id_prefix: str) -> None:
    commands = generate_commands(SEED + 1, 3_000)

    first = MatchingEngine(SYMBOLS, id_prefix=id_prefix)
    second = MatchingEngine(SYMBOLS, id_prefix=id_prefix)
    first_events = [first.process(command) for command in commands]
    second_events = [second.process(command) for command in commands]

    assert first_events == second_events
    assert repr(first_events) == repr(second_events)


def test_journal_replay_same_events() -> None:
    commands = generate_commands(SEED + 2, 3_000)
    journal = [command_to_dict(command) for command in commands]

    live = MatchingEngine(SYMBOLS)
    replayed = MatchingEngine(SYMBOLS)
    live_events = [live.process(command) for command in commands]
    replayed_events = [replayed.process(command_from_dict(entry)) for entry in journal]

    assert replayed_events == live_events
    for symbol in SYMBOLS:
        assert replayed.book(symbol).depth(100) == live.book(symbol).depth(100)
