"""One replay connection to one server: a raw socket, pre-packed commands, a hiredis Reader.

redis-py costs about 10 us per reply; three servers at tens of thousands of commands a second need the
thin path (the same hiredis underneath). Error replies come back as values (hiredis.ReplyError), in
place; RESP3 pushes as hiredis.PushNotification, so a push is never taken for a reply.
"""

from __future__ import annotations

import socket
import ssl
from itertools import islice
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis

from app.resp_packing import pack_command
from app.targets import Target

RECV_BYTES = 1 << 18
NOT_YET = object()  # the reader's "no complete reply buffered" (its default, False, equals a 0 reply)
ReplyError = hiredis.ReplyError
PushNotification = hiredis.PushNotification


class WireError(RuntimeError):
    """A server closed the connection or did not answer in time; the message says which and where."""


def _ssl_context(target: Target) -> ssl.SSLContext:
    options = target.tls
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if options.get("ssl_certfile"):
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
    if options.get("ssl_cert_reqs") == "none":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def open_socket(target: Target, timeout_s: float) -> socket.socket:
    """A connected socket to the target (TCP, TLS or unix), nothing sent yet."""
    parts = urlsplit(target.url)
    if parts.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout_s)
        sock.connect(parts.path)
        return sock
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=timeout_s)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if parts.scheme == "rediss":
        sock = _ssl_context(target).wrap_socket(sock, server_hostname=parts.hostname)
    return sock


def login_command(target: Target) -> tuple[bytes, ...] | None:
    """AUTH for a target with a password (from its URL or the environment); None without one."""
    parts = urlsplit(target.url)
    password = target.password if target.password is not None else (unquote(parts.password) if parts.password else None)
    if password is None:
        return None
    user = unquote(parts.username) if parts.username else None
    return (b"AUTH", user.encode(), password.encode()) if user else (b"AUTH", password.encode())


class Connection:
    """A replay session's connection to one server: send bytes, read the next reply or push."""

    __slots__ = ("target", "sock", "reader", "timeout_s", "out")

    def __init__(self, target: Target, timeout_s: float) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self.reader = hiredis.Reader(notEnoughData=NOT_YET)
        self.out: list[bytes] = []  # packed commands not sent yet
        try:
            self.sock = open_socket(target, timeout_s)
        except OSError as exc:
            raise WireError(f"{target.name}: cannot connect to {target.display_url()}: {exc}") from exc
        login = login_command(target)
        if login is not None:
            self.sock.sendall(pack_command(login))
            reply = self.read()
            if isinstance(reply, ReplyError):
                raise WireError(f"{target.name}: the server refused the credentials: {reply}")

    def flush(self) -> None:
        if self.out:
            data = b"".join(self.out)
            self.out.clear()
            try:
                self.sock.sendall(data)
            except OSError as exc:
                raise WireError(f"{self.target.name}: sending failed: {exc}") from exc

    def read(self) -> Any:
        """The next reply or push (blocks up to the timeout for data)."""
        reader = self.reader
        reply = reader.gets()
        while reply is NOT_YET:
            self._receive()
            reply = reader.gets()
        return reply

    def _receive(self) -> None:
        """What the socket has now into the reader (blocks up to the timeout for data)."""
        try:
            data = self.sock.recv(RECV_BYTES)
        except socket.timeout:
            raise WireError(f"{self.target.name}: no reply within {self.timeout_s:g} s") from None
        except OSError as exc:
            raise WireError(f"{self.target.name}: the connection failed: {exc}") from exc
        if not data:
            raise WireError(f"{self.target.name}: the server closed the connection")
        self.reader.feed(data)

    def read_many(self, count: int) -> list[Any]:
        """The next `count` replies (pushes included: callers use this only where none can come)."""
        reader, replies = self.reader, []
        # iter(gets, NOT_YET) drains what is buffered, in C; once it has met NOT_YET it stays exhausted
        replies.extend(islice(iter(reader.gets, NOT_YET), count))
        while len(replies) < count:
            self._receive()
            replies.extend(islice(iter(reader.gets, NOT_YET), count - len(replies)))
        return replies

    def poll(self) -> Any:
        """A reply or push already received, or NOT_YET; never waits."""
        reply = self.reader.gets()
        if reply is not NOT_YET:
            return reply
        self.sock.setblocking(False)
        try:
            data = self.sock.recv(RECV_BYTES)
        except (BlockingIOError, ssl.SSLWantReadError):
            return NOT_YET
        except OSError as exc:
            raise WireError(f"{self.target.name}: the connection failed: {exc}") from exc
        finally:
            self.sock.settimeout(self.timeout_s)
        if not data:
            raise WireError(f"{self.target.name}: the server closed the connection")
        self.reader.feed(data)
        return self.reader.gets()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass  # already gone: nothing to release
