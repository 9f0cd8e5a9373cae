"""The application's path: application connections to the primary, and what the comparison side gets.

An application connection that holds no connection state shares one pipelined primary connection with
every other such connection: its requests are cut at command boundaries (never parsed further), written
once per turn of the event loop for all of them, and the primary's stream is cut at reply boundaries,
each reply going back to its connection byte for byte, as it arrives. Each of those commands is a raw
entry (raw_lanes.py) that the same turn hands, with the same bytes, to the shadow servers.

The first command that needs a connection of its own (policy.needs_own_primary) moves that application
connection, once its shared replies are all back, to its own primary connection: a plain byte pipe from
then on (with back-pressure both ways), whose chunks each way are also appended to its session's tee for
the comparison side (session.py), framed once per turn after every chunk of that turn was forwarded.
A shadow server that is slow, refuses, or dies never reaches this path.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from app.mirror.collect import OUT_OF_SYNC_NOTE, Collector
from app.mirror.framing import FramingError, ReplyFramer, ReplyStream, encode, request_end
from app.mirror.policy import Limits, needs_own_primary
from app.mirror.raw_lanes import Batch, RawEntry, send_batch
from app.mirror.session import STOPPED_REASON, Session
from app.mirror.shadow import Backend, Endpoint, spawn
from app.stream_compare import CommandNames

PRIMARY_REFUSED = b"-ERR mirror: the primary refused the mirror's own login or SELECT\r\n"
PRIMARY_UNREACHABLE = b"-ERR mirror: cannot reach the primary\r\n"
PRIMARY_CLOSED = "the primary closed the shared connection before it answered"
SHARED_PROTOCOLS = {b"": 0, b"2": 2, b"3": 3}  # HELLO's version argument -> version (0: unchanged)


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
        self.shared_primaries: dict[int, SharedPrimary] = {}  # RESP version -> its shared connection
        self.moved_to_own: dict[str, int] = {}  # application connections given their own primary, by why
        self.command_names = CommandNames()  # asked for every stateless command

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

    def primary_hub(self, protocol: int) -> "SharedPrimary":
        hub = self.shared_primaries.get(protocol)
        if hub is None or hub.closed:
            hub = self.shared_primaries[protocol] = SharedPrimary(self, protocol)
        return hub

    def note_moved(self, why: str) -> None:
        self.moved_to_own[why] = self.moved_to_own.get(why, 0) + 1

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
        for hub in list(self.shared_primaries.values()):
            hub.abandon(STOPPED_REASON.format(name=self.baseline))
        for session in list(self.sessions):
            session.shutdown()
        for backend in self.backends:
            backend.close("the mirror stopped before the {name} answered".format(name=backend.name))
        for session in list(self.sessions):
            self.session_done(session)


class SharedPrimary(asyncio.Protocol):
    """One pipelined primary connection for every stateless application connection that speaks one RESP
    version: whole requests in, written once per turn; the reply stream cut at reply boundaries, each
    piece to its connection (a push frame, which answers no command, to none)."""

    def __init__(self, mirror: Mirror, protocol: int) -> None:
        self.mirror, self.protocol = mirror, protocol
        self.pushes = 0
        self.transport: asyncio.Transport | None = None
        self.ready = False
        self.closed = False
        self.out: list[bytes] = []
        self.batch: list[RawEntry] = []  # the commands in out
        self.owed: deque[RawEntry] = deque()  # sent (or to be), not answered, in order
        self.stream = ReplyStream()
        self._flush_scheduled = False
        self.clients: set[ClientSide] = set()  # paused together when the primary reads slowly
        self._loop = asyncio.get_running_loop()
        spawn(self._connect())

    async def _connect(self) -> None:
        endpoint = self.mirror.primary_endpoint
        try:
            await asyncio.wait_for(asyncio.get_running_loop().create_connection(
                lambda: self, endpoint.host, endpoint.port, ssl=endpoint.ssl_context()),
                self.mirror.limits.connect_timeout_s)
        except (OSError, asyncio.TimeoutError):
            self.mirror.primary_failures += 1
            self._fail(PRIMARY_UNREACHABLE)

    def send(self, client: "ClientSide", data: bytes, entries: list[RawEntry]) -> None:
        self.owed.extend(entries)
        self.batch.extend(entries)
        client.shared_owed += len(entries)
        self.out.append(data)
        if self.ready and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """One write for every connection's requests of this turn; then the same bytes to the shadows."""
        self._flush_scheduled = False
        if self.out and self.ready:
            data = b"".join(self.out) if len(self.out) > 1 else self.out[0]
            batch = Batch(data, self.batch, self.mirror.primary_seq, self.protocol)
            self.out, self.batch = [], []
            self.transport.write(data)  # type: ignore[union-attr]
            mirror = self.mirror
            send_batch(mirror.backends, batch, mirror.collector.finish_raw)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=1 << 20)  # type: ignore[attr-defined]
        setup = self.mirror.primary_endpoint.setup_commands(self.protocol)
        if setup:  # the mirror's own login (and HELLO): read here, never given to the application
            self.stream.setup_left = len(setup)
            transport.write(b"".join(encode(c) for c in setup))  # type: ignore[attr-defined]
        else:
            self._ready()

    def _ready(self) -> None:
        self.ready = True
        self.flush()

    def data_received(self, data: bytes) -> None:
        stream = self.stream
        setting_up = stream.setup_left > 0
        try:
            replies = stream.feed(data)
        except FramingError:
            self._fail(b"")
            return
        if stream.refused is not None:
            self.mirror.primary_failures += 1
            self._fail(PRIMARY_REFUSED)
            return
        if stream.setup_left:
            return
        if setting_up:
            self._ready()
        owed, mirror = self.owed, self.mirror
        baseline, clock, done = mirror.baseline, time.monotonic(), []
        group, group_start, group_end, count = None, 0, 0, 0
        for start, end, whole, push in replies:
            if push or not owed:  # answers no command (a RESP3 push): not guessed, not given on
                self.pushes += 1
                if group is not None:
                    group.shared_reply(data[group_start:group_end], count)
                    group = None
                continue
            entry = owed.popleft()
            entry.replies[baseline] = whole
            entry.seq = mirror.primary_seq
            mirror.primary_seq += 1
            entry.primary_at = clock
            done.append(entry)
            if entry.client is not group:
                if group is not None:
                    group.shared_reply(data[group_start:group_end], count)
                group, group_start, count = entry.client, start, 0
            count += 1
            group_end = end
        if group is not None:
            group.shared_reply(data[group_start:group_end], count)
        if stream.rest is not None and owed:  # a reply still coming: what is here so far is the head's
            owed[0].client.shared_reply(data[stream.rest:], 0)
        finish = mirror.collector.finish_raw
        for entry in done:
            entry.left -= 1
            if not entry.left:
                finish(entry)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(b"")

    def _fail(self, reply: bytes) -> None:
        """The shared connection is gone: every application connection still owed a reply on it is closed
        (as the primary closing its own connection would), the others go on over a new one."""
        self.abandon(PRIMARY_CLOSED, reply)

    def abandon(self, reason: str, reply: bytes = b"") -> None:
        """Every command still owed here is not compared, for `reason`."""
        self.closed = True
        self.ready = False
        mirror = self.mirror
        owed, unsent = list(self.owed), self.batch
        self.owed, self.out, self.batch = deque(), [], []
        finish = mirror.collector.finish_raw
        for entry in owed:
            entry.client.primary_gone(reply)
            entry.seq = mirror.primary_seq  # for causal order, as good as answered
            mirror.primary_seq += 1
            entry.give_up(mirror.baseline, reason, finish)
        for entry in unsent:  # never given to the shadows either
            for backend in mirror.backends:
                entry.give_up(backend.name, reason, finish)
        if self.transport is not None:
            self.transport.close()

    def pause_writing(self) -> None:  # the primary reads slowly: stop reading the applications
        for client in self.clients:
            client.transport.pause_reading()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        for client in self.clients:
            client.transport.resume_reading()  # type: ignore[union-attr]


class ClientSide(asyncio.Protocol):
    """The application's connection: whole requests to the shared primary connection, or, once it needs
    one, bytes to its own primary connection as they come; a copy of everything to the tee."""

    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror
        self.transport: asyncio.Transport | None = None
        self.primary: PrimarySide | None = None
        self.primary_write = None
        self.early: list[bytes] = []  # for its own primary connection, before it may be written
        self.session: Session | None = None
        self.hub: SharedPrimary | None = None  # while on the shared primary connection
        self.partial = bytearray()  # an unfinished request (the shared connection takes whole ones)
        self.shared_owed = 0  # replies the shared connection still owes it
        self.last_shared: RawEntry | None = None  # its last command there
        self.protocol = 2  # RESP version: which shared connection it is on

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=1 << 20)  # type: ignore[attr-defined]
        self.session = self.mirror.open_session()
        if self.mirror.limits.share_primary:
            self.hub = self.mirror.primary_hub(self.protocol)
            self.hub.clients.add(self)
        else:
            self._own_primary()

    def _own_primary(self) -> None:
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
            self.primary_gone(PRIMARY_UNREACHABLE)

    def primary_ready(self, transport: asyncio.Transport) -> None:
        if self.shared_owed:
            return  # written once the shared connection has answered everything it was sent
        self.primary_write = transport.write
        for chunk in self.early:
            transport.write(chunk)
        self.early = []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.hub is not None:
            self._to_shared(data)
            return
        if self.primary_write is not None:
            self.primary_write(data)
        else:
            self.early.append(data)
        session = self.session
        session.requests.append(data)
        self.mirror.schedule(session)

    def _to_shared(self, data: bytes) -> None:
        """Whole requests to the shared connection, up to the first that needs a connection of its own."""
        mirror = self.mirror
        if self.hub.closed:  # type: ignore[union-attr]  # the primary closed it while this one owed nothing
            self.hub = mirror.primary_hub(self.protocol)
            self.hub.clients.add(self)
        partial = self.partial
        if partial:
            partial += data
            buf: bytes | bytearray = partial
        else:
            buf = data
        pos, size, entries, why = 0, len(buf), [], None
        session, note, servers, name = self.session, mirror.sync_note, 1 + len(mirror.backends), mirror.command_names.of
        try:
            while pos < size:
                end, command, subcommand, count = request_end(buf, pos)
                if end < 0:
                    if size - pos >= mirror.limits.shared_request_max:
                        why = "a request too big to wait for"
                    break
                if command == b"HELLO" and count <= 2 and subcommand in SHARED_PROTOCOLS:
                    if not self._speak(SHARED_PROTOCOLS[subcommand] or self.protocol, bool(entries)):
                        why = "HELLO"  # a switch with replies still owed in the old version
                        break
                elif needs_own_primary(command, subcommand):
                    why = command.decode("latin-1")
                    break
                entries.append(RawEntry(bytes(buf[pos:end]), name((command, subcommand) if count > 1 else (command,)),
                                        session, self, note, servers))
                pos = end
        except FramingError:
            why = "an inline or malformed request"
        if entries:
            mirror.collector.commands += len(entries)
            self.hub.send(self, data if pos == size and buf is data else bytes(buf[:pos]), entries)  # type: ignore[union-attr]
            self.last_shared = entries[-1]
        if why is not None:
            self._move(bytes(buf[pos:]), why)
        elif partial:
            del partial[:pos]
        elif pos < size:
            self.partial = bytearray(data[pos:])

    def _speak(self, protocol: int, sending: bool) -> bool:
        """HELLO with a version alone: the shared connection of that version from this command on,
        when nothing is owed on the other one (False: the caller moves the connection instead)."""
        if protocol == self.protocol:
            return True
        if sending or self.shared_owed:
            return False
        self.hub.clients.discard(self)  # type: ignore[union-attr]
        self.protocol = protocol
        self.hub = self.mirror.primary_hub(protocol)
        self.hub.clients.add(self)
        return True

    def _move(self, rest: bytes, why: str) -> None:
        """From here on its own primary connection, written once its shared replies are all back, and its
        own connection to each shadow server, used once its shared commands are answered there."""
        mirror, session = self.mirror, self.session
        mirror.note_moved(why)
        self.hub.clients.discard(self)  # type: ignore[union-attr]
        self.hub, self.partial = None, bytearray()
        if self.last_shared is not None:
            session.last_shared = {backend.name: self.last_shared for backend in mirror.backends}
            self.last_shared = None
        session.pin(self.protocol)
        if rest:
            self.early.append(rest)
            session.requests.append(rest)
            mirror.schedule(session)
        self.transport.pause_reading()  # type: ignore[union-attr]  # until its own connection is written
        self._own_primary()

    def shared_reply(self, data: bytes, replies: int) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(data)
        if replies:
            self.shared_owed -= replies
            if not self.shared_owed and self.primary is not None and self.primary.ready:
                self.primary_ready(self.primary.transport)  # type: ignore[arg-type]

    def primary_gone(self, reply: bytes) -> None:
        """The primary closed or refused its connection: close the application's, as the primary would."""
        if self.transport is not None and not self.transport.is_closing():
            if reply:
                self.transport.write(reply)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.hub is not None:
            self.hub.clients.discard(self)
        primary = self.primary
        if primary is not None and primary.transport is not None:
            primary.transport.close()
        self.session.close()

    def pause_writing(self) -> None:  # the application reads slowly: slow the primary down, not the mirror
        if self.hub is not None:
            self.transport.pause_reading()  # type: ignore[union-attr]  # no new requests; the shared one goes on
        elif self.primary and self.primary.transport:
            self.primary.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.hub is not None:
            self.transport.resume_reading()  # type: ignore[union-attr]
        elif self.primary and self.primary.transport:
            self.primary.transport.resume_reading()


class PrimarySide(asyncio.Protocol):
    """The primary's connection for one application connection: its bytes go back unchanged."""

    def __init__(self, client: ClientSide) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.setup_left = 0
        self.setup_framer: ReplyFramer | None = None
        self.client_write = None
        self.ready = False  # the mirror's own login is done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=1 << 20)  # type: ignore[attr-defined]
        client = self.client
        if client.transport is None or client.transport.is_closing():
            transport.close()
            return
        self.client_write = client.transport.write
        setup = client.mirror.primary_endpoint.setup_commands(client.protocol)  # HELLO 3 said on a shared one
        if setup:  # the mirror's own login: its replies are read here and never reach the application
            self.setup_left = len(setup)
            self.setup_framer = ReplyFramer()
            transport.write(b"".join(encode(c) for c in setup))  # type: ignore[attr-defined]
        else:
            self.ready = True
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
            self.ready = True
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
