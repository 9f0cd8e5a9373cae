"""How fast the capture parsers stream, and that their memory stays flat however long the capture.

Usage: python -m bench.parse_captures [--commands 1000000] [--file CAPTURE] [--gzip]
Generates a synthetic MONITOR capture (bench/gen_monitor.py) in a temporary folder unless --file
names one, then: one timed pass (records/s), and one pass under tracemalloc that samples the memory
held at checkpoints; flat means the last checkpoint holds no more than the first.
A benchmark, not a test: it asserts nothing, it prints figures.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

from app.captures import CaptureError, open_capture
from bench.gen_monitor import write_capture
from bench.report import table

CHECKPOINTS = 5  # memory samples along the capture


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def timed_pass(path: Path) -> tuple[int, int, float]:
    """(commands, bad lines, seconds) for one full pass."""
    with open_capture(path) as capture:
        started = time.perf_counter()
        for _ in capture.records():
            pass
        return capture.commands, capture.bad_lines, time.perf_counter() - started


def memory_pass(path: Path, total: int) -> list[tuple[int, float, float, int]]:
    """(records read, MiB held now, MiB peak so far, RSS KiB) at evenly spaced checkpoints."""
    step = max(1, total // CHECKPOINTS)
    samples = []
    tracemalloc.start()
    try:
        with open_capture(path) as capture:
            for count, _ in enumerate(capture.records(), 1):
                if count % step == 0:
                    now, peak = tracemalloc.get_traced_memory()
                    samples.append((count, now / 2**20, peak / 2**20, rss_kib()))
    finally:
        tracemalloc.stop()
    return samples


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.parse_captures", description=__doc__.splitlines()[0])
    p.add_argument("--commands", type=int, default=1_000_000)
    p.add_argument("--file", type=Path, help="parse this capture instead of a generated one")
    p.add_argument("--gzip", action="store_true", help="generate the capture gzip-compressed")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="rvc-bench-captures-"))
    try:
        path = args.file
        if path is None:
            path = tmp / ("bench.monitor.gz" if args.gzip else "bench.monitor")
            started = time.perf_counter()
            size = write_capture(path, args.commands, 20, 1, args.gzip)
            print(f"generated {args.commands} MONITOR lines, {size / 1e6:.1f} MB, "
                  f"in {time.perf_counter() - started:.1f} s")
        commands, bad, seconds = timed_pass(path)
        print(f"parse: {commands} commands, {bad} bad lines in {seconds:.2f} s = "
              f"{(commands + bad) / seconds:,.0f} records/s ({path.stat().st_size / 1e6 / seconds:.1f} MB/s)")
        samples = memory_pass(path, commands + bad)
        print(table(["records read", "MiB held", "MiB peak", "RSS KiB"],
                    [[f"{c:,}", f"{now:.3f}", f"{peak:.3f}", f"{rss:,}"] for c, now, peak, rss in samples]))
        if samples:
            print(f"memory held after {samples[-1][0]:,} records vs after {samples[0][0]:,}: "
                  f"{samples[-1][1] - samples[0][1]:+.3f} MiB (peak {samples[-1][2]:.3f} MiB)")
    except CaptureError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
