"""The migration rehearsal's reports: terminal table, Markdown, HTML and JUnit, from the document that
app/migration/rehearsal.py built ("kind": "migration"). They only read it; nothing here measures.

One row per route x direction: outcome, time, keys/s, the verification (keys, rate, mismatches,
losses); then the exact refusals, the mismatches and losses by key, and the verdict sentences.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.migration import settings
from app.render.html import esc
from app.render.json_report import write_json
from app.render.junit import xml_text
from app.render.markdown import md

OUTCOME_CLASSES = {"works": "ok", "partial": "warn", "refused": "refused", "failed": "fail", "not_run": "warn"}
MAX_LISTED = 20  # mismatches / losses in the table and Markdown
MAX_LISTED_RECORDS = settings.MAX_LISTED_MISMATCHES  # per route in the document (all are counted)
MAX_ERROR = 110
COLUMNS = ("route", "direction", "outcome", "time s", "keys", "keys/s", "verified", "verify keys/s",
           "mismatches", "losses")


# --- shared reading of the document -------------------------------------------------------------------

def _section(document: dict[str, Any]) -> dict[str, Any]:
    return document.get("migration") or {}


def _direction_label(document: dict[str, Any], direction: str) -> str:
    info = _section(document).get("directions", {}).get(direction) or {}
    return f"{info.get('source_label', '?')} -> {info.get('target_label', '?')}"


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{int(round(value)):,}"


def row(document: dict[str, Any], cell: dict[str, Any]) -> list[str]:
    """One matrix cell as display strings, in COLUMNS order."""
    verification = cell.get("verification") or {}
    return [cell["route"], _direction_label(document, cell["direction"]), cell["status"],
            _num(cell.get("duration_s"), 2), _num(cell.get("keys")), _num(cell.get("keys_per_s")),
            _num(verification.get("keys_compared")), _num(verification.get("keys_per_s")),
            _num(cell.get("mismatches")), _num(cell.get("losses"))]


def _short(text: Any, width: int = MAX_ERROR) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"


def _identity_line(name: str, target: dict[str, Any]) -> str:
    ident = target.get("identity") or {}
    return (f"{name:<7} {ident.get('product', '?')} {ident.get('version', '?')}  allocator "
            f"{ident.get('mem_allocator', '?')}  [{target.get('source', '?')}] {target.get('binary', '')}")


def _dataset_line(direction: str, dataset: dict[str, Any]) -> str:
    if dataset.get("error"):
        return f"{direction}: the source could not load the snapshot: {dataset['error']}"
    dbs = ", ".join(f"db{db} {n:,}" for db, n in dataset.get("by_db", {}).items())
    origin = (f"generated ({dataset.get('keys_requested', 0):,} keys asked)" if dataset.get("source") == "generated"
              else f"snapshot {dataset.get('rdb_path')}")
    return f"{direction}: {origin}, {dataset.get('keys', 0):,} keys ({dbs}), functions: " + \
        (", ".join(dataset.get("functions", [])) or "none")


def _records(cell: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return ((cell.get("verification") or {}).get(f"{kind}_list")) or []


def record_line(record: dict[str, Any]) -> str:
    """A mismatch or a loss in one line: where, what differs, and how."""
    where = "functions" if record.get("db") is None else f"db{record['db']}"
    details = "; ".join(record.get("details") or [])
    values = f"source {record.get('source')!s}, target {record.get('target')!s}"
    return f"{where} {record.get('key')!r} ({record.get('type')}) {record.get('what')}: {details or values}"


# --- terminal table -------------------------------------------------------------------------------------

def render_table(document: dict[str, Any]) -> str:
    tool = document.get("tool", {})
    lines = [f"{tool.get('name', 'redis-valkey-compat')} {tool.get('version', '')} — migration rehearsal, "
             f"run {document.get('run_id', '')}"]
    lines += ["  " + _identity_line(name, t) for name, t in document.get("targets", {}).items()]
    lines += [f"  ! {w}" for w in document.get("warnings", [])]
    section = _section(document)
    lines += ["", "data set:"] + ["  " + _dataset_line(d, ds) for d, ds in section.get("dataset", {}).items()]
    matrix = section.get("matrix", [])
    table = [list(COLUMNS)] + [row(document, c) for c in matrix]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    lines.append("")
    for index, cells in enumerate(table):
        lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))))
        if index == 0:
            lines.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
    refusals = [c for c in matrix if c.get("error")]
    if refusals:
        lines += ["", "refusals (exact error line):"]
        lines += [f"  {c['route']} {c['direction']}: {_short(c['error'])}" for c in refusals]
    listed = [(c, r) for c in matrix for r in _records(c, "mismatch")]
    if listed:
        lines += ["", "mismatches:"]
        lines += [f"  {c['route']} {c['direction']}: {_short(record_line(r), 160)}" for c, r in listed[:MAX_LISTED]]
        if len(listed) > MAX_LISTED:
            lines.append(f"  … {len(listed) - MAX_LISTED} more in the JSON report")
    losses = [(c, reason, n) for c in matrix for reason, n in ((c.get("verification") or {}).get("loss_reasons")
                                                              or {}).items()]
    if losses:
        lines += ["", "losses (what the route cannot carry; the JSON and HTML reports list up to "
                  f"{MAX_LISTED_RECORDS} keys per route):"]
        for cell, reason, count in losses:
            examples = [r["key"] for r in _records(cell, "loss") if r.get("reason") == reason][:3]
            lines.append(f"  {cell['route']} {cell['direction']}: {count:,} key(s), {reason}; e.g. "
                         + ", ".join(repr(k) for k in examples))
    lines += ["", "verdict:"] + [f"  {sentence}" for sentence in section.get("verdict", {}).values()]
    if not document.get("completed"):
        lines.append(f"  ! the run did not complete ({document.get('interrupted', 'stopped early')}): "
                     "results are partial")
    return "\n".join(lines)


# --- Markdown -------------------------------------------------------------------------------------------

def render_markdown(document: dict[str, Any], html_name: str = "report.html") -> str:
    section = _section(document)
    servers = " and ".join(f"**{md(name)}** {md(t.get('identity', {}).get('product', '?'))} "
                           f"{md(t.get('identity', {}).get('version', '?'))}"
                           for name, t in document.get("targets", {}).items())
    out = [f"## Migration rehearsal: {servers}", ""]
    out += [f"> {md(w)}" for w in document.get("warnings", [])]
    if not document.get("completed"):
        out.append("> **The run did not complete: results are partial.**")
    out += ["", "**Verdict**", ""] + [f"- {md(s)}" for s in section.get("verdict", {}).values()]
    out += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(md(c) for c in row(document, cell)) + " |" for cell in section.get("matrix", [])]
    refusals = [c for c in section.get("matrix", []) if c.get("error")]
    if refusals:
        out += ["", "**Refusals** (exact error line)", ""]
        out += [f"- {md(c['route'])} {md(c['direction'])}: \"{md(_short(c['error'], 300))}\"" for c in refusals]
    for kind, title in (("mismatch", "Mismatches"), ("loss", "Losses (the target cannot hold these)")):
        listed = [(c, r) for c in section.get("matrix", []) for r in _records(c, kind)]
        if listed:
            out += ["", f"**{title}**", ""]
            out += [f"- {md(c['route'])} {md(c['direction'])}: {md(_short(record_line(r), 300))}"
                    for c, r in listed[:MAX_LISTED]]
    out += ["", "Data set: " + "; ".join(md(_dataset_line(d, ds)) for d, ds in section.get("dataset", {}).items()),
            "", f"Full report: `{md(html_name)}` (HTML), the JSON next to it."]
    return "\n".join(out) + "\n"


# --- HTML -----------------------------------------------------------------------------------------------

STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1f2328}h1{font-size:22px}
h2{border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:28px}table{border-collapse:collapse;margin:8px 0}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}thead th{background:#f6f8fa}
td.num{text-align:right}td.ok{background:#dafbe1}td.warn{background:#fff8c5}td.refused{background:#eaeef2}
td.fail{background:#ffebe9;font-weight:bold}.verdict li{margin:4px 0;font-weight:600}code,pre{font-family:
ui-monospace,Menlo,Consolas,monospace;font-size:12px}pre{white-space:pre-wrap;word-break:break-all;background:#f6f8fa;
padding:6px}.caveat{color:#9a6700}details{margin:6px 0}"""


def _html_table(head: list[str], rows: list[list[str]], classes: list[list[str]] | None = None) -> str:
    body = []
    for index, cells in enumerate(rows):
        klass = classes[index] if classes else [""] * len(cells)
        body.append("<tr>" + "".join(f'<td class="{c}">{v}</td>' for v, c in zip(cells, klass)) + "</tr>")
    return ("<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(body) + "</tbody></table>")


def _cell_details(document: dict[str, Any], cell: dict[str, Any]) -> str:
    verification = cell.get("verification") or {}
    parts = [f"<p>{esc(cell.get('detail', ''))}</p>"]
    if cell.get("error"):
        parts.append(f"<p>error: <code>{esc(cell['error'])}</code></p>")
    if cell.get("server_log"):
        parts.append("<p>server log:</p><pre>" + esc("\n".join(cell["server_log"])) + "</pre>")
    facts = {**{f"phase {k}": v for k, v in (cell.get("phases") or {}).items()}, **(cell.get("counts") or {})}
    if facts:
        parts.append(_html_table(["fact", "value"], [[esc(k), esc(v)] for k, v in facts.items()]))
    parts += [f'<p class="caveat">{esc(n)}</p>' for n in cell.get("notes") or []]
    for kind, title in (("mismatch", "mismatches"), ("loss", "losses")):
        records = _records(cell, kind)
        if records:
            parts.append(f"<p>{esc(title)}:</p>" + _html_table(
                ["db", "key", "type", "what", "source", "target", "details"],
                [[esc(r.get("db")), esc(r.get("key")), esc(r.get("type")), esc(r.get("what")), esc(r.get("source")),
                  esc(r.get("target")), esc("; ".join(r.get("details") or []) + (f" ({r['reason']})"
                                                                                  if r.get("reason") else ""))]
                 for r in records]))
    if verification.get("encodings"):
        parts.append("<p>encodings (source → target, reported, not required to match):</p>" + _html_table(
            ["type", "source", "target", "keys"],
            [[esc(e["type"]), esc(e["source"]), esc(e["target"]), esc(f"{e['keys']:,}")]
             for e in verification["encodings"]]))
    title = f"{cell['route']} — {_direction_label(document, cell['direction'])}: {cell['status']}"
    return f"<details><summary>{esc(title)}</summary>{''.join(parts)}</details>"


def render_html(document: dict[str, Any]) -> str:
    section = _section(document)
    matrix = section.get("matrix", [])
    targets = [[esc(n), esc(t.get("identity", {}).get("product")), esc(t.get("identity", {}).get("version")),
                esc(t.get("identity", {}).get("mem_allocator")), esc(t.get("source")), esc(t.get("binary"))]
               for n, t in document.get("targets", {}).items()]
    rows = [[esc(v) for v in row(document, c)] for c in matrix]
    classes = [["", "", OUTCOME_CLASSES.get(c["status"], "")] + ["num"] * (len(COLUMNS) - 3) for c in matrix]
    datasets = "".join(f"<li>{esc(_dataset_line(d, ds))}</li>" for d, ds in section.get("dataset", {}).items())
    routes = "".join(f"<li><b>{esc(r)}</b>: {esc(t)}</li>" for r, t in section.get("route_descriptions", {}).items())
    incomplete = ("" if document.get("completed") else
                  '<p class="caveat"><b>This run did not complete: results are partial.</b></p>')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Migration rehearsal — {esc(document.get('run_id', ''))}</title><style>{STYLE}</style></head><body>"
            f"<h1>Migration rehearsal: Redis ⇄ Valkey</h1><p>run {esc(document.get('run_id', ''))} · "
            f"{esc(document.get('started_at', ''))} → {esc(document.get('finished_at', ''))} · "
            f"{esc(document.get('duration_s', ''))} s</p>" + incomplete
            + "<h2>Verdict</h2><ul class=\"verdict\">"
            + "".join(f"<li>{esc(s)}</li>" for s in section.get("verdict", {}).values()) + "</ul>"
            + "<h2>Servers</h2>" + _html_table(["name", "product", "version", "allocator", "source", "binary"], targets)
            + "".join(f'<p class="caveat">{esc(w)}</p>' for w in document.get("warnings", []))
            + f"<h2>Data set</h2><ul>{datasets}</ul><h2>Routes</h2><ul>{routes}</ul>"
            + "<h2>Route × direction</h2>" + _html_table(list(COLUMNS), rows, classes)
            + "<h2>Details</h2>" + "".join(_cell_details(document, c) for c in matrix)
            + "</body></html>\n")


# --- JUnit ----------------------------------------------------------------------------------------------

def build_junit(document: dict[str, Any]) -> ET.Element:
    """One test case per route x direction. A route the servers refuse is their behaviour, not a
    failure: skipped, with the exact error. A route that moved data with mismatches, or that the tool
    could not complete, fails. Losses (what the target cannot hold) pass, listed in system-out."""
    root = ET.Element("testsuites", name="redis-valkey-compat.migration")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    by_direction: dict[str, list[dict[str, Any]]] = {}
    for cell in _section(document).get("matrix", []):
        by_direction.setdefault(cell["direction"], []).append(cell)
    for direction, cells in by_direction.items():
        suite = ET.SubElement(root, "testsuite", name=f"migration.{direction}",
                              timestamp=xml_text(document.get("started_at", "")))
        counts = {"tests": 0, "failures": 0, "skipped": 0}
        for cell in cells:
            counts["tests"] += 1
            case = ET.SubElement(suite, "testcase", classname=f"migration.{direction}", name=cell["route"],
                                 time=str(cell.get("duration_s", 0)))
            mismatches = cell.get("mismatches") or 0
            if cell["status"] == "failed" or mismatches:
                counts["failures"] += 1
                message = (f"{mismatches} mismatch(es)" if mismatches else f"failed: {cell.get('detail', '')}")
                failure = ET.SubElement(case, "failure", type="mismatch" if mismatches else "failed",
                                        message=xml_text(_short(message, 300)))
                failure.text = xml_text("\n".join(record_line(r) for r in _records(cell, "mismatch")))
            elif cell["status"] in ("refused", "not_run", "partial"):
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=xml_text(_short(f"{cell['status']}: {cell.get('error')}", 300)))
            out = [cell.get("detail", "")] + [record_line(r) for r in _records(cell, "loss")]
            ET.SubElement(case, "system-out").text = xml_text("\n".join(out))
        for name, value in counts.items():
            suite.set(name, str(value))
            totals[name] += value
    for name, value in totals.items():
        root.set(name, str(value))
    return root


def render_junit(document: dict[str, Any]) -> str:
    root = build_junit(document)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_migration_reports(document: dict[str, Any], paths: dict[str, Path],
                            write_text: Callable[[str, Path], Path]) -> dict[str, Path]:
    """The four reports of a migration document, at the paths the comparison would use."""
    write_text(render_html(document), paths["html"])
    write_text(render_junit(document), paths["junit"])
    write_text(render_markdown(document, html_name=str(paths["html"])), paths["markdown"])
    write_json(document, paths["json"])
    return paths
