"""The fixgw command line, run as a user runs it: a real process, real files, real TCP."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fixsupport import RawFixClient, new_order_fields

SESSIONS_CFG = """\
[DEFAULT]
ConnectionType=acceptor
SenderCompID=FIXGW
SocketAcceptHost=127.0.0.1
SocketAcceptPort=0
HeartBtInt=30

[SESSION]
BeginString=FIX.4.2
TargetCompID=BRK1

[SESSION]
BeginString=FIX.4.4
TargetCompID=BRK2
"""


def _fixgw(*args: str) -> list[str]:
    return [sys.executable, "-m", "gateway.cli", *args]


def _start_serve(tmp_path: Path) -> tuple[subprocess.Popen[str], int, Path]:
    cfg = tmp_path / "sessions.cfg"
    cfg.write_text(SESSIONS_CFG)
    db = tmp_path / "audit.sqlite"
    process = subprocess.Popen(
        _fixgw("serve", "--sessions", str(cfg), "--db", str(db)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    match = re.search(r"listening on port (\d+)", first)
    if match is None:
        process.kill()
        _, stderr = process.communicate(timeout=10)
        pytest.fail(f"serve printed {first!r}; stderr: {stderr}")
    return process, int(match.group(1)), db


def _finish(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=10)


def test_serve_logs_out_on_sigterm(tmp_path: Path) -> None:
    process, port, db = _start_serve(tmp_path)
    try:
        client = RawFixClient(port, begin_string="FIX.4.2", sender="BRK1")
        client.logon()
        client.send("D", new_order_fields("CLI-1", price="101.50") + [(21, "1")])
        ack = client.receive_type("8")
        assert ack.get(20) == b"0"
        assert ack.get(150) == b"0"

        process.send_signal(signal.SIGTERM)
        received = client.expect_disconnect(timeout_s=10)
        assert [m.get(35) for m in received] == [b"5"]
        client.close()
        assert process.wait(timeout=10) == 0
    finally:
        _finish(process)

    result = subprocess.run(
        _fixgw("audit", "order", "CLI-1", "--db", str(db)), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("IN" in line and "35=D" in line for line in lines)
    assert any("OUT" in line and "35=8" in line for line in lines)
    assert any("RISK" in line for line in lines)
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", result.stdout)


def test_serve_reports_invalid_setting(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.cfg"
    cfg.write_text(SESSIONS_CFG.replace("HeartBtInt=30", "HeartBtInt=abc"))
    result = subprocess.run(
        _fixgw("serve", "--sessions", str(cfg)), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "bad.cfg:6" in result.stderr
    assert "HeartBtInt" in result.stderr
    assert "'abc'" in result.stderr


def test_serve_reports_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.cfg"
    result = subprocess.run(
        _fixgw("serve", "--sessions", str(missing)), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "nope.cfg" in result.stderr


def test_audit_order_unknown_cl_ord_id(tmp_path: Path) -> None:
    process, port, db = _start_serve(tmp_path)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    _finish(process)
    result = subprocess.run(
        _fixgw("audit", "order", "NO-SUCH", "--db", str(db)), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert "NO-SUCH" in result.stderr


def test_example_config_loads() -> None:
    root = Path(__file__).resolve().parents[2]
    from gateway.settings import load_session_settings
    from gateway.venue import load_venue_config

    assert load_session_settings(root / "config" / "sessions.cfg")
    assert load_venue_config(root / "config" / "venue.toml").instruments


def test_serve_second_process_same_db_rejected(tmp_path: Path) -> None:
    process, _, db = _start_serve(tmp_path)
    try:
        other_cfg = tmp_path / "other.cfg"
        other_cfg.write_text(SESSIONS_CFG)
        result = subprocess.run(
            _fixgw("serve", "--sessions", str(other_cfg), "--db", str(db)),
            capture_output=True, text=True, timeout=30,
        )
        assert result.returncode == 2
        assert "in use by another fixgw process" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        _finish(process)


def test_serve_port_in_use_names_setting(tmp_path: Path) -> None:
    process, port, _ = _start_serve(tmp_path)
    try:
        cfg = tmp_path / "clash.cfg"
        cfg.write_text(SESSIONS_CFG.replace("SocketAcceptPort=0", f"SocketAcceptPort={port}"))
        result = subprocess.run(
            _fixgw("serve", "--sessions", str(cfg), "--db", str(tmp_path / "other.sqlite")),
            capture_output=True, text=True, timeout=30,
        )
        assert result.returncode == 2
        assert "SocketAcceptPort" in result.stderr
        assert str(port) in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        _finish(process)


def test_serve_creates_audit_db_folder(tmp_path: Path) -> None:
    cfg = tmp_path / "sessions.cfg"
    cfg.write_text(SESSIONS_CFG)
    db = tmp_path / "var" / "new" / "audit.sqlite"
    process = subprocess.Popen(
        _fixgw("serve", "--sessions", str(cfg), "--db", str(db)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        assert "listening on port" in process.stdout.readline()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert db.is_file()
    finally:
        _finish(process)
