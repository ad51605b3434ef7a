"""Application messages become engine commands that share the venue's Symbol (55) strings."""

from __future__ import annotations

from engine import CancelOrder, NewOrder
from gateway.codec import decode_message, encode
from gateway.normalise import normalise

HEADER = [(49, "BRK1"), (56, "VENUE"), (34, 12), (52, "20240102-13:45:12.123")]
SESSION = "FIX.4.4:VENUE->BRK1"
LISTED = "".join(["AC", "ME"])  # built at run time, so it is not the literal's object
SYMBOLS = {LISTED: LISTED}


def _new_order(cl_ord_id: str, symbol: str = "ACME") -> NewOrder:
    body = [
        (11, cl_ord_id), (55, symbol), (54, "1"), (60, "20240102-13:45:12.123"),
        (38, 100), (40, "2"), (44, "10.5"),
    ]
    command = normalise(SESSION, decode_message(encode("FIX.4.4", "D", HEADER, body)), SYMBOLS)
    assert isinstance(command, NewOrder), command
    return command


def test_listed_symbol_is_venue_object() -> None:
    first, second = _new_order("A1"), _new_order("A2")
    assert first.symbol is LISTED
    assert second.symbol is LISTED
    body = [(11, "A3"), (41, "A1"), (55, "ACME"), (54, "1"), (60, "20240102-13:45:12.123")]
    cancel = normalise(SESSION, decode_message(encode("FIX.4.4", "F", HEADER, body)), SYMBOLS)
    assert isinstance(cancel, CancelOrder), cancel
    assert cancel.symbol is LISTED


def test_unlisted_symbol_is_kept() -> None:
    command = _new_order("A1", "ZZZZ")
    assert command.symbol == "ZZZZ"
    assert "ZZZZ" not in SYMBOLS
