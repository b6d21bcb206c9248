"""The README's example runs and prints what the README says it prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_example_prints_what_the_readme_shows() -> None:
    text = README.read_text(encoding="utf-8")
    example = re.search(r"## A simulation in ten lines.*?```python\n(.*?)```", text, re.S)
    shown = re.search(r"prints\n\n```text\n(.*?)```", text, re.S)
    assert example is not None and shown is not None
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", example.group(1)],
        capture_output=True,
        text=True,
        check=True,
        cwd=README.parent,
    )
    assert result.stdout == shown.group(1)
    assert result.stderr == ""


def test_the_readme_browser_example_prints_what_the_readme_shows() -> None:
    text = README.read_text(encoding="utf-8")
    first = re.search(r"## A simulation in ten lines.*?```python\n(.*?)```", text, re.S)
    example = re.search(r"## A page in a browser tab.*?```python\n(.*?)```", text, re.S)
    shown = re.search(r"## A page in a browser tab.*?prints\n\n```text\n(.*?)```", text, re.S)
    assert first is not None and example is not None and shown is not None
    # The definitions of the first example (its imports, echo and server), then this one.
    definitions = first.group(1).split("\nsim = ")[0]
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", definitions + "\n" + example.group(1)],
        capture_output=True,
        text=True,
        check=True,
        cwd=README.parent,
    )
    assert result.stdout == shown.group(1)
    assert result.stderr == ""
