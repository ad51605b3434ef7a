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

    Values are recorded as text in engine units (prices in integer price units), None
    when a setting is unset.
    """
    recorded = audit.load_settings()
    changes = 0
    for config in instruments:
        for field in dataclasses.fields(config):
            if field.name == "symbol":
                continue
            value = getattr(config, field.name)
            new_value = None if value is None else str(value)
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
