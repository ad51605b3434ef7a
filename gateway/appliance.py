"""The appliance: FIX sessions, pre-trade risk, matching engine and audit trail in one loop.

The order path for one application message reads as a chain of steps:
frame (acceptor) → verify session (Session) → normalise → risk → journal → match →
audit the events → send the reports. The engine is called synchronously: matching
takes microseconds and one thread keeps it deterministic.

At start the engine is rebuilt by replaying the command journal from the audit trail,
so a restart resumes the same books.
"""

from __future__ import annotations

import asyncio
import datetime
import fcntl
import collections
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from engine.commands import (
    AdvanceTime,
    Command,
    EndOfDay,
    MassCancel,
    NewOrder,
    OrderStatusRequest,
    RejectOrder,
    ReplaceOrder,
)
from engine.engine import MatchingEngine, compiled_status
from engine.instrument import Instrument
from engine.events import CancelReject, ExecutionEvent, Trade
from engine.orders import CxlRejReason, CxlRejResponseTo, ExecType
from gateway import reports
from gateway.acceptor import Acceptor
from gateway.codec import FixMessage
from gateway.errors import ApplianceError, ConfigError
from gateway.marketdata import MARKET_DATA_REQUEST, MarketDataPublisher
from gateway.normalise import BusinessReject, MassCancelRejected, SessionReject, normalise
from gateway.echo import EchoApplication
from gateway.session import Application, Session, SessionState
from gateway.settings import SessionSettings
from gateway.tags import POSS_RESEND, MsgType, SessionRejectReason
from gateway.timefmt import format_utc_timestamp
from gateway.venue import VenueConfig
from surveillance.audit import AuditTrail, SessionEventKind
from surveillance.audit_native import load_cwriter
from surveillance.audit_guard import OrderEntryGuard
from surveillance.audit_limits import record_instrument_limits
from surveillance.detectors import Alert, PriceMoveDetector, WashTradeDetector
from surveillance.risk import RiskGate

logger = logging.getLogger(__name__)

TIMER_INTERVAL_S = 0.1
APP_MODES = ("engine", "echo")
LOGOUT_WAIT_S = 2.0
_LEGACY_VERSIONS = frozenset({"FIX.4.0", "FIX.4.1"})  # no BusinessMessageReject (j)


@dataclass
class ApplianceStats:
    """Counters for the run summary; the audit trail is the record, these are totals."""

    orders_received: int = 0
    executions: int = 0
    rejects_by_reason: collections.Counter[str] = field(default_factory=collections.Counter)
    alerts: int = 0
    journal_replayed: int = 0


class Appliance:
    """Runs the acceptor sessions against one engine, risk gate and audit trail."""

    def __init__(
        self, sessions: list[SessionSettings], venue: VenueConfig, *, audit_path: Path,
        app: str = "engine", audit: AuditTrail | None = None,
    ) -> None:
        """``app`` is "engine" to route orders to the matching engine, or "echo" to run the
        echo application that FIX session acceptance scripts expect."""
        if not sessions:
            raise ValueError("no FIX sessions configured: add a [SESSION] to the settings file")
        if app not in APP_MODES:
            raise ValueError(f"app {app!r} is not one of {', '.join(APP_MODES)}")
        _check_firm_sessions(venue, sessions)
        self.app = app
        self.session_settings = sessions
        self.venue = venue
        self.audit_path = Path(audit_path)
        # ``audit`` lets the benchmark swap in surveillance.audit_null.NullAuditTrail.
        self.audit = audit if audit is not None else AuditTrail(self.audit_path)
        self.order_entry = OrderEntryGuard(str(self.audit_path))
        self.engine = MatchingEngine(
            [
                Instrument(
                    symbol=i.symbol, tick_size=i.tick_size, lot_size=i.lot_size,
                    reference_price=i.reference_price,
                )
                for i in venue.instruments
            ],
            firms=venue.firms,
        )
        # One str object per listed Symbol (55), which every command for it carries.
        self._symbols = {symbol: symbol for symbol in self.engine.symbols}
        self.market_data = MarketDataPublisher(self.engine)
        self.risk = RiskGate(venue.instruments)
        thresholds = venue.surveillance
        self.detectors: list[WashTradeDetector | PriceMoveDetector] = [
            PriceMoveDetector(thresholds.price_move_alert_pct)
        ]
        if thresholds.wash_trade_alert:
            self.detectors.append(WashTradeDetector())
        self.stats = ApplianceStats()
        self.sessions: dict[str, Session] = {}
        self._acceptor: Acceptor | None = None
        self._timer_task: asyncio.Task[None] | None = None
        self._lock_file: IO[str] | None = None
        # The latest trading day (YYYYMMDD) whose EndOfDay is journaled.
        self._last_end_of_day = ""
        # Sessions logged on now, and whether stop() is logging them out: a venue
        # shutdown is not a disconnect that cancels orders.
        self._logged_on: set[str] = set()
        self._stopping = False

    async def start(self) -> dict[str, int]:
        """Open the audit trail, rebuild the books, listen; return each session's port."""
        self._lock_audit_trail()
        await self.audit.start()
        self.audit.add_failure_listener(self.order_entry.on_audit_failure)
        record_instrument_limits(self.audit, self.venue.instruments)
        self._rebuild_engine()
        application: Application = EchoApplication() if self.app == "echo" else self
        self.sessions = {
            s.session_id: Session(s, self.audit, application) for s in self.session_settings
        }
        self._acceptor = Acceptor(list(self.sessions.values()))
        try:
            ports = await self._acceptor.start()
        except ApplianceError:
            await self.audit.close()
            self._unlock_audit_trail()
            raise
        self._timer_task = asyncio.get_running_loop().create_task(self._run_timers())
        logger.info(
            "appliance started: %d sessions, %d instruments, audit trail %s, %s",
            len(self.sessions), len(self.engine.symbols), self.audit_path, self.extensions,
        )
        return ports

    @property
    def extensions(self) -> str:
        """The compiled extensions this appliance runs with, in words."""
        engine = "with compiled fast paths" if self.engine.compiled else f"in {compiled_status()}"
        writer = "C" if load_cwriter() is not None else "Python"
        return f"matching engine {engine}, {writer} audit writer"

    async def stop(self) -> None:
        """Log every session out, stop listening and commit the audit trail."""
        self._stopping = True
        for session in self.sessions.values():
            if session.state is SessionState.ACTIVE:
                session.send_logout("venue shutting down")
        deadline = asyncio.get_running_loop().time() + LOGOUT_WAIT_S
        while any(s.state is not SessionState.DISCONNECTED for s in self.sessions.values()):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.02)
        if self._timer_task is not None:
            self._timer_task.cancel()
        if self._acceptor is not None:
            await self._acceptor.stop()
        try:
            await self.audit.close()
        finally:
            self._unlock_audit_trail()
        logger.info("appliance stopped; audit trail %s", self.audit_path)

    def _lock_audit_trail(self) -> None:
        """Take an exclusive lock beside the audit database for this process's lifetime.

        Two appliances on one database would interleave journals and sequence numbers, so
        the second one to start stops with an error instead.
        """
        lock_path = self.audit_path.with_name(self.audit_path.name + ".lock")
        lock_file = open(lock_path, "a+")  # noqa: SIM115 - held open until stop()
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            raise ApplianceError(
                f"audit trail {str(self.audit_path)!r} is in use by another fixgw process; "
                "stop that process or pass another --db"
            ) from None
        self._lock_file = lock_file

    def _unlock_audit_trail(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _rebuild_engine(self) -> None:
        count = 0
        for _, command in self.audit.load_journal():
            for event in self.engine.process(command):
                if isinstance(event, Trade):
                    self.risk.on_trade(event)
            if isinstance(command, EndOfDay):
                self._last_end_of_day = max(self._last_end_of_day, command.trade_date)
            count += 1
        self.stats.journal_replayed = count
        if count:
            logger.info("engine rebuilt from %d journaled commands", count)

    async def _run_timers(self) -> None:
        while True:
            await asyncio.sleep(TIMER_INTERVAL_S)
            now_us = self.audit.now_us()
            for session in self.sessions.values():
                session.on_timer(now_us)
            self._expire_orders(now_us)
            self._end_trading_day(now_us)

    def _end_trading_day(self, now_us: int) -> None:
        """Journal EndOfDay once a day, at the venue's end_of_day time (UTC).

        A restart after that time ends the day at once, so Day orders never outlive it.
        """
        end_of_day = self.venue.end_of_day
        if end_of_day is None or self.app != "engine":
            return
        now = datetime.datetime.fromtimestamp(now_us / 1e6, datetime.timezone.utc)
        trade_date = now.strftime("%Y%m%d")
        if now.time() >= end_of_day and trade_date > self._last_end_of_day:
            logger.info("end of trading day %s: expiring Day orders", trade_date)
            self._last_end_of_day = trade_date
            self._execute(EndOfDay(trade_date=trade_date))

    def _expire_orders(self, now_us: int) -> None:
        # The engine reads no clock: GTD orders expire when a journaled AdvanceTime reaches
        # their ExpireTime (126), so replaying the journal expires them at the same point.
        next_expiry_us = self.engine.next_expiry_us()
        if next_expiry_us is not None and next_expiry_us <= now_us and self.app == "engine":
            self._execute(AdvanceTime(ts_us=now_us))

    # ------------------------------------------------------------------ Application

    def on_logon(self, session: Session) -> None:
        self._logged_on.add(session.session_id)
        self.audit.record_session_event(
            session.session_id, SessionEventKind.LOGON, text=_seq_num_text(session)
        )

    def on_logout(self, session: Session) -> None:
        self.market_data.on_logout(session.session_id)
        self.audit.record_session_event(
            session.session_id, SessionEventKind.DISCONNECT,
            text=f"{session.disconnect_reason}; {_seq_num_text(session)}",
        )
        was_logged_on = session.session_id in self._logged_on
        self._logged_on.discard(session.session_id)
        if was_logged_on and session.settings.cancel_on_disconnect and not self._stopping:
            self._cancel_on_disconnect(session)

    def _cancel_on_disconnect(self, session: Session) -> None:
        """Cancel the resting orders of a session whose connection ended.

        The cancel reports are stored under the session's next MsgSeqNums (34), so the
        broker receives them by resend after its next Logon.
        """
        if self.app != "engine":
            return
        if self.audit.failed is not None:
            logger.error(
                "%s: cancel-on-disconnect skipped: the audit trail cannot record (%s); "
                "the session's orders stay in the book",
                session.session_id, self.audit.failed,
            )
            return
        command = MassCancel(
            session_id=session.session_id, cl_ord_id="",
            text="canceled on disconnect: the session has CancelOnDisconnect=Y",
        )
        command_seq, canceled = self._execute(command)
        orders = f"{canceled} resting order{'' if canceled == 1 else 's'} canceled"
        logger.info("%s: cancel-on-disconnect: %s", session.session_id, orders)
        self.audit.record_session_event(
            session.session_id, SessionEventKind.CANCEL_ON_DISCONNECT,
            command_seq=command_seq, text=orders,
        )

    def on_app_message(self, session: Session, message: FixMessage) -> None:
        if message.msg_type == MARKET_DATA_REQUEST:
            for msg_type, body in self.market_data.on_request(session.session_id, message):
                session.send(msg_type, body)
            return
        outcome = normalise(session.session_id, message, self._symbols)
        if isinstance(outcome, NewOrder) and self._is_poss_resend_duplicate(outcome, message):
            # A PossResend (97) order whose ClOrdID (11) the venue already has is the same
            # order sent again, so the venue replies with its current status instead.
            logger.info(
                "%s: PossResend NewOrderSingle %s already received; sending its status",
                session.session_id, outcome.cl_ord_id,
            )
            outcome = OrderStatusRequest(
                session_id=outcome.session_id, cl_ord_id=outcome.cl_ord_id,
                symbol=outcome.symbol, side=outcome.side,
            )
        if isinstance(outcome, SessionReject):
            session.send_reject(
                message, message.get_int(34, None), outcome.reason,
                ref_tag_id=outcome.ref_tag_id, text=outcome.text,
            )
        elif isinstance(outcome, BusinessReject):
            self._send_business_reject(session, message, outcome)
        elif isinstance(outcome, MassCancelRejected):
            body = reports.order_mass_cancel_report(
                outcome.cl_ord_id, "NONE", outcome.mass_cancel_request_type, "0", 0,
                text=outcome.text,
                # MassCancelRejectReason (532) 99 (other) exists from FIX 4.4; FIX 4.3
                # has 0 (mass cancel not supported), which names the case as well.
                reject_reason="0" if session.begin_string == "FIX.4.3" else "99",
            )
            session.send(MsgType.ORDER_MASS_CANCEL_REPORT, body, cl_ord_id=outcome.cl_ord_id)
        else:
            self.submit(session, outcome)

    def _is_poss_resend_duplicate(self, order: NewOrder, message: FixMessage) -> bool:
        return message.get(POSS_RESEND) == b"Y" and self.engine.knows_cl_ord_id(
            order.session_id, order.cl_ord_id
        )

    def _send_business_reject(
        self, session: Session, message: FixMessage, outcome: BusinessReject
    ) -> None:
        if session.begin_string in _LEGACY_VERSIONS:
            session.send_reject(
                message, message.get_int(34, None), SessionRejectReason.INVALID_MSG_TYPE,
                text=outcome.text,
            )
        else:
            session.send_business_reject(message, outcome.reason, outcome.text, outcome.ref_id)

    # ------------------------------------------------------------------ order path

    def submit(self, session: Session, command: Command) -> None:
        """Risk-check, journal and match one command, then report the events."""
        if isinstance(command, (NewOrder, RejectOrder)):
            self.stats.orders_received += 1
        if self.audit.failed is not None:
            # Order entry stops while nothing can be recorded: see surveillance.audit_guard.
            screened = self.order_entry.screen(command)
            if isinstance(screened, CancelReject):
                self._send_cancel_reject(screened, format_utc_timestamp(self.audit.now_us()))
                return
            command = screened
        if isinstance(command, (NewOrder, ReplaceOrder)):
            checked = self._check_risk(session, command)
            if checked is None:
                return
            command = checked

        if isinstance(command, RejectOrder):
            self.stats.rejects_by_reason[command.reason.name] += 1
        _, canceled = self._execute(command)
        if isinstance(command, MassCancel):
            self._send_mass_cancel_report(session, command, canceled)

    def _execute(self, command: Command) -> tuple[int, int]:
        """Journal and match ``command``, send its reports and market data.

        Return the command's journal sequence number and the number of orders it canceled.
        """
        command_seq = self.audit.record_command(command)
        events = self.engine.process(command)
        transact_time = format_utc_timestamp(self.audit.now_us())
        canceled = 0
        for event in events:
            self.audit.record_event(event, command_seq=command_seq)
            if isinstance(event, ExecutionEvent):
                canceled += event.exec_type is ExecType.CANCELED
                self._send_execution_report(event, transact_time)
            elif isinstance(event, CancelReject):
                self._send_cancel_reject(event, transact_time)
            else:
                self._on_trade(event)
        for session_id, msg_type, body in self.market_data.on_events(events):
            subscriber = self.sessions.get(session_id)
            if subscriber is not None:
                subscriber.send(msg_type, body)
        return command_seq, canceled

    def _check_risk(
        self, session: Session, command: NewOrder | ReplaceOrder
    ) -> Command | None:
        """Return the command to journal, or None after sending the reject of a replace."""
        decision = self.risk.check(command)
        self.audit.record_decision(
            session_id=session.session_id,
            cl_ord_id=command.cl_ord_id,
            control=decision.control.value if decision.control else "RISK_ALL",
            accepted=decision.accepted,
            reason_code=decision.control.value if decision.control else "ACCEPTED",
            limit=decision.limit,
            value=decision.value,
            text=decision.text,
            command_seq=None,
        )
        if decision.accepted:
            return command
        logger.info(
            "%s: risk reject of ClOrdID %s: %s", session.session_id, command.cl_ord_id, decision.text
        )
        if isinstance(command, NewOrder):
            assert decision.ord_rej_reason is not None
            return RejectOrder(order=command, reason=decision.ord_rej_reason, text=decision.text)
        self.stats.rejects_by_reason[decision.control.name if decision.control else "RISK"] += 1
        reject = CancelReject(
            session_id=command.session_id,
            cl_ord_id=command.cl_ord_id,
            orig_cl_ord_id=command.orig_cl_ord_id,
            order_id=command.order_id,
            ord_status=None,
            response_to=CxlRejResponseTo.REPLACE,
            reason=CxlRejReason.OTHER,
            text=decision.text,
        )
        self._send_cancel_reject(reject, format_utc_timestamp(self.audit.now_us()))
        return None

    def _on_trade(self, trade: Trade) -> None:
        self.stats.executions += 1
        self.risk.on_trade(trade)
        for detector in self.detectors:
            alert = detector.on_trade(trade)
            if alert is not None:
                self._record_alert(alert, trade)

    def _record_alert(self, alert: Alert, trade: Trade) -> None:
        self.stats.alerts += 1
        # INFO, not WARNING: alerts can come by the hundred and each one is recorded
        # in the audit trail, which is where compliance reads them.
        logger.info("surveillance alert %s: %s", alert.detector, alert.text)
        self.audit.record_alert(
            detector=alert.detector, version=alert.version, score=alert.score,
            threshold=alert.threshold, action="LOGGED", text=alert.text,
            symbol=alert.symbol, session_id=alert.session_id, trade_id=trade.trade_id,
            features={
                "aggressor_session_id": trade.aggressor_session_id,
                "resting_session_id": trade.resting_session_id,
                "aggressor_order_id": trade.aggressor_order_id,
                "resting_order_id": trade.resting_order_id,
                "qty": trade.qty, "price": trade.price,
            },
        )

    def _send_execution_report(self, event: ExecutionEvent, transact_time: str) -> None:
        session = self.sessions.get(event.session_id)
        if session is None:
            logger.error("ExecutionReport %s for unknown session %r dropped", event.exec_id, event.session_id)
            return
        body = reports.execution_report(event, session.begin_string, transact_time)
        session.send(
            MsgType.EXECUTION_REPORT, body, cl_ord_id=event.cl_ord_id, order_id=event.order_id
        )

    def _send_cancel_reject(self, event: CancelReject, transact_time: str) -> None:
        session = self.sessions.get(event.session_id)
        if session is None:
            logger.error("OrderCancelReject for unknown session %r dropped", event.session_id)
            return
        self.stats.rejects_by_reason[f"CANCEL_{event.reason.name}"] += 1
        body = reports.order_cancel_reject(event, transact_time, session.begin_string)
        session.send(
            MsgType.ORDER_CANCEL_REJECT, body, cl_ord_id=event.cl_ord_id, order_id=event.order_id
        )

    def _send_mass_cancel_report(self, session: Session, command: MassCancel, canceled: int) -> None:
        request_type = "1" if command.symbol else "7"
        body = reports.order_mass_cancel_report(
            command.cl_ord_id, command.cl_ord_id, request_type, request_type, canceled
        )
        session.send(MsgType.ORDER_MASS_CANCEL_REPORT, body, cl_ord_id=command.cl_ord_id)


def _seq_num_text(session: Session) -> str:
    """Describe the session's sequence numbers for a LOGON or DISCONNECT session event."""
    return (
        f"next MsgSeqNum (34) expected from the broker {session.next_target_seq_num}, "
        f"next sent {session.next_sender_seq_num}"
    )


def _check_firm_sessions(venue: VenueConfig, sessions: list[SessionSettings]) -> None:
    """Raise ConfigError when a firm names a session that the session settings lack.

    Such a session would trade without its firm's self-match prevention.
    """
    known = {s.session_id for s in sessions}
    for firm in venue.firms:
        for session_id in firm.session_ids:
            if session_id not in known:
                raise ConfigError(
                    f"firm {firm.name!r} in the venue file lists session {session_id!r}, "
                    f"which the session settings do not define; sessions: "
                    f"{', '.join(sorted(known))}. Fix the firm's sessions list in [[firms]]"
                )
