"""The mirror's report document (kind "mirror", the same envelope as replay's and the scenarios'), and
writing it every --report-every seconds without stalling the application's traffic.

A periodic report is written by a forked child: it builds and renders a copy-on-write snapshot while
the proxy goes on serving; the parent only forks. The final report (SIGINT/SIGTERM) is written in-process.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import signal
from pathlib import Path
from typing import Any

from app.document import conclude, finish, now
from app.mirror.policy import PRIMARY_ONLY, Limits
from app.mirror.proxy import Mirror
from app.render.reports import write_reports


def mirror_section(mirror: Mirror, listen: str, final: bool) -> dict[str, Any]:
    """document["mirror"]: what ran, per command, per server, and what was not compared and why."""
    collector = mirror.collector
    comparator = collector.comparator
    roles = {collector.candidate: "candidate", **({collector.control: "secondary"} if collector.control else {})}
    servers = {}
    for backend in mirror.backends:
        servers[backend.name] = {"role": roles.get(backend.name, "shadow"), **backend.state()}
    cand = mirror.candidate_backend
    limits: Limits = mirror.limits
    return {
        "listen": listen, "final": final, "updated_at": now().isoformat(timespec="seconds"),
        "totals": {"commands": collector.commands, "messages": collector.messages, **comparator.totals(),
                   "dropped": cand.dropped},
        "candidate": {"name": cand.name, "out_of_sync_since": cand.out_of_sync_since, "lost_at": cand.lost_at,
                      "lost_reason": cand.lost_reason, "dropped": cand.dropped, "max_lag_ms": cand.state()["max_lag_ms"]},
        "servers": servers,
        "commands": comparator.command_stats(),
        "noise": comparator.noise(),
        "uncounted_signatures": comparator.uncounted_signatures,
        "primary_only": {name: {"count": count, "reason": PRIMARY_ONLY.get(name) or PRIMARY_ONLY.get(
            name.split(" ")[0]) or PRIMARY_ONLY["(credentials)"]} for name, count in sorted(collector.primary_only.items())},
        "connections": {"opened": mirror.sessions_opened, "open": len(mirror.sessions),
                        "not_compared": dict(mirror.sessions_not_compared),
                        "primary_unreachable_or_refused": mirror.primary_failures,
                        "own_primary_connection": dict(mirror.moved_to_own)},
        "limits": {"max_pending": limits.max_pending, "max_pending_bytes": limits.max_pending_bytes,
                   "lost_after_s": limits.lost_after_s, "share_primary": limits.share_primary, "max_examples": comparator.max_examples,
                   "max_signatures": comparator.max_signatures, "max_command_names": comparator.max_command_names},
    }


class Reporter:
    """Builds and writes the report document from the mirror's live state."""

    def __init__(self, template: dict[str, Any], out_dir: Path, json_path: Path | None, listen: str,
                 started: dt.datetime) -> None:
        self.template, self.out_dir, self.json_path = template, out_dir, json_path
        self.listen, self.started = listen, started
        self.child: int | None = None
        self.written = 0

    def document(self, mirror: Mirror, final: bool, interrupted: str | None = None) -> dict[str, Any]:
        document = copy.deepcopy(self.template)
        conclude(document, mirror.collector.comparator.records())
        document["mirror"] = mirror_section(mirror, self.listen, final)
        document["completed"] = final
        if interrupted:
            document["interrupted"] = interrupted
        finish(document, self.started)
        return document

    def write(self, mirror: Mirror, final: bool = False,
              interrupted: str | None = None) -> tuple[dict[str, Any], dict[str, Path]]:
        """In-process (the final report): the document and where its reports are."""
        self.reap(block=True)
        document = self.document(mirror, final, interrupted)
        paths = write_reports(document, self.out_dir, self.json_path)
        self.written += 1
        return document, paths

    def write_in_background(self, mirror: Mirror) -> bool:
        """A periodic report from a forked child; False when the last one is still being written."""
        if not self.reap(block=False) or not hasattr(os, "fork"):
            return False
        pid = os.fork()
        if pid == 0:  # the child: a snapshot of the state, rendered, then gone without running the loop
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which writes the final one
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                write_reports(self.document(mirror, final=False), self.out_dir, self.json_path)
                code = 0
            finally:
                os._exit(code)
        self.child = pid
        self.written += 1
        return True

    def reap(self, block: bool) -> bool:
        """True when no child is writing any more."""
        if self.child is None:
            return True
        try:
            pid, _ = os.waitpid(self.child, 0 if block else os.WNOHANG)
        except ChildProcessError:
            pid = self.child
        if pid == 0:
            return False
        self.child = None
        return True
