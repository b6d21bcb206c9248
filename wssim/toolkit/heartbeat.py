"""Heartbeats: an application-level heartbeat, and models of real stacks' keepalives.

Browsers answer WebSocket pings but cannot send them (JavaScript has no ping API), so many
frameworks send their own heartbeat as ordinary messages. :class:`Heartbeat` is one such
heartbeat, configurable enough to model Socket.IO, SignalR and Phoenix; :class:`Stack`
puts a keepalive on each side of a connection, and :data:`STACKS` holds the defaults of
websockets, Socket.IO, SignalR and Phoenix. :class:`TcpKeepalive` is the kernel's own
keepalive, turned on with socket options, as an application does it on Linux.
:func:`serve_stack` and :func:`connect_stack` run one stack's server and client in a
simulation.

A heartbeat that gives up logs one line on the connection's logger (``- heartbeat
timeout: ...``, in the style of websockets' own ``- timed out waiting for keepalive
pong``), so that the trace shows when it noticed, then closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from wssim.net.sockopt import KEEPALIVE_INTERVAL, KEEPALIVE_PROBES, KEEPALIVE_TIME

__all__ = [
    "NO_HEARTBEAT",
    "NO_KEEPALIVE",
    "REF",
    "STACKS",
    "TIMEOUT_LOG",
    "Heartbeat",
    "Side",
    "Stack",
    "TcpKeepalive",
    "connect_stack",
    "matcher",
    "serve_stack",
]

REF = "<ref>"
"""Placeholder in a heartbeat message for a counter, as Phoenix's message ``ref``."""

TIMEOUT_LOG = "- heartbeat timeout"
"""How a :class:`Heartbeat` that gives up begins its line in the endpoint's log."""

# Virtual times are floats: a deadline within a nanosecond of now is due now.
_EPSILON = 1e-9


def _optional_seconds(value: object, parameter: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(
            f"{parameter} must be a finite number of seconds > 0 or None, got {value!r}"
        )
    if value <= 0:
        raise ValueError(f"{parameter} must be > 0 seconds or None, got {value!r}")
    return float(value)


def _pattern(template: str) -> re.Pattern[str]:
    return re.compile(re.escape(template).replace(re.escape(REF), r"(?P<ref>\d+)"))


def matcher(messages: Iterable[str]) -> Callable[[str], bool]:
    """A test of whether a message is one of ``messages`` (:data:`REF` matches a counter)."""
    patterns = [_pattern(m) for m in messages]
    return lambda message: any(p.fullmatch(message) for p in patterns)


@dataclass(frozen=True)
class Heartbeat:
    """An application-level heartbeat: ping and pong are ordinary WebSocket messages.

    Use the same object on both sides, or different ones (Socket.IO's server pings and its
    client only listens). :meth:`run` reads the connection until it closes: it answers
    pings, tracks pongs, and hands every other message to the application.

    Args:
        interval: send a ping every ``interval`` seconds (None: never send pings). One
            ping at a time: a ping due while another awaits its pong is skipped.
        timeout: give up if a ping's pong has not arrived ``timeout`` seconds after it
            was sent (None: do not wait for pongs).
        silence: give up if nothing at all arrived for ``silence`` seconds (None: no such
            limit). Any message counts, not only heartbeats.
        answer: answer each ping received with a pong.
        ping: the ping message. :data:`REF` in it is replaced by a counter.
        pong: the pong message (None: pings get no answer). :data:`REF` in it repeats the
            ping's counter.
        code: the close code sent when giving up (default 4000: private use, a code that
            a browser's ``close()`` accepts too).
        reason: the close reason sent when giving up.

    Raises:
        ValueError: for a time that is not a positive number of seconds, a heartbeat
            that can never notice anything (neither ``timeout`` nor ``silence``, and no
            pings to send or answer), or a ``timeout`` without pings and pongs.
    """

    interval: float | None = None
    timeout: float | None = None
    silence: float | None = None
    answer: bool = True
    ping: str = '{"type": "ping"}'
    pong: str | None = '{"type": "pong"}'
    code: int = 4000
    reason: str = "heartbeat timeout"
    _ping_re: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _pong_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("interval", "timeout", "silence"):
            object.__setattr__(self, name, _optional_seconds(getattr(self, name), name))
        if not isinstance(self.ping, str) or not self.ping:
            raise ValueError(f"ping must be a non-empty string, got {self.ping!r}")
        if self.pong is not None and (not isinstance(self.pong, str) or not self.pong):
            raise ValueError(f"pong must be a non-empty string or None, got {self.pong!r}")
        if self.pong == self.ping:
            raise ValueError("ping and pong must be different messages")
        if self.timeout is not None and (self.interval is None or self.pong is None):
            raise ValueError("timeout needs pings to time: give an interval and a pong message")
        if self.answer and self.pong is None:
            raise ValueError("answer=True needs a pong message")
        if self.interval is None and self.silence is None and not self.answer:
            raise ValueError(
                "this heartbeat does nothing: give an interval, a silence, or answer=True"
            )
        if isinstance(self.code, bool) or not isinstance(self.code, int):
            raise ValueError(f"code must be an integer close code, got {self.code!r}")
        if not (self.code in (1000, 1001, 1008, 1011) or 3000 <= self.code <= 4999):
            raise ValueError(
                f"code must be 1000, 1001, 1008, 1011 or in 3000-4999, got {self.code!r}"
            )
        object.__setattr__(self, "_ping_re", _pattern(self.ping))
        object.__setattr__(self, "_pong_re", None if self.pong is None else _pattern(self.pong))

    @property
    def messages(self) -> tuple[str, ...]:
        """The heartbeat's messages, as templates
        (for :func:`wssim.lab.detection.heartbeat_bytes`)."""
        return (self.ping,) if self.pong is None else (self.ping, self.pong)

    def is_ping(self, message: str | bytes) -> bool:
        """True if ``message`` is one of this heartbeat's pings."""
        return isinstance(message, str) and self._ping_re.fullmatch(message) is not None

    def is_pong(self, message: str | bytes) -> bool:
        """True if ``message`` is one of this heartbeat's pongs."""
        pong = self._pong_re
        return isinstance(message, str) and pong is not None and pong.fullmatch(message) is not None

    def matches(self, message: str | bytes) -> bool:
        """True if ``message`` is a ping or a pong of this heartbeat."""
        return self.is_ping(message) or self.is_pong(message)

    async def run(
        self,
        websocket: Connection,
        on_message: Callable[[str | bytes], Awaitable[None]] | None = None,
    ) -> None:
        """Keep the heartbeat on ``websocket`` until the connection closes.

        Reads every message: pings are answered (if ``answer``), pongs are tracked, and
        any other message goes to ``await on_message(message)``. Returns when the
        connection is closed, whoever closed it; a heartbeat that gives up logs why and
        closes the connection with ``code`` and ``reason``.
        """
        loop = asyncio.get_running_loop()
        state = _State(heard=loop.time())
        beat = asyncio.create_task(self._beat(websocket, state))
        try:
            async for message in websocket:
                state.heard = loop.time()
                if self.is_ping(message):
                    if self.answer and self.pong is not None:
                        await websocket.send(self._answer(str(message)))
                elif self.is_pong(message):
                    state.pong_due = None
                elif on_message is not None:
                    await on_message(message)
        except ConnectionClosed:
            pass
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    def _answer(self, ping: str) -> str:
        assert self.pong is not None
        match = self._ping_re.fullmatch(ping)
        ref = match.groupdict().get("ref") if match else None
        return self.pong.replace(REF, ref or "0")

    async def _beat(self, websocket: Connection, state: _State) -> None:
        loop = asyncio.get_running_loop()
        next_ping = math.inf if self.interval is None else loop.time() + self.interval
        ref = 0
        while True:
            due = [next_ping]
            if state.pong_due is not None:
                due.append(state.pong_due)
            if self.silence is not None:
                due.append(state.heard + self.silence)
            if min(due) == math.inf:
                await loop.create_future()  # nothing to send or watch: wait to be cancelled
            await asyncio.sleep(max(0.0, min(due) - loop.time()))
            now = loop.time() + _EPSILON
            # Deadlines first: a ping due at the instant its predecessor times out is
            # not sent (phoenix.js checks the pending heartbeat before sending the next).
            why = None
            if self.silence is not None and now >= state.heard + self.silence:
                why = f"nothing received for {self.silence:g} s"
            elif state.pong_due is not None and now >= state.pong_due:
                why = f"no pong within {self.timeout:g} s"
            if why is not None:
                websocket.logger.debug(TIMEOUT_LOG + ": %s", why)
                with contextlib.suppress(ConnectionClosed):
                    await websocket.close(self.code, self.reason)
                return
            if now >= next_ping:
                assert self.interval is not None
                next_ping += self.interval
                if state.pong_due is None:
                    ref += 1
                    if self.timeout is not None:
                        state.pong_due = loop.time() + self.timeout
                    await websocket.send(self.ping.replace(REF, str(ref)))


@dataclass
class _State:
    heard: float  # when the last message arrived
    pong_due: float | None = None  # the deadline of the ping awaiting its pong


# Linux's limits for the keepalive options (include/net/tcp.h: MAX_TCP_KEEPIDLE,
# MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT).
_KEEPALIVE_LIMITS = {"idle": 32767, "interval": 32767, "count": 127}


@dataclass(frozen=True)
class TcpKeepalive:
    """TCP keepalive, as an application turns it on for one socket on Linux (tcp(7)).

    :meth:`apply` sets ``SO_KEEPALIVE`` and the three options on a socket; the kernel then
    sends a probe (an empty segment) after ``idle`` seconds without any segment from the
    peer, and one every ``interval`` seconds while they go unanswered; after ``count``
    unanswered probes it times the connection out (``ETIMEDOUT``: websockets reports
    1006, caused by a ``TimeoutError``). Any segment from the peer, an answer to a probe
    included, starts the idle time again. The defaults are Linux's
    (``net.ipv4.tcp_keepalive_time``, ``_intvl``, ``_probes``: 7200, 75, 9).

    Args:
        idle: ``TCP_KEEPIDLE``, seconds of silence before the first probe.
        interval: ``TCP_KEEPINTVL``, seconds between unanswered probes.
        count: ``TCP_KEEPCNT``, unanswered probes before the connection times out.

    Raises:
        ValueError: for a value that is not an integer in Linux's range (1 to 32767
            seconds; 1 to 127 probes).
    """

    idle: int = KEEPALIVE_TIME
    interval: int = KEEPALIVE_INTERVAL
    count: int = KEEPALIVE_PROBES

    def __post_init__(self) -> None:
        for name, high in _KEEPALIVE_LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
                raise ValueError(f"{name} must be an integer from 1 to {high}, got {value!r}")

    @property
    def silence(self) -> int:
        """The longest silence before the kernel gives up: ``idle + count * interval``
        seconds after the last segment heard from the peer."""
        return self.idle + self.count * self.interval

    def apply(self, sock: Any) -> None:
        """Turn keepalive on for ``sock`` (``transport.get_extra_info("socket")``), with
        these settings, as ``setsockopt`` does it on Linux."""
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, self.idle)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, self.interval)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, self.count)


@dataclass(frozen=True)
class Side:
    """How one side of a connection keeps it alive.

    Args:
        ping_interval: websockets' keepalive: a WebSocket PING every ``ping_interval``
            seconds (None: off).
        ping_timeout: websockets' keepalive: fail the connection with 1011 if the PONG
            takes longer (None: never).
        close_timeout: how long websockets waits for the closing handshake before it
            drops TCP.
        heartbeat: an application-level heartbeat, or None.
        tcp_keepalive: the kernel's TCP keepalive, turned on for this side's socket, or
            None (off, as on Linux unless the application sets ``SO_KEEPALIVE``).
    """

    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float = 10.0
    heartbeat: Heartbeat | None = None
    tcp_keepalive: TcpKeepalive | None = None

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "ping_interval", _optional_seconds(self.ping_interval, "ping_interval")
        )
        object.__setattr__(
            self, "ping_timeout", _optional_seconds(self.ping_timeout, "ping_timeout")
        )
        close_timeout = _optional_seconds(self.close_timeout, "close_timeout")
        if close_timeout is None:
            raise ValueError("close_timeout must be a finite number of seconds > 0, got None")
        object.__setattr__(self, "close_timeout", close_timeout)
        if self.heartbeat is not None and not isinstance(self.heartbeat, Heartbeat):
            raise ValueError(f"heartbeat must be a Heartbeat or None, got {self.heartbeat!r}")
        if self.tcp_keepalive is not None and not isinstance(self.tcp_keepalive, TcpKeepalive):
            raise ValueError(
                f"tcp_keepalive must be a TcpKeepalive or None, got {self.tcp_keepalive!r}"
            )

    @property
    def options(self) -> dict[str, float | None]:
        """The keyword arguments for websockets' ``serve()`` or ``connect()``."""
        return {
            "ping_interval": self.ping_interval,
            "ping_timeout": self.ping_timeout,
            "close_timeout": self.close_timeout,
        }


@dataclass(frozen=True)
class Stack:
    """A way to keep connections alive, on both sides.

    Attributes:
        name: what to call it in tables.
        server: what the server does.
        client: what the client does.
        mechanism: ``"WebSocket ping"`` (control frames) or ``"application message"``.
        source: where its defaults come from.
    """

    name: str
    server: Side
    client: Side
    mechanism: str = "WebSocket ping"
    source: str = ""

    @property
    def heartbeats(self) -> tuple[Heartbeat, ...]:
        """The application-level heartbeats of both sides."""
        return tuple(s.heartbeat for s in (self.server, self.client) if s.heartbeat is not None)

    @property
    def period(self) -> float:
        """The longest interval between two heartbeats of either side (0 without any).

        Without WebSocket pings or application heartbeats, TCP keepalive's ``idle``: on a
        healthy idle connection a probe goes every ``idle`` seconds (with heartbeats the
        connection is rarely idle that long, and they set the rhythm)."""
        intervals = [
            t
            for s in (self.server, self.client)
            for t in (s.ping_interval, s.heartbeat.interval if s.heartbeat else None)
            if t is not None
        ]
        idles = [s.tcp_keepalive.idle for s in (self.server, self.client) if s.tcp_keepalive]
        return max(intervals or idles, default=0.0)

    def horizon(self) -> float:
        """A bound on how long either side can take to give up on a dead peer: the longest
        heartbeat cycle plus its timeouts plus the closing handshake, or TCP keepalive's
        longest silence (0 without any)."""
        bounds = [0.0]
        for s in (self.server, self.client):
            if s.tcp_keepalive is not None:
                bounds.append(float(s.tcp_keepalive.silence))
            if s.ping_interval is not None and s.ping_timeout is not None:
                bounds.append(s.ping_interval + s.ping_timeout + s.close_timeout)
            h = s.heartbeat
            if h is not None:
                waits = [t for t in (h.timeout, h.silence) if t is not None]
                if waits:
                    bounds.append((h.interval or 0.0) + max(waits) + s.close_timeout)
        return max(bounds)


NO_KEEPALIVE = Side(ping_interval=None, ping_timeout=None)
"""A side that sends no heartbeat at all (it still answers WebSocket pings, as any
endpoint must: RFC 6455, section 5.5.2)."""

NO_HEARTBEAT = Stack(
    "no heartbeat",
    NO_KEEPALIVE,
    NO_KEEPALIVE,
    "none",
    "websockets with ping_interval=None on both sides",
)
"""Neither side sends heartbeats: a dead peer goes unnoticed."""


def _engine_io(interval: float, timeout: float) -> tuple[Heartbeat, Heartbeat]:
    # Engine.IO (under Socket.IO) over WebSocket: packet "2" is a ping, "3" a pong. The
    # server pings; the client answers and expects a ping every interval + timeout.
    server = Heartbeat(interval=interval, timeout=timeout, answer=False, ping="2", pong="3")
    client = Heartbeat(silence=interval + timeout, answer=True, ping="2", pong="3")
    return server, client


_SIO_SERVER, _SIO_CLIENT = _engine_io(25.0, 20.0)
# SignalR's JSON hub protocol: a ping is {"type":6} and a record separator (0x1E); nobody
# answers it, each side just expects some message within its timeout.
_SIGNALR = Heartbeat(interval=15.0, silence=30.0, answer=False, ping='{"type":6}\x1e', pong=None)
# Phoenix's V2 JSON serializer: [join_ref, ref, topic, event, payload].
_PHOENIX_CLIENT = Heartbeat(
    interval=30.0,
    timeout=30.0,
    answer=False,
    ping=f'[null,"{REF}","phoenix","heartbeat",{{}}]',
    pong=f'[null,"{REF}","phoenix","phx_reply",{{"status":"ok","response":{{}}}}]',
)
_PHOENIX_SERVER = Heartbeat(
    silence=60.0, answer=True, ping=_PHOENIX_CLIENT.ping, pong=_PHOENIX_CLIENT.pong
)

STACKS: Mapping[str, Stack] = MappingProxyType(
    {
        "websockets": Stack(
            "websockets",
            Side(20.0, 20.0, 10.0),
            Side(20.0, 20.0, 10.0),
            "WebSocket ping",
            "websockets 17: ping_interval=20, ping_timeout=20, close_timeout=10, both sides",
        ),
        "Socket.IO": Stack(
            "Socket.IO",
            Side(None, None, 10.0, _SIO_SERVER),
            Side(None, None, 10.0, _SIO_CLIENT),
            "application message",
            "Socket.IO 4: server pings every 25 s (pingInterval), pong within 20 s "
            "(pingTimeout); client expects a ping within pingInterval + pingTimeout",
        ),
        "SignalR": Stack(
            "SignalR",
            Side(None, None, 10.0, _SIGNALR),
            Side(None, None, 10.0, _SIGNALR),
            "application message",
            "ASP.NET Core SignalR: KeepAliveInterval 15 s both ways; ClientTimeoutInterval "
            "30 s (server), ServerTimeout 30 s (client)",
        ),
        "Phoenix": Stack(
            "Phoenix",
            Side(None, None, 10.0, _PHOENIX_SERVER),
            Side(None, None, 10.0, _PHOENIX_CLIENT),
            "application message",
            "phoenix.js: heartbeat every 30 s, reply before the next one; server: transport "
            "timeout 60 s after the last message received",
        ),
    }
)
"""The defaults of four stacks, modelled over websockets (see each :attr:`Stack.source`).

The other stacks turn websockets' own keepalive off and send their messages instead;
every side waits ``close_timeout`` = 10 s for the closing handshake, as websockets does.
"""


async def _hold(side: Side, websocket: ServerConnection | ClientConnection) -> None:
    """Keep one end of a connection until it closes, with its heartbeat if it has one."""
    if side.tcp_keepalive is not None:
        side.tcp_keepalive.apply(websocket.transport.get_extra_info("socket"))
    if side.heartbeat is not None:
        await side.heartbeat.run(websocket)
        return
    with contextlib.suppress(ConnectionClosed):
        async for _ in websocket:
            pass


async def serve_stack(stack: Stack, port: int = 8765) -> None:
    """Serve on ``port`` with the server side of ``stack``: each connection is held
    (and heartbeats kept) until it closes. Runs until cancelled.

    Compression is off, so that the frames on the wire are the messages themselves.
    """

    async def handler(websocket: ServerConnection) -> None:
        await _hold(stack.server, websocket)

    async with serve(handler, None, port, compression=None, **stack.server.options) as server:  # type: ignore[arg-type]
        await server.serve_forever()


async def connect_stack(stack: Stack, uri: str = "ws://server:8765") -> None:
    """Connect to ``uri`` once with the client side of ``stack`` and hold the connection
    (and its heartbeat) until it closes. Does not reconnect."""
    async with connect(uri, compression=None, **stack.client.options) as websocket:  # type: ignore[arg-type]
        await _hold(stack.client, websocket)
