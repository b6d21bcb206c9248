"""The course's notebooks: every lesson has a learner copy made from it, not drifted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.learner import drifted, exercises, learner_copy, learner_path
from wssim import Table
from wssim.course import WIDTH, fit

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


# Every text output fits a notebook: 100 characters a line, in the lessons and their copies.

EVERY_NOTEBOOK = LESSONS + [learner_path(p) for p in LESSONS]


def _texts(cell: dict[str, object]) -> list[str]:
    texts = []
    for output in cell.get("outputs", []):  # type: ignore[attr-defined]
        if output["output_type"] == "stream":
            texts.append("".join(output["text"]))
        elif output["output_type"] == "error":
            texts.append("\n".join(output["traceback"]))
        elif "text/plain" in output.get("data", {}):
            texts.append("".join(output["data"]["text/plain"]))
    return texts


@pytest.mark.parametrize(
    "path", EVERY_NOTEBOOK, ids=[f"{p.parent.name}/{p.stem}" for p in EVERY_NOTEBOOK]
)
def test_no_text_output_is_wider_than_a_notebook(path: Path) -> None:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    wide = [
        f"cell {index}: {len(line)} characters: {line[:60]}..."
        for index, cell in enumerate(cells)
        if cell["cell_type"] == "code"
        for text in _texts(cell)
        for line in text.splitlines()
        if len(line) > WIDTH
    ]
    assert not wide, f"{path.name}: lines wider than {WIDTH}:\n" + "\n".join(wide)


def test_fit_narrows_a_table_by_wrapping_its_widest_column() -> None:
    table = Table(
        ("time", "event"),
        [("1.000", "short"), ("2.000", "a long event " * 12)],
        right=(0,),
    )
    fitted = fit(table, width=40)
    lines = fitted.splitlines()
    assert max(len(line) for line in lines) <= 40
    assert lines[:3] == [" time  event", "-----  " + "-" * 33, "1.000  short"]
    assert lines[3].startswith("2.000  a long event")
    assert all(line.startswith(" " * 7) for line in lines[4:])
    # Nothing is lost: the words are all there, in order.
    assert " ".join(fitted.split()) == " ".join(str(table).split()).replace("-" * 156, "-" * 33)
    assert fit(Table(("a", "b"), [("1", "2")])) == str(Table(("a", "b"), [("1", "2")]))


def test_fit_wraps_long_lines_under_their_text_and_stops_a_table_at_its_end() -> None:
    report = "   client  " + "word " * 30 + "\n- " + "hint " * 30
    lines = fit(report, width=50).splitlines()
    assert max(len(line) for line in lines) <= 50
    assert lines[1].startswith(" " * 11 + "word")
    bullet = next(i for i, line in enumerate(lines) if line.startswith("- "))
    assert lines[bullet + 1].startswith("  hint")
    table_then_text = "a  b\n-  -\n1  2\n" + "x " * 40
    assert fit(table_then_text, width=30).splitlines()[:3] == ["a  b", "-  -", "1  2"]


def test_exercises_are_found_and_one_can_stay_solved() -> None:
    def cell(kind: str, source: str, tags: tuple[str, ...] = (), starter: str = "") -> dict:
        meta: dict[str, object] = {"tags": list(tags)}
        if starter:
            meta["wssim"] = {"starter": starter}
        return {"cell_type": kind, "id": source[:8], "metadata": meta, "source": source}

    nb = notebook(
        cell("markdown", "**Exercise 1.** one"),
        cell("code", "x = 1", ("solution",), "x = None"),
        cell("markdown", "**Exercise 2.** two"),
        cell("markdown", "answer", ("solution",)),
        cell("code", "y = 2", ("solution",), "y = None"),
        cell("code", "z = 3", ("solution",), "z = None"),
    )
    assert exercises(nb) == {1: [1], 2: [4, 5]}
    sources = [c["source"] for c in learner_copy(nb, "00-x.ipynb", solved={2})["cells"]]
    assert sources[2:] == ["x = None", "**Exercise 2.** two", "y = 2", "z = 3"]
