"""The delivery heap: every arrival on the network, in one deterministic order.

Entries are ordered by (time, connection, direction, sequence), so that deliveries due at
the same instant happen in the same order in every run, whatever order the senders wrote
in. One loop timer is kept, set for the earliest entry.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
from collections.abc import Callable
from typing import Any

__all__ = ["DeliveryHeap"]


class DeliveryHeap:
    """Calls due at virtual times, in a fixed order among equal times."""

    def __init__(self, loop: asyncio.AbstractEventLoop, quiet: contextvars.Context) -> None:
        self.loop = loop
        # The context the timer runs in (the network's own: no host's).
        self.quiet = quiet
        self._seq = itertools.count()
        self._heap: list[tuple[float, int, int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = float("inf")
        self._pumping = False  # while delivering, new entries wait for the pump to re-arm

    def call_at(
        self, when: float, conn_index: int, direction: int, fn: Callable[..., None], *args: Any
    ) -> None:
        """Call ``fn(*args)`` at ``when``, after every earlier delivery, in a fixed order."""
        heapq.heappush(self._heap, (when, conn_index, direction, next(self._seq), fn, args))
        if not self._pumping:
            self._arm()

    def _arm(self) -> None:
        """Keep exactly one loop timer, set for the earliest pending delivery."""
        if not self._heap:
            return
        when = self._heap[0][0]
        if when < self._timer_when:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_when = when
            self._timer = self.loop.call_at(when, self._pump, context=self.quiet)

    def _pump(self) -> None:
        self._timer = None
        self._timer_when = float("inf")
        heap = self._heap
        self._pumping = True
        try:
            while heap and heap[0][0] <= self.loop.time() + 1e-9:
                *_, fn, args = heapq.heappop(heap)
                fn(*args)
        finally:
            self._pumping = False
            self._arm()
