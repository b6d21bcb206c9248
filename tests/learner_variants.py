"""Run each learner copy with each exercise solved alone, to the end (see
test_learner_copies.py, which uses this module).

``python -m tests.learner_variants NOTEBOOK...`` runs the lessons given and prints one JSON
line per lesson: ``{"lesson": name, "error": null or what failed}``. The test suite starts it
in a process of its own when the session begins, so that these kernels run on the second
core while the other tests run.

Every cell of every variant runs for real, in one kernel per lesson: the cells before the
first solution are the same in every variant, so they run once, and each variant then
starts from the names they left (``globals()`` restored from a snapshot) and runs every
cell from the first solution to the end.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

from tools.learner import SOLUTION_TAG, exercises, learner_copy

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

SNAPSHOT = "__course_snapshot = dict(globals())"
RESTORE = """\\
def __course_restore(names):
    globals().clear()
    globals().update(names)
    globals()["__course_snapshot"] = names


__course_restore(__course_snapshot)
"""


def first_solution(notebook: Any) -> int:
    """Index, in a learner copy, of the first cell a solved exercise changes."""
    return next(
        i
        for i, cell in enumerate(notebook["cells"])
        if cell["cell_type"] == "code" and "starter" in cell["metadata"].get("tags", [])
    )


def run(lesson: Path) -> None:
    """Run ``lesson``'s learner copy once per exercise, with that exercise solved alone.

    Raises:
        AssertionError: naming the exercise and the cell that failed.
    """
    solved_notebook = json.loads(lesson.read_text(encoding="utf-8"))
    numbers = sorted(exercises(solved_notebook))
    assert numbers, f"{lesson.name} has no exercise with a code solution"
    variants = {
        n: nbformat.reads(
            json.dumps(learner_copy(solved_notebook, lesson.name, solved={n})), as_version=4
        )
        for n in numbers
    }
    first = variants[numbers[0]]
    start = first_solution(first)
    for n, variant in variants.items():
        assert first_solution(variant) == start, n
        # The cells before `start` are the same in every variant.
        assert [c.source for c in variant.cells[:start]] == [c.source for c in first.cells[:start]]
        kept = [
            c
            for c in variant.cells
            if "wssim" in c.metadata or SOLUTION_TAG in c.metadata.get("tags", [])
        ]
        assert not kept, "a learner copy keeps no solution metadata"

    here = {"metadata": {"path": str(NOTEBOOKS / "learner")}}
    # nbclient keeps each executed cell at its index: the two helper cells go at the end of
    # each variant, after the cells of the lesson, which are run by their own indices.
    length = len(first.cells)
    for variant in variants.values():
        variant.cells += [nbformat.v4.new_code_cell(SNAPSHOT), nbformat.v4.new_code_cell(RESTORE)]
    client = NotebookClient(first, timeout=600, resources=here, allow_errors=False)
    with client.setup_kernel():
        for index in range(start):
            client.execute_cell(first.cells[index], index)
        client.execute_cell(first.cells[length], length)
        for n, variant in variants.items():
            client.nb = variant
            client.execute_cell(variant.cells[length + 1], length + 1)
            for index in range(start, length):
                try:
                    client.execute_cell(variant.cells[index], index)
                except Exception as exc:
                    raise AssertionError(
                        f"{lesson.name} with only exercise {n} solved: cell {index} failed:\\n{exc}"
                    ) from exc


def main(argv: list[str]) -> int:
    for name in argv:
        try:
            run(Path(name))
            error = None
        except Exception:
            error = traceback.format_exc()
        print(json.dumps({"lesson": Path(name).name, "error": error}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
