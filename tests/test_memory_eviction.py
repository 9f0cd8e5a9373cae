"""memory_eviction against the real embedded servers: shape, eviction, bounds, LRU, restore and cleanup.

The fill takes about 3 s per run (mostly waiting for the servers' one-second LRU clock), so the module
runs it twice in a row per server once and asserts many things on those results.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from app import config
from app.compare import diff_metrics
from app.config import ScenarioOptions
from app.scenarios import memory_eviction
from tests.conftest import scenario_keys

# The fill's room above what the server already holds: 64 MiB and half a value (see the scenario).
BUDGET = config.EVICTION_MAXMEMORY + int(memory_eviction.BUDGET_OFFSET_VALUES * config.EVICTION_VALUE_SIZE)
VALUE = config.EVICTION_VALUE_SIZE
WRITES = 128  # EVICTION_FILL_FACTOR 2.0 x the 64 MiB budget / 1 MiB
# Equal-length prefixes: MEMORY USAGE includes the key name, so runs stay comparable byte for byte.
PREFIXES = ("rvc:evict1:", "rvc:evict2:")
WATCHED = ("maxmemory", "maxmemory-policy", "maxmemory-samples")


def owned(prefix: str) -> ScenarioOptions:
    """As the runner runs it on a server it started: changes allowed, nobody else's data there."""
    return ScenarioOptions(prefix=prefix, allow_server_changes=True, server_is_owned=True)


def settings(conn: redis.Redis) -> dict[str, str]:
    return {name: conn.config_get(name)[name] for name in WATCHED}


def leftovers(conn: redis.Redis, prefix: str) -> list[bytes]:
    return scenario_keys(conn, prefix + "*")


@pytest.fixture(scope="module")
def runs(embedded_servers: dict) -> dict[str, dict[str, Any]]:
    """Per server: the scenario twice in a row, the watched settings before/after, and any leftover keys."""
    out: dict[str, dict[str, Any]] = {}
    for role, srv in embedded_servers.items():
        with redis.Redis(port=srv.port, socket_timeout=10) as conn:
            before = settings(conn)
            results = [memory_eviction.run(conn, owned(p)) for p in PREFIXES]
            out[role] = {"results": results, "before": before, "after": settings(conn),
                         "leftovers": [k for p in PREFIXES for k in leftovers(conn, p)]}
    return out


@pytest.fixture(params=config.ROLES)
def first(request: pytest.FixtureRequest, runs: dict) -> dict[str, Any]:
    return {**runs[request.param]["results"][0], "role": request.param}


# --- shape and verdict ---------------------------------------------------------------------------

def test_spec_keys_have_the_right_types(first: dict) -> None:
    assert set(first) == {"scenario", "status", "detail", "metrics", "role"}
    assert first["scenario"] == "memory_eviction"
    assert first["status"] == "OK", first["detail"]
    m = first["metrics"]
    for key in ("keys_before", "keys_after", "evicted_count"):
        assert type(m[key]) is int, key
    assert isinstance(m["memory_samples"], list) and m["memory_samples"]
    for sample in m["memory_samples"]:
        assert {"keys_written", "used_memory", "used_memory_dataset", "lazyfree_pending_objects",
                "evicted"} == set(sample)
        assert all(type(v) is int for v in sample.values())
    assert {"config", "environment", "memory", "eviction", "survivors", "timings"} <= set(m)


def test_detail_states_the_outcome(first: dict) -> None:
    m = first["metrics"]
    assert f"{m['evicted_count']} evicted, {m['keys_after']} kept, hot keys kept 4/4" in first["detail"]


# --- eviction really happened, and the numbers add up ----------------------------------------------

def test_eviction_happened(first: dict) -> None:
    m = first["metrics"]
    assert m["keys_before"] == WRITES
    assert m["evicted_count"] > 0
    assert m["keys_after"] < m["keys_before"]
    # No other client writes: every written key is either still there or was evicted.
    assert m["keys_before"] - m["keys_after"] == m["evicted_count"]
    assert m["eviction"]["OOM errors"] == 0 and m["eviction"]["other write errors"] == 0


def test_samples_track_the_fill_within_bounds(first: dict) -> None:
    m = first["metrics"]
    samples = m["memory_samples"]
    assert [s["keys_written"] for s in samples] == list(range(1, WRITES + 1))
    evicted = [s["evicted"] for s in samples]
    assert evicted == sorted(evicted) and evicted[-1] == m["evicted_count"]
    maxmemory = m["eviction"]["maxmemory"]
    base = m["memory"]["used_memory before fill"] - m["memory"]["client buffers before fill"]
    assert maxmemory == base + BUDGET
    # Upper bound: INFO is answered after the server's pre-command eviction (scenario's slack: 256 KiB).
    assert max(s["used_memory"] for s in samples) <= maxmemory + memory_eviction.SAMPLE_SLACK_BYTES
    # Lower bound once evicting: eviction frees only what is needed, so memory stays within one
    # bigkey (MEMORY USAGE, allocator rounding included) of maxmemory.
    bigkey = m["memory"]["MEMORY USAGE of a bigkey"]
    first_eviction = m["eviction"]["first eviction after keys written"]
    for sample in samples[first_eviction - 1:]:
        assert maxmemory - bigkey - 64 * 1024 <= sample["used_memory"] <= maxmemory, sample
    assert m["memory"]["lazyfree_pending_objects at end of fill"] == 0


def test_survivors_follow_lru_generation_by_generation(first: dict) -> None:
    m = first["metrics"]
    survivors = m["survivors"]
    assert survivors["hot keys"] == "0-3"
    assert survivors["hot keys survived"] == 4
    assert survivors["first hot-key miss after write"] is None
    by_generation = survivors["by generation"]
    assert list(by_generation) == ["bigkey:0-31 without hot keys", "bigkey:32-63", "bigkey:64-95",
                                   "bigkey:96-127"]
    counts = list(by_generation.values())
    # LRU: the oldest generation goes first, the newest is untouched; survivors add up.
    assert counts[0] == 0 and counts[3] == 32
    assert sum(counts) + 4 == m["keys_after"]
    # Redis' sampler was exact in every measured run (0 inversions); Valkey's kept one older key over
    # a newer one in 1 of 94 runs even at maxmemory-samples 64, never more than one.
    assert survivors["LRU inversions"] <= (0 if first["role"] == "redis" else 1)
    if survivors["LRU inversions"] == 0:
        assert counts[1] == 0 and 0 < counts[2] < 32
    indices = _expand_ranges(survivors["indices"])
    assert len(indices) == m["keys_after"]
    assert {0, 1, 2, 3} | set(range(96, 128)) <= indices


def _expand_ranges(text: str) -> set[int]:
    indices: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        indices.update(range(int(low), int(high or low) + 1))
    return indices


# --- what differs between the two servers ---------------------------------------------------------

def test_capacity_follows_from_the_budget_and_the_cost_of_a_key(first: dict) -> None:
    """keys kept = floor(budget / MEMORY USAGE of a bigkey) - 1, whatever the server used before.

    maxmemory is used_memory at the start of the fill + the budget, so the room is the budget. The -1
    is the 1 MiB argument of the write in flight, held in the query buffer when the server evicts; the
    floor can move by one when the quotient sits on an integer, hence +-1. The first eviction comes
    with the write after the last key that fits.
    """
    m = first["metrics"]
    room = m["eviction"]["maxmemory"] - (m["memory"]["used_memory before fill"]
                                         - m["memory"]["client buffers before fill"])
    assert room == BUDGET
    expected = room // m["memory"]["MEMORY USAGE of a bigkey"] - 1
    assert abs(m["keys_after"] - expected) <= 1, (m["keys_after"], expected, m["memory"])
    assert abs(m["eviction"]["first eviction after keys written"] - (m["keys_after"] + 1)) <= 1


def test_observed_differences_between_redis_and_valkey(runs: dict) -> None:
    """Redis (jemalloc) stores a 1 MiB value in a 1.25 MiB size class, Valkey's libc malloc adds
    ~100 bytes: under the same maxmemory Valkey keeps about 25% more keys (61 vs 49 on fresh
    servers; the memory already in use shifts both, see the capacity test)."""
    redis_m = runs["redis"]["results"][0]["metrics"]
    valkey_m = runs["valkey"]["results"][0]["metrics"]
    assert redis_m["memory"]["MEMORY USAGE of a bigkey"] == 1310808  # 1.25 MiB class + 88 bytes
    assert VALUE + 64 <= valkey_m["memory"]["MEMORY USAGE of a bigkey"] <= VALUE + 128
    assert valkey_m["keys_after"] > redis_m["keys_after"] * 1.15
    assert valkey_m["evicted_count"] < redis_m["evicted_count"]
    assert redis_m["environment"]["mem_allocator"].startswith("jemalloc")
    assert valkey_m["environment"]["mem_allocator"] == "libc"


def test_settings_recorded_show_the_lazyfree_difference(runs: dict) -> None:
    lazy = [name for name in memory_eviction.EVICTION_SETTINGS if name.startswith("lazyfree")]
    redis_cfg = runs["redis"]["results"][0]["metrics"]["config"]
    valkey_cfg = runs["valkey"]["results"][0]["metrics"]["config"]
    assert {redis_cfg[n] for n in lazy} == {"no"}
    assert {valkey_cfg[n] for n in lazy} == {"yes"}
    for cfg in (redis_cfg, valkey_cfg):  # recorded before the scenario changed anything
        assert cfg["maxmemory-policy"] == "noeviction" and cfg["maxmemory-samples"] == "5"


def test_comparison_shows_the_real_differences_and_hides_measurements(runs: dict) -> None:
    redis_m, valkey_m = (runs[r]["results"][0]["metrics"] for r in config.ROLES)
    kinds = {d["path"]: d["kind"] for d in diff_metrics("memory_eviction", redis_m, valkey_m)}
    assert kinds["keys_after"] == kinds["evicted_count"] == "eviction"
    assert kinds["eviction.first eviction after keys written"] == "eviction"
    assert kinds["memory.MEMORY USAGE of a bigkey"] == "memory"
    assert kinds["config.lazyfree-lazy-eviction"] == "config_default"
    hidden = ("environment.mem_allocator", "memory_samples", "survivors.indices", "survivors.by generation",
              "survivors.LRU inversions",
              "memory.used_memory", "memory.peak")
    assert not [p for p in kinds if p.startswith(hidden)]


def test_range_and_inversion_helpers() -> None:
    assert memory_eviction._ranges([0, 1, 2, 3, 7, 9, 10]) == "0-3,7,9-10"
    assert memory_eviction._ranges([]) == ""
    generations = [[0, 1], [2, 3], [4, 5]]
    assert memory_eviction.lru_inversions(generations, {3, 4, 5}) == 0
    assert memory_eviction.lru_inversions(generations, {1, 5}) == 1  # 1 kept, newer 4 evicted


# --- restore, cleanup, repeatability ---------------------------------------------------------------

def test_settings_restored_and_no_keys_left(runs: dict) -> None:
    for role, run in runs.items():
        assert run["after"] == run["before"], role
        assert run["before"]["maxmemory"] == str(256 * 1024 * 1024)
        assert run["leftovers"] == [], role


def test_second_run_in_a_row_gives_the_same_metrics(runs: dict) -> None:
    for role, run in runs.items():
        one, two = (r["metrics"] for r in run["results"])
        assert run["results"][1]["status"] == "OK", run["results"][1]["detail"]
        differences = [d for d in diff_metrics("memory_eviction", one, two) if d["kind"] != "timing"]
        assert differences == [], (role, differences)


@pytest.fixture
def watched(client: redis.Redis) -> Iterator[dict[str, str]]:
    before = settings(client)
    yield before
    assert settings(client) == before


def test_failure_half_way_restores_settings_and_deletes_keys(client: redis.Redis, watched: dict,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection lost in the middle of the fill (second generation, eviction under way)."""
    real = memory_eviction.read_hot_keys
    prefix = "rvc:evict-fail:"

    def dropping(ctx: Any, fill_plan: Any, index: int, *args: Any) -> None:
        if index == 55:
            raise redis.ConnectionError("connection dropped by the test")
        real(ctx, fill_plan, index, *args)

    monkeypatch.setattr(memory_eviction, "read_hot_keys", dropping)
    out = memory_eviction.run(client, owned(prefix))
    assert out["status"] == "FAIL"
    assert "ConnectionError: connection dropped by the test" in out["detail"]
    assert len(out["metrics"]["memory_samples"]) == 55  # what was measured is kept
    assert out["metrics"]["keys_before"] == 56
    assert leftovers(client, prefix) == []
    assert client.config_get("maxmemory")["maxmemory"] == watched["maxmemory"]


def test_interrupt_half_way_still_cleans_up(client: redis.Redis, watched: dict,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (a BaseException, not caught by the contract) still restores CONFIG and deletes keys."""
    real = memory_eviction.take_sample
    prefix = "rvc:evict-intr:"

    def interrupted(ctx: Any, written: int, evicted_before: int) -> dict:
        if written == 10:
            raise KeyboardInterrupt
        return real(ctx, written, evicted_before)

    monkeypatch.setattr(memory_eviction, "take_sample", interrupted)
    with pytest.raises(KeyboardInterrupt):
        memory_eviction.run(client, owned(prefix))
    assert leftovers(client, prefix) == []


# --- servers the tool may not change ---------------------------------------------------------------

def test_without_permission_nothing_is_changed_or_filled(client: redis.Redis, watched: dict) -> None:
    out = memory_eviction.run(client)  # the spec's run(client): server changes not allowed
    assert out["status"] == "WARN"
    assert "--allow-server-changes" in out["detail"]
    m = out["metrics"]
    assert m["keys_before"] is None and m["keys_after"] is None and m["evicted_count"] is None
    assert m["memory_samples"] == []
    assert set(m["config"]) == set(memory_eviction.EVICTION_SETTINGS)  # read-only facts still recorded
    assert "eviction" not in m


def test_foreign_keys_block_the_fill(client: redis.Redis, watched: dict) -> None:
    """On a server the tool did not start, others' keys block the fill: allkeys-lru would evict them."""
    foreign = "rvc-test-foreign-key"
    client.set(foreign, "precious")
    try:
        out = memory_eviction.run(client, ScenarioOptions(prefix="rvc:evict-foreign:", allow_server_changes=True))
        assert out["status"] == "WARN"
        assert "holds 1 keys that are not this tool's" in out["detail"]
        assert client.get(foreign) == b"precious"
        assert out["metrics"]["memory_samples"] == []
    finally:
        client.delete(foreign)


def test_counts_do_not_depend_on_what_ran_before(full_run: dict, fresh_server: Any) -> None:
    """Alone on a fresh process and after every other scenario (the full run, which leaves latency
    histograms, scripts and buffers behind): the same keys kept and evicted on each server."""
    for role in config.ROLES:
        after_others = full_run["results"][role]["memory_eviction"]["metrics"]
        srv = fresh_server(role)
        with redis.Redis(port=srv.port, socket_timeout=10) as conn:
            alone = memory_eviction.run(conn, owned("rvc:alone:"))["metrics"]
        assert after_others["memory"]["used_memory before fill"] > alone["memory"]["used_memory before fill"]
        assert (alone["keys_after"], alone["evicted_count"]) == (after_others["keys_after"],
                                                                  after_others["evicted_count"]), role

