"""Small servers and clients the tests share."""

from __future__ import annotations

from websockets.asyncio.server import ServerConnection, serve


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def echo_server(port: int = 8765, **kwargs: object) -> None:
    async with serve(echo, None, port, **kwargs) as server:  # type: ignore[arg-type]
        await server.serve_forever()
