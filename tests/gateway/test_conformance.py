"""The conformance runner: script parsing, framing, comparison, and the acceptance scripts.

The QuickFIX acceptance scripts and dictionaries are read from the shared folder beside
the repository. When it is absent, the tests that need it skip and name the missing path.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.codec import checksum, decode_message
from gateway.conformance import (
    compare_messages,
    find_scripts,
    find_spec_dir,
    frame_outbound,
    parse_script,
    run_with_appliance,
    substitute_time,
)

CONFORMANCE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "conformance"
SCRIPTS_DIR = CONFORMANCE_DIR / "quickfix-acceptance" / "server"
SPEC_DIR = CONFORMANCE_DIR / "quickfix-acceptance" / "spec"
REQUIRED_FOLDERS = (
    "fix40", "fix41", "fix42", "fix43", "fix44", "fix50", "fix50sp1", "fix50sp2", "validate",
    "future",
)

needs_scripts = pytest.mark.skipif(
    not SCRIPTS_DIR.is_dir(), reason=f"acceptance scripts not found at {SCRIPTS_DIR}"
)


def _wire(text: str) -> bytes:
    return text.replace("|", "\x01").encode()


def _message(text: str) -> bytes:
    return frame_outbound(_wire(text))


# Script parsing.


def test_parse_script_steps() -> None:
    script = _wire(
        "# comment\r\n\r\niCONNECT\r\nI8=FIX.4.4|35=A|\r\nE8=FIX.4.4|35=A|\r\n"
        "i2,CONNECT\nE2,8=FIX.4.4|35=0|\ne2,DISCONNECT\niDISCONNECT\neDISCONNECT\n"
    )

    steps = parse_script(script)

    assert [(s.connection, s.action) for s in steps] == [
        (1, "connect"), (1, "send"), (1, "expect"), (2, "connect"), (2, "expect"),
        (2, "expect_disconnect"), (1, "disconnect"), (1, "expect_disconnect"),
    ]
    assert steps[1].payload == _wire("8=FIX.4.4|35=A|")
    assert steps[4].payload == _wire("8=FIX.4.4|35=0|")
    assert steps[1].line == 4


def test_parse_script_rejects_unknown_line() -> None:
    with pytest.raises(ValueError, match="line 1"):
        parse_script(b"X8=FIX.4.4\n")


@pytest.mark.parametrize(
    "token, shift_s", [("<TIME>", 0), ("<TIME+30>", 30), ("<TIME-120>", -120)]
)
def test_substitute_time(token: str, shift_s: int) -> None:
    now_s = 1_700_000_000.0

    result = substitute_time(f"52={token}|".encode(), now_s)

    expected = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(now_s + shift_s))
    assert result == f"52={expected}|".encode()


# Framing outbound lines.


def test_frame_inserts_length_and_checksum() -> None:
    raw = _message("8=FIX.4.4|35=0|34=2|49=A|56=B|52=20240101-00:00:00|")

    message = decode_message(raw)

    assert message.msg_type == "0"
    assert message.get(34) == b"2"


def test_frame_keeps_given_checksum() -> None:
    raw = _message("8=FIX.4.4|35=0|34=2|10=256|")

    assert raw.endswith(b"\x0110=256\x01")
    assert raw.startswith(b"8=FIX.4.4\x019=10\x01")


def test_frame_keeps_given_body_length() -> None:
    raw = _message("8=FIX.4.4|9=30|35=0|34=2|")

    assert raw.startswith(b"8=FIX.4.4\x019=30\x01")
    assert raw.endswith(b"10=%03d\x01" % checksum(raw[: raw.rindex(b"10=")]))


def test_frame_sends_other_lines_verbatim() -> None:
    assert _message("35=0|8=FIX.4.4|9=29|") == _wire("35=0|8=FIX.4.4|9=29|")


# Comparison by FIX semantics.

_RECEIVED = "8=FIX.4.4|35=3|49=ISLD|56=TW44|34=2|52=20240101-00:00:00.123|45=2|371=999|372=0|373=0|58=x|"
COMPARISONS = [
    ("same", "8=FIX.4.4|9=1|35=3|34=2|49=ISLD|52=00000000-00:00:00|56=TW44|45=2|371=999|372=0|373=0|10=0|", None),
    ("header_order_free", "8=FIX.4.4|35=3|56=TW44|34=2|52=x|49=ISLD|45=2|371=999|372=0|373=0|", None),
    ("text_ignored", "8=FIX.4.4|35=3|34=2|49=ISLD|52=t|56=TW44|45=2|58=other|371=999|372=0|373=0|", None),
    ("msg_type_differs", "8=FIX.4.4|35=5|34=2|49=ISLD|52=t|56=TW44|", "tag 35 is '3', expected '5'"),
    ("value_differs", "8=FIX.4.4|35=3|34=2|49=ISLD|52=t|56=TW44|45=2|371=998|372=0|373=0|", "missing 371=998; unexpected 371=999"),
    ("field_missing", "8=FIX.4.4|35=3|34=2|49=ISLD|52=t|56=TW44|45=2|371=999|372=0|", "unexpected 373=0"),
]


@pytest.mark.parametrize("expected, difference", [c[1:] for c in COMPARISONS], ids=[c[0] for c in COMPARISONS])
def test_compare_messages(expected: str, difference: str | None) -> None:
    received = _message(_RECEIVED)

    assert compare_messages(_wire(expected), received) == difference


def test_compare_time_field_format() -> None:
    received = _message(_RECEIVED.replace("52=20240101-00:00:00.123", "52=yesterday"))

    difference = compare_messages(_wire(_RECEIVED), received)

    assert difference == "missing 52=<time>; unexpected 52=yesterday"


def test_compare_checks_checksum() -> None:
    received = _message(_RECEIVED)
    broken = received[:-4] + b"000\x01"

    assert "CheckSum (10) is 000" in compare_messages(_wire(_RECEIVED), broken)


def test_compare_group_order() -> None:
    received = _message("8=FIX.4.4|35=d|454=2|455=A|456=1|455=B|456=2|")

    difference = compare_messages(_wire("8=FIX.4.4|35=d|454=2|455=B|456=2|455=A|456=1|"), received)

    assert difference == "repeating group fields are in a different order"


# The acceptance scripts.


@needs_scripts
def test_acceptance_scripts_all_versions() -> None:
    scripts = find_scripts([SCRIPTS_DIR / folder for folder in REQUIRED_FOLDERS])

    results = asyncio.run(run_with_appliance(scripts, SPEC_DIR))

    passed = collections.Counter(Path(r.path).parent.name for r in results if r.passed)
    failures = [f"{r.path}: {r.failure}" for r in results if not r.passed]
    assert failures == [], f"passed per folder: {dict(passed)}"
    assert set(passed) == set(REQUIRED_FOLDERS)


@needs_scripts
def test_find_spec_dir_beside_scripts() -> None:
    assert find_spec_dir([SCRIPTS_DIR / "fix44"]).resolve() == SPEC_DIR.resolve()


# The command line.


def _fixgw(*args: str) -> list[str]:
    return [sys.executable, "-m", "gateway.cli", *args]


@needs_scripts
def test_cli_reports_failing_script(tmp_path: Path) -> None:
    script = tmp_path / "wrong.def"
    script.write_bytes(_wire(
        "iCONNECT\nI8=FIX.4.4|35=A|34=1|49=TW44|52=<TIME>|56=ISLD|98=0|108=30|\n"
        "E8=FIX.4.4|35=A|34=7|49=ISLD|52=<TIME>|56=TW44|98=0|108=30|\n"
    ))

    result = subprocess.run(
        _fixgw("conformance", str(script), "--spec", str(SPEC_DIR)),
        capture_output=True, text=True, timeout=60,
    )

    assert result.returncode == 1, result.stderr
    assert "FAIL" in result.stdout
    assert "step 3 (line 3): missing 34=7; unexpected 34=1" in result.stdout
    assert "received: 8=FIX.4.4|9=" in result.stdout
    assert "0 passed, 1 failed of 1 scripts" in result.stdout


_ECHO_CFG = """\
[DEFAULT]
ConnectionType=acceptor
SenderCompID=ISLD
SocketAcceptHost=127.0.0.1
SocketAcceptPort=0
ResetOnLogon=Y

[SESSION]
BeginString=FIX.4.4
TargetCompID=TW44
DataDictionary={spec}/FIX44.xml
"""


@needs_scripts
def test_cli_against_running_echo_acceptor(tmp_path: Path) -> None:
    cfg = tmp_path / "echo.cfg"
    cfg.write_text(_ECHO_CFG.format(spec=SPEC_DIR))
    server = subprocess.Popen(
        _fixgw("serve", "--sessions", str(cfg), "--app", "echo", "--db", str(tmp_path / "a.sqlite")),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        match = re.search(r"listening on port (\d+)", server.stdout.readline())
        assert match, server.stderr.read()
        scripts = [str(p) for p in sorted((SCRIPTS_DIR / "fix44").glob("1*.def"))]

        result = subprocess.run(
            _fixgw("conformance", *scripts, "--host", "127.0.0.1", "--port", match[1], "--json"),
            capture_output=True, text=True, timeout=120,
        )
    finally:
        server.terminate()
        server.communicate(timeout=10)

    document = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout
    assert document["passed"] == document["total"] == len(scripts)


@needs_scripts
def test_cli_needs_only_used_dictionaries(tmp_path: Path) -> None:
    # A spec folder with FIX44.xml alone serves FIX 4.4 scripts.
    (tmp_path / "spec").mkdir()
    shutil.copy(SPEC_DIR / "FIX44.xml", tmp_path / "spec" / "FIX44.xml")
    (tmp_path / "server").mkdir()
    script = sorted((SCRIPTS_DIR / "fix44").glob("1*.def"))[0]
    shutil.copy(script, tmp_path / "server" / script.name)

    result = subprocess.run(
        _fixgw("conformance", str(tmp_path / "server")), capture_output=True, text=True, timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 0 failed of 1 scripts" in result.stdout
