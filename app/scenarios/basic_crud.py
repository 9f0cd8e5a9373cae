"""basic_crud: the replies of a fixed sequence of string and keyspace commands.

Test plan, in order:
  1. SET and its options (NX, XX, GET, EX/PX/EXAT/KEEPTTL), GET, GETEX, GETDEL, SETNX, MSETNX.
  2. INCR/DECR/INCRBY/DECRBY and INCRBYFLOAT, whose float formatting differs between servers.
  3. APPEND, STRLEN, SETRANGE, GETRANGE (including negative and out-of-range offsets).
  4. MSET/MGET, DEL/UNLINK/EXISTS (counting repeats), TYPE, RENAME, COPY.
  5. EXPIRE family with its NX/XX/GT/LT options, TTL/PTTL, PERSIST.
  6. OBJECT ENCODING of values of several sizes (int, embstr, raw boundaries) and MEMORY USAGE.
  7. Error replies: wrong type, wrong arity, syntax errors, overflow, not-a-number.
Every reply is stored as sent (raw, callbacks off), so the comparison shows exactly where the
servers answer differently.
"""

from __future__ import annotations

from typing import Any

import redis

from app.config import ScenarioOptions
from app.scenarios.support import ScenarioContext, run_scenario

NAME = "basic_crud"

# Value lengths around the embstr/raw boundary (44 bytes in both code bases) and beyond.
ENCODING_VALUE_LENGTHS = (1, 20, 44, 45, 64, 1024)
# Integers at the shared-integer and long-long edges.
ENCODING_INTEGERS = ("0", "9999", "10000", "-1", "9223372036854775807", "9223372036854775808", "01")


def run(client: redis.Redis, options: ScenarioOptions | None = None) -> dict[str, Any]:
    return run_scenario(NAME, client, options, plan)


def plan(ctx: ScenarioContext) -> None:
    k = ctx.key
    r = "replies"

    # 1. SET with its options, GET, GETEX, GETDEL
    ctx.record(r, "SET k v", "SET", k("s"), "v")
    ctx.record(r, "GET k", "GET", k("s"))
    ctx.record(r, "GET missing", "GET", k("missing"))
    ctx.record(r, "SET k v2 NX (exists)", "SET", k("s"), "v2", "NX")
    ctx.record(r, "SET k v2 XX (exists)", "SET", k("s"), "v2", "XX")
    ctx.record(r, "SET missing v XX", "SET", k("nx"), "v", "XX")
    ctx.record(r, "SET k v3 GET", "SET", k("s"), "v3", "GET")
    ctx.record(r, "SET missing v GET", "SET", k("g"), "v", "GET")
    ctx.record(r, "SET k v NX GET", "SET", k("s"), "v4", "NX", "GET")
    ctx.record(r, "SET k v EX 100", "SET", k("s"), "v", "EX", 100)
    ctx.record(r, "TTL after EX 100", "TTL", k("s"))
    ctx.record(r, "SET k v KEEPTTL", "SET", k("s"), "v5", "KEEPTTL")
    ctx.record(r, "TTL after KEEPTTL", "TTL", k("s"))
    ctx.record(r, "SET k v PX 100000", "SET", k("s"), "v", "PX", 100000)
    ctx.record(r, "SET k v EXAT past", "SET", k("past"), "v", "EXAT", 1)
    ctx.record(r, "GET after EXAT past", "GET", k("past"))
    ctx.record(r, "SET k v EX 0", "SET", k("s"), "v", "EX", 0)
    ctx.record(r, "SET k v EX -1", "SET", k("s"), "v", "EX", -1)
    ctx.record(r, "SET k v EX 1 PX 1", "SET", k("s"), "v", "EX", 1, "PX", 1)
    ctx.record(r, "SET k v NX XX", "SET", k("s"), "v", "NX", "XX")
    ctx.record(r, "SET k v EX notanumber", "SET", k("s"), "v", "EX", "abc")
    ctx.record(r, "GETEX k EX 50", "GETEX", k("s"), "EX", 50)
    ctx.record(r, "TTL after GETEX", "TTL", k("s"))
    ctx.record(r, "GETEX k PERSIST", "GETEX", k("s"), "PERSIST")
    ctx.record(r, "TTL after GETEX PERSIST", "TTL", k("s"))
    ctx.record(r, "GETEX missing", "GETEX", k("missing"))
    ctx.record(r, "GETDEL k", "GETDEL", k("s"))
    ctx.record(r, "GETDEL missing", "GETDEL", k("s"))
    ctx.record(r, "SETNX new", "SETNX", k("n"), "1")
    ctx.record(r, "SETNX existing", "SETNX", k("n"), "2")
    ctx.record(r, "MSETNX one exists", "MSETNX", k("n"), "1", k("n2"), "2")
    ctx.record(r, "MSETNX none exist", "MSETNX", k("m1"), "1", k("m2"), "2")
    ctx.record(r, "SETEX", "SETEX", k("se"), 10, "v")
    ctx.record(r, "PSETEX", "PSETEX", k("pse"), 10000, "v")
    ctx.record(r, "SETEX 0", "SETEX", k("se"), 0, "v")

    # 2. counters and float formatting
    ctx.record(r, "INCR new", "INCR", k("c"))
    ctx.record(r, "INCRBY 41", "INCRBY", k("c"), 41)
    ctx.record(r, "DECR", "DECR", k("c"))
    ctx.record(r, "DECRBY 2", "DECRBY", k("c"), 2)
    ctx.record(r, "INCRBY negative", "INCRBY", k("c"), -100)
    ctx.record(r, "GET counter", "GET", k("c"))
    ctx.record(r, "SET max int", "SET", k("c"), "9223372036854775807")
    ctx.record(r, "INCR overflow", "INCR", k("c"))
    ctx.record(r, "SET min int", "SET", k("c"), "-9223372036854775808")
    ctx.record(r, "DECR underflow", "DECR", k("c"))
    ctx.record(r, "DECRBY min int", "DECRBY", k("c2"), "-9223372036854775808")
    ctx.record(r, "INCR not integer", "INCR", k("g"))
    ctx.record(r, "INCRBY not integer arg", "INCRBY", k("c"), "1.5")
    for value, by in (("10.5", "0.1"), ("5.0e3", "2.0e2"), ("0", "1e-17"), ("3", "1.5"),
                      ("1.1", "-1.1"), ("0", "123456789012345678")):
        ctx.record(r, f"SET {value}; INCRBYFLOAT {by}", "SET", k("f"), value)
        ctx.record(r, f"INCRBYFLOAT {value} + {by}", "INCRBYFLOAT", k("f"), by)
    ctx.record(r, "INCRBYFLOAT inf", "INCRBYFLOAT", k("f"), "inf")
    ctx.record(r, "INCRBYFLOAT nan", "INCRBYFLOAT", k("f"), "nan")
    ctx.record(r, "INCRBYFLOAT not a number", "INCRBYFLOAT", k("f"), "abc")

    # 3. APPEND, STRLEN, SETRANGE, GETRANGE
    ctx.record(r, "APPEND new", "APPEND", k("a"), "Hello")
    ctx.record(r, "APPEND existing", "APPEND", k("a"), " World")
    ctx.record(r, "STRLEN", "STRLEN", k("a"))
    ctx.record(r, "STRLEN missing", "STRLEN", k("missing"))
    ctx.record(r, "APPEND to integer", "APPEND", k("c2"), "7")
    ctx.record(r, "SETRANGE 6", "SETRANGE", k("a"), 6, "Redis")
    ctx.record(r, "SETRANGE past end", "SETRANGE", k("a"), 15, "!")
    ctx.record(r, "GET after SETRANGE past end", "GET", k("a"))
    ctx.record(r, "SETRANGE missing empty", "SETRANGE", k("sr"), 5, "")
    ctx.record(r, "EXISTS after empty SETRANGE", "EXISTS", k("sr"))
    ctx.record(r, "SETRANGE negative offset", "SETRANGE", k("a"), -1, "x")
    ctx.record(r, "SETRANGE offset too large", "SETRANGE", k("a"), 536870912, "x")
    for start, end in ((0, 4), (-5, -1), (5, 3), (0, -1), (-100, 100), (20, 30)):
        ctx.record(r, f"GETRANGE {start} {end}", "GETRANGE", k("a"), start, end)
    ctx.record(r, "SUBSTR 0 3", "SUBSTR", k("a"), 0, 3)
    ctx.record(r, "LCS", "LCS", k("a"), k("a"))

    # 4. multi-key commands, keyspace commands
    ctx.record(r, "MSET", "MSET", k("x"), "1", k("y"), "2", k("z"), "3")
    ctx.record(r, "MGET with missing", "MGET", k("x"), k("missing"), k("z"))
    ctx.record(r, "MSET odd arguments", "MSET", k("x"), "1", k("y"))
    ctx.record(r, "EXISTS repeated key", "EXISTS", k("x"), k("x"), k("missing"))
    ctx.record(r, "DEL two + missing", "DEL", k("x"), k("y"), k("missing"))
    ctx.record(r, "UNLINK one", "UNLINK", k("z"))
    ctx.record(r, "UNLINK missing", "UNLINK", k("z"))
    ctx.record(r, "TYPE string", "TYPE", k("a"))
    ctx.record(r, "TYPE missing", "TYPE", k("missing"))
    ctx.call("RPUSH", k("list"), "a")
    ctx.record(r, "TYPE list", "TYPE", k("list"))
    ctx.record(r, "RENAME", "RENAME", k("a"), k("a2"))
    ctx.record(r, "RENAME missing", "RENAME", k("missing"), k("a3"))
    ctx.record(r, "RENAMENX onto existing", "RENAMENX", k("a2"), k("list"))
    ctx.record(r, "COPY", "COPY", k("a2"), k("a3"))
    ctx.record(r, "COPY onto existing", "COPY", k("a2"), k("a3"))
    ctx.record(r, "COPY REPLACE", "COPY", k("a2"), k("a3"), "REPLACE")
    ctx.record(r, "GET copy", "GET", k("a3"))

    # 5. expiry
    ctx.call("SET", k("e"), "v")
    ctx.record(r, "TTL no expiry", "TTL", k("e"))
    ctx.record(r, "TTL missing", "TTL", k("missing"))
    ctx.record(r, "PTTL missing", "PTTL", k("missing"))
    ctx.record(r, "EXPIRE 100", "EXPIRE", k("e"), 100)
    ctx.record(r, "TTL after EXPIRE", "TTL", k("e"))
    ctx.record(r, "EXPIRE NX with ttl", "EXPIRE", k("e"), 200, "NX")
    ctx.record(r, "EXPIRE XX", "EXPIRE", k("e"), 200, "XX")
    ctx.record(r, "EXPIRE GT smaller", "EXPIRE", k("e"), 50, "GT")
    ctx.record(r, "EXPIRE LT smaller", "EXPIRE", k("e"), 50, "LT")
    ctx.record(r, "EXPIRE NX XX", "EXPIRE", k("e"), 50, "NX", "XX")
    ctx.record(r, "EXPIRE missing", "EXPIRE", k("missing"), 10)
    ctx.record(r, "PEXPIRE", "PEXPIRE", k("e"), 100000)
    ctx.put(r, "PTTL within (99000, 100000]", 99000 < int(ctx.call("PTTL", k("e"))) <= 100000)
    ctx.record(r, "EXPIRETIME far future", "EXPIREAT", k("e"), 4102444800)
    ctx.record(r, "EXPIRETIME", "EXPIRETIME", k("e"))
    ctx.record(r, "PEXPIRETIME", "PEXPIRETIME", k("e"))
    ctx.record(r, "EXPIRETIME no expiry", "EXPIRETIME", k("n"))
    ctx.record(r, "PERSIST", "PERSIST", k("e"))
    ctx.record(r, "PERSIST again", "PERSIST", k("e"))
    ctx.record(r, "EXPIRE negative deletes", "EXPIRE", k("e"), -1)
    ctx.record(r, "EXISTS after negative EXPIRE", "EXISTS", k("e"))
    ctx.record(r, "EXPIRE huge", "EXPIRE", k("n"), "9223372036854775807")

    # 6. encodings and memory of values of several sizes
    for length in ENCODING_VALUE_LENGTHS:
        ctx.call("SET", k(f"len{length}"), "x" * length)
        ctx.record("encodings", f"{length}-byte string", "OBJECT", "ENCODING", k(f"len{length}"))
        ctx.record("memory_usage", f"{length}-byte string", "MEMORY", "USAGE", k(f"len{length}"))
    for value in ENCODING_INTEGERS:
        ctx.call("SET", k(f"int{value}"), value)
        ctx.record("encodings", f"integer {value}", "OBJECT", "ENCODING", k(f"int{value}"))
    ctx.call("SET", k("grow"), "x")
    ctx.call("APPEND", k("grow"), "y")
    ctx.record("encodings", "short string after APPEND", "OBJECT", "ENCODING", k("grow"))
    ctx.call("SET", k("cnt"), "5")
    ctx.call("INCR", k("cnt"))
    ctx.record("encodings", "integer after INCR", "OBJECT", "ENCODING", k("cnt"))
    ctx.record("encodings", "OBJECT ENCODING missing", "OBJECT", "ENCODING", k("missing"))

    # 7. errors: wrong type, wrong arity, syntax
    e = "errors"
    ctx.record(e, "GET on a list", "GET", k("list"))
    ctx.record(e, "INCR on a list", "INCR", k("list"))
    ctx.record(e, "APPEND on a list", "APPEND", k("list"), "x")
    ctx.record(e, "GET no arguments", "GET")
    ctx.record(e, "SET one argument", "SET", k("s"))
    ctx.record(e, "GETRANGE two arguments", "GETRANGE", k("a2"), 0)
    ctx.record(e, "EXPIRE not integer", "EXPIRE", k("a2"), "ten")
    ctx.record(e, "SET unknown option", "SET", k("s"), "v", "FOO")
    ctx.record(e, "unknown command", "NOSUCHCOMMAND", "x")
    ctx.record(e, "OBJECT unknown subcommand", "OBJECT", "NOSUCH", k("a2"))

    # Integrity the scenario itself can judge: a SET value must read back unchanged.
    ctx.call("SET", k("roundtrip"), "h\u00e9llo\x00bin")
    ctx.check(ctx.call("GET", k("roundtrip")) == "h\u00e9llo\x00bin", "GET did not return what SET stored")
