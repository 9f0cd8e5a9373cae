"""Explorer speed: commands compared per second (each command counted once, though it runs on three
servers: Redis, its noise control, Valkey), and the time shrinking takes per finding.

    python -m bench.explore [--seconds 30] [--seed 1] [--shrink-seconds 60] [--profile]

1. Exploring only (no shrinking) for --seconds: sequences generated from COMMAND DOCS, pipelined to the
   three embedded servers, every reply judged. Reports compared/s and sent/s, and where the time went.
2. A normal exploration (shrinking on) for --shrink-seconds: per finding, the seconds and trial runs its
   shrink took (median, 90th percentile, longest, by kind).
Target (issue #14): >= 3,000 compared/s on a 2-core machine. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import resource
import sys
import time
from collections.abc import Sequence
from typing import Any

from app.explore.exploration import Settings
from app.explore.session import open_session
from app.identity import read_identity
from app.targets import embedded_trio
from bench.migrate import machine
from bench.report import table

TARGET_PER_S = 3_000


def cpu_seconds() -> tuple[float, float]:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def run(settings: Settings, profile: bool = False) -> dict[str, Any]:
    """One exploration on fresh embedded servers; its figures (and the profile's top with profile)."""
    targets = embedded_trio()
    try:
        identities = {}
        for target in targets:
            with target.client() as client:
                identities[target.name] = read_identity(client)
        session = open_session(targets, identities, settings)
        profiler = cProfile.Profile() if profile else None
        cpu_before = cpu_seconds()
        started = time.perf_counter()
        try:
            if profiler:
                profiler.enable()
            outcome = session.exploration.run()
        finally:
            if profiler:
                profiler.disable()
            session.close()
        wall = time.perf_counter() - started
        cpu_after = cpu_seconds()
        top = ""
        if profiler:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
            top = out.getvalue()
        return {"outcome": outcome, "judge": session.judge, "wall": wall, "profile": top,
                "tool_cpu": cpu_after[0] - cpu_before[0]}
    finally:
        for target in targets:
            target.stop()


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def speed_rows(result: dict[str, Any]) -> list[list[str]]:
    outcome, judge = result["outcome"], result["judge"]
    seconds = outcome.explore_seconds or result["wall"]
    compared = judge.compared / seconds
    return [["sequences", f"{outcome.sequences:,}"], ["calls sent (to each of 3 servers)", f"{outcome.calls:,}"],
            ["calls compared", f"{judge.compared:,}"], ["seconds exploring", f"{seconds:.2f}"],
            ["compared per second", f"{compared:,.0f}  (target {TARGET_PER_S:,}: {'met' if compared >= TARGET_PER_S else 'NOT met'})"],
            ["sent per second", f"{outcome.calls / seconds:,.0f}"],
            ["this process's CPU seconds", f"{result['tool_cpu']:.2f}"],
            ["sequences a server did not answer in full", ", ".join(f"{k} {v}" for k, v in outcome.aborted_by_kind.items()) or "0"]]


def shrink_rows(result: dict[str, Any]) -> list[list[str]]:
    findings = [f for f in result["outcome"].findings.values() if f.attempts]
    by_kind: dict[str, list[float]] = {}
    for finding in findings:
        by_kind.setdefault(finding.silence or "reply", []).append(finding.shrink_seconds)
    rows = []
    for kind, times in [("all", [f.shrink_seconds for f in findings]), *sorted(by_kind.items())]:
        rows.append([kind, str(len(times)), f"{percentile(times, 0.5):.3f}", f"{percentile(times, 0.9):.3f}",
                     f"{max(times, default=0.0):.3f}", f"{sum(times):.1f}"])
    tests = sorted(f.shrink_tests for f in findings)
    rows.append(["trial runs per finding (median, p90, max)", "", str(percentile(tests, 0.5)),
                 str(percentile(tests, 0.9)), str(max(tests, default=0)), ""])
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.explore", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0, help="exploring-only run (default 30)")
    p.add_argument("--shrink-seconds", type=float, default=60.0, help="run with shrinking (default 60; 0 skips)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--profile", action="store_true", help="the exploring run's top functions by own time")
    args = p.parse_args(argv)
    info = machine()
    print(f"machine: {info['nproc']} cores, {info['cpu']}, {info['memory_gib']} GiB, load {info['load_average']}, "
          f"python {info['python']}")
    speed = run(Settings(seed=args.seed, seconds=args.seconds, shrink=False), profile=args.profile)
    print(f"\nexploring only, seed {args.seed}, {args.seconds:g} s budget:")
    print(table(["figure", "value"], speed_rows(speed)))
    if speed["profile"]:
        print(speed["profile"])
    if args.shrink_seconds > 0:
        shrinking = run(Settings(seed=args.seed, seconds=args.shrink_seconds, shrink=True))
        print(f"\nwith shrinking, seed {args.seed}, {args.shrink_seconds:g} s budget "
              f"({shrinking['outcome'].shrink_seconds:.1f} s of it shrinking):")
        print(table(["shrink time per finding (s)", "findings", "median", "p90", "max", "total"],
                    shrink_rows(shrinking)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
