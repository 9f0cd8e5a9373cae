"""The comparison side of stateless application connections, in raw bytes: their requests (whole, cut by
the proxy) go to each shadow server on one pipelined connection, exactly as the shared primary connection
got them, and each server's reply stream is cut at reply boundaries. Replies that are byte for byte the
same everywhere are counted as identical without being parsed; only replies that differ are parsed and
judged (collect.Collector.finish_raw), as the pinned connections' are.

A stateless connection sets no connection state, so its replies hold no pushes, no pub/sub and no
skipped replies: each reply answers the oldest command sent. Causal order with the pinned connections is
kept both ways, as in shadow.py: a batch goes out only once this server has answered every pinned command
the primary had answered before the batch arrived, and a pinned command waits for the stateless ones the
primary answered before it (Backend.frontier). Falling behind drops whole batches (counted); a lost server
marks everything owed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from app.mirror.framing import FramingError, ReplyStream
from app.mirror.shadow import CLOSED, DROPPED, LOST, Backend, connect_lane, lane_opened, spawn

INFINITE = float("inf")


class RawEntry:
    """One command of a stateless connection: its request bytes and each server's reply bytes."""

    __slots__ = ("raw", "command", "session", "client", "note", "seq", "primary_at", "replies", "missing", "left")

    def __init__(self, raw: bytes, command: str, session: Any, client: Any, note: str, servers: int) -> None:
        self.raw, self.command, self.session, self.client, self.note = raw, command, session, client, note
        self.seq = -1  # order in which the primary answered it (causal order), -1 before
        self.primary_at = 0.0
        self.replies: dict[str, bytes] = {}
        self.missing: dict[str, str] | None = None
        self.left = servers  # servers still to answer (or to give up)

    def done_on(self, name: str) -> bool:
        return name in self.replies or (self.missing is not None and name in self.missing)

    def give_up(self, name: str, reason: str, finish: Any) -> None:
        """No reply will come from `name`, for `reason`."""
        if self.missing is None:
            self.missing = {}
        self.missing[name] = reason
        self.left -= 1
        if not self.left:
            finish(self)


class Batch:
    """What one turn of the event loop sent to a shared primary connection, for a shadow server."""

    __slots__ = ("blob", "entries", "barrier", "protocol")

    def __init__(self, blob: bytes, entries: list[RawEntry], barrier: int, protocol: int) -> None:
        self.blob, self.entries, self.barrier, self.protocol = blob, entries, barrier, protocol


class RawShadowLane(asyncio.Protocol):
    """One pipelined connection to a shadow server for every stateless application connection that
    speaks one RESP version."""

    def __init__(self, backend: Backend, finish: Any, protocol: int) -> None:
        self.backend, self.name, self.finish, self.protocol = backend, backend.name, finish, protocol
        self.queue: deque[Batch] = deque()  # not sent yet (connecting, or causal order)
        self.fifo: deque[RawEntry] = deque()  # sent, not answered, in order
        self.stream = ReplyStream()
        self.pushes = 0
        self.transport: asyncio.Transport | None = None
        self.state = "connecting"
        self.out: list[bytes] = []  # pumped, written when the flush timer fires or enough has gathered
        self.out_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self.last_write = 0.0  # loop time
        backend.lanes.add(self)
        backend.raw[protocol] = self
        backend.connections += 1
        spawn(connect_lane(self))

    @property
    def setup_left(self) -> int:
        return self.stream.setup_left

    @setup_left.setter
    def setup_left(self, count: int) -> None:  # lane_opened: the login's replies come first
        self.stream.setup_left = count

    # --- causal order and lag, for Backend --------------------------------------------------------

    def oldest(self) -> RawEntry | None:
        """The oldest command here this server has not answered yet."""
        if self.fifo:
            return self.fifo[0]
        return self.queue[0].entries[0] if self.queue else None

    def frontier(self) -> float:
        """Commands here are answered by the primary in the order they are sent here: the oldest one is
        the only one a pinned command can have to wait for."""
        head = self.oldest()
        return head.seq if head is not None and head.seq >= 0 else INFINITE

    # --- sending ----------------------------------------------------------------------------------

    def submit(self, batch: Batch) -> None:
        backend, entries = self.backend, batch.entries
        if backend.over():
            reason = DROPPED.format(name=self.name)
            for entry in entries:
                backend.note_drop()
                entry.give_up(self.name, reason, self.finish)
            return
        backend.pending += len(entries)
        backend.pending_bytes += len(batch.blob)
        self.queue.append(batch)
        if len(self.queue) == 1:
            self.pump()

    def pump(self) -> None:
        if self.state != "open":
            return
        backend, queue = self.backend, self.queue
        while queue:
            batch = queue[0]
            if batch.barrier > backend.pinned_frontier():
                backend.blocked.add(self)
                return
            queue.popleft()
            self.fifo.extend(batch.entries)
            backend.sent += len(batch.entries)
            self.out.append(batch.blob)
            self.out_bytes += len(batch.blob)
        if not self.out or self._timer is not None:
            return
        limits, loop = backend.limits, asyncio.get_running_loop()
        wait = self.last_write + limits.shadow_write_s - loop.time()
        if wait <= 0 or self.out_bytes >= limits.shadow_write_bytes:
            self.flush()  # quiet (the last write was long ago) or enough gathered: now
        else:
            self._timer = loop.call_later(wait, self.flush)  # busy: at most one write per shadow_write_s

    def flush(self) -> None:
        """Off the application's path, several turns' commands go in one write (fewer system calls)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.out and self.transport is not None and self.state == "open":
            self.transport.write(b"".join(self.out) if len(self.out) > 1 else self.out[0])
            self.last_write = asyncio.get_running_loop().time()
        self.out, self.out_bytes = [], 0

    # --- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if lane_opened(self, transport):
            self.pump()

    def data_received(self, data: bytes) -> None:
        stream = self.stream
        try:
            replies = stream.feed(data)
        except FramingError as exc:
            self.backend.lose(f"sent a reply that is not RESP: {exc}")
            return
        if stream.refused is not None:
            self.backend.lose(f"refused the mirror's login or SELECT: {stream.refused[:80]!r}")
            return
        fifo, name, backend = self.fifo, self.name, self.backend
        for _, _, whole, push in replies:
            if push or not fifo:
                self.pushes += 1
                continue
            entry = fifo.popleft()
            entry.replies[name] = whole
            backend.pending -= 1
            backend.pending_bytes -= len(entry.raw)
            entry.left -= 1
            if not entry.left:
                self.finish(entry)
        backend.wake()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state == "closed":
            return
        self.abandon(CLOSED.format(name=self.name))
        self.backend.lane_closed(self, f"{self.name} closed a connection ({exc or 'end of stream'})")  # type: ignore[arg-type]

    # --- the end ----------------------------------------------------------------------------------

    def abandon(self, reason: str) -> None:
        """Give up this connection: every command still owed here has no reply, for `reason`."""
        if self.state == "closed":
            return
        self.state = "closed"
        backend = self.backend
        backend.lanes.discard(self)
        backend.blocked.discard(self)
        if backend.raw.get(self.protocol) is self:
            del backend.raw[self.protocol]
        if self._timer is not None:
            self._timer.cancel()
        self.out, self.out_bytes = [], 0
        if self.transport is not None:
            self.transport.close()
        owed = list(self.fifo)
        for batch in self.queue:
            owed.extend(batch.entries)
        self.fifo.clear()
        self.queue.clear()
        for entry in owed:
            backend.pending -= 1
            backend.pending_bytes -= len(entry.raw)
            entry.give_up(self.name, reason, self.finish)


def send_batch(backends: list[Backend], batch: Batch, finish: Any) -> None:
    """What went to the shared primary connection this turn, to every shadow server's stateless one
    (a new connection after one closed; nothing once the server is lost)."""
    for backend in backends:
        lane = backend.raw.get(batch.protocol)
        if lane is None and backend.lost_at is None:
            lane = RawShadowLane(backend, finish, batch.protocol)
        if lane is not None:
            lane.submit(batch)
        else:
            reason = LOST.format(name=backend.name)
            for entry in batch.entries:
                entry.give_up(backend.name, reason, finish)
