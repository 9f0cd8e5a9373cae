"""Comparison: every place where the two servers' scenario metrics differ, as a record with a kind.

Kinds are derived from data (the metric section a value sits in, and the shape of error replies),
not from scattered special cases: see SECTION_KINDS.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from importlib import import_module
from typing import Any

from app import config

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
    for pattern, kind in scenario_metric_kinds(scenario).items():
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
    return kind


def _is_error(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"error"}


def diff_metrics(scenario: str, left: Any, right: Any, path: list[str] | None = None) -> list[dict[str, Any]]:
    """Leaf-by-leaf differences between two metrics trees (left = baseline, right = candidate)."""
    path = path or []
    if isinstance(left, dict) and isinstance(right, dict) and not (_is_error(left) or _is_error(right)):
        out = []
        for key in list(left) + [k for k in right if k not in left]:
            out.extend(diff_metrics(scenario, left.get(key, _MISSING), right.get(key, _MISSING),
                                    [*path, str(key)]))
        return out
    if left == right:
        return []
    record = difference(scenario, path, left, right)
    return [] if record["kind"] == NOT_COMPARED else [record]


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def difference(scenario: str, path: list[str], left: Any, right: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "scenario": scenario,
        "path": ".".join(path),
        "kind": kind_of(path, left, right, scenario),
        config.BASELINE: None if left is _MISSING else left,
        config.CANDIDATE: None if right is _MISSING else right,
    }
    if left is _MISSING or right is _MISSING:
        record["missing_on"] = config.BASELINE if left is _MISSING else config.CANDIDATE
    if _is_number(left) and _is_number(right):
        record["delta"] = right - left
        record["relative"] = (right - left) / abs(left) if left else None
    return record


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def compare_results(results: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Differences for every scenario both targets ran; a status difference is one too."""
    base, cand = results.get(config.BASELINE, {}), results.get(config.CANDIDATE, {})
    found: list[dict[str, Any]] = []
    for scenario in [s for s in base if s in cand]:
        a, b = base[scenario], cand[scenario]
        if a["status"] != b["status"]:
            found.append({"scenario": scenario, "path": "status", "kind": "status",
                          config.BASELINE: a["status"], config.CANDIDATE: b["status"]})
        found.extend(diff_metrics(scenario, a.get("metrics", {}), b.get("metrics", {})))
    return found
