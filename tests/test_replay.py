"""Replay of captured commands on real servers: Redis, a second Redis process (the noise control) and
Valkey, the session `trio`, flushed before every replay (the tool started them).

Captures are the committed real MONITOR capture (tests/data/workload.monitor) and small MONITOR or
command files written by the tests in MONITOR's exact format (app.captures.quoting.quote).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import jsonschema
import pytest
import redis

from app import config
from app.captures.quoting import quote
from app.replay import cli
from app.replay.keys import BARRIER, KeyTable
from app.replay.policy import CREDENTIALS, PROTECTED_CONFIG_REASON, bound_blocking, decide
from app.replay.run import ReplayError, replay_files
from app.replay.servers import StartingDataRefused, trio_from_snapshot
from app.servers import EmbeddedServer
from app.targets import Target

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
SCHEMA = json.loads((ROOT / "app" / "report_schema.json").read_text())
SECRET = "s3cret-never-shown"


@pytest.fixture
def targets(trio: dict[str, EmbeddedServer]) -> list[Target]:
    roles = {"redis": config.BASELINE_ROLE, "redis-control": config.CONTROL_ROLE, "valkey": config.CANDIDATE_ROLE}
    return [Target(name=name, url=srv.url, source="embedded", owned=True, role=roles[name],
                   control_of="redis" if name == "redis-control" else None) for name, srv in trio.items()]


def monitor_file(path: Path, lines: Sequence[tuple[str, Sequence[str | bytes]]], db: int = 0) -> Path:
    """A MONITOR capture: (client, args) per line, in redis-cli's format, after its OK line; each line
    shows its client's database after the command, as MONITOR does (`db`: where every client starts)."""
    out, dbs = [b"OK"], {}
    for number, (client, args) in enumerate(lines):
        raw = [a if isinstance(a, bytes) else a.encode() for a in args]
        if raw[0].upper() == b"SELECT":
            dbs[client] = int(raw[1])
        shown = dbs.get(client, db)
        out.append(b"%.6f [%d %s] " % (1_700_000_000 + number / 1000, shown, client.encode()) + b" ".join(map(quote, raw)))
    path.write_bytes(b"\n".join(out) + b"\n")
    return path


def command_file(path: Path, lines: Sequence[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def trio_port(target: Target) -> int:
    return int(target.url.rsplit(":", 1)[1].split("/")[0])


def flush(targets: list[Target]) -> None:
    for target in targets:
        with redis.Redis.from_url(target.url) as conn:
            conn.flushall()


def replay(paths: Sequence[Path], targets: list[Target], **options: object) -> dict:
    return replay_files(paths, targets, fresh_start=True, **options)


def records_of(document: dict, command: str) -> list[dict]:
    return [r for r in document["differences"] if r["command"] == command]


# --- the acceptance capture -----------------------------------------------------------------------------------

def test_the_workload_capture_replays_with_its_table_and_reports(trio: dict, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """`./rvc replay tests/data/workload.monitor` end to end (its own three servers), table and reports."""
    code = cli.main([str(DATA / "workload.monitor"), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "replayed 75 commands from 6 client sessions" in out
    assert "AUTH" in out and "carries credentials" in out
    document = json.loads((tmp_path / "out" / "report.json").read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    assert document["kind"] == "replay" and document["completed"]
    assert {name: t["role"] for name, t in document["targets"].items()} == \
        {"redis": "baseline", "redis-control": "control", "valkey": "candidate"}
    # the four known differences of the workload, at their capture lines (tests/data/make_workload_capture.py)
    lines = {r["command"] + ":" + str(r["examples"][0]["line"]) for r in document["differences"]}
    assert lines == {"SET:73", "HSCAN:74", "EVAL:54", "EVAL:55"}
    assert document["replay"]["counts"]["from_script"] == 3  # the [0 lua] lines ran inside their EVAL/FCALL
    junit = (tmp_path / "out" / "junit.xml").read_text()
    assert 'name="HSCAN"' in junit and "new-finding" in junit  # the NEW Lua error text fails EVAL's case
    assert "Replayed commands" in (tmp_path / "out" / "report.html").read_text()
    assert "| `EVAL` |" in (tmp_path / "out" / "summary.md").read_text()


def test_known_differences_are_found_with_their_counts(targets: list[Target], tmp_path: Path) -> None:
    capture = command_file(tmp_path / "diff.commands", [
        "SET k v", "SET k v IFEQ v", "SET k v IFEQ v", "SET k v IFEQ v",
        "HSET h f1 v1 f2 v2", "HSCAN h 0 NOVALUES", "HSCAN h 0 NOVALUES COUNT 10",
        "EVAL \"return redis.call('nosuchcommand')\" 0", "GET k"])
    document = replay([capture], targets)
    ifeq, hscan, lua = (records_of(document, name) for name in ("SET", "HSCAN", "EVAL"))
    assert [(r["count"], r["catalogue_id"]) for r in ifeq] == [(3, "VK81-SET-IFEQ")]
    assert [r["examples"][0]["line"] for r in ifeq] == [2]
    assert [(r["count"], r["catalogue_id"]) for r in hscan] == [(2, "VK80-HSCAN-NOVALUES")]
    assert [r["count"] for r in lua] == [1]
    assert "Unknown Redis command" in lua[0]["values"]["redis"]["error"]
    assert "Unknown command" in lua[0]["values"]["valkey"]["error"]
    stats = document["replay"]["commands"]
    assert stats["SET"] == {"calls": 4, "identical": 1, "different": 3, "noise": 0, "skipped": 0}
    assert stats["GET"]["identical"] == 1  # each IFEQ set the value it compared with: the data still agrees


def test_random_commands_are_noise_on_two_processes_of_one_binary(trio: dict, tmp_path: Path,
                                                                  fresh_server) -> None:
    """The candidate is a third process of the baseline's binary: whatever differs is noise, never a difference."""
    third = fresh_server(config.BASELINE)
    same = [Target("redis", trio["redis"].url, "embedded", True, role=config.BASELINE_ROLE),
            Target("redis-control", trio["redis-control"].url, "embedded", True, role=config.CONTROL_ROLE),
            Target("redis-third", third.url, "embedded", True, role=config.CANDIDATE_ROLE)]
    setup = [("c1", ["SADD", "s", *[f"m{i}" for i in range(40)]])] + \
        [("c1", ["SET", f"key:{i}", "v"]) for i in range(60)]
    randoms = [("c2", args) for _ in range(15) for args in
               (["SRANDMEMBER", "s"], ["SPOP", "s"], ["SCAN", "0", "COUNT", "5"], ["TIME"], ["RANDOMKEY"])]
    document = replay([monitor_file(tmp_path / "random.monitor", setup + randoms)], same)
    assert document["differences"] == []
    noisy = {n["command"] for n in document["replay"]["noise"]}
    assert {"SRANDMEMBER", "SPOP", "SCAN", "TIME", "RANDOMKEY"} <= noisy
    assert document["replay"]["totals"]["different"] == 0


def test_a_bad_line_is_reported_with_its_number_and_the_rest_replays(trio: dict, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    good = monitor_file(tmp_path / "good.monitor", [("c1", ["SET", "a", "1"]), ("c1", ["SET", "b", "2"]),
                                                     ("c1", ["GET", "a"]), ("c1", ["GET", "b"])])
    lines = good.read_bytes().splitlines()
    lines.insert(2, b'1700000000.5 [0 127.0.0.1:1] "SET" "unterminated')
    bad = tmp_path / "bad.monitor"
    bad.write_bytes(b"\n".join(lines) + b"\n")
    code = cli.main([str(bad), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 0
    mentions = [line for line in err.splitlines() if "bad.monitor:3:" in line]
    assert len(mentions) == 1 and "broken quoting" in mentions[0]
    assert "1 bad line(s) not replayed" in err
    document = json.loads((tmp_path / "out" / "report.json").read_text())
    entry = document["replay"]["inputs"][0]
    assert entry["bad_lines"] == 1 and entry["commands"] == 4
    assert document["replay"]["commands"]["GET"]["identical"] == 2  # the lines after the bad one ran


# --- sessions, ordering, blocking -----------------------------------------------------------------------------

def test_each_client_keeps_its_database_transaction_and_order(targets: list[Target], tmp_path: Path) -> None:
    capture = monitor_file(tmp_path / "sessions.monitor", [
        ("10.0.0.1:1", ["SELECT", "3"]), ("10.0.0.1:1", ["SET", "k", "in-3"]),
        ("10.0.0.2:2", ["SET", "k", "in-0"]),
        ("10.0.0.2:2", ["MULTI"]), ("10.0.0.2:2", ["INCR", "n"]),
        ("10.0.0.1:1", ["INCR", "n"]),            # db 3: its own n
        ("10.0.0.2:2", ["INCR", "n"]), ("10.0.0.2:2", ["EXEC"]),
        ("10.0.0.1:1", ["GET", "k"]), ("10.0.0.2:2", ["GET", "k"]),
        ("10.0.0.3:3", ["RPUSH", "q", "a"]), ("10.0.0.4:4", ["LPOP", "q"]), ("10.0.0.3:3", ["LLEN", "q"]),
    ])
    document = replay([capture], targets)
    assert document["differences"] == [] and document["completed"]
    with redis.Redis.from_url(targets[0].url) as base:
        assert base.get("k") == b"in-0" and base.get("n") == b"2" and base.llen("q") == 0
    with redis.Redis(port=trio_port(targets[0]), db=3) as base3:
        assert base3.get("k") == b"in-3" and base3.get("n") == b"1"
    assert document["replay"]["commands"]["EXEC"]["identical"] == 1


def test_a_client_that_starts_in_another_database_is_put_there(targets: list[Target], tmp_path: Path) -> None:
    capture = monitor_file(tmp_path / "db5.monitor", [("10.0.0.9:9", ["SET", "where", "five"])], db=5)
    replay([capture], targets)
    with redis.Redis(port=trio_port(targets[2]), db=5) as valkey:
        assert valkey.get("where") == b"five"


def test_blocking_commands_are_bounded_and_unblocked_in_capture_order(targets: list[Target], tmp_path: Path) -> None:
    capture = monitor_file(tmp_path / "block.monitor", [
        ("10.0.0.1:1", ["BLPOP", "jobs", "0"]),           # waits forever in the capture ...
        ("10.0.0.2:2", ["RPUSH", "jobs", "j1"]),          # ... until another client pushes
        ("10.0.0.1:1", ["GET", "after"]),
        ("10.0.0.1:1", ["BLPOP", "empty", "0"]),          # nothing ever comes: bounded, nil everywhere
        ("10.0.0.1:1", ["XREAD", "BLOCK", "0", "STREAMS", "st", "$"]),
        ("10.0.0.2:2", ["PING"]),
    ])
    document = replay([capture], targets, block_timeout_s=0.2)
    assert document["differences"] == [] and document["completed"]
    stats = document["replay"]["commands"]
    assert stats["BLPOP"]["identical"] == 2 and stats["XREAD"]["identical"] == 1
    assert document["replay"]["counts"]["bounded"] == 3
    notes = [e["note"] for e in document["replay"]["bounded_examples"]]
    assert notes[0] == "bounded: BLPOP would wait forever; sent with 0.2 s"
    with redis.Redis.from_url(targets[0].url) as base:
        assert base.llen("jobs") == 0  # the BLPOP took j1: it was waiting when RPUSH came


def test_subscribers_receive_what_publishers_send(targets: list[Target], tmp_path: Path) -> None:
    capture = monitor_file(tmp_path / "pubsub.monitor", [
        ("10.0.0.1:1", ["SUBSCRIBE", "news", "sport"]),
        ("10.0.0.2:2", ["PUBLISH", "news", "hello"]),
        ("10.0.0.2:2", ["PUBLISH", "sport", "goal"]),
        ("10.0.0.1:1", ["PING"]),
        ("10.0.0.1:1", ["UNSUBSCRIBE"]),
        ("10.0.0.1:1", ["SET", "back", "normal"]),
        ("10.0.0.1:1", ["SUBSCRIBE", "solo"]), ("10.0.0.2:2", ["PUBLISH", "solo", "one"]),
        ("10.0.0.1:1", ["UNSUBSCRIBE", "solo"]), ("10.0.0.1:1", ["GET", "back"]),
    ])
    document = replay([capture], targets)
    assert document["differences"] == [] and document["completed"]
    stats = document["replay"]["commands"]
    assert stats["PUBLISH"]["identical"] == 3 and stats["SUBSCRIBE"]["identical"] == 2
    assert stats["(pushed)"]["identical"] >= 2 and stats["SET"]["identical"] == 1 and stats["GET"]["identical"] == 1
    assert document["replay"]["counts"]["pushed_compared"] >= 1


# --- what is never replayed -----------------------------------------------------------------------------------

def test_credentials_and_dangerous_commands_are_skipped_and_never_shown(targets: list[Target], tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    capture = command_file(tmp_path / "unsafe.commands", [
        f"AUTH someone {SECRET}", f"CONFIG SET requirepass {SECRET}", f"ACL SETUSER u on >{SECRET}",
        f"HELLO 3 AUTH default {SECRET}", "CONFIG SET dir /tmp", "DEBUG SLEEP 0", "SHUTDOWN NOSAVE",
        "MONITOR", "REPLICAOF 127.0.0.1 1", "CLIENT KILL TYPE normal", "SET still alive", "GET still"])
    document = replay([capture], targets)
    reasons = {(r["command"], r["reason"]) for r in document["replay"]["skipped"]}
    assert ("AUTH", CREDENTIALS) in reasons and ("CONFIG SET", CREDENTIALS) in reasons
    assert ("ACL SETUSER", CREDENTIALS) in reasons and ("CONFIG SET", PROTECTED_CONFIG_REASON) in reasons
    assert {c for c, _ in reasons} >= {"DEBUG SLEEP", "SHUTDOWN", "MONITOR", "REPLICAOF", "CLIENT KILL"}
    assert document["replay"]["commands"]["HELLO"]["skipped"] == 0  # replayed without its AUTH clause
    assert document["replay"]["commands"]["GET"]["identical"] == 1
    with redis.Redis.from_url(targets[2].url) as valkey:
        assert valkey.ping() and valkey.config_get("dir")["dir"] != "/tmp"
    code = cli.main([str(capture), "--out", str(tmp_path / "out")])
    assert code == 0
    everything = capsys.readouterr().out + "".join(p.read_text() for p in (tmp_path / "out").iterdir())
    assert SECRET not in everything


def test_a_server_the_tool_did_not_start_needs_consent_and_must_be_empty(targets: list[Target], tmp_path: Path) -> None:
    capture = command_file(tmp_path / "one.commands", ["SET a 1"])
    foreign = [Target(t.name, t.url, "external", owned=False, role=t.role) for t in targets]
    flush(targets)
    with pytest.raises(ReplayError, match="--allow-server-changes"):
        replay_files([capture], foreign)
    with redis.Redis(port=trio_port(targets[2]), db=4) as valkey:
        valkey.set("theirs", "1")
        with pytest.raises(ReplayError, match=r"holds data \(db4 \(1 keys\)\)"):
            replay_files([capture], foreign, allow_server_changes=True)
        assert valkey.get("theirs") == b"1"
        valkey.flushall()
    document = replay_files([capture], foreign, allow_server_changes=True)
    assert document["replay"]["commands"]["SET"]["identical"] == 1


# --- starting data ------------------------------------------------------------------------------------------

def test_servers_start_from_the_users_snapshot(fresh_server, tmp_path: Path) -> None:
    source = fresh_server(config.BASELINE)
    with redis.Redis(port=source.port) as conn:
        conn.set("from:rdb", "yes")
        conn.rpush("list:rdb", "a", "b")
        conn.save()
    rdb = source.workdir / "dump.rdb"
    capture = command_file(tmp_path / "read.commands", ["GET from:rdb", "LRANGE list:rdb 0 -1", "DBSIZE"])
    servers = trio_from_snapshot(rdb, None, None)
    try:
        document = replay_files([capture], servers.targets)
    finally:
        servers.stop()
    assert document["differences"] == []
    assert [r for r in document["replay"]["commands"].values()][0]["identical"] == 1
    assert document["replay"]["totals"]["identical"] == 3


def test_a_snapshot_a_server_cannot_read_is_refused_in_one_line(tmp_path: Path) -> None:
    rdb = tmp_path / "broken.rdb"
    rdb.write_bytes(b"REDIS0011" + b"\x00" * 40)
    with pytest.raises(StartingDataRefused) as refused:
        trio_from_snapshot(rdb, None, None).stop()
    message = str(refused.value)
    assert message.startswith("redis ") and "the starting data" in message and "\n" not in message


def test_redis_refuses_a_valkey_snapshot_with_its_log_line(fresh_server, tmp_path: Path) -> None:
    valkey = fresh_server(config.CANDIDATE)
    with redis.Redis(port=valkey.port) as conn:
        conn.set("k", "v")
        conn.save()
    with pytest.raises(StartingDataRefused, match="redis refused the starting data .*Wrong signature"):
        trio_from_snapshot(valkey.workdir / "dump.rdb", None, None).stop()


# --- pure parts: policy and keys ------------------------------------------------------------------------------

def test_blocking_waits_are_bounded_only_when_longer_than_the_bound() -> None:
    assert bound_blocking((b"BLPOP", b"q", b"0"), 1.0) == ((b"BLPOP", b"q", b"1"),
                                                          "bounded: BLPOP would wait forever; sent with 1 s")
    assert bound_blocking((b"BLPOP", b"q", b"0.5"), 1.0) == ((b"BLPOP", b"q", b"0.5"), "")
    assert bound_blocking((b"XREAD", b"BLOCK", b"0", b"STREAMS", b"s", b"$"), 1.0)[0][2] == b"1000"
    assert bound_blocking((b"XREAD", b"STREAMS", b"s", b"$"), 1.0) is None
    assert bound_blocking((b"WAIT", b"1", b"0"), 0.5)[0] == (b"WAIT", b"1", b"500")
    assert decide((b"BLPOP", b"q", b"0"), owned=True, in_multi=True, bound_s=1.0).blocking is False
    assert decide((b"FLUSHALL",), owned=False, in_multi=False, bound_s=1.0).args is None
    assert decide((b"FLUSHALL",), owned=True, in_multi=False, bound_s=1.0).args == (b"FLUSHALL",)
    hello = decide((b"HELLO", b"3", b"AUTH", b"u", b"pw", b"SETNAME", b"x"), owned=True, in_multi=False, bound_s=1.0)
    assert hello.args == (b"HELLO", b"3", b"SETNAME", b"x")


@pytest.fixture(scope="module")
def key_table(trio: dict) -> KeyTable:
    replies = []
    for name in ("redis", "valkey"):
        with redis.Redis(port=trio[name].port) as conn:
            conn.response_callbacks.clear()
            replies.append(conn.execute_command("COMMAND"))
    return KeyTable(replies)


def test_keys_come_from_the_servers_command_table(key_table: KeyTable) -> None:
    keys = key_table.keys_of
    assert keys((b"SET", b"k", b"v", b"EX", b"1")) == (b"k",)
    assert keys((b"MSET", b"a", b"1", b"b", b"2")) == (b"a", b"b")
    assert keys((b"XREAD", b"COUNT", b"1", b"STREAMS", b"s1", b"s2", b"0", b"0")) == (b"s1", b"s2")
    assert keys((b"ZUNIONSTORE", b"dst", b"2", b"a", b"b", b"WEIGHTS", b"1", b"2")) == (b"dst", b"a", b"b")
    assert keys((b"OBJECT", b"ENCODING", b"k")) == (b"k",)
    assert keys((b"HSETEX", b"h", b"FIELDS", b"1", b"f", b"v")) == (b"h",)  # known from Valkey's table
    assert keys((b"PING",)) == () and keys((b"CLIENT", b"SETNAME", b"x")) == ()
    assert keys((b"EVAL", b"return 1", b"2", b"k1", b"k2", b"arg")) == (b"k1", b"k2")  # declared keys
    for barrier in ((b"FLUSHDB",), (b"EVAL", b"return 1", b"0"), (b"SORT", b"k", b"STORE", b"d"),
                    (b"KEYS", b"*"), (b"NOSUCHCOMMAND",), (b"PUBLISH", b"ch", b"m")):
        assert keys(barrier) is BARRIER, barrier


def test_a_multipart_aof_replays_on_top_of_its_rdb_base(tmp_path: Path) -> None:
    """A real appendonlydir (RDB base + incr file): every server starts from the base, then the incr replays."""
    from argparse import Namespace

    from app.replay.servers import replay_servers
    from tests.test_captures import _write_aof

    directory = _write_aof(config.BASELINE, True, tmp_path / "appendonlydir")
    rdb, carriers, opened = cli.starting_data(Namespace(files=[str(directory)], rdb=None, redis=None, valkey=None))
    servers = replay_servers(rdb=rdb)
    try:
        document = replay_files([directory], servers.targets, preloaded=carriers)
        for target in servers.targets:
            with redis.Redis(port=trio_port(target)) as conn:
                assert conn.get("base:str") == b"one", target.name  # from the base RDB
                conn.execute_command("SELECT", 2)
                assert conn.get("incr:n") == b"1" and conn.get("incr:lua") == b"from-lua", target.name
    finally:
        servers.stop()
        for capture in opened:
            capture.close()
    assert document["differences"] == [] and document["replay"]["inputs"][0]["starting_data"] == {"loaded": True}
    assert document["replay"]["commands"]["EXEC"]["identical"] == 1
