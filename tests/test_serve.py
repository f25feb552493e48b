"""`make serve` refuses a multi-worker setup that could not work."""

from __future__ import annotations

import os
import subprocess

from tests.servers import ROOT


def test_several_workers_without_redis_are_refused(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    result = subprocess.run(
        ["make", "-s", "serve", "WORKERS=2", "PORT=1", f"RUN_DIR={tmp_path}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "WORKERS=2 needs REDIS_URL" in result.stderr
    assert not any(tmp_path.iterdir())  # nothing was started
