"""Many versions in one report (--target NAME=SPEC), the version matrix, and the since-last-run gate
(--compare-with, --fail-on-change). Real embedded servers of several versions, fetched on first use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.provision import parse_embedded_spec
from app.target_specs import SpecError, parse_target, parse_targets

ROOT = Path(__file__).resolve().parent.parent
MATRIX = ("--target", "r72=embedded:redis@7.2.4", "--target", "v80=embedded:valkey@8.0.1",
          "--target", "v90=embedded:valkey@9.0.0", "--target", "v912=embedded:valkey@9.1.2")


def rvc(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=os.environ.copy())


@pytest.fixture(scope="module")
def matrix_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("matrix")
    proc = rvc(*MATRIX, "--scenarios", "scan_and_iter,data_structures", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return {"document": json.loads((out / "report.json").read_text()), "stdout": proc.stdout}


def targets_with(document: dict, catalogue_id: str) -> set[str]:
    return {f["target"] for f in document["findings"] if f["id"] == catalogue_id}


@pytest.mark.timeout(900)
def test_a_difference_is_marked_at_exactly_the_versions_that_have_it(matrix_run: dict) -> None:
    document = matrix_run["document"]
    assert document["baseline"] == "r72" and list(document["targets"]) == ["r72", "v80", "v90", "v912"]
    versions = {n: t["identity"]["version"] for n, t in document["targets"].items()}
    assert versions == {"r72": "7.2.4", "v80": "8.0.1", "v90": "9.0.0", "v912": "9.1.2"}
    assert targets_with(document, "VK80-HSCAN-NOVALUES") == {"v80", "v90", "v912"}
    assert targets_with(document, "VK90-HASH-FIELD-EXPIRATION") == {"v90", "v912"}
    rows = {(r["scenario"], r["path"]): r for r in document["matrix"]["rows"]}
    hexpire = next(r for (s, p), r in rows.items() if s == "data_structures" and p.startswith("commands.HEXPIRE"))
    assert hexpire["values"]["v80"] == {"same_as_baseline": True}
    assert hexpire["values"]["v90"] == hexpire["values"]["v912"] != hexpire["values"]["r72"]
    steps = {(c["from"], c["to"]): c for c in document["matrix"]["changes"]}
    assert set(steps) == {("v80", "v90"), ("v90", "v912")}
    assert "VK90-HASH-FIELD-EXPIRATION" in {i["id"] for i in steps[("v80", "v90")]["appear"]}
    assert "VK80-HSCAN-NOVALUES" not in {i["id"] for c in steps.values() for i in c["appear"] + c["disappear"]}
    # The table shows the matrix: counts per target, marks per target, the steps between versions.
    assert "findings per target, against r72:" in matrix_run["stdout"]
    assert "v80 (valkey 8.0.1) -> v90 (valkey 9.0.0):" in matrix_run["stdout"]


def test_the_html_report_has_the_matrix_view(matrix_run: dict, tmp_path: Path) -> None:
    from app.render.html import render_html
    page = render_html(matrix_run["document"])
    assert 'id="matrix"' in page and page.count('<tr class="matrix-row') == len(matrix_run["document"]["matrix"]["rows"])
    assert 'data-target="v912"' in page


@pytest.mark.timeout(900)
def test_since_the_last_run_only_a_change_fails_the_gate(tmp_path: Path) -> None:
    pair = ("--target", "redis=embedded:redis@7.2.4", "--target", "valkey=embedded:valkey@9.0.0",
            "--scenarios", "basic_crud,scan_and_iter")
    first = rvc(*pair, "--out", str(tmp_path / "first"))
    assert first.returncode == 0, first.stderr
    earlier = str(tmp_path / "first" / "report.json")
    again = rvc(*pair, "--out", str(tmp_path / "again"), "--compare-with", earlier, "--fail-on-change")
    assert again.returncode == 0, again.stdout[-2000:]
    since = json.loads((tmp_path / "again" / "report.json").read_text())["since_last"]
    assert since["counts"]["new"] == since["counts"]["changed"] == since["counts"]["gone"] == 0
    assert since["counts"]["unchanged"] > 0
    # Another Valkey under the same name: its findings differ from the earlier run's, and the gate fires.
    other = ("--target", "redis=embedded:redis@7.2.4", "--target", "valkey=embedded:valkey@8.0.1",
             "--scenarios", "basic_crud,scan_and_iter")
    changed = rvc(*other, "--out", str(tmp_path / "other"), "--compare-with", earlier, "--fail-on-change")
    assert changed.returncode == 7, changed.stderr
    since = json.loads((tmp_path / "other" / "report.json").read_text())["since_last"]
    assert since["counts"]["new"] + since["counts"]["changed"] > 0 and since["counts"]["gone"] > 0
    assert "since run" in changed.stdout
    # Without the gate, the same changes are reported and the run passes.
    assert rvc(*other, "--out", str(tmp_path / "plain"), "--compare-with", earlier).returncode == 0


@pytest.mark.parametrize("argv, message", [
    (["--target", "only=embedded:redis@7.2.4"], "at least two targets"),
    (["--target", "a=embedded:redis", "--target", "a=embedded:valkey"], "given more than once"),
    (["--target", "a=embedded:redis@1.2.3", "--target", "b=embedded:valkey"], "unknown redis version"),
    (["--target", "noequals", "--target", "b=embedded:valkey"], "expected NAME=SPEC"),
    (["--target", "a=embedded:redis", "--target", "b-control=embedded:valkey"], "not ending in -control"),
    (["--target", "a=embedded:redis", "--target", "b=/no/such/binary"], "not an embedded"),
    (["--target", "a=embedded:redis", "--target", "b=embedded:valkey", "--valkey", "redis://x:1/0"], "exclude"),
    (["--fail-on-change"], "needs --compare-with"),
    (["--compare-with", "/no/such/report.json"], "cannot read it"),
])
def test_bad_targets_and_gates_are_one_line_usage_errors(argv: list[str], message: str) -> None:
    proc = rvc(*argv, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_specs_name_urls_binaries_and_the_newest_version(tmp_path: Path) -> None:
    assert parse_target("prod=rediss://host:6380/0").kind == "url"
    binary = tmp_path / "valkey-server"
    binary.write_text("#!/bin/sh\n")
    assert parse_target(f"mine={binary}").kind == "binary"
    newest = max((e for e in __import__("app.provision", fromlist=["known_versions"]).known_versions()
                  if e.product == "valkey" and e.variant is None), key=lambda e: tuple(map(int, e.version.split("."))))
    assert parse_embedded_spec("embedded:valkey@latest").version == newest.version
    with pytest.raises(SpecError):
        parse_targets(["a=embedded:redis", "b=ftp://x"])
