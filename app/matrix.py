"""The version matrix: for each place that differs, its value on every target, and what changed between
consecutive versions (Valkey 8.0 -> 8.1 -> 9.0 -> 9.1: findings that appear or disappear).

Derived from a concluded document's records and findings (app/document.conclude); renderers only read it.
"""

from __future__ import annotations

from typing import Any

from app import config
from app.catalogue import parse_version
from app.findings import CLASS_ORDER, NOISE, record_class

SAME = {"same_as_baseline": True}  # a candidate that ran the scenario and showed no difference there


def build_matrix(document: dict[str, Any]) -> dict[str, Any]:
    baseline = document.get("baseline", "")
    candidates = [n for n, t in document.get("targets", {}).items() if t.get("role") == config.CANDIDATE_ROLE]
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for record in document.get("differences", []):
        key = (record["scenario"], record["path"])
        row = rows.setdefault(key, {"scenario": key[0], "path": key[1], "kind": record["kind"], "values": {},
                                    "classes": {}, "findings": {}})
        row["values"].setdefault(baseline, record["values"].get(baseline))
        row["values"][record["target"]] = record["values"].get(record["target"])
        row["classes"][record["target"]] = record_class(record)
        row["findings"][record["target"]] = record.get("finding")
    for row in rows.values():
        for cand in candidates:
            if cand not in row["values"] and row["scenario"] in document.get("results", {}).get(cand, {}):
                row["values"][cand] = SAME
    ordered = sorted(rows.values(), key=lambda r: (min(CLASS_ORDER.index(c) for c in r["classes"].values()),
                                                   r["scenario"], r["path"]))
    return {"baseline": baseline, "targets": [baseline, *candidates], "rows": ordered,
            "kinds_by_target": _kinds_by_target(document, candidates),
            "changes": consecutive_changes(document, candidates)}


def _kinds_by_target(document: dict[str, Any], candidates: list[str]) -> dict[str, dict[str, dict[str, int]]]:
    """target -> kind -> {findings, new}: the per-target counts by kind and NEW."""
    out: dict[str, dict[str, dict[str, int]]] = {c: {} for c in candidates}
    for finding in document.get("findings", []):
        for kind in finding["kinds"]:
            counts = out.setdefault(finding["target"], {}).setdefault(kind, {"findings": 0, "new": 0})
            counts["findings"] += 1
            counts["new"] += finding["class"] == "new"
    return out


def _version_key(document: dict[str, Any], name: str) -> tuple[str, tuple[int, ...], str]:
    identity = document["targets"][name].get("identity") or {}
    return str(identity.get("product", "")), parse_version(str(identity.get("version", "0"))), name


def _version(document: dict[str, Any], name: str) -> str:
    identity = document["targets"][name].get("identity") or {}
    return f"{identity.get('product', '?')} {identity.get('version', '?')}"


def consecutive_changes(document: dict[str, Any], candidates: list[str]) -> list[dict[str, Any]]:
    """For candidates of one product ordered by version, the findings that appear and disappear from one
    version to the next (noise excluded: it is not a property of a version)."""
    findings: dict[str, dict[str, dict[str, Any]]] = {c: {} for c in candidates}
    for finding in document.get("findings", []):
        if finding["class"] != NOISE and finding["target"] in findings:
            findings[finding["target"]][finding["id"]] = finding
    ordered = sorted(candidates, key=lambda n: _version_key(document, n))
    changes = []
    for older, newer in zip(ordered, ordered[1:]):
        if _version_key(document, older)[0] != _version_key(document, newer)[0]:
            continue  # Redis 7.4 -> Valkey 8.0 is not a release of one product
        before, after = findings[older], findings[newer]
        changes.append({"from": older, "to": newer,
                        "from_version": _version(document, older), "to_version": _version(document, newer),
                        "appear": [_brief(after[i]) for i in after if i not in before],
                        "disappear": [_brief(before[i]) for i in before if i not in after]})
    return changes


def _brief(finding: dict[str, Any]) -> dict[str, Any]:
    return {"id": finding["id"], "title": finding["title"], "class": finding["class"],
            "records": finding["records"], "scenarios": finding["scenarios"]}
