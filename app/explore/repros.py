"""Minimal repros as command files: one command a line in redis-cli's quoting (app/captures parses them,
`./rvc replay FILE` runs them), with `#` comment lines saying what difference the file shows."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.captures.quoting import quote
from app.explore.exploration import PIPELINE_KINDS

REPRO_FOLDER = "repros"
# A word redis-cli reads back unchanged without quotes: printable ASCII, no quote, backslash or space.
_BARE = re.compile(rb"[!#-&(-\[\]-~]+")
_NAME = re.compile(r"[^a-z0-9]+")
MAX_SHOWN_CHARS = 400  # a repro line in the report; the file holds it whole



def format_call(args: Sequence[bytes]) -> str:
    """One command line: bare words where redis-cli reads them back as they are, quoted otherwise."""
    words = [arg if _BARE.fullmatch(arg) else quote(arg) for arg in args]
    return b" ".join(words).decode("latin-1")


def repro_name(number: int, command: str) -> str:
    return f"{number:03d}-{_NAME.sub('-', command.lower()).strip('-')}.txt"


def _reply_line(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= 300 else text[:299] + "…"


def plan_repros(signatures: Sequence[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """Signature -> the repro's path relative to the run folder, numbered in the order given."""
    return {sig: f"{REPRO_FOLDER}/{repro_name(number, sig[0])}" for number, sig in enumerate(signatures, 1)}


def shown_line(line: str) -> str:
    """A repro line as the report shows it (the file has it whole)."""
    return line if len(line) <= MAX_SHOWN_CHARS else line[:MAX_SHOWN_CHARS - 1] + "…"


def write_repros(folder: Path, rows: Sequence[dict[str, Any]], calls: dict[str, Sequence[Sequence[bytes]]],
                 seed: int) -> list[Path]:
    """Write the repro of every finding row that has one (rows of document["explore"]["findings"];
    `calls`: signature text -> the repro's calls, whole)."""
    written = []
    for row in rows:
        if not calls.get(row["signature"]) or not row.get("repro_file"):
            continue
        label = row["catalogue_id"] if row.get("documented") else row["class"].upper()
        header = [f"redis-valkey-compat explore repro: {row['signature']}",
                  f"{label}; seed {seed}, first in sequence {row['first_sequence']}, "
                  f"hit by {row['sequences']} random sequence(s)"]
        path = Path(folder) / row["repro_file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"# {line}" for line in header]
        lines += [f"# {name}: {_reply_line(value)}" for name, value in row["values"].items()]
        lines += ["# run on servers holding no keys (the explorer flushes its own servers before each sequence)"]
        if row.get("kind") in PIPELINE_KINDS:
            lines += ["# shows when the commands are pipelined (sent without waiting for replies), as the explorer "
                      "sends them after its reset commands"]
        lines += [format_call(call) for call in calls[row["signature"]]]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")  # commands are ASCII (escaped)
        written.append(path)
    return written
