"""What a run owes each server it did not start: a journal of what it changes (app/journal.py), repairs of
earlier runs that were killed, and at the end one sweep for its own keys and an honest count of the
scripts it leaves in the server's script cache. Servers the tool started need none of this: they are
stopped with the run.
"""

from __future__ import annotations

from typing import Any

import redis

from app.journal import RunActive, RunJournal, delete_keys
from app.scenarios.support import glob_escape
from app.targets import Target

__all__ = ["RunActive", "Safekeeping"]


class Safekeeping:
    def __init__(self, targets: list[Target], clients: dict[str, redis.Redis], run_id: str, prefix: str) -> None:
        self.prefix = prefix
        self.foreign = [t for t in targets if not t.owned]
        self.clients = clients
        self.journals: dict[str, RunJournal] = {
            t.name: RunJournal(clients[t.name], run_id, prefix, t.url) for t in self.foreign}
        self.scripts: dict[str, set[str]] = {t.name: set() for t in self.foreign}

    def open(self) -> list[str]:
        """Repair what killed runs left, refuse (RunActive) when another run is alive, then journal this one."""
        repaired = []
        for name, journal in self.journals.items():
            repaired.extend(f"{name}: {line}" for line in journal.open())
        return repaired

    def options_for(self, target: Target) -> dict[str, Any]:
        """The ScenarioOptions fields for a target: its journal and the set its scripts are noted in."""
        if target.name not in self.journals:
            return {}
        return {"journal": self.journals[target.name], "scripts": self.scripts[target.name]}

    def close(self) -> list[str]:
        """Sweep, count, close: the warnings the report carries (keys or scripts left, and why)."""
        notes = []
        for target in self.foreign:
            client, journal = self.clients[target.name], self.journals[target.name]
            try:
                left = delete_keys(journal.client, glob_escape(self.prefix) + "*", [journal.db])
                if left:
                    notes.append(f"{target.name}: {left} keys of this run were found by the final sweep and deleted")
                cached = self._cached_scripts(client, self.scripts[target.name])
                if cached:
                    notes.append(f"{target.name}: {cached} scripts this run evaluated stay in the server's script "
                                 "cache (no command removes one script without SCRIPT FLUSH, which would remove "
                                 "the application's too); they take memory only until the next SCRIPT FLUSH or restart")
                if journal.server_copy_failed:
                    notes.append(f"{target.name}: {journal.server_copy_failed}")
                # Every scenario keeps the entry's CONFIG to what it could not put back.
                journal.close(restored=not journal.entry.config)
            except redis.RedisError as exc:
                notes.append(f"{target.name}: the final cleanup failed ({exc}); keys with the prefix {self.prefix} "
                             "or CONFIG changes may be left: the next run repairs them, or ./rvc --cleanup now")
                journal.close(restored=False)
        return notes

    @staticmethod
    def _cached_scripts(client: redis.Redis, shas: set[str]) -> int:
        if not shas:
            return 0
        try:
            return sum(int(x) for x in client.execute_command("SCRIPT", "EXISTS", *sorted(shas)))
        except redis.ResponseError:
            return 0  # SCRIPT refused to this user: then it could not EVAL either
