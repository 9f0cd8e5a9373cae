"""What the rehearsal does, as data: routes, directions, the data set's shape, limits and timeouts."""

from __future__ import annotations

from dataclasses import dataclass, field

from app import config

# route name -> one line on what it does (the order is the run order and the report's row order).
ROUTES: dict[str, str] = {
    "rdb": "the source's BGSAVE file, loaded by the target at start",
    "aof": "the source's multi-part AOF directory (RDB preamble, the default), loaded by the target at start",
    "aof_no_preamble": "the same with aof-use-rdb-preamble no: the base file holds commands, not RDB",
    "dump_restore": "DUMP of every key, RESTORE ... ABSTTL on the target; FUNCTION DUMP / FUNCTION RESTORE",
    "migrate": "MIGRATE ... COPY REPLACE KEYS in batches from the source to the target; functions as dump_restore",
    "logical": "SCAN + type-wise reads and writes, TTLs as absolute times: needs no format compatibility",
    # Last: its write load changes the source, and the other routes then copy that too.
    "replication": "target runs REPLICAOF source: full sync, a write load on the source during and after it",
}

# direction name -> (source role, target role); roles as in app.config.
DIRECTIONS: dict[str, tuple[str, str]] = {
    "redis_to_valkey": (config.BASELINE, config.CANDIDATE),
    "valkey_to_redis": (config.CANDIDATE, config.BASELINE),
}
FORWARD, ROLLBACK = "redis_to_valkey", "valkey_to_redis"

# Route outcomes. works: moved and verified; partial: some of it refused (listed); refused: the target
# (or source) would not take it; failed: the tool could not complete the route; not_run: never tried.
WORKS, PARTIAL, REFUSED, FAILED, NOT_RUN = "works", "partial", "refused", "failed", "not_run"
OUTCOMES = (WORKS, PARTIAL, REFUSED, FAILED, NOT_RUN)

# Both servers get the same ceiling: big enough for 1M keys + big keys, noeviction so nothing is lost
# silently (an OOM is an error the route reports).
SERVER_MAXMEMORY = "6gb"
SERVER_ARGS: tuple[str, ...] = ("--maxmemory-policy", "noeviction")
# The default 5 s delay before a diskless sync only waits for more replicas: not part of the sync.
REPLICATION_SOURCE_CONFIG = {"repl-diskless-sync-delay": "0"}

# The encodings' thresholds, read from the source at generation time (CONFIG GET name).
THRESHOLD_CONFIGS = ("hash-max-listpack-entries", "hash-max-listpack-value", "set-max-intset-entries",
                     "set-max-listpack-entries", "set-max-listpack-value", "zset-max-listpack-entries",
                     "zset-max-listpack-value", "list-max-listpack-size")
# Strings: embstr up to 44 bytes on Redis 7.2 (OBJ_ENCODING_EMBSTR_SIZE_LIMIT); Valkey 9.0 embeds the key
# as well, so its limit depends on the key's length: the generator measures it, probing up to this length.
EMBSTR_LIMIT = 44
EMBSTR_PROBE_MAX = 64
# list-max-listpack-size -2 means nodes of 8 KiB: a list under this many bytes stays one listpack.
LIST_NODE_BYTES = {-1: 4096, -2: 8192, -3: 16384, -4: 32768, -5: 65536}

# Bulk keys: family -> share of --keys (the rest of the data set is specimens and big keys).
FAMILY_SHARES: dict[str, float] = {
    "string_int": 0.10, "string_embstr": 0.20, "string_raw": 0.08,
    "hash_listpack": 0.14, "hash_hashtable": 0.02,
    "list_listpack": 0.08, "list_quicklist": 0.005,
    "set_intset": 0.05, "set_listpack": 0.05, "set_hashtable": 0.01,
    "zset_listpack": 0.08, "zset_skiplist": 0.01,
    "stream": 0.01, "stream_groups": 0.01,
    "hyperloglog": 0.02, "geo": 0.02, "bitmap": 0.02,
}
# Of the bulk keys: share with a TTL in seconds (EXPIRE), in milliseconds (PEXPIRE), and expiring soon.
TTL_SECONDS_SHARE = 0.10
TTL_MILLIS_SHARE = 0.10
EXPIRING_SHARE = 0.005
# Expiring keys get a TTL in this range (ms), re-armed before every route: some expire during the move.
EXPIRING_TTL_MS = (300, 4000)
# TTLs that must outlive the run: seconds and milliseconds ranges.
LONG_TTL_S = (3600, 86400)
LONG_TTL_MS = (3_600_000, 86_400_000)
# Of the hashes, on a source with hash-field TTLs (HEXPIRE...): share with some fields expiring (long).
FIELD_TTL_SHARE = 0.05
# Logical databases the bulk keys are spread over, with their shares (not 0..n: a wrong mapping shows).
DATABASES: dict[int, float] = {0: 0.6, 1: 0.3, 7: 0.1}
# Streams: entries each, and how many a consumer group reads (and leaves pending), acks.
STREAM_ENTRIES = 12
STREAM_READ = 5
STREAM_ACK = 2

# Function libraries loaded on the source (FUNCTION LOAD): name -> Lua code.
FUNCTION_LIBRARIES: dict[str, str] = {
    "rvcmig_a": ("#!lua name=rvcmig_a\n"
                 "redis.register_function('rvcmig_get', function(keys, args) return redis.call('GET', keys[1]) end)\n"
                 "redis.register_function{function_name='rvcmig_ro', callback=function(keys, args) return #keys end, "
                 "flags={'no-writes'}, description='reads nothing'}\n"),
    "rvcmig_b": ("#!lua name=rvcmig_b\n"
                 "redis.register_function('rvcmig_incr', function(keys, args) return redis.call('INCR', keys[1]) end)\n"),
}

KEY_PREFIX = "rvcmig:"


@dataclass(frozen=True)
class DatasetSpec:
    """The generated data set: --keys bulk keys, plus specimens at every threshold and the big keys."""

    keys: int = 100_000
    big_string_bytes: int = 10 * config.MIB
    big_set_members: int = 1_000_000
    databases: dict[int, float] = field(default_factory=lambda: dict(DATABASES))
    seed: int = 20260101


# Tests and the default run differ only in size: the tests' big keys are smaller (the file must run
# in well under 2 minutes on a loaded 2-core machine), the bench uses the full sizes with 1M keys.
TEST_DATASET = DatasetSpec(keys=10_000, big_string_bytes=1 * config.MIB, big_set_members=100_000)

# Batches: keys per SCAN / pipeline round, elements per write command, keys per MIGRATE.
SCAN_COUNT = 1000
ELEMENTS_PER_COMMAND = 1000
MIGRATE_KEYS_PER_CALL = 200
GENERATE_COMMANDS_PER_FLUSH = 5000

# Replication: the write load (commands per batch, pause between batches), how long it goes on after
# the sync, and how long a sync may take before it counts as failed (plus 1 s per this many keys).
LOAD_BATCH = 50
LOAD_PAUSE_S = 0.005
LOAD_AFTER_SYNC_S = 1.0
SYNC_TIMEOUT_S = 60.0
SYNC_KEYS_PER_S_FLOOR = 20_000
# A sync refused by the replica shows in its log as one of these (the first match is reported).
SYNC_FAILURE_MARKS = ("Wrong signature", "Can't handle RDB format", "Failed trying to load the MASTER",
                      "This replica is sending an error to its master", "Bad file format")
# How many times the replica must refuse the sync (the same line again) before the route counts as refused.
SYNC_FAILURE_ATTEMPTS = 2
# Warning-level lines every server logs at start on this kind of machine: never the reason for a refusal.
LOG_NOISE_MARKS = ("Memory overcommit must be enabled", "no config file specified", "TCP backlog setting",
                   "Transparent Huge Pages", "Increased maximum number of open files")

# Waiting for BGSAVE / AOF rewrite, and a server's own start with a big file to load.
PERSIST_TIMEOUT_S = 300.0
LOAD_START_TIMEOUT_S = 300.0
# Socket timeout of the raw pipes: a 1M-member SMEMBERS or a 10 MB GET must fit.
PIPE_TIMEOUT_S = 120.0

# Batches of keys a scan-ahead thread may hold ready.
SCAN_AHEAD_BATCHES = 4
# Verification: batches sent ahead of the one being compared (the servers work while Python compares).
BATCHES_IN_FLIGHT = 2
# Verification: mismatches listed in full up to this many (all are counted).
MAX_LISTED_MISMATCHES = 200
# Slack added to the route's elapsed time when TTLs are compared (clock granularity, ms).
TTL_SLACK_MS = 50
