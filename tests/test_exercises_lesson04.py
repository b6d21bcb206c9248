"""Lesson 04's checks: right answers pass, wrong or missing ones get a hint, nothing raises."""

from __future__ import annotations

import pytest

from wssim import faults
from wssim.course.exercises import lesson04
from wssim.lab.detection import keepalive_stack, run_stack
from wssim.toolkit.heartbeat import STACKS, Heartbeat, Side, Stack, TcpKeepalive
from wssim.trace import Event

DEFAULTS = {"ping_interval": 20, "ping_timeout": 20, "close_timeout": 10}
ANSWER = {"ping_interval": 20, "ping_timeout": 5, "close_timeout": 5}
ONLY_ANSWERS = {"ping_interval": None}


# Exercise 1: keepalive settings within 30 s and 3,000 bytes per hour


def test_the_lesson_answer_passes_with_its_measurements() -> None:
    feedback = lesson04.keepalive_budget(ANSWER, ONLY_ANSWERS)
    assert feedback.passed
    assert feedback.text == (
        "the server learns within 29.990 s at worst, with 2,880 heartbeat bytes per hour."
    )


def test_other_right_answers_and_answer_forms_pass() -> None:
    # A shorter interval still under the budget: 16 bytes every 19.3 s, 2,984 bytes/hour.
    tight = {"ping_interval": 19.3, "ping_timeout": 5, "close_timeout": 5}
    assert "29.290 s" in lesson04.keepalive_budget(tight, ONLY_ANSWERS).text
    assert lesson04.keepalive_budget(tight, ONLY_ANSWERS).passed
    assert lesson04.keepalive_budget(Side(20, 5, 5), Side(None, None)).passed
    assert lesson04.keepalive_budget(keepalive_stack(20, 5, 5, client_pings=False)).passed
    assert lesson04.keepalive_budget({"ping_interval": 20.0, **ANSWER}, ONLY_ANSWERS).passed


def test_the_defaults_are_too_slow_and_the_hint_names_close_timeout() -> None:
    feedback = lesson04.keepalive_budget(DEFAULTS, DEFAULTS)
    assert not feedback.passed
    assert feedback.text.startswith(
        "the server learns within 49.990 s at worst, with 5,760 heartbeat bytes per hour. "
        "At worst the server learns ping_interval + ping_timeout + close_timeout"
    )
    assert "close_timeout counts too" in feedback.text
    # An empty dict keeps websockets' defaults, as serve() and connect() do.
    assert lesson04.keepalive_budget({}, {}).text == feedback.text
    assert lesson04.keepalive_budget(STACKS["websockets"]).text == feedback.text
    # 30.010 s: just over, by the 20 ms of a close_timeout of 5.02 s.
    late = {**ANSWER, "close_timeout": 5.02}
    assert "within 30.010 s" in lesson04.keepalive_budget(late, ONLY_ANSWERS).text


def test_over_the_budget_the_hint_depends_on_who_pings() -> None:
    both = lesson04.keepalive_budget(ANSWER, {})
    assert not both.passed
    assert both.text.startswith("the server learns within 29.990 s at worst, with 5,760")
    assert "Which side has to ping" in both.text
    often = lesson04.keepalive_budget({**ANSWER, "ping_interval": 10}, ONLY_ANSWERS)
    assert not often.passed
    assert often.text.startswith("the server learns within 19.990 s at worst, with 5,760")
    assert "16 bytes with headers" in often.text


def test_a_server_that_cannot_notice_gets_a_hint() -> None:
    silent = lesson04.keepalive_budget(ONLY_ANSWERS, DEFAULTS)
    assert silent.text.startswith("the server never learns, with 2,880 heartbeat bytes")
    assert "only the server's own pings can reveal it" in silent.text
    patient = lesson04.keepalive_budget({"ping_timeout": None}, ONLY_ANSWERS)
    assert "waits for a pong for ever" in patient.text
    assert not silent.passed and not patient.passed


@pytest.mark.parametrize(
    ("server", "client", "hint"),
    [
        ({"ping_intervl": 20}, {}, "only ping_interval, ping_timeout and close_timeout matter"),
        ({"ping_interval": "20"}, {}, "server_options: ping_interval must be a finite number"),
        (ANSWER, {"close_timeout": -1}, "client_options: close_timeout must be > 0 seconds"),
        (ANSWER, None, "pass the options of both sides"),
        (None, None, "pass the options of both sides"),
        ((20, 5, 5), {}, "give server_options as a dict of websockets' keyword arguments"),
        (ANSWER, [None], "give client_options as a dict"),
        (
            Side(None, None, 10, Heartbeat(silence=25)),
            {},
            "leave application heartbeats out",
        ),
        ({"ping_interval": 0.001}, {}, "57,600,000 bytes per hour, far over the budget"),
        (ANSWER, {"ping_interval": 0.5}, "the client pings every 0.5 s"),
        ({**ANSWER, "ping_timeout": 1e9}, {}, "ping_timeout of 1e+09 s is far beyond the 30 s"),
    ],
)
def test_answers_that_cannot_be_measured_get_a_hint_without_raising(
    server: object, client: object, hint: str
) -> None:
    feedback = lesson04.keepalive_budget(server, client)
    assert not feedback.passed
    assert hint in feedback.text


def test_a_whole_stack_with_application_heartbeats_is_refused() -> None:
    feedback = lesson04.keepalive_budget(STACKS["SignalR"])
    assert not feedback.passed and "application heartbeats" in feedback.text
    stack = Stack("x", Side(20, 5, 5), Side(None, None))
    assert lesson04.keepalive_budget(stack).passed


# Exercise 2: how long the server's loop may be blocked


def dropped(start: float, duration: float) -> bool:
    trace = run_stack(
        STACKS["websockets"],
        fault=faults.Freeze("server"),
        at=start,
        duration=duration,
        until=start + duration + 30,
    )
    return trace.first(kind="closed") is not None


def closed_event(start: float, duration: float) -> Event | None:
    trace = run_stack(
        STACKS["websockets"],
        fault=faults.Freeze("server"),
        at=start,
        duration=duration,
        until=start + duration + 30,
    )
    return trace.first(kind="closed")


def test_the_safe_freeze_is_exactly_ping_timeout_minus_a_round_trip() -> None:
    # Every instant at which a frame leaves or lands in one ping cycle, give or take a
    # microsecond: a freeze of SAFE_FREEZE never drops the client, whenever it starts.
    quiet = run_stack(STACKS["websockets"], until=61)
    instants = sorted(
        {
            round(t + nudge, 6)
            for e in quiet.filter(kind="frame", since=40)
            for t in (e.time, e.arrives)
            if t is not None
            for nudge in (-1e-6, 1e-6)
        }
    )
    assert len(instants) == 16
    assert not any(dropped(t, lesson04.SAFE_FREEZE) for t in instants)
    # A millisecond longer, from just before the client's ping lands, is too long.
    assert [t for t in instants if dropped(t, lesson04.SAFE_FREEZE + 0.001)] == [
        40.049999,
        60.049999,
    ]


def test_the_boundary_is_where_the_lesson_says_and_20_s_is_past_it() -> None:
    # Bisected: from just before a ping lands (40.049999), a freeze ending before 60.03 is
    # survived (the pong lands before 60.04, the deadline) and one ending at 60.03 is not.
    just_before = 40.05 - 1e-6
    assert not dropped(just_before, 19.9800005)
    assert dropped(just_before, 19.980001)
    for too_long in (19.99, 20.0):
        assert dropped(just_before, too_long)
        assert not lesson04.frozen_loop(dropped, too_long).passed


@pytest.mark.parametrize("answer", [19.98, 19.979, 19.981])
def test_right_answers_pass(answer: float) -> None:
    feedback = lesson04.frozen_loop(dropped, answer)
    assert feedback.passed
    assert feedback.text.startswith("a freeze up to ping_timeout minus a round trip (19.98 s")


def test_an_experiment_returning_the_closed_event_or_none_is_accepted() -> None:
    assert lesson04.frozen_loop(closed_event, 19.98).passed


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (None, "your dropped() works; now write longest_safe_freeze, in seconds"),
        ("20", "your dropped() works; now write longest_safe_freeze"),
        (True, "your dropped() works; now write longest_safe_freeze"),
        (float("nan"), "your dropped() works; now write longest_safe_freeze"),
        (0, "a number of seconds > 0"),
        (19, "a freeze of 19 s is safe, but the loop can be blocked longer"),
        (19.9, "You are close: in virtual time the limit is exact"),
        (19.99, "a freeze of 19.99 s can drop the client"),
        (20, "a freeze of 20 s can drop the client"),
        (25, "a freeze of 25 s can drop the client"),
        (20.01, "a freeze of 20.01 s can drop the client"),
        (float("inf"), "a freeze of inf s can drop the client"),
    ],
)
def test_wrong_or_missing_answers_get_a_hint(answer: object, hint: str) -> None:
    feedback = lesson04.frozen_loop(dropped, answer)
    assert not feedback.passed
    assert hint in feedback.text
    assert "19.98" not in feedback.text  # the hint never gives the answer away


def unfinished(start: float, duration: float) -> None:
    """The starting point: a body of `...`."""


def always(start: float, duration: float) -> bool:
    return True


def never(start: float, duration: float) -> bool:
    return False


def breaks(start: float, duration: float) -> bool:
    raise RuntimeError("oops")


async def asynchronous(start: float, duration: float) -> bool:
    return True


def stops_at_the_thaw(start: float, duration: float) -> bool:
    """A learner's experiment that runs only until the freeze ends, before the close."""
    trace = run_stack(
        STACKS["websockets"],
        fault=faults.Freeze("server"),
        at=start,
        duration=duration,
        until=start + duration,
    )
    return trace.first(kind="closed") is not None


def test_an_experiment_that_stops_at_the_thaw_is_told_to_run_longer() -> None:
    # The client gives up at 60.04, during the freeze; the thawed server answers its CLOSE
    # at 65 s, and the connection closes at 65.01: after a run until 65 s ends.
    feedback = lesson04.frozen_loop(stops_at_the_thaw, 19.98)
    assert not feedback.passed
    assert feedback.text == (
        "dropped(40, 25) returned False, which is not what happens in that run: the client "
        "is dropped, and its connection closes at t = 65.010 s, after the freeze ends at "
        "65 s. If your simulation stops when the freeze ends (until=start + duration), the "
        "close has not happened yet: let it run a while longer (until=start + duration + "
        "30, say), then look at its trace for a `closed` event."
    )
    # A run long enough for the close passes.
    assert lesson04.frozen_loop(dropped, 19.98).passed


def test_the_learner_experiment_is_checked_before_the_answer() -> None:
    assert "returns None: complete it" in lesson04.frozen_loop(unfinished, 19.98).text
    assert lesson04.frozen_loop(always, 19.98).text.startswith(
        "dropped(40, 19) returned True, which is not what happens in that run"
    )
    assert lesson04.frozen_loop(never, 19.98).text.startswith(
        "dropped(40, 25) returned False, which is not"
    )
    assert lesson04.frozen_loop(always, 19.98).text.endswith(
        "look at its trace for a `closed` event."
    )
    assert "dropped(40, 19) failed: RuntimeError('oops')" in lesson04.frozen_loop(breaks, 20).text
    assert "not `async def`" in lesson04.frozen_loop(asynchronous, 20).text
    assert "without calling it; got 3" in lesson04.frozen_loop(3, 20).text  # type: ignore[arg-type]
    # A call instead of the function: the coroutine is closed, never left un-awaited.
    assert "without calling it" in lesson04.frozen_loop(asynchronous(40, 25), 20).text  # type: ignore[arg-type]
    for bad in (unfinished, always, never, breaks, asynchronous):
        assert not lesson04.frozen_loop(bad, 19.98).passed  # type: ignore[arg-type]


# Exercise 3: TCP keepalive within 30 s, 180 probes per hour, a lost probe survived


def test_the_lesson_answer_for_tcp_keepalive_passes_with_its_measurements() -> None:
    feedback = lesson04.tcp_keepalive(TcpKeepalive(idle=20, interval=5, count=2))
    assert feedback.passed
    assert feedback.text == (
        "the client learns within 30.010 s at worst, with 179.75 probes per hour; a lost probe "
        "is made up by the next one. The silence (20 + 2 × 5 = 30 s) starts when the server's "
        "last answer arrives, 10 ms after it left."
    )


@pytest.mark.parametrize(
    "answer",
    [
        TcpKeepalive(20, 2, 5),
        TcpKeepalive(20, 1, 10),
        TcpKeepalive(24, 3, 2),
        TcpKeepalive(28, 1, 2),
        {"idle": 20, "interval": 5, "count": 2},
    ],
)
def test_other_right_tcp_keepalives_pass(answer: object) -> None:
    feedback = lesson04.tcp_keepalive(answer)
    assert feedback.passed
    assert "within 30.010 s at worst" in feedback.text


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        # Linux's defaults: the starting point.
        (
            TcpKeepalive(),
            "the client learns within 7875.010 s at worst, with 0.5 probes per hour. At worst "
            "the client hears nothing for TCP_KEEPIDLE + TCP_KEEPCNT × TCP_KEEPINTVL seconds",
        ),
        # The lesson's tuned values: a minute, not 30 s.
        (TcpKeepalive(30, 10, 3), "the client learns within 60.010 s at worst"),
        # 1 s over: 21 + 2 x 5 = 31.
        (TcpKeepalive(21, 5, 2), "the client learns within 31.010 s at worst"),
        # Soon enough, but too many probes: every 19 s.
        (TcpKeepalive(19, 5, 2), "with 189.25 probes per hour, over 180. Each answer starts"),
        (TcpKeepalive(1, 1, 2), "with 3,529.5 probes per hour, over 180"),
        # One probe only: a lost one ends a healthy connection.
        (TcpKeepalive(20, 10, 1), "but a single lost probe ends a healthy connection"),
        (TcpKeepalive(29, 1, 1), "but a single lost probe ends a healthy connection"),
    ],
)
def test_wrong_tcp_keepalives_get_a_hint(answer: TcpKeepalive, hint: str) -> None:
    feedback = lesson04.tcp_keepalive(answer)
    assert not feedback.passed
    assert hint in feedback.text


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (None, "give keepalive as TcpKeepalive(idle=..., interval=..., count=...)"),
        ((20, 5, 2), "give keepalive as TcpKeepalive("),
        ({"idle": 20, "intvl": 5}, "only idle, interval and count set TCP keepalive here"),
        ({"idle": 0}, "idle must be an integer from 1 to 32767, got 0 (Linux's range"),
        ({"count": 2.5}, "count must be an integer from 1 to 127, got 2.5"),
    ],
)
def test_malformed_tcp_keepalives_get_a_hint_without_raising(answer: object, hint: str) -> None:
    feedback = lesson04.tcp_keepalive(answer)
    assert not feedback.passed
    assert hint in feedback.text
