"""A seeded chaos schedule: faults from the catalogue, and bad input, over minutes.

:func:`schedule` draws, from a seed, what goes wrong while a server and its clients run:

- on the server host, one after the other (never two at once): a **crash** with a restart,
  a **power loss** (silence, then a reboot), and two **freezes** (a blocked event loop);
- on the paths of some clients to the server: **partitions** (a tunnel, a dead Wi-Fi),
  never next to a server fault (a client is cut off by one fault at a time),
  **latency spikes** (a congested mobile link), and **idle-timeout middleboxes** (a proxy
  that forgets a flow idle for 60 s, as nginx's ``proxy_read_timeout`` does by default);
- **bad input** from raw clients (:mod:`wssim.raw`): protocol errors from lesson 05's
  catalogue (:mod:`wssim.course.protocolerrors`) and well-formed messages an application must
  refuse (RFC 6455, section 10.7: "incoming data MUST always be validated").

Same seed, same schedule. Faults with the same key (:attr:`wssim.faults.Fault.key`) never
overlap in time, so :meth:`Schedule.apply` can inject them all. Fault objects keep state
while injected, so a schedule holds what to build, and builds new faults for each run.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from websockets.frames import Opcode

from wssim import faults
from wssim.lab.protocol import Case
from wssim.raw import RawClient
from wssim.trace.events import Table

if TYPE_CHECKING:
    from wssim.simulation import Simulation

__all__ = [
    "BadInput",
    "Delivered",
    "Schedule",
    "ScheduledFault",
    "schedule",
]

# What the server host goes through, in a random order, one at a time, with the range of
# each one's duration in seconds.
SERVER_FAULTS: tuple[tuple[type[faults.Fault], float, float], ...] = (
    (faults.Crash, 3.0, 10.0),
    (faults.PowerLoss, 10.0, 30.0),
    (faults.Freeze, 2.0, 10.0),
    (faults.Freeze, 2.0, 10.0),
)
PARTITIONED = 0.10
"""Share of the clients whose path to the server is cut once, for 5 to 30 s."""
PARTITION_SECONDS = (5.0, 30.0)
CLEAR_OF_SERVER_FAULTS = 20.0
"""Seconds a partition keeps clear of any server fault, before and after."""
SLOWED = 0.10
"""Share of the clients whose latency to the server spikes once, for 10 to 60 s."""
LATENCY_SECONDS = (10.0, 60.0)
SPIKE_LATENCY = (0.2, 1.5)
"""Range of a spike's one-way latency, in seconds."""
BEHIND_PROXY = 0.20
"""Share of the clients behind a middlebox that forgets flows idle for 60 s, all along."""
IDLE_TIMEOUT = 60.0
QUIET_AROUND_SERVER_FAULTS = (10.0, 15.0)
"""Bad input is sent neither in the 10 s before a server fault nor in the 15 s after it."""
SETTLE = 1.0
"""Seconds a raw client waits for an answer to its bad input before closing with 1000."""


@dataclass(frozen=True)
class ScheduledFault:
    """A fault to inject: what (a fault class and its arguments), when, for how long.

    Attributes:
        at: virtual time it starts.
        duration: seconds it lasts (None: to the end of the run).
        kind: the fault's class, from :mod:`wssim.faults`.
        args: the arguments of the fault's constructor.
    """

    at: float
    duration: float | None
    kind: type[faults.Fault]
    args: tuple[Any, ...]

    def fault(self) -> faults.Fault:
        """A new fault object, ready to inject (one per run: faults keep state)."""
        return self.kind(*self.args)

    @property
    def until(self) -> float:
        """When it ends (``math.inf``: never)."""
        return math.inf if self.duration is None else self.at + self.duration

    @property
    def name(self) -> str:
        """The fault's name in the trace (``"partition"``, ``"crash"``...)."""
        return self.kind.name

    @property
    def key(self) -> tuple[object, ...]:
        """Injections with the same key contradict each other if they overlap."""
        return self.fault().key

    def overlaps(self, other: ScheduledFault) -> bool:
        """True if both are in force at some instant."""
        return self.at < other.until and other.at < self.until


@dataclass(frozen=True)
class BadInput:
    """A raw client that connects at ``at`` from host ``host`` and sends ``case``."""

    at: float
    host: str
    case: Case


@dataclass(frozen=True)
class Delivered:
    """A bad input that reached the server: its connection opened and the bytes went out.

    Attributes:
        bad_input: what was planned.
        client: the raw client that sent it (its ``conn_id`` names the connection).
    """

    bad_input: BadInput
    client: RawClient


@dataclass(frozen=True)
class Schedule:
    """What goes wrong, and when: made by :func:`schedule`, applied with :meth:`apply`.

    Attributes:
        seed: the seed it was drawn from.
        server: the server's host.
        clients: the client hosts it may affect.
        start: no fault starts before this time (except idle-timeout middleboxes, which
            are there from the start).
        end: every fault is over by this time.
        injections: the faults, by start time.
        bad_inputs: the raw clients' bad inputs, by time.
    """

    seed: int
    server: str
    clients: tuple[str, ...]
    start: float
    end: float
    injections: tuple[ScheduledFault, ...]
    bad_inputs: tuple[BadInput, ...]

    def conflicts(self) -> list[tuple[ScheduledFault, ScheduledFault]]:
        """Pairs of injections that contradict each other (same key, overlapping in time).

        Always empty for a schedule made by :func:`schedule`.
        """
        found = []
        for i, first in enumerate(self.injections):
            for second in self.injections[i + 1 :]:
                if first.key == second.key and first.overlaps(second):
                    found.append((first, second))
        return found

    def server_faults(self) -> list[ScheduledFault]:
        """The injections on the server host, in order."""
        return [i for i in self.injections if i.args == (self.server,)]

    def apply(self, sim: Simulation, *, port: int = 8765) -> list[Delivered]:
        """Inject every fault into ``sim`` and schedule the raw clients.

        Every host of the schedule is created in ``sim`` if it does not exist yet. Call it
        before ``sim.run()``, at virtual time 0.

        Returns:
            A list that fills while the simulation runs: each bad input whose connection
            opened, with its raw client. A bad input sent while the server is unreachable
            is not delivered and not in the list.
        """
        for name in (self.server, *self.clients):
            sim.host(name)
        for injection in self.injections:
            sim.inject(injection.fault(), at=injection.at, duration=injection.duration)
        delivered: list[Delivered] = []
        for item in self.bad_inputs:
            sim.at(item.at, _spawn_raw, sim, item, self.server, port, delivered)
        return delivered

    def summary(self) -> Table:
        """One row per kind of fault: how many, on how many hosts, for how long in all."""
        rows = []
        kinds: dict[str, list[ScheduledFault]] = {}
        for injection in self.injections:
            kinds.setdefault(injection.name, []).append(injection)
        for name, items in kinds.items():
            hosts = {h for i in items for h in i.fault().hosts if h != self.server}
            durations = [i.duration for i in items]
            total = "all along" if None in durations else f"{sum(d or 0 for d in durations):.1f} s"
            rows.append((name, len(items), len(hosts) or "server", total))
        cases = sorted({b.case.group for b in self.bad_inputs})
        rows.append(("bad input", len(self.bad_inputs), len(self.bad_inputs), ", ".join(cases)))
        return Table(("fault", "count", "clients", "time in force"), rows, right=(1, 2))

    def table(self, *, kinds: Iterable[str] | None = None, host: str | None = None) -> Table:
        """The faults and bad inputs one by one, in time order.

        Args:
            kinds: only these kinds: fault names (``"crash"``, ``"partition"``...) and
                ``"bad input"``.
            host: only what involves this host.
        """
        chosen = None if kinds is None else set(kinds)
        rows: list[tuple[str, str, str, str]] = []
        for i in self.injections:
            fault = i.fault()
            if (chosen is not None and i.name not in chosen) or (
                host is not None and host not in fault.hosts
            ):
                continue
            until = "end" if i.duration is None else f"{i.until:.1f}"
            rows.append((f"{i.at:.1f}", until, i.name, repr(fault)))
        if chosen is None or "bad input" in chosen:
            for b in self.bad_inputs:
                if host is None or b.host == host:
                    rows.append((f"{b.at:.1f}", "", "bad input", f"{b.host}: {b.case.name}"))
        rows.sort(key=lambda row: float(row[0]))
        return Table(("from", "until", "fault", "what"), rows, right=(0, 1))


def _spawn_raw(
    sim: Simulation, item: BadInput, server: str, port: int, delivered: list[Delivered]
) -> None:
    sim.host(item.host).spawn(_send_bad_input(item, server, port, delivered), name=item.host)


async def _send_bad_input(
    item: BadInput, server: str, port: int, delivered: list[Delivered]
) -> None:
    """Connect, send the case's bytes, wait a second for an answer, then close politely:
    echo the server's close frame, or send one with 1000."""
    try:
        client = await RawClient.connect(server, port, request=item.case.handshake)
    except OSError:
        return  # the server was unreachable: nothing was delivered
    if not client.open:
        client.close_tcp()  # refused at the handshake (503): nothing was delivered
        return
    delivered.append(Delivered(item, client))
    client.send(*item.case.sends)
    deadline = asyncio.get_running_loop().time() + SETTLE
    while not client.ended:
        left = deadline - asyncio.get_running_loop().time()
        frame = await client.recv_frame(timeout=max(left, 0.0))
        if frame is None or frame.opcode == Opcode.CLOSE:
            break
    close = client.close_frame
    if close is None and not client.ended:
        await client.close(1000)
        return
    if close is not None and not client.ended:
        client.send_frame(Opcode.CLOSE, close.payload)  # echo it, as a client should (5.5.1)
    await client.wait_closed(10.0)
    client.close_tcp()


def _draw(rng: random.Random, low: float, high: float) -> float:
    return round(rng.uniform(low, high), 1)


def _check(seed: object, clients: object, server: object, start: object, end: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if isinstance(clients, str) or not isinstance(clients, Sequence) or not clients:
        raise ValueError(f"clients must be a non-empty sequence of host names, got {clients!r}")
    if not all(isinstance(c, str) and c for c in clients) or len(set(clients)) != len(clients):
        raise ValueError("clients must be distinct, non-empty host names")
    if not isinstance(server, str) or not server or server in clients:
        raise ValueError(f"server must be a host name that is not a client, got {server!r}")
    for name, value in (("start", start), ("end", end)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number of seconds, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    assert isinstance(start, int | float) and isinstance(end, int | float)
    if end - start < 60:
        raise ValueError(f"end must be at least 60 s after start, got start={start!r}, end={end!r}")


def schedule(
    seed: int,
    clients: Sequence[str],
    *,
    server: str = "server",
    start: float = 20.0,
    end: float = 240.0,
    bad_inputs: int = 0,
    cases: Sequence[Case] = (),
) -> Schedule:
    """Draw a chaos schedule from ``seed``.

    Args:
        seed: the seed; same seed and arguments, same schedule.
        clients: the client hosts (at least one).
        server: the server host.
        start: no fault before this time (but the idle-timeout middleboxes, there from 0).
        end: every fault is over by this time; at least 60 s after ``start``.
        bad_inputs: how many raw clients send bad input, cycling through ``cases`` in
            a shuffled order, each from a host of its own (``raw00``, ``raw01``...).
        cases: the bad input to draw from (lesson 07's is
            :data:`wssim.course.capstone.BAD_INPUTS`).

    Raises:
        ValueError: for an argument out of its range (the message names it).
    """
    _check(seed, clients, server, start, end)
    if isinstance(bad_inputs, bool) or not isinstance(bad_inputs, int) or bad_inputs < 0:
        raise ValueError(f"bad_inputs must be an integer >= 0, got {bad_inputs!r}")
    if bad_inputs and not cases:
        raise ValueError("cases must hold the bad input to send when bad_inputs > 0, got none")
    rng = random.Random(f"wssim.chaos/{seed}")
    names = tuple(clients)
    injections: list[ScheduledFault] = []

    # The server: one fault per slice of the window, so two never overlap.
    order = list(SERVER_FAULTS)
    rng.shuffle(order)
    width = (end - start) / len(order)
    for index, (kind, low, high) in enumerate(order):
        s0 = start + index * width
        duration = min(_draw(rng, low, high), round(width / 2, 1))
        at = _draw(rng, s0, s0 + width - duration - 1)
        injections.append(ScheduledFault(at, duration, kind, (server,)))

    def some(share: float) -> list[str]:
        count = max(1, round(share * len(names)))
        return rng.sample(names, min(count, len(names)))

    # A partition right before or after a server fault would add up with it: one client
    # would be cut off for both. Each partition keeps clear of them (or is not drawn).
    clear = [(i.at - CLEAR_OF_SERVER_FAULTS, i.until + CLEAR_OF_SERVER_FAULTS) for i in injections]
    for client in some(PARTITIONED):
        for _ in range(100):
            duration = _draw(rng, *PARTITION_SECONDS)
            at = _draw(rng, start, end - duration)
            if not any(at < high and low < at + duration for low, high in clear):
                injections.append(ScheduledFault(at, duration, faults.Partition, (client, server)))
                break
    for client in some(SLOWED):
        duration = _draw(rng, *LATENCY_SECONDS)
        at = _draw(rng, start, end - duration)
        latency = round(rng.uniform(*SPIKE_LATENCY), 3)
        injections.append(ScheduledFault(at, duration, faults.Latency, (client, server, latency)))
    for n, client in enumerate(some(BEHIND_PROXY)):
        action = ("drop", "reset")[n % 2]
        injections.append(
            ScheduledFault(0.0, None, faults.IdleTimeout, (client, server, IDLE_TIMEOUT, action))
        )
    injections.sort(key=lambda i: (i.at, i.name, i.args))

    # Bad input, away from the server's faults: it tests the handler, not the restart.
    before, after = QUIET_AROUND_SERVER_FAULTS
    busy = [(i.at - before, i.until + after) for i in injections if i.args == (server,)]
    cases = list(cases)
    rng.shuffle(cases)
    planned: list[BadInput] = []
    tries = 0
    while len(planned) < bad_inputs:
        at = _draw(rng, start, end - SETTLE - 15)
        tries += 1
        # In a window too short to stay clear of the server's faults, give up on that.
        if tries < 1000 and any(low <= at <= high for low, high in busy):
            continue
        case = cases[len(planned) % len(cases)]
        planned.append(BadInput(at, "", case))
    planned.sort(key=lambda b: b.at)
    inputs = tuple(BadInput(b.at, f"raw{n:02d}", b.case) for n, b in enumerate(planned))
    return Schedule(seed, server, names, float(start), float(end), tuple(injections), inputs)
