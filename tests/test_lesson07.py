"""The capstone's check: a pass with the scorecard, or the scorecard with a hint per line."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from wssim.course import capstone, capstone_examples
from wssim.course.capstone_examples import (
    NaiveClient,
    ResilientClient,
    naive_handler,
    resilient_handler,
)
from wssim.course.exercises import lesson07
from wssim.lab import chaos
from wssim.lab.scorecard import Line, Scorecard
from wssim.toolkit import backoff

# Exercise 1 is judged at the lesson's scale: the full-scale run (200 clients, seed 1).


@pytest.fixture(scope="module")
def reference() -> capstone.Run:
    return lesson07.lesson_run(ResilientClient, resilient_handler)


def test_the_reference_passes_with_its_scorecard(reference: capstone.Run) -> None:
    feedback = lesson07.resilient(reference)
    assert feedback.passed
    text = repr(feedback)
    assert text.startswith("✓ Correct: every line of the scorecard passes")
    assert "messages lost              0 of 26,200" in text
    assert "peak reconnect rate               34/s  <= 50/s" in text
    assert max(len(line) for line in text.splitlines()) <= 100


def test_the_reference_passes_on_another_seed_too() -> None:
    # The schedule of seed 2 has other faults at other times: the cures still hold.
    assert capstone.run(ResilientClient, resilient_handler, seed=2).scorecard.passed


def test_only_the_lesson_s_run_is_judged(reference: capstone.Run) -> None:
    for other in (
        replace(reference, clients=reference.clients[:40]),
        replace(reference, schedule=chaos.schedule(7, reference.clients)),
    ):
        feedback = lesson07.resilient(other)
        assert not feedback.passed and "not the lesson's run" in feedback.text


def test_the_naive_version_gets_a_hint_for_each_failing_line() -> None:
    feedback = lesson07.resilient(NaiveClient, naive_handler)
    assert not feedback.passed
    text = repr(feedback)
    assert text.startswith("✗ Not yet: 4 lines of the scorecard fail:")
    hints = [line for line in text.splitlines() if line.startswith("- ")]
    assert [hint[:24] for hint in hints] == [
        "- 4,200 events never rea",
        "- 199 messages that user",
        "- write() raised 71 time",
        "- 223 connection attempt",
        "- the server still held ",
        "- the handler failed on ",
    ]
    assert "subscribe with the id of the last event received" in feedback.text
    assert "close the subscription in a finally clause" in feedback.text
    assert max(len(line) for line in text.splitlines()) <= 100


def waiting(seconds: float) -> type:
    """The reference client, with a random wait of 0 to ``seconds`` after a connection
    closes (the reference waits 0-15 s)."""

    class Waiting(ResilientClient):  # type: ignore[misc]
        async def run(self) -> None:
            delays = backoff.full_jitter(base=5, cap=30)
            async for websocket in connect(
                capstone.URI,
                compression=None,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                reconnect_delays=delays,
            ):
                try:
                    await websocket.send(json.dumps({"type": "subscribe", "after": self.last_id}))
                    async with asyncio.TaskGroup() as tasks:
                        sender = tasks.create_task(self.send_outbox(websocket))
                        await self.receive(websocket)
                        sender.cancel()
                except ConnectionClosed:
                    pass
                await asyncio.sleep(random.uniform(0, seconds))

    return Waiting


async def leaky_handler(websocket: Any, app: Any) -> None:
    """Stores once and acknowledges, but trusts every message and has no finally clause."""
    subscription = None
    with contextlib.suppress(ConnectionClosed):
        async for raw in websocket:
            message = json.loads(raw)
            if message["type"] == "subscribe":
                subscription = app.subscribe(websocket, message.get("after"))
            elif message["type"] == "send":
                if not app.stored(message["id"]):
                    app.save(message)
                await websocket.send(json.dumps({"type": "ack", "id": message["id"]}))
    if subscription is not None and not websocket.close_code:
        subscription.close()


def test_a_short_wait_and_a_trusting_handler_fail_at_full_scale() -> None:
    # A 0-3 s wait passed the old 40-client check (at most 20/s) and failed the lesson's
    # 200 clients: the check now judges the lesson's run, so it fails here too.
    feedback = lesson07.resilient(waiting(3), leaky_handler)
    assert not feedback.passed
    hints = [line for line in repr(feedback).splitlines() if line.startswith("- ")]
    assert [hint.split(":")[0][:30] for hint in hints] == [
        "- 99 connection attempts reach",
        "- the server still held 201 re",
        "- the handler failed on bad in",
    ], hints


class Broken:
    def __init__(self, user: object) -> None:
        self.user = user

    async def write(self, message: object) -> None:
        pass

    async def run(self) -> None:
        raise RuntimeError("oops")


@pytest.mark.parametrize(
    ("client", "handler", "hint"),
    [
        (ResilientClient(None), resilient_handler, "pass your client class itself"),
        (dict, resilient_handler, "needs an `async def run(self...)` method"),
        (ResilientClient, print, "pass your handler"),
        (Broken, resilient_handler, "a client process failed: RuntimeError('oops')"),
    ],
)
def test_a_wrong_shape_or_a_crash_gets_a_hint(client: object, handler: object, hint: str) -> None:
    feedback = lesson07.resilient(client, handler)
    assert not feedback.passed
    assert hint in feedback.text


# The lesson shows the code of wssim.course.capstone_examples: the two must not drift apart.

LESSON = Path(__file__).resolve().parent.parent / "notebooks" / "07-capstone.ipynb"


def definitions(source: str) -> dict[str, str]:
    """Top-level classes and functions of ``source``, by name, as ASTs without their name."""
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            name, node.name = node.name, "_"
            found[name] = ast.dump(node)
    return found


def test_the_lesson_shows_the_code_that_is_tested() -> None:
    cells = json.loads(LESSON.read_text(encoding="utf-8"))["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    package = definitions(inspect.getsource(capstone_examples))
    naive = next(definitions(s) for s in sources if "class NaiveClient" in s)
    assert naive == {k: package[k] for k in ("NaiveClient", "naive_handler")}
    solution = next(
        c
        for c in cells
        if "solution" in c["metadata"].get("tags", [])
        and "class ResilientClient:" in "".join(c["source"])
    )
    assert definitions("".join(solution["source"])) == {
        k: package[k] for k in ("ResilientClient", "problem", "resilient_handler")
    }
    # The learner starts from the naive version, under the solution's names.
    starter = definitions(solution["metadata"]["wssim"]["starter"])
    assert starter == {
        "ResilientClient": package["NaiveClient"],
        "resilient_handler": package["naive_handler"],
    }


def test_the_run_without_heartbeats_is_read_from_its_own_scorecard(
    reference: capstone.Run,
) -> None:
    small = replace(reference, clients=reference.clients[:40])
    names = reference.clients
    lines = (
        Line("messages lost", 428, "428 of 26,200", "0", False),
        Line("worst time disconnected", 138.0, "138.0 s", "<= 60 s", False),
        Line("peak reconnect rate", 24, "24/s", "<= 50/s", True),
    )
    full = replace(
        small,
        clients=names,
        schedule=chaos.schedule(1, names),
        scorecard=Scorecard(lines),
    )
    failing = ["messages lost", "worst time disconnected"]
    assert lesson07.without_heartbeats(full, failing).passed
    assert lesson07.without_heartbeats(full, failing[::-1]).passed
    for answer, hint in [
        (["messages lost"], "compare your list with the lines marked FAIL"),
        ("messages lost", "answer with a list of line names"),
    ]:
        feedback = lesson07.without_heartbeats(full, answer)
        assert not feedback.passed and hint in feedback.text
    assert "pass the run itself" in lesson07.without_heartbeats(None, failing).text
    assert "full-scale experiment" in lesson07.without_heartbeats(small, failing).text
    healthy = replace(full, scorecard=Scorecard(lines[2:]))
    assert "turn the heartbeats off" in lesson07.without_heartbeats(healthy, failing).text


async def _saves_every_send(websocket: ServerConnection, app: capstone.Backend) -> None:
    """The reference handler, less its duplicate guard (a learner's plausible answer)."""
    async for raw in websocket:
        message = json.loads(raw)
        if message.get("type") == "send":
            app.save(message)
            await websocket.send(json.dumps({"type": "ack", "id": message["id"]}))


def test_a_handler_that_stores_a_resent_message_twice_is_caught(
    reference: capstone.Run,
) -> None:
    assert not lesson07.stores_twice(resilient_handler)
    assert lesson07.stores_twice(_saves_every_send)
    # Seed 1 happens to resend nothing already stored: the scorecard alone passes it.
    run = replace(reference, handler=_saves_every_send)
    feedback = lesson07.resilient(run)
    assert not feedback.passed
    assert "saved a message twice" in feedback.text
    assert lesson07.resilient(reference).passed
