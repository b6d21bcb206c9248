"""Why did this connection close? Run an experiment and read what each side saw.

An experiment here is one server and one client (hosts ``"server"`` and ``"client"``, 10 ms
apart, websockets' defaults unless a plan says otherwise), a few faults at known virtual
times, and a cause to blame. :func:`experiment` runs it; :func:`diagnose` reads its trace
and answers the three questions of lesson 02 for each side: what did it see (exception and
close code), when did it know, and what should its code do. Everything measured comes from
the trace, through :func:`wssim.trace.lifecycle.endpoints` and :meth:`wssim.Trace.filter`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake, ProtocolError
from websockets.frames import Close, Opcode

from wssim.core.params import seconds
from wssim.faults import Fault
from wssim.simulation import Simulation
from wssim.trace.events import MAX_DATA, Table, Trace, microseconds
from wssim.trace.lifecycle import endpoints

__all__ = [
    "CLIENT",
    "LESSONS",
    "PORT",
    "SERVER",
    "ClientPlan",
    "Delivery",
    "Diagnosis",
    "Injection",
    "Seen",
    "ServerPlan",
    "deliveries",
    "diagnose",
    "experiment",
    "seen",
    "summary",
]

CLIENT = "client"
"""The client's host."""
SERVER = "server"
"""The server's host."""
PORT = 8765
"""The server's port."""

LESSONS: dict[str, str] = {
    "03": "03 reconnecting",
    "04": "04 heartbeats",
    "05": "05 protocol errors",
    "06": "06 releasing server resources",
}
"""The lessons of the course that cover a remedy, by number."""


def _close_code(code: object, parameter: str) -> int:
    if isinstance(code, bool) or not isinstance(code, int):
        raise ValueError(f"{parameter} must be an integer close code, got {code!r}")
    try:
        Close(code, "").check()
    except ProtocolError:
        raise ValueError(
            f"{parameter} must be a close code allowed on the wire (1000-1003, 1007-1014 or "
            f"3000-4999), got {code!r}"
        ) from None
    return code


def _schedule(items: Sequence[tuple[float, str]], parameter: str) -> tuple[tuple[float, str], ...]:
    out = []
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], str)):
            raise ValueError(f"{parameter} must be (time, text) pairs, got {item!r}")
        out.append((seconds(item[0], f"{parameter} time"), item[1]))
    return tuple(sorted(out, key=lambda pair: pair[0]))


async def _sleep_until(t: float) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, t - loop.time()))


async def _drain(ws: ClientConnection | ServerConnection) -> None:
    """Receive until the connection closes; the trace records how it ended."""
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass


async def _send_then_close(
    ws: ClientConnection | ServerConnection,
    sends: Sequence[tuple[float, str]],
    close_at: float | None,
    code: int,
    reason: str,
) -> None:
    try:
        for t, message in sends:
            await _sleep_until(t)
            await ws.send(message)
        if close_at is not None:
            await _sleep_until(close_at)
            await ws.close(code, reason)
    except ConnectionClosed:
        pass  # closed under our feet: the trace says how


async def _converse(
    ws: ClientConnection | ServerConnection,
    sends: Sequence[tuple[float, str]],
    close_at: float | None,
    code: int,
    reason: str,
) -> None:
    # Listen all along, so that pings are answered and the close is seen as it comes.
    talking = asyncio.create_task(_send_then_close(ws, sends, close_at, code, reason))
    try:
        await _drain(ws)
    finally:
        talking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await talking


@dataclass(frozen=True)
class ClientPlan:
    """What the client does: connect, send, maybe close; listen all along.

    Attributes:
        connect_at: when to connect, in virtual seconds.
        sends: ``(virtual time, text)`` messages to send.
        close_at: when to close the connection (None: never).
        close_code: the code to close with (1001: a browser tab closed).
        close_reason: the reason to close with.
        options: keyword arguments for ``websockets.asyncio.client.connect``
            (``{"ping_interval": None}`` turns keepalive off).

    A refused or failed handshake ends the client quietly: the trace records it.
    """

    connect_at: float = 0.0
    sends: Sequence[tuple[float, str]] = ()
    close_at: float | None = None
    close_code: int = 1000
    close_reason: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seconds(self.connect_at, "connect_at")
        object.__setattr__(self, "sends", _schedule(self.sends, "sends"))
        if self.close_at is not None:
            seconds(self.close_at, "close_at")
        _close_code(self.close_code, "close_code")

    async def run(self) -> None:
        """The client's process."""
        await _sleep_until(self.connect_at)
        try:
            async with connect(f"ws://{SERVER}:{PORT}", **self.options) as ws:
                await _converse(ws, self.sends, self.close_at, self.close_code, self.close_reason)
        except (InvalidHandshake, OSError, TimeoutError):
            pass  # the trace has the failed handshake


@dataclass(frozen=True)
class ServerPlan:
    """What the server does: serve every connection, push, maybe close or shut down.

    Attributes:
        pushes: ``(virtual time, text)`` messages to send to each connection.
        close_at: when to close each connection (None: never), with ``close_code`` and
            ``close_reason`` (1013: shedding load).
        shutdown_at: when to shut the whole server down with ``Server.close()`` (None:
            never), with ``shutdown_code`` (1001 by default, 1012 for a restart) and
            ``shutdown_reason``.
        options: keyword arguments for ``websockets.asyncio.server.serve``
            (``process_request=``, ``ping_interval=``...).
    """

    pushes: Sequence[tuple[float, str]] = ()
    close_at: float | None = None
    close_code: int = 1000
    close_reason: str = ""
    shutdown_at: float | None = None
    shutdown_code: int = 1001
    shutdown_reason: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pushes", _schedule(self.pushes, "pushes"))
        for name in ("close_at", "shutdown_at"):
            value = getattr(self, name)
            if value is not None:
                seconds(value, name)
        _close_code(self.close_code, "close_code")
        _close_code(self.shutdown_code, "shutdown_code")

    async def handler(self, ws: ServerConnection) -> None:
        """Each connection's handler."""
        await _converse(ws, self.pushes, self.close_at, self.close_code, self.close_reason)

    async def run(self) -> None:
        """The server's process."""
        async with serve(self.handler, SERVER, PORT, **self.options) as server:
            if self.shutdown_at is None:
                await server.serve_forever()
            else:
                await _sleep_until(self.shutdown_at)
                server.close(code=self.shutdown_code, reason=self.shutdown_reason)
                await server.wait_closed()


class Injection(NamedTuple):
    """A fault and when it happens, as :meth:`wssim.Simulation.inject` takes them."""

    fault: Fault
    at: float
    duration: float | None = None


@dataclass(frozen=True, slots=True)
class Seen:
    """What one side saw, measured from the trace.

    Attributes:
        side: ``"client"`` or ``"server"``.
        saw: in a few words: the exception websockets raised (``ConnectionClosedError``,
            ``InvalidStatus``), ``"HTTP 503 sent"`` for a server that refused the handshake,
            ``"nothing"`` if its connection was still open at the end, or what killed it
            (``"crashed"``, ``"lost power"``): dead code sees nothing.
        code: the close code websockets reported, or None (no connection, or dead).
        detail: the trace's account: the exception's message, or what ended it.
        at: when this side knew, in virtual seconds; None if it never did (still open,
            or dead).
        after: ``at`` minus the time of the cause; None with ``at``.
    """

    side: str
    saw: str
    code: int | None
    detail: str
    at: float | None
    after: float | None

    @property
    def sees(self) -> str:
        """``saw`` with the close code: ``"ConnectionClosedError 1006"``."""
        return self.saw if self.code is None else f"{self.saw} {self.code}"

    @property
    def knows(self) -> str:
        """When it knew, relative to the cause: ``"49.04 s"``, ``"never"``, ``"(dead)"``."""
        if self.after is not None:
            return f"{self.after:.2f} s"
        return "never" if self.saw == "nothing" else "(dead)"


def seen(trace: Trace, side: str, cause_at: float = 0.0, *, client: str = CLIENT) -> Seen:
    """What ``side`` saw of the first connection from host ``client`` in ``trace``, and when.

    Args:
        trace: the experiment's trace.
        side: ``"client"`` or ``"server"``.
        cause_at: when the cause happened; ``after`` is measured from it.
        client: the host whose connection is diagnosed (other clients are the crowd).

    Raises:
        ValueError: if ``side`` is neither ``"client"`` nor ``"server"``.
    """
    if side not in ("client", "server"):
        raise ValueError(f"side must be 'client' or 'server', got {side!r}")
    end = next(
        (
            e
            for e in endpoints(trace)
            if e.side == side and (e.host if side == "client" else e.peer) == client
        ),
        None,
    )
    if end is None:
        return Seen(side, "nothing", None, "no connection", None, None)
    if end.closed_at is None:
        return Seen(side, "nothing", None, f"still {end.state.name} at the end", None, None)
    ended_by = end.ended_by
    killed = None if ended_by is None else ended_by.fault
    if end.close_code is None and killed is not None and killed.fault.kills:
        # Its process died with its host: dead code sees nothing. The fault names it.
        return Seen(side, killed.fault.label, None, end.close_text, None, None)
    at, code = end.closed_at, end.close_code
    raised = trace.first(kind="closed", conn=end.conn, side=side)
    if raised is not None:
        # The application knows when its exception is raised: later than the socket
        # closed when its process was frozen at that moment.
        at = raised.time
    if end.opened_at is None and side == "server":
        # The server answered the handshake with an HTTP error: the handler never ran.
        response = trace.first(kind="http", conn=end.conn, side="server")
        if response is not None and response.code is not None and response.code != 101:
            t = response.time
            saw = f"HTTP {response.code} sent"
            return Seen(side, saw, None, response.text, t, microseconds(t - cause_at))
    closed = None if ended_by is None else ended_by.closed
    if closed is None:
        # A TCP failure before websockets had a connection: "connection refused".
        saw, detail = end.close_text, ""
    else:
        # The exception, and its message.
        saw, detail = closed.exception, closed.message
        if closed.status is not None and end.opened_at is None:
            saw = f"{saw} (HTTP {closed.status})"
    return Seen(side, saw, code, detail, at, microseconds(at - cause_at))


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message on its way: who sent it, when, and when the other side received it.

    Attributes:
        text: the message; one too large for the trace to keep (over
            :data:`wssim.trace.MAX_DATA` bytes) is named by its size: ``<1048577 bytes>``.
        sender: ``"client"`` or ``"server"``.
        sent_at: when the sender's websockets wrote it.
        received_at: when the other side's websockets read it, or None: never.
    """

    text: str
    sender: str
    sent_at: float
    received_at: float | None

    @property
    def delay(self) -> float | None:
        """``received_at - sent_at``, or None if it never arrived."""
        return None if self.received_at is None else microseconds(self.received_at - self.sent_at)


def deliveries(trace: Trace) -> list[Delivery]:
    """Every text message of ``trace``, read from each side's log, in the order sent.

    A message is matched with the first unmatched message of the same text that the other
    side received: keep texts distinct to follow each one. Text messages that are not
    valid UTF-8 (websockets fails the connection on them) are left out.
    """
    sent: list[tuple[str, str, float]] = []
    received: dict[tuple[str, str], list[float]] = {}
    for event in trace.filter(kind="log"):
        frame = event.frame
        if frame is None or frame.opcode is not Opcode.TEXT:
            continue
        text = frame.data
        if text is None:
            if frame.size <= MAX_DATA:
                continue  # kept unless invalid: a sender's own text is always valid
            text = f"<{frame.size} bytes>"
        if frame.sent:
            sent.append((text, event.side, event.time))
        else:
            received.setdefault((text, event.side), []).append(event.time)
    out = []
    for text, sender, t in sent:
        other = "server" if sender == "client" else "client"
        times = received.get((text, other), [])
        out.append(Delivery(text, sender, t, times.pop(0) if times else None))
    return out


@dataclass(frozen=True)
class Diagnosis:
    """One cause of a closed connection, and what each side made of it.

    Attributes:
        cause: what happened, for people (``"network partition"``).
        cause_at: when it happened, in virtual seconds; times to detect are measured from it.
        trace: the experiment's trace.
        client: what the client saw, and when.
        server: what the server saw, and when.
        messages: every text message, when it was sent and received.
        remedy: what the code should do, in a few words (for tables).
        advice: what the code should do, in a sentence or two.
        lessons: the numbers of the lessons that cover the remedy (see :data:`LESSONS`).
        absent: if the cause never happened in this run, why not, for people (``"the flow
            was never forgotten"``); empty if it happened. The report then says so instead of
            giving ``cause_at``, which only remains the origin of the times to detect.
    """

    cause: str
    cause_at: float
    trace: Trace
    client: Seen
    server: Seen
    messages: tuple[Delivery, ...] = ()
    remedy: str = ""
    advice: str = ""
    lessons: tuple[str, ...] = ()
    absent: str = ""

    def side(self, name: str) -> Seen:
        """``client`` or ``server``, by name."""
        if name not in ("client", "server"):
            raise ValueError(f"name must be 'client' or 'server', got {name!r}")
        return self.client if name == "client" else self.server

    @property
    def lesson(self) -> str:
        """The lessons that cover the remedy, by name: ``"04 heartbeats, 03 reconnecting"``."""
        return ", ".join(LESSONS[n] for n in self.lessons)

    def report(self) -> str:
        """The answers to the three questions, as text (the third if a remedy was given)."""
        when = self.absent or f"at t={self.cause_at:.3f} s"
        lines = [f"{self.cause} ({when})", "1. What does each side see?"]
        for s in (self.client, self.server):
            lines.append(f"   {s.side:<6}  {s.sees}: {s.detail}")
        lines.append("2. After how long does each side know?")
        for s in (self.client, self.server):
            if s.at is not None:
                lines.append(f"   {s.side:<6}  at t={s.at:.3f} s: {s.knows} after the cause")
            elif s.saw == "nothing":
                lines.append(f"   {s.side:<6}  never: {s.detail}")
            else:
                lines.append(f"   {s.side:<6}  never: it is dead ({s.saw})")
        if self.advice or self.remedy:
            lines.append("3. What should the code do?")
            lines.append(f"   {self.advice or self.remedy}")
        if self.lessons:
            lines.append(f"   (lesson {self.lesson})")
        return "\n".join(lines)


def diagnose(
    trace: Trace,
    cause: str,
    *,
    cause_at: float = 0.0,
    remedy: str = "",
    advice: str = "",
    lessons: Iterable[str] = (),
    absent: str = "",
) -> Diagnosis:
    """Read what each side of the connection from host ``client`` saw of ``cause``.

    ``absent`` says why the cause never happened in this run, if it did not (see
    :class:`Diagnosis`).

    Raises:
        ValueError: if a lesson number is not in :data:`LESSONS`.
    """
    lessons = tuple(lessons)
    for n in lessons:
        if n not in LESSONS:
            raise ValueError(f"lessons must be among {', '.join(LESSONS)}, got {n!r}")
    cause_at = seconds(cause_at, "cause_at")
    return Diagnosis(
        cause=cause,
        cause_at=cause_at,
        trace=trace,
        client=seen(trace, "client", cause_at),
        server=seen(trace, "server", cause_at),
        messages=tuple(deliveries(trace)),
        remedy=remedy,
        advice=advice,
        lessons=lessons,
        absent=absent,
    )


def experiment(
    cause: str,
    *,
    client: ClientPlan | None = None,
    server: ServerPlan | None = None,
    faults: Iterable[Injection | tuple[Fault, float] | tuple[Fault, float, float | None]] = (),
    crowd: int = 0,
    calls: Iterable[tuple[float, Callable[[], object]]] = (),
    cause_at: float = 0.0,
    until: float = 120.0,
    remedy: str = "",
    advice: str = "",
    lessons: Iterable[str] = (),
    seed: int = 0,
    latency: float = 0.010,
) -> Diagnosis:
    """Run one server and one client with ``faults`` until ``until``, and diagnose it.

    The server is a service of its host: if a fault crashes the host for a while, it
    starts again when the host restarts.

    Args:
        cause: what to blame, for people.
        client: what the client does (default: connect and listen).
        server: what the server does (default: serve and listen).
        faults: ``Injection(fault, at, duration)`` or plain tuples.
        crowd: other clients, on hosts ``crowd1``, ``crowd2``..., that connect at t=0 and
            stay; only the connection of host ``client`` is diagnosed.
        calls: ``(virtual time, function)``: call ``function()`` then (for example
            ``admission.shed`` with its arguments bound).
        cause_at: when the cause happens; times to detect are measured from it.
        until: how long to run, in virtual seconds.
        remedy, advice, lessons: what the code should do (see :class:`Diagnosis`).
        seed: the simulation's seed.
        latency: one-way latency between client and server, in seconds.

    Raises:
        ValueError: for bad parameters, including ``until`` before ``cause_at``.
    """
    client = ClientPlan() if client is None else client
    server = ServerPlan() if server is None else server
    until = seconds(until, "until")
    if until < seconds(cause_at, "cause_at"):
        raise ValueError(f"until must be >= cause_at ({cause_at:g} s), got {until!r}")
    if isinstance(crowd, bool) or not isinstance(crowd, int) or crowd < 0:
        raise ValueError(f"crowd must be an integer >= 0, got {crowd!r}")
    injections = [Injection(*f) for f in faults]
    timed = [(seconds(t, "calls time"), fn) for t, fn in calls]
    with Simulation(seed=seed, latency=latency) as sim:
        sim.host(SERVER).service(server.run)
        for i in range(1, crowd + 1):
            sim.host(f"crowd{i}").spawn(ClientPlan().run())
        sim.host(CLIENT).spawn(client.run())
        for injection in injections:
            sim.inject(injection.fault, at=injection.at, duration=injection.duration)
        for t, fn in timed:
            sim.at(t, fn)
        trace = sim.run(until=until)
    return diagnose(trace, cause, cause_at=cause_at, remedy=remedy, advice=advice, lessons=lessons)


def summary(diagnoses: Iterable[Diagnosis]) -> Table:
    """One row per diagnosis: cause, what each side sees, when it knows, remedy, lesson."""
    rows = [
        (
            d.cause,
            d.client.sees,
            d.server.sees,
            d.client.knows,
            d.server.knows,
            d.remedy,
            ", ".join(d.lessons),
        )
        for d in diagnoses
    ]
    return Table(
        (
            "cause",
            "client sees",
            "server sees",
            "client knows",
            "server knows",
            "remedy",
            "lesson",
        ),
        rows,
        right=(3, 4),
    )
