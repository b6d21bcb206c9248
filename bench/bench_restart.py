"""Benchmark: N clients connect, exchange, survive a server restart, reconnect, exchange again.

DESIGN.md target: 10,000 clients in under 30 s of wall time and under 1 GB peak memory, on a
2-core machine.

Scenario (virtual time):

- every client runs on a host of its own (``client0`` ... ``client{N-1}``), as browsers do,
  and starts at a random time in the first 10 s (``random.Random(seed).uniform(0, 10)``);
- each one connects with websockets' reconnecting iterator, ``async for ws in connect(...)``,
  sends one message, waits for the echo, then stays connected;
- at ``--crash`` (15 s) the server host crashes: the OS closes every socket (FIN), the
  clients' connections end with 1006, and they reconnect at once (refused, the server is
  down), then back off with websockets' default delays (random 0-5 s, then 3.1 s, 5.0 s...);
- at ``--crash + --down`` (20 s) the host restarts and the scenario spawns the server again;
- each client that gets back in sends one message, waits for the echo, closes (1000) and
  stops.

Both sides use ``compression=None``: permessage-deflate keeps a zlib compressor and
decompressor per connection and side, which roughly triples the memory of an idle
connection (see DESIGN.md); a storm of thousands of connections should not pay for it.

What is checked (the run fails otherwise): every client exchanged a message before the
crash and again after the restart, its second exchange happened after the restart; the
trace holds exactly 2N echoes from the server, N of them after the restart, and N clean
client-side closes (1000) after the restart; nobody closed with 1011 and no handler failed.
Reported: the virtual time at which the last client was back (its second echo received).

Usage::

    .venv/bin/python -W error bench/bench_restart.py --clients 1000 [--mode MODE]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import statistics
import sys
import time
from typing import Any

from _common import add_common_arguments, check_backoff_environment, emit, measure
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode

import wssim
from wssim.trace import Tcp

URI = "ws://server:8765"
HORIZON_AFTER_RESTART = 600.0
"""Virtual seconds the run may continue after the restart; it ends earlier once idle."""


async def echo(ws: Any) -> None:
    async for message in ws:
        await ws.send(message)


async def server() -> None:
    async with serve(echo, "server", 8765, compression=None) as srv:
        await srv.serve_forever()


def scenario(
    n: int, seed: int, crash_at: float, down: float, *, digest: bool = False
) -> dict[str, Any]:
    """Run the scenario, check it, return facts; ``digest`` adds a sha256 of the trace."""
    first: dict[int, float] = {}  # client -> virtual time of its first echo
    second: dict[int, float] = {}  # client -> virtual time of its echo after the restart
    restart_at = crash_at + down

    async def client(i: int, start: float) -> None:
        await asyncio.sleep(start)
        loop = asyncio.get_running_loop()
        message = f"hello from {i}"
        async for ws in connect(URI, compression=None):
            try:
                await ws.send(message)
                assert await ws.recv() == message
                if i not in first:
                    first[i] = loop.time()
                    await ws.wait_closed()  # until the crash
                    continue  # reconnect
                second[i] = loop.time()
                await ws.close()
                break
            except ConnectionClosed:
                continue

    t0 = time.perf_counter()
    sim = wssim.Simulation(seed=seed)
    srv = sim.host("server")
    srv.spawn(server())
    starts = random.Random(seed)
    for i in range(n):
        sim.host(f"client{i}").spawn(client(i, starts.uniform(0, 10)), name=f"client{i}")

    def reboot() -> None:
        srv.restart()
        srv.spawn(server())

    sim.at(crash_at, srv.crash)
    sim.at(restart_at, reboot)
    t1 = time.perf_counter()
    trace = sim.run(until=restart_at + HORIZON_AFTER_RESTART)
    t2 = time.perf_counter()
    sim.close()
    t3 = time.perf_counter()

    # Checks: counters in the coroutines...
    assert len(first) == n, f"{n - len(first)} clients never exchanged before the crash"
    assert max(first.values()) < crash_at, "a first exchange ran into the crash"
    missing = n - len(second)
    assert missing == 0, f"{missing} clients did not come back after the restart"
    assert min(second.values()) > restart_at
    # ... and the trace.
    echoes = [
        e
        for e in trace.filter(kind="frame", side="server")
        if e.frame is not None and e.frame.opcode is Opcode.TEXT
    ]
    assert len(echoes) == 2 * n, len(echoes)
    assert sum(1 for e in echoes if e.time >= restart_at) == n
    closes = trace.filter(kind="closed", side="client", since=restart_at)
    assert sum(1 for e in closes if e.code == 1000) == n, closes.table()
    assert not trace.filter(kind="closed").filter(contains="1011"), "unexpected 1011"
    assert not trace.filter(kind="log", contains="handler failed"), "a handler failed"
    refused = sum(1 for e in trace.filter(kind="tcp") if e.detail is Tcp.REFUSED)
    back = sorted(t - restart_at for t in second.values())
    facts = {
        "clients": n,
        "events": len(trace),
        "refused": refused,
        "crash_at": crash_at,
        "restart_at": restart_at,
        "last_back_at": round(max(second.values()), 6),
        "back_median_s": round(statistics.median(back), 3),
        "back_p90_s": round(back[int(0.9 * (n - 1))], 3),
        "wall_s": t3 - t0,
        "setup_s": t1 - t0,
        "run_s": t2 - t1,
        "close_s": t3 - t2,
    }
    if digest:
        facts["trace_sha256"] = hashlib.sha256(repr(trace.records()).encode()).hexdigest()
    return facts


def describe(r: dict[str, Any]) -> str:
    lines = [
        f"restart, {r['clients']} clients: all back; last one at t={r['last_back_at']:.3f} s "
        f"({r['last_back_at'] - r['restart_at']:.3f} s after the restart at "
        f"t={r['restart_at']:g} s; median {r['back_median_s']:.3f} s, p90 "
        f"{r['back_p90_s']:.3f} s); {r['refused']} refused attempts; {r['events']} trace events",
    ]
    if r["mode"] == "time":
        lines.append(
            f"wall {r['wall_s']:.2f} s (setup {r['setup_s']:.2f} s, run+trace {r['run_s']:.2f} s, "
            f"close {r['close_s']:.2f} s); peak RSS {r['maxrss_mb']:.0f} MiB "
            f"(before the scenario {r['rss_before_mb']:.0f} MiB)"
        )
    elif r["mode"] == "tracemalloc":
        lines.append(
            f"tracemalloc peak {r['tracemalloc_peak_mb']:.1f} MiB "
            f"(still allocated at the end: {r['tracemalloc_end_mb']:.1f} MiB)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000, help="number of clients (1000)")
    parser.add_argument("--seed", type=int, default=1, help="simulation and start-time seed")
    parser.add_argument("--crash", type=float, default=15.0, help="crash time, s (15)")
    parser.add_argument("--down", type=float, default=5.0, help="seconds down (5)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    check_backoff_environment()
    result = measure(args.mode, lambda: scenario(args.clients, args.seed, args.crash, args.down))
    emit(result, args.json, describe)


if __name__ == "__main__":
    sys.exit(main())
