"""Exceptions of the matching engine.

Business outcomes (a rejected order, a cancel that comes too late) are events, never
exceptions. The classes below report programmer errors and impossible states::

    EngineError
    ├── UnknownInstrumentError    (also KeyError)   book() for a symbol that was never added
    ├── DuplicateInstrumentError  (also ValueError) add_instrument() for a listed symbol
    ├── UnsupportedCommandError   (also TypeError)  process() with something not a Command
    ├── OrderNotRestingError      (also LookupError) a book asked to change an order it lacks
    └── EngineInvariantError                        check() found a broken invariant
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every exception the engine raises."""


class UnknownInstrumentError(EngineError, KeyError):
    """The symbol has no order book in this engine."""

    def __str__(self) -> str:
        # KeyError.__str__ would wrap the message in quotes, so return it unchanged.
        return str(self.args[0]) if self.args else ""


class DuplicateInstrumentError(EngineError, ValueError):
    """The symbol already has an order book in this engine."""


class UnsupportedCommandError(EngineError, TypeError):
    """The engine has no handler for the object passed to ``process``."""


class OrderNotRestingError(EngineError, LookupError):
    """A book was asked to change an order that does not rest in it."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class EngineInvariantError(EngineError):
    """An internal invariant of a book or of the engine's indexes does not hold."""
