"""A captured client's replay state: its connections (one per server), database, transaction, RESP
version and subscriptions, and the calls whose replies are still to come, per server.

What a client sets on its connection (CLIENT SETNAME, TRACKING, HELLO 3, SELECT, MULTI, SUBSCRIBE)
stays on that session's own connections, as it did on the captured server.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from app.replay.wire import Connection

# Subscription commands: their kind of subscription, and whether they add or remove.
SUBSCRIBING: dict[bytes, tuple[str, bool]] = {
    b"SUBSCRIBE": ("channels", True), b"PSUBSCRIBE": ("patterns", True), b"SSUBSCRIBE": ("shard", True),
    b"UNSUBSCRIBE": ("channels", False), b"PUNSUBSCRIBE": ("patterns", False), b"SUNSUBSCRIBE": ("shard", False),
}
# The first element of a message a subscribed (or tracking) connection receives unasked.
DELIVERIES: frozenset[bytes] = frozenset({b"message", b"pmessage", b"smessage", b"invalidate"})


class Pending:
    """One call sent to every server, waiting for their replies.

    wanted: replies per server (a SUBSCRIBE of 3 channels gets 3); compare False for the replay's own
    commands (a SELECT to the captured database, a PING that proves a blocked call arrived)."""

    __slots__ = ("args", "line", "session", "note", "command", "replies", "left", "wanted", "blocking", "compare")

    def __init__(self, args: tuple[bytes, ...], line: int | None, session: "Session", command: str,
                 targets: int, *, note: str = "", wanted: int = 1, blocking: bool = False,
                 compare: bool = True) -> None:
        self.args, self.line, self.session, self.note, self.command = args, line, session, note, command
        self.replies: list[Any] = [None] * targets if wanted == 1 else [[] for _ in range(targets)]
        self.left = targets  # servers that have not answered in full
        self.wanted, self.blocking, self.compare = wanted, blocking, compare


@dataclass
class Session:
    """One captured client."""

    name: str
    connections: list[Connection] = field(default_factory=list)  # by target index; empty when closed
    queues: list[deque[Pending]] = field(default_factory=list)  # calls awaiting a reply, per target
    db: int = 0
    resp3: bool = False
    in_multi: bool = False
    multi_keys: list[bytes] | None = field(default_factory=list)  # None: a queued command was a barrier
    subscriptions: dict[str, set[bytes]] = field(default_factory=lambda: {"channels": set(), "patterns": set(),
                                                                          "shard": set()})
    deliveries: list[list[Any]] = field(default_factory=list)  # per target: messages received unasked
    blocked: bool = False  # a blocking call was sent and may not have answered yet
    subscribed: bool = False  # holds a subscription (kept with the sets: it is asked for every call)
    tracking: bool = False  # CLIENT TRACKING ON: invalidation messages may come unasked

    @property
    def idle(self) -> bool:
        """Nothing outstanding and no state a reconnect could not restore: it may be closed."""
        return not (self.in_multi or self.subscribed or self.tracking or self.blocked or any(self.queues))

    def replies_expected(self, args: tuple[bytes, ...]) -> int:
        """How many replies a (un)subscribe call gets: one per channel named, or per one held."""
        kind, adding = SUBSCRIBING[args[0].upper()]
        if len(args) > 1:
            return len(args) - 1
        return 1 if adding else max(1, len(self.subscriptions[kind]))

    def note_subscription(self, args: tuple[bytes, ...]) -> None:
        kind, adding = SUBSCRIBING[args[0].upper()]
        held = self.subscriptions[kind]
        if adding:
            held.update(args[1:])
        elif len(args) > 1:
            held.difference_update(args[1:])
        else:
            held.clear()
        # an unsubscribe ends subscribe mode only once its confirmations are read (see settled())
        self.subscribed = self.subscribed or adding

    def settled(self) -> None:
        """An (un)subscribe call has been answered: subscribe mode is what the sets now hold."""
        self.subscribed = any(self.subscriptions.values())

    def is_delivery(self, reply: Any, push_type: type) -> bool:
        """A message the server sent unasked (a publish, an invalidation), not a reply to a call."""
        if isinstance(reply, push_type):
            return bool(reply) and isinstance(reply[0], bytes) and reply[0].lower() in DELIVERIES
        # RESP2: a subscribed connection gets messages as plain arrays
        return (self.subscribed and not self.resp3 and isinstance(reply, list) and len(reply) >= 3
                and isinstance(reply[0], bytes) and reply[0].lower() in DELIVERIES)

    def reset(self) -> None:
        """After RESET: the connection is as new (db 0, RESP2, no transaction or subscription)."""
        self.db, self.resp3, self.in_multi, self.multi_keys, self.tracking = 0, False, False, [], False
        for held in self.subscriptions.values():
            held.clear()
        self.subscribed = False
