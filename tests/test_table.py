"""The terminal table, rendered from a real run's document."""

from __future__ import annotations

import pytest

from app import test_runner
from app.render.table import render_table
from app.targets import Target


@pytest.fixture(scope="module")
def document(embedded_servers: dict) -> dict:
    targets = [Target(role=role, url=srv.url, source="embedded", owned=True)
               for role, srv in embedded_servers.items()]
    return test_runner.run_comparison(targets, ["basic_crud", "lua_and_tx"], timeout_s=10)


def test_header_rows_and_totals(document: dict) -> None:
    text = render_table(document, max_differences=50)
    lines = text.splitlines()
    assert "redis 7.2.4" in lines[1] and "valkey 9.0.0" in lines[2]
    row = next(line for line in lines if line.startswith("basic_crud "))
    new = sum(1 for d in document["differences"]
              if d["scenario"] == "basic_crud" and d["significant"] and not d.get("documented"))
    assert row.split()[1:3] == ["OK", "OK"] and f"NEW {new:>3}" in row
    assert lines[-1].startswith(f"{len(document['differences'])} differences:")


def test_new_differences_come_first_and_long_values_show_where_they_differ(document: dict) -> None:
    text = render_table(document, max_differences=200)
    block = text.split("\nlua_and_tx:\n")[1].split("\n\n")[0].splitlines()[1:]
    marks = [line.split()[-1] for line in block if not line.lstrip().startswith("…")]
    first_documented = next(i for i, m in enumerate(marks) if m != "NEW")
    assert all(m != "NEW" for m in marks[first_documented:])
    evalsha = next(line for line in block if "EVALSHA absent" in line)
    assert "Please use EVAL." in evalsha  # the tail that differs, not the shared NOSCRIPT beginning


def test_limit_says_how_many_more(document: dict) -> None:
    text = render_table(document, max_differences=2)
    assert "more in the reports (--max-differences N shows more)" in text
