"""data_structures: replies, encodings and memory of lists, sets, hashes, sorted sets, streams,
bitmaps, HyperLogLog and geo, and which data-structure commands each server has.

Test plan, in order:
  1. config: the encoding thresholds read with CONFIG GET (list-max-listpack-size, hash-max-listpack-*,
     set-max-intset-entries, set-max-listpack-*, zset-max-listpack-*, stream-node-max-*,
     hll-sparse-max-bytes). If CONFIG is refused, the documented defaults below are used and WARN.
  2. replies: a fixed sequence of commands per type ("list: LPOS with RANK -1", ...), raw replies,
     unordered replies sorted; random replies (SPOP, SRANDMEMBER...) only by their size. A few
     replies again under RESP3 (doubles, maps, sets). "errors" holds the error replies provoked.
  3. ordering: the order of HGETALL/SMEMBERS on listpack and intset encodings, which is stable
     (insertion or numeric order) on both servers; hashtable order depends on a per-process seed.
  4. encodings: OBJECT ENCODING just at and just past every threshold read in 1 (count and value
     thresholds), the measured conversion point of size-limited lists and of sparse HyperLogLogs,
     stream node splitting, and what happens when a structure shrinks again. memory_usage:
     MEMORY USAGE ... SAMPLES 0 of the same structures (the smallest of 3 identical builds, which
     absorbs allocator slack) and the allocator. Hashtable and skiplist layouts depend on a random
     per-process seed, so their memory goes to memory_usage_varying (min/max), shown but not compared.
  5. commands: commands that exist on only one server (Valkey 8/9 additions, Redis 7.4+ ones), each
     tried and its reply or error recorded; COMMAND COUNT, COMMAND LIST (name -> True, so each
     missing command is its own difference), COMMAND INFO and COMMAND DOCS of a few commands.
Keys use explicit stream IDs and fixed members, so two processes of one binary give equal metrics.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import redis

from app.config import ScenarioOptions
from app.scenarios.support import Reply, ScenarioContext, canonical, plain, run_scenario

NAME = "data_structures"

# Encoding thresholds read from the server; documented redis.conf / valkey.conf defaults are the
# fallback only when CONFIG GET is refused (ACL, renamed command), and that fallback is a WARN.
DOCUMENTED_DEFAULTS: dict[str, int] = {
    "list-max-listpack-size": -2,
    "list-compress-depth": 0,
    "hash-max-listpack-entries": 512,
    "hash-max-listpack-value": 64,
    "set-max-intset-entries": 512,
    "set-max-listpack-entries": 128,
    "set-max-listpack-value": 64,
    "zset-max-listpack-entries": 128,
    "zset-max-listpack-value": 64,
    "stream-node-max-bytes": 4096,
    "stream-node-max-entries": 100,
    "hll-sparse-max-bytes": 3000,
}
# A negative list-max-listpack-size -n limits each list node to LIST_NODE_BYTES[n - 1] bytes.
LIST_NODE_BYTES = (4096, 8192, 16384, 32768, 65536)
# A positive (count) list-max-listpack-size still caps a node at this many bytes.
LIST_SAFETY_BYTES = 8192
# Element size of the list probe, and the most pushes / PFADDs a probe may take.
LIST_PROBE_ELEMENT_BYTES = 64
PROBE_LIMIT = 20000
PROBE_BATCH = 100

# Each shape is built this many times; the smallest MEMORY USAGE is the allocator's exact fit.
MEMORY_BUILDS = 3
# Layouts that depend on a per-process random seed (hash seed, skiplist levels, rehash progress):
# their MEMORY USAGE differs between two processes of one binary, so it is shown, not compared.
VARYING_ENCODINGS = frozenset({"hashtable", "skiplist"})
# The allocator name is in the report header, with its caveat; not a difference of its own.
METRIC_KINDS = {"memory_usage_varying.*": "not_compared", "memory_usage.mem_allocator": "not_compared"}

# Commands whose COMMAND INFO and COMMAND DOCS are recorded (ones the two servers may have changed).
DOCUMENTED_COMMANDS = ("set", "geosearch", "xread", "hset", "lpos", "zadd", "bitop", "sintercard")

# Fields of replies that are measured (idle times), dropped so replies stay deterministic.
MEASURED_FIELDS = frozenset({"idle", "inactive", "seen-time", "active-time"})


def run(client: redis.Redis, options: ScenarioOptions | None = None) -> dict[str, Any]:
    return run_scenario(NAME, client, options, plan)


def plan(ctx: ScenarioContext) -> None:
    # Replies under RESP2 whatever the caller's client speaks (redis-py 8 defaults to RESP3), so the
    # metrics do not depend on the client library; RESP3 replies have their own "resp3:" labels.
    ctx.raw = ctx.connection(protocol=2)
    thresholds = read_thresholds(ctx)
    lists(ctx)
    sets(ctx)
    hashes(ctx)
    sorted_sets(ctx)
    streams(ctx)
    bitmaps(ctx)
    hyperloglogs(ctx)
    geo(ctx)
    resp3_replies(ctx)
    ordering(ctx)
    list_encodings(ctx, thresholds)
    hash_encodings(ctx, thresholds)
    set_encodings(ctx, thresholds)
    zset_encodings(ctx, thresholds)
    stream_encodings(ctx, thresholds)
    hll_encodings(ctx, thresholds)
    # Memory depends on the allocator as much as on the product: record which one answered.
    ctx.put("memory_usage", "mem_allocator", _info_field(ctx, "memory", "mem_allocator"))
    one_sided_commands(ctx)
    command_table(ctx)


# --- 1. thresholds -------------------------------------------------------------------------------

def read_thresholds(ctx: ScenarioContext) -> dict[str, int]:
    """Thresholds from CONFIG GET (recorded in "config"); documented defaults where refused."""
    reply = ctx.call("CONFIG", "GET", *DOCUMENTED_DEFAULTS)  # one call: one refusal, one warning
    found = _fields(reply)
    if not isinstance(found, dict) or "error" in found:
        found = {}
    values: dict[str, int] = {}
    for name, default in DOCUMENTED_DEFAULTS.items():
        value = found.get(name)
        # the server's value; an unknown parameter is None, a refusal is the error reply itself
        ctx.put("config", name, value if value is not None or not isinstance(reply, dict) else reply)
        values[name] = int(value) if _is_int(value) else default
    missing = [name for name in DOCUMENTED_DEFAULTS if not _is_int(found.get(name))]
    if missing:
        ctx.warn(f"CONFIG GET gave no value for {', '.join(missing)}; encodings were probed at the "
                 "documented defaults instead")
    return values


def _is_int(text: Any) -> bool:
    return isinstance(text, str) and text.lstrip("-").isdigit()


# --- 2. replies per type -------------------------------------------------------------------------

def lists(ctx: ScenarioContext) -> None:
    k, r, e = ctx.key, _recorder(ctx, "replies", "list"), _recorder(ctx, "errors", "list")
    r("RPUSH 5", "RPUSH", k("l"), "a", "b", "c", "b", "d")
    r("LPUSH 1", "LPUSH", k("l"), "z")
    r("LRANGE 0 -1", "LRANGE", k("l"), 0, -1)
    r("LRANGE -3 -1", "LRANGE", k("l"), -3, -1)
    r("LRANGE start after end", "LRANGE", k("l"), 4, 1)
    r("LRANGE beyond end", "LRANGE", k("l"), 10, 20)
    r("LINDEX -1", "LINDEX", k("l"), -1)
    r("LINDEX out of range", "LINDEX", k("l"), 100)
    r("LLEN", "LLEN", k("l"))
    r("LLEN missing", "LLEN", k("missing"))
    r("LPOS", "LPOS", k("l"), "b")
    r("LPOS with RANK -1", "LPOS", k("l"), "b", "RANK", -1)
    r("LPOS with RANK 2", "LPOS", k("l"), "b", "RANK", 2)
    r("LPOS COUNT 0", "LPOS", k("l"), "b", "COUNT", 0)
    r("LPOS MAXLEN 2", "LPOS", k("l"), "b", "MAXLEN", 2)
    r("LPOS missing element", "LPOS", k("l"), "nope")
    r("LPOS missing element COUNT 0", "LPOS", k("l"), "nope", "COUNT", 0)
    r("LINSERT BEFORE", "LINSERT", k("l"), "BEFORE", "c", "X")
    r("LINSERT AFTER missing pivot", "LINSERT", k("l"), "AFTER", "nope", "Y")
    r("LINSERT missing key", "LINSERT", k("missing"), "AFTER", "a", "Y")
    r("LSET 1", "LSET", k("l"), 1, "A")
    r("LREM 0 b", "LREM", k("l"), 0, "b")
    r("LREM -1 missing", "LREM", k("l"), -1, "nope")
    r("LRANGE after edits", "LRANGE", k("l"), 0, -1)
    r("LTRIM 1 -1", "LTRIM", k("l"), 1, -1)
    r("LPOP", "LPOP", k("l"))
    r("RPOP COUNT 2", "RPOP", k("l"), 2)
    r("LPOP COUNT 0", "LPOP", k("l"), 0)
    r("LPOP missing COUNT 1", "LPOP", k("missing"), 1)
    r("LPOP missing", "LPOP", k("missing"))
    r("RPUSH for moves", "RPUSH", k("src"), "1", "2", "3", "4")
    r("LMOVE LEFT RIGHT", "LMOVE", k("src"), k("dst"), "LEFT", "RIGHT")
    r("RPOPLPUSH", "RPOPLPUSH", k("src"), k("dst"))
    r("LMPOP 2 keys LEFT COUNT 5", "LMPOP", 2, k("missing"), k("src"), "LEFT", "COUNT", 5)
    r("LMPOP all missing", "LMPOP", 1, k("missing"), "RIGHT")
    r("BLPOP missing timeout", "BLPOP", k("missing"), "0.01")
    r("BLMPOP dst RIGHT", "BLMPOP", "0.01", 1, k("dst"), "RIGHT", "COUNT", 1)
    r("LPUSHX missing", "LPUSHX", k("missing"), "x")
    r("RPUSHX existing", "RPUSHX", k("dst"), "x", "y")
    r("LRANGE dst", "LRANGE", k("dst"), 0, -1)
    r("popping the last element deletes the key", "RPOP", k("dst"), 10)
    r("EXISTS after emptying", "EXISTS", k("dst"))
    sort_lists(ctx)
    e("LSET out of range", "LSET", k("l"), 100, "x")
    e("LSET missing key", "LSET", k("missing"), 0, "x")
    e("LPOS RANK 0", "LPOS", k("l"), "b", "RANK", 0)
    e("LPOS negative COUNT", "LPOS", k("l"), "b", "COUNT", -1)
    e("LPOP negative count", "LPOP", k("l"), -1)
    e("LINSERT bad position", "LINSERT", k("l"), "MIDDLE", "a", "x")
    e("LMPOP numkeys 0", "LMPOP", 0, "LEFT")
    e("BLPOP negative timeout", "BLPOP", k("l"), -1)
    e("LMOVE bad direction", "LMOVE", k("l"), k("l"), "UP", "LEFT")
    ctx.call("SET", k("str"), "v")
    e("LPUSH on a string", "LPUSH", k("str"), "x")


def sort_lists(ctx: ScenarioContext) -> None:
    """SORT and SORT_RO; BY/GET patterns carry the scenario prefix, so only own keys are read."""
    k, r, e = ctx.key, _recorder(ctx, "replies", "list"), _recorder(ctx, "errors", "list")
    ctx.call("RPUSH", k("sl"), 3, 1, 2, 10)
    ctx.call("RPUSH", k("sa"), "b", "a", "c")
    ctx.call("MSET", k("w_1"), 30, k("w_2"), 20, k("w_3"), 10, k("o_2"), "two")
    r("SORT numeric", "SORT", k("sl"))
    r("SORT DESC LIMIT 0 2", "SORT", k("sl"), "DESC", "LIMIT", 0, 2)
    r("SORT ALPHA", "SORT", k("sl"), "ALPHA")
    r("SORT_RO BY nosort", "SORT_RO", k("sl"), "BY", "nosort")
    r("SORT BY weights GET # GET other", "SORT", k("sl"), "BY", k("w_*"), "GET", "#", "GET", k("o_*"))
    r("SORT STORE", "SORT", k("sl"), "STORE", k("sorted"))
    r("LRANGE after SORT STORE", "LRANGE", k("sorted"), 0, -1)
    e("SORT strings without ALPHA", "SORT", k("sa"))
    e("SORT_RO with STORE", "SORT_RO", k("sl"), "STORE", k("sorted"))


def sets(ctx: ScenarioContext) -> None:
    k, r, e = ctx.key, _recorder(ctx, "replies", "set"), _recorder(ctx, "errors", "set")
    u = _recorder(ctx, "replies", "set", unordered=True)
    r("SADD 3 integers", "SADD", k("s1"), 1, 2, 3)
    r("SADD duplicates", "SADD", k("s1"), 3, 3, 4)
    r("SADD strings", "SADD", k("s2"), "b", "c", "d", "3")
    r("SCARD", "SCARD", k("s1"))
    r("SISMEMBER", "SISMEMBER", k("s1"), 2)
    r("SMISMEMBER", "SMISMEMBER", k("s1"), 1, "x", 4)
    u("SMEMBERS", "SMEMBERS", k("s2"))
    u("SINTER", "SINTER", k("s1"), k("s2"))
    u("SUNION", "SUNION", k("s1"), k("s2"))
    u("SDIFF", "SDIFF", k("s1"), k("s2"))
    u("SDIFF with missing", "SDIFF", k("s1"), k("missing"))
    r("SINTERCARD", "SINTERCARD", 2, k("s1"), k("s2"))
    r("SINTERCARD LIMIT 1", "SINTERCARD", 2, k("s1"), k("s1"), "LIMIT", 1)
    r("SUNIONSTORE", "SUNIONSTORE", k("s3"), k("s1"), k("s2"))
    r("SINTERSTORE empty result deletes", "SINTERSTORE", k("s4"), k("s1"), k("missing"))
    r("EXISTS empty SINTERSTORE", "EXISTS", k("s4"))
    r("SMOVE", "SMOVE", k("s2"), k("s1"), "b")
    r("SMOVE missing member", "SMOVE", k("s2"), k("s1"), "nope")
    r("SREM", "SREM", k("s1"), "b", "nope")
    _record_len(ctx, "replies", "set: SPOP 2 (reply size)", "SPOP", k("s3"), 2)
    _record_len(ctx, "replies", "set: SRANDMEMBER -10 (reply size)", "SRANDMEMBER", k("s3"), -10)
    _record_len(ctx, "replies", "set: SRANDMEMBER 10 (reply size)", "SRANDMEMBER", k("s3"), 10)
    r("SRANDMEMBER 0", "SRANDMEMBER", k("s3"), 0)
    r("SRANDMEMBER missing", "SRANDMEMBER", k("missing"))
    r("SPOP missing", "SPOP", k("missing"))
    r("SPOP missing COUNT 2", "SPOP", k("missing"), 2)
    e("SINTERCARD numkeys 0", "SINTERCARD", 0, k("s1"))
    e("SINTERCARD negative LIMIT", "SINTERCARD", 1, k("s1"), "LIMIT", -1)
    e("SPOP negative count", "SPOP", k("s1"), -1)
    e("SRANDMEMBER smallest 64-bit count", "SRANDMEMBER", k("s1"), "-9223372036854775808")
    e("SINTERCARD more keys than arguments", "SINTERCARD", 3, k("s1"))
    e("SMOVE onto a list", "SMOVE", k("s1"), k("l"), "1")
    e("SADD on a list", "SADD", k("l"), "x")


def hashes(ctx: ScenarioContext) -> None:
    k, r, e = ctx.key, _recorder(ctx, "replies", "hash"), _recorder(ctx, "errors", "hash")
    u = _recorder(ctx, "replies", "hash", unordered=True)
    r("HSET 3 fields", "HSET", k("h"), "f1", "v1", "f2", "v2", "n", "10")
    r("HSET existing + new", "HSET", k("h"), "f1", "v1b", "f3", "v3")
    r("HSETNX existing", "HSETNX", k("h"), "f1", "x")
    r("HSETNX new", "HSETNX", k("h"), "f4", "v4")
    r("HMSET", "HMSET", k("h"), "f5", "v5")
    r("HGET", "HGET", k("h"), "f1")
    r("HGET missing field", "HGET", k("h"), "nope")
    r("HMGET with missing", "HMGET", k("h"), "f1", "nope", "f2")
    r("HINCRBY", "HINCRBY", k("h"), "n", 5)
    r("HINCRBY new field", "HINCRBY", k("h"), "m", -3)
    r("HINCRBYFLOAT new field by 10.5", "HINCRBYFLOAT", k("h"), "fl", "10.5")
    r("HINCRBYFLOAT 10.5 + 0.1", "HINCRBYFLOAT", k("h"), "fl", "0.1")
    r("HINCRBYFLOAT exponent", "HINCRBYFLOAT", k("h"), "fe", "5.0e3")
    r("HSTRLEN", "HSTRLEN", k("h"), "f1")
    r("HEXISTS", "HEXISTS", k("h"), "f2")
    r("HDEL 2 + missing", "HDEL", k("h"), "f2", "f3", "nope")
    r("HLEN", "HLEN", k("h"))
    u("HKEYS", "HKEYS", k("h"))
    u("HVALS", "HVALS", k("h"))
    ctx.put("replies", "hash: HGETALL (pairs, sorted)", _pairs_sorted(ctx.call("HGETALL", k("h"))))
    r("HGETALL missing", "HGETALL", k("missing"))
    _record_len(ctx, "replies", "hash: HRANDFIELD 3 (reply size)", "HRANDFIELD", k("h"), 3)
    _record_len(ctx, "replies", "hash: HRANDFIELD -5 WITHVALUES (reply size)", "HRANDFIELD", k("h"), -5,
                "WITHVALUES")
    r("HRANDFIELD missing", "HRANDFIELD", k("missing"))
    r("HRANDFIELD 0", "HRANDFIELD", k("h"), 0)
    ctx.call("HSET", k("h1"), "x", "1")
    r("HDEL last field", "HDEL", k("h1"), "x")
    r("EXISTS after HDEL of the last field", "EXISTS", k("h1"))
    e("HINCRBY on a string value", "HINCRBY", k("h"), "f1", 1)
    e("HINCRBY overflow", "HINCRBY", k("h"), "n", "9223372036854775807")
    e("HINCRBYFLOAT on a string value", "HINCRBYFLOAT", k("h"), "f1", "1")
    e("HINCRBYFLOAT inf", "HINCRBYFLOAT", k("h"), "fl", "inf")
    e("HSET odd arguments", "HSET", k("h"), "f1", "v", "f2")
    e("HMGET on a list", "HMGET", k("l"), "f")


def sorted_sets(ctx: ScenarioContext) -> None:
    k, r, e = ctx.key, _recorder(ctx, "replies", "zset"), _recorder(ctx, "errors", "zset")
    r("ZADD 5", "ZADD", k("z"), 1, "a", 2, "b", "0.1", "c", "1e3", "d", "-inf", "low")
    r("ZADD CH update", "ZADD", k("z"), "CH", 5, "a", 2, "b")
    r("ZADD NX existing", "ZADD", k("z"), "NX", 100, "a")
    r("ZADD XX new", "ZADD", k("z"), "XX", 100, "new")
    r("ZADD GT lower", "ZADD", k("z"), "GT", "CH", 1, "a")
    r("ZADD LT lower", "ZADD", k("z"), "LT", "CH", 1, "a")
    r("ZADD INCR", "ZADD", k("z"), "INCR", "0.2", "c")
    r("ZADD INCR NX existing", "ZADD", k("z"), "NX", "INCR", 1, "a")
    r("ZSCORE float", "ZSCORE", k("z"), "c")
    r("ZSCORE -inf", "ZSCORE", k("z"), "low")
    r("ZSCORE missing", "ZSCORE", k("z"), "nope")
    r("ZMSCORE", "ZMSCORE", k("z"), "a", "nope", "d")
    r("ZINCRBY", "ZINCRBY", k("z"), "1.5", "b")
    r("ZINCRBY to inf", "ZINCRBY", k("z"), "+inf", "b")
    r("ZCARD", "ZCARD", k("z"))
    r("ZRANGE WITHSCORES", "ZRANGE", k("z"), 0, -1, "WITHSCORES")
    r("ZRANGE BYSCORE exclusive", "ZRANGE", k("z"), "(0.3", "+inf", "BYSCORE")
    r("ZRANGE BYSCORE REV LIMIT", "ZRANGE", k("z"), "+inf", "-inf", "BYSCORE", "REV", "LIMIT", 1, 2)
    r("ZRANGEBYSCORE WITHSCORES", "ZRANGEBYSCORE", k("z"), "-inf", 2, "WITHSCORES")
    r("ZREVRANGE 0 1", "ZREVRANGE", k("z"), 0, 1)
    r("ZRANK", "ZRANK", k("z"), "d")
    r("ZRANK WITHSCORE", "ZRANK", k("z"), "d", "WITHSCORE")
    r("ZREVRANK WITHSCORE", "ZREVRANK", k("z"), "low", "WITHSCORE")
    r("ZRANK missing", "ZRANK", k("z"), "nope")
    r("ZCOUNT", "ZCOUNT", k("z"), "(1", 1000)
    r("ZADD same score for lex", "ZADD", k("lex"), 0, "a", 0, "b", 0, "c", 0, "d")
    r("ZRANGE BYLEX", "ZRANGE", k("lex"), "[b", "(d", "BYLEX")
    r("ZLEXCOUNT", "ZLEXCOUNT", k("lex"), "-", "+")
    r("ZRANGEBYLEX LIMIT", "ZRANGEBYLEX", k("lex"), "-", "+", "LIMIT", 1, 2)
    r("ZREMRANGEBYLEX", "ZREMRANGEBYLEX", k("lex"), "[a", "[b")
    r("ZUNIONSTORE WEIGHTS AGGREGATE MAX", "ZUNIONSTORE", k("zu"), 2, k("z"), k("lex"),
      "WEIGHTS", 2, 3, "AGGREGATE", "MAX")
    r("ZRANGE union", "ZRANGE", k("zu"), 0, -1, "WITHSCORES")
    r("ZINTER WITHSCORES", "ZINTER", 2, k("z"), k("zu"), "WITHSCORES")
    r("ZDIFF", "ZDIFF", 2, k("z"), k("lex"))
    r("ZRANGESTORE", "ZRANGESTORE", k("zr"), k("z"), 0, 1)
    r("ZPOPMIN 2", "ZPOPMIN", k("z"), 2)
    r("ZPOPMAX", "ZPOPMAX", k("z"))
    r("ZMPOP MIN COUNT 2", "ZMPOP", 2, k("missing"), k("z"), "MIN", "COUNT", 2)
    r("BZPOPMIN missing timeout", "BZPOPMIN", k("missing"), "0.01")
    r("ZREMRANGEBYSCORE", "ZREMRANGEBYSCORE", k("zu"), "-inf", "(2")
    r("ZREMRANGEBYRANK", "ZREMRANGEBYRANK", k("zu"), 0, 0)
    r("ZRANDMEMBER 0", "ZRANDMEMBER", k("zu"), 0)
    _record_len(ctx, "replies", "zset: ZRANDMEMBER -4 WITHSCORES (reply size)", "ZRANDMEMBER", k("zu"), -4,
                "WITHSCORES")
    r("ZADD scores formatting", "ZADD", k("zf"), "0.1", "a", "1e-7", "b", "123456789.123456789", "c",
      "3.0", "d", "-0", "e", "1.7976931348623157e308", "f")
    r("ZRANGE scores formatting", "ZRANGE", k("zf"), 0, -1, "WITHSCORES")
    e("ZADD NX XX", "ZADD", k("z"), "NX", "XX", 1, "a")
    e("ZADD GT LT", "ZADD", k("z"), "GT", "LT", 1, "a")
    e("ZADD GT NX", "ZADD", k("z"), "GT", "NX", 1, "a")
    e("ZADD nan score", "ZADD", k("z"), "nan", "a")
    e("ZADD not a float", "ZADD", k("z"), "abc", "a")
    e("ZADD INCR two pairs", "ZADD", k("z"), "INCR", 1, "a", 2, "b")
    r("ZADD inf for ZINCRBY", "ZADD", k("zinf"), "inf", "m")
    e("ZINCRBY inf - inf is NaN", "ZINCRBY", k("zinf"), "-inf", "m")
    e("ZRANGE BYLEX bad range", "ZRANGE", k("lex"), "b", "d", "BYLEX")
    r("ZRANGE BYSCORE LIMIT 0 -1", "ZRANGE", k("zu"), "-inf", "+inf", "BYSCORE", "LIMIT", 0, -1)
    e("ZRANGEBYSCORE LIMIT without count", "ZRANGEBYSCORE", k("zu"), "-inf", "+inf", "LIMIT", 0)
    e("ZRANGE LIMIT without BY", "ZRANGE", k("z"), 0, -1, "LIMIT", 0, 1)
    e("ZRANGEBYSCORE bad min", "ZRANGEBYSCORE", k("z"), "x", 1)
    e("ZUNIONSTORE numkeys 0", "ZUNIONSTORE", k("zu"), 0)
    e("ZMPOP bad direction", "ZMPOP", 1, k("z"), "UP")


def streams(ctx: ScenarioContext) -> None:
    k, r, e = ctx.key, _recorder(ctx, "replies", "stream"), _recorder(ctx, "errors", "stream")
    for i in range(1, 6):
        r(f"XADD 1-{i}", "XADD", k("x"), f"1-{i}", "f", str(i))
    r("XADD 2-* (auto sequence)", "XADD", k("x"), "2-*", "f", "6")
    r("XLEN", "XLEN", k("x"))
    r("XRANGE - +", "XRANGE", k("x"), "-", "+")
    r("XRANGE exclusive COUNT 2", "XRANGE", k("x"), "(1-1", "+", "COUNT", 2)
    r("XREVRANGE COUNT 1", "XREVRANGE", k("x"), "+", "-", "COUNT", 1)
    r("XREAD COUNT 2 from 0", "XREAD", "COUNT", 2, "STREAMS", k("x"), 0)
    r("XREAD from last id", "XREAD", "STREAMS", k("x"), "2-0")
    r("XADD NOMKSTREAM missing", "XADD", k("nostream"), "NOMKSTREAM", "*", "f", "v")
    r("XGROUP CREATE", "XGROUP", "CREATE", k("x"), "g", 0)
    r("XGROUP CREATE MKSTREAM", "XGROUP", "CREATE", k("x2"), "g", "$", "MKSTREAM")
    r("XREADGROUP 2 new", "XREADGROUP", "GROUP", "g", "c1", "COUNT", 2, "STREAMS", k("x"), ">")
    r("XREADGROUP 1 new c2", "XREADGROUP", "GROUP", "g", "c2", "COUNT", 1, "STREAMS", k("x"), ">")
    r("XREADGROUP own history", "XREADGROUP", "GROUP", "g", "c1", "STREAMS", k("x"), 0)
    r("XACK", "XACK", k("x"), "g", "1-1", "9-9")
    r("XPENDING summary", "XPENDING", k("x"), "g")
    pending = ctx.call("XPENDING", k("x"), "g", "-", "+", 10)
    ctx.put("replies", "stream: XPENDING extended (idle dropped)",
            [row[:2] + row[3:] for row in pending] if isinstance(pending, list) else pending)
    r("XCLAIM JUSTID", "XCLAIM", k("x"), "g", "c2", 0, "1-2", "JUSTID")
    r("XAUTOCLAIM JUSTID", "XAUTOCLAIM", k("x"), "g", "c3", 0, "0-0", "COUNT", 10, "JUSTID")
    ctx.put("replies", "stream: XINFO STREAM", _fields(ctx.call("XINFO", "STREAM", k("x"))))
    ctx.put("replies", "stream: XINFO GROUPS", [_fields(g) for g in ctx.call("XINFO", "GROUPS", k("x"))])
    ctx.put("replies", "stream: XINFO CONSUMERS (idle dropped)",
            [_fields(c) for c in ctx.call("XINFO", "CONSUMERS", k("x"), "g")])
    full = ctx.call("XINFO", "STREAM", k("x"), "FULL")
    ctx.put("replies", "stream: XINFO STREAM FULL field names", sorted(_fields(full)) if isinstance(full, list)
            else full)
    r("XGROUP CREATECONSUMER", "XGROUP", "CREATECONSUMER", k("x"), "g", "c9")
    r("XGROUP DELCONSUMER", "XGROUP", "DELCONSUMER", k("x"), "g", "c3")
    r("XGROUP SETID", "XGROUP", "SETID", k("x"), "g", "1-3", "ENTRIESREAD", 3)
    r("XDEL", "XDEL", k("x"), "1-4", "7-7")
    r("XTRIM MAXLEN 3", "XTRIM", k("x"), "MAXLEN", 3)
    r("XTRIM MINID", "XTRIM", k("x"), "MINID", "2-0")
    r("XADD MAXLEN ~ 1", "XADD", k("x"), "MAXLEN", "~", 1, "3-1", "f", "7")
    r("XSETID", "XSETID", k("x"), "5-0")
    r("XADD after XSETID", "XADD", k("x"), "5-*", "f", "8")
    r("XGROUP DESTROY", "XGROUP", "DESTROY", k("x"), "g")
    r("XRANGE at end", "XRANGE", k("x"), "-", "+")
    e("XADD ID 0-0", "XADD", k("x"), "0-0", "f", "v")
    e("XADD ID smaller than last", "XADD", k("x"), "1-1", "f", "v")
    e("XADD odd field count", "XADD", k("x"), "*", "f")
    e("XADD LIMIT without ~", "XADD", k("x"), "MAXLEN", 1, "LIMIT", 10, "*", "f", "v")
    e("XGROUP CREATE existing", "XGROUP", "CREATE", k("x2"), "g", "$")
    e("XGROUP CREATE missing stream", "XGROUP", "CREATE", k("missing"), "g", "$")
    e("XREADGROUP missing group", "XREADGROUP", "GROUP", "nog", "c", "STREAMS", k("x"), ">")
    e("XRANGE bad id", "XRANGE", k("x"), "abc", "+")
    e("XSETID smaller than top", "XSETID", k("x"), "1-0")
    e("XREAD unbalanced streams", "XREAD", "STREAMS", k("x"), k("x2"), "0")
    e("XINFO STREAM missing", "XINFO", "STREAM", k("missing"))
    r("XADD largest possible ID", "XADD", k("xmax"), "18446744073709551615-18446744073709551615", "f", "v")
    e("XADD * after the largest ID", "XADD", k("xmax"), "*", "f", "v")
    e("XADD ms-* after the largest ID", "XADD", k("xmax"), "18446744073709551615-*", "f", "v")


def bitmaps(ctx: ScenarioContext) -> None:
    k, r, e = ctx.key, _recorder(ctx, "replies", "bitmap"), _recorder(ctx, "errors", "bitmap")
    r("SETBIT 7 1", "SETBIT", k("b"), 7, 1)
    r("SETBIT 7 1 again", "SETBIT", k("b"), 7, 1)
    r("SETBIT 100 1", "SETBIT", k("b"), 100, 1)
    r("GETBIT 7", "GETBIT", k("b"), 7)
    r("GETBIT beyond end", "GETBIT", k("b"), 100000)
    r("STRLEN", "STRLEN", k("b"))
    r("GET bitmap bytes", "GET", k("b"))
    r("BITCOUNT", "BITCOUNT", k("b"))
    r("BITCOUNT 0 0", "BITCOUNT", k("b"), 0, 0)
    r("BITCOUNT 0 7 BIT", "BITCOUNT", k("b"), 0, 7, "BIT")
    r("BITCOUNT -1 -1 BYTE", "BITCOUNT", k("b"), -1, -1, "BYTE")
    r("BITPOS 1", "BITPOS", k("b"), 1)
    r("BITPOS 0", "BITPOS", k("b"), 0)
    r("BITPOS 1 from byte 2", "BITPOS", k("b"), 1, 2, -1, "BYTE")
    r("BITPOS 1 BIT range", "BITPOS", k("b"), 1, 8, 200, "BIT")
    r("BITPOS 0 on all-ones", "BITPOS", k("ones"), 0)
    ctx.call("SET", k("b2"), "\xff\x0f")
    r("BITPOS 0 on 0xff0f", "BITPOS", k("b2"), 0)
    r("BITOP AND", "BITOP", "AND", k("and"), k("b"), k("b2"))
    r("BITOP OR", "BITOP", "OR", k("or"), k("b"), k("b2"))
    r("BITOP XOR", "BITOP", "XOR", k("xor"), k("b"), k("b2"))
    r("BITOP NOT", "BITOP", "NOT", k("not"), k("b2"))
    r("GET BITOP results", "MGET", k("and"), k("or"), k("xor"), k("not"))
    r("BITFIELD SET GET INCRBY", "BITFIELD", k("bf"), "SET", "u8", 0, 255, "GET", "u4", 0, "INCRBY", "i5", 100, 1)
    r("BITFIELD OVERFLOW SAT", "BITFIELD", k("bf"), "OVERFLOW", "SAT", "INCRBY", "u8", 0, 10)
    r("BITFIELD OVERFLOW FAIL", "BITFIELD", k("bf"), "OVERFLOW", "FAIL", "INCRBY", "u8", 0, 10)
    r("BITFIELD OVERFLOW WRAP", "BITFIELD", k("bf"), "OVERFLOW", "WRAP", "INCRBY", "u8", 0, 10)
    r("BITFIELD #index", "BITFIELD", k("bf"), "SET", "i8", "#1", -7, "GET", "i8", "#1")
    r("BITFIELD_RO GET", "BITFIELD_RO", k("bf"), "GET", "u16", 0)
    e("SETBIT offset too large", "SETBIT", k("b"), 4294967296, 1)
    e("SETBIT bit 2", "SETBIT", k("b"), 1, 2)
    e("BITOP NOT two sources", "BITOP", "NOT", k("not"), k("b"), k("b2"))
    e("BITOP unknown operation", "BITOP", "NAND", k("not"), k("b"))
    e("BITFIELD bad type", "BITFIELD", k("bf"), "GET", "u64", 0)
    e("BITFIELD_RO with SET", "BITFIELD_RO", k("bf"), "SET", "u8", 0, 1)
    e("BITPOS bit 2", "BITPOS", k("b"), 2)
    e("BITCOUNT with start but no end", "BITCOUNT", k("b"), 0)
    e("GETBIT on a list", "GETBIT", k("l"), 0)


def hyperloglogs(ctx: ScenarioContext) -> None:
    k, r, e = ctx.key, _recorder(ctx, "replies", "hll"), _recorder(ctx, "errors", "hll")
    r("PFADD 3", "PFADD", k("p1"), "a", "b", "c")
    r("PFADD existing elements", "PFADD", k("p1"), "a", "b")
    r("PFADD no elements on existing", "PFADD", k("p1"))
    r("PFADD no elements on missing", "PFADD", k("p0"))
    r("PFCOUNT", "PFCOUNT", k("p1"))
    r("PFCOUNT missing", "PFCOUNT", k("missing"))
    r("PFADD 1000 distinct", "PFADD", k("p2"), *[f"m{i}" for i in range(1000)])
    r("PFCOUNT 1000 distinct", "PFCOUNT", k("p2"))
    r("PFCOUNT union of two", "PFCOUNT", k("p1"), k("p2"))
    r("PFMERGE", "PFMERGE", k("p3"), k("p1"), k("p2"))
    r("PFCOUNT merged", "PFCOUNT", k("p3"))
    r("PFDEBUG ENCODING small", "PFDEBUG", "ENCODING", k("p1"))
    r("PFADD 20000 distinct", "PFADD", k("p4"), *[f"n{i}" for i in range(20000)])
    r("PFCOUNT 20000 distinct", "PFCOUNT", k("p4"))
    r("PFDEBUG ENCODING large", "PFDEBUG", "ENCODING", k("p4"))
    r("HLL value is a string", "TYPE", k("p1"))
    e("PFADD on a non-HLL string", "PFADD", k("str"), "a")
    e("PFCOUNT on a non-HLL string", "PFCOUNT", k("str"))
    e("PFMERGE from a list", "PFMERGE", k("p3"), k("l"))
    ctx.call("SET", k("fakehll"), "HYLL" + "\x00" * 12)
    e("PFCOUNT on a corrupt HLL", "PFCOUNT", k("fakehll"))


def geo(ctx: ScenarioContext) -> None:
    k, r, e = ctx.key, _recorder(ctx, "replies", "geo"), _recorder(ctx, "errors", "geo")
    r("GEOADD 3", "GEOADD", k("g"), "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania",
      "12.496366", "41.902782", "Rome")
    r("GEOADD CH update", "GEOADD", k("g"), "CH", "13.361389", "38.115556", "Palermo", "13.0", "38.0", "Palermo")
    r("GEOADD NX existing", "GEOADD", k("g"), "NX", "13.361389", "38.115556", "Palermo")
    r("GEOADD XX missing", "GEOADD", k("g"), "XX", "1", "1", "Nowhere")
    r("GEOADD restore Palermo", "GEOADD", k("g"), "13.361389", "38.115556", "Palermo")
    r("GEODIST m", "GEODIST", k("g"), "Palermo", "Catania")
    r("GEODIST km", "GEODIST", k("g"), "Palermo", "Catania", "km")
    r("GEODIST mi", "GEODIST", k("g"), "Palermo", "Rome", "mi")
    r("GEODIST ft", "GEODIST", k("g"), "Palermo", "Rome", "ft")
    r("GEODIST missing member", "GEODIST", k("g"), "Palermo", "Nowhere")
    r("GEOPOS", "GEOPOS", k("g"), "Palermo", "Nowhere")
    r("GEOHASH", "GEOHASH", k("g"), "Palermo", "Catania", "Nowhere")
    r("ZSCORE of a geo member", "ZSCORE", k("g"), "Rome")
    r("GEOSEARCH FROMMEMBER BYRADIUS", "GEOSEARCH", k("g"), "FROMMEMBER", "Palermo", "BYRADIUS", 200, "km",
      "ASC", "WITHDIST", "WITHCOORD", "WITHHASH")
    r("GEOSEARCH FROMLONLAT BYBOX COUNT 1", "GEOSEARCH", k("g"), "FROMLONLAT", 15, 37, "BYBOX", 400, 400, "km",
      "ASC", "COUNT", 1)
    r("GEOSEARCH BYRADIUS DESC", "GEOSEARCH", k("g"), "FROMLONLAT", 13, 39, "BYRADIUS", 1000, "km", "DESC")
    r("GEOSEARCH nothing in range", "GEOSEARCH", k("g"), "FROMLONLAT", 0, 0, "BYRADIUS", 1, "m")
    r("GEOSEARCHSTORE STOREDIST", "GEOSEARCHSTORE", k("gs"), k("g"), "FROMMEMBER", "Rome", "BYRADIUS", 500, "km",
      "ASC", "STOREDIST")
    r("ZRANGE stored distances", "ZRANGE", k("gs"), 0, -1, "WITHSCORES")
    r("GEORADIUS WITHDIST", "GEORADIUS", k("g"), 15, 37, 200, "km", "WITHDIST", "ASC")
    r("GEORADIUSBYMEMBER", "GEORADIUSBYMEMBER", k("g"), "Palermo", 500, "km", "ASC")
    r("GEORADIUS_RO COUNT 1", "GEORADIUS_RO", k("g"), 15, 37, 500, "km", "COUNT", 1, "ASC")
    e("GEOADD invalid pair", "GEOADD", k("g"), 200, 100, "Bad")
    e("GEOADD odd arguments", "GEOADD", k("g"), 1, 2)
    e("GEODIST unknown unit", "GEODIST", k("g"), "Palermo", "Rome", "parsec")
    e("GEOSEARCH without shape", "GEOSEARCH", k("g"), "FROMMEMBER", "Palermo")
    e("GEOSEARCH without origin", "GEOSEARCH", k("g"), "BYRADIUS", 10, "km")
    e("GEOSEARCH two shapes", "GEOSEARCH", k("g"), "FROMMEMBER", "Palermo", "BYRADIUS", 1, "km",
      "BYBOX", 1, 1, "km")
    e("GEOSEARCH missing member", "GEOSEARCH", k("g"), "FROMMEMBER", "Nowhere", "BYRADIUS", 1, "km")
    e("GEOSEARCH ANY without COUNT", "GEOSEARCH", k("g"), "FROMMEMBER", "Rome", "BYRADIUS", 1, "km", "ANY")
    e("GEORADIUSBYMEMBER missing member", "GEORADIUSBYMEMBER", k("g"), "Nowhere", 10, "km")
    e("GEOSEARCH COUNT 0", "GEOSEARCH", k("g"), "FROMMEMBER", "Rome", "BYRADIUS", 1, "km", "COUNT", 0)
    e("GEOSEARCH negative radius", "GEOSEARCH", k("g"), "FROMMEMBER", "Rome", "BYRADIUS", -1, "km")
    e("GEORADIUS STORE with WITHDIST", "GEORADIUS", k("g"), 15, 37, 200, "km", "WITHDIST", "STORE", k("gs"))


def resp3_replies(ctx: ScenarioContext) -> None:
    """The same kinds of reply under RESP3, where doubles, maps and sets have their own types."""
    conn = ctx.connection(protocol=3)
    k, r = ctx.key, _recorder(ctx, "replies", "resp3", conn=conn)
    ctx.call("ZADD", k("r3z"), "0.1", "a", "2", "b", "inf", "c")
    ctx.call("HSET", k("r3h"), "f", "v", "g", "w")
    ctx.call("SADD", k("r3s"), "x", "y")
    r("ZSCORE", "ZSCORE", k("r3z"), "a")
    r("ZSCORE inf", "ZSCORE", k("r3z"), "c")
    r("ZRANGE WITHSCORES", "ZRANGE", k("r3z"), 0, -1, "WITHSCORES")
    r("ZRANK WITHSCORE", "ZRANK", k("r3z"), "b", "WITHSCORE")
    r("ZPOPMIN", "ZPOPMIN", k("r3z"))
    r("ZINCRBY", "ZINCRBY", k("r3z"), "0.5", "b")
    r("HGETALL (map)", "HGETALL", k("r3h"))
    r("HRANDFIELD -1 WITHVALUES on one field", "HRANDFIELD", k("r3one"), -1, "WITHVALUES")
    r("SMEMBERS (set)", "SMEMBERS", k("r3s"))
    r("GEOPOS", "GEOPOS", k("g"), "Rome")
    r("GEODIST", "GEODIST", k("g"), "Palermo", "Rome")
    r("XINFO STREAM", "XINFO", "STREAM", k("x2"))
    r("LPOP missing COUNT 1 (null)", "LPOP", k("missing"), 1)
    r("BLPOP missing timeout (null)", "BLPOP", k("missing"), "0.01")


def ordering(ctx: ScenarioContext) -> None:
    """Orders that are stable on one server (listpack: insertion, intset: numeric); hashtable order
    depends on a per-process seed and is never recorded."""
    k, o = ctx.key, "ordering"
    ctx.call("HSET", k("oh"), "zeta", 1, "alpha", 2, "mid", 3)
    ctx.record(o, "hash (listpack): HGETALL", "HGETALL", k("oh"))
    ctx.record(o, "hash (listpack): HKEYS", "HKEYS", k("oh"))
    ctx.call("SADD", k("os"), "zeta", "alpha", "mid")
    ctx.record(o, "set (listpack): SMEMBERS", "SMEMBERS", k("os"))
    ctx.call("SADD", k("oi"), 30, -5, 10, 7)
    ctx.record(o, "set (intset): SMEMBERS", "SMEMBERS", k("oi"))
    ctx.record(o, "set (intset): SUNION of two intsets", "SUNION", k("oi"), k("oi"))
    ctx.call("ZADD", k("oz"), 1, "b", 1, "a", 1, "c")
    ctx.record(o, "zset: equal scores in lexical order", "ZRANGE", k("oz"), 0, -1)


# --- 4. encodings at and past every threshold ----------------------------------------------------

Commands = list[tuple[Any, ...]]


def _shape(ctx: ScenarioContext, label: str, build: Callable[[str], Commands]) -> str:
    """Build one structure MEMORY_BUILDS times; record its OBJECT ENCODING and MEMORY USAGE.

    The smallest MEMORY USAGE of identical builds is recorded: allocator slack (libc malloc may hand
    out a chunk a few bytes larger, depending on heap state) only ever adds. Returns the first key."""
    slug = f"enc:{zlib.crc32(label.encode()):08x}:"  # same length for every label and every run
    keys = [ctx.key(f"{slug}{i}") for i in range(MEMORY_BUILDS)]
    encodings, sizes = [], []
    for key in keys:
        _pipeline(ctx, label, build(key))
        encodings.append(ctx.call("OBJECT", "ENCODING", key))
        sizes.append(ctx.call("MEMORY", "USAGE", key, "SAMPLES", 0))
    ctx.check(all(e == encodings[0] for e in encodings), f"{label}: identical builds differ: {encodings}")
    ctx.put("encodings", label, encodings[0])
    if not all(isinstance(size, int) for size in sizes):
        ctx.put("memory_usage", label, sizes[0])  # MEMORY refused or missing: the reply is the value
    elif encodings[0] in VARYING_ENCODINGS:
        ctx.put("memory_usage_varying", label, {"min": min(sizes), "max": max(sizes)})
    else:
        ctx.put("memory_usage", label, min(sizes))
    return keys[0]


def _pipeline(ctx: ScenarioContext, label: str, commands: Commands) -> None:
    pipe = ctx.raw.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    failed = [r for r in pipe.execute(raise_on_error=False) if isinstance(r, Exception)]
    ctx.check(not failed, f"{label}: building failed: {failed[:1]}")


def _each(command: str, *values: Any) -> Callable[[str], Commands]:
    """A builder sending one command per value (RPUSH key v, RPUSH key v, ...)."""
    return lambda key: [(command, key, value) for value in values]


def _once(command: str, *args: Any) -> Callable[[str], Commands]:
    """A builder sending a single command with all arguments."""
    return lambda key: [(command, key, *args)]


def _then(build: Callable[[str], Commands], *command: Any) -> Callable[[str], Commands]:
    """A builder followed by one more command on the same key (KEY stands for the key)."""
    return lambda key: build(key) + [tuple(key if a is KEY else a for a in command)]


KEY = object()  # placeholder for the built key in _then


def list_encodings(ctx: ScenarioContext, t: dict[str, int]) -> None:
    fill, element = t["list-max-listpack-size"], "e" * LIST_PROBE_ELEMENT_BYTES
    node_bytes = _list_node_bytes(fill)
    _shape(ctx, "list: 1 short element", _once("RPUSH", "x"))
    _shape(ctx, "list: 1 element larger than a node", _once("RPUSH", "x" * (node_bytes + 1)))
    probe_key = ctx.key("enc:lprobe")
    pushes = _probe(ctx, probe_key, lambda i: ("RPUSH", probe_key, element),
                    lambda: ("OBJECT", "ENCODING", probe_key), lambda reply: reply != b"listpack")
    ctx.put("encodings", f"list: {LIST_PROBE_ELEMENT_BYTES}-byte elements pushed one by one until not listpack",
            pushes)
    if pushes is None:
        return
    if fill > 0:  # a count limit: the conversion comes at fill + 1 elements (or earlier, at 8 KB)
        ctx.check(pushes <= fill + 1, f"list converted after {pushes} pushes, limit {fill}")
    else:  # a byte limit: the last listpack cannot hold more than node_bytes
        ctx.check((pushes - 1) * LIST_PROBE_ELEMENT_BYTES <= node_bytes,
                  f"list stayed listpack past {node_bytes} bytes ({pushes} pushes)")
    one_by_one = [element] * pushes
    _shape(ctx, "list: one element before the conversion", _each("RPUSH", *one_by_one[1:]))
    _shape(ctx, "list: at the conversion", _each("RPUSH", *one_by_one))
    _shape(ctx, "list: conversion size pushed by one RPUSH", _once("RPUSH", *one_by_one))
    _shape(ctx, "list: twice the conversion size", _each("RPUSH", *one_by_one * 2))
    _shape(ctx, "list: twice the conversion size trimmed to 1 element",
           _then(_each("RPUSH", *one_by_one * 2), "LTRIM", KEY, 0, 0))
    # Shrinking converts back only well below the limit (hysteresis), so both sides are recorded.
    _shape(ctx, "list: conversion size with a quarter popped",
           _then(_each("RPUSH", *one_by_one), "RPOP", KEY, max(1, pushes // 4)))
    _shape(ctx, "list: conversion size with three quarters popped",
           _then(_each("RPUSH", *one_by_one), "RPOP", KEY, max(1, 3 * pushes // 4)))


def _list_node_bytes(fill: int) -> int:
    if fill < 0:
        return LIST_NODE_BYTES[min(-fill, len(LIST_NODE_BYTES)) - 1]
    return LIST_SAFETY_BYTES  # count-limited nodes still stop at the safety limit


def hash_encodings(ctx: ScenarioContext, t: dict[str, int]) -> None:
    entries, value = t["hash-max-listpack-entries"], t["hash-max-listpack-value"]
    fields = _flat((f"f{i}", i) for i in range(entries + 1))
    _shape(ctx, "hash: hash-max-listpack-entries fields", _once("HSET", *fields[:-2]))
    _shape(ctx, "hash: hash-max-listpack-entries + 1 fields", _once("HSET", *fields))
    _shape(ctx, "hash: value of hash-max-listpack-value bytes", _once("HSET", "f", "v" * value))
    _shape(ctx, "hash: value of hash-max-listpack-value + 1 bytes", _once("HSET", "f", "v" * (value + 1)))
    _shape(ctx, "hash: field name of hash-max-listpack-value + 1 bytes", _once("HSET", "f" * (value + 1), "v"))
    _shape(ctx, "hash: hash-max-listpack-entries + 1 fields shrunk to 1",
           _then(_once("HSET", *fields), "HDEL", KEY, *fields[2::2]))


def set_encodings(ctx: ScenarioContext, t: dict[str, int]) -> None:
    ints, lp_entries, lp_value = (t["set-max-intset-entries"], t["set-max-listpack-entries"],
                                  t["set-max-listpack-value"])
    strings = [f"m{i}" for i in range(lp_entries + 1)]
    _shape(ctx, "set: set-max-intset-entries integers", _once("SADD", *range(ints)))
    _shape(ctx, "set: set-max-intset-entries + 1 integers", _once("SADD", *range(ints + 1)))
    _shape(ctx, "set: set-max-listpack-entries strings", _once("SADD", *strings[:-1]))
    _shape(ctx, "set: set-max-listpack-entries + 1 strings", _once("SADD", *strings))
    _shape(ctx, "set: member of set-max-listpack-value bytes", _once("SADD", "m" * lp_value))
    _shape(ctx, "set: member of set-max-listpack-value + 1 bytes", _once("SADD", "m" * (lp_value + 1)))
    _shape(ctx, "set: 3 integers then a string", _then(_once("SADD", 1, 2, 3), "SADD", KEY, "text"))
    many = min(ints, lp_entries + 1)
    _shape(ctx, "set: min(set-max-intset-entries, set-max-listpack-entries + 1) integers then a string",
           _then(_once("SADD", *range(many)), "SADD", KEY, "text"))
    _shape(ctx, "set: integer beyond 64 bits", _once("SADD", "9223372036854775808"))
    _shape(ctx, "set: smallest 64-bit integer", _once("SADD", "-9223372036854775808"))
    _shape(ctx, "set: integer with a leading zero", _once("SADD", "007"))
    _shape(ctx, "set: set-max-listpack-entries + 1 strings shrunk to 1",
           _then(_once("SADD", *strings), "SREM", KEY, *strings[1:]))
    source = ctx.key("enc:sintsrc")
    ctx.call("SADD", source, *range(ints + 1))
    _shape(ctx, "set: SINTERSTORE of set-max-intset-entries + 1 integers with itself",
           lambda key: [("SINTERSTORE", key, source, source)])
    _shape(ctx, "set: SDIFFSTORE leaving set-max-listpack-entries integers",
           lambda key: [("SDIFFSTORE", key, source, ctx.key("missing")),
                        ("SREM", key, *range(lp_entries, ints + 1))])


def zset_encodings(ctx: ScenarioContext, t: dict[str, int]) -> None:
    entries, value = t["zset-max-listpack-entries"], t["zset-max-listpack-value"]
    pairs = _flat((i, f"m{i}") for i in range(entries + 1))
    _shape(ctx, "zset: zset-max-listpack-entries members", _once("ZADD", *pairs[:-2]))
    _shape(ctx, "zset: zset-max-listpack-entries + 1 members", _once("ZADD", *pairs))
    _shape(ctx, "zset: member of zset-max-listpack-value bytes", _once("ZADD", 1, "m" * value))
    _shape(ctx, "zset: member of zset-max-listpack-value + 1 bytes", _once("ZADD", 1, "m" * (value + 1)))
    _shape(ctx, "zset: zset-max-listpack-entries + 1 members shrunk to 1",
           _then(_once("ZADD", *pairs), "ZREMRANGEBYRANK", KEY, 1, -1))
    source = ctx.key("enc:zsrc")
    ctx.call("ZADD", source, *pairs[:-2])
    _shape(ctx, "zset: ZUNIONSTORE of zset-max-listpack-entries members",
           lambda key: [("ZUNIONSTORE", key, 1, source)])
    _shape(ctx, "zset: ZRANGESTORE of 1 member", lambda key: [("ZRANGESTORE", key, source, 0, 0)])


def stream_encodings(ctx: ScenarioContext, t: dict[str, int]) -> None:
    """A stream has one encoding; its listpack nodes split at stream-node-max-entries."""
    per_node = t["stream-node-max-entries"]
    if per_node <= 0:
        ctx.put("encodings", "stream: stream-node-max-entries (0 means no entry limit)", per_node)
        return
    for n, label in ((per_node, "stream-node-max-entries entries"),
                     (per_node + 1, "stream-node-max-entries + 1 entries")):
        key = _shape(ctx, f"stream: {label}",
                     lambda key, n=n: [("XADD", key, f"1-{i}", "f", "v") for i in range(1, n + 1)])
        info = _fields(ctx.call("XINFO", "STREAM", key))
        ctx.put("encodings", f"stream: {label}: listpack nodes (radix-tree-keys)",
                info.get("radix-tree-keys") if isinstance(info, dict) else info)


def hll_encodings(ctx: ScenarioContext, t: dict[str, int]) -> None:
    """A HyperLogLog is a string; sparse turns dense once it would exceed hll-sparse-max-bytes."""
    sparse_max, probe_key = t["hll-sparse-max-bytes"], ctx.key("enc:hllprobe")
    adds = _probe(ctx, probe_key, lambda i: ("PFADD", probe_key, f"e{i}"),
                  lambda: ("STRLEN", probe_key), lambda reply: int(reply) > sparse_max)
    ctx.put("encodings", "hll: distinct elements added one by one until dense", adds)
    ctx.record("encodings", "hll: bytes once dense", "STRLEN", probe_key)
    ctx.record("encodings", "hll: PFDEBUG ENCODING once dense", "PFDEBUG", "ENCODING", probe_key)
    key = _shape(ctx, "hll: 1 element (sparse)", _once("PFADD", "a"))
    ctx.record("encodings", "hll: bytes with 1 element (sparse)", "STRLEN", key)
    if adds is not None:
        _shape(ctx, "hll: just dense", _once("PFADD", *[f"e{i}" for i in range(adds)]))


def _probe(ctx: ScenarioContext, key: str, grow: Callable[[int], tuple[Any, ...]],
           look: Callable[[], tuple[Any, ...]], converted: Callable[[Any], bool]) -> int | None:
    """Grow a structure one step at a time (pipelined) until `converted(look reply)`; the step count."""
    done = 0
    while done < PROBE_LIMIT:
        pipe = ctx.raw.pipeline(transaction=False)
        for i in range(done, done + PROBE_BATCH):
            pipe.execute_command(*grow(i))
            pipe.execute_command(*look())
        replies = pipe.execute(raise_on_error=False)
        for step, reply in enumerate(replies[1::2], start=done + 1):
            if isinstance(reply, Exception):
                ctx.warn(f"probe of {plain(key, ctx.prefix)} stopped: {reply}")
                return None
            if converted(reply):
                return step
        done += PROBE_BATCH
    ctx.warn(f"probe of {plain(key, ctx.prefix)} did not convert within {PROBE_LIMIT} steps")
    return None


# --- 5. commands only one server has --------------------------------------------------------------

def one_sided_commands(ctx: ScenarioContext) -> None:
    """Commands added after the fork (Valkey 8.0/8.1/9.0, Redis 7.4+/8.x): tried, never assumed."""
    k, c = ctx.key, _recorder(ctx, "commands", "")
    ctx.call("HSET", k("cmd:h"), "f1", "v1", "f2", "v2", "f3", "v3")
    # hash field expiration (Valkey 9.0, Redis 7.4 for HEXPIRE..., Redis 8.0 for HGETEX/HSETEX)
    c("HEXPIRE 100 FIELDS 2", "HEXPIRE", k("cmd:h"), 100, "FIELDS", 2, "f1", "nope")
    c("HPEXPIRE NX", "HPEXPIRE", k("cmd:h"), 100000, "NX", "FIELDS", 1, "f1")
    c("HEXPIREAT far future", "HEXPIREAT", k("cmd:h"), 4102444800, "FIELDS", 1, "f2")
    c("HPEXPIREAT past deletes field", "HPEXPIREAT", k("cmd:h"), 1000, "FIELDS", 1, "f3")
    c("HTTL", "HTTL", k("cmd:h"), "FIELDS", 3, "f1", "f3", "nope")
    c("HEXPIRETIME", "HEXPIRETIME", k("cmd:h"), "FIELDS", 1, "f2")
    c("HPEXPIRETIME", "HPEXPIRETIME", k("cmd:h"), "FIELDS", 1, "f2")
    c("HPTTL no expiry field", "HPTTL", k("cmd:h"), "FIELDS", 1, "nope")
    c("HPERSIST", "HPERSIST", k("cmd:h"), "FIELDS", 2, "f1", "f2")
    c("HSETEX EX FIELDS", "HSETEX", k("cmd:h"), "EX", 100, "FIELDS", 1, "f4", "v4")
    c("HSETEX FNX", "HSETEX", k("cmd:h"), "FNX", "FIELDS", 1, "f4", "x")
    c("HGETEX PERSIST", "HGETEX", k("cmd:h"), "PERSIST", "FIELDS", 2, "f4", "nope")
    c("HGETEX EX", "HGETEX", k("cmd:h"), "EX", 50, "FIELDS", 1, "f1")
    c("HGETDEL", "HGETDEL", k("cmd:h"), "FIELDS", 1, "f1")
    ctx.put("commands", "HGETALL after field expiry commands", _pairs_sorted(ctx.call("HGETALL", k("cmd:h"))))
    ctx.record("commands", "OBJECT ENCODING of a hash with field TTLs", "OBJECT", "ENCODING", k("cmd:h"))
    # conditional string commands (Valkey 8.1 SET IFEQ, Valkey 9.0 DELIFEQ, Redis 8.4 DELEX/DIGEST)
    ctx.call("SET", k("cmd:s"), "v1")
    c("SET IFEQ matching", "SET", k("cmd:s"), "v2", "IFEQ", "v1")
    c("SET IFEQ not matching", "SET", k("cmd:s"), "v3", "IFEQ", "v1")
    c("SET IFEQ GET", "SET", k("cmd:s"), "v4", "IFEQ", "v2", "GET")
    c("GET after SET IFEQ", "GET", k("cmd:s"))
    c("DELIFEQ not matching", "DELIFEQ", k("cmd:s"), "nope")
    c("DELIFEQ missing key", "DELIFEQ", k("missing"), "v")
    c("DELEX IFEQ", "DELEX", k("cmd:s"), "IFEQ", "nope")
    c("DIGEST", "DIGEST", k("cmd:s"))
    c("MSETEX", "MSETEX", 1, k("cmd:m"), "v", "EX", 100)
    # The same value on every server first: SET IFEQ left v4 on one and v1 on the other, and a server
    # without DELIFEQ echoes the arguments in its error, which would show that earlier difference again.
    ctx.call("SET", k("cmd:s"), "v5")
    c("DELIFEQ matching", "DELIFEQ", k("cmd:s"), "v5")
    # streams and geo additions
    ctx.call("XADD", k("cmd:x"), "1-1", "f", "v")
    ctx.call("XADD", k("cmd:x"), "1-2", "f", "w")
    c("XREAD last entry with +", "XREAD", "STREAMS", k("cmd:x"), "+")
    c("XDELEX", "XDELEX", k("cmd:x"), "IDS", 1, "1-1")
    c("XACKDEL", "XACKDEL", k("cmd:x"), "g", "IDS", 1, "1-1")
    ctx.call("GEOADD", k("cmd:g"), "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania")
    c("GEOSEARCH BYPOLYGON", "GEOSEARCH", k("cmd:g"), "BYPOLYGON", 4, 12, 37, 16, 37, 16, 39, 12, 39, "ASC",
      "WITHDIST")
    # bitmap operations of Redis 8.2
    ctx.call("SET", k("cmd:b1"), "\x0f")
    c("BITOP DIFF", "BITOP", "DIFF", k("cmd:bd"), k("cmd:b1"), k("cmd:b1"))
    c("BITOP ONE", "BITOP", "ONE", k("cmd:bd"), k("cmd:b1"), k("cmd:b1"))
    # server-side commands with a data-structure angle
    # How many commands ran slowly depends on the machine's load, not the product: the reply's kind is compared.
    slow = ctx.call("COMMANDLOG", "LEN", "slow")
    ctx.put("commands", "COMMANDLOG LEN slow", "an integer" if isinstance(slow, int) else slow)
    c("COMMANDLOG GET 0 large-reply", "COMMANDLOG", "GET", 0, "large-reply")
    c("CLUSTER SLOT-STATS", "CLUSTER", "SLOT-STATS", "SLOTSRANGE", 0, 0)
    c("CLUSTER KEYSLOT", "CLUSTER", "KEYSLOT", "somekey")
    c("SCRIPT SHOW unknown sha", "SCRIPT", "SHOW", "0" * 40)
    c("VADD (vector sets)", "VADD", k("cmd:v"), "VALUES", 2, 1, 1, "e")


def command_table(ctx: ScenarioContext) -> None:
    """COMMAND COUNT, COMMAND LIST (one leaf per command), INFO and DOCS of a few commands."""
    ctx.record("commands", "COMMAND COUNT", "COMMAND", "COUNT")
    names = ctx.call("COMMAND", "LIST")
    ctx.put("commands", "COMMAND LIST", {n: True for n in sorted(names)} if isinstance(names, list) else names)
    conn = ctx.connection(protocol=3)
    for name in DOCUMENTED_COMMANDS:
        info = ctx.call("COMMAND", "INFO", name, conn=conn)
        ctx.put("commands", f"COMMAND INFO {name}", _command_info(info[0] if isinstance(info, list) else info))
        docs = ctx.call("COMMAND", "DOCS", name, conn=conn)
        ctx.put("commands", f"COMMAND DOCS {name}",
                _command_docs(docs.get(name) if isinstance(docs, dict) and "error" not in docs else docs))


def _command_info(entry: Reply) -> Reply:
    """COMMAND INFO's positional array as named fields (sets sorted), so each field is its own leaf."""
    if not isinstance(entry, list):
        return entry
    names = ("name", "arity", "flags", "first_key", "last_key", "step", "acl_categories", "tips",
             "key_specs", "subcommands")
    info = dict(zip(names, entry))
    for field in ("flags", "acl_categories", "tips"):
        if isinstance(info.get(field), list):
            info[field] = canonical(info[field])
    info["subcommands"] = sorted(s[0] for s in info.get("subcommands") or [])
    return info


def _command_docs(doc: Reply) -> Reply:
    """COMMAND DOCS as a flat dict: top-level fields, history by version, one leaf per argument."""
    if not isinstance(doc, dict):
        return doc
    flat = {key: value for key, value in doc.items() if key not in ("arguments", "history", "subcommands")}
    for version, text in doc.get("history") or []:
        label = f"history {version}"
        flat[label] = f"{flat[label]}; {text}" if label in flat else text
    for path, desc in _flatten_arguments(doc.get("arguments") or []):
        flat[f"argument {path}"] = desc
    return flat


def _flatten_arguments(args: list[Any], parent: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for arg in args:
        if not isinstance(arg, dict):
            continue
        path = f"{parent}.{arg.get('name')}" if parent else str(arg.get("name"))
        parts = [str(arg.get("type"))]
        if "token" in arg:
            parts.append(f"token={arg['token']}")
        if arg.get("flags"):
            parts.append("flags=" + ",".join(sorted(arg["flags"])))
        if "since" in arg:
            parts.append(f"since={arg['since']}")
        out.append((path, " ".join(parts)))
        out.extend(_flatten_arguments(arg.get("arguments") or [], path))
    return out


# --- helpers ---------------------------------------------------------------------------------------

def _recorder(ctx: ScenarioContext, section: str, kind: str, *, unordered: bool = False,
              conn: redis.Redis | None = None) -> Any:
    """A ctx.record bound to a section, labelling each step "<kind>: <label>"."""
    def record(label: str, *args: Any) -> Reply:
        full = f"{kind}: {label}" if kind else label
        return ctx.record(section, full, *args, conn=conn, unordered=unordered)
    return record


def _record_len(ctx: ScenarioContext, section: str, label: str, *args: Any) -> Reply:
    """For replies with random content: only their size (or the error) is deterministic."""
    reply = ctx.call(*args)
    return ctx.put(section, label, len(reply) if isinstance(reply, list) else reply)


def _fields(reply: Reply) -> Reply:
    """A RESP2 field/value array as a dict (one leaf per field), measured fields dropped."""
    if not isinstance(reply, list) or len(reply) % 2:
        return reply
    return {str(key): value for key, value in zip(reply[::2], reply[1::2]) if key not in MEASURED_FIELDS}


def _pairs_sorted(reply: Reply) -> Reply:
    """HGETALL's flat field/value array as sorted [field, value] pairs (content, not order)."""
    if not isinstance(reply, list):
        return reply
    return sorted([list(pair) for pair in zip(reply[::2], reply[1::2])], key=repr)


def _flat(pairs: Any) -> list[Any]:
    return [item for pair in pairs for item in pair]


def _info_field(ctx: ScenarioContext, section: str, field: str) -> Reply:
    text = ctx.call("INFO", section)
    if not isinstance(text, str):
        return text
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1]
    return None
