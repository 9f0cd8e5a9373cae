"""Targets checked up front, before any scenario: a comparison against the wrong servers is worse than
none, because its report looks like a result. Each problem is one line and exit 4.

- the same server given twice (same INFO run_id): every difference would be zero;
- a product other than the one the target stands for (a Valkey given as --redis, or swapped URLs);
- a read-only replica: writes are refused, so behaviour claims would be false;
- a cluster node: the standalone scenarios do not speak cluster (use --cluster).
--force-targets accepts the first two on purpose (two processes of one binary, say); never the last two.
"""

from __future__ import annotations

from typing import Any

from app import config


class TargetProblem(Exception):
    """A target that must not be compared as given; one line."""


def check_targets(targets: dict[str, dict[str, Any]], force: bool = False) -> None:
    """Raise TargetProblem for the first problem found in the described targets (document["targets"])."""
    seen: dict[str, str] = {}
    for name, target in targets.items():
        identity = target.get("identity") or {}
        if target.get("role") == config.CONTROL_ROLE:
            continue  # a second process of the baseline's binary, started by the tool itself
        if identity.get("role") in ("slave", "replica"):
            raise TargetProblem(f"{name} ({target.get('url')}) is a read-only replica: writes would be refused and "
                                "its behaviour misread; point the tool at a primary")
        if identity.get("cluster_enabled"):
            raise TargetProblem(f"{name} ({target.get('url')}) is a cluster node: the standalone scenarios would "
                                "be refused by slot rules; use ./rvc --cluster or a standalone server")
        run_id = identity.get("run_id")
        if run_id and run_id in seen and not force:
            raise TargetProblem(f"{name} and {seen[run_id]} are the same server (INFO run_id {run_id[:12]}…): "
                                "there would be nothing to compare; give two servers, or --force-targets")
        seen.setdefault(run_id, name)
        expected = target.get("expected")
        if expected and identity.get("product") and identity["product"] != expected[0] and not force:
            raise TargetProblem(f"{name} is {identity['product']} {identity.get('version', '')} but stands for "
                                f"{expected[0]} (were the targets swapped?); give the right server, or --force-targets")
