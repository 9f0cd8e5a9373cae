"""Progress on a terminal for long runs: which scenario runs on which server, and for how long.

Quiet when stderr is not a terminal (CI logs, pipes): the callable then does nothing at all.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import IO, Any

CLEAR_LINE = "\r\x1b[2K"


class Progress:
    """A `progress(name, role)` callable for run_comparison; call close() (or use `with`) at the end."""

    def __init__(self, total: int | None = None, stream: IO[str] | None = None,
                 enabled: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _is_tty(self.stream) if enabled is None else enabled
        self.total = total
        self.count = 0
        self.started = time.monotonic()
        self.current: tuple[str, str] | None = None

    def __call__(self, name: str, role: str) -> None:
        self.count += 1
        self.current = (name, role)
        if self.enabled:
            self._write(CLEAR_LINE + self.line())

    def line(self) -> str:
        """One status line, cut to the terminal's width so it never wraps."""
        step = f"{self.count}/{self.total}" if self.total else str(self.count)
        name, role = self.current or ("", "")
        text = f"[{step}] {name} on {role} ... {time.monotonic() - self.started:.0f}s"
        width = shutil.get_terminal_size((80, 24)).columns - 1
        return text if len(text) <= width else text[:max(width - 3, 0)] + "..."

    def close(self) -> None:
        """Clear the status line so the table printed next starts on a clean line."""
        if self.enabled and self.count:
            self._write(CLEAR_LINE)

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream: stay quiet
        return False


def make_progress(total: int | None = None, stream: IO[str] | None = None) -> Progress:
    """The runner's progress display: live on a terminal, silent otherwise."""
    return Progress(total=total, stream=stream)
