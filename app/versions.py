"""`./rvc versions`: the server versions the tool can fetch, which are cached, and fetching them.

    ./rvc versions                       table: spec, product, version, source, allocator, cached, build time
    ./rvc versions --json                the same as JSON, for programs
    ./rvc versions --fetch SPEC [SPEC...]  fetch (or build) each, start it and print what INFO says it is

Exit codes: 0 done; 2 bad command line or unknown spec; 3 a server could not be fetched or started.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from app.provision import (ProvisionError, VersionEntry, cached_record, known_versions, parse_embedded_spec,
                           provision, verify_binary)
from app.server_registry import SPEC_SYNTAX

EXIT_OK, EXIT_USAGE, EXIT_SETUP = 0, 2, 3
# How the table names each kind of source, filled from the entry's source fields.
SOURCE_TEMPLATES = {"pypi-wheel": "PyPI {package}=={version}", "debian-binary": "Debian {suite} {package}",
                    "debian-source": "Debian {suite} {package} source, built"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, instead of argparse's usage block
        print(f"rvc versions: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def listing() -> list[dict[str, Any]]:
    """One row per registry entry, with what the cache recorded when it was fetched."""
    rows = []
    for entry in known_versions():
        record = cached_record(entry)
        server = (record or {}).get("server", {})
        rows.append({
            "spec": entry.spec, "product": entry.product, "version": entry.version, "variant": entry.variant,
            "kind": entry.kind, "origin": SOURCE_TEMPLATES[entry.kind].format(**entry.source),
            "source": entry.describe_source(), "allocator": entry.allocator,
            "cached": record is not None, "reported_allocator": server.get("mem_allocator"),
            "expected_build_s": entry.source.get("expected_build_s"),
            "build_s": (record or {}).get("build_s"), "notes": entry.notes,
        })
    return rows


def render_table(rows: list[dict[str, Any]]) -> str:
    header = ("spec", "product", "version", "source", "allocator", "cached", "build")
    lines = [header]
    for row in rows:
        allocator = row["allocator"]
        if row["reported_allocator"] and row["reported_allocator"] != allocator:
            allocator = f"{row['reported_allocator']} (registry: {allocator})"
        build = ""
        if row["expected_build_s"]:
            build = (f"built in {row['build_s']:.0f} s" if row["build_s"] is not None
                     else f"about {row['expected_build_s'] / 60:.1f} min on first use")
        lines.append((row["spec"], row["product"], row["version"], row["origin"],
                      allocator, "yes" if row["cached"] else "no", build))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
    return "\n".join([text[0], "-" * len(text[0]), *text[1:]])


def fetch_and_report(entry: VersionEntry) -> dict[str, Any]:
    """Fetch (or reuse) the entry, start it and read INFO now: what it really is."""
    was_cached = cached_record(entry) is not None
    started = time.monotonic()
    binary = provision(entry)
    elapsed = time.monotonic() - started
    server = verify_binary(binary)
    record = cached_record(entry) or {}
    return {"spec": entry.spec, "path": str(binary.path), "was_cached": was_cached, "seconds": round(elapsed, 1),
            "build_s": record.get("build_s"), "registry_allocator": entry.allocator, "server": server}


def render_fetched(result: dict[str, Any]) -> str:
    server = result["server"]
    line = f"{result['spec']}: {server['product']} {server['version']}, allocator {server['mem_allocator']}, "
    line += "from the cache" if result["was_cached"] else f"fetched in {result['seconds']:.1f} s"
    if result["build_s"] is not None:
        line += f" (build {result['build_s']:.0f} s)"
    if server["mem_allocator"] != result["registry_allocator"]:
        line += f"; the registry expects {result['registry_allocator']}"
    return f"{line}\n  {result['path']}"


def _first_use_cost(entry: VersionEntry) -> str:
    expected = entry.source.get("expected_build_s")
    return f"a build from source, about {expected / 60:.1f} min on 2 cores" if expected else "a download"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `./rvc versions | head`: the reader left; not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _main(argv: Sequence[str] | None) -> int:
    parser = _Parser(prog="rvc versions", description="List the server versions that can be fetched.",
                     epilog=f"A SPEC is {SPEC_SYNTAX}; +jemalloc names the build from Debian's source package.")
    parser.add_argument("--fetch", nargs="+", metavar="SPEC",
                        help="fetch (or build) and verify these, e.g. embedded:valkey@9.1.2+jemalloc")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if not args.fetch:
        rows = listing()
        print(json.dumps(rows, indent=2) if args.json else render_table(rows))
        return EXIT_OK
    try:
        entries = [parse_embedded_spec(spec) for spec in args.fetch]
    except ProvisionError as exc:
        print(f"rvc versions: {exc}", file=sys.stderr)
        return EXIT_USAGE
    results = []
    for entry in entries:
        if cached_record(entry) is None:
            print(f"rvc versions: fetching {entry.spec} ({_first_use_cost(entry)})", file=sys.stderr, flush=True)
        try:
            results.append(fetch_and_report(entry))
        except ProvisionError as exc:
            print(f"rvc versions: {entry.spec}: {exc}", file=sys.stderr)
            return EXIT_SETUP
        if not args.json:
            print(render_fetched(results[-1]), flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
