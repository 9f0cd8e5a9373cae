"""The generated data set: every type and encoding on both sides of every threshold (read from the
source's own CONFIG), TTLs in seconds and milliseconds (some expiring during the move), hash-field
TTLs where the source has them, streams with consumer groups and pending entries, big keys, several
databases, HyperLogLog, geo, bitmaps, function libraries.

Deterministic for a given DatasetSpec (values come from the key's index, never from the clock, except
the expiring keys' TTLs, which are set relative to now each time they are armed).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from app.migration import settings
from app.migration.settings import DatasetSpec
from app.migration.wire import Command, Pipe, has_command, is_error, keyspace

Builder = Callable[[str, int, dict[str, int]], list[Command]]
PREFIX = settings.KEY_PREFIX
# Explicit stream IDs: the same data set on every run (ms part, one entry per ms).
STREAM_ID_BASE = 1_700_000_000_000
SPECIMEN_COUNT = 25  # len(specimens(...)): keys the data set has whatever --keys says


class DatasetError(RuntimeError):
    """The source refused a write while the data set was generated; the message has the reply."""


# --- bulk key builders: key, index, thresholds -> commands ------------------------------------------

def _string_int(key: str, i: int, _t: dict[str, int]) -> list[Command]:
    return [("SET", key, i * 7919 - 3_000_000)]


def _string_embstr(key: str, i: int, _t: dict[str, int]) -> list[Command]:
    return [("SET", key, f"e{i}:".ljust(8 + i % (settings.EMBSTR_LIMIT - 7), "x"))]


def _string_raw(key: str, i: int, _t: dict[str, int]) -> list[Command]:
    return [("SET", key, f"r{i}:".ljust(settings.EMBSTR_LIMIT + 1 + i % 300, "y"))]


def _hash_listpack(key: str, i: int, _t: dict[str, int]) -> list[Command]:
    fields = [part for n in range(3 + i % 6) for part in (f"f{n}", f"v{i}-{n}")]
    return [("HSET", key, *fields)]


def _hash_hashtable(key: str, i: int, t: dict[str, int]) -> list[Command]:
    # Over the value threshold: one value one byte too long is enough (few fields, cheap to build).
    return [("HSET", key, "a", i, "b", "h" * (t["hash-max-listpack-value"] + 1 + i % 20), "c", "x")]


def _list_listpack(key: str, i: int, _t: dict[str, int]) -> list[Command]:
    return [("RPUSH", key, *(f"i{i}-{n}" for n in range(5 + i % 11)))]


def _list_quicklist(key: str, i: int, t: dict[str, int]) -> list[Command]:
    node = settings.LIST_NODE_BYTES.get(t["list-max-listpack-size"], 8192)
    count = node // 400 + 2 + i % 5  # 400-byte elements: just over one node
    return [("RPUSH", key, *(f"q{i}-{n}:".ljust(400, "q") for n in range(count)))]


def _set_intset(key: str, i: int, _t: dict[str, int]) -> list[Command]:
    return [("SADD", key, *(i * 31 + n * 17 - 500 for n in range(5 + i % 16)))]


def _set_listpack(key: str, i: int, _t: dict[str, int]) -> list[Command]:
    return [("SADD", key, *(f"m{i}-{n}" for n in range(5 + i % 16)))]


def _set_hashtable(key: str, i: int, t: dict[str, int]) -> list[Command]:
    return [("SADD", key, "a", f"b{i}", "m" * (t["set-max-listpack-value"] + 1 + i % 20))]


def _zset_scores(i: int, n: int) -> str:
    # Integers, fractions with no exact binary form, negatives, exponents: formatting must not matter.
    choices = (str(i + n), f"{(i + n) / 3!r}", f"-{n}.125", f"{n}e-3", "0.1")
    return choices[(i + n) % len(choices)]


def _zset_listpack(key: str, i: int, _t: dict[str, int]) -> list[Command]:
    pairs = [part for n in range(5 + i % 11) for part in (_zset_scores(i, n), f"z{i}-{n}")]
    return [("ZADD", key, *pairs)]


def _zset_skiplist(key: str, i: int, t: dict[str, int]) -> list[Command]:
    long_member = "z" * (t["zset-max-listpack-value"] + 1 + i % 20)
    return [("ZADD", key, 1, "a", "inf", "top", "-inf", "bottom", _zset_scores(i, 3), long_member)]


def _stream_entries(key: str, i: int) -> list[Command]:
    base = STREAM_ID_BASE + i * 100
    return [("XADD", key, f"{base + n}-{n % 3}", "n", n, "who", f"s{i}") for n in range(settings.STREAM_ENTRIES)]


def _stream(key: str, i: int, _t: dict[str, int]) -> list[Command]:
    # One entry deleted: max-deleted-entry-id and entries-added then differ from the plain count.
    base = STREAM_ID_BASE + i * 100
    return [*_stream_entries(key, i), ("XDEL", key, f"{base + 4}-1")]


def _stream_groups(key: str, i: int, _t: dict[str, int]) -> list[Command]:
    base = STREAM_ID_BASE + i * 100
    read, acked = settings.STREAM_READ, settings.STREAM_ACK
    return [*_stream_entries(key, i),
            ("XGROUP", "CREATE", key, "g1", "0"),
            ("XREADGROUP", "GROUP", "g1", "alice", "COUNT", read, "STREAMS", key, ">"),
            ("XACK", key, "g1", *(f"{base + n}-{n % 3}" for n in range(acked))),
            ("XREADGROUP", "GROUP", "g1", "bob", "COUNT", 2, "STREAMS", key, ">"),
            ("XGROUP", "CREATE", key, "g2", "$"),
            ("XGROUP", "CREATECONSUMER", key, "g2", "idle")]


def _hyperloglog(key: str, i: int, _t: dict[str, int]) -> list[Command]:
    return [("PFADD", key, *(f"u{i * 13 + n}" for n in range(10 + i % 40)))]


def _geo(key: str, i: int, _t: dict[str, int]) -> list[Command]:
    lon, lat = -170 + (i * 7) % 340, -80 + (i * 3) % 160
    return [("GEOADD", key, lon, lat, "p1", lon + 0.5, lat + 0.25, "p2", lon + 1.125, lat - 0.5, "p3")]


def _bitmap(key: str, i: int, _t: dict[str, int]) -> list[Command]:
    return [("SETBIT", key, (i * 37) % 100_000, 1), ("SETBIT", key, 7, 1), ("SETBIT", key, 1000 + i % 99, 1)]


BUILDERS: dict[str, Builder] = {
    "string_int": _string_int, "string_embstr": _string_embstr, "string_raw": _string_raw,
    "hash_listpack": _hash_listpack, "hash_hashtable": _hash_hashtable,
    "list_listpack": _list_listpack, "list_quicklist": _list_quicklist,
    "set_intset": _set_intset, "set_listpack": _set_listpack, "set_hashtable": _set_hashtable,
    "zset_listpack": _zset_listpack, "zset_skiplist": _zset_skiplist,
    "stream": _stream, "stream_groups": _stream_groups,
    "hyperloglog": _hyperloglog, "geo": _geo, "bitmap": _bitmap,
}


# --- specimens: exactly at and one past every threshold, in db 0 -------------------------------------

def specimens(t: dict[str, int], embstr_limit: Callable[[str], int]) -> list[tuple[str, str, list[Command]]]:
    """(key, expected encoding, commands) for every threshold, both sides of it.

    embstr_limit(key): the longest value the source keeps embstr under that key, measured (Redis 7.2:
    44 bytes; Valkey 9.0 embeds the key too, so the limit shrinks as the key grows)."""
    hle, hlv = t["hash-max-listpack-entries"], t["hash-max-listpack-value"]
    sie, sle, slv = t["set-max-intset-entries"], t["set-max-listpack-entries"], t["set-max-listpack-value"]
    zle, zlv = t["zset-max-listpack-entries"], t["zset-max-listpack-value"]
    node = settings.LIST_NODE_BYTES.get(t["list-max-listpack-size"], 8192)
    s = f"{PREFIX}spec:"
    at, over, big_int = f"{s}embstr_at", f"{s}embstr_ov", "9223372036854775808"

    def fields(n: int) -> list[Any]:
        return [p for k in range(n) for p in (f"f{k}", k)]

    def zpairs(n: int) -> list[Any]:
        return [p for k in range(n) for p in (k / 4, f"m{k}")]

    table: list[tuple[str, str, list[Command]]] = [
        (f"{s}int", "int", [("SET", f"{s}int", "9223372036854775807")]),
        (f"{s}int_overflow", "embstr" if len(big_int) <= embstr_limit(f"{s}int_overflow") else "raw",
         [("SET", f"{s}int_overflow", big_int)]),
        (at, "embstr", [("SET", at, "e" * embstr_limit(at))]),
        (over, "raw", [("SET", over, "r" * (embstr_limit(over) + 1))]),
        (f"{s}raw_by_append", "raw", [("SET", f"{s}raw_by_append", "ab"), ("APPEND", f"{s}raw_by_append", "c")]),
        (f"{s}bin\x00\xff key", "embstr", [("SET", f"{s}bin\x00\xff key".encode("latin-1"), b"\x00\xff\xfe")]),
        (f"{s}hash_entries_at", "listpack", [("HSET", f"{s}hash_entries_at", *fields(hle))]),
        (f"{s}hash_entries_over", "hashtable", [("HSET", f"{s}hash_entries_over", *fields(hle + 1))]),
        (f"{s}hash_value_at", "listpack", [("HSET", f"{s}hash_value_at", "f", "v" * hlv)]),
        (f"{s}hash_value_over", "hashtable", [("HSET", f"{s}hash_value_over", "f", "v" * (hlv + 1))]),
        (f"{s}set_intset_at", "intset", [("SADD", f"{s}set_intset_at", *range(sie))]),
        (f"{s}set_intset_over", "hashtable", [("SADD", f"{s}set_intset_over", *range(sie + 1))]),
        (f"{s}set_entries_at", "listpack", [("SADD", f"{s}set_entries_at", *(f"m{k}" for k in range(sle)))]),
        (f"{s}set_entries_over", "hashtable",
         [("SADD", f"{s}set_entries_over", *(f"m{k}" for k in range(sle + 1)))]),
        (f"{s}set_value_at", "listpack", [("SADD", f"{s}set_value_at", "a", "v" * slv)]),
        (f"{s}set_value_over", "hashtable", [("SADD", f"{s}set_value_over", "a", "v" * (slv + 1))]),
        (f"{s}zset_entries_at", "listpack", [("ZADD", f"{s}zset_entries_at", *zpairs(zle))]),
        (f"{s}zset_entries_over", "skiplist", [("ZADD", f"{s}zset_entries_over", *zpairs(zle + 1))]),
        (f"{s}zset_value_at", "listpack", [("ZADD", f"{s}zset_value_at", 1, "v" * zlv)]),
        (f"{s}zset_value_over", "skiplist", [("ZADD", f"{s}zset_value_over", 1, "v" * (zlv + 1))]),
        (f"{s}list_small", "listpack", [("RPUSH", f"{s}list_small", *(f"{k:04d}" for k in range(node // 64)))]),
        (f"{s}list_over_node", "quicklist",
         [("RPUSH", f"{s}list_over_node", *("l" * 100 for _ in range(node // 100 + 4)))]),
        (f"{s}hll_sparse", "raw", [("PFADD", f"{s}hll_sparse", "a", "b", "c")]),
        (f"{s}hll_dense", "raw", [("PFADD", f"{s}hll_dense", *(f"d{k}" for k in range(5000)))]),
        (f"{s}stream_emptied", "stream",
         [("XADD", f"{s}stream_emptied", "5-1", "a", 1), ("XGROUP", "CREATE", f"{s}stream_emptied", "g", "0"),
          ("XREADGROUP", "GROUP", "g", "c", "STREAMS", f"{s}stream_emptied", ">"),
          ("XDEL", f"{s}stream_emptied", "5-1")]),
    ]
    return table


# --- generation --------------------------------------------------------------------------------------

def thresholds(pipe: Pipe) -> dict[str, int]:
    """The source's own encoding thresholds (CONFIG GET), so the specimens bracket them exactly."""
    values: dict[str, int] = {}
    for name in settings.THRESHOLD_CONFIGS:
        reply = pipe.call("CONFIG", "GET", name)
        values[name] = int(reply[1])
    return values


def family_counts(spec: DatasetSpec) -> dict[str, int]:
    """Keys per family: --keys in all, less the specimens and big keys, split by the shares (normalised;
    at least one of each family, so a tiny data set still has every type)."""
    shares = {**settings.FAMILY_SHARES, "expiring": settings.EXPIRING_SHARE}
    bulk = max(0, spec.keys - SPECIMEN_COUNT - 2)
    total = sum(shares.values())
    return {name: max(1, round(bulk * share / total)) for name, share in shares.items()}


def _db_cycle(spec: DatasetSpec) -> list[int]:
    """Which database the n-th key of a family goes to, cycling through ten slots by the shares."""
    cycle = [db for db, share in spec.databases.items() for _ in range(max(1, round(share * 10)))]
    return cycle or [0]


class _Writer:
    """Buffers commands per database and sends them in large pipelines; any error reply stops the run."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.pipes: dict[int, Pipe] = {}
        self.buffers: dict[int, list[Command]] = {}

    def add(self, db: int, commands: list[Command]) -> None:
        buffer = self.buffers.setdefault(db, [])
        buffer.extend(commands)
        if len(buffer) >= settings.GENERATE_COMMANDS_PER_FLUSH:
            self.flush(db)

    def flush(self, db: int | None = None) -> None:
        for number in ([db] if db is not None else list(self.buffers)):
            commands, self.buffers[number] = self.buffers.get(number, []), []
            if not commands:
                continue
            pipe = self.pipes.get(number) or self.pipes.setdefault(number, Pipe(self.port, number))
            for command, reply in zip(commands, pipe.run(commands)):
                if is_error(reply):
                    raise DatasetError(f"generating the data set: {command[0]} {command[1]!r} -> {reply}")

    def close(self) -> None:
        self.flush()
        for pipe in self.pipes.values():
            pipe.close()


def _ttl_commands(key: str, i: int, rng: random.Random) -> tuple[list[Command], str | None]:
    bucket = (i * 7 + 3) % 1000
    if bucket < settings.TTL_SECONDS_SHARE * 1000:
        return [("EXPIRE", key, rng.randint(*settings.LONG_TTL_S))], "seconds"
    if bucket < (settings.TTL_SECONDS_SHARE + settings.TTL_MILLIS_SHARE) * 1000:
        return [("PEXPIRE", key, rng.randint(*settings.LONG_TTL_MS))], "milliseconds"
    return [], None


def _field_ttl_commands(key: str, i: int, rng: random.Random) -> list[Command]:
    if (i * 11) % 1000 >= settings.FIELD_TTL_SHARE * 1000:
        return []
    return [("HEXPIRE", key, rng.randint(*settings.LONG_TTL_S), "FIELDS", 1, "f0"),
            ("HPEXPIRE", key, rng.randint(*settings.LONG_TTL_MS), "FIELDS", 1, "f1")]


def embstr_limits(pipe: Pipe) -> Callable[[str], int]:
    """A function giving, for a key name, the longest value the server stores as embstr under it."""
    probe_lengths = range(settings.EMBSTR_PROBE_MAX + 1)

    def limit(key: str) -> int:
        replies = pipe.run([c for n in probe_lengths for c in (("SET", key, "x" * n), ("OBJECT", "ENCODING", key))]
                           + [("DEL", key)])
        encodings = replies[1:-1:2]
        return max((n for n, enc in zip(probe_lengths, encodings) if enc == b"embstr"), default=0)

    return limit


def generate(port: int, spec: DatasetSpec) -> dict[str, Any]:
    """Write the data set into an empty source; returns its description (what was written, measured)."""
    started = time.perf_counter()
    rng = random.Random(spec.seed)
    with Pipe(port) as control:
        limits = thresholds(control)
        field_ttls = has_command(control, "HPEXPIRE")
        for name, code in settings.FUNCTION_LIBRARIES.items():
            control.call("FUNCTION", "LOAD", "REPLACE", code)
        probe = embstr_limits(control)
        table = specimens(limits, probe)
        embstr = {"key": f"{PREFIX}spec:embstr_at", "longest_embstr_value": probe(f"{PREFIX}spec:embstr_at")}
    writer = _Writer(port)
    cycle = _db_cycle(spec)
    ttl_counts: Counter[str] = Counter()
    families = family_counts(spec)
    field_ttl_keys = 0
    try:
        for _, _, commands in table:
            writer.add(0, commands)
        _big_keys(writer, spec)
        for family, count in families.items():
            if family == "expiring":
                continue
            build = BUILDERS[family]
            for i in range(count):
                key = f"{PREFIX}{family}:{i}"
                db = cycle[i % len(cycle)]
                commands = build(key, i, limits)
                ttl, kind = _ttl_commands(key, i, rng)
                if kind:
                    ttl_counts[kind] += 1
                extra = _field_ttl_commands(key, i, rng) if field_ttls and family == "hash_listpack" else []
                field_ttl_keys += bool(extra)
                writer.add(db, commands + ttl + extra)
        writer.flush()
    finally:
        writer.close()
    ttl_counts["expiring"] = arm_expiring(port, spec)
    with Pipe(port) as control:
        spec_encodings = _specimen_encodings(control, table)
        per_db = {db: fields["keys"] for db, fields in keyspace(control).items()}
    return {
        "source": "generated", "keys_requested": spec.keys,
        "keys": sum(per_db.values()), "by_db": {str(db): n for db, n in sorted(per_db.items())},
        "families": families, "thresholds": limits, "embstr_limit": embstr, "specimens": spec_encodings,
        "big_keys": {"string_bytes": spec.big_string_bytes, "set_members": spec.big_set_members},
        "ttls": dict(ttl_counts), "hash_field_ttl_keys": field_ttl_keys,
        "functions": sorted(settings.FUNCTION_LIBRARIES),
        "generation_s": round(time.perf_counter() - started, 3),
    }


def _big_keys(writer: _Writer, spec: DatasetSpec) -> None:
    if spec.big_string_bytes:
        block = bytes(range(256)) * (spec.big_string_bytes // 256 + 1)
        writer.add(0, [("SET", f"{PREFIX}big:string", block[:spec.big_string_bytes])])
    for start in range(0, spec.big_set_members, settings.ELEMENTS_PER_COMMAND * 10):
        stop = min(spec.big_set_members, start + settings.ELEMENTS_PER_COMMAND * 10)
        writer.add(0, [("SADD", f"{PREFIX}big:set", *(f"m{n}" for n in range(start, stop)))])
    writer.flush(0)


def expiring_keys(spec: DatasetSpec) -> Iterator[tuple[int, str]]:
    cycle = _db_cycle(spec)
    for i in range(family_counts(spec)["expiring"]):
        yield cycle[i % len(cycle)], f"{PREFIX}expiring:{i}"


def arm_expiring(port: int, spec: DatasetSpec) -> int:
    """(Re)write the expiring keys with a fresh short TTL: some of them expire during the next move."""
    rng = random.Random(spec.seed + int(time.time()))
    writer = _Writer(port)
    count = 0
    try:
        for db, key in expiring_keys(spec):
            writer.add(db, [("SET", key, f"soon:{key}", "PX", rng.randint(*settings.EXPIRING_TTL_MS))])
            count += 1
    finally:
        writer.close()
    return count


def _specimen_encodings(pipe: Pipe, table: list[tuple[str, str, list[Command]]]) -> list[dict[str, str]]:
    keys = [key.encode("latin-1") if "\x00" in key else key for key, _, _ in table]
    replies = pipe.run([("OBJECT", "ENCODING", key) for key in keys])
    return [{"key": key, "expected": expected, "encoding": reply.decode() if isinstance(reply, bytes) else str(reply)}
            for (key, expected, _), reply in zip(table, replies)]
