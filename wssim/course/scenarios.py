"""Named scenarios of the course, for people without Jupyter: ``python -m wssim``.

Each scenario is a small experiment from a lesson, run with a seed, that returns its trace.
``python -m wssim list`` shows them; ``python -m wssim run NAME --seed 1 --plot out.png``
runs one, prints its trace table and writes its timeline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from wssim import faults
from wssim.simulation import Simulation
from wssim.trace.events import Trace

__all__ = ["SCENARIOS", "Scenario", "scenario"]


@dataclass(frozen=True)
class Scenario:
    """A named experiment of the course.

    Attributes:
        name: what to call it on the command line.
        lesson: the lesson it comes from (``"02"``).
        summary: one line on what it shows.
        run: runs it with a seed and returns its trace.
        kinds: the kinds of events its table shows by default.
    """

    name: str
    lesson: str
    summary: str
    run: Callable[[int], Trace]
    kinds: tuple[str, ...] = ("tcp", "http", "frame", "closed", "fault", "host", "mark")


SCENARIOS: dict[str, Scenario] = {}
"""Every scenario, by name, in the order of the course."""


def scenario(
    name: str, lesson: str, summary: str, *, kinds: tuple[str, ...] | None = None
) -> Callable[[Callable[[int], Trace]], Callable[[int], Trace]]:
    """Register a function ``seed -> Trace`` as the scenario ``name``."""

    def register(run: Callable[[int], Trace]) -> Callable[[int], Trace]:
        if name in SCENARIOS:
            raise ValueError(f"scenario {name!r} is registered twice")
        extra = {} if kinds is None else {"kinds": kinds}
        SCENARIOS[name] = Scenario(name, lesson, summary, run, **extra)
        return run

    return register


# The small cast the scenarios share.


async def _echo(websocket: ServerConnection) -> None:
    async for message in websocket:
        await websocket.send(message)


async def _echo_server() -> None:
    async with serve(_echo, "server", 8765) as server:
        await server.serve_forever()


async def _listening_client() -> None:
    # Say hello, then listen until the connection ends, however it ends.
    try:
        async with connect("ws://server:8765") as websocket:
            await websocket.send("hello")
            async for _ in websocket:
                pass
    except (ConnectionClosed, OSError):
        pass


def _two_hosts(
    seed: int, until: float, *injections: tuple[faults.Fault, float, float | None]
) -> Trace:
    with Simulation(seed=seed) as sim:
        sim.host("server").service(_echo_server)
        sim.host("client").spawn(_listening_client())
        for fault, at, duration in injections:
            sim.inject(fault, at=at, duration=duration)
        return sim.run(until=until)


@scenario("echo", "00", "a client says hello, the server echoes it, the client closes: 1000")
def echo(seed: int) -> Trace:
    async def client() -> None:
        async with connect("ws://server:8765") as websocket:
            await websocket.send("hello")
            await websocket.recv()

    with Simulation(seed=seed) as sim:
        sim.host("server").spawn(_echo_server())
        sim.host("client").spawn(client())
        return sim.run(until=1)


@scenario(
    "crash", "01", "the server process crashes at 1 s: the OS sends FIN, the client sees 1006"
)
def crash(seed: int) -> Trace:
    return _two_hosts(seed, 5, (faults.Crash("server"), 1.0, None))


@scenario(
    "partition",
    "02",
    "the network is cut at 1 s: only the keepalive notices (1011 sent, 1006 seen)",
)
def partition(seed: int) -> Trace:
    return _two_hosts(seed, 120, (faults.Partition("client", "server"), 1.0, None))


@scenario(
    "power-loss",
    "02",
    "the client's machine loses power at 1 s: silence, until the server's keepalive",
)
def power_loss(seed: int) -> Trace:
    return _two_hosts(seed, 120, (faults.PowerLoss("client"), 1.0, None))


@scenario(
    "idle-proxy",
    "02",
    "a proxy resets flows idle for 60 s; websockets' pings every 20 s keep this one alive",
)
def idle_proxy(seed: int) -> Trace:
    return _two_hosts(seed, 200, (faults.IdleTimeout("client", "server", 60, "reset"), 0.0, None))


@scenario(
    "frozen-server",
    "02",
    "the server's event loop is blocked for 60 s: the client's keepalive gives up on it",
)
def frozen_server(seed: int) -> Trace:
    return _two_hosts(seed, 120, (faults.Freeze("server"), 1.0, 60.0))


@scenario(
    "crash-restart", "02", "the server crashes at 1 s and restarts at 3 s; the client reconnects"
)
def crash_restart(seed: int) -> Trace:
    async def reconnecting_client() -> None:
        # websockets' reconnecting iterator: it retries after a crash, with backoff.
        async for websocket in connect("ws://server:8765"):
            try:
                await websocket.send("hello")
                async for _ in websocket:
                    pass
            except ConnectionClosed:
                continue

    with Simulation(seed=seed) as sim:
        sim.host("server").service(_echo_server)
        sim.host("client").spawn(reconnecting_client())
        sim.inject(faults.Crash("server"), at=1.0, duration=2.0)
        return sim.run(until=20)


@scenario(
    "storm",
    "03",
    "100 clients reconnect after a 10 s server crash, with full jitter, behind an accept rate",
    kinds=("fault", "host", "closed"),
)
def reconnect_storm(seed: int) -> Trace:
    from wssim.lab import storm
    from wssim.toolkit import backoff

    result = storm.storm(
        backoff.full_jitter(base=1.0, cap=30.0),
        clients=100,
        seed=seed,
        join_over=5.0,
        crash_at=10.0,
        rate=20.0,
        horizon=120.0,
        keep_trace=True,
    )
    assert result.trace is not None
    return result.trace


@scenario(
    "socketio-heartbeat",
    "04",
    "Socket.IO's application heartbeat (25 s / 20 s) finds a cut network",
    kinds=("frame", "fault", "closed", "log"),
)
def socketio_heartbeat(seed: int) -> Trace:
    from wssim.lab import detection
    from wssim.toolkit import heartbeat

    return detection.run_stack(
        heartbeat.STACKS["Socket.IO"],
        fault=faults.Partition("client", "server"),
        at=30.0,
        until=120.0,
        seed=seed,
    )


@scenario(
    "unmasked-frame",
    "05",
    "a raw client sends an unmasked frame: websockets fails the connection with 1002",
    kinds=("http", "frame", "tcp", "closed"),
)
def unmasked_frame(seed: int) -> Trace:
    from wssim.course import protocolerrors

    return protocolerrors.run(protocolerrors.case("unmasked client frame"), seed=seed).trace


@scenario(
    "capstone",
    "07",
    "40 resilient clients and their server under two minutes of seeded chaos",
    kinds=("fault", "host", "mark"),
)
def capstone_chaos(seed: int) -> Trace:
    from wssim.course import capstone, capstone_examples

    result = capstone.run(
        capstone_examples.ResilientClient,
        capstone_examples.resilient_handler,
        clients=40,
        seed=seed,
        leave_at=180.0,
        chaos_window=(20.0, 120.0),
        bad_inputs=4,
        keep_trace=True,
    )
    assert result.trace is not None
    return result.trace


@scenario(
    "deploy",
    "06",
    "a server with 20 clients shuts down for a deploy: every connection closes with 1012",
    kinds=("fault", "host", "closed", "mark"),
)
def deploy(seed: int) -> Trace:
    async def server() -> None:
        async with serve(_echo, "server", 8765) as ws_server:
            await asyncio.sleep(5)
            # Stop accepting, close every connection with 1012 (service restart), and
            # wait for the handlers, as a graceful shutdown does.
            ws_server.close(code=1012, reason="deploying")
            await ws_server.wait_closed()

    with Simulation(seed=seed) as sim:
        sim.host("server").spawn(server())
        for i in range(20):
            sim.host(f"client{i:02}").spawn(_listening_client())
        sim.at(5, sim.mark, "deploy: the server closes with 1012", "server")
        return sim.run(until=10)
