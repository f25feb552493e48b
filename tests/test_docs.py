"""The documents promise only what exists: the AsyncAPI contract validates, and the site builds strictly."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "docs" / "tools"


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


def test_docs_site_builds_strictly_with_no_broken_link(tmp_path):
    """`make docs`: MkDocs fails on any warning, so a broken link or anchor fails this test."""
    mkdocs = ROOT / ".venv" / "bin" / "mkdocs"
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr
    for page in ("index.html", "admin-guide/index.html", "changelog/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    assert "Runbook: a load ticket" in (tmp_path / "site" / "admin-guide" / "index.html").read_text()
