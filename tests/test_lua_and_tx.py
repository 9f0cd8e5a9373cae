"""lua_and_tx against the real embedded servers: shape, cleanup, the differences it reports (with the
value on each side), the guarantees both servers keep, and equal metrics from two processes of one binary."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from app import config
from app.compare import diff_metrics
from app.config import ScenarioOptions
from app.scenarios import lua_and_tx
from app.servers import EmbeddedServer
from tests.conftest import run_on_two_processes, scenario_keys

PREFIX = "rvc:luatest:"
LIB = lua_and_tx.library_name(PREFIX + "lua_and_tx:")
SECTIONS = {"replies", "errors", "script_cache", "script_flush", "commands", "help", "read_only", "pcall",
            "script_commands", "globals", "libraries", "ordering", "resp3", "functions",
            "function_load_errors", "function_globals", "transactions", "watch"}
LOC = "script: {sha}, on @user_script:1."  # the location suffix of an EVAL error, SHA1 replaced

# Every difference between embedded Redis 7.2.4 and Valkey 9.0.0, with the value on each side.
# A server upgrade that changes one of them, or adds one, fails test_differences_are_exactly_these.
NOSCRIPT = ({"error": "NOSCRIPT No matching script. Please use EVAL."},
            {"error": "NOSCRIPT No matching script."})
NOT_ALLOWED = ({"error": f"ERR This Redis command is not allowed from script {LOC}"},
               {"error": f"ERR This Valkey command is not allowed from script {LOC}"})
MISSING_GLOBAL = "ERR user_script:1: Script attempted to access nonexistent global variable '%s' " + LOC
EXPECTED: dict[str, tuple[Any, Any]] = {
    "errors.EVALSHA absent": NOSCRIPT,
    "errors.EVALSHA_RO absent": NOSCRIPT,
    "errors.EVALSHA short SHA1": NOSCRIPT,
    "script_flush.EVALSHA after flush": NOSCRIPT,
    "errors.redis.call unknown command": (
        {"error": f"ERR Unknown Redis command called from script {LOC}"},
        {"error": f"ERR Unknown command called from script {LOC}"}),
    "errors.redis.pcall unknown command": (
        {"error": "ERR Unknown Redis command called from script"},
        {"error": "ERR Unknown command called from script"}),
    "errors.redis.call wrong arity": (
        {"error": f"ERR Wrong number of args calling Redis command from script {LOC}"},
        {"error": f"ERR Wrong number of args calling command from script {LOC}"}),
    "errors.redis.pcall wrong arity": (
        {"error": "ERR Wrong number of args calling Redis command from script"},
        {"error": "ERR Wrong number of args calling command from script"}),
    "errors.redis.call without arguments": (
        {"error": f"ERR Please specify at least one argument for this redis lib call {LOC}"},
        {"error": f"ERR Please specify at least one argument for this call {LOC}"}),
    "errors.redis.call table argument": (
        {"error": f"ERR Lua redis lib command arguments must be strings or integers {LOC}"},
        {"error": f"ERR Command arguments must be strings or integers {LOC}"}),
    "errors.redis.pcall table argument": (
        {"error": "ERR Lua redis lib command arguments must be strings or integers"},
        {"error": "ERR Command arguments must be strings or integers"}),
    "errors.EVAL from a script": NOT_ALLOWED,
    "errors.MULTI from a script": NOT_ALLOWED,
    "errors.SUBSCRIBE from a script": NOT_ALLOWED,
    "errors.CLIENT ID from a script": NOT_ALLOWED,
    "errors.CONFIG GET from a script": NOT_ALLOWED,
    "errors.log without message": (
        {"error": f"ERR redis.log() requires two arguments or more. {LOC}"},
        {"error": f"ERR server.log() requires two arguments or more. {LOC}"}),
    "errors.log invalid level": (
        {"error": f"ERR Invalid debug level. {LOC}"}, {"error": f"ERR Invalid log level. {LOC}"}),
    "errors.acl_check_cmd unknown command": (
        {"error": f"ERR Invalid command passed to redis.acl_check_cmd() {LOC}"},
        {"error": f"ERR Invalid command passed to server.acl_check_cmd() {LOC}"}),
    "errors.shebang unknown engine": (
        {"error": "ERR Unexpected engine in script shebang: #!notlua"},
        {"error": "ERR Could not find scripting engine 'notlua'"}),
    "errors.FCALL unknown command": (
        {"error": "ERR Unknown Redis command called from script script: {lib}unknown, on @user_function:5."},
        {"error": "ERR Unknown command called from script script: {lib}unknown, on @user_function:5."}),
    "commands.SCRIPT SHOW loaded": (
        {"error": "ERR unknown subcommand 'SHOW'. Try SCRIPT HELP."}, "return 'cached ' .. ARGV[1]"),
    "commands.SCRIPT SHOW absent": (
        {"error": "ERR unknown subcommand 'SHOW'. Try SCRIPT HELP."},
        {"error": "NOSCRIPT No matching script."}),
    "pcall.pcall(redis.call) unknown command": (
        ["false", "string", "ERR Unknown Redis command called from script"],
        ["false", "string", "ERR Unknown command called from script"]),
    "script_commands.WAITAOF from a script": (
        {"error": f"ERR This Redis command is not allowed from script {LOC}"}, [0, 0]),
    "script_commands.XREAD BLOCK from a script": (
        {"error": f"ERR XREAD command is not allowed with BLOCK option from scripts {LOC}"}, None),
    "globals.redis.VALKEY_VERSION": (None, "9.0.0"),
    "globals.redis.VALKEY_VERSION_NUM": (None, 0x090000),
    "globals.redis.SERVER_NAME": (None, "valkey"),
    "globals.server is redis": ("false", "true"),
    "globals.server.call": ({"error": MISSING_GLOBAL % "server"}, "PONG"),
    "globals.os.clock": ({"error": MISSING_GLOBAL % "os"}, "number"),
    "globals.keys of os": ("absent", ["clock:function"]),
    "globals.type(server)": ("nil", "table"),
    "globals.type(os)": ("nil", "table"),
    "globals.type(getfenv)": ("function", "nil"),
    "globals.type(setfenv)": ("function", "nil"),
    "globals.type(newproxy)": ("function", "nil"),
    "globals.type(__server__err__handler)": ("nil", "function"),
    "function_globals.type(server)": ("nil", "table"),
    "ordering.cjson.encode object key order": (
        '{"neg":4,"beta":7,"gamma":8,"f":2,"small":5,"big":3,"alpha":6,"n":1}',
        '{"big":3,"neg":4,"beta":7,"alpha":6,"small":5,"f":2,"gamma":8,"n":1}'),
    "ordering.pairs() key order": (
        ["neg", "beta", "gamma", "f", "small", "big", "alpha", "n"],
        ["big", "neg", "beta", "alpha", "small", "f", "gamma", "n"]),
    "function_load_errors.invalid function name": (
        {"error": "ERR Error registering functions: ERR Library names can only contain letters, numbers, "
                  "or underscores(_) and must be at least one character long"},
        {"error": "ERR Function names can only contain letters, numbers, or underscores(_) and must be at "
                  "least one character long"}),
    "transactions.nested MULTI.#2 MULTI": (
        {"error": "ERR MULTI calls can not be nested"},
        {"error": "ERR Command 'multi' not allowed inside a transaction"}),
    "transactions.nested MULTI.#3 EXEC": (
        [], {"error": "EXECABORT Transaction discarded because of previous errors."}),
    "transactions.WATCH inside MULTI.#2 WATCH t": (
        {"error": "ERR WATCH inside MULTI is not allowed"},
        {"error": "ERR Command 'watch' not allowed inside a transaction"}),
    "transactions.WATCH inside MULTI.#3 EXEC": (
        [], {"error": "EXECABORT Transaction discarded because of previous errors."}),
}
# Differences in long lists: checked by what is on one side only (exact sets).
LIST_DIFFERENCES: dict[str, tuple[set[str], set[str]]] = {
    "globals.keys of redis": (set(), {"SERVER_NAME:string", "VALKEY_VERSION:string",
                                      "VALKEY_VERSION_NUM:number"}),
    "function_globals.keys of redis": (set(), {"SERVER_NAME:string", "VALKEY_VERSION:string",
                                               "VALKEY_VERSION_NUM:number"}),
    "globals.keys of _G": ({"getfenv:function", "newproxy:function", "setfenv:function"},
                           {"__server__err__handler:function", "os:table", "server:table"}),
    "function_globals.keys of _G": ({"getfenv:function", "newproxy:function", "setfenv:function"},
                                    {"os:table", "server:table"}),
    "help.SCRIPT HELP": (
        {"    When called without the optional mode argument, the behavior is determined by the",
         "    lazyfree-lazy-user-flush configuration directive. Valid modes are:"},
        {"    When called without the optional mode argument, the behavior is determined",
         "     by the lazyfree-lazy-user-flush configuration directive. Valid modes are:",
         "SHOW <sha1>", "    Show a script from the scripts cache."}),
    "help.FUNCTION HELP": ({"    * Library description"}, set()),
}
KINDS = {"errors.": "error_text", "globals.": "availability", "function_globals.": "availability",
         "commands.": "availability", "script_commands.": "availability", "ordering.": "ordering",
         "help.": "reply", "pcall.": "reply"}


@pytest.fixture(scope="module")
def results(embedded_servers: dict[str, EmbeddedServer]) -> Iterator[dict[str, dict[str, Any]]]:
    """One run per embedded server (ours, so SCRIPT FLUSH is allowed), shared by the module."""
    out = {}
    for role, srv in embedded_servers.items():
        with redis.Redis(port=srv.port, socket_timeout=10) as conn:
            out[role] = lua_and_tx.run(conn, ScenarioOptions(prefix=PREFIX, allow_server_changes=True))
    yield out


def test_contract_and_sections(results: dict[str, dict[str, Any]]) -> None:
    for role, out in results.items():
        assert set(out) == {"scenario", "status", "detail", "metrics"}
        assert out["scenario"] == "lua_and_tx"
        assert (out["status"], out["detail"]) == ("OK", "completed"), role
        assert set(out["metrics"]) == SECTIONS, role
        assert set(out["metrics"]["watch"]) == set(lua_and_tx.WATCH_CASES)
        assert set(out["metrics"]["transactions"]) >= set(lua_and_tx.TRANSACTIONS)


def test_no_keys_and_no_library_left(results: dict[str, dict[str, Any]],
                                     embedded_servers: dict[str, EmbeddedServer]) -> None:
    for role, srv in embedded_servers.items():
        with redis.Redis(port=srv.port) as conn:
            assert scenario_keys(conn, PREFIX + "*") == [], role
            assert conn.execute_command("FUNCTION", "LIST", "LIBRARYNAME", LIB) == [], role
        assert results[role]["metrics"]["functions"]["FUNCTION DELETE own library"] == "OK"
        assert results[role]["metrics"]["functions"]["FUNCTION LIST after DELETE"] == []


def test_differences_are_exactly_these(results: dict[str, dict[str, Any]]) -> None:
    diffs = {d["path"]: d for d in diff_metrics("lua_and_tx", results["redis"]["metrics"],
                                                results["valkey"]["metrics"])}
    assert set(diffs) == set(EXPECTED) | set(LIST_DIFFERENCES)
    for path, (on_redis, on_valkey) in EXPECTED.items():
        assert (diffs[path]["values"]["redis"], diffs[path]["values"]["valkey"]) == (on_redis, on_valkey), path
    for path, (only_redis, only_valkey) in LIST_DIFFERENCES.items():
        left, right = set(diffs[path]["values"]["redis"]), set(diffs[path]["values"]["valkey"])
        assert (left - right, right - left) == (only_redis, only_valkey), path
    for path, record in diffs.items():
        expected_kind = next((k for p, k in KINDS.items() if path.startswith(p)), None)
        if expected_kind:
            assert record["kind"] == expected_kind, path


def test_versions_visible_to_scripts(results: dict[str, dict[str, Any]],
                                     embedded_servers: dict[str, EmbeddedServer]) -> None:
    """redis.REDIS_VERSION is the Redis version both claim (Valkey keeps 7.2.4 for compatibility)."""
    for role, srv in embedded_servers.items():
        with redis.Redis(port=srv.port) as conn:
            info = conn.info("server")
        globals_ = results[role]["metrics"]["globals"]
        major, minor, patch = (int(x) for x in info["redis_version"].split("."))
        assert globals_["redis.REDIS_VERSION"] == info["redis_version"] == "7.2.4"
        assert globals_["redis.REDIS_VERSION_NUM"] == (major << 16) | (minor << 8) | patch
        assert globals_["_VERSION"] == "Lua 5.1"
        assert results[role]["metrics"]["functions"]["FCALL version"] == ["7.2.4", 0x070204]
    assert results["valkey"]["metrics"]["globals"]["redis.VALKEY_VERSION"] == "9.0.0"


def test_script_cache_and_read_only(results: dict[str, dict[str, Any]]) -> None:
    sha = hashlib.sha1(lua_and_tx.CACHED_SCRIPT.encode()).hexdigest()
    for role, out in results.items():
        cache, flush, ro = (out["metrics"][s] for s in ("script_cache", "script_flush", "read_only"))
        assert cache["SCRIPT LOAD twice"] == sha
        assert cache["EVALSHA"] == cache["EVALSHA upper-case SHA1"] == "cached x"
        assert cache["SCRIPT EXISTS loaded, absent, upper-case"] == [1, 0, 1]
        assert [flush["SCRIPT EXISTS before"], flush["SCRIPT FLUSH"], flush["SCRIPT EXISTS after"]] == [
            [1], "OK", [0]]
        assert ro["EVAL_RO write"] == {
            "error": f"ERR Write commands are not allowed from read-only scripts. {LOC}"}
        assert ro["no-writes flag, write"]["error"].endswith("on @user_script:2.")  # shebang is line 1
        assert ro["value after refused writes"] == "v1"


def test_errors_raised_versus_caught(results: dict[str, dict[str, Any]]) -> None:
    for role, out in results.items():
        errors, pcall, replies = (out["metrics"][s] for s in ("errors", "pcall", "replies"))
        wrongtype = "ERR value is not an integer or out of range"
        assert errors["redis.call wrong type"] == {"error": f"{wrongtype} {LOC}"}
        assert errors["redis.pcall wrong type"] == {"error": wrongtype}  # returned as is, no location
        assert errors["error with a string"] == {"error": f"ERR user_script:1: boom {LOC}"}
        assert errors["error with an err table"] == {"error": f"TABLE boom {LOC}"}
        assert errors["error_reply"] == {"error": "My Error"}
        assert errors["error_reply with a leading dash"] == {"error": "My Error"}
        assert errors["error_reply empty"] == {"error": "ERR "}
        assert errors["status_reply"] == "FINE"
        assert errors["global write"] == {
            "error": f"ERR user_script:1: Attempt to modify a readonly table {LOC}"}
        assert errors["compile error"] == {
            "error": "ERR Error compiling script (new function): "
                     "user_script:1: unexpected symbol near '<eof>'"}
        assert pcall["redis.pcall error is a table with err"] == ["table", wrongtype]
        assert pcall["writes before an error stay"] == {"error": f"ERR user_script:1: after {LOC}"}
        assert pcall["value written before the error"] == "before"
        assert replies["table stops at first nil"] == [1, 2]
        assert replies["float is truncated"] == 3
        assert replies["false"] is None and replies["true"] == 1
        assert replies["mixed nested table"] == [1, {"error": "inner"}, "fine", "x", 2, 1, None]


def test_bundled_libraries(results: dict[str, dict[str, Any]]) -> None:
    for role, out in results.items():
        libs = out["metrics"]["libraries"]
        assert libs["cjson.encode empty table"] == "{}"
        assert libs["cjson.decode [] re-encoded"] == "{}"  # an empty array comes back as an object
        assert libs["cjson.encode 12345678901234567890"] == "1.2345678901235e+19"  # 14 significant digits
        assert libs["cjson.decode 2^53+1"] == "9.007199254741e+15"
        assert libs["cjson.encode sparse array"]["error"].startswith(
            "ERR user_script:1: Cannot serialise table: excessively sparse array")
        assert libs["cmsgpack round trip"] == [1, "two", [3]]
        assert libs["bit operations"][:5] == [15, 3, 6, -1, -2147483648]
        assert libs["struct round trip"] == [-5, 3]
        assert libs["redis.sha1hex"] == hashlib.sha1(b"abc").hexdigest()


def test_resp3_types_from_scripts(results: dict[str, dict[str, Any]]) -> None:
    for role, out in results.items():
        resp3 = out["metrics"]["resp3"]
        assert resp3["RESP2 connection: double"] == "$3.5"
        assert resp3["RESP3 connection: double"] == ",3.5"
        assert resp3["RESP3 connection: big_number"] == "(123456789012345678901234567890"
        assert resp3["RESP3 connection: map"] == {"%": [["$a", ":1"], ["$b", "$x"]]}
        assert resp3["RESP2 connection: map"] == {"*": ["$a", ":1", "$b", "$x"]}
        assert resp3["RESP3 connection: set"] == {"~": ["$a", "$b"]}
        assert resp3["RESP3 connection: verbatim_string"] == "=txt:hello"
        assert resp3["RESP3 connection: false"] == "_" and resp3["RESP2 connection: false"] == "$nil"
        assert resp3["RESP3 connection: setresp(3) ZSCORE"] == ",1.5"
        assert resp3["RESP2 connection: setresp(3) ZSCORE"] == "$1.5"
        assert resp3["RESP3 connection: setresp(3) values seen by Lua"] == {
            "*": ["$table", "$v", "$table", "$true", "$table", "$1.5", "$nil"]}
        exec3 = out["metrics"]["transactions"]["EXEC reply types, RESP3"][-1]
        assert exec3["*"][1:6] == [{"%": [["$f", "$v"]]}, {"~": []}, ":1", ",1.5", "_"]


def test_transactions_and_watch(results: dict[str, dict[str, Any]]) -> None:
    for role, out in results.items():
        tx, watch = out["metrics"]["transactions"], out["metrics"]["watch"]
        assert list(tx["MULTI SET INCR GET EXEC"].values())[-1] == ["OK", 2, "2"]
        abort = tx["EXECABORT after unknown command"]
        assert abort["#3 NOSUCHCMD"] == {
            "error": "ERR unknown command 'NOSUCHCMD', with args beginning with: "}
        assert abort["#4 EXEC"] == {"error": "EXECABORT Transaction discarded because of previous errors."}
        assert abort["#5 GET t"] == "2"
        assert tx["runtime error inside EXEC"]["#6 EXEC"] == [
            "OK", {"error": "ERR value is not an integer or out of range"},
            {"error": "WRONGTYPE Operation against a key holding the wrong kind of value"}, "abc"]
        assert tx["DISCARD"]["#3 DISCARD"] == "OK"
        assert tx["EXEC without MULTI"] == {"#1 EXEC": {"error": "ERR EXEC without MULTI"}}
        aborted = {label for label, replies in watch.items() if replies[-1] is None}
        assert aborted == {"changed by another connection", "same value written by another connection",
                           "TTL set by another connection", "missing key created by another connection",
                           "written by own connection before MULTI", "watched key expires before EXEC"}, role
        assert all(replies[-1] == ["PONG"] for label, replies in watch.items() if label not in aborted)


def test_default_options_skip_script_flush_with_warn(client: redis.Redis) -> None:
    """On a server the tool may not disturb, SCRIPT FLUSH is skipped: other scripts stay cached."""
    sha = client.script_load("return 'a script of another client'")
    out = lua_and_tx.run(client)
    assert out["status"] == "WARN"
    assert out["detail"].startswith("SCRIPT FLUSH skipped: it changes server-wide state")
    assert "script_flush" not in out["metrics"]
    assert client.script_exists(sha) == [True]


def test_same_binary_gives_identical_metrics(fresh_server: Any) -> None:
    for role in config.ROLES:
        runs = run_on_two_processes(fresh_server, role, lua_and_tx.run, ScenarioOptions(allow_server_changes=True))
        assert runs[0]["status"] == runs[1]["status"] == "OK", role
        assert diff_metrics("lua_and_tx", runs[0]["metrics"], runs[1]["metrics"]) == [], role
        assert runs[0]["metrics"] == runs[1]["metrics"], role


def test_error_table_without_err_crashes_redis_not_valkey(fresh_server: Any) -> None:
    """Why the scenario never sends error({}): Redis 7.2.4 dies of SIGSEGV, Valkey answers."""
    quick_crash = ("--crash-memcheck-enabled", "no")  # skip the crash report's memory test
    valkey = fresh_server(config.CANDIDATE)
    with redis.Redis(port=valkey.port, socket_timeout=10) as conn:
        with pytest.raises(redis.ResponseError) as caught:
            conn.eval("error({})", 0)
    assert str(caught.value).startswith("unknown error script: ")  # redis-py drops the "ERR " code
    srv = fresh_server(config.BASELINE, extra_args=quick_crash)
    with redis.Redis(port=srv.port, socket_timeout=10, retry_on_error=[]) as conn:
        with pytest.raises(redis.ConnectionError):
            conn.eval("error({})", 0)
    deadline = time.monotonic() + 10
    while srv.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not srv.alive()
    assert "crashed by signal: 11" in srv.log_path.read_text(errors="replace")
