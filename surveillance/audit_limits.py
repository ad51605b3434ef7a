"""Record the venue's configured limits in the audit trail, so their history is queryable.

At each start the appliance compares every instrument's configured limits with the values
the audit trail last recorded and records a ``limit_changes`` row for each difference,
with the actor ``config``. An operator's change at run time is recorded the same way
through :meth:`surveillance.audit.AuditTrail.record_limit_change`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from surveillance.audit import AuditTrail
from surveillance.audit_queries import format_price
from surveillance.risk import InstrumentConfig

__all__ = ["CONFIG_ACTOR", "record_instrument_limits"]

CONFIG_ACTOR = "config"


def record_instrument_limits(
    audit: AuditTrail,
    instruments: Iterable[InstrumentConfig],
    *,
    reason: str = "venue configuration loaded at start",
) -> int:
    """Record each configured limit that differs from the last recorded value; return how many.

    Values are recorded as text a compliance officer reads directly: prices and notional
    in currency units (``0.01``, ``223.82``), quantities and percentages as configured,
    None when a setting is unset.
    """
    recorded = audit.load_settings()
    changes = 0
    for config in instruments:
        for field in dataclasses.fields(config):
            if field.name == "symbol":
                continue
            value = getattr(config, field.name)
            new_value = _format_setting(field.name, value)
            key = (config.symbol, field.name)
            if key in recorded and recorded[key] == new_value:
                continue
            if key not in recorded and new_value is None:
                continue
            audit.record_limit_change(
                actor=CONFIG_ACTOR, scope=config.symbol, setting=field.name,
                old_value=recorded.get(key), new_value=new_value, reason=reason,
            )
            changes += 1
    return changes


# InstrumentConfig fields held in integer price units (see engine.orders.PRICE_SCALE).
_PRICE_FIELDS = frozenset({"tick_size", "reference_price", "max_notional"})


def _format_setting(name: str, value: object) -> str | None:
    if value is None:
        return None
    if name in _PRICE_FIELDS and isinstance(value, int):
        return format_price(value)
    return str(value)
