"""Never leave a server worse than found: runs killed outright and repaired by the next one, a second
Ctrl-C during cleanup, concurrent runs, every password form, wrong targets, bad arguments, failed sides.

Every test runs the tool as a user does (a subprocess) against real servers the test started itself,
holding "foreign" data: keys in db 0 and db 3, non-default CONFIG, a function library and an ACL user
that must come out exactly as they went in. Waiting is by polling a server-side condition with a
deadline, never by sleeping a fixed time.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from app import config
from app.provision import embedded_binary

ROOT = Path(__file__).resolve().parent.parent
USER_LIBRARY = "#!lua name=applib\nredis.register_function('appfn', function() return 'app' end)"
# Non-default settings of "the application's" server: a run must leave exactly these.
APP_CONFIG = {"maxmemory": "300000000", "maxmemory-policy": "volatile-lru", "maxmemory-samples": "7",
              "notify-keyspace-events": "Kx"}
DEADLINE_S = 120


def rvc(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "app.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen | None = None, what: str = "") -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the run ended before {what}: {proc.stderr.read()[-1500:]}")
        time.sleep(0.005)
    pytest.fail(f"timed out waiting for {what}")


def seed(conn: redis.Redis, foreign_keys: bool = True) -> None:
    """The application's data: keys in db 0 and 3 (unless the test needs an empty server), CONFIG, a
    function library and an ACL user."""
    if foreign_keys:
        conn.mset({f"customer:{n}": f"order-{n}" for n in range(40)})
        conn.execute_command("SELECT", 3)
        conn.set("other-db-key", "x")
        conn.execute_command("SELECT", 0)
    for name, value in APP_CONFIG.items():
        conn.config_set(name, value)
    conn.execute_command("FUNCTION", "LOAD", USER_LIBRARY)
    conn.execute_command("ACL", "SETUSER", "app", "on", ">app-pw", "~customer:*", "+get")


def state(port: int) -> dict:
    """Everything a run could disturb, read without disturbing it."""
    keys = {}
    for db in (0, 3):
        with redis.Redis(port=port, db=db, decode_responses=True) as conn:
            keys[db] = sorted(conn.scan_iter(count=1000))
    with redis.Redis(port=port, decode_responses=True) as conn:
        return {"keys": keys, "config": {k: conn.config_get(k)[k] for k in APP_CONFIG},
                "libraries": sorted(library_names(conn)),
                "acl": sorted(conn.acl_users())}


def library_names(conn: redis.Redis) -> list[str]:
    """FUNCTION LIST's library names, whatever shape the protocol gives (RESP2 flat lists, RESP3 maps)."""
    names = []
    for lib in conn.function_list():
        fields = lib if isinstance(lib, dict) else dict(zip(lib[::2], lib[1::2]))
        name = fields.get("library_name", fields.get(b"library_name"))
        names.append(name.decode() if isinstance(name, bytes) else name)
    return names


def tool_leftovers(port: int) -> dict:
    keys = []
    for db in range(16):
        with redis.Redis(port=port, db=db, decode_responses=True) as conn:
            keys.extend(conn.scan_iter(match="rvc:*", count=1000))
    with redis.Redis(port=port, decode_responses=True) as conn:
        return {"keys": keys, "libraries": [name for name in library_names(conn) if name.startswith("rvc_")]}


@pytest.fixture
def app_servers(fresh_server) -> Iterator[dict]:
    """A Redis and a Valkey 'in staging': started by the test, so for the tool they are not its own."""
    yield {role: fresh_server(role) for role in config.ROLES}


def urls(servers: dict) -> list[str]:
    return ["--redis", servers["redis"].url, "--valkey", servers["valkey"].url]


# --- killed outright, repaired by the next run ---------------------------------------------------------------

def keys_of(scenario: str) -> Callable[[redis.Redis], bool]:
    return lambda conn: any(conn.scan_iter(match=f"rvc:*:{scenario}:*", count=1000))


def library_loaded(conn: redis.Redis) -> bool:
    return any(name.startswith("rvc_") for name in library_names(conn))


def maxmemory_lowered(conn: redis.Redis) -> bool:
    return conn.config_get("maxmemory")["maxmemory"] != APP_CONFIG["maxmemory"]


# The library lives a few milliseconds, too short to catch reliably on a loaded machine: the killed run
# logs in as a user that may do everything but FUNCTION DELETE, so its library stays until the kill.
KEEPS_ITS_LIBRARY = ["on", ">keeper-pw", "~*", "&*", "+@all", "-function|delete"]


def keeper_urls(servers: dict) -> list[str]:
    return ["--redis", servers["redis"].url.replace("redis://", "redis://keeper:keeper-pw@"),
            "--valkey", servers["valkey"].url.replace("redis://", "redis://keeper:keeper-pw@")]


@pytest.mark.parametrize("scenarios, when, foreign", [
    ("basic_crud,scan_and_iter", keys_of("scan_and_iter"), True),
    ("lua_and_tx", library_loaded, True),
    ("memory_eviction", maxmemory_lowered, False),  # the fill runs only on a server holding no foreign keys
], ids=["during scan_and_iter", "during lua_and_tx", "during memory_eviction"])
def test_a_run_killed_outright_is_repaired_by_the_next(app_servers: dict, tmp_path: Path, scenarios: str,
                                                        when: Callable, foreign: bool) -> None:
    keeps_library = when is library_loaded
    for srv in app_servers.values():
        with redis.Redis(port=srv.port) as conn:
            seed(conn, foreign_keys=foreign)
            if keeps_library:
                conn.execute_command("ACL", "SETUSER", "keeper", *KEEPS_ITS_LIBRARY)
    before = {role: state(srv.port) for role, srv in app_servers.items()}
    killed = start(*(keeper_urls(app_servers) if keeps_library else urls(app_servers)), "--allow-server-changes",
                   "--scenarios", scenarios, "--out", str(tmp_path / "killed"))
    with redis.Redis(port=app_servers["redis"].port, decode_responses=True) as conn:
        wait_until(lambda: when(conn), killed, f"the run reached its change ({scenarios})")
    if keeps_library:  # and its next write (a later step, the journal's close) waits: it is alive when killed
        for srv in app_servers.values():
            with redis.Redis(port=srv.port) as conn:
                conn.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")
    killed.kill()  # SIGKILL: no handler, no cleanup
    killed.wait(timeout=30)
    for srv in app_servers.values():
        with redis.Redis(port=srv.port) as conn:
            conn.execute_command("CLIENT", "UNPAUSE")
    with redis.Redis(port=app_servers["redis"].port) as conn:
        run_id = json.loads(next(iter(conn.hgetall(config.JOURNAL_KEY).values())))["run"]
    with redis.Redis(port=app_servers["redis"].port, decode_responses=True) as conn:
        assert any(tool_leftovers(app_servers["redis"].port).values()) or maxmemory_lowered(conn), \
            "the killed run left nothing to repair"

    after = rvc(*urls(app_servers), "--scenarios", "basic_crud", "--out", str(tmp_path / "next"))
    assert after.returncode == 0, after.stderr
    assert f"repaired the leftovers of run {run_id}" in after.stdout
    document = json.loads((tmp_path / "next" / "report.json").read_text())
    assert any(run_id in line for line in document["repaired"])
    for role, srv in app_servers.items():
        assert state(srv.port) == before[role], role
        assert tool_leftovers(srv.port) == {"keys": [], "libraries": []}, role


# --- signals -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gap_s", [0.005, 0.05], ids=["5 ms apart", "50 ms apart"])
def test_a_second_ctrl_c_never_breaks_the_cleanup(app_servers: dict, tmp_path: Path, gap_s: float) -> None:
    for srv in app_servers.values():
        with redis.Redis(port=srv.port) as conn:
            seed(conn)
    before = {role: state(srv.port) for role, srv in app_servers.items()}
    proc = start(*urls(app_servers), "--scenarios", "basic_crud,scan_and_iter,data_structures",
                 "--out", str(tmp_path))
    with redis.Redis(port=app_servers["redis"].port) as conn:
        wait_until(lambda: keys_of("scan_and_iter")(conn), proc, "scan_and_iter wrote its keys")
    proc.send_signal(signal.SIGINT)
    time.sleep(gap_s)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in err
    assert "interrupted by SIGINT" in err and "servers stopped" not in err  # it started no server
    document = json.loads((tmp_path / "report.json").read_text())
    assert document["completed"] is False and document["interrupted"] == "SIGINT"
    partial = [res for per in document["results"].values() for res in per.values() if "interrupted" in res["detail"]]
    assert partial, "the interrupted scenario's partial result was dropped"
    for role, srv in app_servers.items():
        assert state(srv.port) == before[role]
        assert tool_leftovers(srv.port) == {"keys": [], "libraries": []}
        with redis.Redis(port=srv.port) as conn:
            assert not conn.exists(config.JOURNAL_KEY)


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGQUIT], ids=["SIGHUP", "SIGQUIT"])
def test_a_closed_terminal_stops_the_run_like_sigterm(app_servers: dict, tmp_path: Path, signum: int) -> None:
    proc = start(*urls(app_servers), "--scenarios", "scan_and_iter", "--out", str(tmp_path))
    with redis.Redis(port=app_servers["redis"].port) as conn:
        wait_until(lambda: keys_of("scan_and_iter")(conn), proc, "scan_and_iter wrote its keys")
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and f"interrupted by {signal.Signals(signum).name}" in err, err
    assert all(tool_leftovers(srv.port)["keys"] == [] for srv in app_servers.values())


def test_concurrent_runs_the_second_refuses_in_one_line(app_servers: dict, tmp_path: Path) -> None:
    first = start(*urls(app_servers), "--scenarios", "scan_and_iter,data_structures", "--out", str(tmp_path / "a"))
    with redis.Redis(port=app_servers["redis"].port) as conn:
        wait_until(lambda: conn.exists(config.JOURNAL_KEY), first, "the first run journalled itself")
        first_run = json.loads(next(iter(conn.hgetall(config.JOURNAL_KEY).values())))["run"]
    second = rvc(*urls(app_servers), "--scenarios", "basic_crud", "--out", str(tmp_path / "b"))
    assert second.returncode == 4, second.stderr
    assert f"another run of the tool is using this server: run {first_run}" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    document = json.loads((tmp_path / "a" / "report.json").read_text())
    assert document["completed"] and {r["status"] for per in document["results"].values() for r in per.values()} <= {"OK", "WARN"}


def test_cleanup_removes_what_any_earlier_run_left(app_servers: dict, tmp_path: Path) -> None:
    srv = app_servers["valkey"]
    with redis.Redis(port=srv.port) as conn:
        seed(conn)
        before = state(srv.port)
        conn.set("rvc:0a1b2c:basic_crud:k", "left by a run nobody journalled")
        conn.execute_command("FUNCTION", "LOAD", "#!lua name=rvc_0a1b2c_lua_and_tx_\n"
                             "redis.register_function('rvc_0a1b2c_f', function() return 1 end)")
    proc = rvc("--valkey", srv.url, "--targets", "valkey", "--cleanup")
    assert proc.returncode == 0, proc.stderr
    assert "1 rvc:* keys, 1 rvc_* function libraries" in proc.stdout
    assert state(srv.port) == before and tool_leftovers(srv.port) == {"keys": [], "libraries": []}


def processes_working_in(folders: list[Path]) -> list[int]:
    """Processes whose current folder is one of `folders` (the servers started in them)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and Path(os.readlink(entry / "cwd")) in folders:
                found.append(int(entry.name))
        except OSError:
            continue  # gone meanwhile
    return found


def test_a_killed_embedded_run_leaves_no_folder_after_the_next(tmp_path: Path) -> None:
    import tempfile
    proc = start("--scenarios", "scan_and_iter", "--out", str(tmp_path / "killed"))
    mine = lambda: [p for p in Path(tempfile.gettempdir()).glob("rvc-*")  # noqa: E731
                    if (p / "owner.pid").exists() and (p / "owner.pid").read_text() == str(proc.pid)]
    wait_until(lambda: len(mine()) >= 2, proc, "the embedded servers started")
    left = mine()
    proc.kill()
    proc.wait(timeout=30)
    assert all(p.exists() for p in left)
    # Its servers die with it, also one it was forking when the kill came (it would be an orphan).
    wait_until(lambda: not processes_working_in(left), what="the killed run's servers to stop")
    rvc("--scenarios", "basic_crud", "--out", str(tmp_path / "next"))
    assert not any(p.exists() for p in left)


# --- passwords -----------------------------------------------------------------------------------------------

SECRET = "Zq7xW9vKp3mTt5"  # no English word inside: every 4-character fragment is a leak


def fragments(secret: str) -> list[str]:
    return sorted({secret[i:i + 4] for i in range(len(secret) - 3)})


def everything_written(proc: subprocess.CompletedProcess, folder: Path) -> str:
    files = [p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()] if folder.exists() else []
    return "\n".join([proc.stdout, proc.stderr, *files])


@pytest.mark.parametrize("form", ["userinfo", "user and password", "query", "environment", "unparsable"])
def test_no_password_form_leaks_into_any_output(fresh_server, tmp_path: Path, form: str) -> None:
    secret = SECRET if form != "unparsable" else "Zq@7:w/x#9Kp3"
    srv = fresh_server(config.CANDIDATE, extra_args=("--requirepass", secret))
    port, env = srv.port, {}
    url = {"userinfo": f"redis://:{secret}@127.0.0.1:{port}/0",
           "user and password": f"redis://default:{secret}@127.0.0.1:{port}/0",
           "query": f"redis://127.0.0.1:{port}/0?password={secret}",
           "environment": f"redis://127.0.0.1:{port}/0",
           "unparsable": f"redis://:{secret}@127.0.0.1:{port}/0"}[form]
    if form == "environment":
        env = {"RVC_REDIS_PASSWORD": secret, "RVC_VALKEY_PASSWORD": secret}
    proc = rvc("--redis", url, "--valkey", url, "--force-targets", "--scenarios", "basic_crud",
               "--out", str(tmp_path / "out"), env=env)
    written = everything_written(proc, tmp_path / "out")
    assert "Traceback" not in written
    if form == "unparsable":
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
    leaked = [f for f in fragments(secret) if f in written]
    assert leaked == [], leaked


def test_a_missing_password_says_where_to_put_it(fresh_server) -> None:
    srv = fresh_server(config.CANDIDATE, extra_args=("--requirepass", SECRET))
    proc = rvc("--redis", srv.url, "--valkey", srv.url, "--force-targets", timeout=60)
    assert proc.returncode == 4 and "RVC_REDIS_PASSWORD" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# --- wrong targets, bad arguments ---------------------------------------------------------------------------------

class _Http(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass  # quiet: the test reads the tool's output, not the server's


@pytest.fixture
def http_port() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Http)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_wrong_targets_are_refused_up_front(app_servers: dict, fresh_server, http_port: int) -> None:
    redis_url, valkey_url = app_servers["redis"].url, app_servers["valkey"].url
    replica = fresh_server(config.BASELINE, extra_args=("--replicaof", "127.0.0.1", str(app_servers["redis"].port)))
    cluster = fresh_server(config.CANDIDATE, extra_args=("--cluster-enabled", "yes"))
    valkey_binary = str(embedded_binary("valkey").path)
    cases = {
        "same server twice": (["--redis", redis_url, "--valkey", redis_url], "are the same server"),
        "swapped": (["--redis", valkey_url, "--valkey", redis_url], "were the targets swapped?"),
        "valkey binary as redis": (["--redis-server", valkey_binary, "--valkey", valkey_url], "stands for redis"),
        "read-only replica": (["--redis", replica.url, "--valkey", valkey_url], "is a read-only replica"),
        "cluster node": (["--redis", redis_url, "--valkey", cluster.url], "is a cluster node"),
        "not a Redis server": (["--redis", f"redis://127.0.0.1:{http_port}/0", "--valkey", valkey_url],
                               "does not speak the Redis protocol"),
    }
    for case, (args, message) in cases.items():
        proc = rvc(*args, "--scenarios", "basic_crud", timeout=120)
        assert proc.returncode == 4, (case, proc.stderr)
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, (case, proc.stderr)
        assert "Traceback" not in proc.stderr + proc.stdout, case
    # On purpose, two processes of one binary or a product in the other's place: --force-targets.
    forced = rvc("--redis", valkey_url, "--valkey", valkey_url, "--force-targets", "--scenarios", "basic_crud")
    assert forced.returncode == 0, forced.stderr


@pytest.mark.parametrize("args, message", [
    (["--db", "3", "--redis", "redis://127.0.0.1:1/0", "--valkey", "redis://127.0.0.1:2"], "disagree"),
    (["--db", "-1"], "0 or more"),
    (["--redis", "redis://127.0.0.1:1/abc", "--valkey", "redis://127.0.0.1:2"], "database number"),
    (["--timeout", "nan"], "--timeout"),
    (["--timeout", "inf"], "--timeout"),
    (["--scenarios", ","], "no scenario named"),
    (["--targets", ","], "no target named"),
    (["--max-differences", "-1"], "--max-differences"),
])
def test_every_bad_argument_is_a_usage_error(args: list[str], message: str) -> None:
    proc = rvc(*args, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_database_the_server_lacks_is_a_usage_error(app_servers: dict) -> None:
    base = [u.rsplit("/", 1)[0] if u.startswith("redis://") else u for u in urls(app_servers)]
    proc = rvc(*base, "--db", "99", "--scenarios", "basic_crud", timeout=60)
    assert proc.returncode == 2 and "database 99 does not exist" in proc.stderr, proc.stderr


def test_report_paths_are_probed_before_any_server_starts(tmp_path: Path) -> None:
    proc = rvc("--json", "/proc/x.json", "--scenarios", "basic_crud", "--out", str(tmp_path), timeout=60)
    assert proc.returncode == 5 and "/proc/x.json" in proc.stderr, proc.stderr


# --- a failed side, scripts left ---------------------------------------------------------------------------------

def test_a_side_that_dies_is_not_compared(app_servers: dict, tmp_path: Path) -> None:
    proc = start(*urls(app_servers), "--scenarios", "basic_crud,scan_and_iter,data_structures,lua_and_tx",
                 "--timeout", "2", "--out", str(tmp_path))
    with redis.Redis(port=app_servers["valkey"].port) as conn:
        wait_until(lambda: keys_of("scan_and_iter")(conn), proc, "valkey ran scan_and_iter")
    app_servers["valkey"].process.kill()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    document = json.loads((tmp_path / "report.json").read_text())
    failed = {s for s, r in document["results"]["valkey"].items() if r["status"] == "FAIL"}
    assert {"scan_and_iter", "lua_and_tx"} <= failed  # killed during scan_and_iter; lua_and_tx comes after
    assert {n["scenario"] for n in document["not_compared"]} == failed
    assert not [r for r in document["differences"] if r["scenario"] in failed]
    assert all(set(f["scenarios"]) - failed for f in document["findings"])


def test_scripts_left_in_a_foreign_script_cache_are_counted(app_servers: dict, tmp_path: Path) -> None:
    proc = rvc(*urls(app_servers), "--scenarios", "lua_and_tx", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    warnings = json.loads((tmp_path / "report.json").read_text())["warnings"]
    counted = [w for w in warnings if "stay in the server's script cache" in w]
    assert len(counted) == 2, warnings  # one per server
    with redis.Redis(port=app_servers["valkey"].port) as conn:
        cached = int(counted[-1].split(": ", 1)[1].split()[0])
        assert cached > 0 and conn.info("memory")["number_of_cached_scripts"] >= cached
