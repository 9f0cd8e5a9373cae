"""What a run costs a server that holds the application's data: `python -m bench.foreign_keys [--keys N]`.

Runs the default scenarios in safe mode (servers the tool did not start, no --allow-server-changes), as a
user pointing the tool at staging would, first against two empty servers, then against the same two
servers holding N foreign keys (1,000,000 by default, loaded with DEBUG POPULATE on these bench-owned
servers), and prints both wall times and their ratio (target: <= 1.2). The tool never walks the keyspace:
its own keys are deleted by name, foreign-key checks read INFO keyspace, keyspace-wide SCAN and KEYS probes
are skipped beside foreign keys, and one final SCAN sweep with large pages catches stragglers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from app import config
from app.provision import embedded_binary
from app.servers import EmbeddedServer

ROOT = Path(__file__).resolve().parent.parent


def timed_run(servers: dict[str, EmbeddedServer]) -> float:
    with tempfile.TemporaryDirectory(prefix="rvc-bench-") as out:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "app.cli", "--redis", servers["redis"].url, "--valkey",
                               servers["valkey"].url, "--out", out], cwd=ROOT, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"the run failed: {proc.stderr.strip()[-300:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    servers = {role: EmbeddedServer(embedded_binary(role), f"bench-{role}", maxmemory="2gb",
                                    extra_args=("--enable-debug-command", "yes")).start() for role in config.ROLES}
    try:
        empty = [timed_run(servers) for _ in range(args.rounds)]
        for srv in servers.values():
            with redis.Redis(port=srv.port) as conn:
                conn.execute_command("DEBUG", "POPULATE", args.keys, "app")
        loaded = [timed_run(servers) for _ in range(args.rounds)]
        for srv in servers.values():
            with redis.Redis(port=srv.port) as conn:
                assert conn.dbsize() == args.keys, "the run changed the foreign keys"
    finally:
        for srv in servers.values():
            srv.stop()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end")
    print(f"empty servers:           " + ", ".join(f"{t:.1f} s" for t in empty))
    print(f"{args.keys:,} foreign keys: " + ", ".join(f"{t:.1f} s" for t in loaded))
    print(f"ratio (best of each): {min(loaded) / min(empty):.2f} (target <= 1.2)")


if __name__ == "__main__":
    main()
