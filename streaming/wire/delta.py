"""Event deltas: a fossil delta turning a stream's previous event frame into the next one.

The base of a delta is the complete text of the previous event frame of the same stream, as the
subscriber received or rebuilt it; applying the delta gives the complete text of the new frame.
"""

from __future__ import annotations

import fossil_delta

#: The one delta format a client may ask for in `subscribe`.
FOSSIL = "fossil"
FORMATS = frozenset({FOSSIL})


def create(previous: bytes, current: bytes) -> str | None:
    """The delta from `previous` to `current` as text, or None when it is not valid UTF-8.

    Fossil copies byte ranges, so a delta can split a multi-byte character; such a delta cannot
    travel in a JSON string and the full frame is sent instead.
    """
    try:
        return fossil_delta.create_delta(previous, current).decode()
    except UnicodeDecodeError:
        return None


def apply(previous: str, delta: str) -> str:
    """The frame text that `delta` builds from `previous` (raises ValueError if it does not fit)."""
    try:
        return fossil_delta.apply_delta(previous.encode(), delta.encode()).decode()
    except Exception as exc:  # the C library raises a bare Exception on a bad delta
        raise ValueError(f"Delta does not apply: {exc}") from None
