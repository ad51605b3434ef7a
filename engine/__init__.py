"""Price-time priority matching engine: one order book per instrument, driven by commands.

The gateway turns FIX messages into :mod:`engine.commands`, the engine answers each with a
list of :mod:`engine.events`, and the same command sequence always gives the same events.
"""

from engine.auction import Uncross
from engine.book import Order, OrderBook
from engine.commands import (
    VENUE_SESSION_ID,
    AdvanceTime,
    CancelOrder,
    Command,
    EndOfDay,
    MassCancel,
    NewOrder,
    OrderStatusRequest,
    RejectOrder,
    ReplaceOrder,
    SetTradingPhase,
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
from engine.instrument import Firm, Instrument
from engine.market_data import DepthLevel, MarketDataSnapshot
from engine.orders import (
    EXEC_INST_POST_ONLY,
    PRICE_DECIMALS,
    PRICE_SCALE,
    CxlRejReason,
    CxlRejResponseTo,
    ExecType,
    OrdRejReason,
    OrdStatus,
    OrdType,
    PostOnlyPolicy,
    SelfMatchPrevention,
    Side,
    TimeInForce,
    TradingPhase,
)

__all__ = [
    "EXEC_INST_POST_ONLY",
    "PRICE_DECIMALS",
    "PRICE_SCALE",
    "VENUE_SESSION_ID",
    "AdvanceTime",
    "CancelOrder",
    "CancelReject",
    "Command",
    "CxlRejReason",
    "CxlRejResponseTo",
    "DepthLevel",
    "DuplicateInstrumentError",
    "EndOfDay",
    "EngineError",
    "EngineInvariantError",
    "Event",
    "ExecType",
    "ExecutionEvent",
    "Firm",
    "Instrument",
    "MarketDataSnapshot",
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
    "PostOnlyPolicy",
    "RejectOrder",
    "ReplaceOrder",
    "SelfMatchPrevention",
    "SetTradingPhase",
    "Side",
    "TimeInForce",
    "Trade",
    "TradingPhase",
    "Uncross",
    "UnknownInstrumentError",
    "UnsupportedCommandError",
    "command_from_dict",
    "command_to_dict",
]
