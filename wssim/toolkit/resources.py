"""Per-connection resources, counted over virtual time.

A server holds things for each connection: a subscription in a registry, a buffer, a
database session, a background task. A :class:`Ledger` counts them. Code acquires a named
kind of resource and releases it later (by hand, or with ``with``/``async with``); the
ledger records every change at the simulation's virtual time, so a lesson can plot what is
held over time (:meth:`Ledger.series`) next to the connections open
(:func:`connections_open`), and prove that everything came back to zero
(:meth:`Ledger.check`).

Example::

    ledger = resources.Ledger()

    async def handler(websocket):
        with ledger.acquire("db session", owner=resources.conn_id(websocket)):
            async for message in websocket:
                ...

A ledger reads the time from the running event loop: acquire and release from code running
in a simulation (a process, a connection handler, a call scheduled with ``sim.at``).
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from wssim.trace.events import Table, Trace, microseconds
from wssim.trace.lifecycle import endpoints

if TYPE_CHECKING:
    from wssim.simulation import Simulation

__all__ = [
    "Hold",
    "Ledger",
    "Registry",
    "ResourceLeak",
    "Series",
    "conn_id",
    "connections_open",
]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class ResourceLeak(AssertionError):
    """Resources were still held when they should all have been released.

    Attributes:
        holds: the resources still held, oldest first.
    """

    def __init__(self, message: str, holds: list[Hold]) -> None:
        super().__init__(message)
        self.holds = holds


def _now() -> float:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "resources are acquired and released by code running in a simulation "
            "(a process, a connection handler, or a call scheduled with sim.at)"
        ) from None
    return microseconds(loop.time())


def _check_kind(kind: object) -> str:
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind must be a non-empty string, got {kind!r}")
    return kind


def _check_amount(amount: object) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
        raise ValueError(f"amount must be an integer >= 1, got {amount!r}")
    return amount


def conn_id(websocket: Any) -> str:
    """The trace's name of a websockets connection (``"c7"``), to use as an owner.

    Returns ``""`` for a connection that is not on the simulated network.
    """
    transport = getattr(websocket, "transport", None)
    connection = None if transport is None else transport.get_extra_info("connection")
    return str(getattr(connection, "id", ""))


class Hold:
    """Some amount of one kind of resource, held from :meth:`Ledger.acquire` until released.

    A hold is a context manager, synchronous and asynchronous: leaving the ``with`` or
    ``async with`` block releases it, however the block ends.

    Attributes:
        kind: what is held (``"subscription"``).
        amount: how much (1 unless said otherwise; bytes for a buffer, for example).
        owner: whom it is held for (a connection id, a user), for reports.
        acquired_at: virtual time of the acquisition.
        released_at: virtual time of the release, or None while held.
    """

    __slots__ = ("_ledger", "acquired_at", "amount", "kind", "owner", "released_at")

    def __init__(self, ledger: Ledger, kind: str, amount: int, owner: str, at: float) -> None:
        self._ledger = ledger
        self.kind = kind
        self.amount = amount
        self.owner = owner
        self.acquired_at = at
        self.released_at: float | None = None

    def __repr__(self) -> str:
        state = "held" if self.held else f"released at t={self.released_at:g}"
        owner = f" for {self.owner}" if self.owner else ""
        return f"<Hold {self.amount} {self.kind}{owner} since t={self.acquired_at:g}, {state}>"

    @property
    def held(self) -> bool:
        """True until released."""
        return self.released_at is None

    def release(self) -> None:
        """Give the resource back (see :meth:`Ledger.release`)."""
        self._ledger.release(self)

    def __enter__(self) -> Hold:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.held:
            self.release()

    async def __aenter__(self) -> Hold:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


@dataclass(frozen=True)
class Series:
    """A count that changes in steps over virtual time: ``values[i]`` from ``times[i]`` on.

    Plot it with ``ax.step(series.times, series.values, where="post")``.

    Attributes:
        times: when the count changed, in increasing order (starting at 0.0).
        values: the count from each of those times until the next.
    """

    times: tuple[float, ...]
    values: tuple[int, ...]

    @classmethod
    def from_changes(
        cls, changes: Iterable[tuple[float, int]], until: float | None = None
    ) -> Series:
        """Build a series from ``(time, change)`` pairs, starting from 0 at time 0.

        Changes at the same instant are summed into one step. With ``until``, the series
        gets a last point there (so that a plot reaches it) and later changes are left out.
        """
        totals: dict[float, int] = {}
        for time, change in sorted(changes, key=lambda pair: pair[0]):
            if until is not None and time > until:
                break
            totals[time] = totals.get(time, 0) + change
        times, values, level = [0.0], [0], 0
        for time, change in totals.items():
            level += change
            if time == times[-1]:
                values[-1] = level
            else:
                times.append(time)
                values.append(level)
        if until is not None and until > times[-1]:
            times.append(until)
            values.append(level)
        return cls(tuple(times), tuple(values))

    def at(self, time: float) -> int:
        """The count at virtual time ``time`` (changes at that instant included)."""
        index = bisect.bisect_right(self.times, time) - 1
        return self.values[index] if index >= 0 else 0

    @property
    def final(self) -> int:
        """The count at the end."""
        return self.values[-1]

    @property
    def peak(self) -> int:
        """The highest count reached."""
        return max(self.values)

    def __iter__(self) -> Iterator[tuple[float, int]]:
        return iter(zip(self.times, self.values, strict=True))


class Ledger:
    """Counts per-connection resources, by kind, over virtual time.

    Create one per experiment, outside the simulation; acquire and release from code
    running inside it.

    Args:
        sim: the simulation whose processes use this ledger. When given, what happens
            while the simulation is being closed is not counted: closing kills every
            process, and their ``finally`` clauses would release everything, hiding the
            picture at the end of the run. Without it, every change counts.

    Example::

        ledger = Ledger()
        hold = ledger.acquire("buffer", 4096, owner="c3")
        ...
        hold.release()              # or: with ledger.acquire(...): ...
        ledger.check()              # raises ResourceLeak if anything is still held
    """

    def __init__(self, sim: Simulation | None = None) -> None:
        self._sim = sim
        self._holds: list[Hold] = []
        self._held: dict[Hold, None] = {}
        self._changes: list[tuple[float, str, int]] = []
        # Kinds measured with measure() rather than held: their current level.
        self._levels: dict[str, int] = {}

    def __repr__(self) -> str:
        held = ", ".join(f"{kind}={n}" for kind, n in self.by_kind().items()) or "nothing"
        return f"<Ledger: {held} held>"

    @property
    def _frozen(self) -> bool:
        return self._sim is not None and self._sim.closed

    # Acquiring and releasing

    def acquire(self, kind: str, amount: int = 1, *, owner: object = "") -> Hold:
        """Start holding ``amount`` of ``kind``, now.

        Args:
            kind: what is held: any name (``"subscription"``, ``"db session"``).
            amount: how much, an integer >= 1 (a count, or bytes for a buffer).
            owner: whom it is held for, shown by :meth:`table` and :meth:`check` (a
                connection id from :func:`conn_id`, a user name...).

        Returns:
            The :class:`Hold`; release it, or use it as a context manager.

        Raises:
            ValueError: if ``kind`` is empty or ``amount`` is not an integer >= 1.
            RuntimeError: if called outside a running simulation.
        """
        kind = _check_kind(kind)
        amount = _check_amount(amount)
        if kind in self._levels:
            raise ValueError(f"kind {kind!r} is measured with measure(): acquire another kind")
        now = _now()
        hold = Hold(self, kind, amount, str(owner), now)
        if self._frozen:
            return hold  # not counted, and never released
        self._holds.append(hold)
        self._held[hold] = None
        self._changes.append((now, kind, amount))
        return hold

    def release(self, hold: Hold) -> None:
        """Stop holding ``hold``, now.

        Raises:
            ValueError: if ``hold`` was already released or belongs to another ledger.
        """
        if not isinstance(hold, Hold) or hold._ledger is not self:
            raise ValueError(f"hold must be a Hold acquired from this ledger, got {hold!r}")
        if not hold.held:
            raise ValueError(f"{hold!r} was already released")
        now = _now()
        if self._frozen:
            return
        hold.released_at = now
        del self._held[hold]
        self._changes.append((now, hold.kind, -hold.amount))

    def track(
        self, task: asyncio.Task[T], kind: str = "task", *, owner: object = ""
    ) -> asyncio.Task[T]:
        """Count ``task`` as one ``kind`` held for as long as it runs.

        A background task is a resource too: it holds memory, and whatever it references,
        until it ends. Returns ``task``, so that ``ledger.track(asyncio.create_task(...))``
        reads naturally.
        """
        if not isinstance(task, asyncio.Task):
            raise ValueError(f"task must be an asyncio.Task, got {task!r}")
        hold = self.acquire(kind, owner=owner)
        if task.done():
            hold.release()
        else:
            task.add_done_callback(lambda _task: hold.release())
        return task

    def measure(self, kind: str, value: int) -> None:
        """Record that ``value`` of ``kind`` is in use now, as measured (not held).

        Some resources are not acquired and released by the application but measured: the
        bytes waiting in a connection's write buffer, for example. Sampling them here puts
        them on the same time axis as the held ones (:meth:`series`, the figures), and
        :meth:`check` fails while the last measure is not zero.

        Raises:
            ValueError: if ``value`` is not an integer >= 0, or ``kind`` is held by holds.
        """
        kind = _check_kind(kind)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"value must be an integer >= 0, got {value!r}")
        if any(h.kind == kind for h in self._holds):
            raise ValueError(f"kind {kind!r} is held with acquire(): measure another kind")
        now = _now()
        if self._frozen:
            return
        change = value - self._levels.get(kind, 0)
        self._levels[kind] = value
        self._changes.append((now, kind, change))

    def registry(self, kind: str = "registry entry") -> Registry[Any]:
        """A new :class:`Registry` whose entries count as ``kind`` in this ledger."""
        return Registry(self, kind)

    # Reading

    def held(self, kind: str | None = None) -> int:
        """How much is held now (or was last measured): of ``kind``, or of every kind added up."""
        held = sum(h.amount for h in self._held if kind is None or h.kind == kind)
        return held + sum(v for k, v in self._levels.items() if kind is None or k == kind)

    def by_kind(self) -> dict[str, int]:
        """How much of each kind is held now, kinds in the order first acquired."""
        return {kind: self.held(kind) for kind in self.kinds}

    @property
    def kinds(self) -> list[str]:
        """Every kind ever acquired, in the order first acquired."""
        return list(dict.fromkeys(kind for _, kind, _ in self._changes))

    @property
    def last_change(self) -> float:
        """Virtual time of the last acquisition or release (0.0 if none)."""
        return max((t for t, _, _ in self._changes), default=0.0)

    @property
    def holds(self) -> list[Hold]:
        """Every hold ever acquired, oldest first, released or not."""
        return list(self._holds)

    def outstanding(self, kind: str | None = None) -> list[Hold]:
        """The holds not released yet (of ``kind``, if given), oldest first."""
        return [h for h in self._held if kind is None or h.kind == kind]

    def acquired(self, kind: str | None = None) -> int:
        """How much was ever acquired (of ``kind``, if given)."""
        return sum(h.amount for h in self._holds if kind is None or h.kind == kind)

    def series(self, kind: str | None = None, *, until: float | None = None) -> Series:
        """What was held over time: of ``kind``, or of every kind added up.

        Args:
            kind: one kind, or None for the total.
            until: end the series there (a plot then reaches that time).
        """
        changes = ((t, c) for t, k, c in self._changes if kind is None or k == kind)
        return Series.from_changes(changes, until=until)

    def table(self) -> Table:
        """One row per kind: acquired, released, still held, and the peak held at once.

        A measured kind (see :meth:`measure`) shows ``-`` as acquired and released.
        """
        rows: list[tuple[object, ...]] = []
        for kind in self.kinds:
            held, peak = self.held(kind), self.series(kind).peak
            if kind in self._levels:
                rows.append((kind, "-", "-", held, peak))
            else:
                acquired = self.acquired(kind)
                rows.append((kind, acquired, acquired - held, held, peak))
        return Table(("kind", "acquired", "released", "held", "peak"), rows, right=(1, 2, 3, 4))

    def check(self) -> None:
        """Assert that nothing is held any more.

        Raises:
            ResourceLeak: listing what is still held, kind by kind, with the owners.
        """
        left = self.outstanding()
        measured = {k: v for k, v in self._levels.items() if v}
        if not left and not measured:
            return
        parts = []
        for kind in self.kinds:
            if kind in measured:
                parts.append(f"{kind} {measured[kind]} (measured)")
                continue
            holds = [h for h in left if h.kind == kind]
            if not holds:
                continue
            owners = [h.owner for h in holds if h.owner]
            shown = ", ".join(owners[:8]) + (", ..." if len(owners) > 8 else "")
            amount = sum(h.amount for h in holds)
            parts.append(f"{kind} {amount}" + (f" ({shown})" if shown else ""))
        raise ResourceLeak("still held: " + "; ".join(parts), left)


class Registry(Iterable[K]):
    """A set of entries (typically open connections) whose size a :class:`Ledger` counts.

    This is the connection registry of websockets' broadcast guide, with accounting: each
    entry added holds one ``kind`` until it is removed. Iterating gives the entries in the
    order they were added, so ``websockets.broadcast(registry, message)`` works.
    """

    def __init__(self, ledger: Ledger, kind: str = "registry entry") -> None:
        self._ledger = ledger
        self.kind = _check_kind(kind)
        self._entries: dict[K, Hold] = {}

    def __repr__(self) -> str:
        return f"<Registry {self.kind}: {len(self)} entries>"

    def add(self, entry: K, *, owner: object = "") -> None:
        """Add ``entry``; adding one already there changes nothing.

        Without an ``owner``, a websockets connection on the simulated network is its own
        owner (its trace name, ``"c7"``), so that a leak report says which connection.
        """
        if entry not in self._entries:
            owner = owner or conn_id(entry)
            self._entries[entry] = self._ledger.acquire(self.kind, owner=owner)

    def discard(self, entry: K) -> None:
        """Remove ``entry`` if it is there."""
        hold = self._entries.pop(entry, None)
        if hold is not None:
            hold.release()

    def remove(self, entry: K) -> None:
        """Remove ``entry``.

        Raises:
            KeyError: if it is not there.
        """
        if entry not in self._entries:
            raise KeyError(entry)
        self.discard(entry)

    def __contains__(self, entry: object) -> bool:
        return entry in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[K]:
        # A copy: a handler may remove its entry while someone iterates to broadcast.
        return iter(list(self._entries))


def connections_open(
    trace: Trace, *, host: str | None = None, side: str = "server", until: float | None = None
) -> Series:
    """How many WebSocket connections were open over time, as one side saw them.

    A connection counts from when that side saw it OPEN until that side saw it CLOSED (or
    its host crashed). By default this is the server's view: a half-open connection, whose
    client vanished without a word, still counts until the server notices.

    Args:
        trace: the trace of the simulation.
        host: only endpoints on this host (default: every host).
        side: ``"server"`` or ``"client"``.
        until: end the series there (default: the end of the trace).
    """
    if side not in ("client", "server"):
        raise ValueError(f"side must be 'client' or 'server', got {side!r}")
    changes: list[tuple[float, int]] = []
    for end in endpoints(trace):
        if end.side != side or (host is not None and end.host != host) or end.opened_at is None:
            continue
        changes.append((end.opened_at, 1))
        if end.closed_at is not None:
            changes.append((end.closed_at, -1))
    return Series.from_changes(changes, until=trace.end if until is None else until)
