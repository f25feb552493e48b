"""The JS client's own Node test suite, run under pytest so `make test` covers it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = "streaming/static/streaming/client.test.mjs"
NODE = shutil.which("node")


def node() -> str:
    """The Node binary; the JS suites are part of the tests, so a missing Node fails them."""
    assert NODE is not None, "node is not installed: the JS tests need Node 20+ (apt-get install nodejs)"
    return NODE


def test_js_client_node_suite_passes() -> None:
    result = subprocess.run(
        [node(), "--test", SUITE], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
