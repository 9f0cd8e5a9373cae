"""The application's path: a byte pipe between each application connection and the primary, and a tee
of both byte streams into the comparison side.

The pipe never parses: client bytes are written to the primary, and the primary's bytes to the client,
as they arrive (with back-pressure both ways). Each chunk is also appended to its session's tee, and the
comparison side frames and sends the tee once per turn of the event loop, after every chunk of that turn
has been forwarded. A shadow server that is slow, refuses, or dies never reaches this path.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from app.mirror.collect import OUT_OF_SYNC_NOTE, Collector
from app.mirror.framing import ReplyFramer, encode
from app.mirror.policy import Limits
from app.mirror.session import Session
from app.mirror.shadow import Backend, Endpoint, spawn

PRIMARY_REFUSED = b"-ERR mirror: the primary refused the mirror's own login or SELECT\r\n"
PRIMARY_UNREACHABLE = b"-ERR mirror: cannot reach the primary\r\n"


class Mirror:
    """All sessions, the shadow servers and the collector, on one event loop."""

    def __init__(self, primary: Endpoint, baseline: str, backends: list[Backend], collector: Collector,
                 limits: Limits) -> None:
        self.primary_endpoint, self.baseline = primary, baseline
        self.backends, self.collector, self.limits = backends, collector, limits
        self.candidate = collector.candidate
        self.candidate_backend = next(b for b in backends if b.name == collector.candidate)
        self._out_of_sync_note = OUT_OF_SYNC_NOTE.format(name=self.candidate)
        self.sessions: set[Session] = set()
        self.client_ids: dict[int, Session] = {}
        self.primary_seq = 0
        self.sessions_opened = 0
        self.sessions_not_compared: dict[str, int] = {}
        self.primary_failures = 0
        self._ready: list[Session] = []
        self._tick_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.server: asyncio.AbstractServer | None = None

    @property
    def sync_note(self) -> str:
        return self._out_of_sync_note if self.candidate_backend.out_of_sync_since else ""

    async def listen(self, host: str, port: int) -> tuple[str, int]:
        self._loop = asyncio.get_running_loop()
        self.server = await self._loop.create_server(lambda: ClientSide(self), host, port)
        return self.server.sockets[0].getsockname()[:2]

    # --- the comparison side's turn ---------------------------------------------------------------------

    def schedule(self, session: Session) -> None:
        self._ready.append(session)
        if not self._tick_scheduled:
            self._tick_scheduled = True
            self._loop.call_soon(self._tick)  # type: ignore[union-attr]

    def _tick(self) -> None:
        self._tick_scheduled = False
        ready, self._ready = self._ready, []
        seen: set[int] = set()
        for session in ready:
            if id(session) not in seen:
                seen.add(id(session))
                session.process()
        for backend in self.backends:
            backend.flush_shared()  # one write per server for every stateless connection's commands

    def open_session(self) -> Session:
        self.sessions_opened += 1
        session = Session(self, self.sessions_opened)
        self.sessions.add(session)
        return session

    def session_done(self, session: Session) -> None:
        if session in self.sessions:
            self.sessions.discard(session)
            session.flush_messages()
            for cid in [cid for cid, owner in self.client_ids.items() if owner is session]:
                del self.client_ids[cid]

    # --- every second --------------------------------------------------------------------------------

    def sweep(self) -> None:
        """Lag, and a server that answered nothing for too long is lost."""
        clock = time.monotonic()
        for backend in self.backends:
            if backend.lost_at is None and backend.lag_s(clock) > self.limits.lost_after_s:
                backend.lose(f"answered nothing the primary answered {self.limits.lost_after_s:g} s earlier")

    def snapshot(self) -> dict[str, Any]:
        """What the status line shows (measured here, drawn by status.py)."""
        clock = time.monotonic()
        collector = self.collector
        cand = self.candidate_backend
        return {"commands": collector.commands, "differences": collector.differences, "noise": collector.noise,
                "dropped": cand.dropped, "lag_ms": round(cand.lag_s(clock) * 1000) if cand.lost_at is None else None,
                "connections": len(self.sessions), "out_of_sync_since": cand.out_of_sync_since,
                "lost_at": cand.lost_at, "candidate": self.candidate}

    async def drain(self, timeout_s: float) -> None:
        """Wait (bounded) for the shadow servers' last replies."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(b.pending and b.lost_at is None for b in self.backends):
            await asyncio.sleep(0.02)

    def close(self) -> None:
        """Stop: every session's lanes closed, every command still waiting counted as not compared."""
        if self.server is not None:
            self.server.close()
        for session in list(self.sessions):
            session.shutdown()
        for backend in self.backends:
            backend.close("the mirror stopped before the {name} answered".format(name=backend.name))
        for session in list(self.sessions):
            self.session_done(session)


class ClientSide(asyncio.Protocol):
    """The application's connection: bytes to the primary as they come, and a copy to the tee."""

    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror
        self.transport: asyncio.Transport | None = None
        self.primary: PrimarySide | None = None
        self.primary_write = None
        self.early: list[bytes] = []  # before the primary connection is up
        self.session: Session | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=1 << 20)  # type: ignore[attr-defined]
        self.session = self.mirror.open_session()
        self.primary = PrimarySide(self)
        spawn(self._connect())

    async def _connect(self) -> None:
        endpoint = self.mirror.primary_endpoint
        try:
            await asyncio.wait_for(asyncio.get_running_loop().create_connection(
                lambda: self.primary, endpoint.host, endpoint.port, ssl=endpoint.ssl_context()),
                self.mirror.limits.connect_timeout_s)
        except (OSError, asyncio.TimeoutError):
            self.mirror.primary_failures += 1
            if self.transport is not None:
                self.transport.write(PRIMARY_UNREACHABLE)
                self.transport.close()

    def primary_ready(self, transport: asyncio.Transport) -> None:
        self.primary_write = transport.write
        for chunk in self.early:
            transport.write(chunk)
        self.early = []

    def data_received(self, data: bytes) -> None:
        write = self.primary_write
        if write is not None:
            write(data)
        else:
            self.early.append(data)
        session = self.session
        session.requests.append(data)
        self.mirror.schedule(session)

    def connection_lost(self, exc: Exception | None) -> None:
        primary = self.primary
        if primary is not None and primary.transport is not None:
            primary.transport.close()
        self.session.close()

    def pause_writing(self) -> None:  # the application reads slowly: slow the primary down, not the mirror
        if self.primary and self.primary.transport:
            self.primary.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.primary and self.primary.transport:
            self.primary.transport.resume_reading()


class PrimarySide(asyncio.Protocol):
    """The primary's connection for one application connection: its bytes go back unchanged."""

    def __init__(self, client: ClientSide) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.setup_left = 0
        self.setup_framer: ReplyFramer | None = None
        self.client_write = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=1 << 20)  # type: ignore[attr-defined]
        client = self.client
        if client.transport is None or client.transport.is_closing():
            transport.close()
            return
        self.client_write = client.transport.write
        setup = client.mirror.primary_endpoint.setup_commands()
        if setup:  # the mirror's own login: its replies are read here and never reach the application
            self.setup_left = len(setup)
            self.setup_framer = ReplyFramer()
            transport.write(b"".join(encode(c) for c in setup))  # type: ignore[attr-defined]
        else:
            client.primary_ready(self.transport)

    def data_received(self, data: bytes) -> None:
        if self.setup_left:
            self._setup(data)
            return
        self.client_write(data)
        session = self.client.session
        session.replies.append(data)
        self.client.mirror.schedule(session)

    def _setup(self, data: bytes) -> None:
        for frame in self.setup_framer.feed(data):  # type: ignore[union-attr]
            self.setup_left -= 1
            if isinstance(frame, Exception):
                self.client.mirror.primary_failures += 1
                self.client.transport.write(PRIMARY_REFUSED)
                self.client.transport.close()
                self.transport.close()
                return
        if not self.setup_left:
            self.client.primary_ready(self.transport)

    def connection_lost(self, exc: Exception | None) -> None:
        client = self.client.transport
        if client is not None:
            client.close()  # what the primary sent is still written first

    def pause_writing(self) -> None:  # the primary reads slowly: stop reading the application
        if self.client.transport:
            self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.client.transport:
            self.client.transport.resume_reading()
