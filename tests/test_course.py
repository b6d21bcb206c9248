"""The course's notebooks: every lesson has a learner copy made from it, not drifted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.learner import drifted, learner_copy, learner_path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
LESSONS = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))


def test_there_are_lessons() -> None:
    assert [p.name[:2] for p in LESSONS][:2] == ["00", "01"]


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_the_learner_copy_is_made_from_the_lesson(lesson: Path) -> None:
    assert learner_path(lesson).exists(), "run: python3 dev.py execute " + str(lesson)
    assert not drifted(lesson), (
        f"{learner_path(lesson)} drifted from {lesson.name}: run python3 dev.py execute {lesson}"
    )


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_every_exercise_has_a_solution_and_a_check(lesson: Path) -> None:
    cells = json.loads(lesson.read_text(encoding="utf-8"))["cells"]
    exercises = sum("**Exercise" in "".join(c["source"]) for c in cells)
    solutions = [c for c in cells if "solution" in c["metadata"].get("tags", [])]
    code_solutions = [c for c in solutions if c["cell_type"] == "code"]
    assert exercises >= 1
    assert len(code_solutions) >= exercises
    # Each code solution is followed by a check cell that prints the verdict.
    for solution in code_solutions:
        after = cells[cells.index(solution) + 1]
        assert after["cell_type"] == "code" and after["id"].startswith("check"), solution["id"]
        assert (
            after["outputs"] and "✓ Correct" in "".join(after["outputs"][0].get("text", ""))
        ) or ("✓ Correct" in "".join(after["outputs"][0]["data"]["text/plain"]))


def notebook(*cells: dict[str, object]) -> dict[str, object]:
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_a_learner_copy_swaps_solutions_for_starters() -> None:
    title = {"cell_type": "markdown", "id": "t", "metadata": {}, "source": "# [T](../docs/x.md)"}
    answer = {
        "cell_type": "markdown",
        "id": "a",
        "metadata": {"tags": ["solution"]},
        "source": "42",
    }
    solved = {
        "cell_type": "code",
        "id": "s",
        "metadata": {"tags": ["solution"], "wssim": {"starter": "x = None"}},
        "source": "x = 42",
        "outputs": [{"output_type": "stream", "name": "stdout", "text": "42"}],
        "execution_count": 3,
    }
    copy = learner_copy(notebook(title, answer, solved), "00-x.ipynb")
    cells = copy["cells"]
    assert [c["id"] for c in cells] == ["t", "learner-copy", "s"]
    assert cells[2]["source"] == "x = None"
    assert cells[2]["outputs"] == [] and cells[2]["execution_count"] is None
    assert cells[2]["metadata"] == {"tags": ["starter"]}
    assert "../00-x.ipynb" in cells[1]["source"]
    assert cells[0]["source"] == "# [T](../../docs/x.md)"


def test_a_code_solution_without_a_starter_is_an_error() -> None:
    solved = {
        "cell_type": "code",
        "id": "s",
        "metadata": {"tags": ["solution"]},
        "source": "x = 42",
        "outputs": [],
        "execution_count": None,
    }
    with pytest.raises(ValueError, match="solution cell 's' needs a starting point"):
        learner_copy(notebook(solved), "00-x.ipynb")
