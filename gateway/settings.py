"""FIX session settings in the QuickFIX settings-file format.

A settings file has one ``[DEFAULT]`` section and one ``[SESSION]`` section per session,
with ``Key=Value`` lines, ``#`` comment lines and blank lines. Each session inherits every
key of ``[DEFAULT]`` and may override it. Keys are matched without regard to case, as
QuickFIX spellings differ (``SocketNodelay`` in C++, ``SocketNoDelay`` here), and errors
quote the key as the file spells it.

The appliance accepts sessions only, so ``ConnectionType=initiator`` is rejected. Times are
UTC, and ``TimeZone`` is accepted only as UTC. Relative paths resolve against the folder of
the settings file. Every error is a :class:`~gateway.errors.SettingsError` whose message
starts with ``file:line:`` and names the key, the value and what is allowed.

The session layer validates inbound messages against DataDictionary (FIX 4.x) or
TransportDataDictionary and AppDataDictionary (FIXT.1.1), with the Validate* keys, and
falls back to the venue dictionary shipped in ``gateway/spec`` when none is named;
UseDataDictionary=N turns validation off.
"""

from __future__ import annotations

import datetime
import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import SettingsError

__all__ = [
    "BEGIN_STRINGS",
    "DEFAULT_BEGIN_STRING",
    "DEFAULT_BROKERS",
    "DEFAULT_HEARTBEAT_INTERVAL_S",
    "DEFAULT_MAX_LATENCY_S",
    "DEFAULT_MAX_MESSAGE_SIZE_BYTES",
    "DEFAULT_SOCKET_ACCEPT_HOST",
    "DEFAULT_VENUE_COMP_ID",
    "SessionSettings",
    "default_session_settings",
    "load_session_settings",
    "parse_session_settings",
]

BEGIN_STRINGS = ("FIX.4.0", "FIX.4.1", "FIX.4.2", "FIX.4.3", "FIX.4.4", "FIXT.1.1")
DEFAULT_BEGIN_STRING = "FIX.4.4"
DEFAULT_VENUE_COMP_ID = "FIXGW"
DEFAULT_BROKERS = ("BRK1", "BRK2", "BRK3", "BRK4")
DEFAULT_SOCKET_ACCEPT_HOST = "127.0.0.1"
DEFAULT_HEARTBEAT_INTERVAL_S = 30
# QuickFIX's default for MaxLatency.
DEFAULT_MAX_LATENCY_S = 120
DEFAULT_MAX_MESSAGE_SIZE_BYTES = 1024 * 1024

_FIXT = "FIXT.1.1"

# DefaultApplVerID (1137) takes the ApplVerID (1128) code; the file may give the code or
# the version name.
_APPL_VER_IDS = {
    "FIX.2.7": "0",
    "FIX.3.0": "1",
    "FIX.4.0": "2",
    "FIX.4.1": "3",
    "FIX.4.2": "4",
    "FIX.4.3": "5",
    "FIX.4.4": "6",
    "FIX.5.0": "7",
    "FIX.5.0SP1": "8",
    "FIX.5.0SP2": "9",
}

_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DIGITS = re.compile(r"[0-9]+")
_TIME_OF_DAY = re.compile(r"([0-9]{2}):([0-9]{2}):([0-9]{2})")
# CompIDs and SubIDs travel in header fields, so they must be printable ASCII without
# spaces or SOH.
_ID = re.compile(r"[!-~]+")
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*")


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """Settings of one acceptor session, one ``[SESSION]`` section merged with ``[DEFAULT]``.

    Paths are absolute and resolved, and None when the file sets none. ``start_time`` and
    ``end_time`` are UTC. ``start_day`` and ``end_day`` count Monday as 0, as
    ``datetime.date.weekday`` does.
    """

    begin_string: str
    sender_comp_id: str
    target_comp_id: str
    socket_accept_port: int
    sender_sub_id: str | None = None
    target_sub_id: str | None = None
    socket_accept_host: str = DEFAULT_SOCKET_ACCEPT_HOST
    heartbeat_interval_s: int = DEFAULT_HEARTBEAT_INTERVAL_S
    reset_on_logon: bool = False
    reset_on_logout: bool = False
    reset_on_disconnect: bool = False
    file_store_path: Path | None = None
    use_data_dictionary: bool = True
    data_dictionary: Path | None = None
    transport_data_dictionary: Path | None = None
    app_data_dictionary: Path | None = None
    # The ApplVerID (1128) code, such as "9" for FIX.5.0SP2; only FIXT.1.1 sessions have one.
    default_appl_ver_id: str | None = None
    validate_fields_have_values: bool = True
    validate_user_defined_fields: bool = True
    validate_fields_out_of_order: bool = True
    check_latency: bool = True
    max_latency_s: int = DEFAULT_MAX_LATENCY_S
    start_time: datetime.time | None = None
    end_time: datetime.time | None = None
    start_day: int | None = None
    end_day: int | None = None
    socket_no_delay: bool = True
    max_message_size_bytes: int = DEFAULT_MAX_MESSAGE_SIZE_BYTES
    # Cancel the session's resting orders when its connection ends, unless the venue
    # itself is shutting down.
    cancel_on_disconnect: bool = False

    @property
    def session_id(self) -> str:
        """Session ID in QuickFIX style, ``FIX.4.4:FIXGW->BRK1``."""
        return f"{self.begin_string}:{self.sender_comp_id}->{self.target_comp_id}"

    def is_session_time(self, now: datetime.datetime) -> bool:
        """Return whether the UTC time ``now`` lies inside StartTime-EndTime.

        With StartDay/EndDay the window is weekly, from StartDay at StartTime to EndDay at
        EndTime; otherwise it repeats daily. A window whose start is after its end spans
        midnight (or the weekend), and equal start and end mean the session never closes.
        No StartTime means always open.
        """
        if self.start_time is None or self.end_time is None:
            return True
        start = _seconds_of_day(self.start_time)
        end = _seconds_of_day(self.end_time)
        position = _seconds_of_day(now.time())
        if self.start_day is not None and self.end_day is not None:
            start += self.start_day * 86_400
            end += self.end_day * 86_400
            position += now.weekday() * 86_400
        if start == end:
            return True
        if start < end:
            return start <= position <= end
        return position >= start or position <= end


def default_session_settings(
    port: int = 0, brokers: Iterable[str] = DEFAULT_BROKERS
) -> list[SessionSettings]:
    """Return the built-in sessions: one FIX.4.4 session per broker, all on ``port``.

    The venue's SenderCompID is ``FIXGW`` and each broker's CompID is its TargetCompID.
    Port 0 lets the operating system choose a free port when the gateway listens.
    """
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be from 0 to 65535, got {port!r}")
    broker_ids = list(brokers)
    if not broker_ids:
        raise ValueError("brokers must name at least one broker CompID")
    for broker in broker_ids:
        if not _ID.fullmatch(broker):
            raise ValueError(
                f"broker CompID {broker!r} is invalid: expected printable ASCII without spaces"
            )
    if len(set(broker_ids)) != len(broker_ids):
        raise ValueError(f"brokers contains a CompID twice: {broker_ids!r}")
    return [
        SessionSettings(
            begin_string=DEFAULT_BEGIN_STRING,
            sender_comp_id=DEFAULT_VENUE_COMP_ID,
            target_comp_id=broker,
            socket_accept_port=port,
            heartbeat_interval_s=DEFAULT_HEARTBEAT_INTERVAL_S,
            reset_on_logon=False,
        )
        for broker in broker_ids
    ]


def load_session_settings(path: str | os.PathLike[str]) -> list[SessionSettings]:
    """Read a settings file and return its sessions in file order.

    Relative paths inside the file resolve against the file's folder.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(
            f"{path}: cannot read the session settings file: {exc.strerror or exc}",
            source=str(path),
        ) from exc
    except UnicodeDecodeError as exc:
        raise SettingsError(
            f"{path}: the session settings file is not UTF-8 text: {exc}", source=str(path)
        ) from exc
    return parse_session_settings(text, source=str(path), base_dir=path.parent)


def parse_session_settings(
    text: str, *, source: str = "<string>", base_dir: Path | None = None
) -> list[SessionSettings]:
    """Parse settings-file text and return its sessions in file order.

    ``source`` names the text in error messages. Relative paths resolve against
    ``base_dir``, which defaults to the current working directory.
    """
    base_dir = base_dir if base_dir is not None else Path.cwd()
    default, sessions = _read_sections(text, source)
    if not sessions:
        raise SettingsError(
            f"{source}: no [SESSION] section: add one per broker session", source=source
        )

    result: list[SessionSettings] = []
    first_lines: dict[str, int] = {}
    for section in sessions:
        merged = {**default.settings, **section.settings}
        settings = _build_session(section, merged, source, base_dir)
        first_line = first_lines.setdefault(settings.session_id, section.line)
        if first_line != section.line:
            raise SettingsError(
                f"{source}:{section.line}: session {settings.session_id} is already defined "
                f"by the [SESSION] at line {first_line}: give each session its own "
                "BeginString, SenderCompID and TargetCompID",
                source=source,
                line=section.line,
            )
        result.append(settings)
    return result


# Reading the file into sections.


@dataclass(frozen=True, slots=True)
class _Setting:
    """One ``Key=Value`` line, with the key as the file spells it."""

    key: str
    value: str
    line: int


@dataclass(slots=True)
class _Section:
    name: str
    line: int
    # Keyed by the upper-case key, since keys are matched without regard to case.
    settings: dict[str, _Setting] = field(default_factory=dict)


def _read_sections(text: str, source: str) -> tuple[_Section, list[_Section]]:
    """Split the text into the [DEFAULT] section (empty if absent) and the [SESSION] sections."""
    default = _Section("DEFAULT", 0)
    sessions: list[_Section] = []
    current: _Section | None = None
    for number, raw in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = _open_section(line, number, source, default)
            if current is not default:
                sessions.append(current)
            continue
        if current is None:
            raise SettingsError(
                f"{source}:{number}: {line!r} comes before any section: put it under "
                "[DEFAULT] or [SESSION]",
                source=source,
                line=number,
            )
        _add_setting(current, line, number, source)
    return default, sessions


def _open_section(line: str, number: int, source: str, default: _Section) -> _Section:
    name = line[1:-1].strip().upper() if line.endswith("]") else ""
    if name == "SESSION":
        return _Section("SESSION", number)
    if name == "DEFAULT":
        if default.line:
            raise SettingsError(
                f"{source}:{number}: second [DEFAULT] section, the first is at line "
                f"{default.line}: merge them into one",
                source=source,
                line=number,
            )
        default.line = number
        return default
    raise SettingsError(
        f"{source}:{number}: section header {line!r} is invalid: expected [DEFAULT] or [SESSION]",
        source=source,
        line=number,
    )


def _add_setting(section: _Section, line: str, number: int, source: str) -> None:
    key, sep, value = line.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key:
        raise SettingsError(
            f"{source}:{number}: {line!r} is invalid: expected Key=Value, a [SECTION] header "
            "or a # comment",
            source=source,
            line=number,
        )
    upper = key.upper()
    if upper not in _KEYS:
        raise SettingsError(
            f"{source}:{number}: {key}={value!r} is not a supported key{_suggest(key)}; "
            f"supported keys are {', '.join(spec.name for spec in _KEYS.values())}",
            source=source,
            line=number,
            key=key,
            value=value,
        )
    previous = section.settings.get(upper)
    if previous is not None:
        raise SettingsError(
            f"{source}:{number}: {key} is set twice in this [{section.name}] section, first at "
            f"line {previous.line}: keep one",
            source=source,
            line=number,
            key=key,
            value=value,
        )
    section.settings[upper] = _Setting(key, value, number)


def _suggest(key: str) -> str:
    names = {spec.name.upper(): spec.name for spec in _KEYS.values()}
    matches = difflib.get_close_matches(key.upper(), names, n=1)
    return f" (did you mean {names[matches[0]]}?)" if matches else ""


# Building one session from its merged settings.


def _build_session(
    section: _Section, merged: dict[str, _Setting], source: str, base_dir: Path
) -> SessionSettings:
    for spec in _KEYS.values():
        if spec.required and spec.name.upper() not in merged:
            raise SettingsError(
                f"{source}:{section.line}: [SESSION] is missing {spec.name}: set it in this "
                f"section or under [DEFAULT], for example {spec.name}={spec.example}",
                source=source,
                line=section.line,
                key=spec.name,
            )

    values: dict[str, Any] = {}
    for upper, setting in merged.items():
        spec = _KEYS[upper]
        try:
            value = spec.parse(setting.value, base_dir)
        except _InvalidValue as exc:
            raise SettingsError(
                f"{source}:{setting.line}: {setting.key}={setting.value!r} is invalid: {exc}",
                source=source,
                line=setting.line,
                key=setting.key,
                value=setting.value,
            ) from None
        if spec.field is not None:
            values[spec.field] = value

    _check_combinations(section, merged, source)
    return SessionSettings(**values)


def _check_combinations(section: _Section, merged: dict[str, _Setting], source: str) -> None:
    """Reject settings that are valid alone but cannot be used together."""
    begin_string = merged["BEGINSTRING"]
    dictionaries = ("DATADICTIONARY", "TRANSPORTDATADICTIONARY", "APPDATADICTIONARY")

    if begin_string.value == _FIXT:
        fix = "a FIXT.1.1 session takes TransportDataDictionary and AppDataDictionary"
        _reject_with(merged, "DATADICTIONARY", begin_string, source, fix)
        if "DEFAULTAPPLVERID" not in merged:
            raise SettingsError(
                f"{source}:{section.line}: [SESSION] with BeginString=FIXT.1.1 is missing "
                "DefaultApplVerID: set it, for example DefaultApplVerID=FIX.5.0SP2",
                source=source,
                line=section.line,
                key="DefaultApplVerID",
            )
    else:
        fix = "only FIXT.1.1 sessions use it, and a FIX.4.x session takes DataDictionary"
        for upper in (*dictionaries[1:], "DEFAULTAPPLVERID"):
            _reject_with(merged, upper, begin_string, source, fix)

    use_dictionary = merged.get("USEDATADICTIONARY")
    if use_dictionary is not None and use_dictionary.value == "N":
        fix = "remove the dictionary or set UseDataDictionary=Y"
        for upper in dictionaries:
            _reject_with(merged, upper, use_dictionary, source, fix)

    _require_pair(merged, "STARTTIME", "ENDTIME", source)
    _require_pair(merged, "STARTDAY", "ENDDAY", source)
    if "STARTDAY" in merged and "STARTTIME" not in merged:
        start_day = merged["STARTDAY"]
        raise SettingsError(
            f"{source}:{start_day.line}: {start_day.key}={start_day.value!r} needs StartTime "
            "and EndTime: a weekly session opens at StartTime on StartDay",
            source=source,
            line=start_day.line,
            key=start_day.key,
            value=start_day.value,
        )


def _reject_with(
    merged: dict[str, _Setting], upper: str, other: _Setting, source: str, fix: str
) -> None:
    """Raise if ``upper`` is set, naming it and the ``other`` setting it conflicts with."""
    setting = merged.get(upper)
    if setting is None:
        return
    raise SettingsError(
        f"{source}:{setting.line}: {setting.key}={setting.value!r} cannot be used with "
        f"{other.key}={other.value!r} (line {other.line}): {fix}",
        source=source,
        line=setting.line,
        key=setting.key,
        value=setting.value,
    )


def _require_pair(merged: dict[str, _Setting], first: str, second: str, source: str) -> None:
    present = [merged[upper] for upper in (first, second) if upper in merged]
    if len(present) != 1:
        return
    setting = present[0]
    missing = _KEYS[second if setting is merged.get(first) else first].name
    raise SettingsError(
        f"{source}:{setting.line}: {setting.key}={setting.value!r} is set but {missing} is "
        f"missing: set both or neither",
        source=source,
        line=setting.line,
        key=setting.key,
        value=setting.value,
    )


# Value parsers. Each returns the typed value or raises _InvalidValue saying what is allowed.


class _InvalidValue(Exception):
    """A value is invalid. The message states what is expected."""


def _parse_connection_type(text: str, base_dir: Path) -> None:
    if text.lower() == "acceptor":
        return None
    if text.lower() == "initiator":
        raise _InvalidValue(
            "the appliance accepts sessions only, so set ConnectionType=acceptor and let "
            "brokers connect to it as initiators"
        )
    raise _InvalidValue("expected acceptor")


def _parse_begin_string(text: str, base_dir: Path) -> str:
    if text not in BEGIN_STRINGS:
        raise _InvalidValue(f"expected one of {', '.join(BEGIN_STRINGS)}")
    return text


def _parse_id(text: str, base_dir: Path) -> str:
    if not _ID.fullmatch(text):
        raise _InvalidValue("expected a non-empty ID of printable ASCII without spaces")
    return text


def _parse_port(text: str, base_dir: Path) -> int:
    # Port 0 requests a free port from the operating system, and `fixgw serve` prints it.
    if not _DIGITS.fullmatch(text) or not 0 <= int(text) <= 65535:
        raise _InvalidValue("expected a TCP port number from 0 (any free port) to 65535")
    return int(text)


def _parse_host(text: str, base_dir: Path) -> str:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        if not _HOST_NAME.fullmatch(text):
            expected = "expected an IP address or a host name, such as 127.0.0.1"
            raise _InvalidValue(expected) from None
    return text


def _positive_int(unit: str) -> Callable[[str, Path], int]:
    def parse(text: str, base_dir: Path) -> int:
        if not _DIGITS.fullmatch(text) or int(text) == 0:
            raise _InvalidValue(f"expected a whole number of {unit} above 0")
        return int(text)

    return parse


def _parse_yes_no(text: str, base_dir: Path) -> bool:
    if text not in ("Y", "N"):
        raise _InvalidValue("expected Y or N")
    return text == "Y"


def _parse_time_of_day(text: str, base_dir: Path) -> datetime.time:
    match = _TIME_OF_DAY.fullmatch(text)
    if match:
        hour, minute, second = (int(part) for part in match.groups())
        if hour <= 23 and minute <= 59 and second <= 59:
            return datetime.time(hour, minute, second, tzinfo=datetime.timezone.utc)
    raise _InvalidValue("expected a UTC time of day as HH:MM:SS, such as 07:30:00")


def _parse_day(text: str, base_dir: Path) -> int:
    lowered = text.lower()
    for number, day in enumerate(_DAYS):
        if lowered == day or lowered == day[:3]:
            return number
    raise _InvalidValue("expected a day of the week in English, such as Monday or Mon")


def _parse_time_zone(text: str, base_dir: Path) -> None:
    if text.upper() not in ("UTC", "ETC/UTC"):
        raise _InvalidValue(
            "only UTC is supported, so give StartTime and EndTime in UTC and set "
            "TimeZone=UTC or remove the key"
        )
    return None


def _parse_appl_ver_id(text: str, base_dir: Path) -> str:
    if text in _APPL_VER_IDS.values():
        return text
    code = _APPL_VER_IDS.get(text)
    if code is None:
        raise _InvalidValue(
            f"expected an ApplVerID (1128) name or code, one of {', '.join(_APPL_VER_IDS)} "
            "or 0-9"
        )
    return code


def _parse_file(text: str, base_dir: Path) -> Path:
    path = _resolve(text, base_dir)
    if not path.is_file():
        raise _InvalidValue(f"expected an existing file, {str(path)!r} is not one")
    return path


def _parse_directory(text: str, base_dir: Path) -> Path:
    path = _resolve(text, base_dir)
    if path.exists() and not path.is_dir():
        raise _InvalidValue(f"expected a directory, {str(path)!r} exists and is not one")
    return path


def _resolve(text: str, base_dir: Path) -> Path:
    if not text:
        raise _InvalidValue("expected a path")
    return (base_dir / text).resolve()


@dataclass(frozen=True, slots=True)
class _Key:
    """A supported key: its QuickFIX spelling, the field it sets and how its value is parsed."""

    name: str
    field: str | None  # None for keys that are only checked
    parse: Callable[[str, Path], Any]
    required: bool = False
    example: str = ""


_KEYS: dict[str, _Key] = {
    spec.name.upper(): spec
    for spec in (
        _Key("ConnectionType", None, _parse_connection_type),
        _Key("BeginString", "begin_string", _parse_begin_string, True, "FIX.4.4"),
        _Key("SenderCompID", "sender_comp_id", _parse_id, True, DEFAULT_VENUE_COMP_ID),
        _Key("TargetCompID", "target_comp_id", _parse_id, True, "BRK1"),
        _Key("SenderSubID", "sender_sub_id", _parse_id),
        _Key("TargetSubID", "target_sub_id", _parse_id),
        _Key("SocketAcceptPort", "socket_accept_port", _parse_port, True, "9876"),
        _Key("SocketAcceptHost", "socket_accept_host", _parse_host),
        _Key("HeartBtInt", "heartbeat_interval_s", _positive_int("seconds")),
        _Key("ResetOnLogon", "reset_on_logon", _parse_yes_no),
        _Key("ResetOnLogout", "reset_on_logout", _parse_yes_no),
        _Key("ResetOnDisconnect", "reset_on_disconnect", _parse_yes_no),
        _Key("CancelOnDisconnect", "cancel_on_disconnect", _parse_yes_no),
        _Key("FileStorePath", "file_store_path", _parse_directory),
        _Key("UseDataDictionary", "use_data_dictionary", _parse_yes_no),
        _Key("DataDictionary", "data_dictionary", _parse_file),
        _Key("TransportDataDictionary", "transport_data_dictionary", _parse_file),
        _Key("AppDataDictionary", "app_data_dictionary", _parse_file),
        _Key("DefaultApplVerID", "default_appl_ver_id", _parse_appl_ver_id),
        _Key("ValidateFieldsHaveValues", "validate_fields_have_values", _parse_yes_no),
        _Key("ValidateUserDefinedFields", "validate_user_defined_fields", _parse_yes_no),
        _Key("ValidateFieldsOutOfOrder", "validate_fields_out_of_order", _parse_yes_no),
        _Key("CheckLatency", "check_latency", _parse_yes_no),
        _Key("MaxLatency", "max_latency_s", _positive_int("seconds")),
        _Key("StartTime", "start_time", _parse_time_of_day),
        _Key("EndTime", "end_time", _parse_time_of_day),
        _Key("StartDay", "start_day", _parse_day),
        _Key("EndDay", "end_day", _parse_day),
        _Key("TimeZone", None, _parse_time_zone),
        _Key("SocketNoDelay", "socket_no_delay", _parse_yes_no),
        _Key("MaxMessageSize", "max_message_size_bytes", _positive_int("bytes")),
    )
}


def _seconds_of_day(value: datetime.time) -> int:
    return value.hour * 3600 + value.minute * 60 + value.second
