"""Since the last run: each finding of this run marked new, changed or unchanged against an earlier
report.json, and the earlier findings that are gone. What `--compare-with` and `--fail-on-change` read.

A finding is matched by its target's name and its id (ids are stable across runs: a catalogue id, a
group rule's id, or a hash of the signature). It has changed when the records that show it differ: other
places, or other values there. Timings are compared by place only (their values move run to run), and
noise is no property of a server, so it is left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.document import SCHEMA_VERSION
from app.findings import NOISE
from app.render.json_report import read_json

NEW, CHANGED, UNCHANGED, GONE = "new", "changed", "unchanged", "gone"
MEASURED_KINDS = frozenset({"timing"})


class HistoryError(ValueError):
    """The earlier report cannot be read or compared; one line."""


def load_earlier(path: str | Path) -> dict[str, Any]:
    try:
        document = read_json(Path(path))
    except (OSError, json.JSONDecodeError) as exc:
        raise HistoryError(f"--compare-with {path}: cannot read it as a report: {exc}") from exc
    if not isinstance(document, dict) or document.get("schema_version") != SCHEMA_VERSION:
        version = document.get("schema_version") if isinstance(document, dict) else None
        raise HistoryError(f"--compare-with {path}: report schema {version}, this tool writes {SCHEMA_VERSION}: "
                           "run the earlier comparison again with this version")
    return document


def _fingerprints(document: dict[str, Any]) -> dict[tuple[str, str], tuple[str, ...]]:
    """(target, finding id) -> what its records show, for every finding that is not noise."""
    wanted = {(f["target"], f["id"]) for f in document.get("findings", []) if f["class"] != NOISE}
    places: dict[tuple[str, str], list[str]] = {key: [] for key in wanted}
    for record in document.get("differences", []):
        key = (record.get("target", ""), record.get("finding", ""))
        if key in places:
            values = None if record["kind"] in MEASURED_KINDS else record.get("values")
            places[key].append(json.dumps([record["scenario"], record["path"], values], sort_keys=True, default=str))
    return {key: tuple(sorted(items)) for key, items in places.items()}


def compare_runs(document: dict[str, Any], earlier: dict[str, Any], earlier_path: str = "") -> dict[str, Any]:
    """The changes since the earlier run; each finding of `document` gets `since_last`."""
    now, before = _fingerprints(document), _fingerprints(earlier)
    counts = {NEW: 0, CHANGED: 0, UNCHANGED: 0}
    listed: dict[str, list[dict[str, Any]]] = {NEW: [], CHANGED: []}
    for finding in document.get("findings", []):
        key = (finding["target"], finding["id"])
        if key not in now:
            continue  # noise
        state = NEW if key not in before else UNCHANGED if before[key] == now[key] else CHANGED
        finding["since_last"] = state
        counts[state] += 1
        if state in listed:
            listed[state].append(_brief(finding))
    earlier_findings = {(f["target"], f["id"]): f for f in earlier.get("findings", [])}
    gone = [_brief(earlier_findings[key]) for key in before if key not in now]
    return {"against": earlier_path or earlier.get("report_path", ""), "against_run": earlier.get("run_id", ""),
            "new": listed[NEW], "changed": listed[CHANGED], "gone": gone,
            "counts": {**counts, GONE: len(gone)}}


def _brief(finding: dict[str, Any]) -> dict[str, Any]:
    return {"target": finding["target"], "id": finding["id"], "title": finding["title"], "class": finding["class"],
            "records": finding["records"]}


def has_changes(document: dict[str, Any]) -> bool:
    """What --fail-on-change fails on: a finding new or changed since the earlier run (gone ones pass)."""
    since = document.get("since_last") or {}
    return bool(since.get("new") or since.get("changed"))
