"""Finished commands judged and counted: each command's replies from every server go to the shared
StreamComparator (app/stream_compare.py), MULTI/EXEC is compared command by command, push messages are
compared per subscriber in order, and what was not compared is counted with its reason."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from app.captures import redact
from app.mirror.framing import parse_one
from app.mirror.lanes import NO_REPLY, Entry
from app.mirror.policy import holds_credentials
from app.mirror.raw_lanes import RawEntry
from app.stream_compare import DIFFERENT, MAX_COMMAND_NAMES, NOISE, Call, ReplyError, StreamComparator

QUEUED = b"QUEUED"
_PLAIN = (bytes, int)  # reply types that are the same value whatever the command (no order, no shape)
IN_TRANSACTION = "in MULTI/EXEC"
NOT_DELIVERED = ReplyError("(no message: this subscriber received nothing in its place)")
PARTIAL_TRANSACTION = "in a transaction with a primary-only command: EXEC's replies do not align"
MESSAGE_NOTE = "push message to a subscriber, compared in order"
OUT_OF_SYNC_NOTE = "after the {name} fell out of sync (commands were dropped from its comparison)"
OVER_BUDGET = "not judged: the candidate was out of sync and differed more than {rate:g} times a second"


class JudgingBudget:
    """A token bucket: how many differing replies may be judged, per second, once they are expected."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.clock = rate, clock
        self.tokens = rate
        self.at = clock()
        self.reason = OVER_BUDGET.format(rate=rate)

    def take(self) -> bool:
        if self.tokens < 1:
            clock = self.clock()
            self.tokens = min(self.rate, self.tokens + (clock - self.at) * self.rate)
            self.at = clock
            if self.tokens < 1:
                return False
        self.tokens -= 1
        return True


class Collector:
    """The judging side of the mirror: one comparator, and the counters the status line and report show."""

    def __init__(self, baseline: str, candidate: str, control: str | None,
                 candidate_version: str | None, max_examples: int, max_signatures: int,
                 out_of_sync_judged_per_s: float = float("inf")) -> None:
        self.baseline, self.candidate, self.control = baseline, candidate, control
        self.budget = JudgingBudget(out_of_sync_judged_per_s)
        self.comparator = StreamComparator(baseline, [candidate], [control] if control else [], source="mirror",
                                           candidate_versions={candidate: candidate_version},
                                           max_examples=max_examples, max_signatures=max_signatures)
        self.commands = 0      # application commands framed
        self.differences = 0   # calls judged different
        self.noise = 0         # calls judged noise
        self.primary_only: dict[str, int] = {}
        self.messages = 0

    def finish(self, entry: Entry) -> None:
        """Every server answered (or will not): judge the command, or count why not."""
        call = entry.call
        if entry.skip is not None:
            if entry.tx is not None and not entry.ends_tx:
                entry.tx.partial = True  # EXEC's array on the primary holds a reply the others never had
            self.comparator.skip(call, entry.skip)
            return
        missing = entry.missing.get(self.candidate) or entry.missing.get(self.baseline)
        if missing is not None:
            if entry.tx is not None:
                entry.tx.broken = True
            self.comparator.skip(call, missing)
            return
        replies = {name: value for name, value in entry.replies.items() if value is not NO_REPLY}
        tx = entry.tx
        if tx is not None and not entry.ends_tx:
            if all(value == QUEUED for value in replies.values()):
                tx.deferred.append(entry)  # compared with EXEC's element
                return
            tx.broken = True
        if tx is not None and entry.command == "EXEC":
            self._exec(entry, replies, tx)
            return
        if tx is not None and tx.deferred:  # DISCARD or RESET: the queued commands never ran
            for queued in tx.deferred:
                self.comparator.skip(queued.call, f"discarded by {entry.command}")
        self._judge(call, replies, entry.command)

    def finish_raw(self, entry: RawEntry) -> None:
        """A stateless connection's command, in raw bytes: the same bytes everywhere are identical
        unparsed; anything else is parsed and judged like every other command."""
        missing = entry.missing
        if missing is not None:
            reason = missing.get(self.candidate) or missing.get(self.baseline)
            if reason is not None:
                self.comparator.skip(self._raw_call(entry), reason)
                return
        replies = entry.replies
        base = replies[self.baseline]
        if all(value == base for value in replies.values()):
            self.comparator.count_identical(entry.command)
            return
        if entry.note and not self.budget.take():  # the candidate missed writes: differences are expected
            self.comparator.skip_command(entry.command, self.budget.reason)
            return
        self._judge(self._raw_call(entry), {name: parse_one(raw) for name, raw in replies.items()}, entry.command)

    @staticmethod
    def _raw_call(entry: RawEntry) -> Call:
        args = tuple(parse_one(entry.raw))
        return Call(redact(args) if holds_credentials(entry.command, args) else args, session=entry.session.name,
                    note=entry.note)

    def _exec(self, entry: Entry, replies: dict[str, Any], tx: Any) -> None:
        queued = tx.deferred
        arrays = all(isinstance(value, list) and len(value) == len(queued) for value in replies.values())
        if tx.partial:
            for item in [*queued, entry]:
                self.comparator.skip(item.call, PARTIAL_TRANSACTION)
            return
        if tx.broken or not arrays:
            for item in queued:
                self.comparator.skip(item.call, "transaction did not run alike on every server")
            self._judge(entry.call, replies)
            return
        for index, item in enumerate(queued):
            self._judge(item.call, {name: value[index] for name, value in replies.items()})
        self._judge(entry.call, {name: len(value) for name, value in replies.items()})

    def _judge(self, call: Call, replies: dict[str, Any], command: str | None = None) -> None:
        if self.candidate not in replies or self.baseline not in replies:
            self.comparator.skip(call, f"no reply from the {self.candidate if self.candidate not in replies else self.baseline}")
            return
        base = replies[self.baseline]
        if command is not None and type(base) in _PLAIN and all(v == base and type(v) is type(base)
                                                                 for v in replies.values()):
            # The same simple reply everywhere (most of any stream): identical, as the comparator would judge it.
            self.comparator.count_identical(command)
            return
        outcome = self.comparator.add(call, replies).get(self.candidate)
        if outcome == DIFFERENT:
            self.differences += 1
        elif outcome == NOISE:
            self.noise += 1

    def message(self, session: str, frames: dict[str, Any], note: str = "") -> None:
        """One push message, as each server delivered it to the same subscriber."""
        base = frames.get(self.baseline)
        first = base if base is not None else next(v for v in frames.values() if v is not None)
        kind = first[0] if isinstance(first, list) and first and isinstance(first[0], bytes) else b"push"
        channel = first[1:2] if isinstance(first, list) and first[1:2] and isinstance(first[1], bytes) else []
        call = Call((kind.upper(), *channel), session=session, note="; ".join(filter(None, (MESSAGE_NOTE, note))))
        self.messages += 1
        self._judge(call, {name: NOT_DELIVERED if value is None else value for name, value in frames.items()})

    def count_primary_only(self, command: str) -> None:
        if command not in self.primary_only and len(self.primary_only) >= MAX_COMMAND_NAMES:
            command = command.partition(" ")[0]  # DEBUG <any word>: counted under DEBUG beyond the cap
        self.primary_only[command] = self.primary_only.get(command, 0) + 1
