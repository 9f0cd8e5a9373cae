"""Capture formats for the replay: MONITOR output, command files, AOFs, multi-part AOF directories.

Parsing tests read committed samples (tests/data/) and AOFs the embedded servers write during the
test; the live tests check the parsers against what real redis-cli and real servers do.
"""

from __future__ import annotations

import ast
import gzip
import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from app import config
from app.captures import (AOF, AOF_DIR, COMMANDS, MONITOR, RDB, BadLine, CaptureError, Command,
                          carries_credentials, detect_format, open_capture, redact)
from app.captures.credentials import REDACTED, secret_positions
from app.captures.model import BAD_TEXT_LIMIT, HIDDEN_TEXT
from app.captures.preamble import _CANDIDATE, crc64
from app.captures.quoting import QuotingError, quote, split_args, unescape
from app.provision import embedded_binary, embedded_cli
from app.servers import EmbeddedServer
from bench.gen_monitor import write_capture

DATA = Path(__file__).parent / "data"
WORKLOAD_SCRIPT = DATA / "make_workload_capture.py"
POLL_S = 15.0


def _workload_module():
    spec = importlib.util.spec_from_file_location("make_workload_capture", WORKLOAD_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def records(path: Path) -> list:
    with open_capture(path) as capture:
        return list(capture.records())


def commands(path: Path) -> list[Command]:
    return [r for r in records(path) if isinstance(r, Command)]


def gzipped(path: Path, tmp_path: Path) -> Path:
    target = tmp_path / (path.name + ".gz")
    target.write_bytes(gzip.compress(path.read_bytes()))
    return target


# --- MONITOR ------------------------------------------------------------------------------------

def test_monitor_every_escape() -> None:
    got = [r.args for r in commands(DATA / "escapes.monitor")[:5]]
    assert got == [
        (b"SET", b'quote"', b"backslash\\"),
        (b"SET", b"nl\n", b"cr\r"),
        (b"SET", b"tab\t", b"bell\a"),
        (b"SET", b"bs\b", b"hex\x00\x7f\xff\xe9"),
        (b"SET", b"", b"\\x41 is not an escape here"),
    ]


def test_monitor_source_forms_and_db() -> None:
    recs = commands(DATA / "escapes.monitor")
    assert all(isinstance(r, Command) for r in records(DATA / "escapes.monitor"))
    assert recs[0].session == "127.0.0.1:50000" and recs[0].db == 0 and recs[0].ts == 1700000000.000001
    assert recs[0].line == 2  # line 1 is redis-cli's OK
    assert (recs[5].session, recs[5].db) == ("[::1]:50001", 1)
    assert (recs[6].session, recs[6].db) == ("unix:/var/run/redis/redis [a] b.sock", 3)
    assert recs[6].args == (b"GET", b"unix socket path with spaces and brackets")


def test_monitor_lua_lines_are_marked_and_belong_to_their_caller() -> None:
    recs = commands(DATA / "escapes.monitor")
    caller, own = recs[7], recs[8:10]
    assert caller.name == "EVAL" and not caller.from_script
    assert [r.args for r in own] == [(b"SET", b"k", b"x"), (b"GET", b"k")]
    assert all(r.from_script and r.session == caller.session for r in own)
    orphan = recs[11]  # after a SELECT, not after a script command: its caller is unknown
    assert orphan.from_script and orphan.session == "lua" and orphan.db == 5


def test_monitor_bad_lines_are_reported_and_parsing_goes_on() -> None:
    recs = records(DATA / "bad.monitor")
    bad = [r for r in recs if isinstance(r, BadLine)]
    good = [r for r in recs if isinstance(r, Command)]
    assert [r.line for r in good] == [2, 10]
    assert [r.line for r in bad] == [3, 4, 5, 6, 7, 8, 9, 11]
    reasons = {r.line: r.reason for r in bad}
    assert "unbalanced double quote" in reasons[3]
    assert reasons[4] == "an argument is not a double-quoted string"
    assert reasons[5].startswith("not a MONITOR line")  # "OK" only counts as the first line
    assert "closing quote" in reasons[6]
    for r in bad:
        assert "\n" not in r.reason and len(r.text) <= BAD_TEXT_LIMIT
        assert r.describe().startswith(f"{DATA / 'bad.monitor'}:{r.line}: ")
    assert next(r for r in bad if r.line == 7).text.endswith("…")
    assert next(r for r in bad if r.line == 8).text == HIDDEN_TEXT  # never echoes the password
    with open_capture(DATA / "bad.monitor") as capture:
        for _ in capture.records():
            pass
        assert (capture.commands, capture.bad_lines) == (2, 8)


def test_workload_capture_parses_and_matches_its_docstring() -> None:
    recs = records(DATA / "workload.monitor")
    assert not [r for r in recs if isinstance(r, BadLine)]
    by_line = {r.line: r for r in recs}
    doc = ast.get_docstring(ast.parse(WORKLOAD_SCRIPT.read_text()))
    table = doc.split("what it holds):\n", 1)[1]
    rows = re.findall(r"^    (\w+) +(\d+)  ", table, re.MULTILINE)
    marked = {label: by_line[int(line)] for label, line in rows}
    assert len(marked) == 16
    assert marked["ifeq"].args == (b"SET", b"k", b"v", b"IFEQ", b"v")
    assert marked["hscan_novalues"].args == (b"HSCAN", b"h", b"0", b"NOVALUES")
    assert marked["select_2"].db == 2 and marked["auth"].args == (b"AUTH", REDACTED, REDACTED)
    assert marked["unix"].session.startswith("unix:")
    assert b"\x00" in marked["escapes"].args[2] and b"\xff" in marked["escapes"].args[2]
    assert [marked[k].name for k in ("srandmember", "spop", "scan", "time", "randomkey")] == [
        "SRANDMEMBER", "SPOP", "SCAN", "TIME", "RANDOMKEY"]
    assert marked["lua_ok"].name == "EVAL" and by_line[52].from_script and by_line[53].from_script
    assert by_line[52].session == marked["lua_ok"].session
    assert marked["fcall"].name == "FCALL" and by_line[58].from_script
    assert marked["multi"].name == "MULTI" and by_line[63].name == "EXEC"
    assert len({r.session for r in recs if not r.from_script}) == 6  # 4 TCP apps, unix, the end marker


def test_generated_monitor_capture_parses(tmp_path: Path) -> None:
    path = tmp_path / "gen.monitor"
    write_capture(path, 20_000, 20, 7, compress=False)
    recs = records(path)
    assert len(recs) == 20_000 and all(isinstance(r, Command) for r in recs)
    assert len({r.session for r in recs if not r.from_script}) == 20
    names = {r.name for r in recs}
    assert {"SET", "HSET", "LPUSH", "SADD", "ZADD", "XADD", "EXPIRE", "MULTI", "EXEC", "EVAL"} <= names
    for before, lua in zip(recs, recs[1:]):
        if lua.from_script and not before.from_script:
            assert before.name == "EVAL" and lua.session == before.session


# --- command files ------------------------------------------------------------------------------

def test_command_file_quoting_comments_and_select() -> None:
    recs = records(DATA / "sample.commands")
    good = [r for r in recs if isinstance(r, Command)]
    assert [r.args for r in good] == [
        (b"SET", b"plain", b"value"),
        (b"SET", b"double quoted key", b'tab\there, newline\nthere, quote" and backslash\\'),
        (b"SET", b"single quoted", b"only ' is an escape: \\n stays"),
        (b"SET", b"hex", b"AB\x00\xff"),
        (b"SET", b"mixed part", b"tail?"),
        (b"SET", b"hash", b"#not-a-comment"),
        (b"SELECT", b"2"),
        (b"SET", b"in-db-2", b"yes"),
        (b"RPUSH", b"list", b"", b""),
        (b"SET", b"sq", b"a\\'b"),
        (b"ECHO", b"last"),
    ]
    assert [r.db for r in good] == [None] * 6 + [2] * 5
    assert {r.session for r in good} == {"commands"} and all(r.ts is None for r in good)
    assert [(r.line, r.reason) for r in recs if isinstance(r, BadLine)] == [
        (12, "broken quoting: closing quote not followed by a space at column 22"),
        (13, "broken quoting: unbalanced double quote at column 5"),
    ]


def test_command_file_crlf_lines() -> None:
    assert [r.args for r in commands(DATA / "crlf.commands")] == [(b"SET", b"crlf-line", b"yes"),
                                                                  (b"GET", b"crlf-line")]


@pytest.mark.parametrize("line, args", [
    (b'a "b c" d', [b"a", b"b c", b"d"]),
    (b"  lead   and\ttabs  ", [b"lead", b"and", b"tabs"]),
    (b'"\\x4a\\x4B\\x4" "\\q\\\\"', [b"JKx4", b"q\\"]),
    (b"'a\\\\'b' c", [b"a\\'b", b"c"]),  # two backslashes and a quote: a backslash, an escaped quote
    (b"'a\\'", None),  # the escaped quote does not close: unterminated
    (b"'a\\'b'", [b"a'b"]),
    (b'x"y"', [b"xy"]),
    (b'"y"x', None),
    (b"", []),
])
def test_split_args_follows_redis_cli(line: bytes, args: list[bytes] | None) -> None:
    if args is None:
        with pytest.raises(QuotingError):
            split_args(line)
    else:
        assert split_args(line) == args


def test_quote_and_unescape_round_trip_every_byte() -> None:
    every = bytes(range(256))
    assert unescape(quote(every)[1:-1]) == every
    assert split_args(quote(every) + b" " + quote(b"")) == [every, b""]


# --- AOF ------------------------------------------------------------------------------------------

# A string value that looks, to a byte search, like the end of an RDB followed by an AOF command:
# the preamble search must tell it from the real end by the checksum.
DECOY = b"\xff" + b"12345678" + b"*1\r\n$4\r\nPING\r\n"


def _wait(check, what: str) -> None:
    deadline = time.monotonic() + POLL_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _write_aof(role: str, preamble: bool, out: Path, extra: tuple[str, ...] = ()) -> Path:
    """A real multi-part AOF directory: data, BGREWRITEAOF (the base), then more writes (the incr)."""
    server = EmbeddedServer(embedded_binary(role), f"aof-{role}", extra_args=(
        "--appendonly", "yes", "--appendfsync", "always", "--aof-use-rdb-preamble", "yes" if preamble else "no",
        "--aof-timestamp-enabled", "no" if preamble else "yes", *extra))
    try:
        server.start()
        with redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=10) as r:
            r.set("base:str", "one")
            r.set("base:decoy", DECOY)
            r.hset("base:hash", mapping={"f": "v"})
            r.rpush("base:list", "a", "b")
            r.execute_command("SELECT", "3")
            r.set("base:in-db-3", "x")
            r.execute_command("SELECT", "0")
            manifest = server.workdir / "appendonlydir" / "appendonly.aof.manifest"
            _wait(lambda: manifest.exists() and r.info("persistence")["aof_rewrite_in_progress"] == 0,
                  "the first AOF")
            r.execute_command("BGREWRITEAOF")
            _wait(lambda: ".2.base." in manifest.read_text()
                  and r.info("persistence")["aof_rewrite_in_progress"] == 0, "BGREWRITEAOF")
            r.execute_command("SELECT", "2")
            r.set("incr:bin", b"bin\r\nval\x00")
            tx = r.pipeline(transaction=True)
            tx.incr("incr:n").expire("incr:n", 100).execute()
            r.eval("redis.call('SET', KEYS[1], 'from-lua')", 1, "incr:lua")
        shutil.copytree(server.workdir / "appendonlydir", out)
    finally:
        server.stop()
    return out


@pytest.fixture(scope="module")
def aof_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, bool], Path]]:
    """(role, preamble) -> a copy of the server's appendonlydir; the servers are already stopped."""
    root = tmp_path_factory.mktemp("aofs")
    dirs = {(role, preamble): _write_aof(role, preamble, root / f"{role}-{'rdb' if preamble else 'aof'}")
            for role in config.ROLES for preamble in (True, False)}
    # rdbchecksum no: the RDB ends with a zero checksum, so the decoy cannot be told apart by it.
    dirs[("redis", "no-checksum")] = _write_aof("redis", True, root / "redis-no-checksum", ("--rdbchecksum", "no"))
    yield dirs
    shutil.rmtree(root, ignore_errors=True)


def _part(directory: Path, kind: str) -> Path:
    return next(p for p in directory.iterdir() if f".{kind}." in p.name)


INCR_ARGS = [
    (b"SELECT", b"2"), (b"SET", b"incr:bin", b"bin\r\nval\x00"), (b"MULTI",), (b"INCRBY", b"incr:n", b"1"),
]


def _check_incr(recs: list) -> None:
    assert [r.args for r in recs[:4]] == INCR_ARGS
    assert recs[4].name == "PEXPIREAT"  # relative expiry is written as an absolute time
    assert [r.name for r in recs[5:]] == ["EXEC", "SET"]  # the script as its effect
    assert all(r.db == 2 and r.session == "aof" and not r.from_script for r in recs)


@pytest.mark.parametrize("role", config.ROLES)
def test_aof_dir_with_rdb_base(aof_dirs, role: str) -> None:
    directory = aof_dirs[(role, True)]
    with open_capture(directory) as capture:
        assert capture.format == AOF_DIR
        assert capture.starting_data == _part(directory, "base")
        assert capture.starting_data.read_bytes()[:9] == (b"REDIS0011" if role == "redis" else b"VALKEY080")
        recs = list(capture.records())
    assert all(isinstance(r, Command) for r in recs)
    _check_incr(recs)


@pytest.mark.parametrize("role", config.ROLES)
def test_aof_dir_with_aof_base(aof_dirs, role: str) -> None:
    directory = aof_dirs[(role, False)]
    with open_capture(directory / "appendonly.aof.manifest") as capture:  # the manifest itself also opens
        assert capture.format == AOF_DIR and capture.starting_data is None
        recs = list(capture.records())
    base = [r for r in recs if r.source.endswith(".base.aof")]
    assert base[0].args == (b"SELECT", b"0") and base[0].ts is not None  # #TS annotation read
    assert {r.args[1] for r in base if r.db == 3 and r.name == "SET"} == {b"base:in-db-3"}
    assert (b"SET", b"base:decoy", DECOY) in [r.args for r in base]
    assert [r.line for r in base] == list(range(1, len(base) + 1))
    _check_incr(recs[len(base):])


def test_aof_dir_found_from_the_server_dir(aof_dirs, tmp_path: Path) -> None:
    shutil.copytree(aof_dirs[("redis", True)], tmp_path / "appendonlydir")
    assert detect_format(tmp_path) == AOF_DIR
    _check_incr(commands(tmp_path))


def _legacy(aof_dirs, role: str, tmp_path: Path, name: str = "legacy-aof") -> Path:
    """A single AOF with an RDB preamble (the pre-7 layout): the base RDB, then the incr commands."""
    directory = aof_dirs[(role, True)]
    path = tmp_path / name
    path.write_bytes(_part(directory, "base").read_bytes() + _part(directory, "incr").read_bytes())
    return path


@pytest.mark.parametrize("role", config.ROLES)
def test_single_aof_with_rdb_preamble(aof_dirs, role: str, tmp_path: Path) -> None:
    path = _legacy(aof_dirs, role, tmp_path)
    assert len(list(_CANDIDATE.finditer(path.read_bytes()))) >= 2  # the decoy: the checksum decides
    base = _part(aof_dirs[(role, True)], "base").read_bytes()
    with open_capture(path) as capture:
        assert capture.format == AOF
        assert capture.starting_data.read_bytes() == base
        recs = list(capture.records())
        temp = capture.starting_data
    assert not temp.exists()  # the extracted RDB goes with close()
    assert all(isinstance(r, Command) for r in recs)
    _check_incr(recs)


def test_single_aof_with_unchecksummed_preamble(aof_dirs, tmp_path: Path) -> None:
    directory = aof_dirs[("redis", "no-checksum")]
    base = _part(directory, "base").read_bytes()
    assert base[-8:] == bytes(8)
    path = tmp_path / "legacy"
    path.write_bytes(base + _part(directory, "incr").read_bytes())
    with open_capture(path) as capture:
        assert capture.starting_data.read_bytes() == base
        _check_incr(list(capture.records()))


def test_rdb_crc_matches_the_servers(aof_dirs) -> None:
    for role in config.ROLES:
        data = _part(aof_dirs[(role, True)], "base").read_bytes()
        assert crc64(0, data[:-8]) == int.from_bytes(data[-8:], "little")


@pytest.mark.parametrize("role", config.ROLES)
def test_extracted_preamble_loads_in_the_server(aof_dirs, role: str, tmp_path: Path, fresh_server) -> None:
    with open_capture(_legacy(aof_dirs, role, tmp_path)) as capture:
        rdb = capture.starting_data
        server = fresh_server(role, extra_args=("--dir", str(rdb.parent), "--dbfilename", rdb.name))
        with redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=10) as r:
            assert r.get("base:decoy") == DECOY and r.hgetall("base:hash") == {b"f": b"v"}
        server.stop()


def test_single_aof_without_preamble(aof_dirs, tmp_path: Path) -> None:
    directory = aof_dirs[("redis", False)]
    path = tmp_path / "plain.aof"
    path.write_bytes(_part(directory, "base").read_bytes() + _part(directory, "incr").read_bytes())
    with open_capture(path) as capture:
        assert capture.format == AOF and capture.starting_data is None
        recs = list(capture.records())
    assert recs[0].args == (b"SELECT", b"0") and all(isinstance(r, Command) for r in recs)
    _check_incr(recs[-7:])


def test_rdb_alone_is_starting_data_only(aof_dirs, tmp_path: Path) -> None:
    rdb = tmp_path / "dump"
    rdb.write_bytes(_part(aof_dirs[("redis", True)], "base").read_bytes())
    with open_capture(rdb) as capture:
        assert capture.format == RDB and capture.starting_data == rdb
        assert list(capture.records()) == []


def test_truncated_aof_tail(aof_dirs, tmp_path: Path) -> None:
    whole = _legacy(aof_dirs, "redis", tmp_path).read_bytes()
    last = whole.rindex(b"*3\r\n$3\r\nSET\r\n")
    for cut in (3, 6, 12):  # inside the command header, a bulk header, a bulk
        path = tmp_path / f"cut-{cut}"
        path.write_bytes(whole[:last + cut])
        recs = records(path)
        assert [r.name for r in recs[:-1]] == ["SELECT", "SET", "MULTI", "INCRBY", "PEXPIREAT", "EXEC"]
        assert isinstance(recs[-1], BadLine) and recs[-1].line == 7
        assert recs[-1].reason.startswith("truncated: the file ends inside a command at byte ")


def test_unfinished_multi_at_the_end(aof_dirs, tmp_path: Path) -> None:
    whole = _legacy(aof_dirs, "redis", tmp_path).read_bytes()
    path = tmp_path / "cut-in-exec"
    path.write_bytes(whole[:whole.rindex(b"*1\r\n$4\r\nEXEC\r\n") + 10])
    recs = records(path)
    assert [r.name for r in recs[:-2]] == ["SELECT", "SET", "MULTI", "INCRBY", "PEXPIREAT"]
    assert recs[-2].reason.startswith("truncated")
    # Redis drops the transaction the cut left open when it loads the file, and the record says so.
    assert recs[-1].reason.startswith("MULTI without EXEC") and recs[-1].line == recs[2].line


def test_corrupt_aof_part_is_skipped(aof_dirs, tmp_path: Path) -> None:
    whole = _legacy(aof_dirs, "redis", tmp_path).read_bytes()
    path = tmp_path / "corrupt"
    path.write_bytes(whole.replace(b"$8\r\nincr:bin", b"$x\r\nincr:bin", 1))
    recs = records(path)
    bad = [r for r in recs if isinstance(r, BadLine)]
    assert len(bad) == 1 and bad[0].line == 2 and "not RESP at byte" in bad[0].reason
    assert [r.name for r in recs if isinstance(r, Command)] == ["SELECT", "MULTI", "INCRBY", "PEXPIREAT",
                                                                 "EXEC", "SET"]


def test_manifest_errors(aof_dirs, tmp_path: Path) -> None:
    directory = tmp_path / "dir"
    shutil.copytree(aof_dirs[("redis", True)], directory)
    manifest = directory / "appendonly.aof.manifest"
    text = manifest.read_text()
    manifest.write_text(text + "file missing.incr.aof seq 9 type i\n")
    with pytest.raises(CaptureError, match="missing: missing.incr.aof"):
        open_capture(directory)
    manifest.write_text(text + "file appendonly.aof.2.incr.aof seq 1 type i\n")
    with pytest.raises(CaptureError, match="does not rise"):
        open_capture(directory)
    # sdscatrepr quoting of a name with a space, as Redis writes it
    _part(directory, "incr").rename(directory / "with space.incr.aof")
    manifest.write_text(text.replace("appendonly.aof.2.incr.aof", '"with space.incr.aof"'))
    _check_incr(commands(directory))


# --- gzip, detection, streaming -------------------------------------------------------------------

def test_gzip_of_each_format(aof_dirs, tmp_path: Path) -> None:
    samples = [DATA / "workload.monitor", DATA / "sample.commands", _legacy(aof_dirs, "valkey", tmp_path)]
    for plain in samples:
        packed = gzipped(plain, tmp_path)
        assert detect_format(packed) == detect_format(plain)
        assert [(r.line, getattr(r, "args", None)) for r in records(packed)] == \
               [(r.line, getattr(r, "args", None)) for r in records(plain)]
    rdb = tmp_path / "base-rdb"
    rdb.write_bytes(_part(aof_dirs[("redis", True)], "base").read_bytes())
    with open_capture(gzipped(rdb, tmp_path)) as capture:
        assert capture.format == RDB and capture.starting_data.read_bytes() == rdb.read_bytes()


def test_truncated_gzip_gives_a_bad_line(tmp_path: Path) -> None:
    packed = gzipped(DATA / "workload.monitor", tmp_path).read_bytes()
    cut = tmp_path / "cut.gz"
    cut.write_bytes(packed[:len(packed) // 2])
    recs = records(cut)
    assert isinstance(recs[-1], BadLine) and "compressed data ends early" in recs[-1].reason
    assert len(recs) > 10 and all(isinstance(r, Command) for r in recs[:-1])


def test_detection_reads_content_not_names(aof_dirs, tmp_path: Path) -> None:
    named = {"capture.aof": DATA / "workload.monitor", "traffic.monitor": DATA / "sample.commands",
             "commands.txt": _part(aof_dirs[("redis", False)], "incr")}
    for name, source in named.items():
        shutil.copy(source, tmp_path / name)
    assert [detect_format(tmp_path / n) for n in named] == [MONITOR, COMMANDS, AOF]
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "binary").write_bytes(b"\x00\x01garbage")
    (tmp_path / "dir").mkdir()
    for name, message in [("empty", "empty"), ("binary", "binary content"), ("dir", "not a multi-part AOF"),
                          ("absent", "no such file")]:
        with pytest.raises(CaptureError, match=message) as info:
            open_capture(tmp_path / name)
        assert "\n" not in str(info.value)


def test_records_stream_in_flat_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.monitor"
    write_capture(path, 100_000, 20, 3, compress=False)
    with open_capture(path) as capture:
        stream = capture.records()
        assert inspect.isgenerator(stream)
        tracemalloc.start()
        try:
            for count, _ in enumerate(stream, 1):
                pass
            held, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert count == 100_000
    # Holding the records would take ~30 MB; what stays is CPython's fixed-size tuple free lists.
    assert held < 2 * 1024 * 1024 and peak < 3 * 1024 * 1024


# --- credentials ----------------------------------------------------------------------------------

@pytest.mark.parametrize("args, secret", [
    ([b"AUTH", b"pw"], {1}),
    ([b"auth", b"user", b"pw"], {1, 2}),
    ([b"HELLO", b"3", b"AUTH", b"user", b"pw", b"SETNAME", b"app"], {3, 4}),
    ([b"CONFIG", b"SET", b"requirepass", b"pw"], {3}),
    ([b"config", b"set", b"maxmemory", b"1mb", b"MasterAuth", b"pw", b"primaryauth", b"pw2"], {5, 7}),
    ([b"ACL", b"SETUSER", b"u", b"on", b">pw", b"#" + b"a" * 64, b"<old", b"!" + b"b" * 64, b"~*"], {4, 5, 6, 7}),
    ([b"MIGRATE", b"h", b"1", b"", b"0", b"100", b"COPY", b"AUTH", b"pw", b"KEYS", b"AUTH", b"k"], {8}),
    ([b"MIGRATE", b"h", b"1", b"k", b"0", b"100", b"AUTH2", b"user", b"pw"], {7, 8}),
])
def test_credentials_found_and_redacted(args: list[bytes], secret: set[int]) -> None:
    assert secret_positions(args) == secret and carries_credentials(args)
    shown = redact(args)
    assert [i for i, a in enumerate(shown) if a == REDACTED] == sorted(secret)
    assert all(shown[i] == a for i, a in enumerate(args) if i not in secret)


@pytest.mark.parametrize("args", [
    [b"HELLO", b"3"], [b"CONFIG", b"SET", b"maxmemory", b"requirepass"], [b"ACL", b"SETUSER", b"u", b"on", b"~*"],
    [b"MIGRATE", b"h", b"1", b"AUTH", b"0", b"100"], [b"GET", b"AUTH"], [b"CONFIG", b"GET", b"requirepass"], [],
])
def test_no_credentials(args: list[bytes]) -> None:
    assert not carries_credentials(args) and redact(args) == tuple(args)


def test_bare_auth_still_counts() -> None:
    assert carries_credentials([b"AUTH"]) and redact([b"AUTH"]) == (b"AUTH",)


# --- against real redis-cli and servers ---------------------------------------------------------

SECRET = "rvc-test-secret-pw"


@pytest.mark.parametrize("role", config.ROLES)
def test_real_monitor_escapes_and_hidden_credentials(role: str, fresh_server, tmp_path: Path) -> None:
    workload = _workload_module()
    server = fresh_server(role)
    out = tmp_path / "live.monitor"
    values = [bytes(range(256)), b'"\\', b"", "café".encode(), b"\r\n\t\a\b\x0b\x0c"]
    with workload.monitoring(server.port, out), \
            redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=10) as r:
        for index, value in enumerate(values):
            r.set(b"key\x00%d" % index, value)
        r.execute_command("ACL", "SETUSER", "replay", "on", f">{SECRET}", "~*", "+@all")
        r.execute_command("CONFIG", "SET", "masterauth", SECRET)
        r.execute_command("AUTH", "replay", SECRET)
        r.execute_command("HELLO", "2", "AUTH", "replay", SECRET)
        r.eval("return redis.call('GET', KEYS[1])", 1, "key\x000")
    assert SECRET.encode() not in out.read_bytes()
    recs = records(out)
    assert not [r for r in recs if isinstance(r, BadLine)]
    sets = [r.args for r in recs if r.name == "SET"]
    assert sets == [(b"SET", b"key\x00%d" % i, v) for i, v in enumerate(values)]
    names = [r.name for r in recs]
    assert "ACL" not in names and "CONFIG" not in names  # MONITOR never shows them
    auth = [r for r in recs if carries_credentials(r.args)]
    assert [r.args for r in auth] == [(b"AUTH", REDACTED, REDACTED),
                                      (b"HELLO", b"2", b"AUTH", REDACTED, REDACTED)]
    lua = [r for r in recs if r.from_script]
    assert [r.args for r in lua] == [(b"GET", b"key\x000")] and lua[0].session == auth[0].session


def test_command_file_parses_as_redis_cli_sends_it(fresh_server, tmp_path: Path) -> None:
    workload = _workload_module()
    server = fresh_server(config.BASELINE)
    cli = embedded_cli()
    out = tmp_path / "fed.monitor"
    with workload.monitoring(server.port, out), (DATA / "sample.commands").open("rb") as stdin:
        fed = subprocess.run([str(cli.path), "-p", str(server.port)], stdin=stdin, capture_output=True,
                             env={**os.environ, **cli.env}, timeout=30)
    assert fed.returncode == 0
    assert fed.stdout.count(b"Invalid argument(s)") == 2  # redis-cli refuses the two lines we report
    seen = [r.args for r in records(out) if r.name != "ECHO" or r.args[1] != workload.END_MARKER]
    assert seen == [r.args for r in commands(DATA / "sample.commands")]
