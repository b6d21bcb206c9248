"""Run All works in a learner copy whatever the learner solved: for each exercise, the
learner copy with only that exercise solved runs to the end without an error.

(The copy with nothing solved is the committed learner copy, which nbval runs.) The work is
in :mod:`tests.learner_variants`; the session starts it in a process of its own as soon as
the tests are collected (``tests/conftest.py``), and these tests, moved to the end of the
session, read its verdicts. Run alone, they do the work themselves.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests import learner_variants

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
LESSONS = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))


class Background:
    """The variants of some lessons, run by ``python -m tests.learner_variants``."""

    def __init__(self, lessons: list[Path]) -> None:
        self.lessons = lessons
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.learner_variants", *map(str, lessons)],
            cwd=NOTEBOOKS.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.errors: dict[str, str | None] | None = None

    def error(self, lesson: Path) -> str | None:
        if self.errors is None:
            out, _ = self.process.communicate(timeout=1800)
            lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
            self.errors = {line["lesson"]: line["error"] for line in lines}
        assert lesson.name in self.errors, f"the background run said nothing of {lesson.name}"
        return self.errors[lesson.name]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


BACKGROUND: list[Background] = []  # at most one, started by tests/conftest.py


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_each_exercise_solved_alone_runs_to_the_end(lesson: Path) -> None:
    background = next((b for b in BACKGROUND if lesson in b.lessons), None)
    if background is None:
        learner_variants.run(lesson)
        return
    error = background.error(lesson)
    assert error is None, error
