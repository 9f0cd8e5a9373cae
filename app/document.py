"""The report document every capability writes: its envelope, its targets, and its conclusion.

The scenarios, a replayed capture, the mirror proxy and the explorer all produce the same document
(app/report_schema.json): targets with their roles and real identities, difference records, and the
findings and summary concluded from them. Only how the records are observed differs.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import redis

from app import __version__, config
from app.catalogue import label_for_targets
from app.compare import NOISE_RULE, compare_results
from app.findings import group_findings, summarize
from app.identity import allocator_warning, identity_warnings, read_identity
from app.matrix import build_matrix
from app.targets import Target

# The report document's layout; app/report_schema.json describes it.
SCHEMA_VERSION = 2


def new_run_id() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_document(kind: str, run_id: str, scenarios: list[str]) -> dict[str, Any]:
    """An empty document of a kind (comparison, replay, mirror, explore), started now."""
    return {"schema_version": SCHEMA_VERSION, "kind": kind,
            "tool": {"name": "redis-valkey-compat", "version": __version__},
            "run_id": run_id, "started_at": now().isoformat(timespec="seconds"), "baseline": "",
            "scenarios": scenarios, "targets": {}, "results": {}, "warnings": [], "differences": [],
            "findings": [], "completed": False}


def ensure_baseline(targets: list[Target]) -> Target:
    """The baseline target; the first one when none says so."""
    if targets and not any(t.role == config.BASELINE_ROLE for t in targets):
        targets[0].role = config.BASELINE_ROLE
    return next(t for t in targets if t.role == config.BASELINE_ROLE)


def describe_targets(document: dict[str, Any], targets: list[Target], clients: dict[str, redis.Redis]) -> None:
    """Each target's report entry, its identity read from the server itself, and the run's warnings
    (stand-in versions, allocators that differ from the baseline's)."""
    baseline = ensure_baseline(targets)
    document["baseline"] = baseline.name
    for target in targets:
        identity = read_identity(clients[target.name])
        document["targets"][target.name] = {
            "name": target.name, "role": target.role, "url": target.display_url(), "source": target.source,
            "owned": target.owned, "binary": target.binary_source, "identity": identity,
            "expected": list(target.expect) if target.expect else None,
            "scenarios": list(target.scenarios) if target.scenarios is not None else None,
            "control_of": target.control_of,
            # A control is the baseline's binary: the baseline's own warnings already say what it is.
            "warnings": [] if target.role == config.CONTROL_ROLE else
            identity_warnings(target.name, target.expect, identity)}
    base_identity = document["targets"][baseline.name]["identity"]
    for entry in document["targets"].values():
        document["warnings"].extend(entry["warnings"])
        if entry["role"] == config.CANDIDATE_ROLE:
            alloc = allocator_warning({baseline.name: base_identity, entry["name"]: entry["identity"]})
            if alloc:
                document["warnings"].append(alloc)


def conclude(document: dict[str, Any], records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Label, group and count: the findings and summary of a document's records.

    Without records, they come from comparing the document's scenario results (the runner's case)."""
    if records is None:
        compared = compare_results(document["results"], document["targets"])
        records = compared["differences"]
        document["noise"] = compared["noise"]
        document["not_compared"] = compared["not_compared"]
    document["differences"] = label_for_targets(records, document)
    document["findings"] = group_findings(document["differences"])
    document["summary"] = summarize(document["differences"], document["findings"], NOISE_RULE)
    if sum(t.get("role") == config.CANDIDATE_ROLE for t in document["targets"].values()) > 1:
        document["matrix"] = build_matrix(document)
    return document


def finish(document: dict[str, Any], started: dt.datetime) -> None:
    finished = now()
    document["finished_at"] = finished.isoformat(timespec="seconds")
    document["duration_s"] = round((finished - started).total_seconds(), 3)
