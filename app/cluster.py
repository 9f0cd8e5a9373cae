"""Clusters: an embedded Redis or Valkey Cluster (primaries with replicas, joined by the tool itself),
a user's own cluster, and the target the runner uses for either.

The embedded cluster is joined with plain commands (CLUSTER SET-CONFIG-EPOCH, MEET, ADDSLOTSRANGE,
REPLICATE), never with redis-cli, and is ready only when every node says cluster_state:ok, every node
sees the same slot map and every replica is in sync. stop() ends every process and removes every
folder, is safe to call twice and from a signal path, and runs on any failure during start().
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from app import config
from app.provision import ServerBinary, embedded_binary, user_binary
from app.servers import EmbeddedServer, ServerStartError, free_port
from app.targets import Target, TargetError, password_variable, redact, validate_url

# --- the layout and settings of an embedded cluster (the issue's: 3 primaries, one replica each) ----

PRIMARIES = 3
REPLICAS_PER_PRIMARY = 1
SLOT_COUNT = 16384
# Twelve processes share two cores with other work: a small ceiling per node keeps them light.
CLUSTER_MAXMEMORY = "64mb"
# Failure detection time. Low enough that a killed primary is replaced in seconds, high enough that a
# node starved of CPU for a moment on a loaded 2-core machine is not declared failed.
NODE_TIMEOUT_MS = 2000
# A primary waits repl-diskless-sync-delay (5 s) for more replicas before a first sync; none will come.
# CLUSTER SLOTS leaves out replicas at offset 0 until the primary's first replication PING, which
# comes after repl-ping-replica-period (10 s): 1 s makes a new cluster whole in about 3 s.
CLUSTER_ARGS: tuple[str, ...] = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                 "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                                 "--repl-diskless-sync-delay", "0", "--repl-ping-replica-period", "1")
# The bus port is named, not port+10000: that rule refuses client ports above 55535.
SPAWN_ATTEMPTS = 3
# How long joining may take before the start counts as failed (gossip, first sync, the state delay).
READY_TIMEOUT_S = 60.0
POLL_S = 0.05
# Socket timeout of the tool's own administrative connections to single nodes.
ADMIN_TIMEOUT_S = 5.0


class ClusterStartError(ServerStartError):
    """The cluster did not form; the message says which step and which node."""


def slot_ranges(primaries: int) -> list[tuple[int, int]]:
    """The 16384 slots split into contiguous, near-equal ranges, as redis-cli --cluster create does."""
    bounds = [round(i * SLOT_COUNT / primaries) for i in range(primaries + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(primaries)]


def node_client(host: str, port: int, *, password: str | None = None, timeout_s: float = ADMIN_TIMEOUT_S,
                **kwargs: Any) -> redis.Redis:
    """A plain connection to one node (administration, per-node commands): RESP2, replies as sent."""
    conn = redis.Redis(host=host, port=port, password=password, socket_timeout=timeout_s,
                       socket_connect_timeout=min(timeout_s, config.DEFAULT_CONNECT_TIMEOUT_S),
                       protocol=2, **kwargs)
    conn.response_callbacks.clear()
    return conn


def info_fields(text: bytes | str) -> dict[str, str]:
    """CLUSTER INFO (or any INFO-style text) as a dict of strings."""
    if isinstance(text, bytes):
        text = text.decode()
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def nodes_table(text: bytes | str) -> list[dict[str, Any]]:
    """CLUSTER NODES lines as dicts: id, address, flags, primary id, epoch, link, slots."""
    if isinstance(text, bytes):
        text = text.decode()
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        rows.append({"id": parts[0], "address": parts[1], "flags": parts[2].split(","),
                     "primary": parts[3], "ping_sent": parts[4], "pong_recv": parts[5],
                     "epoch": parts[6], "link": parts[7], "slots": parts[8:]})
    return rows


def node_port(address: str) -> int:
    """The client port of a CLUSTER NODES address ("ip:port@cport[,hostname]")."""
    return int(address.split("@", 1)[0].rsplit(":", 1)[1])


# --- the embedded cluster ------------------------------------------------------------------------

class EmbeddedCluster:
    """PRIMARIES primaries with REPLICAS_PER_PRIMARY replicas each, all on loopback, no persistence."""

    def __init__(self, binary: ServerBinary, name: str, *, primaries: int = PRIMARIES,
                 replicas_per_primary: int = REPLICAS_PER_PRIMARY, maxmemory: str = CLUSTER_MAXMEMORY,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.binary = binary
        self.name = name
        self.primaries = primaries
        self.replicas_per_primary = replicas_per_primary
        self.maxmemory = maxmemory
        self.extra_args = extra_args
        self.nodes: list[EmbeddedServer] = []
        self.bus_ports: dict[EmbeddedServer, int] = {}
        self.startup_s: float | None = None
        self._lock = threading.RLock()
        self._spawned = 0

    # start ------------------------------------------------------------------------------------
    def start(self, timeout_s: float = READY_TIMEOUT_S) -> "EmbeddedCluster":
        """Start, join and wait for the whole cluster; on any failure (or signal) stop what started."""
        began = time.monotonic()
        deadline = began + timeout_s
        try:
            for _ in range(self.primaries * (1 + self.replicas_per_primary)):
                self._spawn()
            self._join(deadline)
            self.wait_ready(deadline)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - began
        return self

    def _spawn(self) -> EmbeddedServer:
        # Processes are started from the calling thread only: PDEATHSIG ties them to that thread.
        for attempt in range(SPAWN_ATTEMPTS):
            with self._lock:
                self._spawned += 1
                bus_port = free_port()
                node = EmbeddedServer(self.binary, f"{self.name}-node{self._spawned}", maxmemory=self.maxmemory,
                                      extra_args=(*CLUSTER_ARGS, "--cluster-port", str(bus_port),
                                                  *self.extra_args))
                self.bus_ports[node] = bus_port
                self.nodes.append(node)  # listed before it starts, so stop() reaches a half-started node
            try:
                return node.start()
            except ServerStartError:
                with self._lock:
                    self.nodes.remove(node)  # start() stopped it and removed its folder
                    del self.bus_ports[node]
                if attempt == SPAWN_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def admin(self, node: EmbeddedServer) -> redis.Redis:
        return node_client("127.0.0.1", node.port)

    def _call(self, node: EmbeddedServer, *args: Any) -> Any:
        with self.admin(node) as conn:
            try:
                return conn.execute_command(*args)
            except redis.RedisError as exc:
                raise ClusterStartError(f"{self.name}: {' '.join(map(str, args))} on port {node.port} "
                                        f"failed: {exc}") from exc

    def _join(self, deadline: float) -> None:
        primaries = self.nodes[:self.primaries]
        replicas = self.nodes[self.primaries:]
        # Distinct config epochs before meeting, as redis-cli does: no epoch collision to settle later.
        for epoch, node in enumerate(self.nodes, start=1):
            self._call(node, "CLUSTER", "SET-CONFIG-EPOCH", epoch)
        for node in self.nodes[1:]:
            self.meet(node)
        self._wait_until(deadline, "every node knows every other", self._all_known)
        for node, (low, high) in zip(primaries, slot_ranges(self.primaries)):
            self._call(node, "CLUSTER", "ADDSLOTSRANGE", low, high)
        ids = [self.node_id(node) for node in primaries]
        for index, node in enumerate(replicas):
            self._call(node, "CLUSTER", "REPLICATE", ids[index % self.primaries])

    def meet(self, node: EmbeddedServer, via: EmbeddedServer | None = None) -> None:
        self._call(via or self.nodes[0], "CLUSTER", "MEET", "127.0.0.1", node.port, self.bus_ports[node])

    def node_id(self, node: EmbeddedServer) -> str:
        return self._call(node, "CLUSTER", "MYID").decode()

    def _all_known(self) -> bool:
        for node in self.nodes:
            rows = nodes_table(self._call(node, "CLUSTER", "NODES"))
            if len(rows) != len(self.nodes) or any("handshake" in r["flags"] or r["link"] != "connected"
                                                   for r in rows if "myself" not in r["flags"]):
                return False
        return True

    def _wait_until(self, deadline: float, what: str, ready: Any) -> None:
        while True:
            for node in self.nodes:
                if not node.alive():
                    raise ClusterStartError(f"{self.name}: node on port {node.port} exited while waiting "
                                            f"until {what}: {node.log_tail()}")
            if ready():
                return
            if time.monotonic() > deadline:
                raise ClusterStartError(f"{self.name}: timed out waiting until {what}")
            time.sleep(POLL_S)

    def wait_ready(self, deadline: float | None = None) -> None:
        """Until cluster_state:ok everywhere, one slot map on every node, every replica in sync."""
        deadline = deadline or time.monotonic() + READY_TIMEOUT_S
        self._wait_until(deadline, "cluster_state is ok on every node", self._state_ok)
        self._wait_until(deadline, "every node has the same slot map", self._maps_agree)
        self._wait_until(deadline, "every replica is in sync", self._replicas_synced)

    def _state_ok(self) -> bool:
        for node in self.nodes:
            fields = info_fields(self._call(node, "CLUSTER", "INFO"))
            if (fields.get("cluster_state") != "ok" or fields.get("cluster_slots_ok") != str(SLOT_COUNT)
                    or fields.get("cluster_known_nodes") != str(len(self.nodes))):
                return False
        return True

    def slot_map(self, node: EmbeddedServer) -> list[tuple[int, int, int, tuple[int, ...]]]:
        """This node's view: (first slot, last slot, primary port, replica ports)."""
        rows = self._call(node, "CLUSTER", "SLOTS")
        return sorted((int(r[0]), int(r[1]), int(r[2][1]), tuple(sorted(int(n[1]) for n in r[3:])))
                      for r in rows)

    def _maps_agree(self) -> bool:
        maps = [self.slot_map(node) for node in self.nodes]
        want_replicas = self.replicas_per_primary
        return all(m == maps[0] for m in maps) and all(len(r[3]) == want_replicas for r in maps[0])

    def _replicas_synced(self) -> bool:
        for node in self.nodes:
            info = self.admin_info(node, "replication")
            if info.get("role") == "slave" and (info.get("master_link_status") != "up"
                                                or info.get("master_sync_in_progress") != "0"):
                return False
            if info.get("role") == "master" and int(info.get("connected_slaves", "0")) != self.replicas_per_primary:
                return False
        return True

    def admin_info(self, node: EmbeddedServer, section: str) -> dict[str, str]:
        return info_fields(self._call(node, "INFO", section))

    # while running -----------------------------------------------------------------------------
    @property
    def seed(self) -> EmbeddedServer:
        """A node that is alive (clients start from it)."""
        return next(node for node in self.nodes if node.alive())

    def node_at(self, port: int) -> EmbeddedServer | None:
        with self._lock:
            return next((node for node in self.nodes if node.port == port and node.alive()), None)

    def kill(self, port: int) -> bool:
        """SIGKILL one node, as a crash would (no shutdown, no failover handshake); True if it was alive."""
        node = self.node_at(port)
        if node is None or node.process is None:
            return False
        try:
            os.kill(node.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        node.process.wait(timeout=10)
        return True

    def replace_dead(self, timeout_s: float = READY_TIMEOUT_S) -> int:
        """Forget every dead node and start one new replica for each, so the layout is whole again;
        returns how many nodes were replaced."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            dead = [node for node in self.nodes if not node.alive()]
        if not dead:
            return 0
        living = [node for node in self.nodes if node.alive()]
        rows = nodes_table(self._call(living[0], "CLUSTER", "NODES"))
        dead_ids = [r["id"] for r in rows if any(node_port(r["address"]) == d.port for d in dead)]
        for node in living:
            for dead_id in dead_ids:
                self._call(node, "CLUSTER", "FORGET", dead_id)
        with self._lock:
            for node in dead:
                node.stop()
                self.nodes.remove(node)
                del self.bus_ports[node]
        for _ in dead:
            self.meet(self._spawn(), via=living[0])
        self._wait_until(deadline, "the new nodes are known to all", self._all_known)
        for node in self.nodes:
            if self.admin_info(node, "replication").get("role") != "master" or self._owns_slots(node):
                continue
            orphan = self._primary_without_replica()
            if orphan is not None:
                self._call(node, "CLUSTER", "REPLICATE", orphan)
        self.wait_ready(deadline)
        return len(dead)

    def _owns_slots(self, node: EmbeddedServer) -> bool:
        rows = nodes_table(self._call(node, "CLUSTER", "NODES"))
        return any(r["slots"] for r in rows if "myself" in r["flags"])

    def _primary_without_replica(self) -> str | None:
        rows = nodes_table(self._call(self.seed, "CLUSTER", "NODES"))
        primaries = [r for r in rows if "master" in r["flags"] and r["slots"] and "fail" not in r["flags"]]
        replicas = [r["primary"] for r in rows if "slave" in r["flags"]]
        return next((r["id"] for r in primaries if replicas.count(r["id"]) < self.replicas_per_primary), None)

    def pids(self) -> list[int]:
        with self._lock:
            return [node.process.pid for node in self.nodes if node.process is not None]

    def workdirs(self) -> list[str]:
        with self._lock:
            return [str(node.workdir) for node in self.nodes if node.workdir is not None]

    # stop ---------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop every process and remove every folder; safe twice, from a finally or a signal path."""
        with self._lock:
            nodes = list(self.nodes)
        # TERM to every node first, so they shut down side by side; stop() then waits for each.
        for node in nodes:
            if node.process is not None and node.process.poll() is None:
                try:
                    node.process.terminate()
                except ProcessLookupError:
                    pass  # exited meanwhile: stop() reaps it
        for node in nodes:
            node.stop()

    def __enter__(self) -> "EmbeddedCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- targets ---------------------------------------------------------------------------------------

@dataclass
class ClusterTarget(Target):
    """A cluster under comparison: any one node's URL; client() is a redis.cluster.RedisCluster."""

    cluster: EmbeddedCluster | None = None

    def client(self, timeout_s: float = config.DEFAULT_COMMAND_TIMEOUT_S) -> RedisCluster:  # type: ignore[override]
        kwargs: dict[str, Any] = {"socket_timeout": timeout_s,
                                  "socket_connect_timeout": config.DEFAULT_CONNECT_TIMEOUT_S}
        if self.password is not None:
            kwargs["password"] = self.password
        kwargs.update(self.tls)
        try:
            return RedisCluster.from_url(self.url, **kwargs)
        except ValueError as exc:
            raise TargetError(f"{self.name}: bad cluster URL {self.display_url()}: {exc}") from exc
        except (redis.RedisError, RedisClusterException, OSError) as exc:  # the last is not a RedisError
            raise TargetError(f"{self.name}: cannot use {self.display_url()} as a cluster: {exc}") from exc

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()


def embedded_cluster_target(name: str, binary: ServerBinary | None = None, source: str = "embedded",
                            extra_args: tuple[str, ...] = (), **fields: Any) -> ClusterTarget:
    """Start a cluster of a binary (the embedded one of that name, or the user's) and make it a target."""
    binary = binary or embedded_binary(name)
    cluster = EmbeddedCluster(binary, f"{name}-cluster", extra_args=extra_args).start()
    return ClusterTarget(name=name, url=cluster.seed.url, source=source, owned=True, cluster=cluster,
                         binary_source=binary.source, **fields)


def binary_cluster_target(name: str, path: str, **fields: Any) -> ClusterTarget:
    return embedded_cluster_target(name, user_binary(path), source="binary", **fields)


def external_cluster_target(name: str, url: str, **fields: Any) -> ClusterTarget:
    """A user's cluster at any one of its nodes; read-only unless --allow-server-changes."""
    validate_url(name, url)
    if urlsplit(url).scheme == "unix":
        raise TargetError(f"{name}: bad cluster URL {redact(url)}: a cluster is reached over TCP")
    if urlsplit(url).path.strip("/") not in ("", "0"):
        raise TargetError(f"{name}: bad cluster URL {redact(url)}: a cluster client uses database 0")
    # The password may come from the environment, so it never has to be typed on a command line.
    password = os.environ.get(password_variable(name))
    return ClusterTarget(name=name, url=url, source="external", owned=False, password=password, **fields)


def seed_client(cluster_client: RedisCluster) -> redis.Redis:
    """The redis.Redis of one primary of a cluster client (identity, INFO: one node's answer)."""
    node = cluster_client.get_primaries()[0]
    return cluster_client.get_redis_connection(node)
