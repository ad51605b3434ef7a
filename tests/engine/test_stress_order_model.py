"""Seeded random commands over the full order model, against a plain reference model.

The commands cover every order type and time in force, icebergs, post-only orders under
both policies, MinQty (110), self-match prevention in all three modes, tick, lot and
price limits, GTD expiry by time and date, end of day, and trading phases with auction
uncrosses. The reference keeps every live order in one list and finds each match by a
linear scan; FOK and MinQty decide on a dry run of the match on a copy of the book.

After every command the test runs ``engine.check()`` and compares the event summaries,
the depth of every book and the last trade price. ``ENGINE_STRESS_OPS`` sets the number
of commands (default 20,000); the full run is ``ENGINE_STRESS_OPS=100000``.
"""

from __future__ import annotations

import copy
import os
import random
from dataclasses import dataclass, field

from engine import (
    AdvanceTime,
    CancelOrder,
    CancelReject,
    Command,
    EndOfDay,
    Event,
    ExecutionEvent,
    Firm,
    Instrument,
    MassCancel,
    MatchingEngine,
    NewOrder,
    OrderStatusRequest,
    OrdRejReason,
    OrdType,
    PostOnlyPolicy,
    RejectOrder,
    ReplaceOrder,
    SelfMatchPrevention,
    SetTradingPhase,
    Side,
    TimeInForce,
    Trade,
    TradingPhase,
)

STRESS_OPS = int(os.environ.get("ENGINE_STRESS_OPS", "20000"))
SEED = 20240617
DEPTH_LEVELS = 10
BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET, STOP, STOP_LIMIT = OrdType.LIMIT, OrdType.MARKET, OrdType.STOP, OrdType.STOP_LIMIT
DAY, GTC, IOC, FOK, GTD = (
    TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTD,
)
RESTING_TIF = (DAY, GTC, GTD)
LIVE = ("NEW", "PARTIALLY_FILLED")

INSTRUMENTS = (
    Instrument("AAA", tick_size=1, lot_size=1, low_limit_price=900, high_limit_price=1100,
               reference_price=1000, post_only_policy=PostOnlyPolicy.REJECT),
    Instrument("BBB", tick_size=2, lot_size=5, reference_price=1000,
               post_only_policy=PostOnlyPolicy.REPRICE),
)
BY_SYMBOL = {instrument.symbol: instrument for instrument in INSTRUMENTS}


def rules(symbol: str) -> Instrument:
    """Return the instrument's rules; commands aimed at rejected orders may name "ZZZ"."""
    return BY_SYMBOL.get(symbol, INSTRUMENTS[0])
FIRMS = (
    Firm("F1", ("S1", "S2"), SelfMatchPrevention.CANCEL_RESTING),
    Firm("F2", ("S3",), SelfMatchPrevention.CANCEL_INCOMING),
    Firm("F3", ("S4",), SelfMatchPrevention.CANCEL_BOTH),
)
FIRM_OF = {session: firm for firm in FIRMS for session in firm.session_ids}
SESSIONS = ("S1", "S2", "S3", "S4", "S5")


@dataclass
class RefOrder:
    """The reference's view of one order."""

    order_id: str
    num: int
    session_id: str
    cl_ord_id: str
    symbol: str
    side: Side
    ord_type: OrdType
    tif: TimeInForce
    price: int | None
    order_qty: int
    stop_px: int | None = None
    display_qty: int = 0
    min_qty: int = 0
    post_only: bool = False
    expire_time_us: int | None = None
    expire_date: str | None = None
    cum_qty: int = 0
    visible: int = 0
    status: str = "NEW"
    seq: int = 0
    triggered: bool = True
    chain: list[str] = field(default_factory=list)

    @property
    def leaves(self) -> int:
        return self.order_qty - self.cum_qty if self.status in LIVE else 0

    @property
    def firm(self) -> Firm | None:
        return FIRM_OF.get(self.session_id)

    def show_slice(self) -> None:
        self.visible = self.display_qty if 0 < self.display_qty < self.leaves else self.leaves


@dataclass
class RefBook:
    phase: TradingPhase = TradingPhase.CONTINUOUS
    last_px: int | None = None


class Reference:
    """Obviously correct, slow model of the engine's rules, producing event summaries.

    A summary is ("exec", order_id, cl_ord_id, exec_type, status, cum_qty, leaves_qty,
    price), ("trade", symbol, price, qty, aggressor_or_buy_id, resting_or_sell_id) or
    ("reject", CxlRejReason name).
    """

    def __init__(self) -> None:
        self.orders: list[RefOrder] = []
        self.resting: list[RefOrder] = []
        self.stops: list[RefOrder] = []
        self.latest_use: dict[tuple[str, str], RefOrder] = {}
        self.books = {symbol: RefBook() for symbol in BY_SYMBOL}
        self.seq = 0
        self.now_us = 0
        self.closed_date = ""
        self.out: list[tuple[object, ...]] = []

    # Queries.

    def levels(self, symbol: str, side: Side) -> list[tuple[int, int]]:
        totals: dict[int, int] = {}
        for order in self.resting:
            if order.symbol == symbol and order.side is side:
                totals[order.price] = totals.get(order.price, 0) + order.visible  # type: ignore[index]
        prices = sorted(totals, reverse=side is BUY)
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

    def live_orders(self) -> list[RefOrder]:
        return self.resting + self.stops

    # Dispatch.

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
        elif isinstance(command, AdvanceTime):
            self.advance_time(command.ts_us)
        elif isinstance(command, EndOfDay):
            self.end_of_day(command.trade_date)
        elif isinstance(command, SetTradingPhase):
            self.set_phase(command)
        return self.out

    def emit(self, order: RefOrder, exec_type: str) -> None:
        self.out.append((
            "exec", order.order_id, order.cl_ord_id, exec_type, order.status,
            order.cum_qty, order.leaves, order.price,
        ))

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    # Validation: True when the engine must reject.

    def invalid(self, command: NewOrder | ReplaceOrder) -> bool:
        instrument = rules(command.symbol)
        ord_type, price, stop_px, qty = command.ord_type, command.price, command.stop_px, command.order_qty
        if qty <= 0 or qty % instrument.lot_size:
            return True
        if (ord_type in (LIMIT, STOP_LIMIT)) != (price is not None) or (price is not None and price <= 0):
            return True
        if (ord_type in (STOP, STOP_LIMIT)) != (stop_px is not None) or (stop_px is not None and stop_px <= 0):
            return True
        for value in (price, stop_px):
            if value is None:
                continue
            if value % instrument.tick_size:
                return True
            low, high = instrument.low_limit_price, instrument.high_limit_price
            if (low is not None and value < low) or (high is not None and value > high):
                return True
        if command.display_qty and (
            ord_type is not LIMIT or not 0 < command.display_qty <= qty
            or command.display_qty % instrument.lot_size
        ):
            return True
        return self.invalid_expiry(command)

    def invalid_expiry(self, command: NewOrder | ReplaceOrder) -> bool:
        time_us, date = command.expire_time_us, command.expire_date
        if command.time_in_force is not GTD:
            return time_us is not None or date is not None
        if (time_us is None) == (date is None):
            return True
        if time_us is not None:
            return time_us <= self.now_us
        return date <= self.closed_date  # type: ignore[operator]

    def invalid_new(self, command: NewOrder) -> bool:
        if (
            self.live_holder(command.session_id, command.cl_ord_id) is not None
            or command.symbol not in BY_SYMBOL
            or self.invalid(command)
        ):
            return True
        if command.min_qty and (
            command.ord_type not in (LIMIT, MARKET) or not 0 < command.min_qty <= command.order_qty
        ):
            return True
        if command.post_only and (command.ord_type is not LIMIT or command.time_in_force not in RESTING_TIF):
            return True
        phase = self.books[command.symbol].phase
        if phase in (TradingPhase.HALTED, TradingPhase.CLOSED):
            return True
        if phase in (TradingPhase.PRE_OPEN, TradingPhase.PRE_CLOSE) and (
            command.ord_type is MARKET or command.time_in_force not in RESTING_TIF or command.min_qty
        ):
            return True
        return bool(command.post_only) and self.post_only_rejected(command.symbol, command.side, command.price)

    def post_only_rejected(self, symbol: str, side: Side, price: int | None) -> bool:
        instrument = BY_SYMBOL[symbol]
        return (
            instrument.post_only_policy is PostOnlyPolicy.REJECT
            and self.books[symbol].phase is TradingPhase.CONTINUOUS
            and self.best_opposite(symbol, side, price) is not None
        )

    def best_opposite(self, symbol: str, side: Side, price: int | None) -> RefOrder | None:
        """Return the best resting order an order at ``price`` would trade with, or None."""
        candidates = [o for o in self.resting if o.symbol == symbol and o.side is not side]
        if price is not None:
            candidates = [o for o in candidates if (o.price <= price if side is BUY else o.price >= price)]  # type: ignore[operator]
        if not candidates:
            return None
        sign = 1 if side is BUY else -1
        return min(candidates, key=lambda o: (sign * o.price, o.seq))  # type: ignore[operator]

    # New orders.

    def reject(self, command: NewOrder) -> None:
        order = self.open(command, status="REJECTED")
        if self.live_holder(command.session_id, command.cl_ord_id) is None:
            self.latest_use[(command.session_id, command.cl_ord_id)] = order
        self.emit(order, "REJECTED")

    def open(self, command: NewOrder, status: str = "NEW") -> RefOrder:
        order = RefOrder(
            f"O{len(self.orders) + 1}", len(self.orders) + 1, command.session_id,
            command.cl_ord_id, command.symbol, command.side, command.ord_type,
            command.time_in_force, command.price, command.order_qty, command.stop_px,
            command.display_qty, command.min_qty, command.post_only, command.expire_time_us,
            command.expire_date, status=status, chain=[command.cl_ord_id],
            triggered=command.stop_px is None,
        )
        order.show_slice()
        self.orders.append(order)
        return order

    def new_order(self, command: NewOrder) -> None:
        if self.invalid_new(command):
            self.reject(command)
            return
        order = self.open(command)
        self.latest_use[(order.session_id, order.cl_ord_id)] = order
        book = self.books[order.symbol]
        if order.post_only and book.phase is TradingPhase.CONTINUOUS:
            self.reprice(order)
        self.emit(order, "NEW")
        if order.triggered:
            self.execute(order, arriving=True)
        else:
            order.seq = self.next_seq()
            self.stops.append(order)
        self.run_stops(order.symbol)

    def reprice(self, order: RefOrder) -> None:
        best = self.best_opposite(order.symbol, order.side, order.price)
        if best is not None:
            tick = BY_SYMBOL[order.symbol].tick_size
            order.price = best.price - tick if order.side is BUY else best.price + tick  # type: ignore[operator]

    def execute(self, order: RefOrder, arriving: bool) -> None:
        book = self.books[order.symbol]
        if book.phase is not TradingPhase.CONTINUOUS:
            self.rest(order)
            return
        if order.tif is FOK or (arriving and order.min_qty):
            available = self.dry_run(order)
            crosses = self.best_opposite(order.symbol, order.side, order.price) is not None
            if (order.tif is FOK and available < order.leaves) or (
                order.min_qty and available < order.min_qty and (available or crosses)
            ):
                self.finish(order, "CANCELED", "CANCELED")
                return
        if self.match(order):
            self.finish(order, "CANCELED", "CANCELED")
        elif order.leaves:
            if order.price is not None and order.tif in RESTING_TIF:
                self.rest(order)
            else:
                self.finish(order, "CANCELED", "CANCELED")

    def dry_run(self, order: RefOrder) -> int:
        """Return what ``order`` would fill now, by matching a copy of the book."""
        shadow = Reference()
        shadow.resting = [copy.copy(o) for o in self.resting if o.symbol == order.symbol]
        shadow.books = copy.deepcopy(self.books)
        # Refreshed iceberg slices must queue behind every order resting now.
        shadow.seq = self.seq
        probe = copy.copy(order)
        before = probe.cum_qty
        shadow.match(probe)
        return probe.cum_qty - before

    def match(self, order: RefOrder) -> bool:
        """Match ``order`` as the aggressor; True when self-match prevention cancels it."""
        firm = order.firm
        mode = firm.self_match_prevention if firm is not None else SelfMatchPrevention.NONE
        while order.leaves:
            best = self.best_opposite(order.symbol, order.side, order.price)
            if best is None:
                return False
            if mode is not SelfMatchPrevention.NONE and best.firm is firm:
                if mode is not SelfMatchPrevention.CANCEL_INCOMING:
                    self.finish(best, "CANCELED", "CANCELED")
                if mode is not SelfMatchPrevention.CANCEL_RESTING:
                    return True
                continue
            qty = min(order.leaves, best.visible)
            self.fill(order, qty, best.price)  # type: ignore[arg-type]
            self.fill(best, qty, best.price)  # type: ignore[arg-type]
            best.visible -= qty
            if best.status == "FILLED":
                self.resting.remove(best)
            elif not best.visible:
                best.show_slice()
                best.seq = self.next_seq()
            self.emit(order, "TRADE")
            self.emit(best, "TRADE")
            self.out.append(("trade", order.symbol, best.price, qty, order.order_id, best.order_id))
            self.books[order.symbol].last_px = best.price
        return False

    def fill(self, order: RefOrder, qty: int, price: int) -> None:
        order.cum_qty += qty
        order.status = "FILLED" if order.cum_qty == order.order_qty else "PARTIALLY_FILLED"

    def rest(self, order: RefOrder) -> None:
        order.seq = self.next_seq()
        order.show_slice()
        self.resting.append(order)

    def finish(self, order: RefOrder, status: str, exec_type: str) -> None:
        if order in self.resting:
            self.resting.remove(order)
        if order in self.stops:
            self.stops.remove(order)
        order.status = status
        order.visible = 0
        self.emit(order, exec_type)

    def run_stops(self, symbol: str) -> None:
        book = self.books[symbol]
        while book.phase is TradingPhase.CONTINUOUS and book.last_px is not None:
            last_px = book.last_px
            triggered = [
                o for o in self.stops
                if o.symbol == symbol
                and (o.stop_px <= last_px if o.side is BUY else o.stop_px >= last_px)  # type: ignore[operator]
            ]
            if not triggered:
                return
            for order in sorted(triggered, key=lambda o: o.num):
                self.stops.remove(order)
                order.triggered = True
                self.emit(order, "TRIGGERED")
                self.execute(order, arriving=True)

    # Cancels, replaces, status, mass cancel.

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
        self.finish(order, "CANCELED", "CANCELED")

    def replace_invalid(self, command: ReplaceOrder, order: RefOrder) -> bool:
        book = self.books[order.symbol]
        return (
            command.ord_type is not order.ord_type
            or command.time_in_force not in RESTING_TIF
            or book.phase in (TradingPhase.HALTED, TradingPhase.CLOSED)
            or self.invalid(command)
            or command.order_qty <= order.cum_qty
            or (
                order.post_only
                and command.price != order.price
                and self.post_only_rejected(order.symbol, order.side, command.price)
            )
        )

    def replace(self, command: ReplaceOrder) -> None:
        problem, order = self.change_problem(command)
        if not problem and self.replace_invalid(command, order):  # type: ignore[arg-type]
            problem = "OTHER"
        if problem:
            self.out.append(("reject", problem))
            return
        assert order is not None
        self.take_cl_ord_id(order, command.cl_ord_id)
        order.tif = command.time_in_force
        order.expire_time_us, order.expire_date = command.expire_time_us, command.expire_date
        if not order.triggered:
            order.price, order.stop_px, order.order_qty = command.price, command.stop_px, command.order_qty
            order.visible = order.leaves
            self.emit(order, "REPLACED")
            self.run_stops(order.symbol)
            return
        if (
            command.price == order.price
            and command.order_qty <= order.order_qty
            and command.display_qty == order.display_qty
        ):
            order.order_qty = command.order_qty
            order.visible = min(order.visible, order.leaves)
            self.emit(order, "REPLACED")
            return
        self.resting.remove(order)
        order.price, order.order_qty, order.display_qty = command.price, command.order_qty, command.display_qty
        order.show_slice()
        if order.post_only and self.books[order.symbol].phase is TradingPhase.CONTINUOUS:
            self.reprice(order)
        self.emit(order, "REPLACED")
        self.execute(order, arriving=False)
        self.run_stops(order.symbol)

    def status(self, command: OrderStatusRequest) -> None:
        order = self.find(command.session_id, command.cl_ord_id, command.order_id)
        if order is None or order.symbol != command.symbol or order.side is not command.side:
            self.out.append(("exec", "NONE", command.cl_ord_id, "ORDER_STATUS", "REJECTED", 0, 0, None))
            return
        self.emit(order, "ORDER_STATUS")

    def mass_cancel(self, command: MassCancel) -> None:
        targets = [
            order for order in self.live_orders()
            if order.session_id == command.session_id
            and command.symbol in (None, order.symbol)
            and command.side in (None, order.side)
        ]
        for order in sorted(targets, key=lambda order: order.seq):
            self.finish(order, "CANCELED", "CANCELED")

    # Time, end of day, phases.

    def advance_time(self, ts_us: int) -> None:
        if ts_us <= self.now_us:
            return
        self.now_us = ts_us
        due = [o for o in self.live_orders() if o.expire_time_us is not None and o.expire_time_us <= ts_us]
        for order in sorted(due, key=lambda o: (o.expire_time_us, o.num)):
            self.finish(order, "EXPIRED", "EXPIRED")

    def end_of_day(self, trade_date: str) -> None:
        self.closed_date = max(self.closed_date, trade_date)
        due = [
            o for o in self.live_orders()
            if o.tif is DAY or (o.expire_date is not None and o.expire_date <= trade_date)
        ]
        for order in sorted(due, key=lambda o: o.num):
            self.finish(order, "EXPIRED", "EXPIRED")

    def set_phase(self, command: SetTradingPhase) -> None:
        symbols = list(BY_SYMBOL) if command.symbol is None else [command.symbol]
        for symbol in symbols:
            book = self.books[symbol]
            previous, book.phase = book.phase, command.phase
            calls = (TradingPhase.PRE_OPEN, TradingPhase.PRE_CLOSE, TradingPhase.HALTED)
            if previous in calls and command.phase in (TradingPhase.CONTINUOUS, TradingPhase.CLOSED):
                self.uncross(symbol)
            self.run_stops(symbol)

    def auction_price(self, symbol: str) -> tuple[int, int] | None:
        """Return (price, volume): most volume, least imbalance, nearest reference, lowest.

        The candidates are the resting prices, and the reference price between them.
        """
        book = self.books[symbol]
        reference = book.last_px if book.last_px is not None else BY_SYMBOL[symbol].reference_price
        orders = [o for o in self.resting if o.symbol == symbol]
        prices = {o.price for o in orders}
        if prices and reference is not None and min(prices) < reference < max(prices):  # type: ignore[type-var]
            prices.add(reference)
        best = None
        for price in sorted(prices):  # type: ignore[type-var]
            bought = sum(o.leaves for o in orders if o.side is BUY and o.price >= price)  # type: ignore[operator]
            sold = sum(o.leaves for o in orders if o.side is SELL and o.price <= price)  # type: ignore[operator]
            volume = min(bought, sold)
            if volume:
                rank = (-volume, abs(bought - sold), abs(price - reference), price)  # type: ignore[operator]
                if best is None or rank < best[0]:
                    best = (rank, price, volume)
        return None if best is None else (best[1], best[2])

    def uncross(self, symbol: str) -> None:
        found = self.auction_price(symbol)
        if found is None:
            return
        price, remaining = found
        while remaining:
            buy = self.best_opposite(symbol, SELL, None)
            sell = self.best_opposite(symbol, BUY, None)
            assert buy is not None and sell is not None
            qty = min(buy.leaves, sell.leaves, remaining)
            remaining -= qty
            for order in (buy, sell):
                self.fill(order, qty, price)
                if order.status == "FILLED":
                    self.resting.remove(order)
                    order.visible = 0
                elif qty < order.visible:
                    order.visible -= qty
                else:
                    order.show_slice()
                self.emit(order, "TRADE")
            self.out.append(("trade", symbol, price, qty, buy.order_id, sell.order_id))
        self.books[symbol].last_px = price


def summarise(events: list[Event]) -> list[tuple[object, ...]]:
    summary: list[tuple[object, ...]] = []
    for event in events:
        if isinstance(event, ExecutionEvent):
            summary.append((
                "exec", event.order_id, event.cl_ord_id, event.exec_type.name,
                event.ord_status.name, event.cum_qty, event.leaves_qty, event.price,
            ))
        elif isinstance(event, Trade):
            summary.append((
                "trade", event.symbol, event.price, event.qty,
                event.aggressor_order_id, event.resting_order_id,
            ))
        else:
            assert isinstance(event, CancelReject)
            summary.append(("reject", event.reason.name))
    return summary


class CommandGenerator:
    """Random but plausible commands over the full order model, aimed at live orders."""

    def __init__(self, rng: random.Random, reference: Reference) -> None:
        self.rng = rng
        self.reference = reference
        self.counter = 0
        self.day = 20240101

    def next_cl_ord_id(self) -> str:
        self.counter += 1
        return f"C{self.counter}"

    def command(self) -> Command:
        roll = self.rng.random()
        if roll < 0.50:
            return self.new_order()
        if roll < 0.62:
            return self.cancel()
        if roll < 0.76:
            return self.replace()
        if roll < 0.80:
            return self.status()
        if roll < 0.805:
            return self.mass_cancel()
        if roll < 0.81:
            return RejectOrder(self.new_order(), OrdRejReason.ORDER_EXCEEDS_LIMIT, "limit")
        if roll < 0.84:
            return AdvanceTime(self.reference.now_us + self.rng.randint(0, 3_000))
        if roll < 0.842:
            self.day += 1
            return EndOfDay(str(self.day - 1))
        if roll < 0.852:
            return self.phase_change()
        return self.odd_new_order()

    def price(self, symbol: str, side: Side) -> int:
        """Return a price on the symbol's tick grid that mostly rests near 1000."""
        tick = rules(symbol).tick_size
        offset = self.rng.randint(-3, 8) * tick
        return 1000 - offset if side is BUY else 1000 + offset

    def qty(self, symbol: str, high: int = 30) -> int:
        lot = rules(symbol).lot_size
        return self.rng.randint(1, high) * lot

    def new_order(self) -> NewOrder:
        rng = self.rng
        symbol = rng.choice(list(BY_SYMBOL))
        side = rng.choice((BUY, SELL))
        kind = rng.choices(
            ["limit", "market", "stop", "stop_limit", "iceberg", "post_only", "min_qty", "gtd"],
            [50, 4, 5, 5, 10, 8, 6, 8],
        )[0]
        tif = rng.choices([DAY, GTC, IOC, FOK], [60, 15, 15, 10])[0]
        qty = self.qty(symbol)
        fields: dict[str, object] = {}
        ord_type, price = LIMIT, self.price(symbol, side)
        if kind == "market":
            ord_type, price = MARKET, None
            tif = rng.choice((DAY, IOC, FOK))
        elif kind in ("stop", "stop_limit"):
            ord_type = STOP if kind == "stop" else STOP_LIMIT
            price = None if kind == "stop" else price
            tick = BY_SYMBOL[symbol].tick_size
            fields["stop_px"] = 1000 + rng.randint(-4, 4) * tick
            tif = rng.choice((DAY, GTC, IOC))
        elif kind == "iceberg":
            qty = self.qty(symbol, 60)
            fields["display_qty"] = min(qty, self.qty(symbol, 8))
            tif = rng.choice((DAY, GTC))
        elif kind == "post_only":
            fields["post_only"] = True
            tif = rng.choice((DAY, GTC))
            price = self.aggressive_price(symbol, side) if rng.random() < 0.5 else price
        elif kind == "min_qty":
            fields["min_qty"] = rng.randint(1, qty)
            price = self.aggressive_price(symbol, side)
        elif kind == "gtd":
            tif = GTD
            if rng.random() < 0.6:
                fields["expire_time_us"] = self.reference.now_us + rng.randint(1, 20_000)
            else:
                fields["expire_date"] = str(self.day + rng.randint(0, 2))
        return NewOrder(
            rng.choice(SESSIONS), self.next_cl_ord_id(), symbol, side, ord_type, qty, price, tif,
            **fields,  # type: ignore[arg-type]
        )

    def aggressive_price(self, symbol: str, side: Side) -> int:
        tick = BY_SYMBOL[symbol].tick_size
        offset = self.rng.randint(0, 6) * tick
        return 1000 + offset if side is BUY else 1000 - offset

    def odd_new_order(self) -> NewOrder:
        """A new order that breaks one rule: ClOrdID, symbol, quantity, price or a field combination."""
        base = self.new_order()
        rng = self.rng
        kind = rng.randrange(9)
        if kind == 0 and self.reference.orders:
            target = rng.choice(self.reference.orders)
            return NewOrder(target.session_id, rng.choice(target.chain or [target.cl_ord_id]),
                            base.symbol, base.side, LIMIT, self.qty(base.symbol), self.price(base.symbol, base.side))
        session, cl_ord_id, side = base.session_id, base.cl_ord_id, base.side
        odd = [
            NewOrder(session, cl_ord_id, "ZZZ", side, LIMIT, 5, 1000),
            NewOrder(session, cl_ord_id, "AAA", side, LIMIT, 0, 1000),
            NewOrder(session, cl_ord_id, "BBB", side, LIMIT, 7, 1000),  # off the lot
            NewOrder(session, cl_ord_id, "BBB", side, LIMIT, 5, 1001),  # off the tick
            NewOrder(session, cl_ord_id, "AAA", side, LIMIT, 5, 1200),  # above the limit
            NewOrder(session, cl_ord_id, "AAA", side, MARKET, 5, None, IOC, post_only=True),
            NewOrder(session, cl_ord_id, "AAA", side, LIMIT, 5, 1000, DAY, display_qty=9),
            NewOrder(session, cl_ord_id, "AAA", side, LIMIT, 5, 1000, DAY, expire_time_us=10**12),
        ]
        return odd[kind - 1]

    def phase_change(self) -> SetTradingPhase:
        rng = self.rng
        phase = rng.choices(
            [TradingPhase.CONTINUOUS, TradingPhase.PRE_OPEN, TradingPhase.PRE_CLOSE,
             TradingPhase.HALTED, TradingPhase.CLOSED],
            [50, 20, 10, 10, 10],
        )[0]
        return SetTradingPhase(phase, rng.choice((None, *BY_SYMBOL)))

    def target(self) -> RefOrder | None:
        live = self.reference.live_orders()
        if live and self.rng.random() < 0.85:
            return self.rng.choice(live)
        return self.rng.choice(self.reference.orders) if self.reference.orders else None

    def target_fields(self) -> tuple[str, str, str, Side, str | None, RefOrder | None]:
        rng = self.rng
        order = self.target()
        if order is None or rng.random() < 0.04:
            return rng.choice(SESSIONS), "NOPE", "AAA", BUY, None, None
        orig = rng.choice(order.chain) if order.chain and rng.random() < 0.2 else order.cl_ord_id
        side = order.side if rng.random() < 0.96 else order.side.opposite
        order_id = order.order_id if rng.random() < 0.1 else None
        session = order.session_id if rng.random() < 0.97 else rng.choice(SESSIONS)
        return session, orig, order.symbol, side, order_id, order

    def cancel(self) -> CancelOrder:
        session, orig, symbol, side, order_id, _ = self.target_fields()
        return CancelOrder(session, self.next_cl_ord_id(), orig, symbol, side, order_id)

    def replace(self) -> ReplaceOrder:
        rng = self.rng
        session, orig, symbol, side, order_id, order = self.target_fields()
        ord_type = order.ord_type if order is not None else LIMIT
        old_price = order.price if order is not None and order.price else self.price(symbol, side)
        price = old_price if rng.random() < 0.5 else self.price(symbol, side)
        old_qty = order.order_qty if order is not None else 10
        lot = rules(symbol).lot_size
        qty = max(lot, old_qty + rng.randint(-8, 8) * lot)
        display_qty = order.display_qty if order is not None else 0
        if display_qty and rng.random() < 0.2:
            display_qty = min(qty, self.qty(symbol, 8))
        fields: dict[str, object] = {"display_qty": min(display_qty, qty)}
        if ord_type in (STOP, STOP_LIMIT):
            fields["stop_px"] = order.stop_px if order is not None and rng.random() < 0.5 else (
                1000 + rng.randint(-4, 4) * rules(symbol).tick_size
            )
        if ord_type in (MARKET, STOP):
            price = None
        tif = rng.choices([DAY, GTC, GTD, IOC], [60, 20, 12, 8])[0]
        if tif is GTD:
            fields["expire_time_us"] = self.reference.now_us + rng.randint(1, 20_000)
        cl_ord_id = orig if rng.random() < 0.02 else self.next_cl_ord_id()
        return ReplaceOrder(
            session, cl_ord_id, orig, symbol, side, ord_type, qty, price, tif, order_id,
            **fields,  # type: ignore[arg-type]
        )

    def status(self) -> OrderStatusRequest:
        session, orig, symbol, side, order_id, _ = self.target_fields()
        return OrderStatusRequest(session, orig, symbol, side, order_id)

    def mass_cancel(self) -> MassCancel:
        rng = self.rng
        return MassCancel(
            rng.choice(SESSIONS), self.next_cl_ord_id(), rng.choice((None, *BY_SYMBOL)),
            rng.choice((None, BUY, SELL)),
        )


def new_engine() -> MatchingEngine:
    return MatchingEngine(INSTRUMENTS, firms=FIRMS)


def test_order_model_matches_reference() -> None:
    engine = new_engine()
    reference = Reference()
    generator = CommandGenerator(random.Random(SEED), reference)
    seen: set[str] = set()

    for step in range(STRESS_OPS):
        command = generator.command()
        events = engine.process(command)
        engine.check()
        expected = reference.process(command)

        assert summarise(events) == expected, f"step {step}: {command!r}"
        for symbol in BY_SYMBOL:
            bids = reference.levels(symbol, BUY)
            asks = reference.levels(symbol, SELL)
            book = engine.book(symbol)
            assert book.depth(DEPTH_LEVELS) == (bids[:DEPTH_LEVELS], asks[:DEPTH_LEVELS]), (
                f"step {step}: {symbol} depth after {command!r}"
            )
            assert book.last_px == reference.books[symbol].last_px, f"step {step}: {symbol}"
        seen.update(entry[3] for entry in expected if entry[0] == "exec")  # type: ignore[misc]
        seen.update("AUCTION" for event in events if isinstance(event, Trade) and event.auction)

    # The run must have reached every kind of outcome, or it proves little.
    for outcome in ("NEW", "TRADE", "CANCELED", "REPLACED", "REJECTED", "EXPIRED", "TRIGGERED", "AUCTION"):
        assert outcome in seen, outcome


def test_order_model_replay_same_events() -> None:
    reference = Reference()
    generator = CommandGenerator(random.Random(SEED + 1), reference)
    commands = []
    for _ in range(3_000):
        command = generator.command()
        reference.process(command)
        commands.append(command)

    first, second = new_engine(), new_engine()
    first_events = [first.process(command) for command in commands]
    second_events = [second.process(command) for command in commands]

    assert repr(first_events) == repr(second_events)
    for symbol in BY_SYMBOL:
        assert first.market_data(symbol, 50) == second.market_data(symbol, 50)
