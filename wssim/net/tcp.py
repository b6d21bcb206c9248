"""TCP per connection: its two ends, and a pipe for each direction.

A pipe sends segments in order, each after the link's latency. What the course needs from
TCP and nothing more:

- data is retransmitted while the path is cut, as Linux does it: a tail-loss probe one
  RTO after the send (RFC 8985), then retransmissions with the RTO doubling up to 120 s
  (RFC 6298), where the RTO is the round trip plus Linux's 200 ms minimum. The sender gives
  up at the first retransmission timer that finds 924.6 s gone since the first
  retransmission (the time Linux allows for ``tcp_retries2 = 15``), or
  ``TCP_USER_TIMEOUT`` after it when that option is set;
- the receive window: bytes in flight plus bytes not read yet never exceed the receiver's
  buffer; past that, bytes wait on the sender's side, and its write buffer grows. A
  closed window is probed (zero-window probes, backed off like retransmissions): a peer
  that answers keeps the sender waiting for ever, as RFC 1122 4.2.2.17 requires; 15
  unanswered probes (or ``TCP_USER_TIMEOUT``) time the connection out;
- TCP keepalive, when the application turns it on with ``SO_KEEPALIVE``
  (:mod:`wssim.net.sockopt`): after ``TCP_KEEPIDLE`` seconds without a segment from the
  peer, a probe every ``TCP_KEEPINTVL`` seconds; ``TCP_KEEPCNT`` unanswered probes time
  the connection out. Probes are segments on the path: a NAT sees them as traffic.

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
import math
import random
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from wssim.core.hosts import Host, HostState
from wssim.net.link import Link, Segment
from wssim.net.sockopt import SocketOptions
from wssim.trace.events import FaultInfo, Tcp

__all__ = [
    "GIVE_UP_AFTER",
    "RECEIVE_BUFFER",
    "RTO_MAX",
    "RTO_MIN",
    "SEND_BUFFER",
    "SYN_RETRY_DELAYS",
    "TCP_RETRIES2",
    "ConnectionEnd",
    "EndTransport",
    "Fabric",
    "Listener",
    "NetworkObserver",
    "Pipe",
    "TcpConnection",
    "give_up_after",
]

# Looked up per segment: an enum member costs ten times a global to look up.
_UP = HostState.UP

SYN_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
"""Waits after each SYN before the next one (the last one: before giving up)."""
RTO_MIN = 0.2
"""Linux's ``TCP_RTO_MIN``: the retransmission timeout is the round trip plus this."""
RTO_MAX = 120.0
"""Linux's ``TCP_RTO_MAX``: backed-off timers never wait longer."""
TCP_RETRIES2 = 15
"""Linux's ``net.ipv4.tcp_retries2``: how long a sender retransmits before giving up,
counted as the time 15 backed-off retransmissions would take (tcp(7))."""


def give_up_after(retries: int = TCP_RETRIES2) -> float:
    """Seconds after its first retransmission that Linux gives up on unacknowledged data.

    Linux turns ``tcp_retries2`` into a time (``tcp_model_timeout`` in
    net/ipv4/tcp_timer.c): what ``retries`` retransmissions would take with the RTO
    starting at 200 ms and doubling up to 120 s. It checks that time only when a
    retransmission timer fires, so it gives up at the first timer past it.
    """
    thresh = int(math.log2(RTO_MAX / RTO_MIN))  # ilog2(120 s / 200 ms) = 9
    if retries <= thresh:
        return ((2 << retries) - 1) * RTO_MIN
    return round(((2 << thresh) - 1) * RTO_MIN + (retries - thresh) * RTO_MAX, 9)


GIVE_UP_AFTER = give_up_after()
"""924.6 s: Linux's ``tcp_retries2 = 15`` as a time (see :func:`give_up_after`)."""
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
# Segments that carry no data and are never retransmitted: a probe (keepalive or zero
# window) lost on the way is simply unanswered.
PROBES = ("PROBE", "PROBE-ACK")
_TIMED_OUT = "Connection timed out"
DEFAULT_OPTIONS = SocketOptions()


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
        self.options = DEFAULT_OPTIONS  # immutable: shared until an option is set
        # When a segment last arrived from the peer (set by the fabric on each arrival):
        # keepalive counts silence from there, and a probe is answered if it came later.
        self.last_heard = 0.0
        self.keepalive_timer: asyncio.TimerHandle | None = None
        self.keepalive_unanswered = 0  # probes sent since last_heard
        self.keepalive_probed_at = 0.0

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

    @property
    def rebooted(self) -> bool:
        """The host restarted since this socket was made: its kernel forgot the socket."""
        return self.host.boot != self.boot

    def set_options(self, options: SocketOptions, changed: str) -> None:
        """The application changed a socket option (:class:`~wssim.net.sockopt.SimSocket`)."""
        self.options = options
        if changed.startswith("keepalive"):
            self._rearm_keepalive()

    # TCP keepalive (net/ipv4/tcp_timer.c, tcp_keepalive_timer)

    def _rearm_keepalive(self) -> None:
        if self.keepalive_timer is not None:
            self.keepalive_timer.cancel()
            self.keepalive_timer = None
        if not self.options.keepalive or self.closed:
            return
        net = self.conn.network
        now = net.loop.time()
        # Linux, on turning keepalive on or changing TCP_KEEPIDLE: the first probe is due
        # TCP_KEEPIDLE after the last segment heard (at once if that time has passed).
        due = max(now, self.last_heard + self.options.keepalive_idle)
        self.keepalive_timer = net.loop.call_at(due, self._keepalive, context=net.quiet)

    def _keepalive(self) -> None:
        self.keepalive_timer = None
        if self.closed or not self.alive or not self.options.keepalive:
            return
        net = self.conn.network
        now = net.loop.time()
        options = self.options
        pipe = self.conn.pipe_from(self)
        if pipe.stuck or pipe.waiting:
            # Data waits for an acknowledgement: retransmissions or window probes watch
            # the peer instead ("it is alive without keepalive").
            due = now + options.keepalive_idle
        else:
            if self.last_heard >= self.keepalive_probed_at:
                self.keepalive_unanswered = 0  # the peer spoke since the last probe
            idle = now - self.last_heard
            if idle < options.keepalive_idle - 1e-9:
                due = self.last_heard + options.keepalive_idle
            else:
                user_timeout = options.user_timeout
                timed_out = (
                    self.keepalive_unanswered > 0 and idle >= user_timeout - 1e-9
                    if user_timeout is not None
                    else self.keepalive_unanswered >= options.keepalive_probes
                )
                if timed_out:
                    # Linux resets the connection as it gives up (tcp_send_active_reset).
                    self.time_out(
                        f"keepalive: {self.keepalive_unanswered} probes unanswered after "
                        f"{idle:g} s of silence",
                        reset=True,
                    )
                    return
                self.keepalive_unanswered += 1
                self.keepalive_probed_at = now
                pipe.probe("keepalive probe", Tcp.KEEPALIVE)
                due = now + options.keepalive_interval
        self.keepalive_timer = net.loop.call_at(due, self._keepalive, context=net.quiet)

    def time_out(self, why: str, *, reset: bool = False) -> None:
        """Give up on the connection, as ``tcp_write_err`` does: the application gets
        ETIMEDOUT. With ``reset``, an RST goes to the peer first (keepalive's way)."""
        net = self.conn.network
        net.observer.tcp(
            self.conn, self.side, self.host.name, f"{why}: connection timed out", Tcp.TIMED_OUT
        )
        if reset:
            net.send_reset(self)
        else:
            self.conn.pipe_from(self).drop()
            self.closed = True
            self.stop_timers()
        if self.transport is not None:
            self.transport._lose(TimeoutError(errno.ETIMEDOUT, _TIMED_OUT))

    def stop_timers(self) -> None:
        """The socket is gone: its keepalive stops."""
        if self.keepalive_timer is not None:
            self.keepalive_timer.cancel()
            self.keepalive_timer = None


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
        self.stuck_since = 0.0  # when the oldest unacknowledged segment was sent
        self.rto = RTO_MIN
        self.retransmit_timer: asyncio.TimerHandle | None = None
        self.tail_probe_due = False  # the next timer sends the tail-loss probe
        self.first_retransmission: float | None = None  # Linux's retrans_stamp
        # Zero-window probes (tcp_probe_timer): made when the window first closes.
        self.window_timer: asyncio.TimerHandle | None = None
        self.window_backoff = 0
        self.window_unanswered = 0
        self.window_probing_since: float | None = None
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

    def base_rto(self) -> float:
        """The retransmission timeout before any backoff: the round trip plus 200 ms.

        Linux sets the RTO to SRTT + RTTVAR with RTTVAR never below 200 ms (RFC 6298
        section 2 with Linux's ``TCP_RTO_MIN``; ``__tcp_set_rto``); on a steady path that
        is the round trip plus 200 ms. Jitter counts as its worst case.
        """
        link = self.network.link(self.src.host.name, self.dst.host.name)
        return min(RTO_MIN + 2 * link.latency + link.jitter, RTO_MAX)

    def _start_retransmitting(self, now: float) -> None:
        self.stuck_since = now
        self.rto = self.base_rto()
        self.first_retransmission = None
        # RFC 8985: with one segment unacknowledged, Linux's probe timeout is
        # 2 x SRTT + 200 ms, capped at the RTO, so the tail-loss probe goes one RTO after
        # the send (tcp_schedule_loss_probe), and the RTO timer restarts from the probe.
        self.tail_probe_due = True
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
        if self.src.rebooted:
            self.drop()  # the kernel that was retransmitting is gone
            return
        if self.tail_probe_due:
            self.tail_probe_due = False
            if not self.open:
                self.retransmit_timer = net.loop.call_at(
                    now + self.rto, self._retransmit, context=net.quiet
                )
                return
        elif self.first_retransmission is not None and self._gave_up(now):
            self._time_out(now)
            return
        if self.open:
            self._resend(now)
            return
        if self.first_retransmission is None:
            # Linux counts its give-up time from the first RTO retransmission
            # (retrans_stamp), not from the send or the tail-loss probe.
            self.first_retransmission = now
        self.rto = min(self.rto * 2, RTO_MAX)
        delay = self.rto
        user_timeout = self.src.options.user_timeout
        if user_timeout is not None:
            # tcp_clamp_rto_to_user_timeout: the timer fires when the user timeout ends.
            left = self.first_retransmission + user_timeout - now
            delay = max(min(delay, left), 0.001)
        self.retransmit_timer = net.loop.call_at(now + delay, self._retransmit, context=net.quiet)

    def _gave_up(self, now: float) -> bool:
        assert self.first_retransmission is not None
        user_timeout = self.src.options.user_timeout
        limit = user_timeout if user_timeout is not None else GIVE_UP_AFTER
        return now - self.first_retransmission >= limit - 1e-9

    def _resend(self, now: float) -> None:
        net = self.network
        segments, self.stuck = list(self.stuck or ()), None
        self.stuck_bytes = 0
        self.first_retransmission = None
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

    def _time_out(self, now: float, why: str = "") -> None:
        """Give up: the sender's end times out (ETIMEDOUT)."""
        self.src.time_out(why or f"gave up retransmitting after {now - self.stuck_since:g} s")

    # Probes: segments without data that the peer's TCP answers if it is there.

    def probe(self, text: str, what: Tcp) -> None:
        """Send a probe (keepalive or zero window); the peer answers it if it can."""
        net = self.network
        arrives: float | None = None
        if self.open and not self.stuck:
            arrives = net.schedule(self, Segment("PROBE"))
        net.observer.tcp(
            self.conn,
            self.src.side,
            self.src.host.name,
            text,
            what,
            peer=self.dst.host.name,
            arrives=arrives,
        )

    def probe_answered(self) -> None:
        """An answer to a probe came back to this pipe's sender."""
        self.window_unanswered = 0

    # Zero-window probes (net/ipv4/tcp_timer.c, tcp_probe_timer)

    def _start_window_probes(self) -> None:
        if self.window_timer is not None:
            return
        self.window_backoff = 0
        self.window_unanswered = 0
        self.window_probing_since = None
        net = self.network
        self.window_timer = net.loop.call_at(
            net.loop.time() + max(self.base_rto(), RTO_MIN), self._probe_window, context=net.quiet
        )

    def _probe_window(self) -> None:
        net = self.network
        now = net.loop.time()
        self.window_timer = None
        if not self.waiting or self.src.closed or not self.src.alive:
            self.window_probing_since = None
            return
        base = max(self.base_rto(), RTO_MIN)
        if not self.stuck and not self.in_flight:
            user_timeout = self.src.options.user_timeout
            if self.window_probing_since is None:
                self.window_probing_since = now
            elif (
                user_timeout is not None and now - self.window_probing_since >= user_timeout - 1e-9
            ):
                self._time_out(now, f"window closed for {now - self.window_probing_since:g} s")
                return
            if self.window_unanswered >= TCP_RETRIES2:
                self._time_out(now, f"{self.window_unanswered} zero-window probes unanswered")
                return
            self.window_unanswered += 1
            self.probe("zero-window probe", Tcp.WINDOW_PROBE)
            self.window_backoff = min(self.window_backoff + 1, TCP_RETRIES2)
        delay = min(base * 2**self.window_backoff, RTO_MAX)
        user_timeout = self.src.options.user_timeout
        if user_timeout is not None and self.window_probing_since is not None:
            # tcp_clamp_probe0_to_user_timeout: the timer fires when the user timeout ends.
            # The user timeout counts from the first probe, answered or not: a window closed
            # that long ends the connection even if the peer is alive.
            left = self.window_probing_since + user_timeout - now
            delay = max(min(delay, left), 0.002)
        self.window_timer = net.loop.call_at(now + delay, self._probe_window, context=net.quiet)

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
        if not self.waiting:
            self._start_window_probes()
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
        if not self.waiting and self.window_timer is not None:
            # The window opened: probing stops, and starts afresh if it closes again.
            self.window_timer.cancel()
            self.window_timer = None
        if self.src.transport is not None:
            self.src.transport._update_flow_control()

    def discard_beyond(self, limit: int) -> None:
        """Forget the newest bytes waiting beyond ``limit``: what asyncio still held in
        its own buffer, above the kernel's, when the transport was aborted."""
        excess = self.buffered_bytes - limit
        waiting = self.waiting
        while excess > 0 and waiting and waiting[-1].kind == "DATA":
            last = waiting[-1]
            if len(last.data) <= excess:
                waiting.pop()
                excess -= len(last.data)
                self.waiting_bytes -= len(last.data)
            else:
                waiting[-1] = Segment("DATA", last.data[: len(last.data) - excess])
                self.waiting_bytes -= excess
                excess = 0

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
        if self.window_timer is not None:
            self.window_timer.cancel()
            self.window_timer = None


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
