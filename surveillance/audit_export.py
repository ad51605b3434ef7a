"""Export order events in the shape of the SEC Consolidated Audit Trail (CAT) order events.

Event types follow the CAT Reporting Technical Specifications for Industry Members:
MENO new order (the request as the venue received it), MEOA order accepted, MEOM order
modified, MEOC order cancelled (expired orders included) and MEOT trade (one per side).
Timestamps are ISO 8601 UTC with microseconds, above the millisecond CAT requires.

NOTE: the export carries the fields the audit trail holds. CAT's submitter and reporter IDs
(CAT Reporter IMID, firm designated ID, handling instructions) are not known to the venue
and are left out, so a file needs enriching before it is submitted.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator
from typing import IO, Any

from surveillance.audit_queries import format_price, format_ts_us, open_audit_db
from surveillance.audit_rows import event_fields
from surveillance.audit_reports import firm_of

__all__ = ["CAT_FIELDS", "cat_events", "write_cat_csv", "write_cat_json"]

CAT_FIELDS = (
    "type", "eventTimestamp", "firm", "session", "orderID", "clOrdID", "origClOrdID",
    "symbol", "side", "price", "quantity", "leavesQty", "orderType", "timeInForce",
    "tradeID", "fillQty", "fillPrice", "commandSeq",
)

_SIDES = {"1": "B", "2": "SL"}
_ORD_TYPES = {"1": "MKT", "2": "LMT", "3": "STP", "4": "STPLMT"}
_TIME_IN_FORCE = {"0": "DAY", "1": "GTC", "3": "IOC", "4": "FOK", "6": "GTD"}
_EXEC_TYPES = {"0": "MEOA", "5": "MEOM", "4": "MEOC", "C": "MEOC", "F": "MEOT"}


def cat_events(
    db_path: str | os.PathLike[str], *, day: str | None = None, firm: str | None = None
) -> list[dict[str, Any]]:
    """Return the CAT order events of one UTC day (``YYYY-MM-DD``) and/or firm, in time order.

    A rejected order has no CAT event, because CAT reports only orders that were accepted.
    """
    where, params = _filters(day)
    with open_audit_db(db_path) as db:
        news = list(db.query(
            f"SELECT seq, ts_us, session_id, body FROM commands WHERE type = 'NewOrder'{where}",
            params,
        ))
        executions = list(db.query(
            f"SELECT * FROM events WHERE kind = 'ExecutionEvent'{where}", params
        ))
    rows = [_new_order(row) for row in news]
    rows += [event for row in executions if (event := _execution(row)) is not None]
    if firm is not None:
        rows = [row for row in rows if row["firm"] == firm]
    rows.sort(key=lambda row: (row["eventTimestamp"], row["commandSeq"], row["type"] != "MENO"))
    return rows


def _filters(day: str | None) -> tuple[str, list[Any]]:
    if day is None:
        return "", []
    return " AND date(ts_us / 1000000, 'unixepoch') = ?", [day]


def _base(ts_us: int, session_id: str, seq: int) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(CAT_FIELDS)
    row.update(eventTimestamp=format_ts_us(ts_us), firm=firm_of(session_id), session=session_id,
               commandSeq=seq)
    return row


def _new_order(row: dict[str, Any]) -> dict[str, Any]:
    body = json.loads(row["body"])
    event = _base(row["ts_us"], row["session_id"], row["seq"])
    event.update(
        type="MENO", clOrdID=body["cl_ord_id"], symbol=body["symbol"],
        side=_SIDES.get(body["side"]), price=_price(body.get("price")),
        quantity=body["order_qty"], orderType=_ORD_TYPES.get(body["ord_type"]),
        timeInForce=_TIME_IN_FORCE.get(body["time_in_force"], body["time_in_force"]),
    )
    return event


def _execution(row: dict[str, Any]) -> dict[str, Any] | None:
    body = event_fields(row)
    event_type = _EXEC_TYPES.get(body["exec_type"])
    if event_type is None:
        return None
    event = _base(row["ts_us"], row["session_id"], row["command_seq"])
    event.update(
        type=event_type, orderID=body["order_id"], clOrdID=body["cl_ord_id"],
        origClOrdID=body.get("orig_cl_ord_id"), symbol=body["symbol"],
        side=_SIDES.get(body["side"]), price=_price(body.get("price")),
        quantity=body["order_qty"], leavesQty=body["leaves_qty"],
        orderType=_ORD_TYPES.get(body["ord_type"]),
        timeInForce=_TIME_IN_FORCE.get(body["time_in_force"], body["time_in_force"]),
    )
    if event_type == "MEOT":
        event.update(tradeID=body["trade_id"], fillQty=body["last_qty"],
                     fillPrice=_price(body["last_px"]))
    return event


def _price(units: int | None) -> str | None:
    return None if units is None else format_price(units)


def write_cat_csv(events: Iterable[dict[str, Any]], stream: IO[str]) -> None:
    """Write events as CSV with a header row of :data:`CAT_FIELDS`; None is empty."""
    writer = csv.DictWriter(stream, fieldnames=CAT_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(events)


def write_cat_json(events: Iterable[dict[str, Any]], stream: IO[str]) -> None:
    """Write events as JSON Lines, one object per event, fields with no value left out."""
    for event in _compact(events):
        stream.write(json.dumps(event, separators=(",", ":")) + "\n")


def _compact(events: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for event in events:
        yield {key: value for key, value in event.items() if value is not None}
