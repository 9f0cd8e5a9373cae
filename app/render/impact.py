"""The impact document's own part of every report: the application's calls against the known
differences, its config against Valkey's defaults, the untested commands, the memory estimate.
Reads document["impact"] only."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from app.impact.rank import human
from app.render.html import esc
from app.render.junit import xml_text

ROWS = 25  # rows per list in the terminal table; all are in the other reports


def _section(document: dict[str, Any]) -> dict[str, Any]:
    return document.get("impact") or {}


def size(value: float) -> str:
    for scale, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if value >= scale:
            return f"{value / scale:,.1f} {unit}"
    return f"{value:,.0f} B"


def _memory_lines(memory: dict[str, Any] | None) -> list[str]:
    if not memory:
        return []
    modelled = memory["modelled_bytes"]
    lines = [f"memory of {memory['keys']:,} keys (from a sample of {memory['sampled']:,}): "
             + ", ".join(f"{name} {size(value)}" for name, value in modelled.items())
             + (f" (ratio {memory['ratio']})" if memory.get("ratio") else "")]
    if memory.get("application_on_valkey_bytes") is not None:
        lines.append(f"  the application's own MEMORY USAGE, scaled: {size(memory['application_bytes'])} now, "
                     f"about {size(memory['application_on_valkey_bytes'])} on Valkey")
    lines.append(f"  {memory['caveat']}")
    return lines


def summary_lines(document: dict[str, Any]) -> list[str]:
    """The section as plain lines (table and Markdown share them)."""
    section = _section(document)
    app = section.get("application", {})
    ident = app.get("identity", {})
    lines = [f"application: {app.get('url')} ({ident.get('product')} {ident.get('version')}, "
             f"{ident.get('mem_allocator')}): {app.get('commands_called', 0)} commands, {human(app.get('calls', 0))} "
             f"calls; keyspace " + (", ".join(f"{db} {n:,} keys" for db, n in app.get("keyspace", {}).items()) or "empty")]
    commands = section.get("commands", [])
    lines += ["", f"commands this application calls that behave differently on Valkey ({len(commands)}):"]
    lines += [f"  {row['text']}  [{', '.join(row['ids'][:4])}{', …' if len(row['ids']) > 4 else ''}]"
              for row in commands[:ROWS]]
    if len(commands) > ROWS:
        lines.append(f"  … {len(commands) - ROWS} more in the reports")
    lines.append(f"  ({section.get('findings_not_called', 0)} other differences concern commands it never calls)")
    advice = section.get("config", [])
    if advice:
        lines += ["", f"config ({len(advice)}):"] + [f"  {row['text']}" for row in advice[:ROWS]]
    gap = section.get("untested")
    if gap is None:
        lines += ["", "untested: not known (the report does not say which commands its run sent)"]
    elif gap:
        lines += ["", f"untested: {len(gap)} commands it calls that the comparison never sent (the coverage gap):",
                  "  " + ", ".join(f"{row['command']} ({human(row['calls'])})" for row in gap[:ROWS * 2])]
    memory = _memory_lines(section.get("memory"))
    if memory:
        lines += [""] + memory
    lines += [f"note: {note}" for note in section.get("notes", [])]
    return lines


def table_section(document: dict[str, Any]) -> str:
    return "\n".join(summary_lines(document)) if _section(document) else ""


def markdown_section(document: dict[str, Any]) -> str:
    if not _section(document):
        return ""
    return "## Impact on this application\n\n```\n" + "\n".join(summary_lines(document)) + "\n```\n"


def html_section(document: dict[str, Any]) -> str:
    section = _section(document)
    if not section:
        return ""
    rows = "".join(f"<tr><td><code>{esc(r['command'])}</code></td><td class='num'>{r['calls']:,}</td>"
                   f"<td class='num'>{r['findings']}</td><td class='num'>{r['new']}</td>"
                   f"<td>{esc(', '.join(r['ids']))}</td></tr>" for r in section.get("commands", []))
    config_rows = "".join(f"<li>{esc(r['text'])}</li>" for r in section.get("config", []))
    gap = section.get("untested")
    gap_text = ("not known for this report" if gap is None else
                ", ".join(f"{r['command']} ({r['calls']:,})" for r in gap) or "none")
    memory = "".join(f"<p>{esc(line)}</p>" for line in _memory_lines(section.get("memory")))
    return (f"<section id='impact'><h2>Impact on this application</h2><p>{esc(summary_lines(document)[0])}</p>"
            "<table><thead><tr><th>command</th><th>calls</th><th>differences</th><th>NEW</th><th>findings</th></tr>"
            f"</thead><tbody>{rows}</tbody></table><h3>Config</h3><ul>{config_rows}</ul>"
            f"<h3>Untested commands</h3><p>{esc(gap_text)}</p>{memory}</section>")


def junit_cases(document: dict[str, Any], target_name: str) -> list[ET.Element]:
    """For the candidate: one case per command the application calls that differs, failing on NEW ones."""
    if document.get("targets", {}).get(target_name, {}).get("role") != "candidate":
        return []
    cases = []
    for row in _section(document).get("commands", []):
        case = ET.Element("testcase", classname=f"redis-valkey-compat.{target_name}.impact", name=row["command"],
                          time="0.000")
        if row["new"]:
            failure = ET.SubElement(case, "failure", type="new-finding", message=xml_text(row["text"]))
            failure.text = xml_text(", ".join(row["ids"]))
        cases.append(case)
    return cases
