"""One side of a scenario on real Linux TCP, in its own process (and network namespace).

    ip netns exec NS python -m reality.agent --scenario NAME --role client|server \\
        --scale 0.05 --host 10.200.2.2

It speaks JSON lines on stdout: ``{"ready": true}`` (a server: once it listens),
``{"outcome": {...}}`` when its application learns the connection is gone,
``{"done": true}`` when told to stop. It reads commands on stdin: ``t0 T`` (the start of
the scenario, on the ``time.monotonic()`` clock every process of the machine shares),
``fire NAME`` (:meth:`reality.scenarios.Context.fire`), ``stop``. A client waits until
``t0`` to connect.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from reality.scenarios import PORT, Context, by_name


def say(**message: Any) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def listening(port: int) -> bool:
    """Is something listening on TCP ``port`` in this network namespace?"""
    needle = f":{port:04X} 00000000:0000 0A"
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path, encoding="ascii") as f:
                if any(needle in line for line in f):
                    return True
        except OSError:
            continue
    return False


async def commands(ctx: Context, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode():
        word, _, arg = line.strip().partition(" ")
        if word == "t0":
            ctx.t0 = float(arg)
        elif word == "fire":
            ctx.fire(arg)
        elif word == "stop":
            break
    stop.set()


async def main(args: argparse.Namespace) -> None:
    scenario = by_name(args.scenario)
    ctx = Context(args.role, host=args.host, bind=args.host, port=args.port, scale=args.scale)
    ctx.on_record = lambda seen: say(outcome=seen)
    stop = asyncio.Event()
    listener = asyncio.create_task(commands(ctx, stop))
    if args.role == "server":
        side = asyncio.create_task(ctx.run(scenario.server))
        while not listening(args.port):
            if side.done():
                break
            await asyncio.sleep(0.002)
        say(ready=True)
    else:
        say(ready=True)
        while ctx.t0 == 0.0:  # the driver sends t0 once both sides are ready
            await asyncio.sleep(0.001)
        await ctx.sleep_until(0.0)
        side = asyncio.create_task(ctx.run(scenario.client))
    await stop.wait()
    say(done=True)
    # No goodbyes: the scenario is over, whatever state the connection is in.
    listener.cancel()
    side.cancel()
    os._exit(0)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m reality.agent", description=__doc__)
    p.add_argument("--scenario", required=True)
    p.add_argument("--role", choices=("client", "server"), required=True)
    p.add_argument("--scale", type=float, required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, default=PORT)
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
