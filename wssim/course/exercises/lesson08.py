"""Checks for lesson 08, the browser side: a page's reconnect loop, its heartbeat, and when
it must give up.

Each check runs the learner's page (JavaScript, as a string) in tabs of fresh simulations,
against a server written here (:class:`_Server`: it answers ``"ping"`` with ``"pong"``,
refuses or closes as a scenario says), and reads the trace: handshakes the server saw,
connections opened, what the page logged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from wssim import faults
from wssim.browser import JSError, Tab
from wssim.course.exercises import Feedback, correct, not_yet
from wssim.simulation import Simulation
from wssim.trace.events import Trace

__all__ = [
    "CAP",
    "DOWN",
    "GIVE_UP_AFTER",
    "HIDDEN_FOR",
    "MAX_ATTEMPTS",
    "MAX_TOGETHER",
    "TABS",
    "WINDOW",
    "WITHIN",
    "give_up",
    "heartbeat",
    "reconnect",
]

TABS = 20
"""Exercise 1: tabs, each on a host of its own, reconnecting to the same server."""

DOWN = (10.0, 70.0)
"""Exercise 1: the server closes every connection with 1012 at the first time and refuses
handshakes with HTTP 503 until the second."""

CAP = 30.0
"""Exercise 1: the cap of the backoff, in seconds; every tab must be open again at most
this long (plus a second) after the server is back."""

MAX_ATTEMPTS = 15
"""Exercise 1: handshakes one tab may try while the server is down (60 s)."""

MAX_TOGETHER = 10
"""Exercise 1: handshakes the 20 tabs together may try within any :data:`WINDOW`."""

WINDOW = 0.1
"""Exercise 1: seconds (100 ms) in which the tabs may try at most :data:`MAX_TOGETHER`
handshakes: tabs that retry in step all come at once."""

WITHIN = 10.0
"""Exercise 2: a partition must be noticed (``serverLost()`` called) within this many
seconds."""

HIDDEN_FOR = 300.0
"""Exercise 2: the tab is hidden this long (5 minutes) without a false alarm."""

GIVE_UP_AFTER = 5
"""Exercise 3: the page stops after this many failed handshakes in a row."""

_URL = "ws://server:8765"
_LATENCY = 0.010
_SERVER_LOST = 'function serverLost() { console.log("server lost"); }\n'


@dataclass
class _Server:
    """The server of a scenario, on host ``"server"``: it answers ``"ping"`` with
    ``"pong"``; ``refuse(n, now)`` gives the HTTP status refusing handshake ``n`` (from
    0), or None to accept; ``close(n, now)`` gives ``(when, code, reason)`` to close
    connection ``n`` (from 0) at a virtual time, or None."""

    refuse: Callable[[int, float], int | None] = lambda n, now: None
    close: Callable[[int, float], tuple[float, int, str] | None] = lambda n, now: None
    handshakes: int = 0
    opened: int = 0
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        n, self.handshakes = self.handshakes, self.handshakes + 1
        assert self._loop is not None
        status = self.refuse(n, self._loop.time())
        return None if status is None else connection.respond(status, "refused\n")

    async def handler(self, ws: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        n, self.opened = self.opened, self.opened + 1
        plan = self.close(n, loop.time())
        closer = None if plan is None else asyncio.create_task(self._close(ws, *plan))
        try:
            async for message in ws:
                if message == "ping":
                    await ws.send("pong")
        except ConnectionClosed:
            pass
        finally:
            if closer is not None:
                closer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await closer

    async def _close(self, ws: ServerConnection, at: float, code: int, reason: str) -> None:
        await asyncio.sleep(max(0.0, at - asyncio.get_running_loop().time()))
        await ws.close(code, reason)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        async with serve(
            self.handler, "server", 8765, process_request=self.process_request
        ) as server:
            await server.serve_forever()


@dataclass(frozen=True)
class _Run:
    """What one scenario showed: the trace, each tab's console, and the server."""

    trace: Trace
    consoles: list[list[tuple[float, str]]]
    server: _Server
    error: str = ""

    def handshakes(self, host: str | None = None) -> list[float]:
        """When the server received each handshake request (from ``host``, or any)."""
        return [
            e.time if e.arrives is None else e.arrives
            for e in self.trace.filter(kind="http", host=host)
            if e.code is None and e.peer == "server"
        ]

    def opened(self, host: str) -> list[float]:
        """When the page on ``host`` got each ``101 Switching Protocols``."""
        return [
            e.time if e.arrives is None else e.arrives
            for e in self.trace.filter(kind="http", host="server")
            if e.code == 101 and e.peer == host
        ]


def _run(
    source: str,
    server: _Server,
    *,
    until: float,
    tabs: int = 1,
    prelude: str = "",
    faults_at: Sequence[tuple[faults.Fault, float, float | None]] = (),
    tab_at: Sequence[tuple[float, str]] = (),
) -> _Run:
    hosts = ["client"] if tabs == 1 else [f"tab{i}" for i in range(1, tabs + 1)]
    with Simulation(seed=0, latency=_LATENCY) as sim:
        sim.host("server").spawn(server.run())
        pages = [Tab(sim.host(h)) for h in hosts]
        error = ""
        for tab in pages:
            try:
                tab.run_js(prelude + source)
            except JSError as exc:
                error = exc.message
                break
        for fault, at, duration in faults_at:
            sim.inject(fault, at=at, duration=duration)
        for at, action in tab_at:
            for tab in pages:
                sim.at(at, getattr(tab, action))
        trace = sim.run(until=0 if error else until)
    return _Run(trace, [list(tab.console) for tab in pages], server, error)


def _source(js: object, name: str) -> str | Feedback:
    if not isinstance(js, str):
        return not_yet(f"give {name} as a string of JavaScript (a page's script); got {js!r}.")
    if "WebSocket" not in js:
        return not_yet(f"{name}: the page never makes a WebSocket (new WebSocket({_URL!r})).")
    return js


def _uncaught(run: _Run) -> str:
    for console in run.consoles:
        for _, line in console:
            if line.startswith("Uncaught "):
                return line
    return ""


# Exercise 1


def reconnect(page_js: object) -> Feedback:
    """Exercise 1: :data:`TABS` tabs run ``page_js``; the server closes them all with 1012
    at 10 s and refuses handshakes (503) until 70 s. Each tab must try at most
    :data:`MAX_ATTEMPTS` handshakes while the server is down, the tabs together at most
    :data:`MAX_TOGETHER` within any :data:`WINDOW` s, and every tab must be open again by
    70 + :data:`CAP` + 1 s. One tab runs first, alone: a page that retries at once would
    make the 20-tab run long."""
    source = _source(page_js, "page_js")
    if isinstance(source, Feedback):
        return source
    start, end = DOWN
    server = _Server(
        refuse=lambda n, now: 503 if start <= now < end else None,
        close=lambda n, now: (start, 1012, "deploying") if now < start else None,
    )
    alone = _run(source, server, until=end, tabs=1)
    if alone.error:
        return not_yet(f"the page threw: {alone.error}.")
    tried = sum(1 for t in alone.handshakes() if start <= t < end)
    if tried > MAX_ATTEMPTS:
        return _too_many(tried)
    server = _Server(refuse=server.refuse, close=server.close)
    run = _run(source, server, until=end + CAP + 20, tabs=TABS)
    hosts = [f"tab{i}" for i in range(1, TABS + 1)]
    if any(not run.opened(h) or run.opened(h)[0] > 1 for h in hosts):
        return not_yet("the page must connect at once when it loads (to ws://server:8765).")
    uncaught = _uncaught(run)
    if uncaught:
        return not_yet(f"the page logged {uncaught!r}.")
    during = [t for t in run.handshakes() if start <= t < end]
    most = max(sum(1 for t in run.handshakes(h) if start <= t < end) for h in hosts)
    if most == 0:
        return not_yet(
            "no tab tried to reconnect while the server was down: reconnect from the "
            "close event (a failed handshake ends with one too)."
        )
    if most > MAX_ATTEMPTS:
        return _too_many(most)
    peak = max(sum(1 for u in during if t <= u < t + WINDOW) for t in during)
    if peak > MAX_TOGETHER:
        return not_yet(
            f"the {TABS} tabs tried {peak} handshakes within {WINDOW * 1000:g} ms (at most "
            f"{MAX_TOGETHER}): they retry in step. Draw each delay at random."
        )
    deadline = end + CAP + 1
    late = [h for h in hosts if not any(end <= t <= deadline for t in run.opened(h))]
    if late:
        return not_yet(
            f"{len(late)} of {TABS} tabs were not open again by t = {deadline:g} s, "
            f"{CAP + 1:g} s after the server came back: cap the delay at {CAP:g} s."
        )
    recovered = max(min(t for t in run.opened(h) if t >= end) for h in hosts)
    return correct(
        f"at most {most} handshakes per tab, and {peak} within {WINDOW * 1000:g} ms, while "
        f"the server was down; every tab open again by t = {recovered:.2f} s."
    )


def _too_many(tried: int) -> Feedback:
    start, end = DOWN
    return not_yet(
        f"a tab tried {tried} handshakes in the {end - start:g} s the server was down "
        f"(at most {MAX_ATTEMPTS}): wait longer after each failure, growing the delay."
    )


# Exercise 2


def _lost(run: _Run) -> float | None:
    return next((t for t, line in run.consoles[0] if line == "server lost"), None)


def heartbeat(page_js: object) -> Feedback:
    """Exercise 2: ``page_js`` must call ``serverLost()`` (defined for it: it logs
    ``server lost``) within :data:`WITHIN` s of a partition, and never while all is well:
    not in 2 minutes visible, nor while the tab is hidden for :data:`HIDDEN_FOR` s. The
    server answers ``"ping"`` with ``"pong"``; websockets' keepalive is on, as by default."""
    source = _source(page_js, "page_js")
    if isinstance(source, Feedback):
        return source
    cut = 30.0
    partition = _run(
        source,
        _Server(),
        until=cut + 60,
        prelude=_SERVER_LOST,
        faults_at=[(faults.Partition("client", "server"), cut, None)],
    )
    if partition.error:
        return not_yet(f"the page threw: {partition.error}.")
    uncaught = _uncaught(partition)
    if uncaught:
        return not_yet(f"the page logged {uncaught!r}.")
    lost = _lost(partition)
    if lost is not None and lost < cut:
        return not_yet(
            f"serverLost() was called at t = {lost:.2f} s, before anything went wrong (the "
            f"partition starts at {cut:g} s): a pong arrives 20 ms after its ping."
        )
    if lost is None or lost > cut + WITHIN:
        when = "never" if lost is None else f"{lost - cut:.2f} s after it"
        return not_yet(
            f"a partition at t = {cut:g} s was noticed {when} (within {WITHIN:g} s, please): "
            "the browser will not tell you, so send pings of your own and call serverLost() "
            "when the pongs stop."
        )
    calm = _run(source, _Server(), until=120, prelude=_SERVER_LOST)
    early = _lost(calm)
    if early is not None:
        return not_yet(f"false alarm: serverLost() at t = {early:.2f} s, nothing was wrong.")
    hidden = _run(
        source,
        _Server(),
        until=10 + HIDDEN_FOR + 10,
        prelude=_SERVER_LOST,
        tab_at=[(10.0, "hide"), (10 + HIDDEN_FOR, "show")],
    )
    alarm = _lost(hidden)
    if alarm is not None:
        return not_yet(
            f"false alarm: the tab was hidden at t = 10 s and serverLost() was called at "
            f"t = {alarm:.2f} s, nothing was wrong. A hidden page's timers fire at most "
            "once a second, at whole seconds: do your times allow for that?"
        )
    return correct(
        f"the partition was noticed {lost - cut:.2f} s after it began, and no false alarm "
        f"in 2 minutes visible nor {HIDDEN_FOR / 60:g} minutes hidden."
    )


# Exercise 3


def give_up(page_js: object) -> Feedback:
    """Exercise 3: ``page_js`` reconnects after a deploy (1012), but stops for good when
    the server closes with a code of 4000-4999, and after :data:`GIVE_UP_AFTER` failed
    handshakes in a row (a success starts the count again)."""
    source = _source(page_js, "page_js")
    if isinstance(source, Feedback):
        return source
    until = 300.0

    def closes(code: int, reason: str) -> Callable[[int, float], tuple[float, int, str] | None]:
        return lambda n, now: (now + 5, code, reason) if n == 0 else None

    deploy = _run(source, _Server(close=closes(1012, "deploying")), until=until)
    if deploy.error:
        return not_yet(f"the page threw: {deploy.error}.")
    uncaught = _uncaught(deploy)
    if uncaught:
        return not_yet(f"the page logged {uncaught!r}.")
    if deploy.server.opened < 2:
        return not_yet(
            "after a deploy (close 1012 at 5 s) the page never reconnected: 1012 means the "
            "server will be back."
        )
    banned = _run(source, _Server(close=closes(4001, "banned: do not retry")), until=until)
    if banned.server.handshakes > 1:
        more = banned.server.handshakes - 1
        return not_yet(
            f"the server closed with 4001 'banned: do not retry', and the page tried {more} "
            f"more handshake{'s' if more > 1 else ''}: look at the close event's code."
        )
    forbidden = _run(source, _Server(refuse=lambda n, now: 403), until=until)
    tries = forbidden.server.handshakes
    if tries > GIVE_UP_AFTER:
        return not_yet(
            f"a server that answers every handshake with 403 got {tries} of them in "
            f"{until:g} s: stop after {GIVE_UP_AFTER} failures in a row."
        )
    slow = _run(source, _Server(refuse=lambda n, now: 503 if n < 4 else None), until=until)
    if slow.server.opened == 0:
        return not_yet(
            f"a server that refuses 4 handshakes and accepts the 5th never got the page "
            f"back (it tried {slow.server.handshakes}): the page cannot tell 403 from 503, "
            f"so it must try {GIVE_UP_AFTER} times before giving up."
        )
    flaky = _run(
        source,
        _Server(
            refuse=lambda n, now: 503 if n in (0, 1, 2, 4, 5, 6) else None,
            close=closes(1012, "deploying"),
        ),
        until=until,
    )
    if flaky.server.opened < 2:
        return not_yet(
            "3 failures, a success, 3 more failures: the page gave up, yet never failed "
            f"{GIVE_UP_AFTER} times in a row. Start counting again once a connection opens."
        )
    return correct(
        f"reconnected after 1012, stopped at once after 4001 and after {tries} refused "
        "handshakes in a row, and counted again after each success."
    )
