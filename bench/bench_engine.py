"""Compare the matching engine with the Python order books a user would pick instead.

Peers, all from PyPI: lightmatchingengine 2019.1.4 and pyorderbook 0.4.9 (pure Python),
and liquibook 2.0.1 (a C++ book behind a SWIG binding). liquibook runs twice: without a
listener, and with a Python listener that records every accept, fill, cancel and replace
as fixgw records events. Install them with ``bench/setup_peers.sh``, then run from the
repository root::

    /tmp/fixgw-bench-venv/bin/python bench/bench_engine.py

A peer that is not installed is skipped, and the output says so.

Workloads, all seeded, and the same operations for every book:

* ``limit``: random limit orders within 50 ticks of a mid price, quantity 1 to 100.
* ``mix``: 60 % new limit orders, 30 % cancels and 10 % replaces of live orders.
* ``wide``: limit orders spread over 2,000 ticks, so the book has many levels.

The workload is generated once by running it through fixgw's engine, untimed, so that
every cancel and replace names an order that is live at that point. All the books use
price-time priority, so the same orders are live in each. Peers without a replace do a
cancel and a new order. Commands and peer order objects are built before the timer
starts. Throughput is the best of ``--repeat`` runs on fresh books, each timed as one
loop, with the books taking turns in each round. Latency comes from a separate run that times every operation with
``time.perf_counter_ns``, which adds about 0.1 µs to each. The garbage collector stays on
in both, for every book alike, with the prepared workload frozen (``gc.freeze()``) so
that collections scan only what the book itself allocates.

fixgw runs with the full order model on: an instrument with tick size, lot size and
price limits, and both sessions in firms with self-match prevention, so the check runs
on every fill. Buys come from one firm and sells from the other, so no order is
actually cancelled by it and every book sees the same trades.

fixgw runs with its compiled fast paths (``engine._cengine``) when they are built, and
then once more without them, as "fixgw, pure Python", so both figures come from the same
run. ``--floor`` times what the event contract costs in pure Python.

Each workload runs in a fresh process of its own, with every book taking turns in it,
so that what one workload leaves in the heap does not slow the next. In one process
right after limit, fixgw's mix measured 5 to 8 % slower than in a fresh process, and
lightmatchingengine's about 2 % slower.

A ratio between books moves from one process to the next by more than the runs within
a process show. ``--processes N`` measures the throughput of each workload in N fresh
processes, one after another, and prints each book's median and range, the median and
range of fixgw's ratio to it (each ratio taken within one process), and that ratio in
each process. It measures no latency.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import (  # noqa: E402
    CancelOrder,
    ExecutionEvent,
    ExecType,
    Firm,
    Instrument,
    MatchingEngine,
    NewOrder,
    OrdType,
    ReplaceOrder,
    SelfMatchPrevention,
    Side,
    Trade,
)

SEED = 20240601
MID_PRICE = 10_000
SYMBOL = "BENCH"
BUY_SESSION = "S-BUY"
SELL_SESSION = "S-SELL"
DEFAULT_OPS = 100_000
DEFAULT_REPEAT = 5

# Workload name: (price spread in ticks, share of cancels, share of replaces).
WORKLOADS = {
    "limit": (50, 0.0, 0.0),
    "mix": (50, 0.30, 0.10),
    "wide": (1000, 0.0, 0.0),
}

Op = tuple[Any, ...]  # ("new", oid, is_buy, price, qty) | ("cancel", oid) | ("replace", oid, price, qty)
Call = tuple[Callable[..., Any], tuple[Any, ...]]


@dataclass
class Workload:
    """Operations and, per operation, its kind for latency: add, match, cancel, replace."""

    name: str
    ops: list[Op]
    kinds: list[str]
    # Original order_qty and side of each order, for peers that replace by size delta.
    order_qty: dict[int, int]
    is_buy: dict[int, bool]
    fills: int


# Workload generation.


def fixgw_engine(compiled: bool | None = None) -> MatchingEngine:
    """Return the engine with the full order model on, as the benchmark runs it."""
    instrument = Instrument(
        SYMBOL, tick_size=1, lot_size=1, low_limit_price=1, high_limit_price=10 * MID_PRICE
    )
    firms = [
        Firm("BUYER", (BUY_SESSION,), SelfMatchPrevention.CANCEL_RESTING),
        Firm("SELLER", (SELL_SESSION,), SelfMatchPrevention.CANCEL_RESTING),
    ]
    return MatchingEngine([instrument], firms=firms, compiled=compiled)


def generate(name: str, count: int, spread_ticks: int, cancel_share: float, replace_share: float) -> Workload:
    """Return ``count`` operations, run once through fixgw to aim cancels at live orders."""
    rng = random.Random(f"{SEED}-{name}")
    engine = fixgw_engine()
    live: dict[int, tuple[bool, int, int]] = {}  # oid -> (is_buy, price, order_qty)
    ops: list[Op] = []
    kinds: list[str] = []
    order_qty: dict[int, int] = {}
    is_buy_of: dict[int, bool] = {}
    fills = 0
    next_oid = 0
    for _ in range(count):
        roll = rng.random()
        if live and roll < cancel_share:
            oid = rng.choice(list(live)) if len(live) < 64 else _pick(rng, live)
            op: Op = ("cancel", oid)
        elif live and roll < cancel_share + replace_share:
            oid = _pick(rng, live)
            buy, price, qty = live[oid]
            op = ("replace", oid, price + rng.randint(-3, 3), max(1, qty + rng.randint(-20, 20)))
        else:
            next_oid += 1
            buy = rng.random() < 0.5
            op = ("new", next_oid, buy, MID_PRICE + rng.randint(-spread_ticks, spread_ticks), rng.randint(1, 100))
            order_qty[next_oid] = op[4]
            is_buy_of[next_oid] = buy
        events = engine.process(fixgw_command(op, len(ops), is_buy_of))
        traded = _apply(op, events, live)
        fills += traded
        ops.append(op)
        if op[0] != "new":
            kinds.append(op[0])
        else:
            kinds.append("match" if traded else "add")
    return Workload(name, ops, kinds, order_qty, is_buy_of, fills)


def _pick(rng: random.Random, live: dict[int, Any]) -> int:
    """Pick a live order id; sampling a few keys keeps generation fast on big books."""
    keys = list(live) if len(live) < 4096 else list(live)[-4096:]
    return rng.choice(keys)


def _apply(op: Op, events: list[Any], live: dict[int, tuple[bool, int, int]]) -> int:
    """Update the live orders from the engine's events; return the number of trades."""
    trades = 0
    for event in events:
        if isinstance(event, Trade):
            trades += 1
        elif isinstance(event, ExecutionEvent):
            oid = int(event.cl_ord_id.partition("-")[0])
            if event.leaves_qty and event.exec_type is not ExecType.REJECTED:
                live[oid] = (event.side is Side.BUY, event.price, event.order_qty)
            else:
                live.pop(oid, None)
    return trades


def fixgw_command(op: Op, index: int, is_buy: dict[int, bool]) -> Any:
    """Return the engine command for ``op``, the ``index``-th operation of the workload.

    A new order's ClOrdID (11) is its order id. A cancel or replace needs a ClOrdID that
    no live order holds, so it sends "<order id>-<index>", and names the order by its
    first ClOrdID, which stays valid across replaces.
    """
    kind, oid = op[0], op[1]
    side = Side.BUY if is_buy[oid] else Side.SELL
    session = BUY_SESSION if side is Side.BUY else SELL_SESSION
    if kind == "new":
        return NewOrder(session, str(oid), SYMBOL, side, OrdType.LIMIT, op[4], op[3])
    if kind == "cancel":
        return CancelOrder(session, f"{oid}-{index}", str(oid), SYMBOL, side)
    return ReplaceOrder(
        session, f"{oid}-{index}", str(oid), SYMBOL, side, OrdType.LIMIT, op[3], op[2]
    )


# Books under test: each returns a fresh book's list of calls for a workload.


def prepare_fixgw(workload: Workload, compiled: bool | None = None) -> list[Call]:
    engine = fixgw_engine(compiled)
    process = engine.process
    return [
        (process, (fixgw_command(op, index, workload.is_buy),))
        for index, op in enumerate(workload.ops)
    ]


def prepare_lightmatchingengine(workload: Workload) -> list[Call]:
    from lightmatchingengine.lightmatchingengine import LightMatchingEngine
    from lightmatchingengine.lightmatchingengine import Side as LmeSide

    lme = LightMatchingEngine()
    ids: dict[int, int] = {}  # workload oid -> LME order id, which counts adds from 1
    adds = 0
    calls: list[Call] = []

    # lightmatchingengine keeps filled orders in its id map but not in the book, and its
    # cancel_order then fails an assert, so cancel only what still has quantity left.
    # Replaces change priority differently in each book, so a workload cancel may find
    # the order already filled here.
    id_map = lme.order_books.setdefault(SYMBOL, _lme_order_book())

    def cancel(order_id: int) -> None:
        order = id_map.order_id_map.get(order_id)
        if order is not None and order.leaves_qty:
            lme.cancel_order(order_id, SYMBOL)

    def replace(old_id: int, price: float, qty: int, side: int) -> None:
        cancel(old_id)
        lme.add_order(SYMBOL, price, qty, side)

    for op in workload.ops:
        oid = op[1]
        side = LmeSide.BUY if workload.is_buy[oid] else LmeSide.SELL
        if op[0] == "new":
            adds += 1
            ids[oid] = adds
            calls.append((lme.add_order, (SYMBOL, float(op[3]), op[4], side)))
        elif op[0] == "cancel":
            calls.append((cancel, (ids[oid],)))
        else:
            adds += 1
            calls.append((replace, (ids[oid], float(op[2]), op[3], side)))
            ids[oid] = adds
    return calls


def _lme_order_book() -> Any:
    from lightmatchingengine.lightmatchingengine import OrderBook

    return OrderBook()


def prepare_pyorderbook(workload: Workload) -> list[Call]:
    import logging

    from pyorderbook import Book, ask, bid

    # pyorderbook calls logging.basicConfig(level=INFO) on import; its per-order logging
    # is at DEBUG, so it stays off as it would for a user.
    logging.getLogger("pyorderbook").setLevel(logging.WARNING)
    book = Book()
    orders: dict[int, Any] = {}
    calls: list[Call] = []

    # pyorderbook raises KeyError (and logs an error) on a cancel of a filled order, which
    # a workload cancel may name when replaces moved priority differently than in fixgw.
    def cancel(order: Any) -> None:
        if order.id in book.order_map:
            book.cancel(order)

    def replace(old: Any, new: Any) -> None:
        cancel(old)
        book.match(new)

    for op in workload.ops:
        oid = op[1]
        make = bid if workload.is_buy[oid] else ask
        if op[0] == "new":
            orders[oid] = make(SYMBOL, op[3], op[4])
            calls.append((book.match, (orders[oid],)))
        elif op[0] == "cancel":
            calls.append((cancel, (orders[oid],)))
        else:
            new = make(SYMBOL, op[2], op[3])
            calls.append((replace, (orders[oid], new)))
            orders[oid] = new
    return calls


def prepare_liquibook(workload: Workload, with_listener: bool) -> list[Call]:
    import liquibook

    book = liquibook.DepthOrderBook()
    book.set_symbol(SYMBOL)
    if with_listener:
        listener = _liquibook_listener(liquibook)
        book.set_order_listener(listener)
        # The book keeps only a raw pointer, so the proxy object must live as long as the book.
        book._bench_listener = listener  # type: ignore[attr-defined]
    orders: dict[int, Any] = {}
    qty: dict[int, int] = {}
    calls: list[Call] = []
    for op in workload.ops:
        oid = op[1]
        if op[0] == "new":
            orders[oid] = liquibook.SimpleOrder(workload.is_buy[oid], op[3], op[4])
            qty[oid] = op[4]
            calls.append((book.add, (orders[oid],)))
        elif op[0] == "cancel":
            calls.append((book.cancel, (orders[oid],)))
        else:
            # liquibook replaces by a change of quantity, not the new total.
            calls.append((book.replace, (orders[oid], op[3] - qty[oid], op[2])))
            qty[oid] = op[3]
    return calls


def _liquibook_listener(liquibook: Any) -> Any:
    class RecordingListener(liquibook.OrderListener):
        """Keeps each order's fill state and records every callback, as fixgw's events do."""

        def __init__(self) -> None:
            liquibook.OrderListener.__init__(self)
            self.records: list[tuple[Any, ...]] = []

        def on_accept(self, order: Any) -> None:
            self.records.append(("accept", order.order_id_))

        def on_fill(self, order: Any, matched: Any, fill_qty: int, fill_cost: int) -> None:
            order.fill(fill_qty, fill_cost, 0)
            matched.fill(fill_qty, fill_cost, 0)
            self.records.append(("fill", order.order_id_, matched.order_id_, fill_qty, fill_cost))

        def on_cancel(self, order: Any) -> None:
            self.records.append(("cancel", order.order_id_))

        def on_replace(self, order: Any, size_delta: int, new_price: int) -> None:
            self.records.append(("replace", order.order_id_, size_delta, new_price))

        def on_reject(self, order: Any, reason: str) -> None:
            self.records.append(("reject", order.order_id_, reason))

        def on_cancel_reject(self, order: Any, reason: str) -> None:
            self.records.append(("cancel_reject", order.order_id_, reason))

        def on_replace_reject(self, order: Any, reason: str) -> None:
            self.records.append(("replace_reject", order.order_id_, reason))

    return RecordingListener()


# Measurement.


@dataclass
class Result:
    book: str
    ops_per_s: float
    latency_us: dict[str, tuple[float, float, float, float]]  # kind -> (ops/s, p50, p99, p99.9)


def run_calls(calls: list[Call]) -> float:
    """Run the calls in one timed loop and return the elapsed seconds."""
    start = time.perf_counter()
    for function, args in calls:
        function(*args)
    return time.perf_counter() - start


def time_each(calls: list[Call]) -> list[int]:
    """Run the calls, timing each one, and return the durations in nanoseconds."""
    clock = time.perf_counter_ns
    durations = []
    append = durations.append
    for function, args in calls:
        start = clock()
        function(*args)
        append(clock() - start)
    return durations


def measure_throughput(
    books: list[tuple[str, Callable[[Workload], list[Call]], str]], workload: Workload, repeat: int
) -> dict[str, float]:
    """Return ops/s per book, the best of ``repeat`` runs.

    The books take turns in each round, so a change in machine load affects them alike,
    and the best run is the one least disturbed by other processes.
    """
    best: dict[str, float] = {}
    for _ in range(repeat):
        for name, prepare, _package in books:
            calls = prepare(workload)
            _freeze_prepared()
            with _captured_output() as captured:
                elapsed = run_calls(calls)
            gc.unfreeze()
            _note_output(name, captured)
            del calls
            best[name] = min(best.get(name, elapsed), elapsed)
    return {name: len(workload.ops) / elapsed for name, elapsed in best.items()}


def measure_latency(
    prepare: Callable[[Workload], list[Call]], workload: Workload
) -> dict[str, tuple[float, float, float, float]]:
    """Return, per kind of operation, (ops/s, p50, p99, p99.9 in µs) from one timed run."""
    calls = prepare(workload)
    _freeze_prepared()
    with _captured_output():
        durations = time_each(calls)
    gc.unfreeze()
    del calls
    latency: dict[str, tuple[float, float, float, float]] = {}
    for kind in ("add", "match", "cancel", "replace"):
        values = sorted(d for d, k in zip(durations, workload.kinds) if k == kind)
        if values:
            latency[kind] = (
                len(values) / (sum(values) / 1e9),
                _percentile(values, 50) / 1e3,
                _percentile(values, 99) / 1e3,
                _percentile(values, 99.9) / 1e3,
            )
    return latency


def _freeze_prepared() -> None:
    """Move every object alive now, the prepared workload included, out of the collector's reach.

    Without this a full collection during the run scans the 100,000 prepared commands
    or peer orders too: one such pass took 0.17 s of a 0.79 s run. Freezing leaves the
    collector working on what the book allocates, for every book alike.
    """
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def _captured_output() -> Iterator[list[str]]:
    """Send what C++ code prints to file descriptors 1 and 2 to a temporary file.

    liquibook 2.0.1 prints a line to the terminal for each exception it catches in a
    callback; the benchmark counts those lines instead of showing them.
    """
    lines: list[str] = []
    sys.stdout.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sink.seek(0)
            lines.extend(sink.read().splitlines())


_OUTPUT_NOTES: dict[str, str] = {}


def _note_output(name: str, lines: list[str]) -> None:
    if lines:
        _OUTPUT_NOTES[name] = f"{len(lines):,} lines printed in one run, such as {lines[0]!r}"


def _percentile(sorted_values: list[int], pct: float) -> float:
    index = min(len(sorted_values) - 1, round(pct / 100 * (len(sorted_values) - 1)))
    return float(sorted_values[index])


# The floor the event contract sets.

FLOOR_STEPS = {
    # step: (statement, what it stands for); setup in _floor_namespace.
    "Order object": (
        "Order(order_id, session_id, cl_ord_id, symbol, side, ord_type, tif, price, qty, '')",
        "one per accepted order",
    ),
    "ID string": ("f'{prefix}{num}'", "OrderID and ExecID per order; 2 ExecIDs and a TradeID per fill"),
    "ExecutionEvent": (
        "new_tuple(ExecutionEvent, (exec_id, exec_type, status, order_id, session_id, cl_ord_id,"
        " None, symbol, side, ord_type, tif, price, qty, 0, qty, 0, 0, 0, None, None, '', None,"
        " 0, 0, False, None, None))",
        "NEW per order, 2 TRADE per fill",
    ),
    "Trade": (
        "new_tuple(Trade, (exec_id, symbol, price, qty, side, order_id, session_id, order_id,"
        " session_id, False))",
        "one per fill",
    ),
    "call with dispatch": ("process(command)", "process() finding the handler and calling it"),
}


def _floor_namespace() -> dict[str, Any]:
    from engine.book import Order
    from engine.orders import OrdStatus, TimeInForce

    handlers = {NewOrder: lambda command: None}

    def process(command: Any) -> Any:
        return handlers[type(command)](command)

    return {
        "Order": Order, "ExecutionEvent": ExecutionEvent, "Trade": Trade,
        "new_tuple": tuple.__new__, "process": process,
        "command": NewOrder(BUY_SESSION, "1", SYMBOL, Side.BUY, OrdType.LIMIT, 10, MID_PRICE),
        "order_id": "O123456", "num": 123456, "session_id": BUY_SESSION, "cl_ord_id": "123456",
        "symbol": SYMBOL, "side": Side.BUY, "ord_type": OrdType.LIMIT, "tif": TimeInForce.DAY,
        "price": MID_PRICE, "qty": 10, "prefix": "E", "exec_id": "E1234567",
        "exec_type": ExecType.NEW, "status": OrdStatus.NEW,
    }


def measure_floor(summaries: list[dict[str, Any]]) -> None:
    """Print what the event contract alone costs per operation, with timeit (best of 5).

    An accepted order needs an Order, its OrderID, a NEW ExecutionEvent and its ExecID;
    a fill needs two TRADE ExecutionEvents, their ExecIDs, a Trade and its TradeID; and
    every command goes through process(). Matching, validation and book updates come on
    top, so the result is a lower bound for any engine that keeps this contract.
    """
    namespace = _floor_namespace()
    number = 200_000
    cost_us = {
        step: min(timeit.repeat(statement, globals=namespace, number=number, repeat=5)) / number * 1e6
        for step, (statement, _) in FLOOR_STEPS.items()
    }
    print("\n## floor set by the event contract (timeit, best of 5)")
    for step, (_, use) in FLOOR_STEPS.items():
        print(f"{step:20} {cost_us[step]:6.3f} µs  {use}")
    per_order = cost_us["Order object"] + 2 * cost_us["ID string"] + cost_us["ExecutionEvent"]
    per_fill = 3 * cost_us["ID string"] + 2 * cost_us["ExecutionEvent"] + cost_us["Trade"]
    print(f"{'accepted order':20} {per_order:6.3f} µs\n{'fill':20} {per_fill:6.3f} µs")
    for summary in summaries:
        counts = summary["counts"]
        orders = counts.get("add", 0) + counts.get("match", 0)
        other = summary["ops"] - orders
        total_us = (
            summary["ops"] * cost_us["call with dispatch"]
            + orders * per_order
            + summary["trades"] * per_fill
            # A cancel or replace reports one ExecutionEvent with its ExecID.
            + other * (cost_us["ExecutionEvent"] + cost_us["ID string"])
        )
        per_op = total_us / summary["ops"]
        print(
            f"workload {summary['name']}: floor {per_op:.3f} µs per operation, so a pure-Python "
            f"engine runs at most {1e6 / per_op:,.0f} ops/s"
        )


# Reporting.


def peers() -> list[tuple[str, Callable[[Workload], list[Call]], str]]:
    """Return (name, prepare, package) for fixgw and every peer that is installed."""
    books: list[tuple[str, Callable[[Workload], list[Call]], str]] = [("fixgw", prepare_fixgw, "")]
    if fixgw_engine().compiled:
        # The same engine without its compiled fast paths, as it runs where no C
        # compiler built engine._cengine.
        books.append(("fixgw, pure Python", lambda w: prepare_fixgw(w, compiled=False), ""))
    else:
        print("fixgw runs without its compiled fast paths: engine._cengine is not built "
              "or FIXGW_NO_EXTENSIONS is set")
    candidates = [
        ("lightmatchingengine", prepare_lightmatchingengine, "lightmatchingengine"),
        ("pyorderbook", prepare_pyorderbook, "pyorderbook"),
        ("liquibook", lambda w: prepare_liquibook(w, False), "liquibook"),
        ("liquibook+listener", lambda w: prepare_liquibook(w, True), "liquibook"),
    ]
    for name, prepare, package in candidates:
        try:
            installed = version(package)
        except PackageNotFoundError:
            print(f"skipped {name}: {package} is not installed; run bench/setup_peers.sh")
            continue
        books.append((f"{name} {installed}", prepare, package))
    return books


def print_results(results: list[Result], summary: dict[str, Any]) -> None:
    print(f"\n## workload {summary['name']}: {summary['ops']:,} operations, {summary['trades']:,} trades")
    ours = next(r for r in results if r.book == "fixgw")
    print(f"{'book':28} {'ops/s':>11} {'fixgw is':>9}")
    for result in results:
        ratio = ours.ops_per_s / result.ops_per_s
        print(f"{result.book:28} {result.ops_per_s:>11,.0f} {ratio:>8.2f}x")
    print(f"\n{'book':28} {'operation':9} {'count':>7} {'ops/s':>11} {'p50 µs':>8} {'p99 µs':>8} {'p99.9 µs':>9}")
    counts = summary["counts"]
    for result in results:
        for kind, (rate, p50, p99, p999) in result.latency_us.items():
            print(
                f"{result.book:28} {kind:9} {counts[kind]:>7,} {rate:>11,.0f} "
                f"{p50:>8.2f} {p99:>8.2f} {p999:>9.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=DEFAULT_OPS, help="operations per workload")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, help="timed runs per book, best reported")
    parser.add_argument("--workload", choices=tuple(WORKLOADS), action="append", help="run only these workloads")
    parser.add_argument("--floor", action="store_true", help="also time what the event contract costs per operation")
    parser.add_argument(
        "--processes", type=int, default=1, metavar="N",
        help="measure throughput in N fresh processes per workload and print the spread (no latency)",
    )
    # One of those processes: print the throughput of each book (and with --latency the
    # latency too) as JSON.
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--latency", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.processes < 1:
        parser.error(f"--processes must be 1 or more, got {args.processes}")
    if args.child:
        (name,) = args.workload
        with contextlib.redirect_stdout(sys.stderr):
            result = measure_workload(name, args.ops, args.repeat, args.latency)
        print(CHILD_RESULT + json.dumps(result))
        return

    print(f"python {platform.python_version()} on {platform.machine()}; --ops {args.ops} --repeat {args.repeat}")
    names = args.workload or list(WORKLOADS)
    if args.processes > 1:
        for name in names:
            print_spread(name, args.ops, measure_in_processes(name, args.ops, args.repeat, args.processes))
        return
    peers()  # prints which books are left out, as each process does again
    summaries = []
    for name in names:
        (summary,) = measure_in_processes(name, args.ops, args.repeat, 1, latency=True)
        summaries.append(summary)
        results = [
            Result(book, summary["throughput"][book], summary["latency"][book])
            for book in summary["throughput"]
        ]
        print_results(results, summary)
        for book, note in summary["notes"].items():
            print(f"note: {book}: {note}")
    if args.floor:
        measure_floor(summaries)


CHILD_RESULT = "RESULT "


def measure_workload(name: str, ops: int, repeat: int, latency: bool) -> dict[str, Any]:
    """Measure every book on workload ``name`` in this process, as a dict for JSON."""
    books = peers()
    workload = generate(name, ops, *WORKLOADS[name])
    _OUTPUT_NOTES.clear()
    result: dict[str, Any] = {
        "name": name,
        "ops": len(workload.ops),
        "trades": workload.fills,
        "counts": {kind: workload.kinds.count(kind) for kind in sorted(set(workload.kinds))},
        "throughput": measure_throughput(books, workload, repeat),
    }
    if latency:
        result["latency"] = {book: measure_latency(prepare, workload) for book, prepare, _ in books}
    result["notes"] = dict(_OUTPUT_NOTES)
    return result


def measure_in_processes(
    name: str, ops: int, repeat: int, processes: int, latency: bool = False
) -> list[dict[str, Any]]:
    """Run the comparison of workload ``name`` in fresh processes, one after another."""
    results = []
    for _ in range(processes):
        command = [
            sys.executable, str(Path(__file__).resolve()), "--child", "--workload", name,
            "--ops", str(ops), "--repeat", str(repeat),
        ]
        if latency:
            command.append("--latency")
        done = subprocess.run(command, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith(CHILD_RESULT)]
        if done.returncode != 0 or not lines:
            failure = (
                f"failed with exit code {done.returncode}" if done.returncode != 0
                else f"exited without a {CHILD_RESULT.strip()} line"
            )
            raise SystemExit(
                f"a benchmark process for workload {name} {failure}. The end of its "
                f"standard error:\n{done.stderr[-2000:]}"
            )
        results.append(json.loads(lines[-1][len(CHILD_RESULT):]))
    return results


def print_spread(name: str, ops: int, results: list[dict[str, Any]]) -> None:
    """Print each book's median and range over the processes, and fixgw's ratio to it."""
    throughputs = [result["throughput"] for result in results]
    print(f"\n## workload {name}: {ops:,} operations, {results[0]['trades']:,} trades, "
          f"{len(results)} processes")
    print(f"{'book':<29} {'ops/s median':>13} {'range':>23}   fixgw is: median, range")
    for book in throughputs[0]:
        values = [run[book] for run in throughputs]
        ratios = [run["fixgw"] / run[book] for run in throughputs]
        span = f"{min(values):,.0f} to {max(values):,.0f}"
        ratio = (
            f"{statistics.median(ratios):.2f}x, {min(ratios):.2f}x to {max(ratios):.2f}x"
            if book != "fixgw" else ""
        )
        print(f"{book:<29} {statistics.median(values):>13,.0f} {span:>23}   {ratio}")
    print("\nfixgw's ratio to each book in each process, in the order the processes ran:")
    for book in throughputs[0]:
        if book != "fixgw":
            ratios = ", ".join(f"{run['fixgw'] / run[book]:.2f}x" for run in throughputs)
            print(f"{book:<29} {ratios}")


if __name__ == "__main__":
    main()
