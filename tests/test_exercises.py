"""The exercises' checks: right answers pass, wrong ones get a hint, nothing raises."""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

import wssim
from wssim.course.exercises import Feedback, correct, lesson00, lesson01, not_yet, seconds_close


def test_feedback_reads_as_one_line() -> None:
    assert repr(correct("yes")) == "✓ Correct: yes"
    assert repr(not_yet("look again")) == "✗ Not yet: look again"
    assert bool(correct("")) and not bool(not_yet(""))


def test_seconds_close_tells_unanswered_from_wrong() -> None:
    assert seconds_close(None, 1.0) is None
    assert seconds_close("1.0", 1.0) is None
    assert seconds_close(True, 1.0) is None
    assert seconds_close(1.001, 1.0) is True
    assert seconds_close(1.1, 1.0) is False


async def three_in_a_row() -> None:
    async with connect("ws://server:8765") as websocket:
        for i in range(3):
            await websocket.send(f"message {i}")
            await websocket.recv()


async def three_at_once() -> None:
    async with connect("ws://server:8765") as websocket:
        for i in range(3):
            await websocket.send(f"message {i}")
        for _ in range(3):
            await websocket.recv()


async def does_nothing() -> None:
    async with connect("ws://server:8765"):
        pass


async def crashes() -> None:
    raise RuntimeError("oops")


def verdict(feedback: Feedback) -> tuple[bool, str]:
    return feedback.passed, feedback.text


def test_lesson00_sequential() -> None:
    assert lesson00.sequential(three_in_a_row, 0.5).passed
    assert verdict(lesson00.sequential(three_in_a_row, None))[1].startswith("your client works;")
    assert "prediction 0.3 s is off" in lesson00.sequential(three_in_a_row, 0.3).text
    assert "received 0 replies" in lesson00.sequential(does_nothing, 0.5).text
    assert "not the pattern" in lesson00.sequential(three_at_once, 0.5).text
    assert "RuntimeError('oops')" in lesson00.sequential(crashes, 0.5).text
    assert "without calling it" in lesson00.sequential(three_in_a_row(), 0.5).text  # type: ignore[arg-type]
    assert "async def" in lesson00.sequential(lambda: None, 0.5).text  # type: ignore[arg-type,return-value]


def test_lesson00_pipelined_and_first_fin() -> None:
    assert lesson00.pipelined(three_at_once, 0.3).passed
    assert not lesson00.pipelined(three_in_a_row, 0.3).passed
    assert lesson00.first_fin("server").passed
    assert "look again" in lesson00.first_fin("client").text
    assert not lesson00.first_fin(None).passed


def close_with(code: int, reason: str, *, by: str) -> wssim.Trace:
    async def handler(ws: Any) -> None:
        if by == "server":
            await ws.close(code, reason)
        else:
            await ws.wait_closed()

    async def server() -> None:
        async with serve(handler, "server", 8765) as s:
            await s.serve_forever()

    async def client() -> None:
        async with connect("ws://server:8765") as ws:
            if by == "client":
                await ws.close(code, reason)
            await ws.wait_closed()

    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(server())
        sim.host("client").spawn(client())
        return sim.run(until=5)


def test_lesson01_deploy_and_private_code() -> None:
    from websockets.exceptions import ConnectionClosedError

    deploy = close_with(1012, "deploying", by="server")
    assert lesson01.deploy(deploy, "ConnectionClosedError").passed
    assert lesson01.deploy(deploy, ConnectionClosedError).passed
    assert "does not get ConnectionClosedOK" in lesson01.deploy(deploy, "ConnectionClosedOK").text
    assert "answer with the exception" in lesson01.deploy(deploy, None).text
    assert "saw close code 1001" in lesson01.deploy(close_with(1001, "", by="server"), "x").text
    assert "pass the trace" in lesson01.deploy(None, "ConnectionClosedError").text
    private = close_with(4000, "user logged out", by="client")
    assert lesson01.private_code(private, "ConnectionClosedError").passed
    assert (
        "saw close code 1000" in lesson01.private_code(close_with(1000, "", by="client"), "").text
    )


def test_lesson01_slow_link() -> None:
    async def handler(ws: Any) -> None:
        await ws.wait_closed()

    async def server() -> None:
        async with serve(handler, "server", 8765) as s:
            await s.serve_forever()

    async def client() -> None:
        async with connect("ws://server:8765") as ws:
            await ws.send("hello")
            await asyncio.sleep(1)

    with wssim.Simulation(seed=0, latency=0.1) as sim:
        sim.host("server").spawn(server())
        sim.host("client").spawn(client())
        slow = sim.run(until=5)
    assert lesson01.slow_link(slow, 1.6, 1.7).passed
    assert "count one-way trips" in lesson01.slow_link(slow, 1.5, 1.7).text
    assert "write both predictions" in lesson01.slow_link(slow, None, 1.7).text
    fast = close_with(1000, "", by="client")
    assert "not the experiment" in lesson01.slow_link(fast, 1.6, 1.7).text
