"""Venue TOML: instruments, risk defaults, surveillance thresholds and rejected input."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from engine.commands import NewOrder
from engine.orders import PRICE_SCALE, OrdType, Side
from gateway.errors import ConfigError
from gateway.venue import (
    DEFAULT_MAX_NOTIONAL,
    DEFAULT_MAX_ORDER_QTY,
    SurveillanceConfig,
    default_venue_config,
    load_venue_config,
    parse_venue_config,
)
from surveillance.risk import InstrumentConfig, RiskGate

REPO = Path(__file__).resolve().parents[2]
CENT = PRICE_SCALE // 100

BASE = """\
[venue]
name = "test-venue"

[[instruments]]
symbol = "AAPL"
tick_size = "0.01"

[[instruments]]
symbol = "AMZN"
tick_size = "0.01"
"""


def write_toml(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "venue.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> str:
    path = write_toml(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_venue_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    return message


# Loading.


def test_example_config_loads() -> None:
    config = load_venue_config(REPO / "config" / "venue.toml")
    symbols = [instrument.symbol for instrument in config.instruments]
    assert symbols == ["AMZN", "AAPL", "MSFT", "GOOG", "IBM"]
    amzn = config.instruments[0]
    assert amzn.reference_price == 22_382 * CENT
    assert config.audit_db == (REPO / "var" / "fixgw-audit.sqlite").resolve()
    assert config.surveillance.wash_trade_alert is True


def test_instrument_values() -> None:
    text = BASE + (
        'lot_size = 10\nreference_price = "223.82"\ncollar_pct = "2.5"\n'
        'max_order_qty = 5000\nmax_notional = "1000000.50"\n'
    )
    config = parse_venue_config(text)
    amzn = config.instruments[1]
    assert amzn == InstrumentConfig(
        symbol="AMZN",
        tick_size=CENT,
        max_order_qty=5000,
        max_notional=100_000_050 * CENT,
        lot_size=10,
        collar_pct=Decimal("2.5"),
        reference_price=22_382 * CENT,
    )


def test_built_in_limits_without_risk_table() -> None:
    aapl = parse_venue_config(BASE).instruments[0]
    assert aapl.max_order_qty == DEFAULT_MAX_ORDER_QTY == 1_000_000
    assert aapl.max_notional == DEFAULT_MAX_NOTIONAL * PRICE_SCALE
    assert aapl.collar_pct == Decimal(10)
    assert aapl.lot_size == 1
    assert aapl.reference_price is None


def test_risk_table_applies_to_instruments_lacking_limits() -> None:
    text = BASE + "max_order_qty = 7\n\n[risk]\nmax_order_qty = 100\nmax_notional = 2_000\n"
    text += "collar_pct = 3\n"
    aapl, amzn = parse_venue_config(text).instruments
    assert (aapl.max_order_qty, amzn.max_order_qty) == (100, 7)
    assert aapl.max_notional == amzn.max_notional == 2_000 * PRICE_SCALE
    assert aapl.collar_pct == amzn.collar_pct == Decimal(3)


@pytest.mark.parametrize(
    "written, units",
    [
        ('"0.01"', CENT),
        ("0.01", CENT),
        ('"0.0001"', PRICE_SCALE // 10_000),
        ("1", PRICE_SCALE),
        ('"0.29"', 29_000_000),
        ("0.29", 29_000_000),
        ('"0.00000001"', 1),
        ('"5E-2"', 5 * CENT),
    ],
)
def test_decimal_price_conversion(written: str, units: int) -> None:
    text = BASE.replace('tick_size = "0.01"\n\n', f"tick_size = {written}\n\n", 1)
    assert parse_venue_config(text).instruments[0].tick_size == units


def test_name_and_audit_db_defaults(tmp_path: Path) -> None:
    config = load_venue_config(write_toml(tmp_path, BASE.replace('name = "test-venue"\n', "")))
    assert config.name == "fixgw"
    assert config.audit_db == (tmp_path / "fixgw-audit.sqlite").resolve()


def test_audit_db_resolves_against_file_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = BASE.replace("[venue]\n", '[venue]\naudit_db = "data/audit.sqlite"\n')
    write_toml(tmp_path / "etc", text)
    monkeypatch.chdir(tmp_path)
    config = load_venue_config("etc/venue.toml")
    assert config.audit_db == (tmp_path / "etc" / "data" / "audit.sqlite").resolve()


def test_absolute_audit_db_kept(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "audit.sqlite"
    text = BASE.replace("[venue]\n", f'[venue]\naudit_db = "{target}"\n')
    assert load_venue_config(write_toml(tmp_path / "etc", text)).audit_db == target.resolve()


def test_surveillance_values() -> None:
    text = BASE + "\n[surveillance]\nwash_trade_alert = false\nprice_move_alert_pct = 2.5\n"
    assert parse_venue_config(text).surveillance == SurveillanceConfig(
        wash_trade_alert=False, price_move_alert_pct=Decimal("2.5")
    )


def test_surveillance_defaults() -> None:
    assert parse_venue_config(BASE).surveillance == SurveillanceConfig()
    assert SurveillanceConfig().wash_trade_alert is True


# Built-in default.


def test_default_config() -> None:
    config = default_venue_config("audit.sqlite")
    assert [instrument.symbol for instrument in config.instruments] == [
        "AAPL",
        "AMZN",
        "MSFT",
        "GOOG",
        "IBM",
    ]
    assert config.audit_db == Path("audit.sqlite")
    for instrument in config.instruments:
        assert instrument.tick_size == CENT
        assert instrument.lot_size == 1
        assert instrument.max_order_qty == 1_000_000
        assert instrument.max_notional == 50_000_000 * PRICE_SCALE
        assert instrument.collar_pct == Decimal(10)
        assert instrument.reference_price is None


def test_default_config_feeds_risk_gate() -> None:
    gate = RiskGate(default_venue_config().instruments)
    order = NewOrder("FIX.4.4:FIXGW->BRK1", "1", "IBM", Side.BUY, OrdType.LIMIT, 100, 150 * CENT)
    assert gate.check(order).accepted
    assert gate.reference_price("IBM") is None


# Rejected input: the message names the file, the key path, the value and what is allowed.

INVALID = [
    ('tick_size = "abc"', "instruments[1].tick_size = \"abc\"", "decimal number above 0"),
    ("tick_size = 0", "instruments[1].tick_size = 0", "decimal number above 0"),
    ("tick_size = -0.01", "instruments[1].tick_size = -0.01", "decimal number above 0"),
    ('tick_size = "NaN"', 'instruments[1].tick_size = "NaN"', "decimal number above 0"),
    ('tick_size = "inf"', 'instruments[1].tick_size = "inf"', "decimal number above 0"),
    ("tick_size = true", "instruments[1].tick_size = true", "decimal number above 0"),
    ('tick_size = "0.000000001"', 'tick_size = "0.000000001"', "at most 8 decimal places"),
    ("lot_size = 0", "instruments[1].lot_size = 0", "whole number above 0"),
    ("lot_size = 1.5", "instruments[1].lot_size = 1.5", "whole number above 0"),
    ('lot_size = "1"', 'instruments[1].lot_size = "1"', "whole number above 0"),
    ("max_order_qty = -1", "instruments[1].max_order_qty = -1", "whole number above 0"),
    ("max_notional = 0", "instruments[1].max_notional = 0", "decimal number above 0"),
    ("collar_pct = 0", "instruments[1].collar_pct = 0", "above 0 and at most 100"),
    ("collar_pct = 150", "instruments[1].collar_pct = 150", "above 0 and at most 100"),
    ('reference_price = "x"', 'instruments[1].reference_price = "x"', "decimal number"),
    ("reference_price = [1]", "instruments[1].reference_price = an array", "decimal number"),
]


@pytest.mark.parametrize("line, named, expected", INVALID)
def test_invalid_instrument_value(tmp_path: Path, line: str, named: str, expected: str) -> None:
    # AMZN, the last instrument, sets tick_size already, and TOML rejects a key set twice.
    text = BASE.removesuffix('tick_size = "0.01"\n') if line.startswith("tick_size") else BASE
    message = load_error(tmp_path, text + line + "\n")
    assert named in message
    assert "is invalid: expected" in message
    assert expected in message


@pytest.mark.parametrize(
    "table, line, named, expected",
    [
        ("venue", 'audit_db = 3', "venue.audit_db = 3", "file path as a string"),
        ("venue", 'audit_db = ""', 'venue.audit_db = ""', "file path as a string"),
        ("risk", 'collar_pct = "abc"', 'risk.collar_pct = "abc"', "percentage above 0"),
        ("risk", "max_order_qty = 0", "risk.max_order_qty = 0", "whole number above 0"),
        ("risk", "max_notional = -5", "risk.max_notional = -5", "decimal number above 0"),
        ("surveillance", 'wash_trade_alert = "yes"', 'wash_trade_alert = "yes"', "true or false"),
        ("surveillance", "price_move_alert_pct = 0", "price_move_alert_pct = 0", "above 0"),
    ],
)
def test_invalid_table_value(
    tmp_path: Path, table: str, line: str, named: str, expected: str
) -> None:
    if table == "venue":
        text = BASE.replace("[venue]\n", f"[venue]\n{line}\n")
    else:
        text = BASE + f"\n[{table}]\n{line}\n"
    message = load_error(tmp_path, text)
    assert named in message
    assert expected in message


@pytest.mark.parametrize(
    "text, named",
    [
        (BASE.replace('"test-venue"', '""'), 'venue.name = ""'),
        (BASE.replace('"AAPL"', '""'), 'instruments[0].symbol = ""'),
        (BASE.replace('"AAPL"', "5"), "instruments[0].symbol = 5"),
        (BASE.replace('"AAPL"', '" AAPL"'), 'instruments[0].symbol = " AAPL"'),
    ],
)
def test_invalid_name(tmp_path: Path, text: str, named: str) -> None:
    message = load_error(tmp_path, text)
    assert named in message
    assert "non-empty string of printable ASCII" in message


UNKNOWN_KEYS = [
    (BASE + 'tick = "0.01"\n', 'instruments[1].tick = "0.01"', "did you mean tick_size?"),
    (BASE + "maxorderqty = 5\n", "instruments[1].maxorderqty = 5", "did you mean max_order_qty?"),
    (
        BASE.replace("[venue]\n", "[venue]\nport = 1\n"),
        "venue.port = 1",
        "supported keys here are name, audit_db",
    ),
    (BASE + "\n[market]\nopen = true\n", "market = a table", "supported keys here are venue"),
    (BASE + "\n[risk]\nlot_size = 100\n", "risk.lot_size = 100", "max_order_qty, max_notional"),
    (
        BASE + "\n[surveillance]\nspoofing = true\n",
        "surveillance.spoofing = true",
        "wash_trade_alert",
    ),
]


@pytest.mark.parametrize("text, named, suggestion", UNKNOWN_KEYS)
def test_unknown_key(tmp_path: Path, text: str, named: str, suggestion: str) -> None:
    message = load_error(tmp_path, text)
    assert f"{named} is not a supported key" in message
    assert suggestion in message


@pytest.mark.parametrize("key", ["symbol", "tick_size"])
def test_missing_instrument_key(tmp_path: Path, key: str) -> None:
    text = "\n".join(line for line in BASE.splitlines() if not line.startswith(key)) + "\n"
    message = load_error(tmp_path, text)
    assert f"instruments[0].{key} is missing" in message


def test_duplicate_symbol(tmp_path: Path) -> None:
    message = load_error(tmp_path, BASE.replace('"AMZN"', '"AAPL"'))
    assert 'instruments[1].symbol = "AAPL" is invalid' in message
    assert "instruments[0] already has this symbol" in message


def test_max_order_qty_below_lot_size(tmp_path: Path) -> None:
    message = load_error(tmp_path, BASE + "lot_size = 100\nmax_order_qty = 50\n")
    assert "instruments[1].max_order_qty = 50 is invalid: expected at least lot_size 100" in message


def test_risk_max_order_qty_below_lot_size(tmp_path: Path) -> None:
    message = load_error(tmp_path, BASE + "lot_size = 100\n\n[risk]\nmax_order_qty = 50\n")
    assert "instruments[1].lot_size = 100 is above risk.max_order_qty = 50" in message
    assert "Set max_order_qty for AMZN" in message


def test_reference_price_off_tick(tmp_path: Path) -> None:
    message = load_error(tmp_path, BASE + 'reference_price = "223.825"\n')
    assert 'instruments[1].reference_price = "223.825" is invalid' in message
    assert 'expected a multiple of tick_size "0.01"' in message


def test_instruments_not_array(tmp_path: Path) -> None:
    text = '[instruments]\nsymbol = "AAPL"\ntick_size = "0.01"\n'
    message = load_error(tmp_path, text)
    assert "instruments = a table is invalid: expected an array of tables" in message
    assert "[[instruments]]" in message


def test_no_instruments(tmp_path: Path) -> None:
    message = load_error(tmp_path, '[venue]\nname = "empty"\n')
    assert "no instruments" in message


def test_venue_not_table(tmp_path: Path) -> None:
    message = load_error(tmp_path, 'venue = "x"\n' + BASE.split("\n\n", 1)[1])
    assert 'venue = "x" is invalid: expected a table' in message


def test_invalid_toml(tmp_path: Path) -> None:
    message = load_error(tmp_path, BASE + "tick_size = = 1\n")
    assert "invalid TOML" in message
    assert "line 11" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load_venue_config(path)
    assert str(info.value).startswith(f"{path}: cannot read the venue configuration")


def test_parse_source_name() -> None:
    with pytest.raises(ConfigError) as info:
        parse_venue_config(BASE + "lot_size = 0\n", source="venue.toml")
    assert str(info.value) == (
        "venue.toml: instruments[1].lot_size = 0 is invalid: expected a whole number above 0, "
        "such as 1000"
    )


def test_firms_read_with_self_match_prevention(tmp_path) -> None:
    text = MINIMAL_FIRMS_TOML + """
[[firms]]
name = "Alpha"
sessions = ["FIX.4.4:FIXGW->BRK1", "FIX.4.4:FIXGW->BRK2"]
self_match_prevention = "cancel_both"
"""
    config = parse_venue_config(text, source="venue.toml", base_dir=tmp_path)
    (firm,) = config.firms
    assert firm.name == "Alpha"
    assert firm.session_ids == ("FIX.4.4:FIXGW->BRK1", "FIX.4.4:FIXGW->BRK2")
    assert firm.self_match_prevention.value == "CANCEL_BOTH"


@pytest.mark.parametrize(
    ("firms", "message"),
    [
        ('name = "A"\nsessions = []', "non-empty list of FIX session IDs"),
        ('name = "A"\nsessions = ["S1"]\nself_match_prevention = "cancel_all"', "cancel_resting"),
        ('name = "A"\nsessions = ["S1"]\n[[firms]]\nname = "B"\nsessions = ["S1"]', "already belongs to firm 'A'"),
    ],
)
def test_firms_invalid_rejected(tmp_path, firms: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_venue_config(MINIMAL_FIRMS_TOML + "[[firms]]\n" + firms, source="venue.toml", base_dir=tmp_path)


MINIMAL_FIRMS_TOML = """
[[instruments]]
symbol = "AAPL"
tick_size = "0.01"
"""
