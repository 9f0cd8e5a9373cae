"""What a running application's server says about its use of Redis, read without changing anything.

Read-only by construction: INFO commandstats and keyspace, CONFIG GET *, and with a sample, SCAN plus
TYPE, OBJECT ENCODING, the length command of each type and MEMORY USAGE of at most N keys (no value
is ever read). CLIENT NO-TOUCH (Redis 7.2+) keeps even the keys' access times as they were. The only
traces are the probe's own connection while it lasts and the probe's calls in INFO commandstats.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from app.identity import read_identity

# Type -> the command that tells its size without reading it (element count, or bytes for a string).
LENGTH_COMMANDS: dict[str, str] = {"string": "STRLEN", "list": "LLEN", "set": "SCARD", "zset": "ZCARD",
                                   "hash": "HLEN", "stream": "XLEN"}
SCAN_COUNT = 1000  # keys per SCAN call: bounded work on the server per call
MAX_SCAN_CALLS_PER_KEY = 20  # SCAN stops after this many calls per wanted key, even if few were found
# Config values that are secrets: never kept, only whether they are set.
SECRET_CONFIG = frozenset({"requirepass", "masterauth", "primaryauth", "tls-key-file-pass",
                           "tls-client-key-file-pass"})


@dataclass
class KeySample:
    """What the sample found for one type and encoding: how many keys, their sizes and memory."""

    type: str
    encoding: str
    keys: int = 0
    elements: int = 0  # summed lengths (bytes for strings)
    memory: int = 0    # summed MEMORY USAGE on the application's server (0 when refused)

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "encoding": self.encoding, "keys": self.keys, "elements": self.elements,
                "avg_length": round(self.elements / self.keys, 1) if self.keys else 0, "memory": self.memory}


@dataclass
class Usage:
    """The application's server as it is: identity, commands called, keyspace, config, a key sample."""

    identity: dict[str, Any]
    calls: dict[str, int]                      # "HSCAN", "CLIENT SETNAME" -> calls since the last reset
    keyspace: dict[str, int]                   # "db0" -> keys
    config: dict[str, str]
    samples: list[KeySample] = field(default_factory=list)
    sampled_keys: int = 0
    notes: list[str] = field(default_factory=list)


def command_calls(info: dict[str, Any]) -> dict[str, int]:
    """INFO commandstats as command name -> calls ("cmdstat_client|setname" -> "CLIENT SETNAME")."""
    calls = {}
    for name, stats in info.items():
        if name.startswith("cmdstat_") and isinstance(stats, dict):
            calls[name[len("cmdstat_"):].replace("|", " ").upper()] = int(stats.get("calls", 0))
    return calls


def read_config(client: redis.Redis) -> dict[str, str]:
    values = client.config_get("*")
    return {k: ("(set)" if v else "") if k in SECRET_CONFIG else v for k, v in values.items()}


def _scan(client: redis.Redis, db_client: redis.Redis, wanted: int) -> Iterator[bytes]:
    cursor, calls, found = 0, 0, 0
    while found < wanted and calls < MAX_SCAN_CALLS_PER_KEY * max(wanted, 1):
        cursor, keys = db_client.scan(cursor=cursor, count=SCAN_COUNT)
        calls += 1
        for key in keys[:wanted - found]:
            found += 1
            yield key
        if cursor == 0:
            return


def sample_keys(client_for_db: Any, keyspace: dict[str, int], wanted: int, notes: list[str]) -> tuple[list[KeySample], int]:
    """Type, encoding, length and MEMORY USAGE of up to `wanted` keys, spread over the databases by size."""
    total = sum(keyspace.values())
    groups: dict[tuple[str, str], KeySample] = {}
    seen, memory_refused = 0, False
    for db, keys in keyspace.items():
        share = round(wanted * keys / total) if total else 0
        if share <= 0:
            continue
        conn = client_for_db(int(db[2:]))
        try:
            for key in _scan(conn, conn, share):
                pipe = conn.pipeline(transaction=False)
                pipe.type(key)
                pipe.object("ENCODING", key)
                kind_reply = pipe.execute(raise_on_error=False)
                kind, encoding = (_text(v) for v in kind_reply)
                if kind == "none":
                    continue  # expired or deleted since SCAN saw it
                pipe = conn.pipeline(transaction=False)
                if kind in LENGTH_COMMANDS:
                    pipe.execute_command(LENGTH_COMMANDS[kind], key)
                pipe.execute_command("MEMORY", "USAGE", key)
                sized = pipe.execute(raise_on_error=False)
                length = sized[0] if kind in LENGTH_COMMANDS and isinstance(sized[0], int) else 0
                memory = sized[-1] if isinstance(sized[-1], int) else 0
                memory_refused = memory_refused or not isinstance(sized[-1], int)
                group = groups.setdefault((kind, encoding), KeySample(kind, encoding))
                group.keys += 1
                group.elements += length
                group.memory += memory
                seen += 1
        finally:
            conn.close()
    if memory_refused:
        notes.append("MEMORY USAGE was refused for some keys (ACL?): their memory is counted as 0")
    return sorted(groups.values(), key=lambda g: -g.keys), seen


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value) if not isinstance(value, Exception) else "unknown"


def probe(client_for_db: Any, sample: int = 0) -> Usage:
    """Read the server's usage (client_for_db(db) -> a redis.Redis on that database, closed by the caller
    for db 0 and here for the others)."""
    main = client_for_db(0)
    try:
        calls = command_calls(main.info("commandstats"))  # first: before the probe's own calls count
        _no_touch(main)
        usage = Usage(identity=read_identity(main), calls=calls,
                      keyspace={db: int(v.get("keys", 0)) for db, v in main.info("keyspace").items()
                                if isinstance(v, dict)},
                      config=read_config(main))
    finally:
        main.close()
    if sample > 0:
        usage.samples, usage.sampled_keys = sample_keys(lambda db: _no_touch(client_for_db(db)), usage.keyspace,
                                                        sample, usage.notes)
    return usage


def _no_touch(client: redis.Redis) -> redis.Redis:
    """Keys' access times stay as they were (CLIENT NO-TOUCH, Redis 7.2+; older servers: not available)."""
    try:
        client.execute_command("CLIENT", "NO-TOUCH", "ON")
    except redis.ResponseError:
        pass  # an older server: TYPE then refreshes a key's LRU clock, nothing else changes
    return client
