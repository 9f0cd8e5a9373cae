"""The comparison: difference records, significance of timings, the allocator caveat, the summary.

The logic is pure, so most tests feed it small metric trees; two tests use real servers: the allocator
caveat from the embedded servers' real identities, and two processes of one binary over the default
scenarios, which must show no significant difference at all.
"""

from __future__ import annotations

import pytest
import redis

from app import compare, config
from app.compare import beyond_noise, compare_results, diff_metrics, merge_rounds, spread
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
    assert (mem["kind"], mem["values"][B], mem["values"][C], mem["delta"]) == ("memory", 1368, 1104, -264)
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
    assert rec["missing_on"] == C and rec["values"][C] is None and rec["significant"] is True


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

def targets_of(identities: dict[str, dict]) -> dict[str, dict]:
    """Target entries as the report holds them: the first is the baseline."""
    return {name: {"role": "baseline" if i == 0 else "candidate", "identity": ident}
            for i, (name, ident) in enumerate(identities.items())}


def test_memory_differences_are_not_significant_when_the_real_allocators_differ(embedded_servers: dict) -> None:
    identities = {}
    for role, srv in embedded_servers.items():
        with redis.Redis(port=srv.port) as conn:
            identities[role] = read_identity(conn)
    assert identities[B]["mem_allocator"].split("-")[0] != identities[C]["mem_allocator"].split("-")[0]
    results = {B: {"s": result({"memory_usage": {"v": 80}, "encodings": {"v": "embstr"}})},
               C: {"s": result({"memory_usage": {"v": 56}, "encodings": {"v": "raw"}})}}
    diffs = compare_results(results, targets_of(identities))["differences"]
    memory = one(diffs, "memory_usage.v")
    assert identities[B]["mem_allocator"] in memory["caveat"] and identities[C]["mem_allocator"] in memory["caveat"]
    assert memory["allocator_differs"] is True and memory["significant"] is False
    assert memory["values"] == {B: 80, C: 56}  # both values are kept, only the verdict changes
    encoding = one(diffs, "encodings.v")
    assert "caveat" not in encoding and encoding["significant"] is True
    # Without identities nothing is known about the allocators; with one allocator there is no caveat.
    assert "caveat" not in one(compare_results(results)["differences"], "memory_usage.v")
    same = targets_of({B: identities[C], C: identities[C]})
    assert one(compare_results(results, same)["differences"], "memory_usage.v")["significant"] is True


def test_ok_against_warn_is_no_record_and_a_skipped_step_is_not_compared() -> None:
    results = {B: {"s": result({"replies": {"a": 1, "b": {"skipped": "costly here"}}}, "WARN")},
               C: {"s": result({"replies": {"a": 1, "b": {"x": 1, "y": 2}}}, "OK")}}
    assert compare_results(results)["differences"] == []


def test_a_scenario_that_failed_on_either_side_is_not_compared() -> None:
    results = {B: {"s": result({"replies": {"a": 1}}), "t": result({"replies": {"a": 1}})},
               C: {"s": result({"replies": {"a": None}}, "FAIL"), "t": result({"replies": {"a": 2}})}}
    compared = compare_results(results)
    assert [r["scenario"] for r in compared["differences"]] == ["t"]
    assert compared["not_compared"] == [{"scenario": "s", "target": C, "failed_on": [C], "reason": f"{C} FAILed: "}]


# --- N targets and the noise control ------------------------------------------------------------------------

def test_every_candidate_is_compared_with_the_one_baseline() -> None:
    results = {"r72": {"s": result({"replies": {"a": 1, "b": 1}})},
               "v80": {"s": result({"replies": {"a": 2, "b": 1}})},
               "v90": {"s": result({"replies": {"a": 2, "b": 3}})}}
    targets = {"r72": {"role": "baseline"}, "v80": {"role": "candidate"}, "v90": {"role": "candidate"}}
    diffs = compare_results(results, targets)["differences"]
    assert sorted((d["target"], d["path"], d["values"][d["target"]]) for d in diffs) == [
        ("v80", "replies.a", 2), ("v90", "replies.a", 2), ("v90", "replies.b", 3)]
    assert all(d["baseline"] == "r72" and d["values"]["r72"] == 1 for d in diffs)


def test_what_the_noise_control_shows_is_noise_never_a_difference() -> None:
    results = {B: {"s": result({"replies": {"random": "x", "fixed": "a"}})},
               "control": {"s": result({"replies": {"random": "y", "fixed": "a"}})},
               C: {"s": result({"replies": {"random": "z", "fixed": "b"}})}}
    targets = {B: {"role": "baseline"}, "control": {"role": "control"}, C: {"role": "candidate"}}
    compared = compare_results(results, targets)
    assert [r["path"] for r in compared["noise"]] == ["replies.random"]
    random, fixed = one(compared["differences"], "replies.random"), one(compared["differences"], "replies.fixed")
    assert random["noise"] is True and random["significant"] is False and "noise control" in random["significance"]
    assert fixed["significant"] is True and "noise" not in fixed
    # Exactly one baseline is required.
    with pytest.raises(ValueError):
        compare_results(results, {B: {"role": "candidate"}, "control": {"role": "control"}, C: {"role": "candidate"}})


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


# --- the whole default suite on two processes of one binary ------------------------------------------

def test_two_processes_of_one_binary_show_no_significant_difference(fresh_server: object) -> None:
    first, second = fresh_server(C), fresh_server(C)
    targets = [Target(name=B, url=first.url, source="embedded", owned=True),
               Target(name=C, url=second.url, source="embedded", owned=True)]
    document = run_comparison(targets, list(SCENARIO_NAMES), timeout_s=config.DEFAULT_COMMAND_TIMEOUT_S)
    assert document["completed"]
    failed = {f"{role}/{name}": res["detail"] for role, per in document["results"].items()
              for name, res in per.items() if res["status"] == "FAIL"}
    assert not failed, failed
    significant = [(d["scenario"], d["path"], d["values"].get(B), d["values"].get(C), d.get("significance"))
                   for d in document["differences"] if d.get("significant", True)]
    assert significant == []
    assert document["summary"]["new"] == 0 and document["summary"]["documented"] == 0
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
