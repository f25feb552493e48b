"""Sockets that have not authenticated yet: caps per worker and per address, and one audit row per
run of unauthenticated failures from an address instead of one per socket."""

from __future__ import annotations

import time
from collections import Counter

from streaming.bus import audit
from streaming.conf import streaming_settings
from streaming.delivery.worker import Worker

#: Seconds over which an address's unauthenticated failures are summed into one audit row.
FAILURE_WINDOW = 60.0

#: Unauthenticated sockets per remote address on this worker.
by_address: Counter[str] = Counter()

#: Address → (when its window opened, failures not yet written).
_failures: dict[str, tuple[float, int]] = {}


def refusal(worker: Worker, remote: str) -> str | None:
    """Why one more unauthenticated socket from `remote` is refused here, or None to let it wait."""
    if by_address[remote] >= streaming_settings.MAX_PENDING_AUTH_PER_ADDRESS:
        return "Too many unauthenticated sockets from your address."
    if worker.pending_auth >= streaming_settings.MAX_PENDING_AUTH_PER_WORKER:
        return "Too many unauthenticated sockets."
    return None


def enter(remote: str) -> None:
    by_address[remote] += 1


def leave(remote: str) -> None:
    by_address[remote] -= 1
    if by_address[remote] <= 0:
        del by_address[remote]


def first_failure(remote: str) -> bool:
    """Count an unauthenticated failure from `remote`; True when it opens a window (audit it)."""
    now = time.monotonic()
    opened, count = _failures.get(remote, (now, 0))
    if count and now - opened < FAILURE_WINDOW:
        _failures[remote] = (opened, count + 1)
        return False
    _write(remote, count - 1)
    _failures[remote] = (now, 1)
    return True


def _write(remote: str, more: int) -> None:
    if more > 0:
        detail = f"{more} more unauthenticated failures from this address within {FAILURE_WINDOW:g} s."
        audit.record(audit.Kind.AUTH_FAILED, remote=remote, detail=detail)


def failure_duty(worker: Worker) -> None:
    """Worker duty: write the summaries of the windows that have closed."""
    now = time.monotonic()
    for remote, (opened, count) in list(_failures.items()):
        if now - opened >= FAILURE_WINDOW:
            _write(remote, count - 1)
            del _failures[remote]
