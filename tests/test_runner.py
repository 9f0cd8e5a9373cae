"""The runner end to end on real servers: identities, contract, faults, exit codes, no leftovers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from app import config, test_runner
from app.provision import embedded_binary
from app.servers import EmbeddedServer
from app.identity import expected
from app.targets import Target
from tests.conftest import scenario_keys

ROOT = Path(__file__).resolve().parent.parent


def targets_for(servers: dict[str, EmbeddedServer], owned: bool = True) -> list[Target]:
    return [Target(name=role, url=srv.url, source="embedded", owned=owned, expect=expected(role))
            for role, srv in servers.items()]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.test_runner", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def binary_version(server: EmbeddedServer) -> str:
    out = subprocess.run([str(server.binary.path), "--version"], capture_output=True, text=True,
                         env={**os.environ, **server.binary.env}).stdout
    return out.split("v=")[1].split()[0]


def test_identities_are_read_from_the_servers(embedded_servers: dict[str, EmbeddedServer]) -> None:
    document = test_runner.run_comparison(targets_for(embedded_servers), ["basic_crud"], timeout_s=10)
    for role, srv in embedded_servers.items():
        identity = document["targets"][role]["identity"]
        assert identity["product"] == role
        assert identity["version"] == binary_version(srv)
    # Valkey reports redis_version 7.2.4 for compatibility; the identity must not be fooled by it.
    assert document["targets"]["valkey"]["identity"]["redis_version_field"] == "7.2.4"
    assert document["targets"]["redis"]["identity"]["mem_allocator"].startswith("jemalloc")
    assert document["targets"]["valkey"]["identity"]["mem_allocator"] == "libc"
    assert any("standing in for redis 7.2.6" in w for w in document["warnings"])
    assert any("allocators differ" in w for w in document["warnings"])
    assert document["completed"] and test_runner.exit_code(document) == 0


def test_a_raising_scenario_becomes_fail_and_the_run_goes_on(
        embedded_servers: dict[str, EmbeddedServer], monkeypatch: pytest.MonkeyPatch) -> None:
    real_load = test_runner.load

    def load(name: str):
        if name == "exploding":
            def run(client, options=None):
                raise RuntimeError("boom")
            return run
        return real_load(name)

    monkeypatch.setattr(test_runner, "load", load)
    document = test_runner.run_comparison(targets_for(embedded_servers), ["exploding", "basic_crud"],
                                          timeout_s=10)
    for role in config.ROLES:
        assert document["results"][role]["exploding"]["status"] == "FAIL"
        assert "RuntimeError: boom" in document["results"][role]["exploding"]["detail"]
        assert document["results"][role]["basic_crud"]["status"] == "OK"
    assert test_runner.exit_code(document) == 1


def test_scenario_keys_are_gone_after_a_run(embedded_servers: dict[str, EmbeddedServer]) -> None:
    test_runner.run_comparison(targets_for(embedded_servers), ["basic_crud"], timeout_s=10)
    for srv in embedded_servers.values():
        with redis.Redis(port=srv.port) as conn:
            assert scenario_keys(conn) == []


def test_a_server_killed_mid_run_gives_fail_dicts_a_report_and_exit_1(
        fresh_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    victims = {role: fresh_server(role) for role in config.ROLES}

    def kill_valkey_at_second_scenario(name: str, role: str) -> None:
        if name == "data_structures" and role == "valkey":
            victims["valkey"].process.kill()
            victims["valkey"].process.wait()

    monkeypatch.setattr(test_runner, "make_progress", lambda: kill_valkey_at_second_scenario)
    code = test_runner.main(["--redis", victims["redis"].url, "--valkey", victims["valkey"].url,
                             "--scenarios", "basic_crud,data_structures,large_payloads",
                             "--out", str(tmp_path), "--timeout", "2"])
    assert code == 1
    document = json.loads((tmp_path / "report.json").read_text())
    valkey = document["results"]["valkey"]
    assert valkey["basic_crud"]["status"] == "OK"
    assert valkey["data_structures"]["status"] == "FAIL"
    assert valkey["large_payloads"]["status"] == "FAIL"
    assert "stopped answering during data_structures" in valkey["large_payloads"]["detail"]
    assert document["results"]["redis"]["large_payloads"]["status"] in ("OK", "WARN")
    assert "valkey" in capsys.readouterr().out


def test_user_supplied_binary_and_target_selection(tmp_path: Path) -> None:
    binary = str(embedded_binary(config.CANDIDATE).path)  # any build the user names must work
    proc = run_cli("--valkey-server", binary, "--targets", "valkey", "--scenarios", "basic_crud",
                   "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    document = json.loads((tmp_path / "report.json").read_text())
    assert list(document["targets"]) == ["valkey"]
    assert document["targets"]["valkey"]["source"] == "binary"
    assert document["targets"]["valkey"]["binary"] == f"user binary {binary}"
    assert document["results"]["valkey"]["basic_crud"]["status"] == "OK"


def test_cli_run_on_embedded_servers_leaves_no_process_and_writes_json(tmp_path: Path) -> None:
    proc = run_cli("--scenarios", "basic_crud", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    document = json.loads((tmp_path / "report.json").read_text())
    assert set(document["targets"]) == {"redis", "valkey"}
    assert "basic_crud" in proc.stdout and "valkey 9.0" in proc.stdout and "redis 7.2" in proc.stdout
    for target in document["targets"].values():
        port = target["url"].rsplit(":", 1)[1].split("/")[0]
        ps = subprocess.run(["pgrep", "-af", f"--port {port}"], capture_output=True, text=True).stdout
        assert "-server" not in ps, ps
        with pytest.raises(redis.ConnectionError):
            redis.Redis(port=int(port), socket_connect_timeout=1).ping()


@pytest.mark.parametrize("args, code, message", [
    (["--redis", "redis://127.0.0.1:1/0", "--valkey", "redis://127.0.0.1:2/0"], 4, "cannot reach"),
    (["--scenarios", "no_such_scenario"], 2, "unknown scenario no_such_scenario"),
    (["--no-such-flag"], 2, "unrecognized arguments"),
    (["--redis", "http://127.0.0.1:1", "--valkey", "redis://127.0.0.1:2"], 2, "bad URL"),
    (["--redis-server", "/no/such/redis-server"], 3, "does not exist"),
    (["--scenarios", "basic_crud", "--out", "/proc/forbidden"], 5, "cannot write /proc/forbidden"),
])
def test_bad_input_gives_one_clear_line_and_a_nonzero_exit(args: list[str], code: int, message: str) -> None:
    proc = run_cli(*args, timeout=60)
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_wrong_password_is_one_line_and_never_printed(fresh_server) -> None:
    secret = "correct-horse-battery"
    srv = fresh_server(config.CANDIDATE, extra_args=("--requirepass", secret))
    proc = run_cli("--redis", f"redis://:wrong-{secret}@127.0.0.1:{srv.port}/0", "--valkey", srv.url, timeout=60)
    assert proc.returncode == 4
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "authentication" in lines[0], proc.stderr
    assert secret not in proc.stderr + proc.stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_run_restores_config_removes_keys_and_exits_130(fresh_server, tmp_path: Path,
                                                                     signum: signal.Signals) -> None:
    srv = fresh_server(config.CANDIDATE)
    with redis.Redis(port=srv.port, decode_responses=True) as conn:
        before = conn.config_get("maxmemory")["maxmemory"]
        proc = subprocess.Popen([sys.executable, "-m", "app.test_runner", "--redis", srv.url, "--valkey", srv.url,
                                 "--force-targets", "--scenarios", "memory_eviction", "--allow-server-changes",
                                 "--out", str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        changed = False
        try:
            for _ in range(600):  # wait until the scenario has lowered maxmemory, then interrupt
                changed = conn.config_get("maxmemory")["maxmemory"] != before
                if changed or proc.poll() is not None:
                    break
                subprocess.run(["sleep", "0.02"])
            proc.send_signal(signum)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert changed, "the scenario never changed maxmemory: nothing was interrupted mid-change"
        assert proc.returncode == 130, err
        assert f"interrupted by {signum.name}" in err and "Traceback" not in err
        document = json.loads((tmp_path / "report.json").read_text())  # what was measured is kept
        assert document["completed"] is False and document["interrupted"] == signum.name
        assert conn.config_get("maxmemory")["maxmemory"] == before
        assert scenario_keys(conn) == []


def test_fail_on_new_gates_ci_on_undocumented_differences(tmp_path: Path) -> None:
    # basic_crud finds the embstr/raw encoding change, which no Valkey release note states.
    gated = run_cli("--scenarios", "basic_crud", "--fail-on-new", "--out", str(tmp_path / "gated"))
    document = json.loads((tmp_path / "gated" / "report.json").read_text())
    assert document["summary"]["new"] > 0
    assert gated.returncode == 6, gated.stderr
    plain_run = run_cli("--scenarios", "basic_crud", "--out", str(tmp_path / "plain"))
    assert plain_run.returncode == 0


@pytest.mark.timeout(1800)
def test_like_for_like_memory_adds_a_jemalloc_valkey_for_the_memory_scenarios(tmp_path: Path) -> None:
    proc = run_cli("--like-for-like-memory", "--scenarios", "basic_crud,large_payloads", "--out", str(tmp_path),
                   timeout=1800)  # the jemalloc Valkey is built from source on first use (about 2 minutes)
    assert proc.returncode == 0, proc.stderr
    document = json.loads((tmp_path / "report.json").read_text())
    like = document["targets"]["valkey-jemalloc"]
    assert (like["identity"]["product"], like["identity"]["mem_allocator"].split("-")[0]) == ("valkey", "jemalloc")
    assert like["scenarios"] == ["large_payloads"] and "basic_crud" not in document["results"]["valkey-jemalloc"]
    memory = {(r["target"], r["path"]): r for r in document["differences"] if r["kind"] == "memory"}
    libc = [r for (t, _), r in memory.items() if t == "valkey"]
    assert libc and all(r["allocator_differs"] and not r["significant"] for r in libc)
    # Same allocator family as Redis: the memory figures are compared as product behaviour.
    same = [r for (t, _), r in memory.items() if t == "valkey-jemalloc"]
    assert same and all("allocator_differs" not in r and r["significant"] for r in same)
    assert "valkey-jemalloc" in proc.stdout and "jemalloc-5.3.0" in proc.stdout.split("valkey-jemalloc", 1)[1]


def test_like_for_like_memory_needs_a_memory_scenario() -> None:
    proc = run_cli("--like-for-like-memory", "--scenarios", "basic_crud")
    assert proc.returncode == 2 and "--like-for-like-memory needs one of the scenarios" in proc.stderr
    assert "Traceback" not in proc.stderr
