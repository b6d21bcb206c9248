"""What one side of a connection saw: an outcome, as a plain dict.

An outcome has exactly the keys ``exception``, ``code_received``, ``code_sent``, ``cause``
and ``time`` (the schema every part of the reality suite shares):

- ``exception``: the class name of what the application got (``ConnectionClosedError``),
  or None when it got nothing: still ``open`` at the end, or ``killed`` by the fault;
- ``code_received`` / ``code_sent``: the close codes of ``exc.rcvd`` / ``exc.sent``, or None;
- ``cause``: the operating system's account of how TCP ended, read from the exception's
  ``__cause__`` (websockets stores the transport's error as ``connection_exc`` and chains it
  to the ``ConnectionClosed`` it raises): ``EOF`` (no error, or websockets' ``EOFError``:
  the peer's FIN, or a clean close), ``ECONNRESET``, ``EPIPE``, ``ETIMEDOUT`` (TCP gave
  up), ``close_timeout`` (websockets aborted TCP itself after ``close_timeout``); ``open``
  or ``killed`` when nothing was raised;
- ``time``: when the application learned it, in unscaled seconds from the start of the
  scenario (None when it never did).
"""

from __future__ import annotations

import errno
from typing import Any

from websockets.exceptions import ConnectionClosed

Outcome = dict[str, Any]
"""``{"exception", "code_received", "code_sent", "cause", "time"}``."""

KEYS = ("exception", "code_received", "code_sent", "cause", "time")


def os_cause(error: BaseException | None) -> str:
    """The name of the OS-level cause behind a closed connection."""
    if error is None or isinstance(error, EOFError):
        # No error from the transport, or websockets' parser hit the end of the stream:
        # either way the peer's FIN.
        return "EOF"
    if isinstance(error, OSError) and error.errno is not None:
        return errno.errorcode.get(error.errno, str(error.errno))
    if isinstance(error, TimeoutError):
        # websockets' own: "timed out while closing connection", then transport.abort().
        return "close_timeout"
    return type(error).__name__


def raised(exc: BaseException, time: float) -> Outcome:
    """The outcome of a side whose application got ``exc`` at ``time``."""
    if isinstance(exc, ConnectionClosed):
        return {
            "exception": type(exc).__name__,
            "code_received": None if exc.rcvd is None else int(exc.rcvd.code),
            "code_sent": None if exc.sent is None else int(exc.sent.code),
            "cause": os_cause(exc.__cause__),
            "time": round(time, 3),
        }
    cause = os_cause(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
    return {
        "exception": type(exc).__name__,
        "code_received": None,
        "code_sent": None,
        "cause": cause,
        "time": round(time, 3),
    }


def nothing(cause: str) -> Outcome:
    """The outcome of a side that got nothing: ``"open"`` at the end, or ``"killed"``."""
    return {
        "exception": None,
        "code_received": None,
        "code_sent": None,
        "cause": cause,
        "time": None,
    }


def short(outcome: Outcome) -> str:
    """One outcome in a few words: ``ConnectionClosedError 1006 (sent 1011) close_timeout``."""
    if outcome["exception"] is None:
        return str(outcome["cause"])
    name = str(outcome["exception"]).replace("ConnectionClosed", "")
    rcvd, sent = outcome["code_received"], outcome["code_sent"]
    codes = f"rcvd {rcvd if rcvd is not None else '-'}/sent {sent if sent is not None else '-'}"
    return f"{name} {codes} {outcome['cause']}"
