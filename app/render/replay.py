"""A replay's own part of every report: per command what happened to its calls, what was skipped and
why, the capture's bad lines, and the speed. Reads the document only (document["replay"])."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from app.findings import NEW
from app.render.html import esc, show
from app.render.junit import xml_text

TABLE_ROWS = 40  # commands listed in the terminal table; all are in the other reports
COLUMNS = ("calls", "identical", "different", "noise", "skipped")


def _section(document: dict[str, Any]) -> dict[str, Any]:
    return document.get("replay") or {}


def new_by_command(document: dict[str, Any], target: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Command -> its records whose finding is NEW (for one target, or any)."""
    new_ids = {(f["target"], f["id"]) for f in document.get("findings", []) if f.get("class") == NEW}
    out: dict[str, list[dict[str, Any]]] = {}
    for record in document.get("differences", []):
        if target is not None and record.get("target") != target:
            continue
        if (record.get("target"), record.get("finding")) in new_ids and record.get("command"):
            out.setdefault(record["command"], []).append(record)
    return out


def _input_lines(section: dict[str, Any]) -> list[str]:
    lines = []
    for entry in section.get("inputs", []):
        start = entry.get("starting_data")
        data = "" if not start else ("; starting data loaded" if start.get("loaded") else "; starting data NOT loaded")
        lines.append(f"  {entry['path']} ({entry['format']}): {entry['commands']:,} commands, "
                     f"{entry['bad_lines']:,} bad lines{data}")
        lines += [f"    bad line {text}" for text in entry.get("bad_line_examples", [])[:5]]
        if entry["bad_lines"] > 5:
            lines.append(f"    … {entry['bad_lines'] - 5:,} more bad lines (listed in the reports, first 20)")
    return lines


def _counts_line(section: dict[str, Any]) -> str:
    counts, speed = section.get("counts", {}), section.get("throughput", {})
    rate = f", {speed['per_second']:,} commands/s" if speed.get("per_second") else ""
    return (f"replayed {counts.get('replayed', 0):,} commands from {counts.get('sessions', 0):,} client sessions in "
            f"{speed.get('seconds', 0):g} s{rate}; {counts.get('from_script', 0):,} script lines ran inside their "
            f"EVAL/FCALL; {counts.get('bounded', 0):,} blocking waits bounded to {section.get('block_timeout_s', 0):g} s")


def table_section(document: dict[str, Any]) -> str:
    section = _section(document)
    if not section:
        return ""
    new = new_by_command(document)
    lines = ["replayed:"] + _input_lines(section) + ["", _counts_line(section), ""]
    commands = section.get("commands", {})
    width = max([len("command")] + [len(name) for name in list(commands)[:TABLE_ROWS]])
    header = f"{'command':<{width}}  " + "  ".join(f"{c:>9}" for c in COLUMNS) + "  NEW"
    lines += [header, "-" * len(header)]
    for name, stats in list(commands.items())[:TABLE_ROWS]:
        lines.append(f"{name:<{width}}  " + "  ".join(f"{stats.get(c, 0):>9,}" for c in COLUMNS)
                     + f"  {len(new.get(name, [])):>3}")
    if len(commands) > TABLE_ROWS:
        lines.append(f"… {len(commands) - TABLE_ROWS} more commands in the reports")
    totals = section.get("totals", {})
    lines.append(f"{'total':<{width}}  " + "  ".join(f"{totals.get(c, 0):>9,}" for c in COLUMNS))
    skipped = section.get("skipped", [])
    if skipped:
        lines += ["", "not replayed (command, calls, why, first line):"]
        lines += [f"  {row['command']:<20} {row['calls']:>7,}  {row['reason']} (line {row['first_line']})"
                  for row in skipped]
    return "\n".join(lines)


def markdown_section(document: dict[str, Any]) -> str:
    section = _section(document)
    if not section:
        return ""
    new = new_by_command(document)
    lines = ["## Replayed commands", "", _counts_line(section), ""]
    lines += [f"- `{e['path']}` ({e['format']}): {e['commands']:,} commands, {e['bad_lines']:,} bad lines"
              for e in section.get("inputs", [])]
    lines += ["", "| command | " + " | ".join(COLUMNS) + " | NEW |", "|---" * (len(COLUMNS) + 2) + "|"]
    for name, stats in section.get("commands", {}).items():
        lines.append(f"| `{name}` | " + " | ".join(f"{stats.get(c, 0):,}" for c in COLUMNS)
                     + f" | {len(new.get(name, []))} |")
    skipped = section.get("skipped", [])
    if skipped:
        lines += ["", "### Not replayed", "", "| command | calls | why | first line |", "|---|---|---|---|"]
        lines += [f"| `{r['command']}` | {r['calls']:,} | {r['reason']} | {r['first_line']} |" for r in skipped]
    return "\n".join(lines) + "\n"


def html_section(document: dict[str, Any]) -> str:
    section = _section(document)
    if not section:
        return ""
    new = new_by_command(document)
    rows = "".join(
        f"<tr><td><code>{esc(name)}</code></td>" + "".join(f"<td class='num'>{stats.get(c, 0):,}</td>" for c in COLUMNS)
        + f"<td class='num'>{len(new.get(name, []))}</td></tr>" for name, stats in section.get("commands", {}).items())
    inputs = "".join(f"<li><code>{esc(e['path'])}</code> ({esc(e['format'])}): {e['commands']:,} commands, "
                     f"{e['bad_lines']:,} bad lines" + "".join(f"<br><small>{esc(t)}</small>"
                                                               for t in e.get("bad_line_examples", [])[:5]) + "</li>"
                     for e in section.get("inputs", []))
    skipped = "".join(f"<tr><td><code>{esc(r['command'])}</code></td><td class='num'>{r['calls']:,}</td>"
                      f"<td>{esc(r['reason'])}</td><td class='num'>{esc(r['first_line'])}</td></tr>"
                      for r in section.get("skipped", []))
    noise = "".join(f"<tr><td><code>{esc(n['command'])}</code></td><td>{show(n['shape'])}</td>"
                    f"<td class='num'>{n['calls']:,}</td></tr>" for n in section.get("noise", []))
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    parts = [f"<section id='replay'><h2>Replayed commands</h2><p>{esc(_counts_line(section))}</p><ul>{inputs}</ul>",
             f"<table><thead><tr><th>command</th>{head}<th>NEW</th></tr></thead><tbody>{rows}</tbody></table>"]
    if skipped:
        parts.append("<h3>Not replayed</h3><table><thead><tr><th>command</th><th>calls</th><th>why</th>"
                     f"<th>first line</th></tr></thead><tbody>{skipped}</tbody></table>")
    if noise:
        parts.append("<h3>Noise: where two processes of the baseline's binary answered differently</h3><table>"
                     f"<thead><tr><th>command</th><th>reply shape</th><th>calls</th></tr></thead><tbody>{noise}"
                     "</tbody></table>")
    return "".join(parts) + "</section>"


def junit_cases(document: dict[str, Any], target_name: str) -> list[ET.Element]:
    """For a candidate: one case per replayed command, failing on that command's NEW findings."""
    target = document.get("targets", {}).get(target_name, {})
    if target.get("role") != "candidate":
        return []
    new = new_by_command(document, target_name)
    baseline = document.get("baseline", "")
    cases = []
    for name, stats in _section(document).get("commands", {}).items():
        case = ET.Element("testcase", classname=f"redis-valkey-compat.{target_name}.replay", name=name, time="0.000")
        records = new.get(name, [])
        if records:
            lines = []
            for record in records:
                example = record["examples"][0]
                lines.append(f"{record['path']}: {record['count']} calls, e.g. line {example.get('line')} "
                             f"{example['args']}: {baseline}={example['values'].get(baseline)!r} "
                             f"{target_name}={example['values'].get(target_name)!r}")
            failure = ET.SubElement(case, "failure", type="new-finding",
                                    message=f"{len(records)} NEW difference(s) in {stats.get('different', 0)} calls")
            failure.text = xml_text("\n".join(lines))
        elif stats.get("calls", 0) == stats.get("skipped", 0):
            ET.SubElement(case, "skipped", message=xml_text("; ".join(f"{k} ({v})" for k, v in stats.get("skip_reasons", {}).items())))
        cases.append(case)
    return cases
