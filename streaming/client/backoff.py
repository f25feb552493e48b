"""Reconnect timing: full-jitter exponential backoff that honours the server's retry hint."""

from __future__ import annotations

import random

# Reconnect delays: full jitter over BACKOFF_BASE * 2**attempt, capped at BACKOFF_CAP (seconds).
BACKOFF_BASE = 0.25
BACKOFF_CAP = 10.0
# A connection that stayed open this long was healthy, so the next loss starts the backoff afresh;
# a server that accepts and drops at once keeps growing the delay instead of being hammered.
STABLE_AFTER = 10.0


def backoff_delay(
    attempt: int,
    *,
    base: float = BACKOFF_BASE,
    cap: float = BACKOFF_CAP,
    hint: float = 0.0,
    spread: float = 0.0,
) -> float:
    """Full-jitter exponential backoff, never sooner than the server's `retry_after_ms` hint plus a
    random share of its `spread_ms` window (so a restarted worker's clients do not return at once)."""
    return max(hint + random.uniform(0.0, spread), random.uniform(0.0, min(cap, base * 2**attempt)))
