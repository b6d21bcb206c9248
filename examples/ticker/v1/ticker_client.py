"""A price ticker over WebSocket: the client (the first version, with its bugs).

The comments marked BUG say what the tests in ../tests found; v2/ is the fixed version.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

RETRY_AFTER = 2.0
"""Seconds to wait before connecting again after a dropped connection."""

log = logging.getLogger(__name__)


class TickerClient:
    """Shows the ticks of the ticker at ``uri`` with ``on_tick``."""

    def __init__(self, uri: str, on_tick: Callable[[dict[str, Any]], None]) -> None:
        self.uri = uri
        self.on_tick = on_tick
        self.websocket: ClientConnection | None = None
        self.stopping = False

    async def run(self) -> None:
        """Connect, and connect again when the connection drops, until :meth:`stop`."""
        while not self.stopping:
            try:
                async with connect(self.uri) as websocket:
                    self.websocket = websocket
                    # BUG 3: subscribes from now on; the ticks published while it was
                    # reconnecting are never shown.
                    await websocket.send(json.dumps({"type": "subscribe"}))
                    async for message in websocket:
                        self.on_tick(json.loads(message))
            except ConnectionClosed:
                await asyncio.sleep(RETRY_AFTER)  # dropped: wait a little, then reconnect
            except OSError as exc:
                # BUG 1: a failed connect is taken as the end, but a restarting server
                # refuses connections for a few seconds: the client gives up for good.
                log.warning("cannot reach %s (%s): giving up", self.uri, exc)
                return

    async def stop(self) -> None:
        """Close the connection (1000) and end :meth:`run`."""
        self.stopping = True
        if self.websocket is not None:
            await self.websocket.close()


if __name__ == "__main__":
    asyncio.run(TickerClient("ws://localhost:8765", print).run())
