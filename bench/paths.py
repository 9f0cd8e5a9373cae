"""Where a large round trip's time goes: the same SET/GET timed through different client paths.

Diagnostic only (the tool's figures come from large_payloads itself, see measure.py). Each path is
timed on the same server, same key overwritten, after warm-up, interleaved so drift hits all alike:
  execute_command  redis-py's usual call: hiredis packs a copy of the value on every SET, and the
                   reply is read into a parser buffer that grows and is freed on every GET;
  pre-packed       the command bytes built before timing (as redis-benchmark does), sent with
                   send_packed_command, reply read by redis-py's parser;
  kept buffer      pre-packed, and the hiredis reader keeps its buffer between replies (maxbuf 0);
  recv_into        pre-packed, the GET reply read straight into a buffer allocated and touched before
                   timing: no allocation at all inside the timed region.
The warm-up curve shows, per write of one key, how long the servers take to reach steady state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis

from app import config
from app.scenarios.large_payloads import build_payload
from app.scenarios.support import derive_client
from app.servers import EmbeddedServer, embedded_pair
from bench import stats
from bench.measure import OPS, server_client
from bench.report import table

PATHS = ("execute_command", "pre-packed", "kept buffer", "recv_into")
REPETITIONS = 21
WARMUP = 8
CURVE_SIZE = 5 * config.MIB
CURVE_WRITES = 12
CURVE_TRIALS = 5


def pack(*args: bytes) -> bytes:
    """RESP array of bulk strings, built once before timing."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts += [b"$%d\r\n" % len(arg), arg, b"\r\n"]
    return b"".join(parts)


class RoundTrip:
    """SET then GET of one key through one client path; each call returns milliseconds."""

    def __init__(self, client: redis.Redis, path: str, key: bytes, payload: bytes) -> None:
        # client: raw replies (callbacks cleared), as large_payloads' ctx.raw; conn: one held connection.
        self.client, self.path, self.key, self.payload = client, path, key, payload
        self.conn = client.connection_pool.get_connection()
        if path == "kept buffer" and hasattr(self.conn._parser, "_reader"):
            self.conn._parser._reader.setmaxbuf(0)  # hiredis frees its buffer after each reply otherwise
        self.packed_set, self.packed_get = pack(b"SET", key, payload), pack(b"GET", key)
        self.header = b"$%d\r\n" % len(payload)
        self.buffer = bytearray(len(self.header) + len(payload) + 2)  # touched now, not while timed

    def close(self) -> None:
        self.client.connection_pool.release(self.conn)

    def set(self) -> float:
        started = time.perf_counter()
        if self.path == "execute_command":
            reply = self.client.execute_command("SET", self.key, self.payload)
        else:
            self.conn.send_packed_command([self.packed_set], check_health=False)
            reply = self.conn.read_response()
        elapsed = time.perf_counter() - started
        assert reply in (b"OK", "OK"), reply
        return elapsed * 1000.0

    def get(self) -> float:
        started = time.perf_counter()
        if self.path == "recv_into":
            self._get_into_buffer()
            elapsed = time.perf_counter() - started
            assert memoryview(self.buffer)[len(self.header):-2] == self.payload
        else:
            if self.path == "execute_command":
                value = self.client.execute_command("GET", self.key)
            else:
                self.conn.send_packed_command([self.packed_get], check_health=False)
                value = self.conn.read_response()
            elapsed = time.perf_counter() - started
            assert value == self.payload
        return elapsed * 1000.0

    def _get_into_buffer(self) -> None:
        sock = self.conn._sock  # diagnostic: the raw socket, to show the cost of the parser's copies
        sock.sendall(self.packed_get)
        view, filled = memoryview(self.buffer), 0
        while filled < len(self.buffer):
            received = sock.recv_into(view[filled:])
            if not received:
                raise ConnectionError("server closed the connection")
            filled += received


def client_paths(servers: dict[str, EmbeddedServer], repetitions: int = REPETITIONS,
                 warmup: int = WARMUP) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """role -> size -> path -> {"SET": median ms, "GET": median ms}."""
    result: dict[str, Any] = {}
    for role, server in servers.items():
        client = derive_client(server_client(server))
        try:
            for label, size in config.PAYLOAD_SIZES.items():
                result.setdefault(role, {})[label] = _time_paths(client, build_payload(size), repetitions, warmup)
            client.delete(*[f"bench:path:{i}" for i in range(len(PATHS))])
        finally:
            client.close()
    return result


def _time_paths(client: redis.Redis, payload: bytes, repetitions: int, warmup: int) -> dict[str, dict[str, float]]:
    trips = {path: RoundTrip(client, path, f"bench:path:{i}".encode(), payload) for i, path in enumerate(PATHS)}
    samples = {path: {op: [] for op in OPS} for path in PATHS}
    try:
        for rep in range(warmup + repetitions):
            order = PATHS[rep % len(PATHS):] + PATHS[:rep % len(PATHS)]  # rotate: no path always first
            for path in order:
                set_ms, get_ms = trips[path].set(), trips[path].get()
                if rep >= warmup:
                    samples[path]["SET"].append(set_ms)
                    samples[path]["GET"].append(get_ms)
    finally:
        for trip in trips.values():
            trip.close()
    return {path: {op: stats.median(values) for op, values in ops.items()} for path, ops in samples.items()}


def render_client_paths(breakdown: dict[str, Any]) -> str:
    rows = []
    for role, sizes in breakdown.items():
        for label, per_path in sizes.items():
            for op in OPS:
                rows.append([role, label, op, *(f"{per_path[path][op]:.3f}" for path in PATHS)])
    return (f"Client paths: median ms of {REPETITIONS} interleaved round trips after {WARMUP} warm-up writes\n"
            + table(["server", "size", "cmd", *PATHS], rows))


def warmup_curve(trials: int = CURVE_TRIALS, writes: int = CURVE_WRITES,
                 size: int = CURVE_SIZE) -> dict[str, dict[str, dict[str, list[float]]]]:
    """pattern -> role -> op -> median ms of the n-th write over fresh server processes."""
    payload = build_payload(size)
    per_write: dict[str, Any] = {}
    for pattern in ("same key", "new key each write"):
        for _ in range(trials):
            with embedded_pair("curve") as servers:
                for role, server in servers.items():
                    series = _curve_series(server, payload, writes, key_for(pattern))
                    for op, values in series.items():
                        slots = per_write.setdefault(pattern, {}).setdefault(role, {}).setdefault(op, [])
                        for index, value in enumerate(values):
                            if len(slots) <= index:
                                slots.append([])
                            slots[index].append(value)
    return {pattern: {role: {op: [stats.median(s) for s in slots] for op, slots in ops.items()}
                      for role, ops in roles.items()} for pattern, roles in per_write.items()}


def key_for(pattern: str) -> Callable[[int], bytes]:
    return (lambda _i: b"bench:curve") if pattern == "same key" else (lambda i: b"bench:curve:%d" % i)


def _curve_series(server: EmbeddedServer, payload: bytes, writes: int,
                  key: Callable[[int], bytes]) -> dict[str, list[float]]:
    client = derive_client(server_client(server))
    series: dict[str, list[float]] = {op: [] for op in OPS}
    try:
        for index in range(writes):
            trip = RoundTrip(client, "pre-packed", key(index), payload)
            try:
                series["SET"].append(trip.set())
                series["GET"].append(trip.get())
            finally:
                trip.close()
    finally:
        client.close()
    return series


def render_warmup_curve(curve: dict[str, Any]) -> str:
    rows = []
    for pattern, roles in curve.items():
        for role, ops in roles.items():
            for op, values in ops.items():
                rows.append([pattern, role, op, *(f"{v:.2f}" for v in values)])
    writes = len(rows[0]) - 3 if rows else 0
    return (f"Warm-up curve: {CURVE_SIZE // config.MIB} MB, median ms of the n-th write over {CURVE_TRIALS} "
            "fresh server processes (pre-packed path)\n"
            + table(["keys", "server", "cmd", *(str(i + 1) for i in range(writes))], rows))
