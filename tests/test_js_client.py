"""The JS client's own Node test suite, run under pytest so `make test` covers it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

from hypothesis import given, settings

from tests.test_deltas import run, steps

ROOT = Path(__file__).resolve().parent.parent
SUITE = "streaming/static/streaming/client.test.mjs"
NODE = shutil.which("node")


def node() -> str:
    """The Node binary; the JS suites are part of the tests, so a missing Node fails them."""
    assert NODE is not None, "node is not installed: the JS tests need Node 20+ (apt-get install nodejs)"
    return NODE


def test_js_client_node_suite_passes() -> None:
    run_suite()


def run_suite(*args: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        [node(), "--test", *args, SUITE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout


def test_js_client_applies_the_deltas_a_real_hub_builds(tmp_path: Path) -> None:
    """Hypothesis-generated publish/gap/resume sequences through the hub, replayed into the JS client."""
    cases: list[dict[str, object]] = []

    @settings(max_examples=60, deadline=None, database=None)
    @given(steps)
    def collect(ops: list[tuple[str, object]]) -> None:
        published, client = asyncio.run(run(ops))
        cases.append({"published": published, "segments": client.segments})

    collect()
    frames = [frame for case in cases for segment in case["segments"] for frame in segment["frames"]]  # type: ignore[attr-defined]
    assert any('"delta":"' in frame for frame in frames)
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases, ensure_ascii=False))
    run_suite("--test-name-pattern", "deltas", env={"DELTA_CASES": str(path)})
