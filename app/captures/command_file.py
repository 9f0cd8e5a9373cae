"""A plain command file: one command a line in redis-cli's quoting, `#` comment lines, blank lines.

A `#` starts a comment only as the first non-blank character of a line (`ACL SETUSER u #<hash>` and
`SET k #1` are commands). `SELECT n` changes the database of the commands after it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from app.captures.model import BadLine, Command, Record, shorten
from app.captures.quoting import QuotingError, split_args

SESSION = "commands"  # a command file is one client
COMMENT = re.compile(rb"[ \t\v\f]*#")
BLANK = re.compile(rb"[ \t\r\n\v\f]*")


def selected_db(args: tuple[bytes, ...], current: int | None) -> int | None:
    """The database after this command: SELECT with a valid index changes it, anything else keeps it."""
    if len(args) == 2 and args[0].upper() == b"SELECT" and args[1].isdigit():
        return int(args[1])
    return current


def parse_command_file(lines: Iterable[bytes], source: str) -> Iterator[Record]:
    """Commands of a command file, one per line, streamed; a line with broken quoting is a BadLine."""
    db: int | None = None
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip(b"\r\n")
        if BLANK.fullmatch(line) or COMMENT.match(line):
            continue
        try:
            args = tuple(split_args(line))
        except QuotingError as exc:
            yield BadLine(number, f"broken quoting: {exc}", shorten(line), source)
            continue
        db = selected_db(args, db)
        yield Command(number, SESSION, db, args, None, False, source)
