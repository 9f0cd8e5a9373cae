"""cluster_scan_pubsub: iterating a whole cluster, sharded and classic pub/sub across nodes, and
keyspace notifications per node.

SCAN, subscriptions and notifications are per node in a cluster: an application must visit every
primary, subscribe where a shard channel lives, and listen to every primary for notifications. This
scenario checks that each server keeps to that model, with counts and booleans that do not depend on
which slots the run's key prefix happens to hash to (per-node counts do: they are measured only).

Test plan, in order:
  1. scan (on a cluster holding no one else's keys: SCAN walks a node's whole keyspace): SCAN_KEYS
     keys written through the cluster client; SCAN MATCH on every primary: together
     every key, no key on two primaries, every key on the owner of its slot; each replica's SCAN
     returns its primary's keys (SCAN is not redirected on a replica); the cluster client's scan_iter.
  2. sharded: SSUBSCRIBE on the shard channel's owner, on another primary (MOVED), over two slots
     (CROSSSLOT), on the owner's replica before and after READONLY; SPUBLISH through the cluster client
     (receivers counted, message delivered to the owner's and the replica's subscribers), SPUBLISH on
     another primary (MOVED); PUBSUB SHARDCHANNELS / SHARDNUMSUB on the owner and elsewhere.
  3. classic: SUBSCRIBE on one primary, PUBLISH on another: delivered across the cluster; the
     receivers PUBLISH counts; PUBSUB NUMSUB on both nodes.
  4. notifications (needs server changes): notify-keyspace-events set on every primary and on one
     replica (each node has its own configuration; put back afterwards); a keyspace subscriber on each; NOTIFY_KEYS keys written
     through the cluster client: each primary notifies exactly the keys of its slots, the replica those
     of its primary, nothing is notified twice.
"""

from __future__ import annotations

from typing import Any

from redis.cluster import RedisCluster

from app.config import ScenarioOptions
from app.scenarios.cluster_support import ClusterContext, Node, run_cluster_scenario, slot_of, tag_on
from app.scenarios.pubsub import RawConnection, RawConnections, is_message, items, tagged
from app.scenarios.support import glob_escape, scan_keys

NAME = "cluster_scan_pubsub"

SCAN_KEYS = 600
NOTIFY_KEYS = 30
WRITE_BATCH = 200
SHARD_TAG = "rvc-shard"
# Keyspace events for string commands: enough to see every SET, nothing else.
NOTIFY_FLAGS = "K$"
KEYSPACE = "__keyspace@0__:"

# How the run's keys spread over the primaries depends on the run's key prefix: measured, not compared.
METRIC_KINDS = {"measured.*": "not_compared"}


def run(client: RedisCluster, options: ScenarioOptions | None = None) -> dict[str, Any]:
    return run_cluster_scenario(NAME, client, options, plan)


def plan(ctx: ClusterContext) -> None:
    subscribers = Subscribers(ctx)
    try:
        scan(ctx)
        sharded(ctx, subscribers)
        classic(ctx, subscribers)
        ctx.skippable(lambda: notifications(ctx, subscribers))
    finally:
        subscribers.close()


class Subscribers(RawConnections):
    """Protocol-level connections to chosen nodes of the cluster, every one closed at the end."""

    def open_on(self, node: Node) -> RawConnection:
        conn = RawConnection(self.ctx.connection(node=node))
        self.opened.append(conn)
        return conn


def write(ctx: ClusterContext, keys: list[str]) -> None:
    """SETs through the cluster client's pipeline (it groups them per node)."""
    for start in range(0, len(keys), WRITE_BATCH):
        pipe = ctx.client.pipeline(transaction=False)
        for key in keys[start:start + WRITE_BATCH]:
            pipe.set(key, 1)
        pipe.execute()


# --- 1. SCAN ------------------------------------------------------------------------------------

def scan(ctx: ClusterContext) -> None:
    if not ctx.keyspace_is_own():
        # SCAN MATCH still walks every key of a node: on a cluster holding others' keys, O(keyspace).
        ctx.warn("SCAN over the cluster skipped: it holds keys that are not this tool's, and walking "
                 "every node's keyspace would cost its users; use an empty cluster")
        return
    keys = {ctx.key(f"s:{i}") for i in range(SCAN_KEYS)}
    write(ctx, sorted(keys))
    pattern = glob_escape(ctx.key("s:")) + "*"
    found: dict[str, set[str]] = {}
    for node in ctx.topology.primaries:
        found[node.label] = {k.decode() for k in scan_keys(ctx.node(node), pattern)}
        ctx.put("measured", f"keys on {node.label}", len(found[node.label]))
    union = set().union(*found.values())
    ctx.put("scan", "keys written", len(keys))
    ctx.put("scan", "missing from every primary's SCAN", len(keys - union))
    ctx.put("scan", "found on two primaries", sum(len(v) for v in found.values()) - len(union))
    ctx.put("scan", "found on a primary not owning the slot",
            sum(1 for label, ks in found.items() for k in ks if ctx.topology.owner(slot_of(k)).label != label))
    ctx.check(union == keys, f"scan: {len(keys - union)} keys missing from the primaries' SCAN")
    synced = []
    for primary in ctx.topology.primaries:
        for replica in ctx.topology.replicas_of(primary):
            want = found[primary.label]
            ctx.wait_for(f"{replica.label} has its primary's keys",
                         lambda r=replica, w=want: {k.decode() for k in scan_keys(ctx.node(r), pattern)} == w)
            synced.append(replica.label)
    ctx.put("scan", "every replica's SCAN returns its primary's keys", bool(synced) or None)
    through_client = {k.decode() for k in ctx.client.scan_iter(match=pattern, count=100)}
    ctx.put("scan", "cluster client scan_iter: missing", len(keys - through_client))
    ctx.put("scan", "cluster client scan_iter: foreign", len(through_client - keys))


# --- 2. sharded pub/sub -----------------------------------------------------------------------------

def sharded(ctx: ClusterContext, subs: Subscribers) -> None:
    s = "sharded"
    channel = ctx.key(f"{{{SHARD_TAG}}}ch")
    owner = ctx.topology.owner(slot_of(channel))
    other = ctx.topology.other_primary(owner)
    far_channel = ctx.key(f"{{{tag_on(other, 'rvc-far')}}}ch")
    listener = subs.open_on(owner)
    put_frames(ctx, s, "SSUBSCRIBE on the owner", listener.call("SSUBSCRIBE", channel))
    put_frames(ctx, s, "SSUBSCRIBE on another primary", subs.open_on(other).call("SSUBSCRIBE", channel))
    put_frames(ctx, s, "SSUBSCRIBE over two slots", subs.open_on(owner).call("SSUBSCRIBE", channel, far_channel))
    replica_listener = None
    replicas = ctx.topology.replicas_of(owner)
    if replicas:
        put_frames(ctx, s, "SSUBSCRIBE on the owner's replica",
                   subs.open_on(replicas[0]).call("SSUBSCRIBE", channel))
        candidate = subs.open_on(replicas[0])
        frames = candidate.call("READONLY") + candidate.call("SSUBSCRIBE", channel)
        put_frames(ctx, s, "READONLY then SSUBSCRIBE on the owner's replica", frames)
        replica_listener = candidate if is_subscribe_ack(frames[-1]) else None
    ctx.put(s, "SPUBLISH through the cluster client: receivers", ctx.client.spublish(channel, "hello"))
    put_frames(ctx, s, "message at the owner's subscriber", [next_message(listener)])
    if replica_listener is not None:
        put_frames(ctx, s, "message at the replica's subscriber", [next_message(replica_listener)])
    ctx.record_on(s, "SPUBLISH on another primary", other, "SPUBLISH", channel, "x")
    ctx.record_on(s, "PUBSUB SHARDCHANNELS on the owner", owner, "PUBSUB", "SHARDCHANNELS", glob_escape(ctx.prefix) + "*")
    ctx.record_on(s, "PUBSUB SHARDCHANNELS on another primary", other, "PUBSUB", "SHARDCHANNELS",
                  glob_escape(ctx.prefix) + "*")
    ctx.record_on(s, "PUBSUB SHARDNUMSUB on the owner", owner, "PUBSUB", "SHARDNUMSUB", channel)
    ctx.record_on(s, "PUBSUB SHARDNUMSUB on another primary", other, "PUBSUB", "SHARDNUMSUB", channel)


def is_subscribe_ack(frame: Any) -> bool:
    return frame.kind in ("push", "array") and bool(frame.value) and items(frame)[0] in (b"ssubscribe", b"subscribe")


def next_message(conn: RawConnection) -> Any:
    return conn.read_until(is_message)[-1]


def put_frames(ctx: ClusterContext, section: str, label: str, frames: list[Any]) -> Any:
    values = [ctx.labelled(tagged(f, ctx.prefix)) for f in frames]
    return ctx.put(section, label, values[0] if len(values) == 1 else values)


# --- 3. classic pub/sub across nodes ------------------------------------------------------------------

def classic(ctx: ClusterContext, subs: Subscribers) -> None:
    c = "classic"
    channel = ctx.key("broadcast")
    first, second = ctx.topology.primaries[0], ctx.topology.other_primary(ctx.topology.primaries[0])
    listener = subs.open_on(first)
    put_frames(ctx, c, "SUBSCRIBE on one primary", listener.call("SUBSCRIBE", channel))
    ctx.record_on(c, "PUBLISH on another primary: receivers there", second, "PUBLISH", channel, "hello")
    put_frames(ctx, c, "message at the subscriber", [next_message(listener)])
    ctx.record_on(c, "PUBSUB NUMSUB on the subscriber's node", first, "PUBSUB", "NUMSUB", channel)
    ctx.record_on(c, "PUBSUB NUMSUB on another primary", second, "PUBSUB", "NUMSUB", channel)


# --- 4. keyspace notifications per node --------------------------------------------------------------

def notifications(ctx: ClusterContext, subs: Subscribers) -> None:
    n = "notifications"
    primaries = ctx.topology.primaries
    watched = [*primaries, *ctx.topology.replicas_of(primaries[0])[:1]]
    # Each node has its own configuration: a replica notifies only if it is set there too.
    ctx.config_set_on(watched, "notify-keyspace-events", NOTIFY_FLAGS)
    pattern = glob_escape(KEYSPACE + ctx.prefix) + "*"
    listeners: dict[str, tuple[Node, RawConnection]] = {}
    for node in watched:
        conn = subs.open_on(node)
        conn.call("PSUBSCRIBE", pattern)
        listeners[node.label] = (node, conn)
    keys = [ctx.key(f"n:{i}") for i in range(NOTIFY_KEYS)]
    write(ctx, keys)
    # One marker key per shard, written last: its notification ends that node's stream.
    markers = {p.id: ctx.key(f"{{{tag_on(p, 'rvc-sync')}}}n:end") for p in primaries}
    write(ctx, list(markers.values()))
    received: dict[str, list[str]] = {}
    for label, (node, conn) in listeners.items():
        shard = node if node.primary else ctx.topology.by_id(node.primary_id or "")
        marker = KEYSPACE + markers[shard.id]
        frames = conn.read_until(lambda f, m=marker.encode(): is_message(f) and items(f)[2] == m)
        received[label] = [items(f)[2].decode()[len(KEYSPACE):] for f in frames if is_message(f)]
        events = sorted({items(f)[3].decode() for f in frames if is_message(f)})
        ctx.put(n, f"events on {'a replica' if not node.primary else 'primaries'}", events)
    every = set(keys) | set(markers.values())
    wrong = dup = 0
    for label, (node, _) in listeners.items():
        shard = node if node.primary else ctx.topology.by_id(node.primary_id or "")
        own = {k for k in every if ctx.topology.owner(slot_of(k)).id == shard.id}
        wrong += len(set(received[label]) ^ own)
        dup += len(received[label]) - len(set(received[label]))
        ctx.put("measured", f"notifications on {label}", len(received[label]))
    ctx.put(n, "keys notified by a node other than their own, or missing", wrong)
    ctx.put(n, "notified twice", dup)
    ctx.put(n, "every key notified by one primary",
            sorted(k for label, (node, _) in listeners.items() if node.primary for k in received[label]) == sorted(every))
    replica_labels = [label for label, (node, _) in listeners.items() if not node.primary]
    ctx.put(n, "the replica notifies its primary's keys", bool(replica_labels) and not wrong or None)
