"""The fabric: hosts, links, partitions, listeners, and routing between them.

:class:`Network` resolves host names, carries each segment over its link and through the
path's effects onto the delivery heap, and delivers it to the right end. It also keeps
what TCP's ends cannot know alone:

- opening: SYN, SYN-ACK, ACK; refused (RST) when nothing listens; SYN retransmitted after
  1, 2, 4, 8, 16 and 32 s when unanswered, then a timeout 127 s after the first SYN
  (Linux, ``tcp_syn_retries = 6``);
- resets: data arriving at a closed socket is answered with RST, and an RST closes the end
  it reaches;
- crashes: the OS of a crashed host closes its processes' sockets (without a word when the
  power is lost).
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import itertools
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from wssim.core.hosts import Host, HostState, current_host, running_on
from wssim.net.delivery import DeliveryHeap
from wssim.net.link import Link, Segment
from wssim.net.path import PathEffect
from wssim.net.tcp import (
    PROBES,
    SYN_RETRY_DELAYS,
    ConnectionEnd,
    NetworkObserver,
    Pipe,
    TcpConnection,
)
from wssim.net.transport import SimServer, SimTransport
from wssim.trace.events import FaultInfo, Tcp

if TYPE_CHECKING:
    from wssim.core.clock import VirtualClockLoop

__all__ = ["EPHEMERAL_PORTS", "LOOPBACK_NAMES", "WILDCARD_NAMES", "Network"]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# Looked up per segment: an enum member costs ten times a global to look up.
_OFF = HostState.OFF
WILDCARD_NAMES = (None, "", "0.0.0.0", "::")
EPHEMERAL_PORTS = 49152


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
        self._next_port: dict[str, int] = {}
        # Every delivery goes through one heap, in one order (see wssim.net.delivery).
        self.deliveries = DeliveryHeap(loop, self.quiet)
        self.call_at = self.deliveries.call_at

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

    # Delivery: over the link and the path's effects, onto the one heap

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

    def _arrive(self, pipe: Pipe, segment: Segment) -> None:
        src, dst = pipe.src, pipe.dst
        kind = segment.kind
        if pipe.stuck or not pipe.open:
            # Cut while in flight, or behind a segment that was: wait for retransmission.
            pipe.in_flight -= len(segment.data)
            if src.alive and kind != "RST" and kind not in PROBES:
                pipe.lost_in_flight(segment)
            return
        dst.last_heard = self.loop.time()
        if kind in PROBES:
            self._probe_arrived(pipe, segment)
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

    def _probe_arrived(self, pipe: Pipe, segment: Segment) -> None:
        dst = pipe.dst
        if segment.kind == "PROBE-ACK":
            pipe.conn.pipe_from(dst).probe_answered()
            return
        # A keepalive or zero-window probe: the peer's kernel answers it with an ACK if
        # the socket is still there, with an RST if its process is gone.
        if not dst.alive and (dst.rebooted or not pipe.conn.pipe_from(dst).stuck):
            # Nothing of the connection is left on that host (its kernel would still
            # answer for an orphaned socket retransmitting its FIN).
            self.send_reset(dst)
            return
        self.schedule(pipe.conn.pipe_from(dst), Segment("PROBE-ACK"))

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
        endpoint.stop_timers()
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
        endpoint.stop_timers()
        endpoint.conn.pipe_from(endpoint).drop()
        self.observer.tcp(
            endpoint.conn, endpoint.side, endpoint.host.name, "connection reset by peer", Tcp.RESET
        )
        if endpoint.transport is not None:
            exc: OSError
            if endpoint.fin_received:
                # The peer's FIN came first (the socket is in CLOSE_WAIT): Linux reports
                # EPIPE, not ECONNRESET (tcp_reset in net/ipv4/tcp_input.c).
                exc = BrokenPipeError(errno.EPIPE, "Broken pipe")
            else:
                exc = ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
            endpoint.transport._lose(exc)

    def reset_both_ends(self, conn: TcpConnection, why: str, cause: FaultInfo) -> None:
        """Something on the path (``cause``) resets ``conn``: both ends receive an RST now."""
        self.observer.tcp(conn, "client", conn.client.host.name, why, cause)
        for endpoint in (conn.client, conn.server):
            if endpoint is not None:
                self._reset_arrived(endpoint)

    def reset_from_path(self, endpoint: ConnectionEnd, why: str, cause: FaultInfo) -> None:
        """Something on the path (``cause``) answers ``endpoint`` with an RST now."""
        if endpoint.closed or not endpoint.alive:
            return
        self.observer.tcp(endpoint.conn, endpoint.side, endpoint.host.name, why, cause)
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
                    found.append(cast(SimTransport, endpoint.transport))  # ours, all of them
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
