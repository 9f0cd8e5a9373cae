"""Routes in the servers' own formats: replication (REPLICAOF), the RDB file, the multi-part AOF.

Each starts a fresh, empty target from the Fleet and returns a RouteResult; a target that refuses
the format is reported with the exact line it logged. Measures; prints nothing.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.migration import settings
from app.migration.outcome import RouteResult, failed
from app.migration.processes import Fleet, StartRefused, warning_lines
from app.migration.settings import REFUSED, WORKS
from app.migration.wire import Pipe, WireError, is_error, parse_info
from app.servers import EmbeddedServer

POLL_S = 0.05
INCREMENTAL_KEYS = 100  # written after the AOF rewrite: they live only in the incremental file


@dataclass
class Move:
    """What a route is given: the servers' fleet, the source process and roles, the data set's size."""

    fleet: Fleet
    source: EmbeddedServer
    source_role: str
    target_role: str
    keys: int
    source_dir: Path  # the source's CONFIG dir: where BGSAVE and the AOF write


def info(port: int, section: str) -> dict[str, str]:
    with Pipe(port) as pipe:
        return parse_info(pipe.call("INFO", section))


def _wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not finish within {timeout_s:.0f} s")
        time.sleep(POLL_S)


def _config_set(port: int, **values: str) -> dict[str, str]:
    """CONFIG SET on a server the tool started; returns the previous values."""
    previous = {}
    with Pipe(port) as pipe:
        for name, value in values.items():
            name = name.replace("_", "-")
            previous[name] = pipe.call("CONFIG", "GET", name)[1].decode()
            pipe.call("CONFIG", "SET", name, value)
    return previous


def _loaded(move: Move, name: str, folder: Any, extra_args: tuple[str, ...], result: RouteResult,
            started: float) -> RouteResult:
    """Start the target on a folder holding the file; a refusal becomes the route's outcome."""
    begin = time.perf_counter()
    try:
        result.target = move.fleet.start_loading(move.target_role, name, folder, extra_args)
    except StartRefused as exc:
        result.status, result.error, result.server_log = REFUSED, str(exc), exc.log_lines
        result.detail = f"{move.target_role} did not start on the {move.source_role} file"
    result.phases["load_s"] = time.perf_counter() - begin
    result.duration_s = time.perf_counter() - started
    return result


# --- RDB ---------------------------------------------------------------------------------------------

def rdb_route(move: Move) -> RouteResult:
    started = time.perf_counter()
    port = move.source.port
    before = int(info(port, "persistence")["rdb_last_save_time"])
    with Pipe(port) as pipe:
        pipe.call("BGSAVE")
    try:
        _wait(lambda: _bgsave_done(port, before), settings.PERSIST_TIMEOUT_S, "BGSAVE")
    except TimeoutError as exc:
        return failed(str(exc), time.perf_counter() - started)
    saved = time.perf_counter()
    folder = move.fleet.folder("rdb")
    dump = move.source_dir / "dump.rdb"
    shutil.copyfile(dump, folder / "dump.rdb")
    result = RouteResult(status=WORKS, detail="BGSAVE on the source, the file copied, the target started on it")
    result.phases = {"save_s": saved - started, "copy_s": time.perf_counter() - saved}
    result.counts = {"file_bytes": dump.stat().st_size, "file_signature": dump.read_bytes()[:9].decode("latin-1")}
    return _loaded(move, "rdb-target", folder, ("--dbfilename", "dump.rdb"), result, started)


def _bgsave_done(port: int, before: int) -> bool:
    fields = info(port, "persistence")
    if fields.get("rdb_bgsave_in_progress") != "0":
        return False
    if fields.get("rdb_last_bgsave_status") != "ok":
        raise WireError(f"BGSAVE failed on the source: rdb_last_bgsave_status {fields.get('rdb_last_bgsave_status')}")
    return int(fields["rdb_last_save_time"]) >= before and fields.get("rdb_changes_since_last_save") == "0"


# --- AOF ---------------------------------------------------------------------------------------------

def aof_route(move: Move, preamble: bool = True) -> RouteResult:
    """Turn AOF on at the source (a rewrite writes the base), write more (the incremental file), copy."""
    started = time.perf_counter()
    port = move.source.port
    previous = _config_set(port, aof_use_rdb_preamble="yes" if preamble else "no")
    try:
        _config_set(port, appendonly="yes")
        _wait(lambda: _rewrite_done(port), settings.PERSIST_TIMEOUT_S, "AOF rewrite")
        with Pipe(port) as pipe:
            replies = pipe.run([("SET", f"{settings.KEY_PREFIX}aof-incr:{n}", n) for n in range(INCREMENTAL_KEYS)])
        if any(is_error(r) for r in replies):
            return failed(f"writing the incremental part: {next(r for r in replies if is_error(r))}")
        rewritten = time.perf_counter()
        folder = move.fleet.folder("aof")
        source_dir = move.source_dir / "appendonlydir"
        shutil.copytree(source_dir, folder / "appendonlydir")
        files = sorted(p.name for p in source_dir.iterdir())
        base = next((folder / "appendonlydir" / f for f in files if ".base." in f), None)
    except TimeoutError as exc:
        return failed(str(exc), time.perf_counter() - started)
    finally:
        _config_set(port, appendonly="no", **{k.replace("-", "_"): v for k, v in previous.items()})
    result = RouteResult(status=WORKS, detail="appendonly yes on the source (rewrite: base file), "
                                              f"{INCREMENTAL_KEYS} more writes (incremental file), folder copied, "
                                              "target started with appendonly yes")
    result.phases = {"rewrite_s": rewritten - started, "copy_s": time.perf_counter() - rewritten}
    result.counts = {"files": files, "bytes": sum((folder / "appendonlydir" / f).stat().st_size for f in files),
                     "base_signature": base.read_bytes()[:9].decode("latin-1") if base else None,
                     "incremental_keys": INCREMENTAL_KEYS}
    return _loaded(move, "aof-target", folder, ("--appendonly", "yes"), result, started)


def _rewrite_done(port: int) -> bool:
    fields = info(port, "persistence")
    if fields.get("aof_rewrite_in_progress") != "0" or fields.get("aof_rewrite_scheduled") != "0":
        return False
    if fields.get("aof_last_bgrewrite_status") != "ok":
        raise WireError(f"AOF rewrite failed on the source: {fields.get('aof_last_bgrewrite_status')}")
    return fields.get("aof_enabled") == "1"


# --- replication -------------------------------------------------------------------------------------

class WriteLoad(threading.Thread):
    """Writes to the source in small pipelined batches until stopped; counts every write."""

    def __init__(self, port: int) -> None:
        super().__init__(name="rvc-migrate-load", daemon=True)
        self.port = port
        self.stop_event = threading.Event()
        self.writes = 0
        self.errors: list[str] = []

    def run(self) -> None:
        p = settings.KEY_PREFIX
        try:
            with Pipe(self.port) as pipe:
                n = 0
                while not self.stop_event.is_set():
                    batch = []
                    for _ in range(settings.LOAD_BATCH // 5):
                        batch += [("SET", f"{p}load:{n}", f"v{n}"), ("INCR", f"{p}load:counter"),
                                  ("HSET", f"{p}load:hash", f"f{n % 1000}", n),
                                  ("XADD", f"{p}load:stream", "*", "n", n),
                                  ("PEXPIRE", f"{p}load:{n}", 3_600_000 + n)]
                        n += 1
                    replies = pipe.run(batch)
                    self.errors += [str(r) for r in replies if is_error(r)][:5 - len(self.errors)]
                    self.writes += len(batch)
                    time.sleep(settings.LOAD_PAUSE_S)
        except (OSError, WireError) as exc:
            self.errors.append(f"write load stopped: {exc}")

    def finish(self) -> int:
        self.stop_event.set()
        self.join(timeout=30)
        return self.writes


def replication_route(move: Move) -> RouteResult:
    started = time.perf_counter()
    source_port = move.source.port
    previous = _config_set(source_port, **{k.replace("-", "_"): v
                                           for k, v in settings.REPLICATION_SOURCE_CONFIG.items()})
    target = move.fleet.start(move.target_role, "replica")
    result = RouteResult(status=WORKS, detail="REPLICAOF on a fresh target, full sync with a write load on the "
                                              "source during and after it; then REPLICAOF NO ONE",
                         target=target)
    result.notes.append("source " + ", ".join(f"{k} {v}" for k, v in settings.REPLICATION_SOURCE_CONFIG.items())
                        + " (was " + ", ".join(f"{v}" for v in previous.values()) + ")")
    load = WriteLoad(source_port)
    load.start()
    try:
        _sync(move, target, result, load)
    finally:
        writes = load.finish()
        _config_set(source_port, **{k.replace("-", "_"): v for k, v in previous.items()})
    result.counts["writes_total"] = writes
    if load.errors:
        result.notes.append("write load: " + "; ".join(load.errors))
    if result.status == WORKS:
        _catch_up(source_port, target.port, result)
        with Pipe(target.port) as pipe:
            pipe.call("REPLICAOF", "NO", "ONE")
    result.duration_s = time.perf_counter() - started
    return result


def _sync(move: Move, target: EmbeddedServer, result: RouteResult, load: WriteLoad) -> None:
    """REPLICAOF, then wait for the link to be up with the sync done, or for the replica to refuse."""
    offset = move.fleet.read_log(target)[1]
    timeout = settings.SYNC_TIMEOUT_S + move.keys / settings.SYNC_KEYS_PER_S_FLOOR
    begin = time.perf_counter()
    with Pipe(target.port) as pipe:
        result.counts["replicaof_reply"] = pipe.call("REPLICAOF", "127.0.0.1", move.source.port).decode()
    failures: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fields = info(target.port, "replication")
        if fields.get("master_link_status") == "up" and fields.get("master_sync_in_progress") == "0":
            result.phases["sync_s"] = result.rate_seconds = time.perf_counter() - begin
            result.counts["writes_during_sync"] = load.writes
            time.sleep(settings.LOAD_AFTER_SYNC_S)  # the write load goes on after the sync, on purpose
            return
        text, offset = move.fleet.read_log(target, offset)
        failures += [line for line in warning_lines(text)
                     if any(mark in line for mark in settings.SYNC_FAILURE_MARKS)]
        if failures and failures.count(failures[0]) >= settings.SYNC_FAILURE_ATTEMPTS:
            break
        time.sleep(POLL_S)
    result.phases["sync_s"] = time.perf_counter() - begin
    result.status = REFUSED
    result.error = failures[0] if failures else f"no sync within {timeout:.0f} s"
    result.server_log = list(dict.fromkeys(failures))
    source_log = warning_lines(move.fleet.read_log(move.source)[0])
    result.notes += [f"source log: {line}" for line in source_log[-3:]]
    result.detail = (f"REPLICAOF answered {result.counts.get('replicaof_reply')}, then the replica refused "
                     f"the sync {failures.count(result.error)} time(s): {result.error}")


def _catch_up(source_port: int, target_port: int, result: RouteResult) -> None:
    """After the load stopped: the replica's offset must reach the source's."""
    begin = time.perf_counter()
    source_offset = int(info(source_port, "replication")["master_repl_offset"])
    _wait(lambda: int(info(target_port, "replication").get("slave_repl_offset", -1)) >= source_offset,
          settings.SYNC_TIMEOUT_S, "replica catching up")
    result.phases["catch_up_s"] = time.perf_counter() - begin
    result.counts["source_offset"] = source_offset
    result.counts["replica_offset"] = int(info(target_port, "replication").get("slave_repl_offset", -1))
