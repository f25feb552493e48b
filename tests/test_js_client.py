"""The JS client's own Node test suite, run under pytest so `make test` covers it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUITE = "streaming/static/streaming/client.test.mjs"
NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed: the JS client's tests need Node 20+")
def test_js_client_node_suite_passes() -> None:
    result = subprocess.run(
        [NODE, "--test", SUITE], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
