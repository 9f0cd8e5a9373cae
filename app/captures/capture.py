"""One opened capture: its format, its starting data (an RDB the servers load) and its command stream.

    with open_capture(Path("traffic.monitor.gz")) as capture:
        if capture.starting_data: ...load it into each server...
        for record in capture.records():      # Command or BadLine, streamed
            ...
        capture.bad_lines                     # counted while streaming

An RDB preamble or base RDB is never parsed here: it is handed on as a file (a preamble is first
copied out to a temporary .rdb), so the servers themselves load it. Temporary files go with close().
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
import zlib
from collections.abc import Generator, Iterator
from pathlib import Path

from app.captures.aof import find_manifest, parse_aof, read_manifest
from app.captures.command_file import parse_command_file
from app.captures.detect import AOF, AOF_DIR, COMMANDS, MONITOR, RDB, detect_format, is_gzip, open_bytes
from app.captures.model import BadLine, CaptureError, Command, Record
from app.captures.monitor import parse_monitor
from app.captures.preamble import has_rdb_magic, rdb_end

COPY_CHUNK = 1024 * 1024
# Errors of a damaged gzip stream, met while reading: the records so far stand, then one BadLine.
DECOMPRESS_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)
TEXT_PARSERS = {MONITOR: parse_monitor, COMMANDS: parse_command_file}


class Capture:
    """A capture file (or multi-part AOF directory) ready to stream; use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.format = detect_format(path)
        self.starting_data: Path | None = None
        self.commands = 0
        self.bad_lines = 0
        self._tmp: Path | None = None
        # (file, offset of its AOF commands) in load order; offset None: the file holds no commands.
        self._parts: list[tuple[Path, int | None]] = []
        try:
            self._prepare()
        except BaseException:
            self.close()
            raise

    # --- opening ---------------------------------------------------------------------------------

    def _tempdir(self) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="rvc-capture-"))
        return self._tmp

    def _plain(self, path: Path) -> Path:
        """The file itself, or its decompressed copy when it is gzip (an RDB must be a plain file)."""
        if not is_gzip(path):
            return path
        target = self._tempdir() / f"{len(list(self._tempdir().iterdir()))}-{path.name}.plain"
        try:
            with gzip.open(path, "rb") as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, COPY_CHUNK)
        except DECOMPRESS_ERRORS as exc:
            raise CaptureError(f"{path}: cannot be decompressed ({exc})") from None
        return target

    def _with_rdb(self, path: Path) -> tuple[Path, int | None]:
        """For a file that starts with an RDB: take that RDB as starting data; the AOF part that follows."""
        plain = self._plain(path)
        end = rdb_end(plain)
        if end is None:
            raise CaptureError(f"{path}: starts with an RDB whose end is not found (damaged or truncated)")
        size = plain.stat().st_size
        if end == size:
            self.starting_data = plain
            return plain, None
        rdb = self._tempdir() / "starting-data.rdb"
        with plain.open("rb") as src, rdb.open("wb") as dst:
            left = end
            while left:
                chunk = src.read(min(left, COPY_CHUNK))
                dst.write(chunk)
                left -= len(chunk)
        self.starting_data = rdb
        return plain, end

    def _starts_with_rdb(self, path: Path) -> bool:
        with open_bytes(path) as stream:
            return has_rdb_magic(stream.read(16))

    def _prepare(self) -> None:
        if self.format == AOF_DIR:
            manifest = read_manifest(find_manifest(self.path))  # type: ignore[arg-type]
            if manifest.base is not None:
                self._parts.append(self._with_rdb(manifest.base) if self._starts_with_rdb(manifest.base)
                                   else (manifest.base, 0))
            for incr in manifest.incrs:
                if self._starts_with_rdb(incr):
                    raise CaptureError(f"{incr}: an incr file that starts with an RDB (only a base may)")
                self._parts.append((incr, 0))
        elif self.format == AOF:
            part = self._with_rdb(self.path) if self._starts_with_rdb(self.path) else (self.path, 0)
            if part[1] is None:
                self.format = RDB
            self._parts.append(part)
        else:
            self._parts.append((self.path, 0))

    # --- streaming -------------------------------------------------------------------------------

    def records(self) -> Iterator[Record]:
        """Every Command and BadLine in order, streamed from disk; each call reads the files anew."""
        self.commands = self.bad_lines = 0
        for record in self._all_records():
            if isinstance(record, BadLine):
                self.bad_lines += 1
            else:
                self.commands += 1
            yield record

    def command_records(self) -> Iterator[Command]:
        """Only the commands (bad lines are still counted in bad_lines)."""
        for record in self.records():
            if isinstance(record, Command):
                yield record

    def _all_records(self) -> Iterator[Record]:
        db: int | None = None
        for path, offset in self._parts:
            if offset is None:
                continue
            db = yield from self._part_records(path, offset, db)

    def _part_records(self, path: Path, offset: int, db: int | None) -> Generator[Record, None, int | None]:
        source, last_line = str(path), 0
        with open_bytes(path) as stream:
            if offset:
                stream.seek(offset)
            if self.format in TEXT_PARSERS:
                parser = TEXT_PARSERS[self.format](stream, source)
            else:
                parser = parse_aof(stream, source, offset, db)
            try:
                for record in parser:
                    last_line = record.line
                    if isinstance(record, Command):  # an AOF's db carries into its next file
                        db = record.db
                    yield record
            except DECOMPRESS_ERRORS as exc:
                yield BadLine(last_line + 1, f"the compressed data ends early or is damaged ({exc})", "", source)
        return db

    # --- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        """Remove the temporary files (decompressed copies, the extracted RDB); safe to call twice."""
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> "Capture":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_capture(path: Path | str) -> Capture:
    """Open a capture by its content: MONITOR output, a command file, an AOF, an AOF directory, an RDB."""
    return Capture(Path(path))
