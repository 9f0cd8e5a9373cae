"""What the explorer never sends, and why: app/data/explore_exclusions.json, loaded and checked."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path

from app.stream_compare import args_text, command_name

EXCLUSIONS_PATH = Path(__file__).resolve().parents[1] / "data" / "explore_exclusions.json"
CONFIG_SET = "CONFIG SET"


class ExclusionsError(ValueError):
    """The exclusions file is malformed; one line."""


@dataclass(frozen=True)
class Exclusions:
    commands: dict[str, str]              # command -> why it is never generated
    forbidden: tuple[dict[str, str], ...]  # {"command", "args" glob, "reason"}
    config_allowed: dict[str, tuple[bytes, ...]]  # CONFIG SET parameter -> values it may be set to
    config_never: dict[str, str]          # parameter -> why it is never set

    def excluded(self, name: str) -> str | None:
        """Why a command is never generated, or None."""
        return self.commands.get(name.upper())

    def forbidden_reason(self, args: Sequence[bytes]) -> str | None:
        """Why a generated call must not be sent, or None."""
        name = command_name(args)
        text = args_text(args, limit=100_000).upper()
        for rule in self.forbidden:
            if rule["command"] == name and fnmatchcase(text, rule["args"].upper()):
                return rule["reason"]
        if name == CONFIG_SET:
            for param in args[2::2]:
                key = param.decode("latin-1").lower()
                if key not in self.config_allowed:
                    return f"CONFIG SET {key}: " + self.config_never.get(key, "not an allowed parameter")
        return None


def _check(document: dict) -> None:
    for key in ("commands", "forbidden_calls", "config_set"):
        if key not in document:
            raise ExclusionsError(f"{EXCLUSIONS_PATH.name}: missing {key!r}")
    for name, reason in document["commands"].items():
        if not isinstance(reason, str) or not reason.strip():
            raise ExclusionsError(f"{EXCLUSIONS_PATH.name}: {name} has no reason")
    for rule in document["forbidden_calls"]:
        if not {"command", "args", "reason"} <= set(rule):
            raise ExclusionsError(f"{EXCLUSIONS_PATH.name}: a forbidden call needs command, args and reason")


@lru_cache(maxsize=2)
def load_exclusions(path: str = str(EXCLUSIONS_PATH)) -> Exclusions:
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    _check(document)
    config = document["config_set"]
    return Exclusions(
        commands={name.upper(): reason for name, reason in document["commands"].items()},
        forbidden=tuple({**rule, "command": rule["command"].upper()} for rule in document["forbidden_calls"]),
        config_allowed={name.lower(): tuple(v.encode("latin-1") for v in values)
                        for name, values in config["allowed"].items()},
        config_never=dict(config.get("never", {})))
