"""The terminal table: targets, one row per scenario with each server's status, then the differences.

Differences are listed in attention order: undocumented significant first (marked NEW), then
documented ones (marked with their catalogue id), then timings within noise (marked ~noise).
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from app.compare import attention_order, is_documented, is_significant, needs_attention

MAX_VALUE_WIDTH = 34
MAX_PATH_WIDTH = 44


def _text(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"error"}:
        text = "(error) " + value["error"]
    elif value is None:
        text = "(nil)"
    elif value == "":
        text = '""'  # an empty value must not look like a missing cell
    else:
        text = value if isinstance(value, str) else repr(value)
    return " ".join(str(text).split())


def _fit(text: str, width: int = MAX_VALUE_WIDTH) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _short(value: Any, width: int = MAX_VALUE_WIDTH) -> str:
    return _fit(_text(value), width)


def _cells(diff: dict[str, Any], left_role: str, right_role: str) -> tuple[str, str]:
    """Both values fitted to the column; a long shared beginning is elided so the difference shows."""
    texts = ["(absent)" if diff.get("missing_on") == role else _text(diff.get(role))
             for role in (left_role, right_role)]
    if max(map(len, texts)) > MAX_VALUE_WIDTH:
        shared = len(os.path.commonprefix(texts))
        if shared > 12:
            cut = shared - 6
            texts = ["…" + text[cut:] for text in texts]
    return _fit(texts[0]), _fit(texts[1])


def _display_rank(diff: dict[str, Any]) -> tuple[int, bool]:
    """NEW, then documented, then noise; within each, changed values before things absent on one side."""
    rank = 0 if needs_attention(diff) else 1 if is_significant(diff) else 2
    return rank, "missing_on" in diff


def _mark(diff: dict[str, Any]) -> str:
    if not is_significant(diff):
        return "~noise"
    if is_documented(diff):
        return str(diff.get("catalogue_id") or "documented")
    return "NEW"


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
    for diff in sorted(attention_order(diffs), key=_display_rank):
        by_scenario.setdefault(diff["scenario"], []).append(diff)
    name_w = max([len("scenario")] + [len(s) for s in document["scenarios"]])
    header = (f"{'scenario':<{name_w}}  " + "  ".join(f"{r:<7}" for r in roles)
              + "  differences (NEW = undocumented)")
    lines += [header, "-" * len(header)]
    for scenario in document["scenarios"]:
        statuses = [document["results"].get(r, {}).get(scenario, {}).get("status", "-") for r in roles]
        found = by_scenario.get(scenario, [])
        new = sum(needs_attention(d) for d in found)
        kinds = Counter(d["kind"] for d in found if is_significant(d))
        noise = sum(not is_significant(d) for d in found)
        summary = f"{len(found):>3}  NEW {new:>3}" if found else "  0"
        if kinds:
            summary += "  " + ", ".join(f"{k} {n}" for k, n in kinds.most_common())
        if noise:
            summary += f", within noise {noise}"
        lines.append(f"{scenario:<{name_w}}  " + "  ".join(f"{s:<7}" for s in statuses) + f"  {summary}")

    for scenario in document["scenarios"]:
        lines += _scenario_block(document, scenario, roles, by_scenario.get(scenario, []), max_differences)

    summary = document.get("summary") or {}
    lines += ["", f"{len(diffs)} differences: {summary.get('undocumented_significant', '?')} undocumented "
                  f"(NEW, read these first), {summary.get('documented', '?')} documented, "
                  f"{summary.get('within_noise', '?')} within noise"]
    if not document.get("completed", True):
        lines.append("the run was interrupted: results are partial")
    return "\n".join(lines)


def _scenario_block(document: dict[str, Any], scenario: str, roles: list[str],
                    found: list[dict[str, Any]], max_differences: int) -> list[str]:
    details = [(r, document["results"].get(r, {}).get(scenario, {})) for r in roles]
    problems = [(r, res) for r, res in details if res.get("status") in ("WARN", "FAIL")]
    if not found and not problems:
        return []
    lines = ["", f"{scenario}:"]
    for role, res in problems:
        lines.append(f"  {role} {res['status']}: {_short(res.get('detail', ''), 160)}")
    if found:
        shown = found[:max_differences]
        path_w = min(MAX_PATH_WIDTH, max(len(d["path"]) for d in shown))
        lines.append(f"  {'metric':<{path_w}}  {roles[0]:<{MAX_VALUE_WIDTH}}  "
                     f"{roles[-1]:<{MAX_VALUE_WIDTH}}  kind / documented")
        for diff in shown:
            left, right = _cells(diff, roles[0], roles[-1])
            lines.append(f"  {_short(diff['path'], path_w):<{path_w}}  {left:<{MAX_VALUE_WIDTH}}"
                         f"  {right:<{MAX_VALUE_WIDTH}}  {diff['kind']} {_mark(diff)}")
        if len(found) > max_differences:
            lines.append(f"  … {len(found) - max_differences} more in the reports (--max-differences N shows more)")
    return lines
