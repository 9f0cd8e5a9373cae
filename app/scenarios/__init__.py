"""The registered scenarios: adding a module and one line here is all it takes to run it."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

# Order is the order of the table; each name is a module in this package with run(client, options).
SCENARIO_NAMES: tuple[str, ...] = (
    "basic_crud",
    "server_defaults",
    "data_structures",
    "scan_and_iter",
    "pubsub",
    "lua_and_tx",
    "memory_eviction",
    "large_payloads",
)

# Cluster mode (app/cluster_run.py): each module's run(client, options) takes a redis.cluster.RedisCluster.
CLUSTER_SCENARIO_NAMES: tuple[str, ...] = (
    "cluster_topology",
    "cluster_routing",
    "cluster_scan_pubsub",
    "cluster_resharding",
    "cluster_failover",
)

ScenarioRun = Callable[..., dict[str, Any]]


def load(name: str) -> ScenarioRun:
    """The run function of a registered scenario."""
    if name not in SCENARIO_NAMES:
        raise KeyError(name)
    return import_module(f"app.scenarios.{name}").run
