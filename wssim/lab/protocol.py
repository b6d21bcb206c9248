"""Protocol errors as experiments: send bytes a correct peer never would, see what
websockets does.

Each :class:`Case` says what to send (hand-built frames or bytes), the section of RFC 6455
that governs it and what that section requires. :func:`run` sends it, from a
:class:`~wssim.raw.RawClient` to a real websockets server (``side="server"``) or from a
:class:`~wssim.raw.RawServer` to a real websockets client (``side="client"``), on a fresh
simulation, and returns an :class:`Outcome`: the close code the library sent, its reason,
how and when TCP ended, and the library's own account. Same case, same outcome, to the
microsecond. Lesson 05's catalogue of cases is :mod:`wssim.course.protocolerrors`.

The raw side behaves like a plain, polite peer around the bytes under test: after sending
them it waits one second for an answer; if none came, it closes the connection itself with
1000; a raw server closes TCP as soon as it has the client's close frame (RFC 6455, 7.1.1).
It never answers pings: websockets' keepalive (a ping every 20 s, 20 s to answer) is what
ends a connection that is stuck.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Opcode

from wssim.raw import (
    RawClient,
    RawConnection,
    RawFrame,
    RawServer,
    ReceivedFrame,
    close_payload,
)
from wssim.simulation import Simulation
from wssim.trace.events import Table, Trace

__all__ = ["Case", "Outcome", "Role", "run", "run_all", "table"]

PORT = 8765
SETTLE = 1.0
"""Seconds the raw side waits for an answer before closing the connection itself."""
CLOSE_WAIT = 10.0
"""Seconds the raw side waits for the closing handshake to finish."""
LIMIT = 60.0
"""Virtual seconds a case may take: long enough for websockets' keepalive to act (40 s)."""

CLOSE = Opcode.CLOSE

Role = Literal["server", "client"]


@dataclass(frozen=True)
class Case:
    """One experiment: bytes that a websockets endpoint receives.

    Attributes:
        name: what is sent, in a few words; unique within its side.
        sends: the frames and raw bytes, sent in one write once the connection is open.
        section: the section of RFC 6455 that governs the case (``"5.2"``).
        rfc: what that section requires of the receiver.
        group: the family of the case (``"header"``, ``"close codes"``...).
        side: the websockets endpoint under test: ``"server"`` (a raw client sends) or
            ``"client"`` (a raw server sends).
        handshake: bytes to send instead of a correct opening handshake: the request of
            a raw client, or the response of a raw server.
        server_closes_tcp: for ``side="client"``: whether the raw server closes TCP once
            it has the client's close frame, as a server should.
    """

    name: str
    sends: tuple[RawFrame | bytes, ...]
    section: str
    rfc: str
    group: str
    side: Role = "server"
    handshake: bytes | None = None
    server_closes_tcp: bool = True

    def sent(self) -> str:
        """The bytes sent, for people: each frame's header in hex, then its payload.

        A masked frame shows ``+key`` where the 4-byte masking key goes, and its payload
        unmasked; long payloads are shown by size.
        """
        if self.handshake is not None:
            return _preview(self.handshake, text=True)
        client = self.side == "server"
        return " | ".join(_frame_bytes(item, client) for item in self.sends)


def _preview(data: bytes, *, text: bool = False, limit: int = 8) -> str:
    if text:
        line = data.split(b"\r\n", 1)[0].decode("latin-1")
        extra = len(data) - len(line)
        return repr(line) + (f" +{extra} bytes" if extra > 2 else "")
    if len(data) <= limit:
        return data.hex(" ")
    return f"…{len(data)} bytes"


def _frame_bytes(item: RawFrame | bytes, client: bool) -> str:
    if not isinstance(item, RawFrame):
        return _preview(item)
    masked = item.mask if item.mask is not None else client
    head = item.header(masked=masked is not False).hex(" ")
    if masked is not False:
        head += " +key"
    if not item.payload:
        return head
    return f"{head} {_preview(bytes(item.payload))}"


@dataclass(frozen=True)
class Outcome:
    """What happened when a case ran.

    Attributes:
        case: the case.
        status: the HTTP status of the handshake's response (None: there was none).
        received: the frames the raw side received, in websockets' words.
        code: the code of the close frame the library sent (None: it sent none).
        reason: its reason.
        echo: True when that close frame answered a close frame of the raw side (a
            normal closing handshake, not an error).
        close_at: when that close frame arrived.
        tcp: how TCP ended for the raw side: ``"FIN"`` or ``"RST"`` from the library,
            ``"closed"`` if the raw side closed it first, ``"open"`` at the end of the run.
        tcp_at: when it ended.
        library: the library's own account: the exception its connection ended with.
        trace: the whole trace of the run.
    """

    case: Case
    status: int | None
    received: tuple[str, ...]
    code: int | None
    reason: str | None
    echo: bool
    close_at: float | None
    tcp: str
    tcp_at: float | None
    library: str
    trace: Trace = field(repr=False, compare=False)

    @property
    def answer(self) -> str:
        """The library's answer in a few words: ``1002 incorrect masking``, ``HTTP 426``."""
        if self.status != 101 and self.case.side == "server":
            return f"HTTP {self.status}" if self.status else "no HTTP response"
        if self.case.side == "client" and self.case.handshake is not None:
            return self.library.removeprefix("handshake failed: ")
        parts = []
        others = [r.split(" ", 1)[0] for r in self.received if not r.startswith("CLOSE")]
        if others:
            parts.append(", ".join(dict.fromkeys(others)))
        if self.code is not None:
            close = f"{self.code} {self.reason}".rstrip()
            parts.append(f"{close} (echo)" if self.echo else close)
        elif self.code is None and self.received and self.received[-1].startswith("CLOSE"):
            parts.append("malformed close")
        return "; ".join(parts) or "nothing"


async def _echo(websocket: ServerConnection) -> None:
    async for message in websocket:
        await websocket.send(message)


Handler = Callable[[ServerConnection], Awaitable[None]]


async def _library_server(handler: Handler, options: dict[str, Any]) -> None:
    async with serve(handler, None, PORT, **options) as server:
        await server.serve_forever()


async def _library_client(options: dict[str, Any]) -> None:
    # Read every message, so that text is decoded (and checked) as an application would.
    try:
        async with connect(f"ws://server:{PORT}", **options) as websocket:
            async for _ in websocket:
                pass
    except Exception:
        pass  # the trace holds the exception: its `closed` event


async def _close_frame(raw: RawConnection, timeout: float) -> ReceivedFrame | None:
    """Read frames until a close frame, TCP's end, or ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            return None
        frame = await raw.recv_frame(timeout=left)
        if frame is None or frame.opcode == CLOSE:
            return frame


async def _drive(raw: RawConnection, case: Case, our_close: list[float]) -> None:
    """The raw side's script around the bytes under test (see the module's docstring)."""
    if raw.opened_at is None:
        await raw.wait_closed(CLOSE_WAIT)
        raw.close_tcp()
        return
    if case.sends:
        raw.send(*case.sends)
    close = await _close_frame(raw, SETTLE)
    if close is None and not raw.ended:
        our_close.append(asyncio.get_running_loop().time())
        raw.send(RawFrame(CLOSE, close_payload(1000)))
        close = await _close_frame(raw, CLOSE_WAIT)
    if raw.side == "server" and close is not None and case.server_closes_tcp:
        raw.close_tcp()  # 7.1.1: the server closes TCP first
    await raw.wait_closed(LIMIT)


def run(
    case: Case,
    *,
    seed: int = 0,
    latency: float = 0.010,
    handler: Handler | None = None,
    **options: Any,
) -> Outcome:
    """Run one case on a fresh simulation and report what the library did.

    Args:
        case: the case.
        seed: the simulation's seed.
        latency: the one-way latency between the two hosts, in seconds.
        handler: for server cases, the connection handler given to ``serve()``. Default:
            an echo handler that reads every message (``async for``), so text is decoded
            and checked as an application would.
        **options: keyword arguments for websockets' ``serve()`` (server cases) or
            ``connect()`` (client cases), such as ``max_size``.

    Raises:
        ValueError: if ``case`` is not a :class:`Case`.
    """
    if not isinstance(case, Case):
        raise ValueError(f"case must be a Case, got {case!r}")
    if handler is not None and case.side != "server":
        raise ValueError(f"handler applies to server cases only; {case.name!r} is a client case")
    raws: list[RawConnection] = []
    our_close: list[float] = []

    async def raw_client() -> None:
        client = await RawClient.connect("server", PORT, request=case.handshake)
        raws.append(client)
        await _drive(client, case, our_close)

    async def raw_server() -> None:
        async with await RawServer.listen(PORT, response=case.handshake) as server:
            connection = await server.accept()
            raws.append(connection)
            await _drive(connection, case, our_close)

    with Simulation(seed=seed, latency=latency) as sim:
        if case.side == "server":
            sim.host("server").spawn(_library_server(handler or _echo, options))
            sim.host("client").spawn(raw_client())
        else:
            sim.host("server").spawn(raw_server())
            sim.host("client").spawn(_library_client(options))
        trace = sim.run(until=LIMIT)
        raw = raws[0]
        close = raw.close_frame
        ended = trace.last(kind="closed", side=case.side)
        if isinstance(raw, RawClient):
            status = raw.status
        else:
            status = 101 if case.handshake is None else _status(case.handshake)
        # An echo answers a close frame of ours with the same payload: a closing handshake.
        ours = {
            bytes(f.payload) for f in case.sends if isinstance(f, RawFrame) and f.opcode == CLOSE
        }
        if our_close:
            ours.add(close_payload(1000))
        echo = close is not None and bytes(close.payload) in ours
        return Outcome(
            case=case,
            status=status,
            received=tuple(str(f) for f in raw.frames),
            code=raw.close_code,
            reason=raw.close_reason,
            echo=echo,
            close_at=None if close is None else close.time,
            tcp=raw.tcp or "open",
            tcp_at=raw.tcp_at,
            library="" if ended is None else ended.text,
            trace=trace,
        )


def _status(response: bytes) -> int | None:
    parts = response.split(b"\r\n", 1)[0].split(b" ")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def run_all(cases: Iterable[Case], **kwargs: Any) -> list[Outcome]:
    """Run every case of ``cases``, each on its own world."""
    return [run(item, **kwargs) for item in cases]


def table(outcomes: Iterable[Outcome], *, rfc: bool = False) -> Table:
    """The outcomes as a text table .

    Columns: the case, the bytes sent (see :meth:`Case.sent`), the RFC section, what the
    RFC requires (with ``rfc=True``), what websockets answered (the close code it sent and
    its reason, or the HTTP status), when that close frame arrived, and how TCP ended.
    """
    columns = ["case", "bytes sent", "RFC"] + (["the RFC says"] if rfc else [])
    columns += ["websockets answers", "at", "TCP"]
    rows = []
    for o in outcomes:
        row = [o.case.name, o.case.sent(), o.case.section] + ([o.case.rfc] if rfc else [])
        at = "" if o.close_at is None else f"{o.close_at:.3f}"
        how = "raw FIN" if o.tcp == "closed" else o.tcp
        tcp = how if o.tcp_at is None else f"{how} {o.tcp_at:.3f}"
        rows.append([*row, o.answer, at, tcp])
    return Table(columns, rows, right=(columns.index("at"),))
