"""The public face of a simulation: hosts, faults, a clock, and a trace.

A :class:`Simulation` owns a world (loop, network, hosts). It runs the world in virtual
time, from a script or from a Jupyter cell (whose kernel's own loop is set aside while the
world runs, in the same thread).
"""

from __future__ import annotations

import asyncio
import math
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from wssim.core.clock import MAX_TIME
from wssim.core.hosts import Host
from wssim.core.params import seconds
from wssim.faults import Fault, Partition
from wssim.net.fabric import LOOPBACK_NAMES
from wssim.net.link import Link
from wssim.trace.events import Trace, microseconds
from wssim.world import World

HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62})")
"""What a host name may be: letters, digits, ``.``, ``_`` and ``-``, 63 characters at
most, starting with a letter or a digit, as the names in a URI's authority are."""

__all__ = ["Simulation"]

T = TypeVar("T")


def call_outside_running_loop(fn: Callable[[], T]) -> T:
    """Call ``fn()`` in this thread, with no event loop marked as running here.

    A Jupyter kernel runs its own loop in the main thread, and asyncio refuses to run a
    loop inside another one. The simulation's loop still runs in this thread, with the
    kernel's loop set aside while it does: interrupting the cell (SIGINT, KeyboardInterrupt)
    then stops the simulation where it is, even in a task that never awaits, and no other
    thread ever shares the global ``random`` with it. (A worker thread could not be
    interrupted, and kept running after the cell stopped.) The kernel's loop is blocked
    for the call either way, as by any long cell.
    """
    outer = asyncio._get_running_loop()  # the low-level form: no exception when there is none
    if outer is None:
        return fn()
    # These two are asyncio's documented hooks for event loop implementations.
    asyncio._set_running_loop(None)
    try:
        return fn()
    finally:
        asyncio._set_running_loop(outer)


def _time(value: object, parameter: str) -> float:
    """``value`` as a virtual time: seconds from 0 to :data:`~wssim.core.clock.MAX_TIME`."""
    t = seconds(value, parameter)
    if t > MAX_TIME:
        raise ValueError(
            f"{parameter} must be <= {MAX_TIME:g} seconds (virtual time ends after about "
            f"31.7 years), got {value!r}"
        )
    return t


@dataclass
class _Injected:
    """A fault injected into the simulation, and the span it covers."""

    fault: Fault
    start: float
    end: float
    ended: bool = False


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
        self._injected: list[_Injected] = []
        self._interrupted_at: float | None = None
        self._world.network.default_link = link
        # Closing the world when the simulation is garbage-collected means no task is ever
        # destroyed while pending, even if nobody calls close().
        self._finalizer = weakref.finalize(self, call_outside_running_loop, self._world.shutdown)

    def __repr__(self) -> str:
        if self._interrupted_at is not None:
            state = f"interrupted at t={self._interrupted_at:g} s"
        elif self._world.closed:
            state = "closed"
        else:
            state = f"t={self.now:g} s"
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
        if not isinstance(name, str) or not HOST_NAME.fullmatch(name) or name in LOOPBACK_NAMES:
            raise ValueError(
                f"name must be a host name other than localhost: 1 to 63 letters, digits, "
                f"'.', '_' or '-', starting with a letter or a digit; got {name!r}"
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
        self._check_open()
        self._two_hosts(a, b)
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
        t = _time(t, "t")
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
        self._check_outside("run")
        if until is not None:
            until = _time(until, "until")
            if until < self.now:
                raise ValueError(
                    f"until={until:g} is before now: the simulation is already at t={self.now:g} s"
                )
        world = self._world
        try:
            call_outside_running_loop(lambda: world.run(until))
        except (KeyboardInterrupt, SystemExit):
            # Interrupted (Ctrl-C, the kernel's stop button) wherever it was: the world's
            # state is half-way through a step and cannot be resumed. End it now, so no task
            # is left behind; run() already put back what it changed (random state, the
            # collector's threshold, log capture).
            self._interrupted_at = self.now
            call_outside_running_loop(world.shutdown)
            raise
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

        The same as ``inject(faults.Partition(a, b))``: segments sent meanwhile are
        retransmitted by TCP and arrive once :meth:`heal` ends the partition, unless the
        sender gives up first (as Linux: about 945 s after the send at 10 ms one way).
        """
        self._check_open()
        self._two_hosts(a, b)
        # At once, not at the next turn of the loop: what the caller does next already
        # meets the partition.
        self._inject(Partition(a, b), None, None, immediately=True)

    def heal(self, a: str, b: str) -> None:
        """End, now, the partition between hosts ``a`` and ``b``.

        Raises:
            ValueError: if ``a`` and ``b`` are not partitioned now.
        """
        self._check_open()
        self._two_hosts(a, b)
        key = Partition(a, b).key
        for injected in self._injected:
            if injected.fault.key == key and not injected.ended and injected.start <= self.now:
                injected.end = self.now
                self._end(injected)
                return
        raise ValueError(f"there is no partition between {a!r} and {b!r} to heal now")

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
        self._inject(fault, at, duration, immediately=False)

    def _inject(
        self, fault: Fault, at: float | None, duration: float | None, *, immediately: bool
    ) -> None:
        self._check_open()
        if not isinstance(fault, Fault):
            raise TypeError(f"fault must be a wssim.faults.Fault, got {fault!r}")
        for i, name in enumerate(fault.hosts):
            self._world.known_host(name, ("a", "b")[i] if len(fault.hosts) == 2 else "host")
        start = self.now if at is None else _time(at, "at")
        if start < self.now:
            raise ValueError(f"at={start:g} is in the past: the simulation is at t={self.now:g} s")
        end = math.inf
        if duration is not None:
            duration = seconds(duration, "duration")
            if duration == 0:
                raise ValueError("duration must be > 0 seconds (or None: for ever), got 0")
            end = start + duration
        if end > MAX_TIME:
            end = math.inf  # beyond the end of virtual time: for ever
        for other in self._injected:
            if other.fault.key == fault.key and start < other.end and other.start < end:
                until = "for ever" if other.end == math.inf else f"until t={other.end:g}"
                raise ValueError(
                    f"{fault!r} overlaps {other.fault!r}, injected from t={other.start:g} "
                    f"{until}: they contradict each other"
                )
        injected = _Injected(fault, start, end)
        self._injected.append(injected)
        if not immediately:
            self._world.call_at(start, fault.start, self._world)
        if end != math.inf:
            self._world.call_at(end, self._end, injected)
        if immediately:
            fault.start(self._world)

    def _end(self, injected: _Injected) -> None:
        """End an injected fault, once (a healed partition's scheduled end does nothing)."""
        if not injected.ended:
            injected.ended = True
            injected.fault.stop(self._world)

    # Trace

    def mark(self, text: str, host: str = "") -> None:
        """Add a note to the trace at the current virtual time."""
        self._world.record("mark", str(text), host)

    @property
    def trace(self) -> Trace:
        """Everything recorded so far; its :attr:`~Trace.ran_until` is now."""
        return self._world.recorder.trace(ran_until=microseconds(self.now))

    # Ending

    def close(self) -> None:
        """End the simulation: every process is stopped and the loop is closed.

        Idempotent. A simulation that is garbage-collected is closed the same way.
        """
        self._check_outside("close")
        self._finalizer()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._world.closed

    def _check_open(self) -> None:
        if self._interrupted_at is not None:
            raise RuntimeError(
                f"this simulation was interrupted at t={self._interrupted_at:g} s and has "
                f"ended: create a new Simulation"
            )
        if self._world.closed:
            raise RuntimeError("this simulation is closed: create a new Simulation")

    def _check_outside(self, method: str) -> None:
        """Refuse a call that only makes sense from outside the simulation's own code."""
        if asyncio._get_running_loop() is self._world.loop:
            raise RuntimeError(
                f"sim.{method}() was called from code running inside this simulation; call "
                f"it from the script or notebook cell that created the simulation (inside, "
                f"`await asyncio.sleep(seconds)` lets virtual time pass)"
            )

    def _two_hosts(self, a: str, b: str) -> None:
        self._world.known_host(a, "a")
        self._world.known_host(b, "b")
        if a == b:
            raise ValueError(f"a and b must be two different hosts, got {a!r} twice")
