"""The runner: starts or connects to both servers, runs every scenario on each, compares, reports.

Usage: python -m app.test_runner [options]   (or the console script `redis-valkey-compat`)
Exit codes: 0 run completed with no FAIL; 1 a scenario FAILed; 2 bad command line;
3 a server could not be set up; 4 a target unreachable or refused the credentials;
5 the report could not be written; 6 with --fail-on-new, undocumented differences were found;
7 with --fail-on-change, a finding is new or changed since the --compare-with run;
130 interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from importlib import import_module
from pathlib import Path
from typing import Any, NoReturn

import redis

from app import config
from app.compare import merge_rounds
from app.document import conclude, describe_targets, finish, new_document, new_run_id, now
from app.history import HistoryError, compare_runs, has_changes, load_earlier
from app.identity import expected
from app.provision import ProvisionError, server_binary
from app.render.progress import Progress
from app.render.progress import make_progress as terminal_progress
from app.render.reports import write_reports
from app.render.table import render_table
from app.scenarios import SCENARIO_NAMES, load
from app.scenarios.support import CONFIG_JOURNAL, FAIL, result
from app.servers import ServerStartError
from app.target_specs import SpecError, parse_targets, start_targets
from app.journal import cleanup_everything
from app.render.reports import REPORT_FILES
from app.safekeeping import RunActive, Safekeeping
from app.signals import GUARD, Interrupted
from app.target_checks import TargetProblem, check_targets
from app.targets import (BadURL, url_db, Target, TargetError, binary_target, check_reachable, control_target, embedded_target,
                         external_target)

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_SETUP, EXIT_TARGET, EXIT_OUTPUT, EXIT_NEW = 0, 1, 2, 3, 4, 5, 6
EXIT_CHANGED = 7
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A bad command line; one line, exit 2."""


class UsageParser(argparse.ArgumentParser):
    """argparse whose errors raise UsageError: one line and exit 2, never argparse's usage block."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(prog="redis-valkey-compat",
                description="Compare Redis 7.2 and Valkey 9.0: replies, errors, encodings, defaults, "
                            "memory, eviction and latency.")
    p.add_argument("--target", metavar="NAME=SPEC", action="append", default=[],
                   help="a target to compare, repeatable; the first is the baseline. SPEC: "
                        "embedded:PRODUCT@VERSION (./rvc versions lists them; @latest: the newest), a URL, "
                        "or a server binary")
    p.add_argument("--redis", metavar="URL", help="use a running Redis at this redis:// or rediss:// URL")
    p.add_argument("--valkey", metavar="URL", help="use a running Valkey at this URL")
    p.add_argument("--redis-server", metavar="PATH", help="start this redis-server binary instead of the embedded one")
    p.add_argument("--valkey-server", metavar="PATH", help="start this valkey-server binary instead of the embedded one")
    p.add_argument("--docker", action="store_true",
                   help=f"use the docker-compose.yml servers ({', '.join(config.DOCKER_IMAGES.values())})")
    p.add_argument("--scenarios", metavar="LIST", help=f"comma-separated, from: {', '.join(SCENARIO_NAMES)}")
    p.add_argument("--targets", metavar="LIST", default=",".join(config.ROLES),
                   help="comma-separated roles to run: redis, valkey (default both)")
    p.add_argument("--out", metavar="DIR", help="run folder for the reports (default reports/<run id>)")
    p.add_argument("--json", metavar="PATH", help="JSON report path (default <run folder>/report.json)")
    p.add_argument("--allow-server-changes", action="store_true",
                   help="allow CONFIG SET and memory filling on servers the tool did not start")
    p.add_argument("--db", type=int, metavar="N", help="logical database on external servers")
    p.add_argument("--timeout", type=float, default=config.DEFAULT_COMMAND_TIMEOUT_S, metavar="S",
                   help="per-command timeout in seconds (a frozen server becomes FAIL, not a hang)")
    p.add_argument("--like-for-like-memory", action="store_true",
                   help="also run the memory and eviction scenarios on a Valkey built with jemalloc "
                        f"({config.LIKE_FOR_LIKE_MEMORY['spec']}, built from Debian's source package on first "
                        "use, then cached), so memory is compared with the same allocator as Redis")
    p.add_argument("--compare-with", metavar="REPORT_JSON",
                   help="mark each finding new, changed or unchanged against an earlier run's report.json")
    p.add_argument("--fail-on-change", action="store_true",
                   help="with --compare-with: exit 7 when a finding is new or changed since that run (a CI gate "
                        "that fires only on change)")
    p.add_argument("--fail-on-new", action="store_true",
                   help="exit 6 when an undocumented significant difference is found (a CI gate)")
    p.add_argument("--max-differences", type=int, default=12, metavar="N",
                   help="differences shown per scenario in the table (all are in the JSON)")
    p.add_argument("--tls-ca-cert", metavar="PATH", help="CA certificate for rediss:// targets")
    p.add_argument("--tls-cert", metavar="PATH", help="client certificate for rediss:// targets")
    p.add_argument("--tls-key", metavar="PATH", help="client private key for rediss:// targets")
    p.add_argument("--tls-skip-verify", action="store_true",
                   help="do not verify the server certificate (self-signed test servers only)")
    p.add_argument("--force-targets", action="store_true",
                   help="compare even the same server twice, or a product other than the one a target stands for")
    p.add_argument("--cleanup", action="store_true",
                   help="remove what earlier runs of the tool left on the given servers (keys, function "
                        "libraries, CONFIG changes), say what was done, and exit")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return p


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    args.scenario_names = _pick(args.scenarios, SCENARIO_NAMES, "scenario")
    args.roles = _pick(args.targets, config.ROLES, "target")
    if args.target:
        pair = [flag for flag in ("redis", "valkey", "redis_server", "valkey_server", "docker") if getattr(args, flag)]
        if pair:
            raise UsageError(f"--target and --{pair[0].replace('_', '-')} exclude each other: name every target "
                             "with --target")
        try:
            args.target_specs = parse_targets(args.target)
        except SpecError as exc:
            raise UsageError(str(exc)) from exc
    if args.docker and (args.redis or args.valkey):
        raise UsageError("--docker and --redis/--valkey URLs exclude each other")
    for role in config.ROLES:
        if getattr(args, role) and getattr(args, f"{role}_server"):
            raise UsageError(f"--{role} and --{role}-server exclude each other")
    memory = config.LIKE_FOR_LIKE_MEMORY["scenarios"]
    if args.like_for_like_memory and not set(memory) & set(args.scenario_names):
        raise UsageError(f"--like-for-like-memory needs one of the scenarios {', '.join(memory)}")
    if args.fail_on_change and not args.compare_with:
        raise UsageError("--fail-on-change needs --compare-with REPORT_JSON")
    if args.compare_with:
        try:
            args.earlier = load_earlier(args.compare_with)
        except HistoryError as exc:
            raise UsageError(str(exc)) from exc
    if not math.isfinite(args.timeout) or args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if args.max_differences < 0:
        raise UsageError("--max-differences must be 0 or more")
    if args.db is not None and args.db < 0:
        raise UsageError(f"--db {args.db}: a database number is 0 or more")
    for role in config.ROLES:
        url = getattr(args, role)
        if url and args.db is not None:
            try:
                in_url = url_db(url)
            except BadURL as exc:
                raise UsageError(str(exc)) from exc
            if in_url is not None and in_url != args.db:
                raise UsageError(f"--db {args.db} and the --{role} URL's database {in_url} disagree: give one")
    for flag in ("tls_ca_cert", "tls_cert", "tls_key"):
        path = getattr(args, flag)
        if path and not Path(path).is_file():
            raise UsageError(f"--{flag.replace('_', '-')} {path}: no such file")
    return args


def tls_options(args: argparse.Namespace) -> dict[str, Any]:
    """redis-py keyword arguments for rediss:// targets."""
    options: dict[str, Any] = {}
    if args.tls_ca_cert:
        options["ssl_ca_certs"] = args.tls_ca_cert
    if args.tls_cert:
        options["ssl_certfile"] = args.tls_cert
    if args.tls_key:
        options["ssl_keyfile"] = args.tls_key
    if args.tls_skip_verify:
        options.update(ssl_cert_reqs="none", ssl_check_hostname=False)
    return options


def _pick(listed: str | None, known: Sequence[str], what: str) -> list[str]:
    if listed is None:
        return list(known)
    names = [n.strip() for n in listed.split(",") if n.strip()]
    if not names:
        raise UsageError(f"no {what} named in {listed!r} (known: {', '.join(known)})")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"unknown {what} {', '.join(unknown)} (known: {', '.join(known)})")
    return [n for n in known if n in names]


def make_target(name: str, args: argparse.Namespace) -> Target:
    """The two-target run's "redis" (the baseline) or "valkey" (the candidate), as the options say."""
    fields: dict[str, Any] = {"role": config.BASELINE_ROLE if name == config.BASELINE else config.CANDIDATE_ROLE,
                              "expect": expected(name)}
    if getattr(args, name):
        target = external_target(name, getattr(args, name), **fields)
    elif args.docker:
        target = external_target(name, config.DOCKER_URLS[name], source="docker", **fields)
    elif getattr(args, f"{name}_server"):
        return binary_target(name, getattr(args, f"{name}_server"), **fields)
    else:
        return embedded_target(name, **fields)
    if args.db is not None:
        target.db = args.db
    if target.url.startswith("rediss://"):
        target.tls = tls_options(args)
    return target


def like_for_like_target(scenario_names: Sequence[str]) -> Target:
    """The jemalloc Valkey of --like-for-like-memory, for the memory and eviction scenarios asked for."""
    spec = config.LIKE_FOR_LIKE_MEMORY
    wanted = tuple(n for n in scenario_names if n in spec["scenarios"])
    product, version = spec["spec"].split("@")
    return embedded_target(spec["name"], server_binary(product, version), source="embedded",
                           role=config.CANDIDATE_ROLE, scenarios=wanted)


def noise_control_scenarios(scenario_names: Sequence[str]) -> tuple[str, ...]:
    """The scenarios whose module sets NOISE_CONTROL: their values can vary between two processes of one
    binary (timings, approximate LRU), so a second baseline process pays for itself there."""
    return tuple(name for name in scenario_names if getattr(_module(name), "NOISE_CONTROL", False))


def add_noise_control(targets: list[Target], scenario_names: Sequence[str]) -> list[Target]:
    """The targets plus a second process of the baseline's binary, where the tool owns the baseline."""
    wanted = noise_control_scenarios(scenario_names)
    baseline = next((t for t in targets if t.role == config.BASELINE_ROLE), None)
    if not wanted or baseline is None or any(t.role == config.CONTROL_ROLE for t in targets):
        return targets
    control = control_target(baseline, wanted)
    return targets if control is None else [*targets, control]


def run_scenario_safely(name: str, client: redis.Redis, options: config.ScenarioOptions) -> dict[str, Any]:
    """A scenario's result; one that raises despite the contract still becomes a FAIL dict."""
    started = time.perf_counter()
    try:
        outcome = load(name)(client, options)
        if not isinstance(outcome, dict) or outcome.get("status") not in ("OK", "WARN", "FAIL"):
            outcome = result(name, FAIL, f"scenario returned an invalid result: {outcome!r:.200}", {})
    except Exception as exc:  # noqa: BLE001 - the run goes on after a broken scenario
        outcome = result(name, FAIL, f"scenario raised {type(exc).__name__}: {exc}", {})
    outcome["duration_s"] = round(time.perf_counter() - started, 3)
    return outcome


def run_comparison(targets: list[Target], scenario_names: list[str], *, timeout_s: float,
                   allow_server_changes: bool = False, run_id: str | None = None,
                   progress: Callable[[str, str], None] | None = None,
                   force_targets: bool = False) -> dict[str, Any]:
    """Measure: identities, every scenario on every target that runs it, differences, findings. Prints nothing.

    The first target is the baseline unless a target says otherwise; noise controls are compared with
    the baseline, and what they show is subtracted as noise. Targets are checked up front
    (app/target_checks.py); on servers the tool did not start, the run is journalled (app/safekeeping.py)."""
    run_id = run_id or new_run_id()
    started = now()
    document = new_document("comparison", run_id, scenario_names)
    clients: dict[str, redis.Redis] = {}
    try:
        for target in targets:
            client = target.client(timeout_s)
            clients[target.name] = client
            check_reachable(target, client)
        describe_targets(document, targets, clients)
        check_targets(document["targets"], force_targets)
        prefix = f"rvc:{run_id.rsplit('-', 1)[-1]}:"
        keeping = Safekeeping(targets, clients, run_id, prefix)
        document["repaired"] = keeping.open()
    except BaseException:
        for client in clients.values():
            client.close()
        raise
    document["warnings"].extend(document["repaired"])
    down: dict[str, str] = {}  # target -> the scenario during which it stopped answering
    try:
        for name in scenario_names:
            running = [t for t in targets if t.runs(name)]
            rounds: dict[str, list[dict[str, Any]]] = {t.name: [] for t in running}
            current = running[0].name if running else ""
            try:
                for index in range(scenario_rounds(name)):
                    # Alternate which server goes first: each server's repetitions then span the same
                    # stretches of time as the other's, so load changes are not read as a difference.
                    for target in (running if index % 2 == 0 else running[::-1]):
                        current = target.name
                        if progress:
                            progress(name, target.name)
                        options = keeping.options_for(target)
                        rounds[target.name].append(run_on_target(target, name, clients[target.name], prefix,
                                                                 allow_server_changes, down, options))
                        GUARD.checkpoint()  # a signal swallowed somewhere (a __del__) still stops the run
            except Interrupted as exc:
                if exc.partial is not None and current in rounds:
                    rounds[current].append(exc.partial)  # what the stopped scenario measured is kept
                raise
            finally:
                for target_name, outcomes in rounds.items():
                    if outcomes:
                        document["results"].setdefault(target_name, {})[name] = merge_rounds(outcomes)
        document["completed"] = True
    except Interrupted as exc:
        # Keep what was measured: the caller still writes the reports, marked as interrupted.
        document["interrupted"] = str(exc)
    finally:
        # Reached on success and on interruption alike: what was measured is still compared and kept.
        with GUARD.deferred():
            problems = CONFIG_JOURNAL.restore()
            document["warnings"].extend(f"CONFIG restore: {p}" for p in problems)
            document["warnings"].extend(keeping.close())
            conclude(document)
            finish(document, started)
            for client in clients.values():
                client.close()
    return document


def run_on_target(target: Target, scenario: str, client: redis.Redis, prefix: str, allow_server_changes: bool,
                  down: dict[str, str], safekeeping: dict[str, Any] | None = None) -> dict[str, Any]:
    """One round of a scenario on one target; a target that stopped answering fails fast from then on."""
    if target.name in down:
        # A dead or frozen server would cost a timeout per command: fail fast instead.
        return result(scenario, FAIL, f"not run: {target.name} stopped answering during {down[target.name]}", {})
    options = config.ScenarioOptions(prefix=prefix, allow_server_changes=target.owned or allow_server_changes,
                                     server_is_owned=target.owned, **(safekeeping or {}))
    outcome = run_scenario_safely(scenario, client, options)
    if outcome["status"] == FAIL and not answers_ping(target):
        down[target.name] = scenario
        outcome["detail"] += f" ({target.name} no longer answers)"
    return outcome


def make_progress() -> Callable[[str, str], None]:
    """What to show while scenarios run: one progress line on a terminal, nothing otherwise."""
    return terminal_progress()


def _module(name: str) -> Any:
    try:
        return import_module(f"app.scenarios.{name}")
    except ImportError:  # not a module of ours (a test's stand-in): run_scenario_safely reports it
        return None


def scenario_rounds(name: str) -> int:
    """How many alternating rounds a scenario runs (its module's ROUNDS; timing scenarios set 3)."""
    return max(1, int(getattr(_module(name), "ROUNDS", 1)))


def answers_ping(target: Target, timeout_s: float = 2.0) -> bool:
    try:
        with target.client(timeout_s) as probe:
            return bool(probe.ping())
    except (redis.RedisError, OSError):
        return False


def exit_code(document: dict[str, Any]) -> int:
    statuses = [res["status"] for per_role in document["results"].values() for res in per_role.values()]
    return EXIT_FAIL if FAIL in statuses or not document["completed"] else EXIT_OK


def first_unwritable(paths: list[Path]) -> Path | None:
    """The first report path that cannot be written, found before any server starts: its folder is
    created, and a probe file beside it is created and removed (a folder can look writable and not be)."""
    for path in paths:
        folder = path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".{path.name}.rvc-probe"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError:
            return path
    return None


def fail(message: str, code: int) -> int:
    print(f"redis-valkey-compat: error: {message}", file=sys.stderr)
    return code


def cleanup_targets(targets: list[Target], timeout_s: float) -> int:
    """--cleanup: what every earlier run of the tool left on each server it did not start, removed."""
    for target in targets:
        if target.owned:
            continue
        with target.client(timeout_s) as client:
            check_reachable(target, client)
            try:
                done = cleanup_everything(client)
            except redis.RedisError as exc:
                return fail(f"{target.name}: cleanup refused at {target.display_url()}: {exc}", EXIT_TARGET)
            for line in done:
                print(f"{target.name} ({target.display_url()}): {line}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    GUARD.install()  # first: a signal during start-up is a clean stop too
    try:
        return _main(argv)
    except Interrupted as exc:
        return fail(f"interrupted by {exc}", EXIT_INTERRUPTED)
    finally:
        GUARD.restore()


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = parse_args(argv)
    except UsageError as exc:
        return fail(str(exc), EXIT_USAGE)
    if args.list:
        print("\n".join(SCENARIO_NAMES))
        return EXIT_OK
    targets: list[Target] = []
    document: dict[str, Any] | None = None
    code = EXIT_OK
    run_id = new_run_id()
    out_dir = Path(args.out) if args.out else Path("reports") / run_id
    json_path = Path(args.json) if args.json else out_dir / "report.json"
    if not args.cleanup:
        unwritable = first_unwritable([json_path, *(out_dir / name for name in REPORT_FILES.values())])
        if unwritable:
            return fail(f"cannot write {unwritable}: permission denied, not a folder, or no space", EXIT_OUTPUT)
    try:
        if args.target:
            targets.extend(start_targets(args.target_specs, tls_options(args), args.db))
        else:
            for role in args.roles:
                targets.append(make_target(role, args))
        if args.cleanup:
            return cleanup_targets(targets, args.timeout)
        if args.like_for_like_memory:
            targets.append(like_for_like_target(args.scenario_names))
        if len(targets) > 1:
            targets = add_noise_control(targets, args.scenario_names)
        progress = make_progress()
        if isinstance(progress, Progress):  # tests substitute plain functions
            progress.total = sum(scenario_rounds(name) for t in targets for name in args.scenario_names
                                 if t.runs(name))
        try:
            document = run_comparison(targets, args.scenario_names, timeout_s=args.timeout,
                                      allow_server_changes=args.allow_server_changes, run_id=run_id,
                                      progress=progress, force_targets=args.force_targets)
        finally:
            if isinstance(progress, Progress):
                progress.close()  # clear the progress line before the table is printed
        if args.compare_with:
            document["since_last"] = compare_runs(document, args.earlier, args.compare_with)
        code = exit_code(document)
        if code == EXIT_OK and args.fail_on_new and document["summary"].get("new"):
            code = EXIT_NEW
        if code == EXIT_OK and args.fail_on_change and has_changes(document):
            code = EXIT_CHANGED
    except (ProvisionError, ServerStartError) as exc:
        code = fail(str(exc), EXIT_SETUP)
    except BadURL as exc:
        code = fail(str(exc), EXIT_USAGE)
    except (TargetError, TargetProblem, RunActive) as exc:
        code = fail(str(exc), EXIT_TARGET)
    except Interrupted as exc:
        code = fail(f"interrupted by {exc}; {_what_was_done(targets)}", EXIT_INTERRUPTED)
    finally:
        with GUARD.deferred():  # a second signal must not leave a server running
            for target in targets:
                target.stop()
    if document is None:
        return code
    with GUARD.deferred():  # nor a half-written report
        document["report_path"] = str(json_path)
        try:
            paths = write_reports(document, out_dir, json_path)
        except OSError as exc:
            print(render_table(document, args.max_differences))
            return fail(f"cannot write the reports to {out_dir}: {exc.strerror or exc}", EXIT_OUTPUT)
        print(render_table(document, args.max_differences))
        print(f"reports in {out_dir}: " + ", ".join(p.name for p in paths.values()))
    stopped_by = document.get("interrupted") or GUARD.pending
    if stopped_by:  # also a signal that arrived while the reports were written: never swallowed
        code = fail(f"interrupted by {stopped_by}; {_what_was_done(targets)}, partial results kept",
                    EXIT_INTERRUPTED)
    return code


def _what_was_done(targets: list[Target]) -> str:
    done = ["CONFIG restored", "keys removed"]
    if any(t.owned for t in targets):
        done.insert(0, "servers stopped")
    return ", ".join(done)


if __name__ == "__main__":
    sys.exit(main())
