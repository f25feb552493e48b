"""The benchmark harness still runs: a quick smoke of every scenario, each target printing numbers.

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

pytestmark = pytest.mark.slow


def run_quick(targets: list[str]) -> str:
    if not (BENCH / "node_modules" / "ws").is_dir():
        npm = shutil.which("npm")
        assert npm, "npm is needed to install the load generator (bench/package.json)"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=BENCH, check=True, timeout=300)
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--targets", ",".join(targets)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def assert_numbers(out: str, targets: list[str]) -> None:
    for metric in SCENARIO_ROWS:
        line = next((row for row in out.splitlines() if re.match(re.escape(metric) + r"\s{2}", row)), None)
        assert line is not None, f"no {metric!r} row in:\n{out}"
        cells = line[len(metric) :].split()[: len(targets)]
        assert all(re.fullmatch(NUMBER, value) for value in cells), f"{metric}: {cells}\n{out}"
    assert re.search(r"results: bench/results/bench-[\d-]+\.json", out)


def test_quick_bench_runs_every_scenario_against_the_comparison_servers() -> None:
    assert_numbers(run_quick(["ceiling", "naive"]), ["ceiling", "naive"])


@pytest.mark.skipif(os.environ.get("BENCH_SMOKE_SKIP_OURS") == "1", reason="BENCH_SMOKE_SKIP_OURS=1")
def test_quick_bench_runs_every_scenario_against_our_server() -> None:
    assert_numbers(run_quick(["ours"]), ["ours"])
