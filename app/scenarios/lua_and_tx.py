"""lua_and_tx: Lua scripts, functions and transactions, as each server answers them.

Test plan, in order:
  1. EVAL: how Lua values become replies (numbers truncated, tables cut at nil, booleans, status and
     error tables), KEYS/ARGV, numkeys errors.
  2. Script cache: SCRIPT LOAD (its SHA1 checked), EVALSHA (also upper-case), SCRIPT EXISTS, the
     NOSCRIPT text of EVALSHA/EVALSHA_RO, SCRIPT SHOW (Valkey 8.0+), SCRIPT/FUNCTION KILL when idle,
     the HELP texts. SCRIPT FLUSH empties the server-wide cache: only with server changes allowed,
     otherwise the step is skipped with WARN.
  3. Read-only scripts: EVAL_RO, EVALSHA_RO and `#!lua flags=no-writes` reading and writing.
  4. Errors: redis.call raising versus redis.pcall returning, error() with strings and tables,
     redis.error_reply/status_reply, compile errors, the sandbox (globals, readonly tables), commands
     refused inside scripts, shebang errors. Full texts are kept, including "user_script:1:" and
     "script: ..., on @user_script:1." locations; only the script SHA1 is replaced by {sha}.
  5. What a script sees: redis.REDIS_VERSION(_NUM), Valkey's redis.VALKEY_VERSION/SERVER_NAME, the
     `server` alias (Valkey), _VERSION, os.clock (Valkey 8.0+), the sorted keys of `redis` and of
     _G with the type of each, and the same inside a FUNCTION.
  6. Bundled libraries: cjson (empty tables, large numbers, null, errors), cmsgpack, bit, struct,
     redis.sha1hex; the iteration order of Lua tables (pairs, cjson object keys) as an ordering metric.
  7. RESP3 from scripts: maps, sets, doubles, big numbers, verbatim strings, booleans and nulls
     returned directly and via redis.setresp(3), read from the socket with their RESP type marker,
     under a RESP2 and a RESP3 connection.
  8. Functions: FUNCTION LOAD (a library named after this run's key prefix, so it is ours),
     LIST (functions sorted), FCALL, FCALL_RO, errors, load errors; FUNCTION DELETE of that library
     only, in a finally. FUNCTION FLUSH is never sent.
  9. Transactions: MULTI/EXEC/DISCARD replies, EXECABORT after a queued error, a runtime error inside
     EXEC, nested MULTI, EXEC reply types under RESP3.
 10. WATCH: aborted by a second connection, by an own write, by expiry of the watched key, not
     aborted after UNWATCH/DISCARD or for a key already expired when watched; WATCH inside MULTI.

Metrics: one section per step above (replies, script_cache, script_flush, commands, help, read_only,
errors, pcall, script_commands, globals, function_globals, libraries, ordering, resp3, functions,
function_load_errors, transactions, watch). Labels name the case; transaction steps are "#n COMMAND"
with keys by short name; WATCH cases list the watching connection's replies, the last being EXEC
(nil = aborted). Globals and script-allowed commands compare as availability, table iteration order as
ordering.

Valkey changes covered (release notes 8.0-9.0): the `server` alias and redis.VALKEY_VERSION/_NUM/
SERVER_NAME, "Redis" dropped from script error texts, SCRIPT SHOW, os.clock, WAITAOF and XREAD BLOCK
allowed in scripts, getfenv/setfenv/newproxy removed from the sandbox. (Lua becomes a loadable module
only in Valkey 9.1.) A user without @scripting gets one WARN and the transaction steps still run.

Deliberately not sent: `error({})` (an error table without `err`): Redis 7.2.4 crashes on it
(SIGSEGV); Valkey answers "ERR unknown error". The test suite shows it on a disposable server.
EVAL scripts stay in the server's script cache (as for any client using EVAL).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import redis

from app.config import ScenarioOptions
from app.scenarios.support import Reply, ScenarioContext, StepSkipped, plain, run_scenario

NAME = "lua_and_tx"

# Globals and commands a script may use exist on one server and not the other: availability.
METRIC_KINDS = {
    "globals.*": "availability",
    "function_globals.*": "availability",
    "script_commands.*": "availability",
}

# The location suffix servers append to script errors names the script by SHA1; it is replaced.
SHA_IN_ERROR = re.compile(r"script: [0-9a-f]{40},")
# A watched key's TTL, and how long to wait so it has certainly expired (bounded, no polling).
WATCH_EXPIRY_MS = 20
WATCH_EXPIRY_WAIT_S = 0.12

Script = tuple[str, str, tuple[Any, ...]]  # label, Lua source, (numkeys-prefixed keys/args)


def run(client: redis.Redis, options: ScenarioOptions | None = None) -> dict[str, Any]:
    return run_scenario(NAME, client, options, plan)


def plan(ctx: ScenarioContext) -> None:
    lua = Lua(ctx)
    if lua.scripting_permitted():
        for section in (eval_basics, script_cache, script_flush, read_only, errors, globals_visible,
                        libraries, resp3, functions):
            ctx.skippable(partial(section, lua))
    for section in (transactions, watch):
        ctx.skippable(partial(section, lua))


# --- helpers --------------------------------------------------------------------------------------

def library_name(prefix: str) -> str:
    """The scenario's own function library: the key prefix with non-alphanumerics as '_'."""
    return re.sub(r"[^A-Za-z0-9]", "_", prefix)


class Lua:
    """Records replies with the run-specific parts (key prefix, library name, script SHA1) replaced."""

    def __init__(self, ctx: ScenarioContext) -> None:
        self.ctx = ctx
        self.lib = library_name(ctx.prefix)

    def scrub(self, value: Reply) -> Reply:
        if isinstance(value, str):
            return SHA_IN_ERROR.sub("script: {sha},", value.replace(self.lib, "{lib}"))
        if isinstance(value, list):
            return [self.scrub(v) for v in value]
        if isinstance(value, dict):
            return {self.scrub(k): self.scrub(v) for k, v in value.items()}
        return value

    def call(self, *args: Any, conn: redis.Redis | None = None) -> Reply:
        return self.permitted(self.scrub(self.ctx.call(*args, conn=conn)), args)

    def permitted(self, reply: Reply, args: tuple[Any, ...]) -> Reply:
        """The reply, unless the ACL user may not run the command: then the step is skipped (WARN)."""
        if isinstance(reply, dict) and str(reply.get("error", "")).startswith("NOPERM"):
            raise StepSkipped(f"{args[0]} not permitted for this user, step skipped: {reply['error']}")
        return reply

    def scripting_permitted(self) -> bool:
        """One probe, so a user without @scripting gets one warning instead of one per section."""
        try:
            self.call("EVAL", "return 1", 0)
        except StepSkipped as exc:
            self.ctx.warn(f"scripting steps skipped: {exc}")
            return False
        return True

    def record(self, section: str, label: str, *args: Any, conn: redis.Redis | None = None) -> Reply:
        return self.ctx.put(section, label, self.call(*args, conn=conn))

    def evals(self, section: str, scripts: list[Script], command: str = "EVAL") -> None:
        for label, body, rest in scripts:
            self.record(section, label, command, body, *self.keyed(rest))

    def keyed(self, rest: tuple[Any, ...]) -> list[Any]:
        """numkeys, keys, args: key names given as 'key:NAME' become this scenario's keys."""
        return [self.ctx.key(a[4:]) if isinstance(a, str) and a.startswith("key:") else a for a in rest]


def pinned(ctx: ScenarioContext, protocol: int = 2) -> redis.Redis:
    """A client bound to one connection: MULTI, WATCH and EXEC must share it."""
    client = ctx.connection(protocol=protocol)
    client.connection = client.connection_pool.get_connection()
    return client


class Wire:
    """One connection whose replies are read from the socket with their RESP type marker.

    redis-py folds RESP3 sets into lists, big numbers and verbatim strings into bytes; here every
    value keeps its marker: "+OK", ":1", "$text", ",3.5", "(123", "#t", "_", "=txt:hello",
    {"*": [...]}, {"~": [...sorted]}, {"%": [[k, v], ...sorted]}, errors as {"error": text}.
    """

    def __init__(self, ctx: ScenarioContext, protocol: int) -> None:
        self.client = ctx.connection(protocol=protocol)
        self.conn = self.client.connection_pool.get_connection()  # connects and sends HELLO
        self.buffer = b""

    def call(self, *args: Any) -> Any:
        self.conn.send_command(*args)
        return self._read()

    def close(self) -> None:
        self.conn.disconnect()  # replies were read behind redis-py's parser: never reuse this socket

    def _fill(self) -> None:
        chunk = self.conn._sock.recv(65536)  # the connection's own socket (TLS or not), already set up
        if not chunk:
            raise redis.ConnectionError("connection closed while reading a reply")
        self.buffer += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _exact(self, size: int) -> bytes:
        while len(self.buffer) < size + 2:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size + 2:]
        return data

    def _read(self) -> Any:
        line = self._line()
        marker, rest = chr(line[0]), line[1:].decode("utf-8", "backslashreplace")
        if marker in "+:,(#_":
            return marker + rest
        if marker == "-":
            return {"error": rest}
        if marker in "$=!":
            if int(rest) < 0:
                return marker + "nil"
            text = self._exact(int(rest)).decode("utf-8", "backslashreplace")
            return {"error": text} if marker == "!" else marker + text
        return self._aggregate(marker, int(rest))

    def _aggregate(self, marker: str, size: int) -> Any:
        if size < 0:
            return marker + "nil"
        items = [self._read() for _ in range(size * 2 if marker in "%|" else size)]
        if marker in "%|":
            pairs = sorted(([items[i], items[i + 1]] for i in range(0, len(items), 2)), key=repr)
            return {marker: pairs, "then": self._read()} if marker == "|" else {"%": pairs}
        if marker == "~":
            return {"~": sorted(items, key=repr)}
        return {marker: items}


# --- 1. EVAL basics -------------------------------------------------------------------------------

EVAL_CONVERSIONS: list[Script] = [
    ("integer", "return 1", (0,)),
    ("float is truncated", "return 3.99", (0,)),
    ("negative float is truncated", "return -0.5", (0,)),
    ("2^53", "return 2^53", (0,)),
    ("1e20 overflows", "return 1e20", (0,)),
    ("0/0", "return 0/0", (0,)),
    ("string", "return 'hello'", (0,)),
    ("empty string", "return ''", (0,)),
    ("table stops at first nil", "return {1, 2, nil, 4}", (0,)),
    ("empty table", "return {}", (0,)),
    ("true", "return true", (0,)),
    ("false", "return false", (0,)),
    ("nil", "return nil", (0,)),
    ("no return", "local x = 1", (0,)),
    ("empty script", "", (0,)),
    ("mixed nested table", "return {1, {err='inner'}, {ok='fine'}, 'x', 2.7, true, false}", (0,)),
    ("status table", "return {ok='FINE'}", (0,)),
    ("KEYS and ARGV", "return {KEYS[1], ARGV[1], #KEYS, #ARGV}", (1, "key:k", "a\x00b")),
    ("SET via KEYS", "return redis.call('SET', KEYS[1], ARGV[1])", (1, "key:k", "v1")),
    ("GET via KEYS", "return redis.call('GET', KEYS[1])", (1, "key:k")),
    ("GET missing is false", "return tostring(redis.call('GET', KEYS[1]))", (1, "key:missing")),
    ("status reply is a table", "local r = redis.call('PING'); return {type(r), r.ok}", (0,)),
    ("INCR returns a number", "return type(redis.call('INCR', KEYS[1]))", (1, "key:n")),
    ("math.random after randomseed(42)", "math.randomseed(42) return math.random(1, 1000000)", (0,)),
    ("tostring(0/0)", "return tostring(0/0)", (0,)),
    ("string.format %.17g", "return string.format('%.17g', 0.1)", (0,)),
    ("loadstring", "return loadstring('return 7')()", (0,)),
]

EVAL_ARGUMENT_ERRORS: list[tuple[str, tuple[Any, ...]]] = [
    ("EVAL negative numkeys", ("EVAL", "return 1", -1)),
    ("EVAL numkeys greater than args", ("EVAL", "return 1", 2, "a")),
    ("EVAL numkeys not a number", ("EVAL", "return 1", "x")),
    ("EVAL without numkeys", ("EVAL", "return 1")),
]


def eval_basics(lua: Lua) -> None:
    lua.evals("replies", EVAL_CONVERSIONS)
    for label, args in EVAL_ARGUMENT_ERRORS:
        lua.record("errors", label, *args)


# --- 2. script cache ------------------------------------------------------------------------------

CACHED_SCRIPT = "return 'cached ' .. ARGV[1]"
ABSENT_SHA = "f" * 40


def script_cache(lua: Lua) -> None:
    ctx, c = lua.ctx, "script_cache"
    sha = lua.call("SCRIPT", "LOAD", CACHED_SCRIPT)
    ctx.put(c, "SCRIPT LOAD returns the SHA1 of the body", sha == _sha1(CACHED_SCRIPT))
    ctx.check(sha == _sha1(CACHED_SCRIPT), f"SCRIPT LOAD returned {sha!r}, not the body's SHA1")
    lua.record(c, "SCRIPT LOAD twice", "SCRIPT", "LOAD", CACHED_SCRIPT)
    lua.record(c, "EVALSHA", "EVALSHA", sha, 0, "x")
    lua.record(c, "EVALSHA upper-case SHA1", "EVALSHA", str(sha).upper(), 0, "x")
    lua.record(c, "SCRIPT EXISTS loaded, absent, upper-case", "SCRIPT", "EXISTS", sha, ABSENT_SHA,
               str(sha).upper())
    lua.record(c, "EVAL caches the script", "SCRIPT", "EXISTS", _sha1("return 1"))
    lua.record("errors", "EVALSHA absent", "EVALSHA", ABSENT_SHA, 0)
    lua.record("errors", "EVALSHA_RO absent", "EVALSHA_RO", ABSENT_SHA, 0)
    lua.record("errors", "EVALSHA short SHA1", "EVALSHA", "abc", 0)
    lua.record("errors", "SCRIPT LOAD compile error", "SCRIPT", "LOAD", "return +")
    lua.record("errors", "SCRIPT EXISTS without SHA1", "SCRIPT", "EXISTS")
    lua.record("errors", "SCRIPT unknown subcommand", "SCRIPT", "NOSUCH")
    lua.record("errors", "SCRIPT KILL when idle", "SCRIPT", "KILL")
    lua.record("errors", "FUNCTION KILL when idle", "FUNCTION", "KILL")
    # SCRIPT SHOW arrived in Valkey 8.0: a reply there, an unknown subcommand on Redis 7.2.
    lua.record("commands", "SCRIPT SHOW loaded", "SCRIPT", "SHOW", sha)
    lua.record("commands", "SCRIPT SHOW absent", "SCRIPT", "SHOW", ABSENT_SHA)
    lua.record("help", "SCRIPT HELP", "SCRIPT", "HELP")
    lua.record("help", "FUNCTION HELP", "FUNCTION", "HELP")


def script_flush(lua: Lua) -> None:
    """SCRIPT FLUSH empties every client's cached scripts: only on a server we may disturb."""
    lua.ctx.require_server_changes("SCRIPT FLUSH")
    c, sha = "script_flush", _sha1(CACHED_SCRIPT)
    lua.call("SCRIPT", "LOAD", CACHED_SCRIPT)
    lua.record(c, "SCRIPT EXISTS before", "SCRIPT", "EXISTS", sha)
    lua.record(c, "SCRIPT FLUSH", "SCRIPT", "FLUSH")
    lua.record(c, "SCRIPT EXISTS after", "SCRIPT", "EXISTS", sha)
    lua.record(c, "EVALSHA after flush", "EVALSHA", sha, 0, "x")
    lua.record(c, "SCRIPT FLUSH ASYNC", "SCRIPT", "FLUSH", "ASYNC")
    lua.record(c, "SCRIPT FLUSH SYNC", "SCRIPT", "FLUSH", "SYNC")
    lua.record(c, "SCRIPT FLUSH bad mode", "SCRIPT", "FLUSH", "BAD")


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


# --- 3. read-only scripts -------------------------------------------------------------------------

READ = "return redis.call('GET', KEYS[1])"
WRITE = "return redis.call('SET', KEYS[1], 'w')"


def read_only(lua: Lua) -> None:
    r = "read_only"
    lua.record(r, "EVAL_RO read", "EVAL_RO", READ, 1, lua.ctx.key("k"))
    lua.record(r, "EVAL_RO write", "EVAL_RO", WRITE, 1, lua.ctx.key("k"))
    lua.record(r, "no-writes flag, read", "EVAL", "#!lua flags=no-writes\n" + READ, 1, lua.ctx.key("k"))
    lua.record(r, "no-writes flag, write", "EVAL", "#!lua flags=no-writes\n" + WRITE, 1, lua.ctx.key("k"))
    lua.record(r, "EVAL_RO with no-writes flag", "EVAL_RO", "#!lua flags=no-writes\n" + READ, 1,
               lua.ctx.key("k"))
    sha = lua.call("SCRIPT", "LOAD", WRITE)
    lua.record(r, "EVALSHA_RO of a writing script", "EVALSHA_RO", sha, 1, lua.ctx.key("k"))
    lua.record(r, "value after refused writes", "GET", lua.ctx.key("k"))


# --- 4. errors ------------------------------------------------------------------------------------

ERROR_SCRIPTS: list[Script] = [
    ("redis.call unknown command", "return redis.call('nosuch')", (0,)),
    ("redis.pcall unknown command", "return redis.pcall('nosuch')", (0,)),
    ("redis.call wrong type", "return redis.call('INCR', KEYS[1])", (1, "key:text")),
    ("redis.pcall wrong type", "return redis.pcall('INCR', KEYS[1])", (1, "key:text")),
    ("redis.call wrong arity", "return redis.call('INCR', KEYS[1], 'extra')", (1, "key:n")),
    ("redis.pcall wrong arity", "return redis.pcall('INCR', KEYS[1], 'extra')", (1, "key:n")),
    ("redis.call without arguments", "return redis.call()", (0,)),
    ("redis.call table argument", "return redis.call('GET', {})", (0,)),
    ("redis.pcall table argument", "return redis.pcall('GET', {})", (0,)),
    ("error with a string", "error('boom')", (0,)),
    ("error with a number", "error(42)", (0,)),
    ("error without argument", "error()", (0,)),
    ("error with an err table", "error({err='TABLE boom'})", (0,)),
    ("error with an empty err", "error({err=''})", (0,)),
    ("error_reply", "return redis.error_reply('My Error')", (0,)),
    ("error_reply with a leading dash", "return redis.error_reply('-My Error')", (0,)),
    ("error_reply with a code", "return redis.error_reply('MYCODE some text')", (0,)),
    ("error_reply empty", "return redis.error_reply('')", (0,)),
    ("error_reply without argument", "return redis.error_reply()", (0,)),
    ("err table returned", "return {err='x y'}", (0,)),
    ("status_reply", "return redis.status_reply('FINE')", (0,)),
    ("compile error", "return 1 +", (0,)),
    ("undeclared global read", "return nosuchvar", (0,)),
    ("global write", "x = 1", (0,)),
    ("redis table write", "redis.call = nil", (0,)),
    ("EVAL from a script", "return redis.call('EVAL', 'return 1', 0)", (0,)),
    ("MULTI from a script", "return redis.call('MULTI')", (0,)),
    ("SUBSCRIBE from a script", "return redis.call('SUBSCRIBE', 'x')", (0,)),
    ("CLIENT ID from a script", "return redis.call('CLIENT', 'ID')", (0,)),
    ("CONFIG GET from a script", "return redis.call('CONFIG', 'GET', 'maxmemory')", (0,)),
    ("setresp(4)", "return redis.setresp(4)", (0,)),
    ("log without message", "return redis.log(redis.LOG_WARNING)", (0,)),
    ("log invalid level", "return redis.log(99, 'x')", (0,)),
    ("set_repl invalid", "return redis.set_repl(99)", (0,)),
    ("acl_check_cmd unknown command", "return redis.acl_check_cmd('nosuch')", (0,)),
    ("cjson.decode invalid", "return cjson.decode('{bad')", (0,)),
    ("shebang unknown option", "#!lua name=foo\nreturn 1", (0,)),
    ("shebang unknown flag", "#!lua flags=nosuch\nreturn 1", (0,)),
    ("shebang unknown engine", "#!notlua\nreturn 1", (0,)),
]

# What a Lua error object looks like when caught (pcall) rather than raised.
PCALL_SCRIPTS: list[Script] = [
    ("redis.pcall error is a table with err",
     "local e = redis.pcall('INCR', KEYS[1]); return {type(e), e.err}", (1, "key:text")),
    ("pcall(redis.call) unknown command",
     "local ok, e = pcall(redis.call, 'nosuch'); return {tostring(ok), type(e), tostring(e)}", (0,)),
    ("pcall(redis.call) wrong type",
     "local ok, e = pcall(redis.call, 'INCR', KEYS[1]); return {tostring(ok), type(e), tostring(e)}",
     (1, "key:text")),
    ("pcall(error) with a string",
     "local ok, e = pcall(error, 'x'); return {tostring(ok), type(e), e}", (0,)),
    ("error_reply builds a table", "local e = redis.error_reply('E1'); return {type(e), e.err}", (0,)),
    ("status_reply builds a table", "local s = redis.status_reply('S1'); return {type(s), s.ok}", (0,)),
    ("script continues after pcall",
     "redis.pcall('nosuch'); return redis.call('INCR', KEYS[1])", (1, "key:n")),
    ("writes before an error stay", "redis.call('SET', KEYS[1], 'before'); error('after')",
     (1, "key:partial")),
]


# Valkey 8.0 allows WAITAOF and XREAD BLOCK in scripts (Redis 7.2 refuses them).
SCRIPT_COMMANDS: list[Script] = [
    ("WAITAOF from a script", "return redis.call('WAITAOF', 0, 0, 0)", (0,)),
    ("XREAD BLOCK from a script", "return redis.call('XREAD', 'BLOCK', 0, 'STREAMS', KEYS[1], '$')",
     (1, "key:stream")),
    ("XREAD without BLOCK from a script", "return redis.call('XREAD', 'STREAMS', KEYS[1], '0')",
     (1, "key:stream")),
]


def errors(lua: Lua) -> None:
    lua.ctx.call("SET", lua.ctx.key("text"), "not a number")
    lua.evals("errors", ERROR_SCRIPTS)
    lua.evals("pcall", PCALL_SCRIPTS)
    lua.record("pcall", "value written before the error", "GET", lua.ctx.key("partial"))
    lua.evals("script_commands", SCRIPT_COMMANDS)


# --- 5. globals a script sees ---------------------------------------------------------------------

SORTED_TABLE = ("local t = {} for k, v in pairs(TABLE) do t[#t + 1] = k .. ':' .. type(v) end "
                "table.sort(t) return t")
GLOBAL_NAMES = ("server", "os", "getfenv", "setfenv", "newproxy", "loadfile", "dofile", "print",
                "require", "module", "io", "debug", "package", "unpack", "loadstring", "gcinfo",
                "__redis__err__handler", "__server__err__handler")
GLOBAL_SCRIPTS: list[Script] = [
    ("redis.REDIS_VERSION", "return redis.REDIS_VERSION", (0,)),
    ("redis.REDIS_VERSION_NUM", "return redis.REDIS_VERSION_NUM", (0,)),
    ("redis.VALKEY_VERSION", "return redis.VALKEY_VERSION", (0,)),
    ("redis.VALKEY_VERSION_NUM", "return redis.VALKEY_VERSION_NUM", (0,)),
    ("redis.SERVER_NAME", "return redis.SERVER_NAME", (0,)),
    ("_VERSION", "return _VERSION", (0,)),
    ("server is redis", "return tostring(rawget(_G, 'server') == redis)", (0,)),
    ("server.call", "return server.call('PING')", (0,)),
    ("os.clock", "return type(os.clock())", (0,)),
    ("redis constants", "return {redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING,"
                        " redis.REPL_NONE, redis.REPL_AOF, redis.REPL_REPLICA, redis.REPL_SLAVE,"
                        " redis.REPL_ALL}", (0,)),
    ("keys of redis", SORTED_TABLE.replace("TABLE", "redis"), (0,)),
    ("keys of _G", SORTED_TABLE.replace("TABLE", "_G"), (0,)),
    ("keys of os", "if rawget(_G, 'os') == nil then return 'absent' end "
     + SORTED_TABLE.replace("TABLE", "os"), (0,)),
    *[(f"type({name})", f"return type(rawget(_G, '{name}'))", (0,)) for name in GLOBAL_NAMES],
]
# Scripts and functions share one Lua state but not one environment; these run inside a FUNCTION.
FUNCTION_GLOBALS = {
    "keys of redis": SORTED_TABLE.replace("TABLE", "redis"),
    "keys of _G": SORTED_TABLE.replace("TABLE", "_G"),
    "type(server)": "return type(rawget(_G, 'server'))",
}


def globals_visible(lua: Lua) -> None:
    lua.evals("globals", GLOBAL_SCRIPTS)


# --- 6. bundled libraries -------------------------------------------------------------------------

LIBRARY_SCRIPTS: list[Script] = [
    ("cjson.encode empty table", "return cjson.encode({})", (0,)),
    ("cjson.encode array", "return cjson.encode({1, 2, 3})", (0,)),
    ("cjson.encode one-key object", "return cjson.encode({a = 1})", (0,)),
    ("cjson.encode 2^53", "return cjson.encode(2^53)", (0,)),
    ("cjson.encode 12345678901234567890", "return cjson.encode(12345678901234567890)", (0,)),
    ("cjson.encode 123456789012345", "return cjson.encode(123456789012345)", (0,)),
    ("cjson.encode pi", "return cjson.encode(3.14159265358979)", (0,)),
    ("cjson.encode 0.1 and 1e-7", "return cjson.encode({0.1, 1e-7, -1e300})", (0,)),
    ("cjson.encode null", "return cjson.encode(cjson.null)", (0,)),
    ("cjson.encode escapes", "return cjson.encode('a\"b/\\n\\1')", (0,)),
    ("cjson.encode array with a hole", "return cjson.encode({[1] = 1, [3] = 3})", (0,)),
    ("cjson.encode sparse array", "return cjson.encode({[1] = 1, [20] = 3})", (0,)),
    ("cjson.encode NaN", "return cjson.encode(0/0)", (0,)),
    ("cjson.encode function", "return cjson.encode(function() end)", (0,)),
    ("cjson.encode self reference", "local t = {} t.self = t return cjson.encode(t)", (0,)),
    ("cjson.decode [] re-encoded", "return cjson.encode(cjson.decode('[]'))", (0,)),
    ("cjson.decode {} re-encoded", "return cjson.encode(cjson.decode('{}'))", (0,)),
    ("cjson.decode large integer", "return tostring(cjson.decode('12345678901234567890'))", (0,)),
    ("cjson.decode 2^53+1", "return tostring(cjson.decode('9007199254740993'))", (0,)),
    ("cjson.decode null is cjson.null",
     "return cjson.decode('[1,{\"a\":null}]')[2].a == cjson.null and 'null' or 'other'", (0,)),
    ("cjson.decode nested", "local t = cjson.decode('{\"a\":[1,2,{\"b\":\"c\"}]}') return t.a[3].b", (0,)),
    ("cjson version", "return cjson._VERSION", (0,)),
    ("cmsgpack.pack table", "return cmsgpack.pack({1, 2, 'a', {x = 1}})", (0,)),
    ("cmsgpack.pack several values", "return cmsgpack.pack(1.5, 2^40, -1, 'abc', true)", (0,)),
    ("cmsgpack round trip", "return {cmsgpack.unpack(cmsgpack.pack(1, 'two', {3}))}", (0,)),
    ("cmsgpack.unpack invalid", "return cmsgpack.unpack('\\193')", (0,)),
    ("cmsgpack version", "return cmsgpack._VERSION", (0,)),
    ("bit operations", "return {bit.band(0xff, 0x0f), bit.bor(1, 2), bit.bxor(5, 3), bit.bnot(0),"
                       " bit.lshift(1, 31), bit.rshift(-1, 28), bit.arshift(-256, 4), bit.tohex(255),"
                       " bit.tohex(-1, 4), bit.tobit(2^32 + 5), bit.bswap(0x12345678), bit.rol(1, 33)}",
     (0,)),
    ("struct.pack", "return struct.pack('>I2i4', 258, -2)", (0,)),
    ("struct round trip", "return {struct.unpack('<h', struct.pack('<h', -5))}", (0,)),
    ("struct.size", "return struct.size('>I2i4d')", (0,)),
    ("struct.pack invalid format", "return struct.pack('Q', 1)", (0,)),
    ("redis.sha1hex", "return redis.sha1hex('abc')", (0,)),
]
# Lua table iteration order: what cjson.encode and pairs() produce for the same table literal.
ORDER_TABLE = "{n = 1, f = 2, big = 3, neg = 4, small = 5, alpha = 6, beta = 7, gamma = 8}"
ORDERING_SCRIPTS: list[Script] = [
    ("cjson.encode object key order", f"return cjson.encode({ORDER_TABLE})", (0,)),
    ("pairs() key order", f"local t = {{}} for k in pairs({ORDER_TABLE}) do t[#t + 1] = k end return t",
     (0,)),
]


def libraries(lua: Lua) -> None:
    lua.evals("libraries", LIBRARY_SCRIPTS)
    lua.evals("ordering", ORDERING_SCRIPTS)


# --- 7. RESP3 from scripts ------------------------------------------------------------------------

RESP3_SCRIPTS: list[Script] = [
    ("double", "return {double = 3.5}", (0,)),
    ("double NaN", "return {double = 0/0}", (0,)),
    ("big_number", "return {big_number = '123456789012345678901234567890'}", (0,)),
    ("map", "return {map = {a = 1, b = 'x'}}", (0,)),
    ("empty map", "return {map = {}}", (0,)),
    ("set", "return {set = {a = true, b = true}}", (0,)),
    ("verbatim_string", "return {verbatim_string = {format = 'txt', string = 'hello'}}", (0,)),
    ("true", "return true", (0,)),
    ("false", "return false", (0,)),
    ("nil", "return nil", (0,)),
    ("status", "return redis.status_reply('FINE')", (0,)),
    ("error", "return redis.error_reply('ERR custom')", (0,)),
    ("setresp(3) HGETALL", "redis.setresp(3) return redis.call('HGETALL', KEYS[1])", (1, "key:h")),
    ("setresp(3) SMEMBERS", "redis.setresp(3) return redis.call('SMEMBERS', KEYS[1])", (1, "key:s")),
    ("setresp(3) ZSCORE", "redis.setresp(3) return redis.call('ZSCORE', KEYS[1], 'm')", (1, "key:z")),
    ("setresp(3) GET missing", "redis.setresp(3) return redis.call('GET', KEYS[1])", (1, "key:missing")),
    ("setresp(3) values seen by Lua",
     "redis.setresp(3) local m = redis.call('HGETALL', KEYS[1]) local s = redis.call('SMEMBERS', KEYS[2])"
     " local d = redis.call('ZSCORE', KEYS[3], 'm') local n = redis.call('GET', KEYS[4])"
     " return {type(m.map), m.map.f, type(s.set), tostring(s.set.x), type(d), tostring(d.double),"
     " tostring(n)}", (4, "key:h", "key:s", "key:z", "key:missing")),
    ("setresp(3) cjson of a map", "redis.setresp(3) return cjson.encode(redis.call('HGETALL', KEYS[1]))",
     (1, "key:h")),
    ("RESP2 ZSCORE seen by Lua", "return type(redis.call('ZSCORE', KEYS[1], 'm'))", (1, "key:z")),
]


def resp3(lua: Lua) -> None:
    ctx = lua.ctx
    ctx.call("HSET", ctx.key("h"), "f", "v")
    ctx.call("SADD", ctx.key("s"), "x")
    ctx.call("ZADD", ctx.key("z"), "1.5", "m")
    for protocol in (2, 3):
        try:
            wire = Wire(ctx, protocol)
        except redis.ResponseError as exc:  # a server without RESP3 refuses HELLO 3
            ctx.put("resp3", f"RESP{protocol} connection", plain(exc))
            continue
        try:
            for label, body, rest in RESP3_SCRIPTS:
                reply = wire.call("EVAL", body, *lua.keyed(rest))
                reply = lua.permitted(lua.scrub(plain(reply, ctx.prefix)), ("EVAL",))
                ctx.put("resp3", f"RESP{protocol} connection: {label}", reply)
        finally:
            wire.close()


# --- 8. functions ---------------------------------------------------------------------------------

def library_code(lib: str) -> str:
    """A library whose function names start with the library name (function names are server-wide)."""
    register = [
        f"redis.register_function('{lib}set', function(keys, args)"
        f" return redis.call('SET', keys[1], args[1]) end)",
        f"redis.register_function{{function_name = '{lib}get', callback = function(keys, args)"
        f" return redis.call('GET', keys[1]) end, flags = {{'no-writes'}}, description = 'reads a key'}}",
        f"redis.register_function{{function_name = '{lib}badro', callback = function(keys, args)"
        f" return redis.call('SET', keys[1], 'x') end, flags = {{'no-writes'}}}}",
        f"redis.register_function('{lib}unknown', function(keys, args) return redis.call('nosuch') end)",
        f"redis.register_function('{lib}raise', function(keys, args) error('boom') end)",
        f"redis.register_function('{lib}version', function(keys, args) return {{redis.REDIS_VERSION,"
        f" redis.REDIS_VERSION_NUM}} end)",
    ]
    register += [f"redis.register_function('{lib}g{i}', function() {body} end)"
                 for i, body in enumerate(FUNCTION_GLOBALS.values())]
    return f"#!lua name={lib}\n" + "\n".join(register) + "\n"


def load_errors(lib: str) -> dict[str, str]:
    """FUNCTION LOAD bodies that must be refused (none of them registers anything)."""
    ok = f"redis.register_function('{lib}x', function() return 1 end)"
    return {
        "no shebang": "return 1",
        "no library name": "#!lua\nreturn 1",
        "unknown engine": f"#!nosuch name={lib}x\nreturn 1",
        "no function registered": f"#!lua name={lib}x\nreturn 1",
        "redis.call while loading": f"#!lua name={lib}x\n{ok} redis.call('PING')",
        "invalid function name": f"#!lua name={lib}x\n"
                                 "redis.register_function('bad name!', function() return 1 end)",
        "unknown flag": f"#!lua name={lib}x\nredis.register_function{{function_name = '{lib}x',"
                        f" callback = function() return 1 end, flags = {{'nosuchflag'}}}}",
        "compile error": f"#!lua name={lib}x\nreturn +",
        "invalid library name": f"#!lua name=bad-name\n{ok}",
        "unknown metadata": f"#!lua name={lib}x foo=bar\n{ok}",
    }


def functions(lua: Lua) -> None:
    ctx, lib, f = lua.ctx, lua.lib, "functions"
    try:
        lua.record(f, "FUNCTION LOAD", "FUNCTION", "LOAD", library_code(lib))
        lua.record(f, "FUNCTION LOAD again", "FUNCTION", "LOAD", library_code(lib))
        lua.record(f, "FUNCTION LOAD REPLACE", "FUNCTION", "LOAD", "REPLACE", library_code(lib))
        ctx.put(f, "FUNCTION LIST (functions sorted)",
                sorted_function_list(lua.call("FUNCTION", "LIST", "LIBRARYNAME", lib)))
        listing = lua.call("FUNCTION", "LIST", "LIBRARYNAME", lib, "WITHCODE")
        ctx.put(f, "FUNCTION LIST WITHCODE returns the code",
                field(listing[0], "library_code") == lua.scrub(library_code(lib)) if listing else listing)
        calls(lua, lib)
        for label, body in load_errors(lib).items():
            lua.record("function_load_errors", label, "FUNCTION", "LOAD", body)
        ctx.put(f, "FUNCTION STATS fields and engines", stats_shape(ctx.call("FUNCTION", "STATS")))
    finally:
        lua.record(f, "FUNCTION DELETE own library", "FUNCTION", "DELETE", lib)
    lua.record(f, "FUNCTION DELETE again", "FUNCTION", "DELETE", lib)
    left = lua.call("FUNCTION", "LIST", "LIBRARYNAME", lib)
    ctx.put(f, "FUNCTION LIST after DELETE", left)
    ctx.check(left == [], "the scenario's function library is still loaded after FUNCTION DELETE")


def calls(lua: Lua, lib: str) -> None:
    f, k = "functions", lua.ctx.key("fk")
    lua.record(f, "FCALL set", "FCALL", f"{lib}set", 1, k, "value")
    lua.record(f, "FCALL get", "FCALL", f"{lib}get", 1, k)
    lua.record(f, "FCALL_RO get", "FCALL_RO", f"{lib}get", 1, k)
    lua.record(f, "FCALL version", "FCALL", f"{lib}version", 0)
    lua.record("errors", "FCALL_RO of a writing function", "FCALL_RO", f"{lib}set", 1, k, "v")
    lua.record("errors", "FCALL no-writes function writing", "FCALL", f"{lib}badro", 1, k)
    lua.record("errors", "FCALL unknown command", "FCALL", f"{lib}unknown", 0)
    lua.record("errors", "FCALL error()", "FCALL", f"{lib}raise", 0)
    lua.record("errors", "FCALL missing function", "FCALL", f"{lib}nosuch", 0)
    lua.record("errors", "FCALL numkeys greater than args", "FCALL", f"{lib}set", 5, k)
    lua.record("errors", "FUNCTION RESTORE garbage", "FUNCTION", "RESTORE", "garbage")
    lua.record("errors", "FUNCTION LIST bad argument", "FUNCTION", "LIST", "BAD")
    for i, label in enumerate(FUNCTION_GLOBALS):
        lua.record("function_globals", label, "FCALL", f"{lib}g{i}", 0)


def field(entry: Reply, name: str) -> Reply:
    """A named field of a reply that is a flat name/value list (RESP2) or a map (RESP3)."""
    if isinstance(entry, dict):
        return entry.get(name)
    if isinstance(entry, list) and name in entry[0::2]:
        return entry[entry.index(name) + 1]
    return None


def stats_shape(stats: Reply) -> Reply:
    """FUNCTION STATS without its counts (they cover every library on the server, not only ours)."""
    if isinstance(stats, list):  # RESP2: a flat name/value list
        stats = dict(zip(stats[0::2], stats[1::2]))
    if not isinstance(stats, dict):
        return stats
    engines = stats.get("engines")
    if isinstance(engines, list):
        engines = dict(zip(engines[0::2], engines[1::2]))
    return {"fields": sorted(stats), "engines": sorted(engines) if isinstance(engines, dict) else engines}


def sorted_function_list(listing: Reply) -> Reply:
    """FUNCTION LIST with each library's functions sorted (their order is hash order).

    A library is a flat name/value list under RESP2 and a map under RESP3; both are handled.
    """
    if not isinstance(listing, list):
        return listing
    out: list[Reply] = []
    for entry in listing:
        if isinstance(entry, dict) and isinstance(entry.get("functions"), list):
            entry = {**entry, "functions": sorted(entry["functions"], key=repr)}
        elif isinstance(entry, list) and "functions" in entry[0::2]:
            at = entry.index("functions") + 1
            entry = [*entry[:at], sorted(entry[at], key=repr), *entry[at + 1:]]
        out.append(entry)
    return out


# --- 9. transactions ------------------------------------------------------------------------------

TRANSACTIONS: dict[str, list[tuple[Any, ...]]] = {
    "MULTI SET INCR GET EXEC": [("MULTI",), ("SET", "key:t", "1"), ("INCR", "key:t"), ("GET", "key:t"),
                                ("EXEC",)],
    "DISCARD": [("MULTI",), ("SET", "key:t", "9"), ("DISCARD",), ("GET", "key:t")],
    "EXECABORT after unknown command": [("MULTI",), ("SET", "key:t", "aborted"), ("NOSUCHCMD",),
                                        ("EXEC",), ("GET", "key:t")],
    "EXECABORT after wrong arity": [("MULTI",), ("SET", "key:t"), ("EXEC",)],
    "runtime error inside EXEC": [("MULTI",), ("SET", "key:t", "abc"), ("INCR", "key:t"),
                                  ("LPUSH", "key:t", "x"), ("GET", "key:t"), ("EXEC",)],
    "EVAL inside MULTI": [("MULTI",), ("EVAL", "return redis.call('INCR', KEYS[1])", 1, "key:n2"),
                          ("EVAL", "error('in tx')", 0), ("EXEC",)],
    "empty MULTI EXEC": [("MULTI",), ("EXEC",)],
    "nested MULTI": [("MULTI",), ("MULTI",), ("EXEC",)],
    "WATCH inside MULTI": [("MULTI",), ("WATCH", "key:t"), ("EXEC",)],
    "UNWATCH inside MULTI": [("MULTI",), ("UNWATCH",), ("EXEC",)],
    "EXEC without MULTI": [("EXEC",)],
    "DISCARD without MULTI": [("DISCARD",)],
    "DISCARD after queued error": [("MULTI",), ("SET", "key:t"), ("DISCARD",)],
}


def step_label(number: int, step: tuple[Any, ...]) -> str:
    """'#2 SET t abc': the step's position and command, keys by their short names."""
    words = [str(a)[4:] if str(a).startswith("key:") else str(a) for a in step]
    return f"#{number} " + " ".join(w if len(w) <= 40 else w[:37] + "..." for w in words)


def typed_exec(protocol: int) -> list[tuple[Any, ...]]:
    """A transaction whose EXEC reply holds a map, a set, a double, a null and an error."""
    h, z = f"key:th{protocol}", f"key:tz{protocol}"
    return [("MULTI",), ("HSET", h, "f", "v"), ("HGETALL", h), ("SMEMBERS", "key:none"),
            ("ZADD", z, "1.5", "m"), ("ZSCORE", z, "m"), ("GET", "key:none"), ("INCR", h), ("EXEC",)]


def transactions(lua: Lua) -> None:
    ctx = lua.ctx
    tx = pinned(ctx)
    try:
        for label, steps in TRANSACTIONS.items():
            ctx.put("transactions", label, {step_label(i, step): lua.call(*lua.keyed(step), conn=tx)
                                            for i, step in enumerate(steps, 1)})
    finally:
        tx.connection_pool.disconnect()
    runtime = list(ctx.metrics["transactions"]["runtime error inside EXEC"].values())[-1]
    ctx.check(isinstance(runtime, list) and runtime[-1] == "abc",
              "commands after a runtime error inside EXEC were not executed")
    aborted = list(ctx.metrics["transactions"]["EXECABORT after unknown command"].values())[-1]
    ctx.check(aborted != "aborted", "EXECABORT still applied the queued SET")
    for protocol in (2, 3):
        wire = Wire(ctx, protocol)
        try:
            replies = [wire.call(*lua.keyed(step)) for step in typed_exec(protocol)]
            ctx.put("transactions", f"EXEC reply types, RESP{protocol}",
                    lua.scrub(plain(replies, ctx.prefix)))
        finally:
            wire.close()


# --- 10. WATCH ------------------------------------------------------------------------------------

def watch(lua: Lua) -> None:
    ctx = lua.ctx
    tx, other = pinned(ctx), ctx.connection()
    try:
        for label, case in WATCH_CASES.items():
            ctx.put("watch", label, case(lua, tx, other))
    finally:
        tx.connection_pool.disconnect()
    ctx.check(ctx.metrics["watch"]["changed by another connection"][-1] is None,
              "EXEC ran although a watched key was changed by another connection")
    ctx.check(ctx.metrics["watch"]["unchanged"][-1] == ["PONG"],
              "EXEC was aborted although no watched key changed")


Step = tuple[Any, ...]
Between = Callable[[Lua, redis.Redis], None]


def _tx(lua: Lua, tx: redis.Redis, *steps: Step) -> list[Reply]:
    return [lua.call(*lua.keyed(step), conn=tx) for step in steps]


def _watch_case(key: str, setup: tuple[Step, ...] = (), between: Between | None = None,
                after_watch: tuple[Step, ...] = ()) -> Callable[[Lua, redis.Redis, redis.Redis], list[Reply]]:
    """Setup, WATCH key, more own steps, something done meanwhile, then MULTI PING EXEC (all recorded
    except what happens meanwhile): EXEC is nil when the transaction was aborted."""
    def case(lua: Lua, tx: redis.Redis, other: redis.Redis) -> list[Reply]:
        out = _tx(lua, tx, *setup, ("WATCH", key), *after_watch)
        if between:
            between(lua, other)
        return out + _tx(lua, tx, ("MULTI",), ("PING",), ("EXEC",))
    return case


def _other(*args: Any) -> Between:
    """A command sent by the second connection while the first one watches."""
    def step(lua: Lua, other: redis.Redis) -> None:
        lua.ctx.call(*lua.keyed(args), conn=other)
    return step


def _wait_expiry(lua: Lua, other: redis.Redis) -> None:
    time.sleep(WATCH_EXPIRY_WAIT_S)  # bounded: the TTL is WATCH_EXPIRY_MS, far shorter


def _expiring(key: str) -> tuple[Step, ...]:
    return (("SET", key, "v"), ("PEXPIRE", key, WATCH_EXPIRY_MS))


def _already_expired_case(lua: Lua, tx: redis.Redis, other: redis.Redis) -> list[Reply]:
    out = _tx(lua, tx, *_expiring("key:gone"))
    _wait_expiry(lua, other)  # expired before WATCH: logically absent already, so nothing changes
    return out + _tx(lua, tx, ("WATCH", "key:gone"), ("MULTI",), ("PING",), ("EXEC",))


W = "key:w"
WATCH_CASES: dict[str, Callable[[Lua, redis.Redis, redis.Redis], list[Reply]]] = {
    "unchanged": _watch_case(W, setup=(("SET", W, "v"),)),
    "changed by another connection": _watch_case(W, (("SET", W, "v"),), _other("SET", W, "other")),
    "same value written by another connection": _watch_case(W, (("SET", W, "v"),), _other("SET", W, "v")),
    "TTL set by another connection": _watch_case(W, (("SET", W, "v"),), _other("EXPIRE", W, 100)),
    "read by another connection": _watch_case(W, (("SET", W, "v"),), _other("GET", W)),
    "missing key created by another connection": _watch_case("key:new",
                                                             between=_other("SET", "key:new", "1")),
    "missing key deleted (no-op) by another connection": _watch_case("key:absent",
                                                                     between=_other("DEL", "key:absent")),
    "written by own connection before MULTI": _watch_case(W, after_watch=(("SET", W, "mine"),)),
    "changed after UNWATCH": _watch_case(W, between=_other("SET", W, "again"), after_watch=(("UNWATCH",),)),
    "changed after DISCARD": _watch_case(W, between=_other("SET", W, "later"),
                                         after_watch=(("MULTI",), ("DISCARD",))),
    "watched key expires before EXEC": _watch_case("key:e", _expiring("key:e"), _wait_expiry),
    "watched key with a TTL that has not expired": _watch_case("key:e2",
                                                               (("SET", "key:e2", "v", "PX", 60000),)),
    "key already expired when watched": _already_expired_case,
}
