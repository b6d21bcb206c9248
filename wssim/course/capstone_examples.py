# mypy: allow-untyped-defs, allow-untyped-calls, disable-error-code="union-attr"
"""The code of the capstone lesson: the naive starting point and the reference solution.

The lesson shows this code, and learners write their own version of it, so it is written
as they would: without type annotations (hence the relaxed mypy settings of this module;
the naive client's ``self.websocket`` may be None on purpose: that is one of its bugs).
A test checks that the lesson's cells and this module say the same thing.

- :class:`NaiveClient` and :func:`naive_handler`: the first version everyone writes:
  websockets' reconnecting loop and nothing more; a handler that trusts its input and
  cleans up only after a clean close.
- :class:`ResilientClient` and :func:`resilient_handler`: heartbeats, reconnecting with
  backoff and jitter, resuming from the last event received, an outbox of messages until
  they are acknowledged, duplicates dropped on both sides, validated input, and cleanup
  however the connection ends.

Run them with :func:`wssim.course.capstone.run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from wssim.course.capstone import URI
from wssim.toolkit import backoff

__all__ = ["NaiveClient", "ResilientClient", "naive_handler", "problem", "resilient_handler"]


# The naive starting point of the lesson


class NaiveClient:
    """The lesson's starting point: reconnects with websockets' loop, nothing more."""

    def __init__(self, user):
        self.user = user
        self.websocket = None

    async def write(self, message):
        await self.websocket.send(json.dumps(message))

    async def run(self):
        async for websocket in connect(URI, compression=None):
            self.websocket = websocket
            try:
                await websocket.send(json.dumps({"type": "subscribe"}))
                async for raw in websocket:
                    message = json.loads(raw)
                    if message["type"] == "event":
                        self.user.deliver(message)
            except ConnectionClosed:
                continue


async def naive_handler(websocket, app):
    """The lesson's starting point: trusts every message, cleans up only on a clean close."""
    subscription = None
    async for raw in websocket:
        message = json.loads(raw)
        if message["type"] == "subscribe":
            subscription = app.subscribe(websocket, message.get("after"))
        elif message["type"] == "send":
            app.save(message)
            await websocket.send(json.dumps({"type": "ack", "id": message["id"]}))
    if subscription is not None:
        subscription.close()


# The reference solution of the lesson


class ResilientClient:
    """The lesson's solution: heartbeats, jitter, resume, an outbox, no duplicates."""

    ping_interval = 10  # heartbeats: give up within 20 s; recv() raises within 30 s
    ping_timeout = 10

    def __init__(self, user):
        self.user = user
        self.last_id = 0  # the last event shown to the user: resume after it
        self.outbox = {}  # message id -> message, until the server acknowledges it
        self.written = asyncio.Event()  # set when the outbox has something new

    async def write(self, message):
        self.outbox[message["id"]] = message  # kept until acknowledged, connected or not
        self.written.set()

    async def run(self):
        delays = backoff.full_jitter(base=5, cap=30)  # after a failed attempt
        async for websocket in connect(
            URI,
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
            # Often every client lost the server at the same instant: wait a random while
            # before reconnecting, or they all come back in the same second.
            await asyncio.sleep(random.uniform(0, 15))

    async def receive(self, websocket):
        with contextlib.suppress(ConnectionClosed):
            async for raw in websocket:
                message = json.loads(raw)
                if message["type"] == "event" and message["id"] > self.last_id:
                    self.last_id = message["id"]  # anything at or before it is a duplicate
                    self.user.deliver(message)
                elif message["type"] == "ack":
                    self.outbox.pop(message["id"], None)

    async def send_outbox(self, websocket):
        sent = set()  # sent on this connection
        with contextlib.suppress(ConnectionClosed):
            while True:
                self.written.clear()
                for message_id, message in list(self.outbox.items()):  # oldest first
                    if message_id not in sent:
                        await websocket.send(json.dumps(message))
                        sent.add(message_id)
                await self.written.wait()


def problem(message):
    """What is wrong with a parsed message of the protocol, or None if nothing is."""
    if not isinstance(message, dict):
        return "expected a JSON object"
    kind = message.get("type")
    if kind == "subscribe":
        after = message.get("after")
        if after is not None and (type(after) is not int or after < 0):
            return "after must be an event id"
    elif kind == "send":
        if not isinstance(message.get("id"), str) or not isinstance(message.get("text"), str):
            return "a send needs a string id and a string text"
    else:
        return f"unknown message type {kind!r}"
    return None


async def resilient_handler(websocket, app):
    """The lesson's solution: validates everything, dedupes, always unsubscribes."""
    subscription = None
    try:
        async for raw in websocket:
            if isinstance(raw, bytes):
                await websocket.close(1003, "text messages only")
                break
            try:
                message = json.loads(raw)
            except ValueError:
                message = None
            error = problem(message)
            if error is not None:
                await websocket.send(json.dumps({"type": "error", "error": error}))
            elif message["type"] == "subscribe":
                if subscription is not None:
                    subscription.close()
                subscription = app.subscribe(websocket, message.get("after"))
            else:
                if not app.stored(message["id"]):  # sent again after a lost ack: store once
                    app.save(message)
                await websocket.send(json.dumps({"type": "ack", "id": message["id"]}))
    except ConnectionClosed:
        pass  # the client is gone or broke the protocol: nobody to answer
    finally:
        if subscription is not None:
            subscription.close()
