"""`./rvc versions`: the listing, `--fetch` on real servers, and one clear line for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from app.provision import cached_record, known_versions

REPO = Path(__file__).resolve().parent.parent


def _rvc_versions(*args: str, cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"RVC_CACHE_DIR": str(cache)} if cache is not None else {})}
    return subprocess.run([sys.executable, "-m", "app.cli", "versions", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)


def test_json_listing_is_the_registry_with_the_cache_state() -> None:
    proc = _rvc_versions("--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    entries = known_versions()
    assert [row["spec"] for row in rows] == [entry.spec for entry in entries]
    for row, entry in zip(rows, entries):
        assert (row["product"], row["version"], row["allocator"]) == \
            (entry.product, entry.version, entry.allocator)
        assert row["cached"] == (cached_record(entry) is not None), entry.spec
        assert (row["expected_build_s"] is not None) == (entry.kind == "debian-source")


def test_table_on_an_empty_cache_shows_nothing_cached_and_the_build_cost(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    proc = _rvc_versions(cache=cache)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["spec", "product", "version", "source", "allocator", "cached", "build"]
    by_spec = {line.split()[0]: line for line in lines[2:]}
    assert sorted(by_spec) == sorted(entry.spec for entry in known_versions())
    for entry in known_versions():
        row = by_spec[entry.spec]
        assert f" {entry.allocator} " in row and " no" in row, row
        if entry.kind == "debian-source":
            assert f"about {entry.source['expected_build_s'] / 60:.1f} min on first use" in row
    assert not cache.exists()  # listing fetches nothing


def test_fetch_prints_what_the_servers_report() -> None:
    proc = _rvc_versions("--fetch", "embedded:redis@6.2.5", "valkey@8.1.8")
    assert proc.returncode == 0, proc.stderr
    assert "embedded:redis@6.2.5: redis 6.2.5, allocator jemalloc-5.1.0, " in proc.stdout
    assert "embedded:valkey@8.1.8: valkey 8.1.8, allocator libc, " in proc.stdout


def test_fetch_json_carries_the_info_figures() -> None:
    proc = _rvc_versions("--fetch", "embedded:valkey@8.0.1", "--json")
    assert proc.returncode == 0, proc.stderr
    [result] = json.loads(proc.stdout)
    server = result["server"]
    assert (server["product"], server["version"], server["server_name"]) == ("valkey", "8.0.1", "valkey")
    assert server["redis_version"] == "7.2.4"  # Valkey's compatibility field, not its version
    assert server["mem_allocator"] == "jemalloc-5.3.0" and server["used_memory"] > 0
    assert Path(result["path"]).name == "valkey-server"


def test_unknown_spec_is_one_line_and_exit_2() -> None:
    proc = _rvc_versions("--fetch", "embedded:redis@6.2.5", "embedded:keydb@6.2.0")
    assert proc.returncode == 2
    assert proc.stdout == ""  # nothing was fetched: every spec is checked first
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "unknown product 'keydb'" in proc.stderr and "redis, valkey" in proc.stderr


def test_bad_option_is_one_line_and_exit_2() -> None:
    proc = _rvc_versions("--frobnicate")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "rvc versions: unrecognized arguments: --frobnicate"


def test_unusable_cache_is_one_line_and_exit_3(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    proc = _rvc_versions("--fetch", "embedded:redis@6.2.5", cache=blocker / "cache")
    assert proc.returncode == 3
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("rvc versions: embedded:redis@6.2.5: cannot use the cache ")
    assert "Traceback" not in proc.stderr
