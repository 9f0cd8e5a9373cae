"""./rvc explore on real servers: sequences generated from the servers' own COMMAND DOCS, reset between
sequences, judged with a noise control, shrunk to minimal repros that ./rvc replay runs again.

The long tests run the explorer as a user does (the command line, 30 s, a fixed seed): what the
scenarios know must be found again, each as a repro of at most 3 commands, and two processes of one
binary must show nothing."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from app import config
from app.captures import open_capture
from app.captures.quoting import split_args
from app.explore.cli import main as explore_main
from app.explore.docs import build_specs
from app.explore.exclusions import load_exclusions
from app.explore.exploration import PIPELINE_KINDS
from app.explore.judge import same_path
from app.explore.repros import format_call
from app.explore.runner import SequenceAborted, Servers
from app.explore.shrink import ddmin, minimise
from app.explore.strategies import CallGenerator, load_generation, sequence_rng
from app.provision import embedded_binary
from app.replay.run import replay_files
from app.stream_compare import command_name
from app.targets import Target, embedded_trio

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "app" / "report_schema.json"
ROLES = {"redis": config.BASELINE_ROLE, "redis-control": config.CONTROL_ROLE, "valkey": config.CANDIDATE_ROLE}
SERVERS = ("redis", "valkey")


@pytest.fixture
def servers(trio: dict) -> Servers:
    """The explorer's connections to the session's three servers (the tool's own: it flushes them)."""
    targets = [Target(name=name, url=srv.url, source="embedded", owned=True, server=srv, role=ROLES[name])
               for name, srv in trio.items()]
    generation, exclusions = load_generation(), load_exclusions()
    conn = Servers(targets, 2.0, generation.by_command["ACL SETUSER:USERNAME"], sorted(exclusions.config_allowed))
    yield conn
    assert conn.close() == []


def generator(servers: Servers) -> CallGenerator:
    specs = build_specs({name: servers.docs[name] for name in SERVERS})
    return CallGenerator(specs, load_generation(), load_exclusions(), list(SERVERS))


def calls_of(gen: CallGenerator, name: str, count: int, seed: int = 5) -> list[tuple[bytes, ...]]:
    rng = random.Random(seed)
    return [c for c in (gen.call(gen.specs[name], rng) for _ in range(count)) if c is not None]


# --- generation ---------------------------------------------------------------------------------------

def test_options_only_one_server_documents_are_generated(servers: Servers) -> None:
    gen = generator(servers)
    set_args = {a.token: a for arg in gen.specs["SET"].args for a in arg.children}
    assert set_args[b"IFEQ"].one_sided and not set_args[b"NX"].one_sided
    hscan = {a.token: a for a in gen.specs["HSCAN"].args if a.token}
    assert hscan[b"NOVALUES"].one_sided
    assert gen.specs["HSETEX"].known_by == {"valkey"} and "HSETEX" in gen.one_sided
    assert any(b"IFEQ" in c for c in calls_of(gen, "SET", 300))
    assert any(b"NOVALUES" in c for c in calls_of(gen, "HSCAN", 100))
    # XREAD's keys and ids come in equal numbers (but for the few calls given an argument too many or too
    # few on purpose); EVAL's numkeys mostly counts its keys.
    xreads = [c for c in calls_of(gen, "XREAD", 300) if b"STREAMS" in [a.upper() for a in c]]
    balanced = [c for c in xreads if (len(c) - [a.upper() for a in c].index(b"STREAMS") - 1) % 2 == 0]
    assert len(balanced) >= 0.9 * len(xreads) and len(xreads) > 100
    evals = calls_of(gen, "EVAL", 300)
    counted = [c for c in evals if len(c) >= 3 and c[2].isdigit() and
               all(k.startswith((b"k", b"{k")) or k in (b"", b"k:\xff\x00") for k in c[3:3 + int(c[2])])]
    assert len(counted) > len(evals) // 2


def test_sequences_are_seeded_and_never_hold_what_is_excluded(servers: Servers) -> None:
    gen = generator(servers)
    assert gen.sequence(sequence_rng(7, 3)) == gen.sequence(sequence_rng(7, 3))
    assert gen.sequence(sequence_rng(7, 3)) != gen.sequence(sequence_rng(7, 4))
    exclusions = load_exclusions()
    seen: set[str] = set()
    for index in range(600):
        for call in gen.sequence(sequence_rng(11, index)):
            name = command_name(call)
            seen.add(name)
            assert exclusions.excluded(name) is None, call
            assert exclusions.forbidden_reason(call) is None, call
            if name == "CONFIG SET":
                assert call[2].decode().lower() in exclusions.config_allowed
            if "blocking" in gen.specs[name].flags and name.startswith(("BL", "BR", "BZ")):
                assert call[-1] != b"0" or name in ("BLMPOP", "BZMPOP"), call  # never an endless wait
    assert len(seen) > 300  # nearly every command the servers list, in 600 sequences


def test_every_exclusion_says_why() -> None:
    exclusions = load_exclusions()
    for name in ("SHUTDOWN", "DEBUG", "MONITOR", "SYNC", "REPLICAOF", "CLIENT REPLY", "SUBSCRIBE"):
        assert len(exclusions.excluded(name) or "") > 10
    assert exclusions.forbidden_reason((b"CLIENT", b"KILL", b"ID", b"7", b"SKIPME", b"no")) is not None
    assert exclusions.forbidden_reason((b"CLIENT", b"KILL", b"ID", b"7")) is None
    assert "path" in (exclusions.forbidden_reason((b"CONFIG", b"SET", b"dir", b"/tmp")) or "")
    assert exclusions.forbidden_reason((b"CONFIG", b"SET", b"hz", b"100")) is None


# --- the servers: reset, and replies that do not come ----------------------------------------------

def test_each_sequence_starts_from_servers_as_new(servers: Servers) -> None:
    before = servers.run([(b"CONFIG", b"GET", b"hash-max-listpack-entries")])
    servers.run([(b"SET", b"k1", b"v"), (b"SELECT", b"3"), (b"SET", b"k9", b"v"),
                 (b"CONFIG", b"SET", b"hash-max-listpack-entries", b"1"),
                 (b"ACL", b"SETUSER", b"rvc-user", b"on", b"nopass", b"+@all"), (b"SCRIPT", b"LOAD", b"return 7"),
                 (b"CLIENT", b"SETNAME", b"dirty"), (b"HELLO", b"3"), (b"MULTI",), (b"INCR", b"k1")])
    after = servers.run([(b"DBSIZE",), (b"SELECT", b"3"), (b"DBSIZE",), (b"CONFIG", b"GET", b"hash-max-listpack-entries"),
                         (b"ACL", b"USERS"), (b"SCRIPT", b"EXISTS", hashlib.sha1(b"return 7").hexdigest().encode()),
                         (b"CLIENT", b"GETNAME"), (b"GET", b"k1")])
    for name, replies in after.items():
        assert replies[0] == 0 and replies[2] == 0, name
        assert replies[3] == before[name][0], name
        assert replies[4] == [b"default"] and replies[5] == [0], name
        assert replies[6] is None and replies[7] is None, name


def test_a_reply_left_out_is_told_from_an_answer(servers: Servers) -> None:
    """Redis 7.2 drops the error of a failed AUTH that is not the first command of what it reads
    (redis/redis#15640); Valkey answers it. The closing ECHO shows which server left a reply out."""
    with pytest.raises(SequenceAborted) as raised:
        servers.run([(b"PING",), (b"AUTH", b"rvc-nobody", b"wrong"), (b"PING",)])
    assert set(raised.value.failed) == {"redis", "redis-control"}
    assert [str(r) for r in raised.value.replies["valkey"]][1].startswith("WRONGPASS")
    assert servers.run([(b"PING",)]) == {name: [b"PONG"] for name in ROLES}  # reconnected, in step again


# --- shrinking and repro files -------------------------------------------------------------------------

def test_delta_debugging_keeps_only_what_the_difference_needs() -> None:
    calls = [(b"C%d" % i,) for i in range(60)]
    last = (b"LAST", b"a", b"MATCH", b"*", b"b")
    needed = {(b"C7",), (b"C41",)}

    def shows(seq: list[tuple[bytes, ...]]) -> bool:
        return needed <= set(seq) and seq[-1][0] == b"LAST" and b"b" in seq[-1]

    result = minimise(calls + [last], 60, shows, lambda call: 1)
    assert result.calls == [(b"C7",), (b"C41",), (b"LAST", b"b")] and result.confirmed
    assert ddmin([1, 2, 3], None, lambda items: 2 in items) == [2]
    # A difference that shows every other run (timing) is not confirmed.
    runs = itertools.cycle([True, False])
    assert not minimise(calls[:5] + [last], 5, lambda seq: next(runs), lambda call: 1).confirmed


def test_repro_lines_read_back_as_the_same_arguments() -> None:
    rng = random.Random(3)
    for _ in range(3000):
        args = [b"SET"] + [bytes(rng.randrange(256) for _ in range(rng.randrange(5))) for _ in range(rng.randrange(4))]
        assert split_args(format_call(args).encode()) == args


# --- the explorer as a user runs it ---------------------------------------------------------------------

# What the scenarios know (README: scan_and_iter, basic_crud, data_structures, lua_and_tx), as a finding
# row of the exploration must show it: (what, predicate on a row).
KNOWN: list[tuple[str, Any]] = [
    ("SET IFEQ", lambda r: r["catalogue_id"] == "VK81-SET-IFEQ" and "IFEQ" in r["repro"][-1].upper()),
    ("HSCAN NOVALUES", lambda r: r["catalogue_id"] == "VK80-HSCAN-NOVALUES" and "NOVALUES" in r["repro"][-1].upper()),
    ("ZSCAN NOSCORES", lambda r: r["catalogue_id"] == "VK80-ZSCAN-NOSCORES" and "NOSCORES" in r["repro"][-1].upper()),
    ("SSCAN with a negative cursor", lambda r: r["command"] == "SSCAN" and r["candidate_shape"] ==
     "error:ERR invalid cursor" and split_args(r["repro"][-1].encode())[2].startswith(b"-")),
    ("a Lua error text", lambda r: r["command"] in ("EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO")
     and r["kind"] == "error_text"),
    ("NOSCRIPT without 'Please use EVAL.'", lambda r: "Please use EVAL." in r["baseline_shape"]),
    ("HSETEX only in Valkey", lambda r: r["command"] == "HSETEX" and r["catalogue_id"] == "VK90-HASH-FIELD-EXPIRATION"),
    ("COMMAND COUNT", lambda r: r["command"] == "COMMAND COUNT" and r["class"] == "documented"),
    ("BITCOUNT's new argument errors", lambda r: r["command"] == "BITCOUNT" and r["documented"]),
    ("GEO missing-member text", lambda r: r["catalogue_id"] == "VK90-GEO-MEMBER-ERRORS"),
    ("WATCH or MULTI inside MULTI", lambda r: r["catalogue_id"] == "VK90-NO-MULTI-ERROR-COMMAND-NAME"),
]


@pytest.fixture(scope="module")
def explored(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    """One 30-second exploration with a fixed seed on freshly started embedded servers."""
    out = tmp_path_factory.mktemp("explore")
    return explore_main(["--seconds", "30", "--seed", "1", "--out", str(out)]), out


def test_thirty_seconds_find_again_what_the_scenarios_know(explored: tuple[int, Path]) -> None:
    code, out = explored
    assert code == 0
    document = json.loads((out / "report.json").read_text())
    jsonschema.validate(document, json.loads(SCHEMA_PATH.read_text()))
    section = document["explore"]
    rows = section["findings"]
    for what, shows in KNOWN:
        hits = [r for r in rows if r["repro"] and shows(r)]
        assert hits, f"{what}: not found again"
        assert min(len(r["repro"]) for r in hits) <= 3, f"{what}: no repro of 3 commands or fewer"
    for name in SERVERS:
        coverage = section["coverage"]["servers"][name]
        assert coverage["explorer_percent"] >= 90.0, coverage["explorer_missed"]
        assert coverage["scenarios"] == len(json.loads(
            (Path(__file__).resolve().parents[1] / "app" / "data" / "scenario_coverage.json").read_text())["commands"][name])
    assert {e["command"] for e in section["coverage"]["excluded"]} >= {"SHUTDOWN", "DEBUG", "MONITOR"}
    # Every repro file is a command file the captures module reads back into the repro's commands.
    for row in rows:
        if row["repro_file"]:
            capture = open_capture(str(out / row["repro_file"]))
            try:
                commands = [c.args for c in capture.command_records()]
            finally:
                capture.close()
            assert [format_call(c) for c in commands][-1].startswith(row["repro"][-1].rstrip("…")), row
    for name in ("report.html", "junit.xml", "summary.md"):
        assert (out / name).stat().st_size > 0


def test_the_repros_replay_to_the_same_difference(explored: tuple[int, Path]) -> None:
    """./rvc replay runs each repro file on fresh servers: it shows the repro's signature again, unless
    the replay refuses a command of it (CLIENT KILL, CLUSTER...: its policy says why) or the difference
    needs the commands pipelined as the explorer sends them (a reply left out, a stall)."""
    _code, out = explored
    rows = [r for r in json.loads((out / "report.json").read_text())["explore"]["findings"]
            if r["repro_file"] and r["class"] in ("new", "documented")]
    targets = embedded_trio()
    again, refused, pipelined, lost = 0, 0, 0, []
    try:
        for row in rows:
            document = replay_files([out / row["repro_file"]], targets, fresh_start=True)
            if row["signature"] in {same_path(r["path"]) for r in document["differences"]}:
                again += 1
            elif document["replay"].get("skipped"):
                refused += 1
            elif row["kind"] in PIPELINE_KINDS:
                pipelined += 1
            else:
                lost.append((row["signature"], row["repro"]))
    finally:
        for target in targets:
            target.stop()
    assert lost == [] and again > 100, (again, refused, pipelined, lost[:5])


def test_two_processes_of_one_binary_show_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = embedded_binary(config.BASELINE)
    for name, value in binary.env.items():  # what the embedded Redis needs to start (libssl 1.1)
        monkeypatch.setenv(name, value)
    same = ["--valkey-server", str(binary.path), "--seed", "1", "--out", str(tmp_path)]
    assert explore_main(["--seconds", "5", *same]) == 2  # the same product twice needs saying so
    assert explore_main(["--seconds", "30", "--allow-same-product", *same]) == 0
    document = json.loads((tmp_path / "report.json").read_text())
    assert document["targets"]["valkey"]["identity"]["product"] == "redis"
    significant = [r["signature"] for r in document["explore"]["findings"] if r["class"] in ("new", "documented")]
    assert significant == [] and document["summary"]["new"] == 0
    assert document["explore"]["calls_compared"] > 10_000


@pytest.mark.parametrize("argv", [["--seconds", "-1"], ["--sequences", "0"], ["--families", "bogus"],
                                  ["--redis-server", "/no/such/redis-server"], ["--timeout", "nan"]])
def test_a_bad_command_line_is_one_line_and_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert explore_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("redis-valkey-compat: error: ") and err.count("\n") == 1
