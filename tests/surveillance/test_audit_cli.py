"""``fixgw audit`` subcommands: table and JSON output, export, verify and Datasette metadata."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine.commands import NewOrder
from engine.engine import MatchingEngine
from engine.orders import PRICE_SCALE, OrdType, Side
from gateway.cli import main
from surveillance.audit import AuditTrail, HaltAction
from surveillance.audit_chain import verify_chain
from surveillance.audit_cli import _HANDLERS, parse_time_us
from surveillance.audit_datasette import CANNED_QUERIES
from surveillance.audit_schema import TABLES
from surveillance.risk import RiskControl

# Every test runs with both audit writers (tests/surveillance/conftest.py).
pytestmark = pytest.mark.usefixtures("writer")

BRK1 = "FIX.4.4:VENUE->BRK1"
BRK2 = "FIX.4.4:VENUE->BRK2"
T0 = 1_340_285_400_000_000  # 2012-06-21T13:30:00Z

def write_db(path: Path) -> None:
    """Two orders that trade, a limit change, a halt and an alert."""

    async def scenario() -> None:
        trail = AuditTrail(path)
        await trail.start()
        engine = MatchingEngine(["AAPL"])
        orders = [
            NewOrder(BRK1, "B1", "AAPL", Side.BUY, OrdType.LIMIT, 100, 10 * PRICE_SCALE),
            NewOrder(BRK2, "S1", "AAPL", Side.SELL, OrdType.LIMIT, 100, 10 * PRICE_SCALE),
        ]
        for offset, order in enumerate(orders):
            trail.record_message(order.session_id, "in", b"8=FIX.4.4\x0135=D\x01", msg_type="D",
                                 msg_seq_num=offset + 2, cl_ord_id=order.cl_ord_id, ts_us=T0 + offset * 10)
            seq = trail.record_command(order, ts_us=T0 + offset * 10 + 1)
            for event in engine.process(order):
                trail.record_event(event, command_seq=seq, ts_us=T0 + offset * 10 + 2)
        trail.record_limit_change(actor="alice", scope="AAPL", setting="max_order_qty",
                                  old_value="1000", new_value="500", reason="volatility", ts_us=T0 + 50)
        trail.record_halt(HaltAction.HALT, actor="ops", scope="AAPL", reason="news", ts_us=T0 + 60)
        trail.record_alert(detector="wash_trade", version="1", score=1.0, threshold=1.0,
                           action="LOGGED", text="self trade", features={}, ts_us=T0 + 70)
        await trail.close()

    asyncio.run(scenario())


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, writer: str) -> Path:
    path = tmp_path_factory.mktemp("cli") / "audit.sqlite"
    write_db(path)
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["audit", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["order", "B1"], "NewOrder cl_ord_id=B1"),
        (["activity", "--firm", "BRK2"], "Activity of firm BRK2"),
        (["rejects", "--summary"], "Risk rejects by control"),
        (["limits"], "alice"),
        (["halts"], "news"),
        (["book", "AAPL", "--at", "2012-06-21T13:30:00.000005Z"], "B1"),
        (["alerts"], "wash_trade"),
        (["otr"], "BRK1"),
        (["sessions"], "Session gaps"),
    ],
    ids=["order", "activity", "rejects", "limits", "halts", "book", "alerts", "otr", "sessions"],
)
def test_audit_query_table(capsys: pytest.CaptureFixture[str], db: Path, args: list[str], expected: str) -> None:
    code, out, _ = run(capsys, *args, "--db", str(db))
    assert code == 0
    assert expected in out


@pytest.mark.parametrize(
    "args",
    [["order", "S1"], ["activity"], ["rejects"], ["limits"], ["halts"], ["alerts"], ["otr"],
     ["sessions"], ["book", "AAPL", "--at", str(T0 + 20)]],
    ids=["order", "activity", "rejects", "limits", "halts", "alerts", "otr", "sessions", "book"],
)
def test_audit_query_json(capsys: pytest.CaptureFixture[str], db: Path, args: list[str]) -> None:
    code, out, _ = run(capsys, *args, "--db", str(db), "--json")
    assert code == 0
    assert json.loads(out)


def test_audit_order_by_order_id(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, _ = run(capsys, "order", "O1", "--db", str(db))
    assert code == 0
    assert "cl_ord_id=B1" in out


def test_audit_book_after_trade(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, _ = run(capsys, "book", "AAPL", "--at", str(T0 + 20), "--db", str(db), "--json")
    book = json.loads(out)
    assert (book["bids"], book["asks"], book["last_trade_price"]) == ([], [], 10 * PRICE_SCALE)


def test_audit_export_csv(capsys: pytest.CaptureFixture[str], db: Path, tmp_path: Path) -> None:
    output = tmp_path / "cat.csv"
    code, _, err = run(capsys, "export", "--day", "2012-06-21", "--db", str(db), "--output", str(output))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(output.read_text())))
    assert [row["type"] for row in rows][:2] == ["MENO", "MEOA"]
    assert f"{len(rows)} CAT order events" in err


def test_audit_export_json_firm(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, _ = run(capsys, "export", "--firm", "BRK2", "--format", "json", "--db", str(db))
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert {event["firm"] for event in events} == {"BRK2"}


def test_audit_verify_ok(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, _ = run(capsys, "verify", "--db", str(db))
    assert code == 0
    assert out.startswith("OK: ")


def test_audit_verify_names_row(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    write_db(path)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("UPDATE events SET last_qty = 1 WHERE id = 3")
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", "verify", "--db", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert "events row 3" in result.stderr
    assert "table events, row 3, batch 2" in result.stderr


def test_audit_missing_db(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "halts", "--db", str(tmp_path / "none.sqlite"))
    assert code == 2
    assert "is not a file" in err


def test_datasette_metadata(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, _ = run(capsys, "datasette-metadata", "--db", str(db))
    metadata = json.loads(out)
    database = metadata["databases"]["audit"]
    assert set(database["tables"]) == {table.name for table in TABLES}
    assert database["tables"]["messages"]["columns"]["msg_seq_num"] == "MsgSeqNum (34), NULL for a message without one"
    assert set(database["queries"]) == set(CANNED_QUERIES)


@pytest.mark.parametrize("name", sorted(CANNED_QUERIES))
def test_canned_query_runs(db: Path, name: str) -> None:
    params = {"cl_ord_id": "B1", "session_id": BRK1, "start_us": 0, "end_us": 2**62, "day": "2012-06-21"}
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(CANNED_QUERIES[name]["sql"], params).fetchall()
    assert isinstance(rows, list)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1340285400000000", T0),
        ("2012-06-21T13:30:00Z", T0),
        ("2012-06-21T13:30:00.000001Z", T0 + 1),
        ("2012-06-21T15:30:00+02:00", T0),
        ("2012-06-21", T0 - (13 * 3600 + 30 * 60) * 1_000_000),
    ],
)
def test_parse_time_us(text: str, expected: int) -> None:
    assert parse_time_us(text) == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["activity", "--session", "FIX.4.4:VENUE->BRK9"],
         f"no session 'FIX.4.4:VENUE->BRK9' in this audit trail; sessions: {BRK1}, {BRK2}"),
        (["sessions", "--session", "BRK9"],
         f"no session 'BRK9' in this audit trail; sessions: {BRK1}, {BRK2}"),
        (["activity", "--firm", "Example Securities"],
         "no firm 'Example Securities' in this audit trail; firms (CompIDs): BRK1, BRK2"),
        (["export", "--firm", "BRK9"],
         "no firm 'BRK9' in this audit trail; firms (CompIDs): BRK1, BRK2"),
        (["activity", "--trader", "bob"],
         "no trader 'bob' in this audit trail; traders (Account (1) values): none"),
        (["rejects", "--control", "MAX_ORDER_QTY"],
         "no reject by control 'RISK_MAX_ORDER_QTY' in this audit trail; controls with rejects: none"),
        (["limits", "--scope", "MSFT"],
         "no limit change with scope 'MSFT' in this audit trail; scopes: AAPL"),
        (["alerts", "--detector", "spoofing"],
         "no alert from detector 'spoofing' in this audit trail; detectors: wash_trade"),
    ],
    ids=["session", "comp-id", "firm-name", "export-firm", "trader", "control", "scope", "detector"],
)
def test_unmatched_filter_names_values(
    capsys: pytest.CaptureFixture[str], db: Path, args: list[str], expected: str
) -> None:
    code, out, err = run(capsys, *args, "--db", str(db))
    assert code == 0
    assert err.splitlines() == [expected]
    if args[0] != "export":
        assert "(0 rows)" in out


def test_matched_filter_silent(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, err = run(capsys, "activity", "--session", BRK1, "--db", str(db))
    assert code == 0
    assert err == ""
    assert "(4 rows)" in out


def test_unquoted_session_hint(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    # What the shell passes for an unquoted FIX.4.4:VENUE->BRK1: the rest went to a file.
    code, _, err = run(capsys, "sessions", "--session", "FIX.4.4:VENUE-", "--db", str(db))
    assert code == 0
    assert "no session 'FIX.4.4:VENUE-'" in err
    assert "quote the session ID" in err


def test_unmatched_values_capped(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"

    async def scenario() -> None:
        trail = AuditTrail(path)
        await trail.start()
        for number in range(12):
            trail.record_message(f"FIX.4.4:VENUE->B{number:02}", "in", b"8=FIX.4.4\x0135=0\x01",
                                 msg_type="0", msg_seq_num=1, ts_us=T0)
        await trail.close()

    asyncio.run(scenario())
    code, _, err = run(capsys, "activity", "--firm", "B99", "--db", str(path))
    assert code == 0
    assert err.strip().endswith("firms (CompIDs): B00, B01, B02, B03, B04, B05, B06, B07, B08, B09 and 2 more")


def test_session_comp_id_expanded(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, err = run(capsys, "activity", "--session", "BRK1", "--db", str(db))
    assert code == 0
    assert err == ""
    assert out.startswith(f"Activity of {BRK1} (4 rows)")


def audit_help(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", *command, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", [(), *[(name,) for name in sorted(_HANDLERS)]],
                         ids=["audit", *sorted(_HANDLERS)])
def test_help_quotes_session_ids(capsys: pytest.CaptureFixture[str], command: tuple[str, ...]) -> None:
    text = audit_help(capsys, *command)
    for match in re.finditer(r"\S*->\S*", text):
        assert match.group().startswith("'"), f"unquoted {match.group()!r} in the help"


@pytest.mark.parametrize("readme", ["README.md", "README.zh-CN.md"])
def test_readme_quotes_session_ids(readme: str) -> None:
    text = (Path(__file__).resolve().parents[2] / readme).read_text(encoding="utf-8")
    examples = [line for line in text.splitlines() if line.startswith("fixgw ") and "->" in line]
    assert examples, f"{readme} has no example with a session ID"
    for line in examples:
        assert re.search(r"'FIX\.4\.4:\S+->\S+'", line), f"unquoted session ID in {line!r}"


def test_help_controls_recorded(capsys: pytest.CaptureFixture[str]) -> None:
    text = audit_help(capsys) + audit_help(capsys, "rejects")
    named = set(re.findall(r"RISK_[A-Z_]+", text))
    assert named >= {"RISK_MAX_ORDER_QTY", "RISK_PRICE_COLLAR"}
    assert named <= {control.value for control in RiskControl}


def test_help_firm_takes_comp_id(capsys: pytest.CaptureFixture[str]) -> None:
    text = " ".join(audit_help(capsys, "activity").split())
    assert "--firm COMPID the firm's CompID, the TargetCompID (56)" in text
    assert "The firm names in the venue file's [[firms]] are not in the audit trail" in text


def test_table_one_row(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    _, out, _ = run(capsys, "halts", "--db", str(db))
    assert out.startswith("Halts and kill switches (1 row)\n")


def test_verify_says_what_it_counts(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    _, out, _ = run(capsys, "verify", "--db", str(db))
    first, note = out.splitlines()
    assert re.fullmatch(r"OK: \d+ batches, \d+ chained rows, head hash [0-9a-f]{64}", first)
    assert note.startswith("The counts cover every run in this file (1 start)")


def test_verify_counts_against_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "audit.sqlite"

    async def scenario() -> tuple[int, int]:
        trail = AuditTrail(path)
        await trail.start()
        for seq in (1, 2):
            trail.save_session_state(BRK1, next_sender_seq_num=seq + 1, next_target_seq_num=seq + 1)
            trail.record_message(BRK1, "in", b"8=FIX.4.4\x0135=0\x01", msg_type="0",
                                 msg_seq_num=seq, ts_us=T0 + seq)
            await trail.flush()
        await trail.close()
        return trail.committed_rows, trail.committed_batches

    with caplog.at_level(logging.INFO, logger="surveillance.audit"):
        rows, batches = asyncio.run(scenario())
    assert (rows, batches) == (4, 2)
    assert "this run committed 4 rows in 2 batches, counting each session_store upsert" in caplog.text
    report = verify_chain(path)
    # One start-up batch with its clock_log row more; the two session upserts less.
    assert (report.batches, report.rows) == (batches + 1, rows - 2 + 1)
