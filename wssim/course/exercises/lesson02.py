"""Checks for lesson 02, why connections close.

The two "how long" exercises are checked against the simulation itself: an answer is right
when the experiment survives it and fails 0.1 s past it (the precision asked for), so the
check accepts exactly the answers within 0.1 s below the true limit, and can never drift from
what the lesson shows.
"""

from __future__ import annotations

from collections.abc import Callable

from websockets.frames import Opcode

from wssim import faults
from wssim.course import causes
from wssim.course.exercises import Feedback, correct, not_yet
from wssim.lab.diagnose import Diagnosis
from wssim.trace.events import Event

__all__ = ["fast_keepalive", "longest_freeze", "longest_partition", "router"]

_PRECISION = 0.1
"""The precision asked for, in seconds: a right answer survives, and fails this much past it."""

_FAST_ENOUGH = 12.5
"""Exercise 3: the latest a side may know, after the cut, for "within about 12 s"."""


def _number(answer: object) -> float | None:
    if isinstance(answer, bool) or not isinstance(answer, int | float) or answer != answer:
        return None
    return float(answer)


def _survives(run: Callable[[float], Diagnosis], duration: float) -> bool:
    d = run(duration)
    return d.client.saw == d.server.saw == "nothing"


def _longest(
    answer: object, run: Callable[[float], Diagnosis], what: str, hint: str
) -> Feedback | float:
    duration = _number(answer)
    if duration is None or duration <= 0:
        return not_yet(f"answer with a duration in seconds: the longest {what} that is survived.")
    if not _survives(run, duration):
        return not_yet(f"a {what} of {duration:g} s already closes the connection: {hint}")
    if _survives(run, duration + _PRECISION):
        return not_yet(
            f"a {what} of {duration + _PRECISION:g} s is survived too: look for a longer one."
        )
    return duration


def _forgot_flow(event: Event) -> bool:
    """Did the idle timeout forget the flow at this event?"""
    acted = event.fault
    return acted is not None and isinstance(acted.fault, faults.IdleTimeout)


def router(diagnosis: object, client_knows_at: object) -> Feedback:
    """Exercise 1: a router forgets idle flows after 10 s; keepalive pings every 20 s."""
    if not isinstance(diagnosis, Diagnosis):
        return not_yet("pass what causes.idle_timeout(...) returned.")
    trace = diagnosis.trace
    forgot = next((e for e in trace.filter(kind="tcp") if _forgot_flow(e)), None)
    pings = [e for e in trace.filter(kind="frame") if e.frame and e.frame.opcode is Opcode.PING]
    if forgot is None or not pings:
        return not_yet(
            "this is not the experiment asked for: a 10 s idle timeout (timeout=10), "
            'action="drop", and the default keepalive (ping_interval=20).'
        )
    if abs(forgot.time - 10.03) > 1e-6:
        return not_yet(f"the router forgot the flow at {forgot.time:g} s: set timeout=10.")
    at = _number(client_knows_at)
    if at is None:
        return not_yet(
            "write your prediction: at what virtual time t, in seconds, does the client know?"
        )
    knows_at, knows_after = diagnosis.client.at, diagnosis.client.after
    if knows_at is None or abs(at - knows_at) > 0.1:
        if knows_after is not None and abs(at - knows_after) <= 0.1:
            return not_yet(
                f"{at:g} s: that is the delay after the cause; write the virtual time t at "
                f"which the client knows."
            )
        return not_yet(
            "follow the first ping: when is it sent, where does it go, and how long does "
            "websockets wait for its pong, then for the closing handshake?"
        )
    return correct(
        f"the pings vanish, the keepalive gives up, and the client knows at "
        f"{diagnosis.client.at:.2f} s. A keepalive slower than the idle timeout detects the "
        f"loss but does not prevent it."
    )


def longest_partition(answer: object) -> Feedback:
    """Exercise 2: the longest partition from t = 1 s that the connection survives."""
    found = _longest(
        answer,
        lambda d: causes.partition(at=1, duration=d),
        "partition",
        "when is the unanswered ping retransmitted, and when must its pong be back?",
    )
    if isinstance(found, Feedback):
        return found
    return correct(
        f"{found:g} s: TCP retransmits the server's ping at 34.11 s and then only at 48.19 s, "
        f"so the partition must heal by 34.11 s, well before the 40 s the keepalive allows."
    )


def fast_keepalive(diagnosis: object) -> Feedback:
    """Exercise 3: a partition detected within about 12 s by a faster keepalive."""
    if not isinstance(diagnosis, Diagnosis):
        return not_yet("pass what diagnose.experiment(...) returned.")
    sides = (diagnosis.client, diagnosis.server)
    if any(s.after is None for s in sides):
        return not_yet(
            "one side never knew: is the partition there (faults=...), and is cause_at "
            "the time it starts?"
        )
    slowest = max(s.after or 0.0 for s in sides)
    if slowest > _FAST_ENOUGH:
        return not_yet(
            f"the slower side knew {slowest:.2f} s after the cut, not within about 12 s: pass "
            f"ping_interval=5, ping_timeout=5 and close_timeout=2 to both plans (options=...); "
            f"close_timeout counts too, after the keepalive gives up."
        )
    return correct(
        f"both sides knew within {slowest:.2f} s, at the price of more pings and less "
        f"patience with slow links."
    )


def longest_freeze(answer: object) -> Feedback:
    """Exercise 4: the longest freeze of the server's loop, from t = 1 s, that is survived."""
    found = _longest(
        answer,
        lambda d: causes.frozen_loop(at=1, duration=d),
        "freeze",
        "when does the client ping, and by when must the pong be back?",
    )
    if isinstance(found, Feedback):
        return found
    return correct(
        f"{found:g} s, for a freeze from t = 1 s: the client's ping of 20.04 s waits in the "
        "server's socket, is answered the moment the loop runs again, and the pong must be back "
        "by 40.04 s. From another start the limit differs: it runs from the start to the next "
        "ping's arrival, plus ping_timeout minus a round trip (19.98 s)."
    )
