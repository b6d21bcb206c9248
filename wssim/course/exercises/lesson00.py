"""Checks for lesson 00, welcome: how long messages take."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Opcode

from wssim.course.exercises import Feedback, correct, not_yet, seconds_close
from wssim.simulation import Simulation
from wssim.world import ProcessFailed

__all__ = ["first_fin", "pipelined", "sequential"]

LATENCY = 0.050
"""The exercises' one-way latency, in seconds."""


async def _echo(websocket: ServerConnection) -> None:
    async for message in websocket:
        await websocket.send(message)


async def _server() -> None:
    async with serve(_echo, "server", 8765) as server:
        await server.serve_forever()


def _reply_times(client: Callable[[], Coroutine[Any, Any, Any]]) -> list[float] | str:
    """Run ``client()`` against an echo server at 50 ms; return when replies arrived, or
    what went wrong."""
    if not callable(client):
        if isinstance(client, Coroutine):
            client.close()  # it will never run: no "never awaited" warning for it
        return f"pass your coroutine function itself (without calling it), got {client!r}"
    with Simulation(seed=0, latency=LATENCY) as sim:
        sim.host("server").spawn(_server())
        coro = client()
        if not isinstance(coro, Coroutine):
            return f"{getattr(client, '__name__', client)}() must be an `async def` function"
        sim.host("client").spawn(coro)
        try:
            trace = sim.run(until=10)
        except ProcessFailed as exc:
            return f"your client failed: {exc.__cause__!r}"
    return [
        e.time
        for e in trace.filter(kind="log", side="client")
        if e.frame is not None and not e.frame.sent and e.frame.opcode is Opcode.TEXT
    ]


def _check(
    client: Callable[[], Coroutine[Any, Any, Any]],
    prediction: object,
    expected: list[float],
    how: str,
) -> Feedback:
    replies = _reply_times(client)
    if isinstance(replies, str):
        return not_yet(replies)
    if len(replies) != 3:
        return not_yet(f"your client received {len(replies)} replies; it should get 3 ({how}).")
    if replies != expected:
        return not_yet(
            f"your client's replies arrived at {replies}; that is not the pattern asked for "
            f"({how}). Look at when each send() happens."
        )
    close = seconds_close(prediction, expected[-1])
    if close is None:
        return not_yet(
            "your client works; now write your prediction for the third reply, in seconds, "
            "before you look at the measurement."
        )
    if not close:
        return not_yet(
            f"your client works, but the prediction {prediction!r} s is off. Count the one-way "
            f"trips of {LATENCY * 1000:g} ms: the opening handshake first, then each message."
        )
    return correct(f"the third reply arrives at {expected[-1]:.3f} s, as you predicted.")


def sequential(client: Callable[[], Coroutine[Any, Any, Any]], prediction: object) -> Feedback:
    """Exercise 1: three messages, each sent after the previous reply arrived."""
    return _check(
        client, prediction, [0.3, 0.4, 0.5], "one message at a time, waiting for each reply"
    )


def pipelined(client: Callable[[], Coroutine[Any, Any, Any]], prediction: object) -> Feedback:
    """Exercise 2: three messages sent at once, then three replies read."""
    return _check(
        client, prediction, [0.3, 0.3, 0.3], "all three sent first, then the replies read"
    )


def first_fin(answer: object) -> Feedback:
    """Exercise 3: which side sends the first FIN?"""
    if answer not in ("client", "server"):
        return not_yet('answer "client" or "server": look for the first FIN in the trace.')
    if answer == "client":
        return not_yet(
            "look again: filter the trace with trace.table(kind='tcp', contains='FIN') and read "
            "the `where` column of the first line."
        )
    return correct(
        "the server closes TCP first, right after it answers the client's CLOSE "
        "(RFC 6455, section 7.1.1)."
    )
