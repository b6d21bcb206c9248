"""The scorecard of a resilience test: what survived a run, line by line, against targets.

A resilient WebSocket application is judged end to end, by what its users see, not by what
the library says. Each line of a :class:`Scorecard` is one measurement with its target:

==========================  =================================================================
messages lost               sent, never delivered (message ids end to end)
messages duplicated         delivered more than once
messages reordered          delivered after a message sent later on the same stream
worst time disconnected     the longest time one user received nothing while events flowed
peak reconnect rate         the most connection attempts reaching the server in one second
resources left at the end   what the server still holds once every client has gone
protocol errors survived    bad inputs the server answered without its handler failing
==========================  =================================================================

"Disconnected" is measured from what the user sees, not from what the client believes: a
client on a half-open connection thinks it is connected, and receives nothing. So the line
is the longest gap between two deliveries on one stream of events that keeps flowing (an
event every few seconds), which covers a closed connection, a half-open one, and the time
it takes to come back. :func:`disconnections` gives the client's own view, from the trace.

The measurements are plain functions, usable on their own: :class:`MessageLog` counts
messages by id and finds the longest silences, :func:`disconnections`,
:func:`attempts_per_second` and :func:`handler_failures` read a trace, and a
:class:`~wssim.toolkit.resources.Ledger` gives the resources. :func:`score` puts them together.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from wssim.toolkit.resources import Ledger, connections_open
from wssim.trace.events import Table, Tcp, Trace, microseconds
from wssim.trace.lifecycle import endpoints

__all__ = [
    "Line",
    "MessageCounts",
    "MessageLog",
    "Scorecard",
    "Targets",
    "attempts_per_second",
    "disconnections",
    "handler_failures",
    "score",
]

HANDLER_FAILED = "connection handler failed"
"""What websockets' server logs when a connection handler raises (at ERROR level)."""


@dataclass(frozen=True)
class MessageCounts:
    """Messages counted by id, from their source to their destination.

    Attributes:
        sent: messages sent (each id once).
        delivered: deliveries, duplicates included.
        lost: ids sent and never delivered.
        duplicated: deliveries of an id already delivered.
        reordered: first deliveries of an id that came after an id sent later on the same
            stream had been delivered.
        unknown: deliveries of ids that were never sent on their stream.
    """

    sent: int
    delivered: int
    lost: int
    duplicated: int
    reordered: int
    unknown: int


class MessageLog:
    """End-to-end message ids: what each stream sent, and what reached the application.

    A stream is one ordered flow of messages: the events a server publishes to one client,
    or the messages one client writes to the server. Record each message when its source
    sends it (:meth:`sent`: when the user writes it, when the publisher publishes it) and
    when it reaches the application at the other end (:meth:`delivered`: when the client
    shows it, when the server stores it), not when bytes cross the wire: a message that
    arrives twice and is dropped by the application as a duplicate is delivered once.

    Example::

        log = MessageLog()
        for n in (1, 2, 3):
            log.sent("alice", n)
        for n in (1, 3, 3):
            log.delivered("alice", n)
        log.counts()  # lost 1 (2), duplicated 1 (3); 3 before 2 is no reorder: 2 is lost
    """

    def __init__(self) -> None:
        # Per stream: message id -> its position in the order sent.
        self._sent: dict[Hashable, dict[Hashable, int]] = {}
        self._delivered: dict[Hashable, list[Hashable]] = {}
        self._times: dict[Hashable, list[float]] = {}

    def __repr__(self) -> str:
        c = self.counts()
        return (
            f"<MessageLog {len(self._sent)} streams: {c.sent} sent, {c.lost} lost, "
            f"{c.duplicated} duplicated, {c.reordered} reordered>"
        )

    def sent(self, stream: Hashable, message_id: Hashable) -> None:
        """Record that ``message_id`` was sent on ``stream`` (after every earlier one).

        Raises:
            ValueError: if that id was already sent on that stream: ids must be unique.
        """
        ids = self._sent.setdefault(stream, {})
        if message_id in ids:
            raise ValueError(f"message_id {message_id!r} was already sent on stream {stream!r}")
        ids[message_id] = len(ids)

    def delivered(self, stream: Hashable, message_id: Hashable, at: float | None = None) -> None:
        """Record that ``message_id`` reached the application at the end of ``stream``,
        at time ``at`` if given (for :meth:`silence`)."""
        self._delivered.setdefault(stream, []).append(message_id)
        if at is not None:
            self._times.setdefault(stream, []).append(at)

    def silence(self, stream: Hashable, *, since: float, until: float) -> tuple[float, float]:
        """The longest time within [``since``, ``until``] without a delivery on ``stream``
        (deliveries recorded with a time), and when it began.

        Returns:
            ``(seconds, start)``.
        """
        if not until >= since:
            raise ValueError(f"until must be >= since, got since={since!r}, until={until!r}")
        longest, began, last = 0.0, since, since
        for t in sorted(self._times.get(stream, [])):
            if t < since or t > until:
                continue
            if t - last > longest:
                longest, began = t - last, last
            last = t
        if until - last > longest:
            longest, began = until - last, last
        return microseconds(longest), microseconds(began)

    @property
    def streams(self) -> list[Hashable]:
        """Every stream, in the order first seen."""
        return list(dict.fromkeys([*self._sent, *self._delivered]))

    def lost_ids(self, stream: Hashable) -> list[Hashable]:
        """The ids sent on ``stream`` and never delivered, in the order sent."""
        delivered = set(self._delivered.get(stream, []))
        return [i for i in self._sent.get(stream, {}) if i not in delivered]

    def duplicated_ids(self, stream: Hashable) -> list[Hashable]:
        """The ids delivered more than once on ``stream``, in the order first repeated."""
        seen: set[Hashable] = set()
        repeated: dict[Hashable, None] = {}
        for message_id in self._delivered.get(stream, []):
            if message_id in seen:
                repeated[message_id] = None
            seen.add(message_id)
        return list(repeated)

    def reordered_ids(self, stream: Hashable) -> list[Hashable]:
        """The ids of ``stream`` first delivered after an id sent later (as :meth:`counts`
        counts them), in the order delivered."""
        order = self._sent.get(stream, {})
        seen: set[Hashable] = set()
        highest = -1
        late = []
        for message_id in self._delivered.get(stream, []):
            position = order.get(message_id)
            if position is None or message_id in seen:
                continue
            seen.add(message_id)
            if position < highest:
                late.append(message_id)
            highest = max(highest, position)
        return late

    def unknown_ids(self, stream: Hashable) -> list[Hashable]:
        """The ids delivered on ``stream`` that were never sent on it, in the order delivered."""
        order = self._sent.get(stream, {})
        return [i for i in self._delivered.get(stream, []) if i not in order]

    def counts(self, streams: Iterable[Hashable] | None = None) -> MessageCounts:
        """Count the messages of ``streams`` (default: every stream)."""
        chosen = self.streams if streams is None else list(streams)
        sent = delivered = lost = duplicated = reordered = unknown = 0
        for stream in chosen:
            order = self._sent.get(stream, {})
            got = self._delivered.get(stream, [])
            sent += len(order)
            delivered += len(got)
            seen: set[Hashable] = set()
            highest = -1
            for message_id in got:
                position = order.get(message_id)
                if position is None:
                    unknown += 1
                    continue
                if message_id in seen:
                    duplicated += 1
                    continue
                seen.add(message_id)
                if position < highest:
                    reordered += 1
                highest = max(highest, position)
            lost += len(order) - len(seen)
        return MessageCounts(sent, delivered, lost, duplicated, reordered, unknown)


# Measurements from a trace


def disconnections(
    trace: Trace, hosts: Iterable[str], *, since: float, until: float
) -> dict[str, float]:
    """For each client host, the longest time within [``since``, ``until``] it had no open
    WebSocket connection, as the client saw it.

    A connection counts as open from the client's ``connection is OPEN`` to its end. A
    half-open connection (the server is gone and the client has not noticed) counts as
    open: the client does not know better; the messages it loses meanwhile show in the
    message counts.
    """
    if not until >= since:
        raise ValueError(f"until must be >= since, got since={since!r}, until={until!r}")
    wanted = dict.fromkeys(hosts)
    spans: dict[str, list[tuple[float, float]]] = {host: [] for host in wanted}
    for end in endpoints(trace):
        if end.side != "client" or end.host not in spans or end.opened_at is None:
            continue
        closed = until if end.closed_at is None else min(end.closed_at, until)
        spans[end.host].append((end.opened_at, closed))
    worst: dict[str, float] = {}
    for host, opened in spans.items():
        longest, covered = 0.0, since
        for start, stop in sorted(opened):
            if start > covered:
                longest = max(longest, min(start, until) - covered)
            covered = max(covered, stop)
        longest = max(longest, until - covered)
        worst[host] = microseconds(max(longest, 0.0))
    return worst


def attempts_per_second(
    trace: Trace,
    *,
    server: str,
    since: float,
    until: float,
    hosts: Iterable[str] | None = None,
) -> list[int]:
    """Connection attempts reaching host ``server``, per second from ``since`` to ``until``.

    An attempt is a first ``SYN`` (not a retransmission) that arrives at ``server``, counted
    in the second it arrives; ``hosts`` limits the senders (default: any host). Attempts
    refused by the host's TCP stack, while its server is down, count too: they reach it.
    """
    if not until >= since:
        raise ValueError(f"until must be >= since, got since={since!r}, until={until!r}")
    senders = None if hosts is None else set(hosts)
    counts = [0] * max(1, math.ceil(until - since))
    for event in trace.filter(kind="tcp", side="client", since=since - 60, until=until):
        if event.detail is not Tcp.SYN or event.peer != server or event.arrives is None:
            continue
        if senders is not None and event.host not in senders:
            continue
        if since <= event.arrives < until:
            counts[int(event.arrives - since)] += 1
    return counts


def handler_failures(trace: Trace, conns: Iterable[str] | None = None) -> list[str]:
    """Connections (of ``conns``, default all) whose server-side handler raised: websockets
    logged "connection handler failed" and closed them with 1011."""
    wanted = None if conns is None else set(conns)
    failed = trace.filter(kind="log", side="server", contains=HANDLER_FAILED)
    return list(dict.fromkeys(e.conn for e in failed if wanted is None or e.conn in wanted))


# The scorecard


@dataclass(frozen=True)
class Targets:
    """What a resilient application must achieve; the other lines' targets are fixed.

    Attributes:
        disconnected: seconds a client may stay disconnected at most.
        attempts_per_second: connection attempts per second the server may receive at most.
    """

    disconnected: float = 60.0
    attempts_per_second: int = 50

    def __post_init__(self) -> None:
        d = self.disconnected
        if isinstance(d, bool) or not isinstance(d, int | float) or not (0 < d < math.inf):
            raise ValueError(f"disconnected must be a finite number of seconds > 0, got {d!r}")
        rate = self.attempts_per_second
        if isinstance(rate, bool) or not isinstance(rate, int) or rate < 1:
            raise ValueError(f"attempts_per_second must be an integer >= 1, got {rate!r}")


@dataclass(frozen=True)
class Line:
    """One line of a scorecard.

    Attributes:
        name: what is measured (``"messages lost"``).
        value: the measurement, as a number.
        measured: the measurement for people (``"12 of 3,400"``).
        target: the target for people (``"0"``, ``"<= 60 s"``).
        passed: whether the measurement meets the target.
        detail: where it went wrong, if it did (``"client17, from t=130.2"``).
    """

    name: str
    value: float
    measured: str
    target: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class Scorecard:
    """Lines of measurements against targets; ``str()`` prints it as a text table."""

    lines: tuple[Line, ...]

    def __str__(self) -> str:
        return str(self.table())

    __repr__ = __str__

    def table(self) -> Table:
        """One row per line: the measurement, the target, pass or FAIL, and a detail."""
        rows = [
            (line.name, line.measured, line.target, "pass" if line.passed else "FAIL", line.detail)
            for line in self.lines
        ]
        return Table(("line", "measured", "target", "result", "detail"), rows, right=(1,))

    @property
    def passed(self) -> bool:
        """True if every line passed."""
        return all(line.passed for line in self.lines)

    @property
    def failed(self) -> list[str]:
        """The names of the lines that failed, in order."""
        return [line.name for line in self.lines if not line.passed]

    def __getitem__(self, name: str) -> Line:
        for line in self.lines:
            if line.name == name:
                return line
        raise KeyError(f"no line {name!r}; the lines are {[x.name for x in self.lines]}")


def _of(count: int, total: int) -> str:
    return f"{count:,} of {total:,}"


def score(
    messages: MessageLog,
    trace: Trace,
    ledger: Ledger,
    *,
    clients: Sequence[str],
    server: str,
    since: float,
    until: float,
    news: Mapping[str, Hashable],
    news_until: float,
    bad_input_conns: Sequence[str] = (),
    targets: Targets | None = None,
) -> Scorecard:
    """Measure a run and score it against ``targets``.

    Args:
        messages: the end-to-end message ids of the run.
        trace: its trace, up to the end (after every client has gone).
        ledger: the server's resources; read now, so call this at the end of the run.
            Connections the server still has open at the end of the trace count too.
        clients: the client hosts whose reconnect attempts count.
        server: the server's host.
        since: when the test proper starts (every client connected): silences and
            attempts count from then.
        until: when the clients leave: attempts count until then.
        news: for each client, its stream of events that keeps flowing (its silences are
            its disconnections).
        news_until: when that flow stops: silences count until then.
        bad_input_conns: the connections that carried bad input to the server.
        targets: the targets of the lines that have one (default: :class:`Targets`).
    """
    targets = targets or Targets()
    counts = messages.counts()
    lines = [
        Line("messages lost", counts.lost, _of(counts.lost, counts.sent), "0", counts.lost == 0),
        Line(
            "messages duplicated",
            counts.duplicated,
            f"{counts.duplicated:,}",
            "0",
            counts.duplicated == 0,
        ),
        Line(
            "messages reordered",
            counts.reordered,
            f"{counts.reordered:,}",
            "0",
            counts.reordered == 0,
        ),
    ]
    worst, who, began = 0.0, "", since
    for client, stream in news.items():
        seconds, start = messages.silence(stream, since=since, until=news_until)
        if seconds > worst:
            worst, who, began = seconds, client, start
    lines.append(
        Line(
            "worst time disconnected",
            worst,
            f"{worst:.1f} s",
            f"<= {targets.disconnected:g} s",
            worst <= targets.disconnected,
            f"{who}, from t={began:.1f} s" if who else "",
        )
    )
    rates = attempts_per_second(trace, server=server, since=since, until=until, hosts=clients)
    peak = max(rates)
    at = rates.index(peak)
    lines.append(
        Line(
            "peak reconnect rate",
            peak,
            f"{peak:,}/s",
            f"<= {targets.attempts_per_second:,}/s",
            peak <= targets.attempts_per_second,
            f"at t={since + at:g}-{since + at + 1:g} s" if peak else "",
        )
    )
    held = ledger.by_kind()
    # A connection the server still has open after every client left is held too.
    held["open connections"] = connections_open(trace, host=server, side="server").final
    left = sum(held.values())
    detail = ", ".join(f"{kind} {n:,}" for kind, n in held.items() if n)
    lines.append(
        Line("resources left at the end", left, f"{left:,}", "0", left == 0, detail),
    )
    crashed = handler_failures(trace, bad_input_conns)
    survived = len(bad_input_conns) - len(crashed)
    failed_on = ", ".join(crashed[:3]) + (" ..." if len(crashed) > 3 else "")
    lines.append(
        Line(
            "protocol errors survived",
            survived,
            _of(survived, len(bad_input_conns)),
            "all",
            not crashed,
            f"handler failed on {failed_on}" if crashed else "",
        )
    )
    return Scorecard(tuple(lines))
