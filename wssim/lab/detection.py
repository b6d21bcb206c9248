"""How long a dead peer goes unnoticed, and what the heartbeats that notice it cost.

Read from a trace: :func:`detect` finds when a fault started and when one side learned
of it (its ``closed`` event, or a TCP failure), and :func:`heartbeat_bytes` adds up the
heartbeat frames on the wire, headers included. Measured by running simulations:
:func:`measure` injects a fault at the instants that give the best and the worst case,
:func:`hourly_bytes` counts an hour of heartbeats (:func:`hourly_probes`, of TCP keepalive
probes, which are segments, not frames), :func:`sweep` does both over a grid of
websockets' ``ping_interval`` and ``ping_timeout``, and :func:`compare` over stacks.
:func:`wssim.plot.tradeoff` draws detection time against overhead.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from websockets.frames import Opcode

from wssim import faults as faults_
from wssim.simulation import Simulation
from wssim.toolkit.heartbeat import (
    NO_KEEPALIVE,
    TIMEOUT_LOG,
    Side,
    Stack,
    TcpKeepalive,
    connect_stack,
    matcher,
    serve_stack,
)
from wssim.trace.events import Event, Table, Tcp, Trace, microseconds
from wssim.trace.lifecycle import faults as fault_spans

__all__ = [
    "Detection",
    "DetectionRange",
    "StackResult",
    "SweepPoint",
    "compare",
    "compare_table",
    "detect",
    "frame_size",
    "heartbeat_bytes",
    "hourly_bytes",
    "hourly_probes",
    "keepalive_stack",
    "measure",
    "run_stack",
    "sweep",
    "sweep_table",
    "tcp_keepalive_stack",
]

# Each side's own words when its heartbeat gives up: websockets' keepalive, or ours; and
# the kernel's, when TCP keepalive gives up.
_GAVE_UP = ("- timed out waiting for keepalive pong", TIMEOUT_LOG)
_KEEPALIVE_GAVE_UP = "keepalive:"
_TCP_FAILURES = (Tcp.TIMED_OUT, Tcp.RESET)
# A fault this close before or after a frame: the frame escapes, or it does not.
_NUDGE = 1e-6
SERVER, CLIENT = "server", "client"


# Bytes on the wire


def frame_size(event: Event) -> int:
    """The bytes a WebSocket frame took on the wire, header included.

    The wire tap reports the payload's size on the wire (compressed, when
    permessage-deflate compressed it) and whether it was masked; the header adds 2 bytes,
    2 or 8 more for payloads of 126 bytes or more (RFC 6455, section 5.2), and the 4-byte
    mask (section 5.3). TCP/IP headers are not counted.

    Raises:
        ValueError: if ``event`` is not a frame on the wire.
    """
    frame = event.frame if event.kind == "frame" else None
    if frame is None or frame.wire_size is None:
        raise ValueError(f"event must be a frame on the wire, got {event.kind}: {event.text!r}")
    payload = frame.wire_size
    extended = 0 if payload < 126 else 2 if payload < 65536 else 8
    return 2 + extended + payload + (4 if frame.masked else 0)


def heartbeat_bytes(
    trace: Trace,
    *,
    messages: Iterable[str] = (),
    since: float | None = None,
    until: float | None = None,
) -> int:
    """Bytes of heartbeat frames sent in ``[since, until)``, headers included.

    Heartbeat frames are WebSocket PING and PONG frames, and data frames whose message is
    one of ``messages`` (application-level heartbeats; :data:`wssim.toolkit.heartbeat.REF` in a
    message stands for any counter). A frame counts once, when it is first sent.

    Args:
        trace: the trace to read.
        messages: the application's heartbeat messages (``Heartbeat.messages``).
        since: count frames sent at or after this time (default: from the start).
        until: count frames sent before this time (default: to the end).
    """
    is_heartbeat = matcher(messages)
    total = 0
    for event in trace.filter(kind="frame", since=since):
        if until is not None and event.time >= until:
            break
        frame = event.frame
        if frame is None:
            continue
        control = frame.opcode is Opcode.PING or frame.opcode is Opcode.PONG
        if control or (frame.data is not None and is_heartbeat(frame.data)):
            total += frame_size(event)
    return total


# When each side learned


@dataclass(frozen=True)
class Detection:
    """When one side of a connection learned that a fault had broken it.

    Attributes:
        side: ``"client"`` or ``"server"``.
        fault: when the fault started.
        noticed: when this side's heartbeat gave up (websockets' ``- timed out waiting
            for keepalive pong``, an application heartbeat's ``- heartbeat timeout``, or
            the kernel's TCP keepalive: ``keepalive: N probes unanswered ...``), or None.
        learned: when the connection ended for this side: its ``closed`` event (the
            moment ``recv()`` raises) or a TCP failure, whichever came first; None if it
            never did within the trace.
        how: the ``closed`` event's text or the TCP failure ("" if it never learned).
        code: the close code it reported, or None.
    """

    side: str
    fault: float
    noticed: float | None
    learned: float | None
    how: str
    code: int | None

    @property
    def delay(self) -> float | None:
        """Seconds from the fault to ``learned`` (None: never)."""
        return None if self.learned is None else microseconds(self.learned - self.fault)

    @property
    def notice_delay(self) -> float | None:
        """Seconds from the fault to ``noticed`` (None: the heartbeat never gave up)."""
        return None if self.noticed is None else microseconds(self.noticed - self.fault)


def detect(
    trace: Trace, side: str, *, conn: str | None = None, since: float | None = None
) -> Detection:
    """When ``side`` of connection ``conn`` learned of the first fault at or after ``since``.

    Args:
        trace: the trace to read.
        side: ``"client"`` or ``"server"``.
        conn: the connection (default: the first one in the trace).
        since: look for a fault starting at or after this time (default: the first fault).

    Raises:
        ValueError: if ``side`` is not client or server, or the trace has no such fault or
            no connection.
    """
    if side not in (SERVER, CLIENT):
        raise ValueError(f"side must be 'client' or 'server', got {side!r}")
    spans = [f for f in fault_spans(trace) if since is None or f.start >= since]
    if not spans:
        raise ValueError("the trace has no fault" + (f" at or after t={since:g}" if since else ""))
    start = spans[0].start
    if conn is None:
        if not trace.connections:
            raise ValueError("the trace has no connection")
        conn = trace.connections[0]
    events = trace.filter(conn=conn, side=side, since=start)
    noticed = next(
        (
            e.time
            for e in events
            if (e.kind == "log" and e.text.startswith(_GAVE_UP))
            or (
                e.kind == "tcp"
                and e.detail is Tcp.TIMED_OUT
                and e.text.startswith(_KEEPALIVE_GAVE_UP)
            )
        ),
        None,
    )
    end = next(
        (
            e
            for e in events
            if e.kind == "closed" or (e.kind == "tcp" and e.detail in _TCP_FAILURES)
        ),
        None,
    )
    if end is None:
        return Detection(side, start, noticed, None, "", None)
    code = end.code
    if end.kind == "tcp":
        closed = events.first(kind="closed")
        if closed is not None and closed.time == end.time:
            code = closed.code
    return Detection(side, start, noticed, end.time, end.text, code)


@dataclass(frozen=True)
class DetectionRange:
    """Detections of one fault injected at several instants: the best and the worst.

    Attributes:
        side: the side that had to learn.
        samples: one :class:`Detection` per injection, in order of fault time.
    """

    side: str
    samples: tuple[Detection, ...]

    @property
    def best(self) -> Detection:
        """The sample learned soonest after its fault."""
        return min(self.samples, key=lambda d: math.inf if d.delay is None else d.delay)

    @property
    def worst(self) -> Detection:
        """The sample learned latest (or never) after its fault."""
        return max(self.samples, key=lambda d: math.inf if d.delay is None else d.delay)

    def delays(self, *, noticed: bool = False) -> tuple[float | None, float | None]:
        """(best, worst) delays: until learned, or until noticed; None stands for never."""

        def of(d: Detection) -> float | None:
            return d.notice_delay if noticed else d.delay

        values = [of(d) for d in self.samples]
        if any(v is None for v in values):
            known = [v for v in values if v is not None]
            return (min(known) if known else None), None
        floats = [v for v in values if v is not None]
        return min(floats), max(floats)


def run_stack(
    stack: Stack,
    *,
    fault: faults_.Fault | None = None,
    at: float = 0.0,
    duration: float | None = None,
    until: float,
    seed: int = 0,
    latency: float = 0.010,
) -> Trace:
    """Run one client and one server of ``stack`` (hosts ``client`` and ``server``),
    inject a copy of ``fault`` at ``at`` for ``duration`` seconds (None: for ever), and
    return the trace at ``until``."""
    with Simulation(seed=seed, latency=latency) as sim:
        sim.host("server").spawn(serve_stack(stack))
        sim.host("client").spawn(connect_stack(stack))
        if fault is not None:
            # A fault keeps state once injected: each run gets its own copy.
            sim.inject(copy.deepcopy(fault), at=at, duration=duration)
        return sim.run(until=until)


def _check_stack(stack: object) -> Stack:
    if not isinstance(stack, Stack):
        raise ValueError(f"stack must be a wssim.toolkit.heartbeat.Stack, got {stack!r}")
    return stack


def _warmup(stack: Stack) -> float:
    # Two periods after the start, every heartbeat has settled into its rhythm.
    return 2 * stack.period + 1.0


def measure(
    stack: Stack,
    fault: faults_.Fault,
    side: str = SERVER,
    *,
    seed: int = 0,
    latency: float = 0.010,
    horizon: float | None = None,
) -> DetectionRange:
    """How soon ``side`` learns of ``fault``, at best and at worst.

    A first run without the fault finds, over one heartbeat period, every instant a frame
    of the other side was sent or arrived, and every instant a TCP keepalive probe was sent
    or arrived (where it is answered). How long ``side`` takes to learn only jumps at
    those instants (in between, it learns at the same moment, so later faults are learned
    of sooner): injecting the fault one microsecond before and after each of them gives the
    best and the worst case. Without any heartbeat, the fault is injected once.

    Args:
        stack: the keepalives of both sides.
        fault: the fault to inject (a copy of it in each run).
        side: the side that has to learn.
        seed: the simulations' seed.
        latency: one-way latency between client and server.
        horizon: how long to wait after the fault (default: enough for any heartbeat of
            ``stack``, TCP keepalive included, to give up and close, plus 5 s; 3600 s
            without heartbeats).

    Raises:
        ValueError: for a bad stack, fault or side.
    """
    stack = _check_stack(stack)
    if not isinstance(fault, faults_.Fault):
        raise ValueError(f"fault must be a wssim.faults.Fault, got {fault!r}")
    if side not in (SERVER, CLIENT):
        raise ValueError(f"side must be 'client' or 'server', got {side!r}")
    if horizon is None:
        horizon = stack.horizon() + 5.0 if stack.period else 3600.0
    elif isinstance(horizon, bool) or not isinstance(horizon, int | float) or horizon <= 0:
        raise ValueError(f"horizon must be a number of seconds > 0, got {horizon!r}")
    start, period = _warmup(stack), stack.period
    if period:
        quiet = run_stack(stack, until=start + period, seed=seed, latency=latency)
        instants: dict[float, None] = {}
        for e in quiet.filter(kind="frame", since=start):
            if e.side != side:
                instants[e.time] = None
                if e.arrives is not None:
                    instants[e.arrives] = None
        # A keepalive probe is answered where it arrives: either side's probes count.
        for e in quiet.filter(kind="tcp", since=start):
            if e.detail is Tcp.KEEPALIVE:
                instants[e.time] = None
                if e.arrives is not None:
                    instants[e.arrives] = None
        times = sorted({microseconds(t + d) for t in instants for d in (-_NUDGE, _NUDGE)})
    if not period or not times:
        times = [start]
    samples = tuple(
        detect(
            run_stack(stack, fault=fault, at=t, until=t + horizon, seed=seed, latency=latency),
            side,
        )
        for t in times
    )
    return DetectionRange(side, samples)


def hourly_bytes(stack: Stack, *, seed: int = 0, latency: float = 0.010, hours: float = 1.0) -> int:
    """Heartbeat bytes on the wire during one hour of a healthy, idle connection (both
    directions, frame headers included), measured after the heartbeats settle.

    With ``hours`` other than 1, the count over that time divided by ``hours``.
    """
    stack = _check_stack(stack)
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not hours > 0:
        raise ValueError(f"hours must be a number > 0, got {hours!r}")
    start = _warmup(stack)
    stop = start + 3600.0 * hours
    trace = run_stack(stack, until=stop, seed=seed, latency=latency)
    messages = [m for h in stack.heartbeats for m in h.messages]
    return round(heartbeat_bytes(trace, messages=messages, since=start, until=stop) / hours)


def hourly_probes(
    stack: Stack, *, seed: int = 0, latency: float = 0.010, hours: float = 1.0
) -> float:
    """TCP keepalive probes sent during one hour of a healthy, idle connection (both
    sides; each is answered by one empty segment), counted after the heartbeats settle.

    With ``hours`` other than 1, the count over that time divided by ``hours``: with
    Linux's ``tcp_keepalive_time`` of 7200 s, ``hours=4`` counts 2 probes, 0.5 per hour.
    """
    stack = _check_stack(stack)
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not hours > 0:
        raise ValueError(f"hours must be a number > 0, got {hours!r}")
    start = _warmup(stack)
    stop = start + 3600.0 * hours
    trace = run_stack(stack, until=stop, seed=seed, latency=latency)
    sent = trace.filter(kind="tcp", since=start, until=stop)
    return sum(1 for e in sent if e.detail is Tcp.KEEPALIVE and e.time < stop) / hours


# Sweeping websockets' keepalive


def keepalive_stack(
    ping_interval: float,
    ping_timeout: float,
    close_timeout: float = 10.0,
    *,
    client_pings: bool = True,
) -> Stack:
    """websockets' keepalive with these settings on the server, and on the client too
    unless ``client_pings`` is False (the client then only answers pings)."""
    server = Side(ping_interval, ping_timeout, close_timeout)
    client = server if client_pings else Side(None, None, close_timeout)
    name = f"websockets {ping_interval:g}/{ping_timeout:g}/{close_timeout:g}"
    return Stack(name, server, client, "WebSocket ping")


def tcp_keepalive_stack(keepalive: TcpKeepalive) -> Stack:
    """TCP keepalive with these settings on the client's socket, and nothing else:
    websockets' pings are off on both sides (``ping_interval=None``)."""
    if not isinstance(keepalive, TcpKeepalive):
        raise ValueError(f"keepalive must be a TcpKeepalive, got {keepalive!r}")
    name = f"TCP keepalive {keepalive.idle}/{keepalive.interval}/{keepalive.count}"
    client = Side(None, None, tcp_keepalive=keepalive)
    return Stack(name, NO_KEEPALIVE, client, "TCP keepalive", "SO_KEEPALIVE on the client")


@dataclass(frozen=True)
class SweepPoint:
    """One setting of websockets' keepalive, measured.

    Attributes:
        ping_interval: seconds between pings.
        ping_timeout: seconds to wait for a pong.
        close_timeout: seconds to wait for the closing handshake.
        best: the soonest the server learned of the dead client after the fault.
        worst: the latest (None: never).
        bytes_per_hour: heartbeat bytes on the wire per hour, both directions.
    """

    ping_interval: float
    ping_timeout: float
    close_timeout: float
    best: float | None
    worst: float | None
    bytes_per_hour: int


def sweep(
    ping_intervals: Sequence[float],
    ping_timeouts: Sequence[float],
    *,
    close_timeout: float = 10.0,
    fault: faults_.Fault | None = None,
    side: str = SERVER,
    seed: int = 0,
    latency: float = 0.010,
) -> list[SweepPoint]:
    """Measure every combination of ``ping_intervals`` and ``ping_timeouts``.

    The fault defaults to the client losing power (``faults.PowerLoss("client")``), which
    only the server can notice; both sides ping, as websockets does by default.
    """
    if not ping_intervals or not ping_timeouts:
        raise ValueError("ping_intervals and ping_timeouts must each hold at least one value")
    fault = faults_.PowerLoss(CLIENT) if fault is None else fault
    points = []
    for interval in ping_intervals:
        for timeout in ping_timeouts:
            stack = keepalive_stack(interval, timeout, close_timeout)
            best, worst = measure(stack, fault, side, seed=seed, latency=latency).delays()
            spent = hourly_bytes(stack, seed=seed, latency=latency)
            points.append(
                SweepPoint(float(interval), float(timeout), close_timeout, best, worst, spent)
            )
    return points


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.3f}"


def sweep_table(points: Iterable[SweepPoint]) -> Table:
    """The sweep as a text table: settings, the best and worst detection time, bytes/hour."""
    rows = [
        (
            f"{p.ping_interval:g}",
            f"{p.ping_timeout:g}",
            f"{p.close_timeout:g}",
            _seconds(p.best),
            _seconds(p.worst),
            f"{p.bytes_per_hour:,}",
        )
        for p in points
    ]
    columns = (
        "ping_interval",
        "ping_timeout",
        "close_timeout",
        "best (s)",
        "worst (s)",
        "bytes/hour",
    )
    return Table(columns, rows, right=range(6))


# Comparing stacks


@dataclass(frozen=True)
class StackResult:
    """One stack facing one fault: what each side went through, and the heartbeat cost.

    Attributes:
        stack: the stack.
        server: the server's detections (None if not measured).
        client: the client's detections (None if not measured).
        bytes_per_hour: heartbeat bytes on the wire per hour of a healthy connection.
    """

    stack: Stack
    server: DetectionRange | None
    client: DetectionRange | None
    bytes_per_hour: int


def compare(
    stacks: Iterable[Stack],
    fault: faults_.Fault,
    *,
    sides: Sequence[str] = (SERVER, CLIENT),
    seed: int = 0,
    latency: float = 0.010,
) -> list[StackResult]:
    """Measure each stack against the same fault, on each of ``sides``."""
    results = []
    for stack in stacks:
        ranges = {s: measure(stack, fault, s, seed=seed, latency=latency) for s in sides}
        results.append(
            StackResult(
                stack,
                ranges.get(SERVER),
                ranges.get(CLIENT),
                hourly_bytes(stack, seed=seed, latency=latency),
            )
        )
    return results


def _span(pair: tuple[float | None, float | None]) -> str:
    best, worst = pair
    if best is None and worst is None:
        return "never"
    if worst is None:
        return f"{best:.2f} - never"
    assert best is not None
    return f"{best:.2f} - {worst:.2f}"


def compare_table(results: Iterable[StackResult]) -> Table:
    """The comparison as a text table: per side, when the heartbeat gave up and when the
    connection was closed (best - worst, seconds after the fault), and bytes per hour."""
    rows = []
    for r in results:
        cells: list[str] = [r.stack.name, r.stack.mechanism]
        for rng in (r.server, r.client):
            if rng is None:
                cells += ["-", "-"]
            else:
                cells += [_span(rng.delays(noticed=True)), _span(rng.delays())]
        cells.append(f"{r.bytes_per_hour:,}")
        rows.append(cells)
    columns = (
        "stack",
        "heartbeat",
        "server gives up",
        "server closed",
        "client gives up",
        "client closed",
        "bytes/hour",
    )
    return Table(columns, rows, right=(6,))


# The figure
