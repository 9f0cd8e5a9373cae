"""The tool's own overhead, suite time and repeatability, in one run on the embedded servers.

Usage: python -m bench.overhead [--rounds 5] [--runs 5] [--only overhead,suite,paths] [--json PATH]
  overhead  large_payloads' SET/GET figure next to redis-benchmark's round trip, same server and size;
  suite     the whole default suite (./rvc) run --runs times: wall time, per-scenario time, and the
            repeatability of the large_payloads figures and of memory_eviction's evicted_count;
  paths     where a large round trip's time goes: client paths and the warm-up curve (diagnostic).
A benchmark, not a test: it asserts nothing, it prints figures next to the targets of the issue.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.servers import embedded_pair
from bench import paths, report
from bench.measure import (BenchError, find_redis_benchmark, load_payload_module,
                           machine_load, measure_overhead, run_suite, scenario_statuses, suite_command)

SECTIONS = ("overhead", "suite", "paths")
DEFAULT_SECTIONS = ("overhead", "suite")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(DEFAULT_SECTIONS),
                   help=f"comma-separated sections, from: {', '.join(SECTIONS)} (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=5,
                   help="overhead rounds, fresh servers each: the scenario, then redis-benchmark, on each server")
    p.add_argument("--runs", type=int, default=5, help="whole-suite runs, fresh servers each (suite)")
    p.add_argument("--payload-module", metavar="FILE",
                   help="measure this file in place of app/scenarios/large_payloads.py (to try a change)")
    p.add_argument("--no-install", action="store_true", help="never apt-get install redis-tools")
    p.add_argument("--json", metavar="PATH", help="also write every measured sample to this JSON file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        print(f"unknown section(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    saved: dict[str, Any] = {"load_before": machine_load(), "cores": os.cpu_count()}
    print(f"machine: {os.cpu_count()} cores, load average {saved['load_before']:.2f}"
          + ("  (other work is running: figures will be noisier)" if saved["load_before"] > 0.5 else ""))
    try:
        if "overhead" in sections:
            saved["overhead"] = overhead_section(args)
        if "suite" in sections:
            saved["suite"] = suite_section(args)
        if "paths" in sections:
            saved["paths"] = paths_section()
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    saved["load_after"] = machine_load()
    print(f"\nload average at the end {saved['load_after']:.2f}")
    print(report.targets_summary(saved.get("overhead", {}).get("rows"), saved.get("suite", {}).get("runs")))
    if args.json:
        write_json(saved, Path(args.json))
    return 0


def overhead_section(args: argparse.Namespace) -> dict[str, Any]:
    tool = find_redis_benchmark(install=not args.no_install)
    module = load_payload_module(args.payload_module)
    print(f"redis-benchmark: {tool.path} ({tool.source}); tool path: {module.__file__}")
    samples = measure_overhead(module, tool, args.rounds)
    print("servers: " + ", ".join(f"{role} = {version}" for role, version in samples.versions.items()))
    rows = report.overhead_rows(samples)
    print("\n" + report.render_overhead(rows, args.rounds))
    not_ok = sorted({s for s in samples.statuses if not s.endswith(": OK")})
    if not_ok:
        print("scenario statuses other than OK: " + ", ".join(not_ok))
    return {"rows": rows, "samples": samples, "bench_tool": tool.source}


def suite_section(args: argparse.Namespace) -> dict[str, Any]:
    command = suite_command(args.payload_module)
    runs = []
    for number in range(1, args.runs + 1):
        run = run_suite(command)
        print(f"suite run {number}/{args.runs}: {run.wall_s:.1f} s, exit {run.exit_code}", flush=True)
        runs.append(run)
    documents = [run.document for run in runs if run.document]
    print("\n" + report.render_suite(runs, command))
    print("\n" + report.render_repeatability(documents))
    statuses = {k: v for d in documents for k, v in scenario_statuses(d).items()}
    if statuses:
        print("scenarios not OK in some run: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    return {"runs": runs, "walls": [r.wall_s for r in runs], "command": command,
            "repeatability": report.repeatability_rows(documents), "evictions": report.eviction_rows(documents),
            "durations": report.duration_rows(documents)}


def paths_section() -> dict[str, Any]:
    with embedded_pair("paths") as servers:
        breakdown = paths.client_paths(servers)
    print("\n" + paths.render_client_paths(breakdown))
    curve = paths.warmup_curve()
    print("\n" + paths.render_warmup_curve(curve))
    return {"client_paths": breakdown, "warmup_curve": curve}


def _plain(value: Any) -> Any:
    """Dataclasses and summaries as JSON-safe dicts (SuiteRun documents are left out: they are large)."""
    if dataclasses.is_dataclass(value):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items() if k != "document"}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_json(saved: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_plain(saved), indent=1, default=str))
    print(f"samples written to {path}")


if __name__ == "__main__":
    sys.exit(main())
