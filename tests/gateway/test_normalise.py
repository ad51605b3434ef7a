"""Application messages become engine commands that share their Symbol (55) strings."""

from __future__ import annotations

from engine import CancelOrder, NewOrder
from gateway.codec import decode_message, encode
from gateway.normalise import normalise

HEADER = [(49, "BRK1"), (56, "VENUE"), (34, 12), (52, "20240102-13:45:12.123")]
SESSION = "FIX.4.4:VENUE->BRK1"


def _new_order(cl_ord_id: str) -> NewOrder:
    body = [
        (11, cl_ord_id), (55, "ACME"), (54, "1"), (60, "20240102-13:45:12.123"),
        (38, 100), (40, "2"), (44, "10.5"),
    ]
    command = normalise(SESSION, decode_message(encode("FIX.4.4", "D", HEADER, body)))
    assert isinstance(command, NewOrder), command
    return command


def test_commands_for_one_instrument_carry_one_symbol_object() -> None:
    first, second = _new_order("A1"), _new_order("A2")
    assert first.symbol == "ACME"
    assert first.symbol is second.symbol
    body = [(11, "A3"), (41, "A1"), (55, "ACME"), (54, "1"), (60, "20240102-13:45:12.123")]
    cancel = normalise(SESSION, decode_message(encode("FIX.4.4", "F", HEADER, body)))
    assert isinstance(cancel, CancelOrder), cancel
    assert cancel.symbol is first.symbol
