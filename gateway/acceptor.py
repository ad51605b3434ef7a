"""TCP acceptor: frames bytes into FIX messages and binds connections to sessions.

Several sessions may share one listening port; the first message of a connection must be
a Logon (A) whose BeginString (8), SenderCompID (49) and TargetCompID (56) name a
configured session. Anything else closes the connection without a Logout, because the
venue cannot know which session's sequence numbers a reply would use.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import socket

from gateway import tags
from gateway.codec import FixMessage, FrameDecoder, GarbledFrame
from gateway.errors import ApplianceError, MessageTooLargeError
from gateway.session import Session, SessionState
from gateway.tags import MsgType
from gateway.timefmt import parse_utc_timestamp

logger = logging.getLogger(__name__)

SessionKey = tuple[str, str, str]  # (BeginString, venue SenderCompID, broker CompID)


class Acceptor:
    """Listens on the sessions' ports and routes each connection to its session."""

    def __init__(self, sessions: list[Session]) -> None:
        self.sessions: dict[SessionKey, Session] = {
            (s.begin_string, s.settings.sender_comp_id, s.settings.target_comp_id): s
            for s in sessions
        }
        self.connections: set[FixConnection] = set()
        self._servers: list[asyncio.AbstractServer] = []

    async def start(self) -> dict[str, int]:
        """Listen on every configured address; return the bound port of each session.

        A SocketAcceptPort of 0 binds an ephemeral port, shared by every session that
        names the same host and port 0.
        """
        loop = asyncio.get_running_loop()
        by_address: dict[tuple[str, int], list[Session]] = {}
        for session in self.sessions.values():
            address = (session.settings.socket_accept_host, session.settings.socket_accept_port)
            by_address.setdefault(address, []).append(session)

        ports: dict[str, int] = {}
        for (host, port), sessions in by_address.items():
            max_size = max(s.settings.max_message_size_bytes for s in sessions)
            try:
                server = await loop.create_server(
                    lambda: FixConnection(self, max_size), host, port, reuse_address=True
                )
            except OSError as exc:
                await self.stop()
                raise ApplianceError(
                    f"cannot listen on {host}:{port} (SocketAcceptHost and SocketAcceptPort of "
                    f"{', '.join(s.session_id for s in sessions)}): {exc.strerror or exc}; "
                    "choose a free port and a local address, or stop the process using it"
                ) from exc
            self._servers.append(server)
            bound_port = server.sockets[0].getsockname()[1]
            logger.info(
                "listening on %s:%d for %s", host, bound_port,
                ", ".join(s.session_id for s in sessions),
            )
            for session in sessions:
                ports[session.session_id] = bound_port
        return ports

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        for server in self._servers:
            server.close()
        for connection in list(self.connections):
            connection.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    def find_session(self, message: FixMessage) -> Session | None:
        key = (
            message.begin_string,
            message.get_str(tags.TARGET_COMP_ID) or "",
            message.get_str(tags.SENDER_COMP_ID) or "",
        )
        return self.sessions.get(key)


class FixConnection(asyncio.Protocol):
    """One TCP connection: framing, then the bound session's message handling."""

    def __init__(self, acceptor: Acceptor, max_message_size: int) -> None:
        self.acceptor = acceptor
        self.decoder = FrameDecoder(max_message_size)
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self.peer = "?"

    # The Connection protocol of gateway.session.
    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    @property
    def is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peername = transport.get_extra_info("peername")
        self.peer = f"{peername[0]}:{peername[1]}" if peername else "?"
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.acceptor.connections.add(self)
        logger.debug("connection from %s", self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.acceptor.connections.discard(self)
        session = self.session
        self.session = None
        self.transport = None
        if session is not None and session.connection is self:
            session.on_disconnect()

    def data_received(self, data: bytes) -> None:
        self.decoder.feed(data)
        while not self.is_closing:
            try:
                frame = self.decoder.next_frame()
            except MessageTooLargeError as exc:
                logger.warning("%s: %s; disconnecting", self._name(), exc)
                self._drop()
                return
            if frame is None:
                return
            if isinstance(frame, GarbledFrame):
                if self.session is None:
                    # A garbled Logon (A) cannot open a session, and no session's
                    # sequence numbers could carry a reply.
                    logger.warning("%s: garbled first message: %s; disconnecting", self.peer, frame.reason)
                    self._drop()
                    return
                # A garbled message is ignored and does not advance the expected
                # MsgSeqNum (34): the peer's next message then reveals the gap.
                logger.warning("%s: garbled message ignored: %s", self._name(), frame.reason)
                continue
            self._on_frame(frame)

    def _on_frame(self, message: FixMessage) -> None:
        session = self.session
        if session is not None:
            if session.connection is self:
                session.on_message(message)
            else:
                self._drop()
            return
        self._on_first_message(message)

    def _on_first_message(self, message: FixMessage) -> None:
        if message.msg_type != MsgType.LOGON:
            logger.warning(
                "%s: first message has MsgType (35) %r, not Logon; disconnecting",
                self.peer, message.msg_type,
            )
            self._drop()
            return
        session = self.acceptor.find_session(message)
        if session is None:
            logger.warning(
                "%s: Logon for unknown session BeginString=%r SenderCompID=%r TargetCompID=%r; "
                "disconnecting",
                self.peer, message.begin_string, message.get_str(tags.SENDER_COMP_ID),
                message.get_str(tags.TARGET_COMP_ID),
            )
            self._drop()
            return
        if session.state is not SessionState.DISCONNECTED:
            logger.warning(
                "%s: Logon from %s while the session is already logged on from %s; "
                "disconnecting the new connection",
                session.session_id, self.peer,
                session.connection.peer if session.connection else "?",
            )
            self._drop()
            return
        now = datetime.datetime.now(datetime.timezone.utc)
        if not session.settings.is_session_time(now):
            logger.warning(
                "%s: Logon from %s outside the session time %s-%s UTC; disconnecting",
                session.session_id, self.peer, session.settings.start_time,
                session.settings.end_time,
            )
            self._drop()
            return
        if session.settings.check_latency and not _is_logon_time_valid(message, session):
            logger.warning(
                "%s: Logon from %s rejected: SendingTime (52) %r is not within %ss",
                session.session_id, self.peer, message.get_str(tags.SENDING_TIME),
                session.settings.max_latency_s,
            )
            self._drop()
            return
        self.session = session
        session.on_logon(message, self)

    def _drop(self) -> None:
        self.close()

    def _name(self) -> str:
        return self.session.session_id if self.session else self.peer


def _is_logon_time_valid(message: FixMessage, session: Session) -> bool:
    value = message.get_str(tags.SENDING_TIME)
    if value is None:
        return False
    try:
        sending_time_us = parse_utc_timestamp(value)
    except ValueError:
        return False
    skew_us = abs(session.audit.now_us() - sending_time_us)
    return skew_us <= session.settings.max_latency_s * 1_000_000
