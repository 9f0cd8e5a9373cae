"""cluster_resharding: moving a slot that holds keys while an application writes to it.

Both servers move a slot the legacy way (CLUSTER SETSLOT IMPORTING / MIGRATING, MIGRATE in batches,
SETSLOT NODE on every primary); Valkey 9 also has atomic slot migration (CLUSTER MIGRATESLOTS, polled
with CLUSTER GETSLOTMIGRATIONS), which Redis 7.2 lacks. While a slot moves, a writer thread with its
own cluster client (redis-py, as an application would use it) writes new keys into that slot and reads
pairs of existing ones with MGET; what it saw (acknowledged writes, errors by kind, the longest gap) is
recorded. No acknowledged key may be lost.

The legacy moves are paced (BATCH_PAUSE_S between MIGRATE batches): a real slot with many keys stays
in MIGRATING state for seconds, and the writer must meet that state many times to show what it costs.

Test plan, in order (needs server changes, and a slot holding only this tool's keys):
  1. setup: SLOT_KEYS keys under one hash tag (one slot), a shard-channel subscriber on the owner.
  2. legacy: the slot moved to another primary and back, each move timed (MIGRATE batches, then until
     every primary sees the new owner), with the writer running; what the subscriber on the old owner
     received when the slot left.
  3. atomic: where CLUSTER MIGRATESLOTS exists, the slot moved there and back the same way; the
     migration states seen; otherwise the error (availability).
  4. outcome: every key written (setup and writer) readable through a fresh cluster client with its
     last acknowledged value, all of them on the final owner; keys lost must be 0 (else FAIL).
Durations and what the application saw are recorded, not compared: a few milliseconds move with the
machine's load from one move to the next; bench/cluster.py repeats them for figures.
The slot journal gives the slot back to its owner whatever happens (an error, SIGINT, SIGTERM).
"""

from __future__ import annotations

import time
from typing import Any

from redis.cluster import RedisCluster

from app.config import ScenarioOptions
from app.scenarios.cluster_support import (ATOMIC_FINAL_STATES, POLL_S, SETTLE_TIMEOUT_S, ClusterContext, Node,
                                           StepSkipped, Writer, owner_in_view, run_cluster_scenario, slot_of,
                                           supported_subcommands)
from app.scenarios.pubsub import RawConnection, tagged

NAME = "cluster_resharding"

RESHARD_TAG = "rvc-reshard"
SLOT_KEYS = 400
WRITER_KEYS = 100
BATCH = 20
BATCH_PAUSE_S = 0.05
MIGRATE_TIMEOUT_MS = 5000
# Writes the writer must get acknowledged before a move starts and after it ends (it was running
# across the whole move, not only in part of it).
WRITES_AROUND = 20
# How long the old owner's shard subscriber is watched for what the move sends it.
SUBSCRIBER_WAIT_S = 1.0

# What the application saw depends on how its requests fell against the batches, and durations of a
# few milliseconds move with the machine's load: shown, not compared (bench/cluster.py repeats them).
METRIC_KINDS = {"measured.*": "not_compared", "*_ms": "not_compared", "*_ms_samples": "not_compared"}


def run(client: RedisCluster, options: ScenarioOptions | None = None) -> dict[str, Any]:
    return run_cluster_scenario(NAME, client, options, plan)


def plan(ctx: ClusterContext) -> None:
    ctx.require_server_changes("moving a slot between primaries")
    keys = [ctx.key(f"{{{RESHARD_TAG}}}k:{i}") for i in range(SLOT_KEYS)]
    slot = slot_of(keys[0])
    home = ctx.topology.owner(slot)
    away = ctx.topology.other_primary(home)
    ctx.require_slot_is_ours(slot)
    ctx.put("setup", "keys in the slot", len(keys))
    pipe = ctx.client.pipeline(transaction=False)
    for index, key in enumerate(keys):
        pipe.set(key, f"v{index}")
    pipe.execute()
    ctx.slot_journal.remember(slot, home)
    writer = MixedWriter(ctx, keys)
    writer.start()
    try:
        legacy(ctx, writer, slot, home, away)
        atomic(ctx, writer, slot, home, away)
    finally:
        writer.stop()
    outcome(ctx, writer, keys, slot, home)
    ctx.slot_journal.forget(slot)


class MixedWriter(Writer):
    """The writer, plus an MGET of two existing keys of the slot per write: multi-key reads are what a
    slot split between two nodes refuses (TRYAGAIN)."""

    def __init__(self, ctx: ClusterContext, keys: list[str]) -> None:
        super().__init__(ctx, RESHARD_TAG, keys=WRITER_KEYS)
        self.existing = keys

    def step(self) -> None:
        super().step()
        n = self._count
        self.client.execute_command("MGET", self.existing[n % len(self.existing)],
                                    self.existing[(n * 7 + 1) % len(self.existing)])


# --- moving the slot -------------------------------------------------------------------------------

def legacy_move(ctx: ClusterContext, slot: int, source: Node, target: Node) -> dict[str, Any]:
    """SETSLOT IMPORTING / MIGRATING, MIGRATE in paced batches, SETSLOT NODE on every primary."""
    began = time.monotonic()
    src, dst = ctx.node(source), ctx.node(target)
    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.id)
    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.id)
    moved = batches = 0
    while True:
        batch = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, BATCH)
        if not batch:
            break
        src.execute_command("MIGRATE", target.host, target.port, "", 0, MIGRATE_TIMEOUT_MS, "KEYS", *batch)
        moved += len(batch)
        batches += 1
        time.sleep(BATCH_PAUSE_S)
    paused = batches * BATCH_PAUSE_S
    for node in [target, source, *[n for n in ctx.topology.primaries if n.id not in (source.id, target.id)]]:
        ctx.node(node).execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.id)
    assigned = time.monotonic()
    settled = settle(ctx, slot, target)
    return {"migration_ms": ms(assigned - began - paused), "settle_ms": ms(settled - assigned),
            "keys moved": moved, "batches": batches, "paused_ms": ms(paused)}


def settle(ctx: ClusterContext, slot: int, owner: Node) -> float:
    """Until every primary sees `owner` as the slot's owner; the moment it does."""
    ctx.wait_for(f"every primary sees slot {slot} on {owner.label}",
                 lambda: all(owner_in_view(ctx.node(n), slot) == owner.id for n in ctx.topology.primaries))
    return time.monotonic()


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def timed_moves(ctx: ClusterContext, writer: Writer, section: str, slot: int, home: Node, away: Node,
                move: Any) -> None:
    """The slot moved away and back with `move`, the writer running across each move."""
    runs = []
    for source, target in ((home, away), (away, home)):
        subscriber = RawConnection(ctx.connection(node=source))
        try:
            subscriber.call("SSUBSCRIBE", ctx.key(f"{{{RESHARD_TAG}}}ch"))
            writer.wait_for_writes(WRITES_AROUND)
            began = time.monotonic()
            figures = move(ctx, slot, source, target)
            writer.wait_for_writes(WRITES_AROUND)
            figures["application"] = writer.window(began, time.monotonic())
            figures["old owner's shard subscriber got"] = [
                ctx.labelled(tagged(frame, ctx.prefix)) for frame in subscriber.pending(SUBSCRIBER_WAIT_S)]
        finally:
            subscriber.close()
        runs.append(figures)
    for name in ("migration_ms", "settle_ms"):
        ctx.put(section, name, sorted(r[name] for r in runs)[len(runs) // 2])
        ctx.put(section, f"{name}_samples", [r[name] for r in runs])
    ctx.put(section, "old owner's shard subscriber got", runs[0]["old owner's shard subscriber got"])
    if "final state" in runs[0]:
        ctx.put(section, "final states", [r["final state"] for r in runs])
    for index, figures in enumerate(runs):
        direction = "away" if index == 0 else "back"
        for name in ("keys moved", "batches", "paused_ms", "states seen"):
            if name in figures:
                ctx.put("measured", f"{section} {direction} {name}", figures[name])
        for name, value in figures["application"].items():
            ctx.put("measured", f"{section} {direction} application {name}", value)


def legacy(ctx: ClusterContext, writer: Writer, slot: int, home: Node, away: Node) -> None:
    timed_moves(ctx, writer, "legacy", slot, home, away, legacy_move)


def atomic(ctx: ClusterContext, writer: Writer, slot: int, home: Node, away: Node) -> None:
    if "MIGRATESLOTS" not in supported_subcommands(ctx, home):
        ctx.put("atomic", "CLUSTER MIGRATESLOTS", ctx.on(home, "CLUSTER", "MIGRATESLOTS", "SLOTSRANGE", slot, slot,
                                                         "NODE", away.id))
        return
    timed_moves(ctx, writer, "atomic", slot, home, away, atomic_move)


def atomic_move(ctx: ClusterContext, slot: int, source: Node, target: Node) -> dict[str, Any]:
    """CLUSTER MIGRATESLOTS on the source, polled with GETSLOTMIGRATIONS until it ends."""
    began = time.monotonic()
    reply = ctx.on(source, "CLUSTER", "MIGRATESLOTS", "SLOTSRANGE", slot, slot, "NODE", target.id)
    if reply != "OK":
        raise StepSkipped(f"CLUSTER MIGRATESLOTS refused: {reply}")
    states: list[str] = []
    deadline = began + SETTLE_TIMEOUT_S
    while True:
        state, message = migration_state(ctx, source, slot, target) or (None, "")
        if state and (not states or states[-1] != state):
            states.append(state)
        if state and state.encode() in ATOMIC_FINAL_STATES:
            break
        if time.monotonic() > deadline:
            raise StepSkipped(f"the atomic migration of slot {slot} did not end within {SETTLE_TIMEOUT_S:.0f}s")
        time.sleep(POLL_S)
    ended = time.monotonic()
    ctx.check(states[-1] == "success", f"atomic migration of slot {slot} ended {states[-1]}: {message}")
    settled = settle(ctx, slot, target)
    return {"migration_ms": ms(ended - began), "settle_ms": ms(settled - ended), "final state": states[-1],
            "states seen": states}


def migration_state(ctx: ClusterContext, source: Node, slot: int, target: Node) -> tuple[str, str] | None:
    """(state, message) of the newest export of `slot` to `target` in the source's GETSLOTMIGRATIONS."""
    entries = ctx.node(source).execute_command("CLUSTER", "GETSLOTMIGRATIONS")
    found = None
    for entry in entries:
        fields = {entry[i].decode(): entry[i + 1] for i in range(0, len(entry) - 1, 2)}
        if (fields.get("operation") == b"EXPORT" and fields.get("target_node") == target.id.encode()
                and fields.get("slot_ranges") == f"{slot}-{slot}".encode()):
            found = fields["state"].decode(), fields.get("message", b"").decode()
    return found


# --- the outcome ----------------------------------------------------------------------------------------

def outcome(ctx: ClusterContext, writer: Writer, keys: list[str], slot: int, home: Node) -> None:
    reader = ctx.cluster_client()
    values = reader.mget_nonatomic(keys)
    wrong = sum(1 for index, value in enumerate(values) if value != f"v{index}".encode())
    lost = writer.lost(reader)
    ctx.put("outcome", "setup keys lost or changed", wrong)
    ctx.put("outcome", "acknowledged writer keys lost", len(lost))
    ctx.check(wrong == 0 and not lost, f"keys lost while resharding: {wrong} setup keys, {len(lost)} writer keys")
    on_owner = int(ctx.node(home).execute_command("CLUSTER", "COUNTKEYSINSLOT", slot))
    ctx.put("outcome", "every key of the slot on its final owner", on_owner == len(keys) + len(writer.written_keys()))
    ctx.put("measured", "writer acknowledged writes", len(writer.acked))
