"""basic_crud against the real embedded servers: contract shape, cleanup, and the differences it finds."""

from __future__ import annotations

import redis

from app.config import ScenarioOptions
from app.scenarios import basic_crud
from tests.conftest import scenario_keys


def test_contract_shape_with_a_plain_client(client: redis.Redis) -> None:
    out = basic_crud.run(client)
    assert set(out) == {"scenario", "status", "detail", "metrics"}
    assert out["scenario"] == "basic_crud"
    assert out["status"] == "OK", out["detail"]
    assert {"replies", "errors", "encodings", "memory_usage"} <= set(out["metrics"])
    assert out["metrics"]["replies"]["GET k"] == "v"


def test_leaves_no_keys_behind(client: redis.Redis) -> None:
    options = ScenarioOptions(prefix="rvc:cleanup-test:")
    basic_crud.run(client, options)
    assert scenario_keys(client, "rvc:cleanup-test:*") == []


def test_replies_are_raw_and_errors_are_values(client: redis.Redis) -> None:
    metrics = basic_crud.run(client)["metrics"]
    replies, errors = metrics["replies"], metrics["errors"]
    # Raw replies: SET NX on an existing key is a nil, INCRBYFLOAT a bulk string, not a float.
    assert replies["SET k v2 NX (exists)"] is None
    assert replies["INCRBYFLOAT 10.5 + 0.1"] == "10.6"
    assert errors["GET on a list"] == {"error": "WRONGTYPE Operation against a key holding the wrong kind of value"}
    assert errors["GET no arguments"] == {"error": "ERR wrong number of arguments for 'get' command"}


def test_encoding_differences_are_the_real_ones(embedded_servers: dict) -> None:
    """Valkey 9 embeds the key in the object, so a 20-byte value is already raw; Redis 7.2 keeps embstr."""
    results = {}
    for role, srv in embedded_servers.items():
        with redis.Redis(port=srv.port) as conn:
            results[role] = basic_crud.run(conn)["metrics"]["encodings"]
    assert results["redis"]["20-byte string"] == "embstr"
    assert results["valkey"]["20-byte string"] == "raw"
    assert results["redis"]["45-byte string"] == results["valkey"]["45-byte string"] == "raw"
    assert results["redis"]["integer 9999"] == results["valkey"]["integer 9999"] == "int"
