"""Where an RDB preamble ends inside an AOF, found without parsing the RDB itself.

An RDB ends with the EOF opcode 0xFF and an 8-byte CRC-64 (Jones, reflected) of everything before
it, 0xFF included; the AOF commands (`*`, or a `#` annotation) follow at once. Candidates are the
0xFF bytes placed so; one candidate is the end, and among several the first whose checksum matches
is (a server that saved with rdbchecksum no writes zeros: then the first candidate followed by a
well-formed command). The servers verify the checksum themselves when they load the extracted RDB.
"""

from __future__ import annotations

import itertools
import mmap
import re
from pathlib import Path

# RDB magic: Redis writes REDIS + 4 digits, Valkey 9 writes VALKEY + 3 digits (version 80).
RDB_MAGIC = re.compile(rb"(?:REDIS[0-9]{4}|VALKEY[0-9]{3})")
CHECKSUM_BYTES = 8
CRC_CHUNK = 1024 * 1024
# What may follow the RDB: a command, an annotation, the end, or a tail truncated inside its first header.
_FOLLOWER = rb"(?:\*[0-9]+\r\n\$|#[^\r\n]{0,200}\r\n|\*?[0-9]*\r?\Z)"
_CANDIDATE = re.compile(rb"\xff(?=[\s\S]{8}%s)" % _FOLLOWER)  # lookahead: candidates may overlap
_COMMAND_START = re.compile(rb"(?:\*[0-9]+\r\n\$[0-9]+\r\n|#[^\r\n]*\r\n|\Z)")
_CRC_POLY = 0x95AC9329AC4BC9B5  # the reflected Jones polynomial Redis' crc64.c uses


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CRC_POLY if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _crc_table()


def crc64(crc: int, data: bytes | memoryview) -> int:
    """Redis' CRC-64 continued over data (about 9 MB/s in pure Python: only used to pick among candidates)."""
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def has_rdb_magic(head: bytes) -> bool:
    return RDB_MAGIC.match(head) is not None


def rdb_end(path: Path) -> int | None:
    """The offset just past the RDB at the start of the file (its 0xFF and checksum), None if not found."""
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return _find_end(data)  # its frame, and every view of the map it made, is gone before the map closes


def _find_end(data: mmap.mmap) -> int | None:
    found = (match.start() for match in _CANDIDATE.finditer(data))
    first, second = next(found, None), next(found, None)
    if first is None:
        return None
    if second is None:  # the usual case: no checksum to compute
        return first + 1 + CHECKSUM_BYTES
    crc, done = 0, 0
    for start in itertools.chain((first, second), found):
        stored = int.from_bytes(data[start + 1:start + 1 + CHECKSUM_BYTES], "little")
        end = start + 1 + CHECKSUM_BYTES
        if stored == 0:
            if _COMMAND_START.match(data, end):
                return end
            continue
        for chunk_start in range(done, start + 1, CRC_CHUNK):  # pieces: never a copy of the whole RDB
            crc = crc64(crc, data[chunk_start:min(chunk_start + CRC_CHUNK, start + 1)])
        done = start + 1
        if crc == stored:
            return end
    return None
