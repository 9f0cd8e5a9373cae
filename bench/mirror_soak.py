"""The mirror over a long run: the proxy's memory and counters while traffic that differs flows for
many minutes, with the candidate frozen now and then.

Usage: python -m bench.mirror_soak [--minutes 30] [--freeze-every 600] [--json PATH]
  load        redis-benchmark -t set,get,lpush,hset -c 20 -d 100 -r 1000000, looped, through the proxy
  varied      one redis-py client through the proxy: commands whose replies differ between Redis and
              Valkey (a Lua error text, OBJECT ENCODING, CLIENT INFO), noise (SPOP, SCAN cursors), and
              unknown command names never seen before (the bounded name cache), with ever new arguments
  freeze      every --freeze-every seconds the candidate is stopped (SIGSTOP) for 10 s: commands are
              dropped and the candidate falls out of sync, as in a staging environment with a stalled host
Every --sample-every seconds: the proxy's RSS and the counters of its periodic report. Issue #13 asks
for memory bounded over hours (examples capped per signature, counters only beyond): the figure to
read is the RSS after the first minutes against the RSS at the end. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from app.provision import embedded_benchmark
from app.targets import embedded_trio
from bench.mirror import FREEZE_FOR_S, SIZE, TESTS, Proxy, flush, rss_kib
from bench.report import table

LOAD_CLIENTS = 20
KEYSPACE = 1_000_000
VARIED_KEYS = 10_000  # the varied client's keys wrap around: the servers' memory stays flat too
REPORT_EVERY_S = 30
LUA_ERROR = "return redis.call('nosuchcommand')"


def start_load(port: int) -> subprocess.Popen:
    tool = embedded_benchmark()
    return subprocess.Popen([str(tool.path), "-h", "127.0.0.1", "-p", str(port), "-t", TESTS, "-c", str(LOAD_CLIENTS),
                             "-d", str(SIZE), "-r", str(KEYSPACE), "-l", "-q"], env={**os.environ, **tool.env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class VariedClient(threading.Thread):
    """Replies that differ, noise, and names never seen before, each round with new arguments."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.rounds = 0
        self.errors = 0
        self.running = True

    def run(self) -> None:
        conn = redis.Redis(port=self.port, protocol=2)
        while self.running:
            n = self.rounds
            key = f"soak:{n % VARIED_KEYS}"
            try:
                pipe = conn.pipeline(transaction=False)
                pipe.hset(f"{key}:h", mapping={f"f{i}": "x" * (n % 90) for i in range(n % 7 + 1)})
                pipe.object("encoding", f"{key}:h")
                pipe.sadd(f"{key}:s", *range(n % 20 + 2))
                pipe.spop(f"{key}:s")
                pipe.scan(0, match="soak:*", count=50)
                pipe.execute_command("CLIENT", "INFO")
                pipe.execute(raise_on_error=False)
                for command in (("EVAL", LUA_ERROR, 0), (f"NOSUCH{n}", n)):
                    try:
                        conn.execute_command(*command)
                    except redis.ResponseError:
                        pass  # the error reply is the point: it is compared by the proxy
            except (redis.ConnectionError, redis.TimeoutError):
                self.errors += 1
                time.sleep(0.1)
            self.rounds += 1
        conn.close()


def freezer(pid: int, every_s: float, stop: threading.Event, log: list[float]) -> None:
    started = time.monotonic()
    while not stop.wait(every_s):
        os.kill(pid, signal.SIGSTOP)
        log.append(round(time.monotonic() - started))
        try:
            stop.wait(FREEZE_FOR_S)
        finally:
            os.kill(pid, signal.SIGCONT)


def sample(proxy: Proxy, started: float, varied: VariedClient) -> dict[str, Any]:
    try:
        document = json.loads((proxy.out / "report.json").read_text())
    except (OSError, ValueError):
        document = {}
    section = document.get("mirror", {})
    totals = section.get("totals", {})
    kb = rss_kib(proxy.process.pid)
    return {"minute": round((time.monotonic() - started) / 60, 1), "rss_mb": round(kb / 1024, 1),
            "commands": totals.get("commands", 0), "different": totals.get("different", 0),
            "noise": totals.get("noise", 0), "dropped": totals.get("dropped", 0),
            "command_names": len(section.get("commands", {})), "findings": len(document.get("findings", [])),
            "varied_rounds": varied.rounds, "client_errors": varied.errors}


def render(samples: list[dict[str, Any]], freezes: list[float]) -> str:
    headers = list(samples[0])
    rows = [[f"{s[h]:,}" if isinstance(s[h], int) else str(s[h]) for h in headers] for s in samples]
    settled = [s["rss_mb"] for s in samples if s["minute"] >= 5] or [s["rss_mb"] for s in samples]
    return (table(headers, rows) + f"\ncandidate frozen for {FREEZE_FOR_S:.0f} s at second(s) {freezes}"
            + f"\nproxy RSS from minute 5: {min(settled)} to {max(settled)} MB; at the end {samples[-1]['rss_mb']} MB")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.mirror_soak", description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--freeze-every", type=float, default=600.0, metavar="S")
    p.add_argument("--sample-every", type=float, default=60.0, metavar="S")
    p.add_argument("--json", metavar="PATH")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}", flush=True)
    started_targets = embedded_trio()
    targets = dict(zip(("primary", "secondary", "candidate"), started_targets))
    out = Path(tempfile.mkdtemp(prefix="rvc-bench-soak-"))
    stop = threading.Event()
    freezes: list[float] = []
    samples: list[dict[str, Any]] = []
    load = proxy = None
    try:
        flush(targets)
        proxy = Proxy(targets, out, ("--report-every", str(REPORT_EVERY_S)))
        load = start_load(proxy.port)
        varied = VariedClient(proxy.port)
        varied.start()
        threading.Thread(target=freezer, args=(targets["candidate"].server.process.pid, args.freeze_every, stop,
                                               freezes), daemon=True).start()
        began = time.monotonic()
        while time.monotonic() - began < args.minutes * 60:
            time.sleep(min(args.sample_every, max(0.0, args.minutes * 60 - (time.monotonic() - began))))
            samples.append(sample(proxy, began, varied))
            print(json.dumps(samples[-1]), flush=True)
        varied.running = False
        varied.join(timeout=10)
    finally:
        stop.set()
        if load is not None:
            load.terminate()
            load.wait(timeout=30)
        final = proxy.stop() if proxy is not None else {}
        shutil.rmtree(out, ignore_errors=True)
        for target in started_targets:
            target.stop()
    print("\n" + render(samples, freezes))
    totals = final.get("mirror", {}).get("totals", {})
    print(f"final report: {totals}")
    if args.json:
        Path(args.json).write_text(json.dumps({"samples": samples, "freezes": freezes, "final_totals": totals}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
