"""scan_and_iter against the real embedded servers: contract and shape, SCAN's guarantees on both,
every difference between Redis 7.2.4 and Valkey 9.0.0 with its value on each side, same-binary
determinism, cleanup, and foreign keys left alone.

The scenario runs once per server for this module (module fixture); the tests assert on that result.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from app import config
from app.compare import diff_metrics
from app.config import ScenarioOptions
from app.scenarios import scan_and_iter as si
from tests.conftest import run_on_two_processes, scenario_keys

PREFIX = "rvc:scantest:"
SECTIONS = {"encodings", "completeness", "measured", "replies", "type_filter", "commands", "errors",
            "cursors", "keys_vs_scan", "ordering", "mutation"}
# Keys of someone else, seeded before the runs: they must survive and never appear in an iteration.
FOREIGN = {f"foreign:scan:{n}": str(n) for n in range(200)}

LISTPACK_HASH = ["0", [["f0", "0"], ["f1", "1"], ["f2", "2"], ["f3", "3"], ["f4", "4"]]]
INVALID_CURSOR = {"error": "ERR invalid cursor"}

# Every difference the scenario reports between the embedded Redis 7.2.4 and Valkey 9.0.0:
# path -> (kind, Redis value, Valkey value).
EXPECTED_DIFFERENCES: dict[str, tuple[str, Any, Any]] = {
    # Valkey rejects an unknown type name; Redis 7.2 silently matches nothing.
    "type_filter.SCAN TYPE bogus": ("reply", [], {"error": "ERR unknown type name 'bogus'"}),
    "type_filter.SCAN TYPE none": ("reply", [], {"error": "ERR unknown type name 'none'"}),
    # HSCAN NOVALUES and ZSCAN NOSCORES exist on Valkey 9 only.
    "commands.HSCAN small hash NOVALUES": ("availability", {"error": "ERR syntax error"},
                                           ["0", ["f0", "f1", "f2", "f3", "f4"]]),
    "commands.ZSCAN small zset NOSCORES": ("availability", {"error": "ERR syntax error"},
                                           ["0", ["m0", "m1", "m2", "m3", "m4"]]),
    "commands.HSCAN large hash NOVALUES": ("availability", {"error": "ERR syntax error"},
                                           {"expected": 2000, "missing": 0, "foreign": 0, "final_cursor": "0"}),
    "commands.ZSCAN large zset NOSCORES": ("availability", {"error": "ERR syntax error"},
                                           {"expected": 2000, "missing": 0, "foreign": 0, "final_cursor": "0"}),
    "errors.SSCAN NOVALUES": ("error_text", {"error": "ERR syntax error"},
                              {"error": "ERR NOVALUES option can only be used in HSCAN"}),
    "errors.SCAN NOVALUES": ("error_text", {"error": "ERR syntax error"},
                             {"error": "ERR NOVALUES option can only be used in HSCAN"}),
    "errors.HSCAN NOSCORES": ("error_text", {"error": "ERR syntax error"},
                              {"error": "ERR NOSCORES option can only be used in ZSCAN"}),
    "errors.ZSCAN NOVALUES": ("error_text", {"error": "ERR syntax error"},
                              {"error": "ERR NOVALUES option can only be used in HSCAN"}),
    # Cursor parsing: Redis 7.2 (strtoul) takes "-1" and "", Valkey 9 takes a leading space.
    "cursors.HSCAN listpack hash cursor '-1'": ("reply", LISTPACK_HASH, INVALID_CURSOR),
    "cursors.SCAN cursor '-1'": ("reply", "accepted", INVALID_CURSOR),
    "cursors.HSCAN listpack hash cursor ''": ("reply", LISTPACK_HASH, INVALID_CURSOR),
    "cursors.SCAN cursor ''": ("reply", "accepted", INVALID_CURSOR),
    "cursors.HSCAN listpack hash cursor ' 1'": ("reply", INVALID_CURSOR, LISTPACK_HASH),
    "cursors.SCAN cursor ' 1'": ("reply", INVALID_CURSOR, "accepted"),
    # Valkey 9's hashtable returns a small table (one bucket chain) in insertion order.
    "ordering.HSCAN 8-element hashtable hash": ("ordering", "hash order", "insertion order"),
    "ordering.SSCAN 8-element hashtable set": ("ordering", "hash order", "insertion order"),
    "ordering.ZSCAN 8-element skiplist zset": ("ordering", "hash order", "insertion order"),
}


@pytest.fixture(scope="module")
def results(embedded_servers: dict) -> Iterator[dict[str, dict[str, Any]]]:
    out = {}
    for role, srv in embedded_servers.items():
        with redis.Redis(port=srv.port) as conn:
            conn.mset(FOREIGN)
            # As on a server the tool started (foreign keys here only test that MATCH keeps them out).
            out[role] = si.run(conn, ScenarioOptions(prefix=PREFIX, server_is_owned=True))
    yield out
    for srv in embedded_servers.values():
        with redis.Redis(port=srv.port) as conn:
            conn.delete(*FOREIGN)


def test_contract_and_shape(results: dict) -> None:
    for role, out in results.items():
        assert set(out) == {"scenario", "status", "detail", "metrics"}
        assert out["scenario"] == "scan_and_iter"
        assert out["status"] == "OK", (role, out["detail"])
        assert set(out["metrics"]) == SECTIONS, role
        for label, value in out["metrics"]["measured"].items():
            assert value["round_trips"] >= 1 and value["duplicates"] >= 0, (role, label)


def test_every_iteration_is_complete_on_both(results: dict) -> None:
    """Every element returned at least once, nothing foreign (the foreign:* keys included), cursor "0"."""
    for role, out in results.items():
        completeness = out["metrics"]["completeness"]
        full = [v for k, v in completeness.items() if isinstance(v, dict)]
        assert len(full) > 40, role
        for label, value in completeness.items():
            if isinstance(value, dict):
                assert value["missing"] == 0 and value["foreign"] == 0, (role, label, value)
                assert value["final_cursor"] == "0", (role, label)
        # own keys: 3000 strings, 6 typed keys, 10 collections
        assert completeness["SCAN MATCH {p}* COUNT 10"]["expected"] == 3016
        assert completeness["SCAN MATCH {p}k:1* COUNT 100"]["expected"] == 1111
        assert completeness["SCAN TYPE string"]["expected"] == 3001
        # a listpack/intset collection comes back whole in one call, whatever COUNT says
        for label in ("HSCAN small hash", "SSCAN small set", "SSCAN intset", "ZSCAN small zset"):
            assert completeness[f"{label} COUNT 1: round trips"] == 1, (role, label)


def test_cursors_matter_on_large_collections(results: dict) -> None:
    """The large collections are hashtable/skiplist, so COUNT 10 takes many calls (measured, not compared)."""
    for role, out in results.items():
        encodings, measured = out["metrics"]["encodings"], out["metrics"]["measured"]
        assert encodings["large hash"] == encodings["large set"] == "hashtable"
        assert encodings["large zset"] == "skiplist"
        assert (encodings["small hash"], encodings["intset"]) == ("listpack", "intset")
        for label in ("HSCAN large hash COUNT 10", "SSCAN large set COUNT 10", "ZSCAN large zset COUNT 10"):
            assert 100 <= measured[label]["round_trips"] <= 400, (role, label, measured[label])
        assert 150 <= measured["SCAN MATCH {p}* COUNT 10"]["round_trips"] <= 400, role


def test_scan_guarantees_hold_while_keys_change(results: dict) -> None:
    for role, out in results.items():
        mutation = out["metrics"]["mutation"]
        assert set(mutation) == {"SCAN while adding and deleting", "HSCAN while adding and deleting",
                                 "SSCAN while adding and deleting", "ZSCAN while adding and deleting",
                                 "SCAN while 95% of keys are deleted"}
        for label, value in mutation.items():
            assert value["stable elements missed"] == 0 and value["foreign elements"] == 0, (role, label)
            assert value["final_cursor"] == "0"
        assert mutation["SCAN while adding and deleting"]["stable elements"] == 1500
        assert mutation["SCAN while 95% of keys are deleted"]["stable elements"] == 250


def test_keys_returns_the_same_set_as_scan(results: dict) -> None:
    for out in results.values():
        keys_vs_scan = out["metrics"]["keys_vs_scan"]
        assert keys_vs_scan["{p}*"] == {"KEYS count": 3016, "same set as SCAN": True}
        assert keys_vs_scan["{p}k:?"] == {"KEYS count": 10, "same set as SCAN": True}
        assert keys_vs_scan["KEYS {p}t:*"] == ["{p}t:hash", "{p}t:list", "{p}t:set", "{p}t:stream",
                                               "{p}t:string", "{p}t:zset"]


def test_orders_both_servers_share(results: dict) -> None:
    for out in results.values():
        ordering = out["metrics"]["ordering"]
        assert ordering["HSCAN small hash"] == "insertion order"
        assert ordering["SSCAN small set"] == "insertion order"
        assert ordering["SSCAN intset"] == "numeric"
        assert ordering["ZSCAN small zset"] == "by score"
        assert ordering["HSCAN large hash"] == ordering["SCAN keyspace"] == ordering["KEYS"] == "hash order"


def test_differences_are_exactly_the_known_ones(results: dict) -> None:
    found = diff_metrics(si.NAME, results["redis"]["metrics"], results["valkey"]["metrics"])
    by_path = {d["path"]: d for d in found}
    assert set(by_path) == set(EXPECTED_DIFFERENCES)
    for path, (kind, redis_value, valkey_value) in EXPECTED_DIFFERENCES.items():
        record = by_path[path]
        assert (record["kind"], record["values"]["redis"], record["values"]["valkey"]) == (kind, redis_value, valkey_value), path


def test_leaves_no_keys_and_spares_foreign_ones(results: dict, embedded_servers: dict) -> None:
    for srv in embedded_servers.values():
        with redis.Redis(port=srv.port, decode_responses=True) as conn:
            assert scenario_keys(conn, PREFIX + "*") == []
            assert conn.mget(list(FOREIGN)) == list(FOREIGN.values())


@pytest.mark.parametrize("role", config.ROLES)
def test_same_binary_gives_identical_metrics(fresh_server: Any, role: str) -> None:
    """Two processes of one binary (different hash seeds): equal metrics apart from "measured"."""
    runs = run_on_two_processes(fresh_server, role, si.run)
    assert [r["status"] for r in runs] == ["OK", "OK"]
    assert diff_metrics(si.NAME, runs[0]["metrics"], runs[1]["metrics"]) == []


def test_keyspace_walks_are_skipped_where_others_keys_live(fresh_server) -> None:
    """On a server the tool did not start, with keys of others in the database: no KEYS, no keyspace-wide
    SCAN (each is O(keyspace)); the skipped probes say so and are never compared; the rest runs."""
    srv = fresh_server(config.CANDIDATE)
    with redis.Redis(port=srv.port) as conn:
        conn.mset({f"app:{i}": i for i in range(2000)})
        out = si.run(conn, ScenarioOptions(prefix=PREFIX))
        stats = conn.info("commandstats")
        assert conn.dbsize() == 2000 and not list(conn.scan_iter(match=PREFIX + "*"))
    assert out["status"] == "WARN" and "keyspace-wide SCAN and KEYS skipped" in out["detail"]
    keys = stats.get("cmdstat_keys", {})
    assert keys.get("calls", 0) == keys.get("rejected_calls", 0)  # KEYS never ran: its arity-error probe is refused
    metrics = out["metrics"]
    assert all(v == {"skipped": si.KEYSPACE_SKIP} for v in metrics["keys_vs_scan"].values())
    assert metrics["completeness"]["SCAN MATCH {p}* COUNT 10"] == {"skipped": si.KEYSPACE_SKIP}
    # Collections are scanned as usual: their iterations never leave the collection.
    assert metrics["completeness"]["HSCAN large hash MATCH f1* COUNT 100"]["missing"] == 0

