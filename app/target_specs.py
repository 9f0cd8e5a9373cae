"""Targets named on the command line: `--target NAME=SPEC`, SPEC an embedded version, a URL or a binary.

  --target r72=embedded:redis@7.2.4      a registry server, fetched on first use (./rvc versions lists them)
  --target v91=embedded:valkey@latest    the newest Valkey the registry has
  --target prod=rediss://host:6380/0     a server you run (password: URL or RVC_PROD_PASSWORD)
  --target mine=/opt/valkey/src/valkey-server   a binary of yours, started by the tool

The first target is the baseline, the others candidates. Servers the tool starts are started in
parallel: fetching or building one binary does not wait for the others.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app import config
from app.provision import ProvisionError, parse_embedded_spec, provision, user_binary
from app.targets import Target, embedded_target, external_target

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$")
EMBEDDED, URL, BINARY = "embedded", "url", "binary"
URL_SCHEMES = ("redis://", "rediss://", "unix://")


class SpecError(ValueError):
    """A --target that cannot be understood; one line, a usage error."""


@dataclass(frozen=True)
class TargetSpec:
    name: str
    kind: str  # embedded, url or binary
    value: str


def parse_target(text: str) -> TargetSpec:
    """'NAME=SPEC' -> TargetSpec; SpecError with one line otherwise."""
    name, sep, spec = text.partition("=")
    if not sep or not spec:
        raise SpecError(f"--target {text!r}: expected NAME=SPEC (SPEC: embedded:PRODUCT@VERSION, a URL or a binary)")
    if not NAME_PATTERN.match(name) or name.endswith("-control"):
        raise SpecError(f"--target name {name!r}: letters, digits, '_', '.', '-' (up to 32), starting with a "
                        "letter, not ending in -control (noise controls are named so)")
    if spec.startswith(URL_SCHEMES):
        return TargetSpec(name, URL, spec)
    if spec.startswith("embedded:") or re.match(r"^[a-z]+@", spec):
        try:
            parse_embedded_spec(spec)
        except ProvisionError as exc:
            raise SpecError(f"--target {name}: {exc}") from exc
        return TargetSpec(name, EMBEDDED, spec)
    if "://" in spec:
        raise SpecError(f"--target {name}: URL scheme must be redis://, rediss:// or unix://")
    if not Path(spec).expanduser().is_file():
        raise SpecError(f"--target {name}: {spec!r} is not an embedded:PRODUCT@VERSION spec, a URL or an existing binary")
    return TargetSpec(name, BINARY, spec)


def parse_targets(texts: list[str]) -> list[TargetSpec]:
    specs = [parse_target(t) for t in texts]
    names = [s.name for s in specs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SpecError(f"--target names must differ: {', '.join(repeated)} given more than once")
    if len(specs) < 2:
        raise SpecError("--target needs at least two targets: the first is the baseline, the others candidates")
    return specs


def _binary(spec: TargetSpec) -> Any:
    """The server binary a started target needs: fetched (or built) from the registry, or the user's."""
    if spec.kind == EMBEDDED:
        return provision(parse_embedded_spec(spec.value))
    return user_binary(spec.value) if spec.kind == BINARY else None


def _start(spec: TargetSpec, binary: Any, role: str, tls: dict[str, Any], db: int | None) -> Target:
    if spec.kind == URL:
        target = external_target(spec.name, spec.value, role=role)
        if spec.value.startswith("rediss://"):
            target.tls = tls
        target.db = db
        return target
    if spec.kind == BINARY:
        return embedded_target(spec.name, binary, source="binary", role=role)
    entry = parse_embedded_spec(spec.value)
    return embedded_target(spec.name, binary, role=role, expect=(entry.product, entry.version))


def start_targets(specs: list[TargetSpec], tls: dict[str, Any] | None = None, db: int | None = None) -> list[Target]:
    """Every target: binaries fetched or built in parallel, then the servers started one after another in
    this thread (a server dies with the thread that started it: PR_SET_PDEATHSIG follows the thread, so a
    pool thread must never start one). On any failure the targets already started are stopped."""
    roles = [config.BASELINE_ROLE] + [config.CANDIDATE_ROLE] * (len(specs) - 1)
    with ThreadPoolExecutor(max_workers=max(1, len(specs))) as pool:
        binaries = list(pool.map(_binary, specs))
    started: list[Target] = []
    try:
        for spec, binary, role in zip(specs, binaries, roles):
            started.append(_start(spec, binary, role, tls or {}, db))
    except BaseException:
        for target in started:
            target.stop()
        raise
    return started
