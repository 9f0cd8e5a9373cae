"""Verification after a route: every key of the source compared with the target, in every database:
type, a canonical digest of its content, TTL (within the route's elapsed time), hash-field TTLs where
a server has them, encoding (reported, not required to match); then keys only on the target, and the
function libraries with their code.

Streaming and pipelined: keys are found type by type; each batch is read from both servers at once
through raw pipes, and the next batch is already sent while this one is compared. Measures only; the
renderers show the result.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from app.migration import settings
from app.migration.digest import canonical, describe, digest, without_dangling_pending
from app.migration.keyspace import (MISSING, NO_TTL, READERS, DbPipes, KeyView, ScanAhead, open_db,
                                    receive_views, scan_batches, send_reads, view_at, volatile_field_dbs)
from app.migration.wire import Pipe, has_command, keyspace, run_both, text

# Why a difference is a loss (the target cannot hold it), not a mismatch (a route got it wrong).
LOSS_FIELD_TTL = "hash-field TTLs (the target has no HEXPIRE: fields copied without them)"
LOSS_DANGLING = "pending entries of deleted stream messages (commands cannot recreate them: XCLAIM FORCE skips them)"


@dataclass
class Side:
    """One server as the verification sees it."""

    port: int
    field_ttls: bool = False  # the server has hash-field TTLs (HPEXPIRETIME)
    volatile_dbs: set[int] = field(default_factory=set)


@dataclass
class Sent:
    """A batch whose reads were sent: its type, keys, and how many replies each server owes."""

    key_type: bytes
    keys: list[bytes]
    counts: list[int]


@dataclass
class Tally:
    """Running totals of one verification."""

    compared: int = 0
    matched: int = 0
    expired: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    mismatch_count: int = 0
    losses: list[dict[str, Any]] = field(default_factory=list)
    loss_count: int = 0
    loss_reasons: Counter[str] = field(default_factory=Counter)
    encodings: Counter[tuple[bytes, bytes | None, bytes | None]] = field(default_factory=Counter)
    source_types: Counter[bytes] = field(default_factory=Counter)
    uncompared: Counter[str] = field(default_factory=Counter)  # type -> keys of types not read

    def mismatch(self, record: dict[str, Any]) -> None:
        self.mismatch_count += 1
        if len(self.mismatches) < settings.MAX_LISTED_MISMATCHES:
            self.mismatches.append(record)

    def loss(self, record: dict[str, Any]) -> None:
        self.loss_count += 1
        self.loss_reasons[record["reason"]] += 1
        if len(self.losses) < settings.MAX_LISTED_MISMATCHES:
            self.losses.append(record)


def verify(source_port: int, target_port: int, ttl_tolerance_ms: int) -> dict[str, Any]:
    """Compare everything the source holds with the target; returns the verification record."""
    started = time.perf_counter()
    source, target = Side(source_port), Side(target_port)
    tally = Tally()
    dbs: set[int] = set()
    for side in (source, target):
        with Pipe(side.port) as pipe:
            side.field_ttls = has_command(pipe, "HPEXPIRETIME")
            space = keyspace(pipe)
            side.volatile_dbs = volatile_field_dbs(space) if side.field_ttls else set()
            dbs |= set(space)
    for db in sorted(dbs):
        _verify_db(db, source, target, tally, ttl_tolerance_ms)
    functions = _compare_functions(source.port, target.port, tally)
    elapsed = time.perf_counter() - started
    return {
        "keys_compared": tally.compared, "keys_matched": tally.matched,
        "expired_meanwhile": tally.expired,
        "mismatches": tally.mismatch_count, "mismatch_list": tally.mismatches,
        "losses": tally.loss_count, "loss_list": tally.losses, "loss_reasons": dict(tally.loss_reasons),
        "encodings": sorted(({"type": text(t), "source": text(s or b"?"), "target": text(g or b"?"), "keys": n}
                             for (t, s, g), n in tally.encodings.items()),
                            key=lambda e: (e["type"], e["source"], e["target"])),
        "source_types": {text(t): n for t, n in sorted(tally.source_types.items())},
        "uncompared_types": dict(tally.uncompared),
        "functions": functions,
        "ttl_tolerance_ms": ttl_tolerance_ms,
        "field_ttls_compared": source.field_ttls or target.field_ttls,
        "not_compared": ["stream consumers' seen-time and active-time (a copy cannot set them)"],
        "duration_s": round(elapsed, 3),
        "keys_per_s": round(tally.compared / elapsed) if elapsed > 0 else None,
    }


def _verify_db(db: int, source: Side, target: Side, tally: Tally, tolerance_ms: int) -> None:
    seen: set[bytes] = set()
    found_on_target = 0
    sides = [open_db(side.port, db, side.field_ttls and db in side.volatile_dbs) for side in (source, target)]
    try:
        with ScanAhead(source.port, db, settings.SCAN_COUNT) as batches:
            found_on_target += _compare_all(db, sides, batches, seen, tally, tolerance_ms, target.field_ttls)
        src_pipe, tgt_pipe = sides[0].aux, sides[1].aux
        if int(tgt_pipe.call("DBSIZE")) > found_on_target:  # DBSIZE also counts expired keys not yet reclaimed
            _find_extras(db, seen, src_pipe, tgt_pipe, tally, tolerance_ms)
    finally:
        for side in sides:
            side.close()


def _compare_all(db: int, sides: list[DbPipes], batches: ScanAhead, seen: set[bytes], tally: Tally,
                 tolerance_ms: int, target_has_field_ttls: bool) -> int:
    """Every batch, with the next ones already sent while it is compared (the servers then never wait
    for the comparison); returns how many keys the target holds."""
    found_on_target = 0
    in_flight: deque[Sent] = deque()
    for key_type, keys in batches:
        seen.update(keys)
        if key_type not in READERS:
            found_on_target += _other_type(db, key_type, keys, sides[0].aux, sides[1].aux, tally)
            continue
        in_flight.append(Sent(key_type, keys, send_reads(sides, keys, key_type, with_encoding=True)))
        if len(in_flight) > settings.BATCHES_IN_FLIGHT:
            found_on_target += _compare_batch(db, sides, in_flight.popleft(), tally, tolerance_ms,
                                              target_has_field_ttls)
    while in_flight:
        found_on_target += _compare_batch(db, sides, in_flight.popleft(), tally, tolerance_ms, target_has_field_ttls)
    return found_on_target


def _compare_batch(db: int, sides: list[DbPipes], sent: Sent, tally: Tally, tolerance_ms: int,
                   target_has_field_ttls: bool) -> int:
    """Compare one batch of keys the source's SCAN gave as key_type; returns how many the target holds."""
    key_type, keys = sent.key_type, sent.keys
    if key_type == b"hash" and (sides[0].field_ttls or sides[1].field_ttls):
        src_views, tgt_views = receive_views(sides, sent.counts, keys, key_type, with_encoding=True)
        return sum(_compare_views(db, key, key_type, src, tgt, tally, tolerance_ms, target_has_field_ttls)
                   for key, src, tgt in zip(keys, src_views, tgt_views))
    src_replies, tgt_replies = (side.main.receive(count) for side, count in zip(sides, sent.counts))
    # The fast path, in one comprehension: the same reply and the same expiry on both sides, key present.
    string = key_type == b"string"
    same = [raw == other and expire == other_expire and (raw.__class__ is bytes if string else bool(raw))
            for raw, other, expire, other_expire in zip(src_replies[2::3], tgt_replies[2::3],
                                                        src_replies[0::3], tgt_replies[0::3])]
    fast = sum(same)
    tally.compared += fast
    tally.matched += fast
    tally.source_types[key_type] += fast
    tally.encodings.update((key_type, a, b) for a, b, ok in zip(src_replies[1::3], tgt_replies[1::3], same) if ok)
    present = fast
    for index in (i for i, ok in enumerate(same) if not ok):
        src = view_at(sides[0], keys[index], key_type, src_replies, index * 3, 3)
        tgt = view_at(sides[1], keys[index], key_type, tgt_replies, index * 3, 3)
        present += _compare_views(db, keys[index], key_type, src, tgt, tally, tolerance_ms, target_has_field_ttls)
    return present


def _compare_views(db: int, key: bytes, key_type: bytes, src: KeyView, tgt: KeyView, tally: Tally,
                   tolerance_ms: int, target_has_field_ttls: bool) -> int:
    """Compare one key both views describe; returns 1 when the target holds it."""
    present = int(tgt.key_type != MISSING)
    now_ms = int(time.time() * 1000)
    if src.key_type != key_type:
        # Gone from the source since SCAN: it expired; the target must not keep it for long.
        if present and not _expiring(tgt.expire_ms, now_ms, tolerance_ms):
            tally.compared += 1
            tally.mismatch(_record(db, key, tgt.key_type, "extra_on_target", None, tgt.key_type,
                                   ["expired on the source, still on the target"]))
        else:
            tally.expired += 1
        return present
    tally.compared += 1
    tally.source_types[key_type] += 1
    if not present:
        if _expiring(src.expire_ms, now_ms, tolerance_ms):
            tally.expired += 1
        else:
            tally.mismatch(_record(db, key, key_type, "missing_on_target", key_type, None, []))
        return present
    tally.encodings[(key_type, src.encoding, tgt.encoding)] += 1
    if tgt.key_type != key_type:
        tally.mismatch(_record(db, key, key_type, "type", key_type, tgt.key_type, []))
    elif _compare_key(db, key, src, tgt, tally, tolerance_ms, target_has_field_ttls):
        tally.matched += 1
    return present


def _other_type(db: int, key_type: bytes, keys: list[bytes], src_pipe: Pipe, tgt_pipe: Pipe, tally: Tally) -> int:
    """Keys of a type the tool does not read (a module's): only their presence and type are compared."""
    present = 0
    types = run_both([src_pipe, tgt_pipe], [[("TYPE", k) for k in keys]] * 2)
    for key, src_type, tgt_type in zip(keys, *types):
        if src_type == MISSING:
            continue
        present += tgt_type != MISSING
        tally.compared += 1
        tally.uncompared[text(key_type)] += 1
        if tgt_type != src_type:
            what = "missing_on_target" if tgt_type == MISSING else "type"
            tally.mismatch(_record(db, key, src_type, what, src_type, None if tgt_type == MISSING else tgt_type,
                                   ["a type the tool does not read: content not compared"]))
    return present


def _compare_key(db: int, key: bytes, src: KeyView, tgt: KeyView, tally: Tally, tolerance_ms: int,
                 target_field_ttls: bool) -> bool:
    """Content, TTL and field TTLs of a key both servers hold with the same type; True when all match."""
    ok = True
    if src.raw == tgt.raw:
        pass  # the same reply: the same content, whatever the type
    elif (left := canonical(src.key_type, src.content)) != (right := canonical(tgt.key_type, tgt.content)):
        record = _record(db, key, src.key_type, "content", digest(left), digest(right),
                         describe(src.key_type, left, right))
        if src.key_type == b"stream" and _only_dangling_lost(src.content, right):
            tally.loss({**record, "reason": LOSS_DANGLING})
        else:
            ok = False
            tally.mismatch(record)
    if src.expire_ms != tgt.expire_ms and not _same_ttl(src.expire_ms, tgt.expire_ms, tolerance_ms):
        ok = False
        tally.mismatch(_record(db, key, src.key_type, "ttl", _ttl_text(src.expire_ms),
                               _ttl_text(tgt.expire_ms), []))
    if src.field_ttls != tgt.field_ttls:
        record = _record(db, key, src.key_type, "field_ttl", _field_ttl_text(src.field_ttls),
                         _field_ttl_text(tgt.field_ttls),
                         _field_ttl_details(src.field_ttls, tgt.field_ttls, tolerance_ms))
        if not record["details"]:
            return ok
        if src.field_ttls and not tgt.field_ttls and not target_field_ttls:
            tally.loss({**record, "reason": LOSS_FIELD_TTL})
        else:
            ok = False
            tally.mismatch(record)
    return ok


def _only_dangling_lost(source: dict[str, Any], target_form: Any) -> bool:
    trimmed, removed = without_dangling_pending(source)
    return removed > 0 and canonical(b"stream", trimmed) == target_form


def _expiring(expire_ms: int, now_ms: int, tolerance_ms: int) -> bool:
    return expire_ms > 0 and expire_ms <= now_ms + tolerance_ms


def _same_ttl(left: int, right: int, tolerance_ms: int) -> bool:
    if left < 0 or right < 0:
        return left == right
    return abs(left - right) <= tolerance_ms


def _ttl_text(expire_ms: int) -> str:
    return "none" if expire_ms < 0 else f"expires at {expire_ms} ms"


def _field_ttl_text(ttls: dict[bytes, int]) -> str:
    return f"{len(ttls)} field(s) with a TTL" if ttls else "no field TTLs"


def _field_ttl_details(source: dict[bytes, int], target: dict[bytes, int], tolerance_ms: int) -> list[str]:
    lines = []
    for name in sorted(set(source) | set(target)):
        left, right = source.get(name, NO_TTL), target.get(name, NO_TTL)
        if not _same_ttl(left, right, tolerance_ms):
            lines.append(f"field {text(name)!r} TTL: source {_ttl_text(left)}, target {_ttl_text(right)}")
    return lines


def _record(db: int, key: bytes, key_type: bytes, what: str, source: Any, target: Any,
            details: list[str]) -> dict[str, Any]:
    return {"db": db, "key": text(key), "type": text(key_type), "what": what,
            "source": None if source is None else text(source),
            "target": None if target is None else text(target), "details": details}


def _find_extras(db: int, seen: set[bytes], src_pipe: Pipe, tgt_pipe: Pipe, tally: Tally,
                 tolerance_ms: int) -> None:
    """Keys the target holds that the source's SCAN never returned."""
    for batch in scan_batches(tgt_pipe, settings.SCAN_COUNT):
        extra = [k for k in batch if k not in seen]
        if not extra:
            continue
        seen.update(extra)
        on_source, on_target = run_both(
            [src_pipe, tgt_pipe],
            [[("EXISTS", k) for k in extra], [c for k in extra for c in (("TYPE", k), ("PEXPIRETIME", k))]])
        now_ms = int(time.time() * 1000)
        for index, key in enumerate(extra):
            key_type, expire_ms = on_target[2 * index], on_target[2 * index + 1]
            if on_source[index] or key_type == MISSING or _expiring(expire_ms, now_ms, tolerance_ms):
                continue
            tally.compared += 1
            tally.mismatch(_record(db, key, key_type, "extra_on_target", None, key_type, []))


# --- functions ---------------------------------------------------------------------------------------

def function_libraries(port: int) -> dict[str, dict[str, Any]]:
    """FUNCTION LIST WITHCODE: library name -> engine, code and functions (name, description, flags)."""
    with Pipe(port) as pipe:
        reply = pipe.call("FUNCTION", "LIST", "WITHCODE")
    libraries = {}
    for raw in reply:
        lib = dict(zip(raw[0::2], raw[1::2]))
        functions = []
        for raw_fn in lib.get(b"functions") or []:
            fn = dict(zip(raw_fn[0::2], raw_fn[1::2]))
            functions.append({"name": text(fn.get(b"name")), "description": fn.get(b"description") and
                              text(fn.get(b"description")), "flags": sorted(text(f) for f in fn.get(b"flags") or [])})
        libraries[text(lib.get(b"library_name"))] = {
            "engine": text(lib.get(b"engine")), "code": text(lib.get(b"library_code")),
            "functions": sorted(functions, key=lambda f: f["name"])}
    return libraries


def _compare_functions(source_port: int, target_port: int, tally: Tally) -> dict[str, Any]:
    source, target = function_libraries(source_port), function_libraries(target_port)
    differing = 0
    for name in sorted(set(source) | set(target)):
        left, right = source.get(name), target.get(name)
        if left == right:
            continue
        differing += 1
        if right is None:
            what, details = "function_missing_on_target", []
        elif left is None:
            what, details = "function_extra_on_target", []
        else:
            what = "function"
            details = [f"{part} differs" for part in ("engine", "code", "functions") if left[part] != right[part]]
        tally.mismatch({"db": None, "key": name, "type": "function library", "what": what,
                        "source": None if left is None else f"{len(left['functions'])} function(s)",
                        "target": None if right is None else f"{len(right['functions'])} function(s)",
                        "details": details})
    return {"source_libraries": sorted(source), "target_libraries": sorted(target), "differing": differing}
