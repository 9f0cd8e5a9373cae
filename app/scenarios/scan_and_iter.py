"""scan_and_iter: SCAN, HSCAN, SSCAN and ZSCAN judged by their documented guarantees, plus KEYS.

Test plan, in order:
  1. encodings: a few thousand prefixed string keys, keys of every type, large hashtable/skiplist
     collections (so cursors matter) and small listpack/intset ones (one call returns everything).
  2. completeness: full iterations with MATCH, COUNT and TYPE: every expected element returned at
     least once, nothing foreign, the final cursor "0". How many round trips, duplicates and the
     largest page are measured numbers that change from one server process to the next (the hash
     seed is random), so they sit in "measured", which is not compared.
  3. type_filter: SCAN TYPE per type (content only); commands: HSCAN NOVALUES and ZSCAN NOSCORES,
     which Redis 7.2 lacks.
  4. cursors: how each server parses odd cursors ("-1", "", " 1", 2^64...), tried on a listpack hash
     whose reply does not depend on the cursor; errors: the error texts SCAN options provoke.
  5. mutation: iterations while elements are added and deleted between calls, and while 95% of the
     keys are deleted: elements present for the whole iteration must be returned (SCAN's guarantee).
  6. keys_vs_scan: KEYS returns the same set as a full SCAN with the same pattern.
  7. ordering: the order class of each reply (insertion order, sorted, by score, or hash order), kept
     apart from content. Hash order changes per process, so only the class is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from app.config import ScenarioOptions
from app.scenarios.support import (Reply, ScenarioContext, canonical, glob_escape, is_skipped, plain,
                                   run_scenario, skipped)

NAME = "scan_and_iter"

# Sizes: a keyspace big enough for many SCAN pages, collections well past the listpack limits;
# small collections hold 5 elements inserted out of order (listpack/intset encodings).
KEYSPACE_SIZE = 3000
COLLECTION_SIZE = 2000
# Hashtable-encoded collections of this size: Valkey 9 returns them in insertion order (one bucket
# chain), Redis 7.2 in hash order; 8 elements make a chance match of a random order negligible.
ORDER_PROBE_SIZE = 8
# A value longer than any default *-max-listpack-value forces a small collection to hashtable/skiplist.
LONG_VALUE = "v" * 100
SCAN_COUNTS = (10, 100, 1000)
COLLECTION_COUNTS = (10, 100, 5000)
# Mutation: elements added and deleted between two calls of one iteration.
MUTATION_SIZE = 2000
MUTATION_COUNT = 50
ADDED_PER_CALL = 40
DELETED_PER_CALL = 10
SHRINK_SIZE = 5000
SHRINK_KEEP_EVERY = 20
SHRINK_DELETED_PER_CALL = 400
# A safety bound: an iteration that has not ended after this many calls, plus a few per key in the
# database (SCAN MATCH walks the whole keyspace), is a failure, not a hang.
MAX_ROUND_TRIPS = 20000
ROUND_TRIPS_PER_KEY = 4
WRITE_BATCH = 500
# Cursors whose parsing differs: tried on a listpack hash, whose reply ignores the cursor.
ODD_CURSORS = ("abc", "-1", "", " 1", "+0", "00", "1.5", "0x10",
               "18446744073709551615", "18446744073709551616")

# On a database that holds keys of others, keyspace-wide iterations and KEYS are not run (each would walk
# or block on the whole keyspace); their metrics say so and are not compared.
KEYSPACE_SKIP = ("keyspace-wide SCAN and KEYS skipped: the database holds keys that are not the tool's, and "
                 "each would walk all of them; use an empty database (--db N) to run them")
# Round trips, duplicates and page sizes depend on the per-process hash seed: measured, not compared.
METRIC_KINDS = {"measured.*": "not_compared"}

Element = bytes | tuple[bytes, bytes]


def run(client: redis.Redis, options: ScenarioOptions | None = None) -> dict[str, Any]:
    return run_scenario(NAME, client, options, plan)


def plan(ctx: ScenarioContext) -> None:
    # RESP2 whatever the caller's client speaks, so the metrics do not depend on the client library.
    ctx.raw = ctx.connection(protocol=2)
    ctx.keyspace_own = ctx.keyspace_is_own()
    if not ctx.keyspace_own:
        ctx.warn(KEYSPACE_SKIP)
    data = populate(ctx)
    keyspace_iterations(ctx, data)
    collection_iterations(ctx, data)
    type_filter(ctx, data)
    options_per_server(ctx)
    cursors_and_errors(ctx)
    keys_vs_scan(ctx, data)
    ordering(ctx, data)
    mutation(ctx)


# --- iterating ---------------------------------------------------------------------------------

@dataclass
class Iteration:
    """One full iteration: every element returned (repeats kept), and how it went."""

    elements: list[Element] = field(default_factory=list)
    round_trips: int = 0
    largest_page: int = 0
    final_cursor: Reply = None
    error: Reply = None

    def measured(self) -> dict[str, int]:
        return {"round_trips": self.round_trips, "largest_page": self.largest_page,
                "duplicates": len(self.elements) - len(set(self.elements))}


def iterate(ctx: ScenarioContext, command: str, key: str | None, *options: Any,
            between_calls: Callable[[], None] | None = None) -> Iteration:
    """Call a SCAN-family command from cursor 0 until it returns cursor 0 (bounded)."""
    head = (command,) if key is None else (command, key)
    out, cursor = Iteration(), b"0"
    if key is None and not ctx.keyspace_own:
        out.error = skipped(KEYSPACE_SKIP)  # a full keyspace iteration would walk everyone's keys
        return out
    limit = MAX_ROUND_TRIPS + ROUND_TRIPS_PER_KEY * int(ctx.raw.execute_command("DBSIZE"))
    while out.round_trips < limit:
        try:
            cursor, page = ctx.raw.execute_command(*head, cursor, *options)
        except redis.ResponseError as exc:
            out.error = plain(exc, ctx.prefix)
            return out
        out.round_trips += 1
        out.largest_page = max(out.largest_page, len(page))
        out.elements.extend(pairs(page) if paired(command, options) else page)
        if cursor in (b"0", 0):
            out.final_cursor = plain(cursor)
            return out
        if between_calls:
            between_calls()
    ctx.check(False, f"{command} did not finish within {limit} calls")
    return out


def paired(command: str, options: Iterable[Any]) -> bool:
    """HSCAN and ZSCAN return field/value pairs unless NOVALUES / NOSCORES asks for names only."""
    names_only = {str(o).upper() for o in options} & {"NOVALUES", "NOSCORES"}
    return command.upper() in ("HSCAN", "ZSCAN") and not names_only


def pairs(flat: list[bytes]) -> list[tuple[bytes, bytes]]:
    return list(zip(flat[::2], flat[1::2]))


def completeness(found: Iteration, expected: set[Element]) -> Reply:
    """What an iteration guarantees: all expected elements, nothing else, ending on cursor "0"."""
    if found.error is not None:
        return found.error
    distinct = set(found.elements)
    return {"expected": len(expected), "missing": len(expected - distinct),
            "foreign": len(distinct - expected), "final_cursor": found.final_cursor}


def judge(ctx: ScenarioContext, label: str, found: Iteration, expected: set[Element]) -> None:
    """Store completeness (compared) and the measured numbers (not compared), and check the guarantee."""
    summary = ctx.put("completeness", label, completeness(found, expected))
    ctx.put("measured", label, found.measured())
    if is_skipped(summary):
        return
    ok = isinstance(summary, dict) and summary.get("missing") == 0 and summary.get("foreign") == 0
    ctx.check(ok, f"{label}: incomplete iteration {summary}")


# --- 1. the data ---------------------------------------------------------------------------------

@dataclass
class Data:
    """What was written, so each iteration knows exactly what it must return."""

    strings: list[bytes]
    typed: dict[str, bytes]
    collections: dict[str, tuple[bytes, list[Element]]]


def write(ctx: ScenarioContext, commands: Iterable[tuple[Any, ...]]) -> None:
    """Pipelined writes in batches (fast, and the replies are checked for errors)."""
    batch: list[tuple[Any, ...]] = []
    for command in [*commands, None]:
        if command is not None:
            batch.append(command)
        if batch and (command is None or len(batch) >= WRITE_BATCH):
            pipe = ctx.raw.pipeline(transaction=False)
            for args in batch:
                pipe.execute_command(*args)
            pipe.execute()
            batch = []


def populate(ctx: ScenarioContext) -> Data:
    k = ctx.key
    strings = [k(f"k:{i}") for i in range(KEYSPACE_SIZE)]
    write(ctx, (("SET", name, i) for i, name in enumerate(strings)))
    typed = {"string": k("t:string"), "list": k("t:list"), "set": k("t:set"), "zset": k("t:zset"),
             "hash": k("t:hash"), "stream": k("t:stream")}
    write(ctx, [("SET", typed["string"], "v"), ("RPUSH", typed["list"], "a"), ("SADD", typed["set"], "a"),
                ("ZADD", typed["zset"], 1, "a"), ("HSET", typed["hash"], "f", "v"),
                ("XADD", typed["stream"], "1-1", "f", "v")])
    collections = {
        "large hash": (k("c:hash"), [(f"f{i}".encode(), str(i).encode()) for i in range(COLLECTION_SIZE)]),
        "large set": (k("c:set"), [f"m{i}".encode() for i in range(COLLECTION_SIZE)]),
        "large zset": (k("c:zset"), [(f"m{i}".encode(), str(i).encode()) for i in range(COLLECTION_SIZE)]),
        "small hash": (k("c:small-hash"), [(f"f{i}".encode(), str(i).encode()) for i in (3, 1, 4, 0, 2)]),
        "small set": (k("c:small-set"), [f"m{i}".encode() for i in (3, 1, 4, 0, 2)]),
        "intset": (k("c:intset"), [str(i).encode() for i in (5, 3, 10, 1, 7)]),
        "small zset": (k("c:small-zset"), [(f"m{i}".encode(), str(s).encode())
                                           for i, s in ((0, 3), (1, 1), (2, 2), (3, 5), (4, 4))]),
        "8-element hashtable hash": (k("c:probe-hash"), [(f"f{i}".encode(), LONG_VALUE.encode())
                                                         for i in (7, 2, 5, 0, 3, 6, 1, 4)]),
        "8-element hashtable set": (k("c:probe-set"), [(f"{LONG_VALUE}{i}").encode()
                                                       for i in (7, 2, 5, 0, 3, 6, 1, 4)]),
        # Scores fall as members are added, so score order is neither insertion nor member order.
        "8-element skiplist zset": (k("c:probe-zset"), [(f"{LONG_VALUE}{i}".encode(), str(8 - n).encode())
                                                        for n, i in enumerate((7, 2, 5, 0, 3, 6, 1, 4))]),
    }
    write(ctx, (command for key, items in collections.values() for command in fill_commands(key, items)))
    for label, (key, _) in collections.items():
        ctx.record("encodings", label, "OBJECT", "ENCODING", key)
    for label in ("large hash", "large set", "large zset"):
        if ctx.metrics["encodings"][label] not in ("hashtable", "skiplist"):
            ctx.warn(f"{label} is {ctx.metrics['encodings'][label]}-encoded here: its cursors are not exercised")
    return Data([s.encode() for s in strings], {t: v.encode() for t, v in typed.items()},
                {label: (key.encode(), items) for label, (key, items) in collections.items()})


def fill_commands(key: str, items: list[Element]) -> Iterable[tuple[Any, ...]]:
    """One write per element, so insertion order is exactly the list order."""
    for item in items:
        if key.endswith("zset"):
            yield ("ZADD", key, item[1], item[0])
        elif isinstance(item, tuple):
            yield ("HSET", key, item[0], item[1])
        else:
            yield ("SADD", key, item)


# --- 2. full iterations ---------------------------------------------------------------------------

def keyspace_iterations(ctx: ScenarioContext, data: Data) -> None:
    everything = set(data.strings) | set(data.typed.values()) | {key for key, _ in data.collections.values()}
    own = glob_escape(ctx.prefix)
    for count in SCAN_COUNTS:
        judge(ctx, f"SCAN MATCH {{p}}* COUNT {count}",
              iterate(ctx, "SCAN", None, "MATCH", own + "*", "COUNT", count), everything)
    judge(ctx, "SCAN MATCH {p}* (default COUNT)", iterate(ctx, "SCAN", None, "MATCH", own + "*"), everything)
    index = {s: s.rsplit(b":", 1)[1].decode() for s in data.strings}
    patterns = {
        "k:1*": lambda i: i.startswith("1"),
        "k:?": lambda i: len(i) == 1,
        "k:[12]?5": lambda i: len(i) == 3 and i[0] in "12" and i[2] == "5",
        "k:*[^0-9]": lambda i: False,
        "k:2\\*": lambda i: False,
    }
    for pattern, wanted in patterns.items():
        expected = {s for s in data.strings if wanted(index[s])}
        judge(ctx, f"SCAN MATCH {{p}}{pattern} COUNT 100",
              iterate(ctx, "SCAN", None, "MATCH", own + pattern, "COUNT", 100), expected)
    judge(ctx, "SCAN MATCH {p}nomatch* COUNT 100",
          iterate(ctx, "SCAN", None, "MATCH", own + "nomatch*", "COUNT", 100), set())


def collection_iterations(ctx: ScenarioContext, data: Data) -> None:
    commands = {"hash": "HSCAN", "set": "SSCAN", "zset": "ZSCAN", "intset": "SSCAN"}
    for label, (key, items) in data.collections.items():
        command = commands[label.rsplit(" ", 1)[-1]]
        counts = COLLECTION_COUNTS if label.startswith("large") else (1, 10)
        for count in counts:
            judge(ctx, f"{command} {label} COUNT {count}",
                  iterate(ctx, command, key, "COUNT", count), set(items))
    key, items = data.collections["large hash"]
    judge(ctx, "HSCAN large hash MATCH f1* COUNT 100", iterate(ctx, "HSCAN", key, "MATCH", "f1*", "COUNT", 100),
          {item for item in items if item[0].startswith(b"f1")})
    key, items = data.collections["large set"]
    judge(ctx, "SSCAN large set MATCH m?? COUNT 100", iterate(ctx, "SSCAN", key, "MATCH", "m??", "COUNT", 100),
          {item for item in items if len(item) == 3})
    key, items = data.collections["large zset"]
    judge(ctx, "ZSCAN large zset MATCH *99 COUNT 100", iterate(ctx, "ZSCAN", key, "MATCH", "*99", "COUNT", 100),
          {item for item in items if item[0].endswith(b"99")})
    # A listpack collection is returned whole in one call whatever COUNT says: a deterministic number.
    for label in ("small hash", "small set", "intset", "small zset"):
        key, _ = data.collections[label]
        command = commands[label.rsplit(" ", 1)[-1]]
        ctx.put("completeness", f"{command} {label} COUNT 1: round trips",
                iterate(ctx, command, key, "COUNT", 1).round_trips)
    # The replies themselves, content only (order is in "ordering").
    for label in ("small hash", "small set", "intset", "small zset"):
        key, _ = data.collections[label]
        command = commands[label.rsplit(" ", 1)[-1]]
        ctx.put("replies", f"{command} {label}", canonical_scan(ctx.call(command, key, 0), command))
    resp3 = ctx.connection(protocol=3)
    key, _ = data.collections["small zset"]
    ctx.put("replies", "RESP3 ZSCAN small zset", canonical_scan(ctx.call("ZSCAN", key, 0, conn=resp3), "ZSCAN"))
    key, _ = data.collections["small hash"]
    ctx.put("replies", "RESP3 HSCAN small hash", canonical_scan(ctx.call("HSCAN", key, 0, conn=resp3), "HSCAN"))


def canonical_scan(reply: Reply, command: str) -> Reply:
    """A SCAN-family reply with its page in sorted form (pairs kept together)."""
    if not isinstance(reply, list) or len(reply) != 2 or not isinstance(reply[1], list):
        return reply
    page = reply[1]
    if command.upper() in ("HSCAN", "ZSCAN"):
        page = [list(p) for p in zip(page[::2], page[1::2])]
    return [reply[0], canonical(page)]


# --- 3. TYPE filter and options only one server has -----------------------------------------------

def type_filter(ctx: ScenarioContext, data: Data) -> None:
    own = glob_escape(ctx.prefix) + "*"
    by_type: dict[str, set[bytes]] = {t: {key} for t, key in data.typed.items()}
    by_type["string"] |= set(data.strings)
    for label, (key, _) in data.collections.items():
        kind = "set" if label == "intset" else label.rsplit(" ", 1)[-1]
        by_type[kind].add(key)
    for type_name, expected in by_type.items():
        found = iterate(ctx, "SCAN", None, "MATCH", own, "COUNT", 500, "TYPE", type_name)
        judge(ctx, f"SCAN TYPE {type_name}", found, expected)
        if type_name != "string" and found.error is None:
            ctx.put("type_filter", f"SCAN TYPE {type_name}", canonical(plain(sorted(set(found.elements)), ctx.prefix)))
    found = iterate(ctx, "SCAN", None, "MATCH", own, "COUNT", 500, "TYPE", "HASH")
    ctx.put("type_filter", "SCAN TYPE HASH (upper case)", found.error or canonical(plain(found.elements, ctx.prefix)))
    for bogus in ("bogus", "none"):
        found = iterate(ctx, "SCAN", None, "MATCH", own, "COUNT", 500, "TYPE", bogus)
        ctx.put("type_filter", f"SCAN TYPE {bogus}", found.error or canonical(plain(found.elements, ctx.prefix)))


def options_per_server(ctx: ScenarioContext) -> None:
    """NOVALUES (HSCAN) and NOSCORES (ZSCAN): tried on every collection kind, reply or error."""
    k = ctx.key
    ctx.put("commands", "HSCAN small hash NOVALUES",
            canonical_scan(ctx.call("HSCAN", k("c:small-hash"), 0, "NOVALUES"), "SSCAN"))
    ctx.put("commands", "ZSCAN small zset NOSCORES",
            canonical_scan(ctx.call("ZSCAN", k("c:small-zset"), 0, "NOSCORES"), "SSCAN"))
    large = iterate(ctx, "HSCAN", k("c:hash"), "COUNT", 100, "NOVALUES")
    ctx.put("commands", "HSCAN large hash NOVALUES",
            large.error or completeness(large, {f"f{i}".encode() for i in range(COLLECTION_SIZE)}))
    large = iterate(ctx, "ZSCAN", k("c:zset"), "COUNT", 100, "NOSCORES")
    ctx.put("commands", "ZSCAN large zset NOSCORES",
            large.error or completeness(large, {f"m{i}".encode() for i in range(COLLECTION_SIZE)}))
    e = "errors"
    ctx.record(e, "SSCAN NOVALUES", "SSCAN", k("c:small-set"), 0, "NOVALUES")
    ctx.record(e, "SCAN NOVALUES", "SCAN", 0, "NOVALUES")
    ctx.record(e, "HSCAN NOSCORES", "HSCAN", k("c:small-hash"), 0, "NOSCORES")
    ctx.record(e, "ZSCAN NOVALUES", "ZSCAN", k("c:small-zset"), 0, "NOVALUES")


# --- 4. cursors and errors ----------------------------------------------------------------------

def cursors_and_errors(ctx: ScenarioContext) -> None:
    small, own_none = ctx.key("c:small-hash"), glob_escape(ctx.prefix) + "nomatch*"
    for cursor in ODD_CURSORS:
        ctx.put("cursors", f"HSCAN listpack hash cursor {cursor!r}",
                canonical_scan(ctx.call("HSCAN", small, cursor), "HSCAN"))
        # On the keyspace the page depends on the hash seed: only accepted or refused is recorded.
        ctx.put("cursors", f"SCAN cursor {cursor!r}", accepted(ctx.call("SCAN", cursor, "MATCH", own_none)))
    e, k = "errors", ctx.key
    ctx.record(e, "SCAN COUNT 0", "SCAN", 0, "COUNT", 0)
    ctx.record(e, "SCAN COUNT -1", "SCAN", 0, "COUNT", -1)
    ctx.record(e, "SCAN COUNT not a number", "SCAN", 0, "COUNT", "abc")
    ctx.record(e, "SCAN unknown option", "SCAN", 0, "FOO", "bar")
    ctx.record(e, "SCAN MATCH without pattern", "SCAN", 0, "MATCH")
    ctx.record(e, "SCAN TYPE without name", "SCAN", 0, "TYPE")
    ctx.record(e, "SCAN no arguments", "SCAN")
    ctx.record(e, "HSCAN without cursor", "HSCAN", small)
    ctx.record(e, "HSCAN TYPE option", "HSCAN", small, 0, "TYPE", "string")
    ctx.record(e, "HSCAN COUNT 0", "HSCAN", small, 0, "COUNT", 0)
    ctx.record(e, "SSCAN on a hash", "SSCAN", small, 0)
    ctx.record(e, "ZSCAN on a string", "ZSCAN", k("k:0"), 0)
    ctx.record(e, "KEYS no pattern", "KEYS")
    ctx.record("replies", "HSCAN missing key", "HSCAN", k("missing"), 0)
    ctx.record("replies", "SSCAN missing key", "SSCAN", k("missing"), 0)


def accepted(reply: Reply) -> Reply:
    return reply if isinstance(reply, dict) and "error" in reply else "accepted"


# --- 5. iteration while the data changes ------------------------------------------------------------

def mutation(ctx: ScenarioContext) -> None:
    """SCAN's guarantee: an element present from start to end of an iteration is returned."""
    k = ctx.key
    specs = {
        "SCAN": (lambda i: ("SET", k(f"m:k{i}"), i), lambda i: ("DEL", k(f"m:k{i}")),
                 lambda i: k(f"m:k{i}").encode(), None),
        "HSCAN": (lambda i: ("HSET", k("m:hash"), f"f{i}", i), lambda i: ("HDEL", k("m:hash"), f"f{i}"),
                  lambda i: (f"f{i}".encode(), str(i).encode()), k("m:hash")),
        "SSCAN": (lambda i: ("SADD", k("m:set"), f"m{i}"), lambda i: ("SREM", k("m:set"), f"m{i}"),
                  lambda i: f"m{i}".encode(), k("m:set")),
        "ZSCAN": (lambda i: ("ZADD", k("m:zset"), i, f"m{i}"), lambda i: ("ZREM", k("m:zset"), f"m{i}"),
                  lambda i: (f"m{i}".encode(), str(i).encode()), k("m:zset")),
    }
    for command, (add, delete, element, key) in specs.items():
        write(ctx, (add(i) for i in range(MUTATION_SIZE)))
        churn = Churn(ctx, add, delete, doomed=[i for i in range(MUTATION_SIZE) if i % 4 == 0])
        options = ("MATCH", glob_escape(k("m:k")) + "*") if key is None else ()
        found = iterate(ctx, command, key, *options, "COUNT", MUTATION_COUNT, between_calls=churn)
        stable = {element(i) for i in range(MUTATION_SIZE) if i % 4}
        allowed = {element(i) for i in range(churn.next_new)}
        guarantee(ctx, f"{command} while adding and deleting", found, stable, allowed)
        drop(ctx, "m:")
    shrink(ctx)


class Churn:
    """Between two calls of an iteration: add ADDED_PER_CALL new elements, delete DELETED_PER_CALL."""

    def __init__(self, ctx: ScenarioContext, add: Callable[[int], tuple[Any, ...]],
                 delete: Callable[[int], tuple[Any, ...]], doomed: list[int]) -> None:
        self.ctx, self.add, self.delete, self.doomed = ctx, add, delete, doomed
        self.next_new = MUTATION_SIZE

    def __call__(self) -> None:
        new = range(self.next_new, self.next_new + ADDED_PER_CALL)
        self.next_new += ADDED_PER_CALL
        gone = [self.doomed.pop() for _ in range(min(DELETED_PER_CALL, len(self.doomed)))]
        write(self.ctx, [*(self.add(i) for i in new), *(self.delete(i) for i in gone)])


def shrink(ctx: ScenarioContext) -> None:
    """Deleting most keys mid-iteration may shrink the table; survivors must still all be returned."""
    k = ctx.key
    write(ctx, (("SET", k(f"s:{i}"), i) for i in range(SHRINK_SIZE)))
    doomed = [k(f"s:{i}") for i in range(SHRINK_SIZE) if i % SHRINK_KEEP_EVERY]

    def purge() -> None:
        if doomed:
            batch = [doomed.pop() for _ in range(min(SHRINK_DELETED_PER_CALL, len(doomed)))]
            ctx.raw.execute_command("DEL", *batch)

    found = iterate(ctx, "SCAN", None, "MATCH", glob_escape(k("s:")) + "*", "COUNT", MUTATION_COUNT,
                    between_calls=purge)
    stable = {k(f"s:{i}").encode() for i in range(0, SHRINK_SIZE, SHRINK_KEEP_EVERY)}
    guarantee(ctx, "SCAN while 95% of keys are deleted", found, stable,
              {k(f"s:{i}").encode() for i in range(SHRINK_SIZE)})
    drop(ctx, "s:")


def drop(ctx: ScenarioContext, name_prefix: str) -> None:
    """Delete one group of this scenario's keys, so later steps see a known keyspace."""
    keys = ctx.own_keys(name_prefix)
    for start in range(0, len(keys), WRITE_BATCH):
        ctx.raw.execute_command("DEL", *keys[start:start + WRITE_BATCH])


def guarantee(ctx: ScenarioContext, label: str, found: Iteration, stable: set[Element],
              allowed: set[Element]) -> None:
    distinct = set(found.elements)
    summary = found.error or {"stable elements": len(stable), "stable elements missed": len(stable - distinct),
                              "foreign elements": len(distinct - allowed), "final_cursor": found.final_cursor}
    ctx.put("mutation", label, summary)
    ctx.put("measured", label, {**found.measured(), "returned": len(distinct)})
    if is_skipped(summary):
        return
    ctx.check(isinstance(summary, dict) and summary.get("stable elements missed") == 0
              and summary.get("foreign elements") == 0, f"{label}: SCAN guarantee broken {summary}")


# --- 6. KEYS against SCAN ------------------------------------------------------------------------

def keys_vs_scan(ctx: ScenarioContext, data: Data) -> None:
    if not ctx.keyspace_own:  # KEYS blocks the server for the whole keyspace
        for pattern in ("*", "k:1*", "k:?", "t:*"):
            ctx.put("keys_vs_scan", f"{{p}}{pattern}", skipped(KEYSPACE_SKIP))
        ctx.put("keys_vs_scan", "KEYS {p}t:*", skipped(KEYSPACE_SKIP))
        return
    for pattern in ("*", "k:1*", "k:?", "t:*"):
        full = glob_escape(ctx.prefix) + pattern
        keys = ctx.raw.execute_command("KEYS", full)
        scanned = iterate(ctx, "SCAN", None, "MATCH", full, "COUNT", 1000)
        ctx.put("keys_vs_scan", f"{{p}}{pattern}", {"KEYS count": len(keys), "same set as SCAN":
                                                     set(keys) == set(scanned.elements)})
    ctx.put("keys_vs_scan", "KEYS {p}t:*", canonical(ctx.call("KEYS", glob_escape(ctx.prefix) + "t:*")))


# --- 7. ordering ---------------------------------------------------------------------------------

def order_class(got: list[Any], orders: dict[str, list[Any]]) -> str:
    """Name of the first known order the reply follows; "hash order" when it follows none."""
    for name, order in orders.items():
        if list(got) == list(order):
            return name
    return "hash order"


def ordering(ctx: ScenarioContext, data: Data) -> None:
    commands = {"hash": "HSCAN", "set": "SSCAN", "zset": "ZSCAN", "intset": "SSCAN"}
    for label, (key, items) in data.collections.items():
        command = commands[label.rsplit(" ", 1)[-1]]
        found = iterate(ctx, command, key, "COUNT", 100 if label.startswith("large") else 10)
        ctx.put("ordering", f"{command} {label}", order_class(names_of(found.elements),
                                                                      known_orders(items, command == "ZSCAN")))
    found = iterate(ctx, "SCAN", None, "MATCH", glob_escape(ctx.prefix) + "k:*", "COUNT", 1000)
    ctx.put("ordering", "SCAN keyspace", order_class(found.elements, {"insertion order": data.strings,
                                                                      "sorted": sorted(data.strings)}))
    keys = ctx.raw.execute_command("KEYS", glob_escape(ctx.prefix) + "k:*")
    ctx.put("ordering", "KEYS", order_class(keys, {"insertion order": data.strings, "sorted": sorted(data.strings)}))


def names_of(elements: list[Element]) -> list[bytes]:
    return [e[0] if isinstance(e, tuple) else e for e in elements]


def known_orders(items: list[Element], scored: bool) -> dict[str, list[bytes]]:
    """The orders a reply could follow: score order (zsets), insertion, byte-wise, numeric (intsets)."""
    names = names_of(items)
    orders: dict[str, list[bytes]] = {}
    if scored:
        orders["by score"] = [item[0] for item in sorted(items, key=lambda it: _number(it[1]))]
    orders["insertion order"] = names
    orders["sorted"] = sorted(names)
    if all(_number(name) != float("inf") for name in names):
        orders["numeric"] = sorted(names, key=_number)
    return orders


def _number(value: bytes) -> float:
    try:
        return float(value)
    except ValueError:
        return float("inf")
