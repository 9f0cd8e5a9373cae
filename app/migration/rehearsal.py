"""The rehearsal: for each direction, a source server holding the data set (generated, or the user's
RDB snapshot), then every route into a fresh target, each verified key by key; the document records
it all in the comparison report's envelope with "kind": "migration". Measures; prints nothing.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import redis

from app import __version__, config
from app.document import new_run_id
from app.identity import allocator_warning, expected, identity_warnings, read_identity
from app.migration import settings
from app.migration.dataset import arm_expiring, generate
from app.migration.keycopy import dump_restore_route, logical_route, migrate_route
from app.migration.outcome import RouteResult, failed
from app.migration.physical import Move, aof_route, rdb_route, replication_route
from app.migration.processes import Fleet, StartRefused
from app.migration.settings import DIRECTIONS, FORWARD, NOT_RUN, PARTIAL, ROLLBACK, WORKS, DatasetSpec
from app.migration.verdict import verdicts
from app.migration.verify import function_libraries, verify
from app.migration.wire import Pipe, WireError, keyspace
from app.provision import ServerBinary, embedded_binary, user_binary
from app.servers import EmbeddedServer

RouteFunction = Callable[[Move], RouteResult]
ROUTE_FUNCTIONS: dict[str, RouteFunction] = {
    "rdb": rdb_route, "aof": aof_route, "aof_no_preamble": partial(aof_route, preamble=False),
    "dump_restore": dump_restore_route, "migrate": migrate_route, "logical": logical_route,
    "replication": replication_route,
}
PURPOSES = {FORWARD: "Migration", ROLLBACK: "Rollback"}
Progress = Callable[[str, str, str], None]


class Interrupted(BaseException):
    """SIGINT or SIGTERM: stop the routes, stop every server, keep what was measured."""


@dataclass
class RehearsalOptions:
    """What to rehearse: the servers' binaries, the data set, which routes in which directions."""

    binaries: dict[str, ServerBinary]
    sources: dict[str, str]  # role -> "embedded" or "binary"
    spec: DatasetSpec = field(default_factory=DatasetSpec)
    rdb: Path | None = None
    routes: list[str] = field(default_factory=lambda: list(settings.ROUTES))
    directions: list[str] = field(default_factory=lambda: list(DIRECTIONS))


def _identity(server: EmbeddedServer) -> dict[str, Any]:
    with redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=10) as client:
        return read_identity(client)


def _label(identity: dict[str, Any]) -> str:
    return f"{identity['product'].capitalize()} {identity['version']}"


def source_keys(port: int) -> int:
    with Pipe(port) as pipe:
        return sum(fields["keys"] for fields in keyspace(pipe).values())


def server_dir(port: int) -> Path:
    with Pipe(port) as pipe:
        return Path(pipe.call("CONFIG", "GET", "dir")[1].decode())


def rehearse(options: RehearsalOptions, run_id: str | None = None,
             progress: Progress | None = None) -> dict[str, Any]:
    """Run every route in every direction; returns the document (also when interrupted)."""
    started = dt.datetime.now(dt.timezone.utc)
    document: dict[str, Any] = {
        "schema_version": 1, "kind": "migration",
        "tool": {"name": "redis-valkey-compat", "version": __version__},
        "run_id": run_id or new_run_id(), "started_at": started.isoformat(timespec="seconds"),
        "completed": False, "targets": {}, "warnings": [],
        "migration": {"routes": options.routes, "route_descriptions": {r: settings.ROUTES[r] for r in options.routes},
                      "directions": {}, "dataset": {}, "matrix": [], "verdict": {}},
    }
    section = document["migration"]
    try:
        for direction in options.directions:
            _rehearse_direction(direction, options, document, progress)
        document["completed"] = True
    except Interrupted as exc:
        document["interrupted"] = str(exc)
    finally:
        _close(document, started)
    labels = {d: (info["source_label"], info["target_label"]) for d, info in section["directions"].items()}
    section["verdict"] = verdicts(section["matrix"], labels, PURPOSES)
    return document


def _close(document: dict[str, Any], started: dt.datetime) -> None:
    identities = {role: t["identity"] for role, t in document["targets"].items()}
    alloc = allocator_warning(identities) if len(identities) > 1 else None
    if alloc:
        document["warnings"].append(alloc)
    finished = dt.datetime.now(dt.timezone.utc)
    document["finished_at"] = finished.isoformat(timespec="seconds")
    document["duration_s"] = round((finished - started).total_seconds(), 3)


def _record_target(document: dict[str, Any], role: str, server: EmbeddedServer, options: RehearsalOptions) -> str:
    """The first process of each binary describes it in `targets`; returns its label."""
    if role not in document["targets"]:
        identity = _identity(server)
        warnings = identity_warnings(role, expected(role), identity)
        document["targets"][role] = {"role": role, "url": server.url, "source": options.sources.get(role, "embedded"),
                                     "owned": True, "binary": options.binaries[role].source,
                                     "identity": identity, "warnings": warnings}
        document["warnings"].extend(warnings)
    return _label(document["targets"][role]["identity"])


def _rehearse_direction(direction: str, options: RehearsalOptions, document: dict[str, Any],
                        progress: Progress | None) -> None:
    source_role, target_role = DIRECTIONS[direction]
    section = document["migration"]
    info = section["directions"][direction] = {"source": source_role, "target": target_role,
                                               "source_label": source_role, "target_label": target_role}
    with Fleet(options.binaries) as fleet:
        if progress:
            progress(direction, "source", "starting")
        try:
            source = _start_source(fleet, source_role, options)
        except StartRefused as exc:
            section["dataset"][direction] = {"source": "rdb", "error": str(exc), "server_log": exc.log_lines}
            for route in options.routes:
                section["matrix"].append(_cell(route, direction, RouteResult(
                    status=NOT_RUN, detail=f"the {source_role} source could not load the snapshot", error=str(exc),
                    server_log=exc.log_lines), keys=0))
            return
        info["source_label"] = _record_target(document, source_role, source, options)
        if progress:
            progress(direction, "dataset", "generating" if options.rdb is None else "loaded")
        section["dataset"][direction] = _dataset(source, options)
        probe = None
        for route in options.routes:
            if progress:
                progress(direction, route, "running")
            if options.rdb is None:
                arm_expiring(source.port, options.spec)
            keys = source_keys(source.port)
            result = _run_route(route, Move(fleet, source, source_role, target_role, keys, server_dir(source.port)))
            cell = _cell(route, direction, result, keys)
            if result.target is not None and probe is None and result.target.alive():
                probe = result.target
                info["target_label"] = _record_target(document, target_role, probe, options)
            if result.target is not None and result.status in (WORKS, PARTIAL) and result.target.alive():
                if progress:
                    progress(direction, route, "verifying")
                tolerance = int(result.duration_s * 1000) + settings.TTL_SLACK_MS
                cell["verification"] = verify(source.port, result.target.port, tolerance)
                cell["mismatches"] = cell["verification"]["mismatches"]
                cell["losses"] = cell["verification"]["losses"]
            if result.target is not None:
                fleet.stop(result.target)
            section["matrix"].append(cell)
        if probe is None:  # every route refused before a target answered: start one only to identify it
            info["target_label"] = _record_target(document, target_role, fleet.start(target_role, "probe"), options)


def _start_source(fleet: Fleet, role: str, options: RehearsalOptions) -> EmbeddedServer:
    if options.rdb is None:
        return fleet.start(role, "source")
    folder = fleet.folder("snapshot")
    shutil.copyfile(options.rdb, folder / "dump.rdb")
    return fleet.start_loading(role, "source", folder, ("--dbfilename", "dump.rdb"))


def _dataset(source: EmbeddedServer, options: RehearsalOptions) -> dict[str, Any]:
    if options.rdb is None:
        return generate(source.port, options.spec)
    with Pipe(source.port) as pipe:
        per_db = {db: fields["keys"] for db, fields in keyspace(pipe).items()}
    libraries = function_libraries(source.port)
    return {"source": "rdb", "rdb_path": str(options.rdb), "rdb_bytes": options.rdb.stat().st_size,
            "keys": sum(per_db.values()), "by_db": {str(db): n for db, n in sorted(per_db.items())},
            "functions": sorted(libraries)}


def _run_route(route: str, move: Move) -> RouteResult:
    started = time.perf_counter()
    try:
        return ROUTE_FUNCTIONS[route](move)
    except (OSError, WireError, TimeoutError, redis.RedisError, StartRefused) as exc:
        return failed(f"{type(exc).__name__}: {exc}", time.perf_counter() - started)
    except Exception as exc:  # noqa: BLE001 - a broken route must not stop the others; its trace is kept
        tail = traceback.format_exc(limit=3).strip().splitlines()[-3:]
        return failed(f"{type(exc).__name__}: {exc} ({' | '.join(tail)})", time.perf_counter() - started)


def _cell(route: str, direction: str, result: RouteResult, keys: int) -> dict[str, Any]:
    record = result.as_record()
    seconds = result.rate_seconds or result.duration_s
    return {"route": route, "direction": direction, **record, "keys": keys,
            "keys_per_s": round(keys / seconds) if keys and seconds > 0 and result.status in (WORKS, PARTIAL) else None,
            "verification": None, "mismatches": None, "losses": None}


def default_binaries(server_paths: dict[str, str | None]) -> tuple[dict[str, ServerBinary], dict[str, str]]:
    """The embedded binaries, or the user's where a path is given; and where each came from."""
    binaries, sources = {}, {}
    for role in config.ROLES:
        path = server_paths.get(role)
        binaries[role] = user_binary(path) if path else embedded_binary(role)
        sources[role] = "binary" if path else "embedded"
    return binaries, sources
