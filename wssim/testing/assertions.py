"""Assertions for tests of an application: they read a trace, a message log or a ledger.

Each raises an ``AssertionError`` whose message says what went wrong, where and when, in
the trace's words, so that a failing test reads as a diagnosis:

- :func:`assert_messages_intact` (or one property at a time: :func:`assert_none_lost`,
  :func:`assert_none_duplicated`, :func:`assert_in_order`): a
  :class:`~wssim.lab.scorecard.MessageLog` of end-to-end message ids;
- :func:`assert_reconnected`: every client is connected again, both ends open, within
  some seconds after the last fault ended;
- :func:`assert_nothing_held`: a :class:`~wssim.toolkit.resources.Ledger` holds nothing
  (and, given a trace and a server host, no connection is left open on the server);
- :func:`assert_no_handler_failed`: no server connection handler raised.

A bad argument (a time the run never reached, an unknown host) is a ``ValueError``: the
test is wrong, not the application.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence

from wssim.lab.scorecard import MessageLog, handler_failures
from wssim.toolkit.resources import Ledger, ResourceLeak
from wssim.trace.events import Trace
from wssim.trace.lifecycle import Endpoint, endpoints, faults

__all__ = [
    "assert_in_order",
    "assert_messages_intact",
    "assert_no_handler_failed",
    "assert_none_duplicated",
    "assert_none_lost",
    "assert_nothing_held",
    "assert_reconnected",
    "last_fault_end",
]

SHOWN = 8
"""Ids, connections or holds listed in a message at most; the rest are counted."""


def _listed(items: Sequence[object]) -> str:
    shown = ", ".join(repr(i) if not isinstance(i, str) else i for i in items[:SHOWN])
    more = len(items) - SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _streams(log: MessageLog, streams: Iterable[Hashable] | None) -> list[Hashable]:
    if not isinstance(log, MessageLog):
        raise TypeError(f"log must be a wssim.lab.scorecard.MessageLog, got {log!r}")
    return log.streams if streams is None else list(streams)


def assert_none_lost(log: MessageLog, streams: Iterable[Hashable] | None = None) -> None:
    """Every message sent on ``streams`` (default: all) was delivered at least once."""
    __tracebackhide__ = True  # pytest shows the test's line, not this one
    problems = []
    for stream in _streams(log, streams):
        lost = log.lost_ids(stream)
        if lost:
            sent = log.counts([stream]).sent
            problems.append(f"{stream}: {len(lost)} of {sent} lost ({_listed(lost)})")
    if problems:
        raise AssertionError("messages lost: " + "; ".join(problems))


def assert_none_duplicated(log: MessageLog, streams: Iterable[Hashable] | None = None) -> None:
    """No message of ``streams`` (default: all) was delivered twice."""
    __tracebackhide__ = True  # pytest shows the test's line, not this one
    problems = []
    for stream in _streams(log, streams):
        twice = log.duplicated_ids(stream)
        if twice:
            problems.append(f"{stream}: {_listed(twice)} delivered more than once")
    if problems:
        raise AssertionError("messages duplicated: " + "; ".join(problems))


def assert_in_order(log: MessageLog, streams: Iterable[Hashable] | None = None) -> None:
    """On each stream (default: all), messages were first delivered in the order sent, and
    nothing was delivered that was never sent."""
    __tracebackhide__ = True  # pytest shows the test's line, not this one
    problems = []
    for stream in _streams(log, streams):
        late = log.reordered_ids(stream)
        if late:
            problems.append(f"{stream}: {_listed(late)} delivered after later messages")
        unknown = log.unknown_ids(stream)
        if unknown:
            problems.append(f"{stream}: {_listed(unknown)} delivered but never sent")
    if problems:
        raise AssertionError("messages out of order: " + "; ".join(problems))


def assert_messages_intact(log: MessageLog, streams: Iterable[Hashable] | None = None) -> None:
    """Each message of ``streams`` (default: all) delivered exactly once, in order.

    The message lists every property that failed: lost, duplicated, out of order.
    """
    __tracebackhide__ = True  # pytest shows the test's line, not this one
    chosen = _streams(log, streams)
    problems = []
    for check in (assert_none_lost, assert_none_duplicated, assert_in_order):
        try:
            check(log, chosen)
        except AssertionError as exc:
            problems.append(str(exc))
    if problems:
        raise AssertionError("\n".join(problems))


# Connections


def last_fault_end(trace: Trace) -> float | None:
    """When the last fault that ended in ``trace`` ended, or None if none did.

    Faults still in force at the end of the trace (a middlebox there all along) are
    conditions of the network, not events after which to recover: they are left out.
    """
    ends = [f.end for f in faults(trace) if f.ended and not f.instant]
    return max(ends) if ends else None


def _open_at(end: Endpoint, t: float) -> bool:
    return (
        end.opened_at is not None
        and end.opened_at <= t
        and (end.closed_at is None or end.closed_at > t)
    )


def _story(host: str, mine: list[Endpoint], servers: dict[str, Endpoint], t: float) -> str:
    """Why ``host`` has no connection open at ``t``, from its endpoints."""
    if not mine:
        return f"{host}: never tried to connect"
    opened = [e for e in mine if e.opened_at is not None and e.opened_at <= t]
    half = [e for e in opened if _open_at(e, t)]
    if half:
        e = half[-1]
        server = servers[e.conn]
        return (
            f"{host}: its connection {e.conn} is half-open: the client's end is open, the "
            f"server's end ended at t={server.closed_at:g} ({server.outcome or 'closed'})"
        )
    parts = [f"{host}: not connected at t={t:g}"]
    if opened:
        last = opened[-1]
        parts.append(
            f"its last connection {last.conn} opened at t={last.opened_at:g} and closed at "
            f"t={last.closed_at:g} ({last.outcome})"
        )
    since = opened[-1].closed_at if opened else -math.inf
    assert since is not None
    tries = [e for e in mine if e.started_at >= since and e not in opened and e.started_at <= t]
    if not tries:
        parts.append("no attempt to connect since")
    else:
        shown = [f"{e.conn} {e.outcome or 'pending'} at t={e.started_at:g}" for e in tries]
        parts.append(f"{len(tries)} attempt(s) since: {_listed(shown)}")
    return "; ".join(parts)


def assert_reconnected(
    trace: Trace,
    clients: Iterable[str],
    *,
    within: float,
    after: float | None = None,
) -> None:
    """Every host of ``clients`` has a connection open at both ends ``within`` seconds after
    ``after`` (default: the end of the last fault, :func:`last_fault_end`).

    Both ends count: a client whose server crashed may still believe it is connected (a
    half-open connection), and that is not recovered. A connection that opened, closed and
    reopened in between is fine; only the state at ``after + within`` counts.

    Raises:
        AssertionError: naming each client that is not connected, and why (its last
            connection and how it ended, its attempts since, or a half-open connection).
        ValueError: if the run did not reach ``after + within``, if no fault ended and
            ``after`` is not given, or if ``within`` is not a number of seconds >= 0.
    """
    __tracebackhide__ = True  # pytest shows the test's line, not this one
    if isinstance(within, bool) or not isinstance(within, int | float) or not within >= 0:
        raise ValueError(f"within must be a number of seconds >= 0, got {within!r}")
    hosts = [clients] if isinstance(clients, str) else list(clients)
    if after is None:
        after = last_fault_end(trace)
        if after is None:
            raise ValueError("no fault ended in this trace: pass after=<time> to say from when")
    t = after + within
    if t > trace.ran_until:
        raise ValueError(
            f"the run stopped at t={trace.ran_until:g}, before after + within = t={t:g}: "
            f"run the simulation until at least t={t:g}"
        )
    ends = endpoints(trace)
    servers = {e.conn: e for e in ends if e.side == "server"}
    problems = []
    for host in hosts:
        mine = [e for e in ends if e.side == "client" and e.host == host]
        ok = any(
            _open_at(e, t) and (e.conn not in servers or _open_at(servers[e.conn], t)) for e in mine
        )
        if not ok:
            problems.append(_story(host, mine, servers, t))
    if problems:
        raise AssertionError(
            f"{len(problems)} of {len(hosts)} client(s) not reconnected {within:g} s after "
            f"t={after:g}:\n  " + "\n  ".join(problems)
        )


# Resources and handlers


def assert_nothing_held(
    ledger: Ledger, trace: Trace | None = None, *, server: str | None = None
) -> None:
    """``ledger`` holds nothing; with ``trace`` and ``server``, no connection is still open
    at the server's end either (a connection the server never closed is held too).

    Raises:
        AssertionError: a :class:`~wssim.toolkit.resources.ResourceLeak` listing what is
            held, kind by kind, with the owners (connection ids).
    """
    __tracebackhide__ = True  # pytest shows the test's line, not this one
    if not isinstance(ledger, Ledger):
        raise TypeError(f"ledger must be a wssim.toolkit.resources.Ledger, got {ledger!r}")
    if (trace is None) != (server is None):
        raise ValueError("pass both trace and server to count open connections, or neither")
    problems = []
    holds = []
    try:
        ledger.check()
    except ResourceLeak as leak:
        problems.append(str(leak))
        holds = leak.holds
    if trace is not None and server is not None:
        # What the server's side saw open and never closed (connections_open's count).
        still = [
            e.conn
            for e in endpoints(trace)
            if e.side == "server"
            and e.host == server
            and e.opened_at is not None
            and e.closed_at is None
        ]
        if still:
            problems.append(f"open connections {len(still)} ({_listed(still)})")
    if problems:
        text = "; ".join(p.removeprefix("still held: ") for p in problems)
        raise ResourceLeak(f"still held: {text}", holds)


def assert_no_handler_failed(trace: Trace) -> None:
    """No connection handler of a websockets server raised an exception.

    websockets logs "connection handler failed" and closes the connection with 1011
    (internal error) when a handler raises (``websockets/asyncio/server.py``).

    Raises:
        AssertionError: naming each connection, when, and the exception.
    """
    __tracebackhide__ = True  # pytest shows the test's line, not this one
    failed = handler_failures(trace)
    if not failed:
        return
    lines = []
    for conn in failed[:SHOWN]:
        event = trace.first(kind="log", conn=conn, side="server", contains="handler failed")
        assert event is not None
        lines.append(f"{conn} on {event.host} at t={event.time:g}: {event.text}")
    more = len(failed) - SHOWN
    tail = f"\n  and {more} more" if more > 0 else ""
    raise AssertionError(
        f"{len(failed)} connection handler(s) failed:\n  " + "\n  ".join(lines) + tail
    )
