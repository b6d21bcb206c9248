"""A catalogue of protocol errors, as data, and a runner that tries them on websockets.

Each :class:`Case` says what to send (hand-built frames or bytes), the section of RFC 6455
that governs it and what that section requires. :func:`run` sends it, from a
:class:`~wssim.raw.RawClient` to a real websockets server (``side="server"``) or from a
:class:`~wssim.raw.RawServer` to a real websockets client (``side="client"``), on a fresh
simulation, and returns an :class:`Outcome`: the close code the library sent, its reason,
how and when TCP ended, and the library's own account. Same case, same outcome, to the
microsecond.

The raw side behaves like a plain, polite peer around the bytes under test: after sending
them it waits one second for an answer; if none came, it closes the connection itself with
1000; a raw server closes TCP as soon as it has the client's close frame (RFC 6455, 7.1.1).
It never answers pings: websockets' keepalive (a ping every 20 s, 20 s to answer) is what
ends a connection that is stuck.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Opcode

import wssim
from wssim.raw import (
    RawClient,
    RawConnection,
    RawFrame,
    RawServer,
    ReceivedFrame,
    close_payload,
)
from wssim.trace import Table, Trace

__all__ = [
    "CATALOGUE",
    "CLIENT_CATALOGUE",
    "SERVER_CATALOGUE",
    "Case",
    "Outcome",
    "case",
    "run",
    "run_all",
    "table",
]

PORT = 8765
SETTLE = 1.0
"""Seconds the raw side waits for an answer before closing the connection itself."""
CLOSE_WAIT = 10.0
"""Seconds the raw side waits for the closing handshake to finish."""
LIMIT = 60.0
"""Virtual seconds a case may take: long enough for websockets' keepalive to act (40 s)."""

TEXT, BINARY, CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
CLOSE, PING, PONG = Opcode.CLOSE, Opcode.PING, Opcode.PONG

Side = Literal["server", "client"]


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
    side: Side = "server"
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


def _handshake_request(*lines: str) -> bytes:
    return ("\r\n".join(["GET / HTTP/1.1", "Host: server:8765", *lines]) + "\r\n\r\n").encode()


_KEY = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
_MIB = 2**20
_FAIL = "fail the connection (7.1.7)"


def _server_cases() -> list[Case]:
    def c(name: str, sends: Sequence[RawFrame | bytes], section: str, rfc: str, group: str) -> Case:
        return Case(name, tuple(sends), section, rfc, group)

    cases = [
        c("a valid text message", [RawFrame(TEXT, b"hello")], "5.6", "deliver it", "baseline"),
        c(
            "unmasked client frame",
            [RawFrame(TEXT, b"hello", mask=False)],
            "5.1",
            "close the connection; MAY send 1002",
            "header",
        ),
        c(
            "RSV1 set, no extension",
            [RawFrame(TEXT, b"hello", rsv=(1, 0, 0))],
            "5.2",
            _FAIL,
            "header",
        ),
        c("RSV2 and RSV3 set", [RawFrame(TEXT, b"hello", rsv=(0, 1, 1))], "5.2", _FAIL, "header"),
        c("reserved data opcode 0x3", [RawFrame(0x3, b"hello")], "5.2", _FAIL, "header"),
        c("reserved control opcode 0xB", [RawFrame(0xB, b"hello")], "5.2", _FAIL, "header"),
        c(
            "length in 64 bits, not minimal",
            [RawFrame(TEXT, b"hello", length_bits=64)],
            "5.2",
            "sender MUST use the minimal encoding; receiver: not said",
            "header",
        ),
        c(
            "64-bit length with its top bit set",
            [RawFrame(BINARY, b"", length=2**63 + 5)],
            "5.2",
            "the most significant bit MUST be 0",
            "header",
        ),
        c(
            "length says 100, 5 bytes sent",
            [RawFrame(TEXT, b"hello", length=100)],
            "5.2",
            "nothing: the receiver waits for the rest",
            "header",
        ),
        c(
            "ping of 125 bytes",
            [RawFrame(PING, b"p" * 125)],
            "5.5.2",
            "answer with a pong",
            "control",
        ),
        c(
            "ping of 126 bytes",
            [RawFrame(PING, b"p" * 126)],
            "5.5",
            "control payload <= 125 bytes",
            "control",
        ),
        c(
            "fragmented ping (FIN=0)",
            [RawFrame(PING, b"ping", fin=False), RawFrame(CONT, b"")],
            "5.5",
            "control frames MUST NOT be fragmented",
            "control",
        ),
        c(
            "unsolicited pong",
            [RawFrame(PONG, b"beat")],
            "5.5.3",
            "no response expected",
            "control",
        ),
        c(
            "continuation without a start",
            [RawFrame(CONT, b"lo")],
            "5.4",
            _FAIL,
            "fragmentation",
        ),
        c(
            "new text frame inside a fragmented message",
            [RawFrame(TEXT, b"hel", fin=False), RawFrame(TEXT, b"lo")],
            "5.4",
            "fragments MUST NOT be interleaved",
            "fragmentation",
        ),
        c(
            "ping between two fragments",
            [RawFrame(TEXT, b"hel", fin=False), RawFrame(PING, b"?"), RawFrame(CONT, b"lo")],
            "5.4",
            "control frames MAY be injected",
            "fragmentation",
        ),
        c(
            "close between two fragments",
            [RawFrame(TEXT, b"hel", fin=False), RawFrame(CLOSE, close_payload(1000))],
            "5.4",
            "control frames MAY be injected",
            "fragmentation",
        ),
        c(
            "invalid UTF-8 in a text message",
            [RawFrame(TEXT, b"caf\xe9!")],
            "8.1",
            _FAIL + ", 1007",
            "UTF-8",
        ),
        c(
            "a character split across fragments",
            [RawFrame(TEXT, b"caf\xc3", fin=False), RawFrame(CONT, b"\xa9")],
            "5.6",
            "the message is text: deliver it",
            "UTF-8",
        ),
        c(
            "a text message ending mid-character",
            [RawFrame(TEXT, b"caf\xc3", fin=False), RawFrame(CONT, b"")],
            "8.1",
            _FAIL + ", 1007",
            "UTF-8",
        ),
        c(
            "invalid UTF-8 in a binary message",
            [RawFrame(BINARY, b"caf\xe9!")],
            "5.6",
            "binary is not text: deliver it",
            "UTF-8",
        ),
        c(
            "invalid UTF-8 in a close reason",
            [RawFrame(CLOSE, close_payload(1000, b"caf\xe9!"))],
            "5.5.1",
            "the reason is UTF-8 (8.1: fail)",
            "UTF-8",
        ),
        c(
            "empty close frame",
            [RawFrame(CLOSE, b"")],
            "5.5.1",
            "a close MAY have no body: echo",
            "close frames",
        ),
        c(
            "close payload of one byte",
            [RawFrame(CLOSE, b"\x03")],
            "5.5.1",
            "a body starts with a 2-byte code",
            "close frames",
        ),
    ]
    never = {
        0: "7.4.2",
        999: "7.4.2",
        1004: "7.4.1",
        1005: "7.4.1",
        1006: "7.4.1",
        1015: "7.4.1",
        1016: "7.4.2",
        2999: "7.4.2",
        5000: "7.4.2",
    }
    for code, section in never.items():
        rule = "MUST NOT be sent" if section == "7.4.1" else "not a valid code"
        cases.append(
            c(
                f"close code {code}",
                [RawFrame(CLOSE, close_payload(code))],
                section,
                rule,
                "close codes",
            )
        )
    for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014):
        cases.append(
            c(
                f"close code {code}",
                [RawFrame(CLOSE, close_payload(code))],
                "7.4.1",
                "echo",
                "close codes",
            )
        )
    for code in (3000, 3999, 4000, 4999):
        cases.append(
            c(
                f"close code {code}",
                [RawFrame(CLOSE, close_payload(code))],
                "7.4.2",
                "echo",
                "close codes",
            )
        )
    cases += [
        c(
            "text message of 1 MiB (max_size)",
            [RawFrame(TEXT, b"x" * _MIB)],
            "10.4",
            "deliver it",
            "size",
        ),
        c(
            "text message of 1 MiB + 1 byte",
            [RawFrame(TEXT, b"x" * (_MIB + 1))],
            "10.4",
            "over the limit: 1009",
            "size",
        ),
        c(
            "fragments of 1 MiB + 1 byte in all",
            [RawFrame(TEXT, b"x" * (_MIB // 2 + 1), fin=False), RawFrame(CONT, b"x" * (_MIB // 2))],
            "10.4",
            "over the limit: 1009",
            "size",
        ),
        c(
            "header announcing 1 MiB + 1 byte, no payload",
            [RawFrame(TEXT, b"", length=_MIB + 1)],
            "10.4",
            "over the limit: 1009",
            "size",
        ),
        c(
            "ping after close",
            [RawFrame(CLOSE, close_payload(1000)), RawFrame(PING, b"?")],
            "5.5.1",
            "after a close: discard what follows (1.4)",
            "after close",
        ),
        c(
            "text after close",
            [RawFrame(CLOSE, close_payload(1000)), RawFrame(TEXT, b"late")],
            "5.5.1",
            "no data frames after a close",
            "after close",
        ),
    ]
    handshakes = {
        "request without Upgrade and Connection": (
            _handshake_request(_KEY, "Sec-WebSocket-Version: 13"),
            "4.2.1",
            "MUST have Upgrade and Connection",
        ),
        "request without Sec-WebSocket-Key": (
            _handshake_request(
                "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13"
            ),
            "4.2.1",
            "MUST have a key; else 400",
        ),
        "Sec-WebSocket-Version: 8": (
            _handshake_request(
                "Upgrade: websocket", "Connection: Upgrade", _KEY, "Sec-WebSocket-Version: 8"
            ),
            "4.4",
            "an error such as 426, and the versions it speaks",
        ),
        "not HTTP at all": (b"hello, server\r\n\r\n", "4.2.1", "not a valid handshake"),
    }
    for name, (request, section, rfc) in handshakes.items():
        cases.append(Case(name, (), section, rfc, "handshake", handshake=request))
    return cases


def _client_cases() -> list[Case]:
    def c(name: str, sends: Sequence[RawFrame | bytes], section: str, rfc: str, group: str) -> Case:
        return Case(name, tuple(sends), section, rfc, group, side="client")

    response_101 = (
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
    )
    return [
        c("a valid text message", [RawFrame(TEXT, b"hello")], "5.6", "deliver it", "baseline"),
        c(
            "masked server frame",
            [RawFrame(TEXT, b"hello", mask=True)],
            "5.1",
            "a client MUST close on a masked frame",
            "header",
        ),
        c(
            "RSV1 set, no extension",
            [RawFrame(TEXT, b"hello", rsv=(1, 0, 0))],
            "5.2",
            _FAIL,
            "header",
        ),
        c("reserved data opcode 0x3", [RawFrame(0x3, b"hello")], "5.2", _FAIL, "header"),
        c(
            "ping of 126 bytes",
            [RawFrame(PING, b"p" * 126)],
            "5.5",
            "control payload <= 125 bytes",
            "control",
        ),
        c(
            "invalid UTF-8 in a text message",
            [RawFrame(TEXT, b"caf\xe9!")],
            "8.1",
            _FAIL + ", 1007",
            "UTF-8",
        ),
        c(
            "close code 1005",
            [RawFrame(CLOSE, close_payload(1005))],
            "7.4.1",
            "MUST NOT be sent",
            "close codes",
        ),
        c(
            "text message of 1 MiB + 1 byte",
            [RawFrame(TEXT, b"x" * (_MIB + 1))],
            "10.4",
            "over the limit: 1009",
            "size",
        ),
        Case(
            "RSV1 set; the server never closes TCP",
            (RawFrame(TEXT, b"hello", rsv=(1, 0, 0)),),
            "7.1.1",
            "the server closes TCP first",
            "closing",
            side="client",
            server_closes_tcp=False,
        ),
        Case(
            "101 with a wrong Sec-WebSocket-Accept",
            (),
            "4.1",
            "the client MUST fail the connection",
            "handshake",
            side="client",
            handshake=(
                "\r\n".join([*response_101, "Sec-WebSocket-Accept: bm9wZQ=="]) + "\r\n\r\n"
            ).encode(),
        ),
        Case(
            "200 OK instead of 101",
            (),
            "4.1",
            "anything but 101: fail",
            "handshake",
            side="client",
            handshake=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
        ),
    ]


SERVER_CATALOGUE: tuple[Case, ...] = tuple(_server_cases())
"""Cases where a raw client sends to a websockets server."""

CLIENT_CATALOGUE: tuple[Case, ...] = tuple(_client_cases())
"""Cases where a raw server sends to a websockets client: where the client differs."""

CATALOGUE: tuple[Case, ...] = SERVER_CATALOGUE + CLIENT_CATALOGUE
"""Every case, the server's first."""


def case(name: str, side: Side = "server") -> Case:
    """The case of ``side`` called ``name``.

    Raises:
        ValueError: if there is none, listing the names there are.
    """
    if side not in ("server", "client"):
        raise ValueError(f"side must be 'server' or 'client', got {side!r}")
    for item in CATALOGUE:
        if item.name == name and item.side == side:
            return item
    names = ", ".join(repr(c.name) for c in CATALOGUE if c.side == side)
    raise ValueError(f"no {side} case called {name!r}; the cases are: {names}")


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

    with wssim.Simulation(seed=seed, latency=latency) as sim:
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


def run_all(cases: Iterable[Case] = CATALOGUE, **kwargs: Any) -> list[Outcome]:
    """Run every case of ``cases`` (default: the whole catalogue), each on its own world."""
    return [run(item, **kwargs) for item in cases]


def table(outcomes: Iterable[Outcome] | None = None, *, rfc: bool = False) -> Table:
    """The outcomes as a text table (default: run the whole catalogue first).

    Columns: the case, the bytes sent (see :meth:`Case.sent`), the RFC section, what the
    RFC requires (with ``rfc=True``), what websockets answered (the close code it sent and
    its reason, or the HTTP status), when that close frame arrived, and how TCP ended.
    """
    if outcomes is None:
        outcomes = run_all()
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
