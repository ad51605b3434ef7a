"""Run FIX session acceptance scripts (the QuickFIX ``.def`` format) against an acceptor.

``fixgw conformance PATH...`` reads scripts from files or folders. Without ``--host`` it
starts an appliance in echo mode on a free loopback port, with the sessions the scripts
use (SenderCompID ISLD against TW40 ... TW50SP2, and TW on FIX.4.2 and FIX.4.4); with
``--host`` and ``--port`` it acts as a plain FIX initiator against any running acceptor.

A script has one step per line. ``iCONNECT`` and ``iDISCONNECT`` open and close a TCP
connection, ``I<message>`` sends, ``E<message>`` reads one message and compares it, and
``eDISCONNECT`` expects the acceptor to close the connection. A line starting with
``I2,``, ``E2,``, ``i2,`` or ``e2,`` addresses connection 2. ``<TIME>``, ``<TIME+N>`` and
``<TIME-N>`` stand for the current UTC time shifted by N seconds.

The comparison is by FIX semantics, not bytes: the same MsgType (35) and the same fields
with the same values, with these exceptions. Text (58) is not compared, and time fields
only have to be FIX timestamps. BodyLength (9) and CheckSum (10) have to be correct for
the bytes received. Header fields may come in any order after 8, 9 and 35, and body field
order matters only among repeated tags (repeating groups).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

from gateway.codec import SOH, checksum
from gateway.settings import SessionSettings

__all__ = [
    "DEFAULT_JOBS",
    "READ_TIMEOUT_S",
    "ScriptResult",
    "Step",
    "StepFailure",
    "compare_messages",
    "conformance_sessions",
    "find_scripts",
    "find_spec_dir",
    "format_results",
    "frame_outbound",
    "parse_script",
    "results_json",
    "run_against",
    "run_with_appliance",
]

READ_TIMEOUT_S = 10.0
DEFAULT_JOBS = 16
VENUE_COMP_ID = "ISLD"
# After a script closes a connection itself, the acceptor needs a moment to see the
# close before the next script logs on to the same session.
CLOSE_SETTLE_S = 0.3

# Fields compared by format only: OrigTime (42), SendingTime (52), TransactTime (60) and
# OrigSendingTime (122) carry the sender's clock.
TIME_TAGS = frozenset({42, 52, 60, 122})
IGNORED_TAGS = frozenset({9, 10, 58})  # 9 and 10 are checked for correctness instead
_TIMESTAMP = re.compile(rb"[0-9]{8}-[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?")
_TIME_TOKEN = re.compile(rb"<TIME([+-][0-9]+)?>")
_CONNECTION_PREFIX = re.compile(rb"^[IEie]([0-9]),")

# (BeginString, client CompID, ApplVerID for FIXT.1.1, application dictionary file).
_SCRIPT_SESSIONS = (
    ("FIX.4.0", "TW40", None, "FIX40.xml"),
    ("FIX.4.1", "TW41", None, "FIX41.xml"),
    ("FIX.4.2", "TW42", None, "FIX42.xml"),
    ("FIX.4.3", "TW43", None, "FIX43.xml"),
    ("FIX.4.4", "TW44", None, "FIX44.xml"),
    ("FIXT.1.1", "TW50", "7", "FIX50.xml"),
    ("FIXT.1.1", "TW50SP1", "8", "FIX50SP1.xml"),
    ("FIXT.1.1", "TW50SP2", "9", "FIX50SP2.xml"),
    ("FIX.4.4", "TW", None, "FIX44.xml"),
    ("FIX.4.2", "TW", None, "FIX42.xml"),
)
# A client CompID whose session does not check that fields have values.
NO_CHECK_FIELDS_HAVE_VALUES = "NO_CHECK_FIELDS_HAVE_VALUES"


@dataclass(frozen=True, slots=True)
class Step:
    """One script line: ``action`` is connect, disconnect, send, expect or expect_disconnect."""

    line: int
    connection: int
    action: str
    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class StepFailure:
    """The failing step of a script: its number, line, reason and messages (``|`` for SOH)."""

    step: int
    line: int
    reason: str
    expected: str = ""
    received: str = ""


@dataclass(slots=True)
class ScriptResult:
    """The outcome of one script."""

    path: str
    passed: bool
    duration_s: float
    steps: int
    failure: StepFailure | None = None


class _ScriptFailed(Exception):
    """Ends a script run at a failing step; carries the failure."""

    def __init__(self, failure: StepFailure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


# Reading scripts.


def find_scripts(paths: Iterable[Path]) -> list[Path]:
    """Return the ``.def`` files named or found (recursively) under ``paths``, sorted.

    Raises FileNotFoundError naming a path that does not exist.
    """
    scripts: list[Path] = []
    for path in paths:
        if path.is_dir():
            scripts += sorted(path.rglob("*.def"))
        elif path.is_file():
            scripts.append(path)
        else:
            raise FileNotFoundError(f"conformance script path {str(path)!r} does not exist")
    return scripts


def parse_script(data: bytes) -> list[Step]:
    """Parse script bytes into steps, skipping blank lines and ``#`` comments."""
    steps: list[Step] = []
    for number, raw_line in enumerate(data.split(b"\n"), start=1):
        line = raw_line.rstrip(b"\r")
        if not line.strip() or line.startswith(b"#"):
            continue
        match = _CONNECTION_PREFIX.match(line)
        connection = int(match[1]) if match else 1
        kind, payload = line[:1], line[3:] if match else line[1:]
        if payload in (b"CONNECT", b"DISCONNECT") and kind in (b"i", b"e"):
            action = {
                (b"i", b"CONNECT"): "connect",
                (b"i", b"DISCONNECT"): "disconnect",
                (b"e", b"DISCONNECT"): "expect_disconnect",
            }.get((kind, payload))
            if action is None:
                raise ValueError(f"line {number}: {line[:40]!r} is not a script command")
            steps.append(Step(number, connection, action))
        elif kind == b"I":
            steps.append(Step(number, connection, "send", payload))
        elif kind == b"E":
            steps.append(Step(number, connection, "expect", payload))
        else:
            raise ValueError(
                f"line {number}: {line[:40]!r} starts with neither I, E, iCONNECT, "
                "iDISCONNECT nor eDISCONNECT"
            )
    return steps


def substitute_time(payload: bytes, now_s: float | None = None) -> bytes:
    """Replace ``<TIME>``, ``<TIME+N>`` and ``<TIME-N>`` with UTC ``YYYYMMDD-HH:MM:SS``."""
    now_s = time.time() if now_s is None else now_s

    def replace(match: re.Match[bytes]) -> bytes:
        shift = int(match[1]) if match[1] else 0
        return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(now_s + shift)).encode()

    return _TIME_TOKEN.sub(replace, payload)


def frame_outbound(payload: bytes) -> bytes:
    """Complete an ``I`` line into the bytes to send.

    A payload that does not start with ``8=`` goes out verbatim. Without a BodyLength (9)
    field one is inserted after BeginString (8). A CheckSum (10) field already present is
    kept with everything after it, so scripts can send wrong ones; otherwise it is computed.
    """
    if not payload.startswith(b"8="):
        return payload
    begin_end = payload.find(SOH) + 1
    if begin_end == 0:
        return payload
    trailer = payload.find(SOH + b"10=")
    body_end = trailer + 1 if trailer >= 0 else len(payload)
    if payload.startswith(b"9=", begin_end):
        message = payload[:body_end]
    else:
        body = payload[begin_end:body_end]
        message = payload[:begin_end] + b"9=%d\x01" % len(body) + body
    if trailer >= 0:
        return message + payload[body_end:]
    return message + b"10=%03d\x01" % checksum(message)


# Comparing messages.


def _fields(raw: bytes) -> list[tuple[int, bytes]]:
    fields: list[tuple[int, bytes]] = []
    for item in raw.split(SOH):
        if not item:
            continue
        tag, _, value = item.partition(b"=")
        try:
            fields.append((int(tag), value))
        except ValueError:
            fields.append((-1, item))
    return fields


def _framing_problem(raw: bytes) -> str | None:
    """Return why BodyLength (9) or CheckSum (10) of a received message is wrong, or None."""
    fields = _fields(raw)
    if len(fields) < 4 or [tag for tag, _ in fields[:3]] != [8, 9, 35] or fields[-1][0] != 10:
        return "the message does not start with 8, 9, 35 and end with 10"
    body_start = raw.index(b"\x019=") + 1
    body_start = raw.index(SOH, body_start) + 1
    trailer = raw.rindex(b"10=")
    if fields[1][1] != b"%d" % (trailer - body_start):
        return f"BodyLength (9) is {fields[1][1].decode()}, the body has {trailer - body_start} bytes"
    if fields[-1][1] != b"%03d" % checksum(raw[:trailer]):
        return f"CheckSum (10) is {fields[-1][1].decode()}, computed {checksum(raw[:trailer]):03d}"
    return None


def _normalised(fields: list[tuple[int, bytes]], is_expected: bool) -> list[tuple[int, bytes]]:
    """Drop the fields not compared; an expected time field, or a received one in the FIX
    timestamp format, becomes a placeholder."""
    result = []
    for tag, value in fields:
        if tag in IGNORED_TAGS or tag in (8, 35):
            continue
        if tag in TIME_TAGS and (is_expected or _TIMESTAMP.fullmatch(value)):
            value = b"<time>"
        result.append((tag, value))
    return result


def compare_messages(expected: bytes, received: bytes) -> str | None:
    """Compare by FIX semantics (see the module docstring); return the difference or None."""
    problem = _framing_problem(received)
    if problem is not None:
        return problem
    want, got = _fields(expected), _fields(received)
    want_head = dict(want[:3])
    got_head = dict(got[:3])
    for tag in (8, 35):
        if tag in want_head and want_head.get(tag) != got_head.get(tag):
            return f"tag {tag} is {got_head.get(tag, b'').decode()!r}, expected {want_head[tag].decode()!r}"

    want_fields, got_fields = _normalised(want, True), _normalised(got, False)
    missing = collections.Counter(want_fields) - collections.Counter(got_fields)
    extra = collections.Counter(got_fields) - collections.Counter(want_fields)
    if missing or extra:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(_show(f) for f in missing.elements()))
        if extra:
            parts.append("unexpected " + ", ".join(_show(f) for f in extra.elements()))
        return "; ".join(parts)

    counts = collections.Counter(tag for tag, _ in want_fields)
    repeated = {tag for tag, count in counts.items() if count > 1}
    if [f for f in want_fields if f[0] in repeated] != [f for f in got_fields if f[0] in repeated]:
        return "repeating group fields are in a different order"
    return None


def _show(item: tuple[int, bytes]) -> str:
    return f"{item[0]}={item[1].decode('latin-1')}"


def _printable(raw: bytes) -> str:
    return raw.replace(SOH, b"|").decode("latin-1")


# Running scripts.


class _Connection:
    """One scripted TCP connection with its own receive buffer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = b""
        self.closed = False

    async def send(self, data: bytes) -> None:
        # The acceptor may have closed the connection already, as scripts that send after
        # a Logout do; the next step then expects the close.
        if self.writer.is_closing():
            return
        self.writer.write(data)
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def read_message(self, timeout_s: float) -> bytes | None:
        """Read one message: through ``9=<n><SOH>``, n bytes, then the CheckSum field.

        Returns None at EOF; raises TimeoutError.
        """
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            end = _message_end(self.buffer)
            if end:
                message, self.buffer = self.buffer[:end], self.buffer[end:]
                return message
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError
            data = await self._read(remaining)
            if not data:
                return None
            self.buffer += data

    async def expect_close(self, timeout_s: float) -> bytes:
        """Wait for EOF; return the bytes received instead (empty when the close came)."""
        if self.buffer:
            return self.buffer
        data = await self._read(timeout_s)
        return data

    async def _read(self, timeout_s: float) -> bytes:
        try:
            return await asyncio.wait_for(self.reader.read(65536), timeout_s)
        except ConnectionError:
            return b""

    async def close(self) -> None:
        self.closed = True
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def _message_end(buffer: bytes) -> int:
    """Return the end of the first whole message in ``buffer``, or 0."""
    length_at = buffer.find(b"\x019=")
    if length_at < 0:
        return 0
    length_end = buffer.find(SOH, length_at + 3)
    if length_end < 0:
        return 0
    try:
        body_length = int(buffer[length_at + 3 : length_end])
    except ValueError:
        body_length = 0
    trailer = buffer.find(b"10=", length_end + 1 + body_length)
    if trailer < 0:
        return 0
    end = buffer.find(SOH, trailer)
    return end + 1 if end >= 0 else 0


async def run_script(
    path: Path, host: str, port: int, *, timeout_s: float = READ_TIMEOUT_S
) -> ScriptResult:
    """Run one script against ``host:port`` and return its result."""
    started = time.monotonic()
    steps = parse_script(path.read_bytes())
    connections: dict[int, _Connection] = {}
    failure: StepFailure | None = None
    number = 0
    try:
        for number, step in enumerate(steps, start=1):
            await _run_step(number, step, connections, host, port, timeout_s)
    except _ScriptFailed as exc:
        failure = exc.failure
    finally:
        settle = any(not c.closed for c in connections.values()) or _closed_by_script(steps)
        for connection in connections.values():
            if not connection.closed:
                await connection.close()
        if settle:
            await asyncio.sleep(CLOSE_SETTLE_S)
    return ScriptResult(
        path=str(path), passed=failure is None, duration_s=time.monotonic() - started,
        steps=number, failure=failure,
    )


def _closed_by_script(steps: list[Step]) -> bool:
    return any(step.action == "disconnect" for step in steps)


async def _run_step(
    number: int, step: Step, connections: dict[int, _Connection], host: str, port: int,
    timeout_s: float,
) -> None:
    def fail(reason: str, expected: bytes = b"", received: bytes = b"") -> _ScriptFailed:
        return _ScriptFailed(
            StepFailure(number, step.line, reason, _printable(expected), _printable(received))
        )

    if step.action == "connect":
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            raise fail(f"cannot connect to {host}:{port}: {exc}") from exc
        connections[step.connection] = _Connection(reader, writer)
        return
    connection = connections.get(step.connection)
    if connection is None or connection.closed:
        raise fail(f"connection {step.connection} is not open")

    if step.action == "disconnect":
        await connection.close()
    elif step.action == "send":
        await connection.send(frame_outbound(substitute_time(step.payload)))
    elif step.action == "expect":
        expected = substitute_time(step.payload)
        try:
            received = await connection.read_message(timeout_s)
        except TimeoutError:
            raise fail(f"no message within {timeout_s:g}s", expected) from None
        if received is None:
            raise fail("the acceptor closed the connection", expected)
        difference = compare_messages(expected, received)
        if difference is not None:
            raise fail(difference, expected, received)
    else:
        try:
            data = await connection.expect_close(timeout_s)
        except TimeoutError:
            raise fail(f"the acceptor did not close the connection within {timeout_s:g}s") from None
        if data:
            raise fail("data instead of the expected disconnect", b"", data)
        connection.closed = True
        connection.writer.close()


def _session_keys(path: Path) -> set[tuple[str, str]]:
    """Return the (BeginString, SenderCompID) of every Logon the script sends."""
    keys = set()
    for step in parse_script(path.read_bytes()):
        fields = dict(_fields(step.payload)) if step.action == "send" else {}
        if fields.get(35) == b"A":
            keys.add((fields.get(8, b"").decode(), fields.get(49, b"").decode()))
    return keys


def _estimated_duration(path: Path) -> float:
    """Estimate a script's run time: the acceptor's own messages wait for timers."""
    steps = parse_script(path.read_bytes())
    interval = 0
    waits = 0
    for previous, step in zip(steps, steps[1:]):
        fields = dict(_fields(step.payload))
        if step.action == "send" and fields.get(35) == b"A":
            interval = int(fields.get(108, b"0") or 0)
        if previous.action == "expect" and step.action == "expect":
            waits += 1
    return waits * interval


async def run_against(
    scripts: Sequence[Path], host: str, port: int, *, jobs: int = DEFAULT_JOBS,
    timeout_s: float = READ_TIMEOUT_S,
) -> list[ScriptResult]:
    """Run ``scripts`` against an acceptor; results come back in the order of ``scripts``.

    Up to ``jobs`` scripts run at once, but never two that log on to the same session.
    """
    locks: dict[tuple[str, str], asyncio.Lock] = collections.defaultdict(asyncio.Lock)
    slots = asyncio.Semaphore(max(1, jobs))

    async def run_one(path: Path) -> ScriptResult:
        async with contextlib.AsyncExitStack() as stack:
            for key in sorted(_session_keys(path)):
                await stack.enter_async_context(locks[key])
            await stack.enter_async_context(slots)
            result = await run_script(path, host, port, timeout_s=timeout_s)
        return result

    # The scripts that wait for timers start first, so that the others run meanwhile.
    order = sorted(range(len(scripts)), key=lambda i: -_estimated_duration(scripts[i]))
    tasks = {i: asyncio.ensure_future(run_one(scripts[i])) for i in order}
    await asyncio.gather(*tasks.values())
    return [tasks[i].result() for i in range(len(scripts))]


def conformance_sessions(
    spec_dir: Path | None, scripts: Sequence[Path] | None = None
) -> list[SessionSettings]:
    """Return the acceptor sessions the QuickFIX acceptance scripts log on to.

    ``spec_dir`` holds the QuickFIX dictionaries (FIX40.xml ... FIX50SP2.xml, FIXT11.xml);
    None validates with the venue dictionary shipped with the gateway instead. With
    ``scripts``, only the sessions those scripts log on to are returned, so ``spec_dir``
    needs only their versions' dictionaries. Scripts that log on to none of the sessions
    get them all, and fail at their Logon as they would otherwise.
    """
    table = [*_SCRIPT_SESSIONS, ("FIX.4.4", NO_CHECK_FIELDS_HAVE_VALUES, None, "FIX44.xml")]
    if scripts is not None:
        used = set().union(*(_session_keys(path) for path in scripts))
        table = [row for row in table if (row[0], row[1]) in used] or table
    return [
        _script_session(
            begin_string, comp_id, appl_ver_id, dictionary, spec_dir,
            validate_fields_have_values=comp_id != NO_CHECK_FIELDS_HAVE_VALUES,
        )
        for begin_string, comp_id, appl_ver_id, dictionary in table
    ]


def _script_session(
    begin_string: str, comp_id: str, appl_ver_id: str | None, dictionary: str,
    spec_dir: Path | None, *, validate_fields_have_values: bool = True,
) -> SessionSettings:
    is_fixt = begin_string == "FIXT.1.1"
    app_path = spec_dir / dictionary if spec_dir is not None else None
    return SessionSettings(
        begin_string=begin_string,
        sender_comp_id=VENUE_COMP_ID,
        target_comp_id=comp_id,
        socket_accept_port=0,
        reset_on_logon=True,
        data_dictionary=None if is_fixt else app_path,
        transport_data_dictionary=spec_dir / "FIXT11.xml" if is_fixt and spec_dir else None,
        app_data_dictionary=app_path if is_fixt else None,
        default_appl_ver_id=appl_ver_id,
        validate_fields_have_values=validate_fields_have_values,
    )


def find_spec_dir(paths: Iterable[Path]) -> Path | None:
    """Return a ``spec`` folder with FIX44.xml beside or above the script paths, or None."""
    for path in paths:
        for folder in [path.resolve(), *path.resolve().parents]:
            candidate = folder / "spec"
            if (candidate / "FIX44.xml").is_file():
                return candidate
    return None


async def run_with_appliance(
    scripts: Sequence[Path], spec_dir: Path | None, *, jobs: int = DEFAULT_JOBS,
    timeout_s: float = READ_TIMEOUT_S,
) -> list[ScriptResult]:
    """Start an echo appliance on a free loopback port, run ``scripts``, stop it."""
    from gateway.appliance import Appliance
    from gateway.venue import default_venue_config

    with tempfile.TemporaryDirectory(prefix="fixgw-conformance-") as folder:
        appliance = Appliance(
            conformance_sessions(spec_dir, scripts), default_venue_config(),
            audit_path=Path(folder) / "audit.sqlite", app="echo",
        )
        ports = await appliance.start()
        try:
            port = next(iter(ports.values()))
            return await run_against(scripts, "127.0.0.1", port, jobs=jobs, timeout_s=timeout_s)
        finally:
            await appliance.stop()


# Reporting.


def format_results(results: Sequence[ScriptResult], duration_s: float) -> str:
    """Return one line per script, failure details indented, and a total line."""
    lines = []
    for result in results:
        if result.passed:
            lines.append(f"PASS {result.path} ({result.duration_s:.2f}s)")
            continue
        failure = result.failure
        assert failure is not None
        lines.append(
            f"FAIL {result.path}: step {failure.step} (line {failure.line}): {failure.reason}"
        )
        if failure.expected:
            lines.append(f"    expected: {failure.expected}")
        if failure.received:
            lines.append(f"    received: {failure.received}")
    passed = sum(result.passed for result in results)
    lines.append(
        f"{passed} passed, {len(results) - passed} failed of {len(results)} scripts "
        f"in {duration_s:.1f}s"
    )
    return "\n".join(lines)


def results_json(results: Sequence[ScriptResult], duration_s: float) -> str:
    """Return the results as a JSON document."""
    passed = sum(result.passed for result in results)
    document = {
        "total": len(results),
        "passed": passed,
        "failed": len(results) - passed,
        "duration_s": round(duration_s, 3),
        "scripts": [asdict(result) for result in results],
    }
    return json.dumps(document, indent=2)

