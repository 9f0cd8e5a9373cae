"""Findings: one underlying difference with every record that shows it.

A record is one place where a candidate's metrics differ from the baseline's; one cause (an error text
reworded, a cursor parser changed) usually shows in many places. Records are grouped:
  1. by the catalogue entry that documents them (its id is the finding's id);
  2. by a group rule of app/data/finding_rules.json (a known undocumented cause, matched like catalogue
     rules);
  3. by a signature derived from the values, in the order of SIGNATURES: the same text change (words
     removed, added or replaced, e.g. "Redis" -> "Valkey"), the same error answered by one side where the
     other accepts, the same renamed name across CONFIG, INFO and Lua, the same numeric delta;
  4. otherwise a record is a finding of its own.
A finding is per candidate target. What a user sees first counts findings; the records stay in the JSON
and the HTML detail under their finding (record["finding"] is the id).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.catalogue import load_catalogue

RULES_PATH = Path(__file__).parent / "data" / "finding_rules.json"

# What a finding is, in the order a reader should look at them.
NEW, DOCUMENTED, ALLOCATOR, NOISE = "new", "documented", "allocator", "noise"
CLASS_ORDER = (NEW, DOCUMENTED, ALLOCATOR, NOISE)
CLASS_LABELS = {NEW: "NEW", DOCUMENTED: "documented", ALLOCATOR: "allocator differs", NOISE: "within noise"}
MAX_EXAMPLES = 3
# Words split at spaces and punctuation, so "Redis" -> "Valkey" is one replaced word in any sentence.
_WORDS = re.compile(r"\w+|[^\w\s]")


# --- record predicates -----------------------------------------------------------------------------------

def is_documented(record: dict[str, Any]) -> bool:
    """Labelled by the catalogue as a documented difference; no label means undocumented."""
    return record.get("documented") is True


def is_significant(record: dict[str, Any]) -> bool:
    """Records without the field are behaviour differences, hence significant."""
    return record.get("significant", True) is not False


def needs_attention(record: dict[str, Any]) -> bool:
    """What a migrating team must look at first: significant and not documented anywhere."""
    return is_significant(record) and not is_documented(record)


def record_class(record: dict[str, Any]) -> str:
    if record.get("allocator_differs") and not record.get("noise"):
        return ALLOCATOR
    if not is_significant(record):
        return NOISE
    return DOCUMENTED if is_documented(record) else NEW


def attention_order(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """NEW first, then documented, then allocator-made, then noise (stable within each)."""
    return sorted(records, key=lambda r: CLASS_ORDER.index(record_class(r)))


# --- rules -----------------------------------------------------------------------------------------------

@lru_cache(maxsize=4)
def load_rules(path: str = str(RULES_PATH)) -> dict[str, Any]:
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    for group in document.get("groups", []):
        missing = {"id", "title", "why", "match"} - set(group)
        if missing:
            raise ValueError(f"finding rule {group.get('id', '?')}: missing {sorted(missing)}")
    return document


def _rule_matches(rule: dict[str, Any], record: dict[str, Any]) -> bool:
    return (fnmatchcase(str(record.get("scenario", "")), rule.get("scenario", "*"))
            and fnmatchcase(str(record.get("path", "")), rule.get("path", "*"))
            and rule.get("kind") in (None, record.get("kind")))


# --- signatures derived from the values --------------------------------------------------------------------

def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"error"}:
        return str(value["error"])
    return None


def _error(value: Any) -> str | None:
    return str(value["error"]) if isinstance(value, dict) and set(value) == {"error"} else None


def text_change(record: dict[str, Any], rules: dict[str, Any]) -> tuple[str, str] | None:
    """Two texts that differ by a few words: the same edit anywhere is one cause."""
    left, right = (_text(v) for v in _pair(record))
    if left is None or right is None or (_error(_pair(record)[0]) is None) != (_error(_pair(record)[1]) is None):
        return None
    a, b = list(_WORDS.finditer(left)), list(_WORDS.finditer(right))
    matcher = difflib.SequenceMatcher(a=[m.group() for m in a], b=[m.group() for m in b], autojunk=False)
    edits = [(_span(left, a, i1, i2), _span(right, b, j1, j2))
             for op, i1, i2, j1, j2 in matcher.get_opcodes() if op != "equal"]
    changed = sum(len(x) + len(y) for x, y in edits)
    if not edits or changed > rules.get("max_text_change_chars", 60) or len(edits) > 3:
        return None
    described = "; ".join(f'"{x}" -> "{y}"' if x and y else f'"{x}" removed' if x else f'"{y}" added'
                          for x, y in edits)
    return f"text:{record['kind']}:{edits!r}", f"{record['kind']}: {described}"


def _span(text: str, words: list[re.Match[str]], start: int, stop: int) -> str:
    """The original text of words[start:stop], spacing kept ("Please use EVAL.", not "Please use EVAL .")."""
    return text[words[start].start():words[stop - 1].end()] if stop > start else ""


def one_side_errs(record: dict[str, Any], rules: dict[str, Any]) -> tuple[str, str] | None:
    """One server answers an error where the other accepts: the same error in one section is one cause."""
    errors = [_error(v) for v in _pair(record)]
    if sum(e is not None for e in errors) != 1 or "missing_on" in record:
        return None
    error = next(e for e in errors if e is not None)
    if error.startswith(tuple(rules.get("availability_errors", []))):
        return None  # a command one side lacks: each is its own finding
    side = record["baseline"] if errors[0] else record["target"]
    section = record["path"].split(".")[0]
    normalised = re.sub(r"'[^']*'|\d+", "…", error)
    return (f"errs:{record['scenario']}:{section}:{normalised}",
            f"{section}: one server replies \"{normalised}\" where the other accepts (e.g. {side})")


def renamed_name(record: dict[str, Any], rules: dict[str, Any]) -> tuple[str, str] | None:
    """A name present on one side only: the same name across INFO, CONFIG and Lua is one cause."""
    if "missing_on" not in record:
        return None
    leaf = record["path"].split(".")[-1]
    name = leaf.lower()
    for old, new in rules.get("renames", []):
        name = name.replace(old, new)
    name = re.sub(r"[^a-z0-9]", "", name)
    present = record["target"] if record["missing_on"] == record["baseline"] else record["baseline"]
    return f"name:{name}:{present}", f'"{leaf}" exists on {present} only'


def same_delta(record: dict[str, Any], rules: dict[str, Any]) -> tuple[str, str] | None:
    """Numbers that differ by the same amount (24 bytes per key) are one cause."""
    if "delta" not in record or record["kind"] not in rules.get("delta_kinds", []):
        return None
    return f"delta:{record['kind']}:{record['delta']}", f"{record['kind']} differs by {record['delta']:+g}"


SIGNATURES: tuple[Callable[[dict[str, Any], dict[str, Any]], tuple[str, str] | None], ...] = (
    text_change, one_side_errs, renamed_name, same_delta)


def _pair(record: dict[str, Any]) -> tuple[Any, Any]:
    values = record.get("values", {})
    return values.get(record.get("baseline")), values.get(record.get("target"))


def signature(record: dict[str, Any], rules: dict[str, Any] | None = None) -> tuple[str, str, str | None]:
    """(finding key, title, group rule id or None) of one record."""
    rules = rules if rules is not None else load_rules()
    if is_documented(record):
        return f"doc:{record['catalogue_id']}", _catalogue_title(record["catalogue_id"]), None
    for group in rules.get("groups", []):
        if any(_rule_matches(rule, record) for rule in group["match"]):
            return f"group:{group['id']}", group["title"], group["id"]
    for derive in SIGNATURES:
        found = derive(record, rules)
        if found:
            return (*found, None)
    return f"record:{record['scenario']}:{record['path']}", record["path"], None


def _catalogue_title(entry_id: str) -> str:
    """The first sentence of the entry's description: what the release note says changed."""
    entry = next((e for e in load_catalogue() if e["id"] == entry_id), None)
    if entry is None:
        return entry_id
    return entry["description"].split(". ")[0].rstrip(".")


def finding_id(key: str, catalogue_id: str | None, group_id: str | None) -> str:
    """Stable across runs and targets, so findings can be compared between runs."""
    if catalogue_id:
        return catalogue_id
    if group_id:
        return group_id
    return "U-" + hashlib.sha1(key.encode()).hexdigest()[:8]


# --- grouping ----------------------------------------------------------------------------------------------

def group_findings(records: Iterable[dict[str, Any]], rules: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Findings for labelled records (each record gets record["finding"]), in attention order."""
    rules = rules if rules is not None else load_rules()
    findings: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        key, title, group_id = signature(record, rules)
        fid = finding_id(key, record.get("catalogue_id") if is_documented(record) else None, group_id)
        record["finding"] = fid
        finding = findings.get((record["target"], fid))
        if finding is None:
            finding = findings[(record["target"], fid)] = {
                "id": fid, "target": record["target"], "baseline": record["baseline"], "title": title,
                "signature": key, "documented": is_documented(record),
                "catalogue_id": record.get("catalogue_id"), "source": record.get("source"),
                "source_url": record.get("source_url"), "why": _why(group_id, rules),
                "kinds": [], "scenarios": [], "records": 0, "classes": [], "examples": []}
        finding["records"] += 1
        for field, value in (("kinds", record["kind"]), ("scenarios", record["scenario"]),
                             ("classes", record_class(record))):
            if value not in finding[field]:
                finding[field].append(value)
        if len(finding["examples"]) < MAX_EXAMPLES:
            finding["examples"].append({k: record[k] for k in ("scenario", "path", "kind", "values", "missing_on")
                                        if k in record})
    out = []
    for finding in findings.values():
        # The most serious class any of its records has: one significant record makes a finding significant.
        finding["class"] = min(finding.pop("classes"), key=CLASS_ORDER.index)
        finding["significant"] = finding["class"] in (NEW, DOCUMENTED)
        finding["new"] = finding["class"] == NEW
        out.append(finding)
    return sorted(out, key=lambda f: (CLASS_ORDER.index(f["class"]), -f["records"]))


def _why(group_id: str | None, rules: dict[str, Any]) -> str | None:
    return next((g["why"] for g in rules.get("groups", []) if g["id"] == group_id), None)


# --- the counts a reader sees first ----------------------------------------------------------------------------

def _finding_counts(findings: list[dict[str, Any]]) -> dict[str, int]:
    counts = {"findings": len(findings)}
    counts.update({cls: sum(f["class"] == cls for f in findings) for cls in CLASS_ORDER})
    return counts


def _record_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    return {"total": len(records),
            "significant": sum(is_significant(r) for r in records),
            "within_noise": sum(record_class(r) == NOISE for r in records),
            "allocator": sum(record_class(r) == ALLOCATOR for r in records),
            "documented": sum(is_documented(r) for r in records),
            "undocumented": sum(not is_documented(r) for r in records),
            "undocumented_significant": sum(needs_attention(r) for r in records)}


def summarize(records: list[dict[str, Any]], findings: list[dict[str, Any]] | None = None,
              noise_rule: str = "") -> dict[str, Any]:
    """Finding counts overall, per target, per scenario and per kind (a finding counts once in each scenario
    and kind it shows in), and the record counts beside them."""
    if findings is None:
        findings = group_findings([dict(r) for r in records])

    def grouped(field: str, many: bool) -> dict[str, dict[str, int]]:
        groups: dict[str, list[dict[str, Any]]] = {}
        for finding in findings:
            for name in (finding[field] if many else [finding[field]]):
                groups.setdefault(str(name), []).append(finding)
        counted = {name: _finding_counts(group) for name, group in groups.items()}
        return dict(sorted(counted.items(), key=lambda kv: (-kv[1][NEW], -kv[1][DOCUMENTED], kv[0])))

    by_scenario_records: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_scenario_records.setdefault(record["scenario"], []).append(record)
    by_scenario = grouped("scenarios", True)
    for scenario, group in by_scenario_records.items():
        by_scenario.setdefault(scenario, _finding_counts([]))["records"] = len(group)
    return {**_finding_counts(findings), "records": _record_counts(records),
            "by_target": grouped("target", False), "by_scenario": by_scenario, "by_kind": grouped("kinds", True),
            "noise_rule": noise_rule}
