"""The documented-differences catalogue: its data file, the labelling logic, and a real run.

The schema and labelling tests use the real data file and small synthetic records; the acceptance
test runs the default scenarios on the embedded Redis and Valkey and checks that every observable
entry the running Valkey version has is matched by a difference the run really found.
"""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import redis

from app import catalogue, config
from app.catalogue import (CatalogueError, applies_to, documentation_summary, label_differences,
                           load_catalogue, unmatched_entries, validate)
from app.scenarios import CLUSTER_SCENARIO_NAMES, SCENARIO_NAMES
from app.servers import EmbeddedServer
from app.stream_compare import command_name, find_call_entry, plain, usable_entries
from app.targets import Target
from app.test_runner import run_comparison

ENTRIES = load_catalogue()


def record(scenario: str, path: str, kind: str = "reply", **extra: Any) -> dict[str, Any]:
    return {"scenario": scenario, "path": path, "kind": kind, config.BASELINE: "a", config.CANDIDATE: "b", **extra}


def good_entry(**changes: Any) -> dict[str, Any]:
    entry = {"id": "VK81-EXAMPLE", "description": "d", "introduced_in": "8.1.0", "category": "reply",
             "source": "Valkey 8.1.0 release notes", "url": "https://github.com/valkey-io/valkey",
             "quote": "q", "observable": True,
             "match": [{"scenario": "basic_crud", "path": "replies.*"}]}
    entry.update(changes)
    return entry


# --- the data file ------------------------------------------------------------------------------------

def test_data_file_validates_and_ids_are_unique() -> None:
    raw = json.loads(catalogue.CATALOGUE_PATH.read_text(encoding="utf-8"))
    ids = [entry["id"] for entry in raw["entries"]]
    assert len(ids) == len(set(ids)) and len(ids) >= 30
    assert validate(raw) == raw["entries"]


def test_every_entry_says_where_it_is_documented() -> None:
    for entry in ENTRIES:
        assert entry["url"].startswith("https://github.com/valkey-io/"), entry["id"]
        assert len(entry["quote"]) >= 20 and len(entry["source"]) >= 10, entry["id"]
        # The id names the version that introduced the difference.
        version = entry["id"].split("-")[0][2:]
        assert not version or catalogue.parse_version(entry["introduced_in"])[:2] == (int(version[0]),
                                                                                      int(version[1])), entry["id"]


def test_match_rules_name_real_scenarios_and_kinds() -> None:
    for entry in ENTRIES:
        for rule in entry["match"]:
            assert rule["scenario"] == "*" or rule["scenario"] in (*SCENARIO_NAMES, *CLUSTER_SCENARIO_NAMES), \
                (entry["id"], rule)
            assert rule.get("kind") in (None, *catalogue.KNOWN_KINDS), (entry["id"], rule)


def test_unobservable_entries_say_why_and_observable_ones_have_rules() -> None:
    for entry in ENTRIES:
        if entry["observable"]:
            assert entry["match"], entry["id"]
        else:
            assert len(entry["why_not_observable"]) > 20, entry["id"]


@pytest.mark.parametrize("broken, problem", [
    ([good_entry(), good_entry()], "duplicate id"),
    ([good_entry(quote="")], "missing or empty 'quote'"),
    ([good_entry(introduced_in="8.1")], "not a MAJOR.MINOR.PATCH"),
    ([good_entry(id="valkey-thing")], "does not read like"),
    ([good_entry(match=[])], "needs at least one match rule"),
    ([good_entry(observable=False, match=[])], "must say why_not_observable"),
    ([good_entry(match=[{"scenario": "basic_crud"}])], "must have scenario and path"),
    ([good_entry(match=[{"scenario": "basic_crud", "path": "x", "kind": "latency"}])], "not a kind"),
    ([good_entry(url="github.com/x")], "https://"),
    ([good_entry(commands="SET")], "commands must be a list"),
    ([good_entry(commands=["set"])], "not uppercase command names"),
    ([good_entry(commands=["CLIENT  LIST", None])], "not uppercase command names"),
    ([good_entry(commands=["SET", "GET", "SET"])], r"\['SET'\] more than once"),
])
def test_validation_names_the_problem(broken: list[dict[str, Any]], problem: str) -> None:
    with pytest.raises(CatalogueError, match=problem):
        validate({"entries": broken})


def test_commands_name_commands_and_subcommands_or_nothing() -> None:
    good = [good_entry(id="VK81-A", commands=["SET", "CLIENT LIST", "GEORADIUSBYMEMBER_RO", "CLIENT IMPORT-SOURCE"]),
            good_entry(id="VK81-B", commands=[]), good_entry(id="VK81-C")]
    assert validate({"entries": good}) == good


def test_every_entry_names_the_commands_it_concerns() -> None:
    for entry in ENTRIES:
        assert isinstance(entry.get("commands"), list), entry["id"]
    by_id = {entry["id"]: entry for entry in ENTRIES}
    # A difference in a command's reply names that command; a new config default names none.
    assert "CLIENT LIST" in by_id["VK81-CLIENT-LIST-FILTERS"]["commands"]
    assert by_id["VK80-REPL-BACKLOG-SIZE"]["commands"] == []


def test_an_unreadable_file_is_a_catalogue_error(tmp_path: Path) -> None:
    bad = tmp_path / "catalogue.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(bad)


# --- labelling ----------------------------------------------------------------------------------------

def test_a_record_gets_the_first_matching_entry() -> None:
    broad = good_entry(id="VK80-BROAD", introduced_in="8.0.0", match=[{"scenario": "*", "path": "*"}])
    narrow = good_entry(id="VK81-NARROW", match=[{"scenario": "basic_crud", "path": "replies.SET*"}])
    labelled = label_differences([record("basic_crud", "replies.SET k v")], entries=[narrow, broad])
    assert labelled[0]["catalogue_id"] == "VK81-NARROW" and labelled[0]["documented"] is True
    labelled = label_differences([record("basic_crud", "replies.SET k v")], entries=[broad, narrow])
    assert labelled[0]["catalogue_id"] == "VK80-BROAD"


def test_kind_scenario_and_path_must_all_match() -> None:
    entry = good_entry(match=[{"scenario": "lua_and_tx", "path": "transactions.*", "kind": "error_text"}])
    records = [record("lua_and_tx", "transactions.nested MULTI.#2 MULTI", "error_text"),
               record("lua_and_tx", "transactions.nested MULTI.#3 EXEC", "reply"),
               record("basic_crud", "transactions.nested MULTI.#2 MULTI", "error_text"),
               record("lua_and_tx", "Transactions.nested MULTI.#2 MULTI", "error_text")]  # case matters
    assert [r["documented"] for r in label_differences(records, entries=[entry])] == [True, False, False, False]


def test_undocumented_records_are_labelled_so_and_input_is_not_changed() -> None:
    records = [record("basic_crud", "encodings.20-byte string", "encoding")]
    before = copy.deepcopy(records)
    labelled = label_differences(records, entries=[good_entry()])
    assert records == before
    assert labelled == [{**before[0], "documented": False, "catalogue_id": None, "source": None,
                         "source_url": None}]


def test_labels_carry_the_source_of_the_entry() -> None:
    labelled = label_differences([record("memory_eviction", "config.lazyfree-lazy-eviction", "config_default")],
                                 candidate_version="9.0.0")
    assert labelled[0]["catalogue_id"] == "VK80-LAZYFREE-DEFAULTS"
    assert "valkey.conf" in labelled[0]["source"] and labelled[0]["source_url"].endswith("valkey.conf")


def test_entries_apply_from_introduction_until_removal() -> None:
    reverted = good_entry(id="VK80-REVERTED", introduced_in="8.0.0", removed_in="8.1.0")
    assert [applies_to(reverted, v) for v in ("7.2.4", "8.0.0", "8.0.3", "8.1.0", "9.0.0")] == \
        [False, True, True, False, False]
    assert applies_to(reverted, None) is True
    assert applies_to(good_entry(introduced_in="9.0.0"), "9.0.0-rc2") is True
    records = [record("basic_crud", "replies.GET k")]
    assert label_differences(records, "9.0.0", entries=[reverted])[0]["documented"] is False
    assert label_differences(records, "8.0.1", entries=[reverted])[0]["documented"] is True


def test_unmatched_entries_are_observable_applicable_and_unseen() -> None:
    seen = good_entry(id="VK81-SEEN")
    unseen = good_entry(id="VK81-UNSEEN", match=[{"scenario": "pubsub", "path": "x"}])
    later = good_entry(id="VK99-LATER", introduced_in="99.0.0", match=[{"scenario": "pubsub", "path": "y"}])
    hidden = good_entry(id="VK81-HIDDEN", observable=False, why_not_observable="w", match=[])
    found = unmatched_entries([record("basic_crud", "replies.GET")], "9.0.0",
                              entries=[seen, unseen, later, hidden])
    assert [e["id"] for e in found] == ["VK81-UNSEEN"]


def test_summary_counts_documented_undocumented_and_significant() -> None:
    labelled = [{"documented": True}, {"documented": False, "significant": False},
                {"documented": False, "significant": True}, {"documented": False}]
    assert documentation_summary(labelled) == {"documented": 1, "undocumented": 3, "undocumented_significant": 2}


# --- acceptance: the catalogue against a real run -------------------------------------------------------

@pytest.fixture(scope="module")
def run_document(embedded_servers: dict) -> dict[str, Any]:
    targets = [Target(name=role, url=srv.url, source="embedded", owned=True)
               for role, srv in embedded_servers.items()]
    return run_comparison(targets, list(SCENARIO_NAMES), timeout_s=config.DEFAULT_COMMAND_TIMEOUT_S)


def test_every_applicable_observable_entry_is_found_by_the_run(run_document: dict[str, Any]) -> None:
    version = catalogue.candidate_version_of(run_document)
    assert version is not None, "the candidate is not a Valkey server"
    assert run_document["targets"][config.BASELINE]["identity"]["version"].startswith("7.2.")
    missing = unmatched_entries(run_document["differences"], version)
    details = {e["id"]: e["match"] for e in missing}
    assert not missing, f"entries documented for Valkey {version} that this run did not find: {details}"


def test_documented_differences_carry_their_entry(run_document: dict[str, Any]) -> None:
    labelled = label_differences(run_document["differences"], catalogue.candidate_version_of(run_document))
    by_id = {r["catalogue_id"] for r in labelled if r["documented"]}
    assert {"VK80-LAZYFREE-DEFAULTS", "VK90-HASH-FIELD-EXPIRATION", "VK81-SET-IFEQ"} <= by_id
    lazy = [r for r in labelled if r["path"] == "config.lazyfree-lazy-user-del"]
    assert lazy and lazy[0]["catalogue_id"] == "VK80-LAZYFREE-DEFAULTS"
    assert (lazy[0]["values"][config.BASELINE], lazy[0]["values"][config.CANDIDATE]) == ("no", "yes")
    summary = documentation_summary(labelled)
    assert summary["documented"] + summary["undocumented"] == len(run_document["differences"])


def test_server_name_is_a_metric_and_confirmed_by_the_identity(run_document: dict[str, Any]) -> None:
    # VK72-INFO-SERVER-NAME: server_defaults compares INFO fields; they also feed the target identity.
    labelled = label_differences(run_document["differences"], catalogue.candidate_version_of(run_document))
    name = [r for r in labelled if r["path"] == "info_values.Server.server_name"]
    assert name and name[0]["catalogue_id"] == "VK72-INFO-SERVER-NAME"
    assert (name[0]["values"][config.BASELINE], name[0]["values"][config.CANDIDATE]) == (None, "valkey")
    valkey = run_document["targets"][config.CANDIDATE]["identity"]
    assert valkey["product"] == "valkey" and valkey["redis_version_field"] == "7.2.4"
    assert run_document["targets"][config.BASELINE]["identity"]["product"] == "redis"



# --- call rules against what the embedded servers answer --------------------------------------------------

# (setup, call, the entry that should document the call's difference or None). The explorer found each;
# None marks a difference an option in the call would wrongly claim (the cursor " 1", not NOVALUES).
CALL_CASES = [
    ((), "CLIENT KILL NOT-FLAGS y", "VK90-CLIENT-FILTERS"),
    ((), "CLIENT LIST NOT-CAPA x", "VK90-CLIENT-FILTERS"),
    ((), "CLIENT LIST ID user rvc-user", "VK81-CLIENT-LIST-FILTERS"),
    ((), "CLIENT LIST TYPE REPLICA ID 0", "VK81-CLIENT-LIST-FILTERS"),
    ((), "CLIENT KILL ID 2 -1", "VK81-CLIENT-LIST-FILTERS"),
    ((), "CLIENT KILL TYPE PRIMARY", "VK80-CLIENT-KILL-MAXAGE"),
    ((), "CLUSTER REPLICATE x x", "VK90-CLUSTER-REPLICATE-NO-ONE"),
    (("RPUSH catk a",), "BITCOUNT catk 1 -100 -1", "VK80-BITCOUNT-BITPOS-ERRORS"),
    (("SADD catk 1",), "BITPOS catk 1 abc", "VK80-BITCOUNT-BITPOS-ERRORS"),
    ((), "EVAL 'return type(os.clock)' 0", "VK80-LUA-OS-CLOCK"),
    ((), "ACL CAT keyspace", "VK90-CLUSTER-FLUSHSLOT"),
    (("HSET catk f v",), "HSCAN catk 0 NOVALUES", "VK80-HSCAN-NOVALUES"),
    (("HSET catk f v",), "HSCAN catk ' 1' COUNT NOVALUES", None),
    ((), "CLIENT PAUSE 5 WRITE x", None),
]


def _replies(server: EmbeddedServer, lines: tuple[str, ...]) -> Any:
    """The last line's reply as the explorer compares it; the key and any pause are undone afterwards."""
    conn = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=10)
    conn.response_callbacks.clear()
    try:
        for line in lines:
            try:
                reply = plain(conn.execute_command(*shlex.split(line)))
            except redis.ResponseError as exc:
                reply = plain(exc)
        return reply
    finally:
        conn.execute_command("CLIENT", "UNPAUSE")
        conn.execute_command("DEL", "catk")
        conn.close()


@pytest.mark.parametrize("setup, call, expected", CALL_CASES, ids=[c[1] for c in CALL_CASES])
def test_call_rules_label_what_the_servers_answer(embedded_servers: dict[str, EmbeddedServer], setup: tuple[str, ...],
                                                  call: str, expected: str | None) -> None:
    base, cand = (_replies(embedded_servers[role], (*setup, call)) for role in (config.BASELINE, config.CANDIDATE))
    assert base != cand, f"{call}: the servers now agree ({base!r})"
    args = tuple(a.encode() for a in shlex.split(call))
    entries = usable_entries(embedded_servers[config.CANDIDATE].binary.version)
    entry = find_call_entry(command_name(args), args, base, cand, entries)
    assert (entry["id"] if entry else None) == expected, (call, base, cand)
