"""The capstone of the course: a client and a server that survive chaos, and a scorecard.

An application with two flows of messages, each with ids end to end:

- **events**: a publisher publishes an event every 2 s; the server pushes every event to
  every subscribed client, which shows it to its user (``user.deliver(event)``);
- **messages**: each user writes a few messages; the client sends them to the server,
  which stores them (``app.save(message)``) and acknowledges them.

The protocol is JSON text messages::

    client → server  {"type": "subscribe", "after": 41}        events after id 41
                     {"type": "send", "id": "client007/3", "text": "..."}
    server → client  {"type": "event", "id": 42, "text": "event 42"}
                     {"type": "ack", "id": "client007/3"}
                     {"type": "error", "error": "..."}          for a bad message

:func:`run` runs a client class and a connection handler under a chaos schedule
(:mod:`wssim.lab.chaos`) with hundreds of clients, then makes every client leave, and returns
the :class:`~wssim.lab.scorecard.Scorecard`. What a learner writes:

- a client class: ``Client(user)``, with ``async def run(self)`` (connect and stay
  connected; started once per client) and ``async def write(self, message)`` (called when
  the user writes ``message``, a dict ready to send, connected or not);
- a connection handler ``async def handler(websocket, app)``, where ``app`` is the
  :class:`Backend`: what outlives the server process (a database and a broker).

The lesson's naive starting point and its reference solution are in
:mod:`wssim.course.capstone_examples`, exactly as the lesson shows them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import random
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode

from wssim.core.hosts import Host
from wssim.course import protocolerrors
from wssim.lab import chaos
from wssim.lab.scorecard import MessageLog, Scorecard, Targets, score
from wssim.raw import RawFrame
from wssim.simulation import Simulation
from wssim.toolkit.admission import Admission
from wssim.toolkit.resources import Ledger, conn_id
from wssim.trace.events import Trace

__all__ = [
    "ADMISSION_RATE",
    "APPLICATION_ERRORS",
    "BAD_INPUTS",
    "TARGETS",
    "URI",
    "Backend",
    "Handler",
    "Run",
    "Subscription",
    "User",
    "run",
    "schedule",
]


def _text(name: str, payload: bytes, opcode: int = Opcode.TEXT) -> protocolerrors.Case:
    return protocolerrors.Case(
        name,
        (RawFrame(opcode, payload),),
        "10.7",
        "validate incoming data; answer or close with a code",
        "application",
    )


APPLICATION_ERRORS: tuple[protocolerrors.Case, ...] = (
    _text("invalid JSON", b'{"type": "send", "id": '),
    _text("JSON that is not an object", b"[1, 2, 3]"),
    _text("unknown message type", b'{"type": "delete", "id": "m1"}'),
    _text("a send without an id", b'{"type": "send", "text": "hello"}'),
    _text("subscribe after a bad id", b'{"type": "subscribe", "after": "yesterday"}'),
    _text("a binary message", b"\x00\x01\x02", Opcode.BINARY),
)
"""Well-formed WebSocket messages that the capstone's application protocol must refuse."""

BAD_INPUTS: tuple[protocolerrors.Case, ...] = (
    *(
        protocolerrors.case(name)
        for name in (
            "RSV1 set, no extension",
            "unmasked client frame",
            "invalid UTF-8 in a text message",
            "ping of 126 bytes",
            "continuation without a start",
            "header announcing 1 MiB + 1 byte, no payload",
        )
    ),
    *APPLICATION_ERRORS,
)
"""What the raw clients of a schedule send: six protocol errors of lesson 05's catalogue,
which websockets refuses itself, and the six :data:`APPLICATION_ERRORS`."""

URI = "ws://server:8765"
"""Where clients connect: the server's host and port."""

PORT = 8765
ADMISSION_RATE = 50
"""New connections the server admits per second (HTTP 503 past it): the peak reconnect
rate a client fleet must stay under."""
PUBLISH_EVERY = 2.0
"""Seconds between two events of the publisher."""
WRITES = 6
"""Messages each user writes during a run."""

TARGETS = Targets(disconnected=60.0, attempts_per_second=ADMISSION_RATE)
"""The lesson's targets: no client out for more than a minute, and no more reconnect
attempts per second than the server admits."""


class _Pusher(Protocol):
    async def send(self, message: str) -> None: ...


# What outlives the server process


class Subscription:
    """The events after some id, pushed to one connection by the :class:`Backend`.

    Like a subscription to a message broker, it lasts until it is closed, whatever happens
    to the connection: call :meth:`close` when the connection ends (or use ``with``). It is
    counted as one ``"subscription"`` in the backend's ledger while it lasts. A crash of
    the server process ends it too: the broker notices that its consumer died.
    """

    def __init__(self, backend: Backend, websocket: _Pusher, after: int) -> None:
        self._backend = backend
        self._websocket = websocket
        self.cursor = after
        """The id of the last event pushed."""
        self._hold = backend.ledger.acquire("subscription", owner=conn_id(websocket))
        # The pushing runs as part of the server process that subscribed: it stops when
        # that process freezes, and dies with it.
        self._task = asyncio.get_running_loop().create_task(self._push(), name="subscription")

    def __repr__(self) -> str:
        state = "open" if self.open else "closed"
        return f"<Subscription after {self.cursor} {state}>"

    @property
    def open(self) -> bool:
        """True until closed."""
        return self._hold.held

    def close(self) -> None:
        """Stop pushing events and release the subscription. Idempotent."""
        self._task.cancel()
        if self._hold.held:
            self._hold.release()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def _push(self) -> None:
        events = self._backend.events
        try:
            with contextlib.suppress(ConnectionClosed):
                while True:
                    waiting = self._backend.new_event
                    while self.cursor < len(events):
                        event = events[self.cursor]
                        await self._websocket.send(json.dumps(event))
                        self.cursor = event["id"]
                    await waiting.wait()
            # The connection is gone, but the subscription lasts until someone closes it.
            await asyncio.get_running_loop().create_future()
        finally:
            if self._hold.held:
                self._hold.release()


class Backend:
    """The ``app`` of the server's handler: a store and a broker, outside the server
    process, so that they survive its crashes.

    Args:
        ledger: where subscriptions are counted.
        messages: where deliveries are recorded, end to end.

    Attributes:
        events: every event published, in order (event ``n`` is ``events[n - 1]``).
        saved: every message saved, in order, duplicates included.
    """

    def __init__(self, ledger: Ledger, messages: MessageLog) -> None:
        self.ledger = ledger
        self.messages = messages
        self.events: list[dict[str, Any]] = []
        self.saved: list[dict[str, Any]] = []
        self.new_event = asyncio.Event()
        self.published_at = 0.0
        """When the last event was published."""
        self._stored: dict[str, None] = {}
        self._streams: dict[str, tuple[str, str]] = {}
        self._subscribers: list[str] = []

    def __repr__(self) -> str:
        return f"<Backend {len(self.events)} events, {len(self._stored)} messages stored>"

    @property
    def last_id(self) -> int:
        """The id of the last event published (0 before the first one)."""
        return len(self.events)

    def publish(self, text: str) -> dict[str, Any]:
        """Publish an event to every subscription (for the publisher). Returns the event."""
        event = {"type": "event", "id": len(self.events) + 1, "text": str(text)}
        self.events.append(event)
        self.published_at = asyncio.get_running_loop().time()
        for user in self._subscribers:
            self.messages.sent(("events", user), event["id"])
        self.new_event.set()
        self.new_event = asyncio.Event()
        return event

    def subscribe(self, websocket: ServerConnection, after: int | None = None) -> Subscription:
        """Push to ``websocket`` every event after id ``after``, then each new one.

        Args:
            websocket: the connection to push to.
            after: the last event id the client has: events after it are pushed, the
                backlog first, in order. None: only events published from now on.

        Raises:
            ValueError: if ``after`` is not None or an event id (an integer >= 0).
        """
        if after is not None and (
            isinstance(after, bool) or not isinstance(after, int) or after < 0
        ):
            raise ValueError(f"after must be None or an event id (an integer >= 0), got {after!r}")
        start = self.last_id if after is None else min(after, self.last_id)
        return Subscription(self, websocket, start)

    def stored(self, message_id: object) -> bool:
        """True if a message with this id was saved already."""
        return isinstance(message_id, str) and message_id in self._stored

    def save(self, message: dict[str, Any]) -> None:
        """Store ``message`` (a ``send`` message), even if its id was stored before.

        Raises:
            ValueError: if ``message`` is not a dict with a string ``id``.
        """
        if not isinstance(message, dict) or not isinstance(message.get("id"), str):
            raise ValueError(f"message must be a dict with a string id, got {message!r}")
        message_id = message["id"]
        self.saved.append(message)
        self._stored[message_id] = None
        stream = self._streams.get(message_id)
        if stream is not None:
            self.messages.delivered(stream, message_id)

    def _expect_user(self, user: str) -> None:
        self._subscribers.append(user)

    def _expect_message(self, user: str, message_id: str) -> None:
        self._streams[message_id] = ("messages", user)
        self.messages.sent(("messages", user), message_id)


class User:
    """The person behind one client: what the client shows them is recorded here.

    Attributes:
        name: the client's host name, also the prefix of its message ids.
        write_errors: how many times the client's ``write()`` raised: those messages
            were never taken.
    """

    def __init__(self, name: str, messages: MessageLog) -> None:
        self.name = name
        self._messages = messages
        self.write_errors = 0

    def __repr__(self) -> str:
        return f"<User {self.name}>"

    def deliver(self, event: dict[str, Any]) -> None:
        """Show ``event`` (a parsed event message) to the user.

        Raises:
            ValueError: if ``event`` is not a dict with an integer ``id``.
        """
        if not isinstance(event, dict) or not isinstance(event.get("id"), int):
            raise ValueError(f"event must be a dict with an integer id, got {event!r}")
        now = asyncio.get_running_loop().time()
        self._messages.delivered(("events", self.name), event["id"], at=now)


# Running it


Handler = Callable[[ServerConnection, Backend], Coroutine[Any, Any, None]]
"""A connection handler of the capstone: ``async def handler(websocket, app)``."""


@dataclass(frozen=True)
class Run:
    """What :func:`run` measured.

    Attributes:
        scorecard: the scorecard.
        schedule: the chaos schedule the run went through.
        messages: every message id, sent and delivered.
        ledger: the server's resources.
        bad_inputs: the bad inputs that reached the server.
        clients: the client hosts.
        write_errors: how many times a client's ``write()`` raised.
        trace: the trace, if the run kept it (``keep_trace=True``).
        handler: the server's handler that ran.
    """

    scorecard: Scorecard
    schedule: chaos.Schedule = field(repr=False)
    messages: MessageLog = field(repr=False)
    ledger: Ledger = field(repr=False)
    bad_inputs: tuple[chaos.Delivered, ...] = field(repr=False)
    clients: tuple[str, ...] = field(repr=False)
    write_errors: int
    trace: Trace | None = field(repr=False, compare=False)
    handler: Handler | None = field(default=None, repr=False, compare=False)


def _check_app(client: object, handler: object) -> None:
    if not inspect.isclass(client):
        raise ValueError(f"client must be a class (Client(user) with run() and write()), got "
                         f"{client!r}")  # fmt: skip
    for method in ("run", "write"):
        if not inspect.iscoroutinefunction(getattr(client, method, None)):
            raise ValueError(f"client must have an `async def {method}(self...)` method")
    if not inspect.iscoroutinefunction(handler):
        raise ValueError(f"handler must be an `async def handler(websocket, app)`, got {handler!r}")


def _positive_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


async def _server(handler: Handler, backend: Backend, admission: Admission) -> None:
    async def serve_one(websocket: ServerConnection) -> None:
        await handler(websocket, backend)

    async with serve(
        serve_one, "server", PORT, compression=None, process_request=admission
    ) as server:
        await server.serve_forever()


async def _publisher(backend: Backend, start: float, stop: float) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(start)
    while loop.time() + PUBLISH_EVERY <= stop:
        await asyncio.sleep(PUBLISH_EVERY)
        backend.publish(f"event {backend.last_id + 1}")


async def _typing(client: Any, user: User, message: dict[str, Any]) -> None:
    # The user writes: the application gets the message, whatever its state.
    try:
        await client.write(message)
    except Exception:
        user.write_errors += 1  # the application refused it: it will never be sent


def _start(host: Host, coro: Callable[[], Coroutine[Any, Any, Any]], name: str) -> None:
    host.spawn(coro(), name=name)


def schedule(
    seed: int,
    clients: Sequence[str],
    *,
    start: float = 20.0,
    end: float = 240.0,
    bad_inputs: int = 12,
) -> chaos.Schedule:
    """The chaos schedule of the capstone: :func:`wssim.lab.chaos.schedule` with twelve
    raw clients sending :data:`BAD_INPUTS`. :func:`run` goes through exactly this one."""
    return chaos.schedule(
        seed, clients, start=start, end=end, bad_inputs=bad_inputs, cases=BAD_INPUTS
    )


def run(
    client: type,
    handler: Handler,
    *,
    clients: int = 200,
    seed: int = 1,
    leave_at: float = 300.0,
    chaos_window: tuple[float, float] = (20.0, 240.0),
    bad_inputs: int = 12,
    targets: Targets = TARGETS,
    keep_trace: bool = False,
) -> Run:
    """Run ``clients`` clients of class ``client`` against a server with ``handler``, under
    a chaos schedule drawn from ``seed``, and score the run.

    The run: clients join in the first 10 s; from the start of ``chaos_window`` the
    publisher publishes an event every 2 s and each user writes 6 messages, until 30 s
    before ``leave_at``; the faults and the bad inputs of the schedule happen within
    ``chaos_window``; at ``leave_at`` every client host crashes (the users leave); 30 s
    later the run ends and the scorecard is read. Disconnections and reconnect attempts
    count from the start of the window to ``leave_at``.

    Args:
        client: the client class: ``client(user)`` with ``async def run(self)`` and
            ``async def write(self, message)``.
        handler: the server's connection handler, ``async def handler(websocket, app)``.
        clients: how many clients (each on a host of its own).
        seed: seeds the schedule, the users' writes and everything random in the run.
        leave_at: when the users leave; at least 60 s after the window.
        chaos_window: when faults happen, ``(start, end)``; the start is at least 10 s.
        bad_inputs: how many raw clients send bad input.
        targets: the targets of the scorecard.
        keep_trace: keep the trace in the result (it is large).

    Raises:
        ValueError: for a parameter out of its range, or a client or handler of the wrong
            shape (the message says which).
        ProcessFailed: if a client process raised (its exception is the ``__cause__``).
    """
    _check_app(client, handler)
    _positive_int(clients, "clients", 1)
    _positive_int(seed, "seed", 0)
    start, end = chaos_window
    if isinstance(start, bool) or not isinstance(start, int | float) or start < 10:
        raise ValueError(f"chaos_window must start at 10 s or later, got {chaos_window!r}")
    if isinstance(leave_at, bool) or not isinstance(leave_at, int | float) or leave_at < end + 60:
        raise ValueError(
            f"leave_at must be at least 60 s after the chaos window ends ({end!r}), "
            f"got {leave_at!r}"
        )
    names = tuple(f"client{i:03d}" for i in range(clients))
    plan = schedule(seed, names, start=start, end=end, bad_inputs=bad_inputs)
    messages = MessageLog()
    rng = random.Random(f"wssim.capstone/{seed}")
    with Simulation(seed=seed) as sim:
        ledger = Ledger(sim)
        backend = Backend(ledger, messages)
        admission = Admission(rate=ADMISSION_RATE)
        sim.host("server").service(_server, handler, backend, admission, name="server")
        sim.host("publisher").spawn(_publisher(backend, start, leave_at - 30), name="publisher")
        users = []
        for name in names:
            user = User(name, messages)
            users.append(user)
            backend._expect_user(name)
            app = client(user)
            host = sim.host(name)
            sim.at(round(rng.uniform(0, 10), 3), _start, host, app.run, name)
            times = sorted(round(rng.uniform(start, leave_at - 30), 3) for _ in range(WRITES))
            for n, at in enumerate(times, start=1):
                message = {"type": "send", "id": f"{name}/{n}", "text": f"hello {n}"}
                backend._expect_message(name, message["id"])
                sim.at(at, _write, host, app, user, message)
            sim.at(leave_at, host.crash)
        delivered = plan.apply(sim, port=PORT)
        trace = sim.run(until=leave_at + 30)
        card = score(
            messages,
            trace,
            ledger,
            clients=names,
            server="server",
            since=start,
            until=leave_at,
            news={name: ("events", name) for name in names},
            news_until=backend.published_at,
            bad_input_conns=[d.client.conn_id for d in delivered],
            targets=targets,
        )
    return Run(
        scorecard=card,
        schedule=plan,
        messages=messages,
        ledger=ledger,
        bad_inputs=tuple(delivered),
        clients=names,
        write_errors=sum(u.write_errors for u in users),
        trace=trace if keep_trace else None,
        handler=handler,
    )


def _write(host: Host, app: Any, user: User, message: dict[str, Any]) -> None:
    host.spawn(_typing(app, user, message), name=f"{host.name} writes")
