"""large_payloads: SET/GET latency, MEMORY USAGE and encoding of binary values from 1 KiB to 5 MiB.

Test plan, in order:
  1. Build every payload before any timing: deterministic binary bytes (a fixed pseudo-random block
     repeated and cut to size, so the value is neither empty-looking nor one repeated byte).
  2. Two untimed warm-up rounds per size (SET + GET + DEL of the payload).
  3. options.payload_repetitions (3) measured rounds; each round measures every size of
     config.PAYLOAD_SIZES (1KB, 32KB, 256KB, 1MB, 5MB, binary multiples) once, on a fresh key:
       - SET timed with time.perf_counter() around the round trip (request sent, reply read);
       - GET timed the same way, and the reply checked byte for byte against what was SET
         (a mismatch is FAIL, with the first differing offset);
       - MEMORY USAGE and OBJECT ENCODING of the key, then DEL (at most one 5 MiB value is held).
  4. Per size: set_ms and get_ms are the MEDIANS of the repetitions, in milliseconds; the raw
     samples are kept (set_ms_samples, get_ms_samples); memory_usage is MEMORY USAGE in bytes
     (it must be the same for every repetition, else WARN: the metric would not be reproducible).
Why rounds: the repetitions of a size are spread over the whole run instead of back to back, so their
spread includes what changes from moment to moment (CPU wake-ups, the allocator returning pages), and
the comparison's noise rule sees it.
Why the warm-up: with glibc malloc (the embedded Valkey build) the first allocation of a size above the
dynamic mmap threshold is an mmap (page-rounded, +4 KiB in MEMORY USAGE); freeing it raises the
threshold, so later ones come from the heap (measured: the third allocation of a size is the first on
the heap). Without the warm-up, memory_usage would depend on what the server process allocated before;
with it, it is the steady state, the same in every process.
Commands go through the raw client (callbacks cleared; redis-py parses with hiredis when installed),
so the timings hold as little client overhead as redis-py allows.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from app import config
from app.config import ScenarioOptions
from app.scenarios.support import ScenarioContext, run_scenario

NAME = "large_payloads"

# The repeated block: large enough that no compression-like shortcut could apply, small to build.
PAYLOAD_BLOCK_SIZE = 4096
PAYLOAD_SEED = 20240607
# Untimed rounds per size before measuring (see the docstring: allocator steady state).
WARM_UP_ROUNDS = 2

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
    ctx.put("method", "statistic", f"median of {repetitions} rounds, every size once per round")
    ctx.put("method", "parser", _parser_name(ctx.raw))
    for label, payload in payloads.items():
        warm_up(ctx, label, payload)
    measured = {label: SizeSamples() for label in payloads}
    for rep in range(repetitions):
        for label, payload in payloads.items():
            measure_once(ctx, label, payload, ctx.key(f"payload:{label}:{rep}"), measured[label])
    for label, payload in payloads.items():
        ctx.metrics[label] = size_metrics(ctx, label, len(payload), measured[label])


def warm_up(ctx: ScenarioContext, label: str, payload: bytes) -> None:
    """Untimed rounds of a size: connection buffers grown, allocator in its steady state."""
    key = ctx.key(f"payload:{label}:warm-up")
    for _ in range(WARM_UP_ROUNDS):
        ctx.raw.execute_command("SET", key, payload)
        ctx.raw.execute_command("GET", key)
        ctx.raw.execute_command("DEL", key)


def measure_once(ctx: ScenarioContext, label: str, payload: bytes, key: str, out: SizeSamples) -> None:
    """One repetition on a fresh key: timed SET, timed and checked GET, MEMORY USAGE, encoding, DEL."""
    set_ms, reply = _timed(ctx.raw, "SET", key, payload)
    if not ctx.check(reply == b"OK", f"{label}: SET replied {reply!r:.120}"):
        return
    get_ms, value = _timed(ctx.raw, "GET", key)
    if value != payload:  # the message is only built for a real mismatch
        ctx.check(False, f"{label}: GET returned different bytes ({_mismatch(payload, value)})")
    out.set_ms.append(set_ms)
    out.get_ms.append(get_ms)
    out.usages.append(ctx.call("MEMORY", "USAGE", key))
    out.encodings.append(ctx.call("OBJECT", "ENCODING", key))
    ctx.raw.execute_command("DEL", key)


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


def _timed(conn: redis.Redis, *args: Any) -> tuple[float, Any]:
    """One command's round trip in milliseconds; an error reply is returned, not raised."""
    started = time.perf_counter()
    try:
        reply = conn.execute_command(*args)
    except redis.ResponseError as exc:
        reply = exc
    return round((time.perf_counter() - started) * 1000.0, 4), reply


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
