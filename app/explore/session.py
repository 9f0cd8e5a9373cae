"""One exploration put together: the servers' connections and docs, the generator, the judge, the loop.
What ./rvc explore and bench/explore.py share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.explore.docs import CommandSpec, build_specs
from app.explore.exclusions import Exclusions, load_exclusions
from app.explore.exploration import Exploration, Settings
from app.explore.judge import Judge
from app.explore.runner import Servers
from app.explore.strategies import CallGenerator, Generation, load_generation
from app.stream_compare import StreamComparator
from app.targets import Target

ACL_USER_POOL = "ACL SETUSER:USERNAME"  # the users sequences create, deleted after them


@dataclass
class Session:
    targets: list[Target]          # baseline, control, candidate
    servers: Servers
    specs: dict[str, CommandSpec]
    generation: Generation
    exclusions: Exclusions
    generator: CallGenerator
    judge: Judge
    exploration: Exploration

    def close(self) -> list[str]:
        """Disconnect; what could not be put back on the servers (see Servers.close)."""
        return self.servers.close()


def open_session(targets: Sequence[Target], identities: dict[str, dict[str, Any]], settings: Settings, *,
                 families: Sequence[str] | None = None, timeout_s: float = 1.0) -> Session:
    """Connect to the three servers (the tool's own), read their COMMAND DOCS, and set up the loop."""
    baseline, control, candidate = targets
    generation, exclusions = load_generation(), load_exclusions()
    servers = Servers(list(targets), timeout_s, generation.by_command.get(ACL_USER_POOL, ()),
                      sorted(exclusions.config_allowed))
    try:
        specs = build_specs({t.name: servers.docs[t.name] for t in (baseline, candidate)})
        generator = CallGenerator(specs, generation, exclusions, [baseline.name, candidate.name], families)
        ident = identities[candidate.name]
        versions = {candidate.name: ident["version"] if ident["product"] == "valkey" else None}
        comparator = StreamComparator(baseline.name, [candidate.name], [control.name], source="explore",
                                      candidate_versions=versions)
        judge = Judge(comparator, specs, generation.stateless, versions, frozenset(generation.same_shape_is_noise))
    except BaseException:
        servers.close()
        raise
    return Session(list(targets), servers, specs, generation, exclusions, generator, judge,
                   Exploration(servers, generator, judge, settings))
