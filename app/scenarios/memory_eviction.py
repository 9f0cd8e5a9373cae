"""memory_eviction: fill past maxmemory under allkeys-lru; count evictions, survivors and memory over time.

Test plan, in order:
  1. Read (never change) what shapes eviction: maxmemory-policy/-samples/-eviction-tenacity and the
     lazyfree-* switches (section "config"), the allocator (INFO mem_allocator, section "environment").
  2. Stop with WARN, changing nothing, when server-wide changes are not allowed (a server the tool
     did not start, without --allow-server-changes), when such a server holds keys that are not the
     tool's (allkeys-lru would evict them; ctx.require_server_changes checks), or when the server
     already uses more than MAX_USED_BEFORE_FILL.
  3. The budget: the fill gets options.eviction_maxmemory (64 MiB) on top of what the server already
     holds, so maxmemory = base + 64.5 MiB (BUDGET_OFFSET_VALUES), where base = used_memory - mem_clients_normal, read after a
     warm-up that calls every command the fill uses once (WARM_UP_COMMANDS). Why: eviction counts
     depend on everything else in memory. Memory an earlier scenario left (a latency histogram per
     distinct command called: about 5.7 MB on Redis and 6.2 MB on Valkey after the other scenarios)
     made an absolute 64 MiB a different free budget on each side: 45 vs 44 keys kept in a full run,
     49 vs 49 alone. The warm-up puts the histograms of the fill's own commands into the base (else a
     lone run allocates them inside the budget), and client buffers stay out of the base (a 1 MiB query
     buffer left from an earlier write would otherwise be counted twice: once in the base, once in
     flight). CONFIG SET maxmemory-policy allkeys-lru and
     maxmemory-samples LRU_SAMPLES (64, the maximum) before the base is read, then maxmemory; all
     journalled by ctx.config_set and restored
     however the scenario ends. Why 64: at the default 5, Valkey 9.0 (its hashtable sampler reads a few
     buckets) evicted a just-read key in 3 of 6 measured runs and kept an older key over a newer one in
     4 of 6 (at 10: 1 and 2 of 10), so its survivors changed run to run; Redis 7.2 was exact in every
     run. At 64 Valkey was exact in 93 of 94 runs (one kept one older key) and never lost a hot key.
     The server's own default is recorded in "config".
  4. Fill: SET bigkey:0, bigkey:1, ... each config.EVICTION_VALUE_SIZE (1 MiB) of deterministic bytes,
     until config.EVICTION_FILL_FACTOR x the budget (2 x 64 MiB: 128 keys) has been written.
     - The LRU clock has one-second resolution, so keys written in the same second are equally old and
       allkeys-lru picks among them at random. The writes therefore come in generations of half of
       the budget (32 keys), and before each new generation the scenario waits until the server's LRU
       clock has ticked (OBJECT IDLETIME of the previous key reaches 1). Older generations are then
       strictly less recently used, and the survivors per generation are reproducible.
     - The first HOT_KEYS keys (bigkey:0-3) are read (GETRANGE 0 15, checked) after every write, so they
       are always the most recently used: allkeys-lru should never pick them.
     - After every write one memory sample (INFO memory + stats): keys written, used_memory,
       used_memory_dataset, lazyfree_pending_objects, evictions so far.
  5. Wait until lazyfree_pending_objects is 0 (Valkey 9 evicts and deletes lazily by default), then
     read used_memory and evicted_keys once more.
  6. SCAN the bigkey:* keys: keys_after, surviving indices as ranges, survivors per generation, hot keys.
  7. Verdict: FAIL when nothing was evicted, a write failed other than with OOM, or a hot key read back
     wrong bytes; WARN (with the numbers) when writes were refused with OOM, a hot key was evicted, a
     sample exceeded the bound, or written - kept != evicted. Recorded without a verdict: a generation
     written across an LRU tick (harmless: the next one still starts on a later tick) and "LRU
     inversions", keys kept although a newer key was evicted. Valkey's sampler makes these rare even at
     maxmemory-samples 64 (1 in 94 measured runs), so they are shown, not compared.
Spec metrics: keys_before = keys written (successful SETs); keys_after = bigkey keys found by SCAN after
the fill; evicted_count = rise of INFO stats evicted_keys over the fill; memory_samples = the samples.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from app import config
from app.config import ScenarioOptions
from app.scenarios.large_payloads import build_payload
from app.scenarios.support import ScenarioContext, StepSkipped, run_scenario

NAME = "memory_eviction"
# Run a second process of the baseline's binary beside it: approximate LRU can vary between processes.
NOISE_CONTROL = True

HOT_KEYS = 4                   # bigkey:0..3, read after every write
LRU_SAMPLES = 64               # maxmemory-samples during the fill (see the docstring); None: server default
GENERATION_FRACTION = 0.5      # keys per LRU generation: half of maxmemory, well under capacity
HOT_READ_BYTES = 16            # GETRANGE 0 15: a read that refreshes the LRU clock without 1 MiB traffic
TICK_POLL_S = 0.02
TICK_TIMEOUT_S = 3.0           # the LRU clock ticks every second; 3 s means the server is stuck
LAZYFREE_TIMEOUT_S = 5.0
# A server already using this much is not one to fill for a test (the budget comes on top of it).
MAX_USED_BEFORE_FILL = 512 * config.MIB
# The budget is 64 MiB plus half a value, never a whole number of values: 64 MiB / (1 MiB + 80 B), a
# libc Valkey's bigkey, is 63.995 keys, so a few kilobytes of buffers decided one key run to run
# (62 or 63 kept); half a value away from every boundary, both allocators' counts are stable.
BUDGET_OFFSET_VALUES = 0.5
KEY = object()  # stands for the warm-up key in WARM_UP_COMMANDS
# Every command the fill calls, once before the base is read: each allocates a latency histogram on
# its first call, which belongs in the base, not in the budget.
WARM_UP_COMMANDS = (("SET", KEY, "x"), ("GETRANGE", KEY, 0, HOT_READ_BYTES - 1), ("OBJECT", "IDLETIME", KEY),
                    ("MEMORY", "USAGE", KEY), ("INFO", "memory", "stats"), ("SCAN", 0, "COUNT", 10),
                    ("DEL", KEY), ("CONFIG", "GET", "maxmemory"))
# INFO runs after the server's pre-command eviction, so a sample exceeds maxmemory at most by INFO's own
# buffers (measured peaks: 66.4-66.7 MB under 67.1 MB); once evicting, it sits less than one value
# (with allocator rounding, 1.25 x value) under it.
SAMPLE_SLACK_BYTES = 256 * 1024
# Read-only record of every setting that shapes eviction and freeing (Valkey 9 frees lazily by default).
EVICTION_SETTINGS = ("maxmemory-policy", "maxmemory-samples", "maxmemory-eviction-tenacity",
                     "lazyfree-lazy-eviction", "lazyfree-lazy-expire", "lazyfree-lazy-server-del",
                     "lazyfree-lazy-user-del", "lazyfree-lazy-user-flush")
OOM_PREFIX = "OOM "

METRIC_KINDS = {
    "keys_before": "eviction",
    "keys_after": "eviction",
    # The limit set is used_memory at the start + the budget: it follows each server's own history.
    "eviction.maxmemory": "not_compared",
    "evicted_count": "eviction",
    "memory_samples": "not_compared",
    # Which keys of the partly evicted generation survive is a random pick among equally old keys.
    "survivors.indices": "not_compared",
    # LRU order per generation: exact on Redis; Valkey's sampler broke it in 1 of 94 runs (one key).
    "survivors.by generation*": "not_compared",
    "survivors.LRU inversions": "not_compared",
    "eviction.generations written across an LRU tick": "not_compared",
    "survivors.*": "eviction",
    "memory.MEMORY USAGE of a bigkey": "memory",
    "memory.lazyfree_pending_objects at end of fill": "memory",
    # used_memory readings move with the server's history (buffers, earlier scenarios): measured only.
    "memory.*": "not_compared",
    "environment.*": "not_compared",  # the allocator is in the report header, with its caveat
    "timings.LRU tick waits ms": "not_compared",
}


def run(client: redis.Redis, options: ScenarioOptions | None = None) -> dict[str, Any]:
    return run_scenario(NAME, client, options, plan)


@dataclass(frozen=True)
class FillPlan:
    """How much is written, in which generations, and which keys are kept hot."""

    maxmemory: int
    budget: int
    value_size: int
    writes: int
    generation: int
    hot: int

    @classmethod
    def from_options(cls, options: ScenarioOptions, used_before: int) -> "FillPlan":
        room, value = options.eviction_maxmemory, config.EVICTION_VALUE_SIZE
        budget = room + int(BUDGET_OFFSET_VALUES * value)
        generation = max(1, int(GENERATION_FRACTION * room / value))
        return cls(maxmemory=used_before + budget, budget=budget, value_size=value,
                   writes=math.ceil(config.EVICTION_FILL_FACTOR * room / value),
                   generation=generation, hot=min(HOT_KEYS, generation))

    def generations(self) -> list[range]:
        return [range(start, min(start + self.generation, self.writes))
                for start in range(0, self.writes, self.generation)]

    def sample_bound(self) -> int:
        return self.maxmemory + SAMPLE_SLACK_BYTES


@dataclass
class FillState:
    """What the fill observed; samples is the very list stored as metrics (partial data survives a crash)."""

    samples: list[dict[str, int]]
    written: int = 0
    oom_errors: int = 0
    other_errors: list[str] = field(default_factory=list)
    hot_first_miss: dict[int, int] = field(default_factory=dict)
    hot_wrong: list[str] = field(default_factory=list)
    straddled: list[str] = field(default_factory=list)
    tick_wait_s: float = 0.0


def plan(ctx: ScenarioContext) -> None:
    for name, value in (("keys_before", None), ("keys_after", None), ("evicted_count", None),
                        ("memory_samples", [])):
        ctx.metrics[name] = value  # the spec's keys exist even when the fill is skipped
    record_settings(ctx)
    check_safe_to_fill(ctx)
    ctx.config_set("maxmemory-policy", config.EVICTION_POLICY)
    if LRU_SAMPLES is not None:
        ctx.config_set("maxmemory-samples", LRU_SAMPLES)
    fill_plan = FillPlan.from_options(ctx.options, measure_base(ctx))
    ctx.config_set("maxmemory", fill_plan.maxmemory)
    describe_plan(ctx, fill_plan)
    evicted_before = int(info_fields(ctx, "stats")["evicted_keys"])
    started = time.perf_counter()
    state = fill(ctx, fill_plan, evicted_before)
    fill_s = time.perf_counter() - started - state.tick_wait_s
    ctx.put("timings", "fill ms without LRU tick waits", round(fill_s * 1000.0, 1))
    ctx.put("timings", "LRU tick waits ms", round(state.tick_wait_s * 1000.0, 1))
    settle_lazyfree(ctx)
    evicted = int(info_fields(ctx, "stats")["evicted_keys"]) - evicted_before
    survivors = surviving_indices(ctx)
    record_outcome(ctx, fill_plan, state, evicted, survivors)
    judge(ctx, fill_plan, state, evicted, survivors)


# --- 1-3: settings, safety, plan ------------------------------------------------------------------

def record_settings(ctx: ScenarioContext) -> None:
    """Read-only: the settings whose defaults differ and explain eviction/memory differences."""
    for name in EVICTION_SETTINGS:
        ctx.put("config", name, _config_value(ctx, name))
    ctx.put("environment", "mem_allocator", info_fields(ctx, "memory").get("mem_allocator", "unknown"))


def check_safe_to_fill(ctx: ScenarioContext) -> None:
    """StepSkipped (WARN, nothing changed) when filling would disturb the server or its data."""
    # Also refuses (on a server the tool did not start) when keys of others exist: allkeys-lru would evict them.
    ctx.require_server_changes("memory_eviction (lowers maxmemory and fills memory)")
    used = int(info_fields(ctx, "memory")["used_memory"])
    if used > MAX_USED_BEFORE_FILL:
        raise StepSkipped(f"memory_eviction skipped: used_memory is already {used} bytes, over the "
                          f"{MAX_USED_BEFORE_FILL} bytes a test fill may start from")


def measure_base(ctx: ScenarioContext) -> int:
    """What the server holds before the fill, its clients' buffers left out (see the docstring, step 3)."""
    warm = ctx.key("warm-up")
    for command in WARM_UP_COMMANDS:
        ctx.call(*(warm if arg is KEY else arg for arg in command))
    fields = info_fields(ctx, "memory")
    used, clients = int(fields["used_memory"]), int(fields.get("mem_clients_normal", 0))
    ctx.put("memory", "used_memory before fill", used)
    ctx.put("memory", "client buffers before fill", clients)
    return used - clients


def describe_plan(ctx: ScenarioContext, fill_plan: FillPlan) -> None:
    e = "eviction"
    ctx.put(e, "maxmemory", fill_plan.maxmemory)
    ctx.put(e, "budget bytes above the base", fill_plan.budget)
    ctx.put(e, "policy", config.EVICTION_POLICY)
    ctx.put(e, "maxmemory-samples", LRU_SAMPLES if LRU_SAMPLES is not None else "server default")
    ctx.put(e, "value bytes", fill_plan.value_size)
    ctx.put(e, "writes", fill_plan.writes)
    ctx.put(e, "generations", [_range_text(g) for g in fill_plan.generations()])
    ctx.put("survivors", "hot keys", _range_text(range(fill_plan.hot)))


# --- 4-5: the fill --------------------------------------------------------------------------------

def fill(ctx: ScenarioContext, fill_plan: FillPlan, evicted_before: int) -> FillState:
    """Write every bigkey generation by generation, reading the hot keys and sampling after each write."""
    payload = build_payload(fill_plan.value_size)
    state = FillState(samples=ctx.metrics["memory_samples"])
    for number, generation in enumerate(fill_plan.generations()):
        if number:
            state.tick_wait_s += wait_for_lru_tick(ctx, generation.start - 1)
        for index in generation:
            write_key(ctx, index, payload, state)
            read_hot_keys(ctx, fill_plan, index, payload, state)
            state.samples.append(take_sample(ctx, state.written, evicted_before))
        check_one_tick(ctx, fill_plan, generation, state)
    return state


def write_key(ctx: ScenarioContext, index: int, payload: bytes, state: FillState) -> None:
    reply = ctx.call("SET", ctx.key(f"bigkey:{index}"), payload)
    if reply == "OK":
        state.written += 1
        ctx.metrics["keys_before"] = state.written
    elif isinstance(reply, dict) and str(reply.get("error", "")).startswith(OOM_PREFIX):
        state.oom_errors += 1
    else:
        state.other_errors.append(f"SET bigkey:{index}: {reply!r:.120}")


def read_hot_keys(ctx: ScenarioContext, fill_plan: FillPlan, index: int, payload: bytes,
                  state: FillState) -> None:
    """Touch the hot keys (a real read, checked) so they are the most recently used keys."""
    for hot in range(min(fill_plan.hot, index + 1)):
        got = ctx.raw.execute_command("GETRANGE", ctx.key(f"bigkey:{hot}"), 0, HOT_READ_BYTES - 1)
        if got == b"":  # GETRANGE of a missing key: the hot key was evicted
            state.hot_first_miss.setdefault(hot, index)
        elif got != payload[:HOT_READ_BYTES] and len(state.hot_wrong) < 5:
            state.hot_wrong.append(f"bigkey:{hot} read {got!r:.60} after write {index}")


def take_sample(ctx: ScenarioContext, written: int, evicted_before: int) -> dict[str, int]:
    fields = info_fields(ctx, "memory", "stats")
    return {
        "keys_written": written,
        "used_memory": int(fields["used_memory"]),
        "used_memory_dataset": int(fields.get("used_memory_dataset", 0)),
        "lazyfree_pending_objects": int(fields.get("lazyfree_pending_objects", 0)),
        "evicted": int(fields["evicted_keys"]) - evicted_before,
    }


def wait_for_lru_tick(ctx: ScenarioContext, index: int) -> float:
    """Wait until the LRU clock has moved past the key just written; returns the seconds waited."""
    started = time.perf_counter()
    key = ctx.key(f"bigkey:{index}")
    while time.perf_counter() - started < TICK_TIMEOUT_S:
        idle = ctx.call("OBJECT", "IDLETIME", key)
        if not isinstance(idle, int) or idle >= 1:
            if not isinstance(idle, int):  # key gone or command refused: fall back to the clock
                ctx.warn(f"OBJECT IDLETIME bigkey:{index} replied {idle!r}; waited one second instead")
                time.sleep(1.05)
            return time.perf_counter() - started
        time.sleep(TICK_POLL_S)
    ctx.warn(f"the LRU clock did not tick within {TICK_TIMEOUT_S} s")
    return time.perf_counter() - started


def check_one_tick(ctx: ScenarioContext, fill_plan: FillPlan, generation: range, state: FillState) -> None:
    """Note a generation written across an LRU tick (two ages inside; its older part goes first)."""
    first = max(generation.start, fill_plan.hot)  # hot keys are re-read, their age says nothing
    if first >= generation.stop - 1:
        return
    idle_first = ctx.call("OBJECT", "IDLETIME", ctx.key(f"bigkey:{first}"))
    idle_last = ctx.call("OBJECT", "IDLETIME", ctx.key(f"bigkey:{generation.stop - 1}"))
    if isinstance(idle_first, int) and isinstance(idle_last, int) and idle_first != idle_last:
        state.straddled.append(_range_text(generation))


def settle_lazyfree(ctx: ScenarioContext) -> None:
    """Valkey frees evicted values in a background thread: wait until it is done, then read memory."""
    started = time.perf_counter()
    pending = int(info_fields(ctx, "memory").get("lazyfree_pending_objects", 0))
    ctx.put("memory", "lazyfree_pending_objects at end of fill", pending)
    while pending and time.perf_counter() - started < LAZYFREE_TIMEOUT_S:
        time.sleep(0.01)
        pending = int(info_fields(ctx, "memory").get("lazyfree_pending_objects", 0))
    if pending:
        ctx.warn(f"{pending} objects still waiting for lazy free after {LAZYFREE_TIMEOUT_S} s")
    ctx.put("timings", "lazyfree wait ms", round((time.perf_counter() - started) * 1000.0, 1))
    ctx.put("memory", "used_memory after lazyfree", int(info_fields(ctx, "memory")["used_memory"]))


# --- 6-7: outcome and verdict ---------------------------------------------------------------------

def surviving_indices(ctx: ScenarioContext) -> list[int]:
    """Indices of the bigkey:N keys that SCAN still finds."""
    marker = ctx.key("bigkey:").encode()
    return sorted(int(key[len(marker):]) for key in ctx.own_keys() if key.startswith(marker))


def record_outcome(ctx: ScenarioContext, fill_plan: FillPlan, state: FillState, evicted: int,
                   survivors: list[int]) -> None:
    ctx.metrics["keys_before"] = state.written
    ctx.metrics["keys_after"] = len(survivors)
    ctx.metrics["evicted_count"] = evicted
    e, m = "eviction", "memory"
    ctx.put(e, "OOM errors", state.oom_errors)
    ctx.put(e, "other write errors", len(state.other_errors))
    ctx.put(e, "first eviction after keys written", _first_eviction(state.samples))
    ctx.put(e, "generations written across an LRU tick", state.straddled)
    record_survivors(ctx, fill_plan, state, set(survivors))
    peak = max((sample["used_memory"] for sample in state.samples), default=None)
    ctx.put(m, "peak used_memory in samples", peak)
    if survivors:  # what one 1 MiB value costs, allocator rounding included (reproducible, unlike used_memory)
        ctx.put(m, "MEMORY USAGE of a bigkey", ctx.call("MEMORY", "USAGE", ctx.key(f"bigkey:{survivors[-1]}")))


def record_survivors(ctx: ScenarioContext, fill_plan: FillPlan, state: FillState, kept: set[int]) -> None:
    """The survivor pattern: all indices, the hot keys, and the count per LRU generation."""
    s = "survivors"
    ctx.put(s, "indices", _ranges(sorted(kept)))
    ctx.put(s, "hot keys survived", sum(1 for i in range(fill_plan.hot) if i in kept))
    ctx.put(s, "first hot-key miss after write", min(state.hot_first_miss.values(), default=None))
    by_generation: dict[str, int] = {}
    cold_generations = [[i for i in g if i >= fill_plan.hot] for g in fill_plan.generations()]
    for generation, cold in zip(fill_plan.generations(), cold_generations):
        hot_note = " without hot keys" if generation.start < fill_plan.hot else ""
        by_generation[f"bigkey:{_range_text(generation)}{hot_note}"] = sum(1 for i in cold if i in kept)
    ctx.put(s, "by generation", by_generation)
    ctx.put(s, "LRU inversions", lru_inversions(cold_generations, kept))


def lru_inversions(generations: list[list[int]], kept: set[int]) -> int:
    """Kept keys older than the newest generation that lost a key: 0 under exact (1 s) LRU."""
    lost_in = [n for n, keys in enumerate(generations) if any(i not in kept for i in keys)]
    if not lost_in:
        return 0
    return sum(1 for keys in generations[:lost_in[-1]] for i in keys if i in kept)


def judge(ctx: ScenarioContext, fill_plan: FillPlan, state: FillState, evicted: int,
          survivors: list[int]) -> None:
    ctx.check(not state.other_errors, "writes failed: " + "; ".join(state.other_errors[:3]))
    ctx.check(not state.hot_wrong, "hot keys read back wrong bytes: " + "; ".join(state.hot_wrong))
    written_bytes = state.written * fill_plan.value_size
    ctx.check(evicted > 0, f"no key was evicted although {written_bytes} bytes were written under a "
                           f"{fill_plan.maxmemory}-byte maxmemory with {config.EVICTION_POLICY}")
    if state.oom_errors:
        ctx.warn(f"{state.oom_errors} of {fill_plan.writes} writes refused with OOM despite {config.EVICTION_POLICY}")
    hot_kept = ctx.metrics["survivors"]["hot keys survived"]
    if hot_kept < fill_plan.hot:
        ctx.warn(f"{config.EVICTION_POLICY} evicted {fill_plan.hot - hot_kept} of {fill_plan.hot} hot keys "
                 "although they were read after every write")
    over = [s for s in state.samples if s["used_memory"] > fill_plan.sample_bound()]
    if over:
        ctx.warn(f"{len(over)} samples above the bound of {fill_plan.sample_bound()} bytes "
                 f"(maxmemory + {SAMPLE_SLACK_BYTES}), highest {max(s['used_memory'] for s in over)}")
    if state.written - len(survivors) != evicted:
        ctx.warn(f"evictions do not add up: {state.written} written - {len(survivors)} kept != "
                 f"{evicted} evicted (another client wrote or deleted meanwhile?)")
    ctx.notes.append(f"{state.written} x {fill_plan.value_size} bytes written under maxmemory "
                     f"{fill_plan.maxmemory}: {evicted} evicted, {len(survivors)} kept, "
                     f"hot keys kept {hot_kept}/{fill_plan.hot}")


# --- helpers ----------------------------------------------------------------------------------------

def info_fields(ctx: ScenarioContext, *sections: str) -> dict[str, str]:
    """INFO sections as name -> text value (the raw client gives the bulk text unparsed)."""
    reply = ctx.raw.execute_command("INFO", *sections)
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))
    return {name: value.strip() for name, value in pairs}


def _config_value(ctx: ScenarioContext, name: str) -> Any:
    reply = ctx.call("CONFIG", "GET", name)
    if isinstance(reply, dict) and "error" in reply:
        return reply
    if isinstance(reply, dict):
        return reply.get(name)
    return reply[1] if isinstance(reply, list) and len(reply) == 2 else None


def _first_eviction(samples: list[dict[str, int]]) -> int | None:
    return next((s["keys_written"] for s in samples if s["evicted"] > 0), None)


def _range_text(indices: range) -> str:
    return f"{indices.start}-{indices.stop - 1}" if len(indices) > 1 else str(indices.start)


def _ranges(indices: list[int]) -> str:
    """Sorted indices as compact ranges: [0,1,2,3,7,9,10] -> '0-3,7,9-10'."""
    parts: list[str] = []
    start = prev = None
    for index in indices:
        if start is not None and index == prev + 1:
            prev = index
            continue
        if start is not None:
            parts.append(_range_text(range(start, prev + 1)))
        start = prev = index
    if start is not None:
        parts.append(_range_text(range(start, prev + 1)))
    return ",".join(parts)
