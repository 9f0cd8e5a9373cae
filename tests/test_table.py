"""The terminal table, rendered from a real run's document: finding counts first, NEW findings listed first."""

from __future__ import annotations

import pytest

from app import test_runner
from app.findings import NEW
from app.render.table import render_table
from app.targets import Target


@pytest.fixture(scope="module")
def document(embedded_servers: dict) -> dict:
    targets = [Target(name=role, url=srv.url, source="embedded", owned=True)
               for role, srv in embedded_servers.items()]
    return test_runner.run_comparison(targets, ["basic_crud", "lua_and_tx"], timeout_s=10)


def test_header_rows_count_findings_per_scenario(document: dict) -> None:
    text = render_table(document, max_differences=50)
    lines = text.splitlines()
    assert "baseline" in lines[1] and "redis 7.2.4" in lines[1]
    assert "candidate" in lines[2] and "valkey 9.0.0" in lines[2]
    header = next(line for line in lines if line.startswith("scenario "))
    assert header.split()[3:6] == ["findings", "NEW", "documented"]
    row = next(line for line in lines if line.startswith("basic_crud "))
    mine = [f for f in document["findings"] if "basic_crud" in f["scenarios"]]
    records = sum(1 for d in document["differences"] if d["scenario"] == "basic_crud")
    assert row.split()[1:5] == ["OK", "OK", str(len(mine)), str(sum(f["class"] == NEW for f in mine))]
    assert row.split()[-1] == str(records) and len(mine) < records  # grouped: fewer findings than records
    summary = document["summary"]
    assert lines[-1].startswith(f"{summary['findings']} findings from {summary['records']['total']} differing records: "
                                f"{summary['new']} NEW")


def test_new_findings_are_listed_first_with_the_place_that_differs(document: dict) -> None:
    text = render_table(document, max_differences=200)
    new_block = text.split("NEW findings, undocumented: read these first")[1].split("\n\n")[0]
    assert f"({document['summary']['new']}):" in new_block.splitlines()[0]
    rows = new_block.splitlines()[2:]
    assert len(rows) == document["summary"]["new"]
    evalsha = next(line for line in rows if "Please use EVAL" in line)
    assert "cript." in evalsha and evalsha.split()[-1] == "4"  # one finding, its four records
    documented = text.split("documented (")[1].split("\n")[0]
    assert "VK" in documented and text.index("NEW findings") < text.index("documented (")


def test_limit_says_how_many_more(document: dict) -> None:
    text = render_table(document, max_differences=2)
    hidden = document["summary"]["new"] - 2
    assert f"… {hidden} more in the reports (--max-differences N shows more)" in text
