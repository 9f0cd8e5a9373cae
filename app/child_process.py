"""Child processes (servers, builds) that never outlive the tool, however the tool dies."""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable, Iterable

PR_SET_PDEATHSIG = 1


def die_with_parent(unblock: Iterable[int] = ()) -> Callable[[], None]:
    """A preexec_fn: the child gets SIGTERM when the thread that started it dies (PR_SET_PDEATHSIG),
    and exits at once if the tool already died between the fork and that call (it would be an orphan:
    a SIGKILL during a server's start left Valkey processes running)."""
    parent = os.getpid()
    held = set(unblock)

    def setup() -> None:
        if held:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, held)  # blocked by the parent around the fork
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except OSError:
            return  # not Linux: the normal stop path still applies
        if os.getppid() != parent:
            os._exit(1)

    return setup
