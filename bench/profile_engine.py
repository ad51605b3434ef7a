"""Time fixgw's engine alone on one workload of bench_engine.py, with the collector on or off.

This is the tool behind the step-by-step figures in docs/benchmarks.md. It times only
fixgw, so it is quicker than the full comparison. With ``--module PATH`` it loads another
build of the compiled fast paths, to compare a change with the current build in the same
session. Run from the repository root::

    python bench/profile_engine.py limit --runs 3 --gc both
    python bench/profile_engine.py mix --module /tmp/variant.so

For a profile of the timed loops alone, let ``perf`` start paused and have this script
switch it on and off around each timed run through a FIFO::

    mkfifo /tmp/perf-ctl
    perf record -D -1 --control=fifo:/tmp/perf-ctl -o /tmp/perf.data -- \
        python bench/profile_engine.py limit --runs 8 --perf-control /tmp/perf-ctl
    perf report -i /tmp/perf.data --no-children --sort symbol
"""

from __future__ import annotations

import argparse
import errno
import gc
import importlib.machinery
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORKLOADS = {"limit": (50, 0.0, 0.0), "mix": (50, 0.30, 0.10), "wide": (1000, 0.0, 0.0)}


def load_module(path: str) -> None:
    """Install the build at ``path`` as engine._cengine before the engine is imported."""
    loader = importlib.machinery.ExtensionFileLoader("engine._cengine", path)
    spec = importlib.util.spec_from_file_location("engine._cengine", path, loader=loader)
    if spec is None:
        raise SystemExit(f"--module {path!r} is not a loadable extension file")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    sys.modules["engine._cengine"] = module


def best_seconds(workload: object, runs: int, collector: bool, perf: TextIO | None) -> float:
    import bench_engine

    best = float("inf")
    for _ in range(runs):
        calls = bench_engine.prepare_fixgw(workload)  # type: ignore[arg-type]
        bench_engine._freeze_prepared()
        if not collector:
            gc.disable()
        _tell(perf, "enable")
        best = min(best, bench_engine.run_calls(calls))
        _tell(perf, "disable")
        gc.enable()
        gc.unfreeze()
        del calls
    return best


def open_perf_control(path: str) -> TextIO:
    """Open perf's control FIFO for writing; exit with the fix when perf is not reading it."""
    fix = "run this script under perf record -D -1 --control=fifo:PATH with the same PATH"
    if not Path(path).exists():
        raise SystemExit(f"--perf-control {path!r} does not exist; create it with mkfifo, then {fix}")
    if not Path(path).is_fifo():
        raise SystemExit(f"--perf-control {path!r} is not a FIFO; create one with mkfifo, then {fix}")
    try:
        # Non-blocking, so that a FIFO with no reader fails at once instead of hanging.
        descriptor = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno != errno.ENXIO:
            raise
        raise SystemExit(f"--perf-control {path!r}: no process reads this FIFO; {fix}") from None
    os.set_blocking(descriptor, True)
    return os.fdopen(descriptor, "w")


def _tell(perf: TextIO | None, command: str) -> None:
    """Send ``command`` to perf's control FIFO, if there is one."""
    if perf is not None:
        perf.write(f"{command}\n")
        perf.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("--ops", type=int, default=100_000, help="operations in the workload")
    parser.add_argument("--runs", type=int, default=3, help="timed runs, the best reported")
    parser.add_argument("--gc", choices=("on", "off", "both"), default="on", help="the garbage collector")
    parser.add_argument("--module", help="another build of engine._cengine to time")
    parser.add_argument(
        "--perf-control", metavar="FIFO",
        help="perf's control FIFO (perf record --control=fifo:FIFO -D -1): profile only the timed runs",
    )
    args = parser.parse_args()
    perf = open_perf_control(args.perf_control) if args.perf_control else None
    if args.module:
        load_module(args.module)
    import bench_engine

    from engine.engine import compiled_status

    spread, cancels, replaces = WORKLOADS[args.workload]
    workload = bench_engine.generate(args.workload, args.ops, spread, cancels, replaces)
    print(f"workload {args.workload}, {args.ops:,} operations, engine: {compiled_status()}")
    for collector in {"on": (True,), "off": (False,), "both": (True, False)}[args.gc]:
        seconds = best_seconds(workload, args.runs, collector, perf)
        print(
            f"collector {'on ' if collector else 'off'}  {args.ops / seconds:>11,.0f} ops/s"
            f"  {seconds / args.ops * 1e6:.3f} µs per operation (best of {args.runs})"
        )


if __name__ == "__main__":
    main()
