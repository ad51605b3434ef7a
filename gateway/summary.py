"""The summary a demo or replay run prints: what was sent, what the venue did, how fast.

Counts of fills, rejects and alerts come from the appliance; orders sent, throughput and
latency are measured on the broker side. Order-to-ack latency is the time from writing a
NewOrderSingle (D) to reading the first ExecutionReport (8) for its ClOrdID (11), so it
includes both directions of the TCP loopback and the audit commit that releases the report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.lobster import EventType

__all__ = ["ReplayFigures", "RunSummary", "format_summary", "latency_percentiles_us"]


@dataclass(frozen=True, slots=True)
class ReplayFigures:
    """Agreement of a LOBSTER replay with the recorded book.

    ``bbo_compared`` counts order-book rows compared after their event. A row agrees when
    the best bid and best ask match in price and size on both sides, and an empty side
    matches an empty side. The ``_unreconciled`` pair counts only rows whose event needed no
    level reconciled, so there the book got to the row through FIX messages alone.
    ``executions`` counts visible executions (type 4) sent as marketable
    orders; one is reproduced when it traded exactly its size, all at the recorded price.
    ``reconciled_levels`` counts the levels seeded or adjusted from the order-book file
    because the message file does not show how they got there (see the replay module).
    ``unmatched_cancel_qty`` is the cancelled size that found no order at its level.
    """

    symbol: str
    events_by_type: Mapping[int, int]
    events_sent: int
    bbo_compared: int
    bbo_agreed: int
    bbo_compared_unreconciled: int
    bbo_agreed_unreconciled: int
    executions: int
    executions_reproduced: int
    order_rejects: int
    cancel_rejects: int
    reconciled_levels: int
    reconciled_qty: int
    unmatched_cancel_qty: int = 0

    @property
    def events(self) -> int:
        return sum(self.events_by_type.values())

    @property
    def bbo_agreement_pct(self) -> float:
        return _pct(self.bbo_agreed, self.bbo_compared)

    @property
    def bbo_agreement_unreconciled_pct(self) -> float:
        return _pct(self.bbo_agreed_unreconciled, self.bbo_compared_unreconciled)

    @property
    def executions_reproduced_pct(self) -> float:
        return _pct(self.executions_reproduced, self.executions)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Totals of one run.

    ``fills``, ``rejects_by_reason`` and ``alerts`` are the appliance's counts, and one fill
    is one trade between two orders. ``orders_sent`` counts NewOrderSingle (D) messages and
    ``messages_sent`` every request. ``duration_s`` covers the order flow only, without
    logon and logout. Latencies are in microseconds.
    """

    sessions: int
    orders_sent: int
    fills: int
    rejects_by_reason: Mapping[str, int]
    alerts: int
    duration_s: float
    latency_p50_us: float
    latency_p99_us: float
    audit_path: Path
    replay: ReplayFigures | None = None
    messages_sent: int = 0
    # The compiled extensions of an appliance that ran in this process, in words.
    extensions: str | None = None

    @property
    def throughput_orders_per_s(self) -> float:
        return self.orders_sent / self.duration_s if self.duration_s > 0 else 0.0


def latency_percentiles_us(latencies_ns: Iterable[int]) -> tuple[float, float]:
    """Return (p50, p99) of nanosecond latencies in microseconds, (0.0, 0.0) if empty."""
    values = np.fromiter(latencies_ns, dtype=np.int64)
    if values.size == 0:
        return 0.0, 0.0
    p50, p99 = np.percentile(values, [50, 99])
    return float(p50) / 1000, float(p99) / 1000


def format_summary(summary: RunSummary) -> str:
    """Return the summary as an aligned block of ``label  value`` lines."""
    rows: list[tuple[str, str]] = [
        ("sessions", str(summary.sessions)),
        ("orders sent", f"{summary.orders_sent:,}"),
        ("messages sent", f"{summary.messages_sent:,}"),
        ("fills", f"{summary.fills:,}"),
        ("rejects", _format_counts(summary.rejects_by_reason)),
        ("alerts", f"{summary.alerts:,}"),
        ("duration", f"{summary.duration_s:.2f} s"),
        ("throughput", f"{summary.throughput_orders_per_s:,.0f} orders/s"),
        ("order-to-ack p50", f"{summary.latency_p50_us:,.0f} µs"),
        ("order-to-ack p99", f"{summary.latency_p99_us:,.0f} µs"),
    ]
    if summary.replay is not None:
        rows += _replay_rows(summary.replay)
    if summary.extensions is not None:
        rows.append(("extensions", summary.extensions))
    rows.append(("audit trail", str(summary.audit_path)))
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def _replay_rows(figures: ReplayFigures) -> list[tuple[str, str]]:
    by_type = ", ".join(
        f"{_EVENT_NAMES.get(kind, str(kind))} {count:,}"
        for kind, count in sorted(figures.events_by_type.items())
    )
    return [
        ("symbol", figures.symbol),
        ("events", f"{figures.events:,} ({by_type})"),
        ("events sent", f"{figures.events_sent:,}"),
        (
            "BBO agreement",
            f"{figures.bbo_agreed:,} of {figures.bbo_compared:,} rows "
            f"({figures.bbo_agreement_pct:.2f} %)",
        ),
        (
            "  without reconciling",
            f"{figures.bbo_agreed_unreconciled:,} of {figures.bbo_compared_unreconciled:,} rows "
            f"({figures.bbo_agreement_unreconciled_pct:.2f} %)",
        ),
        (
            "executions reproduced",
            f"{figures.executions_reproduced:,} of {figures.executions:,} "
            f"({figures.executions_reproduced_pct:.2f} %)",
        ),
        ("order rejects", f"{figures.order_rejects:,}"),
        ("cancel rejects", f"{figures.cancel_rejects:,}"),
        (
            "reconciled levels",
            f"{figures.reconciled_levels:,} ({figures.reconciled_qty:,} shares)",
        ),
        ("unmatched cancels", f"{figures.unmatched_cancel_qty:,} shares"),
    ]


_EVENT_NAMES: dict[int, str] = {
    EventType.NEW: "new",
    EventType.PARTIAL_CANCEL: "partial cancel",
    EventType.DELETE: "delete",
    EventType.EXECUTE_VISIBLE: "execute",
    EventType.EXECUTE_HIDDEN: "hidden execute",
    EventType.CROSS: "cross",
    EventType.HALT: "halt",
}


def _format_counts(counts: Mapping[str, int]) -> str:
    if not counts:
        return "0"
    total = sum(counts.values())
    parts = ", ".join(f"{reason} {count:,}" for reason, count in sorted(counts.items()))
    return f"{total:,} ({parts})"


def _pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0
