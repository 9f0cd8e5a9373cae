"""Kind-specific parts of the reports: a replay's or the mirror's per-command table, an exploration's
coverage and repros. The four renderers draw what every document has (targets, findings, records) and
ask here for the rest, so a new kind of document is one module with these functions and one line below:

  table_section(document) -> str            lines after the findings in the terminal table
  markdown_section(document) -> str         Markdown after the findings list
  html_section(document) -> str             an HTML <section> after the findings
  junit_cases(document) -> list[Element]    <testcase> elements for the candidate's <testsuite>s
                                            (replaces the per-scenario cases, which a replay has none of)
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from importlib import import_module
from typing import Any

# document kind -> the module that renders its own part
SECTION_MODULES: dict[str, str] = {
    "replay": "app.render.replay",
    "impact": "app.render.impact",
    "mirror": "app.render.mirror",
    "explore": "app.render.explore",
}


def _module(document: dict[str, Any]) -> Any:
    name = SECTION_MODULES.get(str(document.get("kind", "")))
    return import_module(name) if name else None


def table_section(document: dict[str, Any]) -> str:
    module = _module(document)
    return module.table_section(document) if module else ""


def markdown_section(document: dict[str, Any]) -> str:
    module = _module(document)
    return module.markdown_section(document) if module else ""


def html_section(document: dict[str, Any]) -> str:
    module = _module(document)
    return module.html_section(document) if module else ""


def junit_cases(document: dict[str, Any], target: str) -> list[ET.Element] | None:
    """Test cases for one target's suite, or None: the renderer's per-scenario cases then."""
    module = _module(document)
    return module.junit_cases(document, target) if module and hasattr(module, "junit_cases") else None
