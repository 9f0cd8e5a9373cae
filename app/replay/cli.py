"""./rvc replay FILE... : replay captured commands on Redis, a second Redis (the noise control) and
Valkey, and report where Valkey answers differently.

Exit codes as the main runner: 0 replayed; 1 the replay did not complete; 2 bad command line or an
unreadable capture; 3 a server could not be set up (or refused the starting data); 4 a target
unreachable or not writable; 5 reports unwritable; 6 --fail-on-new found an undocumented difference;
130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app import config
from app.captures import RDB, CaptureError, open_capture
from app.provision import ProvisionError
from app.replay.run import ReplayError, ReplayInterrupted, replay_files
from app.replay.servers import ReplayServers, StartingDataRefused, replay_servers
from app.servers import ServerStartError
from app.subcommand import SignalsRaise, add_output_options, add_tls_options, begin, publish
from app.targets import TargetError
from app.test_runner import (EXIT_FAIL, EXIT_NEW, EXIT_OK, EXIT_SETUP, EXIT_TARGET, EXIT_USAGE,
                             EXIT_INTERRUPTED, UsageError, UsageParser, fail, tls_options)

DEFAULT_BLOCK_TIMEOUT_S = 1.0
BAD_LINES_SHOWN = 10  # on stderr; all are counted, the first 20 per file are in the reports


def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(prog="rvc replay", description="Replay captured commands (redis-cli MONITOR output, a command "
                "file, an AOF or a multi-part AOF folder, also .gz) on Redis, a second Redis process (noise "
                "control) and Valkey; report where Valkey answers differently.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--rdb", metavar="PATH", help="start every server from this RDB snapshot (default: empty)")
    p.add_argument("--redis-server", metavar="PATH", help="start this redis-server binary instead of the embedded one")
    p.add_argument("--valkey-server", metavar="PATH", help="start this valkey-server binary instead of the embedded one")
    p.add_argument("--redis", metavar="URL", help="replay on a running Redis (needs --allow-server-changes, empty)")
    p.add_argument("--valkey", metavar="URL", help="replay on a running Valkey (needs --allow-server-changes, empty)")
    p.add_argument("--redis-control", metavar="URL", help="a running second Redis of the same build, the noise "
                   "control (with --redis)")
    p.add_argument("--allow-server-changes", action="store_true",
                   help="allow writing to servers the tool did not start (only when they hold no keys)")
    add_output_options(p)
    p.add_argument("--timeout", type=float, default=config.DEFAULT_COMMAND_TIMEOUT_S, metavar="S",
                   help="seconds to wait for any reply before the replay stops")
    p.add_argument("--block-timeout", type=float, default=DEFAULT_BLOCK_TIMEOUT_S, metavar="S",
                   help="longest wait of a blocking command (BLPOP 0, XREAD BLOCK 0, WAIT are cut to this)")
    p.add_argument("--fail-on-new", action="store_true", help="exit 6 when an undocumented difference is found")
    p.add_argument("--max-differences", type=int, default=12, metavar="N", help="findings listed per class")
    add_tls_options(p)
    return p


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    args = build_parser().parse_args(list(argv))
    for flag, value in (("--timeout", args.timeout), ("--block-timeout", args.block_timeout)):
        if value <= 0:
            raise UsageError(f"{flag} must be positive")
    if args.block_timeout >= args.timeout:
        raise UsageError("--block-timeout must be shorter than --timeout")
    for role in config.ROLES:
        if getattr(args, role) and getattr(args, f"{role}_server"):
            raise UsageError(f"--{role} and --{role}-server exclude each other")
    if args.redis_control and not args.redis:
        raise UsageError("--redis-control needs --redis (with the embedded Redis the tool starts its own control)")
    missing = [f for f in [*args.files, *([args.rdb] if args.rdb else [])] if not Path(f).exists()]
    if missing:
        raise UsageError(f"no such file: {missing[0]}")
    return args


def starting_data(args: argparse.Namespace) -> tuple[Path | None, list[str], list[Any]]:
    """The snapshot the servers start from (--rdb, or a capture's RDB preamble or base), the captures
    that carry it, and the opened captures (kept open: their extracted RDB lives as long as they do)."""
    rdb = Path(args.rdb) if args.rdb else None
    carriers, opened = [], []
    for path in args.files:
        try:
            capture = open_capture(path)
        except CaptureError as exc:
            raise UsageError(str(exc)) from None
        opened.append(capture)
        if capture.starting_data is None:
            continue
        if capture.format == RDB and len(args.files) == 1 and rdb is None:
            raise UsageError(f"{path} is an RDB snapshot with no commands: give it as --rdb with a capture to replay")
        if rdb is not None:
            raise UsageError(f"{path} carries its own starting data (an RDB preamble or base) and so does "
                             f"{'--rdb' if args.rdb else 'another capture'}: give one")
        rdb = capture.starting_data
        carriers.append(path)
    if rdb is not None and (args.redis or args.valkey):
        raise UsageError("starting data can only be loaded into servers the tool starts (not with --redis/--valkey)")
    return rdb, carriers, opened


def main(argv: Sequence[str] | None = None) -> int:
    start = begin(parse_args, argv)
    if isinstance(start, int):
        return start
    args, run_id, out_dir, json_path = start.args, start.run_id, start.out_dir, start.json_path
    servers, opened, document, code = ReplayServers(), [], None, EXIT_OK
    signals = SignalsRaise(ReplayInterrupted).install()
    try:
        rdb, carriers, opened = starting_data(args)
        tls = _tls(args)
        servers = replay_servers(redis_url=args.redis, valkey_url=args.valkey, control_url=args.redis_control,
                                 redis_path=args.redis_server, valkey_path=args.valkey_server, rdb=rdb, tls=tls)
        document = replay_files(args.files, servers.targets, timeout_s=args.timeout,
                                block_timeout_s=args.block_timeout, allow_server_changes=args.allow_server_changes,
                                run_id=run_id, preloaded=carriers)
        signals.mark(document)
        code = EXIT_OK if document["completed"] else EXIT_FAIL
        if document.get("interrupted"):
            code = fail(f"interrupted by {document['interrupted']}; servers stopped, partial results kept",
                        EXIT_INTERRUPTED)
        elif code == EXIT_OK and args.fail_on_new and document["summary"].get("new"):
            code = EXIT_NEW
    except UsageError as exc:
        code = fail(str(exc), EXIT_USAGE)
    except ReplayError as exc:
        code = fail(str(exc), EXIT_TARGET if "was not started" in str(exc) or "holds data" in str(exc) else EXIT_USAGE)
    except (ProvisionError, ServerStartError, StartingDataRefused) as exc:
        code = fail(str(exc), EXIT_SETUP)
    except TargetError as exc:
        code = fail(str(exc), EXIT_TARGET)
    except ReplayInterrupted as exc:
        code = fail(f"interrupted by {exc}; servers stopped", EXIT_INTERRUPTED)
    finally:
        servers.stop()
        for capture in opened:
            capture.close()
        signals.restore()
    if document is None:
        return code
    _print_bad_lines(document)
    return publish(document, out_dir, json_path, args.max_differences) or code


def _tls(args: argparse.Namespace) -> dict[str, str]:
    return tls_options(args)


def _print_bad_lines(document: dict[str, Any]) -> None:
    """Each bad line of the captures as one line on stderr (the first few; all are counted)."""
    shown = 0
    for entry in document.get("replay", {}).get("inputs", []):
        for text in entry.get("bad_line_examples", []):
            if shown < BAD_LINES_SHOWN:
                print(f"redis-valkey-compat: bad line, not replayed: {text}", file=sys.stderr)
            shown += 1
        if entry.get("bad_lines"):
            print(f"redis-valkey-compat: {entry['path']}: {entry['bad_lines']} bad line(s) not replayed; "
                  "the rest was replayed", file=sys.stderr)
