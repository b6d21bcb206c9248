"""Exercises that check themselves.

Each lesson's exercises end with a check cell that calls a function from this package, for
example ``exercises.lesson00.sequential(client_three, third_reply_at)``. A check runs the
learner's code in a fresh simulation when it needs to, compares with what the lesson
asks, and returns :class:`Feedback`: a clear pass, or "not yet" with a hint. It never
raises a bare assertion error at a learner, and never gives the answer away in a hint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from wssim.course.display import fit

__all__ = ["Feedback", "correct", "not_yet", "seconds_close"]


@dataclass(frozen=True)
class Feedback:
    """The outcome of a check: shown as text in the notebook, at most 100 characters wide.

    Attributes:
        passed: True when the answer is right.
        text: what was right, or a hint towards the answer.
    """

    passed: bool
    text: str

    def __repr__(self) -> str:
        return fit(f"{'✓ Correct' if self.passed else '✗ Not yet'}: {self.text}")

    def __bool__(self) -> bool:
        return self.passed


def correct(text: str) -> Feedback:
    """A passed check, with a word on why it is right."""
    return Feedback(True, text)


def not_yet(text: str) -> Feedback:
    """A failed check, with a hint."""
    return Feedback(False, text)


def seconds_close(answer: object, expected: float, tolerance: float = 0.0015) -> bool | None:
    """Compare a learner's time in seconds with the expected one.

    Returns:
        None if ``answer`` is not a number at all (not answered yet), else whether it is
        within ``tolerance`` seconds.
    """
    if isinstance(answer, bool) or not isinstance(answer, int | float) or math.isnan(answer):
        return None
    return abs(answer - expected) <= tolerance
