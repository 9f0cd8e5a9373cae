"""Which commands the explorer and the scenarios exercised, out of COMMAND LIST on each server, and
which were excluded and why.

A command counts as exercised by the explorer when at least one of its calls was compared (sent to every
server and judged, not skipped); `answered` counts the ones the server also answered without an error at
least once. The scenarios' figures come from INFO commandstats after a default run (app/data/
scenario_coverage.json, see app/explore/scenario_coverage.py for how it was measured).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from app.explore.exclusions import Exclusions

TARGET_PERCENT = 95.0  # the explorer's goal: this share of the commands that are not excluded


def percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def server_coverage(commands: Iterable[str], exclusions: Exclusions, explored: set[str], answered: set[str],
                    scenario_commands: Iterable[str] | None) -> dict[str, Any]:
    """One server's figures: its runnable commands, the excluded, the explorer's, the scenarios'."""
    listed = sorted(set(commands))
    excluded = [c for c in listed if exclusions.excluded(c) is not None]
    eligible = [c for c in listed if c not in set(excluded)]
    mine = [c for c in eligible if c in explored]
    out: dict[str, Any] = {
        "commands": len(listed), "excluded": len(excluded), "eligible": len(eligible),
        "explorer": len(mine), "explorer_percent": percent(len(mine), len(eligible)),
        "explorer_answered": len([c for c in mine if c in answered]),
        "explorer_missed": [c for c in eligible if c not in explored],
        "target_percent": TARGET_PERCENT,
    }
    if scenario_commands is not None:
        scenarios = set(scenario_commands) & set(listed)
        out.update(scenarios=len(scenarios), scenarios_percent=percent(len(scenarios), len(listed)),
                   scenarios_eligible_percent=percent(len(scenarios & set(eligible)), len(eligible)),
                   union=len(scenarios | set(mine)), union_percent=percent(len(scenarios | set(mine)), len(listed)),
                   only_explorer=len(set(mine) - scenarios), only_scenarios=sorted(scenarios - set(mine)))
    return out


def coverage_report(command_lists: Mapping[str, Iterable[str]], products: Mapping[str, str],
                    exclusions: Exclusions, explored: set[str], answered: Mapping[str, set[str]],
                    scenario_data: Mapping[str, Any]) -> dict[str, Any]:
    """Per server (baseline and candidates), and the exclusions with their reasons."""
    recorded = scenario_data.get("commands", {})
    servers = {}
    for name, commands in command_lists.items():
        servers[name] = {"product": products.get(name, ""),
                         **server_coverage(commands, exclusions, explored, answered.get(name, set()),
                                           recorded.get(products.get(name, "")))}
    every = sorted({c for commands in command_lists.values() for c in commands})
    return {
        "servers": servers,
        "excluded": [{"command": c, "reason": exclusions.excluded(c)} for c in every if exclusions.excluded(c)],
        "scenarios_measured": {"about": scenario_data.get("about", ""), "at": scenario_data.get("measured_at", ""),
                               "servers": scenario_data.get("servers", {})},
    }
