"""What the replay does not send as captured, and why: as data, one reason per entry.

A captured command is replayed as it is, rewritten (a blocking wait bounded, a HELLO without its AUTH
clause), or skipped with a reason the report lists per command. Skips protect the servers (SHUTDOWN,
DEBUG, replication, config of paths and ports), the tool's own connections (CLIENT KILL, CLIENT REPLY,
QUIT), the user's data on a server the tool did not start (FLUSHALL), and credentials (never sent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.captures import carries_credentials
from app.captures.credentials import ALWAYS_CREDENTIALS, SECRET_FINDERS

CREDENTIALS = "carries credentials: never replayed"

# Command -> why it is never replayed.
NEVER_REPLAYED: dict[bytes, str] = {
    b"SHUTDOWN": "stops the server",
    b"DEBUG": "can crash, freeze or reload the server",
    b"MONITOR": "turns the connection into a MONITOR feed",
    b"SYNC": "starts replication on the connection",
    b"PSYNC": "starts replication on the connection",
    b"REPLCONF": "part of the replication protocol",
    b"REPLICAOF": "makes the server a replica of another",
    b"SLAVEOF": "makes the server a replica of another",
    b"FAILOVER": "starts a failover",
    b"MIGRATE": "connects to another server",
    b"MODULE": "loads code into the server",
    b"QUIT": "closes the replay's connection",
    b"CLUSTER": "cluster management: the replay runs on standalone servers",
    b"SENTINEL": "sentinel management",
}
# (Command, subcommand) -> why it is never replayed.
NEVER_REPLAYED_SUBCOMMANDS: dict[tuple[bytes, bytes], str] = {
    (b"CLIENT", b"KILL"): "could close the replay's own connections",
    (b"CLIENT", b"PAUSE"): "pauses every client, the replay's too",
    (b"CLIENT", b"UNPAUSE"): "ends a pause the replay never starts",
    (b"CLIENT", b"REPLY"): "turns replies off: the replay compares every reply",
    (b"CONFIG", b"REWRITE"): "writes the server's config file",
    (b"CONFIG", b"RESETSTAT"): "resets the statistics other tools read",
    (b"ACL", b"SAVE"): "writes the server's ACL file",
    (b"ACL", b"LOAD"): "reads the server's ACL file",
    (b"SCRIPT", b"KILL"): "kills a script the replay may be running",
    (b"FUNCTION", b"KILL"): "kills a function the replay may be running",
}
# CONFIG SET parameters that name files, folders, ports or addresses: never changed on any server.
PROTECTED_CONFIG: frozenset[bytes] = frozenset({
    b"dir", b"dbfilename", b"appendfilename", b"appenddirname", b"logfile", b"pidfile", b"port", b"tls-port",
    b"bind", b"bind-source-addr", b"unixsocket", b"unixsocketperm", b"aclfile", b"cluster-config-file",
    b"tls-cert-file", b"tls-key-file", b"tls-ca-cert-file", b"tls-ca-cert-dir", b"tls-client-cert-file",
    b"tls-client-key-file", b"tls-dh-params-file", b"replicaof", b"slaveof", b"masteruser", b"primaryuser",
    b"enable-debug-command", b"enable-module-command", b"protected-mode", b"maxclients", b"daemonize",
    b"supervised", b"syslog-enabled", b"rename-command",
})
PROTECTED_CONFIG_REASON = "CONFIG SET of a path, port or address"
# Commands that remove other people's data: replayed only on servers the tool started.
OWNED_ONLY: dict[bytes, str] = {
    b"FLUSHALL": "FLUSHALL on a server the tool did not start",
    b"FLUSHDB": "FLUSHDB on a server the tool did not start",
    b"SWAPDB": "SWAPDB on a server the tool did not start",
    b"SAVE": "SAVE writes to the disk of a server the tool did not start",
    b"BGSAVE": "BGSAVE writes to the disk of a server the tool did not start",
    b"BGREWRITEAOF": "BGREWRITEAOF writes to the disk of a server the tool did not start",
}
OWNED_ONLY_SUBCOMMANDS: dict[tuple[bytes, bytes], str] = {
    (b"SCRIPT", b"FLUSH"): "SCRIPT FLUSH on a server the tool did not start",
    (b"FUNCTION", b"FLUSH"): "FUNCTION FLUSH on a server the tool did not start",
    (b"FUNCTION", b"RESTORE"): "FUNCTION RESTORE on a server the tool did not start",
    (b"ACL", b"DELUSER"): "ACL DELUSER on a server the tool did not start",
}

# Blocking commands: where their timeout is (an index; negative counts from the end, or the argument
# after a keyword) and its unit. A timeout of 0 waits forever: the replay bounds every wait.
@dataclass(frozen=True)
class Blocking:
    position: int | None  # argument index of the timeout (negative: from the end)
    keyword: bytes | None  # or: the timeout follows this keyword (XREAD BLOCK ms); absent = not blocking
    unit_s: float  # 1.0 for seconds, 0.001 for milliseconds


BLOCKING: dict[bytes, Blocking] = {
    b"BLPOP": Blocking(-1, None, 1.0), b"BRPOP": Blocking(-1, None, 1.0),
    b"BRPOPLPUSH": Blocking(-1, None, 1.0), b"BLMOVE": Blocking(-1, None, 1.0),
    b"BZPOPMIN": Blocking(-1, None, 1.0), b"BZPOPMAX": Blocking(-1, None, 1.0),
    b"BLMPOP": Blocking(1, None, 1.0), b"BZMPOP": Blocking(1, None, 1.0),
    b"XREAD": Blocking(None, b"BLOCK", 0.001), b"XREADGROUP": Blocking(None, b"BLOCK", 0.001),
    b"WAIT": Blocking(2, None, 0.001), b"WAITAOF": Blocking(3, None, 0.001),
}


@dataclass(frozen=True)
class Decision:
    """What to send for one captured command: its arguments, or None with the reason it is skipped."""

    args: tuple[bytes, ...] | None
    reason: str = ""
    note: str = ""  # set when the arguments were rewritten (a bounded wait, a HELLO without AUTH)
    blocking: bool = False  # may wait for another client: its reply is read when it comes


def _subcommand(args: Sequence[bytes]) -> tuple[bytes, bytes]:
    return args[0].upper(), args[1].upper() if len(args) > 1 else b""


def _format_timeout(seconds: float, unit_s: float) -> bytes:
    value = seconds / unit_s
    return b"%d" % round(value) if unit_s < 1.0 else (b"%g" % value)


def bound_blocking(args: tuple[bytes, ...], bound_s: float) -> tuple[tuple[bytes, ...], str] | None:
    """For a blocking command: its arguments with the wait cut to bound_s (when 0 = forever or longer), and
    the note saying so; None when the command is not blocking as written (XREAD without BLOCK)."""
    spec = BLOCKING.get(args[0].upper())
    if spec is None:
        return None
    if spec.keyword is not None:
        upper = [a.upper() for a in args]
        if spec.keyword not in upper[:-1]:
            return None
        index = upper.index(spec.keyword) + 1
    else:
        index = spec.position if spec.position >= 0 else len(args) + spec.position
        if not 0 < index < len(args):
            return None
    try:
        wait_s = float(args[index]) * spec.unit_s
    except ValueError:
        return args, ""  # the servers reply with their own error for a bad timeout
    if 0 < wait_s <= bound_s:
        return args, ""
    bounded = args[:index] + (_format_timeout(bound_s, spec.unit_s),) + args[index + 1:]
    was = "forever" if wait_s == 0 else f"{wait_s:g} s"
    return bounded, f"bounded: {args[0].decode('latin-1').upper()} would wait {was}; sent with {bound_s:g} s"


def _without_hello_auth(args: tuple[bytes, ...]) -> tuple[bytes, ...]:
    kept, index = list(args[:2]), 2
    while index < len(args):
        if args[index].upper() == b"AUTH":
            index += 3
            continue
        kept.append(args[index])
        index += 1
    return tuple(kept)


# Every command name some rule above looks at; any other command is replayed as captured.
RULED: frozenset[bytes] = frozenset({*NEVER_REPLAYED, *(c for c, _ in NEVER_REPLAYED_SUBCOMMANDS), *OWNED_ONLY,
                                     *(c for c, _ in OWNED_ONLY_SUBCOMMANDS), *BLOCKING,
                                     *SECRET_FINDERS, *ALWAYS_CREDENTIALS, b"CONFIG", b"HELLO"})


def decide(args: tuple[bytes, ...], *, owned: bool, in_multi: bool, bound_s: float) -> Decision:
    """Whether and how to replay one captured command (owned: every target was started by the tool)."""
    if not args:
        return Decision(None, "empty command")
    name = args[0].upper()
    if name not in RULED:
        return Decision(args)
    if name == b"HELLO" and carries_credentials(args):
        return Decision(_without_hello_auth(args), note="replayed without its AUTH clause")
    if carries_credentials(args):
        return Decision(None, CREDENTIALS)
    reason = NEVER_REPLAYED.get(name) or NEVER_REPLAYED_SUBCOMMANDS.get(_subcommand(args))
    if reason:
        return Decision(None, reason)
    if name == b"CONFIG" and len(args) > 2 and args[1].upper() == b"SET" and \
            any(p.lower() in PROTECTED_CONFIG for p in args[2::2]):
        return Decision(None, PROTECTED_CONFIG_REASON)
    if not owned:
        reason = OWNED_ONLY.get(name) or OWNED_ONLY_SUBCOMMANDS.get(_subcommand(args))
        if reason:
            return Decision(None, reason)
    if name in BLOCKING and not in_multi:  # inside MULTI a blocking command never blocks
        bounded = bound_blocking(args, bound_s)
        if bounded is not None:
            return Decision(bounded[0], note=bounded[1], blocking=True)
    return Decision(args)


def policy_table() -> list[dict[str, str]]:
    """Every rule as a row (command, reason): what the report and the README list."""
    rows = [{"command": k.decode(), "reason": v} for k, v in NEVER_REPLAYED.items()]
    rows += [{"command": f"{a.decode()} {b.decode()}", "reason": v} for (a, b), v in NEVER_REPLAYED_SUBCOMMANDS.items()]
    rows.append({"command": "CONFIG SET " + "|".join(sorted(p.decode() for p in PROTECTED_CONFIG)),
                 "reason": PROTECTED_CONFIG_REASON})
    rows += [{"command": k.decode(), "reason": v + " (skipped there only)"} for k, v in OWNED_ONLY.items()]
    rows += [{"command": f"{a.decode()} {b.decode()}", "reason": v + " (skipped there only)"}
             for (a, b), v in OWNED_ONLY_SUBCOMMANDS.items()]
    rows.append({"command": "AUTH, HELLO AUTH, CONFIG SET requirepass/masterauth, ACL SETUSER >pw",
                 "reason": CREDENTIALS})
    return rows
