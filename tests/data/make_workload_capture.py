r"""Make tests/data/workload.monitor: a real `redis-cli MONITOR` capture of a small multi-client workload.

Usage (from the repo root, under the shared lock): python tests/data/make_workload_capture.py [OUT]
It starts the embedded Redis (app/servers.py) with a unix socket, attaches the embedded redis-cli
(app/provision.embedded_cli) in MONITOR mode, runs the workload below through redis-py from four
clients (three TCP, one on the unix socket) in a fixed interleaving, waits until MONITOR has shown
the last command, and stops everything. It prints the line of every marked command; the table below
is that output for the committed capture (tests/test_captures.py checks it still matches).

Marked lines of the committed capture (label, line, what it holds):
    unix            26  the first data command on the unix socket ("unix:/tmp/.../redis.sock")
    select_2        37  SELECT 2 on the fourth client; its later commands show db 2
    escapes         39  SET of a value holding every MONITOR escape (\" \\ \n \r \t \a \b \xHH)
    lua_ok          51  EVAL that succeeds; its SET and INCR follow as [0 lua] lines 52-53
    lua_unknown     54  EVAL calling an unknown command: the error text differs (Redis/Valkey)
    lua_not_allowed 55  EVAL calling SUBSCRIBE, not allowed from scripts: error text differs
    fcall           57  FCALL of the function FUNCTION LOAD (line 56) made; its INCR is the [0 lua] line 58
    multi           59  MULTI of a redis-py transaction, EXEC on line 63
    auth            70  AUTH of an ACL user: MONITOR shows "(redacted)" for user and password
                        (the ACL SETUSER before it is not in the capture: MONITOR never shows it)
    ifeq            73  SET k v IFEQ v: a syntax error on Redis 7.2, valid on Valkey 9.0
    hscan_novalues  74  HSCAN h 0 NOVALUES: an error on Redis 7.2 (NOVALUES came in 7.4), valid on Valkey
    srandmember     75  SRANDMEMBER: random reply
    spop            76  SPOP: random reply and random effect
    scan            77  SCAN 0: cursor and order differ between servers
    time            78  TIME: differs on every call
    randomkey       79  RANDOMKEY: random reply
Line 1 is redis-cli's "OK"; the last line is ECHO end-of-workload, the marker the script waits for.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from app.captures.monitor import parse_monitor  # noqa: E402
from app.provision import embedded_binary, embedded_cli  # noqa: E402
from app.servers import EmbeddedServer  # noqa: E402

OUT = Path(__file__).resolve().parent / "workload.monitor"
END_MARKER = b"end-of-workload"
WAIT_S = 20.0
# A password that exists only in this throwaway server; MONITOR must show it redacted.
WORKLOAD_USER, WORKLOAD_PASSWORD = "replayuser", "workload-only-pw"
FUNCTION_CODE = ("#!lua name=workload\n"
                 "redis.register_function('wl_incr', function(keys, args) return redis.call('INCR', keys[1]) end)")
ESCAPES_VALUE = b'quote" backslash\\ nl\n cr\r tab\t bell\a bs\b nul\x00 high\xff\xe9 del\x7f'


def _wait_for(path: Path, needle: bytes, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if needle in path.read_bytes():
            return
        time.sleep(0.05)
    raise RuntimeError(f"redis-cli MONITOR did not show {what} within {WAIT_S:.0f} s")


def _call(client: redis.Redis, *args: object) -> object:
    """One command; an error reply is part of the workload (the replay compares it), not a failure."""
    try:
        return client.execute_command(*args)
    except redis.ResponseError as exc:
        return exc


def workload(tcp: Callable[[int], redis.Redis], unix: redis.Redis, mark: Callable[..., None]) -> None:
    """The commands, in a fixed order; mark(label, *args) names a command whose line is reported."""
    a, b, c = tcp(0), tcp(0), tcp(0)
    for client, name in ((a, "app-a"), (b, "app-b"), (c, "app-c"), (unix, "app-unix")):
        _call(client, "CLIENT", "SETNAME", name)
    # strings, with expiry
    _call(a, "SET", "user:1:name", "ada")
    _call(b, "SET", "session:1", "token", "EX", "300")
    _call(a, "INCR", "counter")
    _call(b, "INCRBY", "counter", "5")
    _call(a, "EXPIRE", "user:1:name", "1000")
    _call(b, "PEXPIRE", "counter", "900000")
    _call(a, "TTL", "session:1")
    _call(b, "PERSIST", "counter")
    mark("unix", "GET", "user:1:name")
    _call(unix, "GET", "user:1:name")
    # hashes, lists
    _call(c, "HSET", "h", "f1", "v1", "f2", "v2", "f3", "v3")
    _call(unix, "HINCRBY", "h", "n", "3")
    _call(c, "HGETALL", "h")
    _call(a, "RPUSH", "queue", "j1", "j2", "j3")
    _call(b, "LPOP", "queue")
    _call(unix, "LRANGE", "queue", "0", "-1")
    # db 2 on the fourth client
    d = tcp(0)
    _call(d, "CLIENT", "SETNAME", "app-d")
    mark("select_2", "SELECT", "2")
    _call(d, "SELECT", "2")
    _call(d, "SET", "in-db-2", "yes")
    mark("escapes", "SET", "escapes", ESCAPES_VALUE)
    _call(a, "SET", "escapes", ESCAPES_VALUE)
    _call(d, "DBSIZE")
    # sets, sorted sets, streams
    _call(a, "SADD", "tags", "red", "green", "blue", "cyan", "magenta")
    _call(b, "SINTER", "tags", "tags")
    _call(c, "ZADD", "board", "10", "ada", "20", "bob", "15", "cy")
    _call(c, "ZINCRBY", "board", "7", "ada")
    _call(unix, "ZRANGE", "board", "0", "-1", "WITHSCORES")
    _call(a, "XADD", "events", "1-1", "kind", "login")
    _call(b, "XADD", "events", "*", "kind", "logout")
    _call(c, "XGROUP", "CREATE", "events", "g1", "0")
    _call(c, "XREADGROUP", "GROUP", "g1", "worker", "COUNT", "10", "STREAMS", "events", ">")
    _call(c, "XACK", "events", "g1", "1-1")
    # scripts and functions
    mark("lua_ok", "EVAL")
    _call(a, "EVAL", "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('INCR', KEYS[2])",
          "2", "lua:key", "lua:counter", "from-lua")
    mark("lua_unknown", "EVAL", "return redis.call('nosuchcommand')", "0")
    _call(b, "EVAL", "return redis.call('nosuchcommand')", "0")
    mark("lua_not_allowed", "EVAL", "return redis.call('SUBSCRIBE', 'ch')", "0")
    _call(b, "EVAL", "return redis.call('SUBSCRIBE', 'ch')", "0")
    _call(a, "FUNCTION", "LOAD", "REPLACE", FUNCTION_CODE)
    mark("fcall", "FCALL")
    _call(a, "FCALL", "wl_incr", "1", "fn:counter")
    # a transaction and a plain pipeline
    mark("multi", "MULTI")
    tx = b.pipeline(transaction=True)
    tx.set("tx:1", "a").incr("tx:n").lpush("tx:list", "x").execute()
    pipe = c.pipeline(transaction=False)
    for i in range(5):
        pipe.hset("pipe:h", f"f{i}", i)
    pipe.hlen("pipe:h").execute()
    # an ACL user logging in (ACL SETUSER itself never shows in MONITOR)
    _call(a, "ACL", "SETUSER", WORKLOAD_USER, "on", f">{WORKLOAD_PASSWORD}", "~*", "&*", "+@all")
    mark("auth", "AUTH")
    _call(d, "AUTH", WORKLOAD_USER, WORKLOAD_PASSWORD)
    _call(d, "SET", "as-user", "1")
    # commands that differ between Redis 7.2 and Valkey 9.0
    _call(a, "SET", "k", "v")
    mark("ifeq", "SET", "k", "v", "IFEQ", "v")
    _call(a, "SET", "k", "v", "IFEQ", "v")
    mark("hscan_novalues", "HSCAN", "h", "0", "NOVALUES")
    _call(c, "HSCAN", "h", "0", "NOVALUES")
    # random replies
    mark("srandmember", "SRANDMEMBER")
    _call(b, "SRANDMEMBER", "tags", "2")
    mark("spop", "SPOP")
    _call(b, "SPOP", "tags")
    mark("scan", "SCAN")
    _call(a, "SCAN", "0", "COUNT", "100")
    mark("time", "TIME")
    _call(c, "TIME")
    mark("randomkey", "RANDOMKEY")
    _call(unix, "RANDOMKEY")


@contextmanager
def monitoring(port: int, out: Path) -> Iterator[None]:
    """redis-cli MONITOR on the server at `port`, written to `out`, for the duration of the block.

    On a normal exit it sends ECHO end-of-workload from its own connection and waits until MONITOR
    has written it, so every command of the block is in the file; redis-cli is stopped in any case.
    """
    cli = embedded_cli()
    with out.open("wb") as sink:
        monitor = subprocess.Popen([str(cli.path), "-p", str(port), "MONITOR"], env={**os.environ, **cli.env},
                                   stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
        try:
            _wait_for(out, b"OK\n", "its OK")
            yield
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.sendall(b"ECHO " + END_MARKER + b"\r\n")
                conn.recv(64)
            _wait_for(out, b'"' + END_MARKER + b'"', "the last command")
        finally:
            monitor.terminate()
            monitor.wait(timeout=10)


def capture(out: Path) -> dict[str, int]:
    """Run the workload under MONITOR into `out`; returns label -> line of each marked command."""
    tmp = Path(tempfile.mkdtemp(prefix="rvc-workload-"))
    sock = tmp / "redis.sock"
    clients: list[redis.Redis] = []
    marks: list[tuple[str, tuple[bytes, ...]]] = []
    server = EmbeddedServer(embedded_binary("redis"), "workload",
                            extra_args=("--unixsocket", str(sock), "--unixsocketperm", "700"))
    try:
        server.start()
        with monitoring(server.port, out):

            def tcp(db: int) -> redis.Redis:
                clients.append(redis.Redis(host="127.0.0.1", port=server.port, db=db, socket_timeout=10))
                return clients[-1]

            unix = redis.Redis(unix_socket_path=str(sock), socket_timeout=10)
            clients.append(unix)
            workload(tcp, unix, lambda label, *args: marks.append(
                (label, tuple(a if isinstance(a, bytes) else str(a).encode() for a in args))))
    finally:
        for client in clients:
            client.close()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return locate(out, marks)


def locate(path: Path, marks: list[tuple[str, tuple[bytes, ...]]]) -> dict[str, int]:
    """The line of each marked command: the first line after the previous mark whose args start so."""
    with path.open("rb") as lines:
        records = [r for r in parse_monitor(lines, str(path)) if hasattr(r, "args") and not r.from_script]
    found, position = {}, 0
    for label, prefix in marks:
        for index in range(position, len(records)):
            if records[index].args[:len(prefix)] == prefix:
                found[label], position = records[index].line, index + 1
                break
        else:
            raise RuntimeError(f"marked command {label} not found in the capture")
    return found


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    for name, line in sorted(capture(target).items(), key=lambda item: item[1]):
        print(f"{name:<16}{line}")
