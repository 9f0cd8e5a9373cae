"""server_defaults against the real embedded servers: shape, read-only, the differences it reports (with
the value on each side), startup values kept but not compared, refusals, and equal metrics from two
processes of one binary."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from app import config
from app.compare import diff_metrics
from app.scenarios import server_defaults
from app.scenarios.server_defaults import STARTUP_PLACEHOLDER, parse_client_line, parse_info

B, C = config.BASELINE, config.CANDIDATE
SECTIONS = {"config", "startup", "ordering", "info_sections", "info_fields", "info_entry_fields", "info_values",
            "hello", "client_info", "help", "acl", "modules", "lolwut"}

# CONFIG defaults that differ between embedded Redis 7.2.4 and Valkey 9.0.0 (a value on each side).
CHANGED_DEFAULTS = {
    "lazyfree-lazy-eviction": ("no", "yes"),
    "lazyfree-lazy-expire": ("no", "yes"),
    "lazyfree-lazy-server-del": ("no", "yes"),
    "lazyfree-lazy-user-del": ("no", "yes"),
    "lazyfree-lazy-user-flush": ("no", "yes"),
    "replica-lazy-flush": ("no", "yes"),
    "slave-lazy-flush": ("no", "yes"),
    "repl-backlog-size": ("1048576", "10485760"),
    "syslog-ident": ("redis", "valkey"),
}
ONLY_ON_REDIS = {"dynamic-hz": "yes", "io-threads-do-reads": "no"}
ONLY_ON_VALKEY = {
    "active-defrag-cycle-us": "500", "aof-rewrite-cpulist": "", "availability-zone": "", "bgsave-cpulist": "",
    "bio-cpulist": "", "cluster-announce-client-ipv4": "", "cluster-announce-client-ipv6": "",
    "cluster-announce-client-port": "0", "cluster-announce-client-tls-port": "0", "cluster-blacklist-ttl": "60",
    "cluster-databases": "1", "cluster-manual-failover-timeout": "5000",
    "cluster-slot-migration-log-max-len": "1000", "cluster-slot-stats-enabled": "no",
    "commandlog-execution-slower-than": "10000", "commandlog-large-reply-max-len": "128",
    "commandlog-large-request-max-len": "128", "commandlog-reply-larger-than": "1048576",
    "commandlog-request-larger-than": "1048576", "commandlog-slow-execution-max-len": "128",
    "dual-channel-replication-enabled": "no", "extended-redis-compatibility": "no",
    "hide-user-data-from-log": "yes", "import-mode": "no", "log-format": "legacy",
    "log-timestamp-format": "legacy", "max-new-connections-per-cycle": "10",
    "max-new-tls-connections-per-cycle": "1", "mptcp": "no", "prefetch-batch-max-size": "16",
    "primaryauth": STARTUP_PLACEHOLDER, "primaryuser": STARTUP_PLACEHOLDER, "rdb-version-check": "strict",
    "rdma-bind": "", "rdma-completion-vector": "-1", "rdma-port": "0", "rdma-rx-size": "1048576",
    "repl-mptcp": "no", "server-cpulist": "", "slot-migration-max-failover-repl-bytes": "0",
    "tls-auth-clients-user": "off", "unixsocketgroup": STARTUP_PLACEHOLDER,
}
# INFO field names present on one server only, per section.
INFO_ONLY_ON_REDIS = {"Server": {"redis_mode", "atomicvar_api"}}
INFO_ONLY_ON_VALKEY = {
    "Server": {"server_name", "valkey_version", "valkey_release_stage", "server_mode", "clients_hz",
               "availability_zone"},
    "Clients": {"pubsub_clients", "watching_clients", "total_watched_keys", "paused_reason", "paused_actions",
                "paused_timeout_milliseconds"},
    "Memory": {"allocator_muzzy", "mem_cluster_slot_import", "mem_cluster_slot_export",
               "mem_overhead_db_hashtable_rehashing"},
    "Persistence": {"slot_migration_fork_in_progress"},
    "Stats": {"total_net_cluster_slot_import_bytes", "total_net_cluster_slot_export_bytes", "expired_fields",
              "expired_keys_with_volatile_items_stale_perc", "evicted_scripts", "io_threaded_freed_objects",
              "io_threaded_accept_processed", "io_threaded_poll_processed",
              "io_threaded_total_prefetch_batches", "io_threaded_total_prefetch_entries",
              "client_query_buffer_limit_disconnections", "client_output_buffer_limit_disconnections",
              "acl_access_denied_tls_cert"},
    "Replication": {"replicas_waiting_psync"},
}
INFO_VALUES = {
    B: {"Server": {"redis_version": "7.2.4", "redis_mode": "standalone", "arch_bits": "64",
                   "multiplexing_api": "epoll", "atomicvar_api": "c11-builtin",
                   "monotonic_clock": "POSIX clock_gettime", "gcc_version": "9.4.0"},
        "Memory": {"mem_allocator": "jemalloc-5.3.0"}},
    C: {"Server": {"redis_version": "7.2.4", "server_name": "valkey", "valkey_version": "9.0.0",
                   "valkey_release_stage": "ga", "server_mode": "standalone", "arch_bits": "64",
                   "multiplexing_api": "epoll", "monotonic_clock": "POSIX clock_gettime",
                   "gcc_version": "11.4.0"},
        "Memory": {"mem_allocator": "libc"}},
}
HELLO = {B: {"server": "redis", "version": "7.2.4", "proto": 3, "mode": "standalone", "role": "master",
             "modules": []},
         C: {"server": "valkey", "version": "9.0.0", "proto": 3, "mode": "standalone", "role": "master",
             "modules": []}}
CLIENT_FIELDS_ONLY_ON_VALKEY = {"capa", "watch", "tot-net-in", "tot-net-out", "tot-cmds"}
LOLWUT = {B: {"LOLWUT last line": "Redis ver. 7.2.4", "LOLWUT line count": 1,
              "LOLWUT VERSION 9 last line": "Redis ver. 7.2.4", "LOLWUT VERSION 9 line count": 1},
          C: {"LOLWUT last line": "Don't forget to have fun! Valkey ver. 9.0.0", "LOLWUT line count": 42,
              "LOLWUT VERSION 9 last line": "Don't forget to have fun! Valkey ver. 9.0.0",
              "LOLWUT VERSION 9 line count": 42}}
# Commands each ACL category holds on one server only (Redis 7.2.4 has none of its own).
ACL_ONLY_ON_VALKEY = {
    "ACL CAT admin": {"cluster|cancelslotmigrations", "cluster|flushslot", "cluster|getslotmigrations",
                      "cluster|migrateslots", "cluster|syncslots", "commandlog|get", "commandlog|len",
                      "commandlog|reset"},
    "ACL CAT blocking": {"wait", "waitaof"},
    "ACL CAT connection": {"client|capa", "client|import-source"},
    "ACL CAT dangerous": {"cluster|cancelslotmigrations", "cluster|flushslot", "cluster|getslotmigrations",
                          "cluster|migrateslots", "cluster|syncslots", "commandlog|get", "commandlog|len",
                          "commandlog|reset"},
    "ACL CAT scripting": {"script|show"},
}
DIFFERING_HELP = {"ACL HELP", "CLIENT HELP", "COMMAND HELP", "COMMANDLOG HELP"}


def config_snapshot(conn: redis.Redis) -> dict[str, str]:
    reply = conn.execute_command("CONFIG", "GET", "*")
    return dict(reply.items()) if isinstance(reply, dict) else dict(zip(reply[0::2], reply[1::2]))


@pytest.fixture(scope="module")
def runs(embedded_servers: dict) -> dict[str, dict[str, Any]]:
    """One run per server, with the CONFIG and key count just before and after it."""
    out = {}
    for role, srv in embedded_servers.items():
        with redis.Redis(port=srv.port, decode_responses=True) as conn:
            before, keys_before = config_snapshot(conn), conn.dbsize()
            result = server_defaults.run(conn)
            out[role] = {"result": result, "config_before": before, "config_after": config_snapshot(conn),
                         "keys_before": keys_before, "keys_after": conn.dbsize(), "port": srv.port}
    return out


@pytest.fixture(scope="module")
def differences(runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = diff_metrics(server_defaults.NAME, runs[B]["result"]["metrics"], runs[C]["result"]["metrics"])
    return {record["path"]: record for record in found}


def metrics(runs: dict[str, dict[str, Any]], role: str) -> dict[str, Any]:
    return runs[role]["result"]["metrics"]


# --- shape, read only --------------------------------------------------------------------------------

@pytest.mark.parametrize("role", config.ROLES)
def test_contract_shape_and_every_section(runs: dict[str, dict[str, Any]], role: str) -> None:
    result = runs[role]["result"]
    assert set(result) == {"scenario", "status", "detail", "metrics"}
    assert result["scenario"] == "server_defaults" and result["status"] == "OK", result["detail"]
    assert set(result["metrics"]) == SECTIONS
    # Every parameter is its own leaf, a string as the server sent it.
    assert all(isinstance(v, str) for v in result["metrics"]["config"].values())
    assert len(result["metrics"]["config"]) == len(runs[role]["config_before"])


@pytest.mark.parametrize("role", config.ROLES)
def test_changes_no_config_and_writes_no_key(runs: dict[str, dict[str, Any]], role: str) -> None:
    run = runs[role]
    assert run["config_after"] == run["config_before"]
    assert run["keys_after"] == run["keys_before"]


@pytest.mark.parametrize("role", config.ROLES)
def test_startup_values_are_kept_but_never_compared(runs: dict[str, dict[str, Any]], role: str,
                                                    differences: dict[str, dict[str, Any]]) -> None:
    m = metrics(runs, role)
    assert m["startup"]["port"] == str(runs[role]["port"])
    assert m["startup"]["maxmemory"] == "268435456"  # config.EMBEDDED_MAXMEMORY, set by the tool
    assert m["startup"]["save"] == "" and m["startup"]["appendonly"] == "no"
    assert m["config"]["port"] == m["config"]["dir"] == STARTUP_PLACEHOLDER
    assert m["startup"]["requirepass"] == ""  # a secret: only whether it is set
    assert not [path for path in differences if path.startswith("startup.")]
    # Present on both servers, so the placeholder is no difference either.
    assert "config.port" not in differences and "config.dir" not in differences


# --- the differences, with the value on each side ------------------------------------------------------

def test_config_differences_are_exactly_these(differences: dict[str, dict[str, Any]]) -> None:
    found = {path.split(".", 1)[1]: (r["values"][B], r["values"][C]) for path, r in differences.items() if path.startswith("config.")}
    expected = {**CHANGED_DEFAULTS, **{n: (v, None) for n, v in ONLY_ON_REDIS.items()},
                **{n: (None, v) for n, v in ONLY_ON_VALKEY.items()}}
    assert found == expected
    assert {differences[f"config.{name}"]["kind"] for name in expected} == {"config_default"}
    assert differences["config.dynamic-hz"]["missing_on"] == C
    assert differences["config.import-mode"]["missing_on"] == B


def test_config_get_order(runs: dict[str, dict[str, Any]], differences: dict[str, dict[str, Any]]) -> None:
    # Valkey 9.0 sorts CONFIG GET's pairs by name; Redis 7.2 answers in its dict's (seeded) order.
    record = differences["ordering.CONFIG GET * pairs sorted by name"]
    assert (record["values"][B], record["values"][C], record["kind"]) == (False, True, "ordering")


def test_info_field_names_present_on_one_server_only(runs: dict[str, dict[str, Any]],
                                                     differences: dict[str, dict[str, Any]]) -> None:
    fields = {role: metrics(runs, role)["info_fields"] for role in config.ROLES}
    for section in set(fields[B]) | set(fields[C]):
        assert set(fields[B][section]) - set(fields[C][section]) == INFO_ONLY_ON_REDIS.get(section, set()), section
        assert set(fields[C][section]) - set(fields[B][section]) == INFO_ONLY_ON_VALKEY.get(section, set()), section
    record = differences["info_fields.Clients.pubsub_clients"]
    assert (record["values"][B], record["values"][C], record["kind"], record["missing_on"]) == (None, True, "reply", B)
    # Sections holding one line per command, error or database: only their presence and entry format.
    for role in config.ROLES:
        m = metrics(runs, role)
        assert "Commandstats" in m["info_sections"] and "Commandstats" not in m["info_fields"]
        assert m["info_entry_fields"]["Commandstats cmdstat_ping"] == ["calls", "usec", "usec_per_call",
                                                                      "rejected_calls", "failed_calls"]
        assert m["info_entry_fields"]["Latencystats latency_percentiles_usec_ping"] == ["p50", "p99", "p99.9"]
        assert not [name for name in m["info_fields"]["Server"] if name.startswith("listener")]


@pytest.mark.parametrize("role", config.ROLES)
def test_static_info_values(runs: dict[str, dict[str, Any]], role: str) -> None:
    assert metrics(runs, role)["info_values"] == INFO_VALUES[role]


@pytest.mark.parametrize("role", config.ROLES)
def test_hello_client_info_and_lolwut(runs: dict[str, dict[str, Any]], role: str) -> None:
    m = metrics(runs, role)
    assert m["hello"] == HELLO[role]  # the connection id is left out
    assert m["lolwut"] == LOLWUT[role]
    assert m["modules"] == {"MODULE LIST": []}
    assert m["client_info"]["values"]["cmd"] == "client|info" and m["client_info"]["values"]["resp"] == "2"
    assert "id" in m["client_info"]["fields"] and "id" not in m["client_info"]["values"]


def test_client_info_fields(runs: dict[str, dict[str, Any]], differences: dict[str, dict[str, Any]]) -> None:
    fields = {role: set(metrics(runs, role)["client_info"]["fields"]) for role in config.ROLES}
    assert fields[B] - fields[C] == set()
    assert fields[C] - fields[B] == CLIENT_FIELDS_ONLY_ON_VALKEY
    assert (differences["client_info.values.watch"]["values"][B], differences["client_info.values.watch"]["values"][C]) == (None, "0")


def test_help_texts(runs: dict[str, dict[str, Any]], differences: dict[str, dict[str, Any]]) -> None:
    help_paths = {path.split(".", 1)[1] for path in differences if path.startswith("help.")}
    assert help_paths == DIFFERING_HELP
    redis_help, valkey_help = metrics(runs, B)["help"], metrics(runs, C)["help"]
    assert redis_help["COMMANDLOG HELP"]["error"].startswith("ERR unknown command 'COMMANDLOG'")
    assert differences["help.COMMANDLOG HELP"]["kind"] == "availability"
    assert "    * MAXAGE <maxage>" in valkey_help["CLIENT HELP"]
    assert "    * MAXAGE <maxage>" not in redis_help["CLIENT HELP"]
    assert "    Return details about all Redis commands." in redis_help["COMMAND HELP"]
    assert "    Return details about all commands." in valkey_help["COMMAND HELP"]
    # DEBUG is refused by default on both (enable-debug-command no): the same error text.
    assert redis_help["DEBUG HELP"] == valkey_help["DEBUG HELP"]
    assert redis_help["DEBUG HELP"]["error"].startswith("ERR DEBUG command not allowed")


def test_acl_categories(runs: dict[str, dict[str, Any]], differences: dict[str, dict[str, Any]]) -> None:
    acl = {role: metrics(runs, role)["acl"] for role in config.ROLES}
    assert acl[B]["ACL CAT"] == acl[C]["ACL CAT"] == sorted(acl[B]["ACL CAT"])
    assert "blocking" in acl[B]["ACL CAT"]
    for label, extra in ACL_ONLY_ON_VALKEY.items():
        assert set(acl[B][label]) - set(acl[C][label]) == set(), label
        assert set(acl[C][label]) - set(acl[B][label]) == extra, label
        assert acl[C][label] == sorted(acl[C][label])
    assert {p for p in differences if p.startswith("acl.")} == {f"acl.{label}" for label in ACL_ONLY_ON_VALKEY}


def test_no_other_difference(differences: dict[str, dict[str, Any]]) -> None:
    accounted = ("config.", "ordering.", "info_fields.", "info_values.", "hello.", "client_info.", "help.",
                 "acl.", "lolwut.")
    assert [path for path in differences if not path.startswith(accounted)] == []
    values = {p for p in differences if p.startswith("info_values.")}
    assert values == {"info_values.Server.redis_mode", "info_values.Server.atomicvar_api",
                      "info_values.Server.server_name",
                      "info_values.Server.valkey_version", "info_values.Server.valkey_release_stage",
                      "info_values.Server.server_mode"}
    assert {p for p in differences if p.startswith("hello.")} == {"hello.server", "hello.version"}


# --- parsing, on real replies ----------------------------------------------------------------------------

@pytest.mark.parametrize("role", config.ROLES)
def test_parsers_read_real_replies(embedded_servers: dict, role: str) -> None:
    port = embedded_servers[role].port
    with redis.Redis(port=port, decode_responses=True) as conn:
        conn.response_callbacks.clear()  # the text as the server sent it
        info = parse_info(conn.execute_command("INFO", "everything"))
        line = parse_client_line(conn.execute_command("CLIENT", "INFO"))
        conn.client_setname("parser-check")
        named = parse_client_line(conn.execute_command("CLIENT", "INFO"))
    assert info["Server"]["tcp_port"] == str(port)
    assert info["Server"]["redis_version"] == "7.2.4"  # Valkey keeps it for compatibility
    assert "Keyspace" in info and "Commandstats" in info
    assert line["laddr"].endswith(f":{port}") and line["cmd"] == "client|info" and line["name"] == ""
    assert named["name"] == "parser-check"


# --- two processes of one binary, refusals, secrets -----------------------------------------------------

@pytest.mark.parametrize("role", config.ROLES)
def test_two_fresh_processes_of_one_binary_give_no_difference(fresh_server: Any, role: str) -> None:
    results = []
    for srv in (fresh_server(role), fresh_server(role)):
        with redis.Redis(port=srv.port) as conn:
            results.append(server_defaults.run(conn))
    assert [r["status"] for r in results] == ["OK", "OK"], [r["detail"] for r in results]
    # The processes do differ (port, dir, logfile), but only in values kept out of the comparison.
    assert results[0]["metrics"]["startup"]["port"] != results[1]["metrics"]["startup"]["port"]
    assert diff_metrics(server_defaults.NAME, results[0]["metrics"], results[1]["metrics"]) == []


PASSWORD = "not-in-any-report-7f3a"


@pytest.fixture
def guarded_server(fresh_server: Any) -> Iterator[Any]:
    """A Valkey with a password and a user that may not run CONFIG or LOLWUT."""
    srv = fresh_server(C, extra_args=("--requirepass", PASSWORD))
    with redis.Redis(port=srv.port, password=PASSWORD) as admin:
        admin.execute_command("ACL", "SETUSER", "limited", "on", ">limited-pw", "~*", "&*", "+@all",
                              "-config", "-lolwut")
    yield srv


def test_a_refused_config_is_recorded_warned_and_the_rest_still_runs(guarded_server: Any) -> None:
    with redis.Redis(port=guarded_server.port, username="limited", password="limited-pw") as conn:
        result = server_defaults.run(conn)
    assert result["status"] == "WARN"
    assert "CONFIG not permitted" in result["detail"] and "LOLWUT not permitted" in result["detail"]
    m = result["metrics"]
    assert m["config"]["error"].startswith("NOPERM")
    assert m["lolwut"]["LOLWUT"]["error"].startswith("NOPERM")
    assert m["info_values"] == INFO_VALUES[C] and m["hello"] == HELLO[C]
    assert {"wait", "waitaof"} <= set(m["acl"]["ACL CAT blocking"])


def test_secrets_are_never_recorded(guarded_server: Any) -> None:
    with redis.Redis(port=guarded_server.port, password=PASSWORD) as conn:
        result = server_defaults.run(conn)
    assert result["status"] == "OK", result["detail"]
    assert result["metrics"]["startup"]["requirepass"] == "(set)"
    assert result["metrics"]["config"]["requirepass"] == STARTUP_PLACEHOLDER
    assert PASSWORD not in json.dumps(result)


def test_a_renamed_config_is_recorded_and_warned(fresh_server: Any) -> None:
    srv = fresh_server(B, extra_args=("--rename-command", "CONFIG", ""))
    with redis.Redis(port=srv.port) as conn:
        result = server_defaults.run(conn)
    assert result["status"] == "WARN"
    assert "CONFIG GET * refused: ERR unknown command 'CONFIG'" in result["detail"]
    assert result["metrics"]["config"]["error"].startswith("ERR unknown command 'CONFIG'")
    assert "ordering" not in result["metrics"] and "startup" not in result["metrics"]
    assert result["metrics"]["info_values"] == INFO_VALUES[B]
