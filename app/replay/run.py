"""Replaying capture files on the targets and building the report document (kind "replay").

replay_files() is the one entry point: the CLI, the explorer (its minimal repros are command files)
and the tests call it. It measures and returns the document; it prints nothing and stops no server.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from app import config
from app.captures import BadLine, CaptureError, open_capture
from app.catalogue import candidate_version_of
from app.document import conclude, describe_targets, finish, new_document, new_run_id, now
from app.replay.executor import Executor
from app.replay.judging import ReplayComparator
from app.replay.keys import KeyTable
from app.replay.policy import policy_table
from app.replay.wire import WireError
from app.targets import Target, check_reachable

SOURCE = "replay"
BAD_LINES_KEPT = 20  # per input, described in the report; all are counted


class ReplayError(Exception):
    """The replay cannot start (an unreadable capture, a target it must not write to); one line."""


class ReplayInterrupted(BaseException):
    """Raised by a caller's signal handler: the replay stops, the document keeps what was compared."""


def ordered(targets: Sequence[Target]) -> list[Target]:
    """Baseline first, then its controls, then the candidates: the executor's target order."""
    rank = {config.BASELINE_ROLE: 0, config.CONTROL_ROLE: 1, config.CANDIDATE_ROLE: 2}
    return sorted(targets, key=lambda t: rank.get(t.role, 2))


def keyspace(client: redis.Redis) -> dict[str, int]:
    """db name -> keys, for every database that holds any (INFO keyspace)."""
    return {db: int(fields.get("keys", 0)) for db, fields in client.info("keyspace").items()
            if isinstance(fields, dict)}


def check_writable(targets: Sequence[Target], clients: dict[str, redis.Redis], allow_server_changes: bool) -> None:
    """A server the tool did not start is written to only when allowed and empty in every database."""
    for target in targets:
        if target.owned:
            continue
        if not allow_server_changes:
            raise ReplayError(f"{target.name}: {target.display_url()} was not started by the tool: the replay "
                              "writes to it; pass --allow-server-changes to allow that on an empty server")
        held = keyspace(clients[target.name])
        if held:
            listed = ", ".join(f"{db} ({keys} keys)" for db, keys in held.items())
            raise ReplayError(f"{target.name}: {target.display_url()} holds data ({listed}): the replay runs "
                              "only on an empty server")


def command_table(target: Target, timeout_s: float) -> list[Any]:
    """The server's COMMAND reply as sent (redis-py's reshaping turned off)."""
    with target.client(timeout_s) as client:
        client.response_callbacks.clear()
        try:
            return client.execute_command("COMMAND")
        except redis.ResponseError:
            return []  # COMMAND renamed away: every command becomes a barrier, the replay still works


def fresh(clients: dict[str, redis.Redis], targets: Sequence[Target]) -> None:
    """Every target as new: no keys, no scripts, no functions (only on servers the tool started)."""
    for target in targets:
        if not target.owned:
            raise ReplayError(f"{target.name}: a fresh start empties the server; only on servers the tool started")
        client = clients[target.name]
        client.flushall()
        client.execute_command("SCRIPT", "FLUSH")
        client.execute_command("FUNCTION", "FLUSH")


def replay_files(paths: Sequence[str | Path], targets: list[Target], *, timeout_s: float = config.DEFAULT_COMMAND_TIMEOUT_S,
                 block_timeout_s: float = 1.0, fresh_start: bool = False, allow_server_changes: bool = False,
                 max_examples: int = 3, run_id: str | None = None,
                 preloaded: Sequence[str | Path] = ()) -> dict[str, Any]:
    """Replay each capture in turn on every target and compare; the finished "replay" document.

    preloaded: captures whose starting data (an RDB preamble or base) the servers were started with."""
    started = now()
    document = new_document("replay", run_id or new_run_id(), [SOURCE])
    clients: dict[str, redis.Redis] = {}
    try:
        for target in targets:
            clients[target.name] = target.client(timeout_s)
            check_reachable(target, clients[target.name])
        describe_targets(document, targets, clients)
        check_writable(targets, clients, allow_server_changes)
        order = ordered(targets)
        baseline = order[0].name
        candidates = [t.name for t in order if t.role == config.CANDIDATE_ROLE]
        controls = [t.name for t in order if t.role == config.CONTROL_ROLE]
        comparator = ReplayComparator(baseline, candidates, controls, source=SOURCE, max_examples=max_examples,
                                      candidate_versions={c: candidate_version_of(document, c) for c in candidates})
        keys = KeyTable([command_table(order[0], timeout_s)] +
                        [command_table(t, timeout_s) for t in order if t.role == config.CANDIDATE_ROLE])
        section = document["replay"] = {"inputs": [], "policy": policy_table(), "block_timeout_s": block_timeout_s}
        counts: dict[str, int] = {}
        seconds = 0.0
        owned = all(t.owned for t in targets)
        preloaded_set = {str(Path(p)) for p in preloaded}
        try:
            for path in paths:
                if fresh_start:
                    fresh(clients, targets)
                executor = Executor(order, comparator, keys, timeout_s=timeout_s, block_timeout_s=block_timeout_s,
                                    owned=owned)
                begun = time.perf_counter()
                try:
                    section["inputs"].append(_replay_one(Path(path), executor, document, preloaded_set))
                finally:
                    seconds += time.perf_counter() - begun
                    executor.close()
                    for name, value in executor.counts.items():
                        counts[name] = counts.get(name, 0) + value
                    section.setdefault("skipped", []).extend(executor.skips.values())
                    section.setdefault("bounded_examples", []).extend(executor.bounded_examples)
            document["completed"] = True
        except ReplayInterrupted as exc:
            document["interrupted"] = str(exc) or "interrupted"
        except WireError as exc:
            document["warnings"].append(f"the replay stopped: {exc}")
        section["counts"] = counts
        section["commands"] = comparator.command_stats()
        section["totals"] = comparator.totals()
        section["noise"] = comparator.noise()
        section["uncounted_signatures"] = comparator.uncounted_signatures
        section["skipped"] = _merged_skips(section.get("skipped", []))
        replayed = counts.get("replayed", 0)
        section["throughput"] = {"commands": replayed, "seconds": round(seconds, 3),
                                 "per_second": round(replayed / seconds) if seconds > 0 else None}
        conclude(document, comparator.records())
        finish(document, started)
        return document
    finally:
        for client in clients.values():
            client.close()


def _replay_one(path: Path, executor: Executor, document: dict[str, Any], preloaded: set[str]) -> dict[str, Any]:
    try:
        capture = open_capture(path)
    except CaptureError as exc:
        raise ReplayError(str(exc)) from None
    except OSError as exc:
        raise ReplayError(f"{path}: {exc.strerror or exc}") from None
    entry: dict[str, Any] = {"path": str(path), "format": capture.format, "commands": 0, "bad_lines": 0,
                             "bad_line_examples": [], "starting_data": None}
    try:
        if capture.starting_data is not None:
            loaded = str(path) in preloaded
            entry["starting_data"] = {"loaded": loaded}
            if not loaded:
                document["warnings"].append(f"{path}: its starting data (an RDB) was not loaded into the servers; "
                                            "replies may differ from what the capture saw")
        submit = executor.submit
        for record in capture.records():
            if isinstance(record, BadLine):
                if len(entry["bad_line_examples"]) < BAD_LINES_KEPT:
                    entry["bad_line_examples"].append(record.describe())
                continue
            submit(record)
        executor.finish()
    finally:
        entry["commands"], entry["bad_lines"] = capture.commands, capture.bad_lines
        capture.close()
    return entry


def _merged_skips(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["command"], row["reason"])
        if key in merged:
            merged[key]["calls"] += row["calls"]
        else:
            merged[key] = dict(row)
    return sorted(merged.values(), key=lambda r: (-r["calls"], r["command"]))
