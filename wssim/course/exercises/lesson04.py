"""Checks for lesson 04, heartbeats: keepalive settings within a budget, how long a
server's event loop can be blocked, and TCP keepalive tuned to a deadline.

The checks measure in fresh simulations, with :mod:`wssim.lab.detection`: the learner's
settings, and the freezes the learner's own experiment function reports on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from wssim import faults
from wssim.course.exercises import Feedback, correct, not_yet
from wssim.lab.detection import (
    hourly_bytes,
    hourly_probes,
    measure,
    run_stack,
    tcp_keepalive_stack,
)
from wssim.toolkit.heartbeat import STACKS, Side, Stack, TcpKeepalive

__all__ = [
    "BUDGET",
    "PROBES_PER_HOUR",
    "SAFE_FREEZE",
    "TCP_WITHIN",
    "WITHIN",
    "frozen_loop",
    "keepalive_budget",
    "tcp_keepalive",
]

WITHIN = 30.0
"""Exercise 1: the server must learn that a client lost power within this many seconds."""

BUDGET = 3000
"""Exercise 1: heartbeat bytes per hour must stay under this."""

SAFE_FREEZE = 19.98
"""Exercise 2: the longest freeze of the server's loop that never drops a healthy client
with websockets' defaults: ``ping_timeout`` (20 s) minus the ping's and the pong's trips
(10 ms each). Measured by bisection: a freeze from just before a ping lands
(t = 40.049999 s) is survived if it ends before 60.030 s (19.9800005 s) and drops the client
if it ends at 60.030 s or later (19.980001 s; so 19.99 s and 20 s drop it)."""

TCP_WITHIN = 30.0
"""Exercise 3: the client must learn that the server lost power at most this many seconds
after the server's last answer (plus the 10 ms that answer takes to arrive)."""

PROBES_PER_HOUR = 180
"""Exercise 3: TCP keepalive probes per hour of a healthy idle connection, at most (as many
as websockets' pings from one side, every 20 s)."""

_OPTIONS = ("ping_interval", "ping_timeout", "close_timeout")
# Exercise 3: the one-way latency of the lesson's simulations; the server's last answer
# takes that long to arrive, so the client's silence starts that much after the fault.
_LATENCY = 0.010
_KEEPALIVE_FIELDS = ("idle", "interval", "count")
# A ping and its pong take 16 bytes with headers (6 unmasked, 10 masked): pinging more
# often than every second is far over the budget, and would make an hour of simulation
# needlessly long. Times over an hour are far beyond the 30 s asked for.
_PING_AND_PONG = 16
_SHORTEST_INTERVAL = 1.0
_LONGEST = 3600.0
# Exercise 2: freezes the learner's experiment must get right, (start, duration) in
# seconds; the first four are among those the lesson asks to try.
_FREEZES = ((40.0, 19.0), (40.0, 25.0), (45.0, 25.0), (57.5, 25.0), (51.0, 30.0))
_TOLERANCE = 0.0015
# Exercise 2: answers within this range are right: SAFE_FREEZE, to about a millisecond.
# ping_timeout itself (20 s) is not: a 19.99 s freeze already drops the client.
_SAFE_RANGE = (SAFE_FREEZE - _TOLERANCE, SAFE_FREEZE + _TOLERANCE)


def _side(options: object, who: str) -> Side | str:
    """The keepalive of one side, from a Side or a dict of websockets' keyword arguments;
    or what is wrong with it."""
    if isinstance(options, Side):
        side = options
    elif isinstance(options, Mapping):
        unknown = [k for k in options if k not in _OPTIONS]
        if unknown:
            return (
                f"{who}_options: only ping_interval, ping_timeout and close_timeout matter "
                f"here, not {unknown[0]!r}."
            )
        try:
            side = Side(**options)
        except ValueError as exc:
            return f"{who}_options: {exc}."
    else:
        return (
            f"give {who}_options as a dict of websockets' keyword arguments, for example "
            f'{{"ping_interval": 20}} ({{}} keeps the defaults); got {options!r}.'
        )
    if side.heartbeat is not None:
        return "this exercise is about websockets' keepalive: leave application heartbeats out."
    interval = side.ping_interval
    if interval is not None and interval < _SHORTEST_INTERVAL:
        return (
            f"the {who} pings every {interval:g} s: at {_PING_AND_PONG} bytes per ping and pong, "
            f"that is {_PING_AND_PONG * 3600 / interval:,.0f} bytes per hour, far over the budget."
        )
    for name in _OPTIONS:
        value = getattr(side, name)
        if value is not None and value > _LONGEST:
            return (
                f"the {who}'s {name} of {value:g} s is far beyond the {WITHIN:g} s asked for: "
                "keep every time under an hour."
            )
    return side


def _stack(server_options: object, client_options: object) -> Stack | str:
    if isinstance(server_options, Stack) and client_options is None:
        sides: list[object] = [server_options.server, server_options.client]
    elif client_options is None:
        return (
            "pass the options of both sides: keepalive_budget(server_options, client_options) "
            "({} keeps websockets' defaults)."
        )
    else:
        sides = [server_options, client_options]
    server, client = _side(sides[0], "server"), _side(sides[1], "client")
    if isinstance(server, str):
        return server
    if isinstance(client, str):
        return client
    return Stack("your settings", server, client)


def keepalive_budget(server_options: object, client_options: object = None) -> Feedback:
    """Exercise 1: the server must learn that a client lost power within :data:`WITHIN`
    seconds at worst, with under :data:`BUDGET` heartbeat bytes per hour.

    Args:
        server_options: the server's keepalive: websockets' keyword arguments for
            ``serve()`` as a dict (an option left out keeps its default), or a
            :class:`~wssim.toolkit.heartbeat.Side`; or a whole
            :class:`~wssim.toolkit.heartbeat.Stack`, with ``client_options`` left out.
        client_options: the client's, for ``connect()``, in the same forms.
    """
    stack = _stack(server_options, client_options)
    if isinstance(stack, str):
        return not_yet(stack)
    _, worst = measure(stack, faults.PowerLoss("client"), "server").delays()
    spent = hourly_bytes(stack)
    when = "never learns" if worst is None else f"learns within {worst:.3f} s at worst"
    measured = f"the server {when}, with {spent:,} heartbeat bytes per hour"
    if worst is not None and worst <= WITHIN + _TOLERANCE and spent < BUDGET:
        return correct(f"{measured}.")
    if worst is None and stack.server.ping_interval is None:
        hint = (
            "A client that lost power sends nothing, so only the server's own pings can reveal it."
        )
    elif worst is None:
        hint = "With ping_timeout=None, the server waits for a pong for ever."
    elif worst > WITHIN + _TOLERANCE:
        hint = (
            "At worst the server learns ping_interval + ping_timeout + close_timeout after the "
            f"fault (minus the latency): make that at most {WITHIN:g} s. close_timeout counts "
            "too: nobody will answer the closing handshake of a dead peer."
        )
    elif stack.client.ping_interval is not None:
        hint = (
            "Both sides ping, so every interval costs two pings and two pongs. Which side has "
            "to ping for the server to notice a dead client?"
        )
    else:
        hint = (
            f"Each ping and its pong cost {_PING_AND_PONG} bytes with headers: fewer of them "
            "per hour means a longer ping_interval; the other two times have to make room "
            "for it."
        )
    return not_yet(f"{measured}. {hint}")


def _closed_at(start: float, duration: float) -> float | None:
    """When freezing the server's loop closes the connection, with websockets' defaults
    (None: it survives). The run goes 30 s past the thaw: a client dropped by the freeze
    gave up during it, and its connection closes when the thawed server answers its
    ``CLOSE`` or ``close_timeout`` (10 s) after it gave up."""
    trace = run_stack(
        STACKS["websockets"],
        fault=faults.Freeze("server"),
        at=start,
        duration=duration,
        until=start + duration + 30,
    )
    closed = trace.first(kind="closed")
    return None if closed is None else closed.time


def _seconds(answer: object) -> float | None:
    if isinstance(answer, bool) or not isinstance(answer, int | float) or math.isnan(answer):
        return None
    return float(answer)


def _experiment(dropped: object) -> Feedback | None:
    """Run the learner's ``dropped`` on known freezes; None if it gets them all right."""
    if not callable(dropped):
        if isinstance(dropped, Coroutine):
            dropped.close()  # it will never run: no "never awaited" warning for it
        return not_yet(f"pass your function dropped itself, without calling it; got {dropped!r}.")
    answers = []
    for start, duration in _FREEZES:
        try:
            got = dropped(start, duration)
        except Exception as exc:  # the learner's code: report, never raise at them
            return not_yet(f"dropped({start:g}, {duration:g}) failed: {exc!r}.")
        if isinstance(got, Coroutine):
            got.close()
            return not_yet(
                "make dropped a plain `def`, not `async def`: it runs a whole simulation of "
                "its own (detection.run_stack) and returns True or False."
            )
        answers.append(got)
    if all(got is None for got in answers):
        return not_yet(
            "dropped(start, duration) returns None: complete it, so that it runs the freeze "
            "and returns True when a connection was closed, False otherwise."
        )
    for (start, duration), got in zip(_FREEZES, answers, strict=True):
        closed_at = _closed_at(start, duration)
        if bool(got) == (closed_at is not None):
            continue
        wrong = f"dropped({start:g}, {duration:g}) returned {got!r}, which is not what happens "
        if closed_at is None or closed_at < start + duration:
            return not_yet(f"{wrong}in that run: look at its trace for a `closed` event.")
        # Most likely a run that stops when the freeze ends, before the close.
        return not_yet(
            f"{wrong}in that run: the client is dropped, and its connection closes at "
            f"t = {closed_at:.3f} s, after the freeze ends at {start + duration:g} s. If "
            "your simulation stops when the freeze ends (until=start + duration), the close "
            "has not happened yet: let it run a while longer (until=start + duration + 30, "
            "say), then look at its trace for a `closed` event."
        )
    return None


def frozen_loop(dropped: Callable[[float, float], Any], longest_safe_freeze: object) -> Feedback:
    """Exercise 2: how long can the server's loop be blocked without dropping a healthy
    client, with websockets' defaults?

    Args:
        dropped: the learner's experiment: ``dropped(start, duration)`` is True when
            freezing the server from ``start`` for ``duration`` seconds closes a
            connection. It is tried on a few freezes, each in a fresh simulation.
        longest_safe_freeze: the answer, in seconds.
    """
    wrong = _experiment(dropped)
    if wrong is not None:
        return wrong
    answer = _seconds(longest_safe_freeze)
    low, high = _SAFE_RANGE
    if answer is None:
        return not_yet(
            "your dropped() works; now write longest_safe_freeze, in seconds: how long can "
            "the loop be blocked without dropping a healthy client, whenever the freeze starts?"
        )
    if answer <= 0:
        return not_yet("write longest_safe_freeze as a number of seconds > 0.")
    if answer > high:
        return not_yet(
            f"a freeze of {answer:g} s can drop the client: try dropped() with it, starting "
            "just before one of the client's pings reaches the server (they arrive at 20.05, "
            "40.05, 60.05 s...). What is the client waiting for, for how long, and how much "
            "of that time does the network take?"
        )
    if answer < low:
        closer = (
            " You are close: in virtual time the limit is exact, to the millisecond."
            if answer >= 19.5
            else ""
        )
        return not_yet(
            f"a freeze of {answer:g} s is safe, but the loop can be blocked longer without "
            f"dropping anyone. Which of websockets' settings sets the limit?{closer}"
        )
    return correct(
        f"a freeze up to ping_timeout minus a round trip ({SAFE_FREEZE:g} s here) never drops "
        "a healthy client; a longer one can, depending on when it starts."
    )


# Exercise 3: TCP keepalive


def _tcp_keepalive(answer: object) -> TcpKeepalive | str:
    """The learner's TCP keepalive, from a TcpKeepalive or a dict; or what is wrong."""
    if isinstance(answer, TcpKeepalive):
        return answer
    if not isinstance(answer, Mapping):
        return (
            "give keepalive as TcpKeepalive(idle=..., interval=..., count=...) (seconds, "
            f"seconds, probes: TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT); got {answer!r}."
        )
    unknown = [k for k in answer if k not in _KEEPALIVE_FIELDS]
    if unknown:
        return f"only idle, interval and count set TCP keepalive here, not {unknown[0]!r}."
    try:
        return TcpKeepalive(**answer)
    except ValueError as exc:
        return f"{exc} (Linux's range for that option)."


def _survives_a_lost_probe(stack: Stack) -> bool:
    """Whether a healthy idle connection outlives the loss of the client's first probe."""
    quiet = run_stack(stack, until=stack.period + 1.0)
    first = quiet.first(kind="tcp", contains="keepalive probe")
    assert first is not None  # a probe goes TCP_KEEPIDLE after the handshake
    # Cut the path for 2 ms around the probe: it is lost, nothing else is.
    trace = run_stack(
        stack,
        fault=faults.Partition("client", "server"),
        at=first.time - 0.001,
        duration=0.002,
        until=first.time + stack.horizon() + 5.0,
    )
    return trace.first(kind="closed") is None


def tcp_keepalive(keepalive: object) -> Feedback:
    """Exercise 3: tune the client's TCP keepalive (websockets' pings off on both sides) so
    that it learns that the server lost power at most :data:`TCP_WITHIN` seconds after the
    server's last answer, with at most :data:`PROBES_PER_HOUR` probes per hour of a healthy
    idle connection, and so that one lost probe does not end a healthy connection.

    Args:
        keepalive: a :class:`~wssim.toolkit.heartbeat.TcpKeepalive`, or a dict of its
            arguments (``idle``, ``interval``, ``count``).
    """
    chosen = _tcp_keepalive(keepalive)
    if isinstance(chosen, str):
        return not_yet(chosen)
    stack = tcp_keepalive_stack(chosen)
    _, worst = measure(stack, faults.PowerLoss("server"), "client").delays()
    # Over 4 hours, and two idle periods at least, as the lesson counts them (0.5 per
    # hour at Linux's 7200 s).
    probes = hourly_probes(stack, hours=max(4.0, 2 * chosen.idle / 3600))
    when = "never learns" if worst is None else f"learns within {worst:.3f} s at worst"
    measured = f"the client {when}, with {probes:,g} probes per hour"
    if worst is None or worst > TCP_WITHIN + _LATENCY + _TOLERANCE:
        return not_yet(
            f"{measured}. At worst the client hears nothing for TCP_KEEPIDLE + TCP_KEEPCNT × "
            "TCP_KEEPINTVL seconds after the server's last answer (tcp(7)): make that at most "
            f"{TCP_WITHIN:g} s."
        )
    if probes > PROBES_PER_HOUR:
        return not_yet(
            f"{measured}, over {PROBES_PER_HOUR}. Each answer starts the idle time again: on a "
            "healthy connection, how often does a probe go?"
        )
    if not _survives_a_lost_probe(stack):
        return not_yet(
            f"{measured}, but a single lost probe ends a healthy connection: how many "
            "unanswered probes does it take before the kernel gives up?"
        )
    return correct(
        f"{measured}; a lost probe is made up by the next one. The silence "
        f"({chosen.idle} + {chosen.count} × {chosen.interval} = {chosen.silence} s) starts "
        f"when the server's last answer arrives, {_LATENCY * 1000:g} ms after it left."
    )
