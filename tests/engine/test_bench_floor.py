"""bench/bench_engine.py --floor times statements that build the engine's own objects.

They are strings evaluated by timeit, so a change to Order or the events breaks them
only when the benchmark runs. Each is run once here against the current classes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench_engine():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(BENCH))
    try:
        import bench_engine

        yield bench_engine
    finally:
        sys.path.remove(str(BENCH))


def test_floor_statements_run(bench_engine) -> None:  # type: ignore[no-untyped-def]
    namespace = bench_engine._floor_namespace()
    for statement, _meaning in bench_engine.FLOOR_STEPS.values():
        eval(statement, namespace)  # raises when a statement no longer fits the classes
