"""cluster_topology: what the CLUSTER introspection commands answer, compared by shape and meaning.

Node ids, ports, epochs, offsets and timestamps differ in every run, so each reply is recorded with
those values replaced by what they are ("<node id>", "<port>", "<epoch>"...) and node references by
run-independent labels (primary@0 = the primary of the shard whose first slot is 0). Fields present
on one server only show up as such in the comparison.

Test plan, in order:
  1. info: CLUSTER INFO of the first primary: every field, the state and counts as values, epochs
     and message counters as their class; the message counters (which exist only once a message of
     that type was sent or received, so they depend on the node's history) are measured, not compared.
     Checks: cluster_state ok, all 16384 slots assigned and ok, on every node.
  2. shards: CLUSTER SHARDS, shards sorted by first slot, each node's fields classified; it must list
     the same nodes and slot ranges as CLUSTER NODES.
  3. slots: CLUSTER SLOTS, per range: the node entries' shape (address, port, id, metadata).
  4. nodes: CLUSTER NODES lines (address format, flags, primary reference, link state, slots) and
     CLUSTER REPLICAS of a primary.
  5. ids: MYID (40 hex digits, equal to the "myself" line of CLUSTER NODES), MYSHARDID (equal for a
     primary and its replica, different between shards).
  6. links: CLUSTER LINKS: fields, directions, links per known peer.
  7. keys_in_slots: five keys under one hash tag: KEYSLOT, COUNTKEYSINSLOT and GETKEYSINSLOT on the
     owner and on another primary; KEYSLOT of the hash-tag examples of the cluster specification.
  8. errors: the error texts of bad slot numbers and counts.
  9. commands: the CLUSTER subcommands each server lists in CLUSTER HELP (availability), the help
     text itself, and CLUSTER SLOT-STATS where it exists.
"""

from __future__ import annotations

import re
from typing import Any

from redis.cluster import RedisCluster

from app.config import ScenarioOptions
from app.scenarios.cluster_support import (NODE_ID, SLOT_COUNT, ClusterContext, Node, run_cluster_scenario,
                                           slot_of, supported_subcommands)
from app.scenarios.support import Reply
from app.cluster import info_fields

NAME = "cluster_topology"

# CLUSTER INFO fields whose values mean the same in any healthy cluster of this layout; all others are
# recorded as their class (a count or an epoch that differs per run).
INFO_VALUES = frozenset({"cluster_state", "cluster_slots_assigned", "cluster_slots_ok", "cluster_slots_pfail",
                         "cluster_slots_fail", "cluster_nodes_pfail", "cluster_nodes_fail",
                         "cluster_voting_nodes_pfail", "cluster_voting_nodes_fail", "cluster_known_nodes",
                         "cluster_size", "total_cluster_links_buffer_limit_exceeded"})
INFO_EPOCHS = frozenset({"cluster_current_epoch", "cluster_my_epoch"})
MESSAGE_COUNTER = "cluster_stats_messages_"

# Fields of CLUSTER SHARDS / SLOTS / LINKS entries: keep the value (it means something), or replace it
# by its class. A field not listed is recorded by its type, so a new field still shows.
KEEP = "keep"
FIELD_CLASSES: dict[str, str] = {
    "id": "<node id>", "node": "<node id>", "port": "<port>", "tls-port": "<port>", "ip": "<address>",
    "endpoint": "<address>", "replication-offset": "<offset>", "create-time": "<ms>",
    "send-buffer-allocated": "<bytes>", "send-buffer-used": "<bytes>", "role": KEEP, "health": KEEP,
    "direction": KEEP, "events": KEEP, "hostname": KEEP, "availability-zone": KEEP,
}

# The hash-tag examples of the cluster specification, and edge cases of the tag rule.
KEYSLOT_EXAMPLES = ("foo", "bar", "{user1000}.following", "{user1000}.followers", "foo{}{bar}",
                    "foo{{bar}}zap", "foo{bar}{zap}", "{}", "{", "}", "", "a" * 200)
TAG = "rvc-topology"
TAG_KEYS = 5

BAD_SLOT_CALLS: dict[str, tuple[Any, ...]] = {
    "COUNTKEYSINSLOT -1": ("CLUSTER", "COUNTKEYSINSLOT", -1),
    "COUNTKEYSINSLOT 16384": ("CLUSTER", "COUNTKEYSINSLOT", SLOT_COUNT),
    "COUNTKEYSINSLOT abc": ("CLUSTER", "COUNTKEYSINSLOT", "abc"),
    "GETKEYSINSLOT count -1": ("CLUSTER", "GETKEYSINSLOT", 0, -1),
    "GETKEYSINSLOT slot 16384": ("CLUSTER", "GETKEYSINSLOT", SLOT_COUNT, 1),
    "KEYSLOT without key": ("CLUSTER", "KEYSLOT"),
    "SETSLOT without state": ("CLUSTER", "SETSLOT", 0),
    "SHARDS with argument": ("CLUSTER", "SHARDS", "x"),
    "unknown subcommand": ("CLUSTER", "NOSUCHSUBCOMMAND"),
}

# Message counters exist per message type once one was seen: the node's history, not the product.
METRIC_KINDS = {"measured.*": "not_compared", "help.*": "reply"}


def run(client: RedisCluster, options: ScenarioOptions | None = None) -> dict[str, Any]:
    return run_cluster_scenario(NAME, client, options, plan)


def plan(ctx: ClusterContext) -> None:
    first = ctx.topology.primaries[0]
    info(ctx, first)
    shards(ctx, first)
    slots(ctx, first)
    nodes(ctx, first)
    ids(ctx)
    links(ctx, first)
    keys_in_slots(ctx)
    errors(ctx, first)
    commands(ctx, first)


# --- classification --------------------------------------------------------------------------------

def classify(value: Reply) -> Reply:
    """A value's class for a field not listed in FIELD_CLASSES: its type, or empty."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return "<int>"
    if isinstance(value, str):
        return "<node id>" if NODE_ID.fullmatch(value) else ("" if value == "" else "<text>")
    if isinstance(value, list):
        return [classify(v) for v in value]
    if isinstance(value, dict):
        return entry_shape(value)
    return "<value>"


def entry_shape(entry: dict[str, Reply]) -> dict[str, Reply]:
    """A reply map with run-specific values replaced by their class, meaningful ones kept."""
    out = {}
    for name, value in entry.items():
        how = FIELD_CLASSES.get(name)
        out[name] = value if how == KEEP else how if how else classify(value)
    return out


def pairs(flat: Reply) -> dict[str, Reply]:
    """A RESP2 flat list of alternating names and values as a dict."""
    if isinstance(flat, dict):
        return flat
    return {str(flat[i]): flat[i + 1] for i in range(0, len(flat) - 1, 2)} if isinstance(flat, list) else {}


# --- 1. CLUSTER INFO ---------------------------------------------------------------------------------

def info(ctx: ClusterContext, first: Node) -> None:
    for node in ctx.topology.nodes:
        fields = info_fields(ctx.node(node).execute_command("CLUSTER", "INFO"))
        ok = (fields.get("cluster_state") == "ok" and fields.get("cluster_slots_ok") == str(SLOT_COUNT)
              and fields.get("cluster_slots_assigned") == str(SLOT_COUNT))
        ctx.check(ok, f"{node.label}: cluster not healthy: state {fields.get('cluster_state')}, "
                      f"slots ok {fields.get('cluster_slots_ok')}")
        if node.id != first.id:
            continue
        for name, value in fields.items():
            if name.startswith(MESSAGE_COUNTER):
                ctx.put("measured", f"info {name}", int(value))
            elif name in INFO_VALUES:
                ctx.put("info", name, int(value) if value.isdigit() else value)
            else:
                ctx.put("info", name, "<epoch>" if name in INFO_EPOCHS else classify(plain_number(value)))
    ctx.put("info", "known nodes = nodes in CLUSTER NODES",
            int(info_fields(ctx.raw.execute_command("CLUSTER", "INFO"))["cluster_known_nodes"]) == len(ctx.topology.nodes))


def plain_number(text: str) -> Reply:
    return int(text) if re.fullmatch(r"-?\d+", text) else text


# --- 2-4. SHARDS, SLOTS, NODES ---------------------------------------------------------------------------

def shards(ctx: ClusterContext, first: Node) -> None:
    reply = ctx.call("CLUSTER", "SHARDS", conn=ctx.node(first))
    if isinstance(reply, dict):  # an error reply
        ctx.put("shards", "CLUSTER SHARDS", reply)
        return
    described = []
    seen_ids, seen_ranges = set(), set()
    for shard in reply:
        fields = pairs(shard)
        flat_slots = fields.get("slots", [])
        ranges = [flat_slots[i:i + 2] for i in range(0, len(flat_slots), 2)]
        members = [pairs(n) for n in fields.get("nodes", [])]
        seen_ids.update(str(m.get("id")) for m in members)
        seen_ranges.update((int(a), int(b)) for a, b in ranges)
        described.append({"fields": sorted(fields), "slots": ranges,
                          "nodes": {label_of(ctx, m.get("id")): entry_shape(m) for m in members}})
    # Keyed by the shard's label, so the comparison names the field that differs, not the whole reply.
    for shard in sorted(described, key=lambda s: s["slots"] or [[SLOT_COUNT]]):
        ctx.put("shards", f"shard@{shard['slots'][0][0]}" if shard["slots"] else "shard without slots", shard)
    expected_ranges = {r for n in ctx.topology.primaries for r in n.slots}
    ctx.put("shards", "same nodes as CLUSTER NODES", seen_ids == {n.id for n in ctx.topology.nodes})
    ctx.put("shards", "same slot ranges as CLUSTER NODES", seen_ranges == expected_ranges)


def slots(ctx: ClusterContext, first: Node) -> None:
    reply = ctx.call("CLUSTER", "SLOTS", conn=ctx.node(first))
    if isinstance(reply, dict):
        ctx.put("slots", "CLUSTER SLOTS", reply)
        return
    for entry in sorted(reply, key=lambda e: e[0]):
        low, high, *members = entry
        ctx.put("slots", f"{low}-{high}", {"nodes": len(members), "primary": node_entry(members[0]),
                                           "replica": node_entry(members[1]) if len(members) > 1 else None})


def node_entry(member: list[Reply]) -> dict[str, Reply]:
    """[ip, port, id, metadata...] of CLUSTER SLOTS, by position."""
    names = ["ip", "port", "id"]
    out = {name: FIELD_CLASSES[name] for name, _ in zip(names, member)}
    for index, extra in enumerate(member[3:]):
        out[f"extra {index + 1}"] = entry_shape(pairs(extra)) if isinstance(extra, list) else classify(extra)
    return out


ADDRESS = re.compile(r"^(?P<ip>[^:@,]+):(?P<port>\d+)@(?P<bus>\d+)(?P<rest>.*)$")


def label_of(ctx: ClusterContext, node_id: Reply) -> str:
    node = ctx.topology.by_id(str(node_id))
    return node.label if node else "<unknown node>"


def address_format(address: str) -> str:
    """The shape of a CLUSTER NODES address: "ip:port@cport", then ",hostname" or a bare "," if any."""
    match = ADDRESS.match(address)
    if not match:
        return "<unparsed>"
    rest = match.group("rest")
    return "ip:port@cport" + ("" if not rest else "," if rest == "," else ",<hostname>")


def nodes(ctx: ClusterContext, first: Node) -> None:
    text = ctx.raw.execute_command("CLUSTER", "NODES").decode()
    for line in text.splitlines():
        parts = line.split()
        ctx.put("nodes", label_of(ctx, parts[0]), {
            "fields": len(parts[:8]),
            "address format": address_format(parts[1]),
            "flags": sorted(parts[2].split(",")),
            "primary": "-" if parts[3] == "-" else ctx.topology.relabel(parts[3]),
            "ping-sent": "0" if parts[4] == "0" else "<ms>",
            "pong-recv": "0" if parts[5] == "0" else "<ms>",
            "config-epoch": "<epoch>",
            "link-state": parts[7],
            "slots": parts[8:],
        })
    replicas = ctx.call("CLUSTER", "REPLICAS", first.id, conn=ctx.node(first))
    ctx.put("nodes", "CLUSTER REPLICAS of a primary",
            len(replicas) if isinstance(replicas, list) else replicas)


# --- 5-6. ids and links ----------------------------------------------------------------------------

def ids(ctx: ClusterContext) -> None:
    shard_ids = {}
    myid_ok = True
    for node in ctx.topology.nodes:
        myid = ctx.call("CLUSTER", "MYID", conn=ctx.node(node))
        myid_ok &= myid == node.id
        shard_ids[node.label] = ctx.call("CLUSTER", "MYSHARDID", conn=ctx.node(node))
    ctx.put("ids", "MYID is the myself line of CLUSTER NODES", myid_ok)
    ctx.put("ids", "MYID format", "40 hex digits" if all(NODE_ID.fullmatch(n.id) for n in ctx.topology.nodes) else "other")
    errors = [v for v in shard_ids.values() if isinstance(v, dict)]
    if errors:
        ctx.put("ids", "MYSHARDID", errors[0])
        return
    by_shard = {}
    for primary in ctx.topology.primaries:
        members = [primary, *ctx.topology.replicas_of(primary)]
        by_shard[primary.label] = {shard_ids[m.label] for m in members}
    ctx.put("ids", "MYSHARDID same within a shard", all(len(v) == 1 for v in by_shard.values()))
    ctx.put("ids", "MYSHARDID differs between shards",
            len(set().union(*by_shard.values())) == len(by_shard))


def links(ctx: ClusterContext, first: Node) -> None:
    reply = ctx.call("CLUSTER", "LINKS", conn=ctx.node(first))
    if isinstance(reply, dict):
        ctx.put("links", "CLUSTER LINKS", reply)
        return
    entries = [pairs(link) for link in reply]
    ctx.put("links", "fields", sorted({name for e in entries for name in e}))
    ctx.put("links", "entry", entry_shape(entries[0]) if entries else None)
    ctx.put("links", "directions", sorted({str(e.get("direction")) for e in entries}))
    peers = len(ctx.topology.nodes) - 1
    ctx.put("links", "links per peer", round(len(entries) / peers, 2) if peers else None)


# --- 7-9. keys in slots, errors, subcommands --------------------------------------------------------

def keys_in_slots(ctx: ClusterContext) -> None:
    keys = [ctx.key(f"{{{TAG}}}k{i}") for i in range(TAG_KEYS)]
    for index, key in enumerate(keys):
        ctx.client.set(key, index)
    slot = slot_of(keys[0])
    owner = ctx.topology.owner(slot)
    other = ctx.topology.other_primary(owner)
    ctx.put("keys_in_slots", "KEYSLOT of the tagged keys", sorted({ctx.call("CLUSTER", "KEYSLOT", k) for k in keys}))
    ctx.put("keys_in_slots", "KEYSLOT equals the client's CRC16", ctx.call("CLUSTER", "KEYSLOT", keys[0]) == slot)
    ctx.put("keys_in_slots", "COUNTKEYSINSLOT on the owner", ctx.on(owner, "CLUSTER", "COUNTKEYSINSLOT", slot))
    ctx.put("keys_in_slots", "COUNTKEYSINSLOT on another primary", ctx.on(other, "CLUSTER", "COUNTKEYSINSLOT", slot))
    listed = ctx.on(owner, "CLUSTER", "GETKEYSINSLOT", slot, 100)
    ctx.put("keys_in_slots", "GETKEYSINSLOT on the owner", sorted(listed) if isinstance(listed, list) else listed)
    ctx.put("keys_in_slots", "GETKEYSINSLOT count 2", len(ctx.on(owner, "CLUSTER", "GETKEYSINSLOT", slot, 2)))
    ctx.put("keys_in_slots", "GETKEYSINSLOT on another primary", ctx.on(other, "CLUSTER", "GETKEYSINSLOT", slot, 100))
    for example in KEYSLOT_EXAMPLES:
        label = example if len(example) < 40 else f"{len(example)}-byte key"
        ctx.put("keyslot", repr(label), ctx.call("CLUSTER", "KEYSLOT", example))


def errors(ctx: ClusterContext, first: Node) -> None:
    for label, args in BAD_SLOT_CALLS.items():
        ctx.record_on("errors", label, first, *args)


def commands(ctx: ClusterContext, first: Node) -> None:
    listed = supported_subcommands(ctx, first)
    for sub in sorted(listed | KNOWN_SUBCOMMANDS):
        ctx.put("commands", f"CLUSTER {sub}", "listed in CLUSTER HELP" if sub in listed else "absent")
    ctx.put("help", "CLUSTER HELP", ctx.call("CLUSTER", "HELP", conn=ctx.node(first)))
    slot = slot_of(ctx.key(f"{{{TAG}}}k0"))
    owner = ctx.topology.owner(slot)
    reply = ctx.on(owner, "CLUSTER", "SLOT-STATS", "SLOTSRANGE", slot, slot)
    if isinstance(reply, list) and reply:
        slot_number, stats = reply[0][0], pairs(reply[0][1])
        reply = {"slot is the asked one": slot_number == slot, "fields": sorted(stats),
                 "key-count": stats.get("key-count")}
    ctx.put("commands", "CLUSTER SLOT-STATS of the tagged slot", reply)


# Subcommands listed whether or not a server has them, so "absent" shows on the side that lacks one.
KNOWN_SUBCOMMANDS = frozenset({"ADDSLOTS", "ADDSLOTSRANGE", "BUMPEPOCH", "COUNT-FAILURE-REPORTS", "COUNTKEYSINSLOT",
                               "DELSLOTS", "DELSLOTSRANGE", "FAILOVER", "FLUSHSLOTS", "FORGET", "GETKEYSINSLOT",
                               "INFO", "KEYSLOT", "LINKS", "MEET", "MYID", "MYSHARDID", "NODES", "REPLICAS",
                               "REPLICATE", "RESET", "SAVECONFIG", "SET-CONFIG-EPOCH", "SETSLOT", "SHARDS",
                               "SLOTS", "SLOT-STATS", "MIGRATESLOTS", "GETSLOTMIGRATIONS",
                               "CANCELSLOTMIGRATIONS", "HELP"})
