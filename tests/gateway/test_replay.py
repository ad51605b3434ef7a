"""LOBSTER replay through real FIX sessions: agreement with the recorded book."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.lobster import EventType
from gateway.replay import run_replay
from gateway.summary import RunSummary, format_summary

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
AAPL_MESSAGES = DATA_DIR / "AAPL_2012-06-21_34200000_57600000_message_10.csv"
AAPL_ORDERBOOK = DATA_DIR / "AAPL_2012-06-21_34200000_57600000_orderbook_10.csv"

# A level-1 day made up for the test. Before 09:30 the book has asks of 300 at 100.10
# (ids 901 and 902) and 500 at 100.20, bids of 400 at 100.00 (id 903) and 200 at 99.90;
# none of them is in the message file. Between events 11 and 12, 300 of the asks at
# 100.20 are cancelled while that level is outside the window, so no message shows it.
DAY_MESSAGES = """Time,Type,OrderId,Size,Price,Direction
34200.1,1,1,50,1000500,1
34200.2,4,901,200,1001000,-1
34200.3,3,1,50,1000500,1
34200.4,2,903,150,1000000,1
34200.5,1,2,30,1001000,-1
34200.6,4,902,100,1001000,-1
34200.7,4,2,30,1001000,-1
34200.8,5,0,10,1001500,1
34200.9,3,903,250,1000000,1
34201.0,7,0,0,-1,-1
34201.1,1,3,40,1001500,-1
34201.2,3,3,40,1001500,-1
"""
DAY_ORDERBOOK = """BestAsk,BestAskVolume,BestBid,BestBidVolume
1001000,300,1000500,50
1001000,100,1000500,50
1001000,100,1000000,400
1001000,100,1000000,250
1001000,130,1000000,250
1001000,30,1000000,250
1002000,500,1000000,250
1002000,500,1000000,250
1002000,500,999000,200
1002000,500,999000,200
1001500,40,999000,200
1002000,200,999000,200
"""
DAY_NAME = "TEST_2012-06-21_34200000_57600000_{}_1.csv"


def _write_day(folder: Path) -> tuple[Path, Path]:
    messages = folder / DAY_NAME.format("message")
    orderbook = folder / DAY_NAME.format("orderbook")
    messages.write_text(DAY_MESSAGES)
    orderbook.write_text(DAY_ORDERBOOK)
    return messages, orderbook


def _replay(messages: Path, orderbook: Path | None, audit_path: Path, limit: int | None = None) -> RunSummary:
    return asyncio.run(run_replay(messages, orderbook, audit_path=audit_path, limit=limit))


def test_made_up_day_agrees(tmp_path: Path) -> None:
    messages, orderbook = _write_day(tmp_path)
    summary = _replay(messages, orderbook, tmp_path / "audit.sqlite")
    figures = summary.replay
    assert figures is not None
    assert figures.symbol == "TEST"
    assert figures.events_by_type == {
        EventType.NEW: 3,
        EventType.PARTIAL_CANCEL: 1,
        EventType.DELETE: 3,
        EventType.EXECUTE_VISIBLE: 3,
        EventType.EXECUTE_HIDDEN: 1,
        EventType.HALT: 1,
    }
    assert figures.events_sent == 10
    assert (figures.bbo_agreed, figures.bbo_compared) == (12, 12)
    assert figures.bbo_agreed_unreconciled == figures.bbo_compared_unreconciled
    assert (figures.executions_reproduced, figures.executions) == (3, 3)
    assert (figures.order_rejects, figures.cancel_rejects) == (0, 0)
    assert figures.unmatched_cancel_qty == 0


def test_made_up_day_reconciles(tmp_path: Path) -> None:
    messages, orderbook = _write_day(tmp_path)
    figures = _replay(messages, orderbook, tmp_path / "audit.sqlite").replay
    assert figures is not None
    # Seeds of 300, 400, 500 and 200 as those levels enter the window, then 300 taken
    # off 100.20 when it comes back smaller.
    assert figures.reconciled_levels == 5
    assert figures.reconciled_qty == 1700
    assert figures.bbo_compared_unreconciled == 7


def test_made_up_day_summary(tmp_path: Path) -> None:
    messages, orderbook = _write_day(tmp_path)
    audit_path = tmp_path / "audit.sqlite"
    summary = _replay(messages, orderbook, audit_path)
    assert summary.sessions == 3
    assert summary.fills == 3
    assert summary.orders_sent == 3 + 3 + 4
    assert summary.audit_path == audit_path
    assert audit_path.exists()
    text = format_summary(summary)
    assert "BBO agreement          12 of 12 rows (100.00 %)" in text
    assert "executions reproduced  3 of 3 (100.00 %)" in text


def test_replay_without_orderbook(tmp_path: Path) -> None:
    messages, _ = _write_day(tmp_path)
    figures = _replay(messages, None, tmp_path / "audit.sqlite").replay
    assert figures is not None
    assert figures.bbo_compared == 0
    assert figures.reconciled_levels == 0
    # The cancels of ids 903 (150, then 250) find no seed order to act on.
    assert figures.unmatched_cancel_qty == 400
    assert figures.executions_reproduced == 0


def test_limit_stops_early(tmp_path: Path) -> None:
    messages, orderbook = _write_day(tmp_path)
    figures = _replay(messages, orderbook, tmp_path / "audit.sqlite", limit=4).replay
    assert figures is not None
    assert figures.events == 4
    assert figures.bbo_agreed == 4


def test_existing_audit_rejected(tmp_path: Path) -> None:
    messages, orderbook = _write_day(tmp_path)
    audit_path = tmp_path / "audit.sqlite"
    audit_path.write_bytes(b"")
    with pytest.raises(ValueError, match="already exists"):
        _replay(messages, orderbook, audit_path)


def test_short_orderbook_rejected(tmp_path: Path) -> None:
    messages, orderbook = _write_day(tmp_path)
    orderbook.write_text(DAY_ORDERBOOK.splitlines()[0] + "\n1001000,300,1000500,50\n")
    with pytest.raises(ValueError, match="has 1 rows for 12 events"):
        _replay(messages, orderbook, tmp_path / "audit.sqlite")


def test_aapl_excerpt_agrees(tmp_path: Path) -> None:
    if not AAPL_MESSAGES.exists() or not AAPL_ORDERBOOK.exists():
        pytest.skip(f"LOBSTER AAPL sample not found at {AAPL_MESSAGES} and {AAPL_ORDERBOOK}")
    summary = _replay(AAPL_MESSAGES, AAPL_ORDERBOOK, tmp_path / "audit.sqlite")
    figures = summary.replay
    assert figures is not None
    assert figures.events == 999
    assert figures.events_sent == 938
    assert figures.bbo_compared == 999
    assert figures.bbo_agreement_pct == 100.0
    assert figures.bbo_agreement_unreconciled_pct == 100.0
    assert figures.executions == 98
    assert figures.executions_reproduced_pct == 100.0
    assert (figures.order_rejects, figures.cancel_rejects) == (0, 0)
    assert figures.unmatched_cancel_qty == 0
    assert summary.fills == 98
    assert summary.latency_p50_us > 0
