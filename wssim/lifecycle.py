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
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from wssim.trace import Event, Table, Trace

__all__ = [
    "FAULT_RULES",
    "RULES",
    "TRANSITIONS",
    "Endpoint",
    "FaultRule",
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
        text: the event's text, or its beginning when ``prefix`` is true.
        to: the state the endpoint moves to.
        side: only events about this side (``"client"`` or ``"server"``), or either.
        prefix: match ``text`` as the beginning of the event's text.
        host_wide: the event is about a host, not a connection: it moves every endpoint
            on that host (a crash kills every process there).
    """

    kind: str
    text: str
    to: State
    side: str | None = None
    prefix: bool = False
    host_wide: bool = False

    def matches(self, event: Event) -> bool:
        """True if ``event`` is one this rule reads."""
        if event.kind != self.kind or (self.side is not None and event.side != self.side):
            return False
        if self.prefix:
            return event.text.startswith(self.text)
        return event.text == self.text


RULES: tuple[Rule, ...] = (
    # The client starts with its first SYN; the server once the handshake's ACK arrives
    # (before that, only the kernel knows about the connection: SYN-ACK, or RST if refused).
    Rule("tcp", "SYN", CONNECTING, side="client"),
    Rule("tcp", "accepted", CONNECTING, side="server"),
    # websockets logs its own state changes ("= connection is OPEN").
    Rule("log", "= connection is CONNECTING", CONNECTING),
    Rule("log", "= connection is OPEN", OPEN),
    Rule("log", "= connection is CLOSING", CLOSING),
    Rule("log", "= connection is CLOSED", CLOSED),
    # The exception the connection ended with; it carries the close code.
    Rule("closed", "", CLOSED, prefix=True),
    # TCP failures end an endpoint whether websockets got to see it or not.
    Rule("tcp", "connection refused", CLOSED, side="client"),
    Rule("tcp", "connect timed out", CLOSED, side="client", prefix=True),
    Rule("tcp", "connection reset by peer", CLOSED),
    Rule("tcp", "gave up retransmitting", CLOSED, prefix=True),
    # A crash kills every process of the host, and their connections with them; so does
    # a power loss, in silence.
    Rule("fault", "crash", CLOSED, prefix=True, host_wide=True),
    Rule("fault", "power loss", CLOSED, prefix=True, host_wide=True),
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
        text = self.close_text
        for start, word in _OUTCOMES:
            if text.startswith(start):
                return word
        status = re.search(r"HTTP (\d{3})", text)
        if status:
            return f"HTTP {status[1]}"
        if text.startswith("handshake failed"):
            return "failed"
        return "closed"


_OUTCOMES = (
    ("connection refused", "refused"),
    ("connect timed out", "timeout"),
    ("connection reset", "reset"),
    ("gave up retransmitting", "timeout"),
    ("crash", "crash"),
    ("power loss", "power loss"),
)


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
    closed_event: bool = False

    @property
    def state(self) -> State:
        return self.moves[-1][1]

    def move(self, time: float, state: State, event: Event) -> None:
        if not self.moves or state in TRANSITIONS[self.state]:
            self.moves.append((time, state))
            if state is CLOSED:
                self.close_text = event.text
        if event.kind == "closed" and not self.closed_event:
            # The exception is the best account of the end, even when a log line or a
            # TCP failure closed the endpoint a moment before.
            self.closed_event = True
            self.close_code = None if event.code is None else int(event.code)
            self.close_text = event.text

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
class FaultRule:
    """How to find the end of a fault: the later event that undoes it.

    Attributes:
        name: what to call the fault (``"partition"``).
        start: a regular expression matched at the beginning of a ``fault`` event's text.
        end_kind: the kind of the event that ends it.
        end: a regular expression matched at the beginning of that event's text.
        same_host: the end must happen on the same host as the start.

    The named groups of ``start`` and ``end`` must be equal as sets, so ``heal b ↔ a`` ends
    ``partition a ↔ b``.
    """

    name: str
    start: str
    end_kind: str
    end: str
    same_host: bool = False


FAULT_RULES: tuple[FaultRule, ...] = (
    FaultRule(
        "partition", r"partition (?P<a>.+) ↔ (?P<b>.+)", "fault", r"heal (?P<a>.+) ↔ (?P<b>.+)"
    ),
    FaultRule("crash", r"crash\b", "host", r"restart\b", same_host=True),
    FaultRule("power loss", r"power loss\b", "host", r"restart\b", same_host=True),
    FaultRule("freeze", r"freeze\b", "fault", r"thaw\b", same_host=True),
    FaultRule("suspend", r"suspend\b", "fault", r"resume\b", same_host=True),
    *(
        FaultRule(
            name,
            rf"{name} (?P<a>\S+) ↔ (?P<b>[^\s:]+)",
            "fault",
            rf"end of {name} (?P<a>\S+) ↔ (?P<b>[^\s:]+)",
        )
        for name in (
            "latency",
            "bandwidth",
            "slow_close",
            "slicer",
            "limit_data",
            "reset_peer",
            "idle_timeout",
        )
    ),
)
"""The faults known to last a while. Any other fault is an instant."""


@dataclass(frozen=True, slots=True)
class FaultSpan:
    """Something that went wrong on purpose, and for how long.

    Attributes:
        name: ``"partition"``, ``"crash"``..., or the first word of an unknown fault.
        text: the text of the event that started it.
        host: where it was recorded.
        start: when it started.
        end: when it ended; for a fault that never ended, the end of the trace (or
            ``until``); for an instant, ``start``.
        ended: True if the event that ends it is in the trace.
        instant: True for a fault nobody knows the end of: a marker, not an interval.
    """

    name: str
    text: str
    host: str
    start: float
    end: float
    ended: bool
    instant: bool

    @property
    def duration(self) -> float:
        """``end - start``, in seconds."""
        return self.end - self.start


def _key(match: re.Match[str], event: Event, rule: FaultRule) -> tuple[object, ...]:
    groups = frozenset(match.groupdict().values())
    return (rule.name, groups, event.host if rule.same_host else None)


def faults(trace: Trace | Iterable[Event], until: float | None = None) -> list[FaultSpan]:
    """Pair each fault with the event that ends it: partitions with heals, crashes with restarts.

    What a path fault did to one connection (``idle_timeout: the middlebox forgot this
    flow...``) is an instant of its own, at the moment it happened.

    Args:
        trace: a trace, or any events in time order.
        until: where faults that never ended stop. Default: the end of the trace.

    Returns:
        Faults in the order they started. A fault that :data:`FAULT_RULES` does not know,
        or an end without a start (a heal of nothing), is an instant.
    """
    events = trace if isinstance(trace, Trace) else Trace(trace)
    stop = events.end if until is None else until
    open_: dict[int, tuple[Event, FaultRule, tuple[object, ...]]] = {}
    done: dict[int, FaultSpan] = {}
    for index, event in enumerate(events):
        if event.kind == "tcp" and _PATH_ACTION.match(event.text):
            # What a path fault did to one connection (a middlebox forgot it, reset it):
            # an instant, at the moment it happened.
            done[index] = _fault(event, _first_word(event.text), event.time, instant=True)
            continue
        if _ends_faults(event, open_, done) or event.kind != "fault":
            continue
        for rule in FAULT_RULES:
            starts = re.match(rule.start, event.text)
            if starts:
                open_[index] = (event, rule, _key(starts, event, rule))
                break
        else:
            done[index] = _fault(event, _first_word(event.text), event.time, instant=True)
    for index, (start, rule, _) in open_.items():
        done[index] = _fault(start, rule.name, max(stop, start.time), ended=False)
    return [done[i] for i in sorted(done)]


_PATH_ACTION = re.compile(r"(idle_timeout|reset_peer|limit_data): ")
"""The beginning of a tcp event saying what a path fault did to a connection."""


def _ends_faults(
    event: Event,
    open_: dict[int, tuple[Event, FaultRule, tuple[object, ...]]],
    done: dict[int, FaultSpan],
) -> bool:
    """End the open faults that ``event`` undoes; True if there were any."""
    for rule in FAULT_RULES:
        ends = re.match(rule.end, event.text) if event.kind == rule.end_kind else None
        if ends is None:
            continue
        key = _key(ends, event, rule)
        undone = [i for i, (_, _, k) in open_.items() if k == key]
        for i in undone:
            start, _, _ = open_.pop(i)
            done[i] = _fault(start, rule.name, event.time, ended=True)
        if undone:
            return True
    return False


def _fault(
    event: Event, name: str, end: float, *, ended: bool = False, instant: bool = False
) -> FaultSpan:
    return FaultSpan(name, event.text, event.host, event.time, end, ended, instant)


def _first_word(text: str) -> str:
    word = re.match(r"[\w-]+", text)
    return word[0] if word else text


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
