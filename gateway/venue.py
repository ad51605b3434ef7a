"""Venue settings in TOML: the venue, its instruments, risk limits and surveillance thresholds.

::

    [venue]
    name = "fixgw"
    audit_db = "fixgw-audit.sqlite"     # relative to this file's folder

    [risk]                              # defaults for instruments that do not set them
    max_order_qty = 1_000_000
    max_notional = 50_000_000           # currency units
    collar_pct = 10                     # percent of the reference price, each side

    [[instruments]]
    symbol = "AAPL"
    tick_size = "0.01"                  # a decimal string or a number
    lot_size = 1
    reference_price = "223.82"          # optional: without it the collar follows trades

    [surveillance]
    wash_trade_alert = true

Prices are converted to engine price units with ``decimal.Decimal``, never through a binary
float, because TOML floats are read as ``Decimal``. Unknown keys are rejected. Every error
is a :class:`~gateway.errors.ConfigError` naming the file, the key path (such as
``instruments[2].tick_size``, counting from 0), the value and what is allowed.
"""

from __future__ import annotations

import datetime

import difflib
import json
import os
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

from engine.orders import PRICE_DECIMALS, PRICE_SCALE
from gateway.errors import ConfigError
from engine.instrument import Firm
from engine.orders import SelfMatchPrevention
from surveillance.risk import DEFAULT_COLLAR_PCT, DEFAULT_LOT_SIZE, InstrumentConfig

__all__ = [
    "DEFAULT_AUDIT_DB",
    "DEFAULT_MAX_NOTIONAL",
    "DEFAULT_MAX_ORDER_QTY",
    "DEFAULT_PRICE_MOVE_ALERT_PCT",
    "DEFAULT_SYMBOLS",
    "DEFAULT_TICK_SIZE",
    "DEFAULT_VENUE_NAME",
    "DEFAULT_WASH_TRADE_ALERT",
    "SurveillanceConfig",
    "VenueConfig",
    "default_venue_config",
    "load_venue_config",
    "parse_venue_config",
]

DEFAULT_VENUE_NAME = "fixgw"
DEFAULT_AUDIT_DB = "fixgw-audit.sqlite"
DEFAULT_SYMBOLS = ("AAPL", "AMZN", "MSFT", "GOOG", "IBM")
DEFAULT_TICK_SIZE = Decimal("0.01")
DEFAULT_MAX_ORDER_QTY = 1_000_000
DEFAULT_MAX_NOTIONAL = 50_000_000  # currency units
DEFAULT_WASH_TRADE_ALERT = True
DEFAULT_PRICE_MOVE_ALERT_PCT = Decimal(5)

_SYMBOL = re.compile(r"[!-~](?:[ -~]*[!-~])?")

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class SurveillanceConfig:
    """Thresholds of the post-trade surveillance monitors.

    ``wash_trade_alert`` raises an alert when both sides of a trade belong to one session.
    ``price_move_alert_pct`` is the move from the previous trade in the same instrument,
    in percent, above which a trade raises an alert.
    """

    wash_trade_alert: bool = DEFAULT_WASH_TRADE_ALERT
    price_move_alert_pct: Decimal = DEFAULT_PRICE_MOVE_ALERT_PCT


@dataclass(frozen=True, slots=True)
class VenueConfig:
    """The venue's name, audit trail file, instruments and surveillance thresholds."""

    name: str
    audit_db: Path
    instruments: tuple[InstrumentConfig, ...]
    surveillance: SurveillanceConfig = field(default_factory=SurveillanceConfig)
    # Broker firms for self-match prevention; a session in no firm is never checked.
    firms: tuple[Firm, ...] = ()
    # UTC time at which the trading day ends and Day orders expire; None never ends it.
    end_of_day: datetime.time | None = None


def default_venue_config(audit_db: str | os.PathLike[str] = DEFAULT_AUDIT_DB) -> VenueConfig:
    """Return the built-in venue: five US equities with a 0.01 tick and default limits.

    The instruments have no reference price, so each collar follows the last trade and
    there is no collar before the first trade. ``audit_db`` is used as given, so a
    relative path is relative to the working directory.
    """
    instruments = tuple(
        InstrumentConfig(
            symbol=symbol,
            tick_size=_price_units(DEFAULT_TICK_SIZE),
            max_order_qty=DEFAULT_MAX_ORDER_QTY,
            max_notional=DEFAULT_MAX_NOTIONAL * PRICE_SCALE,
            lot_size=DEFAULT_LOT_SIZE,
            collar_pct=DEFAULT_COLLAR_PCT,
        )
        for symbol in DEFAULT_SYMBOLS
    )
    return VenueConfig(name=DEFAULT_VENUE_NAME, audit_db=Path(audit_db), instruments=instruments)


def load_venue_config(path: str | os.PathLike[str]) -> VenueConfig:
    """Read a venue TOML file; relative paths in it resolve against the file's folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the venue configuration: {exc.strerror or exc}"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the venue configuration is not UTF-8 text: {exc}") from exc
    return parse_venue_config(text, source=str(path), base_dir=path.parent)


def parse_venue_config(
    text: str, *, source: str = "<string>", base_dir: Path | None = None
) -> VenueConfig:
    """Parse venue TOML text.

    ``source`` names the text in error messages. Relative paths resolve against
    ``base_dir``, which defaults to the current working directory.
    """
    base_dir = base_dir if base_dir is not None else Path.cwd()
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from exc

    root = _Table(data, "", source, ("venue", "instruments", "risk", "surveillance", "firms"))
    venue = root.table("venue", ("name", "audit_db", "end_of_day"))
    risk = root.table("risk", ("max_order_qty", "max_notional", "collar_pct"))
    defaults = _InstrumentDefaults(
        max_order_qty=risk.get("max_order_qty", _positive_int, DEFAULT_MAX_ORDER_QTY),
        max_notional=risk.get("max_notional", _price_units, DEFAULT_MAX_NOTIONAL * PRICE_SCALE),
        collar_pct=risk.get("collar_pct", _collar_pct, DEFAULT_COLLAR_PCT),
    )
    return VenueConfig(
        name=venue.get("name", _symbol_or_name, DEFAULT_VENUE_NAME),
        audit_db=(base_dir / venue.get("audit_db", _path_text, DEFAULT_AUDIT_DB)).resolve(),
        end_of_day=venue.get("end_of_day", _time_of_day, None),
        instruments=_read_instruments(root, defaults),
        surveillance=_read_surveillance(root.table("surveillance", _SURVEILLANCE_KEYS)),
        firms=_read_firms(root),
    )


@dataclass(frozen=True, slots=True)
class _InstrumentDefaults:
    """The [risk] table: limits for instruments that do not set their own."""

    max_order_qty: int
    max_notional: int
    collar_pct: Decimal


_INSTRUMENT_KEYS = (
    "symbol",
    "tick_size",
    "lot_size",
    "reference_price",
    "collar_pct",
    "max_order_qty",
    "max_notional",
)
_SURVEILLANCE_KEYS = ("wash_trade_alert", "price_move_alert_pct")
_FIRM_KEYS = ("name", "sessions", "self_match_prevention")


def _read_instruments(root: _Table, defaults: _InstrumentDefaults) -> tuple[InstrumentConfig, ...]:
    tables = root.array_of_tables("instruments", _INSTRUMENT_KEYS)
    if not tables:
        raise ConfigError(
            f"{root.source}: no instruments: add a [[instruments]] table with symbol and "
            "tick_size for each instrument"
        )
    instruments: list[InstrumentConfig] = []
    first_index: dict[str, int] = {}
    for index, table in enumerate(tables):
        instrument = _read_instrument(table, defaults)
        first = first_index.setdefault(instrument.symbol, index)
        if first != index:
            raise table.error(
                "symbol",
                f"instruments[{first}] already has this symbol, and each symbol takes one "
                "[[instruments]] table",
            )
        instruments.append(instrument)
    return tuple(instruments)


def _read_instrument(table: _Table, defaults: _InstrumentDefaults) -> InstrumentConfig:
    symbol = table.get("symbol", _symbol_or_name)
    tick_size = table.get("tick_size", _price_units)
    lot_size = table.get("lot_size", _positive_int, DEFAULT_LOT_SIZE)
    max_order_qty = table.get("max_order_qty", _positive_int, defaults.max_order_qty)
    reference_price = table.get("reference_price", _price_units, None)

    # Each value is valid alone, but together they would reject every order.
    if max_order_qty < lot_size:
        if "max_order_qty" in table.data:
            raise table.error(
                "max_order_qty",
                f"expected at least lot_size {lot_size}. Raise max_order_qty or lower "
                "lot_size, because no order could pass otherwise",
            )
        raise ConfigError(
            f"{table.source}: {table.path}.lot_size = {lot_size} is above risk.max_order_qty "
            f"= {max_order_qty}, which {symbol} inherits. Set max_order_qty for {symbol} or "
            "lower lot_size, because no order could pass otherwise"
        )
    if reference_price is not None and reference_price % tick_size:
        raise table.error(
            "reference_price",
            f"expected a multiple of tick_size {_show(table.data['tick_size'])}",
        )

    return InstrumentConfig(
        symbol=symbol,
        tick_size=tick_size,
        max_order_qty=max_order_qty,
        max_notional=table.get("max_notional", _price_units, defaults.max_notional),
        lot_size=lot_size,
        collar_pct=table.get("collar_pct", _collar_pct, defaults.collar_pct),
        reference_price=reference_price,
    )


def _read_firms(root: _Table) -> tuple[Firm, ...]:
    """Read [[firms]]: broker firms, the session IDs they trade through and their
    self-match prevention."""
    firms: list[Firm] = []
    owner: dict[str, str] = {}
    for table in root.array_of_tables("firms", _FIRM_KEYS):
        name = table.get("name", _symbol_or_name)
        session_ids = table.get("sessions", _session_ids)
        for session_id in session_ids:
            if session_id in owner:
                raise table.error(
                    "sessions",
                    f"session {session_id!r} already belongs to firm {owner[session_id]!r}; "
                    "list each session in one firm",
                )
            owner[session_id] = name
        prevention = table.get(
            "self_match_prevention", _self_match_prevention, SelfMatchPrevention.CANCEL_RESTING
        )
        firms.append(Firm(name=name, session_ids=session_ids, self_match_prevention=prevention))
    return tuple(firms)


def _session_ids(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _InvalidValue(
            'expected a non-empty list of FIX session IDs, such as ["FIX.4.4:FIXGW->BRK1"]'
        )
    return tuple(value)


def _self_match_prevention(value: Any) -> SelfMatchPrevention:
    choices = ", ".join(repr(m.value.lower()) for m in SelfMatchPrevention)
    if not isinstance(value, str):
        raise _InvalidValue(f"expected one of {choices}")
    try:
        return SelfMatchPrevention(value.upper())
    except ValueError:
        raise _InvalidValue(f"expected one of {choices}") from None


def _read_surveillance(table: _Table) -> SurveillanceConfig:
    return SurveillanceConfig(
        wash_trade_alert=table.get("wash_trade_alert", _bool, DEFAULT_WASH_TRADE_ALERT),
        price_move_alert_pct=table.get(
            "price_move_alert_pct", _percent, DEFAULT_PRICE_MOVE_ALERT_PCT
        ),
    )


# Reading TOML tables with key paths for error messages.

_REQUIRED: Any = object()


class _InvalidValue(Exception):
    """A value is invalid. The message states what is expected."""


class _Table:
    """A TOML table with its key path; rejects keys outside ``keys`` when created."""

    def __init__(self, data: dict[str, Any], path: str, source: str, keys: Iterable[str]) -> None:
        self.data = data
        self.path = path
        self.source = source
        self.keys = tuple(keys)
        for key, value in data.items():
            if key not in self.keys:
                raise ConfigError(
                    f"{source}: {self._key_path(key)} = {_show(value)} is not a supported key"
                    f"{_suggest(key, self.keys)}; supported keys here are {', '.join(self.keys)}"
                )

    def get(self, key: str, convert: Callable[[Any], _T], default: _T = _REQUIRED) -> _T:
        """Return the converted value of ``key``, or ``default`` when the key is absent."""
        if key not in self.data:
            if default is _REQUIRED:
                raise ConfigError(f"{self.source}: {self._key_path(key)} is missing: add it")
            return default
        try:
            return convert(self.data[key])
        except _InvalidValue as exc:
            raise self.error(key, str(exc)) from None

    def table(self, key: str, keys: Iterable[str]) -> _Table:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise self.error(key, f"expected a table: write [{key}] on a line of its own")
        return _Table(value, self._key_path(key), self.source, keys)

    def array_of_tables(self, key: str, keys: Iterable[str]) -> list[_Table]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.error(key, f"expected an array of tables: write [[{key}]] before each one")
        return [
            _Table(item, f"{self._key_path(key)}[{index}]", self.source, keys)
            for index, item in enumerate(value)
        ]

    def error(self, key: str, expected: str) -> ConfigError:
        """Build the error for an invalid ``key``, naming its path and value."""
        value = _show(self.data[key]) if key in self.data else "(missing)"
        return ConfigError(f"{self.source}: {self._key_path(key)} = {value} is invalid: {expected}")

    def _key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key


def _show(value: Any) -> str:
    """Format a TOML value as it would be written in the file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


def _suggest(key: str, keys: tuple[str, ...]) -> str:
    matches = difflib.get_close_matches(key, keys, n=1)
    return f" (did you mean {matches[0]}?)" if matches else ""


# Value converters. Each returns the typed value or raises _InvalidValue.


def _symbol_or_name(value: Any) -> str:
    if not isinstance(value, str) or not _SYMBOL.fullmatch(value):
        raise _InvalidValue(
            "expected a non-empty string of printable ASCII without leading or trailing spaces"
        )
    return value


def _time_of_day(value: Any) -> datetime.time:
    # TOML has a local-time type (21:00:00 unquoted); a quoted "21:00:00" works too.
    if isinstance(value, datetime.time):
        return value
    if isinstance(value, str):
        try:
            return datetime.time.fromisoformat(value)
        except ValueError:
            pass
    raise _InvalidValue("expected a UTC time of day such as \"21:00:00\"")


def _path_text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _InvalidValue('expected a file path as a string, such as "fixgw-audit.sqlite"')
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _InvalidValue("expected true or false")
    return value


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _InvalidValue("expected a whole number above 0, such as 1000")
    return value


def _decimal(value: Any) -> Decimal | None:
    """Return the value as a finite Decimal, or None when it is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, Decimal)):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    return number if number.is_finite() else None


def _price_units(value: Any) -> int:
    number = _decimal(value)
    if number is None or number <= 0:
        raise _InvalidValue('expected a decimal number above 0, such as "0.01" or 100')
    # Scaling a Decimal is exact, unlike a float: 0.29 * 10**8 is 29_000_000 here but
    # 28_999_999.999999996 in binary floating point.
    scaled = number.scaleb(PRICE_DECIMALS)
    if scaled != scaled.to_integral_value():
        raise _InvalidValue(f"expected at most {PRICE_DECIMALS} decimal places")
    return int(scaled)


def _collar_pct(value: Any) -> Decimal:
    number = _decimal(value)
    if number is None or not Decimal(0) < number <= Decimal(100):
        raise _InvalidValue("expected a percentage above 0 and at most 100, such as 10")
    return number


def _percent(value: Any) -> Decimal:
    number = _decimal(value)
    if number is None or number <= 0:
        raise _InvalidValue("expected a percentage above 0, such as 5")
    return number

