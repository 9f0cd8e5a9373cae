"""Every report of a run, written into one run folder: JSON, HTML, JUnit XML and a Markdown summary.

All renderers read only the document run_comparison built; nothing here measures.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from app.render.html import render_html
from app.render.json_report import write_json
from app.render.junit import render_junit
from app.render.markdown import render_markdown
from app.render.migration import write_migration_reports

REPORT_FILES = {"json": "report.json", "html": "report.html", "junit": "junit.xml", "markdown": "summary.md"}


def _write_text(text: str, path: Path) -> Path:
    """Atomically: a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return path


def report_paths(out_dir: Path, json_path: Path | None = None) -> dict[str, Path]:
    paths = {kind: Path(out_dir) / name for kind, name in REPORT_FILES.items()}
    if json_path is not None:
        paths["json"] = Path(json_path)
    return paths


def write_reports(document: dict[str, Any], out_dir: Path, json_path: Path | None = None) -> dict[str, Path]:
    """Write all four reports; returns kind -> path. The JSON records where the others are."""
    paths = report_paths(Path(out_dir), json_path)
    document["report_path"] = str(paths["json"])
    document["reports"] = {kind: str(path) for kind, path in paths.items()}
    if document.get("kind") == "migration":  # the migration rehearsal has its own renderers
        return write_migration_reports(document, paths, _write_text)
    _write_text(render_html(document), paths["html"])
    _write_text(render_junit(document), paths["junit"])
    _write_text(render_markdown(document, html_name=str(paths["html"])), paths["markdown"])
    write_json(document, paths["json"])
    return paths
