"""MkDocs hooks: README.md and CHANGELOG.md join the site, with their repository links made site links."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
#: Repository pages published on the site, by their name on the site.
PAGES = {"index.md": ROOT / "README.md", "changelog.md": ROOT / "CHANGELOG.md"}
#: Markdown links: [text](target) with a relative target.
LINK = re.compile(r"\[([^\]]+)\]\((?!https?:|#)([^)#\s]+)(#[^)\s]*)?\)")


def site_target(target: str) -> str | None:
    """Where a repository-relative link points on the site, or None when the site does not hold it."""
    name = target.removeprefix("../").removeprefix("docs/")
    if name in ("README.md", "CHANGELOG.md"):
        return "index.md" if name == "README.md" else "changelog.md"
    return name if (ROOT / "docs" / name).is_file() else None


def relink(markdown: str, *, unlink: bool) -> str:
    """Links to pages the site holds point at them; with `unlink`, links to other repository files
    become text (the README names deployment files), else they stay for MkDocs to report."""

    def replace(match: re.Match[str]) -> str:
        text, target, anchor = match.group(1), match.group(2), match.group(3) or ""
        found = site_target(target)
        if found:
            return f"[{text}]({found}{anchor})"
        return text if unlink else match.group(0)

    return LINK.sub(replace, markdown)


def on_files(files: Files, config: Any) -> Files:
    for name, source in PAGES.items():
        files.append(File.generated(config, name, content=relink(source.read_text(), unlink=True)))
    return files


def on_page_markdown(markdown: str, **_: Any) -> str:
    return relink(markdown, unlink=False)
