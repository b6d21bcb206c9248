"""The lifecycle of every connection endpoint, read from a trace.

Each end of a connection (a connection id and a side, ``"client"`` or ``"server"``) goes
through the states of RFC 6455: CONNECTING, OPEN, CLOSING, CLOSED (section 4 opens, 7
closes). The lifecycle is data, as in h11: :data:`RULES` says which events move an endpoint
to which state and :data:`TRANSITIONS` which moves are allowed; an event that would move an
endpoint backwards, or that no rule knows, changes nothing. Everything here only reads a
:class:`~wssim.trace.Trace`: the same trace always gives the same spans, in the same order.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from websockets.protocol import State as WsState

from wssim.trace.events import (
    Detail,
    Event,
    FaultInfo,
    FaultLike,
    HostEvent,
    Phase,
    Table,
    Tcp,
    Trace,
)

__all__ = [
    "RULES",
    "TRANSITIONS",
    "Endpoint",
    "FaultSpan",
    "Rule",
    "Span",
    "State",
    "endpoints",
    "faults",
    "spans",
    "summary",
]


class State(enum.Enum):
    """The state of one end of a WebSocket connection (RFC 6455, 4.1 and 7)."""

    CONNECTING = "CONNECTING"
    """From the first SYN (client) or the accepted socket (server) to the handshake's end."""
    OPEN = "OPEN"
    """The opening handshake succeeded: messages flow (RFC 6455, 4.1)."""
    CLOSING = "CLOSING"
    """A close frame was sent: the closing handshake is under way (RFC 6455, 7.1.2)."""
    CLOSED = "CLOSED"
    """The end: the TCP connection is closed, or was never established (RFC 6455, 7.1.4)."""


CONNECTING, OPEN, CLOSING, CLOSED = State

TRANSITIONS: dict[State, frozenset[State]] = {
    CONNECTING: frozenset({OPEN, CLOSING, CLOSED}),
    OPEN: frozenset({CLOSING, CLOSED}),
    CLOSING: frozenset({CLOSED}),
    CLOSED: frozenset(),
}
"""The moves allowed from each state. CLOSED is final."""


@dataclass(frozen=True, slots=True)
class Rule:
    """An event that moves an endpoint to a state.

    Attributes:
        kind: the event's kind (see :data:`wssim.trace.KINDS`).
        detail: the event's :attr:`~wssim.trace.Event.detail` (a :class:`~wssim.trace.Tcp`
            member, websockets' connection state), or None: any detail.
        to: the state the endpoint moves to.
        side: only events about this side (``"client"`` or ``"server"``), or either.
        host_wide: the rule reads the start of a fault that kills every process of its
            host (:attr:`wssim.faults.Fault.kills`): it moves every endpoint on that host.
    """

    kind: str
    detail: Detail
    to: State
    side: str | None = None
    host_wide: bool = False

    def matches(self, event: Event) -> bool:
        """True if ``event`` is one this rule reads."""
        if event.kind != self.kind or (self.side is not None and event.side != self.side):
            return False
        if self.host_wide:
            fault = event.detail
            return isinstance(fault, FaultInfo) and fault.phase is Phase.START and fault.fault.kills
        return self.detail is None or event.detail is self.detail


RULES: tuple[Rule, ...] = (
    # The client starts with its first SYN; the server once the handshake's ACK arrives
    # (before that, only the kernel knows about the connection: SYN-ACK, or RST if refused).
    Rule("tcp", Tcp.SYN, CONNECTING, side="client"),
    Rule("tcp", Tcp.ACCEPTED, CONNECTING, side="server"),
    # websockets logs its own state changes ("= connection is OPEN").
    Rule("log", WsState.CONNECTING, CONNECTING),
    Rule("log", WsState.OPEN, OPEN),
    Rule("log", WsState.CLOSING, CLOSING),
    Rule("log", WsState.CLOSED, CLOSED),
    # The exception the connection ended with; it carries the close code.
    Rule("closed", None, CLOSED),
    # TCP failures end an endpoint whether websockets got to see it or not.
    Rule("tcp", Tcp.REFUSED, CLOSED, side="client"),
    Rule("tcp", Tcp.CONNECT_TIMEOUT, CLOSED, side="client"),
    Rule("tcp", Tcp.RESET, CLOSED),
    Rule("tcp", Tcp.TIMED_OUT, CLOSED),
    # A crash kills every process of the host, and their connections with them; so does
    # a power loss, in silence.
    Rule("fault", None, CLOSED, host_wide=True),
)
"""Which events move an endpoint to which state, in the order they are tried."""


@dataclass(frozen=True, slots=True)
class Span:
    """An endpoint's stay in one state, from ``start`` to ``end`` (virtual seconds)."""

    conn: str
    side: str
    host: str
    state: State
    start: float
    end: float

    @property
    def duration(self) -> float:
        """``end - start``, in seconds."""
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One end of one connection, from start to end.

    Attributes:
        conn: the connection id (``"c1"``...).
        side: ``"client"`` or ``"server"``.
        host: the host this end runs on.
        peer: the host at the other end ("" if the trace never says).
        started_at: when it entered CONNECTING.
        opened_at: when it became OPEN, or None if it never did.
        closing_at: when it started the closing handshake, or None.
        closed_at: when it became CLOSED, or None if it was still alive at the end.
        close_code: the close code websockets reported (1000, 1006, 1011...), or None:
            still alive, never opened, or killed with its host.
        close_text: why it ended, in the trace's words: the exception of its ``closed``
            event, else the TCP failure or the fault that ended it ("" while alive).
        state: its state at the end of the trace.
        ended_by: the event ``close_text`` comes from, whose detail says why in fields
            (None while alive).
    """

    conn: str
    side: str
    host: str
    peer: str
    started_at: float
    opened_at: float | None
    closing_at: float | None
    closed_at: float | None
    close_code: int | None
    close_text: str
    state: State
    ended_by: Event | None = field(default=None, compare=False, repr=False)

    @property
    def failed(self) -> bool:
        """True for a failed attempt: it ended without ever being OPEN (or CLOSING)."""
        return self.closed_at is not None and self.opened_at is None and self.closing_at is None

    @property
    def outcome(self) -> str:
        """How it ended, in a word or a number: ``"1000"``, ``"refused"``, ``""`` if alive."""
        if self.closed_at is None:
            return ""
        if self.close_code is not None:
            return str(self.close_code)
        detail = None if self.ended_by is None else self.ended_by.detail
        if isinstance(detail, Tcp):
            return _TCP_OUTCOMES.get(detail, "closed")
        if isinstance(detail, FaultInfo):
            return detail.fault.name
        closed = None if self.ended_by is None else self.ended_by.closed
        if closed is not None and closed.status is not None:
            return f"HTTP {closed.status}"
        if closed is not None and closed.handshake:
            return "failed"
        return "closed"


_TCP_OUTCOMES = {
    Tcp.REFUSED: "refused",
    Tcp.CONNECT_TIMEOUT: "timeout",
    Tcp.RESET: "reset",
    Tcp.TIMED_OUT: "timeout",
}


@dataclass
class _Walk:
    """What one endpoint went through, built event by event."""

    conn: str
    side: str
    host: str
    peer: str = ""
    moves: list[tuple[float, State]] = field(default_factory=list)
    close_code: int | None = None
    close_text: str = ""
    ended_by: Event | None = None
    closed_event: bool = False

    @property
    def state(self) -> State:
        return self.moves[-1][1]

    def move(self, time: float, state: State, event: Event) -> None:
        if not self.moves or state in TRANSITIONS[self.state]:
            self.moves.append((time, state))
            if state is CLOSED:
                self.close_text, self.ended_by = event.text, event
        if event.kind == "closed" and not self.closed_event:
            # The exception is the best account of the end, even when a log line or a
            # TCP failure closed the endpoint a moment before.
            self.closed_event = True
            self.close_code = None if event.code is None else int(event.code)
            self.close_text, self.ended_by = event.text, event

    def when(self, state: State) -> float | None:
        for time, reached in self.moves:
            if reached is state:
                return time
        return None


def _walk(trace: Iterable[Event]) -> list[_Walk]:
    walks: dict[tuple[str, str], _Walk] = {}
    conns: dict[str, None] = {}
    peers: dict[tuple[str, str], str] = {}
    for event in trace:
        if event.conn and event.side and event.peer:
            peers.setdefault((event.conn, event.side), event.peer)
        for rule in RULES:
            if not rule.matches(event):
                continue
            if rule.host_wide:
                for walk in walks.values():
                    if walk.host == event.host and walk.state is not CLOSED:
                        walk.move(event.time, rule.to, event)
            elif event.conn and event.side in ("client", "server"):
                key = (event.conn, event.side)
                if key not in walks:
                    walks[key] = _Walk(event.conn, event.side, event.host)
                    conns.setdefault(event.conn, None)
                walks[key].move(event.time, rule.to, event)
            break
    order = {conn: i for i, conn in enumerate(conns)}
    result = sorted(walks.values(), key=lambda w: (order[w.conn], w.side != "client"))
    hosts = {(w.conn, w.side): w.host for w in result}
    for walk in result:
        other = "server" if walk.side == "client" else "client"
        walk.peer = peers.get((walk.conn, walk.side)) or hosts.get((walk.conn, other), "")
    return result


def endpoints(trace: Iterable[Event]) -> list[Endpoint]:
    """Summarise every connection endpoint of ``trace``.

    An endpoint starts at the first event a rule reads: its SYN or its accepted socket in
    a whole trace; in a trace cut after a connection began, the first state change left.

    Args:
        trace: a trace, or any events in time order.

    Returns:
        One :class:`Endpoint` per connection and side, connections in the order they
        first appear, the client before the server of each.
    """
    out = []
    for walk in _walk(trace):
        out.append(
            Endpoint(
                conn=walk.conn,
                side=walk.side,
                host=walk.host,
                peer=walk.peer,
                started_at=walk.moves[0][0],
                opened_at=walk.when(OPEN),
                closing_at=walk.when(CLOSING),
                closed_at=walk.when(CLOSED),
                close_code=walk.close_code,
                close_text=walk.close_text,
                state=walk.state,
                ended_by=walk.ended_by,
            )
        )
    return out


def spans(trace: Trace | Iterable[Event], until: float | None = None) -> list[Span]:
    """Cut every endpoint's life into spans of one state.

    CLOSED is final and has no span: an endpoint's last span ends when it closes (see
    :func:`endpoints` for when and how). Spans of no duration (a server moves from
    CONNECTING to OPEN in the instant it answers the handshake) are left out.

    Args:
        trace: a trace, or any events in time order.
        until: where spans still open at the end stop; also cuts off anything later.
            Default: the time of the trace's last event.

    Returns:
        Spans in the order of :func:`endpoints`, each endpoint's in time order.
    """
    events = trace if isinstance(trace, Trace) else Trace(trace)
    end = events.end if until is None else until
    out = []
    for walk in _walk(events):
        for (start, state), (stop, _) in itertools.pairwise([*walk.moves, (end, CLOSED)]):
            if state is CLOSED:
                break
            stop = min(stop, end)
            if stop > start:
                out.append(Span(walk.conn, walk.side, walk.host, state, start, stop))
    return out


# Faults


@dataclass(frozen=True, slots=True)
class FaultSpan:
    """Something that went wrong on purpose, and for how long.

    Attributes:
        name: ``"partition"``, ``"crash"``..., or the first word of a fault event that
            names no fault.
        text: the text of the event that started it.
        host: where it was recorded.
        start: when it started.
        end: when it ended; for a fault that never ended, the end of the trace (or
            ``until``); for an instant, ``start``.
        ended: True if the event that ends it is in the trace.
        instant: True for a moment, not an interval: what a fault did to one connection,
            an end without a start, or a fault event that names no fault.
        info: the starting event's :class:`~wssim.trace.FaultInfo` (the fault, its hosts
            and path), or None.
    """

    name: str
    text: str
    host: str
    start: float
    end: float
    ended: bool
    instant: bool
    info: FaultInfo | None = None

    @property
    def duration(self) -> float:
        """``end - start``, in seconds."""
        return self.end - self.start

    @property
    def fault(self) -> FaultLike | None:
        """The fault, or None."""
        return None if self.info is None else self.info.fault

    @property
    def hosts(self) -> tuple[str, ...]:
        """The hosts it acts on: the fault's, else the host it was recorded on."""
        fault = self.fault
        return (self.host,) if fault is None else fault.hosts


def faults(trace: Trace | Iterable[Event], until: float | None = None) -> list[FaultSpan]:
    """Pair each fault's start with its end: a partition with its heal, a crash with the
    restart of its host.

    A fault ends with the event that records its end (the same fault, by class and
    parameters), or, for one that kills its host's processes, when the host restarts.
    What a path fault did to one connection (``idle_timeout: the middlebox forgot this
    flow...``) is an instant of its own, at the moment it happened.

    Args:
        trace: a trace, or any events in time order.
        until: where faults that never ended stop. Default: the end of the trace.

    Returns:
        Faults in the order they started. An end without a start, or a ``fault`` event
        that names no fault (:meth:`wssim.Simulation.partition` records those, until it
        injects a :class:`~wssim.faults.Partition`), is an instant.
    """
    events = trace if isinstance(trace, Trace) else Trace(trace)
    stop = events.end if until is None else until
    open_: dict[int, tuple[Event, FaultInfo]] = {}
    done: dict[int, FaultSpan] = {}
    for index, event in enumerate(events):
        info = event.fault
        if event.detail is HostEvent.RESTART:
            # A restart brings back a host whose processes a fault killed.
            for i, (start, started) in list(open_.items()):
                if started.fault.kills and event.host in started.fault.hosts:
                    del open_[i]
                    done[i] = _span(start, started, event.time, ended=True)
            continue
        if info is None:
            if event.kind == "fault":
                name = event.text.split(":", 1)[0].split(" ", 1)[0]
                done[index] = FaultSpan(
                    name, event.text, event.host, event.time, event.time, False, True
                )
            continue
        if info.phase is Phase.START:
            open_[index] = (event, info)
            continue
        if info.phase is Phase.END:
            undone = [i for i, (_, started) in open_.items() if started.fault == info.fault]
            for i in undone:
                start, started = open_.pop(i)
                done[i] = _span(start, started, event.time, ended=True)
            if undone:
                continue
        # What a fault did to a connection, or an end without a start: an instant.
        done[index] = _span(event, info, event.time, instant=True)
    for index, (start, started) in open_.items():
        done[index] = _span(start, started, max(stop, start.time))
    return [done[i] for i in sorted(done)]


def _span(
    event: Event, info: FaultInfo, end: float, *, ended: bool = False, instant: bool = False
) -> FaultSpan:
    return FaultSpan(info.fault.name, event.text, event.host, event.time, end, ended, instant, info)


def summary(trace: Trace | Iterable[Event], *, conns: Iterable[str] | None = None) -> Table:
    """What each endpoint went through, one row each: the answer to "what did each side see?".

    Columns: the connection, the side and its host, when it opened and closed, the close
    code websockets reported, and why it ended (the exception the application saw, or the
    TCP failure or fault that ended it).

    Args:
        trace: the trace to read.
        conns: only these connections (default: all, in order of appearance).
    """
    wanted = None if conns is None else set(conns)

    def when(t: float | None) -> str:
        return "-" if t is None else f"{t:.3f}"

    rows = [
        (
            e.conn,
            e.side,
            e.host,
            when(e.opened_at),
            when(e.closed_at),
            "-" if e.close_code is None else str(e.close_code),
            e.close_text if e.closed_at is not None else "(still open)",
        )
        for e in endpoints(trace)
        if wanted is None or e.conn in wanted
    ]
    return Table(
        ("conn", "side", "host", "opened", "closed", "code", "what it saw"), rows, right=(3, 4)
    )
