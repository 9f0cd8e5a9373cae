"""The HTML report: one self-contained file (inline CSS, a little inline JS, charts as inline SVG).

It reads only the report document; charts are drawn here in Python, so the file opens offline in any
browser. Every value shown may come from a server reply and is escaped.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from app import config
from app.render import sections
from app.findings import (ALLOCATOR, CLASS_LABELS, DOCUMENTED, NEW, NOISE, attention_order, is_documented,
                          is_significant, record_class, summarize)

# Longest value shown in a table cell; the JSON report has the rest.
MAX_CELL_CHARS = 300
# The baseline is red, its noise control a lighter red; candidates take the palette in order.
ROLE_COLOURS = {config.BASELINE_ROLE: "#d6362b", config.CONTROL_ROLE: "#f0a39c"}
CANDIDATE_COLOURS = ("#2f62d0", "#238636", "#9a6700", "#8250df", "#bf3989", "#1b7c83", "#953800")
FALLBACK_COLOURS = CANDIDATE_COLOURS
STATUS_CLASSES = {"OK": "ok", "WARN": "warn", "FAIL": "fail"}

# Where the charts find their numbers (see _payload_series / _eviction_series).
PAYLOAD_SCENARIO = "large_payloads"
EVICTION_SCENARIO = "memory_eviction"
LATENCY_MEASURES = {"set": "set_ms", "get": "get_ms"}
MEMORY_MEASURE = "memory_usage"
EVICTION_SAMPLES = "memory_samples"
MAXMEMORY_KEYS = ("maxmemory", "maxmemory_bytes")
MEMORY_CHARTS = (
    (MEMORY_MEASURE, "MEMORY USAGE by payload size", "MEMORY USAGE of one key holding the payload. Log scales."),
    ("overhead_bytes", "Memory beyond the payload by payload size",
     "MEMORY USAGE minus the payload's length: headers and allocator rounding. Log scales."),
)
# Powers of 4 from 16 B to 16 MiB: readable ticks on a log axis of bytes.
MEMORY_TICK_VALUES = [float(4 ** e) for e in range(2, 13)]
SIZE_LABEL = re.compile(r"^(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)$", re.IGNORECASE)
SIZE_UNITS = {"b": 1, "kb": config.KIB, "kib": config.KIB, "mb": config.MIB, "mib": config.MIB,
              "gb": 1024 * config.MIB, "gib": 1024 * config.MIB}


# --- values ----------------------------------------------------------------------------------------

def esc(value: Any) -> str:
    return html.escape(printable(str(value)), quote=True)


def printable(text: str) -> str:
    """Control characters (a binary reply) shown as escapes rather than dropped by the browser."""
    return "".join(c if c >= " " or c in "\n\t" else f"\\x{ord(c):02x}" for c in text)


def show(value: Any, limit: int = MAX_CELL_CHARS) -> str:
    """A reply as a reader should see it: JSON form (so "1" and 1 differ), errors marked, cut if long."""
    if isinstance(value, dict) and set(value) == {"error"}:
        text = f"(error) {value['error']}"
    elif value is None:
        text = "(nil)"
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > limit:
        text = text[:limit] + f"… ({len(text)} chars)"
    return text


def number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"


def human_bytes(value: float) -> str:
    for unit, size in (("MB", config.MIB), ("KB", config.KIB)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.0f}B"


def size_bytes(label: str) -> int | None:
    """'32KB' -> 32768, the payload label's size; None for anything that is not a size."""
    if label in config.PAYLOAD_SIZES:
        return config.PAYLOAD_SIZES[label]
    match = SIZE_LABEL.match(label.strip())
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).lower()]) if match else None


def anchor(scenario: str) -> str:
    return "scenario-" + re.sub(r"[^A-Za-z0-9_-]", "-", scenario)


# --- charts as inline SVG ----------------------------------------------------------------------------

@dataclass
class Series:
    """One server's line: points (x, y) with an optional min..max range per point."""

    role: str  # the target's name
    points: list[tuple[float, float]] = field(default_factory=list)
    ranges: list[tuple[float, float] | None] = field(default_factory=list)
    colour: str = ""


@dataclass
class Axis:
    lo: float
    hi: float
    log: bool = False

    def scale(self, value: float, start: float, end: float) -> float:
        lo, hi, v = self.lo, self.hi, value
        if self.log:
            lo, hi, v = math.log10(lo), math.log10(hi), math.log10(max(value, self.lo))
        return start + (v - lo) / ((hi - lo) or 1.0) * (end - start)

    def ticks(self) -> list[float]:
        if self.log:
            return [10.0 ** e for e in range(math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi)) + 1)
                    if self.lo <= 10.0 ** e <= self.hi]
        step = nice_step((self.hi - self.lo) / 5)
        first = math.ceil(self.lo / step) * step
        return [first + i * step for i in range(int((self.hi - first) / step + 1e-9) + 1)]


def nice_step(raw: float) -> float:
    """A 1, 2 or 5 times a power of ten step near `raw`."""
    if raw <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def axis_for(values: list[float], log: bool, floor_zero: bool = True) -> Axis:
    if log:
        positive = [v for v in values if v > 0] or [1.0]
        lo, hi = min(positive), max(positive)
        return Axis(10.0 ** math.floor(math.log10(lo)), 10.0 ** math.ceil(math.log10(hi)) if hi > lo else lo * 10, True)
    hi = max(values or [1.0])
    lo = 0.0 if floor_zero else min(values or [0.0])
    step = nice_step((hi - lo) / 5 or 1.0)
    return Axis(lo, math.ceil(hi / step) * step if hi > lo else lo + step)


W, H = 640, 320
DENSE_POINTS = 30  # more points than this per line get smaller dots
LEFT, RIGHT, TOP, BOTTOM = 78, 18, 44, 52


def line_chart(chart_id: str, title: str, series: list[Series], *, x_label: str, y_label: str,
               x_log: bool = False, y_log: bool = False, x_ticks: list[tuple[float, str]] | None = None,
               y_ticks: list[tuple[float, str]] | None = None, x_format: Any = number, y_format: Any = number,
               limits: list[tuple[float, str]] | None = None) -> str:
    """An SVG line chart: one path and one circle per point for each server, optional limit lines.

    Stable hooks for tests and readers: svg#chart-<id>.chart, path.series[data-role], circle.point,
    line.limit."""
    limits = limits or []
    xs = [x for s in series for x, _ in s.points] + [t for t, _ in x_ticks or []]
    ys = [y for s in series for _, y in s.points] + [v for r in (s.ranges for s in series) for p in r if p
                                                      for v in p] + [v for v, _ in limits]
    xa, ya = axis_for(xs, x_log), axis_for(ys, y_log)
    px = lambda v: xa.scale(v, LEFT, W - RIGHT)  # noqa: E731 - local projection helpers
    py = lambda v: ya.scale(v, H - BOTTOM, TOP)  # noqa: E731
    parts = [f'<svg id="chart-{esc(chart_id)}" class="chart" data-chart="{esc(chart_id)}" '
             f'data-series="{len(series)}" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
             f'xmlns="http://www.w3.org/2000/svg" aria-label="{esc(title)}">',
             f'<title>{esc(title)}</title>',
             f'<text class="chart-title" x="{LEFT}" y="18">{esc(title)}</text>']
    for tick, label in [t for t in y_ticks or [] if ya.lo <= t[0] <= ya.hi] or [(t, y_format(t)) for t in ya.ticks()]:
        y = py(tick)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{esc(label)}</text>')
    for tick, label in x_ticks or [(t, x_format(t)) for t in xa.ticks()]:
        x = px(tick)
        parts.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{H - BOTTOM}"/>'
                     f'<text class="tick" x="{x:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{esc(label)}</text>')
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{W - RIGHT}" y1="{H - BOTTOM}" y2="{H - BOTTOM}"/>'
                 f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{H - BOTTOM}"/>'
                 f'<text class="axis-label" x="{(LEFT + W - RIGHT) / 2}" y="{H - 12}" '
                 f'text-anchor="middle">{esc(x_label)}</text>'
                 f'<text class="axis-label" transform="translate(16 {(TOP + H - BOTTOM) / 2}) rotate(-90)" '
                 f'text-anchor="middle">{esc(y_label)}</text>')
    for value, label in limits:
        y = py(value)
        parts.append(f'<line class="limit" id="chart-{esc(chart_id)}-limit" x1="{LEFT}" x2="{W - RIGHT}" '
                     f'y1="{y:.1f}" y2="{y:.1f}" data-value="{value}"/>'
                     f'<text class="limit-label" x="{W - RIGHT - 4}" y="{y - 5:.1f}" '
                     f'text-anchor="end">{esc(label)}</text>')
    for index, line in enumerate(series):
        parts.extend(_series_svg(line, _colour(line, index), px, py, x_format, y_format))
    parts.append(_legend(series))
    parts.append("</svg>")
    return "".join(parts)


def _colour(line: Series, index: int) -> str:
    return line.colour or FALLBACK_COLOURS[index % len(FALLBACK_COLOURS)]


def target_colours(document: dict[str, Any]) -> dict[str, str]:
    """A colour per target: the baseline red, its control light red, candidates from the palette."""
    colours, candidates = {}, 0
    for name, target in document.get("targets", {}).items():
        role = target.get("role", config.CANDIDATE_ROLE)
        if role in ROLE_COLOURS:
            colours[name] = ROLE_COLOURS[role]
        else:
            colours[name] = CANDIDATE_COLOURS[candidates % len(CANDIDATE_COLOURS)]
            candidates += 1
    return colours


def _series_svg(line: Series, colour: str, px: Any, py: Any, x_format: Any, y_format: Any) -> Iterator[str]:
    role = esc(line.role)
    if not line.points:
        return
    radius = 3.5 if len(line.points) <= DENSE_POINTS else 2
    d = " ".join(f"{'M' if i == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for i, (x, y) in enumerate(line.points))
    yield f'<path class="series series-{role}" data-role="{role}" d="{d}" stroke="{colour}"/>'
    for (x, y), span in zip(line.points, line.ranges or [None] * len(line.points)):
        if span:
            yield (f'<line class="range range-{role}" x1="{px(x):.1f}" x2="{px(x):.1f}" '
                   f'y1="{py(span[0]):.1f}" y2="{py(span[1]):.1f}" stroke="{colour}"/>')
        tip = f"{line.role}: {x_format(x)} → {y_format(y)}" + (
            f" (min {y_format(span[0])}, max {y_format(span[1])})" if span else "")
        yield (f'<circle class="point point-{role}" data-role="{role}" data-x="{x}" data-y="{y}" '
               f'cx="{px(x):.1f}" cy="{py(y):.1f}" r="{radius}" fill="{colour}"><title>{esc(tip)}</title></circle>')


def _legend(series: list[Series]) -> str:
    items = []
    for index, line in enumerate(series):
        x = W - RIGHT - (len(series) - index) * 90
        items.append(f'<rect x="{x}" y="{TOP - 16}" width="14" height="4" fill="{_colour(line, index)}"/>'
                     f'<text class="legend-label" x="{x + 18}" y="{TOP - 11}">{esc(line.role)}</text>')
    return f'<g class="legend">{"".join(items)}</g>'


# --- finding the charts' numbers in the document -------------------------------------------------------

def leaves(tree: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, value) for every non-dict value of a metrics tree, in order; an error reply is a leaf."""
    if isinstance(tree, dict) and not (set(tree) == {"error"}):
        for key, value in tree.items():
            yield from leaves(value, (*path, str(key)))
    else:
        yield path, tree


def _metrics(document: dict[str, Any], role: str, scenario: str) -> dict[str, Any]:
    res = document.get("results", {}).get(role, {}).get(scenario) or {}
    metrics = res.get("metrics")
    return metrics if isinstance(metrics, dict) else {}


def _payload_series(document: dict[str, Any], measure: str) -> list[Series]:
    """Per server, `measure` at each payload size: a leaf whose path holds a size label and the measure
    name, with its "<measure>_samples" sibling (when there is one) as the min..max range."""
    out = []
    for role in document.get("targets", {}):
        metrics = _metrics(document, role, PAYLOAD_SCENARIO)
        flat = dict(leaves(metrics))
        points: dict[int, tuple[float, tuple[float, float] | None]] = {}
        for path, value in flat.items():
            sizes = [size_bytes(p) for p in path if size_bytes(p)]
            if measure not in path or not sizes or not _is_number(value) or sizes[0] in points:
                continue
            samples = flat.get((*path[:-1], path[-1] + "_samples")) if path[-1] == measure else None
            span = (min(samples), max(samples)) if _numbers(samples) else None
            points[sizes[0]] = (float(value), span)
        if points:
            ordered = sorted(points.items())
            out.append(Series(role, [(x, y) for x, (y, _) in ordered], [s for _, (_, s) in ordered],
                              target_colours(document).get(role, "")))
    return out


def _eviction_series(document: dict[str, Any]) -> tuple[list[Series], dict[str, float]]:
    """Per server, used_memory (MiB) against keys written during the eviction fill, and its maxmemory."""
    out, limits = [], {}
    for role in document.get("targets", {}):
        flat = list(leaves(_metrics(document, role, EVICTION_SCENARIO)))
        samples = next((v for p, v in flat if p and p[-1] == EVICTION_SAMPLES and isinstance(v, list)), None)
        points = [(float(s["keys_written"]), s["used_memory"] / config.MIB) for s in samples or []
                  if isinstance(s, dict) and _is_number(s.get("keys_written")) and _is_number(s.get("used_memory"))]
        if points:
            out.append(Series(role, points, colour=target_colours(document).get(role, "")))
        limit = next((v for p, v in flat if p and p[-1] in MAXMEMORY_KEYS and _is_number(v) and v > 0), None)
        if limit is not None:
            limits[role] = limit / config.MIB
    return out, limits


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers(values: Any) -> bool:
    return isinstance(values, list) and bool(values) and all(_is_number(v) for v in values)


def charts(document: dict[str, Any]) -> list[tuple[str, str]]:
    """Every chart the document has numbers for, as (SVG, caption); none when the scenarios did not run."""
    drawn = []
    size_ticks = [(float(b), label) for label, b in config.PAYLOAD_SIZES.items()]
    ms = lambda v: f"{v:g} ms"  # noqa: E731
    for op, measure in LATENCY_MEASURES.items():
        series = _payload_series(document, measure)
        if series:
            drawn.append((line_chart(f"latency-{op}", f"{op.upper()} latency by payload size", series,
                                     x_label="payload size", y_label=f"{op.upper()} round trip (ms)", x_log=True,
                                     y_log=True, x_ticks=size_ticks, x_format=human_bytes, y_format=ms),
                          "Median of the repetitions; the bar spans their min..max. Log scales."))
    for measure, title, caption in MEMORY_CHARTS:
        series = _payload_series(document, measure)
        if series:
            drawn.append((line_chart(measure.replace("_", "-"), title, series, x_label="payload size",
                                     y_label="bytes", x_log=True, y_log=True, x_ticks=size_ticks,
                                     y_ticks=[(t, human_bytes(t)) for t in MEMORY_TICK_VALUES],
                                     x_format=human_bytes, y_format=human_bytes), caption))
    series, limits = _eviction_series(document)
    if series:
        lines = [(v, f"maxmemory {v:g} MB ({', '.join(r for r, x in limits.items() if x == v)})")
                 for v in sorted(set(limits.values()))]
        drawn.append((line_chart("eviction", "used_memory during the eviction fill", series,
                                 x_label="keys written", y_label="used_memory (MB)", y_format=lambda v: f"{v:.4g} MB",
                                 limits=lines),
                      "INFO used_memory after each write; the dashed line is the server's maxmemory."
                      + ("" if lines else " (The scenario recorded no maxmemory.)")))
    return drawn


# --- page sections -----------------------------------------------------------------------------------

def _names(document: dict[str, Any]) -> list[str]:
    return list(document.get("targets", {})) or list(document.get("results", {}))


def _identity_section(document: dict[str, Any]) -> str:
    rows = []
    for name, target in document.get("targets", {}).items():
        ident = target.get("identity") or {}
        runs = "all" if target.get("scenarios") is None else ", ".join(target["scenarios"])
        rows.append(f'<tr class="target" data-role="{esc(name)}" data-target-role="{esc(target.get("role", ""))}">'
                    f'<th>{esc(name)}</th><td>{esc(target.get("role", ""))}</td>'
                    f'<td>{esc(ident.get("product", "?"))}</td>'
                    f'<td>{esc(ident.get("version", "?"))}</td><td>{esc(ident.get("mem_allocator", "?"))}</td>'
                    f'<td>{esc(target.get("source", ""))}</td><td>{esc(target.get("url", ""))}</td>'
                    f'<td>{esc(target.get("binary") or "")}</td><td>{esc(runs)}</td></tr>')
    warnings = "".join(f'<li class="caveat">{esc(w)}</li>' for w in document.get("warnings", []))
    return ('<section id="servers"><h2>Servers</h2><table class="servers"><thead><tr><th>target</th><th>role</th>'
            '<th>product</th><th>version</th><th>allocator</th><th>source</th><th>URL</th><th>binary</th>'
            '<th>scenarios</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>"
            + (f'<ul class="caveats">{warnings}</ul>' if warnings else '<p>No version or allocator caveats.</p>')
            + "</section>")


def _status_cell(result: dict[str, Any] | None) -> str:
    if not result:
        return '<td class="status none">not run</td>'
    status = str(result.get("status", "?"))
    return (f'<td class="status {STATUS_CLASSES.get(status, "none")}" title="{esc(result.get("detail", ""))}">'
            f'{esc(status)}</td>')


def _summary_section(document: dict[str, Any], summary: dict[str, Any]) -> str:
    names = _names(document)
    records = summary.get("records", {})
    counts = (f'<div class="counts"><div class="count attention"><b id="count-new">{summary[NEW]}</b>'
              f'NEW findings (undocumented)</div>'
              f'<div class="count"><b>{summary[DOCUMENTED]}</b>documented findings</div>'
              f'<div class="count"><b>{summary[ALLOCATOR]}</b>allocator differs</div>'
              f'<div class="count"><b>{summary[NOISE]}</b>within noise</div>'
              f'<div class="count"><b>{summary["findings"]}</b>findings from {records.get("total", 0)} '
              f'records</div></div>')
    status_rows = []
    for scenario in document.get("scenarios", []):
        per = summary["by_scenario"].get(scenario, {})
        cells = "".join(_status_cell(document.get("results", {}).get(n, {}).get(scenario)) for n in names)
        status_rows.append(f'<tr><th><a href="#{anchor(scenario)}">{esc(scenario)}</a></th>{cells}'
                           f'<td class="num">{per.get("findings", 0)}</td>'
                           f'<td class="num attention">{per.get(NEW, 0)}</td>'
                           f'<td class="num">{per.get(DOCUMENTED, 0)}</td><td class="num">{per.get(ALLOCATOR, 0)}</td>'
                           f'<td class="num">{per.get(NOISE, 0)}</td><td class="num">{per.get("records", 0)}</td></tr>')
    kind_rows = "".join(
        f'<tr><th>{esc(kind)}</th><td class="num attention">{c[NEW]}</td><td class="num">{c[DOCUMENTED]}</td>'
        f'<td class="num">{c[ALLOCATOR]}</td><td class="num">{c[NOISE]}</td><td class="num">{c["findings"]}</td></tr>'
        for kind, c in summary["by_kind"].items())
    return ('<section id="summary"><h2>Summary</h2>' + counts
            + '<p class="rule">A finding is one underlying difference with every record that shows it; '
              'records are in each finding\'s detail and in report.json.</p>'
            + f'<p class="rule">Timings: {esc(summary["noise_rule"])}.</p>'
            + '<h3>Scenarios</h3><table class="statuses"><thead><tr><th>scenario</th>'
            + "".join(f"<th>{esc(n)}</th>" for n in names)
            + '<th>findings</th><th>NEW</th><th>documented</th><th>allocator differs</th><th>within noise</th>'
              '<th>records</th></tr></thead><tbody>' + "".join(status_rows) + "</tbody></table>"
            + '<h3>Findings by kind</h3><table class="kinds"><thead><tr><th>kind</th><th>NEW</th>'
            + '<th>documented</th><th>allocator differs</th><th>within noise</th><th>findings</th></tr></thead><tbody>'
            + (kind_rows or '<tr><td colspan="6">no differences</td></tr>') + "</tbody></table>"
            + _not_compared_list(document) + "</section>")


def _not_compared_list(document: dict[str, Any]) -> str:
    skipped = document.get("not_compared") or []
    if not skipped:
        return ""
    items = "".join(f'<li class="not-compared">{esc(s["scenario"])} against {esc(s["target"])}: {esc(s["reason"])}'
                    "</li>" for s in skipped)
    return (f'<h3>Not compared ({len(skipped)})</h3><p>A scenario that FAILed on a server says nothing about the '
            f'difference between the servers.</p><ul>{items}</ul>')


def _findings_section(document: dict[str, Any]) -> str:
    """Every finding, NEW first, each with the records that show it: what a migrating team reads first."""
    findings = document.get("findings", [])
    records = document.get("differences", [])
    by_finding: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        by_finding.setdefault((record.get("target", ""), record.get("finding", "")), []).append(record)
    new = [f for f in findings if f["class"] == NEW]
    rows = []
    for finding in findings:
        mine = by_finding.get((finding["target"], finding["id"]), [])
        names = [finding["baseline"], finding["target"]]
        detail = (f'<details><summary>{finding["records"]} record{"s" if finding["records"] != 1 else ""}</summary>'
                  + _difference_table(mine, names, with_scenario=True) + "</details>")
        source = (f'<br><small>{esc(finding.get("source") or "")}</small>' if finding.get("documented") else "")
        why = f'<br><small>{esc(finding["why"])}</small>' if finding.get("why") else ""
        rows.append(f'<tr class="finding class-{esc(finding["class"])}" data-finding="{esc(finding["id"])}" '
                    f'data-class="{esc(finding["class"])}"><td><span class="mark {esc(finding["class"])}">'
                    f'{esc(CLASS_LABELS[finding["class"]])}</span></td><td>{esc(finding["id"])}</td>'
                    f'<td>{esc(finding["target"])}</td><td>{esc(finding["title"])}{source}{why}</td>'
                    f'<td>{esc(", ".join(finding["scenarios"]))}</td><td>{esc(", ".join(finding["kinds"]))}</td>'
                    f'<td class="records">{detail}</td></tr>')
    return (f'<section id="attention"><h2>Findings: {len(new)} NEW, read these first</h2>'
            + ('<table class="findings" id="findings-table"><thead><tr><th>class</th><th>id</th><th>target</th>'
               '<th>finding</th><th>scenarios</th><th>kinds</th><th>records</th></tr></thead><tbody>'
               + "".join(rows) + "</tbody></table>" if rows
               else "<p>None: no difference was found.</p>")
            + "</section>")


KIND_COLOURS = {"reply": "#ddf4ff", "error_text": "#fff1e5", "availability": "#fbefff", "config_default": "#f6f8fa",
                "encoding": "#dafbe1", "memory": "#fff8c5", "eviction": "#fff8c5", "ordering": "#ffebe9",
                "timing": "#eaeef2", "status": "#ffebe9"}
MATRIX_MARKS = {NEW: "NEW", DOCUMENTED: "documented", ALLOCATOR: "allocator", NOISE: "noise"}


def _matrix_section(document: dict[str, Any]) -> str:
    """Every differing place, its value on every target; each cell coloured by the kind of difference."""
    matrix = document.get("matrix")
    if not matrix:
        return ""
    names = matrix["targets"]
    head = "<th>scenario</th><th>metric</th><th>kind</th>" + "".join(
        f'<th data-target="{esc(n)}">{esc(n)}<br><small>{esc(_version_of(document, n))}</small></th>' for n in names)
    rows = []
    for row in matrix["rows"]:
        cells = []
        for name in names:
            value = row["values"].get(name, "—")
            if name == matrix["baseline"]:
                cells.append(f'<td class="value" data-target="{esc(name)}">{esc(show(value))}</td>')
            elif value == {"same_as_baseline": True}:
                cells.append(f'<td class="value same" data-target="{esc(name)}">= {esc(matrix["baseline"])}</td>')
            else:
                cls = row["classes"].get(name, "")
                colour = KIND_COLOURS.get(row["kind"], "#ffffff") if name in row["classes"] else "#ffffff"
                cells.append(f'<td class="value cls-{esc(cls)}" data-target="{esc(name)}" style="background:{colour}">'
                             f'<span class="mark {esc(cls)}">{esc(MATRIX_MARKS.get(cls, ""))}</span> '
                             f'{esc(show(value))}</td>')
        first = min((row["classes"][n] for n in row["classes"]), key=lambda c: list(MATRIX_MARKS).index(c))
        rows.append(f'<tr class="matrix-row class-{esc(first)}" data-kind="{esc(row["kind"])}"><td>{esc(row["scenario"])}</td>'
                    f'<td class="path">{esc(row["path"])}</td><td>{esc(row["kind"])}</td>{"".join(cells)}</tr>')
    legend = " ".join(f'<span class="kind-key" style="background:{c}">{esc(k)}</span>' for k, c in KIND_COLOURS.items())
    changes = "".join(
        f'<li><b>{esc(c["from"])} ({esc(c["from_version"])}) → {esc(c["to"])} ({esc(c["to_version"])})</b>: '
        f'{len(c["appear"])} appear, {len(c["disappear"])} disappear<ul>'
        + "".join(f'<li class="appear">+ {esc(i["id"])} {esc(i["title"])}</li>' for i in c["appear"])
        + "".join(f'<li class="disappear">− {esc(i["id"])} {esc(i["title"])}</li>' for i in c["disappear"])
        + "</ul></li>" for c in matrix.get("changes", []))
    kinds = sorted({k for per in matrix.get("kinds_by_target", {}).values() for k in per})
    by_target = "".join(
        f'<tr data-target="{esc(t)}"><th>{esc(t)}</th>'
        + "".join(f'<td class="num">{per.get(k, {}).get("findings", 0)}'
                  f'{" (" + str(per[k]["new"]) + " NEW)" if per.get(k, {}).get("new") else ""}</td>' for k in kinds)
        + "</tr>" for t, per in matrix.get("kinds_by_target", {}).items())
    per_target = (f'<h3>Findings per target, by kind</h3><table class="kinds-by-target"><thead><tr><th>target</th>'
                  + "".join(f"<th>{esc(k)}</th>" for k in kinds) + f"</tr></thead><tbody>{by_target}</tbody></table>"
                  if by_target else "")
    return (f'<section id="matrix"><h2>Matrix: {len(matrix["rows"])} places across {len(names)} targets</h2>'
            + per_target
            + (f'<h3>What changed between consecutive versions</h3><ul class="changes">{changes}</ul>' if changes else "")
            + f'<p>Cells are coloured by kind: {legend}; "= {esc(matrix["baseline"])}": the same as the baseline.</p>'
            + f'<table class="matrix"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></section>')


def _version_of(document: dict[str, Any], name: str) -> str:
    ident = document.get("targets", {}).get(name, {}).get("identity") or {}
    return f'{ident.get("product", "?")} {ident.get("version", "?")} {ident.get("mem_allocator", "")}'


def _since_section(document: dict[str, Any]) -> str:
    since = document.get("since_last")
    if not since:
        return ""
    c = since["counts"]
    items = "".join(f'<li class="since-{label}">{label}: {esc(i["target"])} {esc(i["id"])} {esc(i["title"])} '
                    f'({esc(CLASS_LABELS[i["class"]])})</li>' for label in ("new", "changed", "gone")
                    for i in since[label])
    return (f'<section id="since"><h2>Since run {esc(since["against_run"])}</h2><p>{c["new"]} new, {c["changed"]} '
            f'changed, {c["unchanged"]} unchanged, {c["gone"]} gone (against {esc(since["against"])}).</p>'
            f'<ul>{items}</ul></section>')


def _delta(record: dict[str, Any]) -> str:
    if "delta" not in record:
        return ""
    rel = record.get("relative")
    return esc(number(record["delta"]) + (f" ({rel:+.1%})" if isinstance(rel, (int, float)) else ""))


def _documentation(record: dict[str, Any]) -> str:
    if not is_documented(record):
        return '<span class="undocumented">undocumented</span>'
    return (f'<span class="documented">{esc(record.get("catalogue_id", "documented"))}</span>'
            f'<br><small>{esc(record.get("source", ""))}</small>')


def _note(record: dict[str, Any]) -> str:
    note = esc(record.get("significance", ""))
    if record.get("spread"):  # the repetitions behind a measured number
        note += "<br><small>" + esc(", ".join(f"{r} {sp['min']:g}..{sp['max']:g} (n={sp['n']})"
                                               for r, sp in record["spread"].items())) + "</small>"
    if record.get("caveat"):  # the full text is in the caveats at the top; a marker with it as a tooltip here
        note += f'<br><small class="caveat" title="{esc(record["caveat"])}">⚠ allocators differ</small>'
    return note


def _difference_table(records: list[dict[str, Any]], names: list[str], *, with_scenario: bool = False,
                      table_id: str = "") -> str:
    """One row per record; columns for the given targets (a record has values for its baseline and target)."""
    head = ("<th>scenario</th>" if with_scenario else "") + "<th>metric</th><th>kind</th>" + "".join(
        f"<th>{esc(n)}</th>" for n in names) + "<th>delta</th><th>significance</th><th>documented</th>"
    rows = []
    for rec in records:
        cls = record_class(rec)
        classes = ["difference", "is-significant" if is_significant(rec) else "is-noise",
                   "is-documented" if is_documented(rec) else "is-undocumented", f"class-{cls}"]
        values = rec.get("values", {})
        scenario = (f'<td><a href="#{anchor(rec.get("scenario", ""))}">{esc(rec.get("scenario", ""))}</a></td>'
                    if with_scenario else "")
        rows.append(f'<tr class="{" ".join(classes)}" data-kind="{esc(rec.get("kind", ""))}" '
                    f'data-target="{esc(rec.get("target", ""))}">{scenario}'
                    f'<td class="path">{esc(rec.get("path", ""))}</td><td>{esc(rec.get("kind", ""))}</td>'
                    + "".join(f'<td class="value">{esc(_value_text(rec, n, values))}</td>' for n in names)
                    + f'<td class="num">{_delta(rec)}</td><td>{_note(rec)}</td><td>{_documentation(rec)}</td></tr>')
    ident = f' id="{esc(table_id)}"' if table_id else ""
    return (f'<table class="differences"{ident}><thead><tr>{head}</tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")


def _value_text(record: dict[str, Any], name: str, values: dict[str, Any]) -> str:
    if record.get("missing_on") == name:
        return "(absent)"
    if name not in values:
        return "—"
    return show(values[name])


def _metrics_table(document: dict[str, Any], scenario: str, names: list[str], differing: set[str]) -> str:
    """Every metric of the scenario side by side; rows that differ are marked."""
    flat = {name: dict(leaves(_metrics(document, name, scenario))) for name in names}
    paths: list[tuple[str, ...]] = []
    for name in names:
        paths.extend(p for p in flat[name] if p not in paths)
    rows = []
    for path in paths:
        dotted = ".".join(path)
        mark = ' class="differs"' if dotted in differing else ""
        rows.append(f"<tr{mark}><td class=\"path\">{esc(dotted)}</td>"
                    + "".join(f'<td class="value">{esc(show(flat[n].get(path)) if path in flat[n] else "—")}</td>'
                              for n in names) + "</tr>")
    if not rows:
        return "<p>No metrics recorded.</p>"
    return (f'<details><summary>All {len(rows)} metrics side by side</summary><table class="metrics"><thead><tr>'
            '<th>metric</th>' + "".join(f"<th>{esc(n)}</th>" for n in names) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></details>")


def _scenario_section(document: dict[str, Any], scenario: str, names: list[str]) -> str:
    records = attention_order([d for d in document.get("differences", []) if d.get("scenario") == scenario])
    ran = [n for n in names if scenario in document.get("results", {}).get(n, {})]
    results = {n: document.get("results", {}).get(n, {}).get(scenario) for n in ran}
    status = "".join(
        f'<tr><th>{esc(n)}</th>{_status_cell(res)}<td class="detail">{esc((res or {}).get("detail", ""))}</td>'
        f'<td class="num">{esc((res or {}).get("duration_s", ""))}</td></tr>' for n, res in results.items())
    body = (f'<table class="results"><thead><tr><th>server</th><th>status</th><th>detail</th><th>seconds</th>'
            f'</tr></thead><tbody>{status}</tbody></table>')
    body += (f"<h3>{len(records)} differing records</h3>" + _difference_table(records, ran) if records
             else "<p>No differences.</p>")
    body += _metrics_table(document, scenario, ran, {d.get("path", "") for d in records})
    return f'<section class="scenario" id="{anchor(scenario)}"><h2>{esc(scenario)}</h2>{body}</section>'


def _charts_section(document: dict[str, Any]) -> str:
    drawn = charts(document)
    if not drawn:
        return ('<section id="charts"><h2>Charts</h2><p>No chart data: the large_payloads and memory_eviction '
                'scenarios did not run or recorded no numbers.</p></section>')
    return ('<section id="charts"><h2>Charts</h2><div class="charts">'
            + "".join(f'<figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>' for svg, caption in drawn)
            + "</div></section>")


STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;background:#fff}
header{background:#24292f;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#d0d7de}main{padding:8px 24px 40px;max-width:1400px}
h2{border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
thead th{background:#f6f8fa}td.value,td.path{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;
white-space:pre-wrap;word-break:break-all;max-width:420px}td.num{text-align:right}
.status.ok{background:#dafbe1}.status.warn{background:#fff8c5}.status.fail{background:#ffebe9;font-weight:bold}
.counts{display:flex;gap:12px;flex-wrap:wrap}.count{border:1px solid #d0d7de;border-radius:6px;padding:8px 14px;min-width:110px}
.count b{display:block;font-size:24px}.count.attention{border-color:#cf222e;background:#ffebe9}
td.attention{color:#cf222e;font-weight:bold}.caveat{color:#9a6700}.caveats li{margin:2px 0}
.undocumented{color:#cf222e;font-weight:600}.mark{font-weight:600;white-space:nowrap}.mark.new{color:#cf222e}
.mark.documented{color:#1a7f37}.mark.allocator{color:#9a6700}.mark.noise{color:#57606a}td.records details{min-width:120px}.documented{color:#1a7f37;font-weight:600}
tr.is-noise{color:#57606a}tr.is-noise .undocumented{color:#57606a;font-weight:normal}td.path{min-width:180px}td.value{min-width:70px}tr.differs td{background:#fff8c5}
.charts{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0;border:1px solid #d0d7de;border-radius:6px;padding:6px;flex:1 1 520px;max-width:660px}figcaption{color:#57606a;font-size:12px;max-width:640px}
svg.chart{width:100%;height:auto}svg.chart .grid{stroke:#eaeef2}svg.chart .axis{stroke:#57606a}svg.chart text{font-size:11px;fill:#57606a}
svg.chart .chart-title{font-size:13px;fill:#1f2328;font-weight:600}svg.chart .series{fill:none;stroke-width:2.5}
svg.chart .range{stroke-width:1.5}svg.chart .limit{stroke:#cf222e;stroke-dasharray:6 4;stroke-width:1.5}
svg.chart .limit-label{fill:#cf222e}label.filter{display:block;margin:8px 0}
.hidden{display:none}td.same{color:#57606a}.kind-key{padding:0 6px;border:1px solid #d0d7de;border-radius:4px}
li.appear{color:#1a7f37}li.disappear{color:#cf222e}
"""

# Marks each chart that really has drawn marks (non-empty layout box), so a headless browser can tell.
SCRIPT = """
(function(){
  var drawn=0;
  document.querySelectorAll('svg.chart').forEach(function(svg){
    var marks=svg.querySelectorAll('path.series, circle.point');
    var ok=marks.length>0;
    marks.forEach(function(m){var b=m.getBBox(); if(!(b.width>0||b.height>0)){ok=false;}});
    svg.setAttribute('data-drawn', ok?'yes':'no'); if(ok){drawn++;}
  });
  document.body.setAttribute('data-charts-drawn', String(drawn));
  var box=document.getElementById('only-undocumented');
  if(box){box.addEventListener('change',function(){
    document.querySelectorAll('tr.difference').forEach(function(tr){
      var hide=box.checked&&!tr.classList.contains('class-new');
      tr.classList.toggle('hidden',hide);});
    document.querySelectorAll('tr.finding').forEach(function(tr){
      tr.classList.toggle('hidden',box.checked&&!tr.classList.contains('class-new'));});});}
})();
"""


def render_html(document: dict[str, Any]) -> str:
    """The whole report page as one string."""
    summary = document.get("summary") or summarize(document.get("differences", []))
    names = _names(document)
    tool = document.get("tool", {})
    idents = " vs ".join(esc(f'{ident.get("product", role)} {ident.get("version", "?")}') for role, ident in
                         ((r, t.get("identity") or {}) for r, t in document.get("targets", {}).items()))
    incomplete = ("" if document.get("completed") else
                  '<p class="caveat"><b>This run did not complete: results are partial.</b></p>')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{esc(tool.get('name', 'redis-valkey-compat'))} — {idents}</title>"
            f"<style>{STYLE}</style></head><body data-charts-drawn=\"0\">"
            f"<header><h1>Redis → Valkey compatibility: {idents}</h1>"
            f"<p>run {esc(document.get('run_id', ''))} · {esc(document.get('started_at', ''))} → "
            f"{esc(document.get('finished_at', ''))} · {esc(document.get('duration_s', ''))} s · "
            f"{esc(tool.get('name', ''))} {esc(tool.get('version', ''))}</p></header><main>"
            + incomplete + _identity_section(document) + _summary_section(document, summary)
            + _since_section(document) + _charts_section(document) + _matrix_section(document)
            + _findings_section(document) + sections.html_section(document)
            + '<label class="filter"><input type="checkbox" id="only-undocumented"> show only NEW '
              '(undocumented significant) differences</label>'
            + "".join(_scenario_section(document, s, names) for s in document.get("scenarios", []))
            + f"</main><script>{SCRIPT}</script></body></html>\n")
