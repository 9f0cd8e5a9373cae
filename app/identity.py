"""Server identity: what product, version and allocator a target really is, read from the server."""

from __future__ import annotations

from typing import Any

import redis

from app import config


def read_identity(client: redis.Redis) -> dict[str, Any]:
    """Product and version from INFO; Valkey also says redis_version:7.2.4, so server_name decides."""
    info = client.info("server")
    memory = client.info("memory")
    is_valkey = info.get("server_name") == "valkey" or "valkey_version" in info
    product = "valkey" if is_valkey else "redis"
    version = str(info.get("valkey_version") if is_valkey else info.get("redis_version"))
    return {
        "product": product,
        "version": version,
        "redis_version_field": str(info.get("redis_version")),
        "mem_allocator": str(memory.get("mem_allocator", "unknown")),
        "mode": str(info.get("server_mode") or info.get("redis_mode") or "unknown"),
        "os": str(info.get("os", "")),
        "arch_bits": info.get("arch_bits"),
        "git_sha1": str(info.get("redis_git_sha1", "")),
        "build_id": str(info.get("redis_build_id", "")),
        # What the up-front checks need (app/target_checks.py): which process, which role, cluster or not.
        "run_id": str(info.get("run_id", "")),
        "role": str(client.info("replication").get("role", "")),
        "cluster_enabled": bool(int(client.info("cluster").get("cluster_enabled", 0) or 0)),
    }


def identity_warnings(name: str, expect: tuple[str, str] | None, identity: dict[str, Any]) -> list[str]:
    """Warnings when a target is not the product or exact version the comparison is about."""
    if expect is None:
        return []
    want_product, want_version = expect
    if identity["product"] != want_product:
        return [f"{name} target is {identity['product']} {identity['version']}, not {want_product}"]
    if want_version and not _version_matches(identity["version"], want_version):
        return [f"{name} target is {identity['product']} {identity['version']}, standing in for "
                f"{want_product} {want_version}: results are close, not exact"]
    return []


def expected(name: str) -> tuple[str, str] | None:
    """What the two-target run's names stand for: redis -> Redis 7.2.6, valkey -> Valkey 9.0."""
    if name not in config.EXPECTED_PRODUCTS:
        return None
    return config.EXPECTED_PRODUCTS[name], config.EXPECTED_VERSIONS[name]


def allocator_warning(identities: dict[str, dict[str, Any]]) -> str | None:
    allocators = {role: ident["mem_allocator"] for role, ident in identities.items()}
    families = {value.split("-")[0] for value in allocators.values()}
    if len(families) > 1:
        listed = ", ".join(f"{role} {alloc}" for role, alloc in allocators.items())
        return (f"allocators differ ({listed}): memory figures are partly the allocator, "
                "not the product, and are not like for like")
    return None


def _version_matches(actual: str, wanted: str) -> bool:
    """'9.0' matches 9.0.x; '7.2.6' only 7.2.6."""
    return actual == wanted or actual.startswith(wanted + ".") if wanted.count(".") < 2 else actual == wanted
