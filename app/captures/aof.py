"""Append-only files: RESP commands (`*N` then N `$len` bulks), `#` annotations, and the Redis 7 manifest.

Measured on Redis 7.2.4 and Valkey 9.0.0 with appendonly yes: the AOF lives in `appendonlydir/` with
`appendonly.aof.manifest` naming one base file (`.base.rdb` with aof-use-rdb-preamble yes, else
`.base.aof`) and the incr `.aof` files; every file starts with SELECT before its first command;
scripts appear as their effects (wrapped in MULTI/EXEC), relative expiry as absolute PEXPIREAT.
`#TS:<unix seconds>` annotations (aof-timestamp-enabled yes) date the commands after them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from app.captures.command_file import selected_db
from app.captures.model import BadLine, CaptureError, Command, Record, shorten
from app.captures.quoting import QuotingError, split_args

SESSION = "aof"  # an AOF is replayed as one client, as the server loads it
MANIFEST_NAME = "appendonly.aof.manifest"
# Manifest file types: base (loaded first), history (already merged, not loaded), incr (in order).
BASE, HISTORY, INCR = "b", "h", "i"
READ_CHUNK = 64 * 1024 * 1024  # a bulk is read in pieces: a corrupt length never allocates it whole
TRANSACTION_OPEN, TRANSACTION_CLOSE = frozenset({b"MULTI"}), frozenset({b"EXEC", b"DISCARD"})

_ARRAY = re.compile(rb"\*([0-9]+)\r\n")
_BULK = re.compile(rb"\$([0-9]+)\r\n")
_TIMESTAMP = re.compile(rb"#TS:([0-9]+)\r\n")


class _Corrupt(Exception):
    """The bytes at this point are not RESP; the message is the reason."""


class _Truncated(Exception):
    """The file ends inside a command."""


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    if size <= READ_CHUNK:
        data = stream.read(size)
    else:
        parts, left = [], size
        while left:
            part = stream.read(min(left, READ_CHUNK))
            if not part:
                break
            parts.append(part)
            left -= len(part)
        data = b"".join(parts)
    if len(data) < size:
        raise _Truncated
    return data


def _header(stream: BinaryIO, pattern: re.Pattern[bytes], what: str) -> tuple[int, int]:
    """The number in a `*N` or `$N` line, and the line's length."""
    line = stream.readline()
    if not line.endswith(b"\n"):
        raise _Truncated
    match = pattern.fullmatch(line)
    if match is None:
        raise _Corrupt(f"expected {what}, found {shorten(line.rstrip())!r}")
    return int(match.group(1)), len(line)


def _read_command(stream: BinaryIO, count: int) -> tuple[tuple[bytes, ...], int]:
    args, size = [], 0
    for _ in range(count):
        length, header_size = _header(stream, _BULK, "a '$<length>' bulk header")
        data = _read_exact(stream, length + 2)
        if not data.endswith(b"\r\n"):
            raise _Corrupt(f"bulk of {length} bytes not followed by CRLF")
        args.append(data[:-2])
        size += header_size + length + 2
    return tuple(args), size


def _resync(stream: BinaryIO) -> tuple[bytes, int]:
    """Skip lines up to the next that starts a command; that line (or b"") and the bytes skipped."""
    skipped = 0
    while True:
        line = stream.readline()
        if not line or _ARRAY.fullmatch(line):
            return line, skipped
        skipped += len(line)


def parse_aof(stream: BinaryIO, source: str, offset: int = 0, db: int | None = None) -> Iterator[Record]:
    """Commands of one AOF (from `offset`, the end of any RDB preamble), streamed.

    A corrupt part is a BadLine and parsing goes on at the next `*N` line; a truncated tail is a
    BadLine at the end (Redis loads the file without it when aof-load-truncated is yes, the default).
    An unfinished MULTI at the end is a BadLine too: Redis drops that transaction when loading.
    """
    number, ts, open_multi = 0, None, 0
    pending = b""  # a line already read by a resync
    while True:
        start = offset
        line = pending or stream.readline()
        pending = b""
        if not line:
            break
        try:
            if line.startswith(b"#"):
                if not line.endswith(b"\n"):
                    raise _Truncated
                stamp = _TIMESTAMP.fullmatch(line)
                ts = float(stamp.group(1)) if stamp else ts
                offset += len(line)
                continue
            if not line.endswith(b"\n"):
                raise _Truncated
            header = _ARRAY.fullmatch(line)
            if header is None:
                raise _Corrupt(f"expected a '*<count>' command header, found {shorten(line.rstrip())!r}")
            args, size = _read_command(stream, int(header.group(1)))
        except _Truncated:
            yield BadLine(number + 1, f"truncated: the file ends inside a command at byte {start} "
                          "(Redis skips such a tail when aof-load-truncated is yes)", "", source)
            break
        except _Corrupt as exc:
            yield BadLine(number + 1, f"not RESP at byte {start}: {exc}; skipped to the next command",
                          "", source)
            pending, skipped = _resync(stream)
            offset = start + skipped  # an estimate past the corrupt point: the broken part's size is unknown
            continue
        offset += len(line) + size
        number += 1
        name = args[0].upper() if args else b""
        open_multi = number if name in TRANSACTION_OPEN else 0 if name in TRANSACTION_CLOSE else open_multi
        db = selected_db(args, db)
        yield Command(number, SESSION, db, args, ts, False, source)
    if open_multi:
        yield BadLine(open_multi, "MULTI without EXEC at the end of the file: "
                      "Redis drops this unfinished transaction when it loads the file", "", source)


@dataclass(frozen=True)
class Manifest:
    """A multi-part AOF: the base file (RDB or AOF, maybe none) and the incr files, in load order."""

    directory: Path
    base: Path | None
    incrs: tuple[Path, ...]


def find_manifest(path: Path) -> Path | None:
    """The manifest of a multi-part AOF directory (or the manifest itself), else None."""
    if path.is_file():
        return path
    candidates = sorted(path.glob("*.manifest")) or sorted(path.glob("*/*.manifest"))
    return candidates[0] if len(candidates) == 1 else None


def read_manifest(manifest: Path) -> Manifest:
    """The manifest's files, checked as Redis checks them when it loads (one base, rising incr seq)."""
    base: Path | None = None
    incrs: list[Path] = []
    last_seq = -1
    for number, raw in enumerate(manifest.read_bytes().splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith(b"#"):
            continue
        try:
            words = split_args(raw)
        except QuotingError as exc:
            raise CaptureError(f"{manifest}:{number}: broken manifest line: {exc}") from None
        fields = dict(zip(words[::2], words[1::2]))
        if len(words) % 2 or not {b"file", b"seq", b"type"} <= fields.keys() or not fields[b"seq"].isdigit():
            raise CaptureError(f"{manifest}:{number}: not a manifest line (expected: file NAME seq N type b|h|i)")
        part = manifest.parent / fields[b"file"].decode("utf-8", errors="surrogateescape")
        kind = fields[b"type"].decode("latin-1")
        if kind == BASE:
            if base is not None:
                raise CaptureError(f"{manifest}:{number}: a second base file")
            base = part
        elif kind == INCR:
            seq = int(fields[b"seq"])
            if seq <= last_seq:
                raise CaptureError(f"{manifest}:{number}: incr seq {seq} does not rise")
            last_seq = seq
            incrs.append(part)
        elif kind != HISTORY:
            raise CaptureError(f"{manifest}:{number}: unknown file type {kind!r}")
    missing = [p.name for p in ([base] if base else []) + incrs if not p.is_file()]
    if missing:
        raise CaptureError(f"{manifest}: listed file(s) missing: {', '.join(missing)}")
    if base is None and not incrs:
        raise CaptureError(f"{manifest}: lists no base and no incr file")
    return Manifest(manifest.parent, base, tuple(incrs))
