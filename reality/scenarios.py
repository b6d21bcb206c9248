"""The scenarios, written once: application code plus an abstract fault schedule.

Each scenario is a server coroutine and a client coroutine, plain asyncio and websockets,
given a :class:`Context`: where to listen or connect, and a ``scale`` applied to every
duration the code uses (websockets' ``ping_interval``, ``ping_timeout``,
``close_timeout``, its own sleeps, socket options in seconds or milliseconds). The same
code runs in :class:`wssim.Simulation` (scale 1, virtual time; :mod:`reality.simside`) and
in two processes on real Linux TCP between network namespaces (scale 1/20 by default;
:mod:`reality.realside`).

The faults are abstract (:class:`Partition`, :class:`Forget`, :class:`Kill`,
:class:`Freeze`, :class:`Signal`, :class:`PowerLoss`), at unscaled times from the start of
the scenario (t = 0: the client connects): each side of the suite turns them into its own
means (a ``wssim.faults`` fault, or an nftables rule, a signal to a process).

A new scenario is one more :class:`Scenario` in :data:`SCENARIOS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from reality import outcome
from reality.outcome import Outcome

PORT = 8765

KEEPALIVE: Mapping[str, float | None] = {
    "ping_interval": 20.0,
    "ping_timeout": 20.0,
    "close_timeout": 10.0,
}
"""websockets' defaults, written out so that they are scaled."""

NO_KEEPALIVE: Mapping[str, float | None] = {**KEEPALIVE, "ping_interval": None}
"""websockets' keepalive off (``ping_interval=None``), as many deployments do."""

UNCOMPRESSED: Mapping[str, float | None] = {**NO_KEEPALIVE, "compression": None}
"""No keepalive, and no permessage-deflate: the bytes written are the bytes sent."""

GIVE_UP = 924.6
"""Seconds Linux allows after the first retransmission (``tcp_retries2 = 15``, RTO 200 ms to
120 s); it gives up at the first retransmission timer past it."""


class Context:
    """What the application code of one side is given.

    Attributes:
        role: ``"client"`` or ``"server"``.
        host: the server's address, for the client's URL.
        bind: where the server listens.
        port: the server's port.
        scale: the factor applied to every duration (1 in the simulation, 1/20 on Linux).
        t0: the loop's time at the start of the scenario (when the client connects).
    """

    def __init__(
        self, role: str, *, host: str, bind: str, port: int = PORT, scale: float = 1.0
    ) -> None:
        self.role = role
        self.host = host
        self.bind = bind
        self.port = port
        self.scale = scale
        self.t0 = 0.0
        self.outcome: Outcome | None = None
        self.on_record: Callable[[Outcome], None] = lambda _: None
        self._events: dict[str, asyncio.Event] = {}

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    # Time, scaled

    def seconds(self, t: float) -> float:
        """An unscaled duration, as the code must use it."""
        return t * self.scale

    def whole(self, t: float, unit: float = 1.0) -> int:
        """An unscaled duration as a whole number of ``unit`` (1: seconds, 0.001: ms), as
        socket options take them; refuses one that the scale does not keep whole."""
        value = t * self.scale / unit
        if abs(value - round(value)) > 1e-6 or round(value) < 1:
            raise ValueError(f"{t} s at scale {self.scale} is not a whole number of {unit} s")
        return round(value)

    def options(self, durations: Mapping[str, float | None]) -> dict[str, Any]:
        """websockets' keyword arguments in seconds, scaled (None stays None)."""
        return {k: None if v is None else self.seconds(v) for k, v in durations.items()}

    def now(self) -> float:
        """Unscaled seconds since the start of the scenario."""
        return (asyncio.get_running_loop().time() - self.t0) / self.scale

    async def sleep_until(self, t: float) -> None:
        """Sleep until unscaled time ``t`` of the scenario."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, self.t0 + t * self.scale - loop.time()))

    # Events the fault schedule sends to the application (:class:`Signal`)

    def _event(self, name: str) -> asyncio.Event:
        return self._events.setdefault(name, asyncio.Event())

    def fire(self, name: str) -> None:
        self._event(name).set()

    async def event(self, name: str) -> None:
        await self._event(name).wait()

    # Outcomes

    def record(self, seen: Outcome) -> None:
        """Keep the first outcome of this side: what the application learned first."""
        if self.outcome is None:
            self.outcome = seen
            self.on_record(seen)

    async def watch(self, ws: ClientConnection | ServerConnection) -> None:
        """Receive until the connection closes; record how and when."""
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as exc:
            self.record(outcome.raised(exc, self.now()))

    async def run(self, side: Callable[[Context], Awaitable[None]]) -> None:
        """Run this side's code; anything it raises is its outcome."""
        try:
            await side(self)
        except Exception as exc:
            self.record(outcome.raised(exc, self.now()))


# Abstract faults, at unscaled times. Host faults act on the server's host.


@dataclass(frozen=True)
class Partition:
    """Nothing gets through between client and server from ``at`` (for ``duration``)."""

    at: float
    duration: float | None = None


@dataclass(frozen=True)
class Forget:
    """A middlebox forgets the (idle) flow at ``at``: later segments are dropped
    (``"drop"``), or answered with an RST to their sender (``"reject"``)."""

    at: float
    action: Literal["drop", "reject"]


@dataclass(frozen=True)
class Kill:
    """The server's process dies at ``at`` (SIGKILL): its kernel closes its sockets."""

    at: float


@dataclass(frozen=True)
class Freeze:
    """The server's process stops at ``at`` (SIGSTOP), for ``duration`` (SIGCONT) or for ever."""

    at: float
    duration: float | None = None


@dataclass(frozen=True)
class Signal:
    """At ``at``, the server's application is told ``name`` (:meth:`Context.event`)."""

    at: float
    name: str


@dataclass(frozen=True)
class PowerLoss:
    """The server's host loses power at ``at``: silence, then its process is gone."""

    at: float


Fault = Partition | Forget | Kill | Freeze | Signal | PowerLoss

Side = Callable[[Context], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    """One scenario: what each side runs, what goes wrong, how long to watch.

    Attributes:
        name: short, for ``--only`` and the tables.
        title: what happens, in a sentence.
        client, server: each side's application code.
        faults: the schedule.
        until: unscaled seconds to run.
        known: why the simulation and Linux are expected to differ, by side
            (``"client"``, ``"server"``); a side not there should agree.
        tags: ``"long"``: runs for minutes of wall time, mostly idle (the runner starts
            these all at once).
        scale: the time scale of the real runs, if not the suite's: 1 for a scenario whose
            timing the kernel's clock would distort once scaled (the minimum RTO of 10 ms
            at 1/20 is counted in 4 ms jiffies).
    """

    name: str
    title: str
    client: Side
    server: Side
    faults: tuple[Fault, ...] = ()
    until: float = 10.0
    known: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    scale: float | None = None

    @property
    def killed(self) -> bool:
        """Does the schedule kill the server's process?"""
        return any(isinstance(f, Kill | PowerLoss) for f in self.faults)


# Application code


def echo_server(durations: Mapping[str, float | None]) -> Side:
    """A server that reads everything; with ``Signal(name="shutdown")`` it shuts down
    with ``Server.close()`` (1001, going away)."""

    async def server(ctx: Context) -> None:
        async def handler(ws: ServerConnection) -> None:
            await ctx.watch(ws)

        async with serve(handler, ctx.bind, ctx.port, **ctx.options(durations)) as srv:
            await ctx.event("shutdown")
            srv.close()
            await srv.wait_closed()

    return server


def pushing_server(durations: Mapping[str, float | None], push_at: float) -> Side:
    """A server that pushes one message to its client at ``push_at``."""

    async def server(ctx: Context) -> None:
        async def handler(ws: ServerConnection) -> None:
            async def push() -> None:
                await ctx.sleep_until(push_at)
                with contextlib.suppress(ConnectionClosed):
                    await ws.send("news " * 20)

            task = asyncio.create_task(push())
            try:
                await ctx.watch(ws)
            finally:
                task.cancel()

        async with serve(handler, ctx.bind, ctx.port, **ctx.options(durations)):
            await asyncio.Future()

    return server


def receiving_server(durations: Mapping[str, float | None]) -> Side:
    """A server that records when the first message arrives (``delivered``), then reads on."""

    async def server(ctx: Context) -> None:
        async def handler(ws: ServerConnection) -> None:
            with contextlib.suppress(ConnectionClosed):
                await ws.recv()
                ctx.record({**outcome.nothing("delivered"), "time": round(ctx.now(), 3)})
            await ctx.watch(ws)

        async with serve(handler, ctx.bind, ctx.port, **ctx.options(durations)):
            await asyncio.Future()

    return server


def stalled_server(durations: Mapping[str, float | None]) -> Side:
    """A server whose handler stops reading at once: its receive window closes."""

    async def server(ctx: Context) -> None:
        async def handler(ws: ServerConnection) -> None:
            ws.transport.pause_reading()
            await ctx.watch(ws)

        async with serve(handler, ctx.bind, ctx.port, **ctx.options(durations)):
            await asyncio.Future()

    return server


def client(
    durations: Mapping[str, float | None],
    *,
    sends: tuple[tuple[float, int], ...] = (),
    sockopts: Callable[[Context, socket.socket], None] | None = None,
) -> Side:
    """A client that connects at t = 0, optionally sets socket options, sends
    ``(time, size)`` messages and reads until the connection closes."""

    async def run(ctx: Context) -> None:
        async with connect(ctx.url, **ctx.options(durations)) as ws:
            if sockopts is not None:
                sockopts(ctx, ws.transport.get_extra_info("socket"))

            async def talk() -> None:
                with contextlib.suppress(ConnectionClosed):
                    for at, size in sends:
                        await ctx.sleep_until(at)
                        await ws.send("x" * size)

            task = asyncio.create_task(talk())
            try:
                await ctx.watch(ws)
            finally:
                task.cancel()

    return run


def tcp_keepalive(ctx: Context, sock: socket.socket) -> None:
    """TCP keepalive: first probe after 40 s idle, then every 20 s, 3 probes."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, ctx.whole(40))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, ctx.whole(20))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)


def user_timeout(ctx: Context, sock: socket.socket) -> None:
    """TCP_USER_TIMEOUT of 30 s: unacknowledged data for that long ends the connection."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, ctx.whole(30, 0.001))


CPU_TIME = (
    "time only: the real client spends tens of milliseconds of wall time building, "
    "masking and writing 1 MiB through Python and the kernel (about 40 ms measured, with "
    "other runs beside it), which scale 1/20 turns into almost a second; in the "
    "simulation computation takes no virtual time (README, Limits), so both sides know "
    "one round trip after the send"
)

RACE_WITH_RESET = (
    "a race that processing time decides: on thawing, the server's overdue keepalive ping "
    "goes out first (timers run before reads, in both worlds) and the client's closed socket "
    "answers it with an RST. On Linux that RST is back within a tenth of a millisecond, "
    "before Python has read the close frame, so the server's pong fails with EPIPE; in the "
    "simulation computation takes no time, so the server reads the close frame and the FIN "
    "first and ends on EOF. Codes and times agree"
)

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "partition",
        "the path is cut at 1 s for ever; websockets' keepalive (20 s/20 s/10 s) notices",
        client(KEEPALIVE),
        echo_server(KEEPALIVE),
        (Partition(1.0),),
        until=70.0,
    ),
    Scenario(
        "idle-drop",
        "no keepalive; a middlebox forgets the idle flow at 60 s (drop); "
        "the server pushes at 90 s into the void",
        client(NO_KEEPALIVE),
        pushing_server(NO_KEEPALIVE, 90.0),
        (Forget(60.0, "drop"),),
        until=1700.0,
        tags=("long",),
    ),
    Scenario(
        "idle-reject",
        "no keepalive; a middlebox forgets the idle flow at 60 s and answers later segments "
        "with an RST (IdleTimeout action 'reject'; nftables 'reject with tcp reset'); the "
        "server pushes at 90 s",
        client(NO_KEEPALIVE),
        pushing_server(NO_KEEPALIVE, 90.0),
        (Forget(60.0, "reject"),),
        until=120.0,
    ),
    Scenario(
        "crash-idle",
        "the server's process is killed (SIGKILL) at 1 s on an idle connection",
        client(KEEPALIVE),
        echo_server(KEEPALIVE),
        (Kill(1.0),),
        until=10.0,
    ),
    Scenario(
        "crash-unread",
        "the server's process stops at 1 s, the client sends at 2 s, the process is "
        "killed at 3 s with that message unread",
        client(KEEPALIVE, sends=((2.0, 100),)),
        echo_server(KEEPALIVE),
        (Freeze(1.0), Kill(3.0)),
        until=10.0,
    ),
    Scenario(
        "freeze-short",
        "the server's process stops from 1 s to 31 s (SIGSTOP/SIGCONT), shorter than "
        "ping_interval + ping_timeout",
        client(KEEPALIVE),
        echo_server(KEEPALIVE),
        (Freeze(1.0, 30.0),),
        until=70.0,
    ),
    Scenario(
        "freeze-long",
        "the server's process stops from 1 s to 61 s, longer than ping_interval + ping_timeout",
        client(KEEPALIVE),
        echo_server(KEEPALIVE),
        (Freeze(1.0, 60.0),),
        until=70.0,
        known={"server": RACE_WITH_RESET},
    ),
    Scenario(
        "shutdown",
        "the server shuts down gracefully at 1 s (Server.close(): 1001)",
        client(KEEPALIVE),
        echo_server(KEEPALIVE),
        (Signal(1.0, "shutdown"),),
        until=10.0,
    ),
    Scenario(
        "too-big",
        "the client sends 1 MiB + 1 byte at 1 s, over the server's max_size (1009)",
        client(KEEPALIVE, sends=((1.0, 2**20 + 1),)),
        echo_server(KEEPALIVE),
        until=10.0,
        known={"client": CPU_TIME, "server": CPU_TIME},
    ),
    Scenario(
        "power-keepalive",
        "the server's host loses power at 1 s; websockets' keepalive notices",
        client(KEEPALIVE),
        echo_server(KEEPALIVE),
        (PowerLoss(1.0),),
        until=70.0,
    ),
    Scenario(
        "power-silent",
        "the server's host loses power at 1 s; no keepalive; the client sends at 2 s and "
        "only TCP's retransmission give-up ends it",
        client(NO_KEEPALIVE, sends=((2.0, 100),)),
        echo_server(NO_KEEPALIVE),
        (PowerLoss(1.0),),
        until=1700.0,
        tags=("long",),
    ),
    Scenario(
        "flaky-link",
        "the path is cut from 9 s to 18 s; the client sends at 10 s, into the cut; TCP's "
        "tail-loss probe and backed-off retransmissions deliver it after the heal (run "
        "unscaled: scaled, the kernel's 4 ms clock would stretch the RTO)",
        client(NO_KEEPALIVE, sends=((10.0, 100),)),
        receiving_server(NO_KEEPALIVE),
        (Partition(9.0, 9.0),),
        until=30.0,
        tags=("long",),
        scale=1.0,
    ),
    Scenario(
        "zero-window",
        "the server stops reading; the client, with TCP_USER_TIMEOUT = 30 s, writes 16 MiB "
        "at 1 s: its window closes, the server's kernel answers every zero-window probe, and "
        "30 s after the first probe the client's TCP gives up anyway (run unscaled: writing "
        "16 MiB through Python takes a tenth of a second, which scaled would be seconds)",
        client(UNCOMPRESSED, sends=((1.0, 65536),) * 256, sockopts=user_timeout),
        stalled_server(UNCOMPRESSED),
        until=40.0,
        tags=("long",),
        scale=1.0,
    ),
    Scenario(
        "give-up",
        "the path is cut at 1 s for ever; no keepalive; the client sends at 2, 60 and 120 s "
        "into the black hole until TCP gives up (ETIMEDOUT)",
        client(NO_KEEPALIVE, sends=((2.0, 100), (60.0, 100), (120.0, 100))),
        echo_server(NO_KEEPALIVE),
        (Partition(1.0),),
        until=1700.0,
        tags=("long",),
    ),
    Scenario(
        "tcp-keepalive",
        "the path is cut at 1 s; no websockets keepalive; the client turns TCP keepalive on "
        "(idle 40 s, interval 20 s, 3 probes)",
        client(NO_KEEPALIVE, sockopts=tcp_keepalive),
        echo_server(NO_KEEPALIVE),
        (Partition(1.0),),
        until=150.0,
    ),
    Scenario(
        "user-timeout",
        "the path is cut at 1 s; no keepalive; the client sets TCP_USER_TIMEOUT = 30 s and "
        "sends at 2 s",
        client(NO_KEEPALIVE, sends=((2.0, 100),), sockopts=user_timeout),
        echo_server(NO_KEEPALIVE),
        (Partition(1.0),),
        until=60.0,
    ),
)


def by_name(name: str) -> Scenario:
    for scenario in SCENARIOS:
        if scenario.name == name:
            return scenario
    raise KeyError(f"no scenario {name!r}; there are: {', '.join(s.name for s in SCENARIOS)}")
