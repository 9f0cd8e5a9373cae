"""cluster_failover: what an application sees when a shard's primary changes, by request and by crash.

A writer thread with its own cluster client (redis-py, as an application would use it) writes into one
shard the whole time. Both products are measured the same way: from the moment of the action until
the replica reports itself primary (ROLE), and what the writer saw in that window (acknowledged
writes, errors by kind, the longest gap between acknowledged writes = the write outage).

Test plan, in order (needs server changes):
  1. manual: CLUSTER FAILOVER on the shard's replica, then on the old primary (now its replica) to
     fail back: the replies, the roles after each, no acknowledged write lost; the error texts of
     CLUSTER FAILOVER sent to a primary and with a bad option.
  2. killed (only on a cluster the tool started): another shard's primary is killed with SIGKILL; the
     replica must be promoted by the cluster itself (failure detection, election) and the writer must
     succeed again; acknowledged writes lost to the crash (asynchronous replication) are counted. Then
     the dead node is forgotten and a new replica started for the shard, so the layout is whole again.
Durations, counts and error kinds are recorded, not compared (they move with the machine's load and
with failure-detection timing); the booleans are compared. bench/cluster.py repeats the timings.
"""

from __future__ import annotations

import time
from typing import Any

from redis.cluster import RedisCluster

from app.cluster import info_fields
from app.config import ScenarioOptions
from app.scenarios.cluster_support import (ClusterContext, Node, Topology, Writer, run_cluster_scenario, slot_of,
                                           tag_on)

NAME = "cluster_failover"

FAILOVER_TAG = "rvc-failover"
CRASH_TAG = "rvc-crash"
WRITES_AROUND = 20
# A crash costs failure detection (the cluster's node timeout) plus an election: much longer than a
# manual failover, and longer still on a loaded machine.
PROMOTION_TIMEOUT_S = 60.0

METRIC_KINDS = {"measured.*": "not_compared"}


def run(client: RedisCluster, options: ScenarioOptions | None = None) -> dict[str, Any]:
    return run_cluster_scenario(NAME, client, options, plan)


def plan(ctx: ClusterContext) -> None:
    ctx.require_server_changes("failing a primary over to its replica")
    slot = slot_of(ctx.key(f"{{{FAILOVER_TAG}}}x"))
    primary = ctx.topology.owner(slot)
    replicas = ctx.topology.replicas_of(primary)
    if not replicas:
        ctx.warn("failover skipped: the shard has no replica")
        return
    errors(ctx, primary)
    # The crash hits another shard: a shard that just failed over is subject to vote delays (a primary
    # votes for one shard's replicas once per two node timeouts), which would be measured instead.
    crash_tag = tag_on(ctx.topology.other_primary(primary), CRASH_TAG)
    with_writer(ctx, FAILOVER_TAG, lambda writer: manual(ctx, writer, primary, replicas[0]))
    ctx.skippable(lambda: with_writer(ctx, crash_tag, lambda writer: killed(ctx, writer, slot_of(crash_tag))))


def with_writer(ctx: ClusterContext, tag: str, step: Any) -> None:
    """Run a step while a writer writes into the tag's shard; the writer is stopped whatever happens."""
    writer = Writer(ctx, tag)
    writer.start()
    try:
        writer.wait_for_writes(WRITES_AROUND)
        step(writer)
    finally:
        writer.stop()


def role_of(ctx: ClusterContext, node: Node) -> str | None:
    reply = ctx.node(node).execute_command("ROLE")
    return reply[0].decode()


def in_sync(ctx: ClusterContext, node: Node) -> bool:
    info = info_fields(ctx.node(node).execute_command("INFO", "replication"))
    return (info.get("role") == "slave" and info.get("master_link_status") == "up"
            and info.get("master_sync_in_progress") == "0")


def knows_replica(ctx: ClusterContext, primary: Node, replica: Node) -> bool:
    """Every primary's own CLUSTER NODES lists `replica` as the replica of `primary`."""
    voters = [n for n in ctx.topology.nodes if n.id != replica.id and (n.primary or n.id == primary.id)]
    return all(any(r.id == replica.id and r.primary_id == primary.id for r in Topology.read(ctx.node(v)).replicas)
               for v in voters)


def promote(ctx: ClusterContext, writer: Writer, replica: Node, action: Any) -> dict[str, Any]:
    """Run `action`, then wait until `replica` says it is primary and the writer succeeds again."""
    began = time.monotonic()
    reply = action()
    ctx.wait_for(f"{replica.label} reports itself primary", lambda: role_of(ctx, replica) == "master",
                 timeout_s=PROMOTION_TIMEOUT_S)
    promoted = time.monotonic()
    writer.wait_for_writes(WRITES_AROUND, timeout_s=PROMOTION_TIMEOUT_S)
    window = writer.window(began, time.monotonic())
    return {"reply": reply, "promoted_ms": round((promoted - began) * 1000, 1), **window}


def put_measured(ctx: ClusterContext, prefix: str, figures: dict[str, Any]) -> None:
    for name, value in figures.items():
        if name != "reply":
            ctx.put("measured", f"{prefix} {name}", value)


# --- 1. manual failover --------------------------------------------------------------------------

def errors(ctx: ClusterContext, primary: Node) -> None:
    ctx.record_on("errors", "CLUSTER FAILOVER on a primary", primary, "CLUSTER", "FAILOVER")
    ctx.record_on("errors", "CLUSTER FAILOVER with a bad option", primary, "CLUSTER", "FAILOVER", "SOMETIMES")


def manual(ctx: ClusterContext, writer: Writer, primary: Node, replica: Node) -> None:
    m = "manual"
    for label, (old, new) in (("failover", (primary, replica)), ("failback", (replica, primary))):
        figures = promote(ctx, writer, new, lambda n=new: ctx.on(n, "CLUSTER", "FAILOVER"))
        ctx.put(m, f"{label}: CLUSTER FAILOVER reply", figures["reply"])
        # Before failing back: the old primary's link must be up and every primary (the voters) must
        # know it as the new primary's replica (gossip); Redis 7.2 lets a CLUSTER FAILOVER sent before
        # that time out (Valkey 9 carried it out in every run seen).
        ctx.wait_for(f"{old.label} is an in-sync replica of {new.label} to every primary",
                     lambda o=old, n=new: in_sync(ctx, o) and knows_replica(ctx, n, o))
        ctx.put(m, f"{label}: roles after", {"new primary": role_of(ctx, new), "old primary": role_of(ctx, old)})
        put_measured(ctx, f"manual {label}", figures)
    lost = writer.lost(ctx.cluster_client())
    ctx.put(m, "acknowledged writes lost", len(lost))
    ctx.check(not lost, f"manual failover lost {len(lost)} acknowledged writes")
    ctx.refresh()


# --- 2. a killed primary ------------------------------------------------------------------------------

def killed(ctx: ClusterContext, writer: Writer, slot: int) -> None:
    k = "killed"
    cluster = getattr(ctx.options, "cluster", None)
    if cluster is None:
        ctx.put(k, "skipped", "only on a cluster the tool started")
        ctx.warn("killed-primary step skipped: the tool kills a primary only in a cluster it started")
        return
    topology = ctx.refresh()
    primary = topology.owner(slot)
    replica = topology.replicas_of(primary)[0]
    before = len(writer.acked)
    figures = promote(ctx, writer, replica, lambda: cluster.kill(primary.port))
    ctx.put(k, "primary killed", figures["reply"])
    ctx.put(k, "replica promoted", role_of(ctx, replica) == "master")
    ctx.put(k, "writes succeed again", len(writer.acked) > before)
    put_measured(ctx, "killed", figures)
    lost = writer.lost(ctx.cluster_client())
    ctx.put("measured", "killed acknowledged writes lost", len(lost))
    if lost:
        ctx.notes.append(f"the killed primary took {len(lost)} acknowledged writes with it (asynchronous "
                         "replication)")
    began = time.monotonic()
    replaced = cluster.replace_dead()
    ctx.put("measured", "killed repair_ms", round((time.monotonic() - began) * 1000, 1))
    topology = ctx.refresh()
    ctx.put(k, "dead nodes replaced", replaced)
    ctx.put(k, "layout whole again", len(topology.nodes) == cluster.primaries * (1 + cluster.replicas_per_primary)
            and all(len(topology.replicas_of(p)) == cluster.replicas_per_primary for p in topology.primaries))
