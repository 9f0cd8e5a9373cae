"""cluster_routing: how each cluster tells a client where a key lives, and what it refuses.

Every reply is taken on a raw connection to one chosen node (the protocol's view: redis-py would
follow redirections silently); node addresses in replies are replaced by run-independent labels
("MOVED 2130 <primary@0>"), and the slots are fixed by hash tags, so two clusters of the same layout
give the same metrics.

Test plan, in order:
  1. moved: a key read on a primary that does not own its slot, on a replica of another shard, and
     written on its own shard's replica: MOVED with the slot and the owner; the cluster client reads it.
  2. crossslot: multi-key commands, a transaction and scripts over keys of two slots (CROSSSLOT, or the
     script error for a key it did not declare), the same over hash-tagged keys (allowed), and a script
     with the allow-cross-slot-keys flag over two slots of one node.
  3. ask (needs server changes, and a slot holding only this tool's keys): the slot put in MIGRATING /
     IMPORTING state: ASK for a key already moved or absent, TRYAGAIN for a multi-key command split
     between the nodes, MOVED on the target without ASKING, ASKING lasting one command, the cluster
     client following ASK; then the slot is given back (slot journal) and checked stable.
  4. replicas: READONLY and READWRITE on a replica of the key's shard: MOVED before READONLY, the value
     after, writes still redirected, keys of other shards still redirected, MOVED again after READWRITE.
  5. databases: CONFIG databases / cluster-databases in cluster mode, SELECT 0 and 1, SWAPDB; where the
     server has more than one database in cluster mode (Valkey 9 with cluster-databases > 1): keys
     in db 1 are separate from db 0, MOVE and COPY ... DB between them, MOVED in db 1 too.
"""

from __future__ import annotations

from typing import Any

from redis.cluster import RedisCluster

from app.config import ScenarioOptions
from app.scenarios.cluster_support import (ClusterContext, Node, Session, run_cluster_scenario, slot_of,
                                           tag_for_slot_range, tag_on)

NAME = "cluster_routing"

# Hash tags fix the slots, so every run and both servers use the same ones.
ROUTE_TAG = "rvc-route"
ASK_TAG = "rvc-ask"
SECOND_DB = 1
WAIT_TIMEOUT_MS = 5000

# One declared key, and a key of another slot of the same node passed as an argument: the flag is
# what allows a script to reach the second one (declared keys of two slots are CROSSSLOT before it runs).
SECOND_SLOT_SCRIPT = "redis.call('set', KEYS[1], 'x')\nreturn redis.call('set', ARGV[1], 'y')"
ALLOW_CROSS_SLOT_SCRIPT = "#!lua flags=allow-cross-slot-keys\n" + SECOND_SLOT_SCRIPT


def run(client: RedisCluster, options: ScenarioOptions | None = None) -> dict[str, Any]:
    return run_cluster_scenario(NAME, client, options, plan)


def plan(ctx: ClusterContext) -> None:
    key = ctx.key(f"{{{ROUTE_TAG}}}a")
    owner = ctx.topology.owner(slot_of(key))
    other = ctx.topology.other_primary(owner)
    ctx.client.set(key, "v")
    moved(ctx, key, owner, other)
    crossslot(ctx, key, owner, other)
    ctx.skippable(lambda: ask(ctx))
    replicas(ctx, key, owner, other)
    databases(ctx, owner, other)


def first_replica(ctx: ClusterContext, primary: Node) -> Node | None:
    replicas = ctx.topology.replicas_of(primary)
    return replicas[0] if replicas else None


# --- 1. MOVED -----------------------------------------------------------------------------------

def moved(ctx: ClusterContext, key: str, owner: Node, other: Node) -> None:
    slot = slot_of(key)
    ctx.put("moved", "slot of the key", slot)
    ctx.record_on("moved", "GET on a primary of another shard", other, "GET", key)
    elsewhere = first_replica(ctx, other)
    if elsewhere:
        ctx.record_on("moved", "GET on a replica of another shard", elsewhere, "GET", key)
    own_replica = first_replica(ctx, owner)
    if own_replica:
        ctx.record_on("moved", "SET on a replica of its own shard", own_replica, "SET", key, "w")
    ctx.record_on("moved", "GET on the owner", owner, "GET", key)
    ctx.put("moved", "GET through the cluster client", ctx.labelled(ctx.client.get(key).decode()))
    ctx.record_on("moved", "EXISTS on another shard", other, "EXISTS", key)
    ctx.record_on("moved", "TYPE on another shard", other, "TYPE", key)
    reply = ctx.on(other, "GET", key)
    ctx.check(reply == {"error": f"MOVED {slot} <{owner.label}>"}, f"GET on another shard answered {reply!r}, "
                                                                    f"not MOVED {slot} to {owner.label}")


# --- 2. CROSSSLOT -------------------------------------------------------------------------------

def crossslot(ctx: ClusterContext, key: str, owner: Node, other: Node) -> None:
    far = ctx.key(f"{{{tag_on(other, 'rvc-far')}}}b")  # a key of another shard
    near = ctx.key(f"{{{ROUTE_TAG}}}b")  # same tag: same slot
    multi = {
        "MSET": ("MSET", key, 1, far, 2), "MGET": ("MGET", key, far), "DEL": ("DEL", key + ":none", far),
        "EXISTS": ("EXISTS", key, far), "RENAME": ("RENAME", key, far), "SUNIONSTORE": ("SUNIONSTORE", key + ":s", far),
        "EVAL with two keys": ("EVAL", "return 1", 2, key, far),
    }
    for label, args in multi.items():
        ctx.record_on("crossslot", f"{label} over two slots, on the first key's owner", owner, *args)
    ctx.record_on("crossslot", "MSET over two slots, on a node owning neither", other_than(ctx, owner, other),
                  "MSET", key, 1, far, 2)
    ctx.record_on("crossslot", "EVAL reading an undeclared key of another shard", owner,
                  "EVAL", "return redis.call('get', ARGV[1])", 1, key, far)
    ctx.record_on("crossslot", "EVAL reading an undeclared key of the same slot", owner,
                  "EVAL", "return redis.call('get', ARGV[1])", 1, key, key)
    ctx.record_on("crossslot", "EVAL without keys reading a key of this node", owner,
                  "EVAL", "return redis.call('get', ARGV[1])", 0, key)
    with Session(ctx, owner) as session:
        ctx.put("crossslot", "MULTI over two slots", [session.call("MULTI"), session.call("SET", key + ":m", 1),
                                                      session.call("SET", far, 1), session.call("EXEC")])
    ctx.record_on("crossslot", "MSET over hash-tagged keys", owner, "MSET", key + ":t", 1, near, 2)
    ctx.record_on("crossslot", "MGET over hash-tagged keys", owner, "MGET", key, near)
    low, high = owner.slots[0]
    first = ctx.key(f"{{{tag_for_slot_range(low, high, 'rvc-one')}}}x")
    second = ctx.key(f"{{{tag_for_slot_range(low, high, 'rvc-two')}}}y")
    ctx.put("crossslot", "two slots of one node", slot_of(first) != slot_of(second))
    ctx.record_on("crossslot", "script flagged allow-cross-slot-keys reaching a second slot of its node", owner,
                  "EVAL", ALLOW_CROSS_SLOT_SCRIPT, 1, first, second)
    ctx.record_on("crossslot", "unflagged script reaching a second slot of its node", owner,
                  "EVAL", SECOND_SLOT_SCRIPT, 1, first, second)
    ctx.record_on("crossslot", "two declared keys of two slots of one node", owner,
                  "EVAL", ALLOW_CROSS_SLOT_SCRIPT, 2, first, second)


def other_than(ctx: ClusterContext, *nodes: Node) -> Node:
    ids = {n.id for n in nodes}
    return next((n for n in ctx.topology.primaries if n.id not in ids and n.slots), nodes[-1])


# --- 3. ASK ---------------------------------------------------------------------------------------

def ask(ctx: ClusterContext) -> None:
    ctx.require_server_changes("putting a slot in MIGRATING state")
    moved_key, absent_key, new_key = (ctx.key(f"{{{ASK_TAG}}}{name}") for name in ("moved", "absent", "new"))
    staying = ctx.key(f"{{{ASK_TAG}}}staying")
    slot = slot_of(moved_key)
    source = ctx.topology.owner(slot)
    target = ctx.topology.other_primary(source)
    ctx.require_slot_is_ours(slot)
    ctx.client.set(moved_key, "m")
    ctx.client.set(staying, "s")
    ctx.slot_journal.remember(slot, source)
    ctx.node(target).execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.id)
    ctx.node(source).execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.id)
    ctx.put("ask", "marks in CLUSTER NODES of the source", migration_marks(ctx, source))
    ctx.put("ask", "marks in CLUSTER NODES of the target", migration_marks(ctx, target))
    ctx.node(source).execute_command("MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", moved_key)
    ctx.record_on("ask", "GET of a key still on the source", source, "GET", staying)
    ctx.record_on("ask", "GET of a key already moved", source, "GET", moved_key)
    ctx.record_on("ask", "GET of an absent key", source, "GET", absent_key)
    ctx.record_on("ask", "SET of a new key", source, "SET", new_key, 1)
    ctx.record_on("ask", "MGET of a moved and a staying key", source, "MGET", moved_key, staying)
    ctx.record_on("ask", "MGET of two absent keys", source, "MGET", absent_key, absent_key + ":2")
    ctx.record_on("ask", "GET on the target without ASKING", target, "GET", moved_key)
    with Session(ctx, target) as session:
        ctx.put("ask", "ASKING then GET on the target", [session.call("ASKING"), session.call("GET", moved_key)])
        ctx.put("ask", "the next GET without ASKING", session.call("GET", moved_key))
        ctx.put("ask", "ASKING then MGET of a moved and a staying key",
                [session.call("ASKING"), session.call("MGET", moved_key, staying)])
    value = ctx.client.get(moved_key)
    ctx.put("ask", "GET through the cluster client", value.decode() if value else value)
    ctx.slot_journal.restore()
    ctx.put("ask", "after giving the slot back: marks on the source", migration_marks(ctx, source))
    ctx.put("ask", "after giving the slot back: marks on the target", migration_marks(ctx, target))
    ctx.put("ask", "after giving the slot back: keys on the owner",
            int(ctx.node(source).execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)))


def migration_marks(ctx: ClusterContext, node: Node) -> list[str]:
    """The "[slot->-id]" / "[slot-<-id]" marks on a node's own line of CLUSTER NODES, relabelled."""
    text = ctx.node(node).execute_command("CLUSTER", "NODES").decode()
    mine = next(line for line in text.splitlines() if "myself" in line.split()[2])
    return [ctx.topology.relabel(field) for field in mine.split()[8:] if field.startswith("[")]


# --- 4. READONLY / READWRITE ------------------------------------------------------------------------

def replicas(ctx: ClusterContext, key: str, owner: Node, other: Node) -> None:
    replica = first_replica(ctx, owner)
    if replica is None:
        ctx.notes.append("replicas: the key's shard has no replica, READONLY not tried")
        return
    far = ctx.key(f"{{{tag_on(other, 'rvc-far')}}}r")
    with Session(ctx, owner) as writer:
        writer.call("SET", key, "replicated")
        acked = writer.call("WAIT", len(ctx.topology.replicas_of(owner)), WAIT_TIMEOUT_MS)
    ctx.check(acked == len(ctx.topology.replicas_of(owner)), f"replicas: WAIT acknowledged by {acked} replicas")
    with Session(ctx, replica) as session:
        steps = [("GET before READONLY", ("GET", key)), ("READONLY", ("READONLY",)),
                 ("GET after READONLY", ("GET", key)), ("SET after READONLY", ("SET", key, "x")),
                 ("GET of another shard's key after READONLY", ("GET", far)),
                 ("EXISTS after READONLY", ("EXISTS", key)), ("READWRITE", ("READWRITE",)),
                 ("GET after READWRITE", ("GET", key))]
        for label, args in steps:
            ctx.put("replicas", label, session.call(*args))
    ctx.record_on("replicas", "READONLY on a primary", owner, "READONLY")


# --- 5. databases ---------------------------------------------------------------------------------------

def databases(ctx: ClusterContext, owner: Node, other: Node) -> None:
    for name in ("databases", "cluster-databases"):
        ctx.put("databases", f"CONFIG {name}", ctx.config_get_on(owner, name))
    with Session(ctx, owner) as session:
        ctx.put("databases", "SELECT 0", session.call("SELECT", 0))
        selected = ctx.put("databases", f"SELECT {SECOND_DB}", session.call("SELECT", SECOND_DB))
        session.call("SELECT", 0)
        ctx.put("databases", "SWAPDB with an index out of range", session.call("SWAPDB", 0, 99999))
        ctx.put("databases", "MOVE to an index out of range", session.call("MOVE", ctx.key(f"{{{ROUTE_TAG}}}a"), 99999))
        if selected == "OK":
            key = ctx.key(f"{{{ROUTE_TAG}}}db")
            try:
                second_database(ctx, session, key, other)
            finally:
                # db 1 is outside the prefix cleanup (db 0 of every primary): its keys go here.
                session.call("SELECT", SECOND_DB)
                session.call("DEL", key, key + ":copy")
                session.call("SELECT", 0)


def second_database(ctx: ClusterContext, session: Session, key: str, other: Node) -> None:
    """Keys in db 1 of a cluster node: separate from db 0, movable between them, routed the same way."""
    far = ctx.key(f"{{{tag_on(other, 'rvc-far')}}}db")
    steps = [("SELECT 1 for the keys", ("SELECT", SECOND_DB)), ("SET in db 1", ("SET", key, "one")), ("GET in db 1", ("GET", key)),
             ("EXISTS in db 1", ("EXISTS", key)), ("GET of another shard's key in db 1", ("GET", far)),
             ("SELECT 0", ("SELECT", 0)), ("GET in db 0", ("GET", key)), ("SELECT 1", ("SELECT", SECOND_DB)),
             ("MOVE to db 0", ("MOVE", key, 0)), ("GET in db 1 after MOVE", ("GET", key)),
             ("SELECT 0 again", ("SELECT", 0)), ("GET in db 0 after MOVE", ("GET", key)),
             ("COPY to db 1", ("COPY", key, key + ":copy", "DB", SECOND_DB)), ("DEL in db 0", ("DEL", key)),
             ("SELECT 1 again", ("SELECT", SECOND_DB)), ("GET the copy in db 1", ("GET", key + ":copy"))]
    for label, args in steps:
        ctx.put("second_database", label, session.call(*args))
