"""The transports asyncio's protocols see: :class:`SimTransport` over one end of a
connection, :class:`SimServer` for a listening socket.

What ``loop.create_connection`` and ``loop.create_server`` hand to user code (websockets'
protocols): writing with flow control, reading that can be paused (the data waits and
keeps its room in the receive window), an orderly close (FIN) or an abort (RST), and what
the OS does to the sockets of a process that dies.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, cast

from wssim.core.hosts import Host
from wssim.net.link import Segment
from wssim.net.sockopt import SimSocket, SocketOptions
from wssim.net.tcp import DEFAULT_OPTIONS, SEND_BUFFER, ConnectionEnd, Pipe

__all__ = ["ServerFabric", "SimServer", "SimTransport"]


class ServerFabric(Protocol):
    """What a listening socket needs from the network (:class:`~wssim.net.fabric.Network`)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def construct(
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], endpoint: ConnectionEnd
    ) -> asyncio.BaseProtocol: ...

    def unlisten(self, server: SimServer) -> None: ...


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
            return SimSocket(ep.address, lambda: ep.options, ep.set_options)
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
        self._close_socket()
        self._incoming().window_update()
        self._network.loop.call_soon(self._call_connection_lost, None)

    def abort(self) -> None:
        """Close at once, dropping what asyncio had not handed to the kernel yet.

        As a real ``transport.abort()``, this closes the socket: the kernel sends what it
        already holds, then a FIN, or an RST if received data was never read or
        ``SO_LINGER`` is ``(1, 0)`` (tcp_close in net/ipv4/tcp.c). It is not an RST by
        itself.
        """
        if self._lost:
            return
        self._closing = True
        self._pipe().discard_beyond(SEND_BUFFER)
        self._close_socket()
        self._network.loop.call_soon(self._call_connection_lost, None)

    def _close_socket(self) -> None:
        """What the kernel does when the socket is closed (``tcp_close``)."""
        ep = self._endpoint
        if not ep.alive or ep.closed:
            return
        if self.has_unread_data or self._incoming().waiting or ep.options.reset_on_close:
            self._network.send_reset(ep)
            return
        if not self._eof_sent:
            self._eof_sent = True
            self._pipe().send(Segment("FIN"))
        ep.closed = True
        ep.stop_timers()

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
            ep.stop_timers()
            self._pipe().drop()
        else:
            self._close_socket()
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
        network: ServerFabric,
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
        self._options = DEFAULT_OPTIONS

    def __repr__(self) -> str:
        return f"<SimServer {self.host.name}:{self.port}>"

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening socket; options set on it are inherited by accepted sockets."""
        if self._closed:
            return ()
        sock = SimSocket((self.host.name, self.port), self._get_options, self._set_options)
        return (sock,)  # type: ignore[return-value]

    def _get_options(self) -> SocketOptions:
        return self._options

    def _set_options(self, options: SocketOptions, changed: str) -> None:
        self._options = options

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
        endpoint.set_options(self._options, "accepted")
        protocol = self._network.construct(self._protocol_factory, endpoint)
        transport = SimTransport(endpoint, protocol)
        endpoint.transport = transport
        protocol.connection_made(transport)
        return transport
