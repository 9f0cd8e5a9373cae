"""server_defaults: configuration defaults and the facts a server reports about itself, read only.

Test plan, in order (nothing is written and no CONFIG is changed, so it runs on any server):
  1. CONFIG GET *: every parameter is its own leaf in "config" (kind config_default), so a parameter
     present on one server only and every differing default is its own difference. Parameters whose
     value comes from how the process was started (STARTUP_PARAMETERS: the tool's own command line,
     the machine, the deployment) keep a placeholder in "config", so their presence is still compared,
     and their value goes to "startup", shown but not compared. Secrets are never recorded.
     Whether the reply's pairs come sorted by name goes to "ordering".
  2. INFO everything: the section names ("info_sections"), the field names of every section whose
     fields are fixed by the product ("info_fields", one leaf per field), the sub-fields of one
     per-command entry of the sections that hold one line per command ("info_entry_fields"), and the
     values of the fields that are facts of the build, identical in any two processes of one binary
     (STATIC_INFO_VALUES, "info_values").
  3. HELLO 3 on a RESP3 connection (minus the connection id), the field names of CLIENT INFO and the
     values of its fields that do not depend on the connection's history.
  4. The HELP texts of the admin commands (HELP_COMMANDS; SCRIPT, FUNCTION and PUBSUB HELP are
     recorded by lua_and_tx and pubsub), ACL CAT and the commands of a few ACL categories (sorted),
     MODULE LIST.
  5. LOLWUT and LOLWUT VERSION 9: only the last line (the version line) and the number of lines; the
     art itself is drawn at random.
A refused or renamed CONFIG or INFO is recorded as the error reply and gives WARN; the rest still runs.
COMMAND DOCS / COMMAND LIST are recorded by data_structures and are not repeated here.
"""

from __future__ import annotations

import re
from typing import Any

import redis

from app.config import ScenarioOptions
from app.scenarios.support import Reply, ScenarioContext, run_scenario

NAME = "server_defaults"

METRIC_KINDS = {
    # Values that come from the process's start, not from the product: shown for the reader only.
    "startup.*": "not_compared",
    # Facts of how the binary was built, not of the product: the compiler, and the allocator, which
    # the report header already shows with its caveat.
    "info_values.Server.gcc_version": "not_compared",
    "info_values.Memory.mem_allocator": "not_compared",
    "info_sections.*": "reply",
    "info_fields.*": "reply",
    "info_entry_fields.*": "reply",
    "info_values.*": "reply",
    "hello.*": "reply",
    "client_info.*": "reply",
    "help.*": "reply",
    "acl.*": "reply",
    "modules.*": "reply",
    "lolwut.*": "reply",
}

# What "config" holds for a parameter whose value is in "startup" (so presence is still compared).
STARTUP_PLACEHOLDER = "(set by how the server was started: value in startup, not compared)"
# CONFIG parameters whose value depends on how the process was started, not on the product.
# Measured: two fresh processes of one binary differ in port, dir and logfile only; the tool's own
# command line (app/servers.py EmbeddedServer.start) sets port, bind, dir, logfile, save, appendonly,
# daemonize, protected-mode and maxmemory; the rest follow the deployment or the machine.
STARTUP_PARAMETERS: dict[str, str] = {
    "port": "a free port per process (tool's command line)",
    "bind": "tool's command line",
    "dir": "a temporary directory per process (tool's command line)",
    "logfile": "inside dir (tool's command line)",
    "save": "tool's command line: no snapshots",
    "appendonly": "tool's command line: no AOF",
    "daemonize": "tool's command line",
    "protected-mode": "tool's command line",
    "maxmemory": "tool's command line (the embedded servers get the same ceiling)",
    "pidfile": "only set for a daemonized or configured server",
    "maxclients": "lowered to fit the process's open-files limit",
    "unixsocket": "deployment",
    "unixsocketperm": "deployment",
    "unixsocketgroup": "deployment",
    "tls-port": "deployment",
    "tls-cert-file": "deployment",
    "tls-key-file": "deployment",
    "tls-client-cert-file": "deployment",
    "tls-client-key-file": "deployment",
    "tls-ca-cert-file": "deployment",
    "tls-ca-cert-dir": "deployment",
    "tls-dh-params-file": "deployment",
    "aclfile": "deployment",
    "masteruser": "deployment",
    "primaryuser": "deployment",
}
# Parameters holding passwords: only whether they are set is recorded, never the value.
SECRET_PARAMETERS = frozenset({"requirepass", "masterauth", "primaryauth", "tls-key-file-pass",
                               "tls-client-key-file-pass"})

# INFO sections with one line per command, error, database or module seen so far: their field names
# follow the server's history, not the product, so only one known entry's sub-fields are recorded.
DYNAMIC_INFO_SECTIONS = frozenset({"Commandstats", "Latencystats", "Errorstats", "Keyspace", "Modules"})
# Entries of those sections that exist once this scenario has sent PING (section, field).
INFO_ENTRIES = (("Commandstats", "cmdstat_ping"), ("Latencystats", "latency_percentiles_usec_ping"))
# Fields of fixed sections that exist only in some states: one per listener (tcp, unix, tls), one per
# connected replica, and the loading_* fields shown while a dataset loads.
STATE_DEPENDENT_INFO_FIELDS = re.compile(r"^(listener\d+|slave\d+|loading_.+)$")
# INFO fields that are facts of the build and the product: equal in any two processes of one binary
# (measured), whatever the load. Left out on purpose: the build's git sha1 and build id (differ
# between any two builds, shown in the report's target identity), os and executable (the machine),
# hz and clients_hz (vary with load), io_threads_active (flips with load when io-threads > 1), and
# everything that mirrors a CONFIG parameter (already in "config").
STATIC_INFO_VALUES: dict[str, tuple[str, ...]] = {
    "Server": ("redis_version", "server_name", "valkey_version", "valkey_release_stage", "redis_mode",
               "server_mode", "arch_bits", "multiplexing_api", "atomicvar_api", "monotonic_clock",
               "gcc_version"),
    "Memory": ("mem_allocator",),
}

# CLIENT INFO fields whose value is the same for any fresh connection that has run only CLIENT INFO;
# ids, addresses, ages, buffer sizes and counters are left out.
STATIC_CLIENT_FIELDS = ("name", "flags", "capa", "db", "sub", "psub", "ssub", "multi", "watch", "events",
                        "cmd", "redir", "resp")

# Commands whose HELP text is recorded (lua_and_tx records SCRIPT/FUNCTION HELP, pubsub PUBSUB HELP).
HELP_COMMANDS = ("ACL", "CLIENT", "CLUSTER", "COMMAND", "COMMANDLOG", "CONFIG", "DEBUG", "LATENCY", "MEMORY",
                 "MODULE", "OBJECT", "SLOWLOG", "XGROUP", "XINFO")
# ACL categories whose commands are recorded: those where the servers were seen to differ in kind,
# not only by Valkey's new commands (blocking gains WAIT and WAITAOF on Valkey 9.0).
ACL_CATEGORIES = ("admin", "blocking", "connection", "dangerous", "scripting")
# LOLWUT versions asked for: the default, and 9 (Valkey 9.0's own piece).
LOLWUT_VERSIONS = (None, 9)


def run(client: redis.Redis, options: ScenarioOptions | None = None) -> dict[str, Any]:
    return run_scenario(NAME, client, options, plan)


def plan(ctx: ScenarioContext) -> None:
    config_parameters(ctx)
    info_facts(ctx)
    hello_reply(ctx)
    client_info(ctx)
    help_texts(ctx)
    acl_categories(ctx)
    ctx.record("modules", "MODULE LIST", "MODULE", "LIST", unordered=True)
    lolwut(ctx)


# --- 1. CONFIG GET * -----------------------------------------------------------------------------

def config_parameters(ctx: ScenarioContext) -> None:
    reply = ctx.call("CONFIG", "GET", "*")
    if _refused(ctx, "CONFIG GET *", reply):
        ctx.metrics["config"] = reply  # one leaf: the whole section is unknown on this server
        return
    pairs = _config_pairs(reply)
    ctx.put("ordering", "CONFIG GET * pairs sorted by name", [n for n, _ in pairs] == sorted(n for n, _ in pairs))
    for name, value in sorted(pairs):
        if name in SECRET_PARAMETERS:
            ctx.put("config", name, STARTUP_PLACEHOLDER)
            ctx.put("startup", name, "(set)" if value else "")
        elif name in STARTUP_PARAMETERS:
            ctx.put("config", name, STARTUP_PLACEHOLDER)
            ctx.put("startup", name, value)
        else:
            ctx.put("config", name, value)


def _config_pairs(reply: Reply) -> list[tuple[str, Any]]:
    """(name, value) in reply order, from a RESP2 flat list or a RESP3 map."""
    if isinstance(reply, dict):
        return list(reply.items())
    return list(zip(reply[0::2], reply[1::2]))


# --- 2. INFO everything --------------------------------------------------------------------------

def info_facts(ctx: ScenarioContext) -> None:
    ctx.call("PING")  # so that the per-command INFO sections hold an entry whose format is known
    reply = ctx.call("INFO", "everything")
    if _refused(ctx, "INFO everything", reply):
        ctx.metrics["info_sections"] = reply
        return
    sections = parse_info(reply)
    for section, fields in sections.items():
        ctx.put("info_sections", section, True)
        if section in DYNAMIC_INFO_SECTIONS:
            continue
        names = {name: True for name in fields if not STATE_DEPENDENT_INFO_FIELDS.match(name)}
        ctx.put("info_fields", section, names)
    for section, name in INFO_ENTRIES:
        entry = sections.get(section, {}).get(name)
        ctx.put("info_entry_fields", f"{section} {name}",
                [part.partition("=")[0] for part in entry.split(",")] if entry is not None else None)
    for section, names in STATIC_INFO_VALUES.items():
        fields = sections.get(section, {})
        values = {name: fields[name] for name in names if name in fields}
        ctx.put("info_values", section, values)


def parse_info(text: str) -> dict[str, dict[str, str]]:
    """INFO text -> {section: {field: value as sent}}, in the server's order."""
    sections: dict[str, dict[str, str]] = {}
    current = sections.setdefault("(no section)", {})
    for line in text.splitlines():
        if line.startswith("#"):
            current = sections.setdefault(line.lstrip("# ").strip(), {})
        elif ":" in line:
            name, _, value = line.partition(":")
            current[name] = value
    if not sections["(no section)"]:
        del sections["(no section)"]
    return sections


# --- 3. HELLO and CLIENT INFO ---------------------------------------------------------------------

def hello_reply(ctx: ScenarioContext) -> None:
    try:
        conn = ctx.connection(protocol=3)
        reply = ctx.call("HELLO", 3, conn=conn)
    except redis.RedisError as exc:  # no RESP3 at all: the connection's own HELLO failed
        ctx.warn(f"HELLO 3 failed: {exc}")
        ctx.metrics["hello"] = {"error": str(exc)}
        return
    if isinstance(reply, list):  # an array of name/value pairs, should a server answer so
        reply = dict(zip(reply[0::2], reply[1::2]))
    if isinstance(reply, dict) and "error" not in reply:
        reply = {name: value for name, value in reply.items() if name != "id"}  # the connection id
        for name, value in reply.items():
            ctx.put("hello", name, value)
    else:
        ctx.metrics["hello"] = reply


def client_info(ctx: ScenarioContext) -> None:
    reply = ctx.call("CLIENT", "INFO")
    if not isinstance(reply, str):
        ctx.metrics["client_info"] = reply
        return
    fields = parse_client_line(reply)
    ctx.put("client_info", "fields", {name: True for name in fields})
    ctx.put("client_info", "values", {name: fields[name] for name in STATIC_CLIENT_FIELDS if name in fields})


def parse_client_line(line: str) -> dict[str, str]:
    """'id=4 addr=... flags=N' -> {'id': '4', 'addr': '...', 'flags': 'N'}, in the server's order."""
    return dict(part.partition("=")[::2] for part in line.split())


# --- 4. HELP texts, ACL categories --------------------------------------------------------------

def help_texts(ctx: ScenarioContext) -> None:
    for command in HELP_COMMANDS:
        ctx.record("help", f"{command} HELP", command, "HELP")


def acl_categories(ctx: ScenarioContext) -> None:
    ctx.record("acl", "ACL CAT", "ACL", "CAT", unordered=True)
    for category in ACL_CATEGORIES:
        ctx.record("acl", f"ACL CAT {category}", "ACL", "CAT", category, unordered=True)


# --- 5. LOLWUT ---------------------------------------------------------------------------------------

def lolwut(ctx: ScenarioContext) -> None:
    for version in LOLWUT_VERSIONS:
        label = "LOLWUT" if version is None else f"LOLWUT VERSION {version}"
        reply = ctx.call("LOLWUT", *(("VERSION", version) if version is not None else ()))
        if not isinstance(reply, str):
            ctx.put("lolwut", label, reply)
            continue
        lines = reply.rstrip("\n").split("\n")
        ctx.put("lolwut", f"{label} last line", lines[-1])
        ctx.put("lolwut", f"{label} line count", len(lines))


# --- refusals ----------------------------------------------------------------------------------------

def _refused(ctx: ScenarioContext, what: str, reply: Reply) -> bool:
    """An error reply to a command this scenario needs: WARN (ctx.call already warned on NOPERM)."""
    if not (isinstance(reply, dict) and set(reply) == {"error"}):
        return False
    if not reply["error"].startswith("NOPERM"):
        ctx.warn(f"{what} refused: {reply['error']}")
    return True

