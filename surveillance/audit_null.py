"""A trail that records nothing, with the interface of :class:`surveillance.audit.AuditTrail`.

The benchmark runs the appliance with it to measure what the real audit trail costs.
Everything the order path relies on still behaves: sequence numbers are kept in memory,
and :meth:`NullAuditTrail.after_commit` callbacks run on the next turn of the loop, in
order, as they would after a commit. What needs stored history returns nothing, so a
ResendRequest is answered with a gap fill and a restart starts from empty books.

It is for measurement only: a venue that ran on it would keep no record at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from engine.commands import Command
from engine.events import Event
from surveillance.audit import HaltAction, SessionEventKind, SessionState

__all__ = ["NullAuditTrail"]


class NullAuditTrail:
    """Drop every record; keep session state in memory; run callbacks on the next turn."""

    def __init__(self, path: Any = None, **_options: Any) -> None:
        self.path = "(null)"
        self.failed: Exception | None = None
        self._sessions: dict[str, SessionState] = {}
        self._next_command_seq = 1
        self._loop: asyncio.AbstractEventLoop | None = None

    @staticmethod
    def now_us() -> int:
        """Return the audit clock: microseconds since the Unix epoch, UTC."""
        return time.time_ns() // 1000

    pending_rows = 0
    committed_batches = 0
    committed_rows = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        await asyncio.sleep(0)

    async def flush(self) -> None:
        await asyncio.sleep(0)

    def after_commit(self, callback: Callable[[], None]) -> None:
        if self._loop is None:
            raise RuntimeError("NullAuditTrail.after_commit called before start()")
        self._loop.call_soon(callback)

    def add_failure_listener(self, listener: Callable[[Exception | None], None]) -> None:
        """Never calls ``listener``: nothing can fail."""

    def record_message(self, session_id: str, direction: str, raw: bytes, **_fields: Any) -> None:
        pass

    def record_command(self, command: Command, *, ts_us: int | None = None) -> int:
        seq = self._next_command_seq
        self._next_command_seq += 1
        return seq

    def record_decision(self, **_fields: Any) -> None:
        pass

    def record_event(self, event: Event, *, command_seq: int, ts_us: int | None = None) -> None:
        pass

    def record_alert(self, **_fields: Any) -> None:
        pass

    def record_limit_change(self, **_fields: Any) -> None:
        pass

    def record_halt(self, action: HaltAction, **_fields: Any) -> None:
        pass

    def record_session_event(self, session_id: str, kind: SessionEventKind, **_fields: Any) -> None:
        pass

    def save_session_state(
        self,
        session_id: str,
        *,
        next_sender_seq_num: int,
        next_target_seq_num: int,
        creation_time_us: int | None = None,
    ) -> None:
        stored = self._sessions.get(session_id)
        if creation_time_us is None:
            creation_time_us = stored.creation_time_us if stored is not None else self.now_us()
        self._sessions[session_id] = SessionState(
            session_id, next_sender_seq_num, next_target_seq_num, creation_time_us
        )

    def load_session_state(self, session_id: str) -> SessionState | None:
        return self._sessions.get(session_id)

    def load_outbound(
        self, session_id: str, begin_seq_no: int, end_seq_no: int
    ) -> list[tuple[int, bytes]]:
        return []

    def load_journal(self) -> Iterator[tuple[int, Command]]:
        return iter(())

    def load_settings(self) -> Mapping[tuple[str, str], str | None]:
        return {}

    def check(self) -> None:
        pass
