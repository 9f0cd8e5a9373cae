"""What the subcommands (replay, impact, explore, migrate, mirror) share on their command line: where a
run's reports go, checked before the run starts; SIGINT/SIGTERM turned into an exception once; and the
reports written and the table printed at the end."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from app.document import new_run_id
from app.render.reports import write_reports
from app.render.table import render_table
from app.signals import SignalGuard
from app.test_runner import EXIT_OK, EXIT_OUTPUT, EXIT_USAGE, UsageError, fail, first_unwritable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def add_output_options(p: argparse.ArgumentParser, folder_holds: str = "the reports") -> None:
    """--out and --json, as every subcommand names them."""
    p.add_argument("--out", metavar="DIR", help=f"run folder for {folder_holds} (default reports/<run id>)")
    p.add_argument("--json", metavar="PATH", help="JSON report path (default <run folder>/report.json)")


def add_tls_options(p: argparse.ArgumentParser) -> None:
    """TLS for rediss:// URLs, read by app.test_runner.tls_options."""
    p.add_argument("--tls-ca-cert", metavar="PATH", help="CA certificate for rediss:// targets")
    p.add_argument("--tls-cert", metavar="PATH", help="client certificate")
    p.add_argument("--tls-key", metavar="PATH", help="client key")
    p.add_argument("--tls-skip-verify", action="store_true", help="do not verify the server's certificate")


def report_destination(args: argparse.Namespace, run_id: str, default_json: bool = True) -> tuple[Path, Path | None]:
    """The run folder and the JSON path the options name (reports/<run id>/report.json by default)."""
    out_dir = Path(args.out) if args.out else Path("reports") / run_id
    if args.json:
        return out_dir, Path(args.json)
    return out_dir, out_dir / "report.json" if default_json else None


def unwritable_destination(out_dir: Path, json_path: Path | None) -> int | None:
    """EXIT_OUTPUT, said in one line, when the reports could not be written: found before a long run."""
    unwritable = first_unwritable([out_dir] + ([json_path.parent] if json_path else []))
    if unwritable:
        return fail(f"cannot write reports to {unwritable}: permission denied or not a folder", EXIT_OUTPUT)
    return None


@dataclass
class Start:
    """A subcommand run that may begin: its options, id and where its reports go."""

    args: argparse.Namespace
    run_id: str
    out_dir: Path
    json_path: Path | None


def begin(parse_args: Callable[[list[str]], argparse.Namespace], argv: Sequence[str] | None,
          default_json: bool = True) -> Start | int:
    """The options parsed and the report folder checked, or the exit code of a bad command line (2) or
    of a folder the reports could not be written to (5), said in one line."""
    try:
        args = parse_args(list(sys.argv[1:] if argv is None else argv))
    except UsageError as exc:
        return fail(str(exc), EXIT_USAGE)
    run_id = new_run_id()
    out_dir, json_path = report_destination(args, run_id, default_json)
    refused = unwritable_destination(out_dir, json_path)
    return refused if refused is not None else Start(args, run_id, out_dir, json_path)


class SignalsRaise(SignalGuard):
    """While active, the first SIGINT or SIGTERM raises make(signal name); later ones are only recorded, so
    that stopping the servers is never cut short. Python swallows an exception raised where it ignores
    them (an after-fork hook while a server starts, a __del__): checkpoint() raises it again, so a signal
    is never lost. restore() (or leaving the block) puts the old handlers back."""

    def __init__(self, make: Callable[[str], BaseException], signals: Iterable[int] = STOP_SIGNALS) -> None:
        super().__init__(make, signals, once=True)

    def mark(self, document: dict[str, Any]) -> None:
        """A signal the work swallowed and did not see again: the document says it was interrupted."""
        if self.received and not document.get("interrupted"):
            document["interrupted"] = self.received[0]
            document["completed"] = False

    def __enter__(self) -> "SignalsRaise":
        self.install()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.restore()


def publish(document: dict[str, Any], out_dir: Path, json_path: Path | None, max_differences: int,
            table: Callable[[dict[str, Any], int], str] = render_table, also_written: str = "") -> int:
    """Write the reports and print the table; EXIT_OUTPUT (after the table) when they cannot be written."""
    try:
        paths = write_reports(document, out_dir, json_path)
    except OSError as exc:
        print(table(document, max_differences))
        return fail(f"cannot write the reports to {out_dir}: {exc.strerror or exc}", EXIT_OUTPUT)
    print(table(document, max_differences))
    print(f"reports in {out_dir}: " + ", ".join(p.name for p in paths.values()) + also_written)
    return EXIT_OK
