"""The records a capture parser yields: one Command per command, one BadLine per part it could not read."""

from __future__ import annotations

import re
from typing import NamedTuple, Union

# A bad line is echoed at most this far: the rest may hold a password.
BAD_TEXT_LIMIT = 60
# Words that mark text which may carry a secret: such a bad line is not echoed at all.
SECRET_HINTS = re.compile(rb"auth|pass|setuser|hello", re.IGNORECASE)
HIDDEN_TEXT = "(not shown: it may hold credentials)"


class CaptureError(Exception):
    """The capture cannot be read at all (unknown format, missing part); the message is one line."""


class Command(NamedTuple):
    """One command of a capture, as the client sent it.

    line: where it is in its file: the text line (MONITOR, command file) or, for an AOF (RESP has no
      lines), the command's number in that file, counting from 1.
    session: the client that sent it (MONITOR's address, "unix:/path"; one session per command file
      or AOF); a script's own commands get the session of the EVAL/FCALL that ran them.
    db: the database the command ran in (for SELECT: the one it selected); None when not stated.
    ts: seconds since the epoch when known (MONITOR, AOF #TS annotations), else None.
    from_script: issued from inside a script (MONITOR "[db lua]"): the replay replays the script instead.
    source: the file it was read from.
    """

    line: int
    session: str
    db: int | None
    args: tuple[bytes, ...]
    ts: float | None
    from_script: bool
    source: str

    @property
    def name(self) -> str:
        """The command name, upper case ("" for an empty command)."""
        return self.args[0].decode("latin-1").upper() if self.args else ""


class BadLine(NamedTuple):
    """A part of the capture that is not a command: where, why (one line), and a short, safe excerpt."""

    line: int
    reason: str
    text: str
    source: str

    def describe(self) -> str:
        """One line for the user: file, line, reason and the excerpt."""
        excerpt = f": {self.text}" if self.text else ""
        return f"{self.source}:{self.line}: {self.reason}{excerpt}"


Record = Union[Command, BadLine]


def shorten(raw: bytes) -> str:
    """A printable excerpt of at most BAD_TEXT_LIMIT characters, or nothing when it may hold a secret."""
    if SECRET_HINTS.search(raw):
        return HIDDEN_TEXT
    text = "".join(ch if " " <= ch < "\x7f" else f"\\x{ord(ch):02x}"
                   for ch in raw[:BAD_TEXT_LIMIT + 1].decode("latin-1"))
    return text if len(text) <= BAD_TEXT_LIMIT else text[:BAD_TEXT_LIMIT - 1] + "…"
