"""A short Markdown summary fit for a pull-request comment: servers, caveats, statuses, what to look at."""

from __future__ import annotations

import json
from typing import Any

from app.findings import ALLOCATOR, DOCUMENTED, NEW, NOISE, summarize
from app.render import sections

MAX_LISTED = 15
MAX_VALUE = 60
_MD_SPECIAL = "\\`*_[]|#"
# Entities rather than backslashes for markup characters: every Markdown renderer shows them as text.
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def md(text: Any) -> str:
    """Text safe inside a Markdown table cell: no markup, no raw HTML, one line."""
    out = " ".join(str(text).split())
    out = "".join(_ENTITIES.get(c) or (f"\\{c}" if c in _MD_SPECIAL else c) for c in out)
    return "".join(c if c >= " " else f"\\\\x{ord(c):02x}" for c in out)


def short(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"error"}:
        text = f"(error) {value['error']}"
    else:
        text = "(nil)" if value is None else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE - 1] + "…"


def _identity(target: dict[str, Any]) -> str:
    ident = target.get("identity") or {}
    return md(f"{ident.get('product', '?')} {ident.get('version', '?')} ({ident.get('mem_allocator', '?')})")


def render_markdown(document: dict[str, Any], html_name: str = "report.html") -> str:
    names = list(document.get("targets", {}))
    summary = document.get("summary") or summarize(document.get("differences", []))
    servers = " vs ".join(f"**{md(name)}** {_identity(t)}" for name, t in document.get("targets", {}).items())
    lines = [f"### Redis → Valkey compatibility: {servers}", ""]
    if not document.get("completed"):
        lines += ["> **The run did not complete: results are partial.**", ""]
    lines += [f"> ⚠️ {md(w)}" for w in document.get("warnings", [])]
    records = summary.get("records", {})
    lines += ["", f"**{summary[NEW]} NEW findings** (undocumented: read these first). {summary['findings']} findings "
                  f"from {records.get('total', 0)} differing records: {summary[DOCUMENTED]} documented, "
                  f"{summary[ALLOCATOR]} allocator differs, {summary[NOISE]} within noise.", ""]
    lines += ["| scenario | " + " | ".join(md(n) for n in names) + " | findings | NEW |",
              "|---|" + "---|" * len(names) + "---:|---:|"]
    for scenario in document.get("scenarios", []):
        statuses = [document.get("results", {}).get(n, {}).get(scenario, {}).get("status", "-") for n in names]
        counts = summary["by_scenario"].get(scenario, {})
        marks = [f"**{s}**" if s == "FAIL" else s for s in statuses]
        lines.append(f"| {md(scenario)} | " + " | ".join(marks)
                     + f" | {counts.get('findings', 0)} | {counts.get(NEW, 0)} |")
    new = [f for f in document.get("findings", []) if f["class"] == NEW]
    if new:
        lines += ["", f"<details><summary>NEW findings ({len(new)})</summary>", "",
                  "| target | scenarios | finding | records | example: baseline | example: target |",
                  "|---|---|---|---:|---|---|"]
        for finding in new[:MAX_LISTED]:
            example = finding["examples"][0]
            values = example.get("values", {})
            cells = [md(finding["target"]), md(", ".join(finding["scenarios"])),
                     md(example["path"] if finding["records"] == 1 else finding["title"]), str(finding["records"]),
                     md(short(values.get(finding["baseline"]))), md(short(values.get(finding["target"])))]
            lines.append("| " + " | ".join(cells) + " |")
        if len(new) > MAX_LISTED:
            lines.append(f"\n…and {len(new) - MAX_LISTED} more in {md(html_name)}.")
        lines += ["", "</details>"]
    since = document.get("since_last")
    if since:
        c = since["counts"]
        lines += ["", f"**Since run {md(since['against_run'])}:** {c['new']} new, {c['changed']} changed, "
                      f"{c['unchanged']} unchanged, {c['gone']} gone."]
        lines += [f"- {label} {md(i['target'])}: {md(i['id'])} {md(i['title'])}"
                  for label in ("new", "changed", "gone") for i in since[label][:MAX_LISTED]]
    extra = sections.markdown_section(document)
    if extra:
        lines += ["", extra]
    lines += ["", f"Full report: `{html_name}` (run {md(document.get('run_id', ''))})."]
    return "\n".join(lines) + "\n"
