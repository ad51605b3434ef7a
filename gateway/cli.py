"""The ``fixgw`` command line: demo, serve, replay, audit and conformance."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sqlite3
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from gateway.errors import FixError

if TYPE_CHECKING:
    from gateway.settings import SessionSettings
    from gateway.venue import VenueConfig

logger = logging.getLogger("gateway.cli")

DEFAULT_AUDIT_DB_NAME = "fixgw-audit.sqlite"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fixgw", description="FIX gateway appliance for trading venues."
    )
    parser.add_argument(
        "--log-level", default=None,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging threshold for messages on standard error (default: INFO for serve, "
        "which logs logons, logouts, resends and rejects but nothing per message; "
        "WARNING for the other commands)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="run the appliance on built-in defaults with simulated brokers and print a summary"
    )
    demo.add_argument("--seconds", type=float, default=5.0, help="trading time in seconds (default: 5)")
    demo.add_argument("--sessions", type=int, default=4, help="broker sessions, 1 to 4 (default: 4)")
    demo.add_argument("--db", type=Path, help="audit database path (default: a new temporary file)")
    demo.add_argument("--seed", type=int, default=1, help="seed of the generated order flow (default: 1)")

    serve = commands.add_parser("serve", help="accept FIX sessions until SIGINT or SIGTERM")
    serve.add_argument("--sessions", type=Path, required=True, metavar="FILE.cfg",
                       help="FIX session settings in the QuickFIX format")
    serve.add_argument("--venue", type=Path, metavar="FILE.toml",
                       help="instruments, risk limits and surveillance thresholds (default: built-in)")
    serve.add_argument("--app", choices=["engine", "echo"], default="engine",
                       help="application behind the sessions: the matching engine, or the echo "
                       "application that FIX session acceptance scripts expect (default: engine)")
    serve.add_argument("--db", type=Path, help="audit database path (default: from the venue file, "
                       f"else {DEFAULT_AUDIT_DB_NAME} in the first session's FileStorePath or here)")

    replay = commands.add_parser("replay", help="replay a LOBSTER trading day through FIX sessions")
    replay.add_argument("--lobster", type=Path, required=True, metavar="MESSAGE.csv",
                        help="LOBSTER message file")
    replay.add_argument("--orderbook", type=Path, metavar="ORDERBOOK.csv",
                        help="LOBSTER order-book file, for seeding and best bid and offer agreement")
    replay.add_argument("--db", type=Path, help="audit database path (default: a new temporary "
                        "file); with --host, the venue's, shown in the summary only")
    replay.add_argument("--limit", type=int, help="replay only the first N events")
    replay.add_argument("--host", help="replay against a venue listening there, such as fixgw serve "
                        "on the files of --write-config, instead of one started in this process")
    replay.add_argument("--port", type=int, help="the venue's port, with --host")
    replay.add_argument("--write-config", type=Path, metavar="DIR",
                        help="write sessions.cfg and venue.toml for fixgw serve into DIR, for "
                        "the symbol of --lobster and --port (default: 9880), then exit")

    from surveillance.audit_cli import add_audit_parser

    add_audit_parser(commands)
    _add_conformance_parser(commands)
    return parser


def _add_conformance_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from gateway.conformance import DEFAULT_JOBS, READ_TIMEOUT_S

    conformance = commands.add_parser(
        "conformance",
        help="run FIX session acceptance scripts (.def) against a built-in echo appliance "
        "or a running acceptor",
    )
    conformance.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                             help=".def script files or folders searched recursively")
    conformance.add_argument("--json", action="store_true", help="print the results as JSON")
    conformance.add_argument("--host", help="acceptor to test (default: start an echo appliance "
                             "on a free 127.0.0.1 port)")
    conformance.add_argument("--port", type=int, help="acceptor port, with --host")
    conformance.add_argument("--spec", type=Path, metavar="DIR",
                             help="QuickFIX dictionaries for the built-in appliance (default: a "
                             "spec folder beside or above the scripts, else the venue dictionary)")
    conformance.add_argument("--jobs", type=int, default=DEFAULT_JOBS,
                             help=f"scripts run at once, one per session (default: {DEFAULT_JOBS})")
    conformance.add_argument("--timeout", type=float, default=READ_TIMEOUT_S,
                             help=f"seconds to wait for each expected message (default: {READ_TIMEOUT_S:g})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log_level = args.log_level or ("INFO" if args.command == "serve" else "WARNING")
    logging.basicConfig(
        level=getattr(logging, log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handlers = {
        "demo": _demo, "serve": _serve, "replay": _replay, "audit": _audit,
        "conformance": _conformance,
    }
    from surveillance.audit import AuditTrailError

    try:
        return handlers[args.command](args)
    except BrokenPipeError:
        # The reader of the output went away (`fixgw audit ... | head`): not an error.
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (FixError, AuditTrailError, OSError, ValueError, sqlite3.DatabaseError) as exc:
        print(f"fixgw {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo
    from gateway.summary import format_summary

    if not 1 <= args.sessions <= 4:
        raise ValueError(f"--sessions {args.sessions} is out of range: use 1 to 4")
    if args.seconds <= 0:
        raise ValueError(f"--seconds {args.seconds} must be above 0")
    if args.db is not None:
        args.db.parent.mkdir(parents=True, exist_ok=True)
    summary = asyncio.run(
        run_demo(seconds=args.seconds, sessions=args.sessions, audit_path=args.db, seed=args.seed)
    )
    print(format_summary(summary))
    return 0


def _replay(args: argparse.Namespace) -> int:
    from gateway.replay import run_replay
    from gateway.summary import format_summary

    if args.write_config is not None:
        return _write_replay_config(args)
    for option, path in (("--lobster", args.lobster), ("--orderbook", args.orderbook)):
        if path is not None and not path.is_file():
            raise ValueError(f"{option} {str(path)!r} is not a file")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit {args.limit} must be at least 1, or left out to replay every event")
    _check_lobster_pair(args.lobster, args.orderbook)
    if (args.host is None) != (args.port is None):
        raise ValueError("--host and --port go together: give both to replay against a running venue")
    summary = asyncio.run(run_replay(
        args.lobster, args.orderbook, audit_path=args.db, limit=args.limit,
        host=args.host, port=args.port,
    ))
    print(format_summary(summary))
    if args.host is not None:
        print("BBO agreement is not measured against a venue in another process")
    return 0


def _write_replay_config(args: argparse.Namespace) -> int:
    from gateway.lobster import symbol_from_path
    from gateway.replay import write_serve_config

    port = 9880 if args.port is None else args.port
    sessions_cfg, venue_toml = write_serve_config(
        args.write_config, symbol_from_path(args.lobster), port
    )
    print(f"fixgw serve --sessions {sessions_cfg} --venue {venue_toml}")
    return 0


def _check_lobster_pair(message_csv: Path, orderbook_csv: Path | None) -> None:
    """Reject a message file and an order-book file of different days or symbols.

    LOBSTER names both files SYMBOL_DATE_START_END_message_LEVEL.csv and
    SYMBOL_DATE_START_END_orderbook_LEVEL.csv.
    """
    if orderbook_csv is None:
        return
    message_stem = message_csv.name.replace("_message_", "_")
    orderbook_stem = orderbook_csv.name.replace("_orderbook_", "_")
    if "_message_" in message_csv.name and "_orderbook_" in orderbook_csv.name and (
        message_stem != orderbook_stem
    ):
        raise ValueError(
            f"--lobster {message_csv.name!r} and --orderbook {orderbook_csv.name!r} are not "
            "the same symbol, day and level; pass the order-book file that belongs to the "
            "message file"
        )


def _audit(args: argparse.Namespace) -> int:
    from surveillance.audit_cli import run_audit

    return run_audit(args)


def _serve(args: argparse.Namespace) -> int:
    from gateway.settings import load_session_settings
    from gateway.venue import default_venue_config, load_venue_config

    sessions = load_session_settings(args.sessions)
    venue = load_venue_config(args.venue) if args.venue else default_venue_config()
    audit_path = args.db or _default_audit_path(venue if args.venue else None, sessions)
    audit_path.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(_serve_until_signal(sessions, venue, audit_path, args.app))
    return 0


def _conformance(args: argparse.Namespace) -> int:
    import time

    from gateway import conformance

    if (args.host is None) != (args.port is None):
        raise ValueError("--host and --port go together: give both to test a running acceptor")
    scripts = conformance.find_scripts(args.paths)
    if not scripts:
        raise ValueError(f"no .def scripts under {', '.join(map(str, args.paths))}")
    started = time.monotonic()
    if args.host is not None:
        results = asyncio.run(conformance.run_against(
            scripts, args.host, args.port, jobs=args.jobs, timeout_s=args.timeout
        ))
    else:
        spec_dir = args.spec or conformance.find_spec_dir(args.paths)
        results = asyncio.run(conformance.run_with_appliance(
            scripts, spec_dir, jobs=args.jobs, timeout_s=args.timeout
        ))
    duration_s = time.monotonic() - started
    if args.json:
        print(conformance.results_json(results, duration_s))
    else:
        print(conformance.format_results(results, duration_s))
    return 0 if all(result.passed for result in results) else 1


def _default_audit_path(venue: VenueConfig | None, sessions: list[SessionSettings]) -> Path:
    """Return the venue file's audit_db, else a file in the first FileStorePath, else here."""
    if venue is not None:
        return venue.audit_db
    store = next((s.file_store_path for s in sessions if s.file_store_path), None)
    if store is not None:
        Path(store).mkdir(parents=True, exist_ok=True)
        return Path(store) / DEFAULT_AUDIT_DB_NAME
    return Path(DEFAULT_AUDIT_DB_NAME)


async def _serve_until_signal(
    sessions: list[SessionSettings], venue: VenueConfig, audit_path: Path, app: str = "engine"
) -> None:
    from gateway.appliance import Appliance

    appliance = Appliance(sessions, venue, audit_path=audit_path, app=app)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    ports = await appliance.start()
    for session_id, port in ports.items():
        print(f"{session_id} listening on port {port}", flush=True)
    print(f"audit trail: {audit_path}", flush=True)
    await stop.wait()
    logger.info("signal received; logging sessions out")
    await appliance.stop()


if __name__ == "__main__":
    sys.exit(main())
