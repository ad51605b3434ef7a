"""The ``fixgw audit`` subcommands: one per compliance question, plus verify and Datasette.

:func:`add_audit_parser` adds them to the ``fixgw`` parser and :func:`run_audit` runs one.
Reports print as aligned text, or as JSON with ``--json``. Times on the command line are
ISO 8601 UTC (``2024-06-21T13:30:00.123456Z``, a date alone meaning its midnight) or
integer microseconds since the Unix epoch.

A filter (``--session``, ``--firm``, ``--trader``, ``--control``, ``--scope``,
``--detector``) whose value is not in the file still gives an empty report and exit
status 0, with one line on stderr that names the values the file has.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any, Callable

from surveillance.risk import RiskControl

__all__ = ["add_audit_parser", "parse_time_us", "run_audit"]

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

_SESSION_HELP = (
    "FIX session ID such as 'FIX.4.4:FIXGW->BRK2', quoted because the shell reads '>' as a "
    "redirection, or the CompID alone (BRK2) when one session has it"
)

_AUDIT_EPILOG = """\
examples (quote session IDs: unquoted, the shell reads '>' as a redirection):
  fixgw audit sessions --session 'FIX.4.4:FIXGW->BRK2' --db var/fixgw-audit.sqlite
  fixgw audit activity --session 'FIX.4.4:FIXGW->BRK2' --from 2024-06-21 --db var/fixgw-audit.sqlite
  fixgw audit rejects --control RISK_PRICE_COLLAR --summary --db var/fixgw-audit.sqlite
  fixgw audit verify --db var/fixgw-audit.sqlite
"""

# Filter options checked against the values in the file. Each is the option's argparse
# destination (also the kind that surveillance.audit_reports.recorded_values takes), the
# words for one value, and the words for the values in the file.
_FILTERS = (
    ("session", "session", "sessions"),
    ("firm", "firm", "firms (CompIDs)"),
    ("trader", "trader", "traders (Account (1) values)"),
    ("control", "reject by control", "controls with rejects"),
    ("scope", "limit change with scope", "scopes"),
    ("detector", "alert from detector", "detectors"),
)
_MAX_LISTED_VALUES = 10

_FIRM_HELP = (
    "the firm's CompID, the TargetCompID (56) after '->' in its session IDs, such as BRK2 "
    "for 'FIX.4.4:FIXGW->BRK2'. The firm names in the venue file's [[firms]] are not in "
    "the audit trail"
)

_CONTROL_HELP = (
    "only this control, as the appliance records it: "
    + ", ".join(control.value for control in RiskControl)
    + " (the RISK_ prefix may be left out)"
)


def parse_time_us(text: str) -> int:
    """Parse ISO 8601 UTC or integer microseconds into microseconds since the epoch."""
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}: use ISO 8601 UTC such as 2024-06-21T13:30:00.5Z, "
            "or microseconds since the Unix epoch"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return (moment - _EPOCH) // datetime.timedelta(microseconds=1)


def add_audit_parser(commands: Any) -> None:
    """Add ``audit`` and its subcommands to the ``fixgw`` subparsers ``commands``."""
    audit = commands.add_parser(
        "audit", help="query and verify the audit trail", epilog=_AUDIT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    queries = audit.add_subparsers(dest="audit_command", required=True, metavar="QUERY")

    order = _query(queries, "order", "the full life of one order, through its replaces")
    order.add_argument("cl_ord_id", metavar="ID", help="ClOrdID (11) of any request in the "
                       "order's chain, or the OrderID (37) the venue gave it")
    order.add_argument("--session", help=_SESSION_HELP + ", when several sessions used the ClOrdID")

    activity = _query(queries, "activity", "everything of a session, firm or trader in a time window")
    who = activity.add_mutually_exclusive_group()
    who.add_argument("--session", help=_SESSION_HELP)
    who.add_argument("--firm", metavar="COMPID", help=_FIRM_HELP)
    who.add_argument("--trader", help="Account (1) on the trader's orders")
    _window(activity)

    rejects = _query(queries, "rejects", "risk rejects with the limit in force at the time")
    rejects.add_argument("--control", help=_CONTROL_HELP)
    rejects.add_argument("--summary", action="store_true",
                         help="count per control and limit instead of listing each")
    _window(rejects)

    limits = _query(queries, "limits", "every change of a limit or setting")
    limits.add_argument("--scope", help="only this symbol, session or '*'")
    _window(limits)

    _query(queries, "halts", "halts, resumptions and kill switches, with canceled orders")

    book = _query(queries, "book", "an instrument's book rebuilt at a moment from the journal")
    book.add_argument("symbol", metavar="SYMBOL", help="Symbol (55)")
    book.add_argument("--at", type=parse_time_us, required=True, metavar="TIME",
                      help="the moment, ISO 8601 UTC or microseconds since the epoch")
    book.add_argument("--depth", type=int, default=10, help="price levels per side (default: 10)")

    alerts = _query(queries, "alerts", "surveillance alerts with detector version, score and action")
    alerts.add_argument("--detector", help="only this detector, such as wash_trade")
    _window(alerts)

    otr = _query(queries, "otr", "order-to-trade ratio per firm, instrument and day")
    otr.add_argument("--day", help="only this UTC day, YYYY-MM-DD")

    sessions = _query(queries, "sessions", "sequence gaps, resends, PossDup messages and "
                      "cancel-on-disconnect per session")
    sessions.add_argument("--session", help="only this " + _SESSION_HELP)

    export = _command(queries, "export", "order events in the shape of CAT order events")
    export.add_argument("--day", help="only this UTC day, YYYY-MM-DD")
    export.add_argument("--firm", metavar="COMPID", help="only this firm: " + _FIRM_HELP)
    export.add_argument("--format", choices=["csv", "json"], default="csv",
                        help="CSV with a header row, or JSON Lines (default: csv)")
    export.add_argument("--output", type=Path, metavar="FILE", help="write here instead of stdout")

    _command(queries, "verify", "check the SHA-256 chain over every committed batch; exit 1 "
             "naming the first changed, deleted or reordered row")
    _command(queries, "datasette-metadata", "print Datasette metadata (descriptions and "
             "canned queries) as JSON")


def _command(queries: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = queries.add_parser(name, help=help_text)
    parser.add_argument("--db", type=Path, required=True, help="audit database path")
    return parser


def _query(queries: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    parser = _command(queries, name, help_text)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _window(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="start_us", type=parse_time_us, metavar="TIME",
                        help="start of the window, inclusive (default: the beginning)")
    parser.add_argument("--to", dest="end_us", type=parse_time_us, metavar="TIME",
                        help="end of the window, exclusive (default: now)")


def run_audit(args: argparse.Namespace) -> int:
    """Run the ``fixgw audit`` subcommand in ``args``; return the exit status."""
    if not args.db.is_file():
        raise ValueError(f"--db {str(args.db)!r} is not a file; pass the audit database path")
    _check_arguments(args)
    _report_unmatched_filters(args)
    handler = _HANDLERS[args.audit_command]
    return handler(args)


def _check_arguments(args: argparse.Namespace) -> None:
    """Reject options that would silently select nothing, naming the value and the fix."""
    start_us, end_us = getattr(args, "start_us", None), getattr(args, "end_us", None)
    if start_us is not None and end_us is not None and start_us >= end_us:
        raise ValueError(
            f"--from {start_us} µs is not before --to {end_us} µs; swap them or widen the window"
        )
    day = getattr(args, "day", None)
    if day is not None:
        try:
            datetime.date.fromisoformat(day)
        except ValueError:
            raise ValueError(f"--day {day!r} is not a valid date; use YYYY-MM-DD") from None
    control = getattr(args, "control", None)
    if control is not None:
        # Controls are stored as RISK_<CONTROL>, so the bare control name is accepted too.
        control = control.upper()
        args.control = control if control.startswith("RISK_") else "RISK_" + control
    session = getattr(args, "session", None)
    if session is not None and ":" not in session:
        args.session = _session_id_for_comp_id(args.db, session)


def _session_id_for_comp_id(db: Path, comp_id: str) -> str:
    """Expand a broker CompID to the one FIX session ID whose TargetCompID it is.

    A CompID that no session has is returned unchanged, for the unmatched-filter line.
    """
    from surveillance.audit_reports import recorded_values

    session_ids = [s for s in recorded_values(db, "session") if s.endswith("->" + comp_id)]
    if len(session_ids) == 1:
        return session_ids[0]
    if not session_ids:
        return comp_id
    raise ValueError(
        f"--session {comp_id!r} matches several sessions ({', '.join(session_ids)}); "
        "pass one of them, quoted"
    )


def _report_unmatched_filters(args: argparse.Namespace) -> None:
    """Print one stderr line per filter whose value is not in the file.

    The report then comes out empty, which is still a valid result, so the exit status
    stays 0. The line separates a mistyped value from a session that had no activity.
    """
    from surveillance.audit_reports import recorded_values

    for kind, noun, plural_noun in _FILTERS:
        value = getattr(args, kind, None)
        if value is None:
            continue
        present = recorded_values(args.db, kind)
        if value in present:
            continue
        listed = ", ".join(present[:_MAX_LISTED_VALUES]) or "none"
        if len(present) > _MAX_LISTED_VALUES:
            listed += f" and {len(present) - _MAX_LISTED_VALUES} more"
        line = f"no {noun} {value!r} in this audit trail; {plural_noun}: {listed}"
        if kind == "session" and any(s.startswith(value + ">") for s in present):
            line += "; quote the session ID, because the shell reads an unquoted '>' as a redirection"
        print(line, file=sys.stderr)


def _print_report(args: argparse.Namespace, build: Callable[[], Any]) -> int:
    from surveillance.audit_reports import format_table, report_to_json

    report = build()
    print(report_to_json(report) if args.json else format_table(report))
    return 0


def _order(args: argparse.Namespace) -> int:
    from surveillance.audit_queries import format_order_life, format_ts_us, order_life

    rows = order_life(args.db, args.cl_ord_id, session_id=args.session)
    if not rows:
        print(f"no order with ClOrdID (11) or OrderID (37) {args.cl_ord_id!r} in {args.db}",
              file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([
            {"ts_us": row.ts_us, "time": format_ts_us(row.ts_us), "kind": row.kind.value,
             "session_id": row.session_id, "cl_ord_id": row.cl_ord_id, "summary": row.summary}
            for row in rows
        ], indent=1))
    else:
        print(format_order_life(rows))
    return 0


def _activity(args: argparse.Namespace) -> int:
    from surveillance.audit_reports import activity

    return _print_report(args, lambda: activity(
        args.db, start_us=args.start_us, end_us=args.end_us, session_id=args.session,
        firm=args.firm, trader=args.trader,
    ))


def _rejects(args: argparse.Namespace) -> int:
    from surveillance.audit_reports import rejects

    return _print_report(args, lambda: rejects(
        args.db, start_us=args.start_us, end_us=args.end_us, control=args.control,
        summary=args.summary,
    ))


def _limits(args: argparse.Namespace) -> int:
    from surveillance.audit_reports import limit_changes

    return _print_report(args, lambda: limit_changes(
        args.db, start_us=args.start_us, end_us=args.end_us, scope=args.scope
    ))


def _halts(args: argparse.Namespace) -> int:
    from surveillance.audit_reports import halts

    return _print_report(args, lambda: halts(args.db))


def _alerts(args: argparse.Namespace) -> int:
    from surveillance.audit_reports import alerts

    return _print_report(args, lambda: alerts(
        args.db, start_us=args.start_us, end_us=args.end_us, detector=args.detector
    ))


def _otr(args: argparse.Namespace) -> int:
    from surveillance.audit_reports import order_to_trade

    return _print_report(args, lambda: order_to_trade(args.db, day=args.day))


def _sessions(args: argparse.Namespace) -> int:
    from surveillance.audit_reports import session_report

    return _print_report(args, lambda: session_report(args.db, session_id=args.session))


def _book(args: argparse.Namespace) -> int:
    from surveillance.audit_book import book_at, book_at_to_dict, format_book_at

    book = book_at(args.db, args.symbol, args.at, depth=args.depth)
    print(json.dumps(book_at_to_dict(book), indent=1) if args.json else format_book_at(book))
    return 0


def _export(args: argparse.Namespace) -> int:
    from surveillance.audit_export import cat_events, write_cat_csv, write_cat_json
    from surveillance.audit_queries import format_count

    events = cat_events(args.db, day=args.day, firm=args.firm)
    write = write_cat_csv if args.format == "csv" else write_cat_json
    if args.output is None:
        write(events, sys.stdout)
    else:
        with open(args.output, "w", encoding="utf-8", newline="") as stream:
            write(events, stream)
        print(f"{format_count(len(events), 'CAT order event')} written to {args.output}",
              file=sys.stderr)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from surveillance.audit_chain import verify_chain
    from surveillance.audit_queries import format_count

    report = verify_chain(args.db)
    batches = format_count(report.batches, "batch", "batches")
    if report.problem is not None:
        problem = report.problem
        print(f"FAILED: {problem.text} (table {problem.table or '-'}, row "
              f"{problem.row_id if problem.row_id is not None else '-'}, batch "
              f"{problem.batch_no if problem.batch_no is not None else '-'}); "
              f"{batches} verified before it", file=sys.stderr)
        return 1
    print(f"OK: {batches}, {format_count(report.rows, 'chained row')}, "
          f"head hash {report.head_hash}")
    print(_verify_counts_note(args.db))
    return 0


def _verify_counts_note(db: Path) -> str:
    """Say how verify's counts differ from the appliance's "rows committed" log line."""
    import contextlib
    import sqlite3

    from surveillance.audit_queries import format_count

    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        (starts,) = conn.execute("SELECT count(*) FROM clock_log").fetchone()
    return (
        f"The counts cover every run in this file ({format_count(starts, 'start')}), each "
        "start's batch with its clock_log row included. The appliance's closing log line "
        "counts one run without that batch, and counts session_store upserts as rows, "
        "though they are not chained."
    )


def _datasette_metadata(args: argparse.Namespace) -> int:
    from surveillance.audit_datasette import datasette_metadata

    print(json.dumps(datasette_metadata(args.db), indent=2))
    return 0


_HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "order": _order,
    "activity": _activity,
    "rejects": _rejects,
    "limits": _limits,
    "halts": _halts,
    "book": _book,
    "alerts": _alerts,
    "otr": _otr,
    "sessions": _sessions,
    "export": _export,
    "verify": _verify,
    "datasette-metadata": _datasette_metadata,
}
