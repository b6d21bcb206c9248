"""Lesson 02's checks: right answers pass, wrong ones get a hint, nothing raises."""

from __future__ import annotations

import pytest

from wssim import faults
from wssim.course import causes
from wssim.course.exercises import lesson02
from wssim.lab.diagnose import ClientPlan, Injection, ServerPlan, experiment


def test_router() -> None:
    router = causes.idle_timeout(
        timeout=10, action="drop", ping_interval=20, push_at=None, until=120
    )
    assert lesson02.router(router, 50.04).passed
    assert lesson02.router(router, 50).passed  # within 0.1 s
    assert "your prediction" in lesson02.router(router, None).text
    assert "follow the first ping" in lesson02.router(router, 30).text
    # The report prints the delay after the cause (40.01 s): not the virtual time asked for.
    assert router.client.after == 40.01
    for delay in (40.01, 40):
        hint = lesson02.router(router, delay).text
        assert "is the delay after the cause" in hint
        assert "write the virtual time t at which the client knows" in hint
    assert "not the experiment" in lesson02.router(causes.partition(), 50).text
    assert "pass what" in lesson02.router("trace", 50).text
    slow = causes.idle_timeout(timeout=15, action="drop", ping_interval=20, push_at=None, until=120)
    assert "set timeout=10" in lesson02.router(slow, 50.04).text


# The limit is 33.11 s (33.11 survives, 33.12 does not): right answers are within 0.1 s below it.
@pytest.mark.parametrize("answer", [33.1, 33.05, 33.02, 33.11])
def test_longest_partition_right(answer: float) -> None:
    assert lesson02.longest_partition(answer).passed


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (None, "answer with a duration"),
        ("31.6", "answer with a duration"),
        (-1, "answer with a duration"),
        (35, "already closes the connection"),
        (39, "already closes the connection"),
        (30, "is survived too"),
        (33.0, "a partition of 33.1 s is survived too"),
        (33.01, "a partition of 33.11 s is survived too"),
        (32.95, "a partition of 33.05 s is survived too"),
        (33.12, "already closes the connection"),
        (33.2, "already closes the connection"),
    ],
)
def test_longest_partition_wrong(answer: object, hint: str) -> None:
    feedback = lesson02.longest_partition(answer)
    assert not feedback.passed
    assert hint in feedback.text


def test_fast_keepalive() -> None:
    def cut(options: dict[str, float]) -> object:
        return experiment(
            "cut",
            client=ClientPlan(options=options),
            server=ServerPlan(options=options),
            faults=[Injection(faults.Partition("client", "server"), 1.0)],
            cause_at=1,
            until=60,
        )

    fast = {"ping_interval": 5, "ping_timeout": 5, "close_timeout": 2}  # the solution's
    solution = cut(fast)
    assert max(solution.client.after or 0, solution.server.after or 0) == 11.04
    assert lesson02.fast_keepalive(solution).passed
    # Leaving close_timeout long: 14.04 s, not "within about 12 s".
    slow_close = lesson02.fast_keepalive(cut({**fast, "close_timeout": 5}))
    assert not slow_close.passed
    assert "the slower side knew 14.04 s" in slow_close.text
    assert "close_timeout counts too" in slow_close.text
    assert "the slower side knew 49.04 s" in lesson02.fast_keepalive(cut({})).text
    assert "one side never knew" in lesson02.fast_keepalive(experiment("quiet", until=5)).text
    assert "pass what" in lesson02.fast_keepalive(None).text


def test_longest_freeze() -> None:
    # The limit is 39.02 s (39.02 survives, 39.03 does not).
    assert lesson02.longest_freeze(39).passed
    assert lesson02.longest_freeze(39.02).passed
    assert "already closes" in lesson02.longest_freeze(39.1).text
    assert "already closes" in lesson02.longest_freeze(39.03).text
    assert "a freeze of 39 s is survived too" in lesson02.longest_freeze(38.9).text
    assert "is survived too" in lesson02.longest_freeze(38.92).text
    assert "is survived too" in lesson02.longest_freeze(20).text
    assert "answer with a duration" in lesson02.longest_freeze(True).text
