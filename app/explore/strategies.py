"""Argument specs -> random calls, and random calls -> sequences: seeded, so a seed and a sequence number
always give the same sequence (for the same servers' COMMAND DOCS).

Each argument type of COMMAND DOCS is a strategy: key (a small pool, so commands meet keys of every type
and of the wrong type), string / integer / double / pattern / unix-time (pools of edge cases from
app/data/explore_generation.json, by command and argument name first), pure-token (its token), oneof (one
alternative), block (its parts in order); `optional` parts are included half the time, `multiple` ones
repeated. A count argument (numkeys, numfields) mostly says how many of the next argument follow.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.explore.docs import Arg, CommandSpec
from app.explore.exclusions import CONFIG_SET, Exclusions

GENERATION_PATH = Path(__file__).resolve().parents[1] / "data" / "explore_generation.json"
LONG, MEDIUM = b"@long", b"@medium"  # pool markers for the long and medium values
SHA1_OF = "@sha1:"
BLOCKING = "*blocking:"
BLOCKING_WEIGHT = "*BLOCKING"
DOCS_DIFFER_WEIGHT = "*DOCS DIFFER"
MAX_TRIES = 5  # a generated call that is forbidden is generated again, this many times at most
LONG_REPEAT = 20  # from this many repetitions on, long values are sent short (a 150-member SADD stays small)

# The groups COMMAND DOCS puts commands in (Redis 7.2, Valkey 9): what --families names.
FAMILY_GROUPS = frozenset({"string", "hash", "list", "set", "sorted-set", "stream", "bitmap", "hyperloglog", "geo",
                           "pubsub", "scripting", "transactions", "connection", "server", "generic", "cluster"})
# --families: the words a user may type for those groups.
FAMILY_ALIASES = {"strings": "string", "hashes": "hash", "lists": "list", "sets": "set", "zset": "sorted-set",
                  "zsets": "sorted-set", "sorted-sets": "sorted-set", "sortedset": "sorted-set",
                  "streams": "stream", "bitmaps": "bitmap", "hll": "hyperloglog", "scripts": "scripting",
                  "lua": "scripting", "tx": "transactions", "transaction": "transactions", "keys": "generic"}


@dataclass(frozen=True)
class Generation:
    """app/data/explore_generation.json, as bytes where values are concerned."""

    keys: tuple[bytes, ...]
    rare_keys: tuple[bytes, ...]
    rare_key_probability: float
    by_type: dict[str, tuple[bytes, ...]]
    by_name: dict[str, tuple[bytes, ...]]
    by_command: dict[str, tuple[bytes, ...]]
    long_value: bytes
    medium_value: bytes
    multiple_counts: tuple[int, ...]
    optional_probability: float
    one_sided_probability: float
    plain_probability: float
    plain_optional_probability: float
    ordinary: dict[str, dict[str, bytes]]  # "by_type" / "by_name" / "by_command" -> name -> value
    lower_case_probability: float
    extra_probability: float
    drop_probability: float
    linked_names: frozenset[str]
    linked_probability: float
    seed_commands: tuple[str, ...]
    seeds: int
    body: int
    one_sided_last_probability: float
    weights: dict[str, float]
    stateless: frozenset[str]
    same_shape_is_noise: dict[str, str]  # command -> why its replies differ between any two processes


def _pool(values: Iterable[str]) -> tuple[bytes, ...]:
    return tuple(v.encode("latin-1") for v in values)


@lru_cache(maxsize=2)
def load_generation(path: str = str(GENERATION_PATH)) -> Generation:
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    seq = doc["sequence"]
    return Generation(
        keys=_pool(doc["keys"]), rare_keys=_pool(doc["rare_keys"]["keys"]),
        rare_key_probability=float(doc["rare_keys"]["probability"]),
        by_type={k: _pool(v) for k, v in doc["by_type"].items()},
        by_name={k: _pool(v) for k, v in doc["by_name"].items()},
        by_command={k.upper() if not k.startswith(BLOCKING) else k: _pool(v) for k, v in doc["by_command"].items()},
        long_value=b"x" * int(doc["long_value_bytes"]), medium_value=b"y" * int(doc["medium_value_bytes"]),
        multiple_counts=tuple(int(n) for n in doc["multiple"]["counts"]),
        optional_probability=float(doc["optional_probability"]),
        one_sided_probability=float(doc["one_sided_probability"]),
        plain_probability=float(doc["plain_call_probability"]),
        plain_optional_probability=float(doc["plain_optional_probability"]),
        ordinary={table: {(k.upper() if table == "by_command" and not k.startswith(BLOCKING) else k): v.encode("latin-1")
                          for k, v in doc["ordinary"][table].items()} for table in ("by_type", "by_name", "by_command")},
        lower_case_probability=float(doc["token_lower_case_probability"]),
        extra_probability=float(doc["extra_argument_probability"]),
        drop_probability=float(doc["dropped_argument_probability"]),
        linked_names=frozenset(doc["count_linked_names"]), linked_probability=float(doc["count_linked_probability"]),
        seed_commands=tuple(seq["seed_commands"]), seeds=int(seq["seeds"]), body=int(seq["body"]),
        one_sided_last_probability=float(seq["one_sided_last_probability"]),
        weights={k.upper(): float(v) for k, v in doc["weights"].items() if k != "about"},
        stateless=frozenset(n.upper() for n in doc["judging"]["stateless"]),
        same_shape_is_noise={n.upper(): why for n, why in doc["judging"]["same_shape_is_noise"].items()})


def family_of(name: str) -> str:
    key = name.strip().lower()
    return FAMILY_ALIASES.get(key, key)


def sequence_rng(seed: int, index: int) -> random.Random:
    """The generator of sequence number `index` of a run with `seed`: independent of every other
    sequence, so a longer run replays the shorter run's sequences exactly and then goes on."""
    return random.Random(f"rvc-explore:{seed}:{index}")


class CallGenerator:
    """Random calls of the commands in `specs`, and sequences of them."""

    def __init__(self, specs: dict[str, CommandSpec], generation: Generation, exclusions: Exclusions,
                 servers: Sequence[str], families: Iterable[str] | None = None) -> None:
        self.specs, self.gen, self.exclusions = specs, generation, exclusions
        wanted = {family_of(f) for f in families} if families else None
        usable = sorted(name for name, spec in specs.items() if exclusions.excluded(name) is None
                        and (wanted is None or spec.group in wanted))
        everywhere = frozenset(servers)
        self.body_names = [n for n in usable if specs[n].known_by >= everywhere]
        # A command only some servers know changes state on those only: it goes last, where nothing follows.
        self.one_sided = [n for n in usable if not specs[n].known_by >= everywhere]
        self.seed_names = [n for n in generation.seed_commands if n in specs and exclusions.excluded(n) is None]
        blocking = generation.weights.get(BLOCKING_WEIGHT, 1.0)
        differ = generation.weights.get(DOCS_DIFFER_WEIGHT, 1.0)
        weights = [generation.weights.get(n, blocking if "blocking" in specs[n].flags else 1.0)
                   * (differ if docs_differ(specs[n]) else 1.0) for n in self.body_names]
        self._cumulative = [sum(weights[:i + 1]) for i in range(len(weights))]
        scripts = generation.by_name.get("script", ())
        self._sha1 = [hashlib.sha1(s).hexdigest().encode() for s in scripts]
        self.discarded = 0  # generated calls thrown away as forbidden

    @property
    def generated_names(self) -> list[str]:
        """Every command a sequence can contain."""
        return sorted(set(self.body_names) | set(self.one_sided) | set(self.seed_names))

    # --- sequences ------------------------------------------------------------------------------------

    def sequence(self, rng: random.Random) -> list[tuple[bytes, ...]]:
        """Seeding calls (keys of several types), a body of commands by weight, maybe a one-sided last one."""
        names = [rng.choice(self.seed_names) for _ in range(self.gen.seeds)] if self.seed_names else []
        if self.body_names:
            names += rng.choices(self.body_names, cum_weights=self._cumulative, k=self.gen.body)
        if self.one_sided and rng.random() < self.gen.one_sided_last_probability:
            names.append(rng.choice(self.one_sided))
        calls = []
        for name in names:
            call = self.call(self.specs[name], rng)
            if call is not None:
                calls.append(call)
        return calls

    def call(self, spec: CommandSpec, rng: random.Random) -> tuple[bytes, ...] | None:
        """One random call of a command (now and then a plain one: ordinary values, few options); None
        when every try was forbidden."""
        for _ in range(MAX_TRIES):
            out: list[bytes] = list(spec.words)
            plain = rng.random() < self.gen.plain_probability
            _Builder(self, spec, rng, out, plain).arguments(spec.args, 0)
            if not plain:
                self._mutate(out, len(spec.words), rng)
            if self.exclusions.forbidden_reason(out) is None:
                return tuple(out)
            self.discarded += 1
        return None

    def _mutate(self, out: list[bytes], fixed: int, rng: random.Random) -> None:
        """Now and then one argument too many or too few: arity and parser edges."""
        if rng.random() < self.gen.extra_probability:
            extra = rng.choice(self.gen.by_type["string"])
            out.insert(rng.randint(fixed, len(out)), b"x" if extra.startswith(b"@") else extra)
        if len(out) > fixed and rng.random() < self.gen.drop_probability:
            del out[rng.randint(fixed, len(out) - 1)]

    # --- values -----------------------------------------------------------------------------------------

    def pool(self, spec: CommandSpec, arg: Arg) -> tuple[bytes, ...]:
        by_command = self.gen.by_command
        pool = by_command.get(f"{spec.name}:{arg.name}".upper())
        if pool is None and "blocking" in spec.flags:
            pool = by_command.get(BLOCKING + arg.name)
        if pool is None:
            pool = self.gen.by_name.get(arg.name)
        if pool is None:
            pool = self.gen.by_type.get(arg.type, self.gen.by_type["string"])
        return pool

    def ordinary(self, spec: CommandSpec, arg: Arg) -> bytes:
        """The argument's ordinary value (a plain call's): looked up as pool() does, else its pool's first."""
        table = self.gen.ordinary
        value = table["by_command"].get(f"{spec.name}:{arg.name}".upper())
        if value is None and "blocking" in spec.flags:
            value = table["by_command"].get(BLOCKING + arg.name)
        if value is None:
            value = table["by_name"].get(arg.name)
        if value is None and self.pool(spec, arg) is self.gen.by_type.get(arg.type):
            value = table["by_type"].get(arg.type)
        if value is None:
            pool = self.pool(spec, arg)
            value = pool[0] if pool else b""
        return self.resolve(value, short=True)

    def resolve(self, value: bytes, short: bool) -> bytes:
        if value == LONG:
            return b"x" if short else self.gen.long_value
        if value == MEDIUM:
            return b"y" if short else self.gen.medium_value
        if value.startswith(SHA1_OF.encode()):
            index = int(value[len(SHA1_OF):])
            return self._sha1[index] if index < len(self._sha1) else b"0" * 40
        return value


class _Builder:
    """The arguments of one call, built depth first."""

    def __init__(self, owner: CallGenerator, spec: CommandSpec, rng: random.Random, out: list[bytes],
                 plain: bool = False) -> None:
        self.owner, self.spec, self.rng, self.out, self.plain = owner, spec, rng, out, plain
        self.gen = owner.gen
        self.short = False
        self.parameter: bytes | None = None  # CONFIG SET: the parameter whose value comes next

    def count(self) -> int:
        return 1 if self.plain else self.rng.choice(self.gen.multiple_counts)

    def arguments(self, args: Sequence[Arg], depth: int) -> None:
        rng = self.rng
        # Deeper optional parts are rarer: a call with every option of every block is rarely valid.
        chance = (self.gen.plain_optional_probability if self.plain else self.gen.optional_probability) / (1 + depth)
        # An option only one server documents is where a difference is likeliest: it comes more often.
        included = [not a.optional or rng.random() < (self.gen.one_sided_probability if a.one_sided else chance)
                    for a in args]
        counts = [self.count() if a.multiple else 1 for a in args]
        # Required repeated parts side by side (XREAD's keys and ids) come in equal numbers.
        shared = next((counts[i] for i, a in enumerate(args) if a.multiple and not a.optional), None)
        for i, a in enumerate(args):
            if a.multiple and not a.optional and shared is not None:
                counts[i] = shared
        for i, a in enumerate(args):
            if not included[i]:
                continue
            if (a.name in self.gen.linked_names and i + 1 < len(args) and args[i + 1].multiple
                    and rng.random() < self.gen.linked_probability):
                if a.token:
                    self.out.append(self.token(a.token))
                self.out.append(str(counts[i + 1] if included[i + 1] else 0).encode())
                continue
            self.emit(a, counts[i], depth)

    def token(self, token: bytes) -> bytes:
        return token.lower() if self.rng.random() < self.gen.lower_case_probability else token

    def emit(self, a: Arg, n: int, depth: int) -> None:
        if a.type == "pure-token":
            for _ in range(n):
                self.out.append(self.token(a.token) if a.token is not None else b"")
            return
        if a.token is not None and not a.multiple_token:
            self.out.append(self.token(a.token))
        was_short = self.short
        self.short = self.short or n >= LONG_REPEAT
        for _ in range(n):
            if a.token is not None and a.multiple_token:
                self.out.append(self.token(a.token))
            self.one(a, depth)
        self.short = was_short

    def one(self, a: Arg, depth: int) -> None:
        if a.type == "oneof":
            if a.children:
                one_sided = [c for c in a.children if c.one_sided]
                if one_sided and self.rng.random() < self.gen.one_sided_probability / 2:
                    child = self.rng.choice(one_sided)
                else:
                    child = self.rng.choice(a.children)
                self.emit(child, self.count() if child.multiple else 1, depth + 1)
            return
        if a.type == "block":
            self.arguments(a.children, depth + 1)
            return
        if a.type == "key":
            self.out.append(self.key())
            return
        self.out.append(self.value(a))

    def key(self) -> bytes:
        if self.gen.rare_keys and self.rng.random() < self.gen.rare_key_probability:
            return self.rng.choice(self.gen.rare_keys)
        return self.rng.choice(self.gen.keys)

    def value(self, a: Arg) -> bytes:
        if self.spec.name == CONFIG_SET:
            allowed = self.owner.exclusions.config_allowed
            if a.name == "parameter":
                self.parameter = self.rng.choice(sorted(allowed)).encode()
                return self.parameter
            if a.name == "value" and self.parameter is not None:
                values = allowed[self.parameter.decode()]
                return values[0] if self.plain else self.rng.choice(values)
        if self.plain:
            return self.owner.ordinary(self.spec, a)
        pool = self.owner.pool(self.spec, a)
        return self.owner.resolve(self.rng.choice(pool), self.short) if pool else b""


def docs_differ(spec: CommandSpec) -> bool:
    """Whether the servers that know the command describe its arguments differently."""
    return len(set(spec.variants.values())) > 1


def describe(spec: CommandSpec) -> dict[str, Any]:
    """A spec as JSON-safe data (for the report's coverage tables and for tests)."""
    return {"name": spec.name, "group": spec.group, "known_by": sorted(spec.known_by),
            "flags": sorted(spec.flags), "arguments": len(spec.args)}
