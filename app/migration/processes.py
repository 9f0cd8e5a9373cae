"""The rehearsal's server processes: every one started through a Fleet, which stops them all (and
removes their folders) on the way out, on success, error, Ctrl-C or SIGTERM alike. Never a server the
tool did not start.

Each server logs into the Fleet's own folder (not the server's working folder, which is removed when a
start fails), so the exact line with which a server refused a file can still be read.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path

from app.migration import settings
from app.provision import ServerBinary
from app.servers import EmbeddedServer, ServerStartError

# A server log line: "pid:role dd Mon yyyy hh:mm:ss.mmm <level> message"; '#' is the warning level.
# How long a stray server gets to stop on TERM before KILL.
STRAY_STOP_S = 10.0
LOG_LINE = re.compile(r"^\d+:[A-Z] \d+ \w+ \d+ [\d:.]+ ([.\-*#]) (.*)$")


class StartRefused(RuntimeError):
    """A server would not start (typically: it could not load the file it was given)."""

    def __init__(self, message: str, log_lines: list[str]) -> None:
        super().__init__(message)
        self.log_lines = log_lines


class Fleet:
    """Starts servers for the rehearsal and keeps every one of them until stop_all()."""

    def __init__(self, binaries: dict[str, ServerBinary]) -> None:
        self.binaries = binaries
        self.servers: list[EmbeddedServer] = []
        self.folders: list[Path] = []
        self.logs: dict[int, Path] = {}  # id(server) -> its log file
        self._log_dir: Path | None = None

    def start(self, role: str, name: str, extra_args: tuple[str, ...] = (),
              timeout_s: float = 15.0) -> EmbeddedServer:
        log = self._log_folder() / f"{name}-{len(self.logs)}.log"
        server = EmbeddedServer(self.binaries[role], f"mig-{name}", maxmemory=settings.SERVER_MAXMEMORY,
                                extra_args=(*settings.SERVER_ARGS, *extra_args, "--logfile", str(log)))
        self.servers.append(server)
        self.logs[id(server)] = log
        try:
            return server.start(timeout_s=timeout_s)
        except ServerStartError as exc:
            lines = list(dict.fromkeys(warning_lines(self.read_log(server)[0])))  # one per start attempt
            raise StartRefused(lines[0] if lines else str(exc), lines) from exc

    def start_loading(self, role: str, name: str, folder: Path,
                      extra_args: tuple[str, ...] = ()) -> EmbeddedServer:
        """A server whose working folder is `folder` (holding the RDB or AOF it must load at start)."""
        return self.start(role, name, ("--dir", str(folder), *extra_args), timeout_s=settings.LOAD_START_TIMEOUT_S)

    def folder(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"rvc-mig-{name}-"))
        self.folders.append(path)
        return path

    def _log_folder(self) -> Path:
        if self._log_dir is None:
            self._log_dir = self.folder("logs")
        return self._log_dir

    def read_log(self, server: EmbeddedServer, offset: int = 0) -> tuple[str, int]:
        """The server's log from a byte offset, and the offset after it."""
        try:
            with open(self.logs[id(server)], "rb") as log:
                log.seek(offset)
                data = log.read()
        except (OSError, KeyError):
            return "", offset
        return data.decode("utf-8", "replace"), offset + len(data)

    def stop(self, server: EmbeddedServer) -> None:
        server.stop()
        if server in self.servers:
            self.servers.remove(server)

    def stop_all(self) -> None:
        while self.servers:
            server = self.servers.pop()
            if server.process is None and server.workdir is not None:
                # Interrupted inside Popen: the process may exist without the server knowing it.
                self._stop_strays([server.workdir, *self.folders])
            server.stop()
        while self.folders:
            shutil.rmtree(self.folders.pop(), ignore_errors=True)
        self._log_dir = None

    @staticmethod
    def _stop_strays(folders: list[Path]) -> None:
        """Our own child processes working in our folders: stopped by pid (TERM, then KILL)."""
        for pid in _children_in(folders):
            try:
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + STRAY_STOP_S
                while os.waitpid(pid, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if os.waitpid(pid, os.WNOHANG) == (0, 0):
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                continue  # already gone

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def _children_in(folders: list[Path]) -> list[int]:
    """Pids of this process's children whose working folder is inside one of `folders`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cwd = Path(os.readlink(entry / "cwd"))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not readable
        if parent == os.getpid() and any(cwd.is_relative_to(folder) for folder in folders):
            found.append(int(entry.name))
    return found


def warning_lines(log_text: str) -> list[str]:
    """The warning-level messages of a log ('#'), without pid and timestamp, start-up boilerplate left out."""
    lines = []
    for line in log_text.splitlines():
        match = LOG_LINE.match(line.strip())
        if match and match.group(1) == "#":
            message = match.group(2).strip()
            if not any(mark in message for mark in settings.LOG_NOISE_MARKS):
                lines.append(message)
    return lines
