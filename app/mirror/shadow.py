"""The comparison side's own servers (the candidate, the secondary): one connection per application
connection, fed the application's commands in causal order, bounded, and never in the way.

Connections: an application connection that has set no connection state (SELECT, MULTI, SUBSCRIBE,
HELLO, a blocking command... policy.PINNING) has its commands sent on one pipelined connection per server
shared with every other such connection; the first pinning command gives it its own connection to each
server, used once its commands on the shared one are answered.

Causal order: a command that reached the proxy after the primary had answered another (on any
connection) is sent to a shadow server only once that server has answered the other one too, so that
the application's own ordering between its connections (SUBSCRIBE answered, then PUBLISH elsewhere; SET
answered, then GET elsewhere) holds on every server. Falling behind: beyond Limits.max_pending commands
(or bytes) not yet answered, new commands are dropped from that server's comparison (never from the
primary) and counted, and the server is out of sync from then on. A server that closes its connections
and cannot be reached again, or answers nothing for Limits.lost_after_s, is lost: the report says when.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from typing import Any

from app.document import now
from app.mirror.framing import encode
from app.mirror.lanes import Entry, Lane
from app.mirror.policy import CLIENT_ID_ARGUMENTS, CONNECTION_STATE, Limits, without_credentials

INFINITE = float("inf")
DROPPED = "dropped: {name} behind (out of sync from then on)"
LOST = "{name} lost"
CLOSED = "{name} closed the connection"
ABANDONED = "{name} connection no longer in step (connection state dropped)"


@dataclass(frozen=True)
class Endpoint:
    """Where a server is and how the mirror logs in to it (its own credentials, never the application's)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    db: int = 0
    tls: bool = False

    def setup_commands(self, protocol: int = 2) -> list[tuple[bytes, ...]]:
        """The mirror's own login, database and RESP version, sent first on each of its connections."""
        commands: list[tuple[bytes, ...]] = []
        if self.password is not None:
            user = (self.username.encode(),) if self.username else ()
            commands.append((b"AUTH", *user, self.password.encode()))
        if self.db:
            commands.append((b"SELECT", str(self.db).encode()))
        if protocol == 3:
            commands.append((b"HELLO", b"3"))
        return commands

    def ssl_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context() if self.tls else None


class Backend:
    """One shadow server: its connections, its backlog, and what happened to it."""

    def __init__(self, name: str, endpoint: Endpoint, limits: Limits) -> None:
        self.name, self.endpoint, self.limits = name, endpoint, limits
        self.lanes: set[ShadowLane] = set()
        self.pending = 0
        self.pending_bytes = 0
        self.sent = 0
        self.dropped = 0
        self.abandoned = 0
        self.out_of_sync_since: str | None = None
        self.lost_at: str | None = None
        self.lost_reason: str | None = None
        self.connections = 0
        self.connections_lost = 0
        self.max_lag_s = 0.0
        # Answered by the primary, not yet here (causal order): on the shared connection, and on others.
        self.outstanding_shared: deque[Entry] = deque()
        self.outstanding_pinned: deque[Entry] = deque()
        self.blocked: set[ShadowLane] = set()
        self.shared: ShadowLane | None = None
        self.raw: dict[int, Any] = {}  # RESP version -> raw_lanes.RawShadowLane: stateless connections' commands
        self.client_ids: dict[int, Any] = {}
        self._probing = False
        self._first_close_at: str | None = None

    # --- causal order and lag ---------------------------------------------------------------------

    def _frontier(self, outstanding: deque[Entry]) -> float:
        name = self.name
        while outstanding and outstanding[0].done_on(name):
            outstanding.popleft()
        return outstanding[0].seq if outstanding else INFINITE

    def pinned_frontier(self) -> float:
        return self._frontier(self.outstanding_pinned)

    def frontier(self, lane: "ShadowLane") -> float:
        """The primary-answer number before which everything a lane must wait for is answered here. The
        shared connections answer in their own order, so they wait only for the pinned ones."""
        pinned = self._frontier(self.outstanding_pinned)
        if lane.shared:
            return pinned
        raw = min((lane.frontier() for lane in self.raw.values()), default=INFINITE)
        return min(pinned, self._frontier(self.outstanding_shared), raw)

    def lag_s(self, clock: float) -> float:
        """How long ago the primary answered the oldest command this server has not answered yet."""
        heads = [q[0].primary_at for q in (self.outstanding_shared, self.outstanding_pinned)
                 if self._frontier(q) != INFINITE]
        for lane in self.raw.values():
            oldest = lane.oldest()
            if oldest is not None and oldest.seq >= 0:
                heads.append(oldest.primary_at)
        lag = clock - min(heads) if heads else 0.0
        self.max_lag_s = max(self.max_lag_s, lag)
        return lag

    def wake(self) -> None:
        if not self.blocked:
            return
        lanes = list(self.blocked)
        self.blocked.clear()
        for lane in lanes:
            lane.pump()
            lane.flush()

    def shared_lane(self) -> "ShadowLane":
        lane = self.shared
        if lane is None or lane.state == "closed":
            lane = self.shared = ShadowLane(self, SharedOwner(self), self.client_ids, shared=True)
        return lane

    def flush_shared(self) -> None:
        lane = self.shared
        if lane is not None:
            if lane.queue:
                lane.pump()
            lane.flush()

    def close(self, reason: str) -> None:
        for lane in list(self.lanes):
            lane.abandon(reason)

    # --- falling behind ----------------------------------------------------------------------------

    def over(self, factor: int = 1) -> bool:
        limits = self.limits
        return self.pending >= limits.max_pending * factor or self.pending_bytes >= limits.max_pending_bytes * factor

    def note_drop(self) -> None:
        self.dropped += 1
        if self.out_of_sync_since is None:
            self.out_of_sync_since = now().isoformat(timespec="milliseconds")

    # --- loss --------------------------------------------------------------------------------------

    def lose(self, reason: str, at: str | None = None) -> None:
        if self.lost_at is not None:
            return
        self.lost_at = at or now().isoformat(timespec="milliseconds")
        self.lost_reason = reason
        if self.out_of_sync_since is None:
            self.out_of_sync_since = self.lost_at
        for lane in list(self.lanes):
            lane.abandon(LOST.format(name=self.name))

    def lane_closed(self, lane: "ShadowLane", detail: str) -> None:
        """A connection the server closed (not the mirror): one connection, or the whole server?"""
        self.connections_lost += 1
        self._first_close_at = self._first_close_at or now().isoformat(timespec="milliseconds")
        if not self._probing and self.lost_at is None:
            self._probing = True
            spawn(self._probe(detail))

    async def _probe(self, detail: str) -> None:
        """Can a new connection still get a PONG? If not, the server was lost at its first closed connection."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.endpoint.host, self.endpoint.port, ssl=self.endpoint.ssl_context()),
                self.limits.connect_timeout_s)
            try:
                writer.write(b"".join(encode(c) for c in self.endpoint.setup_commands()) + encode((b"PING",)))
                deadline = self.limits.connect_timeout_s
                data = await asyncio.wait_for(reader.read(4096), deadline)
                if b"PONG" not in data:
                    raise ConnectionError(f"no PONG: {data[:60]!r}")
            finally:
                writer.close()
            self._first_close_at = None
        except (OSError, asyncio.TimeoutError, ConnectionError) as exc:
            self.lose(f"{detail}; reconnecting failed: {exc or type(exc).__name__}", self._first_close_at)
        finally:
            self._probing = False

    def state(self) -> dict[str, Any]:
        return {"pending": self.pending, "pending_bytes": self.pending_bytes, "sent": self.sent,
                "dropped": self.dropped, "abandoned_connections": self.abandoned,
                "out_of_sync_since": self.out_of_sync_since, "lost_at": self.lost_at,
                "lost_reason": self.lost_reason, "connections": self.connections,
                "connections_lost": self.connections_lost, "max_lag_ms": round(self.max_lag_s * 1000, 1)}


class SharedOwner:
    """The owner of a shared connection: each reply goes to the session its command came from."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def answered(self, lane: Lane, entry: Entry, value: Any) -> None:
        entry.session.answered(lane, entry, value)

    def settled(self, entry: Entry) -> None:
        entry.session.settled(entry)

    def on_message(self) -> None:
        pass  # nothing subscribes on a shared connection (SUBSCRIBE pins)

    def lane_finished(self, lane: "ShadowLane") -> None:
        if self.backend.shared is lane:
            self.backend.shared = None


class ShadowLane(Lane, asyncio.Protocol):
    """One connection to a shadow server: sends in causal order, pairs the replies."""

    def __init__(self, backend: Backend, owner: Any, client_ids: dict[int, Any], shared: bool = False,
                 after: Entry | None = None, protocol: int = 2) -> None:
        Lane.__init__(self, backend.name, owner)
        self.protocol = protocol  # RESP version the connection starts in (a session that said HELLO 3 elsewhere)
        self.backend = backend
        self.shared = shared
        self.after = after  # the session's last command on the shared connection: answered before this one sends
        self.client_ids = client_ids  # the primary's client id -> its session (CLIENT UNBLOCK <id>)
        self.queue: deque[Entry] = deque()  # waiting to be sent (connecting, or causal order)
        self.out: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.state = "connecting"
        self.close_when_idle = False
        self.setup_left = 0
        backend.lanes.add(self)
        if backend.lost_at is not None:
            self.state = "closed"
            backend.lanes.discard(self)
        else:
            backend.connections += 1
            spawn(self._connect())

    async def _connect(self) -> None:
        await connect_lane(self)

    # --- asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not lane_opened(self, transport):
            return
        self.pump()
        self.flush()

    def data_received(self, data: bytes) -> None:
        if self.setup_left:
            self._setup_replies(data)
        else:
            self.feed(data)
        self.backend.wake()
        if self.close_when_idle:
            self.close_if_idle()

    def _setup_replies(self, data: bytes) -> None:
        """The replies to the mirror's own AUTH/SELECT come first: checked, never compared."""
        frames = self.framer.feed(data)
        while frames and self.setup_left:
            frame = frames.pop(0)
            self.setup_left -= 1
            if isinstance(frame, Exception):
                self.backend.lose(f"refused the mirror's login or SELECT: {str(frame)[:80]}")
                return
        for frame in frames:
            self.frame(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state == "closed":
            return
        expected = self.close_when_idle or any(e.command == "QUIT" for e in self.fifo)
        self.abandon(CLOSED.format(name=self.name))
        if not expected:
            self.backend.lane_closed(self, f"{self.name} closed a connection ({exc or 'end of stream'})")

    # --- sending -------------------------------------------------------------------------------------

    def submit(self, entry: Entry, in_tx: bool) -> None:
        """Give a command to this server, or drop it from its comparison when the server is behind."""
        backend = self.backend
        if self.state == "closed":
            entry.missing[self.name] = self._gone_reason()
            return
        if backend.over() and (self.shared or (not in_tx and entry.command not in CONNECTION_STATE)):
            backend.note_drop()
            entry.missing[self.name] = DROPPED.format(name=self.name)
            return
        if backend.over(backend.limits.hard_factor):
            backend.note_drop()
            backend.abandoned += 1
            entry.missing[self.name] = ABANDONED.format(name=self.name)
            self.abandon(ABANDONED.format(name=self.name))
            return
        backend.pending += 1
        backend.pending_bytes += entry.size
        entry.shadows.append(self)
        entry.awaiting += 1  # counted here; push() below counts again only once sent
        self.queue.append(entry)

    def _gone_reason(self) -> str:
        return LOST.format(name=self.name) if self.backend.lost_at else CLOSED.format(name=self.name)

    def pump(self) -> None:
        """Move queued commands to the wire, as far as causal order allows."""
        if self.state != "open" or not self.queue:
            return
        queue, backend = self.queue, self.backend
        if self.after is not None:
            if not self.after.done_on(self.name):
                backend.blocked.add(self)
                return
            self.after = None
        frontier = backend.frontier(self)
        out = self.out
        while queue:
            entry = queue[0]
            if entry.barrier > frontier:
                frontier = backend.frontier(self)
                if entry.barrier > frontier:
                    backend.blocked.add(self)
                    return
            queue.popleft()
            entry.awaiting -= 1  # push() counts it on the lane's queue
            out.append(encode(self._wire_args(entry)))
            backend.sent += 1
            self.push(entry)

    def flush(self) -> None:
        if self.out and self.transport is not None:
            self.transport.write(b"".join(self.out) if len(self.out) > 1 else self.out[0])
            self.out.clear()

    def _wire_args(self, entry: Entry) -> tuple[bytes, ...]:
        args = entry.call.args
        if entry.command == "HELLO":
            return without_credentials(args)  # args are redacted already: the clause is dropped whole
        rule = CLIENT_ID_ARGUMENTS.get(entry.command)
        if rule is not None:
            word = rule.split(":", 1)[1].encode()
            upper = [a.upper() for a in args]
            if word in upper and upper.index(word) + 1 < len(args):
                index = upper.index(word) + 1
                session = self.client_ids.get(_int(args[index]))
                lane = session.shadow_lane(self.name) if session is not None else None
                if lane is not None and lane.client_id is not None:
                    return args[:index] + (str(lane.client_id).encode(),) + args[index + 1:]
        return args

    # --- the end -------------------------------------------------------------------------------------

    def close_if_idle(self) -> None:
        self.close_when_idle = True
        if not self.fifo and not self.queue and self.state != "closed":
            self.state = "closed"
            self.backend.lanes.discard(self)
            self.backend.blocked.discard(self)
            if self.transport is not None:
                self.transport.close()
            self.owner.lane_finished(self)

    def abandon(self, reason: str) -> None:
        """Give up this connection: every command still waiting here has no reply, for `reason`."""
        if self.state == "closed":
            return
        self.state = "closed"
        self.backend.lanes.discard(self)
        self.backend.blocked.discard(self)
        if self.transport is not None:
            self.transport.close()
        waiting = list(self.queue)
        self.queue.clear()
        for entry in waiting:
            entry.missing[self.name] = reason
            self.backend.pending -= 1
            self.backend.pending_bytes -= entry.size
            entry.awaiting -= 1
            self.owner.settled(entry)
        self.fail_all(reason)
        self.owner.lane_finished(self)


_RUNNING: set[asyncio.Task[Any]] = set()  # the loop keeps only weak references to tasks


async def connect_lane(lane: Any) -> None:
    """Open a shadow lane's connection (it is its own protocol); a server that refuses it is lost."""
    backend = lane.backend
    endpoint = backend.endpoint
    try:
        await asyncio.wait_for(asyncio.get_running_loop().create_connection(
            lambda: lane, endpoint.host, endpoint.port, ssl=endpoint.ssl_context()), backend.limits.connect_timeout_s)
    except (OSError, asyncio.TimeoutError) as exc:
        if lane.state != "closed":
            backend.lose(f"cannot connect: {exc or type(exc).__name__}")
            lane.abandon(LOST.format(name=lane.name))


def lane_opened(lane: Any, transport: asyncio.BaseTransport) -> bool:
    """A shadow lane's connection is up: the mirror's own login (and HELLO) first, their replies
    checked, never compared; False when the lane was given up meanwhile."""
    if lane.state == "closed":
        transport.close()
        return False
    lane.transport = transport
    setup = lane.backend.endpoint.setup_commands(lane.protocol)
    if setup:
        lane.setup_left = len(setup)
        transport.write(b"".join(encode(c) for c in setup))  # type: ignore[attr-defined]
    lane.state = "open"
    return True


def spawn(coroutine: Any) -> asyncio.Task[Any]:
    """A background task that cannot be garbage-collected before it ends."""
    task = asyncio.get_running_loop().create_task(coroutine)
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return task


def _int(raw: bytes) -> int | None:
    try:
        return int(raw)
    except ValueError:
        return None
