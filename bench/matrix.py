"""How long a version matrix takes against the two-target run: `python -m bench.matrix [--rounds N]`.

Runs the default scenarios as the runner does (targets started by start_targets, a noise control beside
an embedded baseline), first for the two-target run, then for six targets, and prints the wall times,
the start-up share and the ratio (target: six targets within 6 x the two-target time). Binaries are
fetched before timing, so first-use downloads and builds are not counted.
"""

from __future__ import annotations

import argparse
import os
import time

from app.provision import parse_embedded_spec, provision
from app.scenarios import SCENARIO_NAMES
from app.target_specs import parse_targets, start_targets
from app.test_runner import add_noise_control, run_comparison

TWO = ["redis=embedded:redis@7.2.4", "valkey=embedded:valkey@9.0.0"]
SIX = ["r72=embedded:redis@7.2.4", "r74=embedded:redis@7.4.1", "v80=embedded:valkey@8.0.1",
       "v818=embedded:valkey@8.1.8", "v90=embedded:valkey@9.0.0", "v912=embedded:valkey@9.1.2"]


def timed_run(texts: list[str]) -> tuple[float, float]:
    """(seconds to start every server, seconds for the whole run including the start)."""
    started = time.perf_counter()
    targets = add_noise_control(start_targets(parse_targets(texts)), list(SCENARIO_NAMES))
    up = time.perf_counter() - started
    try:
        document = run_comparison(targets, list(SCENARIO_NAMES), timeout_s=10)
        assert document["completed"], "the run did not complete"
    finally:
        for target in targets:
            target.stop()
    return up, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for text in TWO + SIX:
        provision(parse_embedded_spec(text.split("=", 1)[1]))
    rows = []
    for _ in range(args.rounds):
        rows.append((timed_run(TWO), timed_run(SIX)))
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end")
    print(f"{'round':<6} {'2 targets s':>12} {'(start s)':>10} {'6 targets s':>12} {'(start s)':>10} {'ratio':>6}")
    for index, ((up2, two), (up6, six)) in enumerate(rows, 1):
        print(f"{index:<6} {two:>12.1f} {up2:>10.2f} {six:>12.1f} {up6:>10.2f} {six / two:>6.2f}")
    best_two, best_six = min(r[0][1] for r in rows), min(r[1][1] for r in rows)
    print(f"best of {args.rounds}: 2 targets {best_two:.1f} s, 6 targets {best_six:.1f} s, "
          f"ratio {best_six / best_two:.2f} (target <= 6)")


if __name__ == "__main__":
    main()
