"""Cluster scenario machinery: the context a cluster scenario's plan works with, run under the same
contract as a standalone scenario (support.run_scenario), plus what only clusters need.

- ClusterContext: `client` is the redis.cluster.RedisCluster the scenario was given (the application's
  view); `node(n)` is a raw RESP2 connection to one node (the protocol's view); `topology` is the layout
  read from CLUSTER NODES, with run-independent labels ("primary@0" = the primary of the shard whose
  first slot is 0) that replace node ids and addresses in every recorded reply.
- Own keys only: cleanup is SCAN + DEL by prefix on every primary; server-wide steps need
  --allow-server-changes and a cluster that holds no foreign keys (summed over primaries).
- Everything changed is put back: CONFIG on every node it was set on (the shared CONFIG journal), and
  slot states and ownership (the slot journal), when the plan ends, fails or is interrupted.
- Writer: a background application (its own RedisCluster) writing keys while a scenario reshards or
  fails over, recording every acknowledged key and every error the client library raised, and when.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from app.config import ScenarioOptions
from app.scenarios.support import (CONFIG_JOURNAL, Reply, ScenarioContext, StepSkipped, _describe, _verdict,
                                   error_text, glob_escape, plain, result, scan_keys)
from app.signals import GUARD

SLOT_COUNT = 16384
# Connection settings a derived connection must not copy from the cluster client's node pools.
NOT_COPIED = ("redis_connect_func", "host", "port", "retry", "connection_pool")
# A node id: 40 hex digits.
NODE_ID = re.compile(r"\b[0-9a-f]{40}\b")
DEL_BATCH = 500
# How long a step waits for the cluster to settle (gossip, a slot's new owner, a promoted replica).
SETTLE_TIMEOUT_S = 30.0
POLL_S = 0.02
LATE_COMMAND_WAIT_S = 0.2


@dataclass(frozen=True)
class ClusterOptions(ScenarioOptions):
    """ScenarioOptions plus the cluster the tool started, for the steps only such a cluster allows
    (killing a primary). None for a user's cluster: those steps are skipped with WARN."""

    cluster: Any = None  # app.cluster.EmbeddedCluster


# --- topology --------------------------------------------------------------------------------------

@dataclass
class Node:
    """One node as CLUSTER NODES describes it."""

    id: str
    host: str
    port: int
    primary: bool
    primary_id: str | None
    slots: list[tuple[int, int]]
    flags: list[str]
    label: str = ""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def parse_slots(fields: Iterable[str]) -> list[tuple[int, int]]:
    """Slot fields of a CLUSTER NODES line ("0-5460", "7", "[7->-id]" migration marks are skipped)."""
    ranges = []
    for text in fields:
        if text.startswith("["):
            continue
        low, _, high = text.partition("-")
        ranges.append((int(low), int(high or low)))
    return sorted(ranges)


@dataclass
class Topology:
    """The cluster's layout from one node's CLUSTER NODES, with run-independent labels."""

    nodes: list[Node]

    @classmethod
    def read(cls, conn: redis.Redis) -> "Topology":
        text = conn.execute_command("CLUSTER", "NODES")
        nodes = []
        for line in (text.decode() if isinstance(text, bytes) else text).splitlines():
            parts = line.split()
            if len(parts) < 8 or "noaddr" in parts[2] or "fail" in parts[2].split(","):
                continue
            host_port = parts[1].split("@", 1)[0]
            host, _, port = host_port.rpartition(":")
            flags = parts[2].split(",")
            nodes.append(Node(id=parts[0], host=host, port=int(port), primary="master" in flags,
                              primary_id=None if parts[3] == "-" else parts[3],
                              slots=parse_slots(parts[8:]), flags=flags))
        topology = cls(nodes)
        topology._label()
        return topology

    def _label(self) -> None:
        # A shard is named by its primary's first slot: the same in every cluster with the same layout.
        for node in self.primaries:
            node.label = f"primary@{node.slots[0][0]}" if node.slots else f"primary-empty:{node.port}"
        for primary in self.primaries:
            for index, replica in enumerate(self.replicas_of(primary)):
                replica.label = primary.label.replace("primary", "replica") + (f"#{index + 1}" if index else "")
        for node in self.nodes:
            node.label = node.label or f"node:{node.port}"

    @property
    def primaries(self) -> list[Node]:
        return sorted((n for n in self.nodes if n.primary), key=lambda n: n.slots[0] if n.slots else (SLOT_COUNT, 0))

    @property
    def replicas(self) -> list[Node]:
        return [n for n in self.nodes if not n.primary]

    def replicas_of(self, primary: Node) -> list[Node]:
        return sorted((n for n in self.nodes if n.primary_id == primary.id), key=lambda n: n.port)

    def owner(self, slot: int) -> Node:
        for node in self.primaries:
            if any(low <= slot <= high for low, high in node.slots):
                return node
        raise StepSkipped(f"slot {slot} has no owner in this cluster")

    def by_id(self, node_id: str) -> Node | None:
        return next((n for n in self.nodes if n.id == node_id), None)

    def other_primary(self, node: Node) -> Node:
        others = [n for n in self.primaries if n.id != node.id and n.slots]
        if not others:
            raise StepSkipped("the cluster has a single primary: nothing to move a slot to or be redirected to")
        return others[0]

    def relabel(self, text: str) -> str:
        """A text with node ids and addresses replaced by labels ("MOVED 2130 <primary@0>")."""
        for node in sorted(self.nodes, key=lambda n: -len(n.address)):
            text = text.replace(node.id, f"<{node.label} id>")
            text = re.sub(rf"{re.escape(node.host)}:{node.port}(@\d+)?", f"<{node.label}>", text)
        return NODE_ID.sub("<40 hex>", text)  # a node this layout does not know, or a script's SHA1


def tag_for_slot_range(low: int, high: int, stem: str = "rvc") -> str:
    """A hash tag whose slot lies in [low, high]: keys "{tag}..." live on that range's node."""
    for index in range(100000):
        tag = f"{stem}-{index}"
        if low <= key_slot(tag.encode()) <= high:
            return tag
    raise StepSkipped(f"no hash tag found for slots {low}-{high}")


def tag_on(node: Node, stem: str = "rvc") -> str:
    low, high = node.slots[0]
    return tag_for_slot_range(low, high, stem)


def slot_of(key: str) -> int:
    return key_slot(key.encode())


# --- the context ------------------------------------------------------------------------------------

def node_connection(client: RedisCluster, host: str, port: int, *, protocol: int = 2, raw: bool = True,
                    **overrides: Any) -> redis.Redis:
    """A plain connection to one node with the cluster client's auth, TLS and timeouts."""
    kwargs = {k: v for k, v in client.nodes_manager.connection_kwargs.items() if k not in NOT_COPIED}
    kwargs.update(decode_responses=False, protocol=protocol, **overrides)
    if int(protocol) < 3:  # redis-py refuses its RESP3-only maintenance-notification options on RESP2
        kwargs.pop("maint_notifications_config", None)
    conn = redis.Redis(host=host, port=port, **kwargs)
    if raw:
        conn.response_callbacks.clear()
    return conn


def derive_cluster_client(client: RedisCluster, **overrides: Any) -> RedisCluster:
    """Another cluster client with the same nodes and settings (a writer thread's own client)."""
    # "db" is in a URL-made client's node settings, but a cluster client refuses it as an argument.
    kwargs = {k: v for k, v in client.nodes_manager.connection_kwargs.items() if k not in (*NOT_COPIED, "db")}
    kwargs.update(overrides)
    startup = [ClusterNode(node.host, node.port) for node in client.get_nodes()]
    return RedisCluster(startup_nodes=startup, **kwargs)


class ClusterContext(ScenarioContext):
    """A ScenarioContext for a cluster: `client` is the cluster client, `raw` a raw connection to the
    first primary, `node(n)` a raw connection to any node, `topology` the labelled layout."""

    def __init__(self, name: str, client: RedisCluster, options: ScenarioOptions) -> None:
        self._nodes: dict[tuple[str, int], redis.Redis] = {}
        self.topology = Topology([])
        self.client = client
        self.refresh()
        first = self.topology.primaries[0]
        # The standalone context, built on the first primary (its raw connection, sections, verdicts,
        # whatever it tracks); then `client` is the cluster client the scenario was given.
        seed = node_connection(client, first.host, first.port, raw=False)
        super().__init__(name, seed, options)
        self._extra_clients.append(seed)
        self.client = client
        # Every key name handed out: on a cluster the tool did not start, the keys are found and
        # deleted by name (O(own keys)), never by walking a node's keyspace.
        self.written: set[str] = getattr(self, "written", set())
        self.slot_journal = SlotJournal(self)

    def refresh(self) -> "Topology":
        """Re-read the layout (after a failover or a slot move), from any node that answers."""
        known = [(n.host, n.port) for n in getattr(self, "topology", Topology([])).nodes]
        known += [(n.host, n.port) for n in self.client.get_nodes()]
        last: Exception | None = None
        for host, port in dict.fromkeys(known):
            try:
                self.topology = Topology.read(self.node_at(host, port))
                return self.topology
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                last = exc  # that node is down (killed on purpose): ask the next one
        raise StepSkipped(f"no node of the cluster answers CLUSTER NODES: {last}")

    # connections ------------------------------------------------------------------------------
    def node_at(self, host: str, port: int) -> redis.Redis:
        conn = self._nodes.get((host, port))
        if conn is None:
            conn = self._nodes[(host, port)] = node_connection(self.client, host, port)
        return conn

    def node(self, node: Node) -> redis.Redis:
        return self.node_at(node.host, node.port)

    def connection(self, *, protocol: int | None = None, raw: bool = True, **overrides: Any) -> redis.Redis:
        """Another connection, to the first primary (or to `node=` given in overrides)."""
        target: Node = overrides.pop("node", None) or self.topology.primaries[0]
        conn = node_connection(self.client, target.host, target.port, protocol=protocol or 2, raw=raw, **overrides)
        self._extra_clients.append(conn)
        return conn

    def cluster_client(self, **overrides: Any) -> RedisCluster:
        conn = derive_cluster_client(self.client, **overrides)
        self._extra_clients.append(conn)
        return conn

    # replies ----------------------------------------------------------------------------------
    def on(self, node: Node, *args: Any) -> Reply:
        """One command on one node, its reply plain and relabelled (ids and addresses as labels)."""
        return self.labelled(self.call(*args, conn=self.node(node)))

    def record_on(self, section: str, label: str, node: Node, *args: Any) -> Reply:
        return self.put(section, label, self.on(node, *args))

    def labelled(self, reply: Reply) -> Reply:
        if isinstance(reply, str):
            return self.topology.relabel(reply)
        if isinstance(reply, list):
            return [self.labelled(v) for v in reply]
        if isinstance(reply, dict):
            return {self.labelled(k): self.labelled(v) for k, v in reply.items()}
        return reply

    # keys -------------------------------------------------------------------------------------
    def key(self, name: str) -> str:
        full = self.prefix + name
        self.written.add(full)
        return full

    def own_keys(self) -> list[bytes]:
        """This scenario's keys that exist: by SCAN on every primary of the tool's own cluster, by name
        (routed by the cluster client) on anyone else's."""
        if self.options.server_is_owned:
            pattern = glob_escape(self.prefix) + "*"
            return sorted(k for node in self.living_primaries() for k in scan_keys(self.node(node), pattern))
        names = sorted(self.written)
        found: list[bytes] = []
        for start in range(0, len(names), DEL_BATCH):
            batch = names[start:start + DEL_BATCH]
            pipe = self.client.pipeline(transaction=False)
            for name in batch:
                pipe.exists(name)
            found.extend(n.encode() for n, there in zip(batch, pipe.execute()) if there)
        return found

    def own_keys_in_slot(self, node: Node, slot: int) -> list[bytes]:
        """This scenario's keys of one slot held by one node (GETKEYSINSLOT: the slot holds only ours)."""
        count = int(self.node(node).execute_command("CLUSTER", "COUNTKEYSINSLOT", slot))
        listed = self.node(node).execute_command("CLUSTER", "GETKEYSINSLOT", slot, max(count, 1)) if count else []
        return [k for k in listed if k.startswith(self.prefix.encode())]

    def living_primaries(self) -> list[Node]:
        return [n for n in self.topology.primaries if self.answers(n)]

    def answers(self, node: Node) -> bool:
        try:
            return bool(self.node(node).execute_command("PING"))
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    def cleanup(self) -> int:
        """Delete this scenario's keys, one DEL per key (keys of one node may sit in many slots)."""
        self.refresh()
        keys = self.own_keys()
        for start in range(0, len(keys), DEL_BATCH):
            pipe = self.client.pipeline(transaction=False)
            for key in keys[start:start + DEL_BATCH]:
                pipe.delete(key)
            pipe.execute()
        return len(keys)

    def foreign_key_count(self) -> int:
        """Keys on the primaries (DBSIZE, O(1) each) that this scenario did not write."""
        total = sum(int(self.node(n).execute_command("DBSIZE")) for n in self.living_primaries())
        return max(0, total - len(self.own_keys()))

    def keyspace_is_own(self) -> bool:
        """True when the cluster holds no key but this scenario's: walking a node's keyspace (SCAN
        without MATCH limits) then costs no one anything."""
        return self.options.server_is_owned or self.foreign_key_count() == 0

    def require_slot_is_ours(self, slot: int) -> None:
        """A step that moves or freezes a slot needs it empty of anyone else's keys."""
        owner = self.topology.owner(slot)
        count = int(self.node(owner).execute_command("CLUSTER", "COUNTKEYSINSLOT", slot))
        pipe = self.node(owner).pipeline(transaction=False)
        names = [name for name in sorted(self.written) if slot_of(name) == slot]
        for name in names:
            pipe.execute_command("EXISTS", name)
        own = sum(pipe.execute()) if names else 0
        if count != own:
            raise StepSkipped(f"slot {slot} holds {count - own} keys that are not this tool's: it is left alone")

    # server-wide changes on every node --------------------------------------------------------
    def config_get_on(self, node: Node, name: str) -> str | None:
        reply = plain(self.node(node).execute_command("CONFIG", "GET", name))
        if isinstance(reply, list) and len(reply) >= 2:
            return reply[1]
        return None

    def config_set_on(self, nodes: Iterable[Node], name: str, value: Any) -> None:
        """CONFIG SET on each node, journalled per node so every one is put back."""
        self.require_server_changes(f"CONFIG SET {name}")
        for node in nodes:
            conn = self.node(node)
            original = self.config_get_on(node, name)
            if original is None:
                raise StepSkipped(f"CONFIG parameter {name} does not exist on this server")
            CONFIG_JOURNAL.remember(conn, name, original)
            try:
                conn.execute_command("CONFIG", "SET", name, value)
            except redis.ResponseError as exc:
                raise StepSkipped(f"CONFIG SET {name} refused: {error_text(exc)}") from exc

    # waiting ----------------------------------------------------------------------------------
    def wait_for(self, what: str, ready: Callable[[], bool], timeout_s: float = SETTLE_TIMEOUT_S) -> float:
        """Poll until ready() (errors of a node in transition count as not ready); seconds it took."""
        began = time.monotonic()
        while True:
            try:
                if ready():
                    return time.monotonic() - began
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError):
                pass  # a node being killed, promoted or reconfigured: ask again
            if time.monotonic() - began > timeout_s:
                raise StepSkipped(f"timed out after {timeout_s:.0f}s waiting until {what}")
            time.sleep(POLL_S)

    def close(self) -> None:
        super().close()
        for conn in self._nodes.values():
            try:
                conn.close()
            except redis.RedisError:
                pass  # a killed node's connection has nothing left to release


class Session:
    """One connection held for connection-scoped state (READONLY, SELECT, ASKING, MULTI), with replies
    plain and relabelled like ClusterContext.on()."""

    def __init__(self, ctx: ClusterContext, node: Node) -> None:
        self.ctx = ctx
        self.node = node
        self.pool = ctx.node(node).connection_pool
        self.connection = self.pool.get_connection()

    def call(self, *args: Any) -> Reply:
        try:
            self.connection.send_command(*args)
            reply = plain(self.connection.read_response(), self.ctx.prefix)
        except redis.ResponseError as exc:
            reply = plain(exc, self.ctx.prefix)
        return self.ctx.labelled(reply)

    def close(self) -> None:
        self.connection.disconnect()  # its state (READONLY, SELECT, ASKING) must not reach another user
        self.pool.release(self.connection)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- slot journal: slot states and owners are put back like CONFIG ----------------------------------------

class SlotJournal:
    """Slots a scenario put in MIGRATING/IMPORTING state or gave to another node, with their original owner.

    restore() brings each back whatever state an interruption left it in: atomic migrations cancelled,
    the slot's keys (ours only: a slot is used only when it holds no one else's) moved back to the
    original owner, the owner's claim made the newest (BUMPEPOCH), and every primary told so."""

    def __init__(self, ctx: ClusterContext) -> None:
        self.ctx = ctx
        self.changes: dict[int, str] = {}  # slot -> id of its owner before the scenario touched it

    def remember(self, slot: int, owner: Node) -> None:
        self.changes.setdefault(slot, owner.id)

    def forget(self, slot: int) -> None:
        self.changes.pop(slot, None)

    def restore(self) -> list[str]:
        problems = []
        for slot, owner_id in list(self.changes.items()):
            try:
                give_back(self.ctx, slot, owner_id)
                del self.changes[slot]
            except Exception as exc:  # noqa: BLE001 - reported; CONFIG restore and cleanup still follow
                problems.append(f"could not give slot {slot} back to its owner: {_describe(exc)}")
        return problems


def owner_in_view(conn: redis.Redis, slot: int) -> str | None:
    """The id of the node that owns a slot in this node's own view (migration marks ignored)."""
    topology = Topology.read(conn)
    try:
        return topology.owner(slot).id
    except StepSkipped:
        return None


def give_back(ctx: ClusterContext, slot: int, owner_id: str) -> None:
    """Make `owner_id` the only owner of `slot` again, with every key of the slot on it."""
    topology = ctx.refresh()
    owner = topology.by_id(owner_id)
    if owner is None:
        raise StepSkipped("its original owner is no longer in the cluster")
    primaries = ctx.living_primaries()
    atomic = [n for n in primaries if "CANCELSLOTMIGRATIONS" in supported_subcommands(ctx, n)]
    for node in atomic:
        ctx.call("CLUSTER", "CANCELSLOTMIGRATIONS", "ALL", conn=ctx.node(node))
    # A cancelled atomic migration rolls back in the background: wait until none is running any more.
    ctx.wait_for("every atomic slot migration has ended",
                 lambda: not any(running_migrations(ctx.node(n)) for n in atomic))
    owner_conn = ctx.node(owner)
    holders = {n.id: ctx.own_keys_in_slot(n, slot) for n in primaries if n.id != owner.id}
    if any(holders.values()):
        # The owner must accept the keys: a MIGRATING owner would answer ASK, one that gave the slot
        # away MOVED; STABLE or IMPORTING (from whoever holds the slot now) makes it take them.
        current = owner_in_view(owner_conn, slot)
        if current == owner.id:
            owner_conn.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
        else:
            owner_conn.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", current)
        for node in primaries:
            if holders.get(node.id):
                # ASKING lets a node that is importing the slot act on its keys; harmless otherwise.
                pipe = ctx.node(node).pipeline(transaction=False)
                pipe.execute_command("ASKING")
                pipe.execute_command("MIGRATE", owner.host, owner.port, "", 0, 5000, "REPLACE", "KEYS",
                                     *holders[node.id])
                pipe.execute()
    owner_conn.execute_command("CLUSTER", "SETSLOT", slot, "NODE", owner.id)
    owner_conn.execute_command("CLUSTER", "BUMPEPOCH")  # its claim must win over any other node's
    for node in primaries:
        if node.id != owner.id:
            # SETSLOT NODE <another node> leaves an IMPORTING state in place: STABLE clears it first.
            ctx.node(node).execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
            ctx.node(node).execute_command("CLUSTER", "SETSLOT", slot, "NODE", owner.id)
    ctx.wait_for(f"every primary sees slot {slot} back on its owner, with no migration state",
                 lambda: settled_on(ctx, slot, owner, primaries))
    # A SETSLOT sent just before an interruption (the reply never read) can still be executed after the
    # restore: look again after a quiet moment, and settle once more if it came.
    time.sleep(LATE_COMMAND_WAIT_S)
    ctx.wait_for(f"slot {slot} still settled on its owner", lambda: settled_on(ctx, slot, owner, primaries))


ATOMIC_FINAL_STATES = frozenset({b"success", b"failed", b"cancelled"})


def running_migrations(conn: redis.Redis) -> list[bytes]:
    """The states of a node's atomic slot migrations (CLUSTER GETSLOTMIGRATIONS) that have not ended."""
    states = []
    for entry in conn.execute_command("CLUSTER", "GETSLOTMIGRATIONS"):
        fields = dict(zip(entry[::2], entry[1::2]))
        if fields.get(b"state") not in ATOMIC_FINAL_STATES:
            states.append(fields.get(b"state"))
    return states


def migration_marks_of(conn: redis.Redis, slot: int) -> bool:
    """Whether a node's own CLUSTER NODES line marks `slot` as migrating or importing."""
    own = next(line for line in conn.execute_command("CLUSTER", "NODES").decode().splitlines()
               if "myself" in line.split()[2])
    return any(field.startswith((f"[{slot}->-", f"[{slot}-<-")) for field in own.split()[8:])


def settled_on(ctx: ClusterContext, slot: int, owner: Node, primaries: list[Node]) -> bool:
    """True when every primary sees `owner` owning `slot` and neither it nor its replicas mark it; a
    node that does not is set right again (SETSLOT is idempotent), and the next poll looks again."""
    settled = True
    for node in primaries:
        conn = ctx.node(node)
        if migration_marks_of(conn, slot) or any(migration_marks_of(ctx.node(r), slot)
                                                 for r in ctx.topology.replicas_of(node) if ctx.answers(r)):
            # Valkey sends SETSLOT to the replicas before its primary runs it: one cut off while the
            # primary waited for them marks the replicas only, and only the primary's STABLE clears it.
            settled = False
            conn.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")  # clears MIGRATING and IMPORTING
        if owner_in_view(conn, slot) != owner.id:
            settled = False
            conn.execute_command("CLUSTER", "SETSLOT", slot, "NODE", owner.id)
    return settled


def supported_subcommands(ctx: ClusterContext, node: Node) -> set[str]:
    """CLUSTER subcommands a node lists in CLUSTER HELP (upper case)."""
    reply = ctx.call("CLUSTER", "HELP", conn=ctx.node(node))
    if not isinstance(reply, list):
        return set()
    return {line.split()[0].upper() for line in reply[1:] if line and not line.startswith(" ")}


# --- an application writing while the cluster changes ---------------------------------------------------

ADDRESS = re.compile(r"\b\d{1,3}(\.\d{1,3}){3}:\d+\b")


def error_kind(exc: BaseException) -> str:
    """What the application saw, without addresses: a server error's class and code, or the class and
    message of an error the client library raised itself."""
    text = str(exc).strip()
    if isinstance(exc, redis.ResponseError):
        word = text.split()[0] if text else ""
        return f"{type(exc).__name__} {word}" if word.isupper() else type(exc).__name__
    return f"{type(exc).__name__}: {ADDRESS.sub('<node>', text)}" if text else type(exc).__name__


class Writer(threading.Thread):
    """Writes WRITER_KEYS keys "{tag}w:<n>" round and round with increasing values, through its own
    cluster client, as fast as an application would; records (time, key, value) of every acknowledged
    write and (time, kind) of every error raised. Overwriting keeps the slot's size constant, so moves
    and failovers repeated during a run handle the same amount of data."""

    def __init__(self, ctx: ClusterContext, tag: str, *, keys: int = 100, socket_timeout_s: float = 2.0,
                 pause_s: float = 0.005) -> None:
        super().__init__(name=f"rvc-writer-{tag}", daemon=True)
        self.ctx = ctx
        self.tag = tag
        self.keys = keys
        self.pause_s = pause_s
        self.client = ctx.cluster_client(socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s)
        self.acked: list[tuple[float, str, int]] = []
        self.errors: list[tuple[float, str]] = []
        self._stop_event = threading.Event()
        self._count = 0

    def key(self, n: int) -> str:
        return self.ctx.key(f"{{{self.tag}}}w:{n % self.keys}")

    def step(self) -> None:
        """One unit of the application's work: a write (subclasses add reads)."""
        key = self.key(self._count)
        self.client.set(key, self._count)
        self.acked.append((time.monotonic(), key, self._count))

    def run(self) -> None:
        while not self._stop_event.is_set():
            self._count += 1
            try:
                self.step()
            except (redis.RedisError, OSError) as exc:
                self.errors.append((time.monotonic(), error_kind(exc)))
                self._stop_event.wait(self.pause_s * 10)  # a failing client retries, not spins
            self._stop_event.wait(self.pause_s)

    def wait_for_writes(self, count: int, timeout_s: float = SETTLE_TIMEOUT_S) -> None:
        """Until `count` more writes were acknowledged (the writer is running and succeeding)."""
        target = len(self.acked) + count
        deadline = time.monotonic() + timeout_s
        while len(self.acked) < target:
            if time.monotonic() > deadline or not self.is_alive():
                raise StepSkipped(f"the writer got no {count} acknowledged writes within {timeout_s:.0f}s")
            time.sleep(POLL_S)

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=10)
        self.client.close()

    def window(self, since: float, until: float) -> dict[str, Any]:
        """What the application saw between two moments: writes, errors by kind, the longest gap
        between acknowledged writes, and how long until the first write after `since` succeeded."""
        acked = [t for t, _, _ in list(self.acked) if since <= t <= until]
        errors: dict[str, int] = {}
        for t, kind in list(self.errors):
            if since <= t <= until:
                errors[kind] = errors.get(kind, 0) + 1
        marks = [since, *acked]
        gap = max((b - a for a, b in zip(marks, marks[1:])), default=until - since)
        return {"acknowledged": len(acked), "errors": dict(sorted(errors.items())),
                "longest_gap_ms": round(gap * 1000, 1),
                "first_ack_after_ms": round((acked[0] - since) * 1000, 1) if acked else None}

    def written_keys(self) -> list[str]:
        return sorted({key for _, key, _ in self.acked})

    def lost(self, reader: RedisCluster) -> list[str]:
        """Keys whose last acknowledged value cannot be read back now (missing, or an older value)."""
        last: dict[str, int] = {}
        for _, key, value in list(self.acked):
            last[key] = value
        keys = sorted(last)
        missing = []
        for start in range(0, len(keys), DEL_BATCH):
            chunk = keys[start:start + DEL_BATCH]
            for key, value in zip(chunk, reader.mget_nonatomic(chunk)):
                if value is None or int(value) < last[key]:
                    missing.append(key)
        return missing


# --- the run, under the standalone contract --------------------------------------------------------------

def run_cluster_scenario(name: str, client: RedisCluster, options: ScenarioOptions | None,
                         plan: Callable[[ClusterContext], None]) -> dict[str, Any]:
    """Run a cluster plan: always a dict, keys deleted, slots and CONFIG put back on every node."""
    options = options or ClusterOptions()
    try:
        ctx = ClusterContext(name, client, options)
    except Exception as exc:  # noqa: BLE001 - the contract: a scenario never raises
        return result(name, "FAIL", f"could not read the cluster: {_describe(exc)}", {})
    crash: str | None = None
    interrupted: BaseException | None = None
    try:
        if options.server_is_owned:
            ctx.cleanup()  # leftovers of an interrupted earlier run with the same prefix
        plan(ctx)
    except StepSkipped as exc:
        ctx.warn(str(exc))
    except Exception as exc:  # noqa: BLE001 - turned into FAIL with the reason
        crash = _describe(exc)
    except BaseException as exc:  # SIGINT/SIGTERM: put everything back below, then let it go on
        interrupted = exc
        crash = f"interrupted by {exc}: partial result"
    finally:
        # Also on an interruption (the runner's signal handler raises through here): put back first,
        # with further signals deferred so a second Ctrl-C cannot break the give-back half-way.
        with GUARD.deferred():
            problems = ctx.slot_journal.restore()
            for conn in list(ctx._nodes.values()):
                problems.extend(CONFIG_JOURNAL.restore(conn))
            try:
                ctx.cleanup()
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                problems.append(f"cleanup failed: {_describe(exc)}")
            ctx.close()
    outcome = result(name, *_verdict(ctx, crash, problems), ctx.metrics)
    if interrupted is not None:
        interrupted.partial = outcome  # type: ignore[attr-defined]  # the runner keeps it in the report
        raise interrupted
    return outcome
