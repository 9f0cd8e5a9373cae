"""An exploration's own part of every report: its figures, per signature the minimal repro and both
replies (NEW first), coverage of COMMAND LIST against the scenarios', and what was never sent and why.
Reads the document only (document["explore"])."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from app.findings import CLASS_LABELS, CLASS_ORDER, NEW
from app.render.html import esc, show
from app.render.junit import xml_text

TABLE_ROWS = 30  # signatures listed in the terminal table; all are in the other reports
MISSED_LISTED = 30


def _section(document: dict[str, Any]) -> dict[str, Any]:
    return document.get("explore") or {}


def _ordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (CLASS_ORDER.index(r["class"]) if r["class"] in CLASS_ORDER else 9,
                                       -r["sequences"], r["signature"]))


def figures_line(section: dict[str, Any]) -> str:
    shrink = section.get("shrink_seconds_per_finding", {})
    budget = (f"{section['budget_seconds']:g} s budget" if section.get("budget_seconds")
              else f"{section.get('sequences_requested')} sequences requested")
    families = f", families {', '.join(section['families'])}" if section.get("families") else ""
    return (f"explored with seed {section.get('seed')} ({budget}{families}): {section.get('sequences', 0):,} sequences, "
            f"{section.get('calls_sent', 0):,} calls sent to every server, {section.get('calls_compared', 0):,} "
            f"compared, {section.get('calls_skipped', 0):,} skipped after a difference that changed state; "
            f"{section.get('explore_seconds', 0):g} s exploring ({section.get('compared_per_second', 0):,} "
            f"compared/s), {section.get('shrink_seconds', 0):g} s shrinking {shrink.get('findings', 0)} findings "
            f"(median {shrink.get('median', 0):g} s, longest {shrink.get('max', 0):g} s)")


def coverage_lines(section: dict[str, Any]) -> list[str]:
    coverage = section.get("coverage", {})
    lines = []
    for name, c in coverage.get("servers", {}).items():
        line = (f"  {name:<8} explorer {c['explorer']}/{c['eligible']} of the commands not excluded "
                f"({c['explorer_percent']} %, {c['explorer_answered']} answered without an error at least once)")
        if "scenarios" in c:
            line += (f"; scenarios {c['scenarios']}/{c['commands']} ({c['scenarios_percent']} %); together "
                     f"{c['union']}/{c['commands']} ({c['union_percent']} %); {c['excluded']} excluded")
        lines.append(line)
    return lines


def _repro_text(row: dict[str, Any]) -> str:
    if row.get("repro_file"):
        return f"{row['repro_file']} ({len(row['repro'])} command{'s' if len(row['repro']) != 1 else ''})"
    return row.get("note") or "-"


def table_section(document: dict[str, Any]) -> str:
    section = _section(document)
    if not section:
        return ""
    rows = _ordered(section.get("findings", []))
    lines = [figures_line(section), "", "coverage of COMMAND LIST (commands and subcommands):"] + coverage_lines(section)
    counts = {label: sum(1 for r in rows if r["class"] == key) for key, label in CLASS_LABELS.items()}
    lines += ["", f"signatures ({len(rows)}): " + ", ".join(f"{n} {label}" for label, n in counts.items() if n)]
    shown = [r for r in rows if r["class"] == NEW][:TABLE_ROWS] or rows[:TABLE_ROWS]
    for row in shown:
        label = CLASS_LABELS.get(row["class"], row["class"])
        lines.append(f"  {label:<10} {row['sequences']:>5} seq  {row['signature'][:90]:<90}  {_repro_text(row)}")
    if len(rows) > len(shown):
        lines.append(f"  … {len(rows) - len(shown)} more signatures in the reports")
    aborted = section.get("aborted", {}).get("by_kind", {})
    if aborted:
        lines += ["", "sequences a server did not answer in full: "
                  + ", ".join(f"{kind} {n}" for kind, n in aborted.items())]
    missed = []
    for name, c in section.get("coverage", {}).get("servers", {}).items():
        if c.get("explorer_missed"):
            missed.append(f"  {name}: " + ", ".join(c["explorer_missed"][:MISSED_LISTED])
                          + (" …" if len(c["explorer_missed"]) > MISSED_LISTED else ""))
    if missed:
        lines += ["", "not exercised by the explorer (not excluded):"] + missed
    return "\n".join(lines)


def markdown_section(document: dict[str, Any]) -> str:
    section = _section(document)
    if not section:
        return ""
    lines = ["## Exploration", "", figures_line(section), "", "### Coverage of COMMAND LIST", ""]
    lines += ["| server | explorer (of not excluded) | answered | scenarios | together | excluded |",
              "|---|---|---|---|---|---|"]
    for name, c in section.get("coverage", {}).get("servers", {}).items():
        lines.append(f"| {name} | {c['explorer']}/{c['eligible']} ({c['explorer_percent']} %) | "
                     f"{c['explorer_answered']} | {c.get('scenarios', '-')}/{c['commands']} "
                     f"({c.get('scenarios_percent', '-')} %) | {c.get('union', '-')}/{c['commands']} | {c['excluded']} |")
    lines += ["", "### Signatures, minimal repros", "", "| class | sequences | signature | repro |", "|---|---|---|---|"]
    for row in _ordered(section.get("findings", [])):
        repro = "<br>".join(f"`{line[:120]}`" for line in row["repro"]) or (row.get("note") or "-")
        lines.append(f"| {CLASS_LABELS.get(row['class'], row['class'])} | {row['sequences']} | "
                     f"{row['signature'].replace('|', '/')[:150]} | {repro.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def _finding_row(row: dict[str, Any], names: list[str]) -> str:
    repro = "".join(f"<code>{esc(line)}</code><br>" for line in row["repro"]) or esc(row.get("note") or "-")
    values = "".join(f"<td>{esc(show(row['values'].get(name)))}</td>" for name in names)
    label = CLASS_LABELS.get(row["class"], row["class"])
    documented = f" <small>{esc(row['catalogue_id'])}</small>" if row.get("catalogue_id") else ""
    file = f"<br><small>{esc(row['repro_file'])}</small>" if row.get("repro_file") else ""
    return (f"<tr class='{esc(row['class'])}'><td>{esc(label)}{documented}</td><td class='num'>{row['sequences']:,}</td>"
            f"<td><code>{esc(row['signature'])}</code></td><td>{repro}{file}</td>{values}"
            f"<td class='num'>{row['shrink_seconds']:g}</td></tr>")


def html_section(document: dict[str, Any]) -> str:
    section = _section(document)
    if not section:
        return ""
    names = [document.get("baseline", "")] + [n for n, t in document.get("targets", {}).items()
                                              if t.get("role") == "candidate"]
    rows = "".join(_finding_row(r, names) for r in _ordered(section.get("findings", [])))
    head = "".join(f"<th>{esc(n)}</th>" for n in names)
    cov = "".join(
        f"<tr><td>{esc(name)}</td><td class='num'>{c['explorer']}/{c['eligible']} ({c['explorer_percent']} %)</td>"
        f"<td class='num'>{c['explorer_answered']}</td><td class='num'>{c.get('scenarios', '-')}/{c['commands']}</td>"
        f"<td class='num'>{c.get('union', '-')}/{c['commands']}</td><td class='num'>{c['excluded']}</td>"
        f"<td>{esc(', '.join(c.get('explorer_missed', [])) or '-')}</td></tr>"
        for name, c in section.get("coverage", {}).get("servers", {}).items())
    excluded = "".join(f"<tr><td><code>{esc(e['command'])}</code></td><td>{esc(e['reason'])}</td></tr>"
                       for e in section.get("coverage", {}).get("excluded", []))
    aborted = "".join(f"<li>{esc(kind)}: {n:,}</li>" for kind, n in section.get("aborted", {}).get("by_kind", {}).items())
    parts = [f"<section id='explore'><h2>Exploration</h2><p>{esc(figures_line(section))}</p>",
             "<h3>Signatures and their minimal repros</h3><table><thead><tr><th>class</th><th>sequences</th>"
             f"<th>signature</th><th>repro</th>{head}<th>shrink s</th></tr></thead><tbody>{rows}</tbody></table>",
             "<h3>Coverage of COMMAND LIST</h3><table><thead><tr><th>server</th><th>explorer (of not excluded)"
             "</th><th>answered</th><th>scenarios</th><th>together</th><th>excluded</th><th>not exercised</th></tr>"
             f"</thead><tbody>{cov}</tbody></table>",
             f"<h3>Never sent</h3><table><thead><tr><th>command</th><th>why</th></tr></thead><tbody>{excluded}"
             "</tbody></table>"]
    if aborted:
        parts.append(f"<h3>Sequences a server did not answer in full</h3><ul>{aborted}</ul>")
    return "".join(parts) + "</section>"


def junit_cases(document: dict[str, Any], target_name: str) -> list[ET.Element]:
    """For the candidate: one case per explored command, failing on that command's NEW signatures."""
    target = document.get("targets", {}).get(target_name, {})
    if target.get("role") != "candidate":
        return []
    section = _section(document)
    new: dict[str, list[dict[str, Any]]] = {}
    for row in section.get("findings", []):
        if row["class"] == NEW:
            new.setdefault(row["command"], []).append(row)
    cases = []
    stats_by_command = dict(section.get("command_stats", {}))
    for name in new:  # a stall or silence is the pipeline's, not one command's
        stats_by_command.setdefault(name, {})
    for name, stats in stats_by_command.items():
        case = ET.Element("testcase", classname=f"redis-valkey-compat.{target_name}.explore", name=name, time="0.000")
        rows = new.get(name, [])
        if rows:
            failure = ET.SubElement(case, "failure", type="new-finding", message=f"{len(rows)} NEW signature(s)")
            failure.text = xml_text("\n".join(f"{r['signature']}; repro: {' / '.join(r['repro'])}" for r in rows))
        elif stats and stats.get("calls", 0) == stats.get("skipped", 0):
            ET.SubElement(case, "skipped", message="every call came after a difference that changed state")
        cases.append(case)
    return cases
