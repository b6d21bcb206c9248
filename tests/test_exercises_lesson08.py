"""Lesson 08's checks: the lesson's answers pass, plausible wrong pages get a hint."""

from __future__ import annotations

import pytest

from wssim.course.exercises import lesson08

RECONNECT = """
const BASE = 1000, CAP = 30000;  // ms
let attempt = 0;
function connect() {
  const ws = new WebSocket("ws://server:8765");
  ws.onopen = () => { attempt = 0; };
  ws.onclose = () => {
    const delay = Math.random() * Math.min(CAP, BASE * 2 ** attempt);
    attempt += 1;
    setTimeout(connect, delay);
  };
}
connect();
"""
IMMEDIATE = RECONNECT.replace("setTimeout(connect, delay)", "connect()")
FIXED = RECONNECT.replace("Math.random() * Math.min(CAP, BASE * 2 ** attempt)", "1000")
NO_JITTER = RECONNECT.replace("Math.random() * ", "")
NO_CAP = RECONNECT.replace("Math.min(CAP, BASE * 2 ** attempt)", "BASE * 2 ** attempt")
NO_RETRY = RECONNECT.replace("setTimeout(connect, delay);", "")

HEARTBEAT = """
const ws = new WebSocket("ws://server:8765");
let last = performance.now();
ws.onmessage = () => { last = performance.now(); };
ws.onopen = () => {
  const timer = setInterval(() => {
    if (performance.now() - last > 6000) { clearInterval(timer); serverLost(); return; }
    ws.send("ping");
  }, 2000);
};
"""
TIGHT = HEARTBEAT.replace("6000", "500").replace("2000", "250")
SLOW = HEARTBEAT.replace("6000", "30000")
NO_HEARTBEAT = """
const ws = new WebSocket("ws://server:8765");
ws.onclose = () => serverLost();
"""
EARLY = NO_HEARTBEAT.replace("ws.onclose = () => serverLost();", "serverLost();")
CALM_ALARM = HEARTBEAT.replace("ws.onopen", "setTimeout(serverLost, 60000);\nws.onopen")
TICKS = """
const ws = new WebSocket("ws://server:8765");
let missed = 0;
ws.onmessage = () => { missed = 0; };
ws.onopen = () => {
  const timer = setInterval(() => {
    missed += 1;
    if (missed > 4) { clearInterval(timer); serverLost(); return; }
    ws.send("ping");
  }, 1000);
};
"""

GIVE_UP = """
let failures = 0;
function connect() {
  const ws = new WebSocket("ws://server:8765");
  ws.onopen = () => { failures = 0; };
  ws.onclose = (e) => {
    if (e.code >= 4000 && e.code <= 4999) return;  // the server said: do not retry
    if (e.code === 1006 && ws.opened !== true) failures += 1;
    if (failures >= 5) return;
    setTimeout(connect, 1000 + Math.random() * 1000);
  };
  ws.addEventListener("open", () => { ws.opened = true; });
}
connect();
"""
FOREVER = GIVE_UP.replace("if (failures >= 5) return;", "")
IGNORE_4XXX = GIVE_UP.replace("if (e.code >= 4000 && e.code <= 4999) return;", "")
STOP_ON_1006 = GIVE_UP.replace("failures >= 5", "failures >= 1")
NO_RESET = GIVE_UP.replace("ws.onopen = () => { failures = 0; };", "")
STOP_1012 = GIVE_UP.replace("e.code >= 4000 && e.code <= 4999", "e.code >= 1012")


def test_the_reconnect_answer_passes_with_its_measurements() -> None:
    feedback = lesson08.reconnect(RECONNECT)
    assert feedback.passed, feedback.text
    assert feedback.text == (
        "at most 10 handshakes per tab, and 6 within 100 ms, while the server was down; "
        "every tab open again by t = 92.03 s."
    )


@pytest.mark.parametrize(
    ("page", "hint"),
    [
        (IMMEDIATE, "a tab tried 1499 handshakes in the 60 s the server was down"),
        (FIXED, "a tab tried 57 handshakes"),
        (NO_JITTER, "the 20 tabs tried 20 handshakes within 100 ms"),
        (NO_CAP, "8 of 20 tabs were not open again by t = 101 s"),
        (NO_RETRY, "no tab tried to reconnect"),
        ("const ws = new WebSocket(", "the page threw: SyntaxError"),
        ("console.log('hi')", "the page never makes a WebSocket"),
        (None, "give page_js as a string of JavaScript"),
    ],
)
def test_wrong_reconnect_loops_get_a_hint(page: object, hint: str) -> None:
    feedback = lesson08.reconnect(page)
    assert not feedback.passed
    assert hint in feedback.text


def test_the_heartbeat_answer_passes_and_counting_whole_second_ticks_is_fine_too() -> None:
    feedback = lesson08.heartbeat(HEARTBEAT)
    assert feedback.passed, feedback.text
    assert feedback.text.startswith("the partition was noticed 6.04 s after it began")
    assert lesson08.heartbeat(TICKS).passed


@pytest.mark.parametrize(
    ("page", "hint"),
    [
        (TIGHT, "the tab was hidden at t = 10 s and serverLost() was called at t = 11.00 s"),
        (SLOW, "noticed 30.04 s after it (within 10 s, please)"),
        (NO_HEARTBEAT, "noticed never"),
        (EARLY, "serverLost() was called at t = 0.00 s, before anything went wrong"),
        (CALM_ALARM, "false alarm: serverLost() at t = 60.00 s"),
    ],
)
def test_wrong_heartbeats_get_a_hint(page: str, hint: str) -> None:
    feedback = lesson08.heartbeat(page)
    assert not feedback.passed
    assert hint in feedback.text


def test_the_give_up_answer_passes() -> None:
    feedback = lesson08.give_up(GIVE_UP)
    assert feedback.passed, feedback.text
    assert "after 5 refused handshakes in a row" in feedback.text


@pytest.mark.parametrize(
    ("page", "hint"),
    [
        (FOREVER, "got 197 of them in 300 s: stop after 5 failures in a row"),
        (IGNORE_4XXX, "the page tried 1 more handshake: look at the close event's code"),
        (STOP_ON_1006, "never got the page back (it tried 1)"),
        (NO_RESET, "Start counting again once a connection opens"),
        (STOP_1012, "after a deploy (close 1012 at 5 s) the page never reconnected"),
    ],
)
def test_pages_that_retry_wrongly_get_a_hint(page: str, hint: str) -> None:
    feedback = lesson08.give_up(page)
    assert not feedback.passed
    assert hint in feedback.text
