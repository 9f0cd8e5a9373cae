"""A synthetic MONITOR capture for the replay benchmark, written to disk as it is generated.

Usage: python -m bench.gen_monitor OUT [--commands 1000000] [--clients 20] [--seed 1] [--gzip]
Mixed strings, hashes, lists, sets, sorted sets, streams, expiry, MULTI/EXEC blocks and EVAL with its
script's "[db lua]" lines, from --clients clients, in exactly the format redis-cli MONITOR prints
(checked against real captures by tests/test_captures.py). Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from app.captures.quoting import quote

START_TS = 1_700_000_000.0
KEYS_PER_TYPE = 5_000
MULTI_SIZE = (2, 5)  # commands inside one MULTI/EXEC
LUA_SET = b"redis.call('SET', KEYS[1], ARGV[1]) return redis.call('INCR', KEYS[2])"


def _value(rng: random.Random) -> bytes:
    size = rng.choice((3, 8, 16, 64, 200))
    # Mostly printable, some binary: the escapes are part of what the parser is timed on.
    if rng.random() < 0.1:
        return bytes(rng.randrange(256) for _ in range(size))
    return rng.choice((b"v", b"value", b"caf\xc3\xa9 x", b'q"uote')) * (size // 4 + 1)


def _key(rng: random.Random, kind: str) -> bytes:
    return b"%s:%d" % (kind.encode(), rng.randrange(KEYS_PER_TYPE))


def _one(rng: random.Random) -> list[bytes]:
    """One data command of a random family."""
    family = rng.randrange(8)
    if family == 0:
        return [b"SET", _key(rng, "str"), _value(rng)]
    if family == 1:
        return [b"GET", _key(rng, "str")]
    if family == 2:
        return [b"HSET", _key(rng, "hash"), b"f%d" % rng.randrange(20), _value(rng)]
    if family == 3:
        return [rng.choice((b"LPUSH", b"RPUSH")), _key(rng, "list"), _value(rng)]
    if family == 4:
        return [b"SADD", _key(rng, "set"), b"m%d" % rng.randrange(100)]
    if family == 5:
        return [b"ZADD", _key(rng, "zset"), b"%.2f" % rng.uniform(0, 1000), b"m%d" % rng.randrange(100)]
    if family == 6:
        return [b"XADD", _key(rng, "stream"), b"*", b"field", _value(rng)]
    return [rng.choice((b"EXPIRE", b"PEXPIRE")), _key(rng, "str"), b"%d" % rng.randrange(60, 3600)]


def _blocks(rng: random.Random) -> Iterator[tuple[bool, list[list[bytes]]]]:
    """(from_script, commands) groups: one command, a MULTI/EXEC block, or an EVAL and its script's commands."""
    while True:
        roll = rng.random()
        if roll < 0.03:
            yield False, [[b"MULTI"], *(_one(rng) for _ in range(rng.randint(*MULTI_SIZE))), [b"EXEC"]]
        elif roll < 0.04:
            key, counter = _key(rng, "str"), _key(rng, "counter")
            value = _value(rng)
            yield False, [[b"EVAL", LUA_SET, b"2", key, counter, value]]
            yield True, [[b"SET", key, value], [b"INCR", counter]]
        else:
            yield False, [_one(rng)]


def monitor_lines(commands: int, clients: int, seed: int) -> Iterator[bytes]:
    """MONITOR lines, starting with redis-cli's OK, `commands` command lines in all."""
    rng = random.Random(seed)
    addresses = [b"127.0.0.1:%d" % (50000 + i) for i in range(clients)]
    yield b"OK\n"
    ts, written, client = START_TS, 0, addresses[0]
    for from_script, block in _blocks(rng):
        if not from_script:
            client = rng.choice(addresses)  # a script's lines follow its EVAL's client
        source = b"lua" if from_script else client
        for args in block:
            if written == commands:
                return
            ts += rng.uniform(0.000001, 0.0002)
            yield b"%.6f [0 %s] %s\n" % (ts, source, b" ".join(quote(a) for a in args))
            written += 1


def write_capture(out: Path, commands: int, clients: int, seed: int, compress: bool) -> int:
    """Write the capture; returns its size in bytes."""
    opener = gzip.open if compress else open
    with opener(out, "wb") as handle:  # type: ignore[operator]
        for line in monitor_lines(commands, clients, seed):
            handle.write(line)
    return out.stat().st_size


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gen_monitor", description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--commands", type=int, default=1_000_000)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--gzip", action="store_true", help="write it gzip-compressed")
    args = p.parse_args(argv)
    if args.commands < 0 or args.clients < 1:
        print("--commands must be >= 0 and --clients >= 1", file=sys.stderr)
        return 2
    try:
        size = write_capture(args.out, args.commands, args.clients, args.seed, args.gzip)
    except OSError as exc:
        print(f"cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"{args.out}: {args.commands} commands from {args.clients} clients, {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
