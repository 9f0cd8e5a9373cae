"""Ranking the known differences by what one application calls, and its config against Valkey's defaults.

A finding names commands through its catalogue entry's `commands`, its records' `command` (a replay's)
and the command names in its records' paths (a scenario's "commands.HSCAN k 0 NOVALUES"). What the
application calls comes from INFO commandstats; what the tool exercised from the report it ranks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from app.catalogue import load_catalogue

# Command names inside a record's path: upper-case words, optionally with a subcommand.
_PATH_COMMAND = re.compile(r"\b([A-Z][A-Z_]{2,})(?: ([A-Z][A-Z-]{2,}))?\b")
# Parameters the tool sets when it starts a server (app/servers.py): their values there are not defaults.
STARTUP_SET = frozenset({"port", "bind", "dir", "logfile", "save", "appendonly", "daemonize", "protected-mode",
                         "maxmemory", "pidfile", "unixsocket", "dbfilename"})


def _matches(finding_command: str, called: str) -> bool:
    return finding_command == called or (" " not in finding_command and called.split(" ")[0] == finding_command)


def finding_commands(finding: dict[str, Any], records: Iterable[dict[str, Any]], known: set[str],
                     entries: dict[str, dict[str, Any]]) -> set[str]:
    """The command names a finding is about, among `known` names (those the application calls)."""
    names: set[str] = set()
    entry = entries.get(finding.get("catalogue_id") or "")
    if entry:
        names.update(entry.get("commands", []))
    for record in records:
        if record.get("command"):
            names.add(record["command"])
        for word, sub in _PATH_COMMAND.findall(str(record.get("path", ""))):
            full = f"{word} {sub}" if sub else word
            names.update(n for n in (full, word) if n in known)
    return {called for called in known if any(_matches(n, called) for n in names)}


def human(calls: int) -> str:
    """1234567 -> '1.2 M'."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if calls >= size:
            return f"{calls / size:.1f} {unit}"
    return str(calls)


def rank(document: dict[str, Any], calls: dict[str, int]) -> dict[str, Any]:
    """Per called command its findings, and per finding the application's calls of its commands."""
    known = {name for name, n in calls.items() if n > 0}
    entries = {e["id"]: e for e in load_catalogue()}
    by_finding: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in document.get("differences", []):
        by_finding.setdefault((record.get("target", ""), record.get("finding", "")), []).append(record)
    per_command: dict[str, dict[str, Any]] = {}
    findings_rows, not_called = [], 0
    for finding in document.get("findings", []):
        if finding.get("class") not in ("new", "documented"):
            continue  # allocator-made and noise findings are not behaviour an application meets
        records = by_finding.get((finding["target"], finding["id"]), [])
        commands = finding_commands(finding, records, known, entries)
        if not commands:
            not_called += 1
            continue
        total = sum(calls[c] for c in commands)
        findings_rows.append({"id": finding["id"], "title": finding["title"], "class": finding["class"],
                              "target": finding["target"], "commands": sorted(commands, key=lambda c: -calls[c]),
                              "calls": total, "catalogue_id": finding.get("catalogue_id"),
                              "source_url": finding.get("source_url")})
        for command in commands:
            row = per_command.setdefault(command, {"command": command, "calls": calls[command], "findings": 0,
                                                   "new": 0, "documented": 0, "ids": []})
            row["findings"] += 1
            row[finding["class"]] += 1
            row["ids"].append(finding["id"])
    commands_rows = sorted(per_command.values(), key=lambda r: (-r["calls"], r["command"]))
    for row in commands_rows:
        new = f" ({row['new']} NEW)" if row["new"] else ""
        row["text"] = f"{row['command']}: {human(row['calls'])} calls, {row['findings']} difference" \
                      f"{'s' if row['findings'] != 1 else ''}{new}"
    return {"commands": commands_rows, "findings": sorted(findings_rows, key=lambda r: (-r["calls"], r["id"])),
            "findings_not_called": not_called}


def untested(calls: dict[str, int], exercised: set[str] | None) -> list[dict[str, Any]] | None:
    """Commands the application calls that the comparison never sent (None: not known for this report)."""
    if exercised is None:
        return None
    rows = [{"command": name, "calls": n} for name, n in calls.items()
            if n > 0 and name not in exercised and name.split(" ")[0] not in exercised]
    return sorted(rows, key=lambda r: (-r["calls"], r["command"]))


def config_advice(app_config: dict[str, str], redis_defaults: dict[str, str],
                  valkey_defaults: dict[str, str]) -> list[dict[str, Any]]:
    """Where the application's config meets a default that differs on Valkey, or a parameter Valkey lacks."""
    advice = []
    for name in sorted(app_config):
        if name in STARTUP_SET or name not in redis_defaults:
            continue
        value, redis_default = app_config[name], redis_defaults[name]
        if name not in valkey_defaults:
            if value != redis_default:
                advice.append({"parameter": name, "value": value, "redis_default": redis_default, "valkey_default": None,
                               "text": f"your config sets {name} {value}; Valkey does not have {name}"})
            continue
        valkey_default = valkey_defaults[name]
        if valkey_default == redis_default:
            continue
        if value == redis_default:
            text = (f"your server runs {name} {value} (Redis' default); Valkey's default is {valkey_default}: "
                    f"it changes on the move unless the config sets it")
        else:
            text = f"your config sets {name} {value}; Valkey's default is {valkey_default} (Redis': {redis_default})"
        advice.append({"parameter": name, "value": value, "redis_default": redis_default,
                       "valkey_default": valkey_default, "text": text})
    return advice
