"""The demo page's Node tests (its inventory rules), run under pytest so `make test` covers them."""

from __future__ import annotations

import subprocess

import pytest

from tests.test_js_client import NODE, ROOT

SUITE = "widgetapp/static/widgetapp/inventory.test.mjs"


@pytest.mark.skipif(NODE is None, reason="node is not installed: the page's JS tests need Node 20+")
def test_demo_page_node_suite_passes() -> None:
    assert NODE is not None
    run = subprocess.run([NODE, "--test", SUITE], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "# fail 0" in run.stdout, run.stdout[-4000:] + run.stderr[-2000:]
