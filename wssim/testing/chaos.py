"""Chaos tests of an application: a seeded schedule of faults, a quiet phase, liveness.

A test hands :meth:`Chaos.run` a function that starts the application on the simulation's
hosts (a server as a :meth:`~wssim.Host.service`, clients as processes). The run then goes
as in the simulators of FoundationDB and TigerBeetle:

1. a **chaos phase**: a schedule drawn from the seed (:func:`wssim.lab.chaos.schedule`:
   crashes with restarts, power losses and freezes of the server, partitions and latency
   spikes on client paths, idle-timeout middleboxes), from ``start`` to ``end``;
2. a **quiet phase** of ``quiet`` seconds with no fault, after which every client must be
   connected again, at both ends (**liveness**, :func:`~wssim.testing.assert_reconnected`);
3. the test's own **checks** (``check(sim, state)``: no message lost, nothing held...).

When a run fails, the schedule is shrunk (:mod:`wssim.testing.shrink`) and
:class:`ChaosFailure` reports the smallest schedule that still fails the same way, as
Python to paste into a test (``chaos.run(..., schedule=SCHEDULE)`` replays it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from wssim.lab import chaos as lab_chaos
from wssim.lab.chaos import Schedule, ScheduledFault
from wssim.simulation import Simulation
from wssim.testing.assertions import assert_reconnected
from wssim.testing.shrink import shrink as shrink_schedule
from wssim.trace.events import Trace

__all__ = ["Chaos", "ChaosFailure", "Run", "as_code", "last_fault_until"]

T = TypeVar("T")

Recorder = Callable[[str, Trace, bool], None]
"""Called with each run's label, its trace, and whether a failure report should show it."""


def _literal(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value)  # double quotes, as ruff formats them
    if isinstance(value, tuple):
        inner = ", ".join(_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def as_code(schedule: Schedule, *, name: str = "SCHEDULE") -> str:
    """``schedule`` as Python source that rebuilds it (``exec`` gives an equal schedule).

    Raises:
        ValueError: for a schedule with bad inputs (raw clients), which have no source form.
    """
    if schedule.bad_inputs:
        raise ValueError("a schedule with bad_inputs has no source form: draw it from its seed")
    lines = [
        "from wssim import faults",
        "from wssim.lab.chaos import Schedule, ScheduledFault",
        "",
        f"{name} = Schedule(",
        f"    seed={schedule.seed!r},",
        f"    server={_literal(schedule.server)},",
        f"    clients={_literal(tuple(schedule.clients))},",
        f"    start={schedule.start!r},",
        f"    end={schedule.end!r},",
        "    injections=(",
    ]
    for i in schedule.injections:
        lines.append(
            f"        ScheduledFault({i.at!r}, {i.duration!r}, faults.{i.kind.__name__}, "
            f"{_literal(i.args)}),"
        )
    lines += ["    ),", "    bad_inputs=(),", ")"]
    return "\n".join(lines)


def last_fault_until(schedule: Schedule) -> float:
    """When the last fault of ``schedule`` that ends is over (its ``start`` if none ends).

    Faults there all along (a middlebox's idle timeout) are conditions of the network,
    not events to recover from.
    """
    ends = [i.until for i in schedule.injections if i.until != math.inf]
    return max(ends, default=schedule.start)


@dataclass(frozen=True)
class Run(Generic[T]):
    """One run of the application under a schedule.

    Attributes:
        schedule: the faults injected.
        trace: the whole trace.
        state: what the test's ``app`` returned.
        error: the exception the run failed with, or None if it passed.
    """

    schedule: Schedule
    trace: Trace
    state: T | None
    error: Exception | None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def _fault_line(i: ScheduledFault) -> str:
    fault = i.fault()
    span = "until the end" if i.duration is None else f"for {i.duration:g} s"
    return f"t={i.at:g}  {fault!r} {span}"


class ChaosFailure(AssertionError):
    """A chaos run failed; the message holds the smallest failing schedule, as code.

    Attributes:
        seed: the seed of the run.
        original: the schedule drawn from the seed.
        minimal: the smallest schedule that still fails the same way.
        error: the exception of the run under ``minimal``.
        runs: how many runs shrinking took.
        code: ``minimal`` as Python (:func:`as_code`).
    """

    def __init__(
        self,
        *,
        seed: int,
        original: Schedule,
        minimal: Schedule,
        error: Exception,
        runs: int,
        complete: bool,
        replay: str,
    ) -> None:
        self.seed = seed
        self.original = original
        self.minimal = minimal
        self.error = error
        self.runs = runs
        self.code = as_code(minimal)
        n, m = len(original.injections), len(minimal.injections)
        budget = "" if complete else " (the run budget ran out: it may shrink further)"
        faults = "\n".join(f"  {_fault_line(i)}" for i in minimal.injections) or "  (none)"
        pasted = "\n".join(f"    {line}" if line else "" for line in self.code.splitlines())
        super().__init__(
            f"chaos run of seed {seed} failed: {_first_line(error)}\n"
            f"shrunk from {n} fault(s) to {m} in {runs} run(s){budget}:\n{faults}\n\n"
            f"The smallest schedule that still fails, to paste into a test:\n\n{pasted}\n\n"
            f"    {replay}\n\n"
            f"Its failure:\n{error}"
        )


class Chaos:
    """Runs an application under seeded chaos schedules: the ``chaos`` fixture.

    Args:
        seed: the seed of the simulation and of the schedule drawn.
        record: called with each run's label, trace, and whether a failure report should
            show it (the pytest plugin reports the smallest failing run).
    """

    def __init__(self, seed: int, *, record: Recorder | None = None) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.seed = seed
        self._record = record
        self.runs: list[Run[Any]] = []
        """Every run so far, shrinking's included, in order."""

    def __repr__(self) -> str:
        return f"<Chaos seed={self.seed} runs={len(self.runs)}>"

    def schedule(
        self,
        clients: Sequence[str],
        *,
        server: str = "server",
        start: float = 10.0,
        end: float = 130.0,
    ) -> Schedule:
        """The schedule drawn from this seed (:func:`wssim.lab.chaos.schedule`)."""
        return lab_chaos.schedule(self.seed, clients, server=server, start=start, end=end)

    def once(
        self,
        app: Callable[[Simulation], T],
        schedule: Schedule,
        *,
        clients: Sequence[str],
        quiet: float = 60.0,
        check: Callable[[Simulation, T], None] | None = None,
        latency: float = 0.010,
        label: str = "chaos run",
    ) -> Run[T]:
        """Run ``app`` once under ``schedule`` (no shrinking) and return what happened.

        The simulation runs until ``schedule.end + quiet``; then every client must be
        connected again ``quiet`` seconds after the last fault ended, and ``check(sim,
        state)`` runs, where ``state`` is what ``app(sim)`` returned. An exception from any
        of these (a failed process, an assertion) is the run's error.
        """
        sim = Simulation(seed=self.seed, latency=latency)
        state: T | None = None
        error: Exception | None = None
        try:
            state = app(sim)
            schedule.apply(sim)
            sim.run(until=schedule.end + quiet)
            assert_reconnected(sim.trace, clients, within=quiet, after=last_fault_until(schedule))
            if check is not None:
                check(sim, state)
        except Exception as exc:  # the application's failure, whatever it is, is the result
            error = exc
        finally:
            trace = sim.trace
            sim.close()
        run = Run(schedule, trace, state, error)
        self.runs.append(run)
        if self._record is not None:
            self._record(label, trace, False)
        return run

    def run(
        self,
        app: Callable[[Simulation], T],
        *,
        clients: Sequence[str],
        server: str = "server",
        start: float = 10.0,
        end: float = 130.0,
        quiet: float = 60.0,
        check: Callable[[Simulation, T], None] | None = None,
        schedule: Schedule | None = None,
        shrink: bool = True,
        max_runs: int = 48,
        latency: float = 0.010,
    ) -> Run[T]:
        """Run ``app`` under the schedule of this seed (or ``schedule``); shrink a failure.

        Args:
            app: starts the application on ``sim``'s hosts and returns what ``check``
                needs (a message log, a ledger...).
            clients: the client hosts: each must be connected again after the quiet phase.
            server: the server's host, which the server faults hit.
            start: no fault before this time (the middleboxes are there from 0).
            end: every fault is over by this time; at least 60 s after ``start``.
            quiet: seconds without faults after the last one, at the end of which every
                client must be connected (and after which ``check`` runs).
            check: the test's own checks, ``check(sim, state)``, after liveness.
            schedule: a schedule to run instead of drawing one (a shrunk one, pasted).
            shrink: on failure, shrink the schedule before reporting.
            max_runs: the most runs shrinking may take.
            latency: one-way latency between hosts, in seconds.

        Returns:
            The run, if it passed.

        Raises:
            ChaosFailure: if it failed: the smallest failing schedule, as code, and its
                failure (the report of the pytest plugin shows that run's trace).
            ValueError: for an argument out of its range.
        """
        __tracebackhide__ = True  # a failure shows the test's line and the report below
        if isinstance(quiet, bool) or not isinstance(quiet, int | float) or not quiet > 0:
            raise ValueError(f"quiet must be a number of seconds > 0, got {quiet!r}")
        if isinstance(clients, str) or not clients:
            raise ValueError(f"clients must be a non-empty sequence of host names, got {clients!r}")
        if schedule is None:
            schedule = self.schedule(clients, server=server, start=start, end=end)
        elif not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a wssim.lab.chaos.Schedule, got {schedule!r}")

        def attempt(candidate: Schedule, label: str) -> Run[T]:
            return self.once(
                app,
                candidate,
                clients=clients,
                quiet=quiet,
                check=check,
                latency=latency,
                label=label,
            )

        first = attempt(schedule, "chaos run")
        if first.error is None:
            return first
        kind = type(first.error)
        smallest: list[Run[T]] = [first]

        def fails(candidate: Schedule) -> bool:
            run = attempt(candidate, "shrinking")
            # The same failure: the same kind of exception (a lost message is not a crash).
            if run.error is not None and type(run.error) is kind:
                smallest[0] = run
                return True
            return False

        runs, complete = 0, True
        if shrink:
            shrunk = shrink_schedule(schedule, fails, max_runs=max_runs)
            runs, complete = shrunk.runs, shrunk.complete
        minimal = smallest[0]
        assert minimal.error is not None
        if self._record is not None:
            self._record("the smallest failing chaos run", minimal.trace, True)
        name = getattr(app, "__name__", "app")
        raise ChaosFailure(
            seed=self.seed,
            original=schedule,
            minimal=minimal.schedule,
            error=minimal.error,
            runs=runs,
            complete=complete,
            replay=f"chaos.run({name}, clients={list(clients)!r}, schedule=SCHEDULE, ...)",
        ) from None  # its text holds the failure; ChaosFailure.error keeps its traceback
