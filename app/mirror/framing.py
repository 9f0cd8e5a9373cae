"""Framing the two byte streams the proxy tees: requests (RESP multibulk or inline, as Redis accepts
them) and replies (RESP2 and RESP3), into commands and reply frames, off the application's path.

Requests go through hiredis while the stream is multibulk; an inline command (telnet-style "PING\\r\\n")
is split here as Redis splits it (sdssplitargs), and a stream that mixes both is re-framed from the last
command boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hiredis

INLINE_MAX = 64 * 1024  # Redis refuses longer inline requests (PROTO_INLINE_MAX_SIZE)
_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("a"): b"\a"}
_HEX = b"0123456789abcdefABCDEF"
_SPACES = b" \t\n\r\v\f"


class FramingError(ValueError):
    """A request the servers would refuse as a protocol error; the session stops being compared."""


Args = tuple[bytes, ...]


def encode(args: Sequence[bytes]) -> bytes:
    """A command as a RESP multibulk request."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def split_inline(line: bytes) -> list[bytes]:
    """An inline request's arguments, split as Redis does: spaces, "double quotes" with escapes,
    'single quotes' with \\' only."""
    args: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in _SPACES:
            i += 1
        if i >= n:
            return args
        current = bytearray()
        quote = 0
        while True:
            if i >= n:
                if quote:
                    raise FramingError("unbalanced quotes in request")
                break
            c = line[i]
            if quote and c == quote:  # a closing quote must end the argument
                if i + 1 < n and line[i + 1] not in _SPACES:
                    raise FramingError("unbalanced quotes in request")
                i += 1
                break
            if quote == 0x22:  # "...": \xHH and the C escapes
                if c == 0x5C and i + 3 < n and line[i + 1] == ord("x") and line[i + 2] in _HEX and line[i + 3] in _HEX:
                    current.append(int(line[i + 2:i + 4], 16))
                    i += 3
                elif c == 0x5C and i + 1 < n:
                    i += 1
                    current += _ESCAPES.get(line[i], bytes([line[i]]))
                else:
                    current.append(c)
            elif quote == 0x27:  # '...': only \'
                if c == 0x5C and i + 1 < n and line[i + 1] == 0x27:
                    i += 1
                current.append(line[i])
            elif c in _SPACES:
                break
            elif c in (0x22, 0x27):
                quote = c
            else:
                current.append(c)
            i += 1
        args.append(bytes(current))


def _multibulk(buf: bytes, pos: int) -> tuple[Args, int] | None:
    """One multibulk request at buf[pos] (which is "*"): (args, end) or None when incomplete."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None
    try:
        count = int(buf[pos + 1:end])
    except ValueError:
        raise FramingError("invalid multibulk length") from None
    pos = end + 2
    args = []
    for _ in range(count):
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None
        if buf[pos:pos + 1] != b"$":
            raise FramingError(f"expected '$', got {buf[pos:pos + 1]!r}")
        try:
            size = int(buf[pos + 1:end])
        except ValueError:
            raise FramingError("invalid bulk length") from None
        start = end + 2
        if len(buf) < start + size + 2:
            return None
        args.append(buf[start:start + size])
        pos = start + size + 2
    return tuple(args), pos


class RequestFramer:
    """Client bytes in, commands out (each a tuple of bytes), however the bytes were split."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self._fed: list[bytes] = []  # chunks given to hiredis since it was last at a command boundary
        self._framed = 0  # commands hiredis framed since that boundary
        self._slow = b""  # bytes held by the Python framer (inline requests, or after a mixed stream)

    def feed(self, chunk: bytes) -> list[Args]:
        out: list[Args] = []
        if self._slow or (not self._reader.has_data() and chunk[:1] != b"*"):
            self._slow += chunk
            self._frame_slowly(out, skip=0)
            return out
        self._reader.feed(chunk)
        self._fed.append(chunk)
        try:
            while (command := self._reader.gets()) is not False:
                out.append(tuple(command))
                self._framed += 1
        except hiredis.ProtocolError:  # an inline request after multibulk ones: re-frame from the boundary
            self._slow, skip = b"".join(self._fed), self._framed
            self._reset_reader()
            self._frame_slowly(out, skip)
            return out
        if not self._reader.has_data():
            self._fed.clear()
            self._framed = 0
        return out

    def _reset_reader(self) -> None:
        self._reader = hiredis.Reader()
        self._fed, self._framed = [], 0

    def _frame_slowly(self, out: list[Args], skip: int) -> None:
        buf, pos = self._slow, 0
        while pos < len(buf):
            if buf[pos:pos + 1] == b"*":
                if skip == 0:  # back on multibulk: hand the rest to hiredis
                    self._slow = b""
                    rest = buf[pos:]
                    out.extend(self.feed(rest))
                    return
                framed = _multibulk(buf, pos)
                if framed is None:
                    break
                args, pos = framed
            else:
                end = buf.find(b"\n", pos)
                if end < 0:
                    if len(buf) - pos > INLINE_MAX:
                        raise FramingError("too big inline request")
                    break
                args = tuple(split_inline(buf[pos:end]))
                pos = end + 1
                if not args:
                    continue  # Redis ignores empty lines
            if skip:
                skip -= 1
            else:
                out.append(args)
        self._slow = buf[pos:]


class ReplyFramer:
    """Server bytes in, reply frames out: bytes, int, float, list, dict, None, hiredis.ReplyError for an
    error reply and hiredis.PushNotification for a RESP3 push."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader()

    def feed(self, chunk: bytes) -> list:
        self._reader.feed(chunk)
        out = []
        gets = self._reader.gets
        while (frame := gets()) is not False:
            out.append(frame)
        return out


# --- boundaries only, for the application's path: where requests and replies end, never their values --

_AGGREGATES = {ord("*"): 1, ord("~"): 1, ord(">"): 1, ord("%"): 2, ord("|"): 2}  # elements per count
_BLOBS = frozenset(b"$!=")
_ATTRIBUTE = ord("|")


class ReplyCutter:
    """Where each reply ends in a server's byte stream (RESP2 and RESP3), chunk by chunk, in O(bytes):
    a blob's body is skipped, never scanned, and only an unfinished header line is ever kept."""

    __slots__ = ("_tail", "_skip", "_open")

    def __init__(self) -> None:
        self._tail = b""  # an unfinished header line from the last chunk
        self._skip = 0    # body bytes (with their CRLF) of a blob still to come
        self._open: list[int] = []  # elements still owed by each unfinished aggregate, innermost last

    def feed(self, data: bytes) -> list[int]:
        """Offsets in data just past each reply that ends in it."""
        ends: list[int] = []
        base = len(self._tail)
        buf = self._tail + data if base else data
        size, pos, opened = len(buf), 0, self._open
        if self._skip:
            if self._skip > size:
                self._skip -= size
                return ends
            pos, self._skip = self._skip, 0
            if self._element_done():
                ends.append(pos - base)
        while pos < size:
            line = buf.find(b"\r\n", pos)
            if line < 0:
                break
            kind = buf[pos]
            try:
                number = int(buf[pos + 1:line]) if kind in _BLOBS or kind in _AGGREGATES else 0
            except ValueError:
                raise FramingError(f"invalid length in reply: {bytes(buf[pos:line])[:40]!r}") from None
            if kind in _BLOBS:
                stop = line + 2 if number < 0 else line + 4 + number
                if stop > size:
                    self._skip, pos = stop - size, size
                    break
                pos = stop
            else:
                pos = line + 2
                per = _AGGREGATES.get(kind)
                if per is not None:
                    count = number * per + (kind == _ATTRIBUTE)  # an attribute precedes the reply it describes
                    if count > 0:
                        opened.append(count)
                        continue
            if self._element_done():
                ends.append(pos - base)
        self._tail = bytes(buf[pos:]) if pos < size else b""
        return ends

    def _element_done(self) -> bool:
        """One element finished: close the aggregates it completes; True when a whole reply is done."""
        opened = self._open
        while opened:
            opened[-1] -= 1
            if opened[-1]:
                return False
            opened.pop()
        return True

    @property
    def at_boundary(self) -> bool:
        return not (self._tail or self._skip or self._open)


PUSH = ord(">")  # a RESP3 push frame answers no command


class ReplyStream:
    """A connection's replies, whole, chunk by chunk, for the proxy's shared connections: where each reply
    that ends in a chunk begins and ends in it, its bytes (joined when it spanned chunks) and whether it
    is a push frame. The first `setup_left` replies answer the mirror's own login: counted, never given,
    and `refused` holds the first of them that is an error. `rest` is where, in the last chunk, the
    bytes of a reply still coming begin (None when there are none, or they are a push or a login reply)."""

    __slots__ = ("_cutter", "_pieces", "_kind", "setup_left", "refused", "rest")

    def __init__(self) -> None:
        self._cutter = ReplyCutter()
        self._pieces: list[bytes] = []  # an unfinished reply's bytes so far
        self._kind: int | None = None  # its first byte
        self.setup_left = 0
        self.refused: bytes | None = None
        self.rest: int | None = None

    def feed(self, data: bytes) -> list[tuple[int, int, bytes, bool]]:
        """(start, end, whole reply, is a push) for every reply that ends in data. FramingError on bytes
        that are not RESP."""
        out: list[tuple[int, int, bytes, bool]] = []
        start = 0
        for end in self._cutter.feed(data):
            kind = data[start] if self._kind is None else self._kind
            self._kind = None
            whole = data[start:end]
            if self._pieces:
                self._pieces.append(whole)
                whole = b"".join(self._pieces)
                self._pieces = []
            if self.setup_left:
                self.setup_left -= 1
                if whole[:1] == b"-" and self.refused is None:
                    self.refused = whole
            else:
                out.append((start, end, whole, kind == PUSH))
            start = end
        self.rest = None
        if start < len(data):
            if self._kind is None:
                self._kind = data[start]
            if self._kind != PUSH:
                self._pieces.append(data[start:])
                if not self.setup_left:
                    self.rest = start
        return out


def parse_one(raw: bytes) -> Any:
    """One whole request or reply, as ReplyFramer frames it (a request: a list of its arguments)."""
    reader = hiredis.Reader()
    reader.feed(raw)
    return reader.gets()


def _length(buf: bytes | bytearray, pos: int, end: int, what: str) -> int:
    try:
        return int(buf[pos + 1:end])
    except ValueError:
        raise FramingError(f"invalid {what} length") from None


def request_end(buf: bytes | bytearray, pos: int) -> tuple[int, bytes, bytes, int]:
    """Where the multibulk request starting at buf[pos] ends, with its first two arguments upper-cased
    (the command and a subcommand, b"" when absent) and how many arguments it has; (-1, b"", b"", 0)
    when it is not all there yet. FramingError for anything else (an inline request, a malformed one):
    the caller stops sharing."""
    if buf[pos] != 0x2A:
        raise FramingError("not a multibulk request")
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return -1, b"", b"", 0
    count = _length(buf, pos, end, "multibulk")
    if count < 1:
        raise FramingError("empty multibulk request")
    pos, size, words = end + 2, len(buf), []
    for index in range(count):
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return -1, b"", b"", 0
        if buf[pos] != 0x24:
            raise FramingError("expected '$'")
        length = _length(buf, pos, end, "bulk")
        if length < 0:
            raise FramingError("invalid bulk length")
        start = end + 2
        pos = start + length + 2
        if pos > size:
            return -1, b"", b"", 0
        if index < 2:
            words.append(bytes(buf[start:start + length]).upper())
    return pos, words[0], words[1] if count > 1 else b"", count
