"""Sizes, rates, durations and counts as people read them; units.js is its twin in the browser."""

from __future__ import annotations

import math

#: Binary size units: memory is reported in KiB/MiB/GiB everywhere.
SIZE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB"]


def _tenths(value: float) -> int:
    """`value` rounded to tenths, as an integer count of tenths (half up, the same in JS)."""
    return math.floor(value * 10 + 0.5)


def format_number(value: float) -> str:
    """Short: one decimal under 10 (none when whole), whole up to 999, then k, M and G."""
    if value < 0:
        return "-" + format_number(-value)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale * 0.9995:
            return format_number(value / scale) + suffix
    tenths = _tenths(value)
    if tenths < 100:
        whole, tenth = divmod(tenths, 10)
        return f"{whole}.{tenth}" if tenth else str(whole)
    return str(math.floor(value + 0.5))


def format_bytes(size: float) -> str:
    """`size` bytes in the largest binary unit under which it is at least 1: "96.7 MiB"."""
    unit = 0
    while size >= 1023.95 and unit < len(SIZE_UNITS) - 1:
        size /= 1024
        unit += 1
    if unit == 0:
        return f"{math.floor(size + 0.5)} B"
    tenths = _tenths(size)
    if tenths >= 1000:
        return f"{math.floor(size + 0.5)} {SIZE_UNITS[unit]}"
    return f"{tenths // 10}.{tenths % 10} {SIZE_UNITS[unit]}"


def format_rate(per_second: float, noun: str = "msg") -> str:
    """A rate: "0 msg/s", "2.5 msg/s", "1.2k msg/s"."""
    return f"{format_number(per_second)} {noun}/s"


def format_duration(seconds: float) -> str:
    """ "850 ms", "4.2 s", "3 min 5 s", "2 h 4 min"."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 0.9995:
        return f"{format_number(seconds * 1000)} ms"
    if seconds < 59.5:
        return f"{format_number(seconds)} s"
    whole = math.floor(seconds + 0.5)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s" if whole % 60 else f"{whole // 60} min"
    minutes = whole // 60
    return f"{minutes // 60} h {minutes % 60} min" if minutes % 60 else f"{minutes // 60} h"


def format_percent(value: float) -> str:
    """ "3.5 %", "42 %"."""
    return f"{format_number(value)} %"


def format_count(count: int, noun: str, plural: str | None = None) -> str:
    """ "1 connection", "2 connections"."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
