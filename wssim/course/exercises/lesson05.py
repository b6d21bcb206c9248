"""Checks for lesson 05, protocol errors: predict the library's answer, read the catalogue,
and fix a handler so that a long message gets a reply instead of a close."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode

from wssim.course import protocolerrors
from wssim.course.exercises import Feedback, correct, not_yet, seconds_close
from wssim.course.protocolerrors import Case, Outcome
from wssim.raw import RawFrame
from wssim.simulation import Simulation
from wssim.trace.lifecycle import endpoints

__all__ = ["patient", "smaller_max_size", "split_utf8"]

Handler = Callable[[ServerConnection], Awaitable[None]]

# ---------------------------------------------------------------- exercise 1


def _frames(fragments: object) -> tuple[RawFrame, ...] | str:
    """The learner's frames, from a Case or a sequence of RawFrames; or what is wrong."""
    if isinstance(fragments, Case):
        fragments = fragments.sends
    if fragments is None:
        return (
            "write the two frames in `fragments`: RawFrame(Opcode.TEXT, ..., fin=False), "
            "then a continuation frame."
        )
    if isinstance(fragments, RawFrame):
        return "that is one frame; the message is sent in two: put both in a list."
    if isinstance(fragments, str | bytes) or not isinstance(fragments, list | tuple):
        return f"`fragments` should be a list of two RawFrames, got {fragments!r}."
    if not all(isinstance(f, RawFrame) for f in fragments):
        return "every item of `fragments` should be a RawFrame(opcode, payload, fin=...)."
    if len(fragments) != 2:
        return f"the message goes in two fragments, and `fragments` has {len(fragments)}."
    return tuple(fragments)


def _plain(frame: RawFrame) -> bool:
    return (
        frame.rsv == (0, 0, 0)
        and frame.mask in (None, True)
        and frame.length is None
        and frame.length_bits is None
    )


def _fragments_problem(first: RawFrame, second: RawFrame) -> str | None:
    """What makes the two frames differ from the exercise's, or None."""
    if not (_plain(first) and _plain(second)):
        return (
            "keep the frames plain (opcode, payload and fin only): a reserved bit, an "
            "unmasked frame or a length that lies is another error, tried in the catalogue."
        )
    if first.opcode != Opcode.TEXT:
        return "the message is text: its first frame has the opcode Opcode.TEXT."
    if first.fin:
        return "the first fragment does not end the message: give it fin=False."
    try:
        bytes(first.payload).decode("utf-8")
    except UnicodeDecodeError:
        return 'the first fragment should be valid UTF-8 on its own, such as b"caf".'
    if not first.payload:
        return 'give the first fragment some valid UTF-8 text, such as b"caf".'
    if second.opcode != Opcode.CONT:
        return "the second fragment continues the message: its opcode is Opcode.CONT."
    if not second.fin:
        return "the second fragment ends the message: leave fin=True (the default)."
    if bytes(second.payload) != b"\xff":
        return 'the second fragment is the single byte 0xff: b"\\xff".'
    return None


def _close_code(answer: object) -> int | None:
    """A close code written as a number or as a string of digits; None otherwise."""
    if isinstance(answer, bool):
        return None
    if isinstance(answer, int):
        return int(answer)
    if isinstance(answer, str) and answer.strip().isdigit():
        return int(answer.strip())
    return None


def split_utf8(fragments: object, predicted_code: object, predicted_at: object) -> Feedback:
    """Exercise 1: text in two fragments, "caf" then the byte 0xff: which code, when?

    Args:
        fragments: the two frames (or the Case holding them).
        predicted_code: the close code the learner predicted.
        predicted_at: when the learner predicted the close frame reaches the client (s).
    """
    frames = _frames(fragments)
    if isinstance(frames, str):
        return not_yet(frames)
    problem = _fragments_problem(*frames)
    if problem is not None:
        return not_yet(problem)
    case = Case("bad byte in the second fragment", frames, "8.1", "fail the connection", "UTF-8")
    try:
        outcome = protocolerrors.run(case)
    except Exception as exc:  # not expected with the frames checked above: a hint, not a raise
        return not_yet(f"running your fragments failed: {exc!r}")
    if outcome.code is None or outcome.close_at is None:
        return not_yet(f"websockets did not close the connection: {outcome.answer}.")
    code = _close_code(predicted_code)
    close = seconds_close(predicted_at, outcome.close_at)
    if code is None or close is None:
        return not_yet(
            "your fragments are right; now write your predictions, the close code as a "
            "number and the time in seconds, before you look at the answer."
        )
    if code != outcome.code:
        return not_yet(
            f"websockets does not answer with {code}. Which close code is for text that is "
            "not valid UTF-8? The catalogue's UTF-8 group has it."
        )
    if not close:
        return not_yet(
            f"the code is right, the time {predicted_at!r} s is not. The frames leave when "
            "the connection is open (0.040 s, the table's first line) and each trip takes "
            "10 ms: is UTF-8 checked frame by frame, or once the message is complete?"
        )
    return correct(
        f"websockets checks UTF-8 on the whole message, when the handler reads it: "
        f"{outcome.code} at {outcome.close_at:.3f} s, as you predicted (RFC 6455, 8.1)."
    )


# ---------------------------------------------------------------- exercise 2

CHANGED_BY_MAX_SIZE = frozenset({"text message of 1 MiB (max_size)"})
"""The server cases whose close code changes with ``max_size=1000`` (the tests run the
catalogue both ways to confirm it)."""


def _names(answer: object) -> set[str] | str:
    """Case names from names, Cases or Outcomes; or what is wrong."""
    if answer is None:
        return (
            "collect the names of the cases whose close code changes in `changed`: run each "
            "case of `outcomes` again with max_size=1000 and compare the codes."
        )
    if isinstance(answer, str | Case | Outcome):
        answer = [answer]
    if not isinstance(answer, list | tuple | set | frozenset | dict):
        return f"`changed` should be a list of case names, got {answer!r}."
    names = set()
    for item in answer:
        if isinstance(item, Outcome):
            item = item.case
        if isinstance(item, Case):
            item = item.name
        if not isinstance(item, str):
            return f"`changed` should hold case names (`case.name`), not {item!r}."
        names.add(item)
    return names


def smaller_max_size(changed: object) -> Feedback:
    """Exercise 2: which server cases get another close code with ``max_size=1000``?

    Args:
        changed: the names of those cases (Cases and Outcomes are accepted too).
    """
    names = _names(changed)
    if isinstance(names, str):
        return not_yet(names)
    if not names:
        return not_yet(
            "`changed` is empty, yet one case does change. Compare `.code`, not the reason: "
            "run each case of `outcomes` with max_size=1000."
        )
    known = {case.name: case for case in protocolerrors.SERVER_CATALOGUE}
    unknown = sorted(names - set(known))
    if unknown:
        return not_yet(
            f"{unknown[0]!r} is not a case of the server catalogue: use the names of "
            "`protocolerrors.SERVER_CATALOGUE` (each case's `.name`)."
        )
    extra = sorted(names - CHANGED_BY_MAX_SIZE)
    if extra:
        return not_yet(
            f"{extra[0]!r} gets the same close code with either max_size (only the reason "
            "may differ). Compare the codes, not the answers."
        )
    return correct(
        "only the message of exactly 1 MiB changes: it is refused with 1009 from its header "
        "alone. Every other case over 1000 bytes was refused already; only its reason changes."
    )


# ---------------------------------------------------------------- exercise 3


MAX_TEXT = 1000
TOO_LARGE = json.dumps({"type": "echo", "text": "x" * 2000})


@dataclass(frozen=True)
class _Expected:
    """One bad input of the lesson and what the robust handler does with it."""

    name: str
    messages: tuple[str | bytes, ...]
    code: int
    replies: bool


# The lesson's bad inputs, with the robust handler's answers, which the exercise keeps.
_KEPT = (
    _Expected("a good request", ('{"type": "sum", "numbers": [1, 2, 3]}',), 1000, True),
    _Expected("invalid JSON", ('{"type": "sum", "numbers": [1, 2',), 1000, True),
    _Expected("binary", (b"\x00\x01",), 1003, False),
    _Expected("a burst of 8 messages", ('{"type": "sum", "numbers": [1]}',) * 8, 1008, True),
)


@dataclass(frozen=True)
class _Talk:
    """What happened when a client sent some messages to a handler (as ``talk`` in the
    lesson): the replies it read in one second, the close code it received, how many times
    the handler crashed, and how many sessions it left behind."""

    replies: tuple[str | bytes, ...]
    code: int | None
    crashes: int
    leaked: int


def _talk(
    handler: Handler, messages: tuple[str | bytes, ...], sessions: MutableMapping[Any, Any]
) -> _Talk:
    """Run a websockets client against ``handler`` on a fresh simulation: it sends
    ``messages``, reads the replies for a second, then closes with 1000."""
    replies: list[str | bytes] = []

    async def app_server() -> None:
        async with serve(handler, "server", 8765) as ws_server:
            await ws_server.serve_forever()

    async def client() -> None:
        try:
            async with connect("ws://server:8765") as websocket:
                for message in messages:
                    await websocket.send(message)
                try:
                    async with asyncio.timeout(1):
                        async for reply in websocket:
                            replies.append(reply)
                except TimeoutError:
                    pass  # a second of replies; leaving the block closes with 1000
        except ConnectionClosed:
            pass

    # Count on an empty dict, as the lesson's `talk` does (keys are id()s, which a new
    # connection may reuse), then give the learner's dict back what it held.
    before = dict(sessions)
    sessions.clear()
    try:
        with Simulation(seed=0) as sim:
            sim.host("server").spawn(app_server())
            sim.host("client").spawn(client())
            trace = sim.run(until=10)
        leaked = len(sessions)
    finally:
        sessions.clear()
        sessions.update(before)
    crashes = len(trace.filter(kind="log", contains="connection handler failed"))
    code = next((e.close_code for e in endpoints(trace) if e.side == "client"), None)
    return _Talk(tuple(replies), code, crashes, leaked)


def _coroutine_function(handler: object) -> bool:
    # A functools.partial of an `async def` function is fine too.
    return inspect.iscoroutinefunction(getattr(handler, "func", handler))


def _leftovers(result: _Talk, name: str) -> str | None:
    if result.crashes:
        return (
            f"on {name}, your handler crashed ({result.crashes} 'connection handler failed' "
            "in the server's log): catch what it raises."
        )
    if result.leaked:
        return (
            f"on {name}, your handler left {result.leaked} session(s) in `sessions`: release "
            "it in a `finally`."
        )
    return None


def patient(handler: object, sessions: object) -> Feedback:
    """Exercise 3: the robust handler, changed to answer a long message with an error.

    Runs ``handler`` under the lesson's bad inputs, each on a fresh simulation: the long
    message must get a reply and leave the connection open (the client then closes with
    1000); every other input must get the robust handler's answer; nothing may crash or
    leak.

    Args:
        handler: the learner's connection handler.
        sessions: the dict where the handler keeps its per-connection sessions.
    """
    if not callable(handler) or not _coroutine_function(handler):
        return not_yet(f"pass your handler, an `async def` function, got {handler!r}.")
    if not isinstance(sessions, MutableMapping):
        return not_yet("pass the `sessions` dict as well, so the check can count leaks.")
    try:
        long = _talk(handler, (TOO_LARGE,), sessions)
        kept = [(case, _talk(handler, case.messages, sessions)) for case in _KEPT]
    except Exception as exc:  # the learner's code broke the run: a hint, not a traceback
        return not_yet(f"running your handler failed: {exc!r}")
    name = f"a message over {MAX_TEXT} characters"
    problem = _leftovers(long, name)
    if problem is not None:
        return not_yet(problem)
    if long.code == 1009:
        return not_yet(
            f"your handler still closes with 1009 on {name}: send an error reply instead, "
            "and go on reading (`continue`, not `break`)."
        )
    if long.code != 1000 or not long.replies:
        return not_yet(
            f"on {name}, the client should get one reply and then close normally itself "
            f"(1000); it got {len(long.replies)} reply(ies) and close code {long.code}."
        )
    if any("x" * 100 in str(reply) for reply in long.replies):
        return not_yet(
            f"your handler answers {name} as if it were fine: tell the client it is too long."
        )
    for case, result in kept:
        problem = _leftovers(result, case.name)
        if problem is not None:
            return not_yet(problem)
        if result.code != case.code or bool(result.replies) != case.replies:
            return not_yet(
                f"on {case.name}, your handler no longer answers as the robust handler did: "
                f"change only what happens to a message over {MAX_TEXT} characters."
            )
    return correct(
        "a long message now gets an error reply and the connection stays open; every other "
        "bad input gets the answer it had, and nothing crashes or leaks."
    )
