"""The course's notebooks: learner copies made from the notebooks with solutions.

Solutions are written once, in ``notebooks/NN-name.ipynb``. A cell tagged ``solution`` is
an answer: in the learner copy (``notebooks/learner/NN-name.ipynb``) a markdown solution
disappears, and a code solution is replaced by its starting point, kept in the cell's
metadata as ``"wssim": {"starter": "..."}``. Everything else is the same, so the check
cells that follow each exercise run in both copies: they say "Correct" in one, and give a
hint in the other.

Run ``python tools/learner.py --all`` to write the learner copies again (``python3 dev.py
execute`` does, before it executes them); a test fails when they drift from their
solutions. This is a tool of the repository, not part of the package.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

__all__ = [
    "SOLUTION_TAG",
    "STARTER_TAG",
    "exercises",
    "learner_copy",
    "learner_path",
    "write_learner_copies",
]

SOLUTION_TAG = "solution"
STARTER_TAG = "starter"
LEARNER_DIR = "learner"

Notebook = dict[str, Any]


def _tags(cell: dict[str, Any]) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


_EXERCISE = re.compile(r"\*\*Exercise (\d+)\.\*\*")


def exercises(notebook: Notebook) -> dict[int, list[int]]:
    """The code solutions of each exercise: exercise number -> indices of its cells tagged
    ``solution`` (a solution belongs to the last "**Exercise N.**" above it)."""
    out: dict[int, list[int]] = {}
    current: int | None = None
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "markdown" and SOLUTION_TAG not in _tags(cell):
            found = _EXERCISE.findall(_source(cell))
            if found:
                current = int(found[-1])
        elif cell["cell_type"] == "code" and SOLUTION_TAG in _tags(cell):
            if current is None:
                raise ValueError(f"solution cell {cell.get('id')!r} comes before any exercise")
            out.setdefault(current, []).append(index)
    return out


def learner_copy(notebook: Notebook, name: str, *, solved: Collection[int] = ()) -> Notebook:
    """Return the learner copy of ``notebook`` (called ``name``), without outputs.

    Args:
        notebook: the lesson, with its solutions.
        name: its file name, for the link back to it.
        solved: numbers of exercises whose code solutions stay in the copy, as if the
            learner had solved them (for tests: any mix of solved and unsolved exercises
            must run to the end).

    Raises:
        ValueError: if a code cell tagged ``solution`` has no starting point.
    """
    found = exercises(notebook) if solved else {}
    keep = {i for n, cells in found.items() if n in solved for i in cells}
    copied = copy.deepcopy(notebook)
    cells: list[dict[str, Any]] = []
    for index, cell in enumerate(copied["cells"]):
        tags = _tags(cell)
        meta = cell.setdefault("metadata", {})
        if index in keep:
            meta.pop("wssim", None)
            meta["tags"] = [STARTER_TAG if t == SOLUTION_TAG else t for t in tags]
            cells.append(cell)
            continue
        if SOLUTION_TAG not in tags:
            if cell["cell_type"] == "markdown":
                # The copy lives one folder down: links that leave notebooks/ go one more up.
                cell["source"] = _source(cell).replace("](../", "](../../")
            cells.append(cell)
            continue
        if cell["cell_type"] != "code":
            continue  # an explanation of the answer: learners write their own
        starter = meta.get("wssim", {}).get("starter")
        if not isinstance(starter, str):
            raise ValueError(
                f"{name}: solution cell {cell.get('id')!r} needs a starting point in its "
                f'metadata: "wssim": {{"starter": "..."}}'
            )
        meta.pop("wssim")
        meta["tags"] = [STARTER_TAG if t == SOLUTION_TAG else t for t in tags]
        cell["source"] = starter
        cells.append(cell)
    for cell in cells:
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    note = {
        "cell_type": "markdown",
        "id": "learner-copy",
        "metadata": {},
        "source": (
            "> **Learner copy.** Each exercise starts from a starting point for you to complete; "
            "run the check cell after it to find out whether you got it. The solutions are in "
            f"the [full notebook](../{name})."
        ),
    }
    cells.insert(1, note)
    copied["cells"] = cells
    return copied


def learner_path(solution: Path) -> Path:
    """Where the learner copy of the notebook at ``solution`` lives."""
    return solution.parent / LEARNER_DIR / solution.name


def _normalise(notebook: Notebook) -> list[tuple[str, str, str, list[str]]]:
    """What must match between a fresh learner copy and the committed one: not outputs."""
    return [(c.get("id", ""), c["cell_type"], _source(c), _tags(c)) for c in notebook["cells"]]


def _source(cell: dict[str, Any]) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def drifted(solution: Path) -> bool:
    """True if the committed learner copy of ``solution`` is not what it would be made now."""
    copy_path = learner_path(solution)
    if not copy_path.exists():
        return True
    fresh = learner_copy(json.loads(solution.read_text(encoding="utf-8")), solution.name)
    committed = json.loads(copy_path.read_text(encoding="utf-8"))
    return _normalise(fresh) != _normalise(committed)


def write_learner_copies(solutions: list[Path], *, every: bool = False) -> list[Path]:
    """Write the learner copy of each notebook whose copy drifted (or ``every`` one);
    return those written.

    The copies are written without outputs: execute them afterwards.
    """
    written = []
    for solution in solutions:
        if not every and not drifted(solution):
            continue
        fresh = learner_copy(json.loads(solution.read_text(encoding="utf-8")), solution.name)
        target = learner_path(solution)
        target.parent.mkdir(exist_ok=True)
        target.write_text(json.dumps(fresh, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(target)
    return written


def main(argv: list[str]) -> int:
    """``python tools/learner.py [--all] [NOTEBOOK...]``: write the learner copies that
    drifted from their notebooks (with ``--all``: every one)."""
    every = "--all" in argv
    paths = [Path(a) for a in argv if a != "--all"]
    paths = paths or sorted(Path("notebooks").glob("[0-9][0-9]-*.ipynb"))
    for path in write_learner_copies(paths, every=every):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
