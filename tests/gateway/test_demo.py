"""The demo: an appliance on built-in defaults traded by simulated brokers over TCP."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from gateway.demo import run_demo
from gateway.summary import RunSummary, format_summary


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> RunSummary:
    audit_path = tmp_path_factory.mktemp("demo") / "audit.sqlite"
    return asyncio.run(run_demo(seconds=1.5, sessions=4, audit_path=audit_path, seed=7))


def test_demo_trades(summary: RunSummary) -> None:
    assert summary.sessions == 4
    assert summary.orders_sent > 0
    assert summary.messages_sent >= summary.orders_sent
    assert summary.fills > 0
    assert summary.throughput_orders_per_s > 0


def test_demo_rejects(summary: RunSummary) -> None:
    assert summary.rejects_by_reason.get("ORDER_EXCEEDS_LIMIT", 0) > 0
    assert summary.rejects_by_reason.get("UNKNOWN_SYMBOL", 0) > 0


def test_demo_latency(summary: RunSummary) -> None:
    assert summary.latency_p50_us > 0
    assert summary.latency_p99_us >= summary.latency_p50_us


def test_demo_audit_trail(summary: RunSummary) -> None:
    assert summary.audit_path.exists()
    with sqlite3.connect(summary.audit_path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables


def test_demo_summary_text(summary: RunSummary) -> None:
    text = format_summary(summary)
    lines = text.splitlines()
    assert lines[0].split() == ["sessions", "4"]
    assert any(line.startswith("order-to-ack p99") for line in lines)
    assert any(line.startswith("rejects") and "UNKNOWN_SYMBOL" in line for line in lines)
    assert lines[-1].endswith(str(summary.audit_path))
    # Values start in one column.
    starts = {len(line) - len(line.split("  ", 1)[1].lstrip()) for line in lines}
    assert len(starts) == 1


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"sessions": 0}, "sessions must be from 1 to 4, got 0"),
        ({"sessions": 5}, "sessions must be from 1 to 4, got 5"),
        ({"seconds": 0}, "seconds must be positive, got 0"),
    ],
)
def test_demo_bad_options(options: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        asyncio.run(run_demo(**options))  # type: ignore[arg-type]
