"""Comparison: every place where a candidate's scenario metrics differ from the baseline's, as a record.

The core takes N targets (document["targets"]: name -> {"role": baseline | candidate | control}): every
candidate is compared with the one baseline, and every noise-control target (a second process of the
baseline's binary) too. What a control shows against the baseline is noise, never a difference: the
candidate records at the same place are marked `noise` and are not significant. Records hold the values
under `values` keyed by target name, so a record reads the same for any number of targets.

Kinds are derived from data (the metric section a value sits in, and the shape of error replies),
not from scattered special cases: see SECTION_KINDS.

Every record says whether it is `significant`. Behaviour (replies, errors, encodings...) is
deterministic, so any difference is. A measured number (a timing) is significant only when it is
beyond the spread both servers show across their own repetitions, read from the sibling list
"<leaf>_samples" (see NOISE_RULE); otherwise it is "within noise". Repetitions taken back to back
share one stretch of time, so the runner should run timing scenarios in rounds that alternate the
servers and pool them with merge_rounds(). Memory figures from servers with different allocators
from servers with different allocators are marked `allocator_differs` and are not significant: they are
partly the allocator, not the product. A scenario that FAILed on either side is not compared at all (a
dead server is not a list of differences); it is listed under `not_compared`.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from importlib import import_module
from statistics import median
from typing import Any

from app import config
from app.identity import allocator_warning

# Which kind of difference a metric section holds; the first path element decides.
SECTION_KINDS: dict[str, str] = {
    "replies": "reply",
    "errors": "error_text",
    "encodings": "encoding",
    "memory_usage": "memory",
    "config": "config_default",
    "commands": "availability",
    "ordering": "ordering",
    "timings": "timing",
    "eviction": "eviction",
}
# Kind for values that are measured, not behaviour (cursor values, raw samples): never a difference.
NOT_COMPARED = "not_compared"

# Defaults after a scenario's own METRIC_KINDS: raw repetition lists are measurements, not behaviour.
DEFAULT_METRIC_KINDS: dict[str, str] = {"*_samples": NOT_COMPARED}

# Kinds whose values are measured numbers: without repetitions they cannot be told from noise.
NOISY_KINDS = frozenset({"timing"})
# Kinds whose numbers depend on the memory allocator as much as on the product.
ALLOCATOR_SENSITIVE_KINDS = frozenset({"memory", "eviction"})

# The sibling of a measured leaf that holds its repetitions ("1KB.set_ms" -> "1KB.set_ms_samples").
SAMPLES_SUFFIX = "_samples"
# Significance of a measured number (timings are in milliseconds): both sides need at least
# MIN_SAMPLES repetitions, their min..max ranges must not overlap, and the medians must differ by at
# least MIN_EFFECT (relative to the smaller median) and MIN_DELTA_MS (absolute).
# Why range separation rather than k x IQR: with the 3 repetitions a run takes, an IQR is no stable
# estimate, while two disjoint ranges are a plain, checkable statement.
# Why the floors: consecutive repetitions share one measurement window, so their spread misses what
# changes between windows (CPU wake-ups, other load). Measured here: two processes of one Valkey binary,
# 10 runs x 10 timing leaves, 2 cores: 39% of the leaves had disjoint ranges; all of those medians
# were under 0.1 ms apart (up to 2x at 1-32 KB), except one 5 MB GET at 0.65 ms (38%).
MIN_SAMPLES = 2
MIN_EFFECT = 0.5
MIN_DELTA_MS = 0.25
# A timing leaf's unit is the last word of its name ("set_ms", "median_us", "fill ms"); ms when none.
TIME_UNITS_PER_MS = {"ns": 1e6, "us": 1e3, "µs": 1e3, "ms": 1.0, "s": 1e-3}
NOISE_RULE = (f"a timing is significant when both servers have >= {MIN_SAMPLES} repetitions, their min..max "
              f"ranges do not overlap, and the medians differ by >= {MIN_EFFECT:.0%} and >= {MIN_DELTA_MS} ms")

# Error prefixes that mean a command does not exist on that server.
UNAVAILABLE_ERRORS = ("ERR unknown command", "ERR unknown subcommand")


def scenario_metric_kinds(scenario: str) -> dict[str, str]:
    """A scenario module's own METRIC_KINDS: glob over the dotted metric path -> kind."""
    try:
        return dict(getattr(import_module(f"app.scenarios.{scenario}"), "METRIC_KINDS", {}))
    except ImportError:
        return {}


def declared_kind(scenario: str, path: list[str]) -> str | None:
    dotted = ".".join(path)
    for pattern, kind in [*scenario_metric_kinds(scenario).items(), *DEFAULT_METRIC_KINDS.items()]:
        if fnmatchcase(dotted, pattern):
            return kind
    return None


def kind_of(path: list[str], left: Any, right: Any, scenario: str = "") -> str:
    """The kind of a difference at a metric path: the scenario's declaration, else its section, else
    the values' shapes (two error replies are an error-text difference, an unknown command is availability)."""
    errors = [v["error"] for v in (left, right) if _is_error(v)]
    if any(e.startswith(UNAVAILABLE_ERRORS) for e in errors):
        return "availability"
    kind = declared_kind(scenario, path) or (SECTION_KINDS.get(path[0], "reply") if path else "reply")
    if len(errors) == 2 and kind == "reply":
        return "error_text"
    if len(errors) == 1 and kind == "error_text":
        return "reply"  # one server errs where the other answers: behaviour, not wording
    return kind


def _is_skipped(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"skipped"}


def _is_error(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"error"}


Names = tuple[str, str]  # (baseline target name, candidate target name)
DEFAULT_NAMES: Names = (config.BASELINE, config.CANDIDATE)


def diff_metrics(scenario: str, left: Any, right: Any, names: Names = DEFAULT_NAMES,
                 path: list[str] | None = None, parents: tuple[Any, Any] | None = None) -> list[dict[str, Any]]:
    """Leaf-by-leaf differences between two metrics trees (left = baseline, right = candidate).

    `names` are the two targets' names, the keys of each record's `values`. `parents` are the dicts
    holding left and right, where a leaf's "<name>_samples" sibling lives."""
    path = path or []
    if _is_skipped(left) or _is_skipped(right):
        return []  # a step one side did not run (support.skipped): nothing to compare there
    if isinstance(left, dict) and isinstance(right, dict) and not (_is_error(left) or _is_error(right)):
        out = []
        for key in list(left) + [k for k in right if k not in left]:
            out.extend(diff_metrics(scenario, left.get(key, _MISSING), right.get(key, _MISSING), names,
                                    [*path, str(key)], (left, right)))
        return out
    if left == right:
        return []
    record = difference(scenario, path, left, right, names)
    if record["kind"] == NOT_COMPARED:
        return []
    samples = _sibling_samples(path, parents, names)
    if samples:
        record["spread"] = {name: spread(values) for name, values in samples.items()}
    judge(record)
    return [record]


def _sibling_samples(path: list[str], parents: tuple[Any, Any] | None, names: Names) -> dict[str, list[float]]:
    """The repetitions of a measured leaf on each server, when both recorded a list of numbers."""
    if not path or parents is None:
        return {}
    leaf = path[-1] + SAMPLES_SUFFIX
    found = {}
    for name, parent in zip(names, parents):
        values = parent.get(leaf) if isinstance(parent, dict) else None
        if not isinstance(values, list) or not values or not all(_is_number(v) for v in values):
            return {}
        found[name] = values
    return found


def spread(values: list[float]) -> dict[str, Any]:
    """What one server's repetitions show: count, min, median, max."""
    ordered = sorted(values)
    return {"n": len(ordered), "min": ordered[0], "median": median(ordered), "max": ordered[-1]}


def judge(record: dict[str, Any]) -> dict[str, Any]:
    """Set `significant` and a one-line `significance` reason on a difference record."""
    record["significant"], record["significance"] = _significance(record)
    return record


def _significance(record: dict[str, Any]) -> tuple[bool, str]:
    if "missing_on" in record:
        return True, f"measured on one server only (missing on {record['missing_on']})"
    spreads = record.get("spread")
    if not spreads:
        if record["kind"] in NOISY_KINDS:
            return False, "within noise: no repetitions recorded, so no spread to exceed"
        return True, "deterministic value"
    # The absolute floor is a time, so it only applies to timings, in the leaf's own unit.
    floor = MIN_DELTA_MS * time_unit_per_ms(record["path"]) if record["kind"] in NOISY_KINDS else 0.0
    return beyond_noise(spreads[record["baseline"]], spreads[record["target"]], floor)


def time_unit_per_ms(path: str) -> float:
    """How many of the leaf's time units make a millisecond, from the last word of its name."""
    unit = re.split(r"[ _.]", path)[-1]
    return TIME_UNITS_PER_MS.get(unit, 1.0)


def beyond_noise(a: dict[str, Any], b: dict[str, Any], min_delta: float = MIN_DELTA_MS) -> tuple[bool, str]:
    """NOISE_RULE applied to two servers' spreads (each from spread()); min_delta in the values' unit."""
    if min(a["n"], b["n"]) < MIN_SAMPLES:
        return False, f"within noise: fewer than {MIN_SAMPLES} repetitions on a server"
    if a["max"] >= b["min"] and b["max"] >= a["min"]:
        return False, "within noise: the servers' min..max ranges overlap"
    gap = abs(a["median"] - b["median"])
    low = min(a["median"], b["median"])
    effect = gap / low if low > 0 else float("inf")
    if effect < MIN_EFFECT:
        return False, f"within noise: ranges apart but medians differ by only {effect:.0%}"
    if gap < min_delta:
        return False, f"within noise: ranges apart but medians only {gap:g} apart (< {min_delta:g})"
    return True, f"beyond noise: ranges apart, medians differ by {effect:.0%} ({gap:g})"


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def difference(scenario: str, path: list[str], left: Any, right: Any, names: Names = DEFAULT_NAMES) -> dict[str, Any]:
    base, cand = names
    record: dict[str, Any] = {
        "scenario": scenario,
        "path": ".".join(path),
        "kind": kind_of(path, left, right, scenario),
        "baseline": base,
        "target": cand,
        "values": {base: None if left is _MISSING else left, cand: None if right is _MISSING else right},
    }
    if left is _MISSING or right is _MISSING:
        record["missing_on"] = base if left is _MISSING else cand
    if _is_number(left) and _is_number(right):
        record["delta"] = right - left
        record["relative"] = (right - left) / abs(left) if left else None
    return record


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- N targets: roles, the noise control, failed sides, allocators --------------------------------------

BASELINE_ROLE, CANDIDATE_ROLE, CONTROL_ROLE = config.BASELINE_ROLE, config.CANDIDATE_ROLE, config.CONTROL_ROLE
NOISE_CONTROL_REASON = "noise: two processes of the baseline's binary differ here too (noise control {control})"


def target_roles(results: dict[str, Any], targets: dict[str, dict[str, Any]] | None) -> dict[str, str]:
    """name -> role. Without target entries the first result is the baseline and the rest candidates."""
    if targets and all(isinstance(t, dict) and t.get("role") in (BASELINE_ROLE, CANDIDATE_ROLE, CONTROL_ROLE)
                       for t in targets.values()):
        return {name: entry["role"] for name, entry in targets.items()}
    names = list(targets or results)
    return {name: BASELINE_ROLE if i == 0 else CANDIDATE_ROLE for i, name in enumerate(names)}


def baseline_of(roles: dict[str, str]) -> str:
    found = [name for name, role in roles.items() if role == BASELINE_ROLE]
    if len(found) != 1:
        raise ValueError(f"exactly one baseline target is needed, found {found or 'none'}")
    return found[0]


def compare_pair(results: dict[str, dict[str, dict[str, Any]]], names: Names,
                 not_compared: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Records for every scenario both targets ran. A scenario that FAILed on either side is skipped and
    listed in `not_compared`."""
    base, cand = (results.get(name, {}) for name in names)
    found: list[dict[str, Any]] = []
    for scenario in [s for s in base if s in cand]:
        a, b = base[scenario], cand[scenario]
        failed = [name for name, res in zip(names, (a, b)) if res.get("status") == "FAIL"]
        if failed:
            if not_compared is not None:
                not_compared.append({"scenario": scenario, "target": names[1], "failed_on": failed,
                                     "reason": "; ".join(f"{n} FAILed: {r.get('detail', '')}"[:300]
                                                         for n, r in zip(names, (a, b)) if n in failed)})
            continue
        # OK against WARN is no record: a WARN says a step was skipped or refused there (the table shows
        # both statuses and the detail), and the metrics of what did run are compared below.
        found.extend(diff_metrics(scenario, a.get("metrics", {}), b.get("metrics", {}), names))
    return found


def compare_results(results: dict[str, dict[str, dict[str, Any]]],
                    targets: dict[str, dict[str, Any]] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every candidate and every noise control against the baseline.

    Returns {"differences": candidate records, "noise": control records, "not_compared": skipped scenarios}.
    `targets` (name -> target entry with role and identity) decides the roles and the allocators."""
    roles = target_roles(results, targets)
    base = baseline_of(roles)
    not_compared: list[dict[str, Any]] = []
    noise: list[dict[str, Any]] = []
    for control in [n for n, r in roles.items() if r == CONTROL_ROLE]:
        noise.extend(compare_pair(results, (base, control)))
    noisy_places = {(r["scenario"], r["path"]): r["target"] for r in noise if r["significant"]}
    differences: list[dict[str, Any]] = []
    for cand in [n for n, r in roles.items() if r == CANDIDATE_ROLE]:
        records = compare_pair(results, (base, cand), not_compared)
        caveat = allocator_caveat(targets, (base, cand))
        for record in records:
            control = noisy_places.get((record["scenario"], record["path"]))
            if control:
                record["noise"] = True
                record["significant"] = False
                record["significance"] = NOISE_CONTROL_REASON.format(control=control)
            if caveat and record["kind"] in ALLOCATOR_SENSITIVE_KINDS:
                record["caveat"] = caveat
                record["allocator_differs"] = True
                if record["significant"]:
                    record["significant"] = False
                    record["significance"] = "allocator differs: " + caveat
        differences.extend(records)
    return {"differences": differences, "noise": noise, "not_compared": not_compared}


def allocator_caveat(targets: dict[str, dict[str, Any]] | None, names: Names = DEFAULT_NAMES) -> str | None:
    """The caveat memory figures carry when two servers' allocators differ (jemalloc vs libc)."""
    if not targets:
        return None
    # A target entry holds its identity; a bare identity is accepted too.
    plain = {name: (targets.get(name) or {}).get("identity", targets.get(name) or {}) for name in names}
    if any(not ident.get("mem_allocator") for ident in plain.values()):
        return None
    return allocator_warning(plain)


# --- repetitions across rounds ------------------------------------------------------------------------

STATUS_ORDER = ("OK", "WARN", "FAIL")


def merge_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One scenario result from several rounds of it on one server (the runner alternates the servers
    between rounds, so each server's samples span the same stretches of time as the other's).

    Lists of numbers named "<leaf>_samples" are concatenated and their numeric sibling <leaf> becomes
    the median of all of them; every other metric must be the same in every round (else WARN: that
    metric is not reproducible), and the first round's value is kept. Status is the worst round's."""
    if len(rounds) == 1:
        return rounds[0]
    first = rounds[0]
    merged = {**first, "metrics": _merge_tree([r.get("metrics", {}) for r in rounds])}
    merged["status"] = max((r.get("status", "FAIL") for r in rounds), key=_status_rank)
    details = list(dict.fromkeys(r.get("detail", "") for r in rounds if r.get("detail")))
    unstable = _unstable_paths(first.get("scenario", ""), [r.get("metrics", {}) for r in rounds])
    if unstable and merged["status"] == "OK":
        merged["status"] = "WARN"
    if unstable:
        details.append(f"differs between rounds of the same server: {', '.join(unstable[:5])}"
                       + (f" and {len(unstable) - 5} more" if len(unstable) > 5 else ""))
    merged["detail"] = "; ".join(details)
    merged["rounds"] = len(rounds)
    if all("duration_s" in r for r in rounds):
        merged["duration_s"] = round(sum(r["duration_s"] for r in rounds), 3)
    return merged


def _status_rank(status: str) -> int:
    return STATUS_ORDER.index(status) if status in STATUS_ORDER else len(STATUS_ORDER)


def _merge_tree(trees: list[Any]) -> Any:
    first = trees[0]
    if not all(isinstance(t, dict) for t in trees) or _is_error(first):
        return first
    out = {key: _merge_tree([t.get(key) for t in trees]) for key in first}
    for key in first:
        pooled = [t.get(key) for t in trees]
        if key.endswith(SAMPLES_SUFFIX) and all(isinstance(v, list) and all(map(_is_number, v)) for v in pooled):
            out[key] = [x for v in pooled for x in v]
            leaf = key[:-len(SAMPLES_SUFFIX)]
            if _is_number(first.get(leaf)) and out[key]:
                out[leaf] = median(out[key])
    return out


def _unstable_paths(scenario: str, trees: list[Any], path: tuple[str, ...] = ()) -> list[str]:
    """Compared metrics (not samples, the leaves they summarise, timings or not_compared values)
    that differ between rounds."""
    first = trees[0]
    if all(isinstance(t, dict) for t in trees) and not _is_error(first):
        keys = list(dict.fromkeys(k for t in trees for k in t))
        measured = {k[:-len(SAMPLES_SUFFIX)] for k in keys if k.endswith(SAMPLES_SUFFIX)}
        found = []
        for key in keys:
            if key.endswith(SAMPLES_SUFFIX) or key in measured:
                continue
            found.extend(_unstable_paths(scenario, [t.get(key) for t in trees], (*path, str(key))))
        return found
    if all(t == first for t in trees):
        return []
    kind = kind_of(list(path), first, next(t for t in trees if t != first), scenario)
    return [] if kind == NOT_COMPARED or kind in NOISY_KINDS else [".".join(path)]
