"""The causes of closed connections seen in the field, one experiment each (lesson 02).

Each function runs one cause with :func:`wssim.lab.diagnose.experiment` and returns its
:class:`~wssim.lab.diagnose.Diagnosis`: what the client and the server saw, when each knew,
and what their code should do about it. Defaults are websockets' (keepalive ping every
20 s, pong expected within 20 s, close_timeout 10 s) and a 10 ms one-way latency; the
parameters are what the lesson's exercises change.

Network: :func:`partition`, :func:`idle_timeout`, :func:`flaky_link`. Browser:
:func:`tab_closed`, :func:`browser_crash`, :func:`suspended`, :func:`power_lost`. Server
overload: :func:`handshake_refused`, :func:`load_shed`, :func:`frozen_loop`. Server restart:
:func:`deploy`. Protocol errors: :func:`message_too_big`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Literal

from wssim import faults
from wssim.lab.diagnose import (
    CLIENT,
    SERVER,
    ClientPlan,
    Diagnosis,
    Injection,
    ServerPlan,
    diagnose,
    experiment,
)
from wssim.toolkit.admission import Admission
from wssim.trace.events import Event

__all__ = [
    "ALL",
    "browser_crash",
    "deploy",
    "flaky_link",
    "frozen_loop",
    "handshake_refused",
    "idle_timeout",
    "load_shed",
    "message_too_big",
    "partition",
    "power_lost",
    "suspended",
    "tab_closed",
]

GIVE_UP = 924.6
"""Seconds Linux's TCP allows after its first retransmission (``tcp_retries2 = 15``); it
gives up at the first retransmission timer past that, about 945 s after the send on a
20 ms round trip (:func:`wssim.net.tcp.give_up_after`)."""


# Network issues


def partition(at: float = 1.0, *, duration: float | None = None, until: float = 120.0) -> Diagnosis:
    """The network between client and server is cut at ``at`` (for ever, or ``duration``).

    Nothing is sent on an idle connection, so nothing tells either side: only websockets'
    keepalive notices, when a ping goes unanswered.
    """
    return experiment(
        "network partition",
        faults=[Injection(faults.Partition(CLIENT, SERVER), at, duration)],
        cause_at=at,
        until=until,
        remedy="keepalive on; reconnect with backoff",
        advice=(
            "Keep websockets' keepalive on: it is the only thing that notices. Tune "
            "ping_interval and ping_timeout for how soon you must know. Then reconnect, with "
            "backoff, and resend what may have been lost."
        ),
        lessons=("04", "03"),
    )


def idle_timeout(
    timeout: float = 60.0,
    *,
    action: Literal["drop", "reset", "reject"] = "reset",
    ping_interval: float | None = None,
    push_at: float | None = 90.0,
    until: float | None = None,
) -> Diagnosis:
    """A NAT or a proxy between client and server forgets flows idle for ``timeout`` s.

    Args:
        timeout: the middlebox's idle timeout (nginx, AWS ALB: 60 s).
        action: ``"reset"``: it sends an RST to both ends; ``"drop"``: it forgets the
            flow silently, and later segments vanish; ``"reject"``: it answers the next
            segment with an RST to its sender (see :class:`wssim.faults.IdleTimeout`).
        ping_interval: both sides' keepalive (None: off, as in many stacks; 20: websockets'
            default, and any traffic keeps the flow alive).
        push_at: when the server pushes a message to the client (None: never).
        until: how long to run (default: long enough for TCP to give up on the push).
    """
    if until is None:
        until = (push_at or timeout) + GIVE_UP + 60
    options = {"ping_interval": ping_interval}
    pushes = [] if push_at is None else [(push_at, "news")]
    result = experiment(
        f"idle timeout ({action})",
        client=ClientPlan(options=options),
        server=ServerPlan(pushes=pushes, options=options),
        faults=[Injection(faults.IdleTimeout(CLIENT, SERVER, timeout, action=action), 0.0)],
        until=until,
    )
    # The cause is the moment the middlebox forgot the flow, if it ever did. If it never did,
    # there is no cause time to report: times to detect (if any) count from ``timeout``.
    forgot = next((e for e in result.trace.filter(kind="tcp") if _acted(e)), None)
    return diagnose(
        result.trace,
        result.cause,
        cause_at=timeout if forgot is None else forgot.time,
        absent="the flow was never forgotten" if forgot is None else "",
        remedy="ping more often than the idle timeout",
        advice=(
            "Send something more often than the shortest idle timeout on the path: "
            "websockets' keepalive ping every 20 s keeps a 60 s proxy happy, and detects the "
            "flows it forgets anyway. Then reconnect."
        ),
        lessons=("04", "03"),
    )


def _acted(event: Event) -> bool:
    """Is ``event`` an idle timeout acting on a connection (forgetting its flow)?"""
    acted = event.fault
    return acted is not None and isinstance(acted.fault, faults.IdleTimeout)


def flaky_link(
    outages: Sequence[tuple[float, float]] = ((10.0, 8.0), (30.0, 8.0), (50.0, 8.0)),
    *,
    every: float = 5.0,
    until: float = 70.0,
) -> Diagnosis:
    """The link drops out for a few seconds at a time, while the client sends every ``every`` s.

    Args:
        outages: ``(start, duration)`` of each outage (a partition that heals).
        every: the client sends ``"1"``, ``"2"``... every ``every`` seconds.
        until: how long to run; the client sends until ten seconds before.
    """
    if isinstance(every, bool) or not isinstance(every, int | float) or not 0 < every < math.inf:
        raise ValueError(f"every must be a finite number of seconds > 0, got {every!r}")
    sends = [(k * every, str(k)) for k in range(1, int((until - 10) // every) + 1)]
    link = [Injection(faults.Partition(CLIENT, SERVER), at, d) for at, d in outages]
    return experiment(
        "flaky link",
        client=ClientPlan(sends=sends),
        faults=link,
        cause_at=min((at for at, _ in outages), default=0.0),
        until=until,
        remedy="nothing: TCP retransmits; expect delays",
        advice=(
            "Nothing closes and nothing is lost: TCP retransmits, late. Do not set "
            "ping_timeout shorter than the outages you want to ride out, or keepalive turns "
            "a hiccup into a disconnection."
        ),
        lessons=("04",),
    )


# Browser crash


def tab_closed(at: float = 1.0) -> Diagnosis:
    """The user closes the tab at ``at``: the browser sends 1001 (going away) with an empty
    reason, as the WHATWG HTML standard has it when a document is unloaded (its WebSocket
    objects are closed with "going away", no reason)."""
    return experiment(
        "tab closed (1001)",
        client=ClientPlan(close_at=at, close_code=1001, close_reason=""),
        cause_at=at,
        until=at + 10,
        remedy="release the connection's resources",
        advice=(
            "Nothing went wrong: the server's handler ends, and must release what the "
            "connection held (subscriptions, presence, buffers)."
        ),
        lessons=("06",),
    )


def browser_crash(at: float = 1.0) -> Diagnosis:
    """The browser's process crashes at ``at``: its OS closes the socket (FIN)."""
    return experiment(
        "browser crash",
        faults=[Injection(faults.Crash(CLIENT), at)],
        cause_at=at,
        until=at + 10,
        remedy="release the connection's resources",
        advice=(
            "The server knows within one trip (1006, no close frame): release the "
            "connection's resources in a finally clause, whatever the exception."
        ),
        lessons=("06",),
    )


def suspended(at: float = 1.0, duration: float = 120.0, *, until: float = 200.0) -> Diagnosis:
    """The client's machine sleeps at ``at`` for ``duration`` s (a laptop lid closed)."""
    return experiment(
        "machine suspended",
        faults=[Injection(faults.Suspend(CLIENT), at, duration)],
        cause_at=at,
        until=until,
        remedy="server: keepalive; client: reconnect on wake",
        advice=(
            "The server only learns through its keepalive, and must release the connection. "
            "The client learns when it wakes up and talks to a server that forgot it: it "
            "reconnects and catches up on what it missed."
        ),
        lessons=("04", "06", "03"),
    )


def power_lost(at: float = 1.0, *, until: float = 120.0) -> Diagnosis:
    """The client's machine loses power at ``at``: silence, not even a FIN."""
    return experiment(
        "power lost",
        faults=[Injection(faults.PowerLoss(CLIENT), at)],
        cause_at=at,
        until=until,
        remedy="server: keepalive, then release resources",
        advice=(
            "Only the server's keepalive notices: without it, the server would hold this "
            "connection, and what it owns, for ever. Release its resources when it closes."
        ),
        lessons=("04", "06"),
    )


# Server overload


def handshake_refused(at: float = 1.0) -> Diagnosis:
    """The server is full: it admits one connection at a time, and another client has it.

    The server's :class:`~wssim.toolkit.admission.Admission` (``max_connections=1``) answers the
    client's handshake at ``at`` with HTTP 503, before any WebSocket state exists.
    """
    admission = Admission(max_connections=1)
    return experiment(
        "overload: HTTP 503",
        client=ClientPlan(connect_at=at),
        server=ServerPlan(options={"process_request": admission}),
        crowd=1,
        cause_at=at,
        until=at + 10,
        remedy="retry later, with backoff",
        advice=(
            "The client retries later, with backoff and jitter: websockets' "
            "`async for ws in connect(...)` retries a 503 by itself. The server refused "
            "cheaply, before any WebSocket state existed."
        ),
        lessons=("03",),
    )


def load_shed(at: float = 1.0) -> Diagnosis:
    """The overloaded server sheds its oldest connection at ``at`` with 1013
    (``Admission.shed``)."""
    admission = Admission()
    return experiment(
        "overload: 1013 shed",
        server=ServerPlan(options={"process_request": admission}),
        calls=[(at, functools.partial(admission.shed, 1))],
        cause_at=at,
        until=at + 10,
        remedy="reconnect later, with backoff and jitter",
        advice=(
            "1013 means try again later: reconnect, but after a random delay, so that the "
            "clients shed together do not all come back at once."
        ),
        lessons=("03",),
    )


def frozen_loop(at: float = 1.0, duration: float = 60.0, *, until: float = 120.0) -> Diagnosis:
    """The server's event loop is blocked from ``at`` for ``duration`` s (CPU-bound code,
    a long GC pause): it answers nothing, pongs included."""
    return experiment(
        "overload: frozen loop",
        faults=[Injection(faults.Freeze(SERVER), at, duration)],
        cause_at=at,
        until=until,
        remedy="never block the loop; reconnect",
        advice=(
            "The client's keepalive gives up on a server that is alive but stuck. Never "
            "block the event loop (move CPU-bound work to a thread or a process pool); the "
            "client reconnects."
        ),
        lessons=("04", "03"),
    )


# Server restart or deploy


def deploy(at: float = 1.0, code: int = 1001) -> Diagnosis:
    """The server shuts down at ``at`` for a deploy, with ``Server.close(code=code)``
    (1001: going away; 1012: service restart)."""
    reason = "deploying" if code == 1012 else ""
    return experiment(
        f"server deploy ({code})",
        server=ServerPlan(shutdown_at=at, shutdown_code=code, shutdown_reason=reason),
        cause_at=at,
        until=at + 10,
        remedy="reconnect after a random delay",
        advice=(
            "Expected: reconnect, after a random delay so that every client does not come "
            "back in the same second. Treat 1012 like 1001 even though websockets raises "
            "ConnectionClosedError for it."
        ),
        lessons=("03", "06"),
    )


# Protocol errors


def message_too_big(at: float = 1.0) -> Diagnosis:
    """The client sends a message one byte over the server's ``max_size`` (1 MiB)."""
    return experiment(
        "protocol error: 1009",
        client=ClientPlan(sends=[(at, "x" * (2**20 + 1))]),
        cause_at=at,
        until=at + 10,
        remedy="do not resend it; fix the sender",
        advice=(
            "Reconnecting and sending the same message fails the same way. Fix the sender "
            "(split the message) or raise max_size on purpose."
        ),
        lessons=("05",),
    )


ALL = (
    partition,
    idle_timeout,
    flaky_link,
    tab_closed,
    browser_crash,
    suspended,
    power_lost,
    handshake_refused,
    load_shed,
    frozen_loop,
    deploy,
    message_too_big,
)
"""Every cause, in the lesson's order (each runs with its defaults)."""
