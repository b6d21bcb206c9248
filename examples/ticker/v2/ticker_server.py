"""A price ticker over WebSocket: the server (the fixed version).

Protocol (JSON text messages):

    client -> server  {"type": "subscribe", "after": 41}      ticks after id 41 (null: from now)
    server -> client  {"type": "tick", "id": 42, "price": 101.37}

A plain websockets application: ``python ticker_server.py`` serves on port 8765.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableSet
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

PORT = 8765


class Market:
    """The ticks published so far, kept where they outlive the server process.

    In production this is a broker or a database (Redis streams, Kafka): a restarted server
    finds the history there, so clients can catch up on what they missed.
    """

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

    def after(self, tick_id: int) -> list[dict[str, Any]]:
        """The ticks published after ``tick_id``, in order."""
        return self.ticks[tick_id:]


class Ticker:
    """The ticker server: publishes a tick every ``every`` seconds to its subscribers.

    Args:
        market: where ticks are published and kept.
        subscribers: the set of subscribed connections (default: a new set).
        every: seconds between two ticks.
    """

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
        """One client: subscribe it, until it goes."""
        try:
            async for message in websocket:
                request = json.loads(message)
                if request.get("type") == "subscribe" and websocket not in self.subscribers:
                    after = request.get("after")
                    # The ticks it missed, then the live ones: broadcast() writes without
                    # awaiting, so no tick can be published between the two.
                    if isinstance(after, int):
                        for tick in self.market.after(after):
                            broadcast([websocket], json.dumps(tick))
                    self.subscribers.add(websocket)
        except ConnectionClosed:
            pass  # the client went away without a closing handshake: nothing to answer
        finally:
            # However the connection ended, its subscription ends with it.
            self.subscribers.discard(websocket)

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
