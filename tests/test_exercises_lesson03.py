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

# Exercise 1: the storm of section 3, judged at the lesson's scale (1,000 clients)

SOLUTION_SEEDS = (1, 5)  # of seeds 1-5, seed 5 gives the solution the most 503s (10)


def solution() -> backoff.Backoff:
    """The lesson's answer: full jitter with a cap of 20 s."""
    return backoff.full_jitter(base=1, cap=20)


@pytest.fixture(scope="module")
def solved() -> dict[int, StormResult]:
    """The lesson's answer, run on several seeds (a few seconds each)."""
    return {
        seed: storm.storm(solution(), **{**lesson03.HERD, "seed": seed}) for seed in SOLUTION_SEEDS
    }


@pytest.fixture(scope="module")
def gentle(solved: dict[int, StormResult]) -> StormResult:
    return solved[1]


def test_the_solution_passes_whatever_the_seed(solved: dict[int, StormResult]) -> None:
    for seed, result in solved.items():
        feedback = lesson03.gentle_herd(result)
        assert feedback.passed, (seed, feedback.text)
        assert result.refused_503 <= lesson03.REFUSED_AT_MOST // 2, seed  # with room to spare
        assert result.all_back is not None and result.all_back <= lesson03.BACK_WITHIN - 5, seed
    assert lesson03.gentle_herd(solved[1]).text == (
        "0 attempts refused with 503 (at most 50), every client back 19.6 s after the restart "
        "(half of them after 4.9 s), at most 126 attempts in a second. The cap bounds the wait, "
        "and a window well over clients / rate (10 s) keeps the returning clients under the "
        "server's admission rate."
    )


@pytest.mark.parametrize(
    ("strategy", "seed", "hint"),
    [
        # The lesson's full jitter: refuses nobody, but its tail is long.
        (backoff.full_jitter(base=1, cap=60), 2, "the last client came back 5"),
        # Too short a cap: the clients come back faster than the server admits them.
        (backoff.full_jitter(base=1, cap=5), 3, "attempts were refused with 503, more than 50"),
        # A narrow window of its own: delays between cap/2 and cap.
        (backoff.equal_jitter(base=1, cap=20), 1, "303 attempts were refused with 503"),
        # (No jitter at all: test_a_strategy_instead_of_a_result_runs_the_storm, at 100.)
    ],
    ids=["long tail", "short cap", "equal jitter"],
)
def test_typical_wrong_answers_get_the_right_hint(
    strategy: backoff.Backoff, seed: int, hint: str
) -> None:
    result = storm.storm(strategy, **{**lesson03.HERD, "seed": seed})
    feedback = lesson03.gentle_herd(result)
    assert not feedback.passed
    assert hint in feedback.text, feedback.text


def test_made_up_results_get_the_hint_of_what_fails(gentle: StormResult) -> None:
    refused = lesson03.gentle_herd(replace(gentle, refused_503=51))
    assert not refused.passed and "51 attempts were refused with 503" in refused.text
    assert lesson03.gentle_herd(replace(gentle, refused_503=50)).passed
    late = lesson03.gentle_herd(replace(gentle, all_back=30.01))
    assert not late.passed and "came back 30.0 s after the restart" in late.text
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
    good = lesson03.gentle_herd(backoff.full_jitter(base=1, cap=20))
    assert good.passed, good.text
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
