"""The printed tables: reads measured results, measures nothing, computes only statistics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app import config
from bench import stats
from bench.measure import OPS, OverheadSamples, SuiteRun, scenario_durations, scenario_metrics

# The targets on this 2-core machine.
RATIO_TARGET_LARGE = 1.3          # 256KB, 1MB, 5MB
RATIO_TARGET_SMALL = 2.0          # 1KB, 32KB
LARGE_FROM = 256 * config.KIB
SUITE_TARGET_S = 60.0
SUITE_AIM_S = 30.0
SPREAD_TARGET = 0.15              # each large_payloads figure within 15% of the five-run median
PAYLOAD_FIGURES = ("set_ms", "get_ms", "memory_usage")


def ratio_target(size: int) -> float:
    return RATIO_TARGET_LARGE if size >= LARGE_FROM else RATIO_TARGET_SMALL


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _iqr(summary: stats.Summary) -> str:
    return "-" if summary.q1 is None else f"{summary.q1:.3f}-{summary.q3:.3f}"


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "MISSED")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


# --- overhead against redis-benchmark --------------------------------------------------------------

def overhead_rows(samples: OverheadSamples) -> list[dict[str, Any]]:
    """One row per server, size and command: medians over rounds, IQRs, ratio, target."""
    rows = []
    for role in samples.tool:
        for label, size in config.PAYLOAD_SIZES.items():
            for op in OPS:
                tool = stats.summarize(samples.tool[role].get(label, {}).get(op, []))
                bench = stats.summarize(samples.bench.get(role, {}).get(label, {}).get(op, []))
                ratio = stats.ratio(tool.median, bench.median)
                rows.append({"role": role, "size": label, "op": op, "tool": tool, "bench": bench,
                             "tool_spread": stats.spread(samples.tool[role].get(label, {}).get(op, [])),
                             "bench_spread": stats.spread(samples.bench.get(role, {}).get(label, {}).get(op, [])),
                             "ratio": ratio, "target": ratio_target(size),
                             "met": None if ratio is None else ratio <= ratio_target(size)})
    return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def render_overhead(rows: list[dict[str, Any]], rounds: int) -> str:
    body = [[r["role"], r["size"], r["op"], _ms(r["tool"].median), _iqr(r["tool"]), _pct(r["tool_spread"]),
             _ms(r["bench"].median), _iqr(r["bench"]), _pct(r["bench_spread"]),
             "-" if r["ratio"] is None else f"{r['ratio']:.2f}", f"<= {r['target']}", _verdict(r["met"])]
            for r in rows]
    head = ["server", "size", "cmd", "tool ms", "tool IQR", "spread", "bench ms", "bench IQR", "spread",
            "ratio", "target", ""]
    return (f"Round trip over {rounds} rounds, fresh server processes each: large_payloads' own figure "
            "(one scenario run per round) against redis-benchmark (-c 1 -P 1, 1/rps) on the same server "
            "and size. ms = median over rounds, IQR over rounds, spread = largest distance from that "
            "median, ratio = tool median / bench median\n" + table(head, body))


# --- suite wall time -------------------------------------------------------------------------------

def suite_summary(runs: list[SuiteRun]) -> dict[str, Any]:
    walls = [run.wall_s for run in runs]
    wall = stats.summarize(walls)
    return {"wall": wall, "met": wall.high is not None and wall.high < SUITE_TARGET_S,
            "aim": wall.high is not None and wall.high < SUITE_AIM_S}


def render_suite(runs: list[SuiteRun], command: Sequence[str]) -> str:
    summary = suite_summary(runs)
    wall = summary["wall"]
    lines = [f"Whole default suite on both embedded servers, start-up included ({' '.join(command[:1])}...): "
             + ", ".join(f"{run.wall_s:.1f} s" for run in runs),
             f"  median {wall.median:.1f} s, slowest {wall.high:.1f} s: target < {SUITE_TARGET_S:.0f} s "
             f"{_verdict(summary['met'])}, aim < {SUITE_AIM_S:.0f} s {_verdict(summary['aim'])}"]
    foreign = [run.foreign_cpu_s for run in runs]
    if all(f is not None for f in foreign):
        lines.append("  CPU time other processes took during each run (noise indicator): "
                     + ", ".join(f"{f:.1f} s" for f in foreign))
    for number, run in enumerate(runs, 1):
        if run.document is None:
            lines.append(f"  run {number}: no report ({run.error})")
    lines.append(render_durations([run.document for run in runs if run.document]))
    return "\n".join(lines)


def duration_rows(documents: list[dict[str, Any]]) -> list[list[str]]:
    per: dict[str, dict[str, list[float]]] = {}
    for document in documents:
        for role, names in scenario_durations(document).items():
            for name, seconds in names.items():
                per.setdefault(name, {}).setdefault(role, []).append(seconds)
    rows = []
    for name, roles in per.items():
        cells = [name]
        for role in config.ROLES:
            summary = stats.summarize(roles.get(role, []))
            cells.append("-" if summary.median is None else f"{summary.median:.2f} ({summary.low:.2f}-{summary.high:.2f})")
        rows.append(cells)
    return rows


def render_durations(documents: list[dict[str, Any]]) -> str:
    head = ["scenario", *(f"{role} s: median (min-max)" for role in config.ROLES)]
    return "Per scenario (duration_s of the JSON report):\n" + table(head, duration_rows(documents))


# --- repeatability -----------------------------------------------------------------------------------

def repeatability_rows(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for role in config.ROLES:
        for label, size in config.PAYLOAD_SIZES.items():
            for figure in PAYLOAD_FIGURES:
                values = [scenario_metrics(d, role, "large_payloads").get(label, {}).get(figure) for d in documents]
                values = [v for v in values if isinstance(v, (int, float))]
                spread = stats.spread(values) if values else None
                applies = size >= LARGE_FROM
                rows.append({"role": role, "size": label, "figure": figure, "values": values,
                             "median": stats.median(values) if values else None, "spread": spread,
                             "met": (spread <= SPREAD_TARGET) if applies and spread is not None else None})
    return rows


def eviction_rows(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for role in config.ROLES:
        values = [scenario_metrics(d, role, "memory_eviction").get("evicted_count") for d in documents]
        rows.append({"role": role, "values": values,
                     "met": bool(values) and None not in values and stats.identical(values)})
    return rows


def _value(v: float) -> str:
    """Timings with three decimals; byte counts (integral) as integers."""
    return str(int(v)) if isinstance(v, int) or float(v).is_integer() else f"{v:.3f}"


def render_repeatability(documents: list[dict[str, Any]]) -> str:
    rows = repeatability_rows(documents)
    body = [[r["role"], r["size"], r["figure"], " ".join(_value(v) for v in r["values"]),
             "-" if r["median"] is None else _value(r["median"]),
             "-" if r["spread"] is None else f"{100 * r['spread']:.0f}%", _verdict(r["met"])] for r in rows]
    head = ["server", "size", "figure", "per run", "median", "spread", f"<= {100 * SPREAD_TARGET:.0f}% (>=256KB)"]
    evictions = [f"  {r['role']}: evicted_count {r['values']} -> identical: {_verdict(r['met'])}"
                 for r in eviction_rows(documents)]
    return (f"Repeatability over {len(documents)} runs, fresh server processes each "
            "(spread = largest distance from the median of the runs)\n"
            + table(head, body) + "\nmemory_eviction:\n" + "\n".join(evictions))


# --- verdicts -------------------------------------------------------------------------------------

def targets_summary(overhead: list[dict[str, Any]] | None, runs: list[SuiteRun] | None) -> str:
    lines = ["Targets:"]
    if overhead:
        for small in (False, True):
            part = [r for r in overhead if (ratio_target(config.PAYLOAD_SIZES[r["size"]]) == RATIO_TARGET_SMALL) == small]
            missed = [f"{r['role']} {r['size']} {r['op']} {r['ratio']:.2f}" for r in part if r["met"] is False]
            worst = max((r["ratio"] for r in part if r["ratio"] is not None), default=None)
            sizes = "1KB, 32KB" if small else "256KB, 1MB, 5MB"
            lines.append(f"  ratio <= {part[0]['target'] if part else '?'} at {sizes}: "
                         f"{'met' if not missed else 'MISSED (' + ', '.join(missed) + ')'}"
                         + (f", worst {worst:.2f}" if worst is not None else ""))
    if runs:
        summary = suite_summary(runs)
        lines.append(f"  suite < {SUITE_TARGET_S:.0f} s: {_verdict(summary['met'])} (slowest {summary['wall'].high:.1f} s; "
                     f"aim {SUITE_AIM_S:.0f} s {_verdict(summary['aim'])})")
        documents = [run.document for run in runs if run.document]
        rows = [r for r in repeatability_rows(documents) if r["met"] is not None]
        missed = [f"{r['role']} {r['size']} {r['figure']} {100 * r['spread']:.0f}%" for r in rows if not r["met"]]
        lines.append(f"  five runs within {100 * SPREAD_TARGET:.0f}% (>=256KB): "
                     + ("met" if not missed else "MISSED (" + ", ".join(missed) + ")"))
        evictions = eviction_rows(documents)
        lines.append("  evicted_count identical: " + ", ".join(f"{r['role']} {_verdict(r['met'])}" for r in evictions))
    return "\n".join(lines)
