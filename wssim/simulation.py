"""The public face of a simulation: hosts, faults, a clock, and a trace.

A :class:`Simulation` owns a world (loop, network, hosts). It runs the world in virtual
time, from a script or from a Jupyter cell: a kernel already runs an event loop in its
thread, so there the world runs in a worker thread while the cell waits for it.
"""

from __future__ import annotations

import asyncio
import math
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from wssim.faults import Fault
from wssim.hosts import Host
from wssim.network import LOOPBACK_NAMES, Link
from wssim.params import seconds
from wssim.trace import Trace
from wssim.world import World

__all__ = ["Simulation"]

T = TypeVar("T")


def call_outside_running_loop(fn: Callable[[], T]) -> T:
    """Call ``fn()`` in this thread, or in a worker thread if an event loop runs here.

    A Jupyter kernel runs its own loop in the main thread; an asyncio loop cannot be run
    from inside another one, so the simulation's loop runs in a thread while the caller
    waits. Output printed by ``fn`` still appears in the cell.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn()
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=target, name="wssim")
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


class Simulation:
    """A world of hosts on a simulated network, running in virtual time.

    Args:
        seed: seeds everything random in the world (jitter, and what websockets draws from
            the global ``random``: reconnect delays, ping payloads). Same seed, same trace.
        latency: default one-way latency between two hosts, in seconds.
        jitter: default extra one-way delay, uniform in ``[0, jitter]`` seconds.

    Example::

        sim = Simulation(seed=1)
        sim.host("server").spawn(my_server())
        sim.host("client").spawn(my_client())
        trace = sim.run(until=10)
        print(trace.table())
    """

    def __init__(self, seed: int = 0, latency: float = 0.010, jitter: float = 0.0) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        link = Link(latency, jitter)
        self._world = World(seed=seed, latency=link.latency)
        self._injected: list[tuple[Fault, float, float]] = []
        self._world.network.default_link = link
        # Closing the world when the simulation is garbage-collected means no task is ever
        # destroyed while pending, even if nobody calls close().
        self._finalizer = weakref.finalize(self, call_outside_running_loop, self._world.shutdown)

    def __repr__(self) -> str:
        state = "closed" if self._world.closed else f"t={self.now:g} s"
        return f"<Simulation seed={self.seed} {state} hosts={list(self._world.hosts)}>"

    def __enter__(self) -> Simulation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def seed(self) -> int:
        """The seed this world was created with."""
        return self._world.seed

    @property
    def now(self) -> float:
        """The current virtual time, in seconds."""
        return round(self._world.loop.time(), 9)

    # Hosts and links

    def host(self, name: str) -> Host:
        """Return the host called ``name``, creating it on first use."""
        self._check_open()
        if not isinstance(name, str) or not name or name in LOOPBACK_NAMES:
            raise ValueError(
                f"name must be a non-empty host name other than localhost, got {name!r}"
            )
        return self._world.host(name)

    @property
    def hosts(self) -> list[Host]:
        """Every host, in the order they were created."""
        return list(self._world.hosts.values())

    def link(
        self, a: str, b: str, *, latency: float | None = None, jitter: float | None = None
    ) -> Link:
        """Set (or, without keywords, read) the link between hosts ``a`` and ``b``.

        New values apply to segments sent from now on.
        """
        self._world.known_host(a, "a")
        self._world.known_host(b, "b")
        network = self._world.network
        current = network.link(a, b)
        if latency is None and jitter is None:
            return current
        new = Link(
            current.latency if latency is None else latency,
            current.jitter if jitter is None else jitter,
            current.bandwidth,
        )
        network.set_link(a, b, new)
        return new

    # Time

    def at(self, t: float, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` at virtual time ``t`` (for example ``sim.at(30, server.crash)``).

        Raises:
            ValueError: if ``t`` is not a finite time at or after now.
        """
        self._check_open()
        t = seconds(t, "t")
        if t < self.now:
            raise ValueError(f"t={t:g} is in the past: the simulation is at t={self.now:g} s")
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        self._world.call_at(t, fn, *args)

    def after(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` ``delay`` seconds from now."""
        self.at(self.now + seconds(delay, "delay"), fn, *args)

    def run(self, until: float | None = None) -> Trace:
        """Run the world up to virtual time ``until`` and return the trace so far.

        Without ``until``, run until nothing is left that could happen (every process has
        finished or waits for something that will never come). Calling ``run`` again
        continues from where the last one stopped.

        Raises:
            ValueError: if ``until`` is not finite or is before now.
            ProcessFailed: if a process spawned on a host, or a call scheduled with
                :meth:`at`, raised an exception; the run stops at that instant.
        """
        self._check_open()
        if until is not None:
            until = seconds(until, "until")
            if until < self.now:
                raise ValueError(
                    f"until={until:g} is before now: the simulation is already at t={self.now:g} s"
                )
        world = self._world
        call_outside_running_loop(lambda: world.run(until))
        if world.failures:
            failure, *_ = world.failures
            world.failures.clear()
            raise failure
        return self.trace

    @property
    def idle(self) -> bool:
        """True when the last run ended because nothing could ever happen again."""
        return self._world.loop.idle

    # Faults

    def partition(self, a: str, b: str) -> None:
        """Cut the network between hosts ``a`` and ``b`` in both directions, from now.

        Segments sent meanwhile are retransmitted by TCP and arrive once the partition heals,
        unless the sender gives up first (after 924.6 s of retransmissions, as Linux).
        """
        self._world.known_host(a, "a")
        self._world.known_host(b, "b")
        if a == b:
            raise ValueError(f"a and b must be two different hosts, got {a!r} twice")
        self._world.network.partition(a, b)
        self._world.record("fault", f"partition {a} ↔ {b}", a)

    def heal(self, a: str, b: str) -> None:
        """End the partition between hosts ``a`` and ``b``."""
        self._world.known_host(a, "a")
        self._world.known_host(b, "b")
        self._world.network.heal(a, b)
        self._world.record("fault", f"heal {a} ↔ {b}", a)

    def inject(
        self, fault: Fault, *, at: float | None = None, duration: float | None = None
    ) -> None:
        """Make ``fault`` happen at virtual time ``at`` (default: now), for ``duration``
        seconds (default: for ever).

        Example::

            sim.inject(faults.Partition("client", "server"), at=10, duration=30)
            sim.inject(faults.Crash("server"), at=60, duration=5)  # restarts at 65

        Raises:
            ValueError: if a host of the fault does not exist, if ``at`` is in the past or
                ``duration`` is not positive, or if the fault contradicts one already
                injected for an overlapping time (the same kind of fault on the same
                hosts, or two faults on one host).
        """
        self._check_open()
        if not isinstance(fault, Fault):
            raise TypeError(f"fault must be a wssim.faults.Fault, got {fault!r}")
        for i, name in enumerate(fault.hosts):
            self._world.known_host(name, ("a", "b")[i] if len(fault.hosts) == 2 else "host")
        start = self.now if at is None else seconds(at, "at")
        if start < self.now:
            raise ValueError(f"at={start:g} is in the past: the simulation is at t={self.now:g} s")
        end = math.inf
        if duration is not None:
            duration = seconds(duration, "duration")
            if duration == 0:
                raise ValueError("duration must be > 0 seconds (or None: for ever), got 0")
            end = start + duration
        for other, other_start, other_end in self._injected:
            if other.key == fault.key and start < other_end and other_start < end:
                until = "for ever" if other_end == math.inf else f"until t={other_end:g}"
                raise ValueError(
                    f"{fault!r} overlaps {other!r}, injected from t={other_start:g} {until}: "
                    f"they contradict each other"
                )
        self._injected.append((fault, start, end))
        self._world.call_at(start, fault.start, self._world)
        if end != math.inf:
            self._world.call_at(end, fault.stop, self._world)

    # Trace

    def mark(self, text: str, host: str = "") -> None:
        """Add a note to the trace at the current virtual time."""
        self._world.record("mark", str(text), host)

    @property
    def trace(self) -> Trace:
        """Everything recorded so far."""
        return self._world.recorder.trace()

    # Ending

    def close(self) -> None:
        """End the simulation: every process is stopped and the loop is closed.

        Idempotent. A simulation that is garbage-collected is closed the same way.
        """
        self._finalizer()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._world.closed

    def _check_open(self) -> None:
        if self._world.closed:
            raise RuntimeError("this simulation is closed: create a new Simulation")
