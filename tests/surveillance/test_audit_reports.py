"""Compliance reports over records written through the AuditTrail recording API."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from engine.commands import CancelOrder, NewOrder, RejectOrder, ReplaceOrder
from engine.engine import MatchingEngine
from engine.events import ExecutionEvent, Trade
from engine.orders import PRICE_SCALE, OrdRejReason, OrdType, Side
from surveillance.audit import AuditTrail, HaltAction, SessionEventKind
from surveillance.audit_book import book_at, format_book_at
from surveillance.audit_export import CAT_FIELDS, cat_events, write_cat_csv, write_cat_json
from surveillance.audit_reports import (
    activity,
    alerts,
    firm_of,
    format_table,
    halts,
    limit_changes,
    order_to_trade,
    recorded_values,
    rejects,
    report_to_json,
    session_report,
)

# Every test runs with both audit writers (tests/surveillance/conftest.py).
pytestmark = pytest.mark.usefixtures("writer")

BRK1 = "FIX.4.4:VENUE->BRK1"
BRK2 = "FIX.4.4:VENUE->BRK2"
T0 = 1_340_285_400_000_000  # 2012-06-21T13:30:00Z
DAY = "2012-06-21"

def price(value: float) -> int:
    return round(value * PRICE_SCALE)


def new_order(session: str, cl_ord_id: str, side: Side, qty: int, px: float, account: str = "") -> NewOrder:
    return NewOrder(session, cl_ord_id, "AAPL", side, OrdType.LIMIT, qty, price(px), account=account)


def fix(msg_type: str, seq: int, extra: str = "") -> bytes:
    return f"8=FIX.4.4\x0135={msg_type}\x0134={seq}\x01{extra}".encode()


def submit(trail: AuditTrail, engine: MatchingEngine, command, ts_us: int) -> list:  # type: ignore[no-untyped-def]
    """Journal and process one command as the appliance does, at ``ts_us``."""
    seq = trail.record_command(command, ts_us=ts_us)
    events = engine.process(command)
    for event in events:
        trail.record_event(event, command_seq=seq, ts_us=ts_us + 1)
    return events


def write_venue_day(path: Path) -> None:
    """Two firms trade AAPL; one risk reject, a replace, a cancel, a halt and an alert."""

    async def scenario() -> None:
        trail = AuditTrail(path)
        await trail.start()
        engine = MatchingEngine(["AAPL"])
        trail.record_limit_change(actor="config", scope="AAPL", setting="collar_pct",
                                  old_value=None, new_value="10", reason="start", ts_us=T0)
        trail.record_limit_change(actor="alice", scope="AAPL", setting="max_order_qty",
                                  old_value="1000", new_value="500", reason="volatility",
                                  ts_us=T0 + 5_000_000)
        trail.record_message(BRK1, "in", fix("D", 2, "11=B1\x01"), msg_type="D", msg_seq_num=2,
                             cl_ord_id="B1", ts_us=T0 + 10)
        trail.record_decision(session_id=BRK1, cl_ord_id="B1", control="MAX_ORDER_QTY",
                              accepted=True, reason_code="ACCEPTED", limit="", value="",
                              text="", command_seq=None, ts_us=T0 + 11)
        submit(trail, engine, new_order(BRK1, "B1", Side.BUY, 100, 10.0, account="trader7"), T0 + 12)
        submit(trail, engine, new_order(BRK2, "S1", Side.SELL, 300, 10.5), T0 + 20)
        submit(trail, engine, ReplaceOrder(BRK2, "S2", "S1", "AAPL", Side.SELL, OrdType.LIMIT, 300,
                                           price(10.0)), T0 + 30)
        trail.record_decision(session_id=BRK2, cl_ord_id="S3", control="MAX_ORDER_QTY",
                              accepted=False, reason_code="MAX_ORDER_QTY", limit="500",
                              value="900", text="OrderQty 900 above 500", command_seq=None,
                              ts_us=T0 + 6_000_000)
        reject = RejectOrder(new_order(BRK2, "S3", Side.SELL, 900, 10.0), OrdRejReason.ORDER_EXCEEDS_LIMIT, "too big")
        submit(trail, engine, reject, T0 + 6_000_001)
        submit(trail, engine, CancelOrder(BRK2, "S4", "S2", "AAPL", Side.SELL), T0 + 7_000_000)
        trail.record_halt(HaltAction.HALT, actor="ops", scope="AAPL", reason="news pending",
                          ts_us=T0 + 8_000_000)
        trail.record_halt(HaltAction.RESUME, actor="ops", scope="AAPL", reason="news out",
                          ts_us=T0 + 9_000_000)
        trail.record_halt(HaltAction.KILL_SWITCH, actor="risk", scope=BRK2, reason="limit breach",
                          canceled_order_ids=["O7", "O8"], ts_us=T0 + 9_500_000)
        trail.record_alert(detector="wash_trade", version="1", score=1.0, threshold=1.0,
                           action="LOGGED", text="self trade", features={"qty": 100},
                           symbol="AAPL", session_id=BRK1, trade_id="T1", ts_us=T0 + 40)
        trail.record_message(BRK1, "out", fix("2", 9, "7=4\x0116=0\x01"), msg_type="2",
                             msg_seq_num=9, ts_us=T0 + 50)
        trail.record_message(BRK1, "in", fix("4", 4, "123=Y\x0136=8\x01"), msg_type="4",
                             msg_seq_num=4, poss_dup=True, ts_us=T0 + 60)
        trail.record_message(BRK1, "out", fix("8", 5), msg_type="8", msg_seq_num=5,
                             poss_dup=True, ts_us=T0 + 70)
        trail.record_session_event(BRK1, SessionEventKind.CANCEL_ON_DISCONNECT,
                                   text="2 orders canceled", ts_us=T0 + 80)
        await trail.close()

    asyncio.run(scenario())


@pytest.fixture(scope="module")
def venue_db(tmp_path_factory: pytest.TempPathFactory, writer: str) -> Path:
    path = tmp_path_factory.mktemp("reports") / "audit.db"
    write_venue_day(path)
    return path


def test_firm_of_session_id() -> None:
    assert firm_of(BRK1) == "BRK1"
    assert firm_of("no arrow") is None


def test_activity_of_session_window(venue_db: Path) -> None:
    report = activity(venue_db, session_id=BRK1, start_us=T0, end_us=T0 + 13)
    assert report.title == f"Activity of {BRK1}"
    assert [(row["source"], row["cl_ord_id"]) for row in report.rows] == [
        ("message", "B1"), ("decision", "B1"), ("command", "B1"),
    ]


def test_activity_of_firm(venue_db: Path) -> None:
    report = activity(venue_db, firm="BRK2")
    assert {row["session_id"] for row in report.rows} == {BRK2}
    assert [row["summary"] for row in report.rows if row["source"] == "command"] == [
        "#2 NewOrder", "#3 ReplaceOrder", "#4 RejectOrder", "#5 CancelOrder",
    ]


def test_activity_of_trader(venue_db: Path) -> None:
    report = activity(venue_db, trader="trader7")
    assert {row["cl_ord_id"] for row in report.rows} == {"B1"}


def test_rejects_carry_limit(venue_db: Path) -> None:
    report = rejects(venue_db)
    assert [(row["cl_ord_id"], row["control"], row["limit_value"], row["observed_value"])
            for row in report.rows] == [("S3", "MAX_ORDER_QTY", "500", "900")]


def test_rejects_summary(venue_db: Path) -> None:
    report = rejects(venue_db, summary=True)
    assert report.rows == [{"control": "MAX_ORDER_QTY", "limit_value": "500", "rejects": 1,
                            "first_us": T0 + 6_000_000}]


def test_limit_changes_history(venue_db: Path) -> None:
    report = limit_changes(venue_db, scope="AAPL")
    assert [(r["actor"], r["setting"], r["old_value"], r["new_value"], r["reason"]) for r in report.rows] == [
        ("config", "collar_pct", None, "10", "start"),
        ("alice", "max_order_qty", "1000", "500", "volatility"),
    ]


def test_halts_paired_with_resumption(venue_db: Path) -> None:
    rows = halts(venue_db).rows
    assert [(r["action"], r["scope"], r["start_us"], r["end_us"], r["ended_by"]) for r in rows] == [
        ("HALT", "AAPL", T0 + 8_000_000, T0 + 9_000_000, "ops"),
        ("KILL_SWITCH", BRK2, T0 + 9_500_000, None, None),
    ]
    assert rows[0]["duration_us"] == 1_000_000
    assert rows[1]["canceled_order_ids"] == "O7,O8"


def test_alerts_with_features(venue_db: Path) -> None:
    (row,) = alerts(venue_db, detector="wash_trade").rows
    assert (row["version"], row["score"], row["threshold"], row["action"]) == ("1", 1.0, 1.0, "LOGGED")
    assert json.loads(row["features"]) == {"qty": 100}


def test_order_to_trade_per_firm(venue_db: Path) -> None:
    rows = {(row["firm"], row["symbol"]): row for row in order_to_trade(venue_db, day=DAY).rows}
    assert (rows["BRK1", "AAPL"]["orders"], rows["BRK1", "AAPL"]["trades"]) == (1, 1)
    brk2 = rows["BRK2", "AAPL"]
    assert (brk2["new"], brk2["modified"], brk2["canceled"], brk2["trades"]) == (2, 1, 1, 1)
    assert brk2["order_to_trade"] == 4.0


def test_session_report_events(venue_db: Path) -> None:
    rows = session_report(venue_db, session_id=BRK1).rows
    events = [(row["event"], row["begin_seq_no"], row["end_seq_no"]) for row in rows]
    assert ("GAP_DETECTED", 4, 0) in events
    assert ("GAP_FILL_RECEIVED", 4, 7) in events
    assert ("POSS_DUP_SENT", 5, 5) in events
    assert ("CANCEL_ON_DISCONNECT", None, None) in events


def test_book_at_replays_journal(venue_db: Path) -> None:
    before_replace = book_at(venue_db, "AAPL", T0 + 25)
    assert before_replace.bids == [(price(10.0), 100)]
    assert before_replace.asks == [(price(10.5), 300)]
    after_trade = book_at(venue_db, "AAPL", T0 + 35)
    assert after_trade.bids == []
    assert after_trade.asks == [(price(10.0), 200)]
    assert after_trade.last_trade_price == price(10.0)
    assert (after_trade.reference_price, after_trade.reference_source) == (price(10.0), "last trade")
    assert after_trade.collar_pct == "10"
    assert "collar reference price 10" in format_book_at(after_trade)


def test_book_at_end_of_day(venue_db: Path) -> None:
    book = book_at(venue_db, "AAPL", T0 + 10_000_000)
    assert book.bids == []
    assert book.asks == []
    assert book.last_command_seq == 5


def test_cat_events_shape(venue_db: Path) -> None:
    events = cat_events(venue_db, day=DAY)
    types = [(event["type"], event["clOrdID"]) for event in events]
    assert types[:2] == [("MENO", "B1"), ("MEOA", "B1")]
    assert ("MEOM", "S2") in types
    assert ("MEOC", "S4") in types
    assert [e["firm"] for e in events if e["type"] == "MEOT"] == ["BRK2", "BRK1"]
    trade = next(e for e in events if e["type"] == "MEOT")
    assert (trade["fillQty"], trade["fillPrice"], trade["side"]) == (100, "10", "SL")
    assert all(event["eventTimestamp"].endswith("Z") for event in events)
    assert "S3" not in {event["clOrdID"] for event in events}


def test_cat_export_formats(venue_db: Path) -> None:
    events = cat_events(venue_db, firm="BRK1")
    csv_out, json_out = io.StringIO(), io.StringIO()
    write_cat_csv(events, csv_out)
    write_cat_json(events, json_out)
    lines = csv_out.getvalue().splitlines()
    assert lines[0] == ",".join(CAT_FIELDS)
    assert len(lines) == len(events) + 1
    objects = [json.loads(line) for line in json_out.getvalue().splitlines()]
    assert [obj["type"] for obj in objects] == [event["type"] for event in events]
    assert all(obj["firm"] == "BRK1" for obj in objects)


def test_format_table_and_json(venue_db: Path) -> None:
    report = limit_changes(venue_db)
    text = format_table(report)
    assert text.splitlines()[0] == "Limit and setting changes (2 rows)"
    assert "2012-06-21T13:30:05.000000Z  alice" in text
    assert json.loads(report_to_json(report))["rows"][1]["new_value"] == "500"


# Session messages for resend scenarios: (direction, MsgType (35), MsgSeqNum (34), extra
# fields). "P" is an application message sent again with PossDupFlag (43) Y, "G" a gap
# fill; the rest are stored as given.
RESEND_SCENARIOS = {
    "two resends of three": (
        [("in", "2", 5, "7=2\x0116=0\x01"), ("out", "P", 2, ""), ("out", "P", 3, ""),
         ("out", "P", 4, ""), ("in", "2", 6, "7=2\x0116=0\x01"), ("out", "P", 2, ""),
         ("out", "P", 3, ""), ("out", "P", 4, "")],
        [("POSS_DUP_SENT", 2, 4, "3 messages", 5), ("POSS_DUP_SENT", 2, 4, "3 messages", 6)],
    ),
    "requests back to back": (
        [("in", "2", 5, "7=2\x0116=4\x01"), ("in", "2", 6, "7=5\x0116=6\x01"),
         ("out", "P", 2, ""), ("out", "P", 3, ""), ("out", "P", 4, ""), ("out", "P", 5, ""),
         ("out", "P", 6, "")],
        [("POSS_DUP_SENT", 2, 4, "3 messages", 5), ("POSS_DUP_SENT", 5, 6, "2 messages", 6)],
    ),
    "later request within open range": (
        [("in", "2", 5, "7=2\x0116=0\x01"), ("out", "P", 2, ""), ("out", "P", 3, ""),
         ("in", "2", 6, "7=4\x0116=0\x01"), ("out", "P", 4, ""), ("out", "P", 5, "")],
        [("POSS_DUP_SENT", 2, 3, "2 messages", 5), ("POSS_DUP_SENT", 4, 5, "2 messages", 6)],
    ),
    "gap fills not counted": (
        [("in", "2", 5, "7=1\x0116=0\x01"), ("out", "G", 1, "36=2\x01"), ("out", "P", 2, ""),
         ("out", "G", 3, "36=5\x01")],
        [("POSS_DUP_SENT", 2, 2, "1 message", 5)],
    ),
    "unanswered request skipped": (
        [("in", "2", 5, "7=100\x0116=0\x01"), ("in", "2", 6, "7=2\x0116=0\x01"),
         ("out", "P", 2, ""), ("out", "P", 3, "")],
        [("POSS_DUP_SENT", 2, 3, "2 messages", 6)],
    ),
    "resend received": (
        [("out", "2", 9, "7=4\x0116=0\x01"), ("in", "P", 4, ""), ("in", "P", 5, "")],
        [("POSS_DUP_RECEIVED", 4, 5, "2 messages", 9)],
    ),
    "no request in file": (
        [("out", "P", 7, ""), ("out", "P", 8, "")],
        [("POSS_DUP_SENT", 7, 8, "2 messages", None)],
    ),
}


def write_session_messages(path: Path, messages: list[tuple[str, str, int, str]]) -> None:
    async def scenario() -> None:
        trail = AuditTrail(path)
        await trail.start()
        for offset, (direction, kind, seq, extra) in enumerate(messages):
            msg_type = {"P": "8", "G": "4"}.get(kind, kind)
            if kind == "G":
                extra = "123=Y\x01" + extra
            trail.record_message(BRK1, direction, fix(msg_type, seq, extra), msg_type=msg_type,
                                 msg_seq_num=seq, poss_dup=kind in "PG", ts_us=T0 + offset)
        await trail.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(("messages", "expected"), list(RESEND_SCENARIOS.values()),
                         ids=list(RESEND_SCENARIOS))
def test_session_report_row_per_resend(
    tmp_path: Path, messages: list[tuple[str, str, int, str]],
    expected: list[tuple[str, int, int, str, int | None]],
) -> None:
    path = tmp_path / "audit.db"
    write_session_messages(path, messages)
    rows = [row for row in session_report(path).rows if row["event"].startswith("POSS_DUP_")]
    assert [(row["event"], row["begin_seq_no"], row["end_seq_no"]) for row in rows] == [
        (event, begin, end) for event, begin, end, _, _ in expected
    ]
    for row, (_, _, _, count, request) in zip(rows, expected):
        assert row["detail"].startswith(f"{count} with PossDupFlag (43) Y")
        if request is None:
            assert "no ResendRequest (2)" in row["detail"]
        else:
            assert row["detail"].endswith(f"MsgSeqNum (34) {request}")


def test_session_report_end_seq_no_zero(venue_db: Path) -> None:
    report = session_report(venue_db, session_id=BRK1)
    (line,) = [line for line in format_table(report).splitlines() if "GAP_DETECTED" in line]
    assert "0 (to the end)" in line
    (row,) = [row for row in json.loads(report_to_json(report))["rows"]
              if row["event"] == "GAP_DETECTED"]
    assert row["end_seq_no"] == 0


@pytest.mark.parametrize(("count", "title"), [(1, "(1 row)"), (2, "(2 rows)")])
def test_format_table_row_count(venue_db: Path, count: int, title: str) -> None:
    report = limit_changes(venue_db, end_us=T0 + 1 if count == 1 else None)
    assert len(report.rows) == count
    assert format_table(report).splitlines()[0].endswith(title)


def test_activity_names_and_no_empty_fields(venue_db: Path) -> None:
    rows = activity(venue_db).rows
    events = [row["summary"] for row in rows if row["source"] == "event"]
    decisions = [row["summary"] for row in rows if row["source"] == "decision"]
    assert events[0].startswith("#1 ExecutionEvent exec_type=NEW ord_status=NEW order_id=O1")
    assert decisions == [
        "ACCEPT control=MAX_ORDER_QTY",
        "REJECT control=MAX_ORDER_QTY limit=500 value=900 text='OrderQty 900 above 500'",
    ]
    text = format_table(activity(venue_db))
    assert "None" not in text
    assert "limit= " not in text
    assert "value= " not in text


def test_rejects_leave_out_reason_code(venue_db: Path) -> None:
    assert "reason_code" not in rejects(venue_db).columns
    assert "reason_code" not in rejects(venue_db, summary=True).columns


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("session", [BRK1, BRK2]),
        ("firm", ["BRK1", "BRK2"]),
        ("trader", ["trader7"]),
        ("control", ["MAX_ORDER_QTY"]),
        ("scope", ["AAPL"]),
        ("detector", ["wash_trade"]),
    ],
)
def test_recorded_values(venue_db: Path, kind: str, expected: list[str]) -> None:
    assert recorded_values(venue_db, kind) == expected


def test_recorded_values_unknown_kind(venue_db: Path) -> None:
    with pytest.raises(ValueError, match="unknown filter kind 'desk'"):
        recorded_values(venue_db, "desk")
