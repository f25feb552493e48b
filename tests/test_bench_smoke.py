"""The benchmark harness still runs: a quick smoke of every scenario, each target printing numbers.

Our server's idle, connect-storm and resume-storm scenarios (3, 4a, 4b) have their own test, with the
ceiling beside it (resume does not apply to the ceiling, which the run must say).

The run against our own server is skipped only with BENCH_SMOKE_SKIP_OURS=1 (while ours cannot serve
yet the runner reports it unavailable and prints n/a, which fails that test).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.servers import ROOT

BENCH = ROOT / "bench"
NUMBER = r"-?[\d,]+(?:\.\d+)?"
SCENARIO_ROWS = [
    "max sustained deliveries/s",
    "p99 ms",
    "KB RSS per conn (first count)",
    "connects/s",
    "mux: CPU us per delivered event",
]
STORM_ROWS = [
    "KB RSS per conn (third count)",
    "idle CPU % (second count)",
    "connects/s",
    "SIGTERM: moved clients",
    "SIGTERM: gap close->caught up p99 ms",
    "SIGTERM: worst publish->deliver ms",
    "SIGKILL: s until all hold every event",
    "SIGKILL: lost",
    "SIGKILL: duplicated",
]
OURS_TARGETS = [
    "<= 24 KB RSS per idle connection",
    "5,000 idle connections <= 3 % of a core",
    "authenticated connects/s per worker",
    "resume storm: 0 lost and 0 duplicated",
    "SIGKILL: every client reconnected and caught up",
    "SIGTERM drain: moved clients back",
    "SIGTERM drain: no event later than 1.5 s",
]

pytestmark = pytest.mark.slow


def run_quick(targets: list[str], scenarios: str = "1,2,3,4,5") -> str:
    if not (BENCH / "node_modules" / "ws").is_dir():
        npm = shutil.which("npm")
        assert npm, "npm is needed to install the load generator (bench/package.json)"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=BENCH, check=True, timeout=300)
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run.py"),
            "--quick",
            "--scenarios",
            scenarios,
            "--targets",
            ",".join(targets),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def assert_numbers(out: str, targets: list[str], rows: list[str] = SCENARIO_ROWS) -> None:
    for metric in rows:
        line = next((row for row in out.splitlines() if re.match(re.escape(metric) + r"\s{2}", row)), None)
        assert line is not None, f"no {metric!r} row in:\n{out}"
        cells = line[len(metric) :].split()[: len(targets)]
        assert all(re.fullmatch(NUMBER, value) for value in cells), f"{metric}: {cells}\n{out}"
    assert re.search(r"results: bench/results/bench-[\d-]+\.json", out)


def test_quick_bench_runs_every_scenario_against_the_comparison_servers() -> None:
    assert_numbers(run_quick(["ceiling", "naive"]), ["ceiling", "naive"])


@pytest.mark.skipif(os.environ.get("BENCH_SMOKE_SKIP_OURS") == "1", reason="BENCH_SMOKE_SKIP_OURS=1")
def test_quick_bench_runs_every_scenario_against_our_server() -> None:
    assert_numbers(
        run_quick(["ours"], "1,2,5"), ["ours"], [SCENARIO_ROWS[0], SCENARIO_ROWS[1], SCENARIO_ROWS[4]]
    )


@pytest.mark.skipif(os.environ.get("BENCH_SMOKE_SKIP_OURS") == "1", reason="BENCH_SMOKE_SKIP_OURS=1")
def test_quick_idle_and_storms_report_numbers_and_a_verdict_per_target() -> None:
    out = run_quick(["ours", "ceiling"], "3,4")
    assert_numbers(out, ["ours"], STORM_ROWS)
    for label in OURS_TARGETS:
        assert re.search(r"target (met   |MISSED) " + re.escape(label), out), f"no verdict {label!r}:\n{out}"
    assert "ceiling: does not apply - no event history to resume from" in out
    lossless = next(row for row in out.splitlines() if "resume storm: 0 lost and 0 duplicated" in row)
    assert "ours 0 lost, 0 duplicated" in lossless, lossless
