"""The mirror's cost to the application: redis-benchmark through the proxy against the same run
directly on Redis, with the candidate comparison on, and with the candidate frozen (SIGSTOP) for 10 s.

Usage: python -m bench.mirror [--rounds 2] [--requests 200000] [--profile S] [--json PATH] [--mirror-args ARGS]
  direct    redis-benchmark -t set,get,lpush,hset -c 50 -n N -d 100 on the primary Redis
  proxied   the same through ./rvc mirror (primary Redis, candidate Valkey, secondary Redis)
  frozen    proxied, the candidate stopped with SIGSTOP 1 s in, for 10 s: the application's figures,
            the drop counters and the proxy's memory (RSS sampled every 0.2 s)
  light     one client (-c 1 -t set,get): the latency one hop through the proxy adds when it is not saturated
  --profile S   py-spy samples the proxy for S seconds during one more proxied run; prints where its
                time goes (own time per function)
The targets (issue #13): throughput through the proxy >= 50 % of direct; p50 added <= 0.3 ms; p99 added
<= 1 ms; frozen within 10 % of proxied. A benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from app.provision import embedded_benchmark
from app.targets import Target, embedded_trio
from bench import stats
from bench.report import table

ROOT = Path(__file__).resolve().parent.parent
TESTS = "set,get,lpush,hset"
CLIENTS, SIZE = 50, 100
FREEZE_AFTER_S, FREEZE_FOR_S = 1.0, 10.0
TARGETS = {"throughput_ratio": 0.5, "p50_added_ms": 0.3, "p99_added_ms": 1.0, "frozen_within": 0.10}
RSS_EVERY_S = 0.2
LIGHT_TESTS, LIGHT_REQUESTS = "set,get", 20_000


def bench_run(port: int, requests: int, tests: str = TESTS, clients: int = CLIENTS) -> dict[str, dict[str, float]]:
    """test -> {rps, p50, p99} from redis-benchmark's CSV."""
    tool = embedded_benchmark()
    out = subprocess.run([str(tool.path), "-h", "127.0.0.1", "-p", str(port), "-t", tests, "-c", str(clients),
                          "-n", str(requests), "-d", str(SIZE), "--csv"], env={**os.environ, **tool.env},
                         capture_output=True, text=True, timeout=900, check=True).stdout
    rows = {}
    for row in csv.DictReader(io.StringIO(out)):
        rows[row["test"]] = {"rps": float(row["rps"]), "p50": float(row["p50_latency_ms"]),
                             "p99": float(row["p99_latency_ms"])}
    return rows


def rss_kib(pid: int) -> int:
    """A process's resident memory in KiB (OSError once it has exited)."""
    text = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in text.splitlines() if line.startswith("VmRSS:"))


class Proxy:
    """./rvc mirror as a user runs it, in its own process, with its memory sampled."""

    def __init__(self, targets: dict[str, Target], out: Path, extra: Sequence[str] = ()) -> None:
        self.out = out
        command = [sys.executable, "-m", "app.cli", "mirror", "--listen", "127.0.0.1:0", "--out", str(out),
                   "--report-every", "2", "--primary", targets["primary"].url,
                   "--candidate", targets["candidate"].url, "--secondary", targets["secondary"].url, *extra]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if "redis://" not in line:
            raise RuntimeError(f"mirror did not start: {line}{self.process.stderr.read()}")
        self.port = int(line.split("redis://")[1].split("/")[0].rsplit(":", 1)[1])
        self.rss: list[tuple[float, int]] = []
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        started = time.monotonic()
        while self._sampling:
            try:
                kb = rss_kib(self.process.pid)
            except OSError:
                return
            self.rss.append((time.monotonic() - started, kb))
            time.sleep(RSS_EVERY_S)

    def stop(self) -> dict[str, Any]:
        self._sampling = False
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.communicate(timeout=120)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        return json.loads((self.out / "report.json").read_text())


def flush(targets: dict[str, Target]) -> None:
    for target in targets.values():
        with redis.Redis.from_url(target.url) as conn:
            conn.flushall()


def proxied(targets: dict[str, Target], requests: int, freeze: Target | None = None,
            profile_s: float = 0.0, light: int = 0, extra: Sequence[str] = ()) -> dict[str, Any]:
    flush(targets)
    out = Path(tempfile.mkdtemp(prefix="rvc-bench-mirror-"))
    proxy = Proxy(targets, out, extra)
    timer = None
    profile: dict[str, Any] | None = None
    try:
        if freeze is not None:
            timer = threading.Thread(target=_freeze, args=(freeze,), daemon=True)
            timer.start()
        spy = _start_profile(proxy.process.pid, profile_s) if profile_s else None
        rows = bench_run(proxy.port, requests)
        light_rows = bench_run(proxy.port, light, LIGHT_TESTS, 1) if light else None
        if spy is not None:
            profile = _profile_result(*spy)
        if timer is not None:
            timer.join()
    finally:
        document = proxy.stop()
        shutil.rmtree(out, ignore_errors=True)
    section = document["mirror"]
    return {"rows": rows, "light": light_rows, "rss_kb": proxy.rss, "totals": section["totals"], "candidate": section["candidate"],
            "servers": section["servers"], "profile": profile}


def _freeze(target: Target) -> None:
    pid = target.server.process.pid
    time.sleep(FREEZE_AFTER_S)
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(FREEZE_FOR_S)
    finally:
        os.kill(pid, signal.SIGCONT)


def _start_profile(pid: int, seconds: float) -> tuple[subprocess.Popen, Path]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    path = Path(tempfile.mkdtemp(prefix="rvc-spy-")) / "profile.txt"
    process = subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--format", "raw",
                                "--rate", "200", "--output", str(path), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return process, path


def _profile_result(process: subprocess.Popen, path: Path) -> dict[str, Any]:
    """Own time per function (the leaf of each sampled stack) and time per module, from py-spy's raw output."""
    _, err = process.communicate(timeout=300)
    own: Counter[str] = Counter()
    modules: Counter[str] = Counter()
    total = 0
    if path.exists():
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            n = int(count)
            total += n
            leaf = frames[-1]
            own[leaf.split(" (")[0] + " (" + leaf.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1]] += n
            for module in {f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] for f in frames}:
                modules[module] += n
        shutil.rmtree(path.parent, ignore_errors=True)
    return {"samples": total, "own": own.most_common(25), "modules": modules.most_common(15),
            "error": err.strip()[-300:] if not total else ""}


def summarize_rows(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Median of each figure over the rounds, per test."""
    tests = runs[0].keys()
    return {t: {k: stats.median([r[t][k] for r in runs]) for k in ("rps", "p50", "p99")} for t in tests}


def render(direct: dict, prox: dict, frozen: dict, rounds: int) -> str:
    rows = []
    for test in direct:
        d, p, f = direct[test], prox[test], frozen[test]
        ratio = p["rps"] / d["rps"]
        rows.append([test, f"{d['rps']:,.0f}", f"{p['rps']:,.0f}", f"{ratio:.0%}" + (" ok" if ratio >= TARGETS["throughput_ratio"] else " MISS"),
                     f"{d['p50']:.3f}", f"{p['p50']:.3f}", f"{p['p50'] - d['p50']:+.3f}" + (" ok" if p['p50'] - d['p50'] <= TARGETS["p50_added_ms"] else " MISS"),
                     f"{d['p99']:.3f}", f"{p['p99']:.3f}", f"{p['p99'] - d['p99']:+.3f}" + (" ok" if p['p99'] - d['p99'] <= TARGETS["p99_added_ms"] else " MISS"),
                     f"{f['rps']:,.0f}", f"{f['rps'] / p['rps'] - 1:+.0%}", f"{f['p50']:.3f}", f"{f['p99']:.3f}"])
    return (f"redis-benchmark -t {TESTS} -c {CLIENTS} -d {SIZE}: medians of {rounds} round(s); ms\n"
            + table(["test", "direct rps", "proxied rps", "ratio", "direct p50", "proxied p50", "p50 added",
                     "direct p99", "proxied p99", "p99 added", "frozen rps", "vs proxied", "frozen p50", "frozen p99"], rows))


def render_light(direct: dict, prox: dict) -> str:
    rows = [[test, f"{direct[test]['rps']:,.0f}", f"{prox[test]['rps']:,.0f}", f"{direct[test]['p50']:.3f}",
             f"{prox[test]['p50']:.3f}", f"{prox[test]['p50'] - direct[test]['p50']:+.3f}", f"{direct[test]['p99']:.3f}",
             f"{prox[test]['p99']:.3f}", f"{prox[test]['p99'] - direct[test]['p99']:+.3f}"] for test in direct]
    return (f"one client (-c 1 -n {LIGHT_REQUESTS} -t {LIGHT_TESTS}): the hop the proxy adds, unsaturated; ms\n"
            + table(["test", "direct rps", "proxied rps", "direct p50", "proxied p50", "p50 added", "direct p99",
                     "proxied p99", "p99 added"], rows))


def render_frozen(runs: list[dict[str, Any]]) -> str:
    lines = []
    for index, run in enumerate(runs, 1):
        rss = [kb for _, kb in run["rss_kb"]]
        cand = run["candidate"]
        lines.append(f"frozen round {index}: dropped {cand['dropped']:,} of {run['totals']['commands']:,} commands, "
                     f"out of sync since {cand['out_of_sync_since']}, max lag {cand['max_lag_ms']:,.0f} ms, "
                     f"lost: {cand['lost_at'] or 'no'}; proxy RSS start {rss[0] / 1024 if rss else 0:.0f} MB, "
                     f"max {max(rss) / 1024 if rss else 0:.0f} MB, end {rss[-1] / 1024 if rss else 0:.0f} MB")
    return "\n".join(lines)


def render_profile(profile: dict[str, Any]) -> str:
    if not profile or not profile["samples"]:
        return f"profile: no samples ({(profile or {}).get('error', '')})"
    total = profile["samples"]
    rows = [[name, f"{count / total:.1%}"] for name, count in profile["own"]]
    mods = ", ".join(f"{m} {c / total:.0%}" for m, c in profile["modules"])
    return (f"profile of the proxy ({total} samples): own time per function\n" + table(["function (file)", "own"], rows)
            + f"\ntime inside each file (inclusive): {mods}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.mirror", description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--requests", type=int, default=200_000)
    p.add_argument("--profile", type=float, default=0.0, metavar="S", help="py-spy the proxy for S seconds")
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--mirror-args", default="", metavar="ARGS",
                   help="more ./rvc mirror options, e.g. --mirror-args=--own-primary-connections")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    extra = args.mirror_args.split()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}", flush=True)
    started = embedded_trio()
    targets = dict(zip(("primary", "secondary", "candidate"), started))
    saved: dict[str, Any] = {"direct": [], "proxied": [], "frozen": []}
    try:
        for number in range(1, args.rounds + 1):
            flush(targets)
            saved["direct"].append(bench_run(targets["primary"].server.port, args.requests))
            saved.setdefault("direct_light", []).append(
                bench_run(targets["primary"].server.port, LIGHT_REQUESTS, LIGHT_TESTS, 1))
            saved["proxied"].append(proxied(targets, args.requests, light=LIGHT_REQUESTS, extra=extra))
            saved["frozen"].append(proxied(targets, args.requests, freeze=targets["candidate"], extra=extra))
            print(f"round {number}/{args.rounds} done", flush=True)
        if args.profile:
            saved["profiled"] = proxied(targets, args.requests, profile_s=args.profile, extra=extra)
    finally:
        for target in started:
            target.stop()
    print("\n" + render(summarize_rows(saved["direct"]), summarize_rows([r["rows"] for r in saved["proxied"]]),
                        summarize_rows([r["rows"] for r in saved["frozen"]]), args.rounds))
    print("\n" + render_light(summarize_rows(saved["direct_light"]),
                              summarize_rows([r["light"] for r in saved["proxied"]])))
    for run in saved["proxied"]:
        rss = [kb for _, kb in run["rss_kb"]]
        print(f"proxied: {run['totals']['commands']:,} commands compared {run['totals']['calls']:,}, "
              f"different {run['totals']['different']}, noise {run['totals']['noise']}, dropped {run['candidate']['dropped']}, "
              f"proxy RSS max {max(rss) / 1024 if rss else 0:.0f} MB")
    print(render_frozen(saved["frozen"]))
    if "profiled" in saved:
        print("\n" + render_profile(saved["profiled"]["profile"]))
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(saved, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
