"""The live one-line status on a terminal: drawn from a snapshot the mirror measured, never measuring."""

from __future__ import annotations

from typing import Any


def status_line(snap: dict[str, Any], width: int = 120) -> str:
    """commands, differences, noise, dropped, candidate lag, open connections; loss and sync state."""
    cand = snap["candidate"]
    if snap.get("lost_at"):
        state = f"{cand} LOST at {snap['lost_at'][11:19]}"
    else:
        lag = snap.get("lag_ms") or 0
        state = f"{cand} lag {lag / 1000:.1f} s" if lag >= 1000 else f"{cand} lag {lag} ms"
        if snap.get("out_of_sync_since"):
            state += f", out of sync since {snap['out_of_sync_since'][11:19]}"
    line = (f"mirror: {snap['commands']:,} commands  {snap['differences']:,} differences  {snap['noise']:,} noise  "
            f"{snap['dropped']:,} dropped  {state}  {snap['connections']} connections")
    return line if len(line) <= width else line[:width - 1] + "…"
