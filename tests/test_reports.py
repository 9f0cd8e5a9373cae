"""Reports from a real run on the embedded servers: JSON against its schema, HTML (also in a real
headless Chromium), JUnit XML, the Markdown summary, and the terminal progress display."""

from __future__ import annotations

import copy
import io
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import time
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from app import config
from app.findings import NEW
from app.render.html import render_html, target_colours
from app.render.junit import render_junit
from app.render.markdown import render_markdown
from app.render.progress import Progress, make_progress
from app.render.reports import REPORT_FILES, write_reports
from app.targets import Target
from app.test_runner import run_comparison

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "app" / "report_schema.json"
B, C = config.BASELINE, config.CANDIDATE
# A server reply can hold anything; these must come out as text, never as markup.
HOSTILE = ("<script>document.body.setAttribute('data-pwned','1')</script>"
           "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\"> | `tick` \x00 & \"q\"")


@pytest.fixture(scope="module")
def document(full_run: dict) -> dict[str, Any]:
    """One real run of every registered scenario on the embedded Redis and Valkey (a copy: reports add to it)."""
    return copy.deepcopy(full_run)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


def validate(doc: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:160]}" for e in validator.iter_errors(doc)]


def with_hostile_values(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy where a difference, a metric, a detail and a warning hold hostile server text."""
    doc = copy.deepcopy(doc)
    doc["differences"].insert(0, {"scenario": "basic_crud", "path": "replies.hostile", "kind": "reply",
                                  "baseline": B, "target": C, "values": {B: HOSTILE, C: {"error": HOSTILE}},
                                  "significant": True, "finding": "U-hostile"})
    doc["findings"].insert(0, {"id": "U-hostile", "target": C, "baseline": B, "title": HOSTILE, "class": NEW,
                               "new": True, "significant": True, "documented": False, "scenarios": ["basic_crud"],
                               "kinds": ["reply"], "records": 1, "signature": "hostile", "why": None,
                               "catalogue_id": None, "source": None, "source_url": None,
                               "examples": [{"scenario": "basic_crud", "path": "replies.hostile",
                                             "values": {B: HOSTILE, C: {"error": HOSTILE}}}]})
    doc["results"][B]["basic_crud"]["metrics"].setdefault("replies", {})["hostile"] = HOSTILE
    doc["results"][C]["basic_crud"]["detail"] = HOSTILE
    doc["warnings"].append(HOSTILE)
    return doc


# --- JSON and its schema ----------------------------------------------------------------------------

def test_real_documents_validate_against_the_schema(document: dict, schema: dict, tmp_path: Path) -> None:
    assert validate(document, schema) == []
    written = write_reports(copy.deepcopy(document), tmp_path)
    reread = json.loads(written["json"].read_text())
    assert validate(reread, schema) == []
    assert reread["reports"] == {kind: str(path) for kind, path in written.items()}


def test_the_schema_rejects_broken_documents(document: dict, schema: dict) -> None:
    broken = copy.deepcopy(document)
    broken["results"][B]["basic_crud"]["status"] = "MAYBE"
    assert any("MAYBE" in e for e in validate(broken, schema))
    broken = copy.deepcopy(document)
    del broken["targets"][C]["identity"]["mem_allocator"]
    assert validate(broken, schema)
    broken = copy.deepcopy(document)
    broken["differences"].append({"scenario": "x", "path": "y", "kind": "reply", B: 1})  # no values, no target
    assert validate(broken, schema)
    broken = copy.deepcopy(document)
    broken["findings"][0]["class"] = "probably"
    assert any("probably" in e for e in validate(broken, schema))


def test_write_reports_puts_four_files_in_one_folder(document: dict, tmp_path: Path) -> None:
    paths = write_reports(copy.deepcopy(document), tmp_path / "run")
    assert {k: p.name for k, p in paths.items()} == REPORT_FILES
    assert all(p.parent == tmp_path / "run" and p.stat().st_size > 0 for p in paths.values())
    assert paths["html"].read_text().startswith("<!DOCTYPE html>")
    assert ET.parse(paths["junit"]).getroot().tag == "testsuites"
    assert paths["markdown"].read_text().startswith("### ")
    assert not list((tmp_path / "run").glob("*.part"))


# --- HTML ---------------------------------------------------------------------------------------------

class Elements(HTMLParser):
    """Every start tag with its attributes, and the text of the page, for assertions."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        """Tags with these attribute values (data_role= means data-role=)."""
        wanted = {k.replace("_", "-"): v for k, v in attrs.items()}
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in wanted.items())]


def chart_marks(page: str) -> dict[str, dict[str, int]]:
    """Per chart id: how many series paths and points each role drew."""
    marks: dict[str, dict[str, int]] = {}
    current = None
    for tag, attrs in Elements(page).tags:
        if tag == "svg" and "chart" in attrs.get("class", "").split():
            current = attrs["id"]
            marks[current] = {}
        elif current and tag in ("path", "circle") and attrs.get("data-role"):
            key = f"{tag}:{attrs['data-role']}"
            marks[current][key] = marks[current].get(key, 0) + 1
    return marks


def test_html_is_self_contained(document: dict) -> None:
    page = render_html(document)
    parsed = Elements(page)
    external = [a for _, a in parsed.tags for k in ("src", "href") if re.match(r"\s*(https?:)?//", a.get(k, ""))]
    assert external == []
    assert parsed.find("link") == [] and "@import" not in page and "url(" not in page
    assert len(parsed.find("script")) == 1 and len(parsed.find("style")) == 1


def test_html_shows_identities_caveats_and_summary(document: dict) -> None:
    page = render_html(document)
    parsed = Elements(page)
    text = " ".join(parsed.text)
    for role, target in document["targets"].items():
        row = parsed.find("tr", data_role=role)
        assert row, role
        for field in ("product", "version", "mem_allocator"):
            assert target["identity"][field] in text
    for warning in document["warnings"]:
        assert warning in text  # allocator and stand-in version caveats
    count = re.search(r'id="count-new">(\d+)<', page)
    assert count and int(count.group(1)) == document["summary"]["new"] > 0
    for scenario in document["scenarios"]:
        assert parsed.find("section", id=f"scenario-{scenario}"), scenario


def test_html_lists_every_difference_in_its_scenario(document: dict) -> None:
    page = render_html(document)
    for scenario in document["scenarios"]:
        section = page.split(f'id="scenario-{scenario}"', 1)[1].split("<section", 1)[0]
        expected = [d for d in document["differences"] if d["scenario"] == scenario]
        assert section.count('<tr class="difference') == len(expected), scenario
    # The findings table holds every finding, NEW ones marked, each with all its records in its detail.
    _, found, rest = page.partition('id="findings-table"')
    table = rest.split('<section', 1)[0]
    assert found and table.count('<tr class="finding class-new"') == document["summary"]["new"]
    assert table.count('<tr class="finding') == len(document["findings"])
    assert table.count('<tr class="difference') == len(document["differences"])


def test_html_charts_draw_one_line_per_server_and_a_point_per_measurement(document: dict) -> None:
    marks = chart_marks(render_html(document))
    sizes = len(config.PAYLOAD_SIZES)
    for chart in ("chart-latency-set", "chart-latency-get", "chart-memory-usage"):
        assert marks[chart] == {f"{t}:{r}": n for r in (B, C) for t, n in (("path", 1), ("circle", sizes))}, chart
    eviction = marks["chart-eviction"]
    for role in (B, C):
        samples = document["results"][role]["memory_eviction"]["metrics"]["memory_samples"]
        assert eviction[f"path:{role}"] == 1 and eviction[f"circle:{role}"] == len(samples) > 0
    page = render_html(document)
    limit = re.search(r'<line class="limit" id="chart-eviction-limit"[^>]*data-value="([\d.]+)"', page)
    maxmemory = document["results"][B]["memory_eviction"]["metrics"]["eviction"]["maxmemory"]
    assert limit and float(limit.group(1)) * config.MIB == maxmemory


def test_html_without_chart_data_says_so() -> None:
    doc = {"targets": {}, "results": {}, "scenarios": [], "differences": [], "warnings": [], "completed": True}
    page = render_html(doc)
    assert "No chart data" in page and "<svg" not in page


def test_html_escapes_server_text(document: dict) -> None:
    page = render_html(with_hostile_values(document))
    assert "<script>document" not in page and "<img src=x" not in page
    assert "&lt;script&gt;document.body" in page and "\\x00" in page
    assert len(Elements(page).find("script")) == 1


# --- JUnit and Markdown --------------------------------------------------------------------------------

def test_junit_has_a_case_per_scenario_and_server_and_fails_the_right_ones(document: dict) -> None:
    root = ET.fromstring(render_junit(document))
    cases = {(c.get("classname").rsplit(".", 1)[1], c.get("name")): c for c in root.iter("testcase")}
    assert set(cases) == {(r, s) for r in document["targets"] for s in document["scenarios"]}
    attention = {s for f in document["findings"] if f["class"] == NEW for s in f["scenarios"]}
    assert attention
    for (role, scenario), case in cases.items():
        status = document["results"][role][scenario]["status"]
        expect_failure = status == "FAIL" or (role == C and scenario in attention)
        assert (case.find("failure") is not None) == expect_failure, (role, scenario)
    failures = sum(c.find("failure") is not None for c in cases.values())
    assert int(root.get("failures")) == failures and int(root.get("tests")) == len(cases)
    # Once every difference is documented, only FAILs remain failures.
    documented = copy.deepcopy(document)
    for finding in documented["findings"]:
        finding.update(documented=True, catalogue_id="test", source="test", new=False,
                       **{"class": "documented"})
    root = ET.fromstring(render_junit(documented))
    fails = {r for r, per in document["results"].items() for res in per.values() if res["status"] == "FAIL"}
    assert int(root.get("failures")) == sum(res["status"] == "FAIL" for per in document["results"].values()
                                            for res in per.values()), fails


def test_junit_stays_valid_xml_with_hostile_text(document: dict) -> None:
    text = render_junit(with_hostile_values(document))
    root = ET.fromstring(text)  # raises on a control character or broken markup
    assert "\\x00" in text and root.find(".//failure") is not None


def test_markdown_summary_is_short_and_escaped(document: dict) -> None:
    text = render_markdown(with_hostile_values(document), html_name="report.html")
    lines = text.splitlines()
    assert len(lines) < 80
    for scenario in document["scenarios"]:
        assert any(line.startswith(f"| {scenario.replace('_', chr(92) + '_')} |") for line in lines), scenario
    for role, target in document["targets"].items():
        assert target["identity"]["version"] in lines[0]
    assert "<script>" not in text and "<img" not in text and "\\|" in text
    assert "report.html" in lines[-1]


# --- progress ------------------------------------------------------------------------------------------

def test_progress_is_quiet_when_stderr_is_not_a_terminal() -> None:
    stream = io.StringIO()
    progress = make_progress(total=4, stream=stream)
    progress("basic_crud", B)
    progress.close()
    assert stream.getvalue() == "" and progress.count == 1


def read_until(fd: int, ending: str, deadline_s: float) -> str:
    """Everything a pty gives until the text ends with `ending`: one read may return only the first
    update on a loaded machine."""
    deadline = time.monotonic() + deadline_s
    shown = ""
    while not shown.endswith(ending) and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            shown += os.read(fd, 4096).decode()
    return shown


def test_progress_shows_scenario_and_server_on_a_terminal() -> None:
    leader, follower = pty.openpty()
    try:
        with os.fdopen(follower, "w", closefd=False) as stream:
            with make_progress(total=4, stream=stream) as progress:
                assert progress.enabled
                progress("basic_crud", B)
                progress("basic_crud", C)
        shown = read_until(leader, "\r\x1b[2K", deadline_s=30)
    finally:
        os.close(leader)
        os.close(follower)
    assert "[1/4] basic_crud on redis" in shown and "[2/4] basic_crud on valkey" in shown
    assert shown.endswith("\r\x1b[2K")  # the line is cleared for the table that follows


def test_progress_runs_inside_a_real_comparison(document: dict, embedded_servers: dict) -> None:
    stream = io.StringIO()
    progress = Progress(total=2, stream=stream, enabled=True)
    targets = [Target(name=r, url=s.url, source="embedded", owned=True) for r, s in embedded_servers.items()]
    run_comparison(targets, ["basic_crud"], timeout_s=10, progress=progress)
    progress.close()
    assert progress.count == 2 and "[2/2] basic_crud on valkey" in stream.getvalue()


# --- a real browser --------------------------------------------------------------------------------------

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if not shutil.which("apt-get"):
        pytest.skip("no chromium and no apt-get to install it (Debian package: chromium)")
    pytest.fail("chromium is missing: `./rvc test` installs it with `apt-get install -y chromium`")


def run_chromium(binary: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def png_pixels(path: Path) -> tuple[int, int, Iterator[bytes]]:
    """Width, height and the unfiltered RGB(A) rows of an 8-bit, non-interlaced PNG (as Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0
    return width, height, _unfilter(zlib.decompress(b"".join(chunks)), width, height, 4 if colour == 6 else 3)


def _unfilter(raw: bytes, width: int, height: int, bpp: int) -> Iterator[bytes]:
    stride, prev, pos = width * bpp, bytearray(width * bpp), 0
    for _ in range(height):
        kind, line = raw[pos], bytearray(raw[pos + 1:pos + 1 + stride])
        pos += 1 + stride
        if kind == 2:  # Up, the commonest filter: one pass without per-byte branching
            line = bytearray((x + y) & 255 for x, y in zip(line, prev))
        elif kind in (1, 3, 4):
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                b, c = prev[x], (prev[x - bpp] if x >= bpp else 0)
                if kind == 1:
                    line[x] = (line[x] + a) & 255
                elif kind == 3:
                    line[x] = (line[x] + ((a + b) >> 1)) & 255
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        yield bytes(line)
        prev = line


def count_colours(rows: Iterator[bytes], bpp: int, colours: dict[str, str]) -> dict[str, int]:
    wanted = {bytes.fromhex(hex_.lstrip("#")): name for name, hex_ in colours.items()}
    counts = dict.fromkeys(colours, 0)
    for row in rows:
        for x in range(0, len(row), bpp):
            name = wanted.get(row[x:x + 3])
            if name:
                counts[name] += 1
    return counts


def test_chromium_renders_the_report_and_its_charts(document: dict, chromium: str, tmp_path: Path) -> None:
    paths = write_reports(with_hostile_values(document), tmp_path / "run")
    url = paths["html"].resolve().as_uri()
    dom = run_chromium(chromium, tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The page's own script ran in the browser and measured each chart's drawn marks (getBBox).
    body = re.search(r"<body[^>]*>", dom.stdout).group(0)
    drawn = re.search(r'data-charts-drawn="(\d+)"', body)
    assert drawn and int(drawn.group(1)) == 5, body
    assert dom.stdout.count('data-drawn="yes"') == 5 and 'data-drawn="no"' not in dom.stdout
    assert "data-pwned" not in body  # the hostile reply stayed text

    shot = tmp_path / "report.png"
    result = run_chromium(chromium, tmp_path, "--window-size=1400,2800", f"--screenshot={shot}",
                          "--hide-scrollbars", url)
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    width, height, rows = png_pixels(shot)
    assert (width, height) == (1400, 2800)
    bpp = 4 if shot.read_bytes()[25] == 6 else 3
    # The servers' line colours appear only in the charts: both were painted.
    painted = count_colours(rows, bpp, target_colours(document))
    assert all(n > 300 for n in painted.values()), painted
