"""A raw pipelined connection to a server the tool started: commands packed by hiredis, replies read
by a hiredis Reader straight off the socket.

redis-py's reply handling costs about 10 us per reply; verifying 50,000 keys a second on two servers
needs about 8 replies per key, so copying and verifying talk through this thin layer instead (the same
hiredis that redis-py uses underneath). Error replies come back as hiredis.ReplyError values, in place,
so one refused key does not stop a batch.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Any

import hiredis

from app.migration import settings
from app.resp_packing import pack_command

ReplyError = hiredis.ReplyError
Command = Sequence[Any]
RECV_BYTES = 1 << 20
# What the reader returns when no complete reply is buffered: an object equal to nothing else (the
# default, False, equals an integer 0 reply, which would end a drain early).
NOT_YET = object()


class WireError(RuntimeError):
    """The connection broke or a control command was refused; the message says which."""


class Pipe:
    """One connection, one selected database; send many commands, then read their replies."""

    def __init__(self, port: int, db: int = 0, host: str = "127.0.0.1",
                 timeout_s: float = settings.PIPE_TIMEOUT_S) -> None:
        self.port = port
        self.db = 0
        self._reader = hiredis.Reader(notEnoughData=NOT_YET)
        self._sock = socket.create_connection((host, port), timeout=timeout_s)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if db:
            self.select(db)

    def send(self, commands: Iterable[Command]) -> int:
        """Pack and send; returns how many replies to read."""
        packed = [pack_command(tuple(cmd)) for cmd in commands]
        if packed:
            self._sock.sendall(b"".join(packed))
        return len(packed)

    def receive(self, count: int) -> list[Any]:
        """The next `count` replies (never more: the next batch's may already be buffered)."""
        replies: list[Any] = []
        # The hottest loop of a verification: islice(iter(gets, NOT_YET)) drains what is buffered in C.
        drain = iter(self._reader.gets, NOT_YET)
        while True:
            replies.extend(islice(drain, count - len(replies)))
            if len(replies) >= count:
                return replies
            chunk = self._sock.recv(RECV_BYTES)
            if not chunk:
                raise WireError(f"server on port {self.port} closed the connection")
            self._reader.feed(chunk)
            drain = iter(self._reader.gets, NOT_YET)

    def send_bytes(self, payload: bytes, replies: int) -> int:
        """Send commands packed already (holding `replies` commands); returns how many replies to read."""
        if payload:
            self._sock.sendall(payload)
        return replies

    def run(self, commands: Sequence[Command]) -> list[Any]:
        return self.receive(self.send(commands))

    def call(self, *args: Any) -> Any:
        """One command whose error is not expected: an error reply raises WireError."""
        reply = self.run([args])[0]
        if isinstance(reply, ReplyError):
            raise WireError(f"{' '.join(str(a) for a in args[:2])}: {reply}")
        return reply

    def select(self, db: int) -> None:
        if db != self.db:
            self.call("SELECT", db)
            self.db = db

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass  # already gone: nothing to release

    def __enter__(self) -> "Pipe":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class KeyedCommand:
    """A command whose only varying argument is one key: the bytes before and after the key are made
    once, so packing a key's commands is one join (hiredis.pack_command per command costs 4x more,
    which matters at 3 commands per key)."""

    def __init__(self, *parts: Any, key_at: int = 1) -> None:
        self.parts = parts
        self.key_at = key_at
        arity = len(parts) + 1
        before, after = parts[:key_at], parts[key_at:]
        self._head = _array(arity) + b"".join(bulk(str(p).encode()) for p in before)
        self._tail = b"".join(bulk(str(p).encode()) for p in after)

    def around(self) -> tuple[bytes, bytes]:
        """(what comes before the key, what comes after it): join with bulk(key) between them."""
        return self._head, self._tail


def _array(count: int) -> bytes:
    return b"*%d\r\n" % count


def bulk(value: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%b\r\n" % (len(value), value)


def run_both(pipes: Sequence[Pipe], commands: Sequence[Sequence[Command]]) -> list[list[Any]]:
    """Send each pipe its commands first, then read: the servers work at the same time."""
    counts = [pipe.send(cmds) for pipe, cmds in zip(pipes, commands)]
    return [pipe.receive(count) for pipe, count in zip(pipes, counts)]


def is_error(reply: Any) -> bool:
    return isinstance(reply, ReplyError)


def text(value: Any) -> str:
    """A reply or key as readable text: bytes decoded, undecodable bytes escaped."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def has_command(pipe: Pipe, name: str) -> bool:
    """COMMAND INFO answers nil for a command the server does not know."""
    reply = pipe.call("COMMAND", "INFO", name)
    return bool(reply) and reply[0] is not None


def keyspace(pipe: Pipe) -> dict[int, dict[str, int]]:
    """INFO keyspace: db number -> its fields (keys, expires, and on Valkey keys_with_volatile_items)."""
    info = parse_info(pipe.call("INFO", "keyspace"))
    out: dict[int, dict[str, int]] = {}
    for name, value in info.items():
        if name.startswith("db") and name[2:].isdigit():
            out[int(name[2:])] = {k: int(v) for k, v in (p.split("=", 1) for p in value.split(","))}
    return out


def parse_info(raw: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        if line and not line.startswith("#") and ":" in line:
            name, value = line.split(":", 1)
            fields[name] = value
    return fields
