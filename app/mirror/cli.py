"""./rvc mirror: serve an application from Redis through a proxy, and compare every command with Valkey.

  ./rvc mirror --listen 127.0.0.1:6390 --primary redis://redis:6379/0 --candidate redis://valkey:6379/0 \\
               [--secondary redis://redis2:6379/0]
  ./rvc mirror                      # embedded: starts its own Redis, second Redis and Valkey

The application connects to --listen as if it were Redis. Stop with Ctrl-C or SIGTERM: the mirror's
normal end (exit 0), reports written. Exit codes otherwise as the comparison's (2 usage, 3 setup, 4 a
server unreachable or refusing, 5 reports unwritable, 6 --fail-on-new with NEW findings).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from app import config
from app.document import describe_targets, new_document, now
from app.mirror.collect import Collector
from app.mirror.policy import Limits
from app.mirror.proxy import Mirror
from app.mirror.report import Reporter
from app.mirror.shadow import Backend, Endpoint
from app.mirror.status import status_line
from app.provision import ProvisionError
from app.render.table import render_table
from app.servers import ServerStartError
from app.subcommand import SignalsRaise, add_output_options, begin
from app.stream_compare import MAX_EXAMPLES, MAX_SIGNATURES
from app.targets import Target, TargetError, check_reachable, embedded_trio, external_target
from app.test_runner import (EXIT_NEW, EXIT_OK, EXIT_OUTPUT, EXIT_SETUP, EXIT_TARGET, UsageError,
                             UsageParser, fail)  # the runner's parser: a usage error, one line

PRIMARY, CANDIDATE, SECONDARY = "primary", "candidate", "secondary"
DEFAULT_LISTEN = "127.0.0.1:0"  # port 0: a free one, printed
DEFAULT_REPORT_EVERY_S = 60.0
STATUS_EVERY_S = 1.0


def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(prog="./rvc mirror", description="A RESP proxy: the application is served by the primary "
                "(Redis), byte for byte; every command is also sent to the candidate (Valkey) and compared "
                "off the application's path.")
    p.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                   help="where the application connects (default a free port on 127.0.0.1, printed)")
    p.add_argument("--primary", metavar="URL", help="the Redis that serves the application (redis:// or rediss://)")
    p.add_argument("--candidate", metavar="URL", help="the Valkey compared with it")
    p.add_argument("--secondary", metavar="URL",
                   help="a second Redis with the same data: the noise control (what it differs in is noise)")
    p.add_argument("--redis-server", metavar="PATH", help="embedded mode: start this redis-server binary")
    p.add_argument("--valkey-server", metavar="PATH", help="embedded mode: start this valkey-server binary")
    add_output_options(p)
    p.add_argument("--report-every", type=float, default=DEFAULT_REPORT_EVERY_S, metavar="S",
                   help="write the reports every S seconds as well as at the end (default %(default)g)")
    p.add_argument("--max-pending", type=int, default=Limits.max_pending, metavar="N",
                   help="commands the candidate may owe before new ones are dropped from comparison")
    p.add_argument("--lost-after", type=float, default=Limits.lost_after_s, metavar="S",
                   help="a server that answers nothing for S seconds is lost (default %(default)g)")
    p.add_argument("--own-primary-connections", action="store_true",
                   help="give every application connection its own primary connection (default: stateless "
                        "ones share one pipelined connection, fewer system calls; CLIENT LIST on the primary "
                        "then shows the mirror's connections, not the application's)")
    p.add_argument("--fail-on-new", action="store_true", help="exit 6 when an undocumented difference was found")
    p.add_argument("--max-differences", type=int, default=12, metavar="N", help="findings listed at the end")
    return p


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    urls = [args.primary, args.candidate]
    if any(urls) and not all(urls):
        raise UsageError("--primary and --candidate go together (or neither: embedded mode)")
    if args.secondary and not args.primary:
        raise UsageError("--secondary needs --primary and --candidate")
    if args.primary and (args.redis_server or args.valkey_server):
        raise UsageError("--redis-server/--valkey-server are for embedded mode, not with URLs")
    args.host, args.port = parse_listen(args.listen)
    if args.report_every <= 0 or args.lost_after <= 0 or args.max_pending <= 0:
        raise UsageError("--report-every, --lost-after and --max-pending must be positive")
    return args


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen {text}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def endpoint(target: Target) -> Endpoint:
    """Where the mirror connects for a target, with the mirror's own credentials (URL, else RVC_<NAME>_PASSWORD)."""
    parts = urlsplit(target.url)
    if parts.scheme == "unix":
        raise TargetError(f"{target.name}: unix:// sockets are not supported by the mirror; use redis://host:port")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise TargetError(f"{target.name}: bad URL {target.display_url()}: the path must be a database number")
    password = unquote(parts.password) if parts.password is not None else target.password
    username = unquote(parts.username) if parts.username else None
    return Endpoint(host=parts.hostname or "127.0.0.1", port=parts.port or 6379, username=username,
                    password=password, db=int(path or 0), tls=parts.scheme == "rediss")


def make_targets(args: argparse.Namespace) -> list[Target]:
    if args.primary:
        targets = [external_target(PRIMARY, args.primary, role=config.BASELINE_ROLE),
                   external_target(CANDIDATE, args.candidate, role=config.CANDIDATE_ROLE)]
        if args.secondary:
            targets.append(external_target(SECONDARY, args.secondary, role=config.CONTROL_ROLE, control_of=PRIMARY))
        return targets
    targets = embedded_trio(args.redis_server, args.valkey_server)  # redis, redis-control, valkey
    for target, name in zip(targets, (PRIMARY, SECONDARY, CANDIDATE)):
        target.name = name
    targets[1].control_of = PRIMARY
    return targets


def candidate_version(document: dict[str, Any]) -> str | None:
    identity = document["targets"][CANDIDATE]["identity"]
    return identity.get("version") if identity.get("product") == "valkey" else None


class Stop(Exception):
    """SIGINT or SIGTERM: the mirror's normal end."""


async def serve(args: argparse.Namespace, mirror: Mirror, reporter: Reporter, on_listen: Any) -> str:
    """Run until SIGINT/SIGTERM; returns the signal's name."""
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[str] = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda s=sig: stopped.done() or stopped.set_result(signal.Signals(s).name))
    host, port = await mirror.listen(args.host, args.port)
    on_listen(host, port)
    terminal = sys.stderr.isatty()
    next_report = time.monotonic() + args.report_every
    try:
        while not stopped.done():
            await asyncio.wait([stopped], timeout=STATUS_EVERY_S)
            mirror.sweep()
            if terminal:
                sys.stderr.write("\r\x1b[K" + status_line(mirror.snapshot()))
                sys.stderr.flush()
            if time.monotonic() >= next_report:
                reporter.write_in_background(mirror)
                next_report = time.monotonic() + args.report_every
    finally:
        if terminal:
            sys.stderr.write("\r\x1b[K")
        mirror.server.close()
        await mirror.drain(mirror.limits.drain_s)
        mirror.close()
    return stopped.result() if stopped.done() else "end"


def run_loop(coroutine: Any) -> Any:
    try:
        import uvloop  # a faster event loop when installed (app/requirements.txt pins it)
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def main(argv: Sequence[str] | None = None) -> int:
    start = begin(parse_args, argv, default_json=False)
    if isinstance(start, int):
        return start
    args, run_id, out_dir, json_path = start.args, start.run_id, start.out_dir, start.json_path
    targets: list[Target] = []
    signals = SignalsRaise(Stop).install()
    try:
        targets = make_targets(args)
        endpoints = {t.name: endpoint(t) for t in targets}
        clients = {t.name: t.client(config.DEFAULT_COMMAND_TIMEOUT_S) for t in targets}
        for target in targets:
            check_reachable(target, clients[target.name])
        template = new_document("mirror", run_id, ["mirror"])
        describe_targets(template, targets, clients)
        for client in clients.values():
            client.close()
        limits = Limits(max_pending=args.max_pending, lost_after_s=args.lost_after,
                        share_primary=not args.own_primary_connections)
        control = SECONDARY if SECONDARY in endpoints else None
        collector = Collector(PRIMARY, CANDIDATE, control, candidate_version(template), MAX_EXAMPLES, MAX_SIGNATURES,
                              limits.out_of_sync_judged_per_s)
        backends = [Backend(name, endpoints[name], limits) for name in (CANDIDATE, SECONDARY) if name in endpoints]
        mirror = Mirror(endpoints[PRIMARY], PRIMARY, backends, collector, limits)
        reporter = Reporter(template, out_dir, json_path, args.listen, now())

        def on_listen(host: str, port: int) -> None:
            reporter.listen = f"{host}:{port}"
            print(f"mirror: connect your application to redis://{host}:{port}/0 "
                  f"(primary {template['targets'][PRIMARY]['url']}, candidate {template['targets'][CANDIDATE]['url']})",
                  flush=True)

        signals.restore()  # the event loop handles them from here on
        try:
            interrupted = run_loop(serve(args, mirror, reporter, on_listen))
        except OSError as exc:
            return fail(f"cannot listen on {args.listen}: {exc.strerror or exc}", EXIT_SETUP)
        try:
            document, paths = reporter.write(mirror, final=True)
        except OSError as exc:
            return fail(f"cannot write the reports to {out_dir}: {exc.strerror or exc}", EXIT_OUTPUT)
        print(render_table(document, args.max_differences))
        print(f"mirror stopped by {interrupted}; reports in {paths['json'].parent}: "
              + ", ".join(p.name for p in paths.values()))
        if args.fail_on_new and document.get("summary", {}).get("new"):
            return EXIT_NEW
        return EXIT_OK
    except (ProvisionError, ServerStartError) as exc:
        return fail(str(exc), EXIT_SETUP)
    except TargetError as exc:
        return fail(str(exc), EXIT_TARGET)
    except Stop:
        return fail("interrupted before the mirror started; servers stopped", 130)
    finally:
        for target in targets:
            target.stop()
        signals.restore()


if __name__ == "__main__":
    sys.exit(main())
