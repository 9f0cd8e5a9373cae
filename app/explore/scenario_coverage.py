"""Which commands a default run of the scenarios exercises: INFO commandstats of fresh embedded servers
after app.test_runner.run_comparison of every registered scenario. Measured once and recorded as data
(app/data/scenario_coverage.json), because the run takes about a minute; measure again with

    python -m app.explore.scenario_coverage        (writes the data file, prints one line)
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app import config
from app.explore.docs import command_label
from app.identity import read_identity
from app.scenarios import SCENARIO_NAMES
from app.targets import embedded_trio
from app.test_runner import run_comparison

COVERAGE_PATH = Path(__file__).resolve().parents[1] / "data" / "scenario_coverage.json"
HOW = ("INFO commandstats of each server right after `python -m app.explore.scenario_coverage`: "
       "app.test_runner.run_comparison of every registered scenario on freshly started embedded servers "
       "(Redis, its noise control, Valkey), as a default ./rvc run does; a command counts when its "
       "calls, rejected_calls or failed_calls are above zero.")


def commands_in_stats(stats: dict[str, Any]) -> list[str]:
    """INFO commandstats (redis-py's parsed form) -> the commands called at least once, as labels."""
    out = []
    for key, fields in stats.items():
        if not key.startswith("cmdstat_") or not isinstance(fields, dict):
            continue
        if any(int(fields.get(f, 0)) > 0 for f in ("calls", "rejected_calls", "failed_calls")):
            out.append(command_label(key[len("cmdstat_"):]))
    return sorted(out)


def measure(redis_path: str | None = None, valkey_path: str | None = None) -> dict[str, Any]:
    """Run the scenarios on fresh servers and read what each server counted. Prints nothing."""
    targets = embedded_trio(redis_path, valkey_path)
    try:
        document = run_comparison(targets, list(SCENARIO_NAMES), timeout_s=config.DEFAULT_COMMAND_TIMEOUT_S)
        out: dict[str, Any] = {"servers": {}, "commands": {}}
        for target in targets:
            if target.role == config.CONTROL_ROLE:
                continue
            with target.client() as client:
                identity = read_identity(client)
                out["commands"][identity["product"]] = commands_in_stats(client.info("commandstats"))
                out["servers"][identity["product"]] = f"{identity['product']} {identity['version']}"
        out["completed"] = bool(document.get("completed"))
        return out
    finally:
        for target in targets:
            target.stop()


def load_scenario_coverage(path: Path = COVERAGE_PATH) -> dict[str, Any]:
    """The recorded measurement; {} when it has never been recorded."""
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def main(argv: Sequence[str] | None = None) -> int:
    measured = measure()
    document = {"about": HOW, "measured_at": dt.date.today().isoformat(), "scenarios": list(SCENARIO_NAMES),
                **measured}
    COVERAGE_PATH.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    counts = ", ".join(f"{p}: {len(c)}" for p, c in measured["commands"].items())
    print(f"scenario coverage recorded in {COVERAGE_PATH} ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
