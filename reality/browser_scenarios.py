"""Browser scenarios, written once: a page's JavaScript, a server, and what the tab does.

Each :class:`BrowserScenario` is:

- ``page_js``: JavaScript that uses only the WHATWG ``WebSocket`` API, timers and
  ``console.log``. It connects to the global ``SERVER_URL`` and logs every event as one line
  in a fixed form (:data:`PRELUDE`, parsed by :func:`parse_line`)::

      connect                       just before new WebSocket(SERVER_URL)
      open
      message <data as JSON>
      error
      close <code> <reason as JSON> <wasClean>
      exception <DOMException name> a call the page made threw
      called <what>                 a call the page made returned

  The time of a line is when it was logged (``Runtime.consoleAPICalled``'s timestamp in
  Chromium, the virtual time in the simulated tab), relative to the ``connect`` line.
- ``server``: a coroutine given a :class:`reality.scenarios.Context` (``ctx.bind``,
  ``ctx.port``, ``ctx.scale`` for every duration), the real ``websockets`` asyncio server,
  so that the same code can run in ``wssim.Simulation``. It runs until it is cancelled and
  records its outcome with ``ctx.record`` (:func:`server_outcome`): exception class, close
  codes received and sent, the reason received, the HTTP status it answered, when. None:
  nothing listens on the port (connection refused).
- ``actions``: what the tab does, at unscaled times from the page's ``connect``:
  ``close`` (the tab is closed), ``navigate`` (to ``about:blank``), ``reload``, ``crash``
  (the renderer process dies).
- ``until``: how long the scenario lasts, unscaled seconds from ``connect``.
- ``known``: why the simulated tab (reality/browser_sim.py) and Chromium are expected to
  differ, if they are (as :class:`reality.scenarios.Scenario`'s ``known``).

Raw frames (protocol errors, an empty close frame, a close answered without closing TCP)
are bytes written to the server's transport after the handshake, as :mod:`wssim.raw` and
:mod:`reality.protocol` produce them: a server's frames are unmasked, so they are spelled out
here (:func:`frame`). Servers run with ``compression=None``: with permessage-deflate (which
Chromium offers) RSV1 would mean "compressed", not a protocol error.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from reality import outcome
from reality.outcome import Outcome
from reality.scenarios import Context

__all__ = [
    "ACTIONS",
    "PRELUDE",
    "SCENARIOS",
    "Action",
    "BrowserScenario",
    "Line",
    "frame",
    "parse_line",
    "server_outcome",
]

ACTIONS = ("close", "navigate", "back", "reload", "crash")

PRELUDE = """\
function log(line) { console.log(line); }
function watch(ws) {
  ws.onopen = function () { log("open"); };
  ws.onmessage = function (e) {
    log("message " + JSON.stringify(typeof e.data === "string" ? e.data : "<binary>"));
  };
  ws.onerror = function () { log("error"); };
  ws.onclose = function (e) {
    log("close " + e.code + " " + JSON.stringify(e.reason) + " " + e.wasClean);
  };
  return ws;
}
function connect() { log("connect"); return watch(new WebSocket(SERVER_URL)); }
function attempt(what, f) {
  try { f(); log("called " + what); } catch (e) { log("exception " + e.name); }
}
"""
"""Shared by every page: the fixed log format."""


@dataclass(frozen=True)
class Action:
    """At ``at`` (unscaled seconds from the page's connect), the tab does ``kind``."""

    at: float
    kind: Literal["close", "navigate", "back", "reload", "crash"]


Server = Callable[[Context], Awaitable[None]]


@dataclass(frozen=True)
class BrowserScenario:
    name: str
    title: str
    page_js: str
    server: Server | None
    actions: tuple[Action, ...] = ()
    until: float = 3.0
    tags: frozenset[str] = field(default_factory=frozenset)
    known: str = ""
    no_store: bool = False
    """The page is served with ``Cache-Control: no-store`` (no back/forward cache)."""


# The log format


@dataclass(frozen=True)
class Line:
    """One parsed log line of a page."""

    kind: str
    code: int | None = None
    reason: str | None = None
    clean: bool | None = None
    data: str | None = None
    name: str | None = None

    def text(self) -> str:
        if self.kind == "close":
            return f"close {self.code} {json.dumps(self.reason)} {str(self.clean).lower()}"
        if self.kind == "message":
            return f"message {json.dumps(self.data)}"
        if self.kind in ("exception", "called"):
            return f"{self.kind} {self.name}"
        return self.kind


_CLOSE = re.compile(r"close (\d+) (\".*\") (true|false)")


LIFECYCLE_LINES = ("pagehide true", "pagehide false", "pageshow true")
"""What :data:`STAY_LIFECYCLE` logs: the events and their ``persisted``."""


def parse_line(text: str) -> Line:
    """A page's log line (:data:`PRELUDE`'s format) as a :class:`Line`; ValueError if not."""
    if text in ("connect", "open", "error", *LIFECYCLE_LINES):
        return Line(text)
    head, _, rest = text.partition(" ")
    if head == "close":
        m = _CLOSE.fullmatch(text)
        if m is None:
            raise ValueError(f"not a close line: {text!r}")
        return Line("close", int(m[1]), json.loads(m[2]), m[3] == "true")
    if head == "message" and rest:
        return Line("message", data=json.loads(rest))
    if head in ("exception", "called") and rest:
        return Line(head, name=rest)
    raise ValueError(f"not a log line of the fixed format: {text!r}")


# Raw frames


def frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, mask: bytes | None = None
) -> bytes:
    """One WebSocket frame's bytes (RFC 6455 §5.2); ``rsv`` is the 3 RSV bits (0-7)."""
    head = bytes([(0x80 if fin else 0) | (rsv & 7) << 4 | opcode])
    n = len(payload)
    bit = 0x80 if mask is not None else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if mask is not None:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


def close_frame(code: int, reason: str = "") -> bytes:
    return frame(0x8, struct.pack("!H", code) + reason.encode())


# The server's outcome


def server_outcome(ctx: Context, exc: BaseException | None = None, **extra: Any) -> Outcome:
    """What the server saw: :func:`reality.outcome.raised` plus the reason it received and
    the HTTP status it answered (``extra`` adds or overrides keys)."""
    if exc is None:
        got: Outcome = {
            "exception": None,
            "code_received": None,
            "code_sent": None,
            "cause": "open",
            "time": round(ctx.now(), 3),
        }
    else:
        got = outcome.raised(exc, ctx.now())
    reason = None
    if isinstance(exc, ConnectionClosed) and exc.rcvd is not None:
        reason = exc.rcvd.reason
    got = {**got, "reason": reason, "status": 101}
    got.update(extra)
    return got


OPTIONS = {"ping_interval": None, "ping_timeout": 20.0, "close_timeout": 10.0}
"""The servers' websockets options (unscaled): no keepalive, default close timeout."""


async def _watch(ctx: Context, ws: ServerConnection) -> None:
    try:
        while True:
            await ws.recv()
    except ConnectionClosed as exc:
        ctx.record(server_outcome(ctx, exc))


def _server(handler: Callable[[Context, ServerConnection], Awaitable[None]], **kw: Any) -> Server:
    """A websockets server on ``ctx.bind:ctx.port`` running ``handler(ctx, ws)`` per
    connection, until cancelled; an exception in the handler is the outcome."""

    async def run(ctx: Context) -> None:
        async def on_connection(ws: ServerConnection) -> None:
            try:
                await handler(ctx, ws)
            except ConnectionClosed as exc:
                ctx.record(server_outcome(ctx, exc))
            except Exception as exc:  # recorded, not logged
                ctx.record(server_outcome(ctx, exc))

        async with serve(
            on_connection, ctx.bind, ctx.port, compression=None, **ctx.options(OPTIONS), **kw
        ):
            await asyncio.Future()

    return run


def closes_with(code: int | None, reason: str = "", at: float = 0.5) -> Server:
    """A server that closes with ``code`` and ``reason`` at ``at`` (None: an empty close
    frame, which websockets sends for ``code=None``)."""

    async def handler(ctx: Context, ws: ServerConnection) -> None:
        reader = asyncio.ensure_future(_watch(ctx, ws))
        await ctx.sleep_until(at)
        await ws.close(code, reason)  # type: ignore[arg-type]
        await reader

    return _server(handler)


def _linger0(ws: ServerConnection) -> None:
    sock: socket.socket = ws.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def drops_tcp(rst: bool, at: float = 0.5) -> Server:
    """A server that ends TCP at ``at`` without a close frame: an RST (SO_LINGER 0, then
    abort) or, as the kernel does for a killed process whose socket has nothing unread, a
    FIN (the socket closed without a close frame)."""

    async def handler(ctx: Context, ws: ServerConnection) -> None:
        await ctx.sleep_until(at)
        if rst:
            _linger0(ws)
        ws.transport.abort()
        ctx.record(server_outcome(ctx, None, cause="RST sent" if rst else "FIN sent"))

    return _server(handler)


def refuses(status: HTTPStatus) -> Server:
    """A server that answers the opening handshake with ``status`` (process_request)."""

    async def handler(ws: ServerConnection) -> None:  # never reached: no connection opens
        await ws.close()

    def process_request(ctx: Context) -> Callable[[ServerConnection, Request], Response]:
        def answer(connection: ServerConnection, request: Request) -> Response:
            ctx.record(server_outcome(ctx, None, cause="HTTP", status=int(status)))
            return connection.respond(status, f"{status.phrase}\n")

        return answer

    async def run(ctx: Context) -> None:
        async with serve(
            handler,
            ctx.bind,
            ctx.port,
            compression=None,
            process_request=process_request(ctx),
            **ctx.options(OPTIONS),
        ):
            await asyncio.Future()

    return run


async def silent(ctx: Context) -> None:
    """A listener that accepts TCP and never answers the opening handshake."""
    writers: list[asyncio.StreamWriter] = []

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        ctx.record(server_outcome(ctx, None, cause="accepted, never answered", status=None))
        await reader.read()  # until the peer ends TCP
        ctx.outcome = server_outcome(ctx, None, cause="EOF (never answered)", status=None)

    server = await asyncio.start_server(accepted, ctx.bind, ctx.port)
    try:
        await asyncio.Future()
    finally:
        server.close()
        for w in writers:
            w.close()


def echo() -> Server:
    """An echo server that records how the connection ended."""

    async def handler(ctx: Context, ws: ServerConnection) -> None:
        while True:  # ConnectionClosed ends it: the outcome
            await ws.send(await ws.recv())

    return _server(handler)


def writes_raw(data: bytes, at: float = 0.5) -> Server:
    """A server that writes ``data`` (raw frames) to its transport at ``at``."""

    async def handler(ctx: Context, ws: ServerConnection) -> None:
        reader = asyncio.ensure_future(_watch(ctx, ws))
        await ctx.sleep_until(at)
        ws.transport.write(data)
        await reader

    return _server(handler)


def pings(at: float = 0.5, close_at: float = 1.0) -> Server:
    """A server that pings at ``at``, notes the pong's delay, closes 1000 at ``close_at``."""

    async def handler(ctx: Context, ws: ServerConnection) -> None:
        reader = asyncio.ensure_future(_watch(ctx, ws))
        await ctx.sleep_until(at)
        sent = time.monotonic()
        waiter = await ws.ping(b"wssim")
        await asyncio.wait_for(waiter, ctx.seconds(5))
        pong = round((time.monotonic() - sent) / ctx.scale, 4)
        await ctx.sleep_until(close_at)
        await ws.close(1000, "")
        await reader
        if ctx.outcome is not None:
            ctx.outcome["pong"] = pong

    return _server(handler)


def ignores_close() -> Server:
    """A server that stops reading at once: it never answers the page's close frame (nor
    closes TCP)."""

    async def handler(ctx: Context, ws: ServerConnection) -> None:
        ws.transport.pause_reading()
        ctx.record(server_outcome(ctx, None, cause="never read"))
        await ws.wait_closed()  # websockets' close_timeout, when the server shuts down

    return _server(handler)


def answers_close_keeps_tcp(at: float) -> Server:
    """A server that stops reading at once, writes a close frame 1000 at ``at`` (after the
    page's close) and never closes TCP."""

    async def handler(ctx: Context, ws: ServerConnection) -> None:
        ws.transport.pause_reading()
        await ctx.sleep_until(at)
        ws.transport.write(close_frame(1000))
        ctx.record(server_outcome(ctx, None, cause="close frame written, TCP kept", code_sent=1000))
        await ws.wait_closed()

    return _server(handler)


# The pages


def page(body: str) -> str:
    return PRELUDE + body


STAY = page("var ws = connect();\n")
"""A page that connects and waits."""

STAY_LIFECYCLE = page(
    "var ws = connect();\n"
    'addEventListener("pagehide", function (e) { log("pagehide " + e.persisted); });\n'
    'addEventListener("pageshow", function (e) { if (e.persisted) log("pageshow true"); });\n'
)
"""A page that connects, waits, and logs ``pagehide`` and a ``pageshow`` from the
back/forward cache."""


def page_closes(args: str, at: float = 0.5) -> str:
    return page(
        "var ws = connect();\n"
        f"setTimeout(function () {{ attempt({json.dumps(f'close({args})')}, "
        f"function () {{ ws.close({args}); }}); }}, "
        f"{round(at * 1000)});\n"
    )


def page_closes_bad(args: str, at: float = 0.5, then: float = 1.0) -> str:
    return page(
        "var ws = connect();\n"
        f"setTimeout(function () {{ attempt({json.dumps(f'close({args})')}, "
        f"function () {{ ws.close({args}); }}); }}, "
        f"{round(at * 1000)});\n"
        f'setTimeout(function () {{ attempt("close()", function () {{ ws.close(); }}); }}, '
        f"{round(then * 1000)});\n"
    )


REASON_124 = "x" * 124

SCENARIOS: tuple[BrowserScenario, ...] = (
    BrowserScenario("server-1000", "server closes 1000", STAY, closes_with(1000)),
    BrowserScenario(
        "server-1001", "server closes 1001 (going away)", STAY, closes_with(1001, "restart")
    ),
    BrowserScenario(
        "server-1011", "server closes 1011 (internal error)", STAY, closes_with(1011, "oops")
    ),
    BrowserScenario(
        "server-4000-reason",
        "server closes 4000 with a reason",
        STAY,
        closes_with(4000, "session expired"),
    ),
    BrowserScenario(
        "server-empty-close", "server sends an empty close frame", STAY, closes_with(None)
    ),
    BrowserScenario(
        "server-rst",
        "server aborts TCP (SO_LINGER 0: RST), no close frame",
        STAY,
        drops_tcp(rst=True),
    ),
    BrowserScenario(
        "server-killed",
        "server's process dies (simulated: the socket closed "
        "without a close frame, a FIN, as the kernel does)",
        STAY,
        drops_tcp(rst=False),
    ),
    BrowserScenario(
        "handshake-403",
        "handshake answered 403 (process_request)",
        STAY,
        refuses(HTTPStatus.FORBIDDEN),
    ),
    BrowserScenario(
        "handshake-503",
        "handshake answered 503 (process_request)",
        STAY,
        refuses(HTTPStatus.SERVICE_UNAVAILABLE),
    ),
    BrowserScenario("refused", "nothing listening: connection refused", STAY, None),
    BrowserScenario(
        "never-answered",
        "a listener accepts TCP and never answers the handshake (watched for 10 s)",
        STAY,
        silent,
        until=10.0,
    ),
    BrowserScenario("page-close", "page calls close()", page_closes(""), echo()),
    BrowserScenario(
        "page-close-1000-bye", 'page calls close(1000, "bye")', page_closes('1000, "bye"'), echo()
    ),
    BrowserScenario("page-close-4000", "page calls close(4000)", page_closes("4000"), echo()),
    BrowserScenario(
        "page-close-1001",
        "page calls close(1001): InvalidAccessError, then close()",
        page_closes_bad("1001"),
        echo(),
    ),
    BrowserScenario(
        "page-close-long-reason",
        "page calls close(1000, 124-byte reason): SyntaxError, then close()",
        page_closes_bad(f'1000, "{REASON_124}"'),
        echo(),
    ),
    BrowserScenario("server-ping", "server pings, page answers, server closes 1000", STAY, pings()),
    BrowserScenario(
        "invalid-utf8",
        "server sends a text frame of invalid UTF-8",
        STAY,
        writes_raw(frame(0x1, b"\xff\xfe")),
    ),
    BrowserScenario(
        "reserved-bits",
        "server sends a frame with RSV2 set",
        STAY,
        writes_raw(frame(0x1, b"hi", rsv=2)),
    ),
    BrowserScenario(
        "masked-frame",
        "server sends a masked frame",
        STAY,
        writes_raw(frame(0x1, b"hi", mask=b"\x01\x02\x03\x04")),
    ),
    BrowserScenario(
        "close-unanswered",
        "page calls close(); the server never answers (nor closes TCP)",
        page_closes(""),
        ignores_close(),
        until=70.0,
        tags=frozenset({"long"}),
    ),
    BrowserScenario(
        "close-answered-tcp-kept",
        "page calls close(); the server answers at 1 s but never closes TCP",
        page_closes(""),
        answers_close_keeps_tcp(1.0),
        until=8.0,
    ),
    BrowserScenario(
        "tab-close", "the tab is closed at 1 s", STAY, echo(), actions=(Action(1.0, "close"),)
    ),
    BrowserScenario(
        "tab-navigate",
        "the tab navigates to about:blank at 1 s; the page goes to the back/forward cache",
        STAY,
        echo(),
        actions=(Action(1.0, "navigate"),),
    ),
    BrowserScenario(
        "tab-navigate-no-store",
        "a page served with Cache-Control: no-store navigates to about:blank at 1 s",
        STAY,
        echo(),
        actions=(Action(1.0, "navigate"),),
        no_store=True,
    ),
    BrowserScenario(
        "tab-back",
        "the tab navigates away at 1 s and comes back at 2 s (back/forward cache)",
        STAY_LIFECYCLE,
        echo(),
        actions=(Action(1.0, "navigate"), Action(2.0, "back")),
    ),
    BrowserScenario(
        "tab-reload",
        "the tab reloads at 1 s; its script runs again",
        STAY,
        echo(),
        actions=(Action(1.0, "reload"),),
    ),
    BrowserScenario(
        "tab-crash",
        "the renderer process crashes at 1 s (chrome://crash)",
        STAY,
        echo(),
        actions=(Action(1.0, "crash"),),
    ),
)


def by_name(name: str) -> BrowserScenario:
    for s in SCENARIOS:
        if s.name == name:
            return s
    raise KeyError(name)
