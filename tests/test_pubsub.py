"""pubsub against the real embedded servers: frames as sent (RESP2 arrays, RESP3 pushes), delivery,
introspection, keyspace notifications, every difference between Redis 7.2.4 and Valkey 9.0.0 with
its value on each side, same-binary determinism, cleanup, and bounded waits on a frozen server.

The scenario runs once per server for this module (module fixture); the tests assert on that result.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app import config
from app.compare import diff_metrics
from app.config import ScenarioOptions
from app.scenarios import pubsub as ps
from tests.conftest import run_on_two_processes, scenario_keys

PREFIX = "rvc:pstest:"
SECTIONS = {"resp2", "resp3", "ordering", "delivery", "timings", "introspection", "errors", "config",
            "notifications"}
ALLOWED = ScenarioOptions(prefix=PREFIX, allow_server_changes=True, server_is_owned=True)
REFUSED = ("ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are "
           "allowed in this context")

# Every difference (apart from timings) between the embedded Redis 7.2.4 and Valkey 9.0.0:
# path -> (kind, Redis value, Valkey value).
EXPECTED_DIFFERENCES: dict[str, tuple[str, Any, Any]] = {
    # A client's channels: Redis 7.2 keeps them in a dict (hash order, seeded per process);
    # Valkey 9 keeps a small set in insertion order.
    **{f"ordering.RESP{p} {c} (all) of 8": ("ordering", "hash order", "insertion order")
       for p in (2, 3) for c in ("UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE")},
    # EXPIRE / PEXPIREAT with a time in the past: Redis 7.2 notifies "del", Valkey 9 "expired".
    "notifications.EXPIRE in the past: events": ("reply", ["keyspace {p}a del", "keyevent del {p}a"],
                                                 ["keyspace {p}a expired", "keyevent expired {p}a"]),
    "notifications.PEXPIREAT in the past: events": ("reply", ["keyspace {p}b del", "keyevent del {p}b"],
                                                    ["keyspace {p}b expired", "keyevent expired {p}b"]),
    # Hash-field expiry exists on Valkey 9 only, with its own events.
    "notifications.HEXPIRE: replies": (
        "availability",
        {"error": "ERR unknown command 'HEXPIRE', with args beginning with: '{p}h' '100' 'FIELDS' '1' 'f' "}, [1]),
    "notifications.HPERSIST: replies": (
        "availability",
        {"error": "ERR unknown command 'HPERSIST', with args beginning with: '{p}h' 'FIELDS' '1' 'f' "}, [1]),
    "notifications.HSETEX: replies": (
        "availability",
        {"error": "ERR unknown command 'HSETEX', with args beginning with: '{p}h' 'EX' '100' 'FIELDS' '1' 'x' 'v' "},
        1),
    "notifications.HGETEX PERSIST: replies": (
        "availability",
        {"error": "ERR unknown command 'HGETEX', with args beginning with: '{p}h' 'PERSIST' 'FIELDS' '1' 'x' "},
        ["v"]),
    "notifications.HEXPIRE: events": ("reply", [], ["keyspace {p}h hexpire", "keyevent hexpire {p}h"]),
    "notifications.HPERSIST: events": ("reply", [], ["keyspace {p}h hpersist", "keyevent hpersist {p}h"]),
    "notifications.HSETEX: events": ("reply", [], ["keyspace {p}h hset", "keyevent hset {p}h",
                                                   "keyspace {p}h hexpire", "keyevent hexpire {p}h"]),
    "notifications.HGETEX PERSIST: events": ("reply", [], ["keyspace {p}h hpersist", "keyevent hpersist {p}h"]),
}


def pubsub_state(port: int) -> dict[str, Any]:
    with redis.Redis(port=port, protocol=2, decode_responses=True) as conn:
        return {"channels": conn.execute_command("PUBSUB", "CHANNELS", PREFIX + "*"),
                "shard": conn.execute_command("PUBSUB", "SHARDCHANNELS", PREFIX + "*"),
                "numpat": conn.execute_command("PUBSUB", "NUMPAT"),
                "notify": conn.config_get("notify-keyspace-events")["notify-keyspace-events"]}


@pytest.fixture(scope="module")
def before(embedded_servers: dict) -> dict[str, dict[str, Any]]:
    return {role: pubsub_state(srv.port) for role, srv in embedded_servers.items()}


@pytest.fixture(scope="module")
def results(embedded_servers: dict, before: dict) -> Iterator[dict[str, dict[str, Any]]]:
    out = {}
    for role, srv in embedded_servers.items():
        with redis.Redis(port=srv.port) as conn:
            out[role] = ps.run(conn, ALLOWED)
    yield out


def test_contract_and_shape(results: dict) -> None:
    for role, out in results.items():
        assert set(out) == {"scenario", "status", "detail", "metrics"}
        assert out["scenario"] == "pubsub"
        assert out["status"] == "OK", (role, out["detail"])
        assert set(out["metrics"]) == SECTIONS, role


def test_resp2_frames_are_arrays_and_resp3_frames_pushes(results: dict) -> None:
    for role, out in results.items():
        r2, r3 = out["metrics"]["resp2"], out["metrics"]["resp3"]
        assert r2["SUBSCRIBE a b a"] == [{"array": ["subscribe", "{p}ch:a", 1]},
                                         {"array": ["subscribe", "{p}ch:b", 2]},
                                         {"array": ["subscribe", "{p}ch:a", 2]}], role
        assert r3["SUBSCRIBE a b a"] == [{"push": ["subscribe", "{p}ch:a", 1]},
                                         {"push": ["subscribe", "{p}ch:b", 2]},
                                         {"push": ["subscribe", "{p}ch:a", 2]}], role
        # nothing subscribed: a nil channel, RESP2 as a nil bulk string, RESP3 as a null
        assert r2["UNSUBSCRIBE (nothing subscribed)"] == {"array": ["unsubscribe", None, 0]}
        assert r3["SUNSUBSCRIBE (nothing subscribed)"] == {"push": ["sunsubscribe", None, 0]}
        assert r2["message + pmessage for PUBLISH a"] == [{"array": ["message", "{p}ch:a", "m1"]},
                                                          {"array": ["pmessage", "{p}ch:*", "{p}ch:a", "m1"]}]
        assert r3["smessage for SPUBLISH sa"] == {"push": ["smessage", "{p}sh:a", "m2"]}
        assert r2["PING"] == {"array": ["pong", ""]} and r3["PING"] == {"simple": "PONG"}
        assert r2["SUNSUBSCRIBE (all: sb left)"] == {"array": ["sunsubscribe", "{p}sh:b", 0]}
        assert r3["GET after leaving subscribed mode"] == {"null": None}
        for size in ("UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"):
            assert r2[f"{size} (all) of 8: counts"] == [7, 6, 5, 4, 3, 2, 1, 0]
            assert r3[f"{size} (all) of 8: frame types"] == ["push"]


def test_subscribed_resp2_client_is_refused_and_resp3_is_not(results: dict) -> None:
    for role, out in results.items():
        r2, r3 = out["metrics"]["resp2"], out["metrics"]["resp3"]
        for label, name in (("GET", "get"), ("SET", "set"), ("ECHO", "echo"), ("MULTI", "multi"),
                            ("CLIENT SETNAME", "client|setname"), ("HELLO", "hello"),
                            ("PUBLISH to an own channel", "publish")):
            assert r2[f"while subscribed: {label}"] == {"error": REFUSED.format(name)}, (role, label)
        assert r3["while subscribed: GET"] == {"null": None}
        assert r3["while subscribed: SET"] == {"simple": "OK"}
        assert r3["while subscribed: EVAL"] == {"integer": 1}
        # the reply comes first, then the push of the message the client sent itself
        assert r3["while subscribed: PUBLISH to an own channel"] == [{"integer": 1},
                                                                     {"push": ["message", "{p}own", "x"]}]
        # RESET ends subscribed mode and returns the connection to RESP2 (a nil bulk, not a null)
        assert r3["while subscribed: RESET"] == {"simple": "RESET"}
        assert r3["after RESET: GET missing"] == {"bulk": None}
        assert r2["after RESET: frames still delivered"] == []
        assert r2["QUIT while subscribed"] == r3["QUIT while subscribed"] == {"simple": "OK"}


def test_bursts_arrive_complete_in_order_and_byte_exact(results: dict) -> None:
    for role, out in results.items():
        delivery = out["metrics"]["delivery"]
        assert len(delivery) == 6
        for label, value in delivery.items():
            frame_type = "array" if label.startswith("RESP2") else "push"
            assert value["received"] == value["published"] == ps.BURST_SIZE, (role, label)
            assert value["in order"] and value["payloads intact"], (role, label)
            assert value["receivers per publish"] == [1] and value["frame types"] == [frame_type]
        first = delivery["RESP3 shard channel"]["first message"]["push"]
        assert first[:2] == ["smessage", "{p}burst:sh"]
        assert first[2].startswith("b64:")  # the first body holds every byte value: not UTF-8


def test_latency_is_a_timing_with_samples(results: dict) -> None:
    for out in results.values():
        for protocol in (2, 3):
            value = out["metrics"]["timings"][f"publish to receive RESP{protocol}"]
            assert value["messages"] == ps.LATENCY_ROUNDS * ps.LATENCY_MESSAGES
            assert len(value["median_us_samples"]) == len(value["p90_us_samples"]) == ps.LATENCY_ROUNDS
            assert 0 < value["median_us"] <= value["p90_us"] < 1_000_000


def test_introspection_sees_only_own_channels(results: dict) -> None:
    for role, out in results.items():
        i = out["metrics"]["introspection"]
        assert i["PUBSUB CHANNELS {p}*"] == ["{p}i:one", "{p}i:three", "{p}i:two"], role
        assert i["PUBSUB NUMSUB one two missing one"] == ["{p}i:one", 2, "{p}i:two", 1, "{p}i:missing", 0,
                                                          "{p}i:one", 2]
        assert i["PUBSUB SHARDNUMSUB shard1 shard2 missing"] == ["{p}i:shard1", 2, "{p}i:shard2", 1,
                                                                 "{p}i:missing", 0]
        assert i["PUBSUB NUMPAT after 2 new patterns (delta)"] == 2
        assert i["PUBLISH one (2 channel + 2 pattern subscribers)"] == 4
        assert i["PUBLISH two (1 channel + 3 pattern subscribers)"] == 4
        assert i["SPUBLISH shard1 (2 subscribers)"] == 2
        assert i["PUBSUB CHANNELS {p}* after RESET"] == i["PUBSUB SHARDCHANNELS {p}* after RESET"] == []


def test_keyspace_notifications_shared_by_both(results: dict) -> None:
    for role, out in results.items():
        n = out["metrics"]["notifications"]
        assert n["RESP2 and RESP3 carry the same events"] is True, role
        assert n["RESP2 frame types"] == ["array"] and n["RESP3 frame types"] == ["push"]
        assert n["RESP3 first keyspace frame"] == {
            "push": ["pmessage", "__keyspace@0__:{p}*", "__keyspace@0__:{p}a", "set"]}
        assert n["SET EX: events"] == ["keyspace {p}b set", "keyevent set {p}b",
                                       "keyspace {p}b expire", "keyevent expire {p}b"]
        assert n["LMOVE last element: events"] == [
            "keyspace {p}l2 rpush", "keyevent rpush {p}l2", "keyspace {p}l lpop", "keyevent lpop {p}l",
            "keyspace {p}l del", "keyevent del {p}l"]
        assert n["SET PX 1, then GET after expiry: events"][-2:] == ["keyspace {p}e expired",
                                                                     "keyevent expired {p}e"]
        assert n["DEL missing: events"] == []
        assert n[f"CONFIG GET notify-keyspace-events after SET {ps.NOTIFY_FLAGS}"] == [
            "notify-keyspace-events", "AKE"]


def test_differences_are_exactly_the_known_ones(results: dict) -> None:
    found = diff_metrics(ps.NAME, results["redis"]["metrics"], results["valkey"]["metrics"])
    behaviour = {d["path"]: d for d in found if d["kind"] != "timing"}
    assert set(behaviour) == set(EXPECTED_DIFFERENCES)
    for path, (kind, redis_value, valkey_value) in EXPECTED_DIFFERENCES.items():
        record = behaviour[path]
        assert (record["kind"], record["values"]["redis"], record["values"]["valkey"]) == (kind, redis_value, valkey_value), path
    # latencies differ between any two runs: only the median is compared, as a timing
    assert {d["path"] for d in found if d["kind"] == "timing"} <= {
        "timings.publish to receive RESP2.median_us", "timings.publish to receive RESP3.median_us"}


def test_nothing_left_behind(results: dict, before: dict, embedded_servers: dict) -> None:
    """No keys, no subscriptions, the same pattern count, notify-keyspace-events restored."""
    for role, srv in embedded_servers.items():
        assert pubsub_state(srv.port) == before[role] == {**before[role], "channels": [], "shard": []}
        with redis.Redis(port=srv.port) as conn:
            assert scenario_keys(conn, PREFIX + "*") == []


def test_notifications_need_permission(client: redis.Redis) -> None:
    """Without --allow-server-changes the notification step is skipped with WARN; the rest still runs."""
    out = ps.run(client, ScenarioOptions(prefix="rvc:pstest-safe:"))
    assert out["status"] == "WARN"
    assert "CONFIG SET notify-keyspace-events skipped" in out["detail"]
    assert "notifications" not in out["metrics"]
    assert out["metrics"]["delivery"]["RESP2 channel"]["payloads intact"] is True
    assert client.config_get("notify-keyspace-events")["notify-keyspace-events"] == ""


@pytest.mark.parametrize("role", config.ROLES)
def test_same_binary_gives_identical_metrics(fresh_server: Any, role: str) -> None:
    """Two processes of one binary: equal metrics apart from the latency median, within noise."""
    runs = run_on_two_processes(fresh_server, role, ps.run,
                                ScenarioOptions(allow_server_changes=True, server_is_owned=True))
    assert [r["status"] for r in runs] == ["OK", "OK"], [r["detail"] for r in runs]
    found = diff_metrics(ps.NAME, runs[0]["metrics"], runs[1]["metrics"])
    assert [d for d in found if d["kind"] != "timing"] == []
    assert [d for d in found if d["significant"]] == []


def test_a_frame_wait_is_bounded(fresh_server: Any) -> None:
    """A subscriber waiting on a frozen server gets NoReply after its timeout, not a hang."""
    srv = fresh_server(config.CANDIDATE)
    with redis.Redis(port=srv.port) as conn:
        sub = ps.RawConnection(conn)
        assert sub.call("SUBSCRIBE", "rvc:frozen")[0].kind == "push"
        os.kill(srv.process.pid, signal.SIGSTOP)
        start = time.monotonic()
        with pytest.raises(ps.NoReply):
            sub.frame(timeout=0.5)
        assert time.monotonic() - start < 2
        sub.close()


def test_server_frozen_mid_run_fails_in_bounded_time(fresh_server: Any) -> None:
    srv = fresh_server(config.CANDIDATE)
    conn = redis.Redis(port=srv.port, socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    freezer = threading.Timer(0.3, os.kill, (srv.process.pid, signal.SIGSTOP))
    start = time.monotonic()
    freezer.start()
    try:
        out = ps.run(conn, ScenarioOptions(allow_server_changes=True, server_is_owned=True))
    finally:
        freezer.cancel()
        conn.close()
    assert out["status"] == "FAIL"
    assert time.monotonic() - start < 30
    assert "error:" in out["detail"]
