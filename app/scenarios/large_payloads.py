"""large_payloads: SET/GET latency, MEMORY USAGE and encoding of binary values from 1 KiB to 5 MiB.

Test plan, in order:
  1. Build every payload before any timing: deterministic binary bytes (a fixed pseudo-random block
     repeated and cut to size, so the value is neither empty-looking nor one repeated byte).
  2. One key per size (payload:<size>), written over and over as redis-benchmark does. Every SET and
     GET is packed before timing and sent on one held connection (see RoundTrip).
  3. One size at a time, for each size of config.PAYLOAD_SIZES (1KB, 32KB, 256KB, 1MB, 5MB, binary
     multiples): WARM_UP_ROUNDS (8) untimed rounds, then options.payload_repetitions (3) measured
     repetitions, each on that size's key:
       - SET timed with time.perf_counter() around the round trip (request sent, reply read);
       - GET timed the same way, and the reply checked byte for byte against what was SET
         (a mismatch is FAIL, with the first differing offset);
       - MEMORY USAGE and OBJECT ENCODING of the key (measured repetitions only).
     The key is deleted before the next size, so at most one 5 MiB value is held.
  4. Per size: set_ms and get_ms are the MEDIANS of the repetitions, in milliseconds; the raw
     samples are kept (set_ms_samples, get_ms_samples); memory_usage is MEMORY USAGE in bytes
     (it must be the same for every repetition, else WARN: the metric would not be reproducible).
Why the warm-up, for the timings: the first writes of a size pay first-touch page faults and
allocator growth in the server (measured at 5 MiB: Redis 7.2 settles after 3 writes of a key,
Valkey 9.0 after 6; before that a SET takes 2-3x longer, and a fresh key per write never settles).
Why pre-packed commands: redis-py's execute_command copies a value twice per SET (hiredis packs it
into a new buffer, then into new bytes) and its hiredis reader frees its buffer after every reply, so
each 5 MiB round trip also timed 10-15 MiB of freshly faulted client memory: 2-4x redis-benchmark's
time (bench/overhead.py measures this ratio; with RoundTrip it is 0.4-1.4, mostly under 1.2).
Why one size at a time: redis-benchmark measures so, and a small value timed right after a 5 MiB
transfer pays for the caches the large one evicted (measured with sizes interleaved in rounds: +10-40
us at 1 KiB, and Valkey's 256 KiB-1 MiB SETs at 1.7-2x redis-benchmark instead of 0.7-1.0x).
Why the warm-up, for memory_usage: with glibc malloc (the embedded Valkey build) the first
allocation of a size above the dynamic mmap threshold is an mmap (page-rounded, +4 KiB in MEMORY
USAGE); freeing it raises the threshold, so later ones come from the heap (measured: the third
allocation of a size is the first on the heap). Without the warm-up, memory_usage would depend on
what the server process allocated before; with it, it is the steady state, the same in every process.
The timed commands use one connection of the raw client's pool (replies as sent; redis-py parses them
with hiredis when installed), so the timings hold as little client overhead as redis-py allows.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis

from app import config
from app.config import ScenarioOptions
from app.scenarios.support import ScenarioContext, plain, run_scenario

NAME = "large_payloads"

# The repeated block: large enough that no compression-like shortcut could apply, small to build.
PAYLOAD_BLOCK_SIZE = 4096
PAYLOAD_SEED = 20240607
# Untimed rounds before measuring (see the docstring: steady state of both allocators).
WARM_UP_ROUNDS = 8
# The runner runs this scenario in 3 rounds that alternate which server goes first and pools the
# samples: repetitions within one round share one stretch of time and missed what varies between
# stretches (measured on two processes of one binary: with 1 round, 5 of 30 pairs showed a 1-5 MiB
# SET "beyond noise", by 0.2-2x; with 3 rounds, none of 55).
ROUNDS = 3
# Timings vary between processes: a second process of the baseline's binary measures that noise.
NOISE_CONTROL = True

# Timings and raw samples are measurements, not behaviour: noise is handled by the comparison.
METRIC_KINDS = {
    "*_samples": "not_compared",
    "method.*": "not_compared",
    "*.set_ms": "timing",
    "*.get_ms": "timing",
    "*.memory_usage": "memory",
    "*.overhead_bytes": "not_compared",  # memory_usage minus bytes: shown, the difference is memory_usage
    "*.encoding": "encoding",
}


def run(client: redis.Redis, options: ScenarioOptions | None = None) -> dict[str, Any]:
    return run_scenario(NAME, client, options, plan)


def build_payload(size: int, seed: int = PAYLOAD_SEED) -> bytes:
    """Deterministic binary bytes of a given length: one pseudo-random block, repeated and cut."""
    block = random.Random(seed).randbytes(PAYLOAD_BLOCK_SIZE)
    repeats = -(-size // PAYLOAD_BLOCK_SIZE)
    return (block * repeats)[:size]


@dataclass
class SizeSamples:
    """What the repetitions of one size measured."""

    set_ms: list[float] = field(default_factory=list)
    get_ms: list[float] = field(default_factory=list)
    usages: list[Any] = field(default_factory=list)
    encodings: list[Any] = field(default_factory=list)


def plan(ctx: ScenarioContext) -> None:
    repetitions = max(1, ctx.options.payload_repetitions)
    # Built before any timing, and different per size so no value can be confused with another.
    payloads = {label: build_payload(size, PAYLOAD_SEED + size) for label, size in config.PAYLOAD_SIZES.items()}
    ctx.put("method", "clock", "time.perf_counter around one round trip")
    ctx.put("method", "statistic", f"median of {repetitions}")
    ctx.put("method", "warm-up", f"{WARM_UP_ROUNDS} untimed rounds on the timed key")
    ctx.put("method", "client", "commands packed before timing, one held connection")
    ctx.put("method", "parser", _parser_name(ctx.raw))
    trips = {label: RoundTrip(ctx.key(f"payload:{label}"), payload) for label, payload in payloads.items()}
    measured = {label: SizeSamples() for label in payloads}
    with timing_connection(ctx.raw) as conn:
        for label, trip in trips.items():
            for rep in range(WARM_UP_ROUNDS + repetitions):
                if not round_trip(ctx, label, trip, conn):
                    break
                if rep >= WARM_UP_ROUNDS:
                    record(ctx, trip, measured[label])
            ctx.raw.execute_command("DEL", trip.key)
    for label, payload in payloads.items():
        ctx.metrics[label] = size_metrics(ctx, label, len(payload), measured[label])


def round_trip(ctx: ScenarioContext, label: str, trip: "RoundTrip", conn: Any) -> bool:
    """SET and GET, both timed (kept by record() in measured rounds), the GET checked byte for byte;
    False (and FAIL) when either went wrong."""
    trip.last_set_ms, reply = trip.set(conn)
    if not ctx.check(reply == b"OK", f"{label}: SET replied {_reply_text(reply, ctx.prefix)}"):
        return False
    trip.last_get_ms, value = trip.get(conn)
    if value != trip.payload:  # the message is only built for a real mismatch
        return ctx.check(False, f"{label}: GET returned different bytes ({_mismatch(trip.payload, value)})")
    return True


def record(ctx: ScenarioContext, trip: "RoundTrip", out: SizeSamples) -> None:
    """A measured round: its two timings, then (untimed) MEMORY USAGE and encoding of the key."""
    out.set_ms.append(trip.last_set_ms)
    out.get_ms.append(trip.last_get_ms)
    out.usages.append(ctx.call("MEMORY", "USAGE", trip.key))
    out.encodings.append(ctx.call("OBJECT", "ENCODING", trip.key))


def size_metrics(ctx: ScenarioContext, label: str, size: int, measured: SizeSamples) -> dict[str, Any]:
    if len(set(map(repr, measured.usages))) > 1:
        ctx.warn(f"{label}: MEMORY USAGE differs between repetitions: {measured.usages}")
    return _size_metrics(size, measured.set_ms, measured.get_ms, measured.usages, measured.encodings)


def _size_metrics(size: int, set_samples: list[float], get_samples: list[float],
                  usages: list[Any], encodings: list[Any]) -> dict[str, Any]:
    usage = usages[0] if usages else None
    return {
        "set_ms": _median(set_samples),
        "get_ms": _median(get_samples),
        "memory_usage": usage,
        "encoding": encodings[0] if encodings else None,
        "bytes": size,
        # What the server keeps beyond the value itself (object header, sds header, allocator rounding).
        "overhead_bytes": usage - size if isinstance(usage, int) else None,
        "set_ms_samples": set_samples,
        "get_ms_samples": get_samples,
    }


class RoundTrip:
    """SET and GET of one key with the commands packed once, before any timing.

    redis-benchmark also sends a prebuilt buffer; packing per call (execute_command) put two fresh
    copies of the value inside every timed SET.
    """

    def __init__(self, key: str, payload: bytes) -> None:
        self.key, self.payload = key, payload
        self.packed_set = _packed(b"SET", key.encode(), payload)
        self.packed_get = _packed(b"GET", key.encode())
        self.last_set_ms = self.last_get_ms = 0.0

    def set(self, conn: Any) -> tuple[float, Any]:
        return _timed(conn, self.packed_set)

    def get(self, conn: Any) -> tuple[float, Any]:
        return _timed(conn, self.packed_get)


def _packed(*args: bytes) -> bytes:
    """A command as RESP bytes."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts += [b"$%d\r\n" % len(arg), arg, b"\r\n"]
    return b"".join(parts)


@contextmanager
def timing_connection(raw: redis.Redis) -> Iterator[Any]:
    """One connection held for all timed commands; its hiredis reader keeps its buffer between
    replies (by default it frees it after each, so every large GET regrew it from fresh memory)."""
    pool = raw.connection_pool
    conn = pool.get_connection()
    reader = getattr(conn._parser, "_reader", None)
    if reader is not None and hasattr(reader, "setmaxbuf"):
        reader.setmaxbuf(0)
    try:
        yield conn
    finally:
        pool.release(conn)


def _timed(conn: Any, packed: bytes) -> tuple[float, Any]:
    """One prebuilt command's round trip in milliseconds (request sent, reply read); an error reply
    is returned, not raised."""
    started = time.perf_counter()
    try:
        conn.send_packed_command([packed], check_health=False)
        reply = conn.read_response()
    except redis.ResponseError as exc:
        reply = exc
    return round((time.perf_counter() - started) * 1000.0, 4), reply


def _reply_text(reply: Any, prefix: str) -> str:
    """A reply as the user should read it in a detail: an error as the server's own text."""
    shown = plain(reply, prefix)
    return shown["error"] if isinstance(shown, dict) and "error" in shown else f"{shown!r:.120}"


def _median(samples: list[float]) -> float | None:
    return round(statistics.median(samples), 4) if samples else None


def _mismatch(expected: bytes, got: Any) -> str:
    """Where a GET reply first differs from the payload, for the FAIL detail."""
    if not isinstance(got, bytes):
        return f"reply {got!r:.80}"
    if len(got) != len(expected):
        return f"length {len(got)} instead of {len(expected)}"
    offset = next(i for i, (a, b) in enumerate(zip(expected, got)) if a != b)
    return f"first difference at byte {offset}"


def _parser_name(conn: redis.Redis) -> str:
    parser = conn.connection_pool.connection_kwargs.get("parser_class")
    if parser is None:
        return "hiredis" if redis.utils.HIREDIS_AVAILABLE else "python"
    return getattr(parser, "__name__", str(parser))
