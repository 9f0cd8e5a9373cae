"""Live replies judged on Redis, a second Redis process (the noise control) and Valkey, and aggregated
into records: what replay, the mirror proxy and the explorer share. Real servers only."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from app.findings import group_findings
from app.stream_compare import (DIFFERENT, IDENTICAL, NOISE, Call, StreamComparator, canonical, command_name,
                                plain, shape)


@pytest.fixture
def clients(trio: dict) -> dict[str, redis.Redis]:
    conns = {name: redis.Redis(port=srv.port, socket_timeout=10) for name, srv in trio.items()}
    for conn in conns.values():
        conn.response_callbacks.clear()  # raw replies: what the server sent
        conn.flushall()  # the tool's own servers
    yield conns
    for conn in conns.values():
        conn.flushall()
        conn.close()


def send(clients: dict[str, redis.Redis], comparator: StreamComparator, *args: str, line: int = 0) -> dict[str, str]:
    replies: dict[str, Any] = {}
    for name, conn in clients.items():
        try:
            replies[name] = conn.execute_command(*args)
        except redis.ResponseError as exc:
            replies[name] = exc
    return comparator.add(Call(tuple(a.encode() for a in args), line=line), replies)


def comparator() -> StreamComparator:
    return StreamComparator("redis", ["valkey"], ["redis-control"], candidate_versions={"valkey": "9.0.0"})


def test_identical_documented_and_new_differences_are_told_apart(clients: dict) -> None:
    comp = comparator()
    assert send(clients, comp, "SET", "k", "v") == {"valkey": IDENTICAL}
    assert send(clients, comp, "SET", "k", "v", "IFEQ", "v", line=2) == {"valkey": DIFFERENT}
    send(clients, comp, "HSET", "h", "f", "1")
    assert send(clients, comp, "HSCAN", "h", "0", "NOVALUES") == {"valkey": DIFFERENT}
    assert send(clients, comp, "EVALSHA", "f" * 40, "0") == {"valkey": DIFFERENT}
    assert send(clients, comp, "HSETEX", "h2", "FIELDS", "1", "f", "v") == {"valkey": DIFFERENT}
    records = {r["command"]: r for r in comp.records()}
    assert records["SET"]["catalogue_id"] == "VK81-SET-IFEQ" and records["SET"]["examples"][0]["line"] == 2
    assert records["SET"]["values"] == {"redis": {"error": "ERR syntax error"}, "valkey": "OK"}
    assert records["HSCAN"]["catalogue_id"] == "VK80-HSCAN-NOVALUES"
    # A command Redis 7.2 does not know, named by an entry's commands: documented by that entry.
    assert records["HSETEX"]["kind"] == "availability" and records["HSETEX"]["catalogue_id"] == "VK90-HASH-FIELD-EXPIRATION"
    # The NOSCRIPT text change is documented nowhere: NEW, with the full error text as the server sent it.
    assert records["EVALSHA"]["documented"] is False
    assert records["EVALSHA"]["values"]["redis"] == {"error": "NOSCRIPT No matching script. Please use EVAL."}
    stats = comp.command_stats()
    assert stats["SET"] == {"calls": 2, IDENTICAL: 1, DIFFERENT: 1, NOISE: 0, "skipped": 0}
    assert comp.totals()["calls"] == 6
    findings = group_findings(comp.records())
    assert {f["class"] for f in findings} == {"new", "documented"}


def test_random_replies_are_noise_never_differences(clients: dict) -> None:
    comp = comparator()
    send(clients, comp, "SADD", "s", *[f"m{i}" for i in range(20)])
    for _ in range(30):  # one control can agree with the baseline by chance; the command's history decides
        send(clients, comp, "SRANDMEMBER", "s")
    send(clients, comp, "TIME")
    send(clients, comp, "RANDOMKEY")
    send(clients, comp, "SMEMBERS", "s")  # unordered, but the same set: identical once canonical
    assert comp.records() == [] and comp.stats["SMEMBERS"].identical == 1
    assert comp.stats["SRANDMEMBER"].noise >= 1 and {n["command"] for n in comp.noise()} >= {"SRANDMEMBER", "TIME"}


def test_noise_never_hides_another_kind_of_reply(clients: dict) -> None:
    comp = comparator()
    for i in range(50):
        send(clients, comp, "SET", f"key{i}", "v")
    # SCAN pages differ between two Redis processes (their hash seeds differ), but Valkey refusing the
    # cursor outright is a difference whatever the pages were.
    assert send(clients, comp, "SCAN", "-1", "COUNT", "5") == {"valkey": DIFFERENT}
    record = next(r for r in comp.records() if r["command"] == "SCAN")
    assert record["values"]["valkey"] == {"error": "ERR invalid cursor"}


def test_signatures_and_examples_are_bounded() -> None:
    comp = StreamComparator("redis", ["valkey"], [], max_examples=2, max_signatures=3)
    for i in range(10):
        comp.add(Call((b"GET", f"k{i}".encode())), {"redis": f"a{i}".encode(), "valkey": i})
        comp.add(Call((f"CMD{i}".encode(),)), {"redis": 1, "valkey": b"x"})
    records = comp.records()
    assert len(records) == 3 and comp.uncounted_signatures == 8  # GET, CMD0, CMD1 kept; CMD2-9 counted
    get = next(r for r in records if r["command"] == "GET")
    assert get["count"] == 10 and len(get["examples"]) == 2


def test_command_names_are_bounded_and_every_call_is_still_counted() -> None:
    """Hours of an application's typos or random DEBUG words must not grow the per-command table."""
    comp = StreamComparator("redis", ["valkey"], [], max_command_names=4)
    for i in range(10):
        comp.add(Call((f"CMD{i}".encode(),)), {"redis": 1, "valkey": 1})
        comp.count_identical(f"SAME{i}")
        comp.skip_command(f"SKIP{i}", "primary only")
    stats = comp.command_stats()
    assert set(stats) == {"CMD0", "SAME0", "SKIP0", "CMD1", "(other commands)"}  # the first four names seen
    assert stats["(other commands)"]["calls"] == 26 and comp.totals()["calls"] == 30
    assert comp.totals()["identical"] == 20 and comp.totals()["skipped"] == 10


def test_reply_forms() -> None:
    assert plain(redis.ResponseError("wrong")) == {"error": "wrong"}
    assert plain([b"a", b"\xff", 1, None]) == ["a", "b64:/w==", 1, None]
    assert canonical("HGETALL", ["b", "2", "a", "1"]) == [["a", "1"], ["b", "2"]]
    assert canonical("SMEMBERS", ["b", "a"]) == ["a", "b"] and canonical("LRANGE", ["b", "a"]) == ["b", "a"]
    assert command_name((b"client", b"list")) == "CLIENT LIST" and command_name((b"get", b"k")) == "GET"
    assert shape({"error": "ERR unknown command 'X', with args beginning with: 'a'"}) == \
        "error:ERR unknown command …, with args beginning with: …"
