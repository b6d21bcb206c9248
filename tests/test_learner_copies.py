"""Run All works in a learner copy whatever the learner solved: for each exercise, the
learner copy with only that exercise solved runs to the end without an error.

(The copy with nothing solved is the committed learner copy, which nbval runs.)

Every cell of every variant runs for real, in one kernel per lesson: the cells before the
first solution are the same in every variant, so they run once, and each variant then
starts from the names they left (``globals()`` restored from a snapshot) and runs every
cell from the first solution to the end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from wssim.course import SOLUTION_TAG, exercises, learner_copy

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
LESSONS = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))

SNAPSHOT = "__course_snapshot = dict(globals())"
RESTORE = """\
def __course_restore(names):
    globals().clear()
    globals().update(names)
    globals()["__course_snapshot"] = names


__course_restore(__course_snapshot)
"""


def first_solution(notebook: dict[str, Any]) -> int:
    """Index, in ``notebook``'s learner copy, of the first cell a solved exercise changes."""
    return next(
        i
        for i, cell in enumerate(notebook["cells"])
        if cell["cell_type"] == "code" and "starter" in cell["metadata"].get("tags", [])
    )


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_each_exercise_solved_alone_runs_to_the_end(lesson: Path) -> None:
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
        solved_cells = [
            c
            for c in variant.cells
            if "wssim" in c.metadata or SOLUTION_TAG in c.metadata.get("tags", [])
        ]
        assert not solved_cells, "a learner copy keeps no solution metadata"

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
                        f"{lesson.name} with only exercise {n} solved: cell {index} failed"
                    ) from exc
