"""Checks for lesson 07, the capstone: a resilient client and server under chaos.

:func:`resilient` runs the learner's client class and handler under a smaller chaos run
than the lesson's (40 clients, two minutes of faults: a few seconds of wall time) and
answers with the scorecard, and a hint for each line that fails. :func:`without_heartbeats`
checks the learner's reading of a run without heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from wssim.course import capstone
from wssim.course.exercises import Feedback, correct, not_yet
from wssim.lab.scorecard import MessageLog, Scorecard, Targets
from wssim.simulation import Simulation
from wssim.toolkit.resources import Ledger
from wssim.world import ProcessFailed

__all__ = [
    "CLIENTS",
    "SEED",
    "TARGETS",
    "hints",
    "lesson_run",
    "resilient",
    "stores_twice",
    "without_heartbeats",
]

CLIENTS = 200
SEED = 1
TARGETS: Targets = capstone.TARGETS
"""The lesson's scale, schedule and targets: what ``capstone.run(Client, handler)`` runs."""


def lesson_run(
    client: type, handler: capstone.Handler, *, keep_trace: bool = False
) -> capstone.Run:
    """The run the lesson grades: ``capstone.run(client, handler)`` (200 clients, seed 1)."""
    return capstone.run(
        client, handler, clients=CLIENTS, seed=SEED, targets=TARGETS, keep_trace=keep_trace
    )


def _graded(run: capstone.Run) -> bool:
    """True if ``run`` is the lesson's full-scale run, with the lesson's targets."""
    wanted = {
        "peak reconnect rate": f"<= {TARGETS.attempts_per_second:,}/s",
        "worst time disconnected": f"<= {TARGETS.disconnected:g} s",
    }
    return (
        len(run.clients) == CLIENTS
        and run.schedule.seed == SEED
        and all(wanted.get(line.name, line.target) == line.target for line in run.scorecard.lines)
    )


HINTS = {
    "events": (
        "{n:,} events never reached their user: on every new connection, subscribe with the "
        'id of the last event received ({{"type": "subscribe", "after": last_id}}), so the '
        "server sends the backlog first."
    ),
    "messages": (
        "{n:,} messages that users wrote never reached the server: keep each one in an "
        "outbox until the server acknowledges it, and send the outbox again after "
        "reconnecting."
    ),
    "write errors": (
        "write() raised {n:,} times: it is called whether connected or not; store the "
        "message and return, and let the connection send it."
    ),
    "messages duplicated": (
        "some messages arrived twice: the client must drop an event whose id it already has, "
        "and the server must not save a message id it stored before (app.stored(id)), but "
        "acknowledge it again."
    ),
    "messages reordered": (
        "some messages arrived out of order: send the outbox oldest first, from one place "
        "(one sender per connection), and never skip ahead of what is queued."
    ),
    "worst time disconnected": (
        "a user went {value:.0f} s without news: detect dead connections sooner "
        "(ping_interval and ping_timeout of connect) and keep the backoff's cap short."
    ),
    "peak reconnect rate": (
        "{value:.0f} connection attempts reached the server in one second: after a connection "
        "closes, wait a random delay before reconnecting (websockets' loop reconnects at "
        "once), and pass a jittered backoff as reconnect_delays."
    ),
    "resources left at the end": (
        "the server still held {value:.0f} resources after every client left: close the "
        "subscription in a finally clause, so it goes however the connection ends."
    ),
    "protocol errors survived": (
        "the handler failed on bad input: catch ConnectionClosed around the loop, validate "
        "each message (JSON, a known type, the fields it needs) and answer an error; close a "
        "binary message with 1003."
    ),
}
"""A hint for each line of the scorecard that can fail (and for lost messages, per flow)."""


def hints(run: capstone.Run) -> list[str]:
    """A hint for each failing line of ``run``'s scorecard, in the scorecard's order."""
    out = []
    card = run.scorecard
    for line in card.lines:
        if line.passed:
            continue
        if line.name == "messages lost":
            for flow in ("events", "messages"):
                streams = run.messages.streams
                lost = run.messages.counts(
                    s for s in streams if isinstance(s, tuple) and s[0] == flow
                )
                if lost.lost:
                    out.append(HINTS[flow].format(n=lost.lost))
            if run.write_errors:
                out.append(HINTS["write errors"].format(n=run.write_errors))
            continue
        out.append(HINTS[line.name].format(value=line.value))
    return out


def _shape(client: object, handler: object) -> str | None:
    if not inspect.isclass(client):
        return f"pass your client class itself (ResilientClient, not an instance), got {client!r}"
    for method in ("run", "write"):
        if not inspect.iscoroutinefunction(getattr(client, method, None)):
            return f"your client class needs an `async def {method}(self...)` method"
    if not inspect.iscoroutinefunction(handler):
        return f"pass your handler, an `async def handler(websocket, app)`, got {handler!r}"
    return None


def _report(card: Scorecard) -> str:
    return "\n" + str(card)


def resilient(answer: object, handler: object = None) -> Feedback:
    """Exercise 1: the resilient client and server, scored by the lesson's full-scale run.

    Args:
        answer: what ``capstone.run(ResilientClient, resilient_handler)`` returned; or the
            client class itself, with ``handler`` (then the check runs it: a few seconds).
        handler: the server's handler, when ``answer`` is the client class.
    """
    if isinstance(answer, capstone.Run):
        if not _graded(answer):
            return not_yet(
                "this is not the lesson's run: pass what capstone.run(ResilientClient, "
                "resilient_handler) returned, with its default clients, seed and targets."
            )
        run = answer
    else:
        wrong = _shape(answer, handler)
        if wrong is not None:
            return not_yet(wrong)
        try:
            run = lesson_run(answer, handler)  # type: ignore[arg-type]
        except ProcessFailed as exc:
            return not_yet(
                f"a client process failed: {exc.__cause__!r}. A client must survive whatever "
                "the server and the network do: catch ConnectionClosed, and check what you "
                "receive."
            )
    card = run.scorecard
    if card.passed and run.handler is not None and stores_twice(run.handler):
        return not_yet(
            "every line passes on this seed, but your handler saved a message twice when "
            "its client sent it twice (as a client does that lost the ack in a "
            "disconnection): ask app.stored(id) before app.save, and acknowledge either way."
        )
    if card.passed:
        return correct(
            "every line of the scorecard passes: nothing lost, duplicated or reordered, "
            "nobody out for long, no herd, no leak, no crash on bad input." + _report(card)
        )
    advice = "\n".join(f"- {hint}" for hint in hints(run))
    failed = len(card.failed)
    return not_yet(
        f"{failed} line{'s' if failed > 1 else ''} of the scorecard fail"
        f"{'' if failed > 1 else 's'}:{_report(card)}\n{advice}"
    )


PROBE_ID = "probe-1"


def stores_twice(handler: capstone.Handler) -> bool:
    """Send one message twice to ``handler``, as a client that lost the first ack does:
    True if the handler saves it twice.

    The lesson's run may never resend a message that was already stored (whether it does
    depends on when the faults strike), so the check asks the question directly.
    """
    with Simulation(seed=0) as sim:
        app = capstone.Backend(Ledger(sim), MessageLog())

        async def server() -> None:
            async def bound(websocket: ServerConnection) -> None:
                await handler(websocket, app)

            async with serve(bound, "server", 8765, compression=None) as running:
                await running.serve_forever()

        async def client() -> None:
            message = {"type": "send", "id": PROBE_ID, "text": "the same message, twice"}
            async with connect(capstone.URI, compression=None) as websocket:
                for _ in range(2):
                    await websocket.send(json.dumps(message))
                    await asyncio.wait_for(websocket.recv(), 5)  # the ack

        sim.host("server").spawn(server())
        sim.host("client").spawn(client())
        # A handler that never acks fails the scorecard; here only the saves count.
        with contextlib.suppress(ProcessFailed):
            sim.run(until=10)
        saved: list[dict[str, Any]] = app.saved
    return sum(1 for m in saved if m.get("id") == PROBE_ID) > 1


def without_heartbeats(run: object, failing: object) -> Feedback:
    """Exercise 2: the full-scale run without heartbeats, and the lines it fails."""
    if not isinstance(run, capstone.Run):
        return not_yet("pass the run itself: what capstone.run(...) returned.")
    if not _graded(run):
        return not_yet("run the lesson's full-scale experiment: capstone.run(Client, handler).")
    failed = run.scorecard.failed
    if "worst time disconnected" not in failed:
        return not_yet(
            "this run still notices dead connections in time: turn the heartbeats off "
            "(pass ping_interval=None to connect())."
        )
    if isinstance(failing, str) or not isinstance(failing, list | tuple | set):
        return not_yet('answer with a list of line names, such as ["messages lost"].')
    if set(failing) != set(failed):
        return not_yet(
            "compare your list with the lines marked FAIL in the scorecard of your run, "
            "and write their names as the first column shows them."
        )
    return correct(
        "without heartbeats, a client on a half-open connection never finds out: during the "
        "power loss the server vanished without a FIN, and a client that sent nothing kept "
        "waiting; behind a proxy that forgets idle flows, the flow was forgotten after 60 s "
        "of that silence, and from then on nothing the client sent could reach anyone. Those "
        "users got no news until the events stopped at t = 270 s, 30 s before they left, and "
        "what they wrote stayed unacknowledged."
    )
