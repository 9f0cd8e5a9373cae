"""The terminal table: targets, one row per scenario with each server's status, then the findings.

A finding is one underlying difference with all the records that show it (app/findings.py). The first
screen counts findings; the lists below show NEW findings first (undocumented: read these first), then
documented ones by catalogue id, then what the allocator made and what is within noise. Every record
is in the JSON and the HTML report, under its finding.
"""

from __future__ import annotations

import os
import textwrap
from typing import Any

from app.findings import ALLOCATOR, CLASS_LABELS, DOCUMENTED, NEW, NOISE
from app.render import sections

MAX_VALUE_WIDTH = 30
MAX_TITLE_WIDTH = 58
STATUS_WIDTH = 7
LINE_WIDTH = 120
DOCUMENTED_LISTED = 12  # catalogue ids named on the first screen; all are in the reports


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


def cells(values: list[str], width: int = MAX_VALUE_WIDTH) -> list[str]:
    """Values fitted to a column; a long shared beginning is elided so the difference itself shows."""
    if max(map(len, values), default=0) > width:
        shared = len(os.path.commonprefix(values))
        if shared > 12:
            cut = shared - 6
            values = ["…" + text[cut:] for text in values]
    return [_fit(text, width) for text in values]


def _example_cells(finding: dict[str, Any]) -> list[str]:
    example = finding["examples"][0]
    values = example.get("values", {})
    return cells(["(absent)" if example.get("missing_on") == name else _text(values.get(name))
                  for name in (finding["baseline"], finding["target"])])


def target_lines(document: dict[str, Any]) -> list[str]:
    rows = []
    for name, target in document["targets"].items():
        ident = target.get("identity") or {}
        role = target.get("role", "")
        extra = ""
        if target.get("scenarios") is not None:
            extra = "  (runs " + ", ".join(target["scenarios"]) + ")"
        rows.append((role, name, f"{ident.get('product', '?')} {ident.get('version', '?')}",
                     str(ident.get("mem_allocator", "?")), f"[{target.get('source', '')}] {target.get('url', '')}{extra}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)] if rows else []
    return ["  " + "  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows]


def render_table(document: dict[str, Any], max_differences: int = 12) -> str:
    names = list(document["targets"])
    lines = [f"redis-valkey-compat {document['tool']['version']} — run {document['run_id']}"]
    lines += target_lines(document)
    lines += [f"  ! {warning}" for warning in document.get("warnings", [])]
    lines.append("")
    if document.get("results"):  # a replay or the mirror has no scenario results: its section says what ran
        lines += _scenario_rows(document, names)
    findings = document.get("findings", [])
    candidates = list(dict.fromkeys(f["target"] for f in findings))
    if document.get("matrix"):  # several candidates: one matrix instead of one block per candidate
        lines += matrix_lines(document, max_differences)
        candidates = []
    for target in candidates:
        mine = [f for f in findings if f["target"] == target]
        heading = "" if len(candidates) == 1 else f"{target} against {document.get('baseline', names[0])}: "
        lines += _finding_list(mine, NEW, f"{heading}NEW findings, undocumented: read these first", max_differences)
        lines += _documented_line(mine, heading)
        lines += _finding_list(mine, ALLOCATOR, f"{heading}allocator differs: not product behaviour",
                               max(3, max_differences // 4))
        lines += _noise_line(mine, heading)
    lines += _not_compared(document)
    lines += since_last_lines(document, max_differences)
    extra = sections.table_section(document)
    if extra:
        lines += ["", extra]
    lines += ["", closing_line(document)]
    if not document.get("completed", True):
        lines.append("the run was interrupted: results are partial")
    return "\n".join(lines)


def closing_line(document: dict[str, Any]) -> str:
    summary = document.get("summary") or {}
    records = summary.get("records", {})
    return (f"{summary.get('findings', 0)} findings from {records.get('total', 0)} differing records: "
            f"{summary.get(NEW, 0)} NEW (undocumented, read these first), {summary.get(DOCUMENTED, 0)} documented, "
            f"{summary.get(ALLOCATOR, 0)} allocator differs, {summary.get(NOISE, 0)} within noise")


def _scenario_rows(document: dict[str, Any], names: list[str]) -> list[str]:
    by_scenario = (document.get("summary") or {}).get("by_scenario", {})
    name_w = max([len("scenario")] + [len(s) for s in document["scenarios"]])
    col_w = max([STATUS_WIDTH] + [len(n) for n in names])
    header = (f"{'scenario':<{name_w}}  " + "  ".join(f"{n:<{col_w}}" for n in names)
              + "  findings   NEW  documented  allocator  noise  records")
    lines = [header, "-" * len(header)]
    for scenario in document["scenarios"]:
        statuses = [document["results"].get(n, {}).get(scenario, {}).get("status", "-") for n in names]
        c = by_scenario.get(scenario, {})
        lines.append(f"{scenario:<{name_w}}  " + "  ".join(f"{s:<{col_w}}" for s in statuses)
                     + f"  {c.get('findings', 0):>8}  {c.get(NEW, 0):>4}  {c.get(DOCUMENTED, 0):>10}"
                     + f"  {c.get(ALLOCATOR, 0):>9}  {c.get(NOISE, 0):>5}  {c.get('records', 0):>7}")
    return lines


def _finding_list(findings: list[dict[str, Any]], cls: str, heading: str, limit: int) -> list[str]:
    chosen = [f for f in findings if f["class"] == cls]
    if not chosen:
        return []
    shown = chosen[:max(limit, 0)]
    base, target = shown[0]["baseline"] if shown else "", shown[0]["target"] if shown else ""
    scen_w = max([len("scenario")] + [len(_scenarios(f)) for f in shown])
    lines = ["", f"{heading} ({len(chosen)}):"]
    if shown:
        lines.append(f"  {'scenario':<{scen_w}}  {'finding':<{MAX_TITLE_WIDTH}}  {base:<{MAX_VALUE_WIDTH}}  "
                     f"{target:<{MAX_VALUE_WIDTH}}  records")
    for finding in shown:
        left, right = _example_cells(finding)
        lines.append(f"  {_scenarios(finding):<{scen_w}}  {_fit(_title(finding), MAX_TITLE_WIDTH):<{MAX_TITLE_WIDTH}}"
                     f"  {left:<{MAX_VALUE_WIDTH}}  {right:<{MAX_VALUE_WIDTH}}  {finding['records']:>7}")
    if len(chosen) > len(shown):
        lines.append(f"  … {len(chosen) - len(shown)} more in the reports (--max-differences N shows more)")
    return lines


def _title(finding: dict[str, Any]) -> str:
    """The finding's title; a one-record finding names its metric, which says more than a signature."""
    if finding["records"] == 1 and not finding.get("documented"):
        return finding["examples"][0]["path"]
    return finding["title"]


def _scenarios(finding: dict[str, Any]) -> str:
    first = finding["scenarios"][0]
    return first if len(finding["scenarios"]) == 1 else f"{first} +{len(finding['scenarios']) - 1}"


def _documented_line(findings: list[dict[str, Any]], heading: str) -> list[str]:
    documented = [f for f in findings if f["class"] == DOCUMENTED]
    if not documented:
        return []
    shown = documented[:DOCUMENTED_LISTED]
    listed = ", ".join(f"{f['id']} ({f['records']})" for f in shown)
    if len(documented) > len(shown):
        listed += f", … {len(documented) - len(shown)} more in the reports"
    text = f"{heading}documented ({len(documented)}, each with its release note; records in brackets): {listed}"
    return ["", *textwrap.wrap(text, LINE_WIDTH, subsequent_indent="  ", break_on_hyphens=False)]


def _noise_line(findings: list[dict[str, Any]], heading: str) -> list[str]:
    noise = [f for f in findings if f["class"] == NOISE]
    if not noise:
        return []
    records = sum(f["records"] for f in noise)
    return ["", f"{heading}{CLASS_LABELS[NOISE]}: {len(noise)} findings ({records} records: timings within "
                f"their spread, or places where two processes of one binary differ too)"]


MATRIX_MARKS = {NEW: "NEW", DOCUMENTED: "doc", ALLOCATOR: "alloc", NOISE: "~"}


def matrix_lines(document: dict[str, Any], limit: int) -> list[str]:
    """Findings per target, the findings across targets (a mark where each target has one), and what
    appears or disappears between consecutive versions of a product."""
    matrix = document["matrix"]
    candidates = matrix["targets"][1:]
    by_target = (document.get("summary") or {}).get("by_target", {})
    col = max([6] + [len(c) for c in candidates])
    lines = ["", f"findings per target, against {matrix['baseline']}:",
             f"  {'target':<{col}}  findings   NEW  documented  allocator  noise"]
    for cand in candidates:
        c = by_target.get(cand, {})
        lines.append(f"  {cand:<{col}}  {c.get('findings', 0):>8}  {c.get(NEW, 0):>4}  {c.get(DOCUMENTED, 0):>10}"
                     f"  {c.get(ALLOCATOR, 0):>9}  {c.get(NOISE, 0):>5}")
    by_id: dict[str, dict[str, Any]] = {}
    for finding in document.get("findings", []):
        if finding["class"] == NOISE:
            continue
        row = by_id.setdefault(finding["id"], {"finding": finding, "marks": {}})
        row["marks"][finding["target"]] = MATRIX_MARKS[finding["class"]]
    is_new = [r for r in by_id.values() if MATRIX_MARKS[NEW] in r["marks"].values()]
    rows = sorted(is_new, key=lambda r: (-len(r["marks"]), r["finding"]["id"]))
    shown = rows[:max(limit, 0)]
    lines += ["", f"NEW findings across targets ({len(rows)}; "
                  "NEW / doc / alloc where a target has it, . where not):",
              "  " + "  ".join(f"{c:>{col}}" for c in candidates) + "  finding"]
    for row in shown:
        marks = "  ".join(f"{row['marks'].get(c, '.'):>{col}}" for c in candidates)
        lines.append(f"  {marks}  {_fit(row['finding']['id'] + ' ' + _title(row['finding']), MAX_TITLE_WIDTH + 20)}")
    hidden = len(rows) - len(shown)
    if hidden > 0:
        lines.append(f"  … {hidden} more in the reports (--max-differences N shows more)")
    for change in matrix.get("changes", []):
        lines += ["", f"{change['from']} ({change['from_version']}) -> {change['to']} ({change['to_version']}): "
                      f"{len(change['appear'])} findings appear, {len(change['disappear'])} disappear"]
        for sign, items in (("+", change["appear"]), ("-", change["disappear"])):
            for item in items[:max(limit, 0)]:
                lines.append(f"  {sign} {_fit(item['id'] + ' ' + item['title'], MAX_TITLE_WIDTH + 30)}")
            if len(items) > max(limit, 0):
                lines.append(f"  {sign} … {len(items) - limit} more in the reports")
    return lines


def since_last_lines(document: dict[str, Any], limit: int) -> list[str]:
    """--compare-with: what is new, changed or gone since the earlier run."""
    since = document.get("since_last")
    if not since:
        return []
    c = since["counts"]
    lines = ["", f"since run {since['against_run'] or since['against']}: {c['new']} new, {c['changed']} changed, "
                 f"{c['unchanged']} unchanged, {c['gone']} gone"]
    for label, items in (("new", since["new"]), ("changed", since["changed"]), ("gone", since["gone"])):
        for item in items[:max(limit, 0)]:
            lines.append(f"  {label:<7} {item['target']}: {_fit(item['id'] + ' ' + item['title'], MAX_TITLE_WIDTH + 30)}"
                         f" [{CLASS_LABELS[item['class']]}]")
        if len(items) > max(limit, 0):
            lines.append(f"  {label:<7} … {len(items) - limit} more in the reports")
    return lines


def _not_compared(document: dict[str, Any]) -> list[str]:
    skipped = document.get("not_compared") or []
    if not skipped:
        return []
    lines = ["", f"not compared ({len(skipped)}): a scenario that FAILed on a server says nothing about the "
                 "difference between the servers"]
    lines += [f"  {s['scenario']} against {s['target']}: {_fit(s['reason'], 140)}" for s in skipped]
    return lines
