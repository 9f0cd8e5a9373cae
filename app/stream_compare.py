"""Comparing a stream of live replies: one command sent to the baseline, its noise control(s) and the
candidates, its replies judged, and the judgements aggregated into the same records as the scenarios'.

Used by everything that compares commands rather than scenario metrics: replay of a capture, the mirror
proxy, the explorer. Like Diffy: the baseline and its control run the same binary, so a reply on which
they disagree is noise for that call (random members, cursors, TIME, ids); a reply on which they agree and
the candidate does not is a difference. Differences are aggregated by signature (command, kind, the shape
of both replies, the catalogue entry that documents the call), each signature keeping a count and the
first examples only, so memory stays bounded however long the stream.

records() gives standard difference records (app/compare.py's shape: scenario, path, kind, baseline,
target, values...) plus `command`, `count` and `examples`, so the catalogue, the findings and every
renderer treat them like the scenarios' records.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path
from typing import Any

import redis

from app.catalogue import applies_to, load_catalogue
from app.scenarios.support import error_text

ORDER_PATH = Path(__file__).parent / "data" / "reply_order.json"
IDENTICAL, DIFFERENT, NOISE, SKIPPED = "identical", "different", "noise", "skipped"
MAX_EXAMPLES = 3
MAX_SIGNATURES = 2000     # beyond this, new signatures are only counted (memory stays bounded for hours)
# Real servers know about 400 command and subcommand names; beyond this many, calls of names never seen
# (an application's typos, random DEBUG or CONFIG words) are counted under OTHER_COMMANDS.
MAX_COMMAND_NAMES = 1024
OTHER_COMMANDS = "(other commands)"
MAX_ARG_CHARS = 80        # an example's arguments are shortened to this
MAX_VALUE_CHARS = 400     # and each example reply
UNAVAILABLE = ("ERR unknown command", "ERR unknown subcommand")


# --- replies as comparable values ------------------------------------------------------------------

class ReplyError(str):
    """An error reply's text (hiredis gives exceptions, redis-py ResponseError: both become this)."""


def plain(reply: Any) -> Any:
    """A reply as a JSON-safe value: bytes as text (or b64: for binary), errors as {"error": text}."""
    if isinstance(reply, redis.ResponseError):
        return {"error": error_text(reply)}  # redis-py strips the error code; the server sent it
    if isinstance(reply, BaseException) or isinstance(reply, ReplyError):
        return {"error": str(reply)}
    if isinstance(reply, (bytes, bytearray, memoryview)):
        raw = bytes(reply)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "b64:" + base64.b64encode(raw).decode()
    if isinstance(reply, float):
        return reply if reply == reply and reply not in (float("inf"), float("-inf")) else repr(reply)
    if isinstance(reply, dict):
        keys = [plain(k) for k in reply]
        return {k if isinstance(k, str) else json.dumps(k, sort_keys=True): plain(v)
                for k, v in zip(keys, reply.values())}
    if isinstance(reply, (set, frozenset)):
        return sorted((plain(v) for v in reply), key=repr)
    if isinstance(reply, (list, tuple)):
        return [plain(v) for v in reply]
    return reply


@lru_cache(maxsize=1)
def reply_order() -> dict[str, str]:
    """Command -> how its reply is ordered when the order is unspecified (set, pairs, scan...)."""
    document = json.loads(ORDER_PATH.read_text(encoding="utf-8"))
    return {name.upper(): how for how, names in document["unordered"].items() for name in names}


def canonical(command: str, reply: Any) -> Any:
    """The reply in a form where an unspecified order does not count: SMEMBERS sorted, HGETALL by pair.

    `command` is command_name()'s form ("SMEMBERS", "CONFIG GET")."""
    order = reply_order()
    how = order.get(command) or order.get(command.split(" ")[0])
    if how is None or _error(reply) is not None or not isinstance(reply, list):
        return reply
    if how == "set":
        return sorted(reply, key=repr)
    if how == "pairs":
        return _by_pair(reply)
    if how in ("scan", "scan_pairs") and len(reply) == 2 and isinstance(reply[1], list):
        return [reply[0], sorted(reply[1], key=repr) if how == "scan" else _by_pair(reply[1])]
    return reply


def _by_pair(items: list[Any]) -> list[Any]:
    if len(items) % 2:
        return items
    return sorted((items[i:i + 2] for i in range(0, len(items), 2)), key=repr)


def _error(value: Any) -> str | None:
    return value["error"] if isinstance(value, dict) and set(value) == {"error"} else None


def shape(value: Any) -> str:
    """What kind of reply this is, without its content: the part of a signature that is about replies."""
    error = _error(value)
    if error is not None:
        return "error:" + _VARYING.sub("…", error)[:80]
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "simple:OK" if value == "OK" else "string"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        inner = sorted({shape(v).split(":")[0] for v in value})
        return "array[" + ",".join(inner) + "]"
    return type(value).__name__


# What varies inside one error text (quoted arguments, script SHA1s, numbers): not part of its shape.
_VARYING = re.compile(r"'[^']*'|\"[^\"]*\"|\b[0-9a-f]{40}\b|\d+")


def kind_of(baseline: Any, candidate: Any) -> str:
    """The comparison's kinds, for a single reply: availability, error_text or reply."""
    errors = [_error(v) for v in (baseline, candidate)]
    if any(e is not None and e.startswith(UNAVAILABLE) for e in errors):
        return "availability"
    if all(e is not None for e in errors):
        return "error_text"
    return "reply"


def command_name(args: Sequence[bytes]) -> str:
    """'SET', or 'CLIENT LIST' for commands with subcommands (as the catalogue's `commands` name them)."""
    name = args[0].decode("latin-1").upper() if args else ""
    if len(args) > 1 and name in _CONTAINERS:
        return f"{name} {args[1].decode('latin-1').upper()}"
    return name


_CONTAINERS = frozenset({"ACL", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "DEBUG", "FUNCTION", "LATENCY",
                         "MEMORY", "MODULE", "OBJECT", "PUBSUB", "SCRIPT", "SLOWLOG", "XGROUP", "XINFO",
                         "COMMANDLOG"})


class CommandNames:
    """command_name(args), remembered per name and, for commands with subcommands, per subcommand: a
    stream asks it for every call. Bounded: beyond `limit` of each, new ones are computed each time."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._names: dict[bytes, str | None] = {}  # None: a container, named with its subcommand
        self._sub_names: dict[tuple[bytes, bytes], str] = {}

    def of(self, args: Sequence[bytes]) -> str:
        head = args[0]
        name = self._names.get(head, "")
        if name == "":
            name = None if " " in command_name((head, b"x")) else command_name((head,))
            if len(self._names) < self.limit:
                self._names[head] = name
        if name is not None:
            return name
        if len(args) < 2:
            return command_name(args)
        key = (head, args[1])
        full = self._sub_names.get(key)
        if full is None:
            full = command_name(args)
            if len(self._sub_names) < self.limit:
                self._sub_names[key] = full
        return full


def args_text(args: Sequence[bytes], limit: int = MAX_ARG_CHARS) -> str:
    """Arguments as one printable line, shortened."""
    text = " ".join(_printable(a) for a in args)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _printable(arg: bytes) -> str:
    text = arg.decode("latin-1")
    return text if text.isprintable() and text.isascii() else repr(arg)[2:-1]


def _short(value: Any) -> Any:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return value if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 1] + "…"


# --- the catalogue, for calls -----------------------------------------------------------------------

class CallRules:
    """Catalogue entries with their `calls` rules indexed by command name: a stream with many differences
    (a candidate out of sync) looks each one up, and most commands have no rule at all."""

    def __init__(self, entries: Iterable[dict[str, Any]]) -> None:
        self.entries = list(entries)
        self._by_command: dict[str, list[tuple[int, dict[str, Any], dict[str, Any]]]] = {}
        order = 0
        for entry in self.entries:
            for rule in entry.get("calls", []):
                self._by_command.setdefault(rule["command"].upper(), []).append((order, rule, entry))
                order += 1

    def rules_for(self, command: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(rule, entry) naming this command or, for "CLIENT LIST", its container; in catalogue order."""
        found = list(self._by_command.get(command, ()))
        if " " in command:
            found += self._by_command.get(command.split(" ", 1)[0], ())
            found.sort(key=lambda item: item[0])
        return [(rule, entry) for _, rule, entry in found]


def find_call_entry(command: str, args: Sequence[bytes], baseline: Any, candidate: Any,
                    entries: Iterable[dict[str, Any]] | CallRules) -> dict[str, Any] | None:
    """The catalogue entry that documents this call's difference, or None.

    An entry's `calls` rules match a command and a glob over its arguments (and optionally over either
    reply's text); failing those, an entry documents a command the baseline does not know when it names
    that command in its `commands` (HSETEX unknown to Redis 7.2: VK90-HASH-FIELD-EXPIRATION)."""
    rules = entries if isinstance(entries, CallRules) else CallRules(entries)
    candidates = rules.rules_for(command)
    if candidates:
        text = args_text(args, limit=10_000).upper()
        replies = {"baseline": json.dumps(baseline, default=str), "candidate": json.dumps(candidate, default=str)}
        for rule, entry in candidates:
            if not fnmatchcase(text, rule.get("args", "*").upper()):
                continue
            if all(fnmatchcase(replies[side], rule[side]) for side in ("baseline", "candidate") if side in rule):
                return entry
    if kind_of(baseline, candidate) == "availability":
        unknown_here = (_error(baseline) or "").startswith(UNAVAILABLE)
        names = {command, command.split(" ")[0]} if unknown_here else set()
        return next((e for e in rules.entries if names & set(e.get("commands", []))), None)
    return None


def usable_entries(candidate_version: str | None) -> list[dict[str, Any]]:
    """The entries that apply to a Valkey version (none when the candidate is not Valkey)."""
    if candidate_version is None:
        return []
    return [e for e in load_catalogue() if applies_to(e, candidate_version)]


# --- aggregation --------------------------------------------------------------------------------------

@dataclass
class CommandStats:
    """Per command name: what happened to its calls."""

    calls: int = 0
    identical: int = 0
    different: int = 0
    noise: int = 0
    skipped: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"calls": self.calls, IDENTICAL: self.identical, DIFFERENT: self.different,
                               NOISE: self.noise, SKIPPED: self.skipped}
        if self.skip_reasons:
            out["skip_reasons"] = dict(self.skip_reasons)
        return out


@dataclass
class Signature:
    """One kind of difference of one command on one candidate, with its count and first examples."""

    command: str
    kind: str
    target: str
    shapes: tuple[str, str]
    entry_id: str | None
    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Call:
    """One command as sent: its arguments and where it came from (a capture line, a connection)."""

    args: tuple[bytes, ...]
    line: int | None = None
    session: str = ""
    note: str = ""  # e.g. "bounded: BLPOP 0 sent with a 1 s timeout"


class StreamComparator:
    """Judges each command's replies on every target and aggregates the judgements."""

    def __init__(self, baseline: str, candidates: Sequence[str], controls: Sequence[str] = (), *,
                 source: str = "replay", candidate_versions: dict[str, str | None] | None = None,
                 max_examples: int = MAX_EXAMPLES, max_signatures: int = MAX_SIGNATURES,
                 max_command_names: int = MAX_COMMAND_NAMES) -> None:
        self.baseline, self.candidates, self.controls = baseline, list(candidates), list(controls)
        self.source = source
        self.max_examples, self.max_signatures = max_examples, max_signatures
        self.max_command_names = max_command_names
        versions = candidate_versions or {}
        self._entries = {c: CallRules(usable_entries(versions.get(c))) for c in self.candidates}
        self.stats: dict[str, CommandStats] = {}
        self.signatures: dict[tuple[Any, ...], Signature] = {}
        self.noise_signatures: dict[tuple[str, str, str], int] = {}
        self.uncounted_signatures = 0  # differences beyond max_signatures: counted, not kept

    def _stats(self, command: str) -> CommandStats:
        stats = self.stats.get(command)
        if stats is None:
            name = self.counted_name(command)
            stats = self.stats.get(name) or self.stats.setdefault(name, CommandStats())
        return stats

    def counted_name(self, command: str) -> str:
        """The name a command's calls are counted under: its own, or OTHER_COMMANDS beyond the cap."""
        return command if command in self.stats or len(self.stats) < self.max_command_names else OTHER_COMMANDS

    def count_identical(self, command: str) -> None:
        """A call whose replies are the same everywhere, counted without the comparator's work (the
        bulk of any stream: callers check sameness in the cheapest way their replies allow)."""
        stats = self.stats.get(command) or self._stats(command)
        stats.calls += 1
        stats.identical += 1

    def skip(self, call: Call, reason: str) -> None:
        self.skip_command(command_name(call.args), reason)

    def skip_command(self, command: str, reason: str) -> None:
        stats = self._stats(command)
        stats.calls += 1
        stats.skipped += 1
        stats.skip_reasons[reason] = stats.skip_reasons.get(reason, 0) + 1

    def add(self, call: Call, replies: dict[str, Any]) -> dict[str, str]:
        """Judge one call (replies: target name -> raw reply) and return candidate -> outcome."""
        command = command_name(call.args)
        stats = self._stats(command)
        stats.calls += 1
        base = canonical(command, plain(replies[self.baseline]))
        controls = [canonical(command, plain(replies[c])) for c in self.controls if c in replies]
        noisy = any(value != base for value in controls)
        # Noise explains content that varies, not another kind of reply: an error where both processes
        # of the baseline's binary answered an array is a difference however their arrays varied.
        noisy_shapes = {shape(base), *map(shape, controls)} if noisy else set()
        if noisy:
            key = (self.counted_name(command), shape(base))
            self.noise_signatures[key] = self.noise_signatures.get(key, 0) + 1
        outcomes: dict[str, str] = {}
        for cand in self.candidates:
            if cand not in replies:
                continue
            value = canonical(command, plain(replies[cand]))
            if value == base:
                outcomes[cand] = IDENTICAL
            elif shape(value) in noisy_shapes or self._varies(command, base, value):
                outcomes[cand] = NOISE
            else:
                outcomes[cand] = DIFFERENT
                self._record(call, command, cand, base, value)
        worst = (DIFFERENT if DIFFERENT in outcomes.values() else NOISE if NOISE in outcomes.values()
                 else IDENTICAL)
        setattr(stats, worst, getattr(stats, worst) + 1)
        return outcomes

    def _varies(self, command: str, base: Any, value: Any) -> bool:
        """A reply that differs from the baseline's in content only (same shape), for a command whose
        replies the control has already seen vary: one control can agree with the baseline by chance
        (SRANDMEMBER of four members: one call in four), so the command's history decides, as in Diffy."""
        return shape(base) == shape(value) and (self.counted_name(command), shape(base)) in self.noise_signatures

    def _record(self, call: Call, command: str, cand: str, base: Any, value: Any) -> None:
        entry = find_call_entry(command, call.args, base, value, self._entries[cand])
        key = (command, cand, shape(base), shape(value), entry["id"] if entry else None)
        signature = self.signatures.get(key)
        if signature is None:
            if len(self.signatures) >= self.max_signatures:
                self.uncounted_signatures += 1
                return
            signature = self.signatures[key] = Signature(command, kind_of(base, value), cand, key[2:4], key[4])
        signature.count += 1
        if len(signature.examples) < self.max_examples:
            example: dict[str, Any] = {"args": args_text(call.args), "values": {self.baseline: _short(base),
                                                                             cand: _short(value)}}
            if call.line is not None:
                example["line"] = call.line
            if call.session:
                example["session"] = call.session
            if call.note:
                example["note"] = call.note
            signature.examples.append(example)

    # --- results ---------------------------------------------------------------------------------------

    def command_stats(self) -> dict[str, dict[str, Any]]:
        """Per command name, by calls (most first)."""
        return {name: s.as_dict() for name, s in sorted(self.stats.items(), key=lambda kv: (-kv[1].calls, kv[0]))}

    def records(self) -> list[dict[str, Any]]:
        """One standard difference record per signature, labelled when the catalogue documents it."""
        out = []
        entries = {e["id"]: e for e in load_catalogue()}
        for sig in sorted(self.signatures.values(), key=lambda s: (-s.count, s.command)):
            if sig.shapes[0] == sig.shapes[1] and (self.counted_name(sig.command), sig.shapes[0]) in self.noise_signatures:
                continue  # judged different before the control showed the command varies: noise (see noise())
            example = sig.examples[0]
            record: dict[str, Any] = {
                "scenario": self.source, "path": f"{sig.command}: {sig.shapes[0]} vs {sig.shapes[1]}",
                "kind": sig.kind, "baseline": self.baseline, "target": sig.target,
                "values": example["values"], "command": sig.command, "count": sig.count,
                "examples": sig.examples, "significant": True,
                "significance": f"{sig.count} calls; the noise control answered as the baseline",
            }
            entry = entries.get(sig.entry_id) if sig.entry_id else None
            record.update(documented=entry is not None, catalogue_id=entry["id"] if entry else None,
                          source=entry["source"] if entry else None, source_url=entry["url"] if entry else None)
            out.append(record)
        return out

    def noise(self) -> list[dict[str, Any]]:
        """Where the noise control disagreed with the baseline: per command and reply shape, how often."""
        return [{"command": command, "shape": shp, "calls": count}
                for (command, shp), count in sorted(self.noise_signatures.items(), key=lambda kv: -kv[1])]

    def totals(self) -> dict[str, int]:
        keys = ("calls", IDENTICAL, DIFFERENT, NOISE, SKIPPED)
        return {k: sum(getattr(s, k) for s in self.stats.values()) for k in keys}
