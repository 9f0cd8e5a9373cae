"""Cluster figures: start-up of each embedded cluster, resharding and failover timings, over fresh clusters.

Usage: python -m bench.cluster [--runs 3] [--json PATH]
Each run starts a fresh cluster per product (3 primaries, one replica each; the products alternate
which goes first), runs the cluster_resharding and cluster_failover scenarios on it as the tool does,
and stops it. Printed: median and min..max over the runs of
  startup_s              start, join (MEET, ADDSLOTSRANGE, REPLICATE) and wait until ok and in sync
  stop_s                 every node stopped and its folder removed
  legacy / atomic        migration_ms (the moves without the deliberate pauses between batches),
                         settle_ms (until every primary sees the new owner), the application's
                         longest gap between acknowledged writes and its errors, per move
  manual failover        promoted_ms (CLUSTER FAILOVER until the replica says primary), longest write gap
  killed primary         promoted_ms (SIGKILL until the replica says primary), longest write gap,
                         repair_ms (a new replica started, joined and in sync)
A benchmark, not a test: it asserts nothing; it measures through the scenarios themselves, so the
figures are what a report's metrics hold.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from typing import Any

from app import config
from app.cluster import ClusterTarget, EmbeddedCluster
from app.cluster_run import run_cluster_scenarios
from app.provision import embedded_binary
from bench import stats
from bench.report import table

SCENARIOS = ("cluster_resharding", "cluster_failover")
# metric path in a scenario's metrics -> the figure's name in the table; each holds a number (ms) or
# a list of them (one per move).
FIGURES: dict[str, tuple[str, str]] = {
    "legacy migration_ms": ("cluster_resharding", "legacy.migration_ms_samples"),
    "legacy settle_ms": ("cluster_resharding", "legacy.settle_ms_samples"),
    "legacy longest write gap ms (away)": ("cluster_resharding", "measured.legacy away application longest_gap_ms"),
    "legacy longest write gap ms (back)": ("cluster_resharding", "measured.legacy back application longest_gap_ms"),
    "atomic migration_ms": ("cluster_resharding", "atomic.migration_ms_samples"),
    "atomic settle_ms": ("cluster_resharding", "atomic.settle_ms_samples"),
    "atomic longest write gap ms (away)": ("cluster_resharding", "measured.atomic away application longest_gap_ms"),
    "atomic longest write gap ms (back)": ("cluster_resharding", "measured.atomic back application longest_gap_ms"),
    "manual failover promoted_ms": ("cluster_failover", "measured.manual failover promoted_ms"),
    "manual failback promoted_ms": ("cluster_failover", "measured.manual failback promoted_ms"),
    "manual failover longest write gap ms": ("cluster_failover", "measured.manual failover longest_gap_ms"),
    "killed primary promoted_ms": ("cluster_failover", "measured.killed promoted_ms"),
    "killed primary longest write gap ms": ("cluster_failover", "measured.killed longest_gap_ms"),
    "killed primary repair_ms": ("cluster_failover", "measured.killed repair_ms"),
}
# Error kinds the application saw, summed over the runs.
ERROR_COUNTS: dict[str, tuple[str, str]] = {
    "legacy moves": ("cluster_resharding", "measured.legacy {} application errors"),
    "atomic moves": ("cluster_resharding", "measured.atomic {} application errors"),
    "killed primary": ("cluster_failover", "measured.killed errors"),
}


def metric(metrics: dict[str, Any], path: str) -> Any:
    section, _, name = path.partition(".")
    return metrics.get(section, {}).get(name)


def one_run(role: str, index: int) -> dict[str, Any]:
    """A fresh cluster of one product: its start and stop times and the two scenarios' metrics."""
    cluster = EmbeddedCluster(embedded_binary(role), f"bench-{role}-{index}")
    try:
        cluster.start()
        target = ClusterTarget(name=role, url=cluster.seed.url, source="embedded", owned=True, cluster=cluster)
        with target.client() as client:
            results = run_cluster_scenarios([target], SCENARIOS, clients={role: client},
                                            prefix=f"rvc:bench{index}:")[role]
    finally:
        stopping = time.perf_counter()
        cluster.stop()
        stop_s = time.perf_counter() - stopping
    return {"startup_s": cluster.startup_s, "stop_s": stop_s,
            "statuses": {name: r["status"] for name, r in results.items()},
            "details": {name: r["detail"] for name, r in results.items() if r["status"] != "OK"},
            "metrics": {name: r["metrics"] for name, r in results.items()}}


def collect(runs: list[dict[str, Any]]) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {"startup_s": [r["startup_s"] for r in runs], "stop_s": [r["stop_s"] for r in runs]}
    for label, (scenario, path) in FIGURES.items():
        values: list[float] = []
        for run in runs:
            value = metric(run["metrics"].get(scenario, {}), path)
            values.extend(value if isinstance(value, list) else [] if value is None else [value])
        figures[label] = values
    return figures


def error_totals(runs: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = {}
    for label, (scenario, pattern) in ERROR_COUNTS.items():
        counted: dict[str, int] = {}
        for run in runs:
            metrics = run["metrics"].get(scenario, {})
            for direction in (("away", "back") if "{}" in pattern else ("",)):
                for kind, count in (metric(metrics, pattern.format(direction)) or {}).items():
                    counted[kind] = counted.get(kind, 0) + count
        totals[label] = counted
    return totals


def cell(values: list[float]) -> str:
    summary = stats.summarize(values)
    if summary.median is None:
        return "-"
    return f"{summary.median:.1f} ({summary.low:.1f}-{summary.high:.1f}, n={summary.n})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh clusters per product (default 3)")
    parser.add_argument("--json", metavar="PATH", help="also write every run's figures to this file")
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    runs: dict[str, list[dict[str, Any]]] = {role: [] for role in config.ROLES}
    for index in range(args.runs):
        for role in (config.ROLES if index % 2 == 0 else config.ROLES[::-1]):
            runs[role].append(one_run(role, index))
    figures = {role: collect(found) for role, found in runs.items()}
    labels = list(figures[config.BASELINE])
    print(table(["figure", *config.ROLES], [[label, *(cell(figures[role][label]) for role in config.ROLES)]
                                             for label in labels]))
    print()
    for role in config.ROLES:
        for label, kinds in error_totals(runs[role]).items():
            print(f"{role} application errors, {label}: {kinds or 'none'}")
        failed = [(i, r["details"]) for i, r in enumerate(runs[role]) if r["details"]]
        if failed:
            print(f"{role} runs not OK: {failed}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"runs": runs, "figures": figures}, out, indent=1, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
