"""Static configuration the engine is built with: instruments and broker firms.

Both are venue configuration, not commands: replaying a journal must use the same
configuration to rebuild the same books.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.orders import PostOnlyPolicy, SelfMatchPrevention, TradingPhase

DEFAULT_TICK_SIZE = 1  # price units: any price is on the grid
DEFAULT_LOT_SIZE = 1  # units: any whole quantity


@dataclass(frozen=True, slots=True)
class Instrument:
    """One listed instrument and its trading rules.

    Prices are integer price units (see ``PRICE_SCALE``). ``low_limit_price`` and
    ``high_limit_price`` bound every limit price and StopPx (99), None for no bound.
    ``reference_price`` breaks ties between auction prices before any trade has happened;
    after a trade the last trade price takes its place.
    """

    symbol: str
    tick_size: int = DEFAULT_TICK_SIZE
    lot_size: int = DEFAULT_LOT_SIZE
    low_limit_price: int | None = None
    high_limit_price: int | None = None
    reference_price: int | None = None
    post_only_policy: PostOnlyPolicy = PostOnlyPolicy.REJECT
    initial_phase: TradingPhase = TradingPhase.CONTINUOUS

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not self.symbol:
            raise ValueError(f"symbol must be a non-empty string, got {self.symbol!r}")
        if self.tick_size <= 0:
            raise ValueError(f"{self.symbol}: tick_size must be positive, got {self.tick_size!r}")
        if self.lot_size <= 0:
            raise ValueError(f"{self.symbol}: lot_size must be positive, got {self.lot_size!r}")
        low, high = self.low_limit_price, self.high_limit_price
        if low is not None and high is not None and low > high:
            raise ValueError(
                f"{self.symbol}: low_limit_price {low} is above high_limit_price {high}; "
                f"swap them"
            )


@dataclass(frozen=True, slots=True)
class Firm:
    """A broker firm: the sessions it trades through and its self-match prevention.

    Orders of sessions of one firm count as the same owner for self-match prevention.
    A session that belongs to no firm is never self-match checked.
    """

    name: str
    session_ids: tuple[str, ...]
    self_match_prevention: SelfMatchPrevention = SelfMatchPrevention.CANCEL_RESTING


def firm_by_session(firms: Iterable[Firm]) -> dict[str, Firm]:
    """Return session_id -> firm, raising ValueError if a session is in two firms."""
    by_session: dict[str, Firm] = {}
    for firm in firms:
        for session_id in firm.session_ids:
            other = by_session.get(session_id)
            if other is not None:
                raise ValueError(
                    f"session {session_id!r} is in firm {other.name!r} and in firm "
                    f"{firm.name!r}; list it in one firm only"
                )
            by_session[session_id] = firm
    return by_session
