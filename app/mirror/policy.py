"""What the mirror sends where, as data: commands served by the primary only (with the reason, counted
in the report), commands that end a connection's comparison, connection state that must never be
dropped, the pub/sub frames, and the limits that keep memory bounded for hours."""

from __future__ import annotations

from dataclasses import dataclass

from app.captures import carries_credentials
from app.captures.credentials import SECRET_FINDERS, secret_positions

# Sent to the primary only; the reason is what the report says next to each count.
PRIMARY_ONLY: dict[str, str] = {
    "MONITOR": "a debugging stream of the primary's own traffic, not a reply to compare",
    "SYNC": "replication stream of the primary",
    "PSYNC": "replication stream of the primary",
    "REPLCONF": "replication handshake",
    "SHUTDOWN": "would stop the candidate or the secondary",
    "DEBUG": "server internals (DEBUG SLEEP, SEGFAULT, RELOAD) are not application traffic",
    "CLIENT KILL": "names connections of the primary; on the others it would kill the mirror's own",
    "CLIENT PAUSE": "would stall the candidate's side for everyone",
    "CLIENT UNPAUSE": "pairs with CLIENT PAUSE, which is primary-only",
    "REPLICAOF": "would turn the candidate or the secondary into a replica",
    "SLAVEOF": "would turn the candidate or the secondary into a replica",
    "FAILOVER": "a topology change of the primary",
    "AUTH": "credentials are checked by the primary only; the mirror authenticates to the others itself",
    "(credentials)": "holds a password: applied by the primary only, never stored or printed",
}
# After these, the primary's replies on that connection are a stream, not replies to compare.
ENDS_COMPARISON = frozenset({"MONITOR", "SYNC", "PSYNC"})

# Connection state: never dropped from a candidate's connection, or its later replies would not pair.
CONNECTION_STATE = frozenset({
    "SELECT", "HELLO", "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "RESET", "QUIT", "READONLY", "READWRITE",
    "SUBSCRIBE", "UNSUBSCRIBE", "PSUBSCRIBE", "PUNSUBSCRIBE", "SSUBSCRIBE", "SUNSUBSCRIBE", "CLIENT SETNAME",
    "CLIENT TRACKING", "CLIENT REPLY", "CLIENT NO-EVICT", "CLIENT NO-TOUCH", "CLIENT CACHING",
})  # not CLIENT SETINFO: a library's name, sent by every redis-py connection, changes no reply

# Commands that block their connection until something else happens.
BLOCKING = frozenset({"BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP",
                      "XREAD", "XREADGROUP", "WAIT", "WAITAOF"})
# A connection that sent none of these is stateless on the candidate's side: its commands share one
# pipelined connection per server with every other such connection (in arrival order, so causal order
# holds). The first of these gives the connection its own connection to each server from then on.
PINNING = CONNECTION_STATE | BLOCKING | frozenset({"CLIENT ID", "CLIENT INFO", "CLIENT GETNAME", "CLIENT LIST"})

# The application's connections start on one pipelined connection to the primary shared by all of them
# (the primary and the proxy then make one system call per turn, not one per command). The first command
# named here (by its first word) gives that application connection its own primary connection from then
# on: it sets or reads connection state, blocks, closes or names its connection, or is primary-only.
OWN_PRIMARY: frozenset[bytes] = frozenset(
    name.split()[0].encode() for name in PINNING | PRIMARY_ONLY.keys() if not name.startswith("(")
) | {b"QUIT", b"ASKING", b"CLIENT"} | SECRET_FINDERS.keys()  # the last may carry a password: primary only
# ...except these subcommands, which change nothing another connection's replies depend on (the push
# frames MAINT_NOTIFICATIONS may switch on are skipped wherever replies are cut). HELLO with nothing but a
# version is not here: it moves the connection to the shared connection of that version (proxy.py).
SHARED_SUBCOMMANDS: dict[bytes, frozenset[bytes]] = {b"CLIENT": frozenset({b"SETINFO", b"MAINT_NOTIFICATIONS"})}


def needs_own_primary(command: bytes, subcommand: bytes) -> bool:
    """Upper-cased first two arguments of a request: must it leave the shared primary connection?"""
    return command in OWN_PRIMARY and subcommand not in SHARED_SUBCOMMANDS.get(command, ())


# Pub/sub frames, by their first element (lower case).
CONFIRMS = {b"subscribe": "SUBSCRIBE", b"unsubscribe": "UNSUBSCRIBE", b"psubscribe": "PSUBSCRIBE",
            b"punsubscribe": "PUNSUBSCRIBE", b"ssubscribe": "SSUBSCRIBE", b"sunsubscribe": "SUNSUBSCRIBE"}
MESSAGES = frozenset({b"message", b"pmessage", b"smessage"})
# Subscribe-family command -> (which subscription set it changes, +1 subscribe / -1 unsubscribe).
SUBSCRIBING: dict[str, tuple[str, int]] = {
    "SUBSCRIBE": ("channels", 1), "UNSUBSCRIBE": ("channels", -1), "PSUBSCRIBE": ("patterns", 1),
    "PUNSUBSCRIBE": ("patterns", -1), "SSUBSCRIBE": ("shard", 1), "SUNSUBSCRIBE": ("shard", -1),
}

# Arguments that name a connection of the primary, rewritten to the same session's connection on each
# other server: CLIENT UNBLOCK <id>, CLIENT TRACKING ... REDIRECT <id>.
CLIENT_ID_ARGUMENTS = {"CLIENT UNBLOCK": "after:UNBLOCK", "CLIENT TRACKING": "after:REDIRECT"}


@dataclass(frozen=True)
class Limits:
    """How far a candidate may fall behind before commands are dropped from comparison (never from the
    primary), and when it counts as lost."""

    max_pending: int = 20_000          # commands sent to a server, or waiting to be, not yet answered
    max_pending_bytes: int = 64 << 20  # their request bytes
    hard_factor: int = 2               # beyond max * this, even connection state is dropped (that
                                       # connection is then no longer compared on that server)
    lost_after_s: float = 60.0         # a server that answers nothing the primary answered this long ago
    connect_timeout_s: float = 5.0
    drain_s: float = 3.0               # at exit: how long to wait for the candidate's last replies
    message_grace_s: float = 2.0       # a closed subscriber's connections wait this long for owed messages
    share_primary: bool = True         # stateless application connections share one primary connection
    shadow_write_s: float = 0.0002     # stateless commands to a shadow server: written at once when the
                                       # last write is this old, else gathered until it is (busy: fewer
    shadow_write_bytes: int = 64 << 10  # system calls) or until this much has gathered
    out_of_sync_judged_per_s: float = 2000.0  # once the candidate missed writes, its differing replies
                                              # beyond this rate are counted, not judged (each costs ~15 us
                                              # of the proxy's one core, which the application shares)
    shared_request_max: int = 256 << 10  # a request still incomplete at this size gets its own primary
                                         # connection and streams (the shared one takes whole requests only)


# Commands that can carry a password (the rest are never checked, on the hot path).
MAY_CARRY_CREDENTIALS = frozenset(name.decode() for name in SECRET_FINDERS)


def holds_credentials(command: str, args: tuple[bytes, ...]) -> bool:
    return command.partition(" ")[0] in MAY_CARRY_CREDENTIALS and carries_credentials(args)


def primary_only_reason(command: str, args: tuple[bytes, ...]) -> str | None:
    """Why a command goes to the primary only, or None when it is mirrored."""
    reason = PRIMARY_ONLY.get(command)
    if reason is None and " " in command:
        reason = PRIMARY_ONLY.get(command.partition(" ")[0])
    if reason is None and command != "HELLO" and holds_credentials(command, args):
        return PRIMARY_ONLY["(credentials)"]
    return reason


def without_credentials(args: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """HELLO's AUTH clause removed: the mirror's own connections are already authenticated."""
    hidden = secret_positions(args)
    if not hidden:
        return args
    drop = hidden | {min(hidden) - 1}  # the AUTH keyword before the user name
    return tuple(arg for index, arg in enumerate(args) if index not in drop)
