"""The run journal: what a run changed on a server the tool did not start, kept on that server itself, so
that a run killed outright (SIGKILL, the OOM killer, a CI job's kill -9) can be repaired by the next one.

Before the first server-wide change a run writes its entry into the hash JOURNAL_KEY of its database:
run id, key prefix, host and pid, the client id of its connection, a lease it renews, and the original
value of every CONFIG parameter it changes (written before the change). A copy goes to a local file in
the cache (the server's copy could be evicted by the run's own memory fill). A run that starts and finds
another run's entry:
  - refuses with one line when that run is alive (its client is in CLIENT LIST and its lease is fresh);
  - otherwise repairs what it left: CONFIG values put back, its function libraries deleted, its keys
    deleted (SCAN MATCH prefix*), and the entry removed; the report says so.
`./rvc --cleanup` repairs every entry, alive or not, and removes any rvc keys and libraries left without
an entry. Key names and library names carry the run id, so nothing of anyone else's is touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from app import config
from app.redaction import redact
from app.scenarios.support import derive_client
from app.servers import pid_alive

JOURNAL_KEY = config.JOURNAL_KEY
LEASE_S = 60.0       # a run that has not renewed its lease for this long is dead (frozen, or gone)
RENEW_EVERY_S = 10.0
CLEANUP_SCAN_COUNT = 10_000  # large pages: a repair walks the keyspace in few round trips
DEL_BATCH = 500
# Every key and function library a run writes carries its hex run id ("rvc:1a2b3c:", "rvc_1a2b3c_").
ALL_KEYS_OF_TOOL = "rvc:[0-9a-f]*:*"
ALL_LIBRARIES_OF_TOOL = "rvc_[0-9a-f]*_*"


class RunActive(Exception):
    """Another run of the tool is using this server right now; one line naming it."""


@dataclass
class Entry:
    """One run's journal entry, as stored (JSON) in the hash field named by its run id."""

    run: str
    prefix: str
    db: int
    host: str = ""
    pid: int = 0
    client_id: int | None = None
    started: float = field(default_factory=time.time)
    lease_until: float = 0.0
    config: dict[str, str] = field(default_factory=dict)

    def dump(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def load(cls, text: str | bytes) -> "Entry | None":
        try:
            raw = json.loads(text)
            return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})
        except (ValueError, TypeError, KeyError):
            return None

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"run {self.run} (started {when} on {self.host or '?'}, pid {self.pid})"


def library_pattern(prefix: str) -> str:
    """The function libraries a run's scenarios load: the prefix with non-alphanumerics as '_' (lua_and_tx)."""
    return re.sub(r"[^A-Za-z0-9]", "_", prefix) + "*"


def _raw(client: redis.Redis) -> redis.Redis:
    """A connection of its own to the same server, RESP2, raw replies."""
    return derive_client(client, protocol=2)


class RunJournal:
    """This run's entry on one server: opened before the scenarios, updated as they go, closed at the end."""

    def __init__(self, client: redis.Redis, run_id: str, prefix: str, target_url: str) -> None:
        self.client = _raw(client)
        self.db = int(client.connection_pool.connection_kwargs.get("db") or 0)
        self.entry = Entry(run=run_id, prefix=prefix, db=self.db, host=socket.gethostname(), pid=os.getpid())
        self.local = local_path(target_url, run_id)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.repaired: list[str] = []
        self.server_copy_failed: str | None = None

    # --- opening: other runs first ---------------------------------------------------------------------
    def open(self) -> list[str]:
        """Repair dead runs, refuse when another is alive, then write this run's entry. Returns what was
        repaired (one line each)."""
        for entry in other_entries(self.client, self.entry.run):
            if is_alive(self.client, entry):
                raise RunActive(f"another run of the tool is using this server: {entry.describe()}; "
                                "wait for it, or stop it (a dead run is repaired automatically)")
            self.repaired.append(repair(self.client, entry))
        for entry in local_entries_for(self.local.parent, self.entry.run):
            if not pid_alive(entry.pid) and not _on_server(self.client, entry):
                self.repaired.append(repair(self.client, entry))
                _remove(self.local.parent / f"{entry.run}.json")
        self.entry.client_id = int(self.client.execute_command("CLIENT", "ID"))
        self._write()
        self._renewer = threading.Thread(target=self._renew_loop, name="rvc-journal-lease", daemon=True)
        self._renewer.start()
        return self.repaired

    # --- as the run goes -------------------------------------------------------------------------------
    def remember_config(self, name: str, original: str) -> None:
        """Before a CONFIG SET: its original value, on the server and in the local copy."""
        with self._lock:
            self.entry.config.setdefault(name, original)
            self._write()

    def keep_pending(self, pending: dict[str, str]) -> None:
        """After a restore: only what is still to be put back stays in the entry."""
        with self._lock:
            self.entry.config = {k: v for k, v in self.entry.config.items() if k in pending}
            self._write()

    def _write(self) -> None:
        """The local copy first, then the server's; a server that refuses the write (full, read-only, no
        permission) leaves the local copy, which this machine's next run repairs from."""
        self.entry.lease_until = time.time() + LEASE_S
        text = self.entry.dump()
        self.local.parent.mkdir(parents=True, exist_ok=True)
        partial = self.local.with_suffix(".part")
        partial.write_text(text)
        os.replace(partial, self.local)
        try:
            self.client.execute_command("HSET", JOURNAL_KEY, self.entry.run, text)
        except redis.RedisError as exc:
            self.server_copy_failed = f"the journal could not be written on the server ({exc}); it is kept in {self.local}"

    def _renew_loop(self) -> None:
        renewer = _raw(self.client)
        try:
            while not self._stop.wait(RENEW_EVERY_S):
                with self._lock:
                    self.entry.lease_until = time.time() + LEASE_S
                    try:
                        renewer.execute_command("HSET", JOURNAL_KEY, self.entry.run, self.entry.dump())
                    except redis.RedisError:
                        pass  # the server is down or frozen: the run itself fails and reports it
        finally:
            renewer.close()

    # --- the end -----------------------------------------------------------------------------------------
    def close(self, restored: bool) -> None:
        """Remove the entry when everything was put back; keep it (for the next run to repair) otherwise."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        if restored:
            try:
                self.client.execute_command("HDEL", JOURNAL_KEY, self.entry.run)
                _remove(self.local)
            except redis.RedisError:
                pass  # left for the next run, which repairs it
        self.client.close()


# --- reading and repairing ---------------------------------------------------------------------------------

def local_path(target_url: str, run_id: str) -> Path:
    """The local copy of a run's entry: one folder per server (its URL without credentials)."""
    server = hashlib.sha1(redact(target_url).encode()).hexdigest()[:16]
    return config.cache_dir() / "journals" / server / f"{run_id}.json"


def local_entries_for(folder: Path, own_run: str) -> list[Entry]:
    if not folder.is_dir():
        return []
    entries = [Entry.load(p.read_text()) for p in folder.glob("*.json") if p.stem != own_run]
    return [e for e in entries if e is not None]


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass  # already gone


def _on_server(client: redis.Redis, entry: Entry) -> bool:
    return any(e.run == entry.run for e in all_entries(client))


def _databases(client: redis.Redis) -> list[int]:
    """Every database the server has (CONFIG GET databases); just the connection's when CONFIG is refused.
    `client` has raw replies (a flat [name, value] list)."""
    try:
        reply = client.execute_command("CONFIG", "GET", "databases")
        return list(range(int(reply[1])))
    except (redis.RedisError, IndexError, ValueError):
        return [int(client.connection_pool.connection_kwargs.get("db") or 0)]


def all_entries(client: redis.Redis) -> list[Entry]:
    """Every journal entry in every database (one HGETALL per database: cheap, never O(keyspace))."""
    found = []
    home = int(client.connection_pool.connection_kwargs.get("db") or 0)
    conn = _raw(client)
    try:
        for db in _databases(conn):
            conn.execute_command("SELECT", db)
            fields = conn.execute_command("HGETALL", JOURNAL_KEY) or []
            for value in fields[1::2]:
                entry = Entry.load(value)
                if entry is not None:
                    entry.db = db
                    found.append(entry)
    finally:
        conn.execute_command("SELECT", home)
        conn.close()
    return found


def other_entries(client: redis.Redis, own_run: str) -> list[Entry]:
    return [e for e in all_entries(client) if e.run != own_run]


def is_alive(client: redis.Redis, entry: Entry) -> bool:
    """Alive: its lease is fresh and its connection is still there (a frozen run's lease runs out)."""
    if entry.lease_until < time.time():
        return False
    if entry.client_id is None:
        return True
    try:
        return bool(client.execute_command("CLIENT", "LIST", "ID", entry.client_id))
    except redis.RedisError:
        return True  # CLIENT LIST refused: the lease decides


def repair(client: redis.Redis, entry: Entry) -> str:
    """Put back what a dead run left: CONFIG, function libraries, keys; one line saying what was done."""
    conn = _raw(client)
    done: list[str] = []
    try:
        conn.execute_command("SELECT", entry.db)
        for name, value in entry.config.items():
            conn.execute_command("CONFIG", "SET", name, value)
        if entry.config:
            done.append("restored CONFIG " + ", ".join(f"{k}={v!r}" for k, v in sorted(entry.config.items())))
        libraries = delete_libraries(conn, library_pattern(entry.prefix))
        if libraries:
            done.append(f"deleted {libraries} function librar{'y' if libraries == 1 else 'ies'}")
        keys = delete_keys(conn, _glob_escape(entry.prefix) + "*", _databases(conn))
        if keys:
            done.append(f"deleted {keys} keys")
        conn.execute_command("SELECT", entry.db)
        conn.execute_command("HDEL", JOURNAL_KEY, entry.run)
    finally:
        conn.close()
    return f"repaired the leftovers of {entry.describe()}: " + ("; ".join(done) or "nothing was left")


def delete_libraries(conn: redis.Redis, pattern: str) -> int:
    try:
        listing = conn.execute_command("FUNCTION", "LIST", "LIBRARYNAME", pattern)
    except redis.ResponseError:
        return 0  # no functions on this server (or not permitted): nothing of ours can be there
    names = [lib[lib.index(b"library_name") + 1] for lib in listing if b"library_name" in lib]
    for name in names:
        conn.execute_command("FUNCTION", "DELETE", name)
    return len(names)


def delete_keys(conn: redis.Redis, pattern: str, databases: list[int]) -> int:
    """SCAN MATCH with large pages in every database, DEL in batches: never KEYS, never a FLUSH."""
    deleted = 0
    for db in databases:
        conn.execute_command("SELECT", db)
        cursor: bytes | int = 0
        while True:
            cursor, page = conn.execute_command("SCAN", cursor, "MATCH", pattern, "COUNT", CLEANUP_SCAN_COUNT)
            page = [k for k in page if k != JOURNAL_KEY.encode()]
            for start in range(0, len(page), DEL_BATCH):
                deleted += int(conn.execute_command("DEL", *page[start:start + DEL_BATCH]))
            if int(cursor) == 0:
                break
    return deleted


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def cleanup_everything(client: redis.Redis) -> list[str]:
    """--cleanup: repair every entry (alive or not: the user asked), then remove any key or function library
    of the tool that no entry named. One line per thing done."""
    done = [repair(client, entry) for entry in all_entries(client)]
    conn = _raw(client)
    try:
        libraries = delete_libraries(conn, ALL_LIBRARIES_OF_TOOL)
        keys = delete_keys(conn, ALL_KEYS_OF_TOOL, _databases(conn))
        conn.execute_command("SELECT", int(client.connection_pool.connection_kwargs.get("db") or 0))
    finally:
        conn.close()
    if libraries or keys:
        done.append(f"removed what no journal named: {keys} rvc:* keys, {libraries} rvc_* function libraries")
    return done or ["nothing of the tool's was left on this server"]
