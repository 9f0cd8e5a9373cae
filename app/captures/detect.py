"""Which capture format a file holds, read from its content (never its name); gzip opened transparently."""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path
from typing import BinaryIO

from app.captures.aof import find_manifest
from app.captures.model import CaptureError
from app.captures.monitor import CLI_PREAMBLE, looks_like_monitor
from app.captures.preamble import has_rdb_magic

MONITOR, COMMANDS, AOF, AOF_DIR, RDB = "monitor", "commands", "aof", "aof-dir", "rdb"
FORMAT_DESCRIPTIONS = {
    MONITOR: "redis-cli MONITOR output",
    COMMANDS: "command file (one command a line, redis-cli quoting)",
    AOF: "append-only file (RESP commands, maybe after an RDB preamble)",
    AOF_DIR: "multi-part AOF (manifest, base and incr files)",
    RDB: "RDB file (starting data only, no commands)",
}
GZIP_MAGIC = b"\x1f\x8b"
HEAD_BYTES = 64 * 1024
HEAD_CHUNK = 4096  # read in pieces: a damaged gzip still gives the pieces before the damage
HEAD_LINES = 10  # MONITOR detection looks at this many lines with content
_AOF_START = re.compile(rb"(?:#[^\r\n]*\r\n)*\*[0-9]+\r\n\$")
_MANIFEST_LINE = re.compile(rb"\s*file \S.* seq [0-9]+ .*type [bhi]")


def is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def open_bytes(path: Path) -> BinaryIO:
    """The file's bytes, decompressed on the fly when it is gzip."""
    return gzip.open(path, "rb") if is_gzip(path) else path.open("rb")  # type: ignore[return-value]


def read_head(path: Path, size: int = HEAD_BYTES) -> bytes:
    """The first bytes of the (decompressed) content; a damaged gzip gives what came before the damage."""
    parts: list[bytes] = []
    with open_bytes(path) as stream:
        try:
            while sum(map(len, parts)) < size:
                part = stream.read1(HEAD_CHUNK)  # type: ignore[attr-defined]
                if not part:
                    break
                parts.append(part)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            if not parts:  # the records report damage later on; with nothing readable, there is no capture
                raise CaptureError(f"{path}: cannot be decompressed ({exc})") from None
    return b"".join(parts)[:size]


def _content_lines(head: bytes) -> list[bytes]:
    lines = [line.strip() for line in head.splitlines()[:HEAD_LINES * 4]]
    return [line for line in lines if line][:HEAD_LINES]


def format_of_content(head: bytes) -> str:
    """The format of content beginning with `head`, or CaptureError."""
    if has_rdb_magic(head):
        return AOF  # an AOF with an RDB preamble, or an RDB alone: told apart when opened
    if _AOF_START.match(head):
        return AOF
    lines = _content_lines(head)
    if lines and _MANIFEST_LINE.match(lines[0]):
        return AOF_DIR
    if any(looks_like_monitor(line) for line in lines if line not in CLI_PREAMBLE):
        return MONITOR
    if b"\x00" in head:
        raise CaptureError("binary content that is no capture format this tool reads")
    return COMMANDS


def detect_format(path: Path) -> str:
    """The format of a capture file or directory (a multi-part AOF), or CaptureError with one line."""
    if path.is_dir():
        if find_manifest(path) is None:
            raise CaptureError(f"{path}: a directory, but not a multi-part AOF (no single *.manifest in it)")
        return AOF_DIR
    if not path.is_file():
        raise CaptureError(f"{path}: no such file")
    head = read_head(path)
    if not head.strip():
        raise CaptureError(f"{path}: empty, nothing to replay")
    try:
        return format_of_content(head)
    except CaptureError as exc:
        raise CaptureError(f"{path}: {exc}") from None
