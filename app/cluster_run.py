"""Cluster mode: one cluster per role (embedded, or the user's own), the cluster scenarios on each, the
comparison, the same reports as a standalone run.

  run_cluster_scenarios()   measures: every cluster scenario on every cluster target; prints nothing
  cluster_document()        the whole run document, shaped like the standalone runner's
  main()                    `python -m app.cluster_run [--redis-cluster URL] [--valkey-cluster URL] ...`

Until the runner's `--cluster` flag is wired to these, main() is the way to run cluster mode (and what
the tests interrupt with SIGTERM). Clusters are started from the main thread (PDEATHSIG is per thread),
one after the other, and stopped in a finally that SIGINT and SIGTERM also reach.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

import redis
from redis.cluster import RedisCluster

from app import config
from app.cluster import (ClusterTarget, binary_cluster_target, embedded_cluster_target, external_cluster_target,
                         seed_client)
from app.document import conclude, describe_targets, finish, new_document, new_run_id, now
from app.identity import expected
from app.provision import ProvisionError
from app.render.reports import write_reports
from app.render.table import render_table
from app.scenarios import CLUSTER_SCENARIO_NAMES
from app.scenarios.cluster_support import ClusterOptions
from app.scenarios.support import CONFIG_JOURNAL, FAIL, result
from app.servers import ServerStartError
from app.targets import BadURL, TargetError
# The runner's own pieces: one interruption type, one command-line error style.
from app.signals import GUARD, Interrupted
from app.test_runner import UsageError, UsageParser, fail

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_SETUP, EXIT_TARGET, EXIT_OUTPUT = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130


# Standalone runs keep a journal on the server that a later run repairs from (app/journal.py); cluster
# runs do not yet, so the user is told what a killed run can leave behind.
UNJOURNALLED_CHANGES = ("{name}: changes on a cluster the tool did not start (CONFIG SET, slot moves, failovers) "
                        "are put back at the end of the run and on SIGINT/SIGTERM, but not after SIGKILL or a crash: "
                        "check notify-keyspace-events, CLUSTER SETSLOT ... STABLE and the node roles after such a run")


def load_cluster_scenario(name: str) -> Callable[..., dict[str, Any]]:
    if name not in CLUSTER_SCENARIO_NAMES:
        raise KeyError(name)
    return import_module(f"app.scenarios.{name}").run


def run_cluster_scenarios(targets: Sequence[ClusterTarget], names: Sequence[str] = CLUSTER_SCENARIO_NAMES, *,
                          clients: dict[str, RedisCluster], prefix: str, allow_server_changes: bool = False,
                          progress: Callable[[str, str], None] | None = None,
                          results: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """target name -> scenario -> result, every scenario on every target in turn. Prints nothing.

    `clients` maps target names to their cluster clients (target.client()); `results` is filled as
    scenarios finish, so a caller interrupted mid-run keeps what was measured."""
    results = results if results is not None else {}
    for name in names:
        run = load_cluster_scenario(name)
        for target in targets:
            if progress:
                progress(name, target.name)
            options = ClusterOptions(prefix=prefix, allow_server_changes=target.owned or allow_server_changes,
                                     server_is_owned=target.owned, cluster=target.cluster)
            started = time.perf_counter()
            try:
                outcome = run(clients[target.name], options)
            except Exception as exc:  # noqa: BLE001 - the run goes on after a broken scenario
                outcome = result(name, FAIL, f"scenario raised {type(exc).__name__}: {exc}", {})
            except BaseException as exc:  # interrupted: keep what the scenario measured and put back
                partial = getattr(exc, "partial", None)
                if partial is not None:
                    results.setdefault(target.name, {})[name] = partial
                raise
            outcome["duration_s"] = round(time.perf_counter() - started, 3)
            results.setdefault(target.name, {})[name] = outcome
    return results


def cluster_layout(target: ClusterTarget, client: RedisCluster) -> dict[str, Any]:
    """What a cluster target's report entry adds to a server's: its nodes, and the start-up time."""
    nodes, primaries = client.get_nodes(), client.get_primaries()
    layout: dict[str, Any] = {"nodes": len(nodes), "primaries": len(primaries), "replicas": len(nodes) - len(primaries)}
    if target.cluster is not None and target.cluster.startup_s is not None:
        layout["startup_s"] = round(target.cluster.startup_s, 3)
    return layout


def cluster_document(targets: Sequence[ClusterTarget], names: Sequence[str], *, timeout_s: float,
                     allow_server_changes: bool = False, run_id: str | None = None,
                     progress: Callable[[str, str], None] | None = None) -> dict[str, Any]:
    """Identities, every cluster scenario on every target, the differences: the run document."""
    run_id = run_id or new_run_id()
    started = now()
    document = new_document("comparison", run_id, list(names))
    document["mode"] = "cluster"
    clients: dict[str, RedisCluster] = {}
    try:
        for target in targets:
            clients[target.name] = target.client(timeout_s)
        # A target's identity is one primary's: every node of an embedded cluster runs one binary.
        describe_targets(document, list(targets), {name: seed_client(c) for name, c in clients.items()})
        for target in targets:
            document["targets"][target.name]["cluster"] = cluster_layout(target, clients[target.name])
            if allow_server_changes and not target.owned:
                document["warnings"].append(UNJOURNALLED_CHANGES.format(name=target.name))
    except BaseException:
        for client in clients.values():
            client.close()
        raise
    try:
        run_cluster_scenarios(targets, names, clients=clients, prefix=f"rvc:{run_id.rsplit('-', 1)[-1]}:",
                              allow_server_changes=allow_server_changes, progress=progress,
                              results=document["results"])
        document["completed"] = True
    except Interrupted as exc:
        document["interrupted"] = str(exc)  # the scenario in progress has put back its slots and CONFIG
    finally:
        with GUARD.deferred():
            problems = CONFIG_JOURNAL.restore()
        document["warnings"].extend(f"CONFIG restore: {p}" for p in problems)
        conclude(document)
        finish(document, started)
        for client in clients.values():
            client.close()
    return document


# --- the command line (until the runner's --cluster flag calls the functions above) --------------------

def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(prog="python -m app.cluster_run",
                description="Compare Redis Cluster 7.2 and Valkey Cluster 9.0 the way a sharded application uses them.")
    for role in config.ROLES:
        p.add_argument(f"--{role}-cluster", metavar="URL", help=f"use your {role} cluster at any one of its nodes")
        p.add_argument(f"--{role}-server", metavar="PATH", help=f"start the embedded {role} cluster from this binary")
    p.add_argument("--scenarios", metavar="LIST", help=f"comma-separated, from: {', '.join(CLUSTER_SCENARIO_NAMES)}")
    p.add_argument("--out", metavar="DIR", help="run folder for the reports (default reports/<run id>)")
    p.add_argument("--allow-server-changes", action="store_true",
                   help="allow slot moves, failovers and CONFIG SET on clusters the tool did not start")
    p.add_argument("--timeout", type=float, default=config.DEFAULT_COMMAND_TIMEOUT_S, metavar="S",
                   help="per-command timeout in seconds")
    p.add_argument("--max-differences", type=int, default=12, metavar="N",
                   help="differences shown per scenario in the table (all are in the JSON)")
    return p


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    names = [n.strip() for n in (args.scenarios or "").split(",") if n.strip()] or list(CLUSTER_SCENARIO_NAMES)
    unknown = [n for n in names if n not in CLUSTER_SCENARIO_NAMES]
    if unknown:
        raise UsageError(f"unknown scenario {', '.join(unknown)} (known: {', '.join(CLUSTER_SCENARIO_NAMES)})")
    args.scenario_names = [n for n in CLUSTER_SCENARIO_NAMES if n in names]
    for role in config.ROLES:
        if getattr(args, f"{role}_cluster") and getattr(args, f"{role}_server"):
            raise UsageError(f"--{role}-cluster and --{role}-server exclude each other")
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    return args


def make_cluster_target(name: str, args: argparse.Namespace) -> ClusterTarget:
    """The two-target run's "redis" (the baseline) or "valkey" (the candidate) cluster."""
    fields: dict[str, Any] = {"role": config.BASELINE_ROLE if name == config.BASELINE else config.CANDIDATE_ROLE,
                              "expect": expected(name)}
    url = getattr(args, f"{name}_cluster")
    if url:
        target = external_cluster_target(name, url, **fields)
        with target.client(args.timeout) as probe:
            probe.ping()
        return target
    path = getattr(args, f"{name}_server")
    return binary_cluster_target(name, path, **fields) if path else embedded_cluster_target(name, **fields)


def print_progress(name: str, role: str) -> None:
    """One line per scenario start on stderr (a log, not a live line: this mode runs for minutes)."""
    print(f"cluster: {name} on {role}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except UsageError as exc:
        return fail(str(exc), EXIT_USAGE)
    GUARD.install()  # SIGINT, SIGTERM, SIGHUP, SIGQUIT: clusters stopped, slots and CONFIG put back
    targets: list[ClusterTarget] = []
    document: dict[str, Any] | None = None
    code = EXIT_OK
    run_id = new_run_id()
    out_dir = Path(args.out) if args.out else Path("reports") / run_id
    try:
        for role in config.ROLES:
            print(f"cluster: starting {role}", file=sys.stderr, flush=True)
            targets.append(make_cluster_target(role, args))
        document = cluster_document(targets, args.scenario_names, timeout_s=args.timeout,
                                    allow_server_changes=args.allow_server_changes, run_id=run_id,
                                    progress=print_progress)
        statuses = [r["status"] for per_role in document["results"].values() for r in per_role.values()]
        code = EXIT_FAIL if FAIL in statuses or not document["completed"] else EXIT_OK
        if document.get("interrupted"):
            code = fail(f"interrupted by {document['interrupted']}; clusters stopped, slots and CONFIG put back, "
                        "partial results kept", EXIT_INTERRUPTED)
    except (ProvisionError, ServerStartError) as exc:
        code = fail(str(exc), EXIT_SETUP)
    except BadURL as exc:
        code = fail(str(exc), EXIT_USAGE)
    except (TargetError, redis.RedisError, OSError) as exc:
        code = fail(str(exc), EXIT_TARGET)
    except Interrupted as exc:
        code = fail(f"interrupted by {exc}; clusters stopped", EXIT_INTERRUPTED)
    finally:
        with GUARD.deferred():  # a second signal must not leave a node running
            for target in targets:
                target.stop()
        GUARD.restore()
    if document is None:
        return code
    try:
        paths = write_reports(document, out_dir)
    except OSError as exc:
        print(render_table(document, args.max_differences))
        return fail(f"cannot write the reports to {out_dir}: {exc.strerror or exc}", EXIT_OUTPUT)
    print(render_table(document, args.max_differences))
    print(f"reports in {out_dir}: " + ", ".join(p.name for p in paths.values()))
    return code


if __name__ == "__main__":
    sys.exit(main())
