"""Compare gateway.codec with simplefix on the order path's two hot operations.

1. Parse a NewOrderSingle of about 210 bytes and read ClOrdID (11), Symbol (55), Side (54),
   OrderQty (38) and Price (44).
2. Encode an ExecutionReport with 18 body fields.

Run from the repository root: ``python bench/bench_codec.py``. Each figure is the best of
several timed rounds (time.perf_counter), so other load on the machine lowers it less than
it would an average. The two codecs run in alternating rounds, so a change in machine load
affects both alike.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import simplefix

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.codec import FixMessage, FrameDecoder, encode  # noqa: E402

ROUNDS = 7
PARSE_MESSAGES_PER_ROUND = 20_000
ENCODE_MESSAGES_PER_ROUND = 20_000
READ_TAGS = (11, 55, 54, 38, 44)

Field = tuple[int, "str | int"]

NEW_ORDER_HEADER: list[Field] = [
    (49, "BRK1"),
    (56, "VENUE"),
    (34, 12345),
    (52, "20240102-13:45:12.123"),
]
NEW_ORDER_BODY: list[Field] = [
    (11, "ORD-000000012345"),
    (1, "ACCT-7781"),
    (21, "1"),
    (55, "AAPL"),
    (54, "1"),
    (60, "20240102-13:45:12.120"),
    (38, "100"),
    (40, "2"),
    (44, "223.82"),
    (59, "0"),
    (18, "M"),
    (100, "XNAS"),
    (58, "client order"),
]

EXECUTION_REPORT_HEADER: list[Field] = [
    (49, "VENUE"),
    (56, "BRK1"),
    (34, 12346),
    (52, "20240102-13:45:12.125"),
]
EXECUTION_REPORT_BODY: list[Field] = [
    (37, "O-1000000123"),
    (11, "ORD-000000012345"),
    (17, "E-2000000456"),
    (150, "F"),
    (39, "1"),
    (1, "ACCT-7781"),
    (55, "AAPL"),
    (54, "1"),
    (38, 100),
    (40, "2"),
    (44, "223.82"),
    (59, "0"),
    (32, 40),
    (31, "223.82"),
    (151, 60),
    (14, 40),
    (6, "223.82"),
    (60, "20240102-13:45:12.124"),
]


def parse_with_codec(raw: bytes, count: int) -> None:
    decoder = FrameDecoder()
    for _ in range(count):
        decoder.feed(raw)
        message = decoder.next_frame()
        for tag in READ_TAGS:
            message.get(tag)  # type: ignore[union-attr]


def parse_with_simplefix(raw: bytes, count: int) -> None:
    parser = simplefix.FixParser()
    for _ in range(count):
        parser.append_buffer(raw)
        message = parser.get_message()
        for tag in READ_TAGS:
            message.get(tag)


def encode_with_codec(count: int) -> None:
    for _ in range(count):
        encode("FIX.4.4", "8", EXECUTION_REPORT_HEADER, EXECUTION_REPORT_BODY)


def encode_with_simplefix(count: int) -> None:
    for _ in range(count):
        message = simplefix.FixMessage()
        message.append_pair(8, "FIX.4.4")
        message.append_pair(35, "8")
        for tag, value in EXECUTION_REPORT_HEADER:
            message.append_pair(tag, value, header=True)
        for tag, value in EXECUTION_REPORT_BODY:
            message.append_pair(tag, value)
        message.encode()


def best_rates(runs: dict[str, Callable[[int], None]], counts: dict[str, int]) -> dict[str, float]:
    """Return each run's best rate in messages per second over ROUNDS alternating rounds."""
    best_seconds = {name: float("inf") for name in runs}
    for _ in range(ROUNDS):
        for name, run in runs.items():
            started = time.perf_counter()
            run(counts[name])
            best_seconds[name] = min(best_seconds[name], time.perf_counter() - started)
    return {name: counts[name] / seconds for name, seconds in best_seconds.items()}


def check_same_output(raw: bytes) -> None:
    """Stop the benchmark if the two codecs disagree on the messages it times."""
    decoder = FrameDecoder()
    decoder.feed(raw)
    ours = decoder.next_frame()
    parser = simplefix.FixParser()
    parser.append_buffer(raw)
    reference = parser.get_message()
    if not isinstance(ours, FixMessage):
        sys.exit(f"codec did not parse the NewOrderSingle: {ours!r}")
    for tag in READ_TAGS:
        if ours.get(tag) != reference.get(tag):
            sys.exit(f"parsers disagree on tag {tag}: {ours.get(tag)!r}, {reference.get(tag)!r}")

    message = simplefix.FixMessage()
    message.append_pair(8, "FIX.4.4")
    message.append_pair(35, "8")
    for tag, value in EXECUTION_REPORT_HEADER:
        message.append_pair(tag, value, header=True)
    for tag, value in EXECUTION_REPORT_BODY:
        message.append_pair(tag, value)
    if message.encode() != encode("FIX.4.4", "8", EXECUTION_REPORT_HEADER, EXECUTION_REPORT_BODY):
        sys.exit("encoders disagree on the ExecutionReport")


def main() -> None:
    new_order = encode("FIX.4.4", "D", NEW_ORDER_HEADER, NEW_ORDER_BODY)
    execution_report = encode("FIX.4.4", "8", EXECUTION_REPORT_HEADER, EXECUTION_REPORT_BODY)
    check_same_output(new_order)

    print(
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"simplefix {version('simplefix')}, best of {ROUNDS} rounds"
    )
    print(
        f"NewOrderSingle {len(new_order)} bytes; ExecutionReport {len(execution_report)} "
        f"bytes, {len(EXECUTION_REPORT_BODY)} body fields"
    )

    parse_counts = {"codec": PARSE_MESSAGES_PER_ROUND, "simplefix": PARSE_MESSAGES_PER_ROUND // 10}
    parse = best_rates(
        {
            "codec": lambda count: parse_with_codec(new_order, count),
            "simplefix": lambda count: parse_with_simplefix(new_order, count),
        },
        parse_counts,
    )
    encode_counts = {
        "codec": ENCODE_MESSAGES_PER_ROUND,
        "simplefix": ENCODE_MESSAGES_PER_ROUND // 4,
    }
    encoded = best_rates(
        {"codec": encode_with_codec, "simplefix": encode_with_simplefix}, encode_counts
    )

    print_rates("parse + read 5 fields", parse)
    print_rates("encode ExecutionReport", encoded)


def print_rates(label: str, rates: dict[str, float]) -> None:
    ratio = rates["codec"] / rates["simplefix"]
    print(
        f"{label:<23} codec {rates['codec']:>9,.0f} msg/s   "
        f"simplefix {rates['simplefix']:>8,.0f} msg/s   ratio {ratio:4.1f}x"
    )


if __name__ == "__main__":
    main()
