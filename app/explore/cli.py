"""./rvc explore: random command sequences generated from the servers' own COMMAND DOCS, run on Redis, a
second Redis process (the noise control) and Valkey, every divergence shrunk to a minimal repro.

Exit codes as the comparison's: 0 completed, 1 not completed, 2 bad command line, 3 a server could not be
started, 5 reports unwritable, 6 with --fail-on-new: a NEW finding, 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from app import config
from app.document import now
from app.explore.coverage import coverage_report
from app.explore.docs import runnable
from app.explore.exploration import Settings
from app.explore.judge import signature_text
from app.explore.report import build_document
from app.explore.repros import plan_repros, write_repros
from app.explore.runner import ExploreServerError
from app.explore.scenario_coverage import load_scenario_coverage
from app.explore.session import Session, open_session
from app.explore.strategies import FAMILY_GROUPS, family_of
from app.identity import read_identity
from app.provision import ProvisionError
from app.servers import ServerStartError
from app.subcommand import SignalsRaise, add_output_options, begin, publish
from app.targets import Target, embedded_trio
from app.test_runner import (EXIT_FAIL, EXIT_INTERRUPTED, EXIT_NEW, EXIT_OK, EXIT_SETUP, EXIT_USAGE, Interrupted,
                             UsageError, UsageParser, fail)

DEFAULT_SECONDS = 120.0
DEFAULT_TIMEOUT_S = 1.0  # a reply slower than this is a server that does not answer (no command here is slower)


def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(prog="rvc explore", description="Random command sequences from the servers' own COMMAND DOCS, "
                "run on Redis, its noise control and Valkey; every difference shrunk to a minimal repro.")
    p.add_argument("--seconds", type=float, metavar="N",
                   help=f"time budget, shrinking included (default {DEFAULT_SECONDS:g} unless --sequences is given)")
    p.add_argument("--sequences", type=int, metavar="N",
                   help="run exactly N sequences (the same seed then gives the same findings)")
    p.add_argument("--seed", type=int, default=1, help="seed of the sequences (default 1)")
    p.add_argument("--families", metavar="LIST",
                   help=f"only commands of these COMMAND DOCS groups: {', '.join(sorted(FAMILY_GROUPS))}")
    p.add_argument("--redis-server", metavar="PATH", help="the baseline's binary (default: the embedded Redis)")
    p.add_argument("--valkey-server", metavar="PATH", help="the candidate's binary (default: the embedded Valkey)")
    p.add_argument("--allow-same-product", action="store_true",
                   help="accept a candidate of the baseline's product (two Redis binaries, or one twice)")
    p.add_argument("--no-shrink", action="store_true", help="record divergences without shrinking them")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                   help=f"seconds to wait for a reply before a server counts as not answering (default {DEFAULT_TIMEOUT_S:g})")
    add_output_options(p, "the reports and repros")
    p.add_argument("--fail-on-new", action="store_true", help="exit 6 when a NEW (undocumented) finding is found")
    p.add_argument("--max-differences", type=int, default=12, metavar="N", help="findings listed per class in the table")
    return p


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.seconds is None and args.sequences is None:
        args.seconds = DEFAULT_SECONDS
    if args.seconds is not None and (not math.isfinite(args.seconds) or args.seconds <= 0):
        raise UsageError("--seconds must be a positive number")
    if args.sequences is not None and args.sequences <= 0:
        raise UsageError("--sequences must be a positive number")
    if not math.isfinite(args.timeout) or args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if args.max_differences < 0:
        raise UsageError("--max-differences must be 0 or more")
    args.family_list = None
    if args.families is not None:
        names = [family_of(f) for f in args.families.split(",") if f.strip()]
        unknown = [n for n in names if n not in FAMILY_GROUPS]
        if not names or unknown:
            raise UsageError(f"--families {args.families}: unknown {', '.join(unknown) or 'list'} "
                             f"(known: {', '.join(sorted(FAMILY_GROUPS))})")
        args.family_list = names
    for flag in ("redis_server", "valkey_server"):
        path = getattr(args, flag)
        if path and not Path(path).is_file():
            raise UsageError(f"--{flag.replace('_', '-')} {path}: no such file")
    return args


def _identities(targets: list[Target]) -> tuple[dict[str, redis.Redis], dict[str, dict[str, Any]]]:
    clients = {t.name: t.client(config.DEFAULT_COMMAND_TIMEOUT_S) for t in targets}
    return clients, {name: read_identity(client) for name, client in clients.items()}


def explore(args: argparse.Namespace, targets: list[Target], out_dir: Path) -> dict[str, Any]:
    """Measure: explore, shrink, and build the document (repros written under out_dir). Prints nothing."""
    started = now()
    clients, identities = _identities(targets)
    try:
        baseline, _control, candidate = targets
        products = {t.name: identities[t.name]["product"] for t in (baseline, candidate)}
        if products[candidate.name] == products[baseline.name] and not args.allow_same_product:
            raise UsageError(f"the candidate is {products[candidate.name]}, like the baseline: pass "
                             "--allow-same-product to explore two binaries of one product")
        settings = Settings(seed=args.seed, seconds=args.seconds, sequences=args.sequences, shrink=not args.no_shrink)
        session = open_session(targets, identities, settings, families=args.family_list, timeout_s=args.timeout)
        completed, interrupted, problems = True, "", []
        try:
            session.exploration.run()
        except Interrupted as exc:
            completed, interrupted = False, str(exc)
        finally:
            problems = session.close()
        document = _document(args, session, products, clients, out_dir, started, completed)
        document["warnings"].extend(problems)
        if interrupted:
            document["interrupted"] = interrupted
        return document
    finally:
        for client in clients.values():
            client.close()


def _document(args: argparse.Namespace, session: Session, products: dict[str, str], clients: dict[str, redis.Redis],
              out_dir: Path, started: Any, completed: bool) -> dict[str, Any]:
    """Coverage, exclusions, repros and the report document of a finished (or interrupted) exploration."""
    judge, generator, exclusions = session.judge, session.generator, session.exclusions
    outcome = session.exploration.outcome
    stats = judge.comparator.command_stats()
    explored = {name for name, s in stats.items() if s["calls"] > s["skipped"]}
    coverage = coverage_report({name: runnable(session.servers.docs[name]["list"]) for name in products}, products,
                               exclusions, explored, {name: set(done) for name, done in judge.succeeded.items()},
                               load_scenario_coverage())
    coverage["generated"] = len(generator.generated_names)
    excluded = {"commands": dict(exclusions.commands), "forbidden_calls": list(exclusions.forbidden),
                "config_set_allowed": sorted(exclusions.config_allowed), "config_set_never": exclusions.config_never,
                "calls_discarded": generator.discarded}
    found = sorted((f for f in outcome.findings.values() if f.repro), key=lambda f: (f.first_sequence, f.signature))
    repro_paths = plan_repros([f.signature for f in found])
    document = build_document(run_id=out_dir.name, started=started, targets=session.targets, clients=clients,
                              outcome=outcome, judge=judge, settings=session.exploration.settings,
                              families=args.family_list, coverage=coverage, exclusions=excluded,
                              repro_paths=repro_paths, out_dir=out_dir, completed=completed)
    write_repros(out_dir, document["explore"]["findings"], {signature_text(f.signature): f.repro for f in found},
                 args.seed)
    return document


def main(argv: Sequence[str] | None = None) -> int:
    start = begin(parse_args, argv)
    if isinstance(start, int):
        return start
    args, out_dir, json_path = start.args, start.out_dir, start.json_path
    signals = SignalsRaise(Interrupted).install()
    targets: list[Target] = []
    document: dict[str, Any] | None = None
    try:
        targets = embedded_trio(args.redis_server, args.valkey_server)
        document = explore(args, targets, out_dir)
        signals.mark(document)
    except UsageError as exc:
        return fail(str(exc), EXIT_USAGE)
    except (ProvisionError, ServerStartError, ExploreServerError) as exc:
        return fail(str(exc), EXIT_SETUP)
    except Interrupted as exc:
        return fail(f"interrupted by {exc}; servers stopped", EXIT_INTERRUPTED)
    finally:
        for target in targets:
            target.stop()
        signals.restore()
    written = publish(document, out_dir, json_path, args.max_differences, also_written=", repros/")
    if written != EXIT_OK:
        return written
    if document.get("interrupted"):
        return fail(f"interrupted by {document['interrupted']}; servers stopped, partial results kept", EXIT_INTERRUPTED)
    if not document.get("completed"):
        return EXIT_FAIL
    if args.fail_on_new and document["summary"].get("new"):
        return EXIT_NEW
    return EXIT_OK
