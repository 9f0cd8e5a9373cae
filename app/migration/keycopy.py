"""Per-key routes: DUMP + RESTORE, MIGRATE ... COPY, and the logical copy (SCAN + type-wise reads and
writes) that needs no format compatibility. Each copies every database of the source into a fresh
target, and the function libraries with it. Measures; prints nothing.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from app.migration import settings
from app.migration.keyspace import (READERS, DbPipes, ScanAhead, open_db, receive_views, scan_batches,
                                    send_reads, volatile_field_dbs)
from app.migration.outcome import Refusals, RouteResult
from app.migration.physical import Move
from app.migration.settings import PARTIAL, WORKS
from app.migration.wire import Command, Pipe, has_command, is_error, keyspace, text

MIGRATE_TIMEOUT_MS = 60_000
NOTE_FUNCTIONS_BY_DUMP = "functions moved by FUNCTION DUMP + FUNCTION RESTORE (MIGRATE moves keys only)"


def _databases(port: int) -> list[int]:
    with Pipe(port) as pipe:
        return sorted(keyspace(pipe))


def _batches(source_port: int, target_port: int) -> Iterator[tuple[int, Pipe, Pipe, list[bytes]]]:
    """(db, source pipe, target pipe, keys) for every SCAN batch of every database of the source."""
    for db in _databases(source_port):
        with Pipe(source_port, db) as src, Pipe(target_port, db) as tgt:
            seen: set[bytes] = set()
            for batch in scan_batches(src, settings.SCAN_COUNT):
                keys = [k for k in batch if k not in seen]
                seen.update(keys)
                if keys:
                    yield db, src, tgt, keys


def _finish(result: RouteResult, keys: Refusals, functions: Refusals, started: float, what: str) -> RouteResult:
    result.counts.update(keys_attempted=keys.attempted, keys_refused=keys.refused,
                         functions_attempted=functions.attempted, functions_refused=functions.refused)
    status = keys.status()
    if status == WORKS and functions.refused:
        status = PARTIAL
    result.status = status
    first = keys if keys.first_error else functions
    if first.first_error:
        result.error = first.first_error
        result.detail = (f"{what}: {keys.refused} of {keys.attempted} key(s) refused, "
                         f"{functions.refused} of {functions.attempted} function payload(s) refused; "
                         f"first refused: {first.first_item}")
    result.duration_s = time.perf_counter() - started
    return result


# --- functions -----------------------------------------------------------------------------------------

def _functions_by_dump(source_port: int, target_port: int) -> Refusals:
    outcome = Refusals()
    with Pipe(source_port) as src, Pipe(target_port) as tgt:
        if not src.call("FUNCTION", "LIST"):
            return outcome
        payload = src.call("FUNCTION", "DUMP")
        outcome.attempted = 1
        reply = tgt.run([("FUNCTION", "RESTORE", payload, "REPLACE")])[0]
        if is_error(reply):
            outcome.note("FUNCTION RESTORE", reply)
    return outcome


def _functions_by_code(source_port: int, target_port: int) -> Refusals:
    """FUNCTION LIST WITHCODE on the source, FUNCTION LOAD REPLACE of each library's code on the target."""
    outcome = Refusals()
    with Pipe(source_port) as src, Pipe(target_port) as tgt:
        for raw in src.call("FUNCTION", "LIST", "WITHCODE"):
            library = dict(zip(raw[0::2], raw[1::2]))
            outcome.attempted += 1
            reply = tgt.run([("FUNCTION", "LOAD", "REPLACE", library[b"library_code"])])[0]
            if is_error(reply):
                outcome.note(f"library {text(library.get(b'library_name'))}", reply)
    return outcome


# --- DUMP + RESTORE ------------------------------------------------------------------------------------

def dump_restore_route(move: Move) -> RouteResult:
    started = time.perf_counter()
    target = move.fleet.start(move.target_role, "restore-target")
    result = RouteResult(status=WORKS, target=target,
                         detail="DUMP + PEXPIRETIME on the source, RESTORE key ttl payload REPLACE ABSTTL on the target")
    keys = Refusals()
    for _, src, tgt, batch in _batches(move.source.port, target.port):
        replies = src.run([c for k in batch for c in (("DUMP", k), ("PEXPIRETIME", k))])
        restores: list[Command] = []
        names: list[bytes] = []
        for index, key in enumerate(batch):
            payload, expire_ms = replies[2 * index], replies[2 * index + 1]
            if payload is None or is_error(payload):
                continue  # expired since SCAN
            restores.append(("RESTORE", key, expire_ms, payload, "REPLACE", "ABSTTL") if expire_ms > 0
                            else ("RESTORE", key, 0, payload, "REPLACE"))
            names.append(key)
        keys.attempted += len(restores)
        for key, reply in zip(names, tgt.run(restores)):
            if is_error(reply):
                keys.note(text(key), reply)
    return _finish(result, keys, _functions_by_dump(move.source.port, target.port), started, "RESTORE")


# --- MIGRATE ... COPY ----------------------------------------------------------------------------------

def migrate_route(move: Move) -> RouteResult:
    started = time.perf_counter()
    target = move.fleet.start(move.target_role, "migrate-target")
    result = RouteResult(status=WORKS, target=target,
                         detail=f"MIGRATE 127.0.0.1 <target> \"\" <db> {MIGRATE_TIMEOUT_MS} COPY REPLACE KEYS "
                                f"(up to {settings.MIGRATE_KEYS_PER_CALL} keys per call) on the source")
    result.notes.append(NOTE_FUNCTIONS_BY_DUMP)
    keys = Refusals()
    step = settings.MIGRATE_KEYS_PER_CALL
    for db, src, _, batch in _batches(move.source.port, target.port):
        chunks = [batch[i:i + step] for i in range(0, len(batch), step)]
        replies = src.run([("MIGRATE", "127.0.0.1", target.port, "", db, MIGRATE_TIMEOUT_MS, "COPY", "REPLACE",
                            "KEYS", *chunk) for chunk in chunks])
        for chunk, reply in zip(chunks, replies):
            keys.attempted += len(chunk)
            if is_error(reply):
                keys.refused += len(chunk) - 1  # the whole call failed; note() counts the first
                keys.note(f"{len(chunk)} keys from {text(chunk[0])}", reply)
    return _finish(result, keys, _functions_by_dump(move.source.port, target.port), started, "MIGRATE")


# --- logical copy ---------------------------------------------------------------------------------------

def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _flat(pairs: Any) -> list[Any]:
    return [part for pair in pairs for part in pair]


def write_commands(key: bytes, key_type: bytes, content: Any) -> list[Command]:
    """Commands that recreate a key of this type from its content (see keyspace.parse_content)."""
    step = settings.ELEMENTS_PER_COMMAND
    if key_type == b"string":
        return [("SET", key, content)]
    if key_type == b"list":
        return [("RPUSH", key, *chunk) for chunk in _chunks(content, step)]
    if key_type == b"set":
        return [("SADD", key, *chunk) for chunk in _chunks(content, step)]
    if key_type == b"hash":
        return [("HSET", key, *_flat(chunk)) for chunk in _chunks(list(content.items()), step)]
    if key_type == b"zset":
        return [("ZADD", key, *_flat((score, member) for member, score in chunk))
                for chunk in _chunks(content, step)]
    if key_type == b"stream":
        return _stream_commands(key, content)
    return []


def _stream_commands(key: bytes, stream: dict[str, Any]) -> list[Command]:
    """Entries with their IDs, the stream's counters (XSETID), groups, consumers, pending entries."""
    commands: list[Command] = [("XADD", key, entry_id, *fields) for entry_id, fields in stream["entries"]]
    if not stream["entries"]:
        # An empty stream: created by one placeholder entry, deleted again; XSETID then sets the counters.
        commands += [("XADD", key, "0-1", "_", "_"), ("XDEL", key, "0-1")]
    commands.append(("XSETID", key, stream["last-generated-id"], "ENTRIESADDED", stream["entries-added"],
                     "MAXDELETEDID", stream["max-deleted-entry-id"]))
    for group in stream["groups"]:
        read = () if group["entries-read"] is None else ("ENTRIESREAD", group["entries-read"])
        commands.append(("XGROUP", "CREATE", key, group["name"], group["last-delivered-id"], *read))
        commands += [("XGROUP", "CREATECONSUMER", key, group["name"], c["name"]) for c in group["consumers"]]
        commands += [("XCLAIM", key, group["name"], consumer, 0, entry_id, "TIME", delivered, "RETRYCOUNT", count,
                      "FORCE", "JUSTID") for entry_id, consumer, delivered, count in group["pending"]]
    return commands


@dataclass
class _Copy:
    """The running state of one logical copy."""

    target_fields: bool  # the target has hash-field TTLs (HPEXPIREAT)
    keys: Refusals = field(default_factory=Refusals)
    counts: Counter[str] = field(default_factory=Counter)


def logical_route(move: Move) -> RouteResult:
    started = time.perf_counter()
    target = move.fleet.start(move.target_role, "logical-target")
    result = RouteResult(status=WORKS, target=target,
                         detail="SCAN + TYPE, then PEXPIRETIME + type-wise reads on the source; type-wise writes "
                                "and PEXPIREAT (absolute) on the target; FUNCTION LOAD of each library's code")
    with Pipe(move.source.port) as src, Pipe(target.port) as tgt:
        source_fields = has_command(src, "HPEXPIRETIME")
        volatile = volatile_field_dbs(keyspace(src)) if source_fields else set()
        copy = _Copy(target_fields=has_command(tgt, "HPEXPIREAT"))
    for db in _databases(move.source.port):
        _copy_db(move.source.port, target.port, db, db in volatile, copy)
    dropped = copy.counts["field_ttls_dropped_keys"]
    if dropped:
        result.notes.append(f"{dropped} hash(es) had field TTLs the target cannot hold (no HPEXPIREAT): "
                            "copied without them")
    result.counts.update({name: copy.counts[name] for name in ("expired_meanwhile", "field_ttl_keys",
                                                               "field_ttls_dropped_keys")})
    return _finish(result, copy.keys, _functions_by_code(move.source.port, target.port), started, "logical copy")


def _copy_db(source_port: int, target_port: int, db: int, field_ttls: bool, copy: _Copy) -> None:
    """One database, pipelined both ways: the next batch's reads are sent before this batch is written,
    and a batch's write replies are checked only after the next batch was sent."""
    src = open_db(source_port, db, field_ttls=field_ttls)
    reads: deque[tuple[bytes, list[bytes], list[int]]] = deque()
    writes: deque[tuple[list[tuple[bytes, Command]], int]] = deque()
    try:
        with Pipe(target_port, db) as tgt, ScanAhead(source_port, db, settings.SCAN_COUNT) as batches:
            for key_type, keys in batches:
                if key_type not in READERS:  # a module's type: no command reads it in a portable form
                    copy.keys.attempted += len(keys)
                    for key in keys:
                        copy.keys.note(text(key), f"type {text(key_type)}: the logical copy cannot read this type")
                    continue
                reads.append((key_type, keys, send_reads([src], keys, key_type, with_encoding=False)))
                if len(reads) > 1:
                    writes.append(_write_batch(src, tgt, reads.popleft(), copy))
                if len(writes) > 1:
                    _check_writes(tgt, writes.popleft(), copy)
            while reads:
                writes.append(_write_batch(src, tgt, reads.popleft(), copy))
            while writes:
                _check_writes(tgt, writes.popleft(), copy)
    finally:
        src.close()


def _write_batch(src: DbPipes, tgt: Pipe, sent: tuple[bytes, list[bytes], list[int]],
                 copy: _Copy) -> tuple[list[tuple[bytes, Command]], int]:
    """Read one batch's replies, send the writes that recreate its keys; returns what to check later."""
    key_type, keys, counts = sent
    views = receive_views([src], counts, keys, key_type, with_encoding=False)[0]
    commands: list[tuple[bytes, Command]] = []
    now_ms = int(time.time() * 1000)
    for key, view in zip(keys, views):
        if view.key_type != key_type or 0 < view.expire_ms <= now_ms:
            copy.counts["expired_meanwhile"] += 1
            continue
        key_commands = [("DEL", key), *write_commands(key, view.key_type, view.content)]
        if view.expire_ms > 0:
            key_commands.append(("PEXPIREAT", key, view.expire_ms))
        if view.field_ttls:
            copy.counts["field_ttl_keys"] += 1
            if copy.target_fields:
                key_commands += [("HPEXPIREAT", key, at, "FIELDS", 1, name) for name, at in view.field_ttls.items()]
            else:
                copy.counts["field_ttls_dropped_keys"] += 1
        copy.keys.attempted += 1
        commands += [(key, command) for command in key_commands]
    return commands, tgt.send(command for _, command in commands)


def _check_writes(tgt: Pipe, sent: tuple[list[tuple[bytes, Command]], int], copy: _Copy) -> None:
    commands, count = sent
    failed: set[bytes] = set()
    for (key, command), reply in zip(commands, tgt.receive(count)):
        if is_error(reply) and key not in failed:
            failed.add(key)
            copy.keys.note(text(key), f"{text(command[0])}: {reply}")
