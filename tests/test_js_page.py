"""The demo page's Node tests (its inventory rules), run under pytest so `make test` covers them."""

from __future__ import annotations

import subprocess

from tests.test_js_client import ROOT, node

SUITE = "widgetapp/static/widgetapp/inventory.test.mjs"


def test_demo_page_node_suite_passes() -> None:
    run = subprocess.run([node(), "--test", SUITE], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "# fail 0" in run.stdout, run.stdout[-4000:] + run.stderr[-2000:]
