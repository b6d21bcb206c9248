"""Checks for lesson 06, releasing server resources: fix a leaky handler, predict a
deploy's end, and close idle connections with an application timeout.

The handler checks run the learner's handler under the lesson's crowd, on a fresh
simulation: 60 clients arrive in the first 30 s, say hello, and leave (with 1000), crash,
or vanish behind a cut network. This module holds its own copy of that scenario, the same
plan from the same seed; the tests check that it leaves what the lesson prints.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard, cast

import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Opcode

from wssim.core.hosts import Host
from wssim.course.exercises import Feedback, correct, not_yet, seconds_close
from wssim.simulation import Simulation
from wssim.toolkit import resources
from wssim.toolkit.resources import Ledger, Registry
from wssim.trace.events import Trace
from wssim.trace.lifecycle import endpoints

__all__ = [
    "App",
    "crowd",
    "idle_close",
    "leaky_leftovers",
    "longer_grace",
    "no_leaks",
    "run_crowd",
]

Handler = Callable[..., Awaitable[None]]

FATES = ("leaves", "crashes", "vanishes")
IDLE = 30.0
"""Seconds of silence after which exercise 3's handler closes a connection."""
DEPLOY_CLOSED_AT = 30.2
"""When the deploy of exercise 2 (``deploy(grace=15)``) is over: the lesson's number."""


@dataclass
class App:
    """What the lesson's server shares between its connections: its ledger, and the
    registry of subscribers to its news feed (the ``app`` a lesson handler receives)."""

    ledger: Ledger
    subscribers: Registry[Any] = field(init=False)

    def __post_init__(self) -> None:
        self.subscribers = self.ledger.registry("subscription")


def crowd(clients: int = 60, seed: int = 6) -> list[tuple[str, float, float, str]]:
    """The lesson's crowd: who arrives when, how long each stays, and how each goes."""
    rng = random.Random(seed)
    plan = []
    for i in range(clients):
        arrives = round(rng.uniform(0, 30), 2)
        stays = round(rng.uniform(5, 30), 2)
        fate = rng.choices(FATES, weights=(3, 1, 1))[0]
        plan.append((f"client{i:02d}", arrives, stays, fate))
    return plan


async def _feed(app: App) -> None:
    for n in range(1, 1_000_000):
        await asyncio.sleep(5)
        websockets.broadcast(app.subscribers, f"news {n}")


async def _server(app: App, handler: Handler, options: dict[str, Any]) -> None:
    bound = functools.partial(handler, app=app)
    async with (
        serve(bound, "server", 8765, compression=None, **options) as ws_server,
        asyncio.TaskGroup() as tasks,
    ):
        tasks.create_task(_feed(app))
        tasks.create_task(ws_server.serve_forever())


async def _visitor(stays: float | None) -> None:
    async with connect("ws://server:8765", compression=None) as websocket:
        try:
            await websocket.send("hello")
            async with asyncio.timeout(stays):
                async for _message in websocket:
                    pass
        except TimeoutError:
            pass
        except websockets.ConnectionClosed:
            pass


def _arrive(host: Host, stays: float | None) -> None:
    host.spawn(_visitor(stays))


def run_crowd(handler: Handler, *, until: float = 150, **options: Any) -> tuple[Trace, Ledger]:
    """Run the lesson's crowd against a server with ``handler``, as the lesson's
    ``experiment`` does; return the trace and the server's ledger.

    Args:
        handler: a lesson handler, ``async def handler(websocket, app)``.
        until: when the run ends, in virtual seconds.
        **options: keyword arguments for websockets' ``serve()``.
    """
    with Simulation(seed=0) as sim:
        app = App(resources.Ledger(sim))
        sim.host("server").spawn(_server(app, handler, options))
        for name, arrives, stays, fate in crowd():
            host = sim.host(name)
            sim.at(arrives, _arrive, host, stays if fate == "leaves" else None)
            if fate == "crashes":
                sim.at(arrives + stays, host.crash)
            elif fate == "vanishes":
                sim.at(arrives + stays, sim.partition, name, "server")
        trace = sim.run(until=until)
    return trace, app.ledger


def _is_handler(handler: object) -> TypeGuard[Handler]:
    # A functools.partial of an `async def` function is fine too.
    return callable(handler) and inspect.iscoroutinefunction(getattr(handler, "func", handler))


def _run(handler: Handler, **options: Any) -> tuple[Trace, Ledger] | str:
    try:
        return run_crowd(handler, **options)
    except Exception as exc:  # the learner's code broke the run: a hint, not a traceback
        return f"running your handler failed: {exc!r}"


def _left(trace: Trace, ledger: Ledger) -> str | None:
    """What a run left behind, in words, or None."""
    held = {kind: n for kind, n in ledger.by_kind().items() if n}
    if held:
        kinds = ", ".join(f"{n} {kind}" for kind, n in held.items())
        return f"{kinds} still held at the end"
    still_open = resources.connections_open(trace).final
    if still_open:
        return f"{still_open} connection(s) still open at the end"
    return None


# ---------------------------------------------------------------- exercise 1


async def _keep_presence(user: str) -> None:
    while True:
        await asyncio.sleep(5)


async def _two_leaks(websocket: ServerConnection, app: App) -> None:
    # The exercise's handler, as the lesson gives it.
    user = resources.conn_id(websocket)
    app.subscribers.add(websocket, owner=user)
    app.ledger.track(asyncio.create_task(_keep_presence(user)), owner=user)
    async for message in websocket:
        await websocket.send("you said " + str(message))
    app.subscribers.discard(websocket)


@functools.cache
def leaky_leftovers() -> dict[str, int]:
    """What the exercise's ``two_leaks`` leaves under the crowd, by kind (measured)."""
    _, ledger = run_crowd(_two_leaks)
    return {kind: n for kind, n in ledger.by_kind().items() if n}


def _prediction(answer: object) -> dict[str, int] | str:
    if answer is None:
        return (
            "write your prediction first, in `predicted_left`: what is left at the end, as a "
            'dict of kind to count, such as {"db session": 3}.'
        )
    if not isinstance(answer, Mapping) or not all(isinstance(k, str) for k in answer):
        return f'`predicted_left` should be a dict such as {{"db session": 3}}, got {answer!r}.'
    counts = {}
    for kind, n in answer.items():
        if isinstance(n, bool) or not isinstance(n, int):
            return f"the count for {kind!r} should be a whole number, got {n!r}."
        if n:
            counts[kind] = n
    return counts


def no_leaks(handler: object, predicted_left: object) -> Feedback:
    """Exercise 1: predict what ``two_leaks`` leaves under the crowd, then fix it.

    Args:
        handler: the learner's fixed handler, ``async def no_leaks(websocket, app)``.
        predicted_left: the prediction, a dict of kind to count held at the end.
    """
    predicted = _prediction(predicted_left)
    if isinstance(predicted, str):
        return not_yet(predicted)
    measured = leaky_leftovers()
    if set(predicted) != set(measured):
        return not_yet(
            "those are not the kinds left at the end: look at what `two_leaks` acquires, "
            "and for each, at the paths on which it is never released."
        )
    for kind in sorted(measured):
        if predicted[kind] != measured[kind]:
            why = {
                "subscription": "which of the crowd's fates end the `async for` with an "
                "exception, and how many clients go that way?",
                "task": "does anything ever stop a presence task?",
            }.get(kind, "on which paths is it never released?")
            return not_yet(f"your count of {kind!r} is off: {why}")
    if not _is_handler(handler):
        return not_yet(
            "your prediction is right; now write `no_leaks`, an `async def` handler of "
            f"(websocket, app), and pass it to the check (got {handler!r})."
        )
    run = _run(handler)
    if isinstance(run, str):
        return not_yet(run)
    trace, ledger = run
    clients = len(crowd())
    for kind, what in (("subscription", "subscribes"), ("task", "starts a presence task for")):
        if ledger.acquired(kind) != clients:
            return not_yet(
                f"your prediction is right; now make `no_leaks` do what `two_leaks` does, "
                f"without the leaks: it {what} {ledger.acquired(kind)} of the {clients} clients."
            )
    left = _left(trace, ledger)
    if left is not None:
        return not_yet(
            f"your prediction is right; your handler leaves {left}. Release in a `finally`, "
            "and cancel the task there (in a task group)."
        )
    return correct(
        "the crash and the cut network skip the line after the loop, and nothing ever stops "
        "the presence task: your `no_leaks` releases both on every path."
    )


# ---------------------------------------------------------------- exercise 2


def longer_grace(run: object, server_closed_at: object) -> Feedback:
    """Exercise 2: when is the server closed with ``deploy(grace=15)``?

    Args:
        run: what ``deploy(grace=15)`` returned: its trace and its ledger.
        server_closed_at: the learner's prediction, in seconds.
    """
    if not (
        isinstance(run, tuple)
        and len(run) == 2
        and isinstance(run[0], Trace)
        and isinstance(run[1], Ledger)
    ):
        return not_yet("pass what deploy(grace=15) returned (`longer`), then your prediction.")
    measured = run[1].last_change
    if measured != DEPLOY_CLOSED_AT:
        return not_yet("this is not the run asked for: longer = deploy(grace=15).")
    close = seconds_close(server_closed_at, measured, tolerance=0.015)
    if close is None:
        return not_yet("write your prediction, in seconds, in `server_closed_at`.")
    if close:
        return correct(
            f"the server is closed at {measured:.1f} s: websockets' close_timeout (10 s) "
            "aborts the frozen clients at 30 s, before the 15 s bound, and the handlers save "
            "their state for 0.2 s."
        )
    answer = cast(float, server_closed_at)  # seconds_close said it is a number
    if abs(answer - 35.2) <= 0.25:
        return not_yet(
            "something ends the frozen clients' closing handshakes before your 15 s are up: "
            "what does websockets do when a peer does not answer its CLOSE (leak 5)?"
        )
    if abs(answer - 30) <= 0.05:
        return not_yet(
            "almost: when their connections are closed, the handlers still have work to do."
        )
    return not_yet(
        "the deploy starts at t = 20 s and the frozen clients never answer: which timeout "
        "ends their closing handshakes first, websockets' or ours?"
    )


# ---------------------------------------------------------------- exercise 3


def _silences(trace: Trace) -> dict[str, float]:
    """For each connection the server closed with 1001: seconds from the last message it
    received (or the connection's opening) to that CLOSE."""
    opened = {e.conn: e.opened_at for e in endpoints(trace) if e.side == "server"}
    last: dict[str, float] = {}
    silences: dict[str, float] = {}
    for event in trace.filter(kind="log", side="server"):
        frame = event.frame
        if frame is None:
            continue
        if not frame.sent and frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            last[event.conn] = event.time
        elif frame.opcode is Opcode.CLOSE and frame.sent and event.code == 1001:
            if event.conn in silences:
                continue  # the first CLOSE counts
            since = last.get(event.conn, opened.get(event.conn) or 0.0)
            silences[event.conn] = event.time - since
    return silences


def idle_close(handler: object) -> Feedback:
    """Exercise 3: close a connection with 1001 after 30 s without a message.

    Runs ``handler`` under the crowd with ``ping_interval=None``: every session must be
    released, and the vanished clients' connections closed with 1001, each after 30 s of
    silence and not before.

    Args:
        handler: the learner's handler, ``async def idle_timeout(websocket, app)``.
    """
    if not _is_handler(handler):
        return not_yet(
            f"pass your handler, an `async def` function of (websocket, app), got {handler!r}."
        )
    run = _run(handler, ping_interval=None)
    if isinstance(run, str):
        return not_yet(run)
    trace, ledger = run
    clients = len(crowd())
    if ledger.acquired("db session") != clients:
        return not_yet(
            'hold a "db session" for each connection while you serve it, as `with_finally` '
            "does: that is what must not leak."
        )
    silences = _silences(trace)
    vanished = sum(fate == "vanishes" for *_, fate in crowd())
    if not silences:
        codes = [
            e.code
            for e in trace.filter(kind="log", side="server")
            if e.frame is not None and e.frame.sent and e.frame.opcode is Opcode.CLOSE
        ]
        first = next((c for c in codes if c is not None), None)
        code = "" if first is None else f" (the server closed with {first})"
        return not_yet(
            f"no connection was closed with 1001{code}: after {IDLE:g} s without a message, "
            'close with 1001 ("going away").'
        )
    early = min(silences.values())
    if early < IDLE - 0.001:
        return not_yet(
            f"your handler closed a connection after {early:.2f} s of silence: wait for "
            f"{IDLE:g} s without a message (a timeout around each recv(), not around the loop)."
        )
    late = max(silences.values())
    if late > IDLE + 0.5:
        return not_yet(
            f"your handler let a connection stay silent for {late:.2f} s before closing it: "
            f"close after {IDLE:g} s without a message."
        )
    if len(silences) < vanished:
        return not_yet(
            f"only {len(silences)} connection(s) were closed for silence, and {vanished} "
            "clients vanished: every silent connection should be."
        )
    left = _left(trace, ledger)
    if left is not None:
        return not_yet(
            f"your handler leaves {left}: a vanished client never answers your CLOSE. Bound "
            "the closing (close_or_abort), and release the session in any case."
        )
    return correct(
        f"every connection silent for {IDLE:g} s is closed with 1001, and every session is "
        "released: no ping needed. A client that cares to stay sends heartbeats of its own."
    )
