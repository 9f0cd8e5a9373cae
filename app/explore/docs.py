"""COMMAND DOCS -> argument specs: each server's own description of every command's arguments, and the
union of two servers' descriptions, so that options only one side knows (HSCAN NOVALUES, SET IFEQ) are
generated too.

A command is named as app/stream_compare.command_name() names it ("SET", "CLIENT KILL"); a container
(CLIENT, CONFIG...) is not a command of its own, only its subcommands are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

# The argument types COMMAND DOCS uses (Redis 7.0+, Valkey): each becomes a strategy in strategies.py.
ARGUMENT_TYPES = frozenset({"key", "string", "integer", "double", "pattern", "unix-time", "pure-token",
                            "oneof", "block"})


@dataclass(frozen=True)
class Arg:
    """One argument of a command as COMMAND DOCS describes it."""

    name: str
    type: str
    token: bytes | None = None
    optional: bool = False
    multiple: bool = False
    multiple_token: bool = False  # the token is repeated before every repetition (SORT GET p1 GET p2)
    children: tuple["Arg", ...] = ()
    one_sided: bool = False  # documented by only one of the servers (HSCAN's NOVALUES, SET's IFEQ)


@dataclass
class CommandSpec:
    """A command: its words on the wire, its group, its argument tree and flags, who knows it."""

    name: str                      # "SET", "CLIENT KILL"
    words: tuple[bytes, ...]       # (b"SET",) or (b"CLIENT", b"KILL")
    group: str                     # COMMAND DOCS group: string, hash, server...
    args: tuple[Arg, ...]
    flags: frozenset[str] = frozenset()
    known_by: frozenset[str] = frozenset()
    variants: dict[str, tuple[Arg, ...]] = field(default_factory=dict)  # server -> its own tree


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _mapping(value: Any) -> dict[str, Any]:
    """A RESP3 map (dict) or a RESP2 flat list of pairs, with text keys."""
    if isinstance(value, Mapping):
        return {_text(k): v for k, v in value.items()}
    items = list(value or [])
    return {_text(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}


def parse_arg(raw: Any) -> Arg:
    doc = _mapping(raw)
    flags = {_text(f) for f in doc.get("flags") or ()}
    token = doc.get("token")
    return Arg(name=_text(doc.get("name", "")), type=_text(doc.get("type", "string")),
               token=token if isinstance(token, bytes) else (token.encode() if token else None),
               optional="optional" in flags, multiple="multiple" in flags,
               multiple_token="multiple_token" in flags,
               children=tuple(parse_arg(a) for a in doc.get("arguments") or ()))


def command_label(raw_name: str) -> str:
    """'client|kill' -> 'CLIENT KILL'; 'set' -> 'SET'."""
    return raw_name.replace("|", " ").upper()


def parse_docs(docs: Any) -> dict[str, tuple[str, tuple[Arg, ...]]]:
    """COMMAND DOCS reply -> command label -> (group, argument tree), subcommands included."""
    out: dict[str, tuple[str, tuple[Arg, ...]]] = {}
    for raw_name, raw_doc in _mapping(docs).items():
        doc = _mapping(raw_doc)
        group = _text(doc.get("group", ""))
        out[command_label(raw_name)] = (group, tuple(parse_arg(a) for a in doc.get("arguments") or ()))
        for sub_name, sub_doc in _mapping(doc.get("subcommands") or {}).items():
            sub = _mapping(sub_doc)
            out[command_label(sub_name)] = (_text(sub.get("group", group)),
                                             tuple(parse_arg(a) for a in sub.get("arguments") or ()))
    return out


def parse_flags(info: Any) -> dict[str, frozenset[str]]:
    """COMMAND (INFO) reply -> command label -> its flags (write, readonly, blocking...), subcommands too."""
    out: dict[str, frozenset[str]] = {}

    def walk(entries: Iterable[Any]) -> None:
        for entry in entries or ():
            if not isinstance(entry, (list, tuple)) or len(entry) < 3:
                continue
            out[command_label(_text(entry[0]))] = frozenset(_text(f) for f in entry[2] or ())
            if len(entry) > 9:
                walk(entry[9])
    walk(info)
    return out


def runnable(command_list: Iterable[Any]) -> list[str]:
    """COMMAND LIST -> the commands one can run: containers (CLIENT, CONFIG...) are not, their subcommands are."""
    names = [_text(n) for n in command_list]
    containers = {n.split("|")[0] for n in names if "|" in n}
    return sorted(command_label(n) for n in names if n not in containers)


# --- the union of two servers' trees ---------------------------------------------------------------

def merge_args(first: tuple[Arg, ...], second: tuple[Arg, ...]) -> tuple[Arg, ...]:
    """Both servers' argument lists as one: arguments matched by name and merged; an argument only one
    side has is kept where that side has it (after the argument that precedes it there), marked one-sided."""
    theirs = {a.name for a in second}
    merged = [a if a.name in theirs else replace(a, one_sided=True) for a in first]
    names = [a.name for a in merged]
    previous: str | None = None
    for arg in second:
        if arg.name in names:
            index = names.index(arg.name)
            merged[index] = merge_arg(merged[index], arg)
        else:
            index = names.index(previous) + 1 if previous in names else 0
            merged.insert(index, replace(arg, one_sided=True))
            names.insert(index, arg.name)
        previous = arg.name
    return tuple(merged)


def merge_arg(a: Arg, b: Arg) -> Arg:
    """One argument both sides describe: whatever either accepts (optional, multiple, its alternatives)."""
    if a.type != b.type:
        # The same name, another type: keep the first side's, with the other as an alternative.
        return Arg(name=a.name, type="oneof", optional=a.optional or b.optional,
                   children=(replace(a, optional=False), replace(b, optional=False)))
    return replace(a, optional=a.optional or b.optional, multiple=a.multiple or b.multiple,
                   multiple_token=a.multiple_token or b.multiple_token, token=a.token or b.token,
                   children=merge_args(a.children, b.children))


def build_specs(per_server: Mapping[str, Mapping[str, Any]]) -> dict[str, CommandSpec]:
    """server name -> {"docs", "info", "list"} replies -> the union of every server's commands.

    A command only some servers list is kept (the explorer sends it to all: the others answer
    "unknown command"); its tree is the union of the trees of the servers that document it."""
    specs: dict[str, CommandSpec] = {}
    for server, replies in per_server.items():
        docs = parse_docs(replies["docs"])
        flags = parse_flags(replies["info"])
        for name in runnable(replies["list"]):
            group, args = docs.get(name, ("", ()))
            spec = specs.get(name)
            if spec is None:
                specs[name] = CommandSpec(name=name, words=tuple(w.encode() for w in name.split(" ")),
                                          group=group, args=args, flags=flags.get(name, frozenset()),
                                          known_by=frozenset({server}), variants={server: args})
                continue
            spec.args = merge_args(spec.args, args)
            spec.group = spec.group or group
            spec.flags = spec.flags | flags.get(name, frozenset())
            spec.known_by = spec.known_by | {server}
            spec.variants[server] = args
    return specs


def read_server_docs(conn: Any) -> dict[str, Any]:
    """COMMAND DOCS, COMMAND and COMMAND LIST from one server (a redis-py Connection, RESP3)."""
    out: dict[str, Any] = {}
    for key, command in (("docs", ("COMMAND", "DOCS")), ("info", ("COMMAND",)), ("list", ("COMMAND", "LIST"))):
        conn.send_command(*command)
        out[key] = conn.read_response(disable_decoding=True)
    return out
