"""Checks for lesson 03, reconnecting without a thundering herd.

Exercise 1 judges a reconnect strategy by the storm of section 3 (1,000 clients, an
admission rate of 100 per second): the restarted server must refuse few attempts (at most
:data:`REFUSED_AT_MOST` 503s) and every client must be back within :data:`BACK_WITHIN`
seconds of the restart. Both targets leave room for chance: a strategy chosen by reasoning
(delays spread over more than the 10 s that 1,000 clients need at 100 per second, and never
longer than the wait allowed) meets them whatever the seed, and the check accepts the storm
run with any seed. That storm takes seconds of wall time, so the check reads the
:class:`~wssim.lab.storm.StormResult` the learner already has rather than running it again;
given a strategy instead, it runs the storm itself (``seed=1``).

Exercise 2 runs the learner's client in a fresh simulation of the shedding experiment: 100
clients, a server that admits 10 connections per second and closes 50 of them with 1013 at
t = 20 s.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

from websockets.asyncio.server import ServerConnection, serve

from wssim.course.exercises import Feedback, correct, not_yet
from wssim.lab import storm as storms
from wssim.lab.storm import StormResult
from wssim.simulation import Simulation
from wssim.toolkit.admission import TRY_AGAIN_LATER, Admission
from wssim.toolkit.backoff import STRATEGIES, Backoff
from wssim.trace.events import Trace
from wssim.world import ProcessFailed

__all__ = ["BACK_WITHIN", "HERD", "REFUSED_AT_MOST", "SHEDDING", "gentle_herd", "patient"]

HERD: dict[str, Any] = {"clients": 1000, "seed": 1, "rate": 100.0}
"""The storm of section 3 and exercise 1: ``storm.storm(strategy, **HERD)``."""

REFUSED_AT_MOST = 50
"""Exercise 1: at most this many attempts refused with 503 after the restart (5 % of the
1,000 clients)."""

BACK_WITHIN = 30.0
"""Exercise 1: every client back within this many seconds of the restart."""

SHEDDING: dict[str, Any] = {
    "clients": 100,
    "seed": 5,
    "rate": 10.0,
    "join_every": 0.1,
    "shed_at": 20.0,
    "shed": 50,
    "until": 60.0,
}
"""The shedding experiment of exercise 2, as the lesson runs it."""

_STORM_DEFAULTS = {"crash_at": 25.0, "down": 10.0}
_MAX_ATTEMPTS_WHILE_DOWN = 20
"""Past this many attempts per client during the outage, a strategy is not run: a flood of
attempts would take minutes of wall time to simulate (and would flood a real network)."""


# Exercise 1


def _storm_call(clients: int, seed: int, rate: float) -> str:
    return f"storm.storm(strategy, clients={clients}, seed={seed}, rate={rate:g})"


def _sample(strategy: Callable[[], Any], n: int) -> list[float] | str:
    """The first ``n`` delays of one run of ``strategy`` (fewer if it stops), or what went
    wrong. The global random generator is left as it was."""
    if isinstance(strategy, Backoff):
        return strategy.take(n, rng=random.Random(0))
    state = random.getstate()
    try:
        delays = list(itertools.islice(iter(strategy()), n))
    except Exception as exc:
        return f"calling it and taking its delays failed: {exc!r}"
    finally:
        random.setstate(state)
    for delay in delays:
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not delay >= 0:
            return f"its delays must be numbers of seconds >= 0, got {delay!r}"
    return [float(delay) for delay in delays]


def _attempts_while_down(delays: list[float]) -> int:
    """How many attempts one client makes during the outage with these delays (each
    attempt also takes a round trip)."""
    elapsed, attempts = 0.0, 0
    for delay in delays:
        elapsed += delay + 0.020
        if elapsed > _STORM_DEFAULTS["down"]:
            break
        attempts += 1
    return attempts


def _run_herd(strategy: Callable[[], Any]) -> StormResult | Feedback:
    """Run the exercise's storm with ``strategy``, or say why not."""
    if strategy in STRATEGIES.values():
        name = getattr(strategy, "__name__", "strategy")
        return not_yet(
            f"backoff.{name} makes a strategy: call it, with the parameters you choose "
            f"(backoff.{name}(...)), and run the storm with what it returns."
        )
    most = _MAX_ATTEMPTS_WHILE_DOWN
    delays = _sample(strategy, most + 1)
    if isinstance(delays, str):
        return not_yet(f"this strategy does not work as reconnect_delays=: {delays}.")
    if len(delays) <= most:
        return not_yet(
            f"this strategy stops after {len(delays)} delays: websockets' loop would then fail "
            "with a RuntimeError (section 5). A strategy gives delays for ever."
        )
    if _attempts_while_down(delays) >= most:
        return not_yet(
            f"with {strategy}, each client would retry more than {most} times during the "
            f"{_STORM_DEFAULTS['down']:g} s outage: far more work for the network, not less. "
            "Look for longer delays."
        )
    try:
        return storms.storm(strategy, **HERD)
    except ValueError as exc:
        return not_yet(f"storm.storm refused it: {exc}")
    except ProcessFailed as exc:
        return not_yet(f"the clients failed with your strategy: {exc.__cause__!r}")


def gentle_herd(answer: object) -> Feedback:
    """Exercise 1: a strategy with which the restarted server refuses at most
    :data:`REFUSED_AT_MOST` attempts with 503 and every client is back within
    :data:`BACK_WITHIN` seconds of the restart, in the storm of section 3.

    Args:
        answer: what ``storm.storm(strategy, clients=1000, seed=..., rate=100)`` returned
            (any seed); or the strategy itself (then the check runs that storm with
            ``seed=1``, a few seconds).
    """
    clients, rate = HERD["clients"], HERD["rate"]
    if isinstance(answer, StormResult):
        result = answer
    elif answer is None or answer is Ellipsis:
        return not_yet(
            "choose a strategy of wssim.toolkit.backoff and its parameters, run "
            f"{_storm_call(clients, HERD['seed'], rate)} with it, and pass what it returns."
        )
    elif callable(answer):
        ran = _run_herd(cast(Callable[[], Any], answer))
        if isinstance(ran, Feedback):
            return ran
        result = ran
    else:
        return not_yet(
            f"pass what {_storm_call(clients, HERD['seed'], rate)} returned (a StormResult), "
            f"got {answer!r}."
        )
    if (
        result.clients != clients
        or result.crash_at != _STORM_DEFAULTS["crash_at"]
        or result.restart_at != _STORM_DEFAULTS["crash_at"] + _STORM_DEFAULTS["down"]
    ):
        return not_yet(
            f"this is not the storm of the exercise: run {_storm_call(clients, HERD['seed'], rate)}"
            " (any seed; leave its other parameters alone)."
        )
    if result.peak_rate >= 0.9 * clients:
        return not_yet(
            f"{result.peak_rate:,} of the {clients:,} clients reached the server within the same "
            "second. Clients that lost their connection at the same instant and wait the same "
            "delays retry at the same instants: what breaks that lockstep?"
        )
    refused, most = result.refused_503, REFUSED_AT_MOST
    if refused > most:
        return not_yet(
            f"{refused:,} attempts were refused with 503, more than {most} "
            f"({most / clients:.0%} of the clients). The server admits {rate:g} per second; "
            f"{clients:,} clients whose delays are drawn from a window of w seconds come back "
            f"at about {clients:,}/w per second. How wide must that window be, and which "
            "parameter sets it once the delays stop growing?"
        )
    if result.all_back is None:
        return not_yet(
            "some clients were still disconnected 15 minutes after the restart: too high a "
            "price. Keep the longest delays shorter."
        )
    if result.all_back > BACK_WITHIN:
        return not_yet(
            f"the last client came back {result.all_back:.1f} s after the restart, more than "
            f"{BACK_WITHIN:g} s. A client that failed just before the restart waits whatever "
            "it drew, up to the longest delay the strategy can give: which parameter bounds "
            "it? Leave a margin: the attempt itself takes a round trip or two."
        )
    return correct(
        f"{refused} attempts refused with 503 (at most {most}), every client back "
        f"{result.all_back:.1f} s after the restart (half of them after "
        f"{result.half_back or 0:.1f} s), at most {result.peak_rate} attempts in a second. "
        f"The cap bounds the wait, and a window well over clients / rate ({clients / rate:g} s) "
        "keeps the returning clients under the server's admission rate."
    )


# Exercise 2


async def _hold(websocket: ServerConnection) -> None:
    await websocket.wait_closed()


async def _server(admission: Admission) -> None:
    # As the lesson's server(): compression off, websockets' other defaults.
    async with serve(_hold, "server", 8765, process_request=admission, compression=None) as srv:
        await srv.serve_forever()


async def _join(
    client: Callable[[], Coroutine[Any, Any, Any]], at: float, name: str, ended: set[str]
) -> None:
    await asyncio.sleep(at)  # join one by one, under the admission rate
    await client()
    ended.add(name)


@dataclass(frozen=True)
class _Shed:
    """What the shedding experiment showed about the shed clients."""

    shed: dict[str, float]  # client host -> when it saw its connection closed with 1013
    retried: dict[str, float]  # shed client -> its first attempt after that
    back: dict[str, float]  # shed client -> when it was admitted again
    refused: int  # 503 responses after the shed
    busiest: int  # most attempts reaching the server within one second after the shed
    ended: set[str]  # clients whose function returned


def _shedding(client: Callable[[], Coroutine[Any, Any, Any]]) -> _Shed | str:
    """Run the shedding experiment with ``client``; return what it showed, or what went
    wrong."""
    p = SHEDDING
    admission = Admission(rate=p["rate"])
    ended: set[str] = set()
    with Simulation(seed=p["seed"]) as sim:
        sim.host("server").spawn(_server(admission))
        for i in range(p["clients"]):
            name = f"client{i}"
            sim.host(name).spawn(_join(client, i * p["join_every"], name, ended))
        sim.at(p["shed_at"], admission.shed, p["shed"])
        try:
            trace = sim.run(until=p["until"])
        except ProcessFailed as exc:
            return f"your client failed: {exc.__cause__!r}"
    return _measure_shedding(trace, p["shed_at"], ended)


def _measure_shedding(trace: Trace, shed_at: float, ended: set[str]) -> _Shed:
    after = trace.filter(since=shed_at)
    shed: dict[str, float] = {}
    for event in after.filter(kind="closed", side="client"):
        if event.code == TRY_AGAIN_LATER:
            shed.setdefault(event.host, event.time)
    retried: dict[str, float] = {}
    syns = [e for e in after.filter(kind="tcp", side="client") if e.text == "SYN"]
    for event in syns:
        if event.host in shed and event.time >= shed[event.host]:
            retried.setdefault(event.host, event.time)
    back: dict[str, float] = {}
    refused = 0
    for event in after.filter(kind="http", side="server"):
        if event.code == 503:
            refused += 1
        elif event.code == 101 and event.peer in shed and event.time >= shed[event.peer]:
            back.setdefault(event.peer, event.time)
    seconds = [int(e.time - shed_at) for e in syns]
    busiest = max((sum(1 for _ in group) for _, group in itertools.groupby(seconds)), default=0)
    return _Shed(shed, retried, back, refused, busiest, ended)


def _not_a_client(client: object) -> str | None:
    """Why ``client`` cannot run as a client of the experiment, or None if it can."""
    if inspect.iscoroutine(client):
        client.close()  # it will never run: no "never awaited" warning for it
        return f"pass your coroutine function itself (without calling it), got {client!r}"
    if not callable(client):
        return f"pass your client: an `async def` function, got {client!r}"
    if not inspect.iscoroutinefunction(client):
        return f"{getattr(client, '__name__', client)} must be an `async def` function"
    try:
        inspect.signature(client).bind()
    except TypeError:
        name = getattr(client, "__name__", "your client")
        return f"{name}() must take no arguments: the experiment calls it as is"
    except ValueError:  # no signature to inspect: let the call decide
        pass
    return None


def patient(client: object) -> Feedback:
    """Exercise 2: after a 1013 (Try Again Later), the client waits a random delay before
    reconnecting, so that the shed clients come back under the server's admission rate.

    Runs ``client`` in the lesson's shedding experiment, in a fresh simulation.

    Args:
        client: the learner's client, an ``async def`` function taking no arguments.
    """
    wrong = _not_a_client(client)
    if wrong is not None:
        return not_yet(wrong)
    p = SHEDDING
    ran = _shedding(cast(Callable[[], Coroutine[Any, Any, Any]], client))
    if isinstance(ran, str):
        return not_yet(ran)
    shed, wanted = len(ran.shed), p["shed"]
    if shed < wanted:
        return not_yet(
            f"the server could shed only {shed} of {wanted} connections at t = {p['shed_at']:g} s: "
            "your client must connect and stay connected until the server closes the connection."
        )
    gave_up = sum(1 for host in ran.shed if host in ran.ended and host not in ran.back)
    if gave_up:
        return not_yet(
            f"{gave_up} of the {shed} shed clients stopped for good: a 1013 says try again "
            "*later*, so wait, then reconnect."
        )
    missing = shed - len(ran.back)
    if missing:
        return not_yet(
            f"{missing} of the {shed} shed clients were still disconnected at "
            f"t = {p['until']:g} s, {p['until'] - p['shed_at']:g} s after the shed: a wait that "
            "long costs the users more than it saves the server."
        )
    waits = [ran.retried[host] - ran.shed[host] for host in ran.retried]
    spread = max(ran.retried.values()) - min(ran.retried.values())
    rate = p["rate"]
    if ran.refused > wanted // 10:
        if max(waits) < 0.1:
            why = (
                "they came back at once: websockets' loop reconnects immediately after a "
                "connection that had opened, whatever its close code. The wait is yours to add"
            )
        elif spread < 1.0:
            why = (
                f"they waited, but all about the same time ({min(waits):.1f} s), so they came "
                "back together"
            )
        else:
            why = f"their waits spread them over {spread:.1f} s only"
        return not_yet(
            f"after the shed, the busiest second brought {ran.busiest} attempts to a server that "
            f"admits {rate:g} per second, and {ran.refused} were refused with 503: {why}."
        )
    last = max(ran.back.values())
    return correct(
        f"the {shed} shed clients came back with at most {ran.busiest} attempts in any second, "
        f"{ran.refused} refused with 503; the last was back at t = {last:.2f} s."
    )
