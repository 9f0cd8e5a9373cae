"""The comparison: difference records, significance of timings, the allocator caveat, the summary.

The logic is pure, so most tests feed it small metric trees; two tests use real servers: the allocator
caveat from the embedded servers' real identities, and two processes of one binary over the default
scenarios, which must show no significant difference at all.
"""

from __future__ import annotations

import pytest
import redis

from app import compare, config
from app.compare import (attention_order, beyond_noise, compare_results, diff_metrics, merge_rounds, spread,
                         summarize)
from app.identity import read_identity
from app.scenarios import SCENARIO_NAMES
from app.targets import Target
from app.test_runner import run_comparison

B, C = config.BASELINE, config.CANDIDATE


def result(metrics: dict, status: str = "OK", scenario: str = "synthetic") -> dict:
    return {"scenario": scenario, "status": status, "detail": "", "metrics": metrics}


def one(records: list[dict], path: str) -> dict:
    found = [r for r in records if r["path"] == path]
    assert len(found) == 1, [r["path"] for r in records]
    return found[0]


# --- records ------------------------------------------------------------------------------------------

def test_record_holds_both_values_kind_and_numeric_deltas() -> None:
    diffs = diff_metrics("synthetic", {"memory_usage": {"1KB": 1368}, "replies": {"GET": "a"}},
                         {"memory_usage": {"1KB": 1104}, "replies": {"GET": "b"}})
    mem = one(diffs, "memory_usage.1KB")
    assert (mem["kind"], mem[B], mem[C], mem["delta"]) == ("memory", 1368, 1104, -264)
    assert mem["relative"] == pytest.approx(-264 / 1368)
    reply = one(diffs, "replies.GET")
    assert reply["kind"] == "reply" and "delta" not in reply
    assert mem["significant"] is True and reply["significant"] is True


def test_relative_is_none_when_the_baseline_is_zero() -> None:
    rec = one(diff_metrics("synthetic", {"eviction": {"n": 0}}, {"eviction": {"n": 5}}), "eviction.n")
    assert rec["delta"] == 5 and rec["relative"] is None


def test_error_texts_and_unknown_commands_get_their_own_kinds() -> None:
    diffs = diff_metrics("synthetic",
                         {"replies": {"x": {"error": "ERR syntax error"}, "y": {"error": "ERR unknown command 'Y'"}}},
                         {"replies": {"x": {"error": "ERR syntax error, bad"}, "y": 3}})
    assert one(diffs, "replies.x")["kind"] == "error_text"
    assert one(diffs, "replies.y")["kind"] == "availability"


def test_a_value_missing_on_one_server_is_significant() -> None:
    rec = one(diff_metrics("synthetic", {"replies": {"a": 1}}, {"replies": {}}), "replies.a")
    assert rec["missing_on"] == C and rec[C] is None and rec["significant"] is True


def test_sample_lists_are_never_differences_even_without_metric_kinds() -> None:
    left = {"timings": {"x_ms": 1.0, "x_ms_samples": [1.0, 1.1, 0.9]}}
    right = {"timings": {"x_ms": 1.0, "x_ms_samples": [1.05, 0.95, 1.0]}}
    assert diff_metrics("synthetic", left, right) == []


# --- significance of timings -------------------------------------------------------------------------

def timing(base: list[float], cand: list[float]) -> dict:
    """The record for a timing leaf whose sibling holds the repetitions (as large_payloads stores them)."""
    left = {"timings": {"1KB": {"set_ms": spread(base)["median"], "set_ms_samples": base}}}
    right = {"timings": {"1KB": {"set_ms": spread(cand)["median"], "set_ms_samples": cand}}}
    return one(diff_metrics("synthetic", left, right), "timings.1KB.set_ms")


def test_overlapping_ranges_are_within_noise() -> None:
    rec = timing([1.0, 2.0, 3.0], [2.5, 3.5, 4.5])
    assert rec["kind"] == "timing" and rec["significant"] is False
    assert "overlap" in rec["significance"]
    assert rec["spread"][B] == {"n": 3, "min": 1.0, "median": 2.0, "max": 3.0}


def test_touching_ranges_still_overlap() -> None:
    assert timing([1.0, 1.5, 2.0], [2.0, 3.0, 4.0])["significant"] is False


def test_disjoint_ranges_with_a_large_effect_are_significant() -> None:
    rec = timing([1.0, 1.1, 1.2], [3.0, 3.1, 3.3])
    assert rec["significant"] is True, rec["significance"]
    assert rec["delta"] == pytest.approx(2.0) and "beyond noise" in rec["significance"]


def test_disjoint_ranges_with_a_small_relative_effect_are_within_noise() -> None:
    rec = timing([10.0, 10.1, 10.2], [11.0, 11.1, 11.2])  # 10% apart: below MIN_EFFECT
    assert rec["significant"] is False and "only" in rec["significance"]


def test_disjoint_ranges_below_the_absolute_floor_are_within_noise() -> None:
    # The loopback jitter measured here: 0.04 ms vs 0.08 ms, 100% apart but far under MIN_DELTA_MS.
    rec = timing([0.040, 0.041, 0.042], [0.080, 0.081, 0.082])
    assert rec["significant"] is False and f"< {compare.MIN_DELTA_MS:g}" in rec["significance"]


def test_one_repetition_or_none_is_within_noise() -> None:
    assert timing([1.0], [5.0])["significant"] is False
    rec = one(diff_metrics("synthetic", {"timings": {"fill ms": 100.0}}, {"timings": {"fill ms": 900.0}}),
              "timings.fill ms")
    assert rec["significant"] is False and "no repetitions" in rec["significance"]


def test_beyond_noise_rule_boundaries() -> None:
    a = spread([1.0, 1.0, 1.0])
    assert beyond_noise(a, spread([1.5, 1.5, 1.5]))[0] is True          # exactly MIN_EFFECT, 0.5 ms
    assert beyond_noise(a, spread([1.49, 1.49, 1.49]))[0] is False      # just under MIN_EFFECT
    assert beyond_noise(spread([0.1] * 3), spread([0.3] * 3))[0] is False  # 200% but 0.2 ms
    assert beyond_noise(spread([0.1] * 3), spread([0.3] * 3), min_delta=0.0)[0] is True


# --- the allocator caveat -----------------------------------------------------------------------------

def test_memory_differences_carry_the_caveat_of_the_real_allocators(embedded_servers: dict) -> None:
    identities = {}
    for role, srv in embedded_servers.items():
        with redis.Redis(port=srv.port) as conn:
            identities[role] = read_identity(conn)
    assert identities[B]["mem_allocator"].split("-")[0] != identities[C]["mem_allocator"].split("-")[0]
    results = {B: {"s": result({"memory_usage": {"v": 80}, "encodings": {"v": "embstr"}})},
               C: {"s": result({"memory_usage": {"v": 56}, "encodings": {"v": "raw"}})}}
    diffs = compare_results(results, identities)
    caveat = one(diffs, "memory_usage.v")["caveat"]
    assert identities[B]["mem_allocator"] in caveat and identities[C]["mem_allocator"] in caveat
    assert "caveat" not in one(diffs, "encodings.v")
    # The same servers' target entries (as the report holds them) work too; no identities: no caveat.
    assert "caveat" in one(compare_results(results, {r: {"identity": i} for r, i in identities.items()}),
                           "memory_usage.v")
    assert "caveat" not in one(compare_results(results), "memory_usage.v")
    same = {B: identities[C], C: identities[C]}
    assert "caveat" not in one(compare_results(results, same), "memory_usage.v")


def test_a_status_difference_is_a_significant_record() -> None:
    diffs = compare_results({B: {"s": result({}, "WARN")}, C: {"s": result({}, "OK")}})
    rec = one(diffs, "status")
    assert (rec["kind"], rec[B], rec[C], rec["significant"]) == ("status", "WARN", "OK", True)


# --- rounds -------------------------------------------------------------------------------------------

def test_merge_rounds_pools_samples_and_recomputes_their_median() -> None:
    rounds = [result({"1KB": {"set_ms": 1.0, "set_ms_samples": [1.0, 1.0, 5.0], "memory_usage": 1104}}),
              result({"1KB": {"set_ms": 2.0, "set_ms_samples": [2.0, 2.0, 2.0], "memory_usage": 1104}})]
    merged = merge_rounds(rounds)
    assert merged["metrics"]["1KB"]["set_ms_samples"] == [1.0, 1.0, 5.0, 2.0, 2.0, 2.0]
    assert merged["metrics"]["1KB"]["set_ms"] == 2.0
    assert (merged["status"], merged["rounds"]) == ("OK", 2)


def test_merge_rounds_warns_when_a_compared_metric_changes_between_rounds() -> None:
    rounds = [result({"1KB": {"memory_usage": 1104}, "timings": {"fill ms": 3.0}}),
              result({"1KB": {"memory_usage": 5200}, "timings": {"fill ms": 4.0}}),
              result({"1KB": {"memory_usage": 1104}, "timings": {"fill ms": 3.5}}, status="FAIL")]
    merged = merge_rounds(rounds)
    assert merged["status"] == "FAIL"  # the worst round
    assert "1KB.memory_usage" in merged["detail"] and "fill ms" not in merged["detail"]
    assert merge_rounds(rounds[:2])["status"] == "WARN"


# --- summary ------------------------------------------------------------------------------------------

def test_summary_counts_kinds_noise_and_documentation() -> None:
    records = [
        {"scenario": "a", "path": "x", "kind": "encoding", "significant": True, "documented": True,
         "catalogue_id": "valkey-8.0-embed-key", "source": "Valkey 8.0 release notes"},
        {"scenario": "a", "path": "y", "kind": "encoding", "significant": True},
        {"scenario": "b", "path": "z", "kind": "timing", "significant": False},
        {"scenario": "b", "path": "w", "kind": "reply"},  # no fields: significant, undocumented
    ]
    summary = summarize(records)
    assert {k: summary[k] for k in ("total", "significant", "within_noise", "documented", "undocumented",
                                    "undocumented_significant")} == {
        "total": 4, "significant": 3, "within_noise": 1, "documented": 1, "undocumented": 3,
        "undocumented_significant": 2}
    assert summary["by_kind"]["encoding"]["documented"] == 1
    assert summary["by_kind"]["timing"]["within_noise"] == 1
    assert summary["by_scenario"]["b"]["undocumented_significant"] == 1
    assert [r["path"] for r in attention_order(records)] == ["y", "w", "x", "z"]


# --- the whole default suite on two processes of one binary ------------------------------------------

def test_two_processes_of_one_binary_show_no_significant_difference(fresh_server: object) -> None:
    first, second = fresh_server(C), fresh_server(C)
    targets = [Target(role=B, url=first.url, source="embedded", owned=True),
               Target(role=C, url=second.url, source="embedded", owned=True)]
    document = run_comparison(targets, list(SCENARIO_NAMES), timeout_s=config.DEFAULT_COMMAND_TIMEOUT_S)
    assert document["completed"]
    failed = {f"{role}/{name}": res["detail"] for role, per in document["results"].items()
              for name, res in per.items() if res["status"] == "FAIL"}
    assert not failed, failed
    significant = [(d["scenario"], d["path"], d.get(B), d.get(C), d.get("significance"))
                   for d in document["differences"] if d.get("significant", True)]
    assert significant == []
    # Whatever remains is a measured number within noise, never behaviour.
    assert {d["kind"] for d in document["differences"]} <= compare.NOISY_KINDS


def test_the_absolute_floor_follows_the_unit_in_the_leaf_name() -> None:
    def record(name: str, base: list[float], cand: list[float]) -> dict:
        left = {"timings": {name: spread(base)["median"], f"{name}_samples": base}}
        right = {"timings": {name: spread(cand)["median"], f"{name}_samples": cand}}
        return one(diff_metrics("synthetic", left, right), f"timings.{name}")
    # 100 us -> 200 us is 0.1 ms: under the floor; 100 us -> 900 us is 0.8 ms: beyond it.
    assert record("p99_us", [100.0, 101.0], [200.0, 201.0])["significant"] is False
    assert record("p99_us", [100.0, 101.0], [900.0, 901.0])["significant"] is True
    assert record("fill ms", [100.0, 101.0], [200.0, 201.0])["significant"] is True
