"""Comparing two runs of the same test: same seed, same trace, or the first difference.

Code under test breaks a simulation's determinism when it reads something the seed does
not decide: a thread, the wall clock (``time.time()``), an unseeded random generator
(``random.Random()``, ``secrets``, ``uuid.uuid4()``), state left over from an earlier run
(a module-level counter). The first event at which two runs differ points at it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wssim.trace.events import Event, Trace

__all__ = ["Divergence", "describe", "first_divergence", "traces_divergence"]


def describe(event: Event | None) -> str:
    """One event as one line: time, connection, where, kind and text (or ``<none>``)."""
    if event is None:
        return "<none: the trace ended>"
    conn = f" {event.conn}" if event.conn else ""
    return f"t={event.time:.6f}{conn} {event.where} {event.kind}: {event.text}"


@dataclass(frozen=True)
class Divergence:
    """Where two traces of one seed first differ.

    Attributes:
        index: the position of the first event that differs (or of the first event one
            trace has and the other lacks).
        first: that event in the first run, or None if the first run's trace ended there.
        second: that event in the second run, or None likewise.
        which: which of the test's simulations it is (0 for the first one it made).
    """

    index: int
    first: Event | None
    second: Event | None
    which: int = 0

    def __str__(self) -> str:
        return (
            f"the traces differ from event {self.index} on:\n"
            f"  first run:  {describe(self.first)}\n"
            f"  second run: {describe(self.second)}"
        )


def first_divergence(a: Trace, b: Trace) -> Divergence | None:
    """The first event at which ``a`` and ``b`` differ, or None if they are equal.

    Events compare by every field, the typed detail included; two traces of the same seed
    are equal event for event.
    """
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return Divergence(index, x, y)
    if len(a) != len(b):
        index = min(len(a), len(b))
        return Divergence(
            index, a[index] if index < len(a) else None, b[index] if index < len(b) else None
        )
    return None


def traces_divergence(first: Sequence[Trace], second: Sequence[Trace]) -> str | None:
    """Compare the simulations of two runs of a test, in the order the test made them.

    Returns:
        None if every trace is equal to its counterpart; else what differs, for people:
        the number of simulations, or the first diverging event of the first simulation
        that differs.
    """
    if len(first) != len(second):
        return (
            f"the first run made {len(first)} simulation(s), the second {len(second)}: "
            f"the test itself does not do the same thing twice"
        )
    for which, (a, b) in enumerate(zip(first, second, strict=True)):
        found = first_divergence(a, b)
        if found is not None:
            label = f"simulation {which + 1} of {len(first)}: " if len(first) > 1 else ""
            return label + str(found)
    return None
