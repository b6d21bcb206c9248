"""Lesson 03's checks: right answers pass, wrong or missing ones get a hint, nothing raises."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from wssim.course.exercises import lesson03
from wssim.lab import storm
from wssim.lab.storm import StormResult
from wssim.toolkit import backoff

URI = "ws://server:8765"

# Exercise 1: the storm of section 3


@pytest.fixture(scope="module")
def gentle() -> StormResult:
    """The lesson's answer, run once: full jitter with a base of 4 s (a few seconds)."""
    return storm.storm(backoff.full_jitter(base=4, cap=60), **lesson03.HERD)


def test_a_storm_under_the_rate_passes_and_says_what_it_cost(gentle: StormResult) -> None:
    feedback = lesson03.gentle_herd(gentle)
    assert feedback.passed
    assert feedback.text == (
        "at most 97 attempts per second reached the restarted server (0 refused with 503). "
        "The cost is the wait: half the clients were back after 6.9 s, the last after 55.5 s."
    )


def test_a_storm_over_the_rate_gets_a_hint(gentle: StormResult) -> None:
    over = lesson03.gentle_herd(replace(gentle, peak_rate=122))
    assert not over.passed
    assert "still brought 122 attempts, more than the 100 the server admits" in over.text
    lockstep = lesson03.gentle_herd(replace(gentle, peak_rate=1000))
    assert not lockstep.passed and "within the same second" in lockstep.text
    slow = lesson03.gentle_herd(replace(gentle, all_back=None, longest_outage=None))
    assert not slow.passed and "15 minutes after the restart" in slow.text


def test_another_storm_is_not_the_exercise(gentle: StormResult) -> None:
    for other in (replace(gentle, clients=100), replace(gentle, crash_at=30, restart_at=40)):
        feedback = lesson03.gentle_herd(other)
        assert not feedback.passed and "not the storm of the exercise" in feedback.text


def test_no_answer_or_the_wrong_kind_of_answer_gets_a_hint() -> None:
    for nothing in (None, ...):
        assert "choose a strategy of wssim.toolkit.backoff" in lesson03.gentle_herd(nothing).text
    assert "(a StormResult), got 'full jitter'" in lesson03.gentle_herd("full jitter").text
    factory = lesson03.gentle_herd(backoff.full_jitter)
    assert not factory.passed and "backoff.full_jitter(...)" in factory.text


def test_a_strategy_that_floods_the_network_is_not_run() -> None:
    feedback = lesson03.gentle_herd(backoff.constant(0.1))
    assert not feedback.passed
    assert "retry more than 20 times during the 10 s outage" in feedback.text


@pytest.fixture
def small_herd(monkeypatch: pytest.MonkeyPatch) -> None:
    """A storm of 100 clients for the checks that run one: the same code, a tenth of the time."""
    monkeypatch.setitem(lesson03.HERD, "clients", 100)
    monkeypatch.setitem(lesson03.HERD, "rate", 20.0)


@pytest.mark.usefixtures("small_herd")
def test_a_strategy_instead_of_a_result_runs_the_storm() -> None:
    good = lesson03.gentle_herd(backoff.full_jitter(base=4, cap=60))
    assert good.passed and good.text.startswith("at most 17 attempts per second")
    over = lesson03.gentle_herd(backoff.equal_jitter(base=1, cap=60))
    assert not over.passed
    assert over.text.startswith(
        "the busiest second, 2-3 s after the restart, still brought 29 attempts, more than the "
        "20 the server admits."
    )
    lockstep = lesson03.gentle_herd(backoff.exponential(base=1, cap=60))
    assert not lockstep.passed
    assert "100 of the 100 clients reached the server within the same second" in lockstep.text


def test_a_strategy_that_is_not_a_generator_of_delays_gets_a_hint() -> None:
    not_one = lesson03.gentle_herd(lambda: 5)
    assert not not_one.passed
    assert "calling it and taking its delays failed: TypeError(" in not_one.text
    words = lesson03.gentle_herd(lambda: iter(["soon"] * 30))
    assert "its delays must be numbers of seconds >= 0, got 'soon'" in words.text

    def three_delays() -> Iterator[float]:
        yield from (1.0, 2.0, 4.0)

    assert "stops after 3 delays" in lesson03.gentle_herd(three_delays).text


def test_sampling_a_strategy_leaves_the_global_random_generator_alone() -> None:
    random.seed(7)
    expected = random.random()
    random.seed(7)
    lesson03.gentle_herd(lambda: (random.uniform(0, 0.1) for _ in range(100)))
    assert random.random() == expected


@pytest.mark.usefixtures("small_herd")
def test_a_strategy_that_breaks_the_clients_in_the_storm_gets_a_hint() -> None:
    calls = 0

    def breaks_later() -> Iterator[float]:
        # Fine the first time (the check samples it), broken in the clients' loops.
        nonlocal calls
        calls += 1
        if calls > 1:
            raise RuntimeError("no more delays")
        yield from itertools.repeat(2.0)

    feedback = lesson03.gentle_herd(breaks_later)
    assert not feedback.passed
    assert feedback.text == "the clients failed with your strategy: RuntimeError('no more delays')"


# Exercise 2: shedding with 1013


def waiting(wait: Callable[[], float] | None) -> Callable[[], Coroutine[Any, Any, None]]:
    """A client of the experiment: websockets' loop, and ``wait()`` seconds after a 1013."""

    async def client() -> None:
        delays = backoff.full_jitter()
        async for websocket in connect(URI, compression=None, reconnect_delays=delays):
            try:
                await websocket.recv()
            except ConnectionClosed as exc:
                if wait is not None and exc.rcvd is not None and exc.rcvd.code == 1013:
                    await asyncio.sleep(wait())

    return client


def test_a_random_wait_after_1013_passes() -> None:
    feedback = lesson03.patient(waiting(lambda: random.uniform(0, 10)))
    assert feedback.passed
    assert feedback.text == (
        "the 50 shed clients came back with at most 9 attempts in any second, 0 refused with "
        "503; the last was back at t = 29.88 s."
    )
    # Another reasonable wait: exponentially distributed, 5 s on average.
    assert lesson03.patient(waiting(lambda: random.expovariate(1 / 5))).passed


def test_no_wait_the_same_wait_or_too_short_a_wait_gets_a_hint() -> None:
    at_once = lesson03.patient(waiting(None))
    assert not at_once.passed
    assert "brought 96 attempts" in at_once.text and "90 were refused with 503" in at_once.text
    assert "they came back at once" in at_once.text
    same = lesson03.patient(waiting(lambda: 5.0))
    assert not same.passed and "all about the same time (5.0 s)" in same.text
    short = lesson03.patient(waiting(lambda: random.uniform(0, 3)))
    assert not short.passed and "spread them over 2.9 s only" in short.text


def test_too_long_a_wait_or_giving_up_gets_a_hint() -> None:
    long = lesson03.patient(waiting(lambda: random.uniform(0, 60)))
    assert not long.passed
    assert "20 of the 50 shed clients were still disconnected at t = 60 s" in long.text

    async def gives_up() -> None:
        async for websocket in connect(URI, compression=None):
            try:
                await websocket.recv()
            except ConnectionClosed:
                return

    quits = lesson03.patient(gives_up)
    assert not quits.passed and "50 of the 50 shed clients stopped for good" in quits.text


def test_a_client_that_does_not_stay_connected_or_fails_gets_a_hint() -> None:
    async def idle() -> None:
        pass

    async def crashes() -> None:
        async with connect(URI):
            raise RuntimeError("oops")

    assert "could shed only 0 of 50 connections" in lesson03.patient(idle).text
    assert lesson03.patient(crashes).text == "your client failed: RuntimeError('oops')"


def test_something_else_than_a_client_gets_a_hint() -> None:
    async def numbered(i: int) -> None:
        pass

    async def client() -> None:
        pass

    assert "without calling it" in lesson03.patient(client()).text
    assert "an `async def` function, got None" in lesson03.patient(None).text
    assert "<lambda> must be an `async def` function" in lesson03.patient(lambda: None).text
    assert "numbered() must take no arguments" in lesson03.patient(numbered).text
