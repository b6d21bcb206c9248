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
    assert "not the experiment" in lesson02.router(causes.partition(), 50).text
    assert "pass what" in lesson02.router("trace", 50).text
    slow = causes.idle_timeout(timeout=15, action="drop", ping_interval=20, push_at=None, until=120)
    assert "set timeout=10" in lesson02.router(slow, 50.04).text


@pytest.mark.parametrize("answer", [33.0, 33.1])
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

    fast = {"ping_interval": 5, "ping_timeout": 5, "close_timeout": 2}
    assert lesson02.fast_keepalive(cut(fast)).passed
    assert "the slower side knew 49.04 s" in lesson02.fast_keepalive(cut({})).text
    assert "one side never knew" in lesson02.fast_keepalive(experiment("quiet", until=5)).text
    assert "pass what" in lesson02.fast_keepalive(None).text


def test_longest_freeze() -> None:
    assert lesson02.longest_freeze(39).passed
    assert "already closes" in lesson02.longest_freeze(39.1).text
    assert "is survived too" in lesson02.longest_freeze(20).text
    assert "answer with a duration" in lesson02.longest_freeze(True).text
