"""A TCP-like network between simulated hosts.

Connections carry bytes in order, each direction after the link's latency. The model keeps
what the course needs from TCP and nothing more:

- opening: SYN, SYN-ACK, ACK; refused (RST) when nothing listens; SYN retransmitted after
  1, 2, 4, 8, 16 and 32 s when unanswered, then a timeout 127 s after the first SYN
  (Linux, ``tcp_syn_retries = 6``);
- data is retransmitted while the path is cut (RTO from 200 ms, doubling up to 120 s) and
  delivered once it heals, unless the sender gives up first: after 924.6 s, the time Linux
  takes to exhaust ``tcp_retries2 = 15`` retransmissions;
- orderly close sends FIN, abort sends RST; data arriving at a closed socket is answered
  with RST;
- reading can be paused (the data waits), and the write buffer reports what is stuck.

Every delivery goes through one heap ordered by (time, connection, direction, sequence):
deliveries due at the same instant happen in the same order in every run, whatever order
the senders wrote in.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import heapq
import itertools
import random
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from wssim.core.hosts import Host, HostState, current_host, running_on
from wssim.trace.events import FaultInfo, Tcp

if TYPE_CHECKING:
    from wssim.core.clock import VirtualClockLoop

__all__ = [
    "LOOPBACK_NAMES",
    "Link",
    "Network",
    "NetworkObserver",
    "PathEffect",
    "Segment",
    "SimServer",
    "SimTransport",
    "TcpConnection",
]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# Looked up per segment: an enum member costs ten times a global to look up.
_UP, _OFF = HostState.UP, HostState.OFF
WILDCARD_NAMES = (None, "", "0.0.0.0", "::")

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
EPHEMERAL_PORTS = 49152


MAX_DELAY = 86_400.0
"""The longest one-way latency or jitter a link may have: one day, in seconds."""


@dataclass(frozen=True)
class Link:
    """Properties of the path between two hosts.

    Attributes:
        latency: one-way delay in seconds.
        jitter: extra one-way delay, uniform in ``[0, jitter]`` seconds, drawn per segment.
            Bytes of one connection never overtake each other: a segment never arrives
            before the one sent ahead of it.
        bandwidth: bytes per second each connection can send in each direction, or None
            for no limit. Bytes wait in the sender's buffer until their turn on the wire,
            so a fast writer fills its buffer and flow control engages.
    """

    latency: float = 0.010
    jitter: float = 0.0
    bandwidth: float | None = None

    def __post_init__(self) -> None:
        for name in ("latency", "jitter"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (0 <= value <= MAX_DELAY)
            ):
                raise ValueError(
                    f"{name} must be a number of seconds from 0 to {MAX_DELAY:g}, got {value!r}"
                )
        bandwidth = self.bandwidth
        if bandwidth is not None and (
            isinstance(bandwidth, bool)
            or not isinstance(bandwidth, int | float)
            or not (0 < bandwidth < float("inf"))
        ):
            raise ValueError(
                f"bandwidth must be None (unlimited) or a finite number of bytes per second "
                f"> 0, got {bandwidth!r}"
            )


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


class PathEffect:
    """Something on the path between two hosts that acts on each segment (a fault).

    Subclasses override what they need; the defaults let everything through unchanged.
    """

    def passing(self, pipe: Pipe, segment: Segment, delay: float) -> list[tuple[Segment, float]]:
        """Return the pieces to deliver for ``segment``, each with its extra delay."""
        return [(segment, delay)]

    def established(self, conn: TcpConnection) -> None:
        """A connection across this path was just established."""

    def forget(self, conn: TcpConnection) -> None:
        """``conn`` is over: let go of anything kept about it."""


# What the trace calls each kind of segment a pipe sends (DATA is decoded, ACK left out).
_SEGMENTS = {"SYN-ACK": Tcp.SYN_ACK, "FIN": Tcp.FIN, "RST": Tcp.RST}


class Segment:
    """What travels on the wire: a TCP segment, as much of it as the model needs."""

    __slots__ = ("data", "kind")

    def __init__(self, kind: str, data: bytes = b"") -> None:
        self.kind = kind  # "SYN-ACK", "ACK", "DATA", "FIN" or "RST"
        self.data = data


class ConnectionEnd:
    """One end of a TCP connection: a socket on a host."""

    def __init__(self, conn: TcpConnection, side: str, host: Host, port: int) -> None:
        self.conn = conn
        self.side = side  # "client" (connected) or "server" (accepted)
        self.host = host
        self.boot = host.boot
        self.port = port
        self.transport: SimTransport | None = None
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
        self, network: Network, conn: TcpConnection, src: ConnectionEnd, dst: ConnectionEnd
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
        self, network: Network, index: int, client: Host, port: int, target: Host, target_port: int
    ) -> None:
        self.network = network
        self.index = index
        self.id = f"c{index}"
        self.client = ConnectionEnd(self, "client", client, port)
        self.target = target
        self.target_port = target_port
        # Resolved when the SYN-ACK arrives (or fails: refused, timed out).
        self.established: asyncio.Future[None] = network.loop.create_future()
        self.listener: SimServer | None = None
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


class _Socket:
    """Just enough of a socket for ``server.sockets`` and ``get_extra_info('socket')``."""

    family = socket.AF_INET
    type = socket.SOCK_STREAM

    def __init__(self, address: tuple[str, int]) -> None:
        self._address = address

    def getsockname(self) -> tuple[str, int]:
        return self._address

    def __repr__(self) -> str:
        return f"<simulated socket {self._address[0]}:{self._address[1]}>"


class SimTransport(asyncio.Transport):
    """The asyncio transport of one endpoint, over a simulated connection."""

    def __init__(self, endpoint: ConnectionEnd, protocol: asyncio.BaseProtocol) -> None:
        super().__init__()
        self._endpoint = endpoint
        # A stream transport drives a stream protocol (data_received, eof_received...).
        self._protocol = cast(asyncio.Protocol, protocol)
        self._network = endpoint.conn.network
        self._closing = False
        self._lost = False
        self._reading = True
        self._unread: deque[Segment] = deque()
        self._unread_bytes = 0  # received, not read by the application yet
        self._high = 64 * 1024
        self._low = 16 * 1024
        self._writing_paused = False
        self._eof_sent = False

    # Information

    @property
    def endpoint(self) -> ConnectionEnd:
        """The simulated socket behind this transport."""
        return self._endpoint

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        ep = self._endpoint
        peer = ep.conn.endpoint("server" if ep.side == "client" else "client")
        if name == "sockname":
            return ep.address
        if name == "peername":
            return peer.address if peer is not None else default
        if name == "socket":
            return _Socket(ep.address)
        if name == "connection":
            return ep.conn
        return default

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = cast(asyncio.Protocol, protocol)

    def is_closing(self) -> bool:
        return self._closing

    # Writing

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._endpoint.closed or not self._endpoint.alive:
            return
        if self._eof_sent:
            # As asyncio's own transports: data after our FIN would be a protocol error.
            raise RuntimeError("Cannot call write() after write_eof()")
        if not data:
            return
        pipe = self._pipe()
        pipe.send(Segment("DATA", bytes(data)))
        if pipe.buffered_bytes > SEND_BUFFER:
            # Only bytes beyond the kernel's buffer count: most writes leave none.
            self._update_flow_control()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        ep = self._endpoint
        if self._closing or ep.closed or not ep.alive or self._eof_sent:
            return
        self._eof_sent = True
        self._pipe().send(Segment("FIN"))

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        ep = self._endpoint
        if ep.alive and not ep.closed:
            if not self._eof_sent:
                self._eof_sent = True
                self._pipe().send(Segment("FIN"))
            ep.closed = True
        self._incoming().window_update()
        self._network.loop.call_soon(self._call_connection_lost, None)

    def abort(self) -> None:
        if self._lost:
            return
        self._closing = True
        ep = self._endpoint
        if ep.alive and not ep.closed:
            ep.closed = True
            self._network.send_reset(ep)
        self._network.loop.call_soon(self._call_connection_lost, None)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self._update_flow_control()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low, self._high)

    def get_write_buffer_size(self) -> int:
        """Bytes waiting beyond what the kernel's send buffer holds."""
        return max(0, self._pipe().buffered_bytes - SEND_BUFFER)

    def _update_flow_control(self) -> None:
        if self._lost:
            return
        size = self.get_write_buffer_size()
        if not self._writing_paused and size > self._high:
            self._writing_paused = True
            self._endpoint.host.run_here(self._protocol.pause_writing)
        elif self._writing_paused and size <= self._low:
            self._writing_paused = False
            self._endpoint.host.run_here(self._protocol.resume_writing)

    # Reading

    def is_reading(self) -> bool:
        return self._reading and not self._closing

    def pause_reading(self) -> None:
        self._reading = False

    def resume_reading(self) -> None:
        if self._reading:
            return
        self._reading = True
        if self._unread:
            self._network.loop.call_soon(self._flush_unread)

    def _flush_unread(self) -> None:
        if self._endpoint.host.frozen:
            return
        host = self._endpoint.host
        while self._unread and self._reading and not self._lost:
            segment = self._unread.popleft()
            self._unread_bytes -= len(segment.data)
            host.run_here(self._receive, segment)
        self._incoming().window_update()

    @property
    def unread_bytes(self) -> int:
        """Bytes received that the application has not read yet (0 once it closed)."""
        return 0 if self._closing else self._unread_bytes

    def _deliver(self, segment: Segment) -> None:
        """A segment arrived for this endpoint's application.

        It waits in the kernel's receive buffer while the application does not read, or
        while its process is frozen: there it takes room in the receive window.
        """
        if self._lost:
            return
        host = self._endpoint.host
        if not self._reading or self._unread or host.frozen:
            self._unread.append(segment)
            self._unread_bytes += len(segment.data)
            return
        host.run_here(self._receive, segment)

    def _receive(self, segment: Segment) -> None:
        if segment.kind == "DATA":
            self._protocol.data_received(segment.data)
        elif segment.kind == "FIN":
            keep_open = self._protocol.eof_received()
            if not keep_open:
                self.close()

    @property
    def has_unread_data(self) -> bool:
        return any(segment.kind == "DATA" for segment in self._unread)

    # Losing the connection

    def _closed_by_os(self, *, power_lost: bool = False) -> None:
        """The owning process died: the OS closes the socket, with RST if data was unread.

        When the power is lost there is no OS left: nothing is sent at all.
        """
        ep = self._endpoint
        if power_lost:
            ep.closed = True
            self._pipe().drop()
        elif self.has_unread_data or self._incoming().waiting:
            self._network.send_reset(ep)
        else:
            if not self._eof_sent:
                self._eof_sent = True
                self._pipe().send(Segment("FIN"))
            ep.closed = True
        self._closing = True
        self._lost = True
        self._network.pipe_closed(ep)
        # The dead process's code is being cancelled, and its cleanup may wait for the
        # connection to be lost (websockets' closing code does): tell the protocol, in an
        # empty context, so that nothing it does is seen as the host's and nothing is
        # recorded. Otherwise those tasks would wait, and hold their memory, for ever.
        self._network.loop.call_soon(
            self._protocol.connection_lost, None, context=contextvars.Context()
        )

    @property
    def lost(self) -> bool:
        """True once the application has been told that the connection is gone."""
        return self._lost

    def _lose(self, exc: Exception | None) -> None:
        """The connection is gone under us (reset, timed out)."""
        self._closing = True
        self._network.loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        ep = self._endpoint
        if ep.host.frozen and ep.alive:
            # The process learns it when it runs again, after reading what was queued
            # before (Linux lets queued data be read before it reports a reset).
            ep.host.run_here(self._call_connection_lost, exc)
            return
        self._lost = True
        self._network.pipe_closed(ep)
        if not ep.alive:
            return  # the process is dead: nobody is left to tell
        ep.host.run_here(self._protocol.connection_lost, exc)
        self._network.observer.connection_lost(ep, self._protocol)

    def _pipe(self) -> Pipe:
        """The direction this endpoint sends on."""
        return self._endpoint.conn.pipe_from(self._endpoint)

    def _incoming(self) -> Pipe:
        """The direction this endpoint receives on."""
        ep = self._endpoint
        conn = ep.conn
        pipe = conn.to_client if ep.side == "client" else conn.to_server
        assert pipe is not None
        return pipe


class SimServer(asyncio.AbstractServer):
    """A listening socket on a simulated host (what ``loop.create_server`` returns)."""

    def __init__(
        self,
        network: Network,
        host: Host,
        port: int,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
    ) -> None:
        self._network = network
        self.host = host
        self.boot = host.boot
        self.port = port
        self._protocol_factory = protocol_factory
        self._serving = False
        self._closed = False
        self._closed_waiter: asyncio.Future[None] = network.loop.create_future()
        self._serving_forever: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<SimServer {self.host.name}:{self.port}>"

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        if self._closed:
            return ()
        return (_Socket((self.host.name, self.port)),)  # type: ignore[return-value]

    @property
    def accepting(self) -> bool:
        return self._serving and not self._closed and self.host.boot == self.boot

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._serving = False
        self._network.unlisten(self)
        if not self._closed_waiter.done():
            self._closed_waiter.set_result(None)
        if self._serving_forever is not None and not self._serving_forever.done():
            self._serving_forever.cancel()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._network.loop

    def is_serving(self) -> bool:
        return self._serving and not self._closed

    async def start_serving(self) -> None:
        if self._closed:
            raise RuntimeError(f"server {self!r} is closed")
        self._serving = True

    async def serve_forever(self) -> None:
        if self._serving_forever is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        await self.start_serving()
        self._serving_forever = self._network.loop.create_future()
        try:
            await self._serving_forever
        except asyncio.CancelledError:
            self.close()
            raise
        finally:
            self._serving_forever = None

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed_waiter)

    def _accept(self, endpoint: ConnectionEnd) -> SimTransport:
        protocol = self._network.construct(self._protocol_factory, endpoint)
        transport = SimTransport(endpoint, protocol)
        endpoint.transport = transport
        protocol.connection_made(transport)
        return transport


class Network:
    """The wire between hosts: connections, listeners, links and partitions."""

    def __init__(
        self,
        loop: VirtualClockLoop,
        observer: NetworkObserver,
        *,
        seed: int,
        latency: float,
    ) -> None:
        self.loop = loop
        self.observer = observer
        self.seed = seed
        self.default_link = Link(latency)
        self.hosts: dict[str, Host] = {}
        self.links: dict[tuple[str, str], Link] = {}
        self.partitions: dict[tuple[str, str], None] = {}
        self.isolated: dict[str, None] = {}
        self.listeners: dict[tuple[str, int], SimServer] = {}
        self.connections: dict[TcpConnection, None] = {}
        # The same connections by the hosts at their ends, so that a crash visits only its own.
        self.by_host: dict[str, dict[TcpConnection, None]] = {}
        # Faults acting on the path between two hosts (slicer, slow close...), by host pair.
        self.effects: dict[tuple[str, str], list[PathEffect]] = {}
        # The network's own timers run in an empty context: they belong to no host, so a
        # frozen host never holds them back and nothing they start is adopted by a host.
        self.quiet = contextvars.Context()
        self._conn_numbers = itertools.count(1)
        self._seq = itertools.count()
        self._next_port: dict[str, int] = {}
        self._heap: list[tuple[float, int, int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = float("inf")
        self._pumping = False  # while delivering, new entries wait for the pump to re-arm

    # Topology

    @staticmethod
    def _pair(a: str, b: str) -> tuple[str, str]:
        return (a, b) if a <= b else (b, a)

    def link(self, a: str, b: str) -> Link:
        if a == b:
            return Link(0.0)
        return self.links.get(self._pair(a, b), self.default_link)

    def set_link(self, a: str, b: str, link: Link) -> None:
        self.links[self._pair(a, b)] = link

    def partition(self, a: str, b: str) -> None:
        self.partitions[self._pair(a, b)] = None

    def heal(self, a: str, b: str) -> None:
        self.partitions.pop(self._pair(a, b), None)

    def reachable(self, src: Host, dst: Host) -> bool:
        """Can a segment sent now from ``src`` reach ``dst``?"""
        if dst.state is _OFF:
            return False
        if self.isolated and (src.name in self.isolated or dst.name in self.isolated):
            return False
        return not self.partitions or self._pair(src.name, dst.name) not in self.partitions

    def isolate(self, host: Host) -> None:
        """Nothing reaches ``host`` or leaves it (a machine asleep) until :meth:`unisolate`."""
        self.isolated[host.name] = None

    def unisolate(self, host: Host) -> None:
        self.isolated.pop(host.name, None)

    def add_effect(self, a: str, b: str, effect: PathEffect) -> None:
        """Make ``effect`` act on every segment between hosts ``a`` and ``b``."""
        self.effects.setdefault(self._pair(a, b), []).append(effect)

    def remove_effect(self, a: str, b: str, effect: PathEffect) -> None:
        pair = self._pair(a, b)
        effects = self.effects.get(pair, [])
        if effect in effects:
            effects.remove(effect)
        if not effects:
            self.effects.pop(pair, None)

    def connections_between(self, a: str, b: str) -> list[TcpConnection]:
        """Connections between hosts ``a`` and ``b`` (either way) that are not over."""
        pair = self._pair(a, b)
        return [
            conn
            for conn in self.connections
            if conn.server is not None
            and self._pair(conn.client.host.name, conn.target.name) == pair
        ]

    # Delivery: one heap, so that equal times always resolve in the same order

    def schedule(self, pipe: Pipe, segment: Segment) -> float:
        """Put ``segment`` on the wire; return when it arrives (the last piece, if cut)."""
        src, dst = pipe.src.host.name, pipe.dst.host.name
        if self.effects:
            effects = self.effects.get(self._pair(src, dst))
            if effects:
                pieces = [(segment, 0.0)]
                for effect in effects:
                    pieces = [out for s, d in pieces for out in effect.passing(pipe, s, d)]
                arrives = self.loop.time()
                for piece, extra in pieces:
                    arrives = self.put_on_wire(pipe, piece, extra)
                return arrives
        return self.put_on_wire(pipe, segment, 0.0)

    def put_on_wire(self, pipe: Pipe, segment: Segment, extra: float = 0.0) -> float:
        """Send ``segment`` now, ``extra`` seconds late, past any path effect; return its
        arrival time."""
        link = self.link(pipe.src.host.name, pipe.dst.host.name)
        now = self.loop.time()
        departs = now
        if link.bandwidth is not None and segment.data:
            # Bytes take their turn on the wire; until then they sit in the sender's buffer.
            size = len(segment.data)
            departs = max(now, pipe.wire_free_at) + size / link.bandwidth
            pipe.wire_free_at = departs
            pipe.unsent_bytes += size
            self.call_at(departs, pipe.conn.index, pipe.direction, pipe.sent, size)
        pipe.in_flight += len(segment.data)
        delay = link.latency + (pipe.rng.uniform(0, link.jitter) if link.jitter else 0.0)
        arrives = max(departs + delay + extra, pipe.last_arrival)
        pipe.last_arrival = arrives
        self.call_at(arrives, pipe.conn.index, pipe.direction, self._arrive, pipe, segment)
        return arrives

    def call_at(
        self, when: float, conn_index: int, direction: int, fn: Callable[..., None], *args: Any
    ) -> None:
        """Call ``fn(*args)`` at ``when``, after every earlier delivery, in a fixed order."""
        heapq.heappush(self._heap, (when, conn_index, direction, next(self._seq), fn, args))
        if not self._pumping:
            self._arm()

    def _arm(self) -> None:
        """Keep exactly one loop timer, set for the earliest pending delivery."""
        if not self._heap:
            return
        when = self._heap[0][0]
        if when < self._timer_when:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_when = when
            self._timer = self.loop.call_at(when, self._pump, context=self.quiet)

    def _pump(self) -> None:
        self._timer = None
        self._timer_when = float("inf")
        heap = self._heap
        self._pumping = True
        try:
            while heap and heap[0][0] <= self.loop.time() + 1e-9:
                *_, fn, args = heapq.heappop(heap)
                fn(*args)
        finally:
            self._pumping = False
            self._arm()

    def _arrive(self, pipe: Pipe, segment: Segment) -> None:
        src, dst = pipe.src, pipe.dst
        if pipe.stuck or not pipe.open:
            # Cut while in flight, or behind a segment that was: wait for retransmission.
            pipe.in_flight -= len(segment.data)
            if src.alive and segment.kind != "RST":
                pipe.lost_in_flight(segment)
            return
        if dst.host.frozen and dst.transport is None and segment.kind in ("DATA", "FIN"):
            # The connection waits for a frozen process to accept it: what follows waits
            # behind the accept, in order, and keeps its room in the receive window.
            dst.host.run_here(self._arrive, pipe, segment)
            return
        if segment.data:
            pipe.in_flight -= len(segment.data)
            if pipe.waiting:
                pipe.window_update()
        if segment.kind == "SYN-ACK":
            self._syn_ack_arrived(pipe.conn)
            return
        if segment.kind == "ACK":
            self._ack_arrived(pipe.conn)
            return
        if segment.kind == "RST":
            self._reset_arrived(dst)
            return
        # DATA or FIN for an established endpoint.
        if dst.closed or not dst.alive or dst.transport is None:
            if segment.kind == "DATA" and not dst.fin_received:
                self.send_reset(dst)
            return
        transport = dst.transport
        if segment.kind == "FIN":
            dst.fin_received = True
        transport._deliver(segment)

    def construct(
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], endpoint: ConnectionEnd
    ) -> asyncio.BaseProtocol:
        """Create the protocol of ``endpoint``, telling the observer whose it is."""
        self.observer.constructing = endpoint
        try:
            protocol = protocol_factory()
        finally:
            self.observer.constructing = None
        self.observer.constructed(endpoint, protocol)
        return protocol

    def send_reset(self, endpoint: ConnectionEnd) -> None:
        """Send an RST from ``endpoint``: whatever was waiting to be sent is discarded."""
        endpoint.closed = True
        pipe = endpoint.conn.pipe_from(endpoint)
        pipe.drop()
        if pipe.open:
            arrives: float | None = self.schedule(pipe, Segment("RST"))
        else:
            arrives = None
        self.observer.tcp(
            endpoint.conn,
            endpoint.side,
            endpoint.host.name,
            "RST",
            Tcp.RST,
            peer=pipe.dst.host.name,
            arrives=arrives,
        )

    def _reset_arrived(self, endpoint: ConnectionEnd) -> None:
        if endpoint.closed or not endpoint.alive:
            return
        endpoint.closed = True
        endpoint.conn.pipe_from(endpoint).drop()
        self.observer.tcp(
            endpoint.conn, endpoint.side, endpoint.host.name, "connection reset by peer", Tcp.RESET
        )
        if endpoint.transport is not None:
            endpoint.transport._lose(
                ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
            )

    def reset_both_ends(self, conn: TcpConnection, why: str, cause: FaultInfo) -> None:
        """Something on the path (``cause``) resets ``conn``: both ends receive an RST now."""
        self.observer.tcp(conn, "client", conn.client.host.name, why, cause)
        for endpoint in (conn.client, conn.server):
            if endpoint is not None:
                self._reset_arrived(endpoint)

    def pipe_closed(self, endpoint: ConnectionEnd) -> None:
        """The application let go of this endpoint; forget the connection once both did."""
        conn = endpoint.conn
        other = conn.endpoint("server" if endpoint.side == "client" else "client")
        if other is None or other.transport is None or other.transport.lost:
            self.forget(conn)

    def forget(self, conn: TcpConnection) -> None:
        """Both ends are done with ``conn``: let go of it (its protocols, its buffers)."""
        if conn not in self.connections:
            return
        del self.connections[conn]
        for name in (conn.client.host.name, conn.target.name):
            self.by_host.get(name, {}).pop(conn, None)
        if self.effects:
            for effect in self.effects.get(self._pair(conn.client.host.name, conn.target.name), []):
                effect.forget(conn)
        self.observer.forget(conn)

    # Listening

    def listen(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | None,
        port: int | None,
        *,
        start_serving: bool,
    ) -> SimServer:
        here = self._require_host("create_server")
        if host not in WILDCARD_NAMES and host not in LOOPBACK_NAMES and host != here.name:
            raise OSError(
                errno.EADDRNOTAVAIL,
                f"cannot bind to {host!r} from host {here.name!r}: "
                f"a server binds to the host it runs on",
            )
        if port is None or port == 0:
            port = self._ephemeral_port(here)
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"port must be an integer from 1 to 65535, got {port!r}")
        existing = self.listeners.get((here.name, port))
        if existing is not None and existing.host.boot == here.boot:
            raise OSError(errno.EADDRINUSE, f"address already in use: {here.name}:{port}")
        server = SimServer(self, here, port, protocol_factory)
        self.listeners[(here.name, port)] = server
        if start_serving:
            server._serving = True
        self.observer.tcp(
            None, "server", here.name, f"listening on {here.name}:{port}", Tcp.LISTENING
        )
        return server

    def unlisten(self, server: SimServer) -> None:
        if self.listeners.get((server.host.name, server.port)) is server:
            del self.listeners[(server.host.name, server.port)]

    # Connecting

    async def connect(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str,
        port: int,
    ) -> tuple[SimTransport, asyncio.BaseProtocol]:
        here = self._require_host("create_connection")
        target = self.resolve(here, host)
        conn = TcpConnection(
            self, next(self._conn_numbers), here, self._ephemeral_port(here), target, port
        )
        self.connections[conn] = None
        for name in (here.name, target.name):
            self.by_host.setdefault(name, {})[conn] = None
        self._send_syn(conn, attempt=0)
        try:
            await conn.established
        except BaseException:
            conn.client.closed = True
            self.forget(conn)
            raise
        # The final ACK of the three-way handshake goes out before any data.
        assert conn.to_server is not None
        conn.to_server.send(Segment("ACK"))
        protocol = self.construct(protocol_factory, conn.client)
        transport = SimTransport(conn.client, protocol)
        conn.client.transport = transport
        protocol.connection_made(transport)
        return transport, protocol

    def _send_syn(self, conn: TcpConnection, attempt: int) -> None:
        established = conn.established
        if established.done() or not conn.client.alive:
            return
        target, port = conn.target, conn.target_port
        client = conn.client
        if attempt == len(SYN_RETRY_DELAYS):
            text = "connect timed out (no SYN-ACK)"
            self.observer.tcp(conn, "client", client.host.name, text, Tcp.CONNECT_TIMEOUT)
            established.set_exception(
                TimeoutError(errno.ETIMEDOUT, f"Connect call failed ({target.name!r}, {port})")
            )
            return
        if attempt == 0:
            text, what = "SYN", Tcp.SYN
        else:
            text, what = f"SYN (retransmission {attempt})", Tcp.SYN_RETRANSMISSION
        link = self.link(client.host.name, target.name)
        arrives: float | None = None
        if self.reachable(client.host, target):
            arrives = self.loop.time() + link.latency
            self.call_at(arrives, conn.index, 0, self._syn_arrived, conn)
        self.observer.tcp(
            conn, "client", client.host.name, text, what, peer=target.name, arrives=arrives
        )
        self.loop.call_later(
            SYN_RETRY_DELAYS[attempt], self._send_syn, conn, attempt + 1, context=self.quiet
        )

    def _syn_arrived(self, conn: TcpConnection) -> None:
        established = conn.established
        target, port = conn.target, conn.target_port
        client = conn.client
        if established.done() or not self.reachable(client.host, target):
            return
        listener = self.listeners.get((target.name, port))
        back = self.link(target.name, client.host.name).latency
        if listener is None or not listener.accepting:
            self.observer.tcp(
                conn,
                "server",
                target.name,
                "RST",
                Tcp.RST,
                peer=client.host.name,
                arrives=self.loop.time() + back,
            )
            self.call_at(self.loop.time() + back, conn.index, 1, self._refused, conn)
            return
        if conn.server is None:
            conn.server = ConnectionEnd(conn, "server", target, port)
            conn.to_server = Pipe(self, conn, conn.client, conn.server)
            conn.to_client = Pipe(self, conn, conn.server, conn.client)
            conn.listener = listener
        assert conn.to_client is not None
        conn.to_client.send(Segment("SYN-ACK"))

    def _refused(self, conn: TcpConnection) -> None:
        established = conn.established
        target, port = conn.target, conn.target_port
        if established.done() or not conn.client.alive:
            return
        self.observer.tcp(conn, "client", conn.client.host.name, "connection refused", Tcp.REFUSED)
        established.set_exception(
            ConnectionRefusedError(
                errno.ECONNREFUSED, f"Connect call failed ({target.name!r}, {port})"
            )
        )

    def _syn_ack_arrived(self, conn: TcpConnection) -> None:
        established = conn.established
        if established.done():
            if established.cancelled() and conn.client.alive:
                self.send_reset(conn.client)
            return
        if not conn.client.alive:
            return
        self.observer.tcp(conn, "client", conn.client.host.name, "connected", Tcp.CONNECTED)
        established.set_result(None)

    def _ack_arrived(self, conn: TcpConnection) -> None:
        server = conn.server
        assert server is not None
        listener = conn.listener
        assert listener is not None
        if server.transport is not None or server.closed:
            return
        if not listener.accepting or not server.alive:
            self.send_reset(server)
            return
        self.observer.tcp(conn, "server", server.host.name, "accepted", Tcp.ACCEPTED)
        server.host.run_here(listener._accept, server)
        if self.effects:
            for effect in self.effects.get(self._pair(conn.client.host.name, server.host.name), []):
                effect.established(conn)

    # Hosts

    def resolve(self, here: Host, name: str) -> Host:
        if name in LOOPBACK_NAMES:
            return here
        target = self.hosts.get(name)
        if target is None:
            raise socket.gaierror(socket.EAI_NONAME, f"Name or service not known: {name!r}")
        return target

    def crash(self, host: Host, *, power_lost: bool = False) -> None:
        """The operating system of ``host`` closes every socket its processes had.

        With ``power_lost``, nothing is sent: the sockets vanish in silence.
        """
        for server in list(self.listeners.values()):
            if server.host is host:
                server.close()
        for conn in list(self.by_host.get(host.name, ())):
            for endpoint in (conn.client, conn.server):
                if endpoint is None or endpoint.host is not host or endpoint.closed:
                    continue
                if endpoint.boot != host.boot:
                    continue
                if endpoint.transport is None:
                    endpoint.closed = True  # still connecting: nothing to close yet
                    continue
                endpoint.transport._closed_by_os(power_lost=power_lost)

    def transports_of(self, host: Host) -> list[SimTransport]:
        """The transports of ``host``'s current processes, in the order of their connections."""
        found = []
        for conn in self.by_host.get(host.name, ()):
            for endpoint in (conn.client, conn.server):
                if (
                    endpoint is not None
                    and endpoint.host is host
                    and endpoint.boot == host.boot
                    and endpoint.transport is not None
                ):
                    found.append(endpoint.transport)
        return found

    def power_off(self, host: Host) -> None:
        """``host`` loses power: its sockets vanish without a FIN or an RST."""
        self.crash(host, power_lost=True)

    def _require_host(self, what: str) -> Host:
        here = current_host()
        if here is None:
            if running_on() is not None:
                raise OSError(errno.ENETDOWN, f"{what}: this host has crashed")
            raise RuntimeError(
                f"{what} must run on a simulated host: start the coroutine with host.spawn()"
            )
        return here

    def _ephemeral_port(self, host: Host) -> int:
        port = self._next_port.get(host.name, EPHEMERAL_PORTS)
        self._next_port[host.name] = port + 1
        return port
