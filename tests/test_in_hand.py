"""A simulation stays in the user's hands: far horizons, threads, failing tasks, misuse.

Each test here is a probe that once hung, lost work silently or failed deep inside
asyncio; each now gets a prompt, clear answer.
"""

from __future__ import annotations

import asyncio
import gc
import random
import signal
import threading

import pytest

import wssim
from tests.helpers import echo_server
from wssim import TimeStuck
from wssim.core.clock import MAX_TIME

DAY = 86_400


# Far horizons: the clock jumps straight to the next timer, however far.


def test_a_timer_beyond_2_to_the_24_seconds_runs() -> None:
    seen: list[float] = []
    with wssim.Simulation() as sim:
        sim.at(2**24, lambda: seen.append(sim.now))
        sim.run()
        assert seen == [2.0**24]
        assert sim.idle


def test_a_process_sleeps_200_days_in_one_jump() -> None:
    woke: list[float] = []

    async def sleeper() -> None:
        await asyncio.sleep(200 * DAY)
        woke.append(asyncio.get_running_loop().time())

    with wssim.Simulation() as sim:
        sim.host("client").spawn(sleeper())
        loop = sim._world.loop
        rounds = 0
        wait = loop._wait

        def counting_wait(timeout: float | None) -> None:
            nonlocal rounds
            rounds += 1
            wait(timeout)

        loop._wait = counting_wait  # type: ignore[method-assign]
        sim.run()
    assert woke == [200.0 * DAY]
    assert rounds <= 2  # one jump to the timer, one to find nothing left (not 200 days)


def test_a_freeze_of_two_hundred_days_ends() -> None:
    with wssim.Simulation() as sim:
        sim.host("server")
        sim.inject(wssim.faults.Freeze("server"), at=1, duration=2e7)
        trace = sim.run()
    assert [(e.time, e.text.split(":")[0]) for e in trace.filter(kind="fault")] == [
        (1.0, "freeze"),
        (20_000_001.0, "thaw"),
    ]


def test_horizons_past_the_end_of_virtual_time_are_refused_up_front() -> None:
    with wssim.Simulation() as sim:
        for call in (
            lambda: sim.run(until=1e300),
            lambda: sim.at(MAX_TIME * 2, print),
            lambda: sim.inject(wssim.faults.Crash("h"), at=1e12),
        ):
            sim.host("h")
            with pytest.raises(ValueError, match=r"must be <= 1e\+09 seconds"):
                call()
        assert sim.run(until=MAX_TIME).end == 0.0
        assert sim.now == MAX_TIME


def test_run_without_until_stops_at_the_end_of_virtual_time() -> None:
    async def sleeper() -> None:
        await asyncio.sleep(MAX_TIME * 10)

    with wssim.Simulation() as sim:
        sim.host("client").spawn(sleeper())
        sim.run()
        assert sim.now == MAX_TIME
        assert not sim.idle


# Threads: virtual time cannot wait for them, so they are refused where they are called.


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: asyncio.get_running_loop().run_in_executor(None, sum, range(200_000)), "sum"),
        (lambda: asyncio.to_thread(sum, range(200_000)), "sum"),
    ],
)
def test_work_handed_to_a_thread_is_refused_with_the_alternative(call: object, name: str) -> None:
    async def worker() -> None:
        await call()  # type: ignore[operator]

    outcomes = set()
    for _ in range(5):
        with wssim.Simulation() as sim:
            sim.host("client").spawn(worker())
            with pytest.raises(wssim.ProcessFailed) as failed:
                sim.run()
        cause = failed.value.__cause__
        assert isinstance(cause, RuntimeError)
        assert f"run_in_executor({name})" in str(cause)
        assert "asyncio.sleep(seconds)" in str(cause)
        outcomes.add(str(failed.value))
    assert len(outcomes) == 1  # the same answer every time, never a silent loss


def test_no_thread_outlives_a_simulation() -> None:
    before = set(threading.enumerate())
    with wssim.Simulation() as sim:
        sim.host("server").spawn(echo_server())
        sim.run(until=5)
    assert set(threading.enumerate()) == before


# Failures that used to vanish or hide.


async def _boom() -> None:
    await asyncio.sleep(1)
    raise ValueError("boom")


def test_a_failing_task_that_nobody_awaits_fails_the_run() -> None:
    async def process() -> None:
        asyncio.create_task(_boom(), name="worker")  # noqa: RUF006
        await asyncio.sleep(10)

    with wssim.Simulation() as sim:
        sim.host("client").spawn(process())
        with pytest.raises(wssim.ProcessFailed) as failed:
            sim.run(until=20)
        assert str(failed.value) == (
            "task 'worker' on host 'client' failed at t=1 s: ValueError: boom"
        )
        assert isinstance(failed.value.__cause__, ValueError)
        assert sim.now == 1.0  # the run stopped at that instant
        assert sim.trace.last(kind="host").text == "task worker failed: ValueError: boom"


def test_a_failing_task_awaited_later_is_not_a_failure() -> None:
    caught: list[str] = []

    async def process() -> None:
        task = asyncio.create_task(_boom())
        await asyncio.sleep(5)  # the task fails at 1 s; its exception waits for us
        try:
            await task
        except ValueError as exc:
            caught.append(str(exc))

    with wssim.Simulation() as sim:
        sim.host("client").spawn(process())
        sim.run(until=20)
    assert caught == ["boom"]


def test_a_task_that_only_yields_stops_the_run_naming_it() -> None:
    async def spinner() -> None:
        await asyncio.sleep(2)
        while True:
            await asyncio.sleep(0)

    with wssim.Simulation() as sim:
        sim.host("client").spawn(spinner())
        with pytest.raises(TimeStuck) as stuck:
            sim.run(until=10)
        message = str(stuck.value)
        assert message.startswith("virtual time is stuck at t=2 s: 100,000 rounds")
        assert "task 'spinner'" in message
        assert "test_in_hand.py:" in message
        assert "on host 'client'" in message
        assert sim.now == 2.0


def test_user_tracebacks_start_with_the_users_code() -> None:
    async def failing() -> None:
        raise KeyError("missing")

    with wssim.Simulation() as sim:
        sim.host("client").spawn(failing())
        with pytest.raises(wssim.ProcessFailed) as failed:
            sim.run()
    cause = failed.value.__cause__
    assert isinstance(cause, KeyError)
    # No "During handling of the above exception ... no running event loop" before it.
    assert cause.__context__ is None
    assert failed.value.__context__ is None


@pytest.mark.parametrize("method", ["run", "close"])
def test_running_or_closing_from_inside_a_process_is_refused_clearly(method: str) -> None:
    async def misuse() -> None:
        getattr(sim, method)()

    with wssim.Simulation() as sim:
        sim.host("client").spawn(misuse())
        with pytest.raises(wssim.ProcessFailed) as failed:
            sim.run()
    assert str(failed.value.__cause__).startswith(
        f"sim.{method}() was called from code running inside this simulation"
    )


def test_spawn_refuses_a_coroutine_function_and_a_used_coroutine() -> None:
    with wssim.Simulation() as sim:
        host = sim.host("server")
        with pytest.raises(TypeError, match=r"did you mean echo_server\(\)\?"):
            host.spawn(echo_server)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="takes a coroutine"):
            host.spawn(42)  # type: ignore[arg-type]
        coro = echo_server()
        host.spawn(coro)
        sim.run(until=1)
        with pytest.raises(ValueError, match=r"echo_server\(\) has already run"):
            host.spawn(coro)
        assert sim.trace == sim.run(until=2)  # nothing was started


@pytest.mark.parametrize(
    ("criteria", "message"),
    [
        ({"since": "a"}, "since must be a time in seconds, got 'a'"),
        ({"until": float("nan")}, "until must be a time in seconds"),
        ({"digits": -1}, "digits must be an integer from 0 to 9, got -1"),
        ({"digits": 2.5}, "digits must be an integer from 0 to 9"),
        ({"contains": 3}, "contains must be a string"),
    ],
)
def test_bad_trace_queries_are_refused(criteria: dict[str, object], message: str) -> None:
    with wssim.Simulation() as sim:
        trace = sim.run(until=1)
    with pytest.raises(ValueError, match=message):
        trace.table(**criteria)  # type: ignore[arg-type]


# Interrupts: a KeyboardInterrupt or SystemExit out of a run ends the simulation cleanly.


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_an_interrupted_run_restores_everything_and_ends_the_simulation(
    exc: type[BaseException],
) -> None:
    async def interrupted() -> None:
        await asyncio.sleep(3)
        raise exc

    random.seed(1234)
    before_random = random.getstate()
    before_gc = gc.get_threshold()
    sim = wssim.Simulation()
    sim.host("server").spawn(echo_server())
    sim.host("client").spawn(interrupted())
    with pytest.raises(exc):
        sim.run(until=1e9)
    assert random.getstate() == before_random
    assert gc.get_threshold() == before_gc
    assert sim.closed
    assert repr(sim).endswith("interrupted at t=3 s hosts=['server', 'client']>")
    with pytest.raises(RuntimeError, match=r"interrupted at t=3 s and has ended: create a new"):
        sim.run()
    assert len(sim.trace) > 0  # the trace so far is still there
    assert not [t for t in asyncio.all_tasks(sim._world.loop) if not t.done()]


def test_ctrl_c_stops_the_run_between_two_rounds_of_the_loop() -> None:
    steps: list[str] = []

    async def presses_ctrl_c() -> None:
        await asyncio.sleep(5)
        signal.raise_signal(signal.SIGINT)  # as Ctrl-C or a kernel's stop button would
        steps.append("the callback ran to its end")  # not cut off half-way
        await asyncio.sleep(1)
        steps.append("never")

    sim = wssim.Simulation()
    sim.host("server").spawn(echo_server())
    sim.host("client").spawn(presses_ctrl_c())
    with pytest.raises(KeyboardInterrupt):
        sim.run(until=100)
    assert steps == ["the callback ran to its end"]
    assert repr(sim).endswith("interrupted at t=5 s hosts=['server', 'client']>")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
