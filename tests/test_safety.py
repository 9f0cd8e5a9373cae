"""Safety on servers the tool did not start, and faults: each on real server processes.

Every test seeds foreign data first and checks afterwards that it is untouched and that no CONFIG
parameter was left changed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import redis

from app import config, test_runner
from app.servers import free_port
from tests.conftest import scenario_keys
from tests.test_runner import run_cli

FOREIGN = {f"customer:{n}": f"order-{n}" for n in range(50)}


def seed_foreign(conn: redis.Redis) -> None:
    conn.mset(FOREIGN)
    conn.expire("customer:0", 5000)
    conn.execute_command("SELECT", 3)
    conn.set("other-db-key", "x")
    conn.execute_command("SELECT", 0)


def assert_foreign_intact(port: int, password: str | None = None) -> None:
    with redis.Redis(port=port, password=password, decode_responses=True) as conn:
        assert conn.mget(list(FOREIGN)) == list(FOREIGN.values())
        assert 4900 < conn.ttl("customer:0") <= 5000
        assert conn.dbsize() == len(FOREIGN)
    with redis.Redis(port=port, password=password, db=3, decode_responses=True) as conn3:
        assert conn3.get("other-db-key") == "x"


def config_snapshot(port: int, password: str | None = None) -> dict[str, str]:
    with redis.Redis(port=port, password=password, decode_responses=True) as conn:
        return conn.config_get("*")


def results_of(out_dir: Path) -> dict:
    return json.loads((out_dir / "report.json").read_text())["results"]


def test_foreign_keys_block_memory_filling_even_when_allowed(fresh_server, tmp_path: Path) -> None:
    srv = fresh_server(config.CANDIDATE)
    with redis.Redis(port=srv.port) as conn:
        seed_foreign(conn)
    before = config_snapshot(srv.port)
    proc = run_cli("--redis", srv.url, "--valkey", srv.url, "--force-targets", "--allow-server-changes",
                   "--scenarios", "basic_crud,memory_eviction", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    results = results_of(tmp_path)
    for role in config.ROLES:
        eviction = results[role]["memory_eviction"]
        assert eviction["status"] == "WARN"
        assert "keys that are not this tool's" in eviction["detail"]
        assert results[role]["basic_crud"]["status"] == "OK"
    assert_foreign_intact(srv.port)
    assert config_snapshot(srv.port) == before


def test_server_changes_need_the_flag_on_a_server_the_tool_did_not_start(fresh_server, tmp_path: Path) -> None:
    srv = fresh_server(config.CANDIDATE)
    before = config_snapshot(srv.port)
    proc = run_cli("--redis", srv.url, "--valkey", srv.url, "--force-targets", "--scenarios", "memory_eviction",
                   "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    eviction = results_of(tmp_path)["valkey"]["memory_eviction"]
    assert eviction["status"] == "WARN" and "--allow-server-changes" in eviction["detail"]
    assert config_snapshot(srv.port) == before


def test_db_option_keeps_other_databases_untouched(fresh_server, tmp_path: Path) -> None:
    srv = fresh_server(config.CANDIDATE)
    with redis.Redis(port=srv.port) as conn:
        seed_foreign(conn)
    no_db = srv.url.rsplit("/", 1)[0]  # the URL names no database: --db picks it
    proc = run_cli("--redis", no_db, "--valkey", no_db, "--force-targets", "--db", "5", "--scenarios", "basic_crud",
                   "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert results_of(tmp_path)["valkey"]["basic_crud"]["status"] == "OK"
    assert_foreign_intact(srv.port)
    with redis.Redis(port=srv.port, db=5) as conn5:
        assert conn5.dbsize() == 0


def test_a_frozen_server_becomes_fail_not_a_hang(fresh_server, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    servers = {role: fresh_server(role) for role in config.ROLES}
    for srv in servers.values():
        with redis.Redis(port=srv.port) as conn:
            seed_foreign(conn)
    before = {role: config_snapshot(srv.port) for role, srv in servers.items()}

    def freeze_valkey(name: str, role: str) -> None:
        if name == "basic_crud" and role == "valkey":
            os.kill(servers["valkey"].process.pid, signal.SIGSTOP)

    monkeypatch.setattr(test_runner, "make_progress", lambda: freeze_valkey)
    code = test_runner.main(["--redis", servers["redis"].url, "--valkey", servers["valkey"].url,
                             "--scenarios", "basic_crud,large_payloads", "--timeout", "1",
                             "--out", str(tmp_path)])
    assert code == 1
    results = results_of(tmp_path)
    assert results["valkey"]["basic_crud"]["status"] == "FAIL"
    assert "Timeout" in results["valkey"]["basic_crud"]["detail"]
    assert results["valkey"]["large_payloads"]["status"] == "FAIL"
    assert results["redis"]["basic_crud"]["status"] == "OK"
    os.kill(servers["valkey"].process.pid, signal.SIGCONT)  # thawed, the server kept its data as it was
    # The frozen server could not be cleaned: the run's journal stays there, and the next run repairs it.
    with redis.Redis(port=servers["valkey"].port) as conn:
        assert conn.hlen(config.JOURNAL_KEY) == 1
    repair = run_cli("--redis", servers["redis"].url, "--valkey", servers["valkey"].url, "--scenarios", "basic_crud",
                     "--out", str(tmp_path / "next"))
    assert repair.returncode == 0, repair.stderr
    assert "repaired the leftovers of run" in repair.stdout
    for role, srv in servers.items():
        assert_foreign_intact(srv.port)
        assert config_snapshot(srv.port) == before[role]


def test_the_password_never_appears_in_any_output(fresh_server, tmp_path: Path) -> None:
    secret = "s3cret-Pa55-do-not-print"
    servers = {role: fresh_server(role, extra_args=("--requirepass", secret)) for role in config.ROLES}
    for srv in servers.values():
        with redis.Redis(port=srv.port, password=secret) as conn:
            seed_foreign(conn)
    proc = run_cli("--redis", f"redis://:{secret}@127.0.0.1:{servers['redis'].port}/0",
                   "--valkey", f"redis://127.0.0.1:{servers['valkey'].port}/0",
                   "--scenarios", "basic_crud,lua_and_tx", "--out", str(tmp_path),
                   env={"RVC_VALKEY_PASSWORD": secret})
    assert proc.returncode == 0, proc.stderr
    assert "***@127.0.0.1" in proc.stdout
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written, "no report written"
    for text in [proc.stdout, proc.stderr, *(p.read_text(errors="replace") for p in written)]:
        assert secret not in text
    for srv in servers.values():
        assert_foreign_intact(srv.port, password=secret)


def test_acl_user_without_config_or_scripting_gets_warn_and_the_rest_runs(fresh_server, tmp_path: Path) -> None:
    srv = fresh_server(config.CANDIDATE)
    with redis.Redis(port=srv.port) as conn:
        conn.execute_command("ACL", "SETUSER", "limited", "on", ">pw", "~*", "&*", "+@all", "-config",
                             "-@scripting")
        seed_foreign(conn)
    before = config_snapshot(srv.port)
    url = f"redis://limited:pw@127.0.0.1:{srv.port}/0"
    proc = run_cli("--redis", url, "--valkey", url, "--force-targets", "--allow-server-changes",
                   "--scenarios", "basic_crud,data_structures,lua_and_tx", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    valkey = results_of(tmp_path)["valkey"]
    assert valkey["basic_crud"]["status"] == "OK"
    assert valkey["data_structures"]["status"] == "WARN" and "CONFIG" in valkey["data_structures"]["detail"]
    assert valkey["lua_and_tx"]["status"] == "WARN" and "NOPERM" in valkey["lua_and_tx"]["detail"]
    assert_foreign_intact(srv.port)
    assert config_snapshot(srv.port) == before


def test_config_disabled_like_a_managed_service_gives_warn(fresh_server, tmp_path: Path) -> None:
    srv = fresh_server(config.CANDIDATE, extra_args=("--rename-command", "CONFIG", ""))
    proc = run_cli("--redis", srv.url, "--valkey", srv.url, "--force-targets", "--allow-server-changes",
                   "--scenarios", "basic_crud,memory_eviction", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    valkey = results_of(tmp_path)["valkey"]
    assert valkey["basic_crud"]["status"] == "OK"
    assert valkey["memory_eviction"]["status"] == "WARN"
    assert "CONFIG" in valkey["memory_eviction"]["detail"]
    with redis.Redis(port=srv.port) as conn:
        assert scenario_keys(conn) == []


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1, made with the openssl command."""
    folder = tmp_path_factory.mktemp("tls")
    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=rvc-test-ca")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost")
    (folder / "ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "ext")
    return {name: folder / name for name in ("ca.crt", "server.crt", "server.key")}


def test_tls_endpoint_with_ca_option(fresh_server, tls_files: dict[str, Path], tmp_path: Path) -> None:
    # The embedded Valkey is built without TLS; the embedded Redis links OpenSSL and serves TLS.
    tls_port = str(free_port())
    srv = fresh_server(config.BASELINE, extra_args=(
        "--tls-port", tls_port, "--tls-cert-file", str(tls_files["server.crt"]),
        "--tls-key-file", str(tls_files["server.key"]), "--tls-ca-cert-file", str(tls_files["ca.crt"]),
        "--tls-auth-clients", "no"))
    with redis.Redis(port=srv.port) as conn:  # the plain port, to seed and check
        seed_foreign(conn)
    before = config_snapshot(srv.port)
    url = f"rediss://127.0.0.1:{tls_port}/0"
    proc = run_cli("--redis", url, "--valkey", url, "--force-targets", "--scenarios", "basic_crud",
                   "--tls-ca-cert", str(tls_files["ca.crt"]), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    document = json.loads((tmp_path / "report.json").read_text())
    assert document["targets"]["redis"]["url"].startswith("rediss://")
    assert document["results"]["redis"]["basic_crud"]["status"] == "OK"
    # Without the CA the certificate cannot be verified: one clear line, exit 4.
    refused = run_cli("--redis", url, "--valkey", url, "--force-targets", "--scenarios", "basic_crud", "--out", str(tmp_path))
    assert refused.returncode == 4 and len(refused.stderr.strip().splitlines()) == 1
    assert "Traceback" not in refused.stderr
    assert srv.alive()
    assert_foreign_intact(srv.port)
    assert config_snapshot(srv.port) == before


def test_oom_replies_are_reported_not_hidden(fresh_server, tmp_path: Path) -> None:
    """A full server under noeviction refuses writes with OOM: FAIL with the server's text, exit 1."""
    srv = fresh_server(config.CANDIDATE, maxmemory="4mb")
    with redis.Redis(port=srv.port) as conn:
        seed_foreign(conn)
        fillers = 0
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            for fillers in range(100):  # fill up to maxmemory: every further write is refused
                conn.set(f"filler:{fillers}", b"x" * 256 * 1024)
    before = config_snapshot(srv.port)
    proc = run_cli("--redis", srv.url, "--valkey", srv.url, "--force-targets", "--scenarios", "large_payloads", "--out", str(tmp_path))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    large = results_of(tmp_path)["valkey"]["large_payloads"]
    assert large["status"] == "FAIL" and "OOM command not allowed" in large["detail"]
    with redis.Redis(port=srv.port) as conn:
        assert conn.delete(*(f"filler:{n}" for n in range(fillers))) == fillers
    assert_foreign_intact(srv.port)
    assert config_snapshot(srv.port) == before
