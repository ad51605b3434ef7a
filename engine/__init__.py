"""Price-time priority matching engine: one order book per instrument, driven by commands.

The gateway turns FIX messages into :mod:`engine.commands`, the engine answers each with a
list of :mod:`engine.events`, and the same command sequence always gives the same events.
"""

from engine.book import Order, OrderBook
from engine.commands import (
    CancelOrder,
    Command,
    MassCancel,
    NewOrder,
    OrderStatusRequest,
    RejectOrder,
    ReplaceOrder,
    command_from_dict,
    command_to_dict,
)
from engine.engine import MatchingEngine
from engine.errors import (
    DuplicateInstrumentError,
    EngineError,
    EngineInvariantError,
    OrderNotRestingError,
    UnknownInstrumentError,
    UnsupportedCommandError,
)
from engine.events import CancelReject, Event, ExecutionEvent, Trade
from engine.orders import (
    PRICE_DECIMALS,
    PRICE_SCALE,
    CxlRejReason,
    CxlRejResponseTo,
    ExecType,
    OrdRejReason,
    OrdStatus,
    OrdType,
    Side,
    TimeInForce,
)

__all__ = [
    "PRICE_DECIMALS",
    "PRICE_SCALE",
    "CancelOrder",
    "CancelReject",
    "Command",
    "CxlRejReason",
    "CxlRejResponseTo",
    "DuplicateInstrumentError",
    "EngineError",
    "EngineInvariantError",
    "Event",
    "ExecType",
    "ExecutionEvent",
    "MassCancel",
    "MatchingEngine",
    "NewOrder",
    "OrdRejReason",
    "OrdStatus",
    "OrdType",
    "Order",
    "OrderBook",
    "OrderNotRestingError",
    "OrderStatusRequest",
    "RejectOrder",
    "ReplaceOrder",
    "Side",
    "TimeInForce",
    "Trade",
    "UnknownInstrumentError",
    "UnsupportedCommandError",
    "command_from_dict",
    "command_to_dict",
]
