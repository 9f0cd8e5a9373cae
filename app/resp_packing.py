"""Commands packed with hiredis, without the crash of its number path.

hiredis.pack_command turns an int or float argument into text with PyObject_Repr and uses the result
without checking it. PyObject_Repr returns NULL when a signal handler raises inside it (Ctrl-C, and
every SIGINT/SIGTERM of this tool raises), and the process dies of SIGSEGV: no cleanup, no report.
Numbers are therefore turned into bytes here, in Python, before hiredis sees them (same bytes: repr).
"""

from __future__ import annotations

from typing import Any

import hiredis
import redis.connection


def _text(arg: Any) -> Any:
    if type(arg) is int or isinstance(arg, float):  # what hiredis would repr (bool is refused, as before)
        return repr(arg).encode()
    return arg


def pack_command(args: tuple[Any, ...]) -> bytes:
    """hiredis.pack_command of args, numbers already as bytes."""
    return hiredis.pack_command(tuple(_text(arg) for arg in args))


class NumberSafeRespSerializer(redis.connection.HiredisRespSerializer):
    """redis-py's hiredis packer with numbers made bytes first."""

    def pack(self, *args: Any) -> list[bytes]:
        return super().pack(*(_text(arg) for arg in args))


def install() -> None:
    """Every redis-py connection made from now on packs through NumberSafeRespSerializer."""
    redis.connection.HiredisRespSerializer = NumberSafeRespSerializer  # read when a connection is made
