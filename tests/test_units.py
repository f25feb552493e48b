"""One formatting of sizes, rates and durations: the Python helper and its JS twin agree."""

from __future__ import annotations

import json
import subprocess

from streaming.ops.units import (
    format_bytes,
    format_count,
    format_duration,
    format_number,
    format_percent,
    format_rate,
)
from tests.test_js_client import ROOT, node

NUMBERS = [
    0,
    0.04,
    0.05,
    0.25,
    0.35,
    1,
    2.5,
    9.94,
    9.95,
    9.96,
    10,
    42.5,
    99.5,
    999.4,
    999.5,
    1000,
    1234,
    15_500,
    999_400,
    999_600,
    1_250_000,
    3.2e9,
    -2.5,
]
SIZES = [0, 1, 512, 1023, 1024, 1536, 101_400_000, 1_048_576 * 96.7, 1_048_576 * 1023.96, 5 * 2**30, 2**50]
DURATIONS = [0, 0.0004, 0.012, 0.25, 0.9994, 0.9996, 1, 4.25, 59.94, 59.96, 185, 3599.6, 3600, 7440, 90061]
COUNTS = [0, 1, 2, 17]


def python_outputs() -> dict[str, list[str]]:
    return {
        "number": [format_number(v) for v in NUMBERS],
        "rate": [format_rate(v) for v in NUMBERS],
        "percent": [format_percent(v) for v in NUMBERS],
        "bytes": [format_bytes(v) for v in SIZES],
        "duration": [format_duration(v) for v in DURATIONS],
        "count": [format_count(v, "connection") for v in COUNTS],
    }


JS = """
import * as u from "./streaming/static/streaming/units.js";
const [numbers, sizes, durations, counts] = JSON.parse(process.argv[1]);
console.log(JSON.stringify({
  number: numbers.map((v) => u.formatNumber(v)),
  rate: numbers.map((v) => u.formatRate(v)),
  percent: numbers.map((v) => u.formatPercent(v)),
  bytes: sizes.map((v) => u.formatBytes(v)),
  duration: durations.map((v) => u.formatDuration(v)),
  count: counts.map((v) => u.formatCount(v, "connection")),
}));
"""


def test_readable_units() -> None:
    assert format_bytes(1_048_576 * 96.7) == "96.7 MiB"
    assert format_bytes(512) == "512 B"
    assert format_rate(0) == "0 msg/s"
    assert format_rate(1234) == "1.2k msg/s"
    assert format_duration(0.012) == "12 ms"
    assert format_duration(185) == "3 min 5 s"
    assert format_duration(7440) == "2 h 4 min"
    assert format_percent(42.5) == "43 %"
    assert format_count(1, "connection") == "1 connection"
    assert format_count(2, "connection") == "2 connections"


def test_javascript_twin_formats_identically() -> None:
    arg = json.dumps([NUMBERS, SIZES, DURATIONS, COUNTS])
    run = subprocess.run(
        [node(), "--input-type=module", "-e", JS, arg], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == python_outputs()
