"""The sign-off sentences: which routes move the data in each direction, and why the others cannot.

Derived from the matrix only (no server is asked anything here)."""

from __future__ import annotations

from typing import Any

from app.migration.settings import FAILED, NOT_RUN, PARTIAL, REFUSED, WORKS

ROUTE_LABELS = {"replication": "replication", "rdb": "the RDB file", "aof": "the AOF",
                "aof_no_preamble": "the AOF without RDB preamble", "dump_restore": "DUMP + RESTORE",
                "migrate": "MIGRATE", "logical": "logical copy"}


def _names(routes: list[str]) -> str:
    labels = [ROUTE_LABELS.get(r, r) for r in routes]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def _clean(cell: dict[str, Any]) -> bool:
    verification = cell.get("verification") or {}
    return cell["status"] == WORKS and verification.get("mismatches") == 0


def sentence(cells: list[dict[str, Any]], source_label: str, target_label: str, purpose: str) -> str:
    """One sentence: '<purpose> from A to B is possible only by X: Y and Z are refused because ...'."""
    head = f"{purpose} from {source_label} to {target_label}"
    ran = [c for c in cells if c["status"] != NOT_RUN]
    if not ran:
        return f"{head} was not tried."
    clean = [c["route"] for c in ran if _clean(c)]
    refused = [c for c in ran if c["status"] in (REFUSED, PARTIAL)]
    broken = [c for c in ran if c["status"] == WORKS and not _clean(c)]
    failed = [c["route"] for c in ran if c["status"] == FAILED]
    if not clean:
        lead = f"{head} is not possible by any route tried"
    elif len(clean) == 1:
        lead = f"{head} is possible only by {_names(clean)}"
    else:
        lead = f"{head} is possible by {_names(clean)}"
    reasons = []
    by_error: dict[str, list[str]] = {}
    for cell in refused:
        by_error.setdefault(cell.get("error") or cell.get("detail") or "refused", []).append(cell["route"])
    for error, routes in by_error.items():
        verb = "is" if len(routes) == 1 else "are"
        logged = any(error in c.get("server_log", []) for c in refused if c["route"] in routes)
        how = "the target logged" if logged else "the server answered"
        reasons.append(f"{_names(routes)} {verb} refused because {how} \"{error}\"")
    if broken:
        reasons.append(f"{_names([c['route'] for c in broken])} moved the data with mismatches "
                       f"({sum(c['verification']['mismatches'] for c in broken)} key(s))")
    if failed:
        reasons.append(f"{_names(failed)} could not be completed by the tool")
    losses = [c for c in ran if _clean(c) and (c.get("verification") or {}).get("losses")]
    for cell in losses:
        lost = cell["verification"]["loss_reasons"]
        label = ROUTE_LABELS.get(cell["route"], cell["route"])
        reasons.append(f"{label} loses what it cannot carry: "
                       + ", ".join(f"{n} key(s) with {reason}" for reason, n in lost.items()))
    return lead + (": " + "; ".join(reasons) if reasons else "") + "."


def verdicts(matrix: list[dict[str, Any]], labels: dict[str, tuple[str, str]],
             purposes: dict[str, str]) -> dict[str, str]:
    """direction -> its sentence; labels: direction -> (source label, target label)."""
    out = {}
    for direction, (source_label, target_label) in labels.items():
        cells = [c for c in matrix if c["direction"] == direction]
        out[direction] = sentence(cells, source_label, target_label, purposes.get(direction, "Moving data"))
    return out
