"""Run some cells of a lesson in this process, to look at what its figures drew.

A lesson's figure is checked with the lesson's own code: :func:`run_cells` executes the code
cells given by id (the imports, the experiment, the figure) in one namespace, with the
notebook's directory as working directory, and returns the namespace. What each cell printed
is kept in ``namespace["__printed__"]`` (cell id to text), to compare with the numbers the
lesson prints.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any

import matplotlib

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def lesson(prefix: str) -> Path:
    """The lesson whose file name starts with ``prefix`` (``"04"``)."""
    [path] = NOTEBOOKS.glob(f"{prefix}-*.ipynb")
    return path


def cell_source(prefix: str, cell_id: str) -> str:
    """The source of one cell of a lesson."""
    notebook = json.loads(lesson(prefix).read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        if cell.get("id") == cell_id:
            return "".join(cell["source"])
    raise LookupError(f"lesson {prefix} has no cell {cell_id}")


def run_cells(
    prefix: str, *cell_ids: str, namespace: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Execute the code cells ``cell_ids`` of lesson ``prefix``, in order, in one namespace."""
    matplotlib.use("Agg")
    ns: dict[str, Any] = {"__name__": "__lesson__"} if namespace is None else namespace
    printed: dict[str, str] = ns.setdefault("__printed__", {})
    here = Path.cwd()
    os.chdir(lesson(prefix).parent)
    try:
        for cell_id in cell_ids:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(cell_source(prefix, cell_id), f"{prefix}:{cell_id}", "exec"), ns)
            printed[cell_id] = out.getvalue()
    finally:
        os.chdir(here)
    return ns


def code_cells(prefix: str, upto: str, *, skip: tuple[str, ...] = ()) -> list[str]:
    """The ids of the code cells of lesson ``prefix`` up to ``upto`` included, but ``skip``."""
    notebook = json.loads(lesson(prefix).read_text(encoding="utf-8"))
    ids = []
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code" and cell.get("id") not in skip:
            ids.append(cell["id"])
        if cell.get("id") == upto:
            return ids
    raise LookupError(f"lesson {prefix} has no cell {upto}")
