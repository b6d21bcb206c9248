"""Every relative link in the README, the docs and the lessons leads to a file that exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def documents() -> list[tuple[Path, str]]:
    found = [(ROOT / "README.md", (ROOT / "README.md").read_text(encoding="utf-8"))]
    found += [(p, p.read_text(encoding="utf-8")) for p in sorted((ROOT / "docs").glob("*.md"))]
    for notebook in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        found.append((notebook, text))
    return found


def relative_links(text: str) -> list[str]:
    return [
        target.split("#")[0]
        for target in LINK.findall(text)
        if not re.match(r"[a-z]+:", target) and not target.startswith("#")
    ]


@pytest.mark.parametrize(
    ("path", "text"), documents(), ids=[str(p.relative_to(ROOT)) for p, _ in documents()]
)
def test_relative_links_resolve(path: Path, text: str) -> None:
    missing = [t for t in relative_links(text) if not (path.parent / t).exists()]
    assert missing == []
