"""One server connection's replies paired with the commands sent on it, in order.

Every session (an application connection) has one lane per server: the primary's (fed from the tee of
the primary's bytes) and one per shadow server (the candidate, the secondary). A lane frames replies and
gives each to the command at the head of its queue. Pub/sub needs care: a SUBSCRIBE of three channels is
answered by three confirmations, an UNSUBSCRIBE of all by one per channel the lane is subscribed to, and
messages (RESP2 arrays in subscribed mode, RESP3 pushes) answer no command: they are kept per lane and
compared per subscriber, in order.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from hiredis import PushNotification

from app.mirror.framing import ReplyFramer
from app.mirror.policy import CONFIRMS, MESSAGES, SUBSCRIBING
from app.stream_compare import Call

NO_REPLY = object()  # the reply of a command the server does not answer (CLIENT REPLY OFF/SKIP)


class Transaction:
    """MULTI ... EXEC on one session: the queued commands whose replies were QUEUED everywhere, kept to be
    compared with EXEC's elements; broken when a server did not queue one of them."""

    __slots__ = ("deferred", "broken", "partial")

    def __init__(self) -> None:
        self.deferred: list[Entry] = []
        self.broken = False
        self.partial = False  # held a primary-only command


class Entry:
    """One command of one session, on its way to every server, collecting their replies."""

    __slots__ = ("call", "command", "replies", "missing", "awaiting", "seq", "primary_at", "barrier", "size",
                 "skip", "no_reply", "tx", "ends_tx", "shadows", "session")

    def __init__(self, call: Call, command: str, session: Any, barrier: int, size: int) -> None:
        self.call, self.command, self.session = call, command, session
        self.replies: dict[str, Any] = {}
        self.missing: dict[str, str] = {}  # lane -> why it has no reply (dropped, lost...)
        self.awaiting = 0  # lanes still to answer
        self.seq = -1  # order in which the primary answered (causal order for the shadows), -1 before
        self.primary_at = 0.0
        self.barrier = barrier  # primary answers seen when it arrived: shadows send it after those
        self.size = size
        self.skip: str | None = None  # not compared at all (primary-only, no reply...)
        self.no_reply = False
        self.tx: Transaction | None = None
        self.ends_tx = False  # EXEC, DISCARD or RESET inside MULTI
        self.shadows: list[Any] = []  # shadow lanes it was given to

    def done_on(self, lane: str) -> bool:
        return lane in self.replies or lane in self.missing


class Owner(Protocol):
    def answered(self, lane: "Lane", entry: Entry, value: Any) -> None: ...
    def on_message(self) -> None: ...


class Lane:
    """Reply pairing for one connection to one server."""

    def __init__(self, name: str, owner: Owner) -> None:
        self.name = name
        self.owner = owner
        self.framer = ReplyFramer()
        self.fifo: deque[Entry] = deque()
        self.partial: list[Any] = []  # confirmations gathered for the head command
        self.expect: int | None = None  # how many the head command needs
        self.subs: dict[str, set[bytes]] = {"channels": set(), "patterns": set(), "shard": set()}
        self.messages: deque[Any] = deque()
        self.unpaired = 0  # replies that answered no command (counted, never guessed)
        self.client_id: int | None = None

    def push(self, entry: Entry) -> None:
        entry.awaiting += 1
        self.fifo.append(entry)
        if len(self.fifo) == 1:
            self._settle()

    def feed(self, chunk: bytes) -> None:
        for frame in self.framer.feed(chunk):
            self.frame(frame)

    @property
    def subscribed(self) -> bool:
        subs = self.subs
        return bool(subs["channels"] or subs["patterns"] or subs["shard"])

    def frame(self, frame: Any) -> None:
        kind = type(frame)
        if kind is PushNotification or (kind is list and frame and self.subscribed
                                        and isinstance(frame[0], bytes) and frame[0].lower() in MESSAGES):
            first = frame[0].lower() if frame and isinstance(frame[0], bytes) else b""
            if first in CONFIRMS:
                self._confirm(first, frame)
            else:
                self.messages.append(frame)
                self.owner.on_message()
            return
        fifo = self.fifo
        if not fifo:
            self.unpaired += 1
            return
        head = fifo[0]
        if (kind is list and frame and head.command in SUBSCRIBING and isinstance(frame[0], bytes)
                and frame[0].lower() in CONFIRMS):
            self._confirm(frame[0].lower(), frame)
            return
        self._complete(head, frame)

    def _confirm(self, first: bytes, frame: list[Any]) -> None:
        command = CONFIRMS[first]
        which, sign = SUBSCRIBING[command]
        name = frame[1] if len(frame) > 1 else None
        if isinstance(name, bytes):
            if sign > 0:
                self.subs[which].add(name)
            else:
                self.subs[which].discard(name)
        head = self.fifo[0] if self.fifo else None
        if head is None or head.command != command:
            return  # a confirmation no command asked for (after RESET, say): state only
        if self.expect is None:
            self.expect = self.expected(head)
        self.partial.append(frame)
        if len(self.partial) >= self.expect:
            self._complete(head, self.partial)

    def expected(self, entry: Entry) -> int:
        """How many frames answer this command, given what this lane is subscribed to now."""
        if entry.no_reply:
            return 0
        sub = SUBSCRIBING.get(entry.command)
        if sub is None:
            return 1
        names = len(entry.call.args) - 1
        if names > 0 or sub[1] > 0:
            return max(names, 1)
        return max(1, len(self.subs[sub[0]]))

    def _complete(self, entry: Entry, value: Any) -> None:
        self.fifo.popleft()
        self.partial, self.expect = [], None
        if entry.command == "RESET":
            for names in self.subs.values():
                names.clear()
        self.owner.answered(self, entry, value)
        self._settle()

    def _settle(self) -> None:
        """Complete the commands at the head that no frame answers."""
        while self.fifo and self.fifo[0].no_reply:
            self._complete(self.fifo[0], NO_REPLY)

    def fail_all(self, reason: str) -> list[Entry]:
        """Everything still waiting here gets no reply (the connection is gone)."""
        failed = list(self.fifo)
        self.fifo.clear()
        self.partial, self.expect = [], None
        for entry in failed:
            entry.missing[self.name] = reason
            self.owner.answered(self, entry, NO_REPLY)
        return failed
