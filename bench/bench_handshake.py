"""Benchmark: the simulator's cost per WebSocket connection, against bare Sans-I/O.

DESIGN.md target: the simulator's own overhead per handshake within 2x of the bare cost of
websockets' Sans-I/O handshake, measured in the same run.

Measured in one process, alternating, ``--rounds`` times each (the medians are reported):

(a) **Sans-I/O**: ``websockets.client.ClientProtocol`` and ``websockets.server.ServerProtocol``
    exchange their bytes in memory: the opening handshake (request, 101 response) and the
    closing handshake (CLOSE both ways, EOF both ways). No network, no asyncio, no logging
    (websockets' loggers are not enabled for DEBUG outside a simulation). Reported both for
    the opening handshake alone and for open + close.
(b) **wssim**: one simulation, a server, and one client that opens and closes ``--count``
    connections one after the other (``async with connect(...): pass``): the TCP three-way
    handshake, the opening handshake, the closing handshake, the TCP close, all in virtual
    time, with the trace recorded as usual (wire tap and websockets' DEBUG log).
(c) **reference**: the same client and server code on a real asyncio loop over loopback
    TCP (127.0.0.1), i.e. the real library on a real network stack (skip: ``--no-loopback``).

Both (a) and (b) run without permessage-deflate (``compression=None``; Sans-I/O protocols
have no extensions unless asked), so they do the same work in websockets' Sans-I/O layer.
The ratio reported is (b) per connection / (a) open + close per connection.

``--mode profile`` profiles (b) only (top 15 functions by cumulative and internal time, and
internal time summed per package).

Usage::

    .venv/bin/python -W error bench/bench_handshake.py [--count 2000] [--rounds 3] [--mode ...]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

from _common import add_common_arguments, emit, measure
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.client import ClientProtocol
from websockets.protocol import CLOSED, OPEN, Protocol
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

import wssim

URI = "ws://server:8765"


# (a) Sans-I/O


def _pump(src: Protocol, dst: Protocol) -> None:
    for chunk in src.data_to_send():
        if chunk:
            dst.receive_data(chunk)
        else:
            dst.receive_eof()


def sansio(count: int, *, close: bool) -> float:
    """Seconds per connection for ``count`` in-memory handshakes (opening, and closing)."""
    wsuri = parse_uri(URI)
    start = time.perf_counter()
    for _ in range(count):
        client = ClientProtocol(wsuri)
        server = ServerProtocol()
        client.send_request(client.connect())
        _pump(client, server)
        [request] = server.events_received()
        server.send_response(server.accept(request))
        _pump(server, client)
        [response] = client.events_received()
        if close:
            client.send_close(1000)
            _pump(client, server)  # the server answers CLOSE, then half-closes
            _pump(server, client)  # the client receives CLOSE and EOF, then half-closes
            _pump(client, server)
    elapsed = time.perf_counter() - start
    assert response.status_code == 101
    if close:
        assert client.state is CLOSED and server.state is CLOSED, (client.state, server.state)
        assert client.close_code == 1000
    else:
        assert client.state is OPEN and server.state is OPEN
    return elapsed / count


# (b) wssim and (c) loopback: the same application code


async def handler(ws: Any) -> None:
    await ws.wait_closed()


async def open_and_close(uri: str, count: int) -> None:
    for _ in range(count):
        async with connect(uri, compression=None):
            pass


def simulated(count: int) -> dict[str, float]:
    """Seconds per connection for ``count`` sequential connections in a simulation."""

    async def server() -> None:
        async with serve(handler, "server", 8765, compression=None) as srv:
            await srv.serve_forever()

    t0 = time.perf_counter()
    sim = wssim.Simulation(seed=0)
    sim.host("server").spawn(server())
    sim.host("client").spawn(open_and_close(URI, count))
    t1 = time.perf_counter()
    trace = sim.run()  # until idle: the client is done, the server waits forever
    t2 = time.perf_counter()
    sim.close()
    t3 = time.perf_counter()
    closed = trace.filter(kind="closed")
    assert len(closed) == 2 * count and all(e.code == 1000 for e in closed), closed[-4:].table()
    return {
        "per_conn": (t3 - t0) / count,
        "per_conn_run": (t2 - t1) / count,
        "events_per_conn": len(trace) / count,
        "virtual_s": trace.end,
    }


def loopback(count: int) -> float:
    """Seconds per connection for ``count`` sequential connections over real loopback TCP."""

    async def main() -> float:
        async with serve(handler, "127.0.0.1", 0, compression=None) as srv:
            port = srv.sockets[0].getsockname()[1]
            start = time.perf_counter()
            await open_and_close(f"ws://127.0.0.1:{port}", count)
            return time.perf_counter() - start

    return asyncio.run(main()) / count


def scenario(count: int, rounds: int, with_loopback: bool) -> dict[str, Any]:
    a_open: list[float] = []
    a_full: list[float] = []
    b: list[float] = []
    b_run: list[float] = []
    c: list[float] = []
    events = 0.0
    # Warm up every path once (imports, caches), then alternate.
    sansio(50, close=True)
    simulated(20)
    if with_loopback:
        loopback(20)
    for _ in range(rounds):
        a_open.append(sansio(count, close=False))
        a_full.append(sansio(count, close=True))
        sim = simulated(count)
        b.append(sim["per_conn"])
        b_run.append(sim["per_conn_run"])
        events = sim["events_per_conn"]
        if with_loopback:
            c.append(loopback(count))
    med = statistics.median
    result: dict[str, Any] = {
        "count": count,
        "rounds": rounds,
        "sansio_open_us": med(a_open) * 1e6,
        "sansio_open_close_us": med(a_full) * 1e6,
        "wssim_us": med(b) * 1e6,
        "wssim_run_us": med(b_run) * 1e6,
        "events_per_conn": events,
        "ratio": med(b) / med(a_full),
        "ratio_open_only": med(b) / med(a_open),
    }
    if with_loopback:
        result["loopback_us"] = med(c) * 1e6
        result["ratio_loopback"] = med(c) / med(a_full)
        result["ratio_wssim_loopback"] = med(b) / med(c)
    return result


def profiled(count: int) -> dict[str, Any]:
    # Only (b) is profiled, from the creation of the simulation to its close.
    sim = simulated(count)
    return {"count": count, "wssim_us_profiled": sim["per_conn"] * 1e6}


def describe(r: dict[str, Any]) -> str:
    if r["mode"] == "profile":
        return (
            f"handshake, wssim side profiled: {r['count']} connections, "
            f"{r['wssim_us_profiled']:.0f} us each under cProfile"
        )
    if r["mode"] == "tracemalloc":
        return f"handshake: tracemalloc peak {r['tracemalloc_peak_mb']:.1f} MiB"
    lines = [
        f"handshake, {r['count']} connections x {r['rounds']} rounds (medians, per connection):",
        f"  (a) Sans-I/O opening handshake only      {r['sansio_open_us']:8.1f} us",
        f"  (a) Sans-I/O open + close                {r['sansio_open_close_us']:8.1f} us",
        f"  (b) wssim connect + open + close         {r['wssim_us']:8.1f} us "
        f"({r['events_per_conn']:.0f} trace events each)",
    ]
    if "loopback_us" in r:
        lines.append(f"  (c) real loopback TCP, same code         {r['loopback_us']:8.1f} us")
    lines.append(
        f"  ratio (b)/(a) open+close: {r['ratio']:.1f}x   (b)/(a) opening only: "
        f"{r['ratio_open_only']:.1f}x   target: within 2x"
    )
    if "ratio_loopback" in r:
        lines.append(
            f"  ratio (c)/(a) open+close: {r['ratio_loopback']:.1f}x   (b)/(c): "
            f"{r['ratio_wssim_loopback']:.2f}x (the simulator against the real network stack)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="connections per round (2000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (3)")
    parser.add_argument("--no-loopback", action="store_true", help="skip (c), real TCP")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.mode == "profile":
        result = measure("profile", lambda: profiled(args.count))
    else:
        result = measure(args.mode, lambda: scenario(args.count, args.rounds, not args.no_loopback))
    emit(result, args.json, describe)


if __name__ == "__main__":
    sys.exit(main())
