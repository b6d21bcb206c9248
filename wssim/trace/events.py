"""The trace: everything that happened in a simulation, with its virtual time.

A trace is a list of frozen :class:`Event` records, ordered by time; events at the same
instant are ordered by connection, then in the order they happened. It can be filtered,
printed as an aligned text table, or handed to pandas as plain records.

Kinds of events:

========  ==============================================================================
tcp       segments and TCP outcomes: SYN, SYN-ACK, FIN, RST, connected, refused, reset...
http      the opening handshake on the wire: the upgrade request and the response status
frame     a WebSocket frame on the wire, in websockets' wording (``CLOSE 1000 (OK)``)
bytes     bytes on the wire that are neither HTTP nor WebSocket frames, or undecodable
log       an endpoint's own view, as websockets logs it (``= connection is OPEN``)
closed    the exception an endpoint's connection ended with, and its close code
fault     something that went wrong on purpose: a partition, a crash
host      a host event: restart
mark      a note the experiment added with :meth:`Simulation.mark`
console   a line a page logged with ``console.log`` in a :class:`wssim.browser.Tab`
========  ==============================================================================

An event's text is for people; code reads its fields. Besides the text, each event
carries a typed :attr:`Event.detail`: a :class:`Tcp` member, a :class:`FrameInfo`, a
:class:`ClosedInfo`, a :class:`FaultInfo`, a :class:`HostEvent`, or the websockets
connection state a ``log`` line announces. No module parses another module's sentence.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, overload

from websockets.frames import Opcode
from websockets.protocol import State as WsState

__all__ = [
    "KINDS",
    "MAX_DATA",
    "ClosedInfo",
    "Detail",
    "Event",
    "FaultInfo",
    "FaultLike",
    "FrameInfo",
    "HostEvent",
    "Path",
    "Phase",
    "Table",
    "Tcp",
    "Trace",
    "microseconds",
]

KINDS = ("tcp", "http", "frame", "bytes", "log", "closed", "fault", "host", "mark", "console")


def microseconds(t: float) -> float:
    """A time or a duration as the trace keeps it: in seconds, rounded to the microsecond."""
    return round(t, 6)


class Tcp(enum.Enum):
    """What a ``tcp`` event reports: a segment sent, or what happened at one end.

    The value is a short name for tables; the event's text says it for people.
    """

    LISTENING = "listening"
    """A server listens on a port (``listening on server:8765``)."""
    SYN = "SYN"
    """The first SYN of a connection attempt."""
    SYN_RETRANSMISSION = "SYN retransmission"
    """A SYN sent again because no SYN-ACK came (``SYN (retransmission 1)``)."""
    SYN_ACK = "SYN-ACK"
    FIN = "FIN"
    RST = "RST"
    RETRANSMISSION = "retransmission"
    """Data sent again once the path is open (``retransmission (120 bytes)``)."""
    CONNECTED = "connected"
    """The client's SYN-ACK arrived: the connection is established."""
    ACCEPTED = "accepted"
    """The server's kernel completed the handshake and handed the socket over."""
    REFUSED = "refused"
    """Nothing listened: ``connection refused``."""
    CONNECT_TIMEOUT = "connect timeout"
    """No SYN-ACK after every SYN retransmission: ``connect timed out (no SYN-ACK)``."""
    RESET = "reset"
    """An RST arrived: ``connection reset by peer``."""
    TIMED_OUT = "timed out"
    """The sender gave up retransmitting: ``connection timed out``."""
    WINDOW_FULL = "zero window"
    """The receiver's buffer is full: the sender waits."""
    WINDOW_OPEN = "window open"
    """The receiver made room: the sender resumes."""
    WINDOW_PROBE = "zero-window probe"
    """The sender asks whether a closed window opened (Linux probes it, backing off)."""
    KEEPALIVE = "keepalive probe"
    """A TCP keepalive probe (``SO_KEEPALIVE``), after ``TCP_KEEPIDLE`` seconds of silence."""

    @property
    def failure(self) -> bool:
        """True for the outcomes that end a connection endpoint with an error."""
        return self in _TCP_FAILURES


_TCP_FAILURES = frozenset({Tcp.REFUSED, Tcp.CONNECT_TIMEOUT, Tcp.RESET, Tcp.TIMED_OUT})


class HostEvent(enum.Enum):
    """What a ``host`` event reports."""

    RESTART = "restart"
    """The host boots again, empty (it ends a fault that killed its processes)."""
    PROCESS_FAILED = "process failed"
    """A process on the host raised an exception: the run stops."""


class Phase(enum.Enum):
    """Which moment of a fault an event records."""

    START = "start"
    END = "end"
    ACT = "act"
    """What a lasting fault did to one connection, at that moment (a middlebox forgot a
    flow, reset it, closed it)."""


@dataclass(frozen=True, slots=True, eq=False)
class Path:
    """The path between two hosts, both directions: ``Path("client", "server")``.

    Two paths are equal when they join the same hosts, in either order. ``str(path)`` is
    ``"client ↔ server"``, as the trace writes it.
    """

    a: str
    b: str

    def __str__(self) -> str:
        return f"{self.a} ↔ {self.b}"

    def __contains__(self, host: object) -> bool:
        return host == self.a or host == self.b

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Path) and {self.a, self.b} == {other.a, other.b}

    def __hash__(self) -> int:
        return hash(frozenset((self.a, self.b)))

    @property
    def hosts(self) -> tuple[str, str]:
        """``(a, b)``."""
        return (self.a, self.b)


class FaultLike(Protocol):
    """What the trace, and whatever reads it, knows of a fault.

    :class:`wssim.faults.Fault` is the one implementation; the trace sits below the faults
    and names only this much of them.
    """

    @property
    def name(self) -> str:
        """Its name in the trace (``"partition"``, ``"power loss"``)."""

    @property
    def label(self) -> str:
        """How figures and diagnoses name it: ``"crashed"`` for a host (after its name),
        the name for a path (before it)."""

    @property
    def acted(self) -> str:
        """How figures name the moment it acted on one connection (``"flow forgotten"``)."""

    @property
    def kills(self) -> bool:
        """True if every process on its host dies when it starts, and with them every
        connection endpoint there; a restart of the host ends it."""

    @property
    def hosts(self) -> tuple[str, ...]:
        """The hosts it involves."""

    @property
    def path(self) -> Path | None:
        """The path it acts on, or None for a fault on one host."""


@dataclass(frozen=True, slots=True)
class FaultInfo:
    """The detail of a fault's event: which fault, and which moment of it.

    Attributes:
        fault: the fault (a :class:`wssim.faults.Fault`; faults compare by their class and
            parameters, so the same fault in two runs is equal).
        phase: its start, its end, or what it did to one connection.
    """

    fault: FaultLike
    phase: Phase


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """The detail of a WebSocket frame: on the wire (``frame`` events), or as an endpoint
    logged it (``log`` events ``> ...`` and ``< ...``).

    Attributes:
        opcode: websockets' :class:`~websockets.frames.Opcode`, or the number of a
            reserved opcode.
        size: the payload's size in bytes, decompressed (what ``[N bytes]`` says).
        wire_size: the payload's size on the wire (compressed, if permessage-deflate
            compressed it); None in a log line, which sees the frame before compression.
        fin: False for a fragment that more fragments follow.
        masked: whether the payload was masked on the wire; None in a log line.
        data: a data frame's payload as text, if it is valid UTF-8 of at most
            :data:`MAX_DATA` bytes; else None (the trace keeps no large payloads).
        reason: a CLOSE frame's reason (its code is :attr:`Event.code`), or None.
        sent: in a log line, True if the endpoint sent the frame (``>``), False if it
            received it (``<``). A frame on the wire is sent by the event's host.
        head: how many characters at the start of the event's text describe the frame
            without its size and notes (``TEXT 'hi'`` of ``TEXT 'hi' [2 bytes]``).
        notes: what the wire tap found irregular (``"unmasked"``, ``"reserved bits
            set"``), or ``""``.
    """

    opcode: int
    size: int
    wire_size: int | None
    fin: bool = True
    masked: bool | None = None
    data: str | None = None
    reason: str | None = None
    sent: bool = True
    head: int = 0
    notes: str = ""


MAX_DATA = 1024
"""Payloads up to this many bytes are kept as text in :attr:`FrameInfo.data`."""


@dataclass(frozen=True, slots=True)
class ClosedInfo:
    """The detail of a ``closed`` event: the exception the connection ended with.

    Attributes:
        exception: its class name (``"ConnectionClosedError"``, ``"InvalidStatus"``).
        message: its message (``str(exc)``).
        handshake: True if the opening handshake failed.
        status: the HTTP status of a refused handshake (``InvalidStatus``), or None.
    """

    exception: str
    message: str
    handshake: bool = False
    status: int | None = None


Detail: TypeAlias = Tcp | FrameInfo | ClosedInfo | FaultInfo | HostEvent | WsState | None
"""What an event carries besides its text, by kind: ``tcp`` a :class:`Tcp`, ``frame`` a
:class:`FrameInfo` (``bytes``: None), ``log`` a :class:`FrameInfo` for a frame sent or
received or websockets' connection ``State`` for a state change (else None), ``closed`` a
:class:`ClosedInfo`, ``fault`` a :class:`FaultInfo` (a ``tcp`` event too, when a fault acts
on a connection), ``host`` a :class:`HostEvent`. ``http``, ``mark`` and ``console`` events
have None: the status of a response is :attr:`Event.code`."""


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened.

    Attributes:
        time: virtual time in seconds, rounded to the microsecond.
        kind: one of :data:`KINDS`.
        text: what happened, for people.
        host: where it happened; for things sent on the wire, the sender.
        peer: for things sent on the wire, the receiver.
        conn: the connection (``"c1"``, ``"c2"``...), or ``""``.
        side: ``"client"`` or ``"server"``: which end of ``conn`` this is about.
        arrives: for things sent on the wire, when they reach ``peer`` (None: lost or
            waiting for retransmission).
        code: the close code (``closed`` events, CLOSE frames on the wire or logged) or the
            HTTP status of a response.
        detail: what code reads instead of the text (see :data:`Detail`).
    """

    time: float
    kind: str
    text: str
    host: str = ""
    peer: str = ""
    conn: str = ""
    side: str = ""
    arrives: float | None = None
    code: int | None = None
    detail: Detail = None

    @property
    def where(self) -> str:
        """``host`` for local events; ``host → peer`` for things on the wire.

        ``host ↛ peer`` marks something sent that has not arrived (lost, or waiting for
        TCP to retransmit it).
        """
        if not self.peer:
            return self.host
        return f"{self.host} {'→' if self.arrives is not None else '↛'} {self.peer}"

    @property
    def tcp(self) -> Tcp | None:
        """The :class:`Tcp` detail, or None."""
        detail = self.detail
        return detail if isinstance(detail, Tcp) else None

    @property
    def frame(self) -> FrameInfo | None:
        """The :class:`FrameInfo` detail (a frame on the wire, or logged), or None."""
        detail = self.detail
        return detail if isinstance(detail, FrameInfo) else None

    @property
    def closed(self) -> ClosedInfo | None:
        """The :class:`ClosedInfo` detail, or None."""
        detail = self.detail
        return detail if isinstance(detail, ClosedInfo) else None

    @property
    def fault(self) -> FaultInfo | None:
        """The :class:`FaultInfo` detail, or None."""
        detail = self.detail
        return detail if isinstance(detail, FaultInfo) else None

    def record(self) -> dict[str, Any]:
        """The event as a plain dict: its fields, the detail's spread over named columns.

        Every record has the same keys; those of another kind of detail are None.
        """
        out: dict[str, Any] = {
            "time": self.time,
            "kind": self.kind,
            "text": self.text,
            "host": self.host,
            "peer": self.peer,
            "conn": self.conn,
            "side": self.side,
            "arrives": self.arrives,
            "code": self.code,
        }
        out.update(_DETAIL_COLUMNS)
        detail = self.detail
        if isinstance(detail, Tcp):
            out["tcp"] = detail.value
        elif isinstance(detail, FrameInfo):
            opcode = detail.opcode
            out["opcode"] = opcode.name if isinstance(opcode, Opcode) else opcode
            out["size"] = detail.size
            out["wire_size"] = detail.wire_size
            out["data"] = detail.data
            out["reason"] = detail.reason
        elif isinstance(detail, ClosedInfo):
            out["exception"] = detail.exception
            out["status"] = detail.status
        elif isinstance(detail, FaultInfo):
            out["fault"] = detail.fault.name
            out["phase"] = detail.phase.value
            path = detail.fault.path
            out["path"] = None if path is None else str(path)
        elif isinstance(detail, HostEvent):
            out["host_event"] = detail.value
        elif isinstance(detail, WsState):
            out["state"] = detail.name
        return out


_DETAIL_COLUMNS: dict[str, Any] = dict.fromkeys(
    (
        "tcp",
        "opcode",
        "size",
        "wire_size",
        "data",
        "reason",
        "exception",
        "status",
        "fault",
        "phase",
        "path",
        "host_event",
        "state",
    )
)


def _as_set(value: str | Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset((value,))
    return frozenset(value)


class Trace(Sequence[Event]):
    """An ordered, immutable list of events, with filters and a text table.

    Args:
        events: the events, in time order.
        ran_until: the virtual time the run had reached when the trace was taken (a run
            to ``until=3610`` whose last event was at 10 s ran until 3610); see
            :attr:`ran_until`.
    """

    def __init__(self, events: Iterable[Event] = (), *, ran_until: float | None = None) -> None:
        self._events = tuple(events)
        self._ran_until = ran_until

    @overload
    def __getitem__(self, index: int) -> Event: ...
    @overload
    def __getitem__(self, index: slice) -> Trace: ...
    def __getitem__(self, index: int | slice) -> Event | Trace:
        if isinstance(index, slice):
            return Trace(self._events[index], ran_until=self._ran_until)
        return self._events[index]

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self._events)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Trace) and self._events == other._events

    def __hash__(self) -> int:
        return hash(self._events)

    def __repr__(self) -> str:
        return f"<Trace: {len(self)} events>"

    def filter(
        self,
        *,
        kind: str | Iterable[str] | None = None,
        conn: str | Iterable[str] | None = None,
        host: str | Iterable[str] | None = None,
        side: str | None = None,
        since: float | None = None,
        until: float | None = None,
        contains: str | None = None,
    ) -> Trace:
        """Return the events that match every given criterion.

        Args:
            kind: a kind or several (see :data:`KINDS`).
            conn: a connection id or several.
            host: a host name or several; matches the sender or the receiver of wire events.
            side: ``"client"`` or ``"server"``.
            since: keep events at or after this time.
            until: keep events at or before this time.
            contains: keep events whose text contains this string.
        """
        kinds, conns, hosts = _as_set(kind), _as_set(conn), _as_set(host)
        if kinds is not None and not kinds <= set(KINDS):
            unknown = sorted(kinds - set(KINDS))
            raise ValueError(f"kind must be among {', '.join(KINDS)}; got {unknown}")
        if side is not None and side not in ("client", "server"):
            raise ValueError(f"side must be 'client' or 'server', got {side!r}")
        for name, value in (("since", since), ("until", until)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value != value
            ):
                raise ValueError(f"{name} must be a time in seconds, got {value!r}")
        if contains is not None and not isinstance(contains, str):
            raise ValueError(f"contains must be a string, got {contains!r}")
        return Trace(
            (
                e
                for e in self._events
                if (kinds is None or e.kind in kinds)
                and (conns is None or e.conn in conns)
                and (hosts is None or e.host in hosts or e.peer in hosts)
                and (side is None or e.side == side)
                and (since is None or e.time >= since)
                and (until is None or e.time <= until)
                and (contains is None or contains in e.text)
            ),
            ran_until=self._ran_until,
        )

    def first(self, **criteria: Any) -> Event | None:
        """The first event matching :meth:`filter` criteria, or None."""
        matches = self.filter(**criteria)
        return matches[0] if matches else None

    def last(self, **criteria: Any) -> Event | None:
        """The last event matching :meth:`filter` criteria, or None."""
        matches = self.filter(**criteria)
        return matches[-1] if matches else None

    @property
    def connections(self) -> list[str]:
        """Connection ids in the order they first appear."""
        return list(dict.fromkeys(e.conn for e in self._events if e.conn))

    @property
    def end(self) -> float:
        """Time of the last event (0.0 for an empty trace)."""
        return self._events[-1].time if self._events else 0.0

    @property
    def ran_until(self) -> float:
        """How far the run went: the virtual time it had reached when the trace was taken.

        Never before :attr:`end`. A quiet run (a half-open connection for an hour) ends long
        after its last event, and a figure of it must say so. A trace built from events
        alone, or filtered from one that was, ran until its last event. Traces compare by
        their events only.
        """
        last = self.end
        return last if self._ran_until is None else max(self._ran_until, last)

    def records(self) -> list[dict[str, Any]]:
        """Events as plain dicts, ready for ``pandas.DataFrame(trace.records())``.

        See :meth:`Event.record` for the columns.
        """
        return [e.record() for e in self._events]

    def table(self, *, digits: int = 3, **criteria: Any) -> Table:
        """An aligned text table of the events matching :meth:`filter` criteria.

        Args:
            digits: decimals of the time column.
            **criteria: as for :meth:`filter`.
        """
        if isinstance(digits, bool) or not isinstance(digits, int) or not 0 <= digits <= 9:
            raise ValueError(f"digits must be an integer from 0 to 9, got {digits!r}")
        events = self.filter(**criteria) if criteria else self
        rows = [(f"{e.time:.{digits}f}", e.conn, e.where, e.kind, e.text) for e in events]
        return Table(("time", "conn", "where", "kind", "event"), rows, right=(0,))


class Table:
    """A small text table: ``str(table)`` is aligned, monospaced and deterministic."""

    def __init__(
        self,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        *,
        right: Iterable[int] = (),
    ) -> None:
        self.columns = tuple(columns)
        self.rows = [tuple("" if v is None else str(v) for v in row) for row in rows]
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"row {row!r} has {len(row)} cells, expected {len(self.columns)}")
        self._right = frozenset(right)

    def __len__(self) -> int:
        return len(self.rows)

    def __str__(self) -> str:
        widths = [
            max([len(c)] + [len(row[i]) for row in self.rows]) for i, c in enumerate(self.columns)
        ]

        def line(cells: Sequence[str]) -> str:
            parts = [
                cell.rjust(w) if i in self._right else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
            ]
            return "  ".join(parts).rstrip()

        out = [line(self.columns), line(["-" * w for w in widths])]
        out += [line(row) for row in self.rows]
        return "\n".join(out)

    __repr__ = __str__
