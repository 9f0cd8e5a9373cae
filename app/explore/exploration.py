"""The exploration loop: random sequences one after another (sequence i always generated from the seed and
i alone), each judged, and every new divergence shrunk to a minimal repro as soon as it shows.

Reproducible: the same seed, the same servers and the same number of sequences (--sequences) give the
same sequences, hence the same findings (up to what the servers themselves do at random, which the noise
control absorbs). With a time budget (--seconds) the sequence order is the same, so a longer run runs the
shorter run's sequences first and finds a superset of its signatures.

A sequence one server does not answer in full (a reply missing, a hang) is a divergence too when the
baseline and its control agree: both silent while the candidate answers, or the candidate alone silent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.explore.judge import Judge, Observation, Signature, fresh_judge, reply_shape
from app.explore.runner import InFlight, SequenceAborted, Servers
from app.explore.shrink import minimise
from app.explore.strategies import CallGenerator, sequence_rng
from app.stream_compare import args_text, command_name, plain

MAX_SHRINK_ATTEMPTS = 2  # a signature whose repro did not confirm is shrunk again from this many sequences
MAX_ABORT_SHRINKS = 2    # sequences a server did not answer, shrunk per kind of silence
MAX_ABORTED_KEPT = 20    # aborted sequences listed in the report
TRIAL_TIMEOUT_S = 0.5    # how long a shrink's trial run waits for a reply
STALL_TRIES = 16         # a stall shows now and then: a trial shows it when one of this many runs does
SILENCE_SHRINK_S = 5.0   # seconds a silence's or a stall's shrink may take (its trial runs wait for timeouts)
NO_REPLY = "no reply"
STALLED, ANSWERED = "stalled until more input arrived", "answered in time"
# How a sequence some server did not answer (or answered only after a PING) is classed.
SILENT_BASELINE, SILENT_CANDIDATE, SILENT_NOISE, SILENT_ALL = (
    "baseline and control silent", "candidate silent", "one of baseline and control silent", "all silent")
STALL_PREFIX = "stall: "
# Kinds of finding that depend on how the commands travel (pipelined): their repro files say so.
PIPELINE_KINDS = frozenset({SILENT_BASELINE, SILENT_CANDIDATE, STALL_PREFIX + SILENT_BASELINE,
                            STALL_PREFIX + SILENT_CANDIDATE})
PIPELINE = "(pipelined commands)"  # the command of a stall's signature


@dataclass
class Finding:
    """One signature: how often random sequences showed it, and its minimal repro."""

    signature: Signature
    first_sequence: int
    first_values: dict[str, Any]
    sequences: int = 0
    calls: int = 0
    repro: list[tuple[bytes, ...]] | None = None
    repro_values: dict[str, Any] | None = None
    confirmed: bool = False
    attempts: int = 0
    shrink_seconds: float = 0.0
    shrink_tests: int = 0
    exhausted: bool = False
    skipped_reason: str = ""
    silence: str = ""  # for a server that did not answer: which (SILENT_BASELINE or SILENT_CANDIDATE)


@dataclass
class Settings:
    seed: int = 1
    seconds: float | None = 120.0
    sequences: int | None = None
    shrink: bool = True


@dataclass
class Outcome:
    findings: dict[Signature, Finding] = field(default_factory=dict)
    sequences: int = 0
    calls: int = 0
    explore_seconds: float = 0.0
    shrink_seconds: float = 0.0
    aborted: list[dict[str, Any]] = field(default_factory=list)
    aborted_by_kind: dict[str, int] = field(default_factory=dict)


@dataclass
class _Result:
    """A sequence read back: its replies, or why a server did not answer it, and any stalls."""

    index: int
    calls: list[tuple[bytes, ...]]
    replies: dict[str, list[Any]] | None
    aborted: SequenceAborted | None
    stalls: dict[str, int]


class Exploration:
    def __init__(self, servers: Servers, generator: CallGenerator, judge: Judge, settings: Settings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.servers, self.generator, self.judge, self.settings = servers, generator, judge, settings
        self.clock = clock
        self.outcome = Outcome()
        self._abort_shrinks: dict[str, int] = {}

    def _more(self, index: int, deadline: float | None) -> bool:
        if self.settings.sequences is not None and index >= self.settings.sequences:
            return False
        return deadline is None or self.clock() < deadline

    def run(self) -> Outcome:
        """Explore until the budget is spent. An exception from a signal handler propagates; what was
        found so far stays in self.outcome.

        While the servers answer sequence i, sequence i-1 is judged: the servers and this process work
        at once. Shrinking waits until sequence i is read (it needs the connections), and happens before
        sequence i is judged, so the judging order, and with it the findings, stay those of one sequence
        after another."""
        started = self.clock()
        deadline = started + self.settings.seconds if self.settings.seconds is not None else None
        index = 0
        previous: _Result | None = None
        try:
            while True:
                flight = None
                if self._more(index, deadline):
                    calls = self.generator.sequence(sequence_rng(self.settings.seed, index))
                    flight = self.servers.send(calls)
                jobs = self._judge(previous, deadline) if previous is not None else []
                current = self._collect(index, flight) if flight is not None else None
                index += flight is not None
                for job in jobs:  # the servers are idle now
                    job()
                previous = current
                if current is None:
                    break
        finally:
            out = self.outcome
            out.sequences = index
            out.explore_seconds = round(self.clock() - started - out.shrink_seconds, 3)
        return self.outcome

    def _late(self, deadline: float | None) -> bool:
        return deadline is not None and self.clock() >= deadline

    def _collect(self, index: int, flight: InFlight) -> _Result:
        try:
            replies = self.servers.collect(flight)
        except SequenceAborted as exc:
            return _Result(index, flight.calls, None, exc, {})
        return _Result(index, flight.calls, replies, None, dict(self.servers.stalls))

    def _judge(self, result: _Result, deadline: float | None) -> list[Callable[[], None]]:
        """Judge one sequence's replies; the shrinks its new divergences call for, to run afterwards."""
        index, calls = result.index, result.calls
        if result.aborted is not None:
            return self._aborted(index, calls, result.aborted, deadline)
        self.outcome.calls += len(calls)
        seen: set[Signature] = set()
        jobs = self._stalled(index, calls, result.stalls, deadline, seen) if result.stalls else []
        for obs in self.judge.judge(calls, result.replies or {}, session=f"sequence {index}"):
            finding = self._count(obs.signature, index, obs.values, seen)
            if self._wants_shrink(finding):
                if self._late(deadline):
                    finding.skipped_reason = finding.skipped_reason or "not shrunk: the time budget ran out first"
                    continue
                jobs.append(lambda finding=finding, obs=obs: self._shrink(finding, calls, obs))
        return jobs

    def _count(self, signature: Signature, index: int, values: dict[str, Any], seen: set[Signature]) -> Finding:
        finding = self.outcome.findings.get(signature)
        if finding is None:
            finding = self.outcome.findings[signature] = Finding(signature, index, values)
        finding.calls += 1
        if signature not in seen:
            finding.sequences += 1
            seen.add(signature)
        return finding

    def _wants_shrink(self, finding: Finding) -> bool:
        return self.settings.shrink and not finding.confirmed and finding.attempts < MAX_SHRINK_ATTEMPTS

    # --- shrinking a reply that differs ---------------------------------------------------------------

    def _shrink(self, finding: Finding, calls: list[tuple[bytes, ...]], obs: Observation) -> None:
        if not self._wants_shrink(finding):  # an earlier job of the same sequence found its repro
            return
        started = self.clock()
        last_replies: dict[str, Any] = {}

        def shows(trial: list[tuple[bytes, ...]]) -> bool:
            judge = fresh_judge(self.judge)
            try:
                replies = self.servers.run(trial, TRIAL_TIMEOUT_S)
            except SequenceAborted:
                return False
            for found in judge.judge(trial, replies):
                if found.signature == finding.signature:
                    last_replies.clear()
                    last_replies.update({name: plain(values[found.index]) for name, values in replies.items()})
                    return True
            return False

        result = minimise(calls, obs.index, shows, self._fixed)
        self._settle(finding, result, last_replies, started)

    def _settle(self, finding: Finding, result: Any, last_replies: dict[str, Any], started: float) -> None:
        spent = self.clock() - started
        finding.attempts += 1
        finding.shrink_seconds += spent
        finding.shrink_tests += result.tests
        self.outcome.shrink_seconds += spent
        if result.confirmed:
            finding.repro, finding.confirmed, finding.exhausted = result.calls, True, result.exhausted
            finding.repro_values = dict(last_replies)
            finding.skipped_reason = ""
        else:
            finding.skipped_reason = "did not reproduce when shrunk and run again (timing or randomness)"

    def _fixed(self, call: tuple[bytes, ...]) -> int:
        """How many leading words of a call are its command (never removed when shrinking)."""
        spec = self.generator.specs.get(command_name(call))
        return len(spec.words) if spec is not None else 1

    # --- a server that did not answer -----------------------------------------------------------------

    def silence(self, failed: dict[str, str]) -> str:
        comparator = self.judge.comparator
        base = comparator.baseline in failed
        controls = [c in failed for c in comparator.controls]
        candidate = any(c in failed for c in comparator.candidates)
        if base and all(controls) and not candidate:
            return SILENT_BASELINE
        if candidate and not base and not any(controls):
            return SILENT_CANDIDATE
        return SILENT_ALL if base and candidate else SILENT_NOISE

    def _aborted(self, index: int, calls: list[tuple[bytes, ...]], exc: SequenceAborted,
                 deadline: float | None) -> list[Callable[[], None]]:
        out = self.outcome
        kind = self.silence(exc.failed)
        out.aborted_by_kind[kind] = out.aborted_by_kind.get(kind, 0) + 1
        if len(out.aborted) < MAX_ABORTED_KEPT:
            out.aborted.append({"sequence": index, "silence": kind, "failed": dict(exc.failed),
                                "calls": [args_text(c, 200) for c in calls]})
        if (kind in (SILENT_BASELINE, SILENT_CANDIDATE) and self.settings.shrink and not self._late(deadline)
                and self._abort_shrinks.get(kind, 0) < MAX_ABORT_SHRINKS):
            self._abort_shrinks[kind] = self._abort_shrinks.get(kind, 0) + 1
            return [lambda: self._shrink_silence(index, calls, kind)]
        return []

    # --- a server that answered only after a PING ------------------------------------------------------

    def _stall_signature(self, stalls: dict[str, int]) -> tuple[str, Signature] | None:
        """(kind, signature) of a stall that is a difference (one side only), or None. One signature per
        side: what stalls is the transport, whichever command happened to be waiting."""
        kind = self.silence({name: "stalled" for name in stalls})
        if kind not in (SILENT_BASELINE, SILENT_CANDIDATE):
            return None
        sides = (STALLED, ANSWERED) if kind == SILENT_BASELINE else (ANSWERED, STALLED)
        return kind, (PIPELINE, *sides)

    def _stalled(self, index: int, calls: list[tuple[bytes, ...]], stalls: dict[str, int],
                 deadline: float | None, seen: set[Signature]) -> list[Callable[[], None]]:
        found = self._stall_signature(stalls)
        out = self.outcome
        kind = STALL_PREFIX + (found[0] if found else self.silence({name: "stalled" for name in stalls}))
        out.aborted_by_kind[kind] = out.aborted_by_kind.get(kind, 0) + 1
        if found is None:
            return []
        comparator = self.judge.comparator
        finding = self._count(found[1], index, {comparator.baseline: found[1][1],
                                                comparator.candidates[0]: found[1][2]}, seen)
        finding.silence = kind
        if self._wants_shrink(finding) and not self._late(deadline):
            return [lambda: self._shrink_stall(finding, calls)]
        return []

    def _shrink_stall(self, finding: Finding, calls: list[tuple[bytes, ...]]) -> None:
        if not self._wants_shrink(finding):
            return
        started = self.clock()

        def shows(trial: list[tuple[bytes, ...]]) -> bool:
            for _ in range(STALL_TRIES):
                try:
                    self.servers.run(trial, TRIAL_TIMEOUT_S)
                except SequenceAborted:
                    continue
                again = self._stall_signature(dict(self.servers.stalls)) if self.servers.stalls else None
                if again is not None and again[1] == finding.signature:
                    return True
            return False

        result = minimise(calls, None, shows, self._fixed, max_seconds=SILENCE_SHRINK_S)
        self._settle(finding, result, dict(finding.first_values), started)

    # --- a server that did not answer at all ----------------------------------------------------------

    def _shrink_silence(self, index: int, calls: list[tuple[bytes, ...]], kind: str) -> None:
        started = self.clock()
        last: dict[str, Any] = {}

        def shows(trial: list[tuple[bytes, ...]]) -> bool:
            try:
                self.servers.run(trial, TRIAL_TIMEOUT_S)
            except SequenceAborted as exc:
                if self.silence(exc.failed) == kind:
                    last.clear()
                    last.update({name: plain(values[-1]) if values else None for name, values in exc.replies.items()})
                    last.update({name: {NO_REPLY: why} for name, why in exc.failed.items()})
                    return True
            return False

        result = minimise(calls, None, shows, self._fixed, max_seconds=SILENCE_SHRINK_S)
        if not result.calls:
            return
        comparator = self.judge.comparator
        sides = [comparator.baseline, comparator.candidates[0]]
        shapes = [NO_REPLY if isinstance(last.get(s), dict) and NO_REPLY in last[s] else reply_shape(last.get(s))
                  for s in sides]
        signature = (command_name(result.calls[-1]), shapes[0], shapes[1])
        finding = self._count(signature, index, {s: last.get(s) for s in sides}, set())
        finding.silence = kind
        self._settle(finding, result, last, started)
