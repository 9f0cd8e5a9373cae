"""The exploration's report document (kind "explore"): the standard envelope (targets, difference records,
findings, summary) plus document["explore"]: per signature its minimal repro, both replies, documented or
NEW, how many random sequences hit it; the run's figures; coverage; what was never sent and why.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import redis

from app.document import conclude, describe_targets, finish, new_document
from app.explore.exploration import NO_REPLY, Finding, Outcome, Settings
from app.explore.judge import Judge, Signature, same_path, signature_text
from app.explore.repros import format_call, shown_line
from app.findings import DOCUMENTED, NEW, NOISE, record_class
from app.stream_compare import StreamComparator, find_call_entry, kind_of, usable_entries
from app.targets import Target

KIND = "explore"
SOURCE = "explore"
MAX_NOISE_LISTED = 50


def _made_record(finding: Finding, comparator: StreamComparator, significance: str) -> dict[str, Any]:
    """A difference record in the comparator's shape for a server that did not answer or answered only
    after a PING: the comparator never saw those calls."""
    base, cand = comparator.baseline, comparator.candidates[0]
    values = finding.repro_values or finding.first_values
    shown = {base: values.get(base), cand: values.get(cand)}
    kind = "reply" if finding.silence else kind_of(shown[base], shown[cand])
    return {"scenario": SOURCE, "path": signature_text(finding.signature), "kind": kind, "baseline": base,
            "target": cand, "values": shown, "command": finding.signature[0], "count": finding.sequences,
            "examples": [{"args": shown_line(format_call(finding.repro[-1])) if finding.repro else "", "values": shown}],
            "significant": True, "significance": significance,
            "documented": False, "catalogue_id": None, "source": None, "source_url": None}


def _finding_note(finding: Finding) -> str:
    if finding.confirmed:
        return "budget spent before the repro was minimal" if finding.exhausted else ""
    return finding.skipped_reason


def _explained_by_noise(record: dict[str, Any], judge: Judge) -> bool:
    """A record whose difference the noise history explains at the level of coarse shapes (Judge.varies)."""
    command, _, shapes = same_path(record["path"]).partition(": ")
    base, _, cand = shapes.rpartition(" vs ")
    return judge.varies(command, base, cand)


def _label_from_repro(record: dict[str, Any], finding: Finding, judge: Judge,
                      entries: list[dict[str, Any]]) -> None:
    """The catalogue entry the minimal repro's call matches: a random call can hide what documents it
    (a 70,000-byte value before SET's IFEQ), its repro does not. A confirmed repro that no entry documents
    also takes away a label some random call earned by carrying an option (HSCAN ... NOVALUES with an
    invalid cursor: the cursor, not NOVALUES, makes the difference), so record and row agree."""
    if not finding.repro or not finding.repro_values:
        return
    values = finding.repro_values
    entry = find_call_entry(finding.signature[0], finding.repro[-1], values.get(judge.baseline),
                            values.get(judge.candidate), entries)
    if entry is not None:
        record.update(documented=True, catalogue_id=entry["id"], source=entry["source"], source_url=entry["url"])
    elif finding.confirmed:
        record.update(documented=False, catalogue_id=None, source=None, source_url=None)


def difference_records(outcome: Outcome, judge: Judge, repro_paths: dict[Signature, str]) -> list[dict[str, Any]]:
    """The comparator's records and the silences', each with its signature's repro; a signature whose
    repro did not show it again is not significant (timing or randomness, like noise)."""
    comparator = judge.comparator
    by_path = {signature_text(sig): finding for sig, finding in outcome.findings.items()}
    records = [r for r in comparator.records() if not _explained_by_noise(r, judge)]
    records += [_made_record(f, comparator, f"{f.sequences} sequences; {f.silence}")
                for f in outcome.findings.values() if f.silence]
    entries = usable_entries(judge.versions.get(judge.candidate))
    for record in records:
        finding = by_path.get(same_path(record["path"]))
        if finding is None:
            continue
        _label_from_repro(record, finding, judge, entries)
        record.update(sequences=finding.sequences, first_sequence=finding.first_sequence,
                      confirmed=finding.confirmed)
        if finding.repro:
            record["repro"] = [shown_line(format_call(c)) for c in finding.repro]
        if finding.signature in repro_paths:
            record["repro_file"] = repro_paths[finding.signature]
        if not finding.confirmed and finding.attempts:
            record["significant"] = False
            record["significance"] = finding.skipped_reason
    return records


def _row_label(finding: Finding, records: list[dict[str, Any]], judge: Judge,
               entries: list[dict[str, Any]]) -> tuple[str, dict[str, Any] | None]:
    """A signature's class and catalogue entry. With a minimal repro, the repro's own call decides (a
    signature's random calls may have carried an option a catalogue entry documents, as ZSCAN ... NOSCORES
    with an invalid cursor does; the repro keeps only what shows the difference); without one, the
    signature's most frequent record. One the noise history explains is noise, however it shrank."""
    if not finding.silence and judge.varies(*finding.signature):
        return NOISE, None
    if finding.repro and finding.repro_values:
        values = finding.repro_values
        entry = find_call_entry(finding.signature[0], finding.repro[-1], values.get(judge.baseline),
                                values.get(judge.candidate), entries)
        if entry is not None:
            return DOCUMENTED, entry
        if finding.confirmed:
            return NEW, None
    if not records:
        return NOISE, None
    record = max(records, key=lambda r: r.get("count", 0))
    klass = record_class(record)
    entry = {"id": record["catalogue_id"]} if klass == DOCUMENTED else None
    return klass, entry


def finding_rows(document: dict[str, Any], outcome: Outcome, judge: Judge,
                 repro_paths: dict[Signature, str]) -> list[dict[str, Any]]:
    """document["explore"]["findings"]: one row per signature, labelled by its repro (or its records)."""
    by_path: dict[str, list[dict[str, Any]]] = {}
    for record in document["differences"]:
        by_path.setdefault(same_path(record["path"]), []).append(record)
    entries = usable_entries(judge.versions.get(judge.candidate))
    rows = []
    for sig, finding in sorted(outcome.findings.items(), key=lambda kv: (kv[1].first_sequence, kv[0])):
        records = by_path.get(signature_text(sig), [])
        klass, entry = _row_label(finding, records, judge, entries)
        values = finding.repro_values or finding.first_values
        rows.append({
            "signature": signature_text(sig), "command": sig[0], "baseline_shape": sig[1], "candidate_shape": sig[2],
            "kind": finding.silence or kind_of(values.get(judge.baseline), values.get(judge.candidate)),
            "class": klass, "documented": klass == DOCUMENTED, "catalogue_id": entry["id"] if entry else None,
            "finding": records[0].get("finding") if records else None,
            "sequences": finding.sequences, "calls": finding.calls, "first_sequence": finding.first_sequence,
            "repro": [shown_line(format_call(c)) for c in finding.repro] if finding.repro else [],
            "repro_file": repro_paths.get(sig), "values": values, "confirmed": finding.confirmed,
            "shrink_seconds": round(finding.shrink_seconds, 3), "shrink_tests": finding.shrink_tests,
            "note": _finding_note(finding) if klass != NOISE or not finding.confirmed
            else "the noise control showed this command's replies vary (in other calls)",
        })
    return rows


def build_document(*, run_id: str, started: dt.datetime, targets: list[Target], clients: dict[str, redis.Redis],
                   outcome: Outcome, judge: Judge, settings: Settings, families: list[str] | None,
                   coverage: dict[str, Any], exclusions: dict[str, Any], repro_paths: dict[Signature, str],
                   out_dir: Path, completed: bool) -> dict[str, Any]:
    """The whole document, concluded (labels, findings, summary) and finished."""
    document = new_document(KIND, run_id, [])
    describe_targets(document, targets, clients)
    conclude(document, difference_records(outcome, judge, repro_paths))
    comparator = judge.comparator
    totals = comparator.totals()
    rows = finding_rows(document, outcome, judge, repro_paths)
    shrink_times = [r["shrink_seconds"] for r in rows if r["shrink_tests"]]
    document[KIND] = {
        "seed": settings.seed, "budget_seconds": settings.seconds, "sequences_requested": settings.sequences,
        "families": families, "shrink": settings.shrink, "sequences": outcome.sequences,
        "calls_sent": outcome.calls, "calls_compared": judge.compared,
        "calls_skipped": totals["skipped"], "explore_seconds": outcome.explore_seconds,
        "shrink_seconds": round(outcome.shrink_seconds, 3),
        "compared_per_second": round(judge.compared / outcome.explore_seconds, 1) if outcome.explore_seconds else 0.0,
        "shrink_seconds_per_finding": {
            "findings": len(shrink_times), "median": sorted(shrink_times)[len(shrink_times) // 2] if shrink_times else 0.0,
            "max": max(shrink_times, default=0.0)},
        "findings": rows,
        "aborted": {"by_kind": dict(outcome.aborted_by_kind), "examples": outcome.aborted, "no_reply": NO_REPLY},
        "noise": comparator.noise()[:MAX_NOISE_LISTED],
        "command_stats": comparator.command_stats(),
        "coverage": coverage, "exclusions": exclusions,
        "repro_folder": str(out_dir / "repros"),
    }
    document["completed"] = completed
    finish(document, started)
    return document
