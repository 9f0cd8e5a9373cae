"""The command line: `./rvc [options]` compares; `./rvc SUBCOMMAND ...` runs one of the other tools.

Each subcommand lives in its own module with `main(argv) -> int`; this table is the only place that
names them, so adding one is a module and one line here.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib import import_module

# name -> (module, one-line description shown by `./rvc help`)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "versions": ("app.versions", "list the server versions that can be fetched and which are cached"),
    "migrate": ("app.migration.cli", "rehearse moving data Redis -> Valkey and back, by every route"),
    "explore": ("app.explore.cli", "random command sequences from COMMAND DOCS on Redis, its control and Valkey"),
    "replay": ("app.replay.cli", "replay captured commands (MONITOR, command file, AOF) on Redis and Valkey"),
    "impact": ("app.impact.cli", "rank the known differences by what a running application calls (read-only)"),
    "mirror": ("app.mirror.cli", "a proxy: serve the application from Redis, compare every reply with Valkey"),
}


CLUSTER_FLAG = "--cluster"
CLUSTER_URL_FLAGS = ("--redis-cluster", "--valkey-cluster")


def usage() -> str:
    lines = ["usage: ./rvc [options]            compare the servers (./rvc --help lists the options)",
             "       ./rvc test [pytest args]   run the test suite",
             "       ./rvc --cluster [options]  compare Redis Cluster and Valkey Cluster (python -m app.cluster_run --help)"]
    lines += [f"       ./rvc {name:<22} {about}" for name, (_, about) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "help":
        print(usage())
        return 0
    if args and args[0] in SUBCOMMANDS:
        module, _ = SUBCOMMANDS[args[0]]
        return int(import_module(module).main(args[1:]) or 0)
    if any(a == CLUSTER_FLAG or a.startswith(CLUSTER_URL_FLAGS) for a in args):
        # Cluster mode: clusters instead of servers, the cluster scenarios, the same reports.
        return int(import_module("app.cluster_run").main([a for a in args if a != CLUSTER_FLAG]) or 0)
    return int(import_module("app.test_runner").main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
