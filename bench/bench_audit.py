"""Audit trail speed: writer throughput, its cost in end-to-end order throughput, file size.

1. Writer: record the rows that one order makes on the appliance, a hundred orders per
   turn of the event loop, and time until everything is committed. An order makes eight
   rows: the NewOrderSingle in, its risk decision, command, two engine events, two
   ExecutionReports out and a session store upsert. Records per second counts every row.
2. End to end: the appliance runs in this process, once with the real AuditTrail and once
   with surveillance.audit_null.NullAuditTrail, in alternating rounds. A client process
   sends NewOrderSingles over TCP on 127.0.0.1 (buys and sells that cross, so half of
   them trade) with up to WINDOW orders unanswered, and counts the acknowledgements.
   Orders per second runs from the first order sent to the last acknowledgement.
3. Size: the database file after the writer run, per million FIX messages stored.

Run from the repository root: ``python bench/bench_audit.py`` (about a minute). Each figure
is the best of ROUNDS rounds, so other load on the machine lowers it less than an average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pickle
import platform
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.commands import NewOrder  # noqa: E402
from engine.events import ExecutionEvent  # noqa: E402
from engine.orders import PRICE_SCALE, ExecType, OrdStatus, OrdType, Side, TimeInForce  # noqa: E402
from surveillance.audit import AuditTrail  # noqa: E402
from surveillance.audit_native import NO_EXTENSIONS_ENV, load_cwriter  # noqa: E402

ROUNDS = 3
WRITER_ORDERS = 40_000
ORDERS_PER_TURN = 100
E2E_ORDERS = 20_000
WINDOW = 1000
SESSION = "FIX.4.4:FIXGW->BRK1"


# ------------------------------------------------------------------ 1. writer


def _order_rows(index: int) -> tuple[bytes, NewOrder, ExecutionEvent, bytes]:
    cl_ord_id = f"ORD-{index:012d}"
    inbound = (
        f"8=FIX.4.4\x019=160\x0135=D\x0134={index}\x0149=BRK1\x0156=FIXGW\x01"
        f"52=20240102-13:45:12.123456\x0111={cl_ord_id}\x0155=AAPL\x0154=1\x01"
        "60=20240102-13:45:12.120\x0138=100\x0140=2\x0144=223.82\x0159=0\x0110=123\x01"
    ).encode()
    order = NewOrder(SESSION, cl_ord_id, "AAPL", Side.BUY, OrdType.LIMIT, 100, 22382 * PRICE_SCALE // 100)
    event = ExecutionEvent(
        exec_id=f"E{index}", exec_type=ExecType.NEW, ord_status=OrdStatus.NEW,
        order_id=f"O{index}", session_id=SESSION, cl_ord_id=cl_ord_id, orig_cl_ord_id=None,
        symbol="AAPL", side=Side.BUY, ord_type=OrdType.LIMIT, time_in_force=TimeInForce.DAY,
        price=order.price, order_qty=100, cum_qty=0, leaves_qty=100, cum_notional=0,
    )
    outbound = (
        f"8=FIX.4.4\x019=220\x0135=8\x0134={index}\x0149=FIXGW\x0156=BRK1\x01"
        f"52=20240102-13:45:12.123789\x0137=O{index}\x0111={cl_ord_id}\x0117=E{index}\x01"
        "150=0\x0139=0\x0155=AAPL\x0154=1\x0138=100\x0144=223.82\x0114=0\x01151=100\x016=0\x01"
        "60=20240102-13:45:12.123789\x0110=123\x01"
    ).encode()
    return inbound, order, event, outbound


def _record_order(trail: AuditTrail, index: int, rows: tuple[bytes, NewOrder, ExecutionEvent, bytes]) -> int:
    inbound, order, event, outbound = rows
    trail.record_message(SESSION, "in", inbound, msg_type="D", msg_seq_num=index,
                         cl_ord_id=order.cl_ord_id)
    trail.save_session_state(SESSION, next_sender_seq_num=2 * index + 1, next_target_seq_num=index + 1)
    trail.record_decision(session_id=SESSION, cl_ord_id=order.cl_ord_id, control="RISK_ALL",
                          accepted=True, reason_code="ACCEPTED", limit="", value="", text="",
                          command_seq=None)
    seq = trail.record_command(order)
    trail.record_event(event, command_seq=seq)
    trail.record_event(event, command_seq=seq)
    for _ in range(2):
        trail.record_message(SESSION, "out", outbound, msg_type="8", msg_seq_num=index,
                             cl_ord_id=order.cl_ord_id, order_id=event.order_id)
    return 8


async def _writer_round(path: Path, orders: int) -> tuple[float, int]:
    rows = [_order_rows(index) for index in range(1, orders + 1)]
    trail = AuditTrail(path)
    await trail.start()
    recorded = 0
    started = time.perf_counter()
    for index, order_rows in enumerate(rows, 1):
        recorded += _record_order(trail, index, order_rows)
        if index % ORDERS_PER_TURN == 0:
            await asyncio.sleep(0)
    await trail.flush()
    elapsed = time.perf_counter() - started
    await trail.close()
    return recorded / elapsed, recorded


def bench_writer(folder: Path) -> tuple[float, float]:
    """Return (best records per second, bytes per million messages)."""
    best = 0.0
    size_per_million = 0.0
    for round_no in range(ROUNDS):
        path = folder / f"writer-{round_no}.sqlite"
        rate, _ = asyncio.run(_writer_round(path, WRITER_ORDERS))
        best = max(best, rate)
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            (messages,) = conn.execute("SELECT count(*) FROM messages").fetchone()
        size_per_million = os.path.getsize(path) / messages * 1_000_000
    return best, size_per_million


def bench_commit_only(folder: Path) -> float:
    """Return the best rows per second of the writer process's work alone: unpickling
    each batch and BatchWriter.commit (building, hashing and inserting rows), without
    the event loop or the pipe."""
    from surveillance.audit_rows import command_record, event_record
    from surveillance.audit_writer import Batch, BatchWriter, dumps_batch

    rows = [_order_rows(index) for index in range(1, WRITER_ORDERS + 1)]
    payloads = []
    for start in range(0, WRITER_ORDERS, 500):
        tables = Batch().tables
        for index in range(start, start + 500):
            inbound, order, event, outbound = rows[index]
            # A batch keeps each table's records end to end in one flat list.
            tables["messages"] += (3 * index + 1, 1, SESSION, "in", "D", index, order.cl_ord_id, None, 0, inbound)
            tables["decisions"] += (index + 1, 1, None, SESSION, order.cl_ord_id, "RISK_ALL", 1, "ACCEPTED", "", "", "")
            tables["commands"] += command_record(index + 1, 1, order)
            for n in (1, 2):
                tables["events"] += event_record(2 * index + n, 1, index + 1, event)
            for n in (2, 3):
                tables["messages"] += (3 * index + n, 1, SESSION, "out", "8", index, order.cl_ord_id, "O", 0, outbound)
        payloads.append(dumps_batch(tables, {}))
    best = 0.0
    for round_no in range(ROUNDS):
        writer = BatchWriter(str(folder / f"commit-{round_no}.sqlite"), AuditTrail.now_us)
        writer.open()
        started = time.perf_counter()
        for payload in payloads:
            tables, sessions = pickle.loads(payload)
            writer.commit(Batch(tables=tables, sessions=sessions))
        best = max(best, WRITER_ORDERS * 7 / (time.perf_counter() - started))
        writer.close()
    return best


# ------------------------------------------------------------------ 2. end to end


def _client(port: int, orders: int) -> None:
    """Send ``orders`` NewOrderSingles with at most WINDOW unanswered; print orders/s."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    seq = 1

    def frame(msg_type: str, body: str) -> bytes:
        nonlocal seq
        text = f"35={msg_type}\x0134={seq}\x0149=BRK1\x0156=FIXGW\x0152={_utc()}\x01{body}"
        seq += 1
        head = f"8=FIX.4.4\x019={len(text)}\x01{text}"
        return f"{head}10={sum(head.encode()) % 256:03d}\x01".encode()

    sock.sendall(frame("A", "98=0\x01108=30\x01"))
    buffer = b""
    while b"\x0135=A\x01" not in buffer:
        buffer += sock.recv(65536)
    acked, sent, tail = 0, 0, b""
    started = time.perf_counter()
    while acked < orders:
        burst = []
        while sent < orders and sent - acked < WINDOW:
            side = "1" if sent % 2 == 0 else "2"
            burst.append(frame("D", f"11=C{sent}\x0155=AAPL\x0154={side}\x0160={_utc()}\x01"
                                    "38=100\x0140=2\x0144=100.00\x0159=0\x01"))
            sent += 1
        if burst:
            sock.sendall(b"".join(burst))
        data = tail + sock.recv(262144)
        acked += data.count(b"\x01150=0\x01")
        tail = data[-8:]
        acked -= tail.count(b"\x01150=0\x01")
    elapsed = time.perf_counter() - started
    print(f"{orders / elapsed:.1f} {time.process_time():.3f}", flush=True)
    sock.close()


def _utc() -> str:
    now = time.time()
    return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}"


async def _e2e_round(folder: Path, audited: bool, round_no: int) -> tuple[float, float, float]:
    """Return orders per second and the CPU microseconds per order of the writer process
    and of this process (the appliance's event loop and the thread that pickles batches)."""
    from gateway.appliance import Appliance
    from gateway.settings import default_session_settings
    from gateway.venue import default_venue_config
    from surveillance.audit_null import NullAuditTrail

    path = folder / f"e2e-{'audit' if audited else 'null'}-{round_no}.sqlite"
    sessions = [s for s in default_session_settings(port=0) if s.target_comp_id == "BRK1"]
    trail = AuditTrail(path) if audited else NullAuditTrail(path)
    appliance = Appliance(sessions, default_venue_config(), audit_path=path, audit=trail)
    ports = await appliance.start()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    appliance_before_s = time.process_time()
    client = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", str(next(iter(ports.values()))), str(E2E_ORDERS),
        stdout=subprocess.PIPE,
    )
    output, _ = await client.communicate()
    appliance_us_per_order = (time.process_time() - appliance_before_s) / E2E_ORDERS * 1e6
    await appliance.stop()
    rate, client_cpu_s = (float(text) for text in output.decode().split())
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    # Children are the client and, with AuditTrail, the writer process (reaped at stop).
    children_cpu_s = (children.ru_utime + children.ru_stime
                      - children_before.ru_utime - children_before.ru_stime)
    writer_us_per_order = max(children_cpu_s - client_cpu_s, 0.0) / E2E_ORDERS * 1e6
    return rate, writer_us_per_order, appliance_us_per_order


def bench_end_to_end(folder: Path) -> dict[bool, tuple[float, float, float]]:
    """Return, with the real trail (True) and with the null trail (False), the best round's
    orders per second, writer process CPU and appliance CPU per order (µs)."""
    best: dict[bool, tuple[float, float, float]] = {True: (0.0, 0.0, 0.0), False: (0.0, 0.0, 0.0)}
    for round_no in range(ROUNDS):
        for audited in (True, False):
            result = asyncio.run(_e2e_round(folder, audited, round_no))
            if result[0] > best[audited][0]:
                best[audited] = result
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", nargs=2, metavar=("PORT", "ORDERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        _client(int(args.client[0]), int(args.client[1]))
        return

    print(f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    # The writer process decides the same way, from the same environment.
    kind = "C (surveillance._cwriter)" if load_cwriter() is not None else "Python"
    print(f"writer path: {kind} ({NO_EXTENSIONS_ENV}=1 selects the Python writer)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rate, size = bench_writer(folder)
        print(f"writer: {rate:,.0f} records/s ({WRITER_ORDERS:,} orders x 8 rows, best of {ROUNDS})")
        print(f"commit alone: {bench_commit_only(folder):,.0f} rows/s (unpickling and "
              "BatchWriter.commit in one process, no loop, no pipe)")
        print(f"size: {size / 1e6:,.0f} MB per million FIX messages stored")
        best = bench_end_to_end(folder)
        (audited, writer_cpu, audited_cpu), (null, _, null_cpu) = best[True], best[False]
        cost = (1 - audited / null) * 100
        print(f"end to end: {audited:,.0f} orders/s with AuditTrail, {null:,.0f} orders/s with "
              f"NullAuditTrail: the audit trail costs {cost:.1f} % ({E2E_ORDERS:,} orders, "
              f"best of {ROUNDS})")
        print(f"CPU per order: appliance process {audited_cpu:.0f} µs with AuditTrail, "
              f"{null_cpu:.0f} µs with NullAuditTrail; writer process {writer_cpu:.0f} µs, "
              "its start-up included")


if __name__ == "__main__":
    main()
