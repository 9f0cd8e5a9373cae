"""The mirror's own part of the reports: what ran through the proxy, per command, per server, what was
not compared and why. Reads only document["mirror"] (app/mirror/report.py writes it); measures nothing."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from app.findings import NEW, record_class
from app.render.html import esc
from app.render.markdown import md
from app.render.junit import xml_text

TOP_COMMANDS = 15  # commands listed in the table and the Markdown; the HTML and the JSON have all
STATS = ("calls", "identical", "different", "noise", "skipped")


def _section(document: dict[str, Any]) -> dict[str, Any]:
    return document.get("mirror") or {}


def _skips(stats: dict[str, Any]) -> str:
    return "; ".join(f"{reason} ({count})" for reason, count in (stats.get("skip_reasons") or {}).items())


def candidate_lines(section: dict[str, Any]) -> list[str]:
    """Whether the candidate kept up: dropped commands, out of sync, lost."""
    cand = section.get("candidate") or {}
    name = cand.get("name", "candidate")
    lines = []
    if cand.get("lost_at"):
        lines.append(f"{name} LOST at {cand['lost_at']}: {cand.get('lost_reason')}; nothing after that was compared")
    if cand.get("dropped"):
        lines.append(f"{name} fell behind: {cand['dropped']:,} commands dropped from comparison (never from the "
                     f"primary); out of sync since {cand.get('out_of_sync_since')}: differences after that may "
                     "come from the dropped commands")
    elif cand.get("out_of_sync_since") and not cand.get("lost_at"):
        lines.append(f"{name} out of sync since {cand['out_of_sync_since']}")
    if not lines:
        lines.append(f"{name} kept up: nothing dropped, never lost (longest lag {cand.get('max_lag_ms', 0):,} ms)")
    return lines


def summary_line(section: dict[str, Any]) -> str:
    totals = section.get("totals") or {}
    conns = section.get("connections") or {}
    return (f"mirror on {section.get('listen', '?')}: {totals.get('commands', 0):,} commands from "
            f"{conns.get('opened', 0):,} connections ({totals.get('messages', 0):,} push messages); "
            f"{totals.get('identical', 0):,} identical, {totals.get('different', 0):,} different, "
            f"{totals.get('noise', 0):,} noise, {totals.get('skipped', 0):,} not compared"
            + ("" if section.get("final") else " (a report written while running)"))


def table_section(document: dict[str, Any]) -> str:
    section = _section(document)
    if not section:
        return ""
    lines = [summary_line(section), *("  " + line for line in candidate_lines(section))]
    commands = list((section.get("commands") or {}).items())
    if commands:
        width = max(len("command"), *(len(name) for name, _ in commands[:TOP_COMMANDS]))
        lines.append(f"  {'command':<{width}}  " + "  ".join(f"{s:>9}" for s in STATS) + "  not compared because")
        for name, stats in commands[:TOP_COMMANDS]:
            lines.append(f"  {name:<{width}}  " + "  ".join(f"{stats.get(s, 0):>9,}" for s in STATS)
                         + f"  {_skips(stats)}")
        if len(commands) > TOP_COMMANDS:
            lines.append(f"  … {len(commands) - TOP_COMMANDS} more commands in the reports")
    for name, item in (section.get("primary_only") or {}).items():
        lines.append(f"  primary only: {name} ×{item['count']:,} ({item['reason']})")
    return "\n".join(lines)


def markdown_section(document: dict[str, Any]) -> str:
    section = _section(document)
    if not section:
        return ""
    lines = [f"**{md(summary_line(section))}**", "", *(f"- {md(line)}" for line in candidate_lines(section)), "",
             "| command | " + " | ".join(STATS) + " |", "|---|" + "---:|" * len(STATS)]
    for name, stats in list((section.get("commands") or {}).items())[:TOP_COMMANDS]:
        lines.append(f"| {md(name)} | " + " | ".join(f"{stats.get(s, 0):,}" for s in STATS) + " |")
    return "\n".join(lines)


def html_section(document: dict[str, Any]) -> str:
    section = _section(document)
    if not section:
        return ""
    rows = "".join(
        f"<tr><th>{esc(name)}</th>" + "".join(f'<td class="num">{stats.get(s, 0):,}</td>' for s in STATS)
        + f"<td>{esc(_skips(stats))}</td></tr>" for name, stats in (section.get("commands") or {}).items())
    servers = "".join(
        f"<tr><th>{esc(name)}</th><td>{esc(s.get('role'))}</td><td class=\"num\">{s.get('sent', 0):,}</td>"
        f"<td class=\"num\">{s.get('dropped', 0):,}</td><td>{esc(s.get('out_of_sync_since') or '')}</td>"
        f"<td>{esc(s.get('lost_at') or '')} {esc(s.get('lost_reason') or '')}</td>"
        f"<td class=\"num\">{s.get('max_lag_ms', 0):,}</td></tr>" for name, s in (section.get("servers") or {}).items())
    primary_only = "".join(f"<li>{esc(name)} ×{item['count']:,}: {esc(item['reason'])}</li>"
                           for name, item in (section.get("primary_only") or {}).items())
    noise = "".join(f"<li>{esc(n['command'])} ({esc(n['shape'])}): {n['calls']:,} calls</li>"
                    for n in section.get("noise") or [])
    return ('<section id="mirror"><h2>Mirror</h2>'
            f"<p>{esc(summary_line(section))}</p><ul>"
            + "".join(f"<li>{esc(line)}</li>" for line in candidate_lines(section)) + "</ul>"
            + '<h3>Servers behind the proxy</h3><table class="servers"><thead><tr><th>server</th><th>role</th>'
              "<th>sent</th><th>dropped</th><th>out of sync since</th><th>lost</th><th>longest lag ms</th></tr></thead>"
            + f"<tbody>{servers}</tbody></table>"
            + '<h3>Commands</h3><table class="commands"><thead><tr><th>command</th>'
            + "".join(f"<th>{s}</th>" for s in STATS) + "<th>not compared because</th></tr></thead>"
            + f"<tbody>{rows}</tbody></table>"
            + (f"<h3>Sent to the primary only</h3><ul>{primary_only}</ul>" if primary_only else "")
            + (f"<h3>Noise: where the secondary disagreed with the primary</h3><ul>{noise}</ul>" if noise else "")
            + "</section>")


def junit_cases(document: dict[str, Any], target: str) -> list[ET.Element]:
    """For the candidate: one case per command, failing on that command's NEW findings."""
    if (document.get("targets", {}).get(target) or {}).get("role") != "candidate":
        return []
    new: dict[str, list[dict[str, Any]]] = {}
    for record in document.get("differences", []):
        if record.get("target") == target and record_class(record) == NEW:
            new.setdefault(record.get("command", ""), []).append(record)
    cases = []
    for name, stats in (_section(document).get("commands") or {}).items():
        case = ET.Element("testcase", classname=f"redis-valkey-compat.mirror.{target}", name=name, time="0.000")
        records = new.get(name, [])
        if records:
            body = "\n".join(f"{r['path']}: {r['count']} calls, e.g. {r['examples'][0]['args']}" for r in records)
            failure = ET.SubElement(case, "failure", type="new-finding",
                                    message=xml_text(f"{len(records)} NEW difference(s) in {stats.get('calls', 0)} calls"))
            failure.text = xml_text(body)
        cases.append(case)
    return cases
