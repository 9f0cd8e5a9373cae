"""The stream comparator as the replay uses it: replies that are random by definition stay noise even
when the one noise control happens to agree with the baseline.

SPOP of a five-member set agrees between two processes one call in five: a single control cannot
prove it varies, and the first such call would be a false difference. These commands' replies are
random or read the clock by specification, so a same-shaped disagreement is noise from the first call.
"""

from __future__ import annotations

from typing import Any

from app.stream_compare import StreamComparator, shape

# Command -> why its reply differs between any two servers (the reply's shape still has to agree).
RANDOM_BY_DEFINITION: dict[str, str] = {
    "SPOP": "removes random members", "SRANDMEMBER": "random members", "HRANDFIELD": "random fields",
    "ZRANDMEMBER": "random members", "RANDOMKEY": "a random key", "TIME": "the server's clock",
    "LASTSAVE": "the server's clock", "SCAN": "cursor and order depend on the hash table's seed",
    "SSCAN": "cursor and order depend on the hash table's seed",
    "HSCAN": "cursor and order depend on the hash table's seed",
    "ZSCAN": "cursor and order depend on the hash table's seed",
    "XADD": "an id made from the server's clock when given *", "CLIENT ID": "a per-server counter",
    "CLIENT INFO": "connection ids, addresses and ages", "CLIENT LIST": "connection ids, addresses and ages",
}


# Replies that carry stream ids: once the capture has added entries with XADD *, those ids are each
# server's clock (two processes can agree within a millisecond, a third not), so these replies vary too.
STREAM_READS: frozenset[str] = frozenset({"XRANGE", "XREVRANGE", "XREAD", "XREADGROUP", "XAUTOCLAIM", "XCLAIM",
                                          "XPENDING", "XINFO STREAM", "XINFO GROUPS", "XINFO CONSUMERS",
                                          "XSETID", "EXEC"})


class ReplayComparator(StreamComparator):
    """StreamComparator whose noise also covers RANDOM_BY_DEFINITION, and stream reads once ids came
    from the servers' clocks (clock_ids: set by the executor when it replays an XADD with *)."""

    clock_ids = False

    def _varies(self, command: str, base: Any, value: Any) -> bool:
        if shape(base) == shape(value) and (command in RANDOM_BY_DEFINITION
                                            or (self.clock_ids and command in STREAM_READS)):
            return True
        return super()._varies(command, base, value)
