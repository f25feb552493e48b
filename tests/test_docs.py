"""The documents promise only what exists: the AsyncAPI contract validates."""

import shutil
import subprocess
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parent.parent / "docs" / "tools"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_asyncapi_document_validates():
    if not (TOOLS / "node_modules" / "@asyncapi" / "parser").exists():
        subprocess.run(
            ["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=TOOLS, check=True, timeout=300
        )
    result = subprocess.run(
        ["node", "validate-asyncapi.mjs"], cwd=TOOLS, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "asyncapi.yaml is valid" in result.stdout
