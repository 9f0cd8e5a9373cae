"""Signals: SIGINT, SIGTERM, SIGHUP (a closed terminal or SSH session) and SIGQUIT all stop a run the same
way: scenarios stop, CONFIG is restored, keys are removed, servers are stopped, the partial reports are
written, exit 130.

A signal raises Interrupted where the run is, except while the run is cleaning up or writing reports:
there it is deferred (recorded, raised at the next checkpoint), so a second Ctrl-C can never break a
cleanup half-way. A signal raised where Python swallows exceptions (a connection's __del__) is still
recorded, and the runner's checkpoints raise it: it is never lost.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


class Interrupted(BaseException):
    """A stop signal: carries its name; `partial` may hold the result of the scenario it stopped."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.partial: dict[str, Any] | None = None


_Guard = TypeVar("_Guard", bound="SignalGuard")


class SignalGuard:
    """Turns stop signals into an exception (Interrupted, or what `make` builds from the signal's name),
    deferring them while cleanup must not be interrupted. With `once`, only the first signal raises and
    later ones are only recorded: for callers whose cleanup runs outside any deferred() block."""

    def __init__(self, make: Callable[[str], BaseException] = Interrupted, signals: Iterable[int] = HANDLED,
                 once: bool = False) -> None:
        self.make, self.signals, self.once = make, tuple(signals), once
        self.received: list[str] = []
        self._deferring = 0
        self._previous: dict[int, Any] = {}

    def install(self: _Guard) -> _Guard:
        if threading.current_thread() is not threading.main_thread():
            return self  # signal handlers can only be set from the main thread; tests may run elsewhere
        self.received.clear()
        self._previous = {sig: signal.signal(sig, self._handle) for sig in self.signals}
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signal.Signals(signum).name)
        if not self._deferring and not (self.once and len(self.received) > 1):
            raise self.make(self.received[0])

    @property
    def pending(self) -> str | None:
        return self.received[0] if self.received else None

    def checkpoint(self) -> None:
        """Raise if a signal came and was deferred or swallowed."""
        if self.received and not self._deferring:
            raise self.make(self.received[0])

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Signals that arrive inside are recorded only; raised at the next checkpoint outside."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1


GUARD = SignalGuard()
