"""pubsub: subscription replies, message delivery, PUBSUB introspection and keyspace notifications,
read at the protocol level (RESP2 arrays versus RESP3 push frames), every wait bounded.

Test plan, in order:
  1. resp2 / resp3: the frames SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and their unsubscribe commands send
     (also when nothing is subscribed), PING while subscribed, the commands a subscribed RESP2 client
     is refused (exact error text) and what a subscribed RESP3 client may still run, RESET.
  2. ordering: the order of the frames "unsubscribe from all" sends for 8 channels, as an order class
     (insertion order, sorted, or hash order, which changes per process); channels and counts as content.
  3. delivery: a pipelined burst of channel, pattern and shard messages with binary payloads (NUL, CRLF,
     all byte values, UTF-8, 64 KiB): how many arrive, in order, byte-exact, and the frame type.
  4. timings: publish-to-receive latency, LATENCY_ROUNDS rounds of LATENCY_MESSAGES messages; the
     median of the round medians is compared (kind timing, the rounds are its "_samples"); the p90
     is recorded but not compared (too noisy between two processes of one binary).
  5. introspection: PUBSUB CHANNELS / NUMSUB / NUMPAT / SHARDCHANNELS / SHARDNUMSUB, filtered to this
     run's prefixed channel names (channels are server-wide), and the receiver counts PUBLISH returns.
  6. notifications: keyspace and keyevent notifications for a fixed sequence of commands, grouped per
     command, received under RESP2 and RESP3. Needs CONFIG SET notify-keyspace-events, so it is
     skipped with WARN unless server changes are allowed; the setting is restored afterwards.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from app.config import ScenarioOptions
from app.scenarios.scan_and_iter import order_class
from app.scenarios.support import Reply, ScenarioContext, glob_escape, canonical, plain, run_scenario

NAME = "pubsub"

# Longest wait for one expected frame when the client sets no socket timeout of its own; a frozen
# server becomes a FAIL after this, never a hang.
FRAME_TIMEOUT_S = 5.0
# How long "nothing more arrives" is watched after a burst.
QUIET_S = 0.05
# Channels in the unsubscribe-order probe: 8 makes a chance match of a random order negligible.
ORDER_PROBE = ("zeta", "alpha", "mid", "beta", "a10", "a9", "omega", "0")
BURST_SIZE = 300
# Payload bodies of the burst, cycled; each message is "<6-digit sequence>|<body>".
PAYLOAD_BODIES = (bytes(range(256)), b"", b"\x00", b"line\r\nbreak\r\n", "h\u00e9llo \u2713".encode(), b"x" * 65536)
# Rounds are the repetitions the comparison's noise rule needs; p90 because a p99 of so few
# messages is one outlier.
LATENCY_ROUNDS = 5
LATENCY_MESSAGES = 60
# notify-keyspace-events for the notification step ("KEA": keyspace, keyevent, all event classes).
NOTIFY_FLAGS = "KEA"
# A key with a 1 ms TTL is certainly expired after this wait; a GET then expires it lazily if needed.
EXPIRY_WAIT_S = 0.05
# In an op list, a pause between commands (not sent to the server).
PAUSE = "pause"

# Each round's median is a repetition ("_samples"), not behaviour. The p90 is kept for the reader but
# not compared: between two processes of one binary it moves by more than the noise rule's floor.
# Latency is compared across rounds that alternate which server runs first (see test_runner).
ROUNDS = 3
# Timings vary between processes: a second process of the baseline's binary measures that noise.
NOISE_CONTROL = True

METRIC_KINDS = {"timings.*_samples": "not_compared", "timings.*.p90_us": "not_compared"}

# RESP type bytes and the names frames carry in the metrics.
RESP_TYPES = {b"+": "simple", b"-": "error", b":": "integer", b"$": "bulk", b"*": "array", b"_": "null",
              b",": "double", b"#": "boolean", b"!": "error", b"=": "verbatim", b"(": "bignum",
              b"%": "map", b"~": "set", b">": "push", b"|": "attribute"}
AGGREGATES = ("array", "set", "push")


def run(client: redis.Redis, options: ScenarioOptions | None = None) -> dict[str, Any]:
    return run_scenario(NAME, client, options, plan)


def plan(ctx: ScenarioContext) -> None:
    # RESP2 for the plain commands, whatever the caller's client speaks (redis-py 8 defaults to RESP3).
    ctx.raw = ctx.connection(protocol=2)
    conns = RawConnections(ctx)

    def keyspace_notifications() -> None:
        notifications(ctx, conns)

    try:
        for protocol in (2, 3):
            subscription_replies(ctx, conns, protocol)
            subscribed_mode(ctx, conns, protocol)
            unsubscribe_all_order(ctx, conns, protocol)
            delivery(ctx, conns, protocol)
            latency(ctx, conns, protocol)
        introspection(ctx, conns)
        ctx.record("config", "notify-keyspace-events", "CONFIG", "GET", "notify-keyspace-events")
        ctx.skippable(keyspace_notifications)
    finally:
        conns.close()


# --- the protocol level: frames with their RESP type -------------------------------------------------

class NoReply(TimeoutError):
    """An expected frame did not arrive in time (the server is frozen, or never sends it)."""


@dataclass(frozen=True)
class Frame:
    kind: str   # a RESP_TYPES name: "push", "array", "bulk", "error"...
    value: Any  # bytes / int / None, a list of Frames, or for maps a list of (Frame, Frame)


class RawConnection:
    """One connection whose replies are read frame by frame, keeping the RESP type (push vs array)."""

    def __init__(self, client: redis.Redis) -> None:
        # redis-py connects, authenticates and sends HELLO; its parsers would hide push vs array, so
        # the frames after that are read from the socket here.
        self.connection = client.connection_pool.get_connection()
        self.sock = self.connection._sock
        self.buffer, self.pos = bytearray(), 0
        # The client's own per-command timeout, if it has one, bounds each wait for a frame.
        self.timeout = getattr(self.connection, "socket_timeout", None) or FRAME_TIMEOUT_S

    def send(self, *args: Any) -> None:
        self.connection.send_command(*args, check_health=False)

    def frames(self, count: int) -> list[Frame]:
        """The next `count` frames, each within the timeout (a long burst may take longer in all)."""
        return [self.frame() for _ in range(count)]

    def frame(self, timeout: float | None = None) -> Frame:
        return self.frame_before(time.monotonic() + (timeout or self.timeout))

    def call(self, *args: Any, frames: int = 1) -> list[Frame]:
        self.send(*args)
        return self.frames(frames)

    def read_until(self, last: Callable[[Frame], bool], limit: int = 100000) -> list[Frame]:
        """Frames up to and including the first one for which `last` is true (each wait bounded)."""
        found: list[Frame] = []
        while not found or not last(found[-1]):
            if len(found) >= limit:
                raise NoReply(f"the expected frame did not come within {limit} frames")
            found.append(self.frame())
        return found

    def pending(self, wait: float = QUIET_S) -> list[Frame]:
        """Every frame that arrives within `wait` (normally none: used to prove nothing more came)."""
        found: list[Frame] = []
        while True:
            try:
                found.append(self.frame(wait))
            except NoReply:
                return found

    def close(self) -> None:
        self.connection.disconnect()

    # reading: a bytearray and a read position, so large bursts are parsed without re-copying -----
    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise NoReply(f"no frame within {self.timeout}s")
        if self.pos:
            del self.buffer[:self.pos]
            self.pos = 0
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 20)
        except TimeoutError as exc:
            raise NoReply(f"no frame within {self.timeout}s") from exc
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buffer += chunk

    def _line(self, deadline: float) -> bytes:
        end = self.buffer.find(b"\r\n", self.pos)
        while end < 0:
            self._fill(deadline)
            end = self.buffer.find(b"\r\n", self.pos)
        line = bytes(self.buffer[self.pos:end])
        self.pos = end + 2
        return line

    def _exact(self, size: int, deadline: float) -> bytes:
        while len(self.buffer) - self.pos < size + 2:
            self._fill(deadline)
        data = bytes(self.buffer[self.pos:self.pos + size])
        self.pos += size + 2
        return data

    def frame_before(self, deadline: float) -> Frame:
        """The next frame, which must be complete before `deadline` (time.monotonic())."""
        line = self._line(deadline)
        kind = RESP_TYPES.get(line[:1])
        head = line[1:]
        if kind is None:
            raise ConnectionError(f"not a RESP frame: {line[:40]!r}")
        if kind in ("simple", "double") or line[:1] == b"-":
            return Frame(kind, head)
        if kind in ("integer", "bignum"):
            return Frame(kind, int(head))
        if kind == "boolean":
            return Frame(kind, head == b"t")
        if kind == "null":
            return Frame(kind, None)
        size = int(head)
        if kind in ("bulk", "verbatim", "error"):
            return Frame(kind, None if size < 0 else self._exact(size, deadline))
        if kind in ("map", "attribute"):
            return Frame(kind, [(self.frame_before(deadline), self.frame_before(deadline)) for _ in range(size)])
        return Frame(kind, None if size < 0 else [self.frame_before(deadline) for _ in range(size)])


class RawConnections:
    """Opens protocol-level connections and closes every one (a subscribed socket left open would keep
    its channels alive server-wide)."""

    def __init__(self, ctx: ScenarioContext) -> None:
        self.ctx = ctx
        self.opened: list[RawConnection] = []

    def open(self, protocol: int) -> RawConnection:
        conn = RawConnection(self.ctx.connection(protocol=protocol))
        self.opened.append(conn)
        return conn

    def finish(self, conn: RawConnection) -> None:
        """End a subscriber synchronously: after +RESET the server holds none of its subscriptions."""
        conn.send("RESET")
        conn.read_until(lambda f: f.kind == "simple" and f.value == b"RESET")
        conn.close()

    def close(self) -> None:
        for conn in self.opened:
            try:
                conn.close()
            except (OSError, redis.RedisError):
                pass  # already closed by the server (QUIT) or by a failure: nothing to release


def value_of(frame: Frame, prefix: str) -> Reply:
    """A frame's content as a plain JSON-safe value (the prefix shown as {p})."""
    if frame.kind == "error":
        return {"error": plain(frame.value, prefix)}
    if frame.kind in AGGREGATES and frame.value is not None:
        return [value_of(item, prefix) for item in frame.value]
    if frame.kind in ("map", "attribute"):
        return {str(value_of(k, prefix)): value_of(v, prefix) for k, v in frame.value}
    if isinstance(frame.value, bytes):
        return plain(frame.value, prefix)
    return frame.value


def tagged(frame: Frame, prefix: str) -> Reply:
    """A frame with its RESP type: {"push": [...]}, {"array": [...]}, {"bulk": ...}; errors as {"error": text}."""
    value = value_of(frame, prefix)
    return value if frame.kind == "error" else {frame.kind: value}


def record_frames(ctx: ScenarioContext, section: str, label: str, frames: list[Frame]) -> Reply:
    """One frame is stored as itself (so two error frames compare as error texts), several as a list."""
    values = [tagged(f, ctx.prefix) for f in frames]
    return ctx.put(section, label, values[0] if len(values) == 1 else values)


def items(frame: Frame) -> list[Any]:
    """The raw elements of an aggregate frame (bytes/int/None)."""
    return [item.value for item in frame.value or []]


def is_message(frame: Frame) -> bool:
    return frame.kind in ("push", "array") and bool(frame.value) and \
        items(frame)[0] in (b"message", b"pmessage", b"smessage")


# --- 1. subscription replies --------------------------------------------------------------------------

def subscription_replies(ctx: ScenarioContext, conns: RawConnections, protocol: int) -> None:
    s, k, sub = f"resp{protocol}", ctx.key, conns.open(protocol)
    for command in ("UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"):
        record_frames(ctx, s, f"{command} (nothing subscribed)", sub.call(command))
    record_frames(ctx, s, "UNSUBSCRIBE a (not subscribed)", sub.call("UNSUBSCRIBE", k("ch:a")))
    record_frames(ctx, s, "SUBSCRIBE a b a", sub.call("SUBSCRIBE", k("ch:a"), k("ch:b"), k("ch:a"), frames=3))
    record_frames(ctx, s, "PSUBSCRIBE {p}ch:*", sub.call("PSUBSCRIBE", glob_escape(ctx.prefix) + "ch:*"))
    record_frames(ctx, s, "SSUBSCRIBE sa sb", sub.call("SSUBSCRIBE", k("sh:a"), k("sh:b"), frames=2))
    record_frames(ctx, s, "SUBSCRIBE without channel", sub.call("SUBSCRIBE"))
    record_frames(ctx, s, "PING", sub.call("PING"))
    record_frames(ctx, s, "PING hello", sub.call("PING", "hello"))
    ctx.raw.execute_command("PUBLISH", k("ch:a"), "m1")
    ctx.raw.execute_command("SPUBLISH", k("sh:a"), "m2")
    record_frames(ctx, s, "message + pmessage for PUBLISH a", sub.frames(2))
    record_frames(ctx, s, "smessage for SPUBLISH sa", sub.frames(1))
    record_frames(ctx, s, "UNSUBSCRIBE a", sub.call("UNSUBSCRIBE", k("ch:a")))
    record_frames(ctx, s, "UNSUBSCRIBE (all: b left)", sub.call("UNSUBSCRIBE"))
    record_frames(ctx, s, "PUNSUBSCRIBE (all)", sub.call("PUNSUBSCRIBE"))
    record_frames(ctx, s, "SUNSUBSCRIBE sa", sub.call("SUNSUBSCRIBE", k("sh:a")))
    record_frames(ctx, s, "SUNSUBSCRIBE (all: sb left)", sub.call("SUNSUBSCRIBE"))
    record_frames(ctx, s, "GET after leaving subscribed mode", sub.call("GET", k("missing")))
    ctx.check(not sub.pending(), f"RESP{protocol}: unexpected frames after the subscription replies")
    conns.finish(sub)


# Commands tried while subscribed: (label, command, frames the reply takes under RESP2, under RESP3).
SUBSCRIBED_COMMANDS = (
    ("GET", ("GET", "missing"), 1, 1),
    ("SET", ("SET", "key", "v"), 1, 1),
    ("ECHO", ("ECHO", "hi"), 1, 1),
    ("MULTI", ("MULTI",), 1, 1),
    ("DISCARD", ("DISCARD",), 1, 1),
    ("EVAL", ("EVAL", "return 1", 0), 1, 1),
    ("CLIENT SETNAME", ("CLIENT", "SETNAME", "rvc-pubsub"), 1, 1),
    ("INFO", ("INFO", "nosuchsection"), 1, 1),
    ("HELLO", ("HELLO", "2"), 1, None),  # under RESP3 it would leave RESP3: not tried there
    ("PUBLISH to an own channel", ("PUBLISH", "own", "x"), 1, 2),  # RESP3: the count and the push
)


def subscribed_mode(ctx: ScenarioContext, conns: RawConnections, protocol: int) -> None:
    """What a subscribed client may run: RESP2 refuses most commands (error text), RESP3 allows them."""
    s, k, sub = f"resp{protocol}", ctx.key, conns.open(protocol)
    sub.call("SUBSCRIBE", k("own"))
    for label, command, frames2, frames3 in SUBSCRIBED_COMMANDS:
        frames = frames2 if protocol == 2 else frames3
        if frames is None:
            continue
        args = [k(a) if a in ("missing", "key", "own") else a for a in command]
        record_frames(ctx, s, f"while subscribed: {label}", sub.call(*args, frames=frames))
    record_frames(ctx, s, "while subscribed: RESET", sub.call("RESET"))
    # RESET leaves subscribed mode (and, per its documentation, returns the connection to RESP2).
    record_frames(ctx, s, "after RESET: GET missing", sub.call("GET", k("missing")))
    ctx.raw.execute_command("PUBLISH", k("own"), "after reset")
    record_frames(ctx, s, "after RESET: frames still delivered", sub.pending())
    conns.finish(sub)
    record_frames(ctx, s, "QUIT while subscribed", quit_subscribed(ctx, conns, protocol))


def quit_subscribed(ctx: ScenarioContext, conns: RawConnections, protocol: int) -> list[Frame]:
    sub = conns.open(protocol)
    sub.call("SUBSCRIBE", ctx.key("own"))
    frames = sub.call("QUIT")
    sub.close()
    return frames


# --- 2. the order of "unsubscribe from all" --------------------------------------------------------

def unsubscribe_all_order(ctx: ScenarioContext, conns: RawConnections, protocol: int) -> None:
    sub, k = conns.open(protocol), ctx.key
    names = [k(f"order:{n}").encode() for n in ORDER_PROBE]
    orders = {"insertion order": names, "reverse insertion order": names[::-1], "sorted": sorted(names)}
    for subscribe, unsubscribe, to_name in (("SUBSCRIBE", "UNSUBSCRIBE", lambda n: n),
                                            ("PSUBSCRIBE", "PUNSUBSCRIBE", lambda n: n + b"*"),
                                            ("SSUBSCRIBE", "SUNSUBSCRIBE", lambda n: n)):
        subscribed = [to_name(n) for n in names]
        sub.call(subscribe, *subscribed, frames=len(subscribed))
        frames = sub.call(unsubscribe, frames=len(subscribed))
        got = [items(f)[1] for f in frames]
        label = f"{unsubscribe} (all) of {len(names)}"
        ctx.put("ordering", f"RESP{protocol} {label}",
                order_class(got, {name: [to_name(n) for n in order] for name, order in orders.items()}))
        ctx.put(f"resp{protocol}", f"{label}: channels", canonical(plain(got, ctx.prefix)))
        ctx.put(f"resp{protocol}", f"{label}: counts", [items(f)[2] for f in frames])
        ctx.put(f"resp{protocol}", f"{label}: frame types", sorted({f.kind for f in frames}))
    conns.finish(sub)


# --- 3. delivery of a burst ---------------------------------------------------------------------------

def payload(seq: int) -> bytes:
    return b"%06d|" % seq + PAYLOAD_BODIES[seq % len(PAYLOAD_BODIES)]


def delivery(ctx: ScenarioContext, conns: RawConnections, protocol: int) -> None:
    k, sub = ctx.key, conns.open(protocol)
    modes = (  # label, subscribe command, its argument, publish command, target, message type
        ("channel", "SUBSCRIBE", k("burst:ch"), "PUBLISH", k("burst:ch"), b"message"),
        ("pattern", "PSUBSCRIBE", glob_escape(k("burst:pat:")) + "*", "PUBLISH", k("burst:pat:x"), b"pmessage"),
        ("shard channel", "SSUBSCRIBE", k("burst:sh"), "SPUBLISH", k("burst:sh"), b"smessage"),
    )
    for label, subscribe, name, publish, target, message_type in modes:
        sub.call(subscribe, name)
        pipe = ctx.raw.pipeline(transaction=False)
        for seq in range(BURST_SIZE):
            pipe.execute_command(publish, target, payload(seq))
        receivers = pipe.execute()
        frames = sub.frames(BURST_SIZE)
        extra = sub.pending()
        messages = [items(f) for f in frames]
        result = {
            "published": BURST_SIZE,
            "receivers per publish": sorted(set(receivers)),
            "received": len(frames) + len(extra),
            "frame types": sorted({f.kind for f in frames}),
            "message types": sorted({plain(m[0]) for m in messages}),
            "in order": [m[-1][:6] for m in messages] == [b"%06d" % i for i in range(BURST_SIZE)],
            "payloads intact": [m[-1] for m in messages] == [payload(i) for i in range(BURST_SIZE)],
            "first message": tagged(frames[0], ctx.prefix),
        }
        ctx.put("delivery", f"RESP{protocol} {label}", result)
        ctx.check(result["received"] == BURST_SIZE and result["in order"] and result["payloads intact"]
                  and result["message types"] == [plain(message_type)],
                  f"RESP{protocol} {label} burst: {BURST_SIZE} messages published, "
                  f"{result['received']} received, in order {result['in order']}, "
                  f"intact {result['payloads intact']}")
    conns.finish(sub)


# --- 4. latency -----------------------------------------------------------------------------------

def latency(ctx: ScenarioContext, conns: RawConnections, protocol: int) -> None:
    """Publish-to-receive time: from sending PUBLISH to the subscriber holding the whole message."""
    sub, pub, channel = conns.open(protocol), conns.open(2), ctx.key(f"latency:{protocol}")
    sub.call("SUBSCRIBE", channel)
    medians, p90s, lost = [], [], 0
    for _ in range(LATENCY_ROUNDS):
        samples = []
        for seq in range(LATENCY_MESSAGES):
            body = b"%06d" % seq
            start = time.perf_counter_ns()
            pub.send("PUBLISH", channel, body)
            frame = sub.frame()
            samples.append((time.perf_counter_ns() - start) / 1000)
            pub.frame()
            lost += items(frame)[-1] != body
        medians.append(round(statistics.median(samples), 1))
        p90s.append(round(percentile(samples, 90), 1))
    ctx.put("timings", f"publish to receive RESP{protocol}", {
        "median_us": statistics.median(medians), "median_us_samples": medians,
        "p90_us": statistics.median(p90s), "p90_us_samples": p90s,
        "messages": LATENCY_ROUNDS * LATENCY_MESSAGES})
    ctx.check(lost == 0, f"RESP{protocol} latency probe: {lost} messages arrived out of order or altered")
    conns.finish(sub)
    pub.close()


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


# --- 5. PUBSUB introspection --------------------------------------------------------------------------

def introspection(ctx: ScenarioContext, conns: RawConnections) -> None:
    i, k, own = "introspection", ctx.key, glob_escape(ctx.prefix)
    a, b = conns.open(2), conns.open(3)
    a.call("SUBSCRIBE", k("i:one"), k("i:two"), k("i:three"), frames=3)
    b.call("SUBSCRIBE", k("i:one"))
    numpat_before = ctx.raw.execute_command("PUBSUB", "NUMPAT")
    a.call("PSUBSCRIBE", own + "i:*", own + "i:t??", frames=2)
    b.call("PSUBSCRIBE", own + "i:*")
    a.call("SSUBSCRIBE", k("i:shard1"), k("i:shard2"), frames=2)
    b.call("SSUBSCRIBE", k("i:shard1"))
    ctx.put(i, "PUBSUB NUMPAT after 2 new patterns (delta)",
            ctx.raw.execute_command("PUBSUB", "NUMPAT") - numpat_before)
    ctx.record(i, "PUBSUB CHANNELS {p}*", "PUBSUB", "CHANNELS", own + "*", unordered=True)
    ctx.record(i, "PUBSUB CHANNELS {p}i:t*", "PUBSUB", "CHANNELS", own + "i:t*", unordered=True)
    ctx.record(i, "PUBSUB CHANNELS {p}i:one", "PUBSUB", "CHANNELS", k("i:one"))
    ctx.record(i, "PUBSUB NUMSUB one two missing one", "PUBSUB", "NUMSUB", k("i:one"), k("i:two"),
               k("i:missing"), k("i:one"))
    ctx.record(i, "PUBSUB NUMSUB (no channels)", "PUBSUB", "NUMSUB")
    ctx.record(i, "PUBSUB SHARDCHANNELS {p}*", "PUBSUB", "SHARDCHANNELS", own + "*", unordered=True)
    ctx.record(i, "PUBSUB SHARDNUMSUB shard1 shard2 missing", "PUBSUB", "SHARDNUMSUB", k("i:shard1"),
               k("i:shard2"), k("i:missing"))
    ctx.record(i, "PUBSUB SHARDNUMSUB (no channels)", "PUBSUB", "SHARDNUMSUB")
    ctx.record(i, "PUBLISH one (2 channel + 2 pattern subscribers)", "PUBLISH", k("i:one"), "x")
    ctx.record(i, "PUBLISH two (1 channel + 3 pattern subscribers)", "PUBLISH", k("i:two"), "x")
    ctx.record(i, "PUBLISH to nobody", "PUBLISH", k("nobody"), "x")
    ctx.record(i, "SPUBLISH shard1 (2 subscribers)", "SPUBLISH", k("i:shard1"), "x")
    ctx.record(i, "PUBSUB HELP", "PUBSUB", "HELP")
    ctx.record("errors", "PUBSUB unknown subcommand", "PUBSUB", "NOSUCH")
    ctx.record("errors", "PUBSUB CHANNELS two patterns", "PUBSUB", "CHANNELS", "a", "b")
    ctx.record("errors", "PUBLISH without message", "PUBLISH", k("i:one"))
    ctx.record("errors", "SPUBLISH without message", "SPUBLISH", k("i:one"))
    for conn in (a, b):
        conns.finish(conn)  # the messages published above arrive before +RESET
    ctx.record(i, "PUBSUB CHANNELS {p}* after RESET", "PUBSUB", "CHANNELS", own + "*", unordered=True)
    ctx.record(i, "PUBSUB SHARDCHANNELS {p}* after RESET", "PUBSUB", "SHARDCHANNELS", own + "*", unordered=True)


# --- 6. keyspace notifications ----------------------------------------------------------------------

def notification_ops(k: Any) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """A fixed sequence: (label, commands). Each label's events are recorded as one group."""
    return [
        ("SET new", [("SET", k("a"), "1")]),
        ("SET overwrite", [("SET", k("a"), "2")]),
        ("SET EX", [("SET", k("b"), "v", "EX", 100)]),
        ("SET KEEPTTL", [("SET", k("b"), "w", "KEEPTTL")]),
        ("INCR", [("INCR", k("c"))]),
        ("INCRBYFLOAT", [("INCRBYFLOAT", k("c"), "1.5")]),
        ("APPEND", [("APPEND", k("a"), "x")]),
        ("SETRANGE", [("SETRANGE", k("a"), 0, "z")]),
        ("GETEX EX", [("GETEX", k("a"), "EX", 100)]),
        ("GETEX PERSIST", [("GETEX", k("a"), "PERSIST")]),
        ("EXPIRE", [("EXPIRE", k("a"), 100)]),
        ("PERSIST", [("PERSIST", k("a"))]),
        ("EXPIRE in the past", [("EXPIRE", k("a"), -1)]),
        ("PEXPIREAT in the past", [("PEXPIREAT", k("b"), 1)]),
        ("SET PX 1, then GET after expiry", [("SET", k("e"), "v", "PX", 1), (PAUSE, EXPIRY_WAIT_S), ("GET", k("e"))]),
        ("GETDEL", [("GETDEL", k("c"))]),
        ("RENAME", [("SET", k("r"), "v"), ("RENAME", k("r"), k("r2"))]),
        ("COPY", [("COPY", k("r2"), k("r3"))]),
        ("DEL two keys and a missing one", [("DEL", k("r2"), k("r3"), k("missing"))]),
        ("DEL missing", [("DEL", k("missing"))]),
        ("RPUSH", [("RPUSH", k("l"), "a", "b")]),
        ("LPOP", [("LPOP", k("l"))]),
        ("LMOVE last element", [("LMOVE", k("l"), k("l2"), "LEFT", "RIGHT")]),
        ("LTRIM to empty", [("LTRIM", k("l2"), 5, 6)]),
        ("HSET", [("HSET", k("h"), "f", "1", "g", "2")]),
        ("HINCRBYFLOAT", [("HINCRBYFLOAT", k("h"), "f", "0.5")]),
        ("HDEL", [("HDEL", k("h"), "g")]),
        ("HEXPIRE", [("HEXPIRE", k("h"), 100, "FIELDS", 1, "f")]),
        ("HPERSIST", [("HPERSIST", k("h"), "FIELDS", 1, "f")]),
        ("HSETEX", [("HSETEX", k("h"), "EX", 100, "FIELDS", 1, "x", "v")]),
        ("HGETEX PERSIST", [("HGETEX", k("h"), "PERSIST", "FIELDS", 1, "x")]),
        ("DEL a hash", [("DEL", k("h"))]),
        ("SADD", [("SADD", k("s"), "a", "b")]),
        ("SREM", [("SREM", k("s"), "a")]),
        ("SINTERSTORE empty result", [("SINTERSTORE", k("s2"), k("s"), k("missing"))]),
        ("SPOP last member", [("SPOP", k("s"))]),
        ("ZADD", [("ZADD", k("z"), 1, "a")]),
        ("ZINCRBY", [("ZINCRBY", k("z"), 1, "a")]),
        ("ZUNIONSTORE", [("ZUNIONSTORE", k("z2"), 1, k("z"))]),
        ("ZREM last member", [("ZREM", k("z"), "a")]),
        ("XADD", [("XADD", k("x"), "1-1", "f", "v")]),
        ("XGROUP CREATE", [("XGROUP", "CREATE", k("x"), "g", "0")]),
        ("XDEL", [("XDEL", k("x"), "1-1")]),
        ("SORT STORE", [("RPUSH", k("src"), "b", "a"), ("SORT", k("src"), "ALPHA", "STORE", k("sorted"))]),
        ("UNLINK", [("UNLINK", k("sorted"), k("src"))]),
    ]


def notifications(ctx: ScenarioContext, conns: RawConnections) -> None:
    ctx.config_set("notify-keyspace-events", NOTIFY_FLAGS)
    n = "notifications"
    ctx.record(n, f"CONFIG GET notify-keyspace-events after SET {NOTIFY_FLAGS}",
               "CONFIG", "GET", "notify-keyspace-events")
    ctx.record("errors", "CONFIG SET notify-keyspace-events unknown class",
               "CONFIG", "SET", "notify-keyspace-events", "KEAZ")
    db = int(ctx.client.connection_pool.connection_kwargs.get("db") or 0)
    keyspace, keyevent = f"__keyspace@{db}__:", f"__keyevent@{db}__:"
    subscribers = {}
    for protocol in (2, 3):
        sub = conns.open(protocol)
        sub.call("PSUBSCRIBE", glob_escape(keyspace + ctx.prefix) + "*", glob_escape(keyevent) + "*", frames=2)
        subscribers[protocol] = sub
    ops, sync = notification_ops(ctx.key), ctx.key("sync")
    for label, commands in ops:
        replies = run_commands(ctx, commands)
        ctx.put(n, f"{label}: replies", replies[0] if len(replies) == 1 else replies)
        ctx.raw.execute_command("INCR", sync)  # its notification marks the end of this label's events
    groups = {}
    for protocol, sub in subscribers.items():
        frames = read_until_sync(sub, keyspace + sync, len(ops))
        groups[protocol] = group_events(ctx, frames, keyspace, keyevent, sync)
        ctx.put(n, f"RESP{protocol} frame types", sorted({f.kind for f in frames}))
        ours = [f for f in frames if is_message(f) and items(f)[2].startswith((keyspace + ctx.prefix).encode())]
        record_frames(ctx, n, f"RESP{protocol} first keyspace frame", ours[:1])
    for (label, _), events in zip(ops, groups[3]):
        ctx.put(n, f"{label}: events", events)
    ctx.put(n, "RESP2 and RESP3 carry the same events", groups[2] == groups[3])
    for sub in subscribers.values():
        conns.finish(sub)


def run_commands(ctx: ScenarioContext, commands: list[tuple[Any, ...]]) -> list[Reply]:
    """The replies of a label's commands; a PAUSE entry only waits."""
    replies = []
    for command in commands:
        if command[0] == PAUSE:
            time.sleep(command[1])
        else:
            replies.append(ctx.call(*command))
    return replies


def read_until_sync(sub: RawConnection, sync_channel: str, count: int) -> list[Frame]:
    """Frames up to and including the count-th keyspace notification of the sync key (bounded)."""
    frames: list[Frame] = []
    for _ in range(count):
        frames += sub.read_until(lambda f: is_message(f) and items(f)[2] == sync_channel.encode())
    return frames


def group_events(ctx: ScenarioContext, frames: list[Frame], keyspace: str, keyevent: str,
                 sync: str) -> list[list[str]]:
    """Split notifications at each sync marker; events as "keyspace {p}key event" / "keyevent event {p}key"."""
    groups: list[list[str]] = [[]]
    for frame in frames:
        if not is_message(frame):
            continue
        channel, message = (v.decode("utf-8", "replace") for v in items(frame)[2:4])
        if channel == keyspace + sync:
            groups.append([])
        elif channel.startswith(keyspace + ctx.prefix):
            groups[-1].append(f"keyspace {plain(channel[len(keyspace):], ctx.prefix)} {message}")
        elif channel.startswith(keyevent) and message.startswith(ctx.prefix) and message != sync:
            groups[-1].append(f"keyevent {channel[len(keyevent):]} {plain(message, ctx.prefix)}")
    return groups[:-1]
