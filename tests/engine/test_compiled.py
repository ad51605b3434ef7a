"""The compiled fast paths give the same events and books as the pure-Python engine.

Each case runs one seeded command sequence through ``MatchingEngine(compiled=False)`` and
``MatchingEngine(compiled=True)`` and compares every event list (``repr``, so the enum
members and the None/0 defaults count too), then the books, the counters and the state
of every order. The sequences mix the commands the compiled code carries out with those
it hands to Python part-way. Those include icebergs and same-firm orders met in a match,
stop orders triggered by its trades, quantities beyond the C range, IOC and FOK orders,
and phase changes. The compiled code takes only orders without terms (``Order.terms`` is
None), so a second generator replaces orders that carry terms, and sets terms back to
their defaults.
"""

from __future__ import annotations

import dataclasses
import gc
import importlib.util
import random
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

import engine.engine as engine_module
from engine import (
    AdvanceTime,
    CancelOrder,
    Command,
    EndOfDay,
    Firm,
    Instrument,
    MassCancel,
    MatchingEngine,
    NewOrder,
    OrderStatusRequest,
    OrdStatus,
    OrdType,
    PostOnlyPolicy,
    ReplaceOrder,
    SelfMatchPrevention,
    SetTradingPhase,
    Side,
    TimeInForce,
    TradingPhase,
)
from engine.book import TERM_DEFAULTS, Order
from engine.engine import Counters

pytestmark = pytest.mark.skipif(
    engine_module._cengine is None,
    reason=f"engine._cengine is not in use: {engine_module.compiled_status()}",
)

HERE = Path(__file__).resolve().parent
SESSIONS = ("S1", "S2", "S3", "S4")
FIRMS = (
    Firm("F1", ("S1", "S2"), SelfMatchPrevention.CANCEL_RESTING),
    Firm("F2", ("S3",), SelfMatchPrevention.CANCEL_INCOMING),
)
INSTRUMENTS = (
    Instrument("AAA", tick_size=5, lot_size=10, low_limit_price=500, high_limit_price=1500),
    Instrument("BBB"),
)
MID = {"AAA": 1000, "BBB": 2000}
TICK = {"AAA": 5, "BBB": 1}
LOT = {"AAA": 10, "BBB": 1}


class Generator:
    """Commands aimed at live orders, mostly plain limit orders, with the rest mixed in."""

    def __init__(self, seed: int, engine: MatchingEngine) -> None:
        self.rng = random.Random(seed)
        self.engine = engine  # the pure-Python engine, to aim at orders resting in it
        self.count = 0
        self.live: list[tuple[str, str, str, Side]] = []  # (session, cl_ord_id, symbol, side)

    def next_id(self) -> str:
        self.count += 1
        return f"C{self.count}"

    def command(self) -> Command:
        roll = self.rng.random()
        if self.live and roll < 0.25:
            return self.cancel()
        if self.live and roll < 0.40:
            return self.replace()
        if roll < 0.404:
            phase = self.rng.choice((
                TradingPhase.HALTED, TradingPhase.PRE_OPEN, TradingPhase.CONTINUOUS,
                TradingPhase.CONTINUOUS,
            ))
            return SetTradingPhase(phase, self.rng.choice(("AAA", "BBB", None)))
        return self.new_order()

    def price(self, symbol: str) -> int:
        return MID[symbol] + TICK[symbol] * self.rng.randint(-20, 20)

    def new_order(self) -> NewOrder:
        rng = self.rng
        symbol = rng.choice(("AAA", "BBB"))
        session, side = rng.choice(SESSIONS), rng.choice((Side.BUY, Side.SELL))
        qty = LOT[symbol] * rng.randint(1, 30)
        kind = rng.random()
        extra: dict[str, Any] = {}
        ord_type, price = OrdType.LIMIT, self.price(symbol)
        if kind < 0.05:
            extra["display_qty"] = LOT[symbol]
            qty = max(qty, 3 * LOT[symbol])
        elif kind < 0.08:
            extra["time_in_force"] = rng.choice((TimeInForce.IOC, TimeInForce.FOK))
        elif kind < 0.10:
            ord_type, extra["stop_px"] = OrdType.STOP_LIMIT, price
        elif kind < 0.11 and symbol == "BBB":
            # Beyond the compiled code's range, held in two, three and four 30-bit digits.
            qty = rng.choice((2**40, 2**61, 2**63, 2**95)) + rng.randint(0, 9)
        elif kind < 0.12:
            extra["time_in_force"] = TimeInForce.GTC
        elif kind < 0.125:
            price = price + 1 if symbol == "AAA" else price  # off the tick grid on AAA
        cl_ord_id = self.next_id()
        if rng.random() < 0.02 and self.live:
            cl_ord_id = rng.choice(self.live)[1]  # a duplicate ClOrdID, maybe of another session
        self.live.append((session, cl_ord_id, symbol, side))
        return NewOrder(session, cl_ord_id, symbol, side, ord_type, qty, price, **extra)

    def target(self) -> tuple[str, str, str, Side]:
        resting = [order for symbol in ("AAA", "BBB") for order in self.engine.book(symbol).orders()]
        if resting and self.rng.random() < 0.85:
            order = self.rng.choice(resting)
            return order.session_id, order.cl_ord_id, order.symbol, order.side
        index = self.rng.randrange(len(self.live))
        if self.rng.random() < 0.7:
            return self.live.pop(index)
        return self.live[index]

    def cancel(self) -> CancelOrder:
        session, orig, symbol, side = self.target()
        if self.rng.random() < 0.05:
            side = Side.SELL if side is Side.BUY else Side.BUY  # a mismatch
        return CancelOrder(session, self.next_id(), orig, symbol, side)

    def replace(self) -> ReplaceOrder:
        session, orig, symbol, side = self.target()
        cl_ord_id = self.next_id()
        self.live.append((session, cl_ord_id, symbol, side))
        qty = LOT[symbol] * self.rng.randint(1, 30)
        return ReplaceOrder(session, cl_ord_id, orig, symbol, side, OrdType.LIMIT, qty, self.price(symbol))


TERMS_INSTRUMENTS = (
    Instrument("AAA", tick_size=1, lot_size=1, low_limit_price=900, high_limit_price=1100,
               reference_price=1000, post_only_policy=PostOnlyPolicy.REJECT),
    Instrument("BBB", tick_size=2, lot_size=5, reference_price=1000,
               post_only_policy=PostOnlyPolicy.REPRICE),
)
TERMS_FIRMS = (
    Firm("F1", ("S1", "S2"), SelfMatchPrevention.CANCEL_RESTING),
    Firm("F2", ("S3", "S4"), SelfMatchPrevention.CANCEL_INCOMING),
    Firm("F3", ("S5", "S6"), SelfMatchPrevention.CANCEL_BOTH),
    Firm("F4", ("S7",), SelfMatchPrevention.NONE),
)
TERMS_SESSIONS = ("S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8")
TERMS_TICK = {"AAA": 1, "BBB": 2}
TERMS_LOT = {"AAA": 1, "BBB": 5}


class TermsGenerator:
    """Commands over the full order model, aimed at the pure engine's live orders.

    Replaces add, change or remove a display quantity, move between DAY, GTC and GTD
    and change stop orders, so orders whose terms went back to their defaults meet the
    fast paths.
    """

    def __init__(self, seed: int, engine: MatchingEngine) -> None:
        self.rng = random.Random(seed)
        self.engine = engine
        self.count = 0
        self.now_us = 0
        self.day = 20240101

    def next_id(self) -> str:
        self.count += 1
        return f"C{self.count}"

    def price(self, symbol: str) -> int:
        return 1000 + TERMS_TICK[symbol] * self.rng.randint(-6, 6)

    def qty(self, symbol: str, high: int = 20) -> int:
        return TERMS_LOT[symbol] * self.rng.randint(1, high)

    def live(self) -> list[Order]:
        orders: list[Order] = []
        for symbol in ("AAA", "BBB"):
            book = self.engine.book(symbol)
            orders.extend(book.orders())
            orders.extend(book.stops.values())
        return orders

    def command(self) -> Command:
        roll = self.rng.random()
        if roll < 0.45:
            return self.new_order()
        if roll < 0.60:
            return self.cancel()
        if roll < 0.85:
            return self.replace()
        if roll < 0.87:
            return self.status()
        if roll < 0.88:
            return MassCancel(self.rng.choice(TERMS_SESSIONS), self.next_id(),
                              self.rng.choice((None, "AAA", "BBB")),
                              self.rng.choice((None, Side.BUY, Side.SELL)))
        if roll < 0.93:
            self.now_us += self.rng.randint(0, 3_000)
            return AdvanceTime(self.now_us)
        if roll < 0.935:
            self.day += 1
            return EndOfDay(str(self.day - 1))
        if roll < 0.945:
            phase = self.rng.choices(
                [TradingPhase.CONTINUOUS, TradingPhase.PRE_OPEN, TradingPhase.HALTED],
                [70, 20, 10],
            )[0]
            return SetTradingPhase(phase, self.rng.choice((None, "AAA", "BBB")))
        return self.new_order(plain=True)

    def new_order(self, plain: bool = False) -> NewOrder:
        rng = self.rng
        symbol = rng.choice(("AAA", "BBB"))
        side = rng.choice((Side.BUY, Side.SELL))
        qty = self.qty(symbol)
        price: int | None = self.price(symbol)
        ord_type, tif = OrdType.LIMIT, rng.choice((TimeInForce.DAY, TimeInForce.GTC))
        fields: dict[str, Any] = {}
        kind = "limit" if plain else rng.choices(
            ["limit", "iceberg", "stop", "stop_limit", "post_only", "min_qty", "gtd", "ioc"],
            [40, 14, 5, 6, 8, 6, 12, 5],
        )[0]
        if kind == "iceberg":
            qty = self.qty(symbol, 40)
            fields["display_qty"] = min(qty, self.qty(symbol, 6))
        elif kind in ("stop", "stop_limit"):
            ord_type = OrdType.STOP if kind == "stop" else OrdType.STOP_LIMIT
            price = None if kind == "stop" else price
            fields["stop_px"] = 1000 + rng.randint(-4, 4) * TERMS_TICK[symbol]
            tif = rng.choice((TimeInForce.DAY, TimeInForce.GTC))
        elif kind == "post_only":
            fields["post_only"] = True
        elif kind == "min_qty":
            fields["min_qty"] = rng.randint(1, qty)
        elif kind == "gtd":
            tif = TimeInForce.GTD
            if rng.random() < 0.6:
                fields["expire_time_us"] = self.now_us + rng.randint(1, 20_000)
            else:
                fields["expire_date"] = str(self.day + rng.randint(0, 2))
        elif kind == "ioc":
            tif = rng.choice((TimeInForce.IOC, TimeInForce.FOK))
        return NewOrder(rng.choice(TERMS_SESSIONS), self.next_id(), symbol, side, ord_type, qty, price,
                        tif, **fields)

    def cancel(self) -> CancelOrder:
        live = self.live()
        if not live:
            return CancelOrder("S1", self.next_id(), "NOPE", "AAA", Side.BUY)
        order = self.rng.choice(live)
        order_id = order.order_id if self.rng.random() < 0.2 else None
        return CancelOrder(order.session_id, self.next_id(), order.cl_ord_id, order.symbol,
                           order.side, order_id)

    def status(self) -> OrderStatusRequest:
        live = self.live()
        if not live:
            return OrderStatusRequest("S1", "NOPE", "AAA", Side.BUY)
        order = self.rng.choice(live)
        return OrderStatusRequest(order.session_id, order.cl_ord_id, order.symbol, order.side)

    def replace(self) -> Command:
        rng = self.rng
        live = self.live()
        if not live:
            return self.new_order()
        order = rng.choice(live)
        symbol = order.symbol
        price = order.price if rng.random() < 0.4 else self.price(symbol)
        qty = max(order.cum_qty + TERMS_LOT[symbol], order.order_qty + rng.randint(-5, 5) * TERMS_LOT[symbol])
        # Add, change, keep or remove a display quantity.
        display_qty = rng.choice((0, 0, order.display_qty, min(qty, self.qty(symbol, 6))))
        fields: dict[str, Any] = {"display_qty": display_qty}
        tif = rng.choices(
            [TimeInForce.DAY, TimeInForce.GTC, TimeInForce.GTD], [55, 25, 20],
        )[0]
        if tif is TimeInForce.GTD:
            if rng.random() < 0.6:
                fields["expire_time_us"] = self.now_us + rng.randint(1, 20_000)
            else:
                fields["expire_date"] = str(self.day + rng.randint(0, 2))
        if order.ord_type in (OrdType.STOP, OrdType.STOP_LIMIT):
            fields["stop_px"] = order.stop_px if rng.random() < 0.5 else (
                1000 + rng.randint(-4, 4) * TERMS_TICK[symbol]
            )
        if order.ord_type is OrdType.STOP:
            price = None
        return ReplaceOrder(order.session_id, self.next_id(), order.cl_ord_id, symbol,
                            order.side, order.ord_type, qty, price, tif, **fields)


# Every field of an order by its public name: each term on its own, not the OrderTerms
# object.
ORDER_FIELDS = [name for name in Order.__slots__ if name != "terms"]
ORDER_FIELDS += [*TERM_DEFAULTS, "self_match"]


def order_state(order: Order) -> tuple[Any, ...]:
    return tuple(getattr(order, name) for name in ORDER_FIELDS)


def assert_same_state(pure: MatchingEngine, compiled: MatchingEngine) -> None:
    for symbol in pure.symbols:
        assert pure.market_data(symbol, 10_000) == compiled.market_data(symbol, 10_000)
        pure_book, compiled_book = pure.book(symbol), compiled.book(symbol)
        assert [o.order_id for o in pure_book.orders()] == [o.order_id for o in compiled_book.orders()]
        assert (pure_book.last_px, pure_book.last_qty) == (compiled_book.last_px, compiled_book.last_qty)
    for name in Counters.__slots__:
        assert getattr(pure._counters, name) == getattr(compiled._counters, name), name
    assert [o.order_id for o in pure._orders] == [o.order_id for o in compiled._orders]
    for order, twin in zip(pure._orders, compiled._orders):
        assert order_state(order) == order_state(twin), order.order_id
    compiled.check()


def run_both(commands: Iterable[Command], pure: MatchingEngine, compiled: MatchingEngine) -> None:
    assert not pure.compiled
    assert compiled.compiled
    for step, command in enumerate(commands):
        expected = repr(pure.process(command))
        assert repr(compiled.process(command)) == expected, f"step {step}: {command!r}"
        if step % 997 == 0:
            assert_same_state(pure, compiled)
    assert_same_state(pure, compiled)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mixed_commands(seed: int) -> None:
    pure = MatchingEngine(INSTRUMENTS, firms=FIRMS, compiled=False)
    generator = Generator(seed, pure)
    commands = (generator.command() for _ in range(6_000))
    run_both(commands, pure, MatchingEngine(INSTRUMENTS, firms=FIRMS, compiled=True))


def _load_test_module(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"_compiled_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    # Dataclasses look their module up in sys.modules while the class is built.
    sys.modules[spec.name] = module  # type: ignore[union-attr]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_order_model_commands() -> None:
    model = _load_test_module("test_stress_order_model")
    reference = model.Reference()
    generator = model.CommandGenerator(random.Random(7), reference)
    commands = []
    for _ in range(5_000):
        command = generator.command()
        reference.process(command)
        commands.append(command)
    run_both(
        commands,
        MatchingEngine(model.INSTRUMENTS, firms=model.FIRMS, compiled=False),
        MatchingEngine(model.INSTRUMENTS, firms=model.FIRMS, compiled=True),
    )


def test_plain_commands() -> None:
    stress = _load_test_module("test_stress")
    commands = stress.generate_commands(11, 5_000)
    run_both(
        commands,
        MatchingEngine(stress.SYMBOLS, compiled=False),
        MatchingEngine(stress.SYMBOLS, compiled=True),
    )


def test_id_prefix() -> None:
    pure = MatchingEngine(INSTRUMENTS, firms=FIRMS, id_prefix="V1-", compiled=False)
    generator = Generator(4, pure)
    commands = (generator.command() for _ in range(500))
    run_both(commands, pure, MatchingEngine(INSTRUMENTS, firms=FIRMS, id_prefix="V1-", compiled=True))


def test_book_keys_beyond_c_range() -> None:
    # A bid at 2**63 rests through the Python code; plain orders at new levels on the
    # same side then compare their keys with it.
    commands = [
        NewOrder("S1", "c1", "X", Side.BUY, OrdType.LIMIT, 1, 2**63),
        NewOrder("S1", "c2", "X", Side.BUY, OrdType.LIMIT, 1, 100),
        NewOrder("S1", "c3", "X", Side.BUY, OrdType.LIMIT, 1, 2**63 + 5),
        NewOrder("S2", "c4", "X", Side.SELL, OrdType.LIMIT, 2, 100),
        CancelOrder("S1", "c5", "c2", "X", Side.BUY),
    ]
    run_both(commands, MatchingEngine(["X"], compiled=False), MatchingEngine(["X"], compiled=True))


def test_dropped_level_held_elsewhere_is_not_reused() -> None:
    engine = MatchingEngine(["X"], compiled=True)
    engine.process(NewOrder("S1", "c1", "X", Side.BUY, OrdType.LIMIT, 5, 100))
    dropped_level = engine.book("X").bids.best()
    engine.process(CancelOrder("S1", "c2", "c1", "X", Side.BUY))
    engine.process(NewOrder("S1", "c3", "X", Side.BUY, OrdType.LIMIT, 7, 101))

    assert dropped_level is not None
    assert dropped_level is not engine.book("X").bids.best()
    assert (dropped_level.price, dropped_level.total_qty, len(dropped_level.orders)) == (100, 0, 0)
    engine.check()


def test_kept_level_releases_its_price() -> None:
    # A level kept for reuse must not keep the price object of the book it left.
    price = int("1000")  # a new int object: ints from -5 to 256 are shared
    new = NewOrder("S1", "c1", "X", Side.BUY, OrdType.LIMIT, 5, price)
    cancel = CancelOrder("S1", "c2", "c1", "X", Side.BUY)
    before = sys.getrefcount(price)
    engine = MatchingEngine(["X"], compiled=True)
    engine.process(new)
    engine.process(cancel)
    del engine
    gc.collect()

    assert sys.getrefcount(price) == before


def test_unknown_command_goes_to_python() -> None:
    engine = MatchingEngine(INSTRUMENTS, compiled=True)
    with pytest.raises(engine_module.UnsupportedCommandError, match="cannot process 'str'"):
        engine.process("D")  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "compiled"), [("1", "False"), ("yes", "False"), ("0", "True"), ("", "True")])
def test_environment_turns_it_off(value: str, compiled: str) -> None:
    code = "from engine import MatchingEngine; print(MatchingEngine(['X']).compiled)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True, text=True, check=True, cwd=HERE.parent.parent,
        env={"FIXGW_NO_EXTENSIONS": value, "PATH": ""},
    )
    assert result.stdout.strip() == compiled


@pytest.mark.parametrize("compiled", [False, True])
def test_finished_order_drops_seq(compiled: bool) -> None:
    # The day's orders stay in memory, so one that left the book drops its time priority.
    # The arrival number is read from the OrderID (37).
    engine = MatchingEngine(INSTRUMENTS, firms=FIRMS, compiled=compiled)
    engine.process(NewOrder("S1", "b1", "BBB", Side.BUY, OrdType.LIMIT, 5, 2000))
    engine.process(NewOrder("S1", "b2", "BBB", Side.BUY, OrdType.LIMIT, 5, 1999))
    engine.process(NewOrder("S3", "s1", "BBB", Side.SELL, OrdType.LIMIT, 5, 2000))
    engine.process(CancelOrder("S1", "b3", "b2", "BBB", Side.BUY))
    engine.process(NewOrder("S1", "b4", "BBB", Side.BUY, OrdType.LIMIT, 5, 1998))

    filled, cancelled, aggressor, resting = engine._orders
    assert [order.num for order in engine._orders] == [1, 2, 3, 4]
    assert all(order.terms is None for order in engine._orders)
    assert filled.ord_status is OrdStatus.FILLED
    assert filled.seq == 0
    assert cancelled.ord_status is OrdStatus.CANCELED
    assert cancelled.seq == 0
    assert aggressor.ord_status is OrdStatus.FILLED
    assert aggressor.seq == 0
    assert resting.seq == engine._counters.seq
    assert resting.seq > 0
    assert aggressor.self_match is SelfMatchPrevention.CANCEL_INCOMING
    engine.check()


@pytest.mark.parametrize("seed", range(8))
def test_terms_both_engines_agree(seed: int) -> None:
    pure = MatchingEngine(TERMS_INSTRUMENTS, firms=TERMS_FIRMS, compiled=False)
    compiled = MatchingEngine(TERMS_INSTRUMENTS, firms=TERMS_FIRMS, compiled=True)
    generator = TermsGenerator(seed, pure)
    run_both((generator.command() for _ in range(6_000)), pure, compiled)


def test_default_terms_take_python_path() -> None:
    # An iceberg replaced to display_qty 0 keeps an OrderTerms object with every term at
    # its default. Plain orders then trade with it, and it is replaced and cancelled.
    commands: list[Command] = [
        NewOrder("S8", "a1", "AAA", Side.SELL, OrdType.LIMIT, 30, 1000, display_qty=5),
        ReplaceOrder("S8", "a2", "a1", "AAA", Side.SELL, OrdType.LIMIT, 30, 1000, display_qty=0),
        NewOrder("S8", "a3", "AAA", Side.SELL, OrdType.LIMIT, 10, 1000),
        NewOrder("S2", "b1", "AAA", Side.BUY, OrdType.LIMIT, 7, 1000),
        NewOrder("S2", "b2", "AAA", Side.BUY, OrdType.LIMIT, 7, 1000),
        ReplaceOrder("S8", "a4", "a2", "AAA", Side.SELL, OrdType.LIMIT, 40, 1000),
        ReplaceOrder("S8", "a5", "a4", "AAA", Side.SELL, OrdType.LIMIT, 20, 1000,
                     TimeInForce.GTD, expire_time_us=10),
        ReplaceOrder("S8", "a6", "a5", "AAA", Side.SELL, OrdType.LIMIT, 20, 1001, TimeInForce.GTC),
        NewOrder("S2", "b3", "AAA", Side.BUY, OrdType.LIMIT, 50, 1001),
        CancelOrder("S8", "a7", "a3", "AAA", Side.SELL),
        AdvanceTime(20),
    ]
    pure = MatchingEngine(TERMS_INSTRUMENTS, firms=TERMS_FIRMS, compiled=False)
    compiled = MatchingEngine(TERMS_INSTRUMENTS, firms=TERMS_FIRMS, compiled=True)
    pure.process(commands[0])
    compiled.process(commands[0])
    pure.process(commands[1])
    compiled.process(commands[1])
    assert pure._orders[0].terms is not None
    assert compiled._orders[0].terms is not None
    run_both(commands[2:], pure, compiled)


def _copy(text: str) -> str:
    """An equal str that is a new object."""
    return "".join(list(text))


def test_fresh_session_and_symbol_objects() -> None:
    # The compiled code remembers the session and symbol strings of recent commands by
    # identity. A gateway may hand it an equal string in a new object, as a parser does for
    # each message, and eight sessions take turns, more than it remembers at once.
    pure = MatchingEngine(TERMS_INSTRUMENTS, firms=TERMS_FIRMS, compiled=False)
    compiled = MatchingEngine(TERMS_INSTRUMENTS, firms=TERMS_FIRMS, compiled=True)
    generator = TermsGenerator(5, pure)
    rng = random.Random(5)

    def commands() -> Iterable[Command]:
        for _ in range(4_000):
            command = generator.command()
            if rng.random() < 0.5 and hasattr(command, "session_id"):
                changes = {"session_id": _copy(command.session_id)}
                if getattr(command, "symbol", None) is not None:
                    changes["symbol"] = _copy(command.symbol)
                command = dataclasses.replace(command, **changes)
            yield command

    run_both(commands(), pure, compiled)


@pytest.mark.parametrize("order_qty", [4, 6])
def test_replace_not_above_filled_quantity(order_qty: int) -> None:
    # A replace to an OrderQty at or below what the order has filled is rejected, in the
    # compiled code as in Python, and the order keeps trading as before.
    pure = MatchingEngine(INSTRUMENTS, firms=FIRMS, compiled=False)
    compiled = MatchingEngine(INSTRUMENTS, firms=FIRMS, compiled=True)
    run_both([
        NewOrder("S1", "s1", "BBB", Side.SELL, OrdType.LIMIT, 10, 2000),
        NewOrder("S3", "b1", "BBB", Side.BUY, OrdType.LIMIT, 6, 2000),
    ], pure, compiled)
    replace = ReplaceOrder("S1", "s2", "s1", "BBB", Side.SELL, OrdType.LIMIT, order_qty, 2000)
    (reject,) = compiled.process(replace)
    assert repr([reject]) == repr(pure.process(replace))
    assert reject.text == f"OrderQty (38) {order_qty} is not above CumQty (14) 6"
    run_both([NewOrder("S3", "b2", "BBB", Side.BUY, OrdType.LIMIT, 4, 2000)], pure, compiled)
    assert compiled._orders[0].ord_status is OrdStatus.FILLED
