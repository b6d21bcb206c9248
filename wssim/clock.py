"""Virtual time for asyncio.

An event loop whose clock never reads the wall: when nothing is ready to run, time jumps
straight to the next timer. Nothing here knows about networks; :mod:`wssim.network` builds
on top of it.
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any

__all__ = ["VirtualClockLoop"]

# Times are kept in integer nanoseconds so that repeated additions never drift: a timer
# set for t fires at t, not at t - 1e-17, and sums of latencies stay exact.
_NS = 1_000_000_000


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
        if ready or timeout == 0:
            return ready
        assert self.loop is not None
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
        self.idle = False
        # Timers due within 1 ns of now are due now (see the note on _NS above).
        self._clock_resolution = 1e-9

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

    def _wait(self, timeout: float | None) -> None:
        """Called by the selector when nothing is ready: jump to the next timer."""
        if timeout is None:
            # No timer at all: nothing can ever happen again.
            if self._until_ns is not None:
                self._now_ns = self._until_ns
            self.idle = True
            self.stop()
            return
        # Land exactly on the timer's nanosecond: rounding (not ceil) keeps sums of delays
        # exact, and the 1 ns clock resolution makes a timer a fraction early still due.
        target = max(self._now_ns + 1, round((self.time() + timeout) * _NS))
        if self._until_ns is not None and target > self._until_ns:
            self._now_ns = self._until_ns
            self.stop()
            return
        self._now_ns = target
