"""Capture formats the replay reads: MONITOR output, command files, AOFs (single or multi-part), RDB.

Everything streams: records are yielded one at a time, never collected.
"""

from app.captures.capture import Capture, open_capture
from app.captures.credentials import carries_credentials, redact
from app.captures.detect import AOF, AOF_DIR, COMMANDS, MONITOR, RDB, detect_format
from app.captures.model import BadLine, CaptureError, Command, Record

__all__ = ["AOF", "AOF_DIR", "COMMANDS", "MONITOR", "RDB", "BadLine", "Capture", "CaptureError",
           "Command", "Record", "carries_credentials", "detect_format", "open_capture", "redact"]
