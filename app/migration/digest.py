"""Canonical content of a key and its digest: equal content gives an equal digest on either server,
whatever order the server returns unordered types in and however it formats a score.

Also: what differs between two contents, in a few readable lines (for the mismatch list).
"""

from __future__ import annotations

import hashlib
from typing import Any

from app.migration.wire import text

# Items named when two contents differ (the rest is counted).
MAX_DETAILS = 5


def canonical(key_type: bytes, content: Any) -> Any:
    """The content in an order- and format-independent form: sets as frozensets, hashes as dicts, sorted
    sets as member -> float score (so "0.1" and "0.10000000000000001" are one score); lists and strings
    as they are. Equal forms, equal content; the digest sorts what has no order."""
    if key_type == b"set":
        return frozenset(content)
    if key_type == b"hash":
        return content
    if key_type == b"zset":
        return {member: float(score) for member, score in content}
    if key_type == b"list":
        return tuple(content)
    if key_type == b"stream":
        return _canonical_stream(content)
    return content


def _canonical_stream(stream: dict[str, Any]) -> tuple[Any, ...]:
    groups = []
    for group in sorted(stream["groups"], key=lambda g: g["name"]):
        consumers = tuple(sorted((c["name"], c["pel-count"], tuple(c["pending"]))
                                 for c in group["consumers"]))
        groups.append((group["name"], group["last-delivered-id"], group["entries-read"], group["lag"],
                       group["pel-count"], tuple(group["pending"]), consumers))
    return (stream["length"], stream["last-generated-id"], stream["max-deleted-entry-id"],
            stream["entries-added"], stream["recorded-first-entry-id"],
            tuple((entry_id, tuple(fields)) for entry_id, fields in stream["entries"]), tuple(groups))


def digest(form: Any) -> str:
    """blake2b of an unambiguous serialisation (type tag + length for every part)."""
    parts: list[bytes] = []
    _serialise(form, parts)
    return hashlib.blake2b(b"".join(parts), digest_size=16).hexdigest()


def _serialise(value: Any, out: list[bytes]) -> None:
    if isinstance(value, bytes):
        out.append(b"b%d:" % len(value))
        out.append(value)
    elif isinstance(value, tuple | list):
        out.append(b"t%d:" % len(value))
        for item in value:
            _serialise(item, out)
    elif isinstance(value, frozenset | set):
        _serialise(tuple(sorted(value)), out)
    elif isinstance(value, dict):
        _serialise(tuple(sorted(value.items())), out)
    elif isinstance(value, float):
        out.append(b"f" + value.hex().encode() + b";")
    elif value is None:
        out.append(b"n;")
    else:
        out.append(b"i%d;" % int(value))


# --- what differs ----------------------------------------------------------------------------------

def describe(key_type: bytes, source: Any, target: Any) -> list[str]:
    """A few lines naming what differs between two canonical contents of one type."""
    if key_type in (b"hash", b"zset"):
        label = "field" if key_type == b"hash" else "member"
        return _mapping_diff(dict(source), dict(target), label)
    if key_type == b"set":
        return _mapping_diff(dict.fromkeys(source, True), dict.fromkeys(target, True), "member")
    if key_type == b"list":
        return _sequence_diff(source, target, "index")
    if key_type == b"string":
        return _string_diff(source, target)
    if key_type == b"stream":
        return _stream_diff(source, target)
    return ["content differs"]


def _mapping_diff(source: dict[Any, Any], target: dict[Any, Any], label: str) -> list[str]:
    lines = []
    for name in sorted(set(source) | set(target)):
        if name not in target:
            lines.append(f"{label} {text(name)!r} only on source")
        elif name not in source:
            lines.append(f"{label} {text(name)!r} only on target")
        elif source[name] != target[name] and source[name] is not True:
            lines.append(f"{label} {text(name)!r}: source {text(source[name])!r}, target {text(target[name])!r}")
    return _capped(lines)


def _sequence_diff(source: tuple[Any, ...], target: tuple[Any, ...], label: str) -> list[str]:
    lines = []
    if len(source) != len(target):
        lines.append(f"length: source {len(source)}, target {len(target)}")
    for index, (left, right) in enumerate(zip(source, target)):
        if left != right:
            lines.append(f"{label} {index}: source {text(left)!r}, target {text(right)!r}")
            break
    return lines or ["content differs"]


def _string_diff(source: bytes, target: bytes) -> list[str]:
    at = next((i for i, (a, b) in enumerate(zip(source, target)) if a != b), min(len(source), len(target)))
    return [f"length: source {len(source)}, target {len(target)}; first difference at byte {at}"]


STREAM_PARTS = ("length", "last-generated-id", "max-deleted-entry-id", "entries-added",
                "recorded-first-entry-id", "entries", "groups")
GROUP_PARTS = ("name", "last-delivered-id", "entries-read", "lag", "pel-count", "pending", "consumers")


def _stream_diff(source: tuple[Any, ...], target: tuple[Any, ...]) -> list[str]:
    lines = []
    for name, left, right in zip(STREAM_PARTS, source, target):
        if left == right:
            continue
        if name == "entries":
            lines += [f"entries: {len(left)} on source, {len(right)} on target"]
            lines += _sequence_diff(tuple(e[0] for e in left), tuple(e[0] for e in right), "entry")[:1]
        elif name == "groups":
            lines += _groups_diff(left, right)
        else:
            lines.append(f"{name}: source {text(left)!r}, target {text(right)!r}")
    return _capped(lines)


def _groups_diff(source: tuple[Any, ...], target: tuple[Any, ...]) -> list[str]:
    left, right = {g[0]: g for g in source}, {g[0]: g for g in target}
    lines = []
    for name in sorted(set(left) | set(right)):
        if name not in right or name not in left:
            lines.append(f"group {text(name)!r} only on {'source' if name in left else 'target'}")
            continue
        for part, a, b in zip(GROUP_PARTS, left[name], right[name]):
            if a == b:
                continue
            if part in ("pending", "consumers"):  # tuples led by an entry id / a consumer name
                only_source = sorted(text(x[0]) for x in set(a) - set(b))
                only_target = sorted(text(x[0]) for x in set(b) - set(a))
                lines.append(f"group {text(name)!r} {part} differ: {len(a)} on source, {len(b)} on target"
                             + (f"; changed or only on source: {', '.join(only_source[:3])}" if only_source else "")
                             + (f"; changed or only on target: {', '.join(only_target[:3])}" if only_target else ""))
            else:
                lines.append(f"group {text(name)!r} {part}: source {text(a)!r}, target {text(b)!r}")
    return lines


def without_dangling_pending(stream: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The stream without pending entries whose message was deleted (XDEL), and how many there were.

    No command can recreate such an entry (XCLAIM ... FORCE ignores a missing message), so every
    command-level route drops them; the servers' own AOF rewrite without RDB preamble does too.
    """
    present = {entry_id for entry_id, _ in stream["entries"]}
    removed = 0
    groups = []
    for group in stream["groups"]:
        pending = [p for p in group["pending"] if p[0] in present]
        dropped = {p[0] for p in group["pending"]} - {p[0] for p in pending}
        removed += len(dropped)
        consumers = [{**c, "pending": [i for i in c["pending"] if i not in dropped],
                      "pel-count": len([i for i in c["pending"] if i not in dropped])} for c in group["consumers"]]
        groups.append({**group, "pending": pending, "pel-count": len(pending), "consumers": consumers})
    return {**stream, "groups": groups}, removed


def _capped(lines: list[str]) -> list[str]:
    if len(lines) > MAX_DETAILS:
        return lines[:MAX_DETAILS] + [f"... {len(lines) - MAX_DETAILS} more"]
    return lines or ["content differs"]
