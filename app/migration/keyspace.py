"""Type-wise reads of keys, shared by the logical copy and the verification.

Keys are found type by type (SCAN ... TYPE t), so each key is read in one pipelined round:
PEXPIRETIME (-2: no such key), OBJECT ENCODING when asked, and the one command that reads that type
in full. A key of another type on the other server answers WRONGTYPE and is looked up with TYPE.

Content structures: string -> bytes; list -> [bytes]; set -> [bytes] (server order); hash ->
{field: value}; zset -> [(member, score as the server wrote it)]; stream -> the parsed
XINFO STREAM FULL (entries, ids, counters, groups, their pending entries and consumers).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from app.migration.wire import Command, KeyedCommand, Pipe, is_error, run_both

# type (as TYPE answers) -> the command that reads such a key in full. COUNT 0: every stream entry
# and every pending entry (the default shows 10).
READERS: dict[bytes, KeyedCommand] = {
    b"string": KeyedCommand("GET"),
    b"list": KeyedCommand("LRANGE", 0, -1),
    b"set": KeyedCommand("SMEMBERS"),
    b"hash": KeyedCommand("HGETALL"),
    b"zset": KeyedCommand("ZRANGE", 0, -1, "WITHSCORES"),
    b"stream": KeyedCommand("XINFO", "STREAM", "FULL", "COUNT", 0, key_at=2),
}
TYPES = tuple(READERS)
PEXPIRETIME = KeyedCommand("PEXPIRETIME")
ENCODING = KeyedCommand("OBJECT", "ENCODING", key_at=2)
_UNPARSED = object()
NO_TTL = -1
NO_KEY = -2  # PEXPIRETIME of a key that does not exist
MISSING = b"none"
# A typed SCAN step inspects COUNT keys and returns those of the type: larger steps, fewer round trips.
TYPED_SCAN_FACTOR = 4


class KeyView:
    """What one server holds under one key (type b"none" when it holds nothing).

    `raw` is the reply as read; `content` its parsed structure, made only when asked for (equal raw
    replies need no parsing to be known equal)."""

    __slots__ = ("key_type", "expire_ms", "encoding", "raw", "_content", "field_ttls")

    def __init__(self, key_type: bytes, expire_ms: int, encoding: bytes | None = None, raw: Any = None) -> None:
        self.key_type = key_type
        self.expire_ms = expire_ms  # absolute, ms; -1 without a TTL
        self.encoding = encoding
        self.raw = raw
        self._content: Any = _UNPARSED
        self.field_ttls: dict[bytes, int] = {}  # field -> absolute expiry, ms

    @property
    def content(self) -> Any:
        if self._content is _UNPARSED:
            self._content = parse_content(self.key_type, self.raw)
        return self._content


def scan_batches(pipe: Pipe, count: int, key_type: bytes | None = None) -> Iterator[list[bytes]]:
    """SCAN the pipe's database to the end (only keys of key_type when given); batches may repeat
    keys (SCAN's guarantee), callers dedupe."""
    cursor = b"0"
    extra = ("TYPE", key_type) if key_type else ()
    while True:
        cursor, keys = pipe.call("SCAN", cursor, "COUNT", count, *extra)
        if keys:
            yield keys
        if cursor == b"0":
            return


def typed_batches(pipe: Pipe, count: int) -> Iterator[tuple[bytes, list[bytes]]]:
    """(type, about `count` keys) for every key of the database, one type after the other, no repeats.

    SCAN ... TYPE returns only the matching part of each step, so steps are collected up to `count`."""
    seen: set[bytes] = set()
    for key_type in TYPES:
        pending: list[bytes] = []
        for batch in scan_batches(pipe, count * TYPED_SCAN_FACTOR, key_type):
            keys = [k for k in batch if k not in seen]
            seen.update(keys)
            pending += keys
            if len(pending) >= count:
                yield key_type, pending
                pending = []
        if pending:
            yield key_type, pending


def _string(reply: Any) -> Any:
    return reply if reply.__class__ is bytes else None


def _collection(reply: Any) -> Any:
    return reply or None if reply.__class__ is list else None  # never empty: empty means no key


def _hash(reply: Any) -> Any:
    return dict(zip(reply[0::2], reply[1::2])) or None if reply.__class__ is list else None


def _zset(reply: Any) -> Any:
    return list(zip(reply[0::2], reply[1::2])) or None if reply.__class__ is list else None


def _stream(reply: Any) -> Any:
    return parse_stream(reply) if reply.__class__ is list else None


# type -> its reply parser: the content, or None when there is none (no key, another type).
PARSERS = {b"string": _string, b"list": _collection, b"set": _collection, b"hash": _hash, b"zset": _zset,
           b"stream": _stream}


def parse_content(key_type: bytes, reply: Any) -> Any:
    """The plain structure of a key's content, or None when there is none (no key, another type)."""
    parser = PARSERS.get(key_type)
    return parser(reply) if parser else None


def _pairs(flat: list[Any]) -> dict[bytes, Any]:
    return dict(zip(flat[0::2], flat[1::2]))


def parse_stream(reply: list[Any]) -> dict[str, Any]:
    """XINFO STREAM FULL as a structure; the radix-tree counters (internal layout) are left out."""
    info = _pairs(reply)
    groups = []
    for raw_group in info.get(b"groups") or []:
        group = _pairs(raw_group)
        consumers = []
        for raw_consumer in group.get(b"consumers") or []:
            consumer = _pairs(raw_consumer)
            consumers.append({"name": consumer.get(b"name"), "pel-count": consumer.get(b"pel-count"),
                              "pending": [entry[0] for entry in consumer.get(b"pending") or []],
                              # Reported, not compared: a copy cannot set when a consumer was last seen.
                              "seen-time": consumer.get(b"seen-time"),
                              "active-time": consumer.get(b"active-time")})
        groups.append({"name": group.get(b"name"), "last-delivered-id": group.get(b"last-delivered-id"),
                       "entries-read": group.get(b"entries-read"), "lag": group.get(b"lag"),
                       "pel-count": group.get(b"pel-count"),
                       "pending": [tuple(entry) for entry in group.get(b"pending") or []],
                       "consumers": consumers})
    return {"length": info.get(b"length"), "last-generated-id": info.get(b"last-generated-id"),
            "max-deleted-entry-id": info.get(b"max-deleted-entry-id"),
            "entries-added": info.get(b"entries-added"),
            "recorded-first-entry-id": info.get(b"recorded-first-entry-id"),
            "entries": [(entry[0], list(entry[1])) for entry in info.get(b"entries") or []],
            "groups": groups}


def field_ttl_command(key: bytes, fields: list[bytes]) -> Command:
    """Absolute expiry (ms) of each field: -1 none, -2 no such field (Valkey 9.0 HPEXPIRETIME)."""
    return ("HPEXPIRETIME", key, "FIELDS", len(fields), *fields)


def volatile_field_dbs(info_keyspace: dict[int, dict[str, int]]) -> set[int]:
    """Databases where INFO keyspace counts keys with expiring fields (Valkey's keys_with_volatile_items)."""
    return {db for db, fields in info_keyspace.items() if fields.get("keys_with_volatile_items", 0) > 0}


@dataclass
class DbPipes:
    """One server's database through two connections: `main` carries only the batched reads, in order;
    `aux` the rest (SCAN, TYPE of a key of another type, field TTLs), so a batch can be in flight
    while the previous one is parsed."""

    main: Pipe
    aux: Pipe
    field_ttls: bool = False  # read hash-field TTLs here (the server has them, and this db holds some)

    def close(self) -> None:
        self.main.close()
        self.aux.close()


def open_db(port: int, db: int, field_ttls: bool = False) -> DbPipes:
    return DbPipes(Pipe(port, db), Pipe(port, db), field_ttls)


def send_reads(sides: Sequence[DbPipes], keys: list[bytes], key_type: bytes, with_encoding: bool) -> list[int]:
    """Send each server the reads of keys the source holds as key_type; returns the reply counts."""
    reader = READERS[key_type]
    if with_encoding:
        packed = [part for k in keys for part in (PEXPIRETIME.pack(k), ENCODING.pack(k), reader.pack(k))]
    else:
        packed = [part for k in keys for part in (PEXPIRETIME.pack(k), reader.pack(k))]
    return [side.main.send_packed(packed) for side in sides]


def receive_views(sides: Sequence[DbPipes], counts: list[int], keys: list[bytes], key_type: bytes,
                  with_encoding: bool) -> list[list[KeyView]]:
    """Each server's view of those keys, from the replies to send_reads."""
    step = 3 if with_encoding else 2
    string = key_type == b"string"
    views = []
    for side, count in zip(sides, counts):
        replies = side.main.receive(count)
        found: list[KeyView] = []
        wrong: list[int] = []
        for index in range(len(keys)):
            at = index * step
            raw = replies[at + step - 1]
            encoding = replies[at + 1] if with_encoding else None
            # A string is bytes; a collection a non-empty list (empty: no key); anything else: no such key
            # or, with an error reply, a key of another type.
            if raw.__class__ is bytes if string else (raw.__class__ is list and len(raw) > 0):
                found.append(KeyView(key_type, replies[at], encoding, raw))
            else:
                if replies[at] != NO_KEY and is_error(raw):
                    wrong.append(index)  # WRONGTYPE: the key is there, as another type
                found.append(KeyView(MISSING, NO_KEY, encoding))
        if wrong:
            for index, other in zip(wrong, side.aux.run([("TYPE", keys[i]) for i in wrong])):
                found[index].key_type = other
        views.append(found)
    if key_type == b"hash":
        _read_field_ttls([s for s in sides if s.field_ttls], [v for s, v in zip(sides, views) if s.field_ttls], keys)
    return views


def read_views(sides: Sequence[DbPipes], keys: list[bytes], key_type: bytes,
               with_encoding: bool) -> list[list[KeyView]]:
    """send_reads + receive_views: each server's view of keys the source holds as key_type."""
    return receive_views(sides, send_reads(sides, keys, key_type, with_encoding), keys, key_type, with_encoding)


def _read_field_ttls(sides: list[DbPipes], views: list[list[KeyView]], keys: list[bytes]) -> None:
    hashes = [[(key, view) for key, view in zip(keys, side) if view.key_type == b"hash"] for side in views]
    replies = run_both([s.aux for s in sides], [[field_ttl_command(key, list(view.content)) for key, view in pairs]
                                                for pairs in hashes])
    for pairs, side_replies in zip(hashes, replies):
        for (_, view), reply in zip(pairs, side_replies):
            if not is_error(reply):
                view.field_ttls = {f: t for f, t in zip(view.content, reply) if t >= 0}
