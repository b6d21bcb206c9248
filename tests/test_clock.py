from __future__ import annotations

import asyncio

import pytest

from wssim.core.clock import VirtualClockLoop


@pytest.fixture
def loop():
    loop = VirtualClockLoop()
    yield loop
    loop.close()


def test_time_starts_at_zero_and_jumps_to_the_next_timer(loop: VirtualClockLoop) -> None:
    seen = []

    async def sleeper() -> None:
        await asyncio.sleep(3600)
        seen.append(loop.time())
        await asyncio.sleep(0.25)
        seen.append(loop.time())

    assert loop.time() == 0.0
    loop.run_until_complete(sleeper())
    assert seen == [3600.0, 3600.25]


def test_many_small_steps_add_up_exactly(loop: VirtualClockLoop) -> None:
    async def ticks() -> float:
        for _ in range(1000):
            await asyncio.sleep(0.001)
        return loop.time()

    assert loop.run_until_complete(ticks()) == 1.0


def test_run_until_stops_exactly_at_the_deadline(loop: VirtualClockLoop) -> None:
    fired = []
    loop.call_at(5.0, fired.append, "at 5")
    loop.call_at(5.0 + 1e-6, fired.append, "just after 5")
    loop.run_until(5.0)
    assert loop.time() == 5.0
    assert fired == ["at 5"]
    assert not loop.idle


def test_run_until_includes_what_happens_at_the_deadline_itself(loop: VirtualClockLoop) -> None:
    done = []

    async def wake_at_two() -> None:
        await asyncio.sleep(2)
        done.append(loop.time())

    task = loop.create_task(wake_at_two())
    loop.run_until(2.0)
    assert done == [2.0]
    assert task.done()


def test_run_until_moves_the_clock_even_when_idle(loop: VirtualClockLoop) -> None:
    loop.run_until(42.0)
    assert loop.time() == 42.0
    assert loop.idle


def test_run_without_deadline_ends_when_nothing_can_happen(loop: VirtualClockLoop) -> None:
    never: asyncio.Future[None] = loop.create_future()

    async def waits_forever() -> None:
        await asyncio.sleep(10)
        await never

    task = loop.create_task(waits_forever())
    loop.run_until(None)
    assert loop.idle
    assert loop.time() == 10.0
    assert not task.done()
    task.cancel()
    loop.run_until(None)
    assert task.cancelled()


def test_run_until_in_the_past_is_refused(loop: VirtualClockLoop) -> None:
    loop.run_until(3.0)
    with pytest.raises(ValueError, match=r"until=1.0 is in the past.*t=3 s"):
        loop.run_until(1.0)
