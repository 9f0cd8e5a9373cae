"""large_payloads against the real embedded servers: the spec's shape, integrity, memory per size."""

from __future__ import annotations

import statistics
from typing import Any

import pytest
import redis

from app import config
from app.compare import diff_metrics
from app.config import ScenarioOptions
from app.scenarios import large_payloads
from tests.conftest import scenario_keys

SIZES = ["1KB", "32KB", "256KB", "1MB", "5MB"]
# Equal-length prefixes: MEMORY USAGE counts the key name, so both runs store identical keys by size.
PREFIXES = ("rvc:payld1:", "rvc:payld2:")


@pytest.fixture(scope="module")
def runs(embedded_servers: dict) -> dict[str, dict[str, Any]]:
    """Per server: the scenario twice in a row, and the keys left afterwards (none expected)."""
    out: dict[str, dict[str, Any]] = {}
    for role, srv in embedded_servers.items():
        with redis.Redis(port=srv.port, socket_timeout=10) as conn:
            results = [large_payloads.run(conn, ScenarioOptions(prefix=p)) for p in PREFIXES]
            out[role] = {"results": results,
                         "leftovers": [k for p in PREFIXES for k in scenario_keys(conn, p + "*")]}
    return out


@pytest.fixture(params=config.ROLES)
def first(request: pytest.FixtureRequest, runs: dict) -> dict[str, Any]:
    return runs[request.param]["results"][0]


def test_payloads_are_deterministic_binary_and_exact_size() -> None:
    for size in config.PAYLOAD_SIZES.values():
        payload = large_payloads.build_payload(size)
        assert len(payload) == size
        assert payload == large_payloads.build_payload(size)
        assert len(set(payload[:4096])) > 200  # not one repeated byte: a pseudo-random block
    assert large_payloads.build_payload(1024, 1) != large_payloads.build_payload(1024, 2)


def test_spec_shape_for_all_five_sizes(first: dict) -> None:
    assert first["scenario"] == "large_payloads"
    assert first["status"] == "OK", first["detail"]
    metrics = first["metrics"]
    assert [k for k in metrics if k != "method"] == SIZES
    for label in SIZES:
        size = metrics[label]
        assert type(size["set_ms"]) is float and size["set_ms"] > 0
        assert type(size["get_ms"]) is float and size["get_ms"] > 0
        assert type(size["memory_usage"]) is int and size["memory_usage"] >= config.PAYLOAD_SIZES[label]
        assert size["encoding"] == "raw"
        assert size["bytes"] == config.PAYLOAD_SIZES[label]
        assert size["overhead_bytes"] == size["memory_usage"] - size["bytes"] > 0


def test_medians_of_three_raw_samples(first: dict) -> None:
    assert first["metrics"]["method"]["statistic"] == "median of 3"
    for label in SIZES:
        size = first["metrics"][label]
        assert len(size["set_ms_samples"]) == len(size["get_ms_samples"]) == config.PAYLOAD_REPETITIONS
        assert all(v > 0 for v in size["set_ms_samples"] + size["get_ms_samples"])
        assert size["set_ms"] == round(statistics.median(size["set_ms_samples"]), 4)
        assert size["get_ms"] == round(statistics.median(size["get_ms_samples"]), 4)


def test_bigger_payloads_take_longer(first: dict) -> None:
    """5 MiB crosses loopback in milliseconds, 1 KiB in tens of microseconds: a 100x margin."""
    metrics = first["metrics"]
    assert metrics["5MB"]["set_ms"] > metrics["1KB"]["set_ms"]
    assert metrics["5MB"]["get_ms"] > metrics["1KB"]["get_ms"]


def test_memory_usage_per_size_differs_by_allocator(runs: dict) -> None:
    """Measured in fresh and reused processes (steady state after the warm-up rounds).

    Redis' jemalloc rounds each value up to a size class (1 KiB -> 1280 B, 32 KiB -> 40 KiB,
    1 MiB -> 1.25 MiB, 5 MiB -> 6 MiB): exact, whatever ran before. Valkey's libc malloc adds
    80-96 bytes (object, sds header, chunk header) when fresh; glibc may hand out a chunk up to
    32 bytes larger when it reuses a free one, which depends on what the process did before
    (measured: 32 KiB -> 32848 or 32864 bytes), hence 80..128.
    """
    usage = {role: {label: run["results"][0]["metrics"][label]["memory_usage"] for label in SIZES}
             for role, run in runs.items()}
    assert usage["redis"] == {"1KB": 1368, "32KB": 41048, "256KB": 327768, "1MB": 1310808,
                              "5MB": 6291544}
    for label in SIZES:
        assert 80 <= usage["valkey"][label] - config.PAYLOAD_SIZES[label] <= 128, (label, usage["valkey"])


def test_second_run_in_a_row_is_ok_and_equal_apart_from_timing(runs: dict) -> None:
    for role, run in runs.items():
        one, two = (r["metrics"] for r in run["results"])
        assert run["results"][1]["status"] == "OK", run["results"][1]["detail"]
        differences = [d for d in diff_metrics("large_payloads", one, two) if d["kind"] != "timing"]
        assert differences == [], (role, differences)
        assert run["leftovers"] == [], role


def test_metric_kinds_route_timings_and_samples(runs: dict) -> None:
    """Across servers only timing and memory differ; raw samples are never reported as differences."""
    redis_m, valkey_m = (runs[r]["results"][0]["metrics"] for r in config.ROLES)
    kinds = {d["path"]: d["kind"] for d in diff_metrics("large_payloads", redis_m, valkey_m)}
    assert not [p for p in kinds if p.endswith("_samples")]
    assert {kinds[f"{label}.memory_usage"] for label in SIZES} == {"memory"}
    assert set(kinds.values()) <= {"timing", "memory"}


def test_a_corrupted_get_is_a_fail(client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """The byte-for-byte check: one flipped byte in a GET reply (the scenario's own timing step
    is patched to corrupt what it hands back) must turn the run into FAIL, naming the offset."""
    real = large_payloads.RoundTrip.get

    def corrupting(self: large_payloads.RoundTrip, conn: Any) -> tuple[float, Any]:
        elapsed, reply = real(self, conn)
        if isinstance(reply, bytes) and len(reply) == 32 * 1024:
            reply = reply[:1000] + bytes([reply[1000] ^ 0xFF]) + reply[1001:]
        return elapsed, reply

    monkeypatch.setattr(large_payloads.RoundTrip, "get", corrupting)
    prefix = "rvc:payld-bad:"
    out = large_payloads.run(client, ScenarioOptions(prefix=prefix))
    assert out["status"] == "FAIL"
    assert "32KB: GET returned different bytes (first difference at byte 1000)" in out["detail"]
    assert scenario_keys(client, prefix + "*") == []
