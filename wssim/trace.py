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
========  ==============================================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, overload

__all__ = ["KINDS", "Event", "Table", "Trace"]

KINDS = ("tcp", "http", "frame", "bytes", "log", "closed", "fault", "host", "mark")


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
        code: the close code (``closed`` events, CLOSE frames) or the HTTP status.
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

    @property
    def where(self) -> str:
        """``host`` for local events; ``host → peer`` for things on the wire.

        ``host ↛ peer`` marks something sent that has not arrived (lost, or waiting for
        TCP to retransmit it).
        """
        if not self.peer:
            return self.host
        return f"{self.host} {'→' if self.arrives is not None else '↛'} {self.peer}"


def _as_set(value: str | Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset((value,))
    return frozenset(value)


class Trace(Sequence[Event]):
    """An ordered, immutable list of events, with filters and a text table."""

    def __init__(self, events: Iterable[Event] = ()) -> None:
        self._events = tuple(events)

    @overload
    def __getitem__(self, index: int) -> Event: ...
    @overload
    def __getitem__(self, index: slice) -> Trace: ...
    def __getitem__(self, index: int | slice) -> Event | Trace:
        if isinstance(index, slice):
            return Trace(self._events[index])
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
            e
            for e in self._events
            if (kinds is None or e.kind in kinds)
            and (conns is None or e.conn in conns)
            and (hosts is None or e.host in hosts or e.peer in hosts)
            and (side is None or e.side == side)
            and (since is None or e.time >= since)
            and (until is None or e.time <= until)
            and (contains is None or contains in e.text)
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

    def records(self) -> list[dict[str, Any]]:
        """Events as plain dicts, ready for ``pandas.DataFrame(trace.records())``."""
        return [asdict(e) for e in self._events]

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
