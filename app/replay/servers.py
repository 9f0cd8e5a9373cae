"""The servers a replay runs on: the tool's own three (Redis, its noise control, Valkey), started empty
or from the user's snapshot, or servers the user names (then only when empty, and with their consent).

Starting data is loaded by the servers themselves: each gets its own copy of the RDB in a folder of
its own, named by --dir/--dbfilename, so a server that cannot read it refuses at start and its log says
why (Valkey 9 reads a Redis 7.2 RDB; Redis 7.2 refuses Valkey 9's format).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from app import config
from app.identity import expected
from app.provision import ServerBinary, embedded_binary, user_binary
from app.servers import EmbeddedServer, ServerStartError
from app.targets import Target, embedded_trio, external_target

STARTING_NAME = "starting-data.rdb"
# The log lines that tell why a server would not load an RDB: the specific reason first, then the verdict.
RDB_REASONS = (re.compile(r"wrong signature|can't handle|short read|bad file|unexpected|crc|checksum|"
                          r"version|corrupt|internal error|assert", re.IGNORECASE),
               re.compile(r"rdb|loading|fatal|crash", re.IGNORECASE))


class StartingDataRefused(RuntimeError):
    """A server would not start from the snapshot; the message is one line with its log line."""


@dataclass
class ReplayServers:
    """The targets of one replay and the folders holding their copies of the starting data."""

    targets: list[Target] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)

    def stop(self) -> None:
        for target in self.targets:
            target.stop()
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)
        self.targets, self.folders = [], []


def _refusal(name: str, rdb: Path, error: ServerStartError) -> StartingDataRefused:
    lines = [line.strip() for line in str(error).split(" | ") if line.strip()]
    for pattern in RDB_REASONS:
        line = next((text for text in lines if pattern.search(text)), None)
        if line:
            return StartingDataRefused(f"{name} refused the starting data {rdb}: {line}")
    return StartingDataRefused(f"{name} stopped while loading the starting data {rdb} (its log ends: "
                               f"{lines[-1] if lines else 'nothing'})")


def _start(servers: ReplayServers, name: str, binary: ServerBinary, rdb: Path, source: str, **fields: object) -> Target:
    folder = Path(tempfile.mkdtemp(prefix=f"rvc-replay-{name}-"))
    servers.folders.append(folder)
    shutil.copyfile(rdb, folder / STARTING_NAME)
    server = EmbeddedServer(binary, name, extra_args=("--dir", str(folder), "--dbfilename", STARTING_NAME))
    try:
        server.start()
    except ServerStartError as exc:
        raise _refusal(name, rdb, exc) from None
    target = Target(name=name, url=server.url, source=source, owned=True, server=server,
                    binary_source=binary.source, **fields)  # type: ignore[arg-type]
    servers.targets.append(target)
    return target


def trio_from_snapshot(rdb: Path, redis_path: str | None, valkey_path: str | None) -> ReplayServers:
    """Redis, its control and Valkey, each started from its own copy of the snapshot."""
    servers = ReplayServers()
    try:
        redis_binary = user_binary(redis_path) if redis_path else embedded_binary(config.BASELINE)
        valkey_binary = user_binary(valkey_path) if valkey_path else embedded_binary(config.CANDIDATE)
        base = _start(servers, config.BASELINE, redis_binary, rdb, "binary" if redis_path else "embedded",
                      role=config.BASELINE_ROLE, expect=expected(config.BASELINE))
        _start(servers, f"{config.BASELINE}-control", redis_binary, rdb, base.source, role=config.CONTROL_ROLE,
               expect=base.expect, control_of=base.name)
        _start(servers, config.CANDIDATE, valkey_binary, rdb, "binary" if valkey_path else "embedded",
               role=config.CANDIDATE_ROLE, expect=expected(config.CANDIDATE))
        return servers
    except BaseException:
        servers.stop()
        raise


def replay_servers(*, redis_url: str | None = None, valkey_url: str | None = None, control_url: str | None = None,
                   redis_path: str | None = None, valkey_path: str | None = None, rdb: Path | None = None,
                   tls: dict[str, str] | None = None) -> ReplayServers:
    """The targets the options name. With URLs, no control is started (the user may name one)."""
    if redis_url or valkey_url:
        servers = ReplayServers()
        try:
            for name, url, role in ((config.BASELINE, redis_url, config.BASELINE_ROLE),
                                    (f"{config.BASELINE}-control", control_url, config.CONTROL_ROLE),
                                    (config.CANDIDATE, valkey_url, config.CANDIDATE_ROLE)):
                if url:
                    target = external_target(name, url, role=role, expect=expected(name.split("-")[0]))
                    target.tls = dict(tls or {}) if url.startswith("rediss://") else {}
                    servers.targets.append(target)
                elif role != config.CONTROL_ROLE:
                    path = redis_path if name == config.BASELINE else valkey_path
                    binary = user_binary(path) if path else embedded_binary(name)
                    server = EmbeddedServer(binary, name).start()
                    servers.targets.append(Target(name=name, url=server.url, source="binary" if path else "embedded",
                                                  owned=True, server=server, binary_source=binary.source, role=role,
                                                  expect=expected(name)))
            return servers
        except BaseException:
            servers.stop()
            raise
    if rdb is not None:
        return trio_from_snapshot(rdb, redis_path, valkey_path)
    return ReplayServers(embedded_trio(redis_path, valkey_path))
