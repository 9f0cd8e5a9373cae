"""Documented-differences catalogue: which differences Valkey's own release notes and docs announce.

The data lives in app/data/documented_differences.json: one entry per documented difference between
Redis 7.2 and Valkey 8.0 / 8.1 / 9.0, with its source and `match` rules over the comparison's
difference records (scenario and dotted metric path as globs, kind optional). A record is labelled
with the FIRST entry that matches it, so the file lists specific entries before broad ones.
Undocumented differences are what a migrating team must look at first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path
from typing import Any

from app import config
from app.compare import NOT_COMPARED, SECTION_KINDS

CATALOGUE_PATH = Path(__file__).parent / "data" / "documented_differences.json"

REQUIRED_FIELDS = ("id", "description", "introduced_in", "category", "source", "url", "quote", "observable",
                   "match")
# Ids read like "VK81-SET-IFEQ": the Valkey version that introduced it, then a stable name.
ID_PATTERN = re.compile(r"^VK(\d{2})?-[A-Z0-9]+(-[A-Z0-9]+)*$")
VERSION_PATTERN = re.compile(r"^\d+\.\d+\.\d+$")
# Every kind the comparison can give a record (app/compare.py), so a rule's kind can be checked.
KNOWN_KINDS = frozenset(SECTION_KINDS.values()) | {"reply", "error_text", "availability", "status"}
RULE_FIELDS = frozenset({"scenario", "path", "kind"})
# The optional `commands` names what a difference concerns, as an application calls it: "SET",
# "CLIENT LIST" (a command and its subcommand); used to rank differences by how often they are called.
COMMAND_NAME_PATTERN = re.compile(r"^[A-Z][A-Z0-9_-]*( [A-Z][A-Z0-9_-]*)?$")


class CatalogueError(ValueError):
    """The catalogue file is malformed; the message lists every problem found."""


# --- loading and validation ------------------------------------------------------------------------

def load_catalogue(path: Path | str | None = None) -> list[dict[str, Any]]:
    """The validated entries, in file order (the order labelling tries them in)."""
    return list(_load_cached(str(path or CATALOGUE_PATH)))


@lru_cache(maxsize=8)
def _load_cached(path: str) -> tuple[dict[str, Any], ...]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CatalogueError(f"cannot read catalogue {path}: {exc}") from exc
    return tuple(validate(document))


def validate(document: Any) -> list[dict[str, Any]]:
    """The entries of a catalogue document, or CatalogueError naming every problem."""
    if not isinstance(document, dict) or not isinstance(document.get("entries"), list):
        raise CatalogueError("catalogue must be an object with an 'entries' list")
    problems: list[str] = []
    seen: set[str] = set()
    for index, entry in enumerate(document["entries"]):
        label = entry.get("id", f"entry #{index}") if isinstance(entry, dict) else f"entry #{index}"
        problems.extend(f"{label}: {p}" for p in _entry_problems(entry))
        if isinstance(entry, dict) and entry.get("id") in seen:
            problems.append(f"{label}: duplicate id")
        if isinstance(entry, dict):
            seen.add(entry.get("id"))
    if problems:
        raise CatalogueError("invalid catalogue:\n  " + "\n  ".join(problems))
    return document["entries"]


def _entry_problems(entry: Any) -> list[str]:
    if not isinstance(entry, dict):
        return ["not an object"]
    problems = [f"missing or empty '{name}'" for name in REQUIRED_FIELDS
                if name not in entry or entry[name] in ("", None)]
    if problems:
        return problems
    if not ID_PATTERN.match(str(entry["id"])):
        problems.append(f"id {entry['id']!r} does not read like VK81-SOME-NAME")
    for name in ("introduced_in", "removed_in"):
        if name in entry and not VERSION_PATTERN.match(str(entry[name])):
            problems.append(f"{name} {entry[name]!r} is not a MAJOR.MINOR.PATCH version")
    if not str(entry["url"]).startswith("https://"):
        problems.append("url is not an https:// address")
    if not isinstance(entry["observable"], bool):
        problems.append("observable must be true or false")
    problems.extend(_match_problems(entry))
    problems.extend(_commands_problems(entry))
    problems.extend(_calls_problems(entry))
    return problems


def _match_problems(entry: dict[str, Any]) -> list[str]:
    rules = entry["match"]
    if not isinstance(rules, list):
        return ["match must be a list"]
    if entry["observable"] is True and not rules:
        return ["an observable entry needs at least one match rule"]
    if entry["observable"] is False and not entry.get("why_not_observable"):
        return ["an entry that is not observable must say why_not_observable"]
    problems = []
    for rule in rules:
        if not isinstance(rule, dict) or not {"scenario", "path"} <= set(rule) or set(rule) - RULE_FIELDS:
            problems.append(f"match rule {rule!r} must have scenario and path (and optionally kind)")
        elif rule.get("kind") is not None and rule["kind"] not in KNOWN_KINDS:
            problems.append(f"match rule kind {rule['kind']!r} is not a kind the comparison produces")
    return problems


CALL_RULE_FIELDS = frozenset({"command", "args", "baseline", "candidate"})


def _calls_problems(entry: dict[str, Any]) -> list[str]:
    """`calls` rules label a replayed or explored call: a command, and globs over its arguments or replies."""
    rules = entry.get("calls", [])
    if not isinstance(rules, list):
        return ["calls must be a list of rules"]
    return [f"calls rule {rule!r} must have a command and only {sorted(CALL_RULE_FIELDS)}" for rule in rules
            if not isinstance(rule, dict) or "command" not in rule or set(rule) - CALL_RULE_FIELDS
            or not all(isinstance(v, str) and v for v in rule.values())]


def _commands_problems(entry: dict[str, Any]) -> list[str]:
    if "commands" not in entry:
        return []
    commands = entry["commands"]
    if not isinstance(commands, list):
        return ["commands must be a list of command names ([] when the difference concerns no command)"]
    bad = [name for name in commands if not isinstance(name, str) or not COMMAND_NAME_PATTERN.match(name)]
    if bad:
        return [f"commands {bad!r} are not uppercase command names like 'SET' or 'CLIENT LIST'"]
    repeated = sorted({name for name in commands if commands.count(name) > 1})
    return [f"commands lists {repeated!r} more than once"] if repeated else []


# --- versions -------------------------------------------------------------------------------------

def parse_version(text: str) -> tuple[int, ...]:
    """'9.0.0' -> (9, 0, 0); missing parts are 0, a suffix like '-rc1' is ignored."""
    numbers = re.findall(r"\d+", str(text).split("-")[0])
    return tuple(int(n) for n in (numbers + ["0", "0", "0"])[:3])


def applies_to(entry: dict[str, Any], candidate_version: str | None) -> bool:
    """Whether a Valkey version has this difference: introduced_in <= version < removed_in."""
    if candidate_version is None:
        return True
    version = parse_version(candidate_version)
    if version < parse_version(entry["introduced_in"]):
        return False
    return "removed_in" not in entry or version < parse_version(entry["removed_in"])


def candidate_version_of(document: dict[str, Any], name: str | None = None) -> str | None:
    """A candidate's Valkey version from a run document's target identity (None if not Valkey).

    Without a name, the first candidate's (the two-target run's "valkey")."""
    targets = document.get("targets", {})
    if name is None:
        name = next((n for n, t in targets.items() if t.get("role") == config.CANDIDATE_ROLE), config.CANDIDATE)
    identity = targets.get(name, {}).get("identity", {})
    return identity.get("version") if identity.get("product") == "valkey" else None


# --- matching and labelling -----------------------------------------------------------------------

def rule_matches(rule: dict[str, Any], record: dict[str, Any]) -> bool:
    return (fnmatchcase(str(record.get("scenario", "")), rule["scenario"])
            and fnmatchcase(str(record.get("path", "")), rule["path"])
            and rule.get("kind") in (None, record.get("kind")))


def entry_matches(entry: dict[str, Any], record: dict[str, Any]) -> bool:
    return any(rule_matches(rule, record) for rule in entry["match"])


def find_entry(record: dict[str, Any], entries: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The first entry whose rules match the record."""
    return next((entry for entry in entries if entry_matches(entry, record)), None)


def _applicable(entries: list[dict[str, Any]] | None, candidate_version: str | None) -> list[dict[str, Any]]:
    return [e for e in (load_catalogue() if entries is None else entries) if applies_to(e, candidate_version)]


def label_differences(differences: list[dict[str, Any]], candidate_version: str | None = None,
                      entries: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Copies of the records with `documented`, `catalogue_id`, `source` and `source_url` added.

    With a candidate_version, entries that version does not have (introduced later, removed
    earlier) are not used."""
    usable = _applicable(entries, candidate_version)
    labelled = []
    for record in differences:
        if record.get("documented") is True and record.get("catalogue_id"):
            labelled.append(dict(record))  # labelled where it was observed (a replayed call's own entry)
            continue
        entry = find_entry(record, usable) if record.get("kind") != NOT_COMPARED else None
        labelled.append({**record, "documented": entry is not None,
                         "catalogue_id": entry["id"] if entry else None,
                         "source": entry["source"] if entry else None,
                         "source_url": entry["url"] if entry else None})
    return labelled


def unmatched_entries(differences: list[dict[str, Any]], candidate_version: str | None = None,
                      entries: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Observable entries (that the candidate version has) which no difference matched."""
    return [entry for entry in _applicable(entries, candidate_version)
            if entry["observable"] and not any(entry_matches(entry, record) for record in differences)]


def documentation_summary(labelled: list[dict[str, Any]]) -> dict[str, int]:
    """How many labelled differences are documented, how many are not, and how many of those are
    significant (records judged within noise say significant: false)."""
    undocumented = [record for record in labelled if not record.get("documented")]
    return {"documented": len(labelled) - len(undocumented), "undocumented": len(undocumented),
            "undocumented_significant": sum(1 for r in undocumented if r.get("significant", True))}


def label_for_targets(differences: list[dict[str, Any]], document: dict[str, Any],
                      entries: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """label_differences for records of several candidates: each is labelled for its own target's version.

    The catalogue documents Valkey's differences from Redis: a candidate that is not Valkey gets none."""
    versions = {name: candidate_version_of(document, name) for name in document.get("targets", {})}
    by_target: dict[str, list[int]] = {}
    for index, record in enumerate(differences):
        by_target.setdefault(record.get("target", ""), []).append(index)
    labelled: list[dict[str, Any] | None] = [None] * len(differences)
    for target, indices in by_target.items():
        usable = entries if versions.get(target) else []
        for index, record in zip(indices, label_differences([differences[i] for i in indices],
                                                            versions.get(target), usable)):
            labelled[index] = record
    return [record for record in labelled if record is not None]

