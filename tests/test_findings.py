"""Findings: records grouped by their cause, so what a reader sees first counts causes, not places.

Most tests feed the grouping small records; the last ones read a real run on the embedded servers and
check the acceptance cases: one finding each for the Lua "not allowed from script" texts, the SCAN
cursor-parsing records and the per-key MEMORY USAGE records, and every record either documented or in
an undocumented finding (listed in the test output).
"""

from __future__ import annotations

from typing import Any

from app.findings import (ALLOCATOR, DOCUMENTED, NEW, NOISE, attention_order, group_findings, load_rules,
                          signature, summarize)

B, C = "redis", "valkey"


def rec(path: str, left: Any, right: Any, *, scenario: str = "s", kind: str = "reply", **extra: Any) -> dict:
    record = {"scenario": scenario, "path": path, "kind": kind, "baseline": B, "target": C,
              "values": {B: left, C: right}, "significant": True, "documented": False, **extra}
    if isinstance(left, int) and isinstance(right, int):
        record["delta"] = right - left
    return record


def err(text: str) -> dict:
    return {"error": text}


def test_the_same_word_change_in_several_error_texts_is_one_finding() -> None:
    records = [rec(f"errors.{cmd} from a script", err(f"ERR This Redis command is not allowed from script ({cmd})"),
                   err(f"ERR This Valkey command is not allowed from script ({cmd})"), kind="error_text")
               for cmd in ("EVAL", "MULTI", "SUBSCRIBE")]
    records.append(rec("errors.other", err("ERR wrong number of arguments"), err("ERR syntax error"),
                       kind="error_text"))
    findings = group_findings(records)
    assert sorted(f["records"] for f in findings) == [1, 3]
    grouped = next(f for f in findings if f["records"] == 3)
    assert '"Redis" -> "Valkey"' in grouped["title"] and grouped["class"] == NEW
    assert {r["finding"] for r in records[:3]} == {grouped["id"]} and records[3]["finding"] != grouped["id"]


def test_one_error_answered_by_either_side_where_the_other_accepts_is_one_finding() -> None:
    records = [rec("cursors.SCAN cursor '-1'", "accepted", err("ERR invalid cursor")),
               rec("cursors.HSCAN cursor ''", ["0", []], err("ERR invalid cursor")),
               rec("cursors.SCAN cursor ' 1'", err("ERR invalid cursor"), "accepted")]
    findings = group_findings(records)
    assert len(findings) == 1 and findings[0]["records"] == 3
    # A command that one side lacks is its own finding each: different commands, different causes.
    missing = [rec(f"commands.{c}", err(f"ERR unknown command '{c}'"), 1, kind="availability") for c in ("A", "B")]
    assert len(group_findings(missing)) == 2


def test_a_name_on_one_side_only_is_one_finding_across_config_info_and_lua() -> None:
    records = [rec("config.availability-zone", None, "", missing_on=B, kind="config_default"),
               rec("info_fields.Server.availability_zone", None, True, missing_on=B)]
    other_side = rec("info_fields.Server.atomicvar_api", True, None, missing_on=C)
    findings = group_findings([*records, other_side])
    assert sorted(f["records"] for f in findings) == [1, 2]


def test_an_equal_numeric_delta_is_one_finding_and_a_different_one_is_not() -> None:
    records = [rec(f"memory_usage.{n}", base, base - 24, kind="memory") for n, base in (("a", 80), ("b", 1352))]
    records.append(rec("memory_usage.c", 100, 50, kind="memory"))
    assert sorted(f["records"] for f in group_findings(records)) == [1, 2]
    # Only kinds listed in the rules group by delta: two evictions counts are no common cause.
    counts = [rec(f"eviction.{n}", 10, 12, kind="eviction") for n in ("a", "b")]
    assert len(group_findings(counts)) == 2


def test_documented_records_group_by_their_entry_before_any_signature() -> None:
    records = [rec("config.lazyfree-lazy-eviction", "no", "yes", documented=True, catalogue_id="VK80-LAZYFREE-DEFAULTS",
                   kind="config_default"),
               rec("config.lazyfree-lazy-expire", "no", "yes", documented=True, catalogue_id="VK80-LAZYFREE-DEFAULTS",
                   kind="config_default", scenario="t"),
               rec("config.other", "no", "yes", kind="config_default")]
    findings = group_findings(records)
    documented = next(f for f in findings if f["documented"])
    assert (documented["id"], documented["records"], documented["class"]) == ("VK80-LAZYFREE-DEFAULTS", 2, DOCUMENTED)
    assert documented["scenarios"] == ["s", "t"] and "lazy" in documented["title"].lower()
    assert next(f for f in findings if not f["documented"])["class"] == NEW


def test_group_rules_from_data_name_known_causes() -> None:
    group = load_rules()["groups"][0]
    rule = group["match"][0]
    record = rec(rule["path"].replace("*", "x"), "function", "nil", scenario=rule["scenario"])
    key, title, group_id = signature(record)
    assert group_id == group["id"] and title == group["title"]


def test_classes_order_and_counts() -> None:
    records = [rec("a", 1, 2),
               rec("b", 1, 2, documented=True, catalogue_id="VK80-LAZYFREE-DEFAULTS"),
               rec("c", 80, 56, kind="memory", significant=False, allocator_differs=True),
               rec("d", 1.0, 2.0, kind="timing", significant=False),
               rec("e", "x", "y", significant=False, noise=True)]
    findings = group_findings(records)
    assert [f["class"] for f in findings] == [NEW, DOCUMENTED, ALLOCATOR, NOISE, NOISE]
    summary = summarize(records, findings)
    assert (summary["findings"], summary[NEW], summary[DOCUMENTED], summary[ALLOCATOR], summary[NOISE]) == (5, 1, 1, 1, 2)
    assert summary["records"]["total"] == 5 and summary["records"]["undocumented_significant"] == 1
    assert summary["by_scenario"]["s"]["records"] == 5
    assert [r["path"] for r in attention_order(list(reversed(records)))] == ["a", "b", "c", "e", "d"]


def test_ids_are_stable_and_per_target() -> None:
    first = group_findings([rec("x.y", err("ERR a"), err("ERR b"), kind="error_text")])
    again = group_findings([rec("x.y", err("ERR a"), err("ERR b"), kind="error_text")])
    assert first[0]["id"] == again[0]["id"] and first[0]["id"].startswith("U-")
    other = rec("x.y", err("ERR a"), err("ERR b"), kind="error_text")
    other["target"], other["values"] = "v91", {B: err("ERR a"), "v91": err("ERR b")}
    both = group_findings([rec("x.y", err("ERR a"), err("ERR b"), kind="error_text"), other])
    assert len(both) == 2 and len({f["id"] for f in both}) == 1


# --- a real run -----------------------------------------------------------------------------------------------

def finding_of(document: dict, path: str, scenario: str) -> dict:
    record = next(r for r in document["differences"] if r["path"] == path and r["scenario"] == scenario)
    return next(f for f in document["findings"] if f["id"] == record["finding"] and f["target"] == record["target"])


def test_acceptance_groups_on_a_real_run(full_run: dict) -> None:
    not_allowed = [r for r in full_run["differences"]
                   if "This Valkey command is not allowed from script" in str(r["values"].get(C))]
    assert len(not_allowed) >= 3
    assert len({r["finding"] for r in not_allowed}) == 1
    cursors = [r for r in full_run["differences"] if r["scenario"] == "scan_and_iter" and r["path"].startswith("cursors.")
               and "invalid cursor" in str(r["values"])]
    assert len(cursors) >= 4 and len({r["finding"] for r in cursors}) == 1
    memory = [r for r in full_run["differences"] if r["kind"] == "memory" and "MEMORY USAGE" not in r["path"]
              and r["scenario"] in ("basic_crud", "large_payloads")]
    assert len(memory) >= 8 and len({r["finding"] for r in memory}) == 1
    assert finding_of(full_run, memory[0]["path"], memory[0]["scenario"])["records"] >= len(memory)


def test_every_record_is_documented_or_in_an_undocumented_finding(full_run: dict) -> None:
    ids = {(f["target"], f["id"]): f for f in full_run["findings"]}
    for record in full_run["differences"]:
        finding = ids[(record["target"], record["finding"])]
        assert finding["documented"] == bool(record.get("documented")) or record.get("allocator_differs")
    new = [f for f in full_run["findings"] if f["class"] == NEW]
    print(f"\n{len(new)} undocumented (NEW) findings on the embedded servers:")
    for finding in new:
        example = finding["examples"][0]
        print(f"  {finding['id']} [{', '.join(finding['scenarios'])}] {finding['title']} ({finding['records']}) "
              f"e.g. {example['path']}: {example['values']}"[:220])
    assert full_run["summary"][NEW] == len(new)


def test_memory_and_eviction_are_never_new_while_the_allocators_differ(full_run: dict) -> None:
    allocators = {n: t["identity"]["mem_allocator"].split("-")[0] for n, t in full_run["targets"].items()}
    assert allocators[B] != allocators[C]
    for finding in full_run["findings"]:
        if set(finding["kinds"]) <= {"memory", "eviction"}:
            assert finding["class"] in (ALLOCATOR, NOISE, DOCUMENTED), finding
            assert not finding["new"]
    eviction = [r for r in full_run["differences"] if r["kind"] in ("memory", "eviction")]
    assert eviction and all(r["allocator_differs"] and not r["significant"] for r in eviction)
