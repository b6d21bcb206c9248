"""Checks for lesson 01, lifecycle and close codes."""

from __future__ import annotations

from wssim.course.exercises import Feedback, correct, not_yet, seconds_close
from wssim.trace.events import Trace
from wssim.trace.lifecycle import endpoints

__all__ = ["deploy", "private_code", "slow_link"]

_EXCEPTIONS = ("ConnectionClosedOK", "ConnectionClosedError")


def _name(answer: object) -> object:
    # Accept the exception class itself as well as its name.
    return getattr(answer, "__name__", answer)


def _closed(trace: object, side: str) -> tuple[int | None, str] | None:
    """The close code and the exception's class name of ``side``'s ``closed`` event."""
    if not isinstance(trace, Trace):
        return None
    event = trace.first(kind="closed", side=side)
    info = None if event is None else event.closed
    return None if event is None or info is None else (event.code, info.exception)


def _exception(answer: object, side: str, seen: str) -> Feedback | None:
    """Feedback if ``answer`` is not the exception ``seen`` (a class name), else None."""
    name = _name(answer)
    if name not in _EXCEPTIONS:
        return not_yet(
            f'answer with the exception the {side} gets: "ConnectionClosedOK" or '
            f'"ConnectionClosedError" (the trace\'s `closed` line starts with it).'
        )
    if seen != name:
        return not_yet(f"the {side} does not get {name}: read its `closed` line in the trace.")
    return None


def _close_seen(
    trace: object, side: str, answer: object, code: int, how: str, why: str
) -> Feedback:
    """Check that ``side`` ended with ``code`` in ``trace`` and that ``answer`` names the
    exception it got; ``how`` says how to make it happen, ``why`` what the learner found."""
    closed = _closed(trace, side)
    if closed is None:
        return not_yet("pass the trace of your experiment (what experiment(...) returned).")
    seen, text = closed
    if seen != code:
        return not_yet(f"the {side} saw close code {seen}: {how}.")
    wrong = _exception(answer, side, text)
    return wrong if wrong is not None else correct(why)


def deploy(trace: object, client_saw: object) -> Feedback:
    """Exercise 1: a server shuts down with 1012 (service restart)."""
    return _close_seen(
        trace,
        "client",
        client_saw,
        1012,
        'make the server close with code=1012 and reason="deploying" '
        "(server(shutdown_at=1, code=..., reason=...))",
        "1012 is not one of websockets' normal codes (1000, 1001, 1005): the client gets "
        "ConnectionClosedError. Reconnect on the code, not on the exception class.",
    )


def private_code(trace: object, server_saw: object) -> Feedback:
    """Exercise 2: the client closes with 4000, a code of the application's own."""
    return _close_seen(
        trace,
        "server",
        server_saw,
        4000,
        'make the client close with code=4000 and reason="user logged out" '
        "(leaving_client(code=..., reason=...))",
        "the code and reason arrive untouched, and since 4000 is not a normal code the server "
        "gets ConnectionClosedError with rcvd.code == 4000.",
    )


def slow_link(trace: object, client_closed_at: object, server_closed_at: object) -> Feedback:
    """Exercise 3: when is each side closed on a 100 ms link?"""
    if not isinstance(trace, Trace):
        return not_yet("pass the trace of your experiment (what experiment(...) returned).")
    ends = {e.side: e.closed_at for e in endpoints(trace)}
    if ends.get("client") != 1.6 or ends.get("server") != 1.7:
        return not_yet(
            "this trace is not the experiment asked for: run experiment(server(), "
            "leaving_client(), latency=0.1)."
        )
    client = seconds_close(client_closed_at, 1.6)
    server = seconds_close(server_closed_at, 1.7)
    if client is None or server is None:
        return not_yet("write both predictions, in seconds, before you look at the trace.")
    if not (client and server):
        return not_yet(
            "count one-way trips of 100 ms: four for the opening handshake, then the CLOSE "
            "one way, the CLOSE and the server's FIN back, and the client's FIN last."
        )
    return correct("the client is closed at 1.600 s and the server at 1.700 s, as predicted.")
