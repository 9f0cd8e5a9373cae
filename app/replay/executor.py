"""Sending a capture's commands to every server, in the capture's order, as fast as that order allows.

Each captured client (session) has a connection of its own on each server. Its commands are queued
and sent as one pipeline per session and server, to all servers before any reply is read, so the
servers work in parallel. Order between sessions matters only where they share a key: before a call
is queued, the last earlier call of another session on any of its keys must have been executed, so
that session alone is sent and its replies read (a sync). A barrier (keys unknown, a keyless command
on the whole keyspace, pub/sub) waits for every session, and every later call waits for it. Queued
calls of different sessions never share a key, so each server executes them with the captured result.
Replies are judged in capture order when the window is full (WINDOW_CALLS) or the capture ends.

A blocking call (BLPOP, XREAD BLOCK, WAIT) is sent alone, bounded (app/replay/policy.py), and proved
to have reached each server (a PING on a helper connection answers after it); its reply is read when
it comes. The session's next command first waits for it: in the capture, that command came only after
the blocking call had returned.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any

import hiredis

from app.captures import Command, redact
from app.replay.judging import ReplayComparator
from app.replay.keys import BARRIER, KeyTable
from app.replay.policy import RULED, decide
from app.replay.sessions import SUBSCRIBING, Pending, Session
from app.replay.wire import NOT_YET, Connection, PushNotification, ReplyError
from app.stream_compare import Call, CommandNames
from app.targets import Target

WINDOW_CALLS = 4096          # at most this many calls queued or unjudged per window
WINDOW_BYTES = 4 * 1024 * 1024  # or this many bytes of commands: memory stays bounded
MAX_OPEN_SESSIONS = 512      # idle sessions beyond this are closed (reopened if the client comes back)
NAME_CACHE = 4096            # distinct command names remembered
PUSHED = b"(pushed)"         # the pseudo-command under which messages a session received are compared
EXEC, DISCARD, MULTI, SELECT, HELLO, RESET, CLIENT = (b"EXEC", b"DISCARD", b"MULTI", b"SELECT", b"HELLO", b"RESET",
                                                       b"CLIENT")
XADD = b"XADD"
STATEFUL = frozenset({EXEC, DISCARD, MULTI, SELECT, HELLO, RESET, CLIENT, *SUBSCRIBING})  # change the connection


def unsubscribed(replies: list[Any]) -> dict[str, Any]:
    """An unsubscribe-all's replies as what they say: the server drops channels in hash order, so the
    channels come in any order, each with a running count; what is compared is which, and how many are left."""
    channels = sorted(r[1] for r in replies if isinstance(r, list) and len(r) == 3 and isinstance(r[1], bytes))
    last = replies[-1] if replies else None
    return {"unsubscribed": channels, "remaining": last[2] if isinstance(last, list) and len(last) == 3 else last}


class Executor:
    """Replays Commands on every target (index 0: the baseline) and feeds the comparator."""

    def __init__(self, targets: Sequence[Target], comparator: ReplayComparator, keys: KeyTable, *,
                 timeout_s: float, block_timeout_s: float, owned: bool,
                 window_calls: int = WINDOW_CALLS, max_open_sessions: int = MAX_OPEN_SESSIONS) -> None:
        self.targets = list(targets)
        self.names = [t.name for t in self.targets]
        self.comparator, self.keys = comparator, keys
        self.timeout_s, self.block_timeout_s, self.owned = timeout_s, block_timeout_s, owned
        self.window_calls, self.max_open_sessions = window_calls, max_open_sessions
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self.window: list[Pending] = []
        self.window_bytes = 0
        self.touched: dict[tuple[int, bytes], tuple[Session, Pending]] = {}  # key -> the last call touching it
        self.global_owner: tuple[Session, Pending] | None = None  # the window's last barrier
        self.in_window: dict[int, Session] = {}   # id(session) -> session, sessions with calls in the window
        self.outstanding: list[Pending] = []      # blocking calls from earlier windows, not answered yet
        self.helpers: list[Connection] | None = None
        self._names = CommandNames(NAME_CACHE)  # asked for every call
        # what the report tells besides the comparator's per-command counts
        self.counts = {"replayed": 0, "skipped": 0, "bounded": 0, "from_script": 0, "windows": 0,
                       "barriers": 0, "syncs": 0, "sessions": 0, "closed_idle": 0, "pushed_compared": 0}
        self.skips: dict[tuple[str, str], dict[str, Any]] = {}
        self.bounded_examples: list[dict[str, Any]] = []

    # --- one captured command ---------------------------------------------------------------------

    def submit(self, record: Command) -> None:
        if record.from_script:  # a script's own command: its EVAL/FCALL replays it
            self.counts["from_script"] += 1
            return
        args = record.args
        if not args:
            return
        session = self._session(record.session)
        if session.blocked:
            self.flush()
            self._wait(session)
        if session.subscribed:
            self._compare_deliveries(session)
        name = args[0].upper()
        note, blocking = "", False
        if name in RULED:  # most commands are replayed as captured: no decision to make
            decision = decide(args, owned=self.owned, in_multi=session.in_multi, bound_s=self.block_timeout_s)
            if decision.args is None:
                self._skip(args, record, decision.reason)
                return
            args, note, blocking = decision.args, decision.note, decision.blocking
        if record.db is not None and record.db != session.db and name != SELECT and not session.in_multi:
            self._select(session, record.db)
        keys = BARRIER if name in SUBSCRIBING else self.keys.keys_of(args)
        if session.in_multi and name not in (EXEC, DISCARD, MULTI):
            if keys is BARRIER:
                session.multi_keys = None
            elif session.multi_keys is not None:
                session.multi_keys.extend(keys)
        elif name == EXEC:
            keys = BARRIER if session.multi_keys is None else tuple(session.multi_keys)
        self._claim(session, keys)
        wanted = session.replies_expected(args) if name in SUBSCRIBING else 1
        pending = Pending(args, record.line, session, self._command(args), len(self.targets),
                          note=note, wanted=wanted, blocking=blocking)
        self._enqueue(session, pending)
        self._mark(session, keys, pending)
        self.counts["replayed"] += 1
        if name in STATEFUL:
            self._after(session, name, args)
        elif name == XADD and b"*" in args:
            self.comparator.clock_ids = True  # stream ids now come from each server's clock
        if blocking:
            if note:
                self.counts["bounded"] += 1
                if len(self.bounded_examples) < 5:
                    self.bounded_examples.append({"line": record.line, "session": record.session, "note": note})
            self.flush()
            self._confirm_arrived()
            session.blocked = True
        elif name in SUBSCRIBING or len(self.window) >= self.window_calls or self.window_bytes >= WINDOW_BYTES:
            self.flush()

    def _after(self, session: Session, name: bytes, args: tuple[bytes, ...]) -> None:
        """The connection state the command leaves, as the server applies it."""
        if name == SELECT and len(args) == 2 and args[1].isdigit() and not session.in_multi:
            session.db = int(args[1])
        elif name == MULTI:
            session.in_multi, session.multi_keys = True, []
        elif name in (EXEC, DISCARD):
            session.in_multi, session.multi_keys = False, []
        elif name == HELLO and len(args) > 1 and args[1].isdigit():
            session.resp3 = args[1] == b"3"
        elif name == RESET:
            session.reset()
        elif name in SUBSCRIBING:
            session.note_subscription(args)
        elif name == CLIENT and len(args) > 2 and args[1].upper() == b"TRACKING":
            session.tracking = args[2].upper() == b"ON"  # invalidations may now come unasked

    def _command(self, args: tuple[bytes, ...]) -> str:
        return self._names.of(args)

    def _skip(self, args: tuple[bytes, ...], record: Command, reason: str) -> None:
        shown = redact(args)  # a skipped command may be skipped for its password: never shown with it
        self.comparator.skip(Call(shown, record.line, record.session), reason)
        self.counts["skipped"] += 1
        key = (self._command(shown), reason)
        entry = self.skips.get(key)
        if entry is None:
            entry = self.skips[key] = {"command": key[0], "reason": reason, "calls": 0, "first_line": record.line,
                                       "source": record.source}
        entry["calls"] += 1

    # --- windows ------------------------------------------------------------------------------------

    def _claim(self, session: Session, keys: tuple[bytes, ...] | None) -> None:
        """Before a call is queued: every earlier call of another session that it must follow (same key,
        or a barrier) has been executed by every server; a barrier waits for all of them."""
        if keys is BARRIER:
            if any(other.queues[0] for other in self.in_window.values() if other is not session):
                self.flush()
            self.counts["barriers"] += 1
        else:
            owner = self.global_owner
            if owner is not None and owner[0] is not session and owner[1].left:
                self._sync(owner[0])
            db, touched = session.db, self.touched
            for key in keys:
                entry = touched.get((db, key))
                if entry is not None and entry[0] is not session and entry[1].left and not entry[1].blocking:
                    self._sync(entry[0])
        self.in_window[id(session)] = session

    def _mark(self, session: Session, keys: tuple[bytes, ...] | None, pending: Pending) -> None:
        """Remember which call touched what last: later calls of other sessions follow it."""
        if keys is BARRIER:
            self.global_owner = (session, pending)
            return
        db, touched = session.db, self.touched
        for key in keys:
            touched[(db, key)] = (session, pending)

    def _sync(self, session: Session) -> None:
        """Send one session's queued commands to every server and read their replies: from then on they
        have been executed, and another session's call that follows them may be queued."""
        for conn in session.connections:
            conn.flush()
        for index in range(len(self.targets)):
            self._read(session, index, wait_blocked=False)
        self.counts["syncs"] += 1

    def _enqueue(self, session: Session, pending: Pending) -> None:
        packed = hiredis.pack_command(pending.args)
        for index, conn in enumerate(session.connections):
            conn.out.append(packed)
            session.queues[index].append(pending)
        self.window.append(pending)
        self.window_bytes += len(packed)

    def _select(self, session: Session, db: int) -> None:
        """The captured client was in another database (it selected it before the capture began)."""
        self._claim(session, ())
        args = (SELECT, b"%d" % db)
        self._enqueue(session, Pending(args, None, session, "SELECT", len(self.targets), compare=False))
        session.db = db

    def flush(self) -> None:
        """Send the window, read every reply it can have (not those of blocked calls), judge them."""
        if not self.window and not self.outstanding:
            return
        self.counts["windows"] += 1
        sessions = list(self.in_window.values())
        for session in sessions:
            for conn in session.connections:
                conn.flush()
        for session in sessions:
            for index in range(len(self.targets)):
                self._read(session, index, wait_blocked=False)
        for pending in self.outstanding:  # earlier blocking calls that may have answered meanwhile
            for index in range(len(self.targets)):
                self._read(pending.session, index, wait_blocked=False)
        for pending in self.window:
            if pending.left == 0:
                self._judge(pending)
            else:
                self.outstanding.append(pending)
        self.outstanding = self._judge_done(self.outstanding)
        self.window.clear()
        self.window_bytes = 0
        self.touched.clear()
        self.global_owner = None
        self.in_window.clear()
        if len(self.sessions) > self.max_open_sessions:
            self._close_idle()

    def _read(self, session: Session, index: int, wait_blocked: bool) -> None:
        queue = session.queues[index]
        if not queue:
            return
        last = queue[-1]  # an (un)subscribe or a blocking call is always the last of its queue
        if not (session.subscribed or session.tracking or last.blocking or last.wanted != 1):
            # the common case: one reply per call and nothing pushed unasked, read in one go
            for pending, reply in zip(queue, session.connections[index].read_many(len(queue))):
                pending.replies[index] = reply
                pending.left -= 1
            queue.clear()
            return
        conn = session.connections[index]
        deliveries = session.deliveries[index]
        resp2_subscribed = session.subscribed and not session.resp3
        while queue:
            head = queue[0]
            if head.blocking and not wait_blocked:
                reply = conn.poll()
                if reply is NOT_YET:
                    return
            else:
                reply = conn.read()
            if type(reply) is PushNotification or resp2_subscribed:
                if session.is_delivery(reply, PushNotification):
                    deliveries.append(reply)
                    continue
            if head.wanted == 1:
                head.replies[index] = reply
            else:
                head.replies[index].append(reply)
                if len(head.replies[index]) < head.wanted:
                    continue
            queue.popleft()
            head.left -= 1
            if head.args[0].upper() in SUBSCRIBING:
                session.settled()

    def _wait(self, session: Session) -> None:
        """Read a blocked session's replies, waiting (each server ends a bounded wait by itself)."""
        for index in range(len(self.targets)):
            self._read(session, index, wait_blocked=True)
        session.blocked = False
        self.outstanding = self._judge_done(self.outstanding)

    def _judge_done(self, pendings: list[Pending]) -> list[Pending]:
        left = []
        for pending in pendings:
            if pending.left == 0:
                self._judge(pending)
            else:
                left.append(pending)
        return left

    def _confirm_arrived(self) -> None:
        """A PING on another connection of each server answers only after the server has read the
        blocking call sent before it: from then on, other sessions' commands may unblock it."""
        if self.helpers is None:
            self.helpers = [Connection(t, self.timeout_s) for t in self.targets]
        for conn in self.helpers:
            conn.out.append(b"*1\r\n$4\r\nPING\r\n")
            conn.flush()
        for conn in self.helpers:
            conn.read()

    # --- judging ------------------------------------------------------------------------------------

    def _judge(self, pending: Pending) -> None:
        if not pending.compare:
            return
        replies = pending.replies
        if pending.wanted > 1 and len(pending.args) == 1:  # an UNSUBSCRIBE of everything held
            replies = [unsubscribed(r) for r in replies]
        base = replies[0]
        if type(base) is not ReplyError and replies.count(base) == len(replies):
            # identical on every server, as sent: the comparator's verdict without its work
            self.comparator.count_identical(pending.command)
            return
        call = Call(pending.args, pending.line, pending.session.name, pending.note)
        self.comparator.add(call, dict(zip(self.names, replies)))

    def _compare_deliveries(self, session: Session) -> None:
        """Messages a subscribed session received, compared server by server once all have arrived:
        a PING on its connection answers after every message queued before it."""
        self._claim(session, BARRIER)
        ping = Pending((b"PING",), None, session, "PING", len(self.targets), compare=False)
        self._enqueue(session, ping)
        self._mark(session, BARRIER, ping)
        self.flush()
        if any(session.deliveries):
            pushed = Pending((PUSHED, session.name.encode("latin-1", "replace")), None, session, "(pushed)",
                             len(self.targets))
            pushed.replies = [list(d) for d in session.deliveries]
            for received in session.deliveries:
                received.clear()
            self.counts["pushed_compared"] += 1
            self._judge(pushed)

    # --- sessions -----------------------------------------------------------------------------------

    def _session(self, name: str) -> Session:
        session = self.sessions.get(name)
        if session is not None:
            self.sessions.move_to_end(name)
            return session
        session = Session(name)
        session.connections = [Connection(t, self.timeout_s) for t in self.targets]
        session.queues = [deque() for _ in self.targets]
        session.deliveries = [[] for _ in self.targets]
        self.sessions[name] = session
        self.counts["sessions"] += 1
        return session

    def _close_idle(self) -> None:
        """Close the least recently used idle sessions (a long capture has many short-lived clients)."""
        for name in list(self.sessions):
            if len(self.sessions) <= self.max_open_sessions // 2:
                break
            session = self.sessions[name]
            if session.idle:
                for conn in session.connections:
                    conn.close()
                del self.sessions[name]
                self.counts["closed_idle"] += 1

    def finish(self) -> None:
        """Send what is left, wait for every blocked call, compare what subscribers received."""
        self.flush()
        for session in list(self.sessions.values()):
            if session.blocked:
                self._wait(session)
        for session in list(self.sessions.values()):
            if session.subscribed or any(session.deliveries):
                self._compare_deliveries(session)
        self.flush()

    def close(self) -> None:
        for session in self.sessions.values():
            for conn in session.connections:
                conn.close()
        self.sessions.clear()
        for conn in self.helpers or []:
            conn.close()
