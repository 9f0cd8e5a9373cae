"""The migration rehearsal on the embedded servers: every route in both directions on a generated data
set, outcomes as these servers really behave (measured first, see the expectations below), zero
mismatches where data moved; the verification naming exactly what a corrupted target got wrong; the
command line's bad input, a user's snapshot, and SIGTERM. Real servers only, every one stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import redis

from app import cli as rvc_cli
from app.migration import cli
from app.migration.digest import canonical, describe, digest
from app.migration.dataset import SPECIMEN_COUNT, generate
from app.migration.keycopy import logical_route
from app.migration.physical import Move
from app.migration.processes import Fleet
from app.migration.rehearsal import RehearsalOptions, default_binaries, rehearse, server_dir
from app.migration.settings import DIRECTIONS, FORWARD, OUTCOMES, ROLLBACK, ROUTES, TEST_DATASET
from app.migration.verify import LOSS_DANGLING, LOSS_FIELD_TTL, verify
from app.render.reports import write_reports
from app.servers import EmbeddedServer, free_port

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "app" / "migration_schema.json").read_text())

# Measured on Redis 7.2.4 (jemalloc) and Valkey 9.0.0 (libc), the embedded servers: Valkey writes RDB
# format 80 ("VALKEY080") in its RDB files, AOF base files, DUMP payloads and full syncs, which Redis
# 7.2 cannot read; Valkey reads Redis' RDB 11. An AOF without RDB preamble holds commands, and Valkey
# writes hashes with field TTLs as HSETEX, unknown to Redis 7.2.
REFUSALS = {
    "rdb": "Wrong signature trying to load DB from file",
    "aof": "Bad file format reading the append only file",
    "aof_no_preamble": "Unknown command 'HSETEX' reading the append only file",
    "dump_restore": "ERR DUMP payload version or checksum are wrong",
    "migrate": "ERR Target instance replied with error: ERR DUMP payload version or checksum are wrong",
    "replication": "Wrong signature trying to load DB from file",
}
EXPECTED = {FORWARD: {route: "works" for route in ROUTES},
            ROLLBACK: {route: "refused" if route in REFUSALS else "works" for route in ROUTES}}
# Command-level routes cannot recreate a pending entry whose message was deleted (the data set has one).
DANGLING_LOSSES = {(FORWARD, "aof_no_preamble"), (FORWARD, "logical"), (ROLLBACK, "logical")}


def validate(document: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(SCHEMA).validate(document)


@pytest.fixture(scope="module")
def rehearsal() -> dict[str, Any]:
    """One full rehearsal on the test data set (10,000 keys, smaller big keys)."""
    binaries, sources = default_binaries({})
    return rehearse(RehearsalOptions(binaries=binaries, sources=sources, spec=TEST_DATASET))


def _cell(document: dict[str, Any], direction: str, route: str) -> dict[str, Any]:
    return next(c for c in document["migration"]["matrix"] if c["direction"] == direction and c["route"] == route)


def test_every_route_both_ways_as_the_servers_behave(rehearsal: dict[str, Any]) -> None:
    validate(rehearsal)
    assert rehearsal["completed"] is True
    outcomes = {d: {c["route"]: c["status"] for c in rehearsal["migration"]["matrix"] if c["direction"] == d}
                for d in EXPECTED}
    assert outcomes == EXPECTED
    for route, line in REFUSALS.items():
        cell = _cell(rehearsal, ROLLBACK, route)
        assert line in cell["error"], (route, cell["error"])
        assert cell["verification"] is None
    for physical in ("rdb", "aof", "aof_no_preamble", "replication"):
        # Read from the server's own log, not made up: the refusing line is among the logged ones.
        assert _cell(rehearsal, ROLLBACK, physical)["error"] in _cell(rehearsal, ROLLBACK, physical)["server_log"]
    assert _cell(rehearsal, ROLLBACK, "rdb")["counts"]["file_signature"] == "VALKEY080"
    assert _cell(rehearsal, FORWARD, "rdb")["counts"]["file_signature"] == "REDIS0011"


def test_zero_mismatches_on_every_route_that_works(rehearsal: dict[str, Any]) -> None:
    dataset = rehearsal["migration"]["dataset"]
    for cell in rehearsal["migration"]["matrix"]:
        if cell["status"] != "works":
            continue
        verification = cell["verification"]
        where = (cell["direction"], cell["route"])
        assert verification["mismatches"] == 0, (where, verification["mismatch_list"][:5])
        # Only the keys armed to expire during the move may be gone before the verification sees them.
        expiring = dataset[cell["direction"]]["ttls"]["expiring"]
        assert verification["keys_compared"] + verification["expired_meanwhile"] >= cell["keys"] - expiring, where
        assert verification["functions"]["target_libraries"] == dataset[cell["direction"]]["functions"], where
        expected = {LOSS_DANGLING: 1} if where in DANGLING_LOSSES else {}
        if where == (ROLLBACK, "logical"):
            expected[LOSS_FIELD_TTL] = dataset[ROLLBACK]["hash_field_ttl_keys"]
        assert verification["loss_reasons"] == expected, where
    assert dataset[ROLLBACK]["hash_field_ttl_keys"] > 0 and dataset[FORWARD]["hash_field_ttl_keys"] == 0


def test_replication_syncs_and_replicates_the_write_load(rehearsal: dict[str, Any]) -> None:
    cell = _cell(rehearsal, FORWARD, "replication")
    counts = cell["counts"]
    assert counts["replicaof_reply"] == "OK"
    assert counts["writes_total"] > counts["writes_during_sync"] > 0
    assert counts["replica_offset"] >= counts["source_offset"] > 0
    assert cell["phases"]["sync_s"] > 0 and cell["keys_per_s"] > 0
    # Every fifth write makes a new key: the zero-mismatch verification compared each one of them.
    expiring = rehearsal["migration"]["dataset"][FORWARD]["ttls"]["expiring"]
    new_keys = counts["writes_total"] // 5
    assert cell["verification"]["keys_compared"] >= cell["keys"] + new_keys - expiring


def test_data_set_covers_every_encoding_on_both_sides_of_its_threshold(rehearsal: dict[str, Any]) -> None:
    for direction, dataset in rehearsal["migration"]["dataset"].items():
        wrong = [s for s in dataset["specimens"] if s["encoding"] != s["expected"]]
        assert not wrong, (direction, wrong)
        assert len(dataset["specimens"]) == SPECIMEN_COUNT
        # --keys is the size: specimens, big keys and families add up to it (rounding; expired ones gone).
        asked = dataset["keys_requested"]
        assert asked - dataset["ttls"]["expiring"] - 20 <= dataset["keys"] <= asked + 20
        assert set(dataset["by_db"]) == {"0", "1", "7"}
        assert dataset["ttls"]["seconds"] > 0 and dataset["ttls"]["milliseconds"] > 0
        assert dataset["ttls"]["expiring"] > 0
        seen = {(e["type"], e["source"]) for e in _cell(rehearsal, direction, "logical")["verification"]["encodings"]}
        for pair in [("string", "int"), ("string", "embstr"), ("string", "raw"), ("list", "listpack"),
                     ("list", "quicklist"), ("set", "intset"), ("set", "listpack"), ("set", "hashtable"),
                     ("hash", "listpack"), ("hash", "hashtable"), ("zset", "listpack"), ("zset", "skiplist"),
                     ("stream", "stream")]:
            assert pair in seen, (direction, pair)


def test_verdict_names_the_only_rollback_route_and_why_the_others_are_refused(rehearsal: dict[str, Any]) -> None:
    info = rehearsal["migration"]["directions"][ROLLBACK]
    sentence = rehearsal["migration"]["verdict"][ROLLBACK]
    assert sentence.startswith(f"Rollback from {info['source_label']} to {info['target_label']} is possible only "
                               "by logical copy: ")
    for line in REFUSALS.values():
        assert line in sentence
    assert LOSS_FIELD_TTL in sentence
    assert "is possible by" in rehearsal["migration"]["verdict"][FORWARD]


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_reports_in_every_format(rehearsal: dict[str, Any], tmp_path: Path) -> None:
    paths = write_reports(rehearsal, tmp_path)
    saved = json.loads(paths["json"].read_text())
    validate(saved)
    assert saved["migration"]["verdict"] == rehearsal["migration"]["verdict"]
    page = _Text()
    page.feed(paths["html"].read_text())
    text = "".join(page.text)
    assert rehearsal["migration"]["verdict"][ROLLBACK] in text
    assert "script" not in page.tags and page.tags.count("details") == len(rehearsal["migration"]["matrix"])
    suites = ET.parse(paths["junit"]).getroot()
    cases = suites.findall(".//testcase")
    assert len(cases) == 2 * len(ROUTES)
    assert suites.get("skipped") == str(len(REFUSALS)) and suites.get("failures") == "0"
    skipped = {c.get("name") for c in cases if c.find("skipped") is not None}
    assert skipped == set(REFUSALS)
    markdown = paths["markdown"].read_text()
    assert markdown.count("\n| ") == 2 * len(ROUTES) + 1
    table = cli.render_table(rehearsal)
    assert "refusals (exact error line):" in table and REFUSALS["dump_restore"] in table


def test_schema_knows_every_route_direction_and_outcome() -> None:
    cell = SCHEMA["$defs"]["cell"]["properties"]
    assert cell["route"]["enum"] == list(ROUTES)
    assert cell["direction"]["enum"] == list(DIRECTIONS)
    assert cell["status"]["enum"] == list(OUTCOMES)


# --- digests: what the servers may legitimately answer differently ---------------------------------

def test_digest_ignores_order_and_score_formatting_but_not_content() -> None:
    # Redis 7.2 formats a score with %.17g, Valkey 9.0 with the shortest form: one score either way.
    redis_zset = [(b"m", b"0.10000000000000001"), (b"n", b"inf")]
    valkey_zset = [(b"n", b"inf"), (b"m", b"0.1")]
    assert digest(canonical(b"zset", redis_zset)) == digest(canonical(b"zset", valkey_zset))
    assert digest(canonical(b"set", [b"a", b"b"])) == digest(canonical(b"set", [b"b", b"a"]))
    assert digest(canonical(b"list", [b"a", b"b"])) != digest(canonical(b"list", [b"b", b"a"]))
    # Length-prefixed parts: moving a byte between two members is a different content.
    assert digest(canonical(b"set", [b"ab", b"c"])) != digest(canonical(b"set", [b"a", b"bc"]))
    source, target = canonical(b"hash", {b"f": b"1", b"g": b"2"}), canonical(b"hash", {b"f": b"1", b"g": b"3"})
    assert describe(b"hash", source, target) == ["field 'g': source '2', target '3'"]


# --- the verification names what differs ------------------------------------------------------------

@pytest.fixture
def copied() -> Iterator[tuple[EmbeddedServer, EmbeddedServer]]:
    """A Redis source with a small generated data set, logically copied to a Valkey target."""
    binaries, _ = default_binaries({})
    with Fleet(binaries) as fleet:
        source = fleet.start("redis", "corrupt-source")
        generate(source.port, replace(TEST_DATASET, keys=2000, big_set_members=2000))
        result = logical_route(Move(fleet, source, "redis", "valkey", 0, server_dir(source.port)))
        assert result.status == "works" and result.target is not None
        yield source, result.target


def _long_lived(client: redis.Redis, key_type: str, with_ttl: bool) -> bytes:
    """A key of this type that will not expire during the test (TTL over an hour, or none)."""
    for key in client.scan_iter(match="rvcmig:*", count=1000, _type=key_type):
        ttl = client.pttl(key)
        if (ttl > 3_600_000) if with_ttl else (ttl == -1):
            return key
    raise AssertionError(f"no long-lived {key_type} key")


def test_verification_names_exactly_the_corrupted_keys(copied: tuple[EmbeddedServer, EmbeddedServer]) -> None:
    source, target = copied
    clean = verify(source.port, target.port, ttl_tolerance_ms=1000)
    assert clean["mismatches"] == 0
    with redis.Redis(port=target.port, socket_timeout=10) as client:
        hashed = _long_lived(client, "hash", with_ttl=False)
        expiring = _long_lived(client, "string", with_ttl=True)
        field = sorted(client.hkeys(hashed))[0]
        before = client.hget(hashed, field)
        client.hset(hashed, field, b"corrupted")
        assert client.persist(expiring)
    found = verify(source.port, target.port, ttl_tolerance_ms=1000)
    assert found["mismatches"] == 2
    named = {(m["key"], m["what"]): m for m in found["mismatch_list"]}
    assert set(named) == {(hashed.decode(), "content"), (expiring.decode(), "ttl")}
    content = named[(hashed.decode(), "content")]
    assert content["details"] == [f"field {field.decode()!r}: source {before.decode()!r}, target 'corrupted'"]
    ttl = named[(expiring.decode(), "ttl")]
    assert ttl["source"].startswith("expires at ") and ttl["target"] == "none"


def test_verification_names_a_key_moved_to_another_database(copied: tuple[EmbeddedServer, EmbeddedServer]) -> None:
    source, target = copied
    with redis.Redis(port=target.port, socket_timeout=10) as client:
        key = _long_lived(client, "zset", with_ttl=False)
        assert client.move(key, 5)
    found = verify(source.port, target.port, ttl_tolerance_ms=1000)
    named = {(m["db"], m["key"], m["what"]) for m in found["mismatch_list"]}
    assert named == {(0, key.decode(), "missing_on_target"), (5, key.decode(), "extra_on_target")}


# --- the command line ------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["--keys", "0"], ["--keys", "many"], ["--bogus"], ["--rdb", "/no/such.rdb"],
                                  ["--routes", "rdb,teleport"], ["--directions", "sideways"],
                                  ["--redis-server", "/no/redis-server"], ["--rdb", "TEXT"], ["--rdb", "DIR"]])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "notes.rdb"
    text.write_text("hello, not a snapshot\n")
    argv = [str(text) if a == "TEXT" else str(tmp_path) if a == "DIR" else a for a in argv]
    assert rvc_cli.main(["migrate", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("redis-valkey-compat: error: ") and "Traceback" not in err[0]


def test_an_unwritable_report_folder_is_found_before_any_server_starts(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    started = time.monotonic()
    assert cli.main(["--out", str(blocker / "reports")]) == 5
    assert time.monotonic() - started < 5  # no data set was generated, no server started
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write reports to" in err[0]


def _snapshot(role: str, folder: Path) -> Path:
    """An RDB file written by a real server of this role (a few keys, a TTL, a function)."""
    binaries, _ = default_binaries({})
    server = EmbeddedServer(binaries[role], f"snap-{role}").start()
    try:
        with redis.Redis(port=server.port, socket_timeout=10) as client:
            client.set("user:1", "ada", ex=7200)
            client.hset("user:2", mapping={"name": "grace", "lang": "cobol"})
            client.select(3)
            client.rpush("queue", *range(50))
            client.function_load("#!lua name=snaplib\nredis.register_function('one', function() return 1 end)")
            client.save()
        path = folder / f"{role}.rdb"
        path.write_bytes((server.workdir / "dump.rdb").read_bytes())
        return path
    finally:
        server.stop()


def test_a_users_snapshot_is_the_data_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snapshot = _snapshot("redis", tmp_path)
    code = cli.main(["--rdb", str(snapshot), "--routes", "rdb,logical", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    document = json.loads((tmp_path / "out" / "report.json").read_text())
    validate(document)
    assert code == 0, out
    for direction in (FORWARD, ROLLBACK):
        assert document["migration"]["dataset"][direction] | {"rdb_bytes": 0} == {
            "source": "rdb", "rdb_path": str(snapshot), "rdb_bytes": 0, "keys": 3, "by_db": {"0": 2, "3": 1},
            "functions": ["snaplib"]}
    outcomes = {(c["direction"], c["route"]): c["status"] for c in document["migration"]["matrix"]}
    assert outcomes == {(FORWARD, "rdb"): "works", (FORWARD, "logical"): "works",
                        (ROLLBACK, "rdb"): "refused", (ROLLBACK, "logical"): "works"}
    assert all(c["mismatches"] == 0 for c in document["migration"]["matrix"] if c["status"] == "works")
    assert "reports in" in out and sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "junit.xml", "report.html", "report.json", "summary.md"]


def test_a_valkey_snapshot_cannot_be_loaded_by_the_redis_source(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    snapshot = _snapshot("valkey", tmp_path)
    cli.main(["--rdb", str(snapshot), "--routes", "logical", "--directions", "forward",
              "--out", str(tmp_path / "out")])
    capsys.readouterr()
    document = json.loads((tmp_path / "out" / "report.json").read_text())
    validate(document)
    [cell] = document["migration"]["matrix"]
    assert cell["status"] == "not_run" and cell["error"] == REFUSALS["rdb"]
    assert document["migration"]["dataset"][FORWARD]["error"] == REFUSALS["rdb"]


def test_the_users_binary_is_the_server_started(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    valkey = default_binaries({})[0]["valkey"]  # static: runs as a user's binary needs nothing else
    code = cli.main(["--valkey-server", str(valkey.path), "--keys", "300", "--routes", "logical",
                     "--directions", "rollback", "--out", str(tmp_path)])
    capsys.readouterr()
    document = json.loads((tmp_path / "report.json").read_text())
    validate(document)
    assert code == 0
    assert document["targets"]["valkey"]["source"] == "binary"
    assert document["targets"]["valkey"]["binary"] == f"user binary {valkey.path}"
    assert document["targets"]["redis"]["source"] == "embedded"
    assert [(c["direction"], c["route"], c["status"]) for c in document["migration"]["matrix"]] == [
        (ROLLBACK, "logical", "works")]


def _processes_in(folder: Path) -> list[int]:
    """Processes whose working folder is under `folder` (servers rewrite their command line, not cwd)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")).is_relative_to(folder):
                    found.append(int(entry.name))
            except OSError:
                continue  # gone meanwhile, or not ours to read
    return found


def _answers(port: int) -> bool:
    try:
        with redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def test_a_server_spawned_but_never_recorded_is_stopped_too(tmp_path: Path) -> None:
    """A signal inside Popen leaves a running server its EmbeddedServer never heard of: the Fleet finds it
    by parent and working folder, and stops it by pid."""
    binaries, _ = default_binaries({})
    with Fleet(binaries) as fleet:
        folder, port = fleet.folder("stray"), free_port()
        stray = subprocess.Popen([str(binaries["valkey"].path), "--port", str(port), "--bind", "127.0.0.1",
                                  "--save", "", "--dir", str(folder)], cwd=folder, env={**os.environ,
                                  **binaries["valkey"].env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ghost = EmbeddedServer(binaries["valkey"], "ghost")
        ghost.workdir = Path(fleet.folder("ghost"))  # what start() has made before Popen returns
        fleet.servers.append(ghost)
        deadline = time.monotonic() + 15
        while not _answers(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _answers(port), "the stray server should be serving"
    try:
        deadline = time.monotonic() + 15
        while stray.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stray.poll() is not None and not folder.exists()
    finally:
        if stray.poll() is None:  # the test's own process, stopped by its pid
            stray.kill()
            stray.wait()


def test_sigterm_stops_every_server_and_removes_every_folder(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "app.migration.cli", "--keys", "20000", "--routes",
                             "logical,replication", "--out", str(out)], cwd=ROOT,
                            env={**os.environ, "TMPDIR": str(scratch)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if "replication running" in line or not line:
                break
        assert _processes_in(scratch), "servers should be running in the scratch folder"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted by SIGTERM" in err
    assert list(scratch.iterdir()) == []
    assert _processes_in(scratch) == []
    document = json.loads((out / "report.json").read_text())
    assert document["completed"] is False and document["interrupted"] == "SIGTERM"
    validate(document)
