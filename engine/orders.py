"""Order attributes shared by commands, events and the book.

Enum values are the FIX wire values, so the gateway maps them without a lookup table:
Side (54), OrdType (40), TimeInForce (59), ExecType (150) and OrdStatus (39).
"""

from __future__ import annotations

import enum

# Prices inside the engine are integers in units of 10**-PRICE_DECIMALS of the currency,
# so matching never compares floats. 223.82 is 22_382_000_000 at 8 decimals.
PRICE_DECIMALS = 8
PRICE_SCALE = 10**PRICE_DECIMALS


class _StrEnum(str, enum.Enum):
    """A str enum that hashes as its value, in C.

    Enum.__hash__ is a Python method hashing the member's name; the engine tests enum
    membership in frozensets on every order, and str.__hash__ is several times cheaper.
    Members equal their values, so hashing as the value also keeps hash and eq consistent.
    """

    __hash__ = str.__hash__


class Side(_StrEnum):
    """Side (54)."""

    BUY = "1"
    SELL = "2"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrdType(_StrEnum):
    """OrdType (40)."""

    MARKET = "1"
    LIMIT = "2"
    STOP = "3"  # a market order once the last trade price reaches StopPx (99)
    STOP_LIMIT = "4"  # a limit order once the last trade price reaches StopPx (99)


class TimeInForce(_StrEnum):
    """TimeInForce (59)."""

    DAY = "0"  # expires at EndOfDay
    GTC = "1"
    AT_THE_OPENING = "2"  # not supported yet: the gateway rejects it
    IOC = "3"
    FOK = "4"
    GTX = "5"  # not supported yet: the gateway rejects it
    GTD = "6"  # expires at ExpireTime (126) or at the end of ExpireDate (432)
    AT_THE_CLOSE = "7"  # not supported yet: the gateway rejects it


class ExecType(_StrEnum):
    """ExecType (150) as FIX 4.4 defines it; the gateway maps TRADE to 1/2 for FIX 4.2.

    TRIGGERED is the FIX 5.0 value L; FIX 4.x has no such value, so the gateway sends
    RESTATED (D) there.
    """

    NEW = "0"
    CANCELED = "4"
    REPLACED = "5"
    REJECTED = "8"
    EXPIRED = "C"
    RESTATED = "D"
    TRADE = "F"
    ORDER_STATUS = "I"
    TRIGGERED = "L"


class OrdStatus(_StrEnum):
    """OrdStatus (39)."""

    NEW = "0"
    PARTIALLY_FILLED = "1"
    FILLED = "2"
    CANCELED = "4"
    REPLACED = "5"
    REJECTED = "8"
    EXPIRED = "C"


class OrdRejReason(_StrEnum):
    """OrdRejReason (103) values the venue sends on a rejected order."""

    BROKER_OPTION = "0"
    UNKNOWN_SYMBOL = "1"
    EXCHANGE_CLOSED = "2"
    ORDER_EXCEEDS_LIMIT = "3"
    TOO_LATE_TO_ENTER = "4"
    DUPLICATE_ORDER = "6"
    UNSUPPORTED_ORDER_CHARACTERISTIC = "11"
    INCORRECT_QUANTITY = "13"
    UNKNOWN_ACCOUNT = "15"
    PRICE_EXCEEDS_CURRENT_PRICE_BAND = "16"
    INVALID_PRICE_INCREMENT = "18"
    OTHER = "99"


class CxlRejReason(_StrEnum):
    """CxlRejReason (102)."""

    TOO_LATE_TO_CANCEL = "0"
    UNKNOWN_ORDER = "1"
    BROKER_OPTION = "2"
    ALREADY_PENDING = "3"
    DUPLICATE_CL_ORD_ID = "6"
    OTHER = "99"


class CxlRejResponseTo(_StrEnum):
    """CxlRejResponseTo (434): which request an OrderCancelReject answers."""

    CANCEL = "1"
    REPLACE = "2"


# ExecInst (18) value "6", participate don't initiate: the order may only add liquidity.
EXEC_INST_POST_ONLY = "6"


class TradingPhase(_StrEnum):
    """The trading phase of one instrument, set by SetTradingPhase commands.

    Values are the engine's own names, not a FIX enumeration: TradingSessionSubID (625)
    and SecurityTradingStatus (326) each cover only part of them.
    """

    PRE_OPEN = "PRE_OPEN"  # orders rest, crossed or not, and nothing matches
    CONTINUOUS = "CONTINUOUS"  # every order matches on arrival
    PRE_CLOSE = "PRE_CLOSE"  # the closing call: like PRE_OPEN
    HALTED = "HALTED"  # no new orders or replaces; cancels are accepted
    CLOSED = "CLOSED"  # like HALTED, after the closing uncross

    @property
    def is_call(self) -> bool:
        """True in the phases where orders rest without matching, before an uncross."""
        return self is TradingPhase.PRE_OPEN or self is TradingPhase.PRE_CLOSE


class SelfMatchPrevention(_StrEnum):
    """The action taken when two orders of the same firm would trade with each other."""

    NONE = "NONE"  # the orders trade
    CANCEL_RESTING = "CANCEL_RESTING"  # cancel the resting order; the incoming one goes on
    CANCEL_INCOMING = "CANCEL_INCOMING"  # cancel what is left of the incoming order
    CANCEL_BOTH = "CANCEL_BOTH"  # cancel the resting order and the rest of the incoming one


class PostOnlyPolicy(_StrEnum):
    """The treatment of a post-only order that would take liquidity on arrival."""

    REJECT = "REJECT"  # reject the order, or the replace that would make it cross
    REPRICE = "REPRICE"  # move its price to one tick short of the best opposite price
