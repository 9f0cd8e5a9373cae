"""The explorer's servers: one connection to each, a sequence pipelined to all of them at once, and a
reset before every sequence (they are the tool's own servers: FLUSHALL is allowed there, nowhere else).

The reset goes in the same pipeline as the sequence it precedes: RESET (connection state: MULTI, the
database, the protocol, the user, the client name), CLIENT UNPAUSE, FLUSHALL, SCRIPT FLUSH, FUNCTION FLUSH,
the logs and statistics, and, when the previous sequence sent CONFIG SET or ACL SETUSER, every allowed
parameter set back to its value at the start and the explorer's users deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.connection import Connection

from app.explore.docs import read_server_docs
from app.scenarios.support import error_text
from app.stream_compare import ReplyError, command_name
from app.targets import Target

# Sent before every sequence, on every server that knows the command (COMMANDLOG is Valkey's).
RESET_COMMANDS: tuple[tuple[bytes, ...], ...] = (
    (b"RESET",), (b"CLIENT", b"UNPAUSE"), (b"FLUSHALL",), (b"SLOWLOG", b"RESET"), (b"LATENCY", b"RESET"),
    (b"ACL", b"LOG", b"RESET"), (b"CONFIG", b"RESETSTAT"),
    (b"COMMANDLOG", b"RESET", b"large-request"), (b"COMMANDLOG", b"RESET", b"large-reply"),
)
# Sent only after a sequence that ran or loaded a script: each restarts the Lua interpreter (a millisecond).
SCRIPT_RESET: tuple[tuple[bytes, ...], ...] = ((b"SCRIPT", b"FLUSH"), (b"FUNCTION", b"FLUSH"))
SCRIPT_CHANGES = frozenset({"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "SCRIPT LOAD", "FUNCTION LOAD",
                            "FUNCTION RESTORE", "FCALL", "FCALL_RO"})
CONFIG_CHANGES = frozenset({"CONFIG SET"})
ACL_CHANGES = frozenset({"ACL SETUSER", "ACL LOAD"})
# Applied to every server before exploring. A blocked client times out at the server's next tick: at
# hz 500 a BLPOP of 10 ms costs 2 ms more instead of up to 100 (the servers' default hz is 10).
SERVER_SETTINGS: dict[str, str] = {"hz": "500"}
CLOSING = 2  # commands after every sequence: RESET (it also ends an open MULTI), ECHO token
# A server silent this long gets a PING: a stall (waiting for input it already has) is told from a hang.
STALL_S = 0.2


def _closing(token: bytes) -> list[tuple[bytes, ...]]:
    return [(b"RESET",), (b"ECHO", token)]


class ExploreServerError(RuntimeError):
    """A server could not be reset or stopped answering; one line."""


class SequenceAborted(Exception):
    """A server did not answer every call of a sequence (timeout, closed connection, a reply missing):
    the sequence is not judged. `failed`: target -> why; `replies`: the other targets' replies."""

    def __init__(self, failed: dict[str, str], replies: dict[str, list[Any]]) -> None:
        super().__init__("; ".join(f"{name}: {why}" for name, why in failed.items()))
        self.failed, self.replies = failed, replies


@dataclass
class InFlight:
    """A sequence sent and not yet read."""

    calls: list[tuple[bytes, ...]]
    token: bytes
    preambles: list[list[tuple[bytes, ...]]]
    failed: dict[str, str] = field(default_factory=dict)


@dataclass
class _Link:
    """One server: its connection and what its reset sends."""

    name: str
    target: Target
    conn: Connection
    reset: list[tuple[bytes, ...]]
    restore: list[tuple[bytes, ...]]
    known: frozenset[str]
    settings_before: list[tuple[bytes, ...]]  # SERVER_SETTINGS as they were, put back by close()


def _connection(target: Target, timeout_s: float, protocol: int = 2) -> Connection:
    parts = urlsplit(target.url)
    conn = Connection(host=parts.hostname or "127.0.0.1", port=parts.port or 6379, protocol=protocol,
                      socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    conn.connect()
    return conn


def read_reply(conn: Connection, timeout_s: float | None = None) -> Any:
    """One reply as the server sent it; an error reply becomes a ReplyError with its full text.

    redis-py raises some error replies as ConnectionError subclasses (WRONGPASS, NOAUTH): they carry
    the server's status code, which a lost connection does not."""
    try:
        if timeout_s is None:
            return conn.read_response(disable_decoding=True, disconnect_on_error=False)
        return conn.read_response(disable_decoding=True, disconnect_on_error=False, timeout=timeout_s)
    except redis.ResponseError as exc:
        return ReplyError(error_text(exc))
    except redis.ConnectionError as exc:
        if getattr(exc, "status_code", None):
            return ReplyError(error_text(exc))
        raise


class Servers:
    """The baseline, its noise control and the candidate(s), each with one raw RESP2 connection."""

    def __init__(self, targets: Sequence[Target], timeout_s: float, acl_users: Sequence[bytes],
                 config_parameters: Sequence[str]) -> None:
        for target in targets:
            if not target.owned:
                raise ExploreServerError(f"{target.name}: the explorer runs only on servers it started itself "
                                         "(it sends FLUSHALL between sequences)")
        self.targets = list(targets)
        self.timeout_s = timeout_s
        self.acl_users = list(acl_users)
        self.config_parameters = list(config_parameters)
        self.docs: dict[str, dict[str, Any]] = {}
        self._links: list[_Link] = []
        self._dirty_config = self._dirty_acl = False
        self._dirty_scripts = True  # the servers may hold scripts from before the explorer
        self._serial = 0
        self.aborted = 0
        self.stalls: dict[str, int] = {}
        for target in self.targets:
            self.docs[target.name] = self._read_docs(target)
        for target in self.targets:
            self._links.append(self._link(target))

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.targets]

    def _read_docs(self, target: Target) -> dict[str, Any]:
        conn = _connection(target, self.timeout_s, protocol=3)
        try:
            return read_server_docs(conn)
        finally:
            conn.disconnect()

    def _link(self, target: Target) -> _Link:
        known = frozenset(n.decode().replace("|", " ").upper() for n in self.docs[target.name]["list"])
        reset = [c for c in RESET_COMMANDS if command_name(c) in known]
        conn = _connection(target, self.timeout_s)
        before = self._config_get(conn, SERVER_SETTINGS)
        for param, value in SERVER_SETTINGS.items():
            conn.send_command("CONFIG", "SET", param, value)
            reply = read_reply(conn)
            if isinstance(reply, ReplyError):
                raise ExploreServerError(f"{target.name}: CONFIG SET {param} {value}: {reply}")
        # Read after SERVER_SETTINGS: a sequence's CONFIG SET hz is put back to the explorer's hz.
        restore = self._config_get(conn, self.config_parameters)
        return _Link(target.name, target, conn, reset, restore, known, before)

    @staticmethod
    def _config_get(conn: Connection, parameters: Sequence[str]) -> list[tuple[bytes, ...]]:
        """CONFIG SET commands that put the parameters (those the server has) back as they are now."""
        out = []
        for param in parameters:
            conn.send_command("CONFIG", "GET", param)
            reply = read_reply(conn)
            if isinstance(reply, list) and len(reply) == 2:
                out.append((b"CONFIG", b"SET", reply[0], reply[1]))
        return out

    def _preamble(self, link: _Link) -> list[tuple[bytes, ...]]:
        commands = list(link.reset)
        if self._dirty_scripts:
            commands += SCRIPT_RESET
        if self._dirty_config:
            commands += link.restore
        if self._dirty_acl and self.acl_users:
            commands.append((b"ACL", b"DELUSER", *self.acl_users))
        return commands

    def run(self, calls: Sequence[tuple[bytes, ...]], timeout_s: float | None = None) -> dict[str, list[Any]]:
        """Reset every server, send the calls to all of them at once and read the replies: send() then
        collect(). Target -> replies, in order; raises SequenceAborted as collect() does."""
        return self.collect(self.send(calls), timeout_s)

    def send(self, calls: Sequence[tuple[bytes, ...]]) -> InFlight:
        """Reset every server and send the calls, without reading: the caller may do other work while
        the servers answer, then collect(). One sequence in flight at a time.

        Each pipeline ends with RESET (which also ends an open MULTI) and an ECHO of a fresh token: a
        server that left a reply out answers the token too early, one that sent a reply too many answers
        something else at the end."""
        self._serial += 1
        flight = InFlight(list(calls), b"rvc-explore-end-%d" % self._serial,
                          [self._preamble(link) for link in self._links])
        for link, preamble in zip(self._links, flight.preambles):
            try:
                link.conn.send_packed_command(link.conn.pack_commands([*preamble, *calls, *_closing(flight.token)]),
                                              check_health=False)
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                flight.failed[link.name] = f"could not send: {exc}"
        names = {command_name(c) for c in calls}
        self._dirty_config = bool(names & CONFIG_CHANGES)
        self._dirty_acl = bool(names & ACL_CHANGES)
        self._dirty_scripts = bool(names & SCRIPT_CHANGES)
        return flight

    def collect(self, flight: InFlight, timeout_s: float | None = None) -> dict[str, list[Any]]:
        """The replies of a sequence sent: target -> replies, in order.

        A server silent for STALL_S gets a PING: one that was waiting for more input then answers (a
        stall, noted in self.stalls: target -> the index of the call it stalled at), one that hangs does
        not. Raises SequenceAborted, after reconnecting, when a server did not answer every call; the
        others' replies are read all the same. `timeout_s`: how long to wait for a hung server (default:
        the connection timeout)."""
        failed = dict(flight.failed)
        self.stalls = {}
        replies: dict[str, list[Any]] = {}
        for link, preamble in zip(self._links, flight.preambles):
            if link.name in failed:
                continue
            try:
                self._check_reset(link, preamble)
                got, problem = self._read_replies(link, len(flight.calls), flight.token, timeout_s or self.timeout_s)
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                got, problem = [], str(exc) or type(exc).__name__
            if problem:
                failed[link.name] = problem
            else:
                replies[link.name] = got
        if failed:
            self.aborted += 1
            self._reconnect()
            raise SequenceAborted(failed, replies)
        return replies

    def _read_replies(self, link: _Link, count: int, token: bytes, timeout_s: float) -> tuple[list[Any], str]:
        """The replies to `count` calls and the closing ECHO; (replies, "") or ([], what went wrong)."""
        got: list[Any] = []
        poked = False
        while len(got) < count + CLOSING:
            try:
                reply = read_reply(link.conn, timeout_s if poked else min(STALL_S, timeout_s))
            except redis.TimeoutError:
                if poked:
                    return [], f"no reply to call {len(got) + 1} within {timeout_s:g} s"
                link.conn.send_packed_command(link.conn.pack_commands([(b"PING",)]), check_health=False)
                poked = True
                self.stalls[link.name] = len(got)
                continue
            if reply == token and len(got) < count + CLOSING - 1:
                return [], f"a reply missing among the first {len(got) + 1} (the closing ECHO came early)"
            if isinstance(reply, list) and token in reply:  # an array header promised more than it sent
                return [], f"reply {len(got) + 1} took in the replies after it (an array longer than its elements)"
            got.append(reply)
        if got[count:] != [b"RESET", token]:
            return [], "its replies did not line up with the commands it was sent (one too many)"
        del got[count:]
        if poked and read_reply(link.conn, timeout_s) != b"PONG":
            return [], "its replies did not line up after a PING"
        return got, ""

    def _check_reset(self, link: _Link, preamble: Sequence[tuple[bytes, ...]]) -> None:
        for command in preamble:
            reply = read_reply(link.conn)
            if isinstance(reply, ReplyError):
                raise ExploreServerError(f"{link.name}: the reset before a sequence failed: "
                                         f"{command_name(command)}: {reply}")

    def _reconnect(self) -> None:
        """Fresh connections everywhere (replies still queued on the others are dropped with theirs)."""
        for link in self._links:
            link.conn.disconnect()
        dead = [l.name for l in self._links if l.target.server is not None and not l.target.server.alive()]
        if dead:
            raise ExploreServerError(f"{', '.join(dead)} stopped running (the sequence before this is in the report)")
        for link in self._links:
            try:
                link.conn = _connection(link.target, self.timeout_s)
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                raise ExploreServerError(f"{link.name}: cannot reconnect: {exc}") from exc
        self._dirty_config = self._dirty_acl = self._dirty_scripts = True  # whatever the lost sequence changed is put back

    def close(self) -> list[str]:
        """Disconnect, and put SERVER_SETTINGS back on a fresh connection (the old one may still have
        replies queued); what could not be put back, one line per server."""
        problems = []
        for link in self._links:
            link.conn.disconnect()
            try:
                conn = _connection(link.target, self.timeout_s)
                for command in link.settings_before:
                    conn.send_command(*command)
                    read_reply(conn)
                conn.disconnect()
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                problems.append(f"{link.name}: {', '.join(c[2].decode() for c in link.settings_before)} "
                                f"not put back: {exc}")
        return problems
