"""QuickFIX-format session settings: parsing, inheritance, paths and every rejected input."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from gateway.errors import ConfigError, FixError, SettingsError
from gateway.settings import (
    DEFAULT_MAX_MESSAGE_SIZE_BYTES,
    SessionSettings,
    default_session_settings,
    load_session_settings,
    parse_session_settings,
)

REPO = Path(__file__).resolve().parents[2]

# Line numbers matter: the session section starts at line 7 and its last line is 9.
BASE = """\
# venue defaults
[DEFAULT]
ConnectionType=acceptor
SenderCompID=FIXGW
SocketAcceptPort=9876

[SESSION]
BeginString=FIX.4.4
TargetCompID=BRK1
"""
SESSION_LINE = 7


def write_cfg(folder: Path, text: str, name: str = "sessions.cfg") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> SettingsError:
    path = write_cfg(tmp_path, text)
    with pytest.raises(SettingsError) as info:
        load_session_settings(path)
    return info.value


def with_line(key: str, value: str) -> tuple[str, int]:
    """Return BASE with ``key=value`` as the session's last line, and that line's number.

    A key that the session sets already moves to the end, so it is not set twice.
    """
    lines = [line for line in BASE.splitlines() if not line.startswith(f"{key}=")]
    text = "\n".join([*lines, f"{key}={value}"]) + "\n"
    return text, text.count("\n")


# Loading and inheritance.


def test_example_config_loads() -> None:
    sessions = load_session_settings(REPO / "config" / "sessions.cfg")
    begin_strings = {settings.begin_string for settings in sessions}
    assert begin_strings == {"FIX.4.2", "FIX.4.4"}
    assert all(settings.socket_accept_host == "127.0.0.1" for settings in sessions)
    assert all(settings.file_store_path is not None for settings in sessions)
    assert sessions[0].file_store_path == (REPO / "var" / "store").resolve()


def test_session_inherits_default(tmp_path: Path) -> None:
    (settings,) = load_session_settings(write_cfg(tmp_path, BASE))
    assert settings.sender_comp_id == "FIXGW"
    assert settings.socket_accept_port == 9876
    assert settings.target_comp_id == "BRK1"


def test_session_overrides_default(tmp_path: Path) -> None:
    text = BASE.replace("[DEFAULT]\n", "[DEFAULT]\nHeartBtInt=60\n") + "HeartBtInt=15\n"
    text += "[SESSION]\nBeginString=FIX.4.2\nTargetCompID=BRK2\n"
    first, second = load_session_settings(write_cfg(tmp_path, text))
    assert first.heartbeat_interval_s == 15
    assert second.heartbeat_interval_s == 60


def test_session_without_default_section() -> None:
    text = "[SESSION]\nBeginString=FIX.4.0\nSenderCompID=V\nTargetCompID=B\nSocketAcceptPort=1\n"
    (settings,) = parse_session_settings(text)
    assert settings.session_id == "FIX.4.0:V->B"


def test_session_id_format() -> None:
    (settings,) = parse_session_settings(BASE)
    assert settings.session_id == "FIX.4.4:FIXGW->BRK1"


def test_defaults_for_absent_keys() -> None:
    (settings,) = parse_session_settings(BASE)
    assert settings == SessionSettings(
        begin_string="FIX.4.4",
        sender_comp_id="FIXGW",
        target_comp_id="BRK1",
        socket_accept_port=9876,
    )
    assert settings.socket_accept_host == "127.0.0.1"
    assert settings.heartbeat_interval_s == 30
    assert settings.max_latency_s == 120
    assert settings.max_message_size_bytes == DEFAULT_MAX_MESSAGE_SIZE_BYTES == 1024 * 1024
    assert settings.reset_on_logon is False
    assert settings.use_data_dictionary is True
    assert settings.file_store_path is None


def test_every_key_parsed(tmp_path: Path) -> None:
    text = BASE + (
        "SenderSubID=VENUE\nTargetSubID=DESK1\nSocketAcceptHost=0.0.0.0\nHeartBtInt=20\n"
        "ResetOnLogon=Y\nResetOnLogout=Y\nResetOnDisconnect=Y\nUseDataDictionary=N\n"
        "ValidateFieldsHaveValues=N\nValidateUserDefinedFields=N\nValidateFieldsOutOfOrder=N\n"
        "CheckLatency=N\nMaxLatency=5\nStartTime=13:00:00\nEndTime=21:30:59\n"
        "StartDay=Sunday\nEndDay=fri\nTimeZone=UTC\nSocketNoDelay=N\nMaxMessageSize=4096\n"
        "CancelOnDisconnect=Y\n"
    )
    (settings,) = load_session_settings(write_cfg(tmp_path, text))
    assert settings.sender_sub_id == "VENUE"
    assert settings.target_sub_id == "DESK1"
    assert settings.socket_accept_host == "0.0.0.0"
    assert settings.heartbeat_interval_s == 20
    assert (settings.reset_on_logon, settings.reset_on_logout) == (True, True)
    assert settings.reset_on_disconnect is True
    assert settings.use_data_dictionary is False
    assert settings.validate_fields_have_values is False
    assert settings.validate_user_defined_fields is False
    assert settings.validate_fields_out_of_order is False
    assert (settings.check_latency, settings.max_latency_s) == (False, 5)
    utc = datetime.timezone.utc
    assert settings.start_time == datetime.time(13, 0, 0, tzinfo=utc)
    assert settings.end_time == datetime.time(21, 30, 59, tzinfo=utc)
    assert (settings.start_day, settings.end_day) == (6, 4)
    assert settings.socket_no_delay is False
    assert settings.max_message_size_bytes == 4096
    assert settings.cancel_on_disconnect is True


def test_keys_ignore_case() -> None:
    (settings,) = parse_session_settings(BASE + "SocketNodelay=N\nheartbtint=12\n")
    assert settings.socket_no_delay is False
    assert settings.heartbeat_interval_s == 12


def test_comments_blank_lines_and_crlf() -> None:
    text = "\ufeff" + BASE.replace("\n", "\r\n") + "  # indented comment\r\n\r\n"
    (settings,) = parse_session_settings(text)
    assert settings.target_comp_id == "BRK1"


def test_spaces_around_key_and_value() -> None:
    (settings,) = parse_session_settings(BASE + "  HeartBtInt =  45  \n")
    assert settings.heartbeat_interval_s == 45


def test_same_comp_ids_other_begin_string() -> None:
    text = BASE + "[SESSION]\nBeginString=FIX.4.2\nTargetCompID=BRK1\n"
    sessions = parse_session_settings(text)
    assert [settings.session_id for settings in sessions] == [
        "FIX.4.4:FIXGW->BRK1",
        "FIX.4.2:FIXGW->BRK1",
    ]


def test_fixt_session() -> None:
    text = BASE.replace("FIX.4.4", "FIXT.1.1") + "DefaultApplVerID=FIX.5.0SP2\n"
    (settings,) = parse_session_settings(text)
    assert settings.begin_string == "FIXT.1.1"
    assert settings.default_appl_ver_id == "9"


@pytest.mark.parametrize("value, code", [("FIX.5.0SP2", "9"), ("9", "9"), ("FIX.4.4", "6")])
def test_default_appl_ver_id_codes(value: str, code: str) -> None:
    text = BASE.replace("FIX.4.4", "FIXT.1.1") + f"DefaultApplVerID={value}\n"
    (settings,) = parse_session_settings(text)
    assert settings.default_appl_ver_id == code


# Paths.


def test_relative_paths_resolve_against_file_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    (folder / "spec").mkdir(parents=True)
    (folder / "spec" / "FIX44.xml").write_text("<fix/>", encoding="utf-8")
    text = BASE + "FileStorePath=store\nDataDictionary=spec/FIX44.xml\n"
    path = write_cfg(folder, text)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    (settings,) = load_session_settings(path)

    assert settings.file_store_path == (folder / "store").resolve()
    assert settings.data_dictionary == (folder / "spec" / "FIX44.xml").resolve()


def test_relative_config_path_resolves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cfg(tmp_path / "etc", BASE + "FileStorePath=../store\n")
    monkeypatch.chdir(tmp_path)
    (settings,) = load_session_settings("etc/sessions.cfg")
    assert settings.file_store_path == (tmp_path / "store").resolve()


def test_absolute_path_kept(tmp_path: Path) -> None:
    store = tmp_path / "absolute-store"
    (settings,) = load_session_settings(
        write_cfg(tmp_path / "etc", BASE + f"FileStorePath={store}\n")
    )
    assert settings.file_store_path == store.resolve()


def test_parse_resolves_against_base_dir(tmp_path: Path) -> None:
    (settings,) = parse_session_settings(BASE + "FileStorePath=store\n", base_dir=tmp_path)
    assert settings.file_store_path == (tmp_path / "store").resolve()


def test_fixt_dictionaries_resolve(tmp_path: Path) -> None:
    for name in ("FIXT11.xml", "FIX50SP2.xml"):
        (tmp_path / name).write_text("<fix/>", encoding="utf-8")
    text = BASE.replace("FIX.4.4", "FIXT.1.1") + (
        "TransportDataDictionary=FIXT11.xml\nAppDataDictionary=FIX50SP2.xml\n"
        "DefaultApplVerID=FIX.5.0SP2\n"
    )
    (settings,) = load_session_settings(write_cfg(tmp_path, text))
    assert settings.transport_data_dictionary == (tmp_path / "FIXT11.xml").resolve()
    assert settings.app_data_dictionary == (tmp_path / "FIX50SP2.xml").resolve()


# Invalid values: the message names file, line, key and value, and what is allowed.

INVALID_VALUES = [
    ("ConnectionType", "initiator", "accepts sessions only"),
    ("ConnectionType", "both", "expected acceptor"),
    ("BeginString", "FIX.5.0", "expected one of FIX.4.0"),
    ("BeginString", "fix.4.4", "expected one of FIX.4.0"),
    ("SenderCompID", "FIX GW", "printable ASCII without spaces"),
    ("TargetCompID", "", "non-empty ID"),
    ("SenderSubID", "", "non-empty ID"),
    ("TargetSubID", "DESK\x01", "printable ASCII"),
    ("SocketAcceptPort", "65536", "to 65535"),
    ("SocketAcceptPort", "-1", "to 65535"),
    ("SocketAcceptPort", "http", "to 65535"),
    ("SocketAcceptHost", "bad host!", "IP address or a host name"),
    ("SocketAcceptHost", "", "IP address or a host name"),
    ("HeartBtInt", "abc", "whole number of seconds above 0"),
    ("HeartBtInt", "0", "whole number of seconds above 0"),
    ("HeartBtInt", "-5", "whole number of seconds above 0"),
    ("HeartBtInt", "1.5", "whole number of seconds above 0"),
    ("HeartBtInt", "1_000", "whole number of seconds above 0"),
    ("ResetOnLogon", "yes", "expected Y or N"),
    ("ResetOnLogout", "y", "expected Y or N"),
    ("ResetOnDisconnect", "1", "expected Y or N"),
    ("UseDataDictionary", "true", "expected Y or N"),
    ("ValidateFieldsHaveValues", "", "expected Y or N"),
    ("ValidateUserDefinedFields", "No", "expected Y or N"),
    ("ValidateFieldsOutOfOrder", "YES", "expected Y or N"),
    ("CheckLatency", "on", "expected Y or N"),
    ("MaxLatency", "0", "whole number of seconds above 0"),
    ("MaxLatency", "2m", "whole number of seconds above 0"),
    ("StartTime", "24:00:00", "HH:MM:SS"),
    ("StartTime", "7:00:00", "HH:MM:SS"),
    ("EndTime", "12:60:00", "HH:MM:SS"),
    ("EndTime", "12:00", "HH:MM:SS"),
    ("StartDay", "Funday", "day of the week"),
    ("EndDay", "", "day of the week"),
    ("TimeZone", "America/New_York", "only UTC is supported"),
    ("SocketNoDelay", "maybe", "expected Y or N"),
    ("MaxMessageSize", "0", "whole number of bytes above 0"),
    ("MaxMessageSize", "1MB", "whole number of bytes above 0"),
    ("DataDictionary", "missing/FIX44.xml", "expected an existing file"),
    ("DataDictionary", "", "expected a path"),
    ("FileStorePath", "", "expected a path"),
    ("DefaultApplVerID", "FIX.6.0", "ApplVerID (1128) name or code"),
]


@pytest.mark.parametrize("key, value, expected", INVALID_VALUES)
def test_invalid_value(tmp_path: Path, key: str, value: str, expected: str) -> None:
    text, line = with_line(key, value)
    error = load_error(tmp_path, text)
    message = str(error)
    assert message.startswith(f"{tmp_path / 'sessions.cfg'}:{line}: ")
    assert f"{key}={value!r}" in message
    assert expected in message
    assert (error.line, error.key, error.value) == (line, key, value)


def test_invalid_value_example_message() -> None:
    text = BASE.replace("SocketAcceptPort=9876\n", "SocketAcceptPort=9876\nHeartBtInt=abc\n")
    with pytest.raises(SettingsError) as info:
        parse_session_settings(text, source="sessions.cfg")
    assert str(info.value) == (
        "sessions.cfg:6: HeartBtInt='abc' is invalid: expected a whole number of seconds above 0"
    )


def test_file_store_path_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "store").write_text("not a directory", encoding="utf-8")
    text, line = with_line("FileStorePath", "store")
    error = load_error(tmp_path, text)
    assert f"sessions.cfg:{line}: FileStorePath='store' is invalid: expected a directory" in str(
        error
    )


def test_invalid_default_value_reports_default_line(tmp_path: Path) -> None:
    text = BASE.replace("SocketAcceptPort=9876", "SocketAcceptPort=99999")
    error = load_error(tmp_path, text)
    assert f"sessions.cfg:5: SocketAcceptPort='99999'" in str(error)


@pytest.mark.parametrize(
    "key, suggestion",
    [
        ("HeartBeatInt", "did you mean HeartBtInt?"),
        ("SocketConnectPort", "did you mean SocketAcceptPort?"),
        ("Password", "supported keys are ConnectionType"),
        ("Heart Bt Int", "supported keys are"),
    ],
)
def test_unknown_key(tmp_path: Path, key: str, suggestion: str) -> None:
    text, line = with_line(key, "30")
    error = load_error(tmp_path, text)
    message = str(error)
    assert f"sessions.cfg:{line}: {key}='30' is not a supported key" in message
    assert suggestion in message
    assert (error.line, error.key, error.value) == (line, key, "30")


def test_unknown_key_in_default(tmp_path: Path) -> None:
    text = BASE.replace("[DEFAULT]\n", "[DEFAULT]\nLogonTimeout=10\n")
    error = load_error(tmp_path, text)
    assert "sessions.cfg:3: LogonTimeout='10' is not a supported key" in str(error)


@pytest.mark.parametrize(
    "line_text, expected",
    [
        ("HeartBtInt 30", "expected Key=Value"),
        ("=30", "expected Key=Value"),
        ("[SESSIONS]", "expected [DEFAULT] or [SESSION]"),
        ("[SESSION", "expected [DEFAULT] or [SESSION]"),
    ],
)
def test_malformed_line(tmp_path: Path, line_text: str, expected: str) -> None:
    error = load_error(tmp_path, BASE + line_text + "\n")
    assert "sessions.cfg:10: " in str(error)
    assert repr(line_text) in str(error)
    assert expected in str(error)


def test_key_before_section(tmp_path: Path) -> None:
    error = load_error(tmp_path, "HeartBtInt=30\n" + BASE)
    assert "sessions.cfg:1: 'HeartBtInt=30' comes before any section" in str(error)


def test_key_set_twice(tmp_path: Path) -> None:
    error = load_error(tmp_path, BASE + "targetcompid=BRK2\n")
    assert "sessions.cfg:10: targetcompid is set twice" in str(error)
    assert "first at line 9" in str(error)


def test_second_default_section(tmp_path: Path) -> None:
    error = load_error(tmp_path, BASE + "[DEFAULT]\nHeartBtInt=5\n")
    assert "sessions.cfg:10: second [DEFAULT] section, the first is at line 2" in str(error)


@pytest.mark.parametrize(
    "key, remove",
    [
        ("BeginString", "BeginString=FIX.4.4\n"),
        ("SenderCompID", "SenderCompID=FIXGW\n"),
        ("TargetCompID", "TargetCompID=BRK1\n"),
        ("SocketAcceptPort", "SocketAcceptPort=9876\n"),
    ],
)
def test_missing_required_key(tmp_path: Path, key: str, remove: str) -> None:
    text = BASE.replace(remove, "# removed\n")
    error = load_error(tmp_path, text)
    assert f"sessions.cfg:{SESSION_LINE}: [SESSION] is missing {key}" in str(error)
    assert (error.line, error.key) == (SESSION_LINE, key)


def test_no_session_section(tmp_path: Path) -> None:
    error = load_error(tmp_path, BASE.split("[SESSION]")[0])
    assert "sessions.cfg: no [SESSION] section" in str(error)
    assert error.line is None


def test_duplicate_session_id(tmp_path: Path) -> None:
    text = BASE + "\n[SESSION]\nBeginString=FIX.4.4\nTargetCompID=BRK1\n"
    error = load_error(tmp_path, text)
    message = str(error)
    assert "sessions.cfg:11: session FIX.4.4:FIXGW->BRK1 is already defined" in message
    assert "at line 7" in message


# Settings that are valid alone but not together: the message names both.

COMBINATIONS = [
    (
        "BeginString=FIXT.1.1\nDefaultApplVerID=9\nDataDictionary=FIX44.xml\n",
        "DataDictionary='FIX44.xml' cannot be used with BeginString='FIXT.1.1' (line 10)",
    ),
    (
        "TransportDataDictionary=FIX44.xml\n",
        "TransportDataDictionary='FIX44.xml' cannot be used with BeginString='FIX.4.4' (line 8)",
    ),
    (
        "AppDataDictionary=FIX44.xml\n",
        "AppDataDictionary='FIX44.xml' cannot be used with BeginString='FIX.4.4' (line 8)",
    ),
    (
        "DefaultApplVerID=FIX.5.0SP2\n",
        "DefaultApplVerID='FIX.5.0SP2' cannot be used with BeginString='FIX.4.4' (line 8)",
    ),
    (
        "UseDataDictionary=N\nDataDictionary=FIX44.xml\n",
        "DataDictionary='FIX44.xml' cannot be used with UseDataDictionary='N' (line 10)",
    ),
    ("StartTime=07:00:00\n", "StartTime='07:00:00' is set but EndTime is missing"),
    ("EndTime=17:00:00\n", "EndTime='17:00:00' is set but StartTime is missing"),
    ("StartDay=Mon\n", "StartDay='Mon' is set but EndDay is missing"),
    ("EndDay=Fri\n", "EndDay='Fri' is set but StartDay is missing"),
    ("StartDay=Mon\nEndDay=Fri\n", "StartDay='Mon' needs StartTime and EndTime"),
]


@pytest.mark.parametrize("extra, expected", COMBINATIONS)
def test_incompatible_settings(tmp_path: Path, extra: str, expected: str) -> None:
    (tmp_path / "FIX44.xml").write_text("<fix/>", encoding="utf-8")
    text = BASE + extra
    if "BeginString=FIXT.1.1" in extra:
        text = text.replace("BeginString=FIX.4.4\n", "# FIX.4.4 replaced below\n")
    error = load_error(tmp_path, text)
    assert expected in str(error)
    assert str(error).startswith(f"{tmp_path / 'sessions.cfg'}:")


def test_fixt_without_default_appl_ver_id(tmp_path: Path) -> None:
    error = load_error(tmp_path, BASE.replace("FIX.4.4", "FIXT.1.1"))
    assert f"sessions.cfg:{SESSION_LINE}: [SESSION] with BeginString=FIXT.1.1 is missing" in str(
        error
    )
    assert "DefaultApplVerID" in str(error)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.cfg"
    with pytest.raises(SettingsError) as info:
        load_session_settings(path)
    assert str(info.value).startswith(f"{path}: cannot read the session settings file")


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.cfg"
    path.write_bytes(BASE.encode() + b"# caf\xe9\n")
    with pytest.raises(SettingsError, match="not UTF-8 text"):
        load_session_settings(path)


def test_settings_error_hierarchy() -> None:
    assert issubclass(SettingsError, ConfigError)
    assert issubclass(ConfigError, FixError)
    assert issubclass(ConfigError, ValueError)


# Built-in default.


def test_default_sessions() -> None:
    sessions = default_session_settings()
    assert [settings.session_id for settings in sessions] == [
        "FIX.4.4:FIXGW->BRK1",
        "FIX.4.4:FIXGW->BRK2",
        "FIX.4.4:FIXGW->BRK3",
        "FIX.4.4:FIXGW->BRK4",
    ]
    assert {settings.socket_accept_port for settings in sessions} == {0}
    assert all(settings.heartbeat_interval_s == 30 for settings in sessions)
    assert all(settings.reset_on_logon is False for settings in sessions)
    assert all(settings.socket_accept_host == "127.0.0.1" for settings in sessions)


def test_default_sessions_port_and_brokers() -> None:
    sessions = default_session_settings(port=9876, brokers=["ACME"])
    assert [settings.session_id for settings in sessions] == ["FIX.4.4:FIXGW->ACME"]
    assert sessions[0].socket_accept_port == 9876


@pytest.mark.parametrize(
    "port, brokers, expected",
    [
        (-1, ("BRK1",), "port must be from 0 to 65535"),
        (65536, ("BRK1",), "port must be from 0 to 65535"),
        (0, (), "at least one broker"),
        (0, ("BRK 1",), "'BRK 1' is invalid"),
        (0, ("BRK1", "BRK1"), "contains a CompID twice"),
    ],
)
def test_default_sessions_invalid(port: int, brokers: tuple[str, ...], expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        default_session_settings(port=port, brokers=brokers)


def test_settings_frozen() -> None:
    (settings,) = default_session_settings(brokers=["BRK1"])
    with pytest.raises(AttributeError):
        settings.heartbeat_interval_s = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("start", "end", "days", "now", "expected"),
    [
        ("13:00:00", "21:00:00", None, "2026-12-04 12:59:59", False),
        ("13:00:00", "21:00:00", None, "2026-12-04 13:00:00", True),
        ("13:00:00", "21:00:00", None, "2026-12-04 21:00:01", False),
        ("22:00:00", "06:00:00", None, "2026-12-04 23:30:00", True),
        ("22:00:00", "06:00:00", None, "2026-12-04 12:00:00", False),
        ("00:00:00", "00:00:00", None, "2026-12-04 12:00:00", True),
        # Weekly: Sunday 22:00 to Friday 21:00 (Monday is day 0).
        ("22:00:00", "21:00:00", (6, 4), "2026-12-05 12:00:00", False),
        ("22:00:00", "21:00:00", (6, 4), "2026-12-02 03:00:00", True),
        ("22:00:00", "21:00:00", (6, 4), "2026-12-06 22:30:00", True),
    ],
)
def test_session_time_window(start, end, days, now, expected) -> None:
    text = SESSION_TIME_TEMPLATE.format(start=start, end=end)
    if days is not None:
        text += f"StartDay={DAY_NAMES[days[0]]}\nEndDay={DAY_NAMES[days[1]]}\n"
    (settings,) = parse_session_settings(text)
    moment = datetime.datetime.fromisoformat(now).replace(tzinfo=datetime.timezone.utc)
    assert settings.is_session_time(moment) is expected


SESSION_TIME_TEMPLATE = """[SESSION]
ConnectionType=acceptor
BeginString=FIX.4.4
SenderCompID=FIXGW
TargetCompID=BRK1
SocketAcceptPort=9000
StartTime={start}
EndTime={end}
"""
DAY_NAMES = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
