"""./rvc impact --redis URL : which known Redis 7.2 -> Valkey 9.0 differences this application meets.

Read-only on the application's server (safe on production). Exit codes: 0 done; 2 bad command line or
an unreadable --report; 3 the embedded servers could not be set up; 4 the server is unreachable or
refused a read; 5 reports unwritable; 130 interrupted.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from app import config
from app.impact.run import ImpactError, run_impact
from app.provision import ProvisionError
from app.servers import ServerStartError
from app.subcommand import SignalsRaise, add_output_options, add_tls_options, begin, publish
from app.targets import TargetError, password_variable
from app.test_runner import (EXIT_INTERRUPTED, EXIT_SETUP, EXIT_TARGET, EXIT_USAGE, Interrupted,
                             UsageError, UsageParser, fail, tls_options)

MAX_SAMPLE = 100_000  # --sample is bounded: each sampled key costs the server a few cheap reads


def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(prog="rvc impact", description="Rank the known Redis -> Valkey differences by what a running "
                "application calls (INFO commandstats), compare its config with Valkey's defaults and, with "
                "--sample, estimate its memory on Valkey. Only reads the server.")
    p.add_argument("--redis", metavar="URL", required=True,
                   help=f"the application's server (password in the URL or {password_variable('redis')})")
    p.add_argument("--report", metavar="PATH", help="rank the differences of this report.json (default: a fresh "
                   "run of the default scenarios on the embedded servers)")
    p.add_argument("--sample", type=int, default=0, metavar="N",
                   help=f"look at the type and encoding of N keys found by SCAN (at most {MAX_SAMPLE:,}; no values read)")
    add_output_options(p)
    p.add_argument("--timeout", type=float, default=config.DEFAULT_COMMAND_TIMEOUT_S, metavar="S")
    p.add_argument("--max-differences", type=int, default=12, metavar="N")
    add_tls_options(p)
    return p


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    args = build_parser().parse_args(list(argv))
    if not 0 <= args.sample <= MAX_SAMPLE:
        raise UsageError(f"--sample must be between 0 and {MAX_SAMPLE:,}")
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    if args.report and not Path(args.report).is_file():
        raise UsageError(f"--report {args.report}: no such file")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    start = begin(parse_args, argv)
    if isinstance(start, int):
        return start
    args, run_id, out_dir, json_path = start.args, start.run_id, start.out_dir, start.json_path
    signals = SignalsRaise(Interrupted).install()
    try:
        document = run_impact(args.redis, sample=args.sample, report=Path(args.report) if args.report else None,
                              timeout_s=args.timeout, tls=tls_options(args), run_id=run_id)
        signals.checkpoint()
    except ImpactError as exc:
        return fail(str(exc), EXIT_USAGE)
    except (ProvisionError, ServerStartError) as exc:
        return fail(str(exc), EXIT_SETUP)
    except TargetError as exc:
        return fail(str(exc), EXIT_TARGET)
    except Interrupted as exc:
        return fail(f"interrupted by {exc}; nothing was changed on the server", EXIT_INTERRUPTED)
    finally:
        signals.restore()
    return publish(document, out_dir, json_path, args.max_differences)
