"""`impact` against a server holding someone else's data: it only reads, and what it says is drawn from
that server's real usage. Servers are real: a fresh Redis the test fills (several dbs, a non-default
CONFIG, a script, a function, a second client, a password), the embedded pair for defaults and memory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis

from app import config
from app.impact.cli import main
from app.explore.scenario_coverage import load_scenario_coverage
from app.impact.rank import config_advice, finding_commands, untested
from app.impact.run import load_report
from app.replay.run import replay_files
from app.targets import Target

PASSWORD = "impact-pw-never-shown"
FUNCTION = "#!lua name=applib\nredis.register_function('app_get', function(keys) return redis.call('GET', keys[1]) end)"


def fill(conn: redis.Redis) -> dict[str, Any]:
    """Foreign data and usage: keys of every type in dbs 0, 3 and 7, calls of a few commands."""
    for db in (0, 3, 7):
        conn.execute_command("SELECT", db)
        for i in range(40):
            conn.set(f"user:{i}", f"name-{i}", ex=10_000 + i)
            conn.hset(f"profile:{i}", mapping={"a": i, "b": "x" * i})
        conn.rpush("queue", *range(300))
        conn.sadd("ids", *range(60))
        conn.zadd("board", {f"p{i}": i for i in range(30)})
        conn.xadd("events", {"kind": "login"})
    conn.execute_command("SELECT", 0)
    for _ in range(25):
        conn.execute_command("HSCAN", "profile:1", 0)
    conn.config_set("maxmemory-policy", "allkeys-lfu")
    conn.config_set("hash-max-listpack-entries", "64")
    sha = conn.script_load("return redis.call('GET', KEYS[1])")
    conn.function_load(FUNCTION)
    return {"sha": sha}


def snapshot(conn: redis.Redis, own_id: int) -> dict[str, Any]:
    """Everything impact must leave as it was: every key's DUMP and TTL, CONFIG, clients, scripts."""
    keys = {}
    for db in (0, 3, 7):
        conn.execute_command("SELECT", db)
        for key in conn.scan_iter(count=1000):
            keys[(db, key)] = (conn.dump(key), conn.execute_command("PEXPIRETIME", key))
    conn.execute_command("SELECT", 0)
    clients = sorted((c["id"], c["addr"], c["name"], c["db"], c["flags"], c.get("lib-name"))
                     for c in conn.client_list() if int(c["id"]) != own_id)
    return {"keys": keys, "config": conn.config_get("*"), "clients": clients,
            "functions": conn.function_list(withcode=True)}


@pytest.fixture
def foreign(fresh_server) -> dict[str, Any]:
    server = fresh_server(config.BASELINE, extra_args=("--requirepass", PASSWORD))
    conn = redis.Redis(port=server.port, password=PASSWORD, socket_timeout=10, single_connection_client=True)
    other = redis.Redis(port=server.port, password=PASSWORD, socket_timeout=10, single_connection_client=True)
    other.client_setname("the-application")
    other.ping()
    facts = fill(conn)
    yield {"server": server, "conn": conn, "own_id": conn.client_id(), **facts}
    other.close()
    conn.close()


def test_impact_reads_a_foreign_server_and_leaves_it_as_it_was(foreign: dict, tmp_path: Path, monkeypatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    conn = foreign["conn"]
    before = snapshot(conn, foreign["own_id"])
    monkeypatch.setenv("RVC_REDIS_PASSWORD", PASSWORD)
    code = main(["--redis", f"redis://127.0.0.1:{foreign['server'].port}/0", "--sample", "60",
                 "--out", str(tmp_path / "out")])
    out = capsys.readouterr()
    assert code == 0, out.err
    after = snapshot(conn, foreign["own_id"])
    assert after["keys"] == before["keys"] and len(before["keys"]) == 3 * 84
    assert after["config"] == before["config"]
    assert after["clients"] == before["clients"]
    assert after["functions"] == before["functions"] and conn.script_exists(foreign["sha"]) == [True]
    files = {p.name: p.read_text() for p in (tmp_path / "out").iterdir()}
    assert PASSWORD not in out.out + out.err + "".join(files.values())

    section = json.loads(files["report.json"])["impact"]
    assert section["application"]["keyspace"] == {"db0": 84, "db3": 84, "db7": 84}
    hscan = next(row for row in section["commands"] if row["command"] == "HSCAN")
    assert hscan["calls"] == 25 and hscan["findings"] >= 1
    assert hscan["text"].startswith("HSCAN: 25 calls, ")
    advice = {row["parameter"]: row for row in section["config"]}
    assert advice["lazyfree-lazy-eviction"]["value"] == "no" and advice["lazyfree-lazy-eviction"]["valkey_default"] == "yes"
    assert "maxmemory-policy" not in advice  # set away from the default, but Valkey's default is the same
    exercised_gap = {row["command"] for row in section["untested"]}
    assert "SET" not in exercised_gap and "HSET" not in exercised_gap  # the scenarios send these
    memory = section["memory"]
    assert section["sample"]["keys"] == 60 and memory["keys"] == 252
    assert set(memory["allocators"]) == {"redis", "valkey"} and all(memory["modelled_bytes"].values())
    assert {g["type"] for g in section["sample"]["groups"]} <= {"string", "hash", "list", "set", "zset", "stream"}
    assert "application:" in out.out and "memory of 252 keys" in out.out


def test_impact_ranks_a_given_reports_differences(trio: dict, fresh_server, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    roles = {"redis": config.BASELINE_ROLE, "redis-control": config.CONTROL_ROLE, "valkey": config.CANDIDATE_ROLE}
    targets = [Target(n, s.url, "embedded", True, role=roles[n]) for n, s in trio.items()]
    capture = tmp_path / "diff.commands"
    capture.write_text("HSET h f v\nHSCAN h 0 NOVALUES\nSET k v IFEQ v\n")
    document = replay_files([capture], targets, fresh_start=True)
    (tmp_path / "replay.json").write_text(json.dumps(document))
    app = fresh_server(config.BASELINE, extra_args=("--requirepass", PASSWORD))
    with redis.Redis(port=app.port, password=PASSWORD) as conn:
        for _ in range(3):
            conn.execute_command("SET", "k", "v")
        conn.execute_command("GETRANGE", "k", 0, 1)
    code = main(["--redis", f"redis://:{PASSWORD}@127.0.0.1:{app.port}/0", "--report", str(tmp_path / "replay.json"),
                 "--out", str(tmp_path / "out")])
    out = capsys.readouterr()
    assert code == 0, out.err
    section = json.loads((tmp_path / "out" / "report.json").read_text())["impact"]
    assert [row["command"] for row in section["commands"]] == ["SET"]  # HSCAN: never called by this application
    assert section["commands"][0]["calls"] == 3 and section["findings_not_called"] == 1
    gap = {row["command"] for row in section["untested"]}
    assert "GETRANGE" in gap and "SET" not in gap  # the replay sent SET, never GETRANGE
    assert PASSWORD not in out.out + out.err


def test_a_bad_report_or_an_unreachable_server_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["--redis", "redis://127.0.0.1:1/0", "--report", str(bad), "--out", str(tmp_path / "o")]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach" in err[0]
    assert main(["--redis", "redis://127.0.0.1:1/0", "--sample", "-1"]) == 2


def test_config_advice_and_command_matching_rules() -> None:
    advice = config_advice({"lazyfree-lazy-eviction": "yes", "repl-backlog-size": "1048576", "port": "1",
                            "only-redis": "7"},
                           {"lazyfree-lazy-eviction": "no", "repl-backlog-size": "1048576", "port": "6379",
                            "only-redis": "5"},
                           {"lazyfree-lazy-eviction": "yes", "repl-backlog-size": "10485760", "port": "6379"})
    texts = {row["parameter"]: row["text"] for row in advice}
    assert texts["lazyfree-lazy-eviction"] == "your config sets lazyfree-lazy-eviction yes; Valkey's default is yes (Redis': no)"
    assert texts["repl-backlog-size"].startswith("your server runs repl-backlog-size 1048576 (Redis' default)")
    assert texts["only-redis"] == "your config sets only-redis 7; Valkey does not have only-redis"
    assert "port" not in texts  # set by whoever started the server, never a default
    finding = {"catalogue_id": None}
    records = [{"path": "commands.CLIENT LIST TYPE x", "command": None}, {"path": "replies.set.sadd"}]
    assert finding_commands(finding, records, {"CLIENT LIST", "SADD", "SET"}, {}) == {"CLIENT LIST"}


def test_a_scenario_report_without_its_own_command_list_uses_the_recorded_coverage(tmp_path: Path) -> None:
    recorded = load_scenario_coverage()
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"kind": "comparison", "findings": [], "scenarios": recorded["scenarios"][:2]}))
    _document, exercised = load_report(report)
    assert exercised is not None and set(recorded["commands"]["redis"]) <= exercised
    gap = {row["command"] for row in untested({"GET": 5, "OBJECT FREQ": 2}, exercised) or []}
    assert ("GET" in exercised) == ("GET" not in gap)
    report.write_text(json.dumps({"kind": "comparison", "findings": [], "scenarios": ["a_scenario_of_someone_else"]}))
    assert load_report(report)[1] is None  # a run of other scenarios: what it sent is not known
