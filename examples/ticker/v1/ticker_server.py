"""A price ticker over WebSocket: the server (the first version, with its bugs).

Protocol (JSON text messages):

    client -> server  {"type": "subscribe"}
    server -> client  {"type": "tick", "id": 42, "price": 101.37}

A plain websockets application: ``python ticker_server.py`` serves on port 8765. The
comments marked BUG say what the tests in ../tests found; v2/ is the fixed version.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableSet
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast, serve

PORT = 8765


class Market:
    """The ticks published so far, kept where they outlive the server process."""

    def __init__(self) -> None:
        self.ticks: list[dict[str, Any]] = []
        self.open = True

    def close(self) -> None:
        """The market closes: no more ticks."""
        self.open = False

    def publish(self) -> dict[str, Any]:
        """Publish the next tick (a made-up price) and return it."""
        n = len(self.ticks) + 1
        tick = {"type": "tick", "id": n, "price": round(100 + (n * 37 % 200) / 100, 2)}
        self.ticks.append(tick)
        return tick


class Ticker:
    """The ticker server: publishes a tick every ``every`` seconds to its subscribers."""

    def __init__(
        self,
        market: Market,
        *,
        subscribers: MutableSet[ServerConnection] | None = None,
        every: float = 1.0,
    ) -> None:
        self.market = market
        self.subscribers: MutableSet[ServerConnection] = (
            set() if subscribers is None else subscribers
        )
        self.every = every

    async def handler(self, websocket: ServerConnection) -> None:
        """One client: subscribe it."""
        async for message in websocket:
            request = json.loads(message)
            if request.get("type") == "subscribe":
                # BUG 3 (with the client's): only live ticks; what a reconnecting client
                # missed is lost.
                self.subscribers.add(websocket)
            elif request.get("type") == "unsubscribe":
                self.subscribers.discard(websocket)
        # BUG 2: a client that closes without unsubscribing stays subscribed: the set
        # grows with every connection ever made (broadcast() skips it silently).

    async def publish(self) -> None:
        """Publish a tick every ``every`` seconds while the market is open."""
        while self.market.open:
            await asyncio.sleep(self.every)
            if self.market.open:
                broadcast(self.subscribers, json.dumps(self.market.publish()))

    async def run(self, host: str = "", port: int = PORT) -> None:
        """Serve on ``host``:``port`` and publish, until cancelled."""
        async with serve(self.handler, host, port) as server:
            await self.publish()
            await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(Ticker(Market()).run())
