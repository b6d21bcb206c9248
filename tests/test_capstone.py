"""The capstone: its backend, and the naive and resilient applications under chaos."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from wssim import Simulation
from wssim.course import capstone
from wssim.course.capstone_examples import (
    NaiveClient,
    ResilientClient,
    naive_handler,
    problem,
    resilient_handler,
)
from wssim.lab.scorecard import MessageLog, Targets
from wssim.toolkit.resources import Ledger

# 40 clients, two minutes of chaos: 75 events to each client, 6 messages from each.
SENT = 40 * 75 + 40 * 6


def small_run(client: type, handler: capstone.Handler) -> capstone.Run:
    """A smaller run than the lesson's (a second or two): 40 clients, two minutes of chaos."""
    return capstone.run(
        client,
        handler,
        clients=40,
        seed=7,
        chaos_window=(20.0, 140.0),
        leave_at=200.0,
        targets=Targets(disconnected=60.0, attempts_per_second=20),
    )


@pytest.fixture(scope="module")
def resilient_run() -> capstone.Run:
    return small_run(ResilientClient, resilient_handler)


@pytest.fixture(scope="module")
def naive_run() -> capstone.Run:
    return small_run(NaiveClient, naive_handler)


def test_the_resilient_application_scores_perfectly(resilient_run: capstone.Run) -> None:
    card = resilient_run.scorecard
    assert card.passed, str(card)
    assert card["messages lost"].measured == f"0 of {SENT:,}"
    assert card["protocol errors survived"].measured == "12 of 12"
    assert resilient_run.write_errors == 0
    # The server released every subscription it ever took.
    assert resilient_run.ledger.acquired("subscription") > 40
    assert resilient_run.ledger.outstanding() == []


def test_the_naive_application_fails_the_lines_the_lesson_explains(
    naive_run: capstone.Run,
) -> None:
    card = naive_run.scorecard
    assert card.failed == [
        "messages lost",
        "peak reconnect rate",
        "resources left at the end",
        "protocol errors survived",
    ]
    counts = naive_run.messages.counts()
    assert (counts.sent, counts.duplicated, counts.reordered) == (SENT, 0, 0)
    assert counts.lost > 0
    # Every subscription taken since the server's last restart leaked: 40 clients, 40.
    assert card["resources left at the end"].detail == "subscription 40"
    # Its `async for` raises on every protocol error, json.loads on bad JSON...
    assert card["protocol errors survived"].value < 12
    assert naive_run.write_errors > 0


def test_a_run_is_deterministic(resilient_run: capstone.Run) -> None:
    again = small_run(ResilientClient, resilient_handler)
    assert again.scorecard == resilient_run.scorecard
    assert again.messages.counts() == resilient_run.messages.counts()


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"type": "subscribe", "after": 3}, None),
        ({"type": "subscribe", "after": None}, None),
        ({"type": "subscribe"}, None),
        ({"type": "send", "id": "a/1", "text": "hi"}, None),
        ([1, 2], "expected a JSON object"),
        ({"type": "subscribe", "after": "yesterday"}, "after must be an event id"),
        ({"type": "subscribe", "after": True}, "after must be an event id"),
        ({"type": "subscribe", "after": -1}, "after must be an event id"),
        ({"type": "send", "text": "hi"}, "a send needs a string id and a string text"),
        ({"type": "delete"}, "unknown message type 'delete'"),
        ({}, "unknown message type None"),
    ],
)
def test_the_protocol_is_validated(message: object, error: str | None) -> None:
    assert problem(message) == error


def test_a_subscription_pushes_the_backlog_then_new_events_until_closed() -> None:
    received: list[int] = []
    log = MessageLog()
    with Simulation(seed=0, latency=0.010) as sim:
        ledger = Ledger(sim)
        backend = capstone.Backend(ledger, log)

        async def handler(websocket: ServerConnection) -> None:
            with backend.subscribe(websocket, after=1):
                await asyncio.sleep(0.5)  # closed here: no event after this
            await websocket.wait_closed()

        async def server() -> None:
            async with serve(handler, "server", 8765) as srv:
                await srv.serve_forever()

        async def publisher() -> None:
            for _ in range(3):
                backend.publish("old")
            await asyncio.sleep(0.2)
            backend.publish("new")
            await asyncio.sleep(0.5)
            backend.publish("too late")

        async def client() -> None:
            async with connect("ws://server:8765") as websocket:
                async for raw in websocket:
                    received.append(json.loads(raw)["id"])

        sim.host("server").spawn(server())
        sim.host("publisher").spawn(publisher())
        sim.host("client").spawn(client())
        sim.run(until=2)
        assert received == [2, 3, 4]
        assert ledger.acquired("subscription") == 1 and ledger.outstanding() == []


def test_the_backend_refuses_what_it_cannot_use() -> None:
    log = MessageLog()
    with Simulation(seed=0) as sim:
        backend = capstone.Backend(Ledger(sim), log)
        errors: list[str] = []

        async def misuse() -> None:
            for call in (
                lambda: backend.subscribe(None, after="yesterday"),  # type: ignore[arg-type]
                lambda: backend.save({"text": "no id"}),
                lambda: capstone.User("u", log).deliver({"id": "1"}),
            ):
                try:
                    call()
                except ValueError as exc:
                    errors.append(str(exc))

        sim.host("server").spawn(misuse())
        sim.run()
    assert errors == [
        "after must be None or an event id (an integer >= 0), got 'yesterday'",
        "message must be a dict with a string id, got {'text': 'no id'}",
        "event must be a dict with an integer id, got {'id': '1'}",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"client": NaiveClient(None)}, "client must be a class"),
        ({"client": int}, "client must have an `async def run"),
        ({"handler": print}, "handler must be an `async def handler"),
        ({"clients": 0}, "clients must be an integer >= 1"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"chaos_window": (5, 100)}, "chaos_window must start at 10 s or later"),
        ({"leave_at": 250}, "leave_at must be at least 60 s after the chaos window ends"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"client": ResilientClient, "handler": resilient_handler}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        capstone.run(**arguments)  # type: ignore[arg-type]
