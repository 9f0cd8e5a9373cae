"""Each reply of a sequence judged by app/stream_compare.StreamComparator, and where the judging stops.

A difference in a reply that changes state (a write that one server refused, SPOP's random members)
leaves the servers holding different data: every later reply of that sequence could differ because of
it. So a sequence is judged up to its first such difference or noise; the calls after it are counted as
skipped. Every difference found is therefore one from servers that held the same data.

A signature is what deduplicates differences: the command, and the shape of each side's reply (error or
not, the error text with its quoted parts and numbers elided, or the reply's type).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.explore.docs import CommandSpec
from app.stream_compare import (DIFFERENT, NOISE, Call, ReplyError, StreamComparator, canonical, command_name,
                                plain, shape)

AFTER_DIFFERENCE = "after a difference that changed state in this sequence"
Signature = tuple[str, str, str]  # command, baseline reply shape, candidate reply shape


@dataclass
class Observation:
    """A difference in one call of one sequence."""

    signature: Signature
    index: int                 # the call's position in the sequence
    values: dict[str, Any]     # target -> the reply as compared (JSON-safe)


def is_error(value: Any) -> bool:
    """A compared (plain) value that is an error reply."""
    return isinstance(value, dict) and set(value) == {"error"}


# Runs of elided words ("with args beginning with: … … …"): one, so the number of arguments an error
# quotes does not make another signature (and shrinking may drop arguments).
_ELIDED_RUN = re.compile(r"…(?: …)+")


def coarse(shape_text: str) -> str:
    """A reply's shape for a signature: an array is an array whatever it holds (so a shrink may drop
    the calls that put one more kind of element in EXEC's reply), runs of elided words are one."""
    if shape_text.startswith("array["):
        return "array"
    return _ELIDED_RUN.sub("…", shape_text)


def reply_shape(value: Any) -> str:
    """stream_compare.shape(), coarsened for a signature."""
    return coarse(shape(value))


def same_path(path: str) -> str:
    """A record's path ("CMD: shape vs shape", stream_compare's) as a signature's text reads it."""
    command, _, shapes = path.partition(": ")
    base, sep, cand = shapes.rpartition(" vs ")
    return f"{command}: {coarse(base)} vs {coarse(cand)}" if sep else _ELIDED_RUN.sub("…", path)


def signature_text(signature: Signature) -> str:
    command, base, cand = signature
    return f"{command}: {base} vs {cand}"


class Judge:
    """Feeds a comparator call by call and reports the differences of a sequence."""

    def __init__(self, comparator: StreamComparator, specs: dict[str, CommandSpec], stateless: frozenset[str],
                 versions: dict[str, str | None] | None = None, same_shape_is_noise: frozenset[str] = frozenset()) -> None:
        self.comparator = comparator
        self.same_shape_is_noise = same_shape_is_noise  # commands whose replies differ between any two processes
        self.versions = dict(versions or {})  # candidate -> Valkey version, for the catalogue
        self.specs = specs
        self.stateless = stateless
        self.compared = 0   # calls judged
        self._noisy: dict[str, set[str]] = {}  # command -> coarse reply shapes the control has seen vary
        self._noisy_from = 0
        self.succeeded: dict[str, dict[str, int]] = {}  # target -> command -> calls answered without an error

    @property
    def baseline(self) -> str:
        return self.comparator.baseline

    @property
    def candidate(self) -> str:
        return self.comparator.candidates[0]

    def varies(self, command: str, base_shape: str, cand_shape: str) -> bool:
        """A difference that is noise at the level of coarse shapes: two replies of one shape from a
        command whose replies differ between any two processes (same_shape_is_noise: random members, a
        SCAN page), or from a command the control has been seen to vary with replies of that shape. stream_compare
        only lets noise explain replies of one exact shape, and one key more or less in a page changes it."""
        if base_shape == cand_shape and command in self.same_shape_is_noise and not base_shape.startswith("error:"):
            return True
        history = self.comparator.noise_signatures
        if len(history) != self._noisy_from:
            self._noisy = {}
            for name, shp in history:
                self._noisy.setdefault(name, set()).add(coarse(shp))
            self._noisy_from = len(history)
        return base_shape == cand_shape and base_shape in self._noisy.get(command, ())

    def changes_state(self, command: str, base: Any, cand: Any) -> bool:
        """Whether a call whose replies differed may have left the servers holding different state."""
        if is_error(base) and is_error(cand):
            return False  # refused on both sides: nothing changed
        spec = self.specs.get(command)
        if command in self.stateless or command.endswith(" HELP") or (spec is not None and "readonly" in spec.flags):
            return False
        return True

    def judge(self, calls: Sequence[tuple[bytes, ...]], replies: dict[str, list[Any]], session: str = "",
              notes: bool = True) -> list[Observation]:
        """Judge a sequence's calls in order; the differences found, each with its call's index."""
        found: list[Observation] = []
        diverged = False
        candidate, baseline = self.candidate, self.baseline
        for index, args in enumerate(calls):
            call = Call(args, line=index + 1, session=session)
            if diverged:
                self.comparator.skip(call, AFTER_DIFFERENCE)
                continue
            per_call = {name: values[index] for name, values in replies.items()}
            outcome = self.comparator.add(call, per_call).get(candidate)
            self.compared += 1
            command = command_name(args)
            for name, raw in per_call.items():
                if not isinstance(raw, (ReplyError, BaseException)):
                    mine = self.succeeded.setdefault(name, {})
                    mine[command] = mine.get(command, 0) + 1
            base_raw = per_call[baseline]
            if outcome not in (DIFFERENT, NOISE):
                continue
            base = canonical(command, plain(base_raw))
            cand = canonical(command, plain(per_call[candidate]))
            signature = (command, reply_shape(base), reply_shape(cand))
            if outcome == DIFFERENT and not self.varies(*signature):
                found.append(Observation(signature, index, {baseline: base, candidate: cand}))
            diverged = self.changes_state(command, base, cand)
        return found


def fresh_judge(main: Judge) -> Judge:
    """A judge for trial runs (shrinking): its own comparator, which knows what the main one has seen
    vary between the baseline and its control, so varying content stays noise."""
    source = main.comparator
    comparator = StreamComparator(source.baseline, source.candidates, source.controls, source=source.source,
                                  candidate_versions=main.versions, max_examples=1)
    comparator.noise_signatures = dict(source.noise_signatures)
    return Judge(comparator, main.specs, main.stateless, main.versions, main.same_shape_is_noise)
