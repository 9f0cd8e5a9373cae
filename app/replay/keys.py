"""Which keys a command touches, from the servers' own COMMAND table (first/last/step and key specs).

The replay pipelines commands of different sessions together only when no key is touched by two of
them; a command whose keys cannot be known (no key specs, an 'unknown' or 'incomplete' spec, a keyless
command that reads or writes the whole keyspace, a script that declares no key) is a barrier: it waits
for every earlier call and every later call waits for it. A script that declares its keys is ordered by
them: the scripting contract says a script touches only the keys it is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# Keyless commands that only concern their own connection: they never order against other sessions.
CONNECTION_LOCAL: frozenset[bytes] = frozenset({
    b"PING", b"ECHO", b"SELECT", b"HELLO", b"MULTI", b"DISCARD", b"TIME", b"READONLY", b"READWRITE",
    b"ASKING", b"RESET", b"LOLWUT", b"COMMAND", b"AUTH",
})
CONNECTION_LOCAL_SUBCOMMANDS: frozenset[tuple[bytes, bytes]] = frozenset({
    (b"CLIENT", sub) for sub in (b"SETNAME", b"GETNAME", b"ID", b"INFO", b"SETINFO", b"TRACKINGINFO",
                                 b"GETREDIR", b"NO-EVICT", b"NO-TOUCH", b"CACHING", b"TRACKING")
})
BARRIER = None  # what keys_of() returns for a command that must run alone


@dataclass(frozen=True)
class KeyRule:
    """How to find one command's keys: legacy (first, last, step), or its key specs when they move."""

    first: int
    last: int
    step: int
    specs: tuple[dict[str, Any], ...] | None  # None: the legacy triple is exact


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _pairs(value: Any) -> dict[str, Any]:
    """A RESP2 flat list or RESP3 map of a key spec, as a dict with str keys."""
    if isinstance(value, dict):
        return {_text(k): v for k, v in value.items()}
    return {_text(value[i]): value[i + 1] for i in range(0, len(value) - 1, 2)}


def _spec(raw: Any) -> dict[str, Any]:
    spec = _pairs(raw)
    out: dict[str, Any] = {"flags": {_text(f) for f in spec.get("flags", [])}}
    for part in ("begin_search", "find_keys"):
        section = _pairs(spec.get(part, {}))
        out[part] = (_text(section.get("type", b"unknown")),
                     {k: (int(v) if isinstance(v, int) else v) for k, v in _pairs(section.get("spec", {})).items()})
    return out


def _rule(entry: Sequence[Any]) -> KeyRule:
    flags = {_text(f) for f in entry[2]}
    first, last, step = int(entry[3]), int(entry[4]), int(entry[5])
    specs = tuple(_spec(s) for s in entry[8]) if len(entry) > 8 and "movablekeys" in flags else None
    return KeyRule(first, last, step, specs)


class KeyTable:
    """Command name (and container|subcommand) -> KeyRule, from one or more servers' COMMAND replies."""

    def __init__(self, command_replies: Iterable[Sequence[Any]]) -> None:
        self.rules: dict[bytes, KeyRule] = {}
        for reply in command_replies:  # the baseline first: its rule wins, the candidate's fills gaps
            for entry in reply:
                self._add(entry)

    def _add(self, entry: Sequence[Any]) -> None:
        name = _text(entry[0]).upper().encode("latin-1")
        self.rules.setdefault(name, _rule(entry))
        if len(entry) > 9:
            for sub in entry[9] or ():
                self.rules.setdefault(_text(sub[0]).upper().encode("latin-1"), _rule(sub))

    def keys_of(self, args: tuple[bytes, ...]) -> tuple[bytes, ...] | None:
        """The keys of a command, () for a connection-local one, or None (BARRIER) when unknown or global."""
        name = args[0].upper()
        rule = self.rules.get(name)
        if rule is not None and rule.first == 0 and rule.specs is None and len(args) > 1:
            # a container (CLIENT, OBJECT...): its subcommand has the rule
            rule = self.rules.get(name + b"|" + args[1].upper(), rule)
        if rule is None:
            return BARRIER
        keys = _legacy(rule, args) if rule.specs is None else _from_specs(rule.specs, args)
        if keys:
            return keys
        if keys is None:
            return BARRIER
        sub = (name, args[1].upper()) if len(args) > 1 else (name, b"")
        return () if name in CONNECTION_LOCAL or sub in CONNECTION_LOCAL_SUBCOMMANDS else BARRIER


def _legacy(rule: KeyRule, args: tuple[bytes, ...]) -> tuple[bytes, ...]:
    if rule.first <= 0:
        return ()
    last = rule.last if rule.last >= 0 else len(args) + rule.last
    return args[rule.first:last + 1:rule.step or 1]


def _from_specs(specs: tuple[dict[str, Any], ...], args: tuple[bytes, ...]) -> tuple[bytes, ...] | None:
    """Redis' getKeysUsingKeySpecs in short; None when a spec cannot say."""
    keys: list[bytes] = []
    argc = len(args)
    for spec in specs:
        if "incomplete" in spec["flags"]:
            return None
        (search, s_args), (find, f_args) = spec["begin_search"], spec["find_keys"]
        if search == "index":
            first = int(s_args.get("index", 0))
        elif search == "keyword":
            first = _after_keyword(args, s_args)
            if first is None:
                continue  # the keyword is absent: this spec names no key here
        else:
            return None
        if find == "range":
            lastkey, step, limit = (int(f_args.get(k, 0)) for k in ("lastkey", "keystep", "limit"))
            if lastkey >= 0:
                last = first + lastkey
            elif limit:
                last = first + (argc - first) // limit + lastkey
            else:
                last = argc + lastkey
        elif find == "keynum":
            index = first + int(f_args.get("keynumidx", 0))
            if index >= argc or not args[index].lstrip(b"-").isdigit():
                return None  # the server refuses it anyway; it runs alone
            count, step = int(args[index]), int(f_args.get("keystep", 1))
            first = first + int(f_args.get("firstkey", 1))
            last = first + (count - 1) * step
        else:
            return None
        keys.extend(args[first:min(last, argc - 1) + 1:step or 1])
    return tuple(keys)


def _after_keyword(args: tuple[bytes, ...], spec: dict[str, Any]) -> int | None:
    keyword = spec.get("keyword", b"")
    keyword = keyword.upper() if isinstance(keyword, bytes) else str(keyword).upper().encode()
    start = int(spec.get("startfrom", 1))
    positions = range(start, len(args)) if start > 0 else range(len(args) + start, 0, -1)
    return next((i + 1 for i in positions if args[i].upper() == keyword), None)
