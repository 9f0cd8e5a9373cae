"""JUnit XML for CI systems: one test suite per server, one test case per scenario on that server.

A test case fails when the scenario FAILed on that server. Differences are charged to the candidate
(the server being migrated to): its test case also fails when the scenario shows a NEW finding (an
undocumented significant difference from the baseline), one line per finding. WARN (a step skipped)
passes, with the detail in system-out.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from app.findings import NEW
from app.render import sections

# XML 1.0 forbids most control characters; a server reply can hold any byte.
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
MAX_LISTED = 50


def xml_text(value: Any) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def _failure_text(scenario: str, role: str, res: dict[str, Any] | None,
                  attention: list[dict[str, Any]], baseline: str) -> tuple[str, str, str] | None:
    """(type, message, body) of the failure for one test case, or None when it passes."""
    failed = bool(res) and res.get("status") == "FAIL"
    if not failed and not attention:
        return None
    parts, lines = [], []
    if failed:
        parts.append(f"FAIL: {res.get('detail', '')}")
        lines.append(f"{scenario} FAILed on {role}: {res.get('detail', '')}")
    if attention:
        parts.append(f"{len(attention)} NEW finding(s) against {baseline}")
        for finding in attention[:MAX_LISTED]:
            example = next((e for e in finding["examples"] if e.get("scenario") == scenario), finding["examples"][0])
            values = example.get("values", {})
            lines.append(f"[{finding['id']}] {finding['title']} ({finding['records']} records), e.g. "
                         f"{example.get('path')}: {baseline}={values.get(baseline)!r} {role}={values.get(role)!r}")
        if len(attention) > MAX_LISTED:
            lines.append(f"... {len(attention) - MAX_LISTED} more in the JSON report")
    kind = "FAIL" if failed else "new-finding"
    return kind, "; ".join(parts), "\n".join(lines)


def build_junit(document: dict[str, Any]) -> ET.Element:
    root = ET.Element("testsuites", name="redis-valkey-compat")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    attention: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (target, scenario) -> NEW findings
    for finding in document.get("findings", []):
        if finding["class"] == NEW:
            for scenario in finding["scenarios"]:
                attention.setdefault((finding["target"], scenario), []).append(finding)
    baseline = document.get("baseline", "")
    for role, target in document.get("targets", {}).items():
        suite = ET.SubElement(root, "testsuite", name=f"redis-valkey-compat.{role}",
                              timestamp=xml_text(document.get("started_at", "")))
        props = ET.SubElement(suite, "properties")
        ident = target.get("identity") or {}
        for name in ("product", "version", "mem_allocator"):
            ET.SubElement(props, "property", name=name, value=xml_text(ident.get(name, "")))
        ET.SubElement(props, "property", name="url", value=xml_text(target.get("url", "")))
        counts = {"tests": 0, "failures": 0, "skipped": 0}
        elapsed = 0.0
        own_cases = sections.junit_cases(document, role)
        for case in own_cases or []:  # a replay's or the mirror's cases: one per command
            suite.append(case)
            counts["tests"] += 1
            counts["failures"] += case.find("failure") is not None
            counts["skipped"] += case.find("skipped") is not None
            elapsed += float(case.get("time") or 0.0)
        runs = target.get("scenarios")  # a control or --like-for-like-memory target runs only some
        for scenario in [] if own_cases is not None else [s for s in document.get("scenarios", [])
                                                          if runs is None or s in runs]:
            res = document.get("results", {}).get(role, {}).get(scenario)
            duration = float((res or {}).get("duration_s") or 0.0)
            elapsed += duration
            case = ET.SubElement(suite, "testcase", classname=f"redis-valkey-compat.{role}", name=scenario,
                                 time=f"{duration:.3f}")
            counts["tests"] += 1
            if res is None:
                ET.SubElement(case, "skipped", message="not run: the run stopped before this scenario")
                counts["skipped"] += 1
                continue
            failure = _failure_text(scenario, role, res, attention.get((role, scenario), []), baseline)
            if failure:
                kind, message, body = failure
                node = ET.SubElement(case, "failure", type=kind, message=xml_text(message))
                node.text = xml_text(body)
                counts["failures"] += 1
            if res.get("status") == "WARN":
                ET.SubElement(case, "system-out").text = xml_text(f"WARN: {res.get('detail', '')}")
        suite.set("tests", str(counts["tests"]))
        suite.set("failures", str(counts["failures"]))
        suite.set("errors", "0")
        suite.set("skipped", str(counts["skipped"]))
        suite.set("time", f"{elapsed:.3f}")
        for key in totals:
            totals[key] += counts[key]
    root.set("tests", str(totals["tests"]))
    root.set("failures", str(totals["failures"]))
    root.set("errors", "0")
    root.set("skipped", str(totals["skipped"]))
    root.set("time", f"{float(document.get('duration_s') or 0.0):.3f}")
    return root


def render_junit(document: dict[str, Any]) -> str:
    root = build_junit(document)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
