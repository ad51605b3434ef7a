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


class Side(str, enum.Enum):
    """Side (54)."""

    BUY = "1"
    SELL = "2"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrdType(str, enum.Enum):
    """OrdType (40)."""

    MARKET = "1"
    LIMIT = "2"
    STOP = "3"  # not matched yet: the gateway rejects it
    STOP_LIMIT = "4"  # not matched yet: the gateway rejects it


class TimeInForce(str, enum.Enum):
    """TimeInForce (59)."""

    DAY = "0"
    GTC = "1"
    AT_THE_OPENING = "2"  # not supported yet: the gateway rejects it
    IOC = "3"
    FOK = "4"
    GTX = "5"  # not supported yet: the gateway rejects it
    GTD = "6"  # not supported yet: the gateway rejects it
    AT_THE_CLOSE = "7"  # not supported yet: the gateway rejects it


class ExecType(str, enum.Enum):
    """ExecType (150) as FIX 4.4 defines it; the gateway maps TRADE to 1/2 for FIX 4.2."""

    NEW = "0"
    CANCELED = "4"
    REPLACED = "5"
    REJECTED = "8"
    EXPIRED = "C"
    TRADE = "F"
    ORDER_STATUS = "I"


class OrdStatus(str, enum.Enum):
    """OrdStatus (39)."""

    NEW = "0"
    PARTIALLY_FILLED = "1"
    FILLED = "2"
    CANCELED = "4"
    REPLACED = "5"
    REJECTED = "8"
    EXPIRED = "C"


class OrdRejReason(str, enum.Enum):
    """OrdRejReason (103) values the venue sends on a rejected order."""

    BROKER_OPTION = "0"
    UNKNOWN_SYMBOL = "1"
    EXCHANGE_CLOSED = "2"
    ORDER_EXCEEDS_LIMIT = "3"
    DUPLICATE_ORDER = "6"
    UNSUPPORTED_ORDER_CHARACTERISTIC = "11"
    INCORRECT_QUANTITY = "13"
    UNKNOWN_ACCOUNT = "15"
    PRICE_EXCEEDS_CURRENT_PRICE_BAND = "16"
    INVALID_PRICE_INCREMENT = "18"
    OTHER = "99"


class CxlRejReason(str, enum.Enum):
    """CxlRejReason (102)."""

    TOO_LATE_TO_CANCEL = "0"
    UNKNOWN_ORDER = "1"
    BROKER_OPTION = "2"
    ALREADY_PENDING = "3"
    DUPLICATE_CL_ORD_ID = "6"
    OTHER = "99"


class CxlRejResponseTo(str, enum.Enum):
    """CxlRejResponseTo (434): which request an OrderCancelReject answers."""

    CANCEL = "1"
    REPLACE = "2"
