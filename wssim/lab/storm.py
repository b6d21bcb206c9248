"""The reconnect storm: many clients, one server that crashes and comes back, one strategy.

The experiment that lesson 03 and ``bench/bench_storm.py`` share. ``clients`` clients, each
on a host of its own (as browsers are), join a server one after another over ``join_over``
seconds and stay connected. At ``crash_at`` the server host crashes (the OS closes every
socket: each client sees 1006); ``down`` seconds later it restarts and the server starts
again. Every client reconnects with websockets' own loop, ``async for ws in connect(...,
reconnect_delays=strategy)``, and the server lets them in through an
:class:`~wssim.toolkit.admission.Admission` (an accept rate and/or a connection limit, answering 503
past it). :func:`storm` measures, from the trace and from counters kept by the clients:

- ``attempts``: connection attempts (SYN segments) sent from the crash on;
- ``refused_tcp``: attempts refused by the host's TCP stack while it was down (cheap: the
  kernel answers, no process runs);
- ``attempts_up`` and ``refused_503``: attempts reaching the server once it is back, each
  one a TCP and an HTTP exchange for it, and those refused by admission control (HTTP 503);
- ``peak_rate``: the most attempts reaching the server within one second after the restart;
- ``half_back`` and ``all_back``: seconds from the restart until half the clients, and the
  last one, were connected again;
- ``longest_outage``: the longest time any one client stayed disconnected.

Both sides pass ``compression=None`` (permessage-deflate keeps a compressor per connection,
about three times the memory of an idle connection) and ``ping_interval=None``: keepalive is
not what this measures, and without it the simulation goes quiet, and ends, as soon as every
client is back.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine, Generator, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from wssim.core.hosts import Host
from wssim.simulation import Simulation
from wssim.toolkit.admission import Admission
from wssim.trace.events import Table, Tcp, Trace, microseconds

__all__ = ["StormResult", "compare", "reboot", "storm"]

URI = "ws://server:8765"


def reboot(host: Host, *processes: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    """Restart ``host`` (it comes back empty) and start its processes again.

    For ``sim.at(t, reboot, server_host, server)``: each argument after the host is a
    function that makes the process's coroutine, called once per reboot.
    """
    host.restart()
    for make in processes:
        host.spawn(make())


@dataclass(frozen=True)
class StormResult:
    """What one storm measured. Times in seconds; counts from the crash on.

    Attributes:
        strategy: the name of the reconnect strategy.
        clients: how many clients took part.
        crash_at: when the server host crashed.
        restart_at: when it came back.
        attempts: connection attempts (SYN segments sent by clients) from the crash on.
        refused_tcp: attempts refused by the host's TCP stack (the server was down).
        refused_503: attempts refused by admission control with HTTP 503.
        attempts_up: attempts that reached the server after the restart, when each one
            costs the server a TCP handshake and an HTTP exchange.
        peak_rate: the most attempts that reached the server host within one second after
            the restart (seconds counted from the restart).
        half_back: seconds from the restart until half the clients were connected again
            (the typical client's wait); None if fewer than half came back.
        all_back: seconds from the restart until every client was connected again; None if
            some client was still out at the end of the run.
        longest_outage: the longest time one client stayed disconnected (from the moment it
            saw its connection close to the moment it was connected again); None if some
            client never came back.
        attempts_per_second: attempts reaching the server in each second after the crash.
        connected: ``(time, clients connected)`` at each change, from the start.
        events: how many events the trace held.
        trace: the whole trace, for a closer look, if the storm was run with
            ``keep_trace=True``; else None (a 1,000-client trace holds 50,000 to 200,000
            events, and keeping several costs memory and garbage-collection time).
    """

    strategy: str
    clients: int
    crash_at: float
    restart_at: float
    attempts: int
    refused_tcp: int
    refused_503: int
    attempts_up: int
    peak_rate: int
    half_back: float | None
    all_back: float | None
    longest_outage: float | None
    attempts_per_second: tuple[int, ...] = field(repr=False)
    connected: tuple[tuple[float, int], ...] = field(repr=False)
    events: int
    trace: Trace | None = field(repr=False, compare=False)

    @property
    def refused(self) -> int:
        """Attempts refused, for either reason."""
        return self.refused_tcp + self.refused_503


def storm(
    strategy: Callable[[], Generator[float, None, None]],
    *,
    clients: int = 1000,
    seed: int = 1,
    join_over: float = 20.0,
    crash_at: float = 25.0,
    down: float = 10.0,
    rate: float | None = 100.0,
    burst: float | None = None,
    max_connections: int | None = None,
    latency: float = 0.010,
    horizon: float = 900.0,
    name: str | None = None,
    keep_trace: bool = False,
) -> StormResult:
    """Run the storm once with ``strategy`` and measure it.

    Args:
        strategy: what ``connect(..., reconnect_delays=)`` takes: a
            :class:`~wssim.toolkit.backoff.Backoff` or any callable returning a generator of delays.
        clients: how many clients.
        seed: the simulation's seed (every random draw, reconnect delays included).
        join_over: client ``i`` starts at ``join_over * i / clients``: an even trickle,
            so that everyone is in before the crash.
        crash_at: when the server host crashes; after ``join_over``.
        down: how long it stays down before it restarts and serves again.
        rate: admission control: handshakes accepted per second (None: no limit).
        burst: admission control: bucket size (default: one second of ``rate``).
        max_connections: admission control: connection limit (None: no limit).
        latency: one-way latency between any two hosts.
        horizon: seconds after the restart when the run stops even if clients are still
            out (it stops earlier once nothing is left to happen).
        name: the name in tables; default the strategy's ``name``, or its ``repr``.
        keep_trace: keep the whole trace in the result (``result.trace``).

    Raises:
        ValueError: for a parameter out of its range (the message names it), or if not every
            client was connected before the crash (make ``join_over`` longer or ``rate``
            higher).
    """
    if isinstance(clients, bool) or not isinstance(clients, int) or clients < 1:
        raise ValueError(f"clients must be an integer >= 1, got {clients!r}")
    if not callable(strategy):
        raise ValueError(f"strategy must be callable (reconnect_delays=), got {strategy!r}")
    for parameter, value in (("join_over", join_over), ("down", down), ("horizon", horizon)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{parameter} must be a number of seconds, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{parameter} must be a finite number of seconds >= 0, got {value!r}")
    if (
        isinstance(crash_at, bool)
        or not isinstance(crash_at, int | float)
        or not math.isfinite(crash_at)
        or crash_at <= join_over
    ):
        raise ValueError(
            f"crash_at must be a finite time after join_over={join_over!r} s, got {crash_at!r}"
        )
    label = name if name is not None else str(getattr(strategy, "name", repr(strategy)))
    # Admission and Simulation check their own parameters.
    with Simulation(seed=seed, latency=latency) as sim:
        admission = Admission(rate=rate, burst=burst, max_connections=max_connections)
        # Per client: the times its connection opened and closed, in order.
        opened: list[list[float]] = [[] for _ in range(clients)]
        closed: list[list[float]] = [[] for _ in range(clients)]

        async def handler(ws: ServerConnection) -> None:
            await ws.wait_closed()

        async def server() -> None:
            async with serve(
                handler,
                "server",
                8765,
                process_request=admission,
                compression=None,
                ping_interval=None,
            ) as srv:
                await srv.serve_forever()

        async def client(i: int, start: float) -> None:
            await asyncio.sleep(start)
            loop = asyncio.get_running_loop()
            async for ws in connect(
                URI, compression=None, ping_interval=None, reconnect_delays=strategy
            ):
                opened[i].append(loop.time())
                await ws.wait_closed()
                closed[i].append(loop.time())

        host = sim.host("server")
        host.spawn(server())
        for i in range(clients):
            sim.host(f"client{i}").spawn(client(i, join_over * i / clients), name=f"client{i}")
        restart_at = crash_at + down
        sim.at(crash_at, host.crash)
        sim.at(restart_at, reboot, host, server)
        trace = sim.run(until=restart_at + horizon)

    before = sum(1 for times in opened if times and times[0] < crash_at)
    if before < clients:
        raise ValueError(
            f"only {before} of {clients} clients were connected before the crash: make "
            f"join_over longer or the admission rate higher"
        )
    result = _measure(label, trace, clients, crash_at, restart_at, opened, closed)
    return replace(result, trace=trace) if keep_trace else result


def _measure(
    label: str,
    trace: Trace,
    clients: int,
    crash_at: float,
    restart_at: float,
    opened: list[list[float]],
    closed: list[list[float]],
) -> StormResult:
    after = trace.filter(since=crash_at, kind=("tcp", "http"))
    syns = [e for e in after if e.side == "client" and e.detail is Tcp.SYN]
    arrivals = [e.arrives for e in syns if e.arrives is not None and e.peer == "server"]
    bins = [0] * (int(max(arrivals, default=crash_at) - crash_at) + 1)
    for t in arrivals:
        bins[int(t - crash_at)] += 1
    up = [t for t in arrivals if t >= restart_at]
    up_bins = [0] * (int(max(up, default=restart_at) - restart_at) + 1)
    for t in up:
        up_bins[int(t - restart_at)] += 1
    refused_tcp = sum(1 for e in after if e.side == "client" and e.detail is Tcp.REFUSED)
    refused_503 = sum(1 for e in after if e.kind == "http" and e.side == "server" and e.code == 503)

    back: list[float] = []
    outages: list[float] = []
    for opens, closes in zip(opened, closed, strict=True):
        later = [t for t in opens if t >= restart_at]
        if not later or len(closes) != len(opens) - 1:
            continue  # this client is not connected at the end
        back.append(later[0])
        outages.extend(o - c for c, o in zip(closes, opens[1:], strict=True))
    back.sort()
    half = (clients + 1) // 2
    everyone = len(back) == clients
    changes = sorted(
        [(t, 1) for opens in opened for t in opens] + [(t, -1) for cs in closed for t in cs]
    )
    connected: list[tuple[float, int]] = []
    count = 0
    for t, delta in changes:
        count += delta
        if connected and connected[-1][0] == t:
            connected[-1] = (t, count)
        else:
            connected.append((t, count))
    return StormResult(
        strategy=label,
        clients=clients,
        crash_at=crash_at,
        restart_at=restart_at,
        attempts=len(syns),
        refused_tcp=refused_tcp,
        refused_503=refused_503,
        attempts_up=len(up),
        peak_rate=max(up_bins),
        half_back=microseconds(back[half - 1] - restart_at) if len(back) >= half else None,
        all_back=microseconds(max(back) - restart_at) if everyone else None,
        longest_outage=microseconds(max(outages)) if everyone else None,
        attempts_per_second=tuple(bins),
        connected=tuple((microseconds(t), n) for t, n in connected),
        events=len(trace),
        trace=None,
    )


def compare(results: Iterable[StormResult]) -> Table:
    """One row per storm: the work while the server is down and once it is back, the peak
    load on it, and how long the clients were out."""
    rows = []
    for r in results:
        rows.append(
            (
                r.strategy,
                f"{r.attempts:,}",
                f"{r.refused_tcp:,}",
                f"{r.attempts_up:,}",
                f"{r.refused_503:,}",
                f"{r.peak_rate:,}",
                "-" if r.half_back is None else f"{r.half_back:.1f} s",
                "not all" if r.all_back is None else f"{r.all_back:.1f} s",
                "-" if r.longest_outage is None else f"{r.longest_outage:.1f} s",
            )
        )
    # Short headings: the table must fit a notebook's width without wrapping.
    columns = (
        "strategy",
        "attempts",
        "down: refused",
        "up: attempts",
        "up: 503",
        "peak/s",
        "half back",
        "all back",
        "longest out",
    )
    return Table(columns, rows, right=range(1, 9))
