"""Cluster mode on real embedded clusters (3 primaries, one replica each, started and joined by the tool):
the cluster machinery, every cluster scenario on Redis 7.2.4 and Valkey 9.0.0 with the differences
between them (values on each side), zero differences between two clusters of one binary, a killed
primary, SIGTERM during resharding (embedded clusters and a user's cluster), and the safety rules on a
cluster the tool did not start.

The two clusters are started once for the module; the scenarios run on them once (module fixture).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from app import config
from app.cluster import (PRIMARIES, REPLICAS_PER_PRIMARY, ClusterTarget, EmbeddedCluster, external_cluster_target,
                         nodes_table, slot_ranges)
from app.cluster_run import run_cluster_scenarios
from app.compare import diff_metrics
from app.provision import embedded_binary
from app.scenarios import CLUSTER_SCENARIO_NAMES
from app.scenarios.cluster_support import ClusterContext, ClusterOptions
from app.servers import ServerStartError
from app.targets import TargetError

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "rvc:clustertest:"
NODES = PRIMARIES * (1 + REPLICAS_PER_PRIMARY)
MIGRATION_MARK = re.compile(r"\[\d+-[<>]-[0-9a-f]{40}\]")

# Every compared difference between the embedded Redis 7.2.4 and Valkey 9.0.0 clusters:
# path -> (kind, Redis value, Valkey value). CLUSTER HELP is checked apart (a long text).
EXPECTED_DIFFERENCES: dict[str, tuple[str, Any, Any]] = {
    # Valkey 8+ adds node (not only slot) failure counts to CLUSTER INFO.
    "cluster_topology:info.cluster_nodes_pfail": ("reply", None, 0),
    "cluster_topology:info.cluster_nodes_fail": ("reply", None, 0),
    "cluster_topology:info.cluster_voting_nodes_pfail": ("reply", None, 0),
    "cluster_topology:info.cluster_voting_nodes_fail": ("reply", None, 0),
    # The node's own CLUSTER NODES line: Redis shows a pong time, Valkey 0.
    "cluster_topology:nodes.primary@0.pong-recv": ("reply", "<ms>", "0"),
    # Atomic slot migration (9.0) and slot statistics (8.0) exist on Valkey only.
    "cluster_topology:commands.CLUSTER MIGRATESLOTS": ("availability", "absent", "listed in CLUSTER HELP"),
    "cluster_topology:commands.CLUSTER GETSLOTMIGRATIONS": ("availability", "absent", "listed in CLUSTER HELP"),
    "cluster_topology:commands.CLUSTER CANCELSLOTMIGRATIONS": ("availability", "absent", "listed in CLUSTER HELP"),
    "cluster_topology:commands.CLUSTER SLOT-STATS": ("availability", "absent", "listed in CLUSTER HELP"),
    "cluster_topology:commands.CLUSTER SLOT-STATS of the tagged slot": (
        "availability", {"error": "ERR unknown subcommand 'SLOT-STATS'. Try CLUSTER HELP."},
        {"slot is the asked one": True, "fields": ["key-count"], "key-count": 5}),
    # Databases in cluster mode: Redis has one and refuses SELECT; Valkey 9 has cluster-databases
    # (default 1) and answers an index beyond it as out of range.
    "cluster_routing:databases.CONFIG databases": ("reply", "1", "16"),
    "cluster_routing:databases.CONFIG cluster-databases": ("reply", None, "1"),
    "cluster_routing:databases.SELECT 1": ("error_text", {"error": "ERR SELECT is not allowed in cluster mode"},
                                           {"error": "ERR DB index is out of range"}),
    "cluster_routing:databases.MOVE to an index out of range": (
        "error_text", {"error": "ERR MOVE is not allowed in cluster mode"}, {"error": "ERR DB index is out of range"}),
    # Resharding: only Valkey can move the slot atomically; its old owner's shard subscriber is told.
    "cluster_resharding:atomic.CLUSTER MIGRATESLOTS": (
        "availability", {"error": "ERR unknown subcommand 'MIGRATESLOTS'. Try CLUSTER HELP."}, None),
    "cluster_resharding:atomic.final states": ("reply", None, ["success", "success"]),
    "cluster_resharding:atomic.old owner's shard subscriber got": (
        "reply", None, [{"array": ["sunsubscribe", "{p}{rvc-reshard}ch", 0]}]),
}


def start_cluster(role: str, name: str, **kwargs: Any) -> EmbeddedCluster:
    return EmbeddedCluster(embedded_binary(role), name, **kwargs).start()


def cluster_target(name: str, cluster: EmbeddedCluster, role: str = config.CANDIDATE_ROLE) -> ClusterTarget:
    return ClusterTarget(name=name, url=cluster.seed.url, source="embedded", owned=True, cluster=cluster, role=role)


def run_all(targets: list[ClusterTarget], names: tuple[str, ...] = CLUSTER_SCENARIO_NAMES,
            **options: Any) -> dict[str, dict[str, Any]]:
    clients = {t.name: t.client() for t in targets}
    try:
        return run_cluster_scenarios(targets, names, clients=clients, prefix=PREFIX, **options)
    finally:
        for client in clients.values():
            client.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes only once reaped; /proc says which.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def differences(results: dict[str, dict[str, Any]], left: str, right: str) -> dict[str, dict[str, Any]]:
    """scenario:path -> difference record, for every scenario both sides ran."""
    found = {}
    for name in CLUSTER_SCENARIO_NAMES:
        for record in diff_metrics(name, results[left][name]["metrics"], results[right][name]["metrics"],
                                   (left, right)):
            found[f"{name}:{record['path']}"] = record
    return found


@pytest.fixture(scope="module")
def clusters() -> Iterator[dict[str, EmbeddedCluster]]:
    started: dict[str, EmbeddedCluster] = {}
    try:
        for role in config.ROLES:
            started[role] = start_cluster(role, f"test-{role}")
        yield started
    finally:
        for cluster in started.values():
            cluster.stop()


@pytest.fixture(scope="module")
def results(clusters: dict[str, EmbeddedCluster]) -> dict[str, dict[str, Any]]:
    targets = [cluster_target(role, cluster, config.BASELINE_ROLE if role == config.BASELINE else config.CANDIDATE_ROLE)
               for role, cluster in clusters.items()]
    return run_all(targets)


# --- the embedded cluster -----------------------------------------------------------------------------

def test_embedded_cluster_has_the_layout_and_every_node_agrees(clusters: dict[str, EmbeddedCluster]) -> None:
    for cluster in clusters.values():
        maps = {node.port: cluster.slot_map(node) for node in cluster.nodes}
        assert len(maps) == NODES
        first = next(iter(maps.values()))
        assert all(m == first for m in maps.values())
        assert [(low, high) for low, high, _, _ in first] == slot_ranges(PRIMARIES) == [(0, 5460), (5461, 10922),
                                                                                         (10923, 16383)]
        assert all(len(replicas) == REPLICAS_PER_PRIMARY for _, _, _, replicas in first)


def test_a_failed_start_stops_every_process_and_removes_every_folder() -> None:
    cluster = EmbeddedCluster(embedded_binary(config.CANDIDATE), "test-broken", primaries=2, replicas_per_primary=0,
                              extra_args=("--no-such-option", "yes"))
    with pytest.raises(ServerStartError):
        cluster.start(timeout_s=20)
    assert cluster.pids() == [] and cluster.workdirs() == []
    cluster.stop()  # safe a second time


def test_an_external_cluster_url_must_be_tcp_and_database_0() -> None:
    with pytest.raises(TargetError, match="database 0"):
        external_cluster_target("valkey", "redis://127.0.0.1:7000/3")
    with pytest.raises(TargetError, match="scheme"):
        external_cluster_target("valkey", "http://127.0.0.1:7000")


def test_an_unreachable_user_cluster_is_one_line_without_the_password() -> None:
    secret = "s3cret-cluster-pw"
    proc = subprocess.run([sys.executable, "-m", "app.cluster_run", "--redis-cluster",
                           f"redis://:{secret}@127.0.0.1:1/0", "--valkey-cluster", "redis://127.0.0.1:1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "cannot use" in errors[0] and "Traceback" not in proc.stderr
    assert secret not in proc.stderr + proc.stdout


# --- the scenarios on Redis and Valkey ----------------------------------------------------------------

def test_every_cluster_scenario_completes_on_both(results: dict[str, dict[str, Any]]) -> None:
    for role in config.ROLES:
        for name in CLUSTER_SCENARIO_NAMES:
            outcome = results[role][name]
            assert outcome["status"] == "OK", (role, name, outcome["detail"])
            assert outcome["scenario"] == name and outcome["metrics"]


def test_the_known_cluster_differences_between_redis_and_valkey(results: dict[str, dict[str, Any]]) -> None:
    found = differences(results, config.BASELINE, config.CANDIDATE)
    help_text = found.pop("cluster_topology:help.CLUSTER HELP")
    redis_help, valkey_help = help_text["values"].values()
    assert any(line.startswith("MIGRATESLOTS SLOTSRANGE") for line in valkey_help)
    assert not any(line.startswith("MIGRATESLOTS") for line in redis_help)
    assert set(found) == set(EXPECTED_DIFFERENCES), sorted(set(found) ^ set(EXPECTED_DIFFERENCES))
    for path, (kind, on_redis, on_valkey) in EXPECTED_DIFFERENCES.items():
        record = found[path]
        assert record["kind"] == kind, path
        assert list(record["values"].values()) == [on_redis, on_valkey], path


def test_moved_ask_and_crossslot_name_the_owner_on_both(results: dict[str, dict[str, Any]]) -> None:
    for role in config.ROLES:
        metrics = results[role]["cluster_routing"]["metrics"]
        moved, ask = metrics["moved"], metrics["ask"]
        assert moved["GET on a primary of another shard"] == {"error": f"MOVED {moved['slot of the key']} <primary@0>"}
        assert ask["GET of a key already moved"]["error"].startswith("ASK ")
        assert ask["MGET of a moved and a staying key"]["error"].startswith("TRYAGAIN")
        assert ask["after giving the slot back: marks on the source"] == []
        assert ask["after giving the slot back: marks on the target"] == []
        assert ask["after giving the slot back: keys on the owner"] == 2
        assert metrics["crossslot"]["MSET over two slots, on the first key's owner"]["error"].startswith("CROSSSLOT")
        assert metrics["crossslot"]["script flagged allow-cross-slot-keys reaching a second slot of its node"] == "OK"
        assert metrics["replicas"]["GET after READONLY"] == "replicated"


def test_resharding_loses_no_key_while_the_application_writes(results: dict[str, dict[str, Any]]) -> None:
    for role in config.ROLES:
        metrics = results[role]["cluster_resharding"]["metrics"]
        assert metrics["outcome"] == {"setup keys lost or changed": 0, "acknowledged writer keys lost": 0,
                                      "every key of the slot on its final owner": True}
        assert metrics["measured"]["legacy away keys moved"] >= metrics["setup"]["keys in the slot"]
        assert len(metrics["legacy"]["migration_ms_samples"]) == 2
    assert len(results["valkey"]["cluster_resharding"]["metrics"]["atomic"]["migration_ms_samples"]) == 2


def test_the_killed_primary_is_replaced_and_writes_resume(results: dict[str, dict[str, Any]],
                                                          clusters: dict[str, EmbeddedCluster]) -> None:
    for role, cluster in clusters.items():
        metrics = results[role]["cluster_failover"]["metrics"]
        assert metrics["killed"] == {"primary killed": True, "replica promoted": True, "writes succeed again": True,
                                     "dead nodes replaced": 1, "layout whole again": True}
        assert metrics["manual"]["acknowledged writes lost"] == 0
        assert metrics["measured"]["killed promoted_ms"] > 0
        assert len(cluster.pids()) == NODES and all(alive(pid) for pid in cluster.pids())


def own_keys(cluster: EmbeddedCluster, node: Any) -> list[bytes]:
    with cluster.admin(node) as conn:
        return conn.execute_command("SCAN", 0, "MATCH", "rvc:*", "COUNT", 10000)[1]


def test_scenarios_leave_no_key_and_no_config_change(clusters: dict[str, EmbeddedCluster],
                                                     results: dict[str, dict[str, Any]]) -> None:
    for cluster in clusters.values():
        for node in cluster.nodes:
            assert own_keys(cluster, node) == []
            with cluster.admin(node) as conn:
                assert conn.execute_command("CONFIG", "GET", "notify-keyspace-events")[1] == b""
                own = next(line for line in conn.execute_command("CLUSTER", "NODES").decode().splitlines()
                           if "myself" in line)
                assert not MIGRATION_MARK.search(own), own


def test_two_clusters_of_one_binary_differ_in_nothing_and_stop_completely(results: dict[str, dict[str, Any]]) -> None:
    """A second Valkey cluster, every scenario (its failover kills a primary): zero differences from the
    first, and once stopped no process of either generation and no folder is left."""
    second = start_cluster(config.CANDIDATE, "test-valkey-second")
    try:
        started_pids, folders = second.pids(), second.workdirs()
        again = run_all([cluster_target("valkey-second", second)])
        after_pids = second.pids()
    finally:
        second.stop()
    assert all(r["status"] == "OK" for r in again["valkey-second"].values()), again
    both = {"valkey": results["valkey"], "valkey-second": again["valkey-second"]}
    assert differences(both, "valkey", "valkey-second") == {}
    killed = set(started_pids) - set(after_pids)
    assert len(killed) == 1 and len(set(after_pids) - set(started_pids)) == 1
    assert not any(alive(pid) for pid in set(started_pids) | set(after_pids))
    assert not any(Path(folder).exists() for folder in folders)


def test_multiple_databases_in_a_valkey_cluster_when_enabled() -> None:
    cluster = start_cluster(config.CANDIDATE, "test-valkey-dbs", primaries=2, replicas_per_primary=0,
                            extra_args=("--cluster-databases", "4"))
    try:
        outcome = run_all([cluster_target("valkey-dbs", cluster)], ("cluster_routing",))["valkey-dbs"]["cluster_routing"]
        second = outcome["metrics"]["second_database"]
        with cluster.admin(cluster.nodes[0]) as conn:
            leftovers = [conn.execute_command("SELECT", db) and conn.execute_command("DBSIZE") for db in range(4)]
    finally:
        cluster.stop()
    assert outcome["status"] == "OK", outcome["detail"]
    assert outcome["metrics"]["databases"]["SELECT 1"] == "OK"
    assert second["GET in db 1"] == "one" and second["GET in db 0"] is None
    assert second["MOVE to db 0"] == 1 and second["GET in db 0 after MOVE"] == "one"
    assert second["GET the copy in db 1"] == "one"
    assert second["GET of another shard's key in db 1"]["error"].startswith("MOVED")
    assert leftovers == [0, 0, 0, 0]


# --- a cluster the tool did not start ---------------------------------------------------------------------

def own_row(conn: redis.Redis) -> dict[str, Any]:
    """A node's own CLUSTER NODES row (its "myself" line)."""
    return next(r for r in nodes_table(conn.execute_command("CLUSTER", "NODES")) if "myself" in r["flags"])


def cluster_state(cluster: EmbeddedCluster) -> dict[str, dict[str, Any]]:
    """What must not change on a user's cluster: each node's role, slots and full CONFIG, by node id."""
    state = {}
    for node in cluster.nodes:
        with cluster.admin(node) as conn:
            own = own_row(conn)
            config_values = conn.execute_command("CONFIG", "GET", "*")
            state[own["id"]] = {"flags": sorted(own["flags"]), "slots": own["slots"],
                                "config": dict(zip(config_values[::2], config_values[1::2]))}
    return state


def state_changes(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> list[str]:
    """Each node's changed role, slots or CONFIG value, one line each (a failing test says which)."""
    changes = [f"node {node_id[:8]} appeared" for node_id in after.keys() - before.keys()]
    for node_id, was in before.items():
        now = after.get(node_id)
        if now is None:
            changes.append(f"node {node_id[:8]} is gone")
            continue
        changes += [f"{node_id[:8]} {field}: {was[field]} -> {now[field]}" for field in ("flags", "slots")
                    if was[field] != now[field]]
        changes += [f"{node_id[:8]} CONFIG {name!r}: {was['config'].get(name)!r} -> {now['config'].get(name)!r}"
                    for name in sorted(was["config"].keys() | now["config"].keys())
                    if was["config"].get(name) != now["config"].get(name)]
    return changes


@pytest.mark.parametrize("allow", [False, True], ids=["read-only", "allowed-but-foreign-keys"])
def test_a_user_cluster_is_left_as_found(clusters: dict[str, EmbeddedCluster], allow: bool) -> None:
    cluster = clusters[config.CANDIDATE]
    foreign = {f"foreign:{i}": str(i) for i in range(50)}
    target = ClusterTarget(name="users", url=cluster.seed.url, source="external", owned=False)
    with target.client() as client:
        client.mset_nonatomic(foreign)
        try:
            before = cluster_state(cluster)
            outcome = run_all([target], ("cluster_scan_pubsub", "cluster_resharding", "cluster_failover"),
                              allow_server_changes=allow)["users"]
            after = cluster_state(cluster)
            survived = dict(zip(foreign, (v.decode() for v in client.mget_nonatomic(list(foreign)))))
        finally:
            client.delete(*foreign)
    reason = "keys that are not this tool's" if allow else "--allow-server-changes"
    for name in ("cluster_resharding", "cluster_failover"):
        assert outcome[name]["status"] == "WARN" and reason in outcome[name]["detail"], outcome[name]
    assert outcome["cluster_scan_pubsub"]["status"] == "WARN"
    assert "SCAN over the cluster skipped" in outcome["cluster_scan_pubsub"]["detail"]
    assert state_changes(before, after) == []
    assert survived == foreign


# --- SIGTERM during resharding ------------------------------------------------------------------------------

def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    return found


def server_info(pid: int) -> dict[str, Any] | None:
    """A server child's port (servers retitle themselves "redis-server 127.0.0.1:PORT [cluster]") and
    folder (its working directory); None while it has not retitled itself yet."""
    title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
    match = re.search(r"127\.0\.0\.1:(\d+)", title)
    return {"port": int(match.group(1)), "dir": os.readlink(f"/proc/{pid}/cwd")} if match else None


def wait_for_migration(ports: list[int], proc: subprocess.Popen, timeout_s: float = 120) -> bool:
    """Until some node's own CLUSTER NODES line shows a slot in MIGRATING or IMPORTING state."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        for port in ports:
            try:
                with redis.Redis(port=port, socket_timeout=2) as conn:
                    own = next(l for l in conn.execute_command("CLUSTER", "NODES").decode().splitlines() if "myself" in l)
                if MIGRATION_MARK.search(own):
                    return True
            except (redis.RedisError, OSError):
                continue
        time.sleep(0.02)
    return False


def start_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "app.cluster_run", "--scenarios", "cluster_resharding", *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def interrupt(proc: subprocess.Popen, ports_of: Any) -> tuple[bool, str, str]:
    try:
        seen = wait_for_migration(ports_of(), proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return seen, out, err


def test_sigterm_during_resharding_leaves_no_process_and_no_folder(tmp_path: Path) -> None:
    proc = start_cli("--out", str(tmp_path))
    nodes: dict[int, dict[str, Any]] = {}

    def ports() -> list[int]:
        deadline = time.monotonic() + 120  # both clusters started: 2 x 6 server processes
        while len(nodes) < 2 * NODES and time.monotonic() < deadline and proc.poll() is None:
            for child in set(children(proc.pid)) - set(nodes):
                try:
                    info = server_info(child)
                except (FileNotFoundError, ProcessLookupError):
                    continue
                if info:
                    nodes[child] = info
            time.sleep(0.05)
        return [info["port"] for info in nodes.values()]

    seen, _, err = interrupt(proc, ports)
    assert seen, f"no slot was ever seen migrating: nothing was interrupted mid-move: {err[-500:]}"
    assert proc.returncode == 130, err
    assert "interrupted by SIGTERM" in err and "Traceback" not in err
    assert len(nodes) == 2 * NODES
    assert not any(alive(pid) for pid in nodes)
    assert not any(Path(info["dir"]).exists() for info in nodes.values())
    document = json.loads((tmp_path / "report.json").read_text())
    assert document["completed"] is False and document["interrupted"] == "SIGTERM"


def test_sigterm_during_resharding_gives_a_user_cluster_back_as_found(tmp_path: Path) -> None:
    # A user's cluster as deployed, with the server's default failure detection (15 s): a node starved
    # of CPU on a loaded CI machine must not be failed over mid-test, a role change the tool never made.
    cluster = start_cluster(config.CANDIDATE, "test-users-sigterm", extra_args=("--cluster-node-timeout", "15000"))
    try:
        before = cluster_state(cluster)
        url = cluster.seed.url
        proc = start_cli("--redis-cluster", url, "--valkey-cluster", url, "--allow-server-changes", "--out", str(tmp_path))
        seen, _, err = interrupt(proc, lambda: [node.port for node in cluster.nodes])
        after = cluster_state(cluster)
        leftovers = [key for node in cluster.nodes for key in own_keys(cluster, node)]
    finally:
        cluster.stop()
    assert seen, f"no slot was ever seen migrating: {err[-500:]}"
    assert proc.returncode == 130, err
    assert "interrupted by SIGTERM" in err and "Traceback" not in err
    document = json.loads((tmp_path / "report.json").read_text())
    details = {name: r.get("cluster_resharding", {}).get("detail") for name, r in document["results"].items()}
    assert state_changes(before, after) == [], details  # slots with their owners, roles, every CONFIG value
    assert details["redis"].startswith("error: interrupted by SIGTERM") and "could not" not in details["redis"]
    assert leftovers == []
    # What is not yet journalled on a user's cluster is said, for each cluster the run changed.
    assert sum("not after SIGKILL" in w for w in document["warnings"]) == len(document["targets"]), document["warnings"]


def own_line(port: int) -> dict[str, Any]:
    with redis.Redis(port=port) as conn:
        return own_row(conn)


def test_a_setslot_cut_off_while_its_primary_waits_for_the_replica_is_given_back_on_the_replica_too() -> None:
    """Valkey replicates SETSLOT to the replicas before its primary runs it: a command whose client goes
    away while the primary waits for that acknowledgement leaves the mark on the replica only. The slot
    journal's give-back must clear it there too."""
    cluster = start_cluster(config.CANDIDATE, "test-replica-mark")
    try:
        client = ClusterTarget(name="users", url=cluster.seed.url, source="external", owned=False).client()
        ctx = ClusterContext("give_back", client, ClusterOptions(prefix=PREFIX, allow_server_changes=True))
        home, away = ctx.topology.primaries[0], ctx.topology.primaries[1]
        replica = ctx.topology.replicas_of(home)[0]  # the owner's: the give-back sends the owner NODE, not STABLE
        process = next(n for n in cluster.nodes if n.port == replica.port).process
        slot = home.slots[0][0]
        ctx.slot_journal.remember(slot, home)
        before = cluster_state(cluster)
        process.send_signal(signal.SIGSTOP)
        try:
            with redis.Redis(port=home.port, socket_timeout=0.5) as conn, pytest.raises(redis.TimeoutError):
                conn.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", away.id)
        finally:
            process.send_signal(signal.SIGCONT)
        mark = f"[{slot}->-{away.id}]"
        deadline = time.monotonic() + 30
        while mark not in own_line(replica.port)["slots"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mark in own_line(replica.port)["slots"] and mark not in own_line(home.port)["slots"]
        problems = ctx.slot_journal.restore()
        after = cluster_state(cluster)
        ctx.close()
        client.close()
    finally:
        cluster.stop()
    assert problems == []
    assert state_changes(before, after) == []


def test_rvc_cluster_goes_to_cluster_mode() -> None:
    """`./rvc --cluster` (and a --redis-cluster URL alone) is cluster mode: its own scenarios and options."""
    from app import cli
    proc = subprocess.run([sys.executable, "-m", "app.cli", "--cluster", "--scenarios", "basic_crud"],
                          cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown scenario basic_crud" in proc.stderr and "cluster_topology" in proc.stderr
    assert cli.CLUSTER_FLAG in cli.usage()
