"""Server processes: start a Redis or Valkey binary on a free loopback port, and always stop it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app import config
from app.child_process import die_with_parent
from app.provision import ServerBinary, embedded_binary


class ServerStartError(RuntimeError):
    """The server process did not come up; the message carries the end of its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


WORKDIR_PREFIX = "rvc-"
OWNER_FILE = "owner.pid"  # the pid of the tool process whose server uses the folder
_stale_checked = False


def remove_stale_workdirs() -> list[Path]:
    """Folders of servers whose tool process is gone (killed outright: its servers died with it through
    PDEATHSIG, but nothing removed their folders). Checked once per process; returns what was removed."""
    global _stale_checked
    if _stale_checked:
        return []
    _stale_checked = True
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        try:
            owner = int((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not a folder of ours, or one being created right now
        if owner != os.getpid() and not pid_alive(owner):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedServer:
    """One server process in its own temporary directory, with no persistence."""

    def __init__(self, binary: ServerBinary, name: str, maxmemory: str = config.EMBEDDED_MAXMEMORY,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.binary = binary
        self.name = name
        self.maxmemory = maxmemory
        self.extra_args = extra_args
        self.port = 0
        self.workdir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._stderr_text = ""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "server.log"

    def start(self, timeout_s: float = 15.0) -> "EmbeddedServer":
        remove_stale_workdirs()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{self.name}-"))
        (self.workdir / OWNER_FILE).write_text(str(os.getpid()))
        for attempt in range(3):  # a free port can be taken between probing and binding
            self.port = free_port()
            args = [str(self.binary.path), "--port", str(self.port), "--bind", "127.0.0.1",
                    "--dir", str(self.workdir), "--logfile", str(self.log_path),
                    "--save", "", "--appendonly", "no", "--daemonize", "no",
                    "--protected-mode", "no", "--maxmemory", self.maxmemory, *self.extra_args]
            env = {**os.environ, **self.binary.env}
            # Own session: a Ctrl-C on the terminal reaches the tool, which then stops the server.
            self.process = subprocess.Popen(args, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                            start_new_session=True, preexec_fn=die_with_parent())
            if self._wait_ready(timeout_s):
                return self
            self.stop(remove_dir=False)
        message = f"{self.name} ({self.binary.path}) did not start: {self.log_tail()}"
        self.stop()
        raise ServerStartError(message)

    def _wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    # NOAUTH also proves the server is serving (started with requirepass).
                    if sock.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                        return True
            except OSError:
                pass  # not listening yet
            time.sleep(0.05)
        return False

    def log_tail(self, lines: int = 5) -> str:
        chunks = [self._stderr_text]
        if self.workdir is not None and self.log_path.exists():
            chunks.append(self.log_path.read_text(errors="replace"))
        text = "\n".join(chunks).strip().splitlines()
        return " | ".join(text[-lines:]) or "no output"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, remove_dir: bool = True) -> None:
        """Stop the process (TERM, then KILL) and remove its directory; safe to call twice.

        Whatever interrupts the polite stop (a signal raised while waiting), the process is killed before
        the interruption goes on: a server must never outlive the tool."""
        proc, self.process = self.process, None
        if proc is not None:
            try:
                if proc.poll() is None:
                    try:
                        os.kill(proc.pid, signal.SIGCONT)  # a frozen (SIGSTOP) server cannot act on TERM
                        proc.terminate()
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(timeout=10)
                    except ProcessLookupError:
                        pass  # already gone
            except BaseException:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=10)
                raise
            finally:
                if proc.stderr is not None:
                    self._stderr_text = proc.stderr.read().decode(errors="replace")
                    proc.stderr.close()
        if remove_dir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> "EmbeddedServer":
        return self if self.alive() else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def embedded_pair(tag: str) -> Iterator[dict[str, EmbeddedServer]]:
    """Both embedded servers, keyed by role, fresh processes, always stopped on the way out."""
    started: dict[str, EmbeddedServer] = {}
    try:
        for role in config.ROLES:
            started[role] = EmbeddedServer(embedded_binary(role), f"{tag}-{role}").start()
        yield started
    finally:
        for server in started.values():
            server.stop()
