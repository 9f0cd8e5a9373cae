"""Replay speed and memory: a generated MONITOR capture (bench/gen_monitor.py, 20 clients, mixed types,
expiry, MULTI, EVAL) replayed end to end on the embedded Redis, its noise control and Valkey.

    python -m bench.replay [--commands 1000000] [--file CAPTURE] [--profile] [--no-ceiling]

Prints: commands/s end to end (parse, pipelined send to three servers, reply reading, comparison), the
peak RSS of this process, and as the ceiling redis-benchmark -P 16 on one server (what one server does
with pipelined commands and no comparison). Targets (issue #12): >= 25,000 commands/s, < 250 MB RSS.
A benchmark, not a test: it asserts nothing. --profile adds the top functions by own time (cProfile).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.provision import embedded_benchmark, embedded_binary
from app.replay.run import replay_files
from app.servers import EmbeddedServer
from app.targets import embedded_trio
from bench.gen_monitor import write_capture
from bench.migrate import machine
from bench.report import table

TARGET_PER_S = 25_000
TARGET_RSS_MB = 250
CEILING_REQUESTS = 1_000_000
CEILING_ARGS = ("-P", "16", "-c", "20", "-t", "set,get", "--csv")  # 20 clients, as the generated capture


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds (user + system) of this process, and of its exited children (the servers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_replay(path: Path, profile: bool) -> tuple[dict[str, Any], float, str]:
    """The replay document, its wall time, and (with profile) the top of the profile."""
    targets = embedded_trio()
    profiler = cProfile.Profile() if profile else None
    try:
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        document = replay_files([path], targets)
        if profiler:
            profiler.disable()
        wall = time.perf_counter() - started
    finally:
        for target in targets:
            target.stop()
    top = ""
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
        top = out.getvalue()
    return document, wall, top


def ceiling() -> dict[str, float]:
    """redis-benchmark -P 16 requests/s per command on one fresh embedded Redis."""
    tool = embedded_benchmark()
    with EmbeddedServer(embedded_binary("redis"), "bench-ceiling") as server:
        proc = subprocess.run([str(tool.path), "-p", str(server.port), "-n", str(CEILING_REQUESTS), *CEILING_ARGS],
                              env={**tool.env}, capture_output=True, text=True, timeout=300)
    rates = {}
    for line in proc.stdout.splitlines()[1:]:
        cells = [c.strip('"') for c in line.split(",")]
        if len(cells) > 1:
            rates[cells[0]] = float(cells[1])
    return rates


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__.splitlines()[0])
    p.add_argument("--commands", type=int, default=1_000_000)
    p.add_argument("--file", type=Path, help="replay this capture instead of a generated one")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--no-ceiling", action="store_true", help="skip redis-benchmark")
    args = p.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="rvc-bench-replay-"))
    try:
        path = args.file
        if path is None:
            path = folder / "bench.monitor"
            started = time.perf_counter()
            size = write_capture(path, args.commands, 20, 1, False)
            print(f"generated {args.commands:,} MONITOR lines ({size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s")
        rss_before = peak_rss_mb()
        own_before, servers_before = cpu_seconds()
        document, wall, top = timed_replay(path, args.profile)
        own_after, servers_after = cpu_seconds()  # the servers have exited: their CPU time is counted
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    section = document["replay"]
    counts, totals = section["counts"], section["totals"]
    rate = counts["replayed"] / wall if wall else 0.0
    rss = peak_rss_mb()
    host = machine()
    print(f"machine: {host['nproc']} cores, {host['cpu']}, {host['memory_gib']} GiB, load average "
          + ", ".join(f"{v:.2f}" for v in host["load_average"]) + f", Python {host['python']}")
    rows = [["commands replayed", f"{counts['replayed']:,}", ""],
            ["script lines (inside EVAL)", f"{counts['from_script']:,}", ""],
            ["wall time end to end", f"{wall:.2f} s", ""],
            ["commands/s end to end", f"{rate:,.0f}", f"target >= {TARGET_PER_S:,}: {'met' if rate >= TARGET_PER_S else 'MISSED'}"],
            ["peak RSS", f"{rss:.0f} MB", f"target < {TARGET_RSS_MB}: {'met' if rss < TARGET_RSS_MB else 'MISSED'}"
             f" (before the replay: {rss_before:.0f} MB)"],
            ["CPU: the tool / the three servers", f"{own_after - own_before:.1f} s / {servers_after - servers_before:.1f} s",
             f"of {wall:.1f} s wall on {host['nproc']} cores"],
            ["windows / syncs", f"{counts['windows']:,} / {counts['syncs']:,}",
             f"a sync waits for one session's replies before another session touches its keys "
             f"(one per {counts['replayed'] / max(counts['syncs'], 1):.0f} commands)"],
            ["barriers", f"{counts['barriers']:,}", "scripts, keyless commands"],
            ["identical / noise / different", f"{totals['identical']:,} / {totals['noise']:,} / {totals['different']:,}", ""]]
    if not args.no_ceiling:
        rates = ceiling()
        for name, value in rates.items():
            rows.append([f"ceiling: redis-benchmark -P 16 {name}", f"{value:,.0f} requests/s",
                         f"one server, {CEILING_ARGS[3]} clients"])
    print(table(["figure", "value", "note"], rows))
    if top:
        print(top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
