"""Type-wise reads of keys, shared by the logical copy and the verification.

Keys are found by SCAN and grouped by TYPE, so each key is then read in one pipelined round:
PEXPIRETIME (-2: no such key), OBJECT ENCODING when asked, and the one command that reads that type
in full. A key of another type on the other server answers WRONGTYPE and is looked up with TYPE.

Content structures: string -> bytes; list -> [bytes]; set -> [bytes] (server order); hash ->
{field: value}; zset -> [(member, score as the server wrote it)]; stream -> the parsed
XINFO STREAM FULL (entries, ids, counters, groups, their pending entries and consumers).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from app.migration import settings
from app.migration.wire import Command, KeyedCommand, Pipe, bulk, is_error, run_both

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
PEXPIRETIME = KeyedCommand("PEXPIRETIME")
TYPE_SEGMENTS = KeyedCommand("TYPE").around()
ENCODING = KeyedCommand("OBJECT", "ENCODING", key_at=2)
_UNPARSED = object()
NO_TTL = -1
NO_KEY = -2  # PEXPIRETIME of a key that does not exist
MISSING = b"none"


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


def scan_batches(pipe: Pipe, count: int) -> Iterator[list[bytes]]:
    """SCAN the pipe's database to the end; batches may repeat keys (SCAN's guarantee), callers dedupe."""
    cursor = b"0"
    while True:
        cursor, keys = pipe.call("SCAN", cursor, "COUNT", count)
        if keys:
            yield keys
        if cursor == b"0":
            return


def typed_batches(pipe: Pipe, count: int) -> Iterator[tuple[bytes, list[bytes]]]:
    """(type, about `count` keys) for every key of the database, no repeats: one SCAN pass, TYPE of
    each key pipelined, keys grouped by type. Types the tool does not read (a module's) come too.

    One pass: SCAN ... TYPE t would walk the whole keyspace once per type (measured: 6 passes cost the
    source twice the CPU of the reads themselves at 1M keys)."""
    seen: set[bytes] = set()
    pending: dict[bytes, list[bytes]] = {}
    for batch in scan_batches(pipe, count):
        keys = [k for k in batch if k not in seen]
        seen.update(keys)
        payload = b"".join([bulk(key).join(TYPE_SEGMENTS) for key in keys])
        types = pipe.receive(pipe.send_bytes(payload, len(keys)))
        for key, key_type in zip(keys, types):
            if key_type == MISSING or is_error(key_type):
                continue  # expired since SCAN
            group = pending.setdefault(key_type, [])
            group.append(key)
            if len(group) >= count:
                yield key_type, group
                pending[key_type] = []
    for key_type, group in pending.items():
        if group:
            yield key_type, group


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


class ScanAhead:
    """typed_batches of one database, read by a thread on its own connection: the next keys are
    already there when a batch has been compared (waiting for SCAN replies releases the GIL)."""

    _END = object()

    def __init__(self, port: int, db: int, count: int) -> None:
        self._pipe = Pipe(port, db)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=settings.SCAN_AHEAD_BATCHES)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(count,), name="rvc-migrate-scan", daemon=True)
        self._thread.start()

    def _run(self, count: int) -> None:
        try:
            for item in typed_batches(self._pipe, count):
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
            self._queue.put(self._END)
        except Exception as exc:  # noqa: BLE001 - handed to the reading thread, raised there
            self._queue.put(exc)

    def __iter__(self) -> Iterator[tuple[bytes, list[bytes]]]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(timeout=0.1)
        self._pipe.close()

    def __enter__(self) -> "ScanAhead":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
    commands = (PEXPIRETIME, ENCODING, READERS[key_type]) if with_encoding else (PEXPIRETIME, READERS[key_type])
    # The constant bytes between one key's occurrences: the key's bulk string joins them into its commands.
    segments = [commands[0].around()[0]]
    for before, after in zip(commands, commands[1:]):
        segments.append(before.around()[1] + after.around()[0])
    segments.append(commands[-1].around()[1])
    payload = b"".join([bulk(key).join(segments) for key in keys])
    return [side.main.send_bytes(payload, len(keys) * len(commands)) for side in sides]


def is_present(key_type: bytes, raw: Any) -> bool:
    """A string reads as bytes, a collection as a non-empty list (empty: no key); anything else is no
    key or, as an error reply, a key of another type."""
    return raw.__class__ is bytes if key_type == b"string" else (raw.__class__ is list and len(raw) > 0)


def view_at(side: DbPipes, key: bytes, key_type: bytes, replies: list[Any], at: int, step: int) -> KeyView:
    """One key's view from its replies to send_reads (a key of another type is looked up with TYPE)."""
    raw = replies[at + step - 1]
    encoding = replies[at + 1] if step == 3 else None
    if is_present(key_type, raw):
        return KeyView(key_type, replies[at], encoding, raw)
    view = KeyView(MISSING, NO_KEY, encoding)
    if replies[at] != NO_KEY and is_error(raw):  # WRONGTYPE: the key is there, as another type
        view.key_type = side.aux.call("TYPE", key)
    return view


def receive_views(sides: Sequence[DbPipes], counts: list[int], keys: list[bytes], key_type: bytes,
                  with_encoding: bool) -> list[list[KeyView]]:
    """Each server's view of those keys, from the replies to send_reads (with hash-field TTLs where the
    side reads them)."""
    step = 3 if with_encoding else 2
    views = []
    for side, count in zip(sides, counts):
        replies = side.main.receive(count)
        views.append([view_at(side, key, key_type, replies, i * step, step) for i, key in enumerate(keys)])
    if key_type == b"hash":
        _read_field_ttls([s for s in sides if s.field_ttls], [v for s, v in zip(sides, views) if s.field_ttls], keys)
    return views


def _read_field_ttls(sides: list[DbPipes], views: list[list[KeyView]], keys: list[bytes]) -> None:
    hashes = [[(key, view) for key, view in zip(keys, side) if view.key_type == b"hash"] for side in views]
    replies = run_both([s.aux for s in sides], [[field_ttl_command(key, list(view.content)) for key, view in pairs]
                                                for pairs in hashes])
    for pairs, side_replies in zip(hashes, replies):
        for (_, view), reply in zip(pairs, side_replies):
            if not is_error(reply):
                view.field_ttls = {f: t for f, t in zip(view.content, reply) if t >= 0}
