"""TCP per connection: its two ends, and a pipe for each direction.

A pipe sends segments in order, each after the link's latency. What the course needs from
TCP and nothing more:

- data is retransmitted while the path is cut (RTO from 200 ms, doubling up to 120 s) and
  delivered once it heals, unless the sender gives up first: after 924.6 s, the time Linux
  takes to exhaust ``tcp_retries2 = 15`` retransmissions;
- the receive window: bytes in flight plus bytes not read yet never exceed the receiver's
  buffer; past that, bytes wait on the sender's side, and its write buffer grows.

The handshake, and what an arriving segment does to an end, are the fabric's
(:mod:`wssim.net.fabric`); closing is the transport's (:mod:`wssim.net.transport`). What
this module needs from those modules above it is written here as small protocols:
:class:`Fabric` (the network carrying the connection), :class:`EndTransport` (the
transport over one end) and :class:`Listener` (the listening socket that answered a SYN).
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import random
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from wssim.core.hosts import Host, HostState
from wssim.net.link import Link, Segment
from wssim.trace.events import FaultInfo, Tcp

__all__ = [
    "RECEIVE_BUFFER",
    "RTO_MAX",
    "RTO_MIN",
    "SEND_BUFFER",
    "SYN_RETRY_DELAYS",
    "TCP_USER_TIMEOUT",
    "ConnectionEnd",
    "EndTransport",
    "Fabric",
    "Listener",
    "NetworkObserver",
    "Pipe",
    "TcpConnection",
]

# Looked up per segment: an enum member costs ten times a global to look up.
_UP = HostState.UP

SYN_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
"""Waits after each SYN before the next one (the last one: before giving up)."""
RTO_MIN = 0.2
RTO_MAX = 120.0
TCP_USER_TIMEOUT = 924.6
"""Seconds of unacknowledged data before Linux gives up (``tcp_retries2 = 15``)."""
SEND_BUFFER = 65536
"""Bytes the kernel absorbs before the application's write buffer starts to grow."""
RECEIVE_BUFFER = 131072
"""Bytes the receiving kernel holds for an application that does not read (Linux's default
``tcp_rmem``; its autotuning, which grows the buffer, is not modelled). When it is full the
window closes and the sender's bytes wait on its side."""


class NetworkObserver(Protocol):
    """What the network reports to whoever records the trace."""

    def tcp(
        self,
        conn: TcpConnection | None,
        side: str,
        host: str,
        text: str,
        detail: Tcp | FaultInfo,
        *,
        peer: str = "",
        arrives: float | None = None,
    ) -> None: ...

    def data(self, pipe: Pipe, data: bytes, arrives: float | None) -> None: ...

    def connection_lost(self, endpoint: ConnectionEnd, protocol: asyncio.BaseProtocol) -> None: ...

    def forget(self, conn: TcpConnection) -> None: ...

    constructing: ConnectionEnd | None

    def constructed(self, endpoint: ConnectionEnd, protocol: asyncio.BaseProtocol) -> None: ...


class Fabric(Protocol):
    """What a connection needs from the network that carries it
    (:class:`~wssim.net.fabric.Network`)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def observer(self) -> NetworkObserver: ...

    @property
    def seed(self) -> int: ...

    @property
    def quiet(self) -> contextvars.Context: ...

    def reachable(self, src: Host, dst: Host) -> bool: ...

    def link(self, a: str, b: str) -> Link: ...

    def schedule(self, pipe: Pipe, segment: Segment) -> float: ...

    def call_at(
        self, when: float, conn_index: int, direction: int, fn: Callable[..., None], *args: Any
    ) -> None: ...

    # For the transports above: an end resets its connection, or lets go of it.

    def send_reset(self, endpoint: ConnectionEnd) -> None: ...

    def pipe_closed(self, endpoint: ConnectionEnd) -> None: ...


class EndTransport(Protocol):
    """What TCP and the fabric call on the transport over one end
    (:class:`~wssim.net.transport.SimTransport`)."""

    @property
    def unread_bytes(self) -> int: ...

    @property
    def lost(self) -> bool: ...

    def _update_flow_control(self) -> None: ...

    def _deliver(self, segment: Segment) -> None: ...

    def _lose(self, exc: Exception | None) -> None: ...

    def _closed_by_os(self, *, power_lost: bool = False) -> None: ...


class Listener(Protocol):
    """What a connection keeps of the listening socket that answered its SYN
    (:class:`~wssim.net.transport.SimServer`)."""

    @property
    def accepting(self) -> bool: ...

    def _accept(self, endpoint: ConnectionEnd) -> object: ...


# What the trace calls each kind of segment a pipe sends (DATA is decoded, ACK left out).
_SEGMENTS = {"SYN-ACK": Tcp.SYN_ACK, "FIN": Tcp.FIN, "RST": Tcp.RST}


class ConnectionEnd:
    """One end of a TCP connection: a socket on a host."""

    def __init__(self, conn: TcpConnection, side: str, host: Host, port: int) -> None:
        self.conn = conn
        self.side = side  # "client" (connected) or "server" (accepted)
        self.host = host
        self.boot = host.boot
        self.port = port
        self.transport: EndTransport | None = None
        self.closed = False  # the socket is closed: arriving data is answered with RST
        self.fin_received = False

    @property
    def address(self) -> tuple[str, int]:
        return (self.host.name, self.port)

    @property
    def label(self) -> str:
        return f"{self.host.name}:{self.port}"

    @property
    def alive(self) -> bool:
        """The process owning this socket still runs."""
        return self.host.boot == self.boot and self.host.state is _UP


class Pipe:
    """One direction of a connection: an ordered stream of segments."""

    def __init__(
        self, network: Fabric, conn: TcpConnection, src: ConnectionEnd, dst: ConnectionEnd
    ):
        self.network = network
        self.conn = conn
        self.src = src
        self.dst = dst
        self.direction = 0 if src.side == "client" else 1
        self.last_arrival = 0.0
        # Segments waiting for retransmission, in order. Made when first needed, as is
        # `waiting` below: an empty deque weighs 624 bytes, and most pipes never need one.
        self.stuck: deque[Segment] | None = None
        self.stuck_bytes = 0
        self.stuck_since = 0.0
        self.rto = RTO_MIN
        self.retransmit_timer: asyncio.TimerHandle | None = None
        self._rng: random.Random | None = None
        self.wire_free_at = 0.0  # with a bandwidth limit: when the wire is free again
        self.unsent_bytes = 0  # with a bandwidth limit: bytes waiting for the wire
        self.waiting: deque[Segment] | None = None  # the receiver's window is closed
        self.waiting_bytes = 0
        self.in_flight = 0  # data bytes on the wire, not landed yet
        self.update_pending = False  # a window update is on its way to the sender
        self.window_reported = False  # the trace says the window is closed

    @property
    def open(self) -> bool:
        """Can a segment sent now get through to the receiver?"""
        return not self.conn.blackholed and self.network.reachable(self.src.host, self.dst.host)

    @property
    def buffered_bytes(self) -> int:
        """Bytes sent by the application that the receiver has not taken yet."""
        return self.stuck_bytes + self.unsent_bytes + self.waiting_bytes

    @property
    def rng(self) -> random.Random:
        """This direction's own generator for jitter: draws never depend on other traffic.

        Made on first use: a generator weighs about 5 KB, and most links have no jitter.
        """
        if self._rng is None:
            seed = f"{self.network.seed}/{self.conn.id}/{self.direction}"
            self._rng = random.Random(seed)
        return self._rng

    def send(self, segment: Segment) -> None:
        """Send ``segment`` as far as the receiver's window lets it go; the rest waits."""
        if self.waiting:
            self._wait_for_window(segment)
            return
        if segment.kind == "DATA":
            room = self._room()
            if room < len(segment.data):
                if room > 0:
                    self._transmit(Segment("DATA", segment.data[:room]))
                    segment = Segment("DATA", segment.data[room:])
                self._wait_for_window(segment)
                return
        self._transmit(segment)

    def _transmit(self, segment: Segment) -> None:
        net = self.network
        now = net.loop.time()
        if self.stuck or not self.open:
            if not self.stuck:
                self._start_retransmitting(now)
            self._stick(segment)
            arrives = None
        else:
            arrives = net.schedule(self, segment)
        if segment.kind == "DATA":
            net.observer.data(self, segment.data, arrives)
        elif segment.kind != "ACK":
            net.observer.tcp(
                self.conn,
                self.src.side,
                self.src.host.name,
                segment.kind,
                _SEGMENTS[segment.kind],
                peer=self.dst.host.name,
                arrives=arrives,
            )

    def _stick(self, segment: Segment) -> None:
        if self.stuck is None:
            self.stuck = deque()
        self.stuck.append(segment)
        self.stuck_bytes += len(segment.data)
        if self.src.transport is not None:
            self.src.transport._update_flow_control()

    def _start_retransmitting(self, now: float) -> None:
        self.stuck_since = now
        self.rto = RTO_MIN
        self.retransmit_timer = self.network.loop.call_at(
            now + self.rto, self._retransmit, context=self.network.quiet
        )

    def lost_in_flight(self, segment: Segment) -> None:
        """A segment vanished on the way: the sender will send it again."""
        if not self.stuck:
            self._start_retransmitting(self.network.loop.time())
        self._stick(segment)

    def _retransmit(self) -> None:
        net = self.network
        now = net.loop.time()
        self.retransmit_timer = None
        if self.open:
            segments, self.stuck = list(self.stuck or ()), None
            self.stuck_bytes = 0
            size = sum(len(s.data) for s in segments)
            arrives = 0.0
            for segment in segments:
                arrives = net.schedule(self, segment)
            net.observer.tcp(
                self.conn,
                self.src.side,
                self.src.host.name,
                f"retransmission ({size} bytes)",
                Tcp.RETRANSMISSION,
                peer=self.dst.host.name,
                arrives=arrives,
            )
            if self.src.transport is not None:
                self.src.transport._update_flow_control()
            return
        if now - self.stuck_since >= TCP_USER_TIMEOUT - 1e-9:
            self.stuck = None
            self.stuck_bytes = 0
            net.observer.tcp(
                self.conn,
                self.src.side,
                self.src.host.name,
                f"gave up retransmitting after {now - self.stuck_since:g} s: connection timed out",
                Tcp.TIMED_OUT,
            )
            self.src.closed = True
            if self.src.transport is not None:
                self.src.transport._lose(TimeoutError(errno.ETIMEDOUT, "Connection timed out"))
            return
        self.rto = min(self.rto * 2, RTO_MAX)
        delay = min(self.rto, self.stuck_since + TCP_USER_TIMEOUT - now)
        self.retransmit_timer = net.loop.call_at(now + delay, self._retransmit, context=net.quiet)

    def sent(self, size: int) -> None:
        """With a bandwidth limit: ``size`` bytes left the sender's buffer for the wire."""
        self.unsent_bytes = max(0, self.unsent_bytes - size)
        if self.src.transport is not None:
            self.src.transport._update_flow_control()

    # The receive window: bytes in flight plus bytes the receiver has not read yet never
    # exceed its receive buffer. Past that, bytes wait on the sender's side, where they
    # count in its write buffer, which is what makes flow control reach the application.

    def _room(self) -> int:
        """Bytes the receiver's window takes now."""
        receiver = self.dst.transport
        unread = receiver.unread_bytes if receiver is not None else 0
        return RECEIVE_BUFFER - self.in_flight - unread

    def _wait_for_window(self, segment: Segment) -> None:
        net = self.network
        receiver = self.dst.transport
        if (
            not self.window_reported
            and receiver is not None
            and receiver.unread_bytes >= RECEIVE_BUFFER // 2
        ):
            # The reader is behind (not just the wire full): worth a line in the trace.
            self.window_reported = True
            net.observer.tcp(
                self.conn,
                self.dst.side,
                self.dst.host.name,
                f"receive buffer full ({receiver.unread_bytes} bytes unread): "
                f"zero window, the sender waits",
                Tcp.WINDOW_FULL,
            )
        if self.waiting is None:
            self.waiting = deque()
        self.waiting.append(segment)
        self.waiting_bytes += len(segment.data)
        if self.src.transport is not None:
            self.src.transport._update_flow_control()

    def window_update(self) -> None:
        """The receiver made room (it read, or bytes landed): tell the sender, which
        learns it one latency later, as from an ACK."""
        if not self.waiting or self.update_pending:
            return
        self.update_pending = True
        net = self.network
        back = net.link(self.dst.host.name, self.src.host.name).latency
        net.call_at(
            net.loop.time() + back, self.conn.index, 1 - self.direction, self._window_opened
        )

    def _window_opened(self) -> None:
        self.update_pending = False
        if not self.src.alive or not self.waiting:
            return
        if self.waiting[0].kind == "DATA" and self._room() <= 0:
            return  # still no room: the window stays closed
        if self.window_reported:
            self.window_reported = False
            self.network.observer.tcp(
                self.conn,
                self.dst.side,
                self.dst.host.name,
                "window open: the sender resumes",
                Tcp.WINDOW_OPEN,
            )
        while self.waiting:
            segment = self.waiting[0]
            if segment.kind == "DATA":
                room = self._room()
                if room <= 0:
                    break
                if room < len(segment.data):
                    # As much as fits goes now; the rest waits for the next window update.
                    self.waiting[0] = Segment("DATA", segment.data[room:])
                    self.waiting_bytes -= room
                    self._transmit(Segment("DATA", segment.data[:room]))
                    break
            self.waiting.popleft()
            self.waiting_bytes -= len(segment.data)
            self._transmit(segment)
        if self.src.transport is not None:
            self.src.transport._update_flow_control()

    def drop(self) -> None:
        """Forget everything not yet sent (the socket is gone)."""
        self.stuck = None
        self.stuck_bytes = 0
        self.waiting = None
        self.waiting_bytes = 0
        self.unsent_bytes = 0
        self.update_pending = False
        if self.retransmit_timer is not None:
            self.retransmit_timer.cancel()
            self.retransmit_timer = None


class TcpConnection:
    """A TCP connection between a client endpoint and a server endpoint."""

    def __init__(
        self, network: Fabric, index: int, client: Host, port: int, target: Host, target_port: int
    ) -> None:
        self.network = network
        self.index = index
        self.id = f"c{index}"
        self.client = ConnectionEnd(self, "client", client, port)
        self.target = target
        self.target_port = target_port
        # Resolved when the SYN-ACK arrives (or fails: refused, timed out).
        self.established: asyncio.Future[None] = network.loop.create_future()
        self.listener: Listener | None = None
        self.server: ConnectionEnd | None = None
        self.to_server: Pipe | None = None
        self.to_client: Pipe | None = None
        # A middlebox forgot this flow: whatever either end sends vanishes.
        self.blackholed = False

    def __repr__(self) -> str:
        server = self.server.label if self.server else "?"
        return f"<TcpConnection {self.id} {self.client.label} -> {server}>"

    def endpoint(self, side: str) -> ConnectionEnd | None:
        return self.client if side == "client" else self.server

    def pipe_from(self, endpoint: ConnectionEnd) -> Pipe:
        pipe = self.to_server if endpoint.side == "client" else self.to_client
        assert pipe is not None
        return pipe
