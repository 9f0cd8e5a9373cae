"""What a route reports: its outcome, the exact refusal (reply and server log lines), times and counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.migration.settings import FAILED, PARTIAL, REFUSED, WORKS
from app.servers import EmbeddedServer


@dataclass
class RouteResult:
    """One route in one direction. `target` is the server holding the moved data (when there is one)."""

    status: str
    detail: str = ""
    error: str | None = None  # the exact error reply (or the first refusing log line)
    server_log: list[str] = field(default_factory=list)  # warning lines of the refusing server
    duration_s: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    target: EmbeddedServer | None = None
    rate_seconds: float | None = None  # what keys/s is based on when not the whole route (the sync)

    def as_record(self) -> dict[str, Any]:
        return {"status": self.status, "detail": self.detail, "error": self.error,
                "server_log": self.server_log, "duration_s": round(self.duration_s, 3),
                "phases": {k: round(v, 3) for k, v in self.phases.items()}, "counts": self.counts,
                "notes": self.notes}


@dataclass
class Refusals:
    """Per-item refusals of a key-by-key route: how many, and the first one exactly."""

    attempted: int = 0
    refused: int = 0
    first_error: str | None = None
    first_item: str | None = None

    def note(self, item: str, error: Any) -> None:
        self.refused += 1
        if self.first_error is None:
            self.first_error, self.first_item = str(error), item

    def status(self) -> str:
        if self.refused == 0:
            return WORKS
        return REFUSED if self.refused >= self.attempted else PARTIAL


def failed(detail: str, duration_s: float = 0.0) -> RouteResult:
    return RouteResult(status=FAILED, detail=detail, duration_s=duration_s)
