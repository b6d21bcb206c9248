"""Virtual time for asyncio.

An event loop whose clock never reads the wall: when nothing is ready to run, time jumps
straight to the next timer. Nothing here knows about networks; :mod:`wssim.net.fabric` builds
on top of it.
"""

from __future__ import annotations

import asyncio
import math
import selectors
from typing import Any

__all__ = ["MAX_TIME", "STUCK_ROUNDS", "TimeStuck", "VirtualClockLoop"]

# Times are kept in integer nanoseconds so that repeated additions never drift: a timer
# set for t fires at t, not at t - 1e-17, and sums of latencies stay exact.
_NS = 1_000_000_000

MAX_TIME = 1e9
"""The latest virtual time a simulation reaches, in seconds (about 31.7 years).

asyncio keeps timers as float seconds: up to 1e9 s a float still resolves a tenth of a
microsecond, so the trace's microseconds stay exact. Later deadlines are refused up front.
"""

STUCK_ROUNDS = 100_000
"""Rounds of the event loop at one virtual instant after which time is declared stuck.

A legitimate instant takes a few dozen rounds (a callback wakes a task, which wakes
another...); a hundred thousand means some task never waits for anything that takes time,
such as ``while True: await asyncio.sleep(0)``: virtual time could never advance.
"""


def _resolution(now_ns: int) -> float:
    """How close to now a timer counts as due, for asyncio (see ``_clock_resolution``).

    asyncio runs a timer once ``when < time() + _clock_resolution``. Timers due within 1 ns
    of now are due now (see the note on _NS above); past 2**24 s a float cannot add 1 ns any
    more, so two units in the last place are the floor, or a timer due "now" would never
    run. Computed when the clock moves, not at every round of the loop.
    """
    return max(1e-9, 2 * math.ulp(now_ns / _NS))


class TimeStuck(RuntimeError):
    """Virtual time cannot advance: some task is always ready to run.

    Raised by a run after :data:`STUCK_ROUNDS` rounds of the event loop at one instant.
    The message names the tasks that were ready and where each one is.
    """


class _VirtualSelector(selectors.BaseSelector):
    """A selector that never blocks: waiting for ``timeout`` advances the virtual clock.

    The loop's self-pipe (used by ``call_soon_threadsafe``) is still registered with a real
    selector and polled without waiting. Virtual time does not wait for other threads:
    work handed to a thread (``run_in_executor``) races against the virtual clock, so code
    in a simulation must not rely on threads.
    """

    def __init__(self) -> None:
        self._real = selectors.DefaultSelector()
        self.loop: VirtualClockLoop | None = None

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready:
            return ready
        assert self.loop is not None
        if self.loop.interrupting:
            # Between two rounds: every callback has run to its end, so the world is whole.
            self.loop.interrupting = False
            raise KeyboardInterrupt
        if timeout == 0:
            self.loop._same_instant()
        else:
            self.loop._wait(timeout)
        return []

    def close(self) -> None:
        self._real.close()

    def get_map(self) -> Any:
        return self._real.get_map()


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop running on virtual time.

    ``time()`` starts at 0.0 and only moves when every task is waiting: the loop then jumps
    to the earliest timer. :meth:`run_until` runs the loop up to a virtual deadline, or until
    nothing is left that could ever happen (:attr:`idle` tells which).
    """

    def __init__(self) -> None:
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self
        self._now_ns = 0
        self._until_ns: int | None = None
        self._rounds = 0  # rounds of the loop at the current instant
        self.idle = False
        self.interrupting = False
        """Set (by a SIGINT handler) to raise KeyboardInterrupt at the next round."""
        self._clock_resolution = _resolution(0)

    def time(self) -> float:
        """Return the current virtual time, in seconds."""
        return self._now_ns / _NS

    def run_until(self, until: float | None) -> None:
        """Run callbacks, tasks and timers up to virtual time ``until``.

        Everything due at ``until`` itself runs, including the callbacks it triggers at that
        same instant; then the clock reads exactly ``until``. With ``until=None`` the loop
        runs until nothing is ready and no timer is pending (:attr:`idle` becomes true).

        Raises:
            ValueError: if ``until`` is before the current virtual time.
        """
        if until is not None:
            if not until <= MAX_TIME:
                raise ValueError(f"until must be <= {MAX_TIME:g} seconds, got {until!r}")
            until_ns = round(until * _NS)
            if until_ns < self._now_ns:
                raise ValueError(
                    f"until={until!r} is in the past: the simulation is already at "
                    f"t={self.time():g} s"
                )
            self._until_ns = until_ns
        else:
            self._until_ns = None
        self.idle = False
        self.run_forever()

    def run_until_complete(self, future: Any) -> Any:
        """Run until ``future`` is done, however far in virtual time that is."""
        self._until_ns = None
        return super().run_until_complete(future)

    def _same_instant(self) -> None:
        """Called by the selector for each round of the loop that does not advance time."""
        self._rounds += 1
        if self._rounds > STUCK_ROUNDS:
            self._rounds = 0
            raise TimeStuck(
                f"virtual time is stuck at t={self.time():g} s: {STUCK_ROUNDS:,} rounds of "
                f"the event loop ran without any timer coming due. Always ready: "
                f"{self._describe_ready()}. A loop that only yields (`await "
                f"asyncio.sleep(0)`) never lets time advance: sleep for a real duration, or "
                f"wait for an event."
            )

    def _describe_ready(self) -> str:
        """The tasks waiting in the ready queue, with the line each one is at."""
        seen: dict[asyncio.Task[Any], None] = {}
        for handle in self._ready:  # type: ignore[attr-defined]
            task = getattr(handle._callback, "__self__", None)
            if isinstance(task, asyncio.Task) and not task.done():
                seen[task] = None
        if not seen:
            return "callbacks, but no task"
        return "; ".join(self._describe_task(task) for task in seen)

    def _describe_task(self, task: asyncio.Task[Any]) -> str:
        frames = task.get_stack(limit=1)
        where = ""
        if frames:
            code = frames[-1].f_code
            where = f" at {code.co_filename}:{frames[-1].f_lineno} in {code.co_name}()"
        return f"task {task.get_name()!r}{where}"

    def _wait(self, timeout: float | None) -> None:
        """Called by the selector when nothing is ready: jump to the next timer."""
        self._rounds = 0
        scheduled: list[asyncio.TimerHandle] = self._scheduled  # type: ignore[attr-defined]
        if timeout is None or not scheduled:
            # No timer at all: nothing can ever happen again.
            if self._until_ns is not None:
                self._now_ns = self._until_ns
                self._clock_resolution = _resolution(self._now_ns)
            self.idle = True
            self.stop()
            return
        # Jump straight to the earliest timer (asyncio caps `timeout` at one day), and land
        # exactly on its nanosecond: rounding (not ceil) keeps sums of delays exact, and
        # the clock resolution makes a timer a fraction early still due.
        when = scheduled[0].when()
        target = max(self._now_ns + 1, round(min(when, 2 * MAX_TIME) * _NS))
        until_ns = self._until_ns if self._until_ns is not None else round(MAX_TIME * _NS)
        if target > until_ns:
            self._now_ns = max(self._now_ns, until_ns)
            self._clock_resolution = _resolution(self._now_ns)
            self.stop()
            return
        self._now_ns = target
        self._clock_resolution = _resolution(target)
