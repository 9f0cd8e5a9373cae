"""One application connection on the comparison side: its commands framed from the tee of the client's
bytes, given to every server's lane, and its replies collected until the command can be judged.

Nothing here touches the application's byte path: the proxy calls process() after it has forwarded
the bytes, once per turn of the event loop for all the bytes that came in that turn.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from app.captures import redact
from app.mirror.framing import FramingError, RequestFramer
from app.mirror.lanes import NO_REPLY, Entry, Lane, Transaction
from app.mirror.policy import ENDS_COMPARISON, PINNING, holds_credentials, primary_only_reason
from app.mirror.shadow import ShadowLane
from app.stream_compare import Call, command_name

NO_REPLY_REASON = "no reply to compare (CLIENT REPLY OFF or SKIP)"
CLOSED_REASON = "the connection closed before the primary answered"
MAX_UNMATCHED_MESSAGES = 1000  # push messages one server delivered and another not (yet), per connection
STOPPED_REASON = "the mirror stopped before the {name} answered"


class Session:
    """Request-side state of one application connection, and the owner of its lanes."""

    def __init__(self, mirror: Any, number: int) -> None:
        self.mirror = mirror
        self.name = f"c{number}"
        self.framer = RequestFramer()
        self.requests: list[bytes] = []  # tee of the client's bytes, not yet framed
        self.replies: list[bytes] = []   # tee of the primary's bytes, not yet framed
        self.reply_mode = "on"
        self.tx: Transaction | None = None
        self.compared = True
        self.closing = False
        self.primary = Lane(mirror.baseline, self)
        self.pinned: dict[str, ShadowLane] = {}  # own connections, once the session set connection state
        self.last_shared: dict[str, Entry] = {}  # its last command on each server's shared connection
        self.open_lanes = 0

    @property
    def shadows(self) -> list[ShadowLane]:
        return list(self.pinned.values())

    # --- fed by the proxy ------------------------------------------------------------------------------

    def process(self) -> None:
        if self.requests:
            chunks, self.requests = self.requests, []
            if self.compared:
                try:
                    for chunk in chunks:
                        for args in self.framer.feed(chunk):
                            self.command(args)
                except FramingError as exc:
                    self.stop_comparing(f"unparseable request: {exc}")
        if self.replies:
            chunks, self.replies = self.replies, []
            primary = self.primary
            if self.compared or primary.fifo:
                for chunk in chunks:
                    primary.feed(chunk)
        for lane in self.pinned.values():
            if lane.queue:
                lane.pump()
            lane.flush()

    def command(self, args: tuple[bytes, ...]) -> None:
        mirror = self.mirror
        collector = mirror.collector
        collector.commands += 1
        command = command_name(args)
        secret = holds_credentials(command, args)
        call = Call(redact(args) if secret else args, session=self.name, note=mirror.sync_note)
        entry = Entry(call, command, self, mirror.primary_seq, sum(map(len, args)) + 16 * len(args))
        self._reply_mode(entry, args)
        reason = primary_only_reason(command, args)
        if reason is not None:
            entry.skip = f"primary only: {reason}"
            collector.count_primary_only(command)
        elif entry.no_reply:
            entry.skip = NO_REPLY_REASON
        in_tx = self._transaction(entry)
        entry.awaiting += 1  # held while it is handed out, so that no lane finishes it before the last has it
        self.primary.push(entry)
        if reason is None:
            if not self.pinned and command in PINNING:
                self.pin()
            pinned = self.pinned
            for backend in mirror.backends:
                if pinned:
                    pinned[backend.name].submit(entry, in_tx)
                else:
                    backend.shared_lane().submit(entry, in_tx)
                    self.last_shared[backend.name] = entry
        if command in ENDS_COMPARISON:
            self.stop_comparing(f"after {command} the primary's replies are a stream")
        entry.awaiting -= 1
        self.settled(entry)

    def pin(self, protocol: int = 2) -> None:
        """Own connections to every shadow server from now on, after its shared ones have answered."""
        mirror = self.mirror
        for backend in mirror.backends:
            self.pinned[backend.name] = ShadowLane(backend, self, mirror.client_ids,
                                                   after=self.last_shared.get(backend.name), protocol=protocol)
            self.open_lanes += 1
        self.last_shared.clear()

    def _reply_mode(self, entry: Entry, args: tuple[bytes, ...]) -> None:
        if entry.command == "CLIENT REPLY" and len(args) > 2:
            mode = args[2].upper()
            entry.no_reply = mode != b"ON"
            if mode == b"ON" or mode == b"OFF":
                self.reply_mode = mode.decode().lower()
            elif self.reply_mode == "on":
                self.reply_mode = "skip"  # SKIP: this one and the next get no reply
            return
        entry.no_reply = self.reply_mode != "on"
        if self.reply_mode == "skip":
            self.reply_mode = "on"

    def _transaction(self, entry: Entry) -> bool:
        """Track MULTI on the request side; True while inside one (never dropped there)."""
        command = entry.command
        if self.tx is None:
            if command == "MULTI":
                self.tx = Transaction()
            return self.tx is not None
        entry.tx = self.tx
        if command in ("EXEC", "DISCARD", "RESET"):
            entry.ends_tx = True
            self.tx = None
        else:
            entry.call.note = "in MULTI/EXEC"
        return True

    def stop_comparing(self, reason: str) -> None:
        if self.compared:
            self.compared = False
            self.mirror.sessions_not_compared[reason.split(":")[0]] = (
                self.mirror.sessions_not_compared.get(reason.split(":")[0], 0) + 1)
            for lane in self.shadows:
                lane.close_if_idle()

    # --- lane owner ------------------------------------------------------------------------------------

    def answered(self, lane: Lane, entry: Entry, value: Any) -> None:
        name = lane.name
        if value is not NO_REPLY:
            entry.replies[name] = value
        entry.awaiting -= 1
        if lane is self.primary:
            mirror = self.mirror
            entry.seq = mirror.primary_seq
            mirror.primary_seq += 1
            entry.primary_at = time.monotonic()
            for shadow in entry.shadows:
                if not entry.done_on(shadow.name):
                    backend = shadow.backend
                    (backend.outstanding_shared if shadow.shared else backend.outstanding_pinned).append(entry)
        else:
            backend = lane.backend  # type: ignore[attr-defined]
            backend.pending -= 1
            backend.pending_bytes -= entry.size
        if entry.command == "CLIENT ID" and isinstance(value, int) and not getattr(lane, "shared", False):
            lane.client_id = value
            if lane is self.primary:
                self.mirror.client_ids[value] = self
        if entry.awaiting == 0:
            self.mirror.collector.finish(entry)

    def settled(self, entry: Entry) -> None:
        if entry.awaiting == 0:
            self.mirror.collector.finish(entry)

    def on_message(self) -> None:
        """Pair the oldest message of every lane that has one, once every live lane has one; a lane that
        falls MAX_UNMATCHED_MESSAGES behind is judged as not having delivered them (memory stays bounded)."""
        primary = self.primary
        live = [lane for lane in self.shadows if lane.state != "closed" or lane.messages]
        collector = self.mirror.collector
        while primary.messages and (all(lane.messages for lane in live)
                                    or len(primary.messages) > MAX_UNMATCHED_MESSAGES):
            frames = {primary.name: primary.messages.popleft()}
            for lane in live:
                frames[lane.name] = lane.messages.popleft() if lane.messages else None
            collector.message(self.name, frames, self.mirror.sync_note)
        for lane in live:
            while len(lane.messages) > MAX_UNMATCHED_MESSAGES:  # delivered by a shadow, not by the primary
                collector.message(self.name, {primary.name: None, lane.name: lane.messages.popleft()},
                                  self.mirror.sync_note)
        if self.closing and not self._messages_owed():
            self._close_lanes()  # everything owed arrived before the grace ran out

    def flush_messages(self) -> None:
        """At the end: messages one server delivered and another did not."""
        lanes = [self.primary, *(lane for lane in self.shadows if lane.backend.lost_at is None or lane.messages)]
        while any(lane.messages for lane in lanes):
            frames = {lane.name: lane.messages.popleft() if lane.messages else None for lane in lanes}
            self.mirror.collector.message(self.name, frames, self.mirror.sync_note)

    def shadow_lane(self, name: str) -> ShadowLane | None:
        return self.pinned.get(name)

    def lane_finished(self, lane: ShadowLane) -> None:
        self.open_lanes -= 1
        self.on_message()
        if self.closing and self.open_lanes <= 0:
            self.mirror.session_done(self)

    # --- the end ---------------------------------------------------------------------------------------

    def close(self) -> None:
        """The application's connection is gone (either side closed it)."""
        if self.closing:
            return
        self.process()
        self.closing = True
        self.primary.fail_all(CLOSED_REASON)
        if self._messages_owed():  # a subscriber's last messages may still be on their way from a shadow
            asyncio.get_running_loop().call_later(self.mirror.limits.message_grace_s, self._close_lanes)
        else:
            self._close_lanes()

    def _messages_owed(self) -> bool:
        owed = len(self.primary.messages)
        return any(lane.state != "closed" and len(lane.messages) < owed for lane in self.pinned.values())

    def _close_lanes(self) -> None:
        for lane in self.shadows:
            lane.close_if_idle()
        if self.open_lanes <= 0:
            self.mirror.session_done(self)

    def shutdown(self) -> None:
        """The mirror stops: whatever is still waiting is counted as not compared."""
        self.process()
        self.closing = True
        for lane in self.shadows:
            lane.abandon(STOPPED_REASON.format(name=lane.name))
        self.primary.fail_all(STOPPED_REASON.format(name=self.primary.name))
