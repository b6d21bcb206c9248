"""Lesson 05's checks: right answers pass, wrong or missing ones get a hint, nothing raises."""

from __future__ import annotations

import json
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode

from wssim.course import protocolerrors
from wssim.course.exercises import lesson05
from wssim.raw import RawFrame

CAF = RawFrame(Opcode.TEXT, b"caf", fin=False)
FF = RawFrame(Opcode.CONT, b"\xff")


def test_split_utf8_passes_the_right_frames_and_predictions_in_any_reasonable_form() -> None:
    feedback = lesson05.split_utf8([CAF, FF], 1007, 0.06)
    assert feedback.passed
    assert feedback.text.startswith("websockets checks UTF-8 on the whole message")
    assert "1007 at 0.060 s" in feedback.text
    assert lesson05.split_utf8((CAF, FF), "1007", 0.0605).passed
    case = protocolerrors.Case("mine", (CAF, FF), "8.1", "fail", "UTF-8")
    assert lesson05.split_utf8(case, 1007, 0.06).passed
    other_text = RawFrame(Opcode.TEXT, "é".encode(), fin=False)
    assert lesson05.split_utf8([other_text, FF], 1007, 0.06).passed


def test_split_utf8_hints_at_the_frames_without_giving_the_answer() -> None:
    def hint(fragments: object) -> str:
        feedback = lesson05.split_utf8(fragments, 1007, 0.06)
        assert not feedback.passed
        return feedback.text

    assert hint(None).startswith("write the two frames in `fragments`")
    assert "that is one frame" in hint(CAF)
    assert "a list of two RawFrames" in hint(b"caf\xff")
    assert "`fragments` has 3" in hint([CAF, FF, FF])
    assert "every item of `fragments` should be a RawFrame" in hint([CAF, b"\xff"])
    assert "opcode Opcode.TEXT" in hint([RawFrame(Opcode.BINARY, b"caf", fin=False), FF])
    assert "give it fin=False" in hint([RawFrame(Opcode.TEXT, b"caf"), FF])
    assert "valid UTF-8 on its own" in hint([RawFrame(Opcode.TEXT, b"caf\xc3", fin=False), FF])
    assert "some valid UTF-8 text" in hint([RawFrame(Opcode.TEXT, b"", fin=False), FF])
    assert "Opcode.CONT" in hint([CAF, RawFrame(Opcode.TEXT, b"\xff")])
    assert "leave fin=True" in hint([CAF, RawFrame(Opcode.CONT, b"\xff", fin=False)])
    assert "the single byte 0xff" in hint([CAF, RawFrame(Opcode.CONT, b"\xfe")])
    unmasked = RawFrame(Opcode.CONT, b"\xff", mask=False)
    assert "keep the frames plain" in hint([CAF, unmasked])
    assert "keep the frames plain" in hint(
        [RawFrame(Opcode.TEXT, b"caf", fin=False, rsv=(1, 0, 0)), FF]
    )


def test_split_utf8_compares_the_predictions_with_the_measurement() -> None:
    unanswered = lesson05.split_utf8([CAF, FF], None, None)
    assert unanswered.text.startswith("your fragments are right; now write your predictions")
    assert "now write" in lesson05.split_utf8([CAF, FF], 1007, None).text
    assert "now write" in lesson05.split_utf8([CAF, FF], True, 0.06).text
    wrong_code = lesson05.split_utf8([CAF, FF], 1002, 0.06)
    assert not wrong_code.passed
    assert wrong_code.text.startswith("websockets does not answer with 1002")
    assert "1007" not in wrong_code.text  # the hint does not give the answer away
    wrong_time = lesson05.split_utf8([CAF, FF], 1007, 0.05)
    assert wrong_time.text.startswith("the code is right, the time 0.05 s is not")
    assert "0.060" not in wrong_time.text


def test_the_cases_a_smaller_max_size_changes_are_those_of_a_real_run() -> None:
    changed = {
        default.case.name
        for default in protocolerrors.run_all(protocolerrors.SERVER_CATALOGUE)
        if protocolerrors.run(default.case, max_size=1000).code != default.code
    }
    assert changed == lesson05.CHANGED_BY_MAX_SIZE == {"text message of 1 MiB (max_size)"}


def test_smaller_max_size_accepts_names_cases_and_outcomes() -> None:
    name = "text message of 1 MiB (max_size)"
    assert lesson05.smaller_max_size([name]).passed
    assert lesson05.smaller_max_size(name).passed
    assert lesson05.smaller_max_size({name}).passed
    assert lesson05.smaller_max_size([protocolerrors.case(name)]).passed
    assert lesson05.smaller_max_size([protocolerrors.run(protocolerrors.case(name))]).passed


def test_smaller_max_size_hints() -> None:
    def hint(changed: object) -> str:
        feedback = lesson05.smaller_max_size(changed)
        assert not feedback.passed
        return feedback.text

    assert hint(None).startswith("collect the names")
    assert "`changed` is empty" in hint([])
    assert "should be a list of case names, got 3" in hint(3)
    assert "should hold case names" in hint([1009])
    assert "'text of 1 MiB' is not a case of the server catalogue" in hint(["text of 1 MiB"])
    already = ["text message of 1 MiB (max_size)", "text message of 1 MiB + 1 byte"]
    assert hint(already).startswith("'text message of 1 MiB + 1 byte' gets the same close code")


# ---------------------------------------------------------------- exercise 3

sessions: dict[int, str] = {}


async def serve_requests(websocket: Any, *, long: str, rate: bool = True) -> None:
    """The lesson's robust handler, with a choice of what to do with a long message."""
    sessions[id(websocket)] = "session"
    count = 0
    try:
        async for message in websocket:
            count += 1
            if rate and count > 5:
                await websocket.close(1008, "over 5 messages per second")
                break
            if isinstance(message, bytes):
                await websocket.close(1003, "text messages only")
                break
            if len(message) > 1000 and long == "close":
                await websocket.close(1009, "message over 1000 characters")
                break
            if len(message) > 1000 and long == "reply":
                await websocket.send("error: too long")
                continue
            try:
                request = json.loads(message)
            except ValueError:
                await websocket.send(json.dumps({"error": "expected JSON"}))
                continue
            await websocket.send(json.dumps(request))
    except ConnectionClosed:
        pass
    finally:
        del sessions[id(websocket)]


async def patient(websocket: Any) -> None:
    await serve_requests(websocket, long="reply")


async def robust(websocket: Any) -> None:
    await serve_requests(websocket, long="close")


async def no_limit(websocket: Any) -> None:
    await serve_requests(websocket, long="echo")


async def no_rate_limit(websocket: Any) -> None:
    await serve_requests(websocket, long="reply", rate=False)


async def crashing(websocket: Any) -> None:
    raise RuntimeError("oops")


def test_patient_passes_a_handler_that_replies_and_keeps_the_rest() -> None:
    feedback = lesson05.patient(patient, sessions)
    assert feedback.passed, feedback.text
    assert feedback.text.startswith("a long message now gets an error reply")
    assert sessions == {}


def test_patient_reports_what_is_left_over() -> None:
    assert lesson05.patient(robust, sessions).text.startswith("your handler still closes with 1009")
    assert "as if it were fine" in lesson05.patient(no_limit, sessions).text
    no_rate = lesson05.patient(no_rate_limit, sessions).text
    assert no_rate.startswith("on a burst of 8 messages, your handler no longer answers")
    leaked: dict[int, str] = {}

    async def leaky(websocket: Any) -> None:
        leaked[id(websocket)] = "session"
        async for message in websocket:
            if len(message) > 1000:
                await websocket.send("error: too long")
                continue
            await websocket.send(json.dumps(json.loads(message)))
        del leaked[id(websocket)]

    assert lesson05.patient(leaky, leaked).text.startswith(
        "on invalid JSON, your handler crashed (1 'connection handler failed'"
    )
    assert leaked == {}  # what the check's runs left is not left in the learner's dict
    crashed = lesson05.patient(crashing, sessions).text
    assert crashed.startswith("on a message over 1000 characters, your handler crashed")


def test_patient_counts_leaks_in_the_sessions_it_is_given() -> None:
    held: dict[int, str] = {}

    async def forgets(websocket: Any) -> None:
        held[id(websocket)] = "session"
        async for message in websocket:
            await websocket.send(f"error: {len(message)} characters")

    assert lesson05.patient(forgets, held).text.startswith(
        "on a message over 1000 characters, your handler left 1 session(s) in `sessions`"
    )


def test_patient_refuses_what_is_not_a_handler_without_raising() -> None:
    assert "`async def` function" in lesson05.patient(None, sessions).text
    assert "`async def` function" in lesson05.patient(lambda ws: None, sessions).text
    assert "pass the `sessions` dict" in lesson05.patient(patient, None).text

    async def wrong_signature() -> None:
        pass

    # websockets calls it with the connection: a crash, reported as such.
    assert "crashed" in lesson05.patient(wrong_signature, sessions).text
