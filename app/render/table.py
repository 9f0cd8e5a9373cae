"""The terminal table: targets, one row per scenario with each server's status, then the differences."""

from __future__ import annotations

from collections import Counter
from typing import Any

MAX_VALUE_WIDTH = 38


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value) if value is not None else "(none)"
    if isinstance(value, dict) and set(value) == {"error"}:
        text = "(error) " + value["error"]
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_VALUE_WIDTH else text[:MAX_VALUE_WIDTH - 1] + "…"


def render_table(document: dict[str, Any], max_differences: int = 12) -> str:
    roles = list(document["targets"])
    lines = [f"redis-valkey-compat {document['tool']['version']} — run {document['run_id']}"]
    for role, target in document["targets"].items():
        ident = target.get("identity") or {}
        lines.append(f"  {role:<7} {ident.get('product', '?')} {ident.get('version', '?')}"
                     f"  allocator {ident.get('mem_allocator', '?')}  [{target['source']}] {target['url']}")
    for warning in document.get("warnings", []):
        lines.append(f"  ! {warning}")
    lines.append("")

    diffs = document.get("differences", [])
    by_scenario: dict[str, list[dict[str, Any]]] = {}
    for diff in diffs:
        by_scenario.setdefault(diff["scenario"], []).append(diff)
    name_w = max([len("scenario")] + [len(s) for s in document["scenarios"]])
    header = f"{'scenario':<{name_w}}  " + "  ".join(f"{r:<7}" for r in roles) + "  differences"
    lines += [header, "-" * len(header)]
    for scenario in document["scenarios"]:
        statuses = [document["results"].get(r, {}).get(scenario, {}).get("status", "-") for r in roles]
        found = by_scenario.get(scenario, [])
        kinds = Counter(d["kind"] for d in found)
        summary = f"{len(found)}" + (f" ({', '.join(f'{k} {n}' for k, n in kinds.most_common())})" if found else "")
        lines.append(f"{scenario:<{name_w}}  " + "  ".join(f"{s:<7}" for s in statuses) + f"  {summary}")

    for scenario in document["scenarios"]:
        details = [(r, document["results"].get(r, {}).get(scenario, {})) for r in roles]
        problems = [(r, res.get("detail", "")) for r, res in details if res.get("status") in ("WARN", "FAIL")]
        found = by_scenario.get(scenario, [])
        if not found and not problems:
            continue
        lines += ["", f"{scenario}:"]
        for role, detail in problems:
            lines.append(f"  {role} {document['results'][role][scenario]['status']}: {_short_detail(detail)}")
        if found:
            path_w = min(44, max(len(d["path"]) for d in found[:max_differences]))
            lines.append(f"  {'metric':<{path_w}}  {roles[0]:<{MAX_VALUE_WIDTH}}  {roles[-1]:<{MAX_VALUE_WIDTH}}  kind")
            for diff in found[:max_differences]:
                path = diff["path"] if len(diff["path"]) <= path_w else diff["path"][:path_w - 1] + "…"
                lines.append(f"  {path:<{path_w}}  {_short(diff.get(roles[0])):<{MAX_VALUE_WIDTH}}  "
                             f"{_short(diff.get(roles[-1])):<{MAX_VALUE_WIDTH}}  {diff['kind']}")
            if len(found) > max_differences:
                lines.append(f"  … {len(found) - max_differences} more in the JSON report")
    lines += ["", f"{len(diffs)} differences in {len(by_scenario)} scenarios; "
                  f"report: {document.get('report_path', '(not written)')}"]
    return "\n".join(lines)


def _short_detail(detail: str, width: int = 160) -> str:
    detail = " ".join(detail.split())
    return detail if len(detail) <= width else detail[:width - 1] + "…"
