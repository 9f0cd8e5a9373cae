"""Shared scenario machinery: the result contract, raw replies, key prefixes, cleanup, CONFIG restore.

A scenario module defines its test plan as `plan(ctx)` and exposes `run(client, options=None)` through
`run_scenario`, which guarantees the contract: a dict with scenario/status/detail/metrics, never an
exception, keys cleaned up and CONFIG restored whatever happened.
"""

from __future__ import annotations

import base64
import hashlib
import math
import threading
from collections.abc import Callable, Iterable
from typing import Any

import redis

from app import config
from app.config import ScenarioOptions
from app.signals import GUARD, Interrupted

OK, WARN, FAIL = "OK", "WARN", "FAIL"
Reply = Any  # a JSON-safe reply: str, int, float, None, list, dict, or {"error": text}


# --- replies as the server sent them -------------------------------------------------------------

def derive_client(client: redis.Redis, *, protocol: int | None = None, raw: bool = True,
                  **overrides: Any) -> redis.Redis:
    """A new client to the same server (same host, port, db, auth, TLS, timeouts).

    raw=True clears redis-py's response callbacks, so replies are what the server sent, not reshaped.
    """
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    kwargs["decode_responses"] = False
    if protocol is not None:
        kwargs["protocol"] = protocol
        if int(protocol) < 3:  # redis-py 8 refuses its RESP3-only maintenance-notification options on RESP2
            kwargs.pop("maint_notifications_config", None)
            kwargs.pop("maint_notifications_pool_handler", None)
    kwargs.update(overrides)
    derived = redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class,
                                                               **kwargs))
    derived.auto_close_connection_pool = True  # close() must release the pool built here
    if raw:
        derived.response_callbacks.clear()
    return derived


def error_text(exc: redis.ResponseError) -> str:
    """The error line exactly as the server sent it (redis-py strips known codes such as NOSCRIPT)."""
    message = str(exc)
    code = getattr(exc, "status_code", None)
    return f"{code} {message}" if code and not message.startswith(code) else message


def plain(value: Any, prefix: str = "") -> Reply:
    """A reply made JSON-safe and run-independent: bytes as text, the key prefix as '{p}'.

    RESP3 sets become sorted lists and maps keep their keys, so unordered replies compare equal.
    """
    if isinstance(value, redis.ResponseError):
        return {"error": _unprefix(error_text(value), prefix)}
    if isinstance(value, bytes):
        try:
            return _unprefix(value.decode("utf-8"), prefix)
        except UnicodeDecodeError:
            return "b64:" + base64.b64encode(value).decode()
    if isinstance(value, str):
        return _unprefix(value, prefix)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (set, frozenset)):
        return sorted((plain(v, prefix) for v in value), key=repr)
    if isinstance(value, dict):
        return {str(plain(k, prefix)): plain(v, prefix) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, prefix) for v in value]
    return value


def _unprefix(text: str, prefix: str) -> str:
    return text.replace(prefix, "{p}") if prefix else text


def canonical(reply: Reply) -> Reply:
    """Sorted form of an unordered reply (SMEMBERS, KEYS, HGETALL pairs...), for content comparison."""
    if isinstance(reply, list):
        return sorted(reply, key=repr)
    return reply


# --- CONFIG changes are journalled so they can be undone from anywhere (finally, SIGINT, SIGTERM) ---

class ConfigJournal:
    """Original values of every CONFIG parameter the tool changed, per server, until restored."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, tuple[redis.Redis, dict[str, str]]] = {}

    def remember(self, client: redis.Redis, name: str, original: str) -> None:
        with self._lock:
            _, saved = self._entries.setdefault(id(client), (client, {}))
            saved.setdefault(name, original)

    def restore(self, client: redis.Redis | None = None) -> list[str]:
        """Put every remembered value back; returns the problems (empty when all restored)."""
        problems: list[str] = []
        with self._lock:
            targets = [k for k in self._entries if client is None or k == id(client)]
            for key in targets:
                conn, saved = self._entries[key]
                for name, value in list(saved.items()):
                    try:
                        conn.execute_command("CONFIG", "SET", name, value)
                        del saved[name]
                    except redis.RedisError as exc:
                        problems.append(f"could not restore {name}={value!r}: {exc}")
                if not saved:
                    del self._entries[key]
        return problems

    def pending(self) -> int:
        with self._lock:
            return sum(len(saved) for _, saved in self._entries.values())

    def pending_for(self, client: redis.Redis) -> dict[str, str]:
        """The originals still to be put back on one client's server."""
        with self._lock:
            return dict(self._entries.get(id(client), (client, {}))[1])


CONFIG_JOURNAL = ConfigJournal()


class StepSkipped(Exception):
    """A step the scenario may not or cannot do here; becomes WARN with the reason."""


# --- the context a scenario's plan works with ----------------------------------------------------

class ScenarioContext:
    """Everything a plan needs: a raw client, its key prefix, metric sections, and verdicts."""

    def __init__(self, name: str, client: redis.Redis, options: ScenarioOptions) -> None:
        self.name = name
        self.client = client
        self.options = options
        self.prefix = options.prefix + name + ":"
        # RESP2 is the baseline every client speaks; redis-py 8 would default to RESP3. Scenarios that
        # compare RESP3 ask for it explicitly with ctx.connection(protocol=3).
        self.raw = derive_client(client, protocol=2)
        self.metrics: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.failures: list[str] = []
        self.notes: list[str] = []
        self._extra_clients: list[redis.Redis] = [self.raw]
        # Every key name handed out: on a server the tool did not start, cleanup deletes these by name
        # instead of walking the whole keyspace with SCAN (O(own keys), not O(keyspace)).
        self.written: set[str] = set()
        self.keyspace_own = True  # set by a plan that walks the keyspace (see keyspace_is_own)

    # keys -------------------------------------------------------------------------------------
    def key(self, name: str) -> str:
        full = self.prefix + name
        self.written.add(full)
        return full

    def own_keys(self, name_prefix: str = "") -> list[bytes]:
        """This scenario's keys that exist (those starting with key(name_prefix)): by SCAN on the tool's
        own server, by name elsewhere."""
        start = self.prefix + name_prefix
        if self.options.server_is_owned:
            return scan_keys(self.raw, glob_escape(start) + "*")
        names = sorted(n for n in self.written if n.startswith(start))
        found: list[bytes] = []
        for start in range(0, len(names), 500):
            batch = names[start:start + 500]
            pipe = self.raw.pipeline(transaction=False)
            for name in batch:
                pipe.execute_command("EXISTS", name)
            found.extend(n.encode() for n, there in zip(batch, pipe.execute()) if there)
        return found

    def cleanup(self) -> int:
        """Delete this scenario's keys (SCAN + DEL by prefix, or DEL by name); returns how many were deleted."""
        keys = self.own_keys()
        for start in range(0, len(keys), 500):
            self.raw.execute_command("DEL", *keys[start:start + 500])
        return len(keys)

    # clients ----------------------------------------------------------------------------------
    def connection(self, *, protocol: int | None = None, raw: bool = True, **overrides: Any) -> redis.Redis:
        """Another connection to the same server (RESP3, a second client for WATCH or pub/sub...)."""
        conn = derive_client(self.client, protocol=protocol, raw=raw, **overrides)
        self._extra_clients.append(conn)
        return conn

    # replies ----------------------------------------------------------------------------------
    def call(self, *args: Any, conn: redis.Redis | None = None) -> Reply:
        """Send one command and return its plain reply; an error reply is a value, not an exception."""
        _note_script(self.options, args)
        try:
            return plain((conn or self.raw).execute_command(*args), self.prefix)
        except redis.ResponseError as exc:
            reply = plain(exc, self.prefix)
            if reply["error"].startswith("NOPERM"):
                # An ACL refusal says nothing about the server's behaviour: the comparison is incomplete.
                self.warn(f"{args[0]} not permitted for this user: {reply['error']}")
            return reply

    def record(self, section: str, label: str, *args: Any, conn: redis.Redis | None = None,
               unordered: bool = False) -> Reply:
        """Send a command and store its reply under metrics[section][label]."""
        reply = self.call(*args, conn=conn)
        if unordered:
            reply = canonical(reply)
        self.metrics.setdefault(section, {})[label] = reply
        return reply

    def put(self, section: str, label: str, value: Any) -> Any:
        self.metrics.setdefault(section, {})[label] = value
        return value

    # server-wide changes ----------------------------------------------------------------------
    def require_server_changes(self, what: str) -> None:
        """Raise StepSkipped unless server-wide changes are allowed and cannot hurt anyone's data."""
        if not self.options.allow_server_changes:
            raise StepSkipped(f"{what} skipped: it changes server-wide state; allow it with "
                              "--allow-server-changes (only on a server you can disturb)")
        if not self.options.server_is_owned:
            foreign = self.foreign_key_count()
            if foreign:
                raise StepSkipped(f"{what} skipped: the server holds {foreign} keys that are not this "
                                  "tool's, which it could evict or disturb; use an empty server or database")

    def foreign_key_count(self) -> int:
        """Keys in any database that this run did not write (eviction reaches every database): INFO keyspace
        minus this scenario's own keys and the run journal, never a walk over the keyspace."""
        keyspace = self.client.info("keyspace")
        total = sum(int(db["keys"]) for db in keyspace.values() if isinstance(db, dict))
        journal = 1 if self.raw.execute_command("EXISTS", config.JOURNAL_KEY) else 0
        return max(0, total - len(self.own_keys()) - journal)

    def keyspace_is_own(self) -> bool:
        """True when this database holds no key but the tool's: a keyspace-wide probe (SCAN without a
        collection, KEYS) then costs nothing to anyone. DBSIZE, O(1)."""
        if self.options.server_is_owned:
            return True
        return int(self.raw.execute_command("DBSIZE")) <= len(self.own_keys()) + 1

    def config_get(self, name: str) -> str | None:
        """CONFIG GET of one parameter; refused or renamed CONFIG becomes StepSkipped (WARN)."""
        try:
            reply = self.raw.execute_command("CONFIG", "GET", name)
        except redis.ResponseError as exc:
            raise StepSkipped(f"CONFIG GET {name} refused: {error_text(exc)}") from exc
        pairs = plain(reply)
        if isinstance(pairs, dict):
            return pairs.get(name)
        return pairs[1] if len(pairs) >= 2 else None

    def config_set(self, name: str, value: Any) -> None:
        """CONFIG SET that is undone when the scenario ends, whatever happens."""
        self.require_server_changes(f"CONFIG SET {name}")
        original = self.config_get(name)
        if original is None:
            raise StepSkipped(f"CONFIG parameter {name} does not exist on this server")
        CONFIG_JOURNAL.remember(self.raw, name, original)
        if self.options.journal is not None:  # written on the server before the change: survives a kill
            self.options.journal.remember_config(name, original)
        try:
            self.raw.execute_command("CONFIG", "SET", name, value)
        except redis.ResponseError as exc:
            raise StepSkipped(f"CONFIG SET {name} refused: {error_text(exc)}") from exc

    # verdicts ---------------------------------------------------------------------------------
    def check(self, condition: bool, failure: str) -> bool:
        if not condition:
            self.failures.append(failure)
        return condition

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def skippable(self, step: Callable[[], None]) -> None:
        """Run a step; if it is skipped for safety or permission, note WARN and carry on."""
        try:
            step()
        except StepSkipped as exc:
            self.warn(str(exc))
        except redis.exceptions.NoPermissionError as exc:
            self.warn(f"{getattr(step, '__name__', 'step')} not permitted: {error_text(exc)}")

    def close(self) -> None:
        for conn in self._extra_clients:
            try:
                conn.close()
            except redis.RedisError:
                pass  # closing a dead connection has nothing left to release


def scan_keys(raw: redis.Redis, pattern: str, count: int = 1000) -> list[bytes]:
    """Every key matching a pattern, by SCAN (never KEYS), on a client with raw replies."""
    keys: list[bytes] = []
    cursor: bytes | int = 0
    while True:
        cursor, page = raw.execute_command("SCAN", cursor, "MATCH", pattern, "COUNT", count)
        keys.extend(page)
        if int(cursor) == 0:
            return sorted(set(keys))


SCRIPT_COMMANDS = frozenset({"EVAL", "EVAL_RO"})


def _note_script(options: ScenarioOptions, args: tuple[Any, ...]) -> None:
    """Remember the SHA1 of every script sent with EVAL or SCRIPT LOAD: they stay in the server's script
    cache, which cannot be emptied of one script without SCRIPT FLUSH (that would remove everyone's)."""
    if options.scripts is None or len(args) < 2:
        return
    name = str(args[0]).upper()
    body = args[1] if name in SCRIPT_COMMANDS else args[2] if name == "SCRIPT" and len(args) > 2 and \
        str(args[1]).upper() == "LOAD" else None
    if body is not None:
        text = body if isinstance(body, bytes) else str(body).encode()
        options.scripts.add(hashlib.sha1(text).hexdigest())


def skipped(reason: str) -> dict[str, str]:
    """A metric whose step did not run here (it would have cost others too much): never compared."""
    return {"skipped": reason}


def is_skipped(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"skipped"}


def glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def result(name: str, status: str, detail: str, metrics: dict[str, Any]) -> dict[str, Any]:
    return {"scenario": name, "status": status, "detail": detail, "metrics": metrics}


def run_scenario(name: str, client: redis.Redis, options: ScenarioOptions | None,
                 plan: Callable[[ScenarioContext], None]) -> dict[str, Any]:
    """Run a plan under the contract: always a dict, keys deleted and CONFIG restored afterwards."""
    options = options or ScenarioOptions()
    try:
        ctx = ScenarioContext(name, client, options)
    except Exception as exc:  # noqa: BLE001 - the contract: a scenario never raises
        return result(name, FAIL, f"could not connect: {_describe(exc)}", {})
    crash: str | None = None
    try:
        if options.server_is_owned:
            ctx.cleanup()  # leftovers of an interrupted earlier run with the same prefix
        plan(ctx)
    except StepSkipped as exc:
        ctx.warn(str(exc))
    except Interrupted as exc:
        crash = f"interrupted by {exc}: partial result"
        exc.partial = result(name, FAIL, crash, ctx.metrics)
        raise
    except Exception as exc:  # noqa: BLE001 - turned into FAIL with the reason
        crash = _describe(exc)
    finally:
        with GUARD.deferred():  # a second Ctrl-C must not break the restore and the cleanup
            problems = CONFIG_JOURNAL.restore(ctx.raw)
            if options.journal is not None:
                options.journal.keep_pending(CONFIG_JOURNAL.pending_for(ctx.raw))
            try:
                ctx.cleanup()
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                problems.append(f"cleanup failed: {_describe(exc)}; keys with the prefix {ctx.prefix} may be "
                                "left: ./rvc --cleanup removes them")
            ctx.close()
    return result(name, *_verdict(ctx, crash, problems), ctx.metrics)


def _verdict(ctx: ScenarioContext, crash: str | None, problems: list[str]) -> tuple[str, str]:
    if crash:
        return FAIL, "; ".join([f"error: {crash}", *ctx.failures, *problems])
    if ctx.failures or problems:
        return FAIL, "; ".join([*ctx.failures, *problems])
    if ctx.warnings:
        return WARN, "; ".join(ctx.warnings)
    return OK, "; ".join(ctx.notes) or "completed"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, redis.ResponseError):
        return error_text(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def sizes_around(threshold: int) -> Iterable[int]:
    """Element counts or lengths just at and just past a threshold (encoding conversion points)."""
    return (threshold, threshold + 1)
