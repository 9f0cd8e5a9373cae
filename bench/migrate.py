"""Migration rehearsal figures: 1,000,000 generated keys (10 MB string, 1M-member set), every route in
both directions, each route's time and keys/s and the verification rate, with the machine it ran on.

    python -m bench.migrate [--keys N] [--routes a,b] [--json PATH]

Target (issue #16): the verification >= 50,000 keys/s on these 2-core machines. Prints; the JSON
document (same as `./rvc migrate` writes) can be kept with --json.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.migration import settings
from app.migration.rehearsal import RehearsalOptions, default_binaries, rehearse
from app.migration.settings import DatasetSpec
from app.render.json_report import write_json
from bench.report import table

VERIFY_TARGET_KEYS_PER_S = 50_000
BENCH_KEYS = 1_000_000


def machine() -> dict[str, Any]:
    """nproc, the CPU model name and the memory, as /proc reports them."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
    return {"nproc": os.cpu_count(), "cpu": model, "memory_gib": round(mem_kb / 1024 / 1024, 1),
            "load_average": os.getloadavg(), "python": platform.python_version()}


def rows(document: dict[str, Any]) -> list[list[str]]:
    out = []
    for cell in document["migration"]["matrix"]:
        v = cell.get("verification") or {}
        phases = ", ".join(f"{k} {s:.2f}" for k, s in (cell.get("phases") or {}).items())
        out.append([cell["route"], cell["direction"], cell["status"], f"{cell['duration_s']:.2f}",
                    "-" if cell.get("keys_per_s") is None else f"{cell['keys_per_s']:,}", phases,
                    "-" if not v else f"{v['keys_compared']:,}", "-" if not v else f"{v['duration_s']:.2f}",
                    "-" if not v else f"{v['keys_per_s']:,}", "-" if not v else str(v["mismatches"]),
                    "-" if not v else str(v["losses"])])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.migrate")
    parser.add_argument("--keys", type=int, default=BENCH_KEYS)
    parser.add_argument("--routes", default=",".join(settings.ROUTES))
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    box = machine()
    print(f"machine: nproc {box['nproc']}, {box['cpu']}, {box['memory_gib']} GiB, "
          f"load average before {', '.join(f'{x:.2f}' for x in box['load_average'])}", flush=True)
    binaries, sources = default_binaries({})
    spec = DatasetSpec(keys=args.keys)
    document = rehearse(RehearsalOptions(binaries=binaries, sources=sources, spec=spec,
                                         routes=[r for r in args.routes.split(",") if r]),
                        progress=lambda d, r, p: print(f"  {d} {r} {p}", file=sys.stderr, flush=True))
    document["bench"] = {"machine": box, "load_average_after": os.getloadavg()}
    for direction, dataset in document["migration"]["dataset"].items():
        print(f"data set {direction}: {dataset.get('keys', 0):,} keys, generated in "
              f"{dataset.get('generation_s', 0):.1f} s, big keys {spec.big_string_bytes:,} B string and "
              f"{spec.big_set_members:,}-member set")
    print(table(["route", "direction", "outcome", "time s", "keys/s", "phases s", "verified", "verify s",
                 "verify keys/s", "mismatches", "losses"], rows(document)))
    rates = [c["verification"]["keys_per_s"] for c in document["migration"]["matrix"] if c.get("verification")]
    if rates:
        print(f"verification: {min(rates):,}-{max(rates):,} keys/s (target >= {VERIFY_TARGET_KEYS_PER_S:,}: "
              f"{'met' if min(rates) >= VERIFY_TARGET_KEYS_PER_S else 'MISSED'} by the slowest)")
    print("load average after: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    for sentence in document["migration"]["verdict"].values():
        print(sentence)
    if args.json:
        write_json(document, Path(args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
