"""`redis-cli MONITOR` output: `1701234567.123456 [0 127.0.0.1:51234] "SET" "k" "v"`, one command a line.

Measured on Redis 7.2.4 and Valkey 9.0.0 (redis-cli 7.2.4): the first line is redis-cli's "OK"; the
source is `ip:port`, `[ipv6]:port`, `unix:<the server's socket path>` (every unix-socket client shows
the same path, so they form one session) or `lua` (a command a script issued, after its EVAL/FCALL);
the db is the client's database after the command (SELECT shows the new one). Every argument is
double-quoted with \\" \\\\ \\n \\r \\t \\a \\b \\xHH escapes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from app.captures.model import BadLine, Command, Record, shorten
from app.captures.quoting import QuotingError, split_args, unescape

# What redis-cli prints before the first command (the reply to MONITOR itself).
CLI_PREAMBLE = frozenset({b"OK"})
SCRIPT_SOURCE = b"lua"
# Commands whose script's own commands follow them as "[db lua]" lines.
SCRIPT_CALLERS = frozenset({b"EVAL", b"EVALSHA", b"EVAL_RO", b"EVALSHA_RO", b"FCALL", b"FCALL_RO"})
# Session of script lines whose calling command is not the line before them.
UNKNOWN_SCRIPT_SESSION = "lua"

# The client ends at the first '] "': a unix socket path may hold spaces and brackets, but not that.
_CLIENT = rb'([^\]]+(?:\](?! ")[^\]]*)*)'
HEADER = re.compile(rb"(\d+\.\d+) \[(\d+) %s\] (.*)" % _CLIENT, re.DOTALL)
_ARG = rb'"[^"\\]*(?:\\.[^"\\]*)*"'
# A whole good line in one match (the common case); HEADER then tells what is wrong with a bad one.
LINE = re.compile(rb"(\d+\.\d+) \[(\d+) %s\] (%s(?: %s)*)" % (_CLIENT, _ARG, _ARG), re.DOTALL)
ARG_CONTENT = re.compile(rb'"([^"\\]*(?:\\.[^"\\]*)*)"', re.DOTALL)


def looks_like_monitor(line: bytes) -> bool:
    """Whether one line has MONITOR's shape (for format detection)."""
    return HEADER.fullmatch(line.rstrip(b"\r\n")) is not None


def _problem(line: bytes) -> str:
    try:
        split_args(line)
    except QuotingError as exc:
        return f"broken quoting: {exc}"
    return "an argument is not a double-quoted string"


def parse_monitor(lines: Iterable[bytes], source: str) -> Iterator[Record]:
    """Commands of a MONITOR capture, one per line, streamed; a line that does not parse is a BadLine."""
    caller_session: str | None = None  # the session of the script caller just seen, for its lua lines
    seen_content = False
    sessions: dict[bytes, str] = {}  # one str per client, shared by all its commands
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip(b"\r\n")
        if not line:
            continue
        if not seen_content:
            seen_content = True
            if line in CLI_PREAMBLE:
                continue
        match = LINE.fullmatch(line)
        if match is None:
            if HEADER.fullmatch(line) is None:
                yield BadLine(number, "not a MONITOR line (expected: <time> [<db> <client>] \"ARG\" ...)",
                              shorten(line), source)
            else:
                yield BadLine(number, _problem(line), shorten(line), source)
            continue
        stamp, db, client, args_text = match.groups()
        args = tuple(ARG_CONTENT.findall(args_text))
        if b"\\" in args_text:
            args = tuple(unescape(arg) for arg in args)
        from_script = client == SCRIPT_SOURCE
        if from_script:
            session = caller_session or UNKNOWN_SCRIPT_SESSION
        else:
            session = sessions.get(client) or sessions.setdefault(client, client.decode("latin-1"))
            caller_session = session if args[0].upper() in SCRIPT_CALLERS else None
        yield Command(number, session, int(db), args, float(stamp), from_script, source)
