"""`./rvc migrate [--rdb dump.rdb] [--keys N] ...`: rehearse moving data Redis 7.2 -> Valkey 9.0 and back
by every route, on servers the tool starts, and write the reports.

Exit codes: 0 completed, every route that moved data verified with no mismatch; 1 a route failed, a
route moved data with mismatches, or the run did not complete; 2 bad command line (bad flag, missing
or unreadable file); 3 a server could not be set up; 5 the reports could not be written;
130 interrupted (Ctrl-C or SIGTERM; every server is stopped, the partial reports are written).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app import config
from app.migration import settings
from app.migration.dataset import DatasetError
from app.migration.processes import StartRefused
from app.migration.rehearsal import Interrupted, RehearsalOptions, default_binaries, rehearse
from app.migration.settings import DIRECTIONS, FAILED, WORKS, DatasetSpec
from app.provision import ProvisionError
from app.render.migration import render_table
from app.servers import ServerStartError
from app.subcommand import SignalsRaise, add_output_options, begin, publish
from app.test_runner import (EXIT_FAIL, EXIT_INTERRUPTED, EXIT_OK, EXIT_SETUP, UsageError,
                             UsageParser, fail)

PROG = "./rvc migrate"
# What an RDB file starts with: REDIS or VALKEY and a format version (REDIS0011, VALKEY080).
RDB_SIGNATURE = re.compile(rb"^(REDIS|VALKEY)\d{3,4}")
DIRECTION_NAMES = {"forward": settings.FORWARD, "rollback": settings.ROLLBACK, **{d: d for d in DIRECTIONS}}
MAX_KEYS = 50_000_000


def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(prog=PROG, description="Rehearse moving data Redis 7.2 -> Valkey 9.0 and back (rollback) by "
                                       "every route, on servers the tool starts; verify every key.")
    p.add_argument("--rdb", metavar="FILE", help="use this RDB snapshot as the data set (default: a generated one)")
    p.add_argument("--keys", type=int, default=DatasetSpec().keys, metavar="N",
                   help=f"size of the generated data set (default {DatasetSpec().keys:,})")
    p.add_argument("--routes", metavar="LIST", help=f"comma-separated, from: {', '.join(settings.ROUTES)}")
    p.add_argument("--directions", metavar="LIST",
                   help="comma-separated: forward (redis_to_valkey), rollback (valkey_to_redis); default both")
    p.add_argument("--redis-server", metavar="PATH", help="start this redis-server binary instead of the embedded one")
    p.add_argument("--valkey-server", metavar="PATH", help="start this valkey-server binary instead of the embedded one")
    add_output_options(p)
    return p


def _pick(listed: str | None, known: dict[str, str] | Sequence[str], what: str) -> list[str]:
    if not listed:
        return list(dict.fromkeys(known.values())) if isinstance(known, dict) else list(known)
    names = [n.strip() for n in listed.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise UsageError(f"unknown {what} {', '.join(unknown) or '(none given)'} (known: {', '.join(known)})")
    picked = [known[n] for n in names] if isinstance(known, dict) else names
    order = list(settings.ROUTES) + list(DIRECTIONS)
    return sorted(dict.fromkeys(picked), key=order.index)


def check_rdb(path: str) -> Path:
    """The snapshot must exist, be readable and start like an RDB file."""
    rdb = Path(path)
    if not rdb.is_file():
        raise UsageError(f"--rdb {path}: no such file")
    try:
        with open(rdb, "rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise UsageError(f"--rdb {path}: cannot read it ({exc.strerror or exc})") from exc
    if not RDB_SIGNATURE.match(head):
        raise UsageError(f"--rdb {path}: not an RDB file (it starts with {head[:9]!r}, not REDIS or VALKEY "
                         "and a version)")
    return rdb


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    args = build_parser().parse_args(list(argv))
    if not 1 <= args.keys <= MAX_KEYS:
        raise UsageError(f"--keys must be between 1 and {MAX_KEYS:,}")
    args.route_names = _pick(args.routes, list(settings.ROUTES), "route")
    args.direction_names = _pick(args.directions, DIRECTION_NAMES, "direction")
    args.rdb_path = check_rdb(args.rdb) if args.rdb else None
    for role in config.ROLES:
        path = getattr(args, f"{role}_server")
        if path and not Path(path).is_file():
            raise UsageError(f"--{role}-server {path}: no such file")
    return args


def exit_code(document: dict[str, Any]) -> int:
    matrix = document["migration"]["matrix"]
    broken = any(c["status"] == FAILED or (c["status"] == WORKS and c.get("mismatches")) for c in matrix)
    return EXIT_FAIL if broken or not document.get("completed") else EXIT_OK


def _progress(direction: str, step: str, phase: str) -> None:
    print(f"migrate: {direction} {step} {phase}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    start = begin(parse_args, argv)
    if isinstance(start, int):
        return start
    args, run_id, out_dir, json_path = start.args, start.run_id, start.out_dir, start.json_path
    signals = SignalsRaise(Interrupted).install()
    try:
        binaries, sources = default_binaries({role: getattr(args, f"{role}_server") for role in config.ROLES})
        options = RehearsalOptions(binaries=binaries, sources=sources, spec=DatasetSpec(keys=args.keys),
                                   rdb=args.rdb_path, routes=args.route_names, directions=args.direction_names)

        def progress(direction: str, step: str, phase: str) -> None:
            signals.checkpoint()  # between steps: a signal swallowed inside the last one stops the run here
            _progress(direction, step, phase)

        document = rehearse(options, run_id=run_id, progress=progress)
        signals.mark(document)
    except (ProvisionError, ServerStartError, StartRefused, DatasetError) as exc:
        return fail(str(exc), EXIT_SETUP)
    except Interrupted as exc:
        return fail(f"interrupted by {exc}; servers stopped", EXIT_INTERRUPTED)
    finally:
        signals.restore()
    code = exit_code(document)
    if document.get("interrupted"):
        code = fail(f"interrupted by {document['interrupted']}; servers stopped, partial results kept",
                    EXIT_INTERRUPTED)
    return publish(document, out_dir, json_path, 0, table=lambda doc, _limit: render_table(doc)) or code


if __name__ == "__main__":
    sys.exit(main())
