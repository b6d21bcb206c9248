"""Lesson 02's causes with a web page as the client (lesson 08).

Each function runs one cause with :func:`wssim.lab.page.page_experiment`: the server of
lesson 02 (websockets' defaults: a keepalive ping every 20 s, 20 s for the pong, 10 s to
close), a page in a tab on host ``"client"`` with one WebSocket, 10 ms apart, and returns
a :class:`~wssim.lab.page.PageDiagnosis`. Where lesson 02's client pinged, the page does
not: browsers never send pings.

Network: :func:`partition`, :func:`idle_timeout`, :func:`flaky_link`. The browser goes
away: :func:`tab_closed`, :func:`navigated_away`, :func:`renderer_crash`,
:func:`browser_crash`, :func:`suspended`, :func:`power_lost`. Server overload:
:func:`handshake_refused`, :func:`load_shed`, :func:`frozen_loop`. Server restart:
:func:`deploy`. Protocol errors: :func:`message_too_big`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Literal

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from wssim import faults
from wssim.core.params import seconds
from wssim.lab.diagnose import CLIENT, SERVER, Injection, ServerPlan
from wssim.lab.page import PageDiagnosis, PagePlan, page_experiment
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
    "navigated_away",
    "partition",
    "power_lost",
    "renderer_crash",
    "suspended",
    "tab_closed",
]

# Long enough for the server's TCP to give up on a push into a forgotten flow (lesson 02:
# about 945 s after the send).
_GIVE_UP = 1000.0


# Network issues


def partition(
    at: float = 1.0, *, duration: float | None = None, until: float = 120.0
) -> PageDiagnosis:
    """The network between page and server is cut at ``at`` (for ever, or ``duration``)."""
    return page_experiment(
        "network partition",
        faults=[Injection(faults.Partition(CLIENT, SERVER), at, duration)],
        cause_at=at,
        until=until,
    )


def idle_timeout(
    timeout: float = 60.0,
    *,
    action: Literal["drop", "reset", "reject"] = "reset",
    ping_interval: float | None = None,
    push_at: float | None = 90.0,
    until: float | None = None,
) -> PageDiagnosis:
    """A NAT or a proxy forgets the flow after ``timeout`` s idle (see
    :func:`wssim.course.causes.idle_timeout`); ``ping_interval`` is the server's keepalive
    (the page never pings), ``push_at`` when the server pushes a message."""
    timeout = seconds(timeout, "timeout", positive=True)
    if until is None:
        until = (push_at or timeout) + _GIVE_UP
    pushes = [] if push_at is None else [(push_at, "news")]
    result = page_experiment(
        f"idle timeout ({action})",
        server=ServerPlan(pushes=pushes, options={"ping_interval": ping_interval}),
        faults=[Injection(faults.IdleTimeout(CLIENT, SERVER, timeout, action=action), 0.0)],
        cause_at=timeout,
        until=until,
    )
    # As lesson 02: the cause is the moment the middlebox forgot the flow, if it did
    # (``timeout`` after the flow's last segment); else times count from ``timeout``.
    forgot = next((e for e in result.trace.filter(kind="tcp") if _forgets(e)), None)
    return result if forgot is None else result.since(forgot.time)


def _forgets(event: Event) -> bool:
    """Is ``event`` an idle timeout acting on a connection (forgetting its flow)?"""
    acted = event.fault
    return acted is not None and isinstance(acted.fault, faults.IdleTimeout)


def flaky_link(
    outages: Sequence[tuple[float, float]] = ((10.0, 8.0), (30.0, 8.0), (50.0, 8.0)),
    *,
    every: float = 5.0,
    until: float = 70.0,
) -> PageDiagnosis:
    """The link drops out for a few seconds at a time while the page sends every ``every`` s."""
    if isinstance(every, bool) or not isinstance(every, int | float) or not 0 < every < math.inf:
        raise ValueError(f"every must be a finite number of seconds > 0, got {every!r}")
    sends = [(k * every, str(k)) for k in range(1, int((until - 10) // every) + 1)]
    return page_experiment(
        "flaky link",
        page=PagePlan(sends=sends),
        faults=[Injection(faults.Partition(CLIENT, SERVER), at, d) for at, d in outages],
        cause_at=min((at for at, _ in outages), default=0.0),
        until=until,
    )


# The browser goes away


def tab_closed(at: float = 1.0) -> PageDiagnosis:
    """The user closes the tab at ``at`` (:meth:`wssim.browser.Tab.close`)."""
    return page_experiment(
        "tab closed", page=PagePlan(tab=[(at, "close")]), cause_at=at, until=at + 10
    )


def navigated_away(
    at: float = 1.0,
    *,
    back_at: float | None = None,
    cached: bool = True,
    until: float | None = None,
) -> PageDiagnosis:
    """The user navigates away at ``at`` (:meth:`wssim.browser.Tab.navigate`) and, if
    ``back_at``, comes back then (:meth:`wssim.browser.Tab.back`). With ``cached`` the page
    waits in the back/forward cache, its connection open, as Chromium keeps a page with an
    open WebSocket; ``cached=False`` is a page served with ``Cache-Control: no-store``.
    The run lasts until ``until`` (10 s after the last action by default)."""
    actions = [(at, "navigate" if cached else "navigate-uncached")]
    if back_at is not None:
        if back_at <= at:
            raise ValueError(f"back_at must come after at ({at:g} s), got {back_at!r}")
        actions.append((back_at, "back"))
    name = "navigated away" + ("" if cached else " (no-store)") + (" and back" if back_at else "")
    if until is not None:
        name += f", {until:g} s run"
    end = (back_at if back_at is not None else at) + 10 if until is None else until
    return page_experiment(name, page=PagePlan(tab=actions), cause_at=at, until=end)


def renderer_crash(at: float = 1.0) -> PageDiagnosis:
    """The tab's renderer process dies at ``at`` (:meth:`wssim.browser.Tab.crash`): the
    browser and its OS live on, and the browser closes the page's connections with 1001
    (Chromium, in the reality suite's tab-crash scenario)."""
    return page_experiment(
        "renderer crash", page=PagePlan(tab=[(at, "crash")]), cause_at=at, until=at + 10
    )


def browser_crash(at: float = 1.0) -> PageDiagnosis:
    """The whole browser dies at ``at`` (a crash of the client's processes): the OS closes
    its sockets."""
    return page_experiment(
        "browser crash",
        faults=[Injection(faults.Crash(CLIENT), at)],
        cause_at=at,
        until=at + 10,
    )


def suspended(at: float = 1.0, duration: float = 120.0, *, until: float = 200.0) -> PageDiagnosis:
    """The client's machine sleeps at ``at`` for ``duration`` s (a laptop lid closed)."""
    return page_experiment(
        "laptop asleep",
        faults=[Injection(faults.Suspend(CLIENT), at, duration)],
        cause_at=at,
        until=until,
    )


def power_lost(at: float = 1.0, *, until: float = 120.0) -> PageDiagnosis:
    """The client's machine loses power at ``at``: silence, not even a FIN."""
    return page_experiment(
        "power lost",
        faults=[Injection(faults.PowerLoss(CLIENT), at)],
        cause_at=at,
        until=until,
    )


# Server overload


def _forbidden(connection: ServerConnection, request: Request) -> Response:
    return connection.respond(403, "Forbidden\n")


def handshake_refused(at: float = 1.0, *, status: int = 503) -> PageDiagnosis:
    """The page connects at ``at`` and the server refuses the handshake with HTTP ``status``.

    503: the server is full (:class:`~wssim.toolkit.admission.Admission`, one connection,
    held by another client since t = 0). 403: the server refuses this client (the page's
    cookie expired, say).

    Raises:
        ValueError: if ``status`` is neither 503 nor 403.
    """
    if status not in (503, 403):
        raise ValueError(f"status must be 503 or 403, got {status!r}")
    at = seconds(at, "at")
    # The page's script runs at t = 0: it connects at ``at`` from a timer.
    if status == 503:
        server = ServerPlan(options={"process_request": Admission(max_connections=1)})
        crowd = 1
    else:
        server = ServerPlan(options={"process_request": _forbidden})
        crowd = 0
    return page_experiment(
        f"handshake refused: HTTP {status}",
        page=PagePlan(connect_at=at),
        server=server,
        crowd=crowd,
        cause_at=at,
        until=at + 10,
    )


def load_shed(at: float = 1.0) -> PageDiagnosis:
    """The overloaded server sheds its oldest connection, the page's, at ``at`` with 1013."""
    admission = Admission()
    return page_experiment(
        "overload: 1013 shed",
        server=ServerPlan(options={"process_request": admission}),
        calls=[(at, functools.partial(admission.shed, 1))],
        cause_at=at,
        until=at + 10,
    )


def frozen_loop(at: float = 1.0, duration: float = 60.0, *, until: float = 120.0) -> PageDiagnosis:
    """The server's event loop is blocked from ``at`` for ``duration`` s."""
    return page_experiment(
        "overload: frozen loop",
        faults=[Injection(faults.Freeze(SERVER), at, duration)],
        cause_at=at,
        until=until,
    )


# Server restart or deploy


def deploy(at: float = 1.0, code: int = 1001) -> PageDiagnosis:
    """The server shuts down at ``at`` with ``Server.close(code=code)`` (1001 or 1012)."""
    reason = "deploying" if code == 1012 else ""
    return page_experiment(
        f"server deploy ({code})",
        server=ServerPlan(shutdown_at=at, shutdown_code=code, shutdown_reason=reason),
        cause_at=at,
        until=at + 10,
    )


# Protocol errors


def message_too_big(at: float = 1.0) -> PageDiagnosis:
    """The page sends a message one byte over the server's ``max_size`` (1 MiB) at ``at``."""
    return page_experiment(
        "protocol error: 1009",
        page=PagePlan(sends=[(at, "x" * (2**20 + 1))]),
        cause_at=at,
        until=at + 10,
    )


ALL = (
    partition,
    idle_timeout,
    flaky_link,
    tab_closed,
    renderer_crash,
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
