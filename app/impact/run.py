"""`impact`: which known differences one running application meets, measured without changing it.

The application's server is only read (app/impact/probe.py). The differences come from a report the
user names, or from a fresh run of the default scenarios on the embedded servers; Valkey's and Redis'
defaults and the memory model from a fresh embedded pair. The document is the source report's (its
targets, findings, summary) with kind "impact" and the ranking under document["impact"].
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import redis

from app import config
from app.document import finish, new_run_id, now
from app.identity import expected
from app.explore.scenario_coverage import load_scenario_coverage
from app.impact.memory import estimate, model
from app.impact.probe import Usage, command_calls, probe
from app.impact.rank import config_advice, rank, untested
from app.scenarios import SCENARIO_NAMES
from app.servers import embedded_pair
from app.targets import TargetError, embedded_target, password_variable, redact, validate_url
from app.test_runner import add_noise_control, run_comparison

APPLICATION = "redis"  # the application's server is the Redis being moved: its password is RVC_REDIS_PASSWORD


class ImpactError(Exception):
    """The report cannot be read or is of a kind that holds no differences; one line."""


def application_clients(url: str, timeout_s: float, tls: dict[str, Any] | None = None) -> Callable[[int], redis.Redis]:
    """client_for_db(db) for the application's server: one connection each, RESP2, no client-name
    handshake (nothing but the probe's own reads reaches the server)."""
    validate_url(APPLICATION, url)
    parts = urlsplit(url)
    password = os.environ.get(password_variable(APPLICATION)) or (unquote(parts.password) if parts.password else None)
    options: dict[str, Any] = {"username": unquote(parts.username) if parts.username else None, "password": password,
                               "socket_timeout": timeout_s, "socket_connect_timeout": config.DEFAULT_CONNECT_TIMEOUT_S,
                               "protocol": 2, "driver_info": None,
                               "single_connection_client": True}
    if parts.scheme == "unix":
        options["unix_socket_path"] = parts.path
    else:
        options.update(host=parts.hostname, port=parts.port or 6379)
        if parts.scheme == "rediss":
            options.update(ssl=True, **(tls or {}))

    def client_for_db(db: int) -> redis.Redis:
        return redis.Redis(db=db, **options)

    return client_for_db


def read_usage(url: str, sample: int, timeout_s: float, tls: dict[str, Any] | None = None) -> Usage:
    client_for_db = application_clients(url, timeout_s, tls)
    try:
        return probe(client_for_db, sample)
    except redis.AuthenticationError as exc:
        raise TargetError(f"{APPLICATION}: authentication failed at {redact(url)}: {exc}") from exc
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise TargetError(f"{APPLICATION}: cannot reach {redact(url)}: {exc}") from exc
    except redis.ResponseError as exc:
        raise TargetError(f"{APPLICATION}: {redact(url)} refused a read: {exc} (the probe needs INFO, "
                          "CONFIG GET, and with --sample SCAN, TYPE, OBJECT, MEMORY USAGE)") from exc


def load_report(path: Path) -> tuple[dict[str, Any], set[str] | None]:
    """A report document and the commands its run exercised (None when the report cannot tell)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ImpactError(f"{path}: not a readable report.json ({exc})") from None
    if not isinstance(document, dict) or "findings" not in document:
        raise ImpactError(f"{path}: not a report document (no findings)")
    if document.get("kind") == "replay":
        stats = document.get("replay", {}).get("commands", {})
        return document, {name for name, s in stats.items() if s.get("calls", 0) > s.get("skipped", 0)}
    exercised = document.get("exercised")
    if isinstance(exercised, list):
        return document, set(exercised)
    return document, recorded_coverage(document)


def recorded_coverage(document: dict[str, Any]) -> set[str] | None:
    """What a default-scenario run sends, as recorded in app/data/scenario_coverage.json, for a comparison
    report whose scenarios are all among the recorded ones (None otherwise: not known)."""
    coverage = load_scenario_coverage()
    scenarios = document.get("scenarios")
    if document.get("kind", "comparison") != "comparison" or not isinstance(scenarios, list) \
            or not set(scenarios) <= set(coverage.get("scenarios", [])):
        return None
    return {name for names in coverage.get("commands", {}).values() for name in names}


def fresh_comparison(timeout_s: float) -> tuple[dict[str, Any], set[str]]:
    """The default scenarios on the embedded servers; exercised = what the servers counted."""
    targets = []
    try:
        for name, role in ((config.BASELINE, config.BASELINE_ROLE), (config.CANDIDATE, config.CANDIDATE_ROLE)):
            targets.append(embedded_target(name, role=role, expect=expected(name)))
        targets = add_noise_control(targets, list(SCENARIO_NAMES))
        document = run_comparison(targets, list(SCENARIO_NAMES), timeout_s=timeout_s)
        exercised: set[str] = set()
        for target in targets:
            with target.client(timeout_s) as client:
                exercised.update(n for n, c in command_calls(client.info("commandstats")).items() if c)
        document["exercised"] = sorted(exercised)
        return document, exercised
    finally:
        for target in targets:
            target.stop()


def defaults_and_model(usage: Usage, timeout_s: float) -> tuple[dict[str, dict[str, str]], dict[str, Any] | None]:
    """CONFIG GET * of fresh Redis and Valkey processes, and the memory model of the sample on them."""
    with embedded_pair("impact") as pair:
        clients = {role: redis.Redis(port=srv.port, socket_timeout=timeout_s, decode_responses=False)
                   for role, srv in pair.items()}
        try:
            defaults = {role: {_text(k): _text(v) for k, v in c.config_get("*").items()}
                        for role, c in clients.items()}
            memory = None
            if usage.samples:
                allocators = {role: str(c.info("memory").get("mem_allocator")) for role, c in clients.items()}
                modelled = model(usage.samples, clients)
                memory = estimate(usage.samples, usage.sampled_keys, sum(usage.keyspace.values()), modelled,
                                  allocators)
                memory["model"] = modelled
        finally:
            for client in clients.values():
                client.close()
    return defaults, memory


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def run_impact(url: str, *, sample: int = 0, report: Path | None = None, timeout_s: float = config.DEFAULT_COMMAND_TIMEOUT_S,
               tls: dict[str, Any] | None = None, run_id: str | None = None) -> dict[str, Any]:
    """The impact document for the application at `url`. Prints nothing; the server is only read."""
    started = now()
    usage = read_usage(url, sample, timeout_s, tls)
    source, exercised = load_report(report) if report else fresh_comparison(timeout_s)
    defaults, memory = defaults_and_model(usage, timeout_s)
    document = copy.deepcopy(source)
    document.update(kind="impact", run_id=run_id or new_run_id(), started_at=started.isoformat(timespec="seconds"),
                    source_report={"path": str(report) if report else None, "kind": source.get("kind"),
                                   "run_id": source.get("run_id")})
    document.pop("reports", None)
    ranked = rank(source, usage.calls)
    document["impact"] = {
        "application": {"url": redact(url), "identity": usage.identity, "keyspace": usage.keyspace,
                        "commands_called": len([c for c in usage.calls.values() if c]),
                        "calls": sum(usage.calls.values())},
        "commands": ranked["commands"], "findings": ranked["findings"],
        "findings_not_called": ranked["findings_not_called"],
        "untested": untested(usage.calls, exercised),
        "config": config_advice(usage.config, defaults[config.BASELINE], defaults[config.CANDIDATE]),
        "memory": memory, "sample": {"asked": sample, "keys": usage.sampled_keys,
                                     "groups": [s.as_dict() for s in usage.samples]},
        "notes": usage.notes,
    }
    finish(document, started)
    return document
