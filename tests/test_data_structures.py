"""data_structures against the real embedded servers: contract and shape, encodings at every threshold,
every difference between Redis 7.2.4 and Valkey 9.0.0 with its value on each side, same-binary
determinism, the CONFIG-refused fallback, and cleanup.

The scenario runs once per server for this module (module fixture); the tests assert on that result.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from app import config
from app.compare import diff_metrics
from app.config import ScenarioOptions
from app.scenarios import data_structures as ds
from tests.conftest import run_on_two_processes, scenario_keys

# As long as a default run prefix ("rvc:" + 8 hex + ":"): Valkey 9 embeds the key name in the value
# object, so MEMORY USAGE depends on the key length and the exact values below need this length.
PREFIX = "rvc:dstest01:"
assert len(PREFIX) == len(config.new_run_prefix())

SECTIONS = {"config", "replies", "errors", "ordering", "encodings", "memory_usage", "memory_usage_varying",
            "commands"}
TYPES = ("list", "set", "hash", "zset", "stream", "bitmap", "hll", "geo", "resp3")

# Defaults both embedded servers report (CONFIG GET), recorded in the "config" section.
THRESHOLDS = {
    "list-max-listpack-size": "-2", "list-compress-depth": "0",
    "hash-max-listpack-entries": "512", "hash-max-listpack-value": "64",
    "set-max-intset-entries": "512", "set-max-listpack-entries": "128", "set-max-listpack-value": "64",
    "zset-max-listpack-entries": "128", "zset-max-listpack-value": "64",
    "stream-node-max-bytes": "4096", "stream-node-max-entries": "100", "hll-sparse-max-bytes": "3000",
}

# OBJECT ENCODING (and probe results) on both sides of every threshold: identical on both servers.
ENCODINGS = {
    "list: 1 short element": "listpack",
    "list: 1 element larger than a node": "quicklist",
    "list: 64-byte elements pushed one by one until not listpack": 123,
    "list: one element before the conversion": "listpack",
    "list: at the conversion": "quicklist",
    # one RPUSH estimates the size from the raw arguments, so the same list stays a listpack
    "list: conversion size pushed by one RPUSH": "listpack",
    "list: twice the conversion size": "quicklist",
    "list: twice the conversion size trimmed to 1 element": "listpack",
    "list: conversion size with a quarter popped": "quicklist",
    "list: conversion size with three quarters popped": "listpack",
    "hash: hash-max-listpack-entries fields": "listpack",
    "hash: hash-max-listpack-entries + 1 fields": "hashtable",
    "hash: value of hash-max-listpack-value bytes": "listpack",
    "hash: value of hash-max-listpack-value + 1 bytes": "hashtable",
    "hash: field name of hash-max-listpack-value + 1 bytes": "hashtable",
    "hash: hash-max-listpack-entries + 1 fields shrunk to 1": "hashtable",
    "set: set-max-intset-entries integers": "intset",
    "set: set-max-intset-entries + 1 integers": "hashtable",
    "set: set-max-listpack-entries strings": "listpack",
    "set: set-max-listpack-entries + 1 strings": "hashtable",
    "set: member of set-max-listpack-value bytes": "listpack",
    "set: member of set-max-listpack-value + 1 bytes": "hashtable",
    "set: 3 integers then a string": "listpack",
    "set: min(set-max-intset-entries, set-max-listpack-entries + 1) integers then a string": "hashtable",
    "set: integer beyond 64 bits": "listpack",
    "set: smallest 64-bit integer": "intset",
    "set: integer with a leading zero": "listpack",
    "set: set-max-listpack-entries + 1 strings shrunk to 1": "hashtable",
    "set: SINTERSTORE of set-max-intset-entries + 1 integers with itself": "hashtable",
    "set: SDIFFSTORE leaving set-max-listpack-entries integers": "hashtable",
    "zset: zset-max-listpack-entries members": "listpack",
    "zset: zset-max-listpack-entries + 1 members": "skiplist",
    "zset: member of zset-max-listpack-value bytes": "listpack",
    "zset: member of zset-max-listpack-value + 1 bytes": "skiplist",
    "zset: zset-max-listpack-entries + 1 members shrunk to 1": "skiplist",
    "zset: ZUNIONSTORE of zset-max-listpack-entries members": "listpack",
    "zset: ZRANGESTORE of 1 member": "listpack",
    "stream: stream-node-max-entries entries": "stream",
    "stream: stream-node-max-entries entries: listpack nodes (radix-tree-keys)": 1,
    "stream: stream-node-max-entries + 1 entries": "stream",
    "stream: stream-node-max-entries + 1 entries: listpack nodes (radix-tree-keys)": 2,
    "hll: distinct elements added one by one until dense": 1684,
    "hll: bytes once dense": 12304,
    "hll: PFDEBUG ENCODING once dense": "dense",
    "hll: 1 element (sparse)": "raw",
    "hll: bytes with 1 element (sparse)": 21,
    "hll: just dense": "raw",
}

# Commands Valkey 9.0.0 lists in COMMAND LIST and Redis 7.2.4 does not (none the other way round).
VALKEY_ONLY_COMMANDS = (
    "client|capa", "client|import-source", "cluster|cancelslotmigrations", "cluster|flushslot",
    "cluster|getslotmigrations", "cluster|migrateslots", "cluster|slot-stats", "cluster|syncslots",
    "commandlog", "commandlog|get", "commandlog|help", "commandlog|len", "commandlog|reset", "delifeq",
    "hexpire", "hexpireat", "hexpiretime", "hgetex", "hpersist", "hpexpire", "hpexpireat", "hpexpiretime",
    "hpttl", "hsetex", "httl", "script|show",
)


def _unknown(command: str, args: str) -> dict[str, str]:
    return {"error": f"ERR unknown command '{command}', with args beginning with: {args} "}


# Every difference the scenario reports between the embedded servers: path -> (redis, valkey).
REPLY_DIFFERENCES: dict[str, tuple[Any, Any]] = {
    # Valkey accepts BITCOUNT with a start and no end
    "errors.bitmap: BITCOUNT with start but no end": ({"error": "ERR syntax error"}, 2),
    "errors.geo: GEOSEARCH missing member": ({"error": "ERR could not decode requested zset member"},
                                             {"error": "ERR member Nowhere does not exist"}),
    "errors.geo: GEORADIUSBYMEMBER missing member": ({"error": "ERR could not decode requested zset member"},
                                                     {"error": "ERR member Nowhere does not exist"}),
}
MEMORY_DIFFERENCES: dict[str, tuple[Any, Any]] = {
    "memory_usage.list: 1 short element": (104, 96),
    "memory_usage.list: 1 element larger than a node": (10408, 8352),
    "memory_usage.list: one element before the conversion": (8280, 8256),
    "memory_usage.list: at the conversion": (8480, 8464),
    "memory_usage.list: conversion size pushed by one RPUSH": (10328, 8320),
    "memory_usage.list: twice the conversion size": (16792, 16752),
    "memory_usage.list: twice the conversion size trimmed to 1 element": (168, 160),
    "memory_usage.list: conversion size with a quarter popped": (7336, 6400),
    "memory_usage.list: conversion size with three quarters popped": (2648, 2160),
    "memory_usage.hash: hash-max-listpack-entries fields": (5208, 4464),
    "memory_usage.hash: value of hash-max-listpack-value bytes": (168, 160),
    "memory_usage.set: set-max-intset-entries integers": (1368, 1104),
    "memory_usage.set: set-max-listpack-entries strings": (856, 752),
    "memory_usage.set: member of set-max-listpack-value bytes": (168, 160),
    "memory_usage.set: 3 integers then a string": (112, 96),
    "memory_usage.set: integer beyond 64 bits": (120, 112),
    "memory_usage.set: smallest 64-bit integer": (104, 96),
    "memory_usage.set: integer with a leading zero": (104, 96),
    "memory_usage.zset: zset-max-listpack-entries members": (1112, 1008),
    "memory_usage.zset: member of zset-max-listpack-value bytes": (168, 160),
    "memory_usage.zset: ZUNIONSTORE of zset-max-listpack-entries members": (1112, 1008),
    "memory_usage.zset: ZRANGESTORE of 1 member": (104, 96),
    "memory_usage.stream: stream-node-max-entries entries": (4768, 4360),
    "memory_usage.stream: stream-node-max-entries + 1 entries": (6552, 5536),
    "memory_usage.hll: 1 element (sparse)": (136, 128),
    "memory_usage.hll: just dense": (14424, 12384),
}
COMMAND_DIFFERENCES: dict[str, tuple[Any, Any]] = {
    "commands.HEXPIRE 100 FIELDS 2": (_unknown("HEXPIRE", "'{p}cmd:h' '100' 'FIELDS' '2' 'f1' 'nope'"), [1, -2]),
    "commands.HPEXPIRE NX": (_unknown("HPEXPIRE", "'{p}cmd:h' '100000' 'NX' 'FIELDS' '1' 'f1'"), [0]),
    "commands.HEXPIREAT far future": (_unknown("HEXPIREAT", "'{p}cmd:h' '4102444800' 'FIELDS' '1' 'f2'"), [1]),
    "commands.HPEXPIREAT past deletes field": (_unknown("HPEXPIREAT", "'{p}cmd:h' '1000' 'FIELDS' '1' 'f3'"),
                                               [2]),
    "commands.HTTL": (_unknown("HTTL", "'{p}cmd:h' 'FIELDS' '3' 'f1' 'f3' 'nope'"), [100, -2, -2]),
    "commands.HEXPIRETIME": (_unknown("HEXPIRETIME", "'{p}cmd:h' 'FIELDS' '1' 'f2'"), [4102444800]),
    "commands.HPEXPIRETIME": (_unknown("HPEXPIRETIME", "'{p}cmd:h' 'FIELDS' '1' 'f2'"), [4102444800000]),
    "commands.HPTTL no expiry field": (_unknown("HPTTL", "'{p}cmd:h' 'FIELDS' '1' 'nope'"), [-2]),
    "commands.HPERSIST": (_unknown("HPERSIST", "'{p}cmd:h' 'FIELDS' '2' 'f1' 'f2'"), [1, 1]),
    "commands.HSETEX EX FIELDS": (_unknown("HSETEX", "'{p}cmd:h' 'EX' '100' 'FIELDS' '1' 'f4' 'v4'"), 1),
    "commands.HSETEX FNX": (_unknown("HSETEX", "'{p}cmd:h' 'FNX' 'FIELDS' '1' 'f4' 'x'"), 0),
    "commands.HGETEX PERSIST": (_unknown("HGETEX", "'{p}cmd:h' 'PERSIST' 'FIELDS' '2' 'f4' 'nope'"),
                                ["v4", None]),
    "commands.HGETEX EX": (_unknown("HGETEX", "'{p}cmd:h' 'EX' '50' 'FIELDS' '1' 'f1'"), ["v1"]),
    "commands.HGETALL after field expiry commands": ([["f1", "v1"], ["f2", "v2"], ["f3", "v3"]],
                                                     [["f1", "v1"], ["f2", "v2"], ["f4", "v4"]]),
    # Valkey keeps a hash with field TTLs in a hashtable even when it is small
    "commands.OBJECT ENCODING of a hash with field TTLs": ("listpack", "hashtable"),
    "commands.SET IFEQ matching": ({"error": "ERR syntax error"}, "OK"),
    "commands.SET IFEQ not matching": ({"error": "ERR syntax error"}, None),
    "commands.SET IFEQ GET": ({"error": "ERR syntax error"}, "v2"),
    "commands.GET after SET IFEQ": ("v1", "v4"),
    "commands.DELIFEQ not matching": (_unknown("DELIFEQ", "'{p}cmd:s' 'nope'"), 0),
    "commands.DELIFEQ missing key": (_unknown("DELIFEQ", "'{p}missing' 'v'"), 0),
    "commands.DELIFEQ matching": (_unknown("DELIFEQ", "'{p}cmd:s' 'v5'"), 1),
    "commands.XREAD last entry with +": ({"error": "ERR Invalid stream ID specified as stream command argument"},
                                         [["{p}cmd:x", [["1-2", ["f", "w"]]]]]),
    "commands.GEOSEARCH BYPOLYGON": ({"error": "ERR syntax error"},
                                     [["Palermo", "56987.4933"], ["Catania", "111411.0839"]]),
    "commands.COMMANDLOG LEN slow": (_unknown("COMMANDLOG", "'LEN' 'slow'"), "an integer"),
    "commands.COMMANDLOG GET 0 large-reply": (_unknown("COMMANDLOG", "'GET' '0' 'large-reply'"), []),
    "commands.CLUSTER SLOT-STATS": ({"error": "ERR unknown subcommand 'SLOT-STATS'. Try CLUSTER HELP."},
                                    {"error": "ERR This instance has cluster support disabled"}),
    "commands.SCRIPT SHOW unknown sha": ({"error": "ERR unknown subcommand 'SHOW'. Try SCRIPT HELP."},
                                         {"error": "NOSCRIPT No matching script."}),
    "commands.COMMAND COUNT": (241, 254),
    **{f"commands.COMMAND LIST.{name}": (None, True) for name in VALKEY_ONLY_COMMANDS},
    "commands.COMMAND DOCS set.argument condition": ("oneof flags=optional since=2.6.12", "oneof flags=optional"),
    "commands.COMMAND DOCS set.argument condition.nx": ("pure-token token=NX", "pure-token token=NX since=2.6.12"),
    "commands.COMMAND DOCS set.argument condition.xx": ("pure-token token=XX", "pure-token token=XX since=2.6.12"),
    "commands.COMMAND DOCS set.history 8.1.0": (None, "Added the `IFEQ` option."),
    "commands.COMMAND DOCS set.argument condition.comparison-value": (None, "string token=IFEQ since=8.1.0"),
    "commands.COMMAND DOCS geosearch.summary": (
        "Queries a geospatial index for members inside an area of a box or a circle.",
        "Queries a geospatial index for members inside an area of a box, circle, or a polygon."),
    "commands.COMMAND DOCS geosearch.argument from": ("oneof", "oneof flags=optional"),
    "commands.COMMAND DOCS geosearch.history 9.0.0": (None, "Added support for the BYPOLYGON option."),
    "commands.COMMAND DOCS geosearch.argument by.polygon": (None, "block since=9.0.0"),
    "commands.COMMAND DOCS geosearch.argument by.polygon.num-vertices": (None, "integer token=BYPOLYGON"),
    "commands.COMMAND DOCS geosearch.argument by.polygon.vertices": (None, "block flags=multiple"),
    "commands.COMMAND DOCS geosearch.argument by.polygon.vertices.longitude": (None, "double"),
    "commands.COMMAND DOCS geosearch.argument by.polygon.vertices.latitude": (None, "double"),
}
EXPECTED_DIFFERENCES = {**REPLY_DIFFERENCES, **MEMORY_DIFFERENCES, **COMMAND_DIFFERENCES}


@pytest.fixture(scope="module")
def results(embedded_servers: dict) -> dict[str, dict[str, Any]]:
    """One run per embedded server, with its duration in seconds under "_elapsed"."""
    out: dict[str, dict[str, Any]] = {}
    for role, srv in embedded_servers.items():
        with redis.Redis(host="127.0.0.1", port=srv.port, socket_timeout=10) as conn:
            started = time.monotonic()
            out[role] = ds.run(conn, ScenarioOptions(prefix=PREFIX))
            out[role]["_elapsed"] = time.monotonic() - started
    return out


@pytest.fixture(scope="module")
def differences(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = diff_metrics(ds.NAME, results["redis"]["metrics"], results["valkey"]["metrics"])
    return {d["path"]: d for d in found}


@pytest.fixture(params=config.ROLES)
def metrics(request: pytest.FixtureRequest, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return results[request.param]["metrics"]


# --- contract and shape ----------------------------------------------------------------------------

@pytest.mark.parametrize("role", config.ROLES)
def test_contract_status_and_speed(results: dict[str, dict[str, Any]], role: str) -> None:
    out = results[role]
    assert {"scenario", "status", "detail", "metrics"} <= set(out)
    assert out["scenario"] == "data_structures"
    assert out["status"] == "OK", out["detail"]
    assert set(out["metrics"]) == SECTIONS
    assert out["_elapsed"] < 5.0


def test_every_type_has_replies_and_errors(metrics: dict[str, Any]) -> None:
    for kind in TYPES:
        assert any(label.startswith(f"{kind}: ") for label in metrics["replies"]), kind
    for kind in TYPES[:-1]:
        assert any(label.startswith(f"{kind}: ") for label in metrics["errors"]), kind
    # Every provoked error is an error reply, except the one Valkey accepts (a difference below).
    not_errors = [label for label, v in metrics["errors"].items() if not (isinstance(v, dict) and "error" in v)]
    assert not_errors in ([], ["bitmap: BITCOUNT with start but no end"])


def test_config_section_holds_the_thresholds(metrics: dict[str, Any]) -> None:
    assert metrics["config"] == THRESHOLDS


def test_replies_are_raw_resp2_with_resp3_apart(metrics: dict[str, Any]) -> None:
    replies, errors = metrics["replies"], metrics["errors"]
    assert replies["list: LPOS with RANK -1"] == 4
    assert replies["list: LPOS COUNT 0"] == [2, 4]
    assert replies["list: LMPOP 2 keys LEFT COUNT 5"] == ["{p}src", ["2", "3"]]
    assert replies["zset: ZSCORE float"] == "0.30000000000000004"  # RESP2: a bulk string
    assert replies["resp3: ZSCORE"] == 0.1  # RESP3: a double
    assert replies["resp3: ZSCORE inf"] == "inf"
    assert replies["resp3: HGETALL (map)"] == {"f": "v", "g": "w"}
    assert replies["zset: ZRANGE scores formatting"][-2:] == ["f", "1.7976931348623157e+308"]
    assert replies["hash: HINCRBYFLOAT 10.5 + 0.1"] == "10.6"
    assert replies["stream: XPENDING extended (idle dropped)"] == [["1-2", "c1", 2], ["1-3", "c2", 1]]
    assert replies["stream: XINFO CONSUMERS (idle dropped)"][0] == {"name": "c1", "pending": 0}
    assert replies["set: SRANDMEMBER -10 (reply size)"] == 10
    assert replies["hll: PFCOUNT 20000 distinct"] == 19721
    assert replies["geo: GEODIST km"] == "166.2742"
    # "10" has no weight key, so it sorts first with weight 0
    assert replies["list: SORT BY weights GET # GET other"] == ["10", None, "3", None, "2", "two", "1", None]
    assert errors["list: LPOS RANK 0"]["error"].startswith("ERR RANK can't be zero")
    assert errors["stream: XGROUP CREATE existing"] == {"error": "BUSYGROUP Consumer Group name already exists"}
    assert errors["hll: PFCOUNT on a non-HLL string"] == {"error": "WRONGTYPE Key is not a valid HyperLogLog "
                                                                   "string value."}


def test_ordering_of_small_encodings(metrics: dict[str, Any]) -> None:
    order = metrics["ordering"]
    assert order["hash (listpack): HKEYS"] == ["zeta", "alpha", "mid"]  # insertion order
    assert order["set (listpack): SMEMBERS"] == ["zeta", "alpha", "mid"]
    assert order["set (intset): SMEMBERS"] == ["-5", "7", "10", "30"]  # numeric order
    assert order["zset: equal scores in lexical order"] == ["a", "b", "c"]


# --- encodings and memory --------------------------------------------------------------------------

def test_encodings_on_both_sides_of_every_threshold(metrics: dict[str, Any]) -> None:
    assert metrics["encodings"] == ENCODINGS


def test_memory_usage_is_recorded_for_every_shape(metrics: dict[str, Any]) -> None:
    shapes = {label for label, value in ENCODINGS.items() if isinstance(value, str) and "PFDEBUG" not in label}
    exact, varying = metrics["memory_usage"], metrics["memory_usage_varying"]
    assert set(exact) | set(varying) == shapes | {"mem_allocator"}
    assert all(isinstance(v, int) and v > 0 for k, v in exact.items() if k != "mem_allocator")
    assert all(0 < v["min"] <= v["max"] for v in varying.values())
    # seed-dependent layouts only: the hashtable and skiplist shapes
    assert set(varying) == {label for label in shapes if ENCODINGS[label] in ("hashtable", "skiplist")}


# --- the differences between Redis 7.2 and Valkey 9.0 ----------------------------------------------

@pytest.mark.parametrize("expected", [REPLY_DIFFERENCES, MEMORY_DIFFERENCES, COMMAND_DIFFERENCES],
                         ids=["replies-and-errors", "memory", "commands"])
def test_each_difference_with_its_value_on_each_side(differences: dict[str, dict[str, Any]],
                                                     expected: dict[str, tuple[Any, Any]]) -> None:
    found = {path: (d["values"]["redis"], d["values"]["valkey"]) for path, d in differences.items() if path in expected}
    assert found == expected


def test_no_other_difference(differences: dict[str, dict[str, Any]]) -> None:
    assert sorted(set(differences) - set(EXPECTED_DIFFERENCES)) == []


def test_difference_kinds(differences: dict[str, dict[str, Any]]) -> None:
    kinds = {path: d["kind"] for path, d in differences.items()}
    assert kinds["errors.geo: GEOSEARCH missing member"] == "error_text"
    assert kinds["memory_usage.list: 1 short element"] == "memory"
    assert kinds["commands.COMMAND LIST.hexpire"] == "availability"
    assert kinds["commands.SET IFEQ matching"] == "availability"
    assert differences["commands.COMMAND LIST.hexpire"]["missing_on"] == "redis"
    assert not any(path.startswith("memory_usage_varying") for path in differences)


def test_commands_tried_on_neither_server_stay_unknown(metrics: dict[str, Any]) -> None:
    """Commands of later Redis versions (8.x) exist on neither embedded server: no difference, but recorded."""
    for label in ("HGETDEL", "DELEX IFEQ", "DIGEST", "MSETEX", "XDELEX", "XACKDEL", "VADD (vector sets)"):
        assert metrics["commands"][label]["error"].startswith("ERR unknown command"), label
    assert metrics["commands"]["BITOP DIFF"] == {"error": "ERR syntax error"}


# --- determinism, fallback, cleanup ----------------------------------------------------------------

@pytest.mark.parametrize("role", config.ROLES)
def test_two_processes_of_one_binary_give_no_difference(fresh_server: Any, role: str) -> None:
    runs = run_on_two_processes(fresh_server, role, ds.run)  # default options: random prefix, default length
    assert [r["status"] for r in runs] == ["OK", "OK"], [r["detail"] for r in runs]
    assert diff_metrics(ds.NAME, runs[0]["metrics"], runs[1]["metrics"]) == []
    compared = [{k: v for k, v in r["metrics"].items() if k != "memory_usage_varying"} for r in runs]
    assert compared[0] == compared[1]


@pytest.fixture
def config_refused_client(fresh_server: Any) -> Iterator[redis.Redis]:
    """A user on a fresh Valkey who may run everything except CONFIG (as on many managed services)."""
    srv = fresh_server(config.CANDIDATE)
    with redis.Redis(host="127.0.0.1", port=srv.port) as admin:
        admin.execute_command("ACL", "SETUSER", "noconfig", "on", ">pw", "~*", "&*", "+@all", "-config")
    with redis.Redis(host="127.0.0.1", port=srv.port, username="noconfig", password="pw",
                     socket_timeout=10) as conn:
        yield conn


def test_config_refused_falls_back_to_documented_defaults(config_refused_client: redis.Redis,
                                                          results: dict[str, dict[str, Any]]) -> None:
    out = ds.run(config_refused_client)
    assert out["status"] == "WARN"
    assert "documented defaults" in out["detail"] and "NOPERM" in out["detail"]
    refused = out["metrics"]["config"]["hash-max-listpack-entries"]
    assert refused["error"].startswith("NOPERM")
    # the documented defaults equal the real ones here, so the encodings are the same as with CONFIG
    assert out["metrics"]["encodings"] == results[config.CANDIDATE]["metrics"]["encodings"]
    assert scenario_keys(config_refused_client, "rvc:*") == []


def test_leaves_no_keys_behind(results: dict[str, dict[str, Any]], embedded_servers: dict) -> None:
    for srv in embedded_servers.values():
        with redis.Redis(host="127.0.0.1", port=srv.port) as conn:
            assert scenario_keys(conn, PREFIX + "*") == []
