"""Benchmark: one idle WebSocket connection with websockets' default keepalive, 24 virtual hours.

DESIGN.md target: 24 virtual hours of one keepalive connection in under 1 s of wall time.

Scenario: one server, one client, both with websockets' defaults (``ping_interval=20``,
``ping_timeout=20``, permessage-deflate negotiated). The connection stays idle: the only
traffic is keepalive. Both ends run a keepalive task, so each sends its own PING every 20 s
and answers the other's with a PONG.

What is checked (the run fails if any check fails):

- the connection is still open at the end (no ``closed`` event, no 1011 ping timeout);
- each side sends exactly ``floor((H - t_open) / 20)`` PINGs, where ``t_open`` is when that
  side saw the connection open (client 0.040 s, server 0.030 s with 10 ms latency): 4,319
  each, 8,638 in all, not 2 x 4,320 = 8,640, because the 4,320th pair falls at
  86,400.03 / 86,400.04 s, just after the horizon;
- every PING is answered by exactly one PONG;
- the period is exactly 20.000 s: websockets sleeps ``ping_interval - latency`` after each
  pong (latency = the 20 ms round trip), so pings do not drift by one RTT per period.

Usage::

    .venv/bin/python -W error bench/bench_keepalive.py [--hours 24] [--mode MODE]
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from typing import Any

from _common import add_common_arguments, emit, measure
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.frames import Opcode

import wssim

PING_INTERVAL = 20.0  # websockets' default, used implicitly below
LATENCY = 0.010


async def handler(ws: Any) -> None:
    await ws.wait_closed()


async def server() -> None:
    async with serve(handler, "server", 8765) as srv:
        await srv.serve_forever()


async def client() -> None:
    async with connect("ws://server:8765") as ws:
        await ws.wait_closed()


def scenario(hours: float) -> dict[str, Any]:
    horizon = hours * 3600
    t0 = time.perf_counter()
    sim = wssim.Simulation(seed=0, latency=LATENCY)
    sim.host("server").spawn(server())
    sim.host("client").spawn(client())
    trace = sim.run(until=horizon)
    t1 = time.perf_counter()
    sim.close()
    t2 = time.perf_counter()

    # Checks.
    assert not trace.filter(kind="closed"), trace.filter(kind="closed").table()
    # Each side's connection opens with the 101 response: the server when it sends it, the
    # client when it arrives (read from the wire, so the check holds without the log).
    [response] = [e for e in trace.filter(kind="http", side="server") if e.code == 101]
    opened = {"server": response.time, "client": response.arrives}

    def frames(side: str, opcode: Opcode) -> list[wssim.Event]:
        sent = trace.filter(kind="frame", side=side)
        return [e for e in sent if e.frame is not None and e.frame.opcode is opcode]

    pings = {side: frames(side, Opcode.PING) for side in opened}
    pongs = {side: frames(side, Opcode.PONG) for side in opened}
    expected = {}
    for side, t_open in opened.items():
        # Round to the microsecond, as the trace does, before flooring.
        expected[side] = math.floor(round((horizon - t_open) / PING_INTERVAL, 6))
        assert len(pings[side]) == expected[side], (side, len(pings[side]), expected[side])
        other = "server" if side == "client" else "client"
        assert len(pongs[other]) == len(pings[side]), (side, len(pongs[other]))
        times = [e.time for e in pings[side]]
        assert abs(times[0] - (t_open + PING_INTERVAL)) < 1e-6, (side, times[0])
        gaps = {round(b - a, 6) for a, b in itertools.pairwise(times)}
        assert gaps <= {PING_INTERVAL}, (side, sorted(gaps)[:5])
    n_pings = sum(len(p) for p in pings.values())
    return {
        "hours": hours,
        "events": len(trace),
        "pings": n_pings,
        "pings_client": len(pings["client"]),
        "pings_server": len(pings["server"]),
        "naive_pings": 2 * round(horizon / PING_INTERVAL),
        "wall_s": t2 - t0,
        "run_s": t1 - t0,
        "close_s": t2 - t1,
    }


def describe(r: dict[str, Any]) -> str:
    lines = [
        f"keepalive, {r['hours']:g} virtual hours: {r['pings']} PINGs "
        f"({r['pings_client']} client + {r['pings_server']} server; naive 2 per 20 s "
        f"window would be {r['naive_pings']}), {r['events']} trace events",
    ]
    if r["mode"] == "time":
        lines.append(
            f"wall {r['wall_s']:.3f} s (create+run+trace {r['run_s']:.3f} s, close "
            f"{r['close_s']:.3f} s); peak RSS {r['maxrss_mb']:.0f} MiB "
            f"(before the scenario {r['rss_before_mb']:.0f} MiB)"
        )
    elif r["mode"] == "tracemalloc":
        lines.append(f"tracemalloc peak {r['tracemalloc_peak_mb']:.1f} MiB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=24.0, help="virtual hours (default 24)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    result = measure(args.mode, lambda: scenario(args.hours))
    emit(result, args.json, describe)


if __name__ == "__main__":
    sys.exit(main())
