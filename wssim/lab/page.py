"""What a web page sees when its connection closes, next to what the server saw.

An experiment here is :mod:`wssim.lab.diagnose`'s, with a browser tab as the client: the
same server (a :class:`~wssim.lab.diagnose.ServerPlan` on host ``"server"``), the same faults,
and on host ``"client"`` a :class:`wssim.browser.Tab` running :data:`PAGE`, a page that
opens one WebSocket and logs every event it gets. :func:`page_experiment` runs it and
returns a :class:`PageDiagnosis`: the page's events (``error``, then ``close`` with its code,
reason and ``wasClean``, and when), and the server's side as lesson 02 reads it
(:func:`~wssim.lab.diagnose.seen`).

The page's events are read from its console, in the one format :data:`PAGE` writes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from wssim.browser import Tab
from wssim.core.params import seconds
from wssim.faults import Fault
from wssim.lab.diagnose import (
    CLIENT,
    PORT,
    SERVER,
    ClientPlan,
    Injection,
    Seen,
    ServerPlan,
    seen,
)
from wssim.simulation import Simulation
from wssim.trace.events import Table, Trace, microseconds

__all__ = [
    "LIFECYCLE",
    "PAGE",
    "PageDiagnosis",
    "PageEvent",
    "PagePlan",
    "PageSeen",
    "page_experiment",
    "summary",
]

PAGE = f"""\
const ws = new WebSocket("ws://{SERVER}:{PORT}");
ws.onopen = () => console.log("open");
ws.onerror = () => console.log("error");
ws.onclose = (e) => console.log("close", e.code, JSON.stringify(e.reason), e.wasClean);
"""
"""The page of every experiment: one WebSocket, each event on the console (the reason as
JSON, so that any reason reads back)."""

LIFECYCLE = (
    "close",
    "navigate",
    "navigate-uncached",
    "back",
    "reload",
    "crash",
    "hide",
    "show",
    "freeze",
    "resume",
)
"""What :attr:`PagePlan.tab` may do to the tab: the names of :class:`~wssim.browser.Tab`'s
lifecycle methods; ``"navigate-uncached"`` is ``navigate(bfcache=False)``, a page the
browser does not keep in its back/forward cache."""


@dataclass(frozen=True)
class PagePlan:
    """What the page does besides :data:`PAGE`, and what happens to its tab.

    Attributes:
        connect_at: when the page opens its WebSocket (a timer of the page's script,
            which runs at t = 0), in virtual seconds.
        sends: ``(virtual time, text)`` messages the page sends, if it is open by then.
        tab: ``(virtual time, action)``: call the tab's lifecycle method ``action``
            (one of :data:`LIFECYCLE`) then; ``(1.0, "close")`` closes the tab at 1 s.
    """

    connect_at: float = 0.0
    sends: Sequence[tuple[float, str]] = ()
    tab: Sequence[tuple[float, str]] = ()

    def __post_init__(self) -> None:
        seconds(self.connect_at, "connect_at")
        sends = []
        for item in self.sends:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], str)):
                raise ValueError(f"sends must be (time, text) pairs, got {item!r}")
            t = seconds(item[0], "sends time")
            if t < self.connect_at:
                raise ValueError(
                    f"sends must come after connect_at ({self.connect_at:g} s), got {t!r}"
                )
            sends.append((t, item[1]))
        actions = []
        for item in self.tab:
            if not (isinstance(item, tuple) and len(item) == 2 and item[1] in LIFECYCLE):
                raise ValueError(
                    f"tab must be (time, action) pairs with action one of {', '.join(LIFECYCLE)}"
                    f"; got {item!r}"
                )
            actions.append((seconds(item[0], "tab time"), item[1]))
        object.__setattr__(self, "sends", tuple(sorted(sends, key=lambda pair: pair[0])))
        object.__setattr__(self, "tab", tuple(sorted(actions, key=lambda pair: pair[0])))

    def script(self) -> str:
        """The page's JavaScript: :data:`PAGE`, then a timer for each send; all in a timer
        of ``connect_at`` if it is not 0."""
        lines = [PAGE]
        for t, text in self.sends:
            # A timer set when the WebSocket is made, at connect_at: it fires at time t.
            ms = (t - self.connect_at) * 1000
            lines.append(
                f"setTimeout(() => {{ if (ws.readyState === 1) ws.send({json.dumps(text)}); }},"
                f" {ms!r});"
            )
        source = "\n".join(lines)
        if self.connect_at == 0:
            return source
        return f"setTimeout(() => {{\n{source}\n}}, {self.connect_at * 1000!r});\n"


@dataclass(frozen=True, slots=True)
class PageEvent:
    """One event the page's WebSocket fired, as :data:`PAGE` logged it.

    Attributes:
        time: when, in virtual seconds.
        kind: ``"open"``, ``"error"`` or ``"close"``.
        code: the ``CloseEvent``'s ``code`` (close events only).
        reason: its ``reason``.
        was_clean: its ``wasClean``.
    """

    time: float
    kind: str
    code: int | None = None
    reason: str = ""
    was_clean: bool | None = None

    def __str__(self) -> str:
        if self.kind != "close":
            return self.kind
        clean = "true" if self.was_clean else "false"
        return f"close {self.code} {json.dumps(self.reason, ensure_ascii=False)} {clean}"


def _event(time: float, line: str) -> PageEvent:
    """Read one console line of :data:`PAGE`: ``close 1006 "" false``, ``error``, ``open``."""
    kind, _, rest = line.partition(" ")
    if kind != "close":
        return PageEvent(time, kind)
    code, _, rest = rest.partition(" ")
    reason, _, clean = rest.rpartition(" ")
    return PageEvent(time, kind, int(code), str(json.loads(reason)), clean == "true")


@dataclass(frozen=True, slots=True)
class PageSeen:
    """What the page saw of its connection, and when.

    Attributes:
        events: every event of its WebSocket, in order.
        state: the tab at the end (:attr:`wssim.browser.Tab.state`): ``"closed"`` for a
            tab the user closed, ``"crashed"`` for one that died with its renderer or its
            host, else ``"visible"`` (or ``"hidden"``, ``"frozen"``); or, when the tab
            navigated away from the page for good, ``"cached"`` (the page waits in the
            back/forward cache) or ``"left"`` (it is gone).
        cause_at: when the cause happened; :attr:`after` is measured from it.
    """

    events: tuple[PageEvent, ...]
    state: str
    cause_at: float

    @property
    def close(self) -> PageEvent | None:
        """The close event, or None: the page never got one."""
        return next((e for e in self.events if e.kind == "close"), None)

    @property
    def at(self) -> float | None:
        """When the page knew: the time of its close event, or None."""
        close = self.close
        return None if close is None else close.time

    @property
    def after(self) -> float | None:
        """:attr:`at` minus the time of the cause, or None."""
        at = self.at
        return None if at is None else microseconds(at - self.cause_at)

    @property
    def sees(self) -> str:
        """The events after the opening, in order: ``error, close 1006 "" false``; or what
        the page saw instead of a close event."""
        shown = [str(e) for e in self.events if e.kind != "open"]
        if shown:
            return ", ".join(shown)
        if self.state == "closed":
            return "nothing (the tab is closed)"
        if self.state == "crashed":
            return "nothing (the page is dead)"
        if self.state == "cached":
            return "nothing (cached, still open)"
        if self.state == "left":
            return "nothing (the page is gone)"
        return "nothing (still open)"

    @property
    def knows(self) -> str:
        """When it knew, relative to the cause: ``"0.03 s"``, ``"never"``, ``"(gone)"``."""
        after = self.after
        if after is not None:
            return f"{after:.2f} s"
        return "(gone)" if self.state in ("closed", "crashed", "left") else "never"


@dataclass(frozen=True)
class PageDiagnosis:
    """One cause, seen from a page and from the server.

    Attributes:
        cause: what happened, for people.
        cause_at: when it happened, in virtual seconds.
        trace: the experiment's trace (the page's console lines are its ``console`` events).
        page: what the page saw.
        server: what the server saw (as in lesson 02).
    """

    cause: str
    cause_at: float
    trace: Trace
    page: PageSeen
    server: Seen

    def since(self, cause_at: float) -> PageDiagnosis:
        """The same run, with times to know measured from ``cause_at`` instead.

        Raises:
            ValueError: if ``cause_at`` is not a time >= 0.
        """
        cause_at = seconds(cause_at, "cause_at")
        return replace(
            self,
            cause_at=cause_at,
            page=replace(self.page, cause_at=cause_at),
            server=seen(self.trace, "server", cause_at),
        )

    def report(self) -> str:
        """What each side saw and when, as text."""
        lines = [f"{self.cause} (at t={self.cause_at:.3f} s)"]
        for event in self.page.events:
            lines.append(f"   page    {event.time:8.3f} s  {event}")
        if not any(e.kind != "open" for e in self.page.events):
            lines.append(f"   page    {'':10}  {self.page.sees}")
        server = self.server
        when = "  never    " if server.at is None else f"{server.at:8.3f} s "
        lines.append(f"   server  {when} {server.sees}: {server.detail}")
        return "\n".join(lines)


def page_experiment(
    cause: str,
    *,
    page: PagePlan | None = None,
    server: ServerPlan | None = None,
    faults: Iterable[Injection | tuple[Fault, float] | tuple[Fault, float, float | None]] = (),
    crowd: int = 0,
    calls: Iterable[tuple[float, Callable[[], object]]] = (),
    cause_at: float = 0.0,
    until: float = 120.0,
    seed: int = 0,
    latency: float = 0.010,
) -> PageDiagnosis:
    """Run one server and one page (:data:`PAGE` in a tab on host ``"client"``) until
    ``until``, and read what each saw.

    Args:
        cause: what to blame, for people.
        page: what the page sends and what happens to its tab (default: nothing).
        server: what the server does (default: serve and listen, websockets' keepalive).
        faults: ``Injection(fault, at, duration)`` or plain tuples, as in
            :func:`~wssim.lab.diagnose.experiment`.
        crowd: other clients (websockets' own, on hosts ``crowd1``...) that connect at
            t = 0 and stay.
        calls: ``(virtual time, function)``: call ``function()`` then.
        cause_at: when the cause happens; times to know are measured from it.
        until: how long to run, in virtual seconds.
        seed: the simulation's seed.
        latency: one-way latency between the page and the server, in seconds.

    Raises:
        ValueError: for bad parameters, including ``until`` before ``cause_at``.
    """
    page = PagePlan() if page is None else page
    server = ServerPlan() if server is None else server
    until = seconds(until, "until")
    cause_at = seconds(cause_at, "cause_at")
    if until < cause_at:
        raise ValueError(f"until must be >= cause_at ({cause_at:g} s), got {until!r}")
    if isinstance(crowd, bool) or not isinstance(crowd, int) or crowd < 0:
        raise ValueError(f"crowd must be an integer >= 0, got {crowd!r}")
    injections = [Injection(*f) for f in faults]
    timed = [(seconds(t, "calls time"), fn) for t, fn in calls]
    with Simulation(seed=seed, latency=latency) as sim:
        sim.host(SERVER).service(server.run)
        for i in range(1, crowd + 1):
            sim.host(f"crowd{i}").spawn(ClientPlan().run())
        tab = Tab(sim.host(CLIENT))
        tab.run_js(page.script())
        for t, action in page.tab:
            if action == "navigate-uncached":
                sim.at(t, lambda: tab.navigate(bfcache=False))
            else:
                sim.at(t, getattr(tab, action))
        for injection in injections:
            sim.inject(injection.fault, at=injection.at, duration=injection.duration)
        for t, fn in timed:
            sim.at(t, fn)
        trace = sim.run(until=until)
        state = tab.state  # while the simulation is on: its end takes every host down
        moves = [a for _, a in page.tab if a in ("navigate", "navigate-uncached", "back")]
        if state not in ("closed", "crashed") and moves and moves[-1] != "back":
            # The page of the experiment was left: it waits in the cache, or it is gone.
            state = "cached" if moves[-1] == "navigate" and tab.cached else "left"
    events = tuple(_event(t, line) for t, line in tab.console)
    return PageDiagnosis(
        cause=cause,
        cause_at=cause_at,
        trace=trace,
        page=PageSeen(events, state, cause_at),
        server=seen(trace, "server", cause_at),
    )


def summary(diagnoses: Iterable[PageDiagnosis]) -> Table:
    """One row per diagnosis: cause, what the page saw and when, what the server saw and
    when (``ConnectionClosed`` shortened to ``""``: ``Error 1006``, ``OK 1001``)."""
    rows = [
        (
            d.cause,
            d.page.sees,
            d.page.knows,
            d.server.sees.replace("ConnectionClosed", ""),
            d.server.knows,
        )
        for d in diagnoses
    ]
    return Table(
        ("cause", "the page sees", "page knows", "server sees", "server knows"),
        rows,
        right=(2, 4),
    )
