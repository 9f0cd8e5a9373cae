"""An estimate of a dataset's memory on Valkey: keys of the sampled types, encodings and sizes built on
an embedded Redis and an embedded Valkey, MEMORY USAGE read on both, scaled to the keyspace.

Only the sample's shape is used (type, encoding, average length), never a value of the application.
The embedded binaries use different allocators (GUIDE.md): the estimate says which each had.
"""

from __future__ import annotations

from typing import Any

import redis

from app.impact.probe import KeySample

MAX_ELEMENTS = 20_000   # a modelled key has at most this many elements
ELEMENT = b"e" * 12     # a modelled element: the application's own sizes are unknown (values are never read)
KEY = "rvc:impact:model"


def _build(conn: redis.Redis, sample: KeySample, length: int) -> None:
    """One key of the sample's type with `length` elements (bytes for a string)."""
    conn.delete(KEY)
    integers = sample.encoding in ("intset", "int")
    members = [str(i).encode() if integers else ELEMENT + str(i).encode() for i in range(length)]
    if sample.type == "string":
        conn.set(KEY, "1234" if integers else b"v" * max(length, 1))
    elif sample.type == "list":
        conn.rpush(KEY, *members)
    elif sample.type == "set":
        conn.sadd(KEY, *members)
    elif sample.type == "zset":
        conn.zadd(KEY, {m: i for i, m in enumerate(members)})
    elif sample.type == "hash":
        conn.hset(KEY, mapping={m: ELEMENT for m in members})
    elif sample.type == "stream":
        for member in members:
            conn.xadd(KEY, {"f": member})


def _usage(conn: redis.Redis, sample: KeySample, length: int) -> tuple[int, str]:
    _build(conn, sample, length)
    used = int(conn.memory_usage(KEY, samples=0) or 0)
    encoding = conn.object("ENCODING", KEY)
    conn.delete(KEY)
    return used, encoding.decode() if isinstance(encoding, bytes) else str(encoding)


def model(samples: list[KeySample], clients: dict[str, redis.Redis]) -> list[dict[str, Any]]:
    """Per sampled type and encoding: MEMORY USAGE of a key of its average size on each server, and the
    per-element cost (from a key of half that size)."""
    rows = []
    for sample in samples:
        if sample.type not in ("string", "list", "set", "zset", "hash", "stream"):
            continue
        length = min(MAX_ELEMENTS, max(1, round(sample.elements / sample.keys) if sample.keys else 1))
        row: dict[str, Any] = {"type": sample.type, "encoding": sample.encoding, "length": length, "servers": {}}
        for name, conn in clients.items():
            used, encoding = _usage(conn, sample, length)
            half, _ = _usage(conn, sample, max(1, length // 2))
            per_element = (used - half) / (length - length // 2) if length > 1 else None
            row["servers"][name] = {"per_key": used, "per_element": per_element, "encoding": encoding}
        rows.append(row)
    return rows


def estimate(samples: list[KeySample], sampled: int, total_keys: int, modelled: list[dict[str, Any]],
             allocators: dict[str, str]) -> dict[str, Any]:
    """The dataset's key memory on each server, scaled from the sample's shares to every key."""
    by_group = {(s.type, s.encoding): s for s in samples}
    scale = total_keys / sampled if sampled else 0.0
    totals: dict[str, float] = {}
    for row in modelled:
        sample = by_group[(row["type"], row["encoding"])]
        for name, figures in row["servers"].items():
            totals[name] = totals.get(name, 0.0) + figures["per_key"] * sample.keys * scale
    production = sum(s.memory for s in samples) * scale
    names = list(totals)
    ratio = totals[names[1]] / totals[names[0]] if len(names) == 2 and totals[names[0]] else None
    return {"keys": total_keys, "sampled": sampled, "modelled_bytes": {n: round(v) for n, v in totals.items()},
            "ratio": round(ratio, 3) if ratio else None, "allocators": allocators,
            "application_bytes": round(production),
            "application_on_valkey_bytes": round(production * ratio) if ratio else None,
            "caveat": "modelled keys have the sampled type, encoding and length with 12-byte elements; "
                      "the application's values were never read. Allocators differ: "
                      + ", ".join(f"{n} {a}" for n, a in allocators.items())}
