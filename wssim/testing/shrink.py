"""Shrinking a failing chaos schedule: drop and shorten faults while the failure persists.

As Hypothesis shrinks an example and FoundationDB's simulator minimises a failing run, a
schedule that fails is made smaller step by step, each step kept only if the test still
fails the same way:

1. drop faults: halves of the list first, then quarters, down to one fault at a time;
2. shorten what is left: halve each fault's duration (to 0.1 s at least) while it fails.

Every step is decided by running the test, in a fixed order, so the same failing
schedule always shrinks to the same result; ``max_runs`` bounds the number of runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from wssim.lab.chaos import Schedule, ScheduledFault

__all__ = ["SHORTEST", "Shrunk", "shrink"]

SHORTEST = 0.1
"""The shortest duration a fault is shortened to, in seconds (a schedule's resolution)."""


@dataclass(frozen=True)
class Shrunk:
    """The result of :func:`shrink`.

    Attributes:
        schedule: the smallest schedule found that still fails.
        runs: how many times the test ran while shrinking.
        complete: False if ``max_runs`` ran out before every step was tried.
    """

    schedule: Schedule
    runs: int
    complete: bool


class _Budget:
    def __init__(self, fails: Callable[[Schedule], bool], max_runs: int) -> None:
        self.fails = fails
        self.left = max_runs
        self.runs = 0
        self.exhausted = False

    def still_fails(self, schedule: Schedule) -> bool:
        if self.left <= 0:
            self.exhausted = True  # a step that was not tried: the result may shrink further
            return False
        self.left -= 1
        self.runs += 1
        return self.fails(schedule)


def _with(schedule: Schedule, injections: list[ScheduledFault]) -> Schedule:
    return dataclasses.replace(schedule, injections=tuple(injections))


def _drop(schedule: Schedule, budget: _Budget) -> Schedule:
    current = list(schedule.injections)
    size = max(1, len(current) // 2)
    while size >= 1:
        i = 0
        while i < len(current):
            candidate = current[:i] + current[i + size :]
            if budget.still_fails(_with(schedule, candidate)):
                current = candidate  # keep the smaller one; the same i is the next chunk
            else:
                i += size
        size //= 2
    return _with(schedule, current)


def _shorten(schedule: Schedule, budget: _Budget) -> Schedule:
    current = list(schedule.injections)
    for i in range(len(current)):
        while True:
            fault = current[i]
            if fault.duration is None or fault.duration <= SHORTEST:
                break
            shorter = max(SHORTEST, round(fault.duration / 2, 1))
            candidate = list(current)
            candidate[i] = dataclasses.replace(fault, duration=shorter)
            if not budget.still_fails(_with(schedule, candidate)):
                break
            current = candidate
    return _with(schedule, current)


def shrink(schedule: Schedule, fails: Callable[[Schedule], bool], *, max_runs: int = 64) -> Shrunk:
    """Shrink a failing ``schedule``: the smallest one found for which ``fails`` is True.

    Args:
        schedule: a schedule for which ``fails`` is True (not checked again here).
        fails: runs the test under a schedule; True if it fails the same way.
        max_runs: the most times ``fails`` is called; an integer >= 0.

    Returns:
        The smallest failing schedule found (``schedule`` itself if nothing smaller
        fails), with the number of runs it took.
    """
    if isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 0:
        raise ValueError(f"max_runs must be an integer >= 0, got {max_runs!r}")
    budget = _Budget(fails, max_runs)
    smaller = _shorten(_drop(schedule, budget), budget)
    return Shrunk(smaller, budget.runs, complete=not budget.exhausted)
