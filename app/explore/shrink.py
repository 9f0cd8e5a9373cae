"""Shrinking a divergence to a minimal repro: delta debugging (Zeller's ddmin) over the calls before the
one that differed, then over each remaining call's arguments.

Why ddmin and not Hypothesis' shrinker: the sequences are generated here, from COMMAND DOCS, by a seeded
generator that makes 20,000 calls a second; Hypothesis would have to draw every value through its own
strategies (ten times slower) to shrink them, and its example database and health checks get in the way
of "same seed, same findings". ddmin needs only a yes/no test (run the candidate sequence on the three
servers, does the signature show?), costs O(n log n) runs for a sequence of n calls (a run is about a
millisecond), and its result is 1-minimal: dropping any single call loses the difference.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
Calls = list[tuple[bytes, ...]]
Test = Callable[[Calls], bool]

MAX_TESTS = 400       # trial runs per finding at most
MAX_SECONDS = 20.0    # and seconds per finding at most
CONFIRMATIONS = 3     # the minimal repro must show the difference this many times more
LONG_ARGUMENT = 32    # an argument longer than this is tried short
SHORT_VALUE = b"x"


@dataclass
class ShrinkResult:
    calls: Calls
    confirmed: bool
    tests: int
    seconds: float
    exhausted: bool = False  # the budget ran out before the repro was minimal


class _Budget:
    def __init__(self, test: Test, max_tests: int, max_seconds: float) -> None:
        self.test, self.max_tests = test, max_tests
        self.deadline = time.monotonic() + max_seconds
        self.tests = 0
        self.cache: dict[tuple[tuple[bytes, ...], ...], bool] = {}

    @property
    def spent(self) -> bool:
        return self.tests >= self.max_tests or time.monotonic() > self.deadline

    def __call__(self, calls: Calls) -> bool:
        key = tuple(calls)
        if key not in self.cache:
            if self.spent:
                return False
            self.tests += 1
            self.cache[key] = self.test(list(calls))
        return self.cache[key]


def ddmin(prefix: list[T], last: T | None, test: Callable[[list[T]], bool]) -> list[T]:
    """The smallest subsequence of `prefix` (order kept) that, followed by `last` (if any), still passes
    `test`: 1-minimal, dropping any one call of it loses the difference."""
    items = list(prefix)
    tail = [last] if last is not None else []
    if last is not None and test(tail):
        return []
    granularity = 2
    while items:
        size = -(-len(items) // min(granularity, len(items)))
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        reduced = False
        if len(chunks) > 1:
            for chunk in chunks:  # a single chunk may be all it takes
                if test(chunk + tail):
                    items, granularity, reduced = chunk, 2, True
                    break
        if not reduced:
            for i in range(len(chunks)):  # or everything but one chunk
                rest = [c for j, chunk in enumerate(chunks) if j != i for c in chunk]
                if test(rest + tail):
                    items, granularity, reduced = rest, max(granularity - 1, 2), True
                    break
        if not reduced:
            if size == 1:
                break
            granularity = min(len(items), granularity * 2)
    return items


def shrink_arguments(calls: Calls, fixed: Callable[[tuple[bytes, ...]], int], test: Callable[[Calls], bool]) -> Calls:
    """Each call with every argument it can do without removed (ddmin over its arguments, so a call
    with 150 members loses most of them in a few runs); its command words are kept."""
    calls = list(calls)
    for position in range(len(calls)):
        words = calls[position][:fixed(calls[position])]

        def with_args(args: Calls, position: int = position, words: tuple[bytes, ...] = words) -> Calls:
            return calls[:position] + [words + tuple(args)] + calls[position + 1:]

        kept = ddmin(list(calls[position][len(words):]), None, lambda args: test(with_args(args)))
        index = len(kept) - 2
        while index >= 0:  # an option and its value go together (MATCH *1*): ddmin's singletons miss them
            if test(with_args(kept[:index] + kept[index + 2:])):
                kept = kept[:index] + kept[index + 2:]
            index -= 1
        calls = with_args(kept)
    return calls


def simplify_values(calls: Calls, fixed: Callable[[tuple[bytes, ...]], int], test: Callable[[Calls], bool]) -> Calls:
    """Each long argument replaced by a short one where the difference stays: a repro one can read."""
    calls = list(calls)
    for position in range(len(calls)):
        for index in range(fixed(calls[position]), len(calls[position])):
            args = calls[position]
            if len(args[index]) <= LONG_ARGUMENT:
                continue
            trial = calls[:position] + [args[:index] + (SHORT_VALUE,) + args[index + 1:]] + calls[position + 1:]
            if test(trial):
                calls = trial
    return calls


def minimise(calls: Sequence[tuple[bytes, ...]], index: int | None, test: Test,
             fixed: Callable[[tuple[bytes, ...]], int], *, max_tests: int = MAX_TESTS,
             max_seconds: float = MAX_SECONDS) -> ShrinkResult:
    """A minimal repro of the difference call `index` of `calls` shows (None: the sequence as a whole,
    such as a server that stopped answering); `test` says whether a sequence (run on fresh servers)
    still shows it. Confirmed when the repro shows it CONFIRMATIONS times more."""
    started = time.monotonic()
    budget = _Budget(test, max_tests, max_seconds)
    if index is None:
        repro = ddmin(list(calls), None, budget)
    else:
        repro = ddmin(list(calls[:index]), calls[index], budget) + [calls[index]]
    repro = simplify_values(shrink_arguments(repro, fixed, budget), fixed, budget)
    exhausted = budget.spent
    confirmed = all(test(list(repro)) for _ in range(CONFIRMATIONS))
    return ShrinkResult(repro, confirmed, budget.tests + CONFIRMATIONS, time.monotonic() - started, exhausted)
