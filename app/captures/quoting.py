"""redis-cli's quoting: splitting a line into arguments exactly as redis-cli (sdssplitargs) does.

Bare words end at a space, tab, CR or LF; a word may open a quoted part, after whose closing quote
only whitespace or the end may follow. In double quotes: \\xHH, \\n, \\r, \\t, \\b, \\a, and a
backslash before any other character stands for that character. In single quotes only \\' is an escape.
MONITOR writes every argument double-quoted with the same escapes, so one unescape serves both.
"""

from __future__ import annotations

import re

# The control escapes of double-quoted text; any other escaped character stands for itself.
CONTROL_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"a": b"\a"}

_ESCAPE = re.compile(rb"\\(?:x([0-9a-fA-F]{2})|(.))", re.DOTALL)
# A backslash not starting one of the escapes MONITOR writes (where Python's codec would differ).
_UNUSUAL_ESCAPE = re.compile(rb'\\(?![\\"nrtab]|x[0-9a-fA-F]{2})')
_SQ_ESCAPE = re.compile(rb"\\'")
_SPACE = re.compile(rb"[ \t\n\r\v\f]*")
# One word: a bare part, then maybe one quoted part ("..." with escapes, '...' with only \').
_WORD = re.compile(rb"""([^ \t\n\r"']*)(?:"([^"\\]*(?:\\.[^"\\]*)*)"|'((?:[^'\\]|\\'|\\(?!'))*)')?""",
                   re.DOTALL)
_AFTER_QUOTE = frozenset(b" \t\n\r\v\f")


class QuotingError(ValueError):
    """The line's quoting is broken; the message is one line."""


def _unescape_match(match: re.Match[bytes]) -> bytes:
    hexdigits, char = match.groups()
    if hexdigits is not None:
        return bytes((int(hexdigits, 16),))
    return CONTROL_ESCAPES.get(char, char)


def unescape(text: bytes) -> bytes:
    """The bytes a double-quoted redis-cli/MONITOR string stands for (its content, quotes removed)."""
    if b"\\" not in text:
        return text
    if _UNUSUAL_ESCAPE.search(text) is None:  # only MONITOR's escapes: Python's codec reads them alike, in C
        return text.decode("unicode_escape").encode("latin-1")
    return _ESCAPE.sub(_unescape_match, text)


def split_args(line: bytes) -> list[bytes]:
    """The arguments of one line, as redis-cli would send them; QuotingError if the quotes are broken."""
    args: list[bytes] = []
    pos, end = _SPACE.match(line).end(), len(line)
    while pos < end:
        word = _WORD.match(line, pos)
        assert word is not None  # every part of the pattern may be empty
        bare, dquoted, squoted = word.groups()
        after = word.end()
        if dquoted is None and squoted is None:
            if after < end and line[after] in b"\"'":
                kind = "double" if line[after] == ord('"') else "single"
                raise QuotingError(f"unbalanced {kind} quote at column {after + 1}")
            args.append(bare)
        else:
            if after < end and line[after] not in _AFTER_QUOTE:
                raise QuotingError(f"closing quote not followed by a space at column {after}")
            args.append(bare + (unescape(dquoted) if dquoted is not None
                                else _SQ_ESCAPE.sub(b"'", squoted)))
        pos = _SPACE.match(line, after).end()
    return args


# How MONITOR (sdscatrepr) writes each byte inside double quotes.
_REPR = [bytes((b,)) if 0x20 <= b < 0x7F else b"\\x%02x" % b for b in range(256)]
for _char, _escape in {b"\\": b"\\\\", b'"': b'\\"', b"\n": b"\\n", b"\r": b"\\r", b"\t": b"\\t",
                       b"\a": b"\\a", b"\b": b"\\b"}.items():
    _REPR[_char[0]] = _escape
_PLAIN = re.compile(rb'[ !#-\[\]-~]*')  # printable, neither quote nor backslash: written as it is


def quote(arg: bytes) -> bytes:
    """One argument double-quoted as MONITOR writes it (the inverse of unescape)."""
    if _PLAIN.fullmatch(arg):
        return b'"' + arg + b'"'
    return b'"' + b"".join(_REPR[byte] for byte in arg) + b'"'
