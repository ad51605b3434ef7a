"""Datasette metadata for an audit trail: table and column descriptions and canned queries.

``fixgw audit datasette-metadata --db PATH > metadata.json`` writes it, and
``datasette PATH --metadata metadata.json`` serves the file read-only with each
compliance question as a canned query. Datasette is an optional extra
(``pip install 'fixgw[datasette]'``), never needed by the appliance.

The rebuilt book at a time T needs the matching engine, so it is a command
(``fixgw audit book``), not a canned query.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from surveillance.audit_schema import TABLES

__all__ = ["CANNED_QUERIES", "datasette_metadata"]

# Times in the query forms are microseconds since the Unix epoch, UTC. SQLite's strftime
# stops at milliseconds, so the microseconds are appended by hand.
def _utc(column: str = "ts_us") -> str:
    return (
        f"strftime('%Y-%m-%dT%H:%M:%S', {column} / 1000000, 'unixepoch')"
        f" || printf('.%06dZ', {column} % 1000000)"
    )


_UTC = _utc()

CANNED_QUERIES: dict[str, dict[str, str]] = {
    "order_life": {
        "title": "1. Life of an order",
        "description": "Every message, risk decision, command and engine event of one ClOrdID "
        "(11) and the ClOrdIDs its cancels and replaces used (one OrigClOrdID step each way).",
        "sql": f"""WITH keys AS (
  SELECT session_id, cl_ord_id FROM commands WHERE cl_ord_id = :cl_ord_id OR orig_cl_ord_id = :cl_ord_id
  UNION SELECT session_id, orig_cl_ord_id FROM commands WHERE cl_ord_id = :cl_ord_id AND orig_cl_ord_id IS NOT NULL
  UNION SELECT session_id, cl_ord_id FROM messages WHERE cl_ord_id = :cl_ord_id
)
SELECT {_UTC} AS time, 'message ' || direction AS source, m.session_id, m.cl_ord_id,
       msg_type || ' MsgSeqNum=' || coalesce(msg_seq_num, '-') AS detail
  FROM messages m JOIN keys USING (session_id, cl_ord_id)
UNION ALL
SELECT {_UTC}, 'risk', d.session_id, d.cl_ord_id,
       control || CASE accepted WHEN 1 THEN ' accepted' ELSE ' rejected' END
       || ' limit=' || coalesce(limit_value, '') || ' value=' || coalesce(observed_value, '')
  FROM decisions d JOIN keys USING (session_id, cl_ord_id)
UNION ALL
SELECT {_UTC}, 'command', c.session_id, c.cl_ord_id, '#' || seq || ' ' || type
  FROM commands c JOIN keys USING (session_id, cl_ord_id)
UNION ALL
SELECT {_UTC}, 'event', e.session_id, e.cl_ord_id,
       kind || ' exec_type=' || coalesce(exec_type, '') || ' order_id=' || coalesce(order_id, '')
  FROM events e JOIN keys USING (session_id, cl_ord_id)
ORDER BY time""",
    },
    "session_activity": {
        "title": "2. Activity of a session in a time window",
        "description": "Every message of a FIX session between two times (microseconds UTC).",
        "sql": f"""SELECT id, {_UTC} AS time, direction, msg_type, msg_seq_num, cl_ord_id, poss_dup
FROM messages WHERE session_id = :session_id AND ts_us >= :start_us AND ts_us < :end_us
ORDER BY ts_us, id""",
    },
    "rejects_by_control": {
        "title": "3. Risk rejects by control and reason",
        "description": "Reject counts per control, reason and the limit in force.",
        "sql": f"""SELECT control, reason_code, limit_value, count(*) AS rejects,
       {_utc('min(ts_us)')} AS first
FROM decisions WHERE accepted = 0 GROUP BY control, reason_code, limit_value
ORDER BY rejects DESC""",
    },
    "limit_changes": {
        "title": "4. Limit and setting changes",
        "description": "Who changed which limit or setting, when, from what to what, and why.",
        "sql": f"""SELECT {_UTC} AS time, actor, scope, setting, old_value, new_value, reason
FROM limit_changes ORDER BY ts_us, id""",
    },
    "halts": {
        "title": "5. Halts, resumptions and kill switches",
        "description": "Each halt or kill switch with the resumption that ended it.",
        "sql": f"""SELECT h.action, h.scope, h.actor, h.reason, {_utc('h.ts_us')} AS start,
  (SELECT {_utc('min(r.ts_us)')} FROM halts r
    WHERE r.scope = h.scope AND r.ts_us >= h.ts_us AND r.id > h.id
      AND r.action = CASE h.action WHEN 'HALT' THEN 'RESUME' ELSE 'KILL_SWITCH_RELEASE' END) AS end,
  h.canceled_order_ids
FROM halts h WHERE h.action IN ('HALT', 'KILL_SWITCH') ORDER BY h.ts_us""",
    },
    "alerts": {
        "title": "7. Surveillance alerts",
        "description": "Every alert with detector version, features, score, threshold and action.",
        "sql": f"""SELECT {_UTC} AS time, detector, version, symbol, session_id, trade_id,
       score, threshold, action, features, text FROM alerts ORDER BY ts_us, id""",
    },
    "order_to_trade": {
        "title": "8. Order-to-trade ratio per firm, instrument and day",
        "description": "Orders (new, modified, cancelled) over fills per session and symbol.",
        "sql": """WITH orders AS (
  SELECT date(ts_us / 1000000, 'unixepoch') AS day, session_id,
         coalesce(json_extract(body, '$.symbol'), json_extract(body, '$.order.symbol')) AS symbol,
         count(*) AS orders
  FROM commands WHERE type IN ('NewOrder', 'ReplaceOrder', 'CancelOrder', 'RejectOrder')
  GROUP BY 1, 2, 3),
fills AS (
  SELECT date(ts_us / 1000000, 'unixepoch') AS day, session_id, symbol, count(*) AS trades
  FROM events WHERE kind = 'ExecutionEvent' AND exec_type = 'F' GROUP BY 1, 2, 3)
SELECT o.day, o.session_id, o.symbol, o.orders, coalesce(f.trades, 0) AS trades,
       round(1.0 * o.orders / f.trades, 2) AS order_to_trade
FROM orders o LEFT JOIN fills f USING (day, session_id, symbol) ORDER BY o.day, o.session_id""",
    },
    "session_recovery": {
        "title": "9. Gaps, resends and PossDup messages per session",
        "description": "ResendRequests (2), SequenceResets (4), PossDup messages and "
        "session events of one session.",
        "sql": f"""SELECT {_UTC} AS time, direction, msg_type, msg_seq_num, poss_dup,
       replace(CAST(raw AS TEXT), char(1), '|') AS message
FROM messages WHERE session_id = :session_id AND (msg_type IN ('2', '4') OR poss_dup = 1)
UNION ALL
SELECT {_UTC}, 'event', kind, begin_seq_no, NULL, text FROM session_events
WHERE session_id = :session_id ORDER BY time""",
    },
    "cat_new_orders": {
        "title": "10. New orders of a day, CAT style",
        "description": "New orders received on a UTC day (YYYY-MM-DD); `fixgw audit export` "
        "writes every CAT event type.",
        "sql": f"""SELECT 'MENO' AS type, {_UTC} AS eventTimestamp, session_id, cl_ord_id,
       json_extract(body, '$.symbol') AS symbol, json_extract(body, '$.side') AS side,
       json_extract(body, '$.price') AS price_units, json_extract(body, '$.order_qty') AS quantity
FROM commands WHERE type = 'NewOrder' AND date(ts_us / 1000000, 'unixepoch') = :day ORDER BY seq""",
    },
}


def datasette_metadata(db_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Return Datasette metadata for the audit trail at ``db_path``.

    Datasette names a database after its file name without the extension.
    """
    name = Path(os.fspath(db_path)).stem
    tables = {
        table.name: {
            "description": table.description,
            "columns": {column.name: column.description for column in table.columns},
        }
        for table in TABLES
    }
    return {
        "title": "fixgw audit trail",
        "description": "FIX messages, risk decisions, command journal, engine events, alerts "
        "and controls of a fixgw venue. Times are microseconds since the Unix epoch, UTC; "
        "prices are integer units of 10^-8.",
        "databases": {name: {"tables": tables, "queries": CANNED_QUERIES}},
    }
