"""Lesson 06's checks: right answers pass, wrong or missing ones get a hint, nothing raises.

The handler checks run the lesson's crowd; tests/test_lesson06.py checks that the checks'
copy of the crowd leaves what the lesson's own leaves.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
import websockets

from wssim.course.exercises import lesson06
from wssim.simulation import Simulation
from wssim.toolkit import resources
from wssim.toolkit.resources import Ledger
from wssim.trace import Trace


def test_the_crowd_is_the_lesson_s() -> None:
    plan = lesson06.crowd()
    assert len(plan) == 60
    assert Counter(fate for *_, fate in plan) == {"leaves": 30, "vanishes": 18, "crashes": 12}
    assert plan[0][0] == "client00" and all(0 <= arrives <= 30 for _, arrives, _, _ in plan)


# ---------------------------------------------------------------- exercise 1


async def keep_presence(user: str) -> None:
    while True:
        await asyncio.sleep(5)


async def fixed(websocket: Any, app: lesson06.App) -> None:
    user = resources.conn_id(websocket)
    app.subscribers.add(websocket, owner=user)
    try:
        async with asyncio.TaskGroup() as tasks:
            presence = app.ledger.track(tasks.create_task(keep_presence(user)), owner=user)
            try:
                async for message in websocket:
                    await websocket.send(f"you said {message}")
            finally:
                presence.cancel()
    finally:
        app.subscribers.discard(websocket)


async def half_fixed(websocket: Any, app: lesson06.App) -> None:
    # Unsubscribes in a finally, but never stops its presence task.
    user = resources.conn_id(websocket)
    app.subscribers.add(websocket, owner=user)
    app.ledger.track(asyncio.create_task(keep_presence(user)), owner=user)
    try:
        async for message in websocket:
            await websocket.send(f"you said {message}")
    finally:
        app.subscribers.discard(websocket)


async def does_nothing(websocket: Any, app: lesson06.App) -> None: ...


RIGHT = {"subscription": 30, "task": 60}


def test_the_exercise_s_handler_leaves_what_the_lesson_prints() -> None:
    assert lesson06.leaky_leftovers() == RIGHT


def test_no_leaks_passes_a_right_prediction_and_a_fixed_handler() -> None:
    feedback = lesson06.no_leaks(fixed, RIGHT)
    assert feedback.passed, feedback.text
    assert feedback.text.startswith("the crash and the cut network skip the line after the loop")
    assert lesson06.no_leaks(fixed, {**RIGHT, "db session": 0}).passed  # zeros are fine


def test_no_leaks_hints_at_the_prediction_without_giving_it_away() -> None:
    def hint(prediction: object) -> str:
        feedback = lesson06.no_leaks(fixed, prediction)
        assert not feedback.passed
        said = feedback.text.replace(repr(prediction), "")  # a hint may quote the answer given
        assert "30" not in said and "60" not in said
        return feedback.text

    assert hint(None).startswith("write your prediction first, in `predicted_left`")
    assert "should be a dict" in hint([30, 60])
    assert "should be a dict" in hint({1: 30})
    assert "should be a whole number, got True" in hint({"subscription": True, "task": 6})
    assert "should be a whole number, got 'many'" in hint({"subscription": "many", "task": 6})
    assert hint({"db session": 30}).startswith("those are not the kinds left at the end")
    assert hint({"subscription": 30}).startswith("those are not the kinds")
    assert hint({"subscription": 18, "task": 60}).startswith(
        "your count of 'subscription' is off: which of the crowd's fates"
    )
    assert hint({"subscription": 30, "task": 30}).startswith(
        "your count of 'task' is off: does anything ever stop a presence task?"
    )


def test_no_leaks_reports_what_the_handler_leaves() -> None:
    assert "now write `no_leaks`" in lesson06.no_leaks(None, RIGHT).text
    assert "now write `no_leaks`" in lesson06.no_leaks(lambda ws, app: None, RIGHT).text
    nothing = lesson06.no_leaks(does_nothing, RIGHT)
    assert not nothing.passed
    assert nothing.text.endswith("without the leaks: it subscribes 0 of the 60 clients.")
    half = lesson06.no_leaks(half_fixed, RIGHT)
    assert half.text.startswith("your prediction is right; your handler leaves 60 task still held")


def test_a_run_that_fails_is_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the server could not start")

    monkeypatch.setattr(lesson06, "run_crowd", broken)
    feedback = lesson06.no_leaks(fixed, RIGHT)
    assert (
        feedback.text == "running your handler failed: RuntimeError('the server could not start')"
    )
    assert lesson06.idle_close(fixed).text.startswith("running your handler failed")


# ---------------------------------------------------------------- exercise 2


def run_ending_at(seconds: float) -> tuple[Trace, Ledger]:
    """A run whose last resource is released at ``seconds``, as a deploy's is."""

    async def handler_saving_state(ledger: Ledger) -> None:
        with ledger.acquire("db session"):
            await asyncio.sleep(seconds)

    with Simulation(seed=0) as sim:
        ledger = Ledger(sim)
        sim.host("server").spawn(handler_saving_state(ledger))
        trace = sim.run(until=seconds + 1)
    return trace, ledger


def test_longer_grace_compares_the_prediction_with_the_deploy() -> None:
    longer = run_ending_at(30.2)
    feedback = lesson06.longer_grace(longer, 30.2)
    assert feedback.passed
    assert feedback.text.startswith("the server is closed at 30.2 s: websockets' close_timeout")
    assert lesson06.longer_grace(longer, 30.21).passed

    def hint(prediction: object) -> str:
        result = lesson06.longer_grace(longer, prediction)
        assert not result.passed and "30.2" not in result.text
        return result.text

    assert hint(None) == "write your prediction, in seconds, in `server_closed_at`."
    assert hint("30.2") == "write your prediction, in seconds, in `server_closed_at`."
    assert "(leak 5)" in hint(35.2)
    assert "(leak 5)" in hint(35)
    assert hint(30).startswith("almost: when their connections are closed")
    assert hint(25.2).startswith("the deploy starts at t = 20 s")


def test_longer_grace_wants_the_run_asked_for() -> None:
    assert "not the run asked for" in lesson06.longer_grace(run_ending_at(25.2), 30.2).text
    assert "pass what deploy(grace=15) returned" in lesson06.longer_grace(None, 30.2).text
    trace, _ = run_ending_at(30.2)
    assert "pass what deploy(grace=15)" in lesson06.longer_grace((trace, None), 30.2).text


# ---------------------------------------------------------------- exercise 3


async def close_or_abort(websocket: Any, code: int, reason: str = "", within: float = 5) -> None:
    try:
        async with asyncio.timeout(within):
            await websocket.close(code, reason)
    except TimeoutError:
        websocket.transport.abort()


def idle_handler(*, timeout: float = 30, around_loop: bool = False, session: bool = True) -> Any:
    async def serve(websocket: Any) -> None:
        if around_loop:
            async with asyncio.timeout(timeout):
                async for message in websocket:
                    await websocket.send(f"you said {message}")
            return
        while True:
            async with asyncio.timeout(timeout):
                message = await websocket.recv()
            await websocket.send(f"you said {message}")

    async def handler(websocket: Any, app: lesson06.App) -> None:
        try:
            if session:
                with app.ledger.acquire("db session", owner=resources.conn_id(websocket)):
                    await serve(websocket)
            else:
                await serve(websocket)
        except TimeoutError:
            await close_or_abort(websocket, 1001, "idle")
        except websockets.ConnectionClosed:
            pass

    return handler


def test_idle_close_passes_a_handler_that_closes_silent_connections() -> None:
    feedback = lesson06.idle_close(idle_handler())
    assert feedback.passed, feedback.text
    assert feedback.text.startswith("every connection silent for 30 s is closed with 1001")


def test_idle_close_reports_what_is_wrong() -> None:
    async def starter(websocket: Any, app: lesson06.App) -> None:
        with app.ledger.acquire("db session", owner=resources.conn_id(websocket)):
            ...

    async def closes_at_once(websocket: Any, app: lesson06.App) -> None:
        with app.ledger.acquire("db session", owner=resources.conn_id(websocket)):
            await websocket.close(1001, "idle")

    async def leaks(websocket: Any, app: lesson06.App) -> None:
        app.ledger.acquire("db session", owner=resources.conn_id(websocket))
        try:
            while True:
                async with asyncio.timeout(30):
                    await websocket.recv()
        except TimeoutError:
            await websocket.close(1001, "idle")
        except websockets.ConnectionClosed:
            pass

    assert lesson06.idle_close(starter).text.startswith(
        "no connection was closed with 1001 (the server closed with 1000)"
    )
    assert lesson06.idle_close(closes_at_once).text.startswith(
        "your handler closed a connection after 0.00 s of silence"
    )
    around = lesson06.idle_close(idle_handler(around_loop=True)).text
    assert around.startswith("your handler closed a connection after 29.98 s of silence")
    assert "a timeout around each recv(), not around the loop" in around
    late = lesson06.idle_close(idle_handler(timeout=45)).text
    assert late.startswith("your handler let a connection stay silent for 45.00 s")
    assert lesson06.idle_close(idle_handler(session=False)).text.startswith(
        'hold a "db session" for each connection'
    )
    assert lesson06.idle_close(leaks).text.startswith(
        "your handler leaves 60 db session still held at the end"
    )
    assert "`async def` function" in lesson06.idle_close(None).text
