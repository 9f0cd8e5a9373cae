"""A short Markdown summary fit for a pull-request comment: servers, caveats, statuses, what to look at."""

from __future__ import annotations

import json
from typing import Any

from app.compare import needs_attention, summarize

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
    roles = list(document.get("targets", {}))
    summary = summarize(document.get("differences", []))
    servers = " vs ".join(f"**{md(role)}** {_identity(t)}" for role, t in document.get("targets", {}).items())
    lines = [f"### Redis → Valkey compatibility: {servers}", ""]
    if not document.get("completed"):
        lines += ["> **The run did not complete: results are partial.**", ""]
    lines += [f"> ⚠️ {md(w)}" for w in document.get("warnings", [])]
    lines += ["", f"**{summary['undocumented_significant']} undocumented significant differences** "
                  f"({summary['total']} differences: {summary['significant']} significant, "
                  f"{summary['documented']} documented, {summary['within_noise']} within noise).", ""]
    lines += ["| scenario | " + " | ".join(md(r) for r in roles) + " | differences | undocumented |",
              "|---|" + "---|" * len(roles) + "---:|---:|"]
    for scenario in document.get("scenarios", []):
        statuses = [document.get("results", {}).get(r, {}).get(scenario, {}).get("status", "not run") for r in roles]
        counts = summary["by_scenario"].get(scenario, {})
        marks = [f"**{s}**" if s == "FAIL" else s for s in statuses]
        lines.append(f"| {md(scenario)} | " + " | ".join(marks)
                     + f" | {counts.get('total', 0)} | {counts.get('undocumented_significant', 0)} |")
    if summary["by_kind"]:
        lines += ["", "By kind: " + ", ".join(f"{md(k)} {c['total']} ({c['undocumented_significant']} undocumented)"
                                            for k, c in summary["by_kind"].items()) + "."]
    attention = [d for d in document.get("differences", []) if needs_attention(d)]
    if attention:
        lines += ["", f"<details><summary>Undocumented differences ({len(attention)})</summary>", "",
                  "| scenario | metric | kind | " + " | ".join(md(r) for r in roles) + " |",
                  "|---|---|---|" + "---|" * len(roles)]
        for diff in attention[:MAX_LISTED]:
            cells = [md(diff.get(k, "")) for k in ("scenario", "path", "kind")]
            cells += [md(short(diff.get(r))) for r in roles]
            lines.append("| " + " | ".join(cells) + " |")
        if len(attention) > MAX_LISTED:
            lines.append(f"\n…and {len(attention) - MAX_LISTED} more in {md(html_name)}.")
        lines += ["", "</details>"]
    lines += ["", f"Full report: `{html_name}` (run {md(document.get('run_id', ''))})."]
    return "\n".join(lines) + "\n"
