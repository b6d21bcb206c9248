"""The public face: building a world, running it, its errors, and its promises."""

from __future__ import annotations

import asyncio
import gc
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

import wssim
from tests.helpers import echo_server

ROOT = Path(__file__).resolve().parent.parent


async def chatty_client(count: int = 3) -> None:
    async for ws in connect("ws://server:8765"):
        for i in range(count):
            await ws.send(f"message {i}")
            await ws.recv()
        await ws.wait_closed()  # keepalive pings happen meanwhile


def restart_scenario(seed: int) -> wssim.Trace:
    with wssim.Simulation(seed=seed, latency=0.010, jitter=0.005) as sim:
        server = sim.host("server")
        server.spawn(echo_server())
        for i in range(4):
            sim.host(f"client{i}").spawn(chatty_client())

        def reboot() -> None:
            server.restart()
            server.spawn(echo_server())

        sim.at(20, server.crash)
        sim.at(25, reboot)
        return sim.run(until=90)


def test_the_same_seed_gives_the_same_trace() -> None:
    first, second = restart_scenario(1), restart_scenario(1)
    assert str(first.table(digits=6)) == str(second.table(digits=6))
    assert first == second


def test_another_seed_gives_another_trace() -> None:
    assert restart_scenario(1) != restart_scenario(2)


def test_the_trace_is_identical_across_processes_and_hash_seeds() -> None:
    script = textwrap.dedent(
        """
        from tests.test_simulation import restart_scenario
        print(restart_scenario(7).table(digits=6))
        """
    )
    outputs = []
    for hash_seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run(
            [sys.executable, "-W", "error", "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1] == outputs[2]
    assert "reconnecting in" in outputs[0]


def test_the_callers_random_state_is_left_alone() -> None:
    random.seed(1234)
    expected = random.Random(1234).random()
    restart_scenario(3)
    assert random.random() == expected


def test_run_continues_where_the_last_run_stopped() -> None:
    with wssim.Simulation() as sim:
        sim.host("server").spawn(echo_server())
        sim.host("client").spawn(chatty_client(1))
        first = sim.run(until=10)
        assert sim.now == 10
        second = sim.run(until=40)
    assert list(second[: len(first)]) == list(first)
    assert len(second) > len(first)


def test_run_without_until_ends_when_the_world_is_idle() -> None:
    async def short_lived() -> None:
        await asyncio.sleep(12.5)

    with wssim.Simulation() as sim:
        sim.host("a").spawn(short_lived())
        sim.run()
        assert sim.idle
        assert sim.now == 12.5


def test_sim_at_calls_functions_at_virtual_times() -> None:
    calls = []
    with wssim.Simulation() as sim:
        sim.at(3, calls.append, "three")
        sim.at(1.5, calls.append, "one and a half")
        sim.after(2, sim.mark, "two")
        trace = sim.run(until=5)
    assert calls == ["one and a half", "three"]
    assert [(e.time, e.kind, e.text) for e in trace] == [(2.0, "mark", "two")]


def test_run_works_inside_a_running_event_loop_like_a_jupyter_kernel() -> None:
    async def kernel_cell() -> wssim.Trace:
        # A kernel's loop is running in this thread, as when a notebook cell runs.
        with wssim.Simulation() as sim:
            sim.host("server").spawn(echo_server())
            sim.host("client").spawn(chatty_client(1))
            return sim.run(until=5)

    trace = asyncio.run(kernel_cell())
    assert trace.first(kind="log", contains="connection is OPEN").time == 0.03


def test_an_uncaught_exception_in_a_process_is_raised_by_run() -> None:
    async def buggy() -> None:
        await asyncio.sleep(4)
        raise KeyError("oops")

    with wssim.Simulation() as sim:
        sim.host("client").spawn(buggy(), name="buggy")
        with pytest.raises(wssim.ProcessFailed, match=r"'buggy' on host 'client' failed at t=4 s"):
            sim.run(until=10)
        assert sim.trace.last(kind="host").text == "process buggy failed: KeyError: 'oops'"


def test_code_outside_a_host_cannot_open_connections() -> None:
    outside: list[asyncio.Task[None]] = []
    errors = []

    async def nowhere() -> None:
        await connect("ws://server:8765")

    async def watcher() -> None:
        await asyncio.sleep(2)
        try:
            await outside[0]
        except RuntimeError as exc:
            errors.append(str(exc))

    with wssim.Simulation() as sim:
        sim.host("server").spawn(echo_server())
        sim.host("client").spawn(watcher())
        sim.at(1, lambda: outside.append(asyncio.ensure_future(nowhere())))
        sim.run(until=3)
    assert errors == [
        "create_connection must run on a simulated host: start the coroutine with host.spawn()"
    ]


def test_an_exception_in_a_scheduled_call_is_raised_by_run() -> None:
    def broken() -> None:
        raise ZeroDivisionError("division by zero")

    with wssim.Simulation() as sim:
        sim.at(2, broken)
        with pytest.raises(wssim.ProcessFailed, match=r"call broken\(\) at t=2 s failed"):
            sim.run(until=5)


def test_calls_scheduled_after_the_end_never_run() -> None:
    calls = []
    with wssim.Simulation() as sim:
        sim.at(100, calls.append, "too late")
        sim.run(until=50)
    assert calls == []


def test_close_leaves_no_task_behind() -> None:
    sim = wssim.Simulation()
    sim.host("server").spawn(echo_server())
    sim.host("client").spawn(chatty_client())
    sim.run(until=5)
    loop = sim._world.loop
    sim.close()
    assert sim.closed
    assert loop.is_closed()
    sim.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        sim.run(until=10)


def test_a_forgotten_simulation_is_closed_when_collected() -> None:
    sim = wssim.Simulation()
    sim.host("server").spawn(echo_server())
    sim.host("client").spawn(chatty_client())
    sim.run(until=5)
    loop = sim._world.loop
    del sim
    gc.collect()
    assert loop.is_closed()


# Bad input: clear errors naming the parameter.


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"latency": -0.001}, "latency must be a number of seconds from 0 to 86400"),
        ({"latency": float("nan")}, "latency must be a number of seconds from 0 to 86400"),
        ({"latency": 1e300}, "latency must be a number of seconds from 0 to 86400, got 1e"),
        ({"jitter": -1}, "jitter must be a number of seconds from 0 to 86400"),
        ({"seed": "one"}, "seed must be an integer"),
    ],
)
def test_bad_simulation_parameters_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wssim.Simulation(**kwargs)


def test_bad_times_are_refused() -> None:
    with wssim.Simulation() as sim:
        with pytest.raises(ValueError, match="t must be >= 0 seconds"):
            sim.at(-1, print)
        with pytest.raises(ValueError, match="t must be a finite number"):
            sim.at(float("inf"), print)
        with pytest.raises(ValueError, match="delay must be >= 0"):
            sim.after(-2, print)
        with pytest.raises(ValueError, match="until must be >= 0"):
            sim.run(until=-5)
        sim.run(until=10)
        with pytest.raises(ValueError, match=r"t=5 is in the past: the simulation is at t=10"):
            sim.at(5, print)
        with pytest.raises(ValueError, match=r"until=3 is before now.*t=10 s"):
            sim.run(until=3)
        with pytest.raises(TypeError, match="fn must be callable"):
            sim.at(20, "not a function")


def test_faults_naming_unknown_hosts_are_refused() -> None:
    with wssim.Simulation() as sim:
        sim.host("client")
        with pytest.raises(ValueError, match=r"b='servr' is not a host.*'client'"):
            sim.partition("client", "servr")
        with pytest.raises(ValueError, match=r"a='x' is not a host"):
            sim.heal("x", "client")
        with pytest.raises(ValueError, match="two different hosts"):
            sim.partition("client", "client")
        with pytest.raises(ValueError, match=r"a='nope' is not a host"):
            sim.link("nope", "client", latency=1)


def test_a_host_has_no_link_or_partition_with_itself() -> None:
    with wssim.Simulation() as sim:
        sim.host("client")
        for call in (sim.heal, sim.partition, sim.link):
            with pytest.raises(ValueError, match="two different hosts, got 'client' twice"):
                call("client", "client")
        assert sim.trace.filter(kind="fault") == wssim.Trace([])


def test_partition_and_heal_are_injections() -> None:
    with wssim.Simulation() as sim:
        sim.host("client")
        sim.host("server")
        with pytest.raises(ValueError, match="no partition between 'client' and 'server'"):
            sim.heal("client", "server")
        sim.partition("client", "server")
        with pytest.raises(ValueError, match="overlaps"):
            sim.partition("server", "client")
        sim.run(until=2)
        sim.heal("server", "client")
        sim.run(until=3)
        sim.partition("client", "server")  # a new one, after the first ended
        trace = sim.run(until=4)
    assert [(e.time, e.text) for e in trace.filter(kind="fault")] == [
        (0.0, "partition client ↔ server"),
        (2.0, "heal client ↔ server"),
        (3.0, "partition client ↔ server"),
    ]


def test_a_partition_healed_early_does_not_heal_again_at_its_end() -> None:
    with wssim.Simulation() as sim:
        sim.host("client")
        sim.host("server")
        sim.inject(wssim.faults.Partition("client", "server"), at=1, duration=10)
        sim.at(5, sim.heal, "client", "server")
        trace = sim.run(until=20)
    assert [(e.time, e.text) for e in trace.filter(kind="fault")] == [
        (1.0, "partition client ↔ server"),
        (5.0, "heal client ↔ server"),
    ]


@pytest.mark.parametrize(
    "name", ["", "localhost", 42, "my server", "server:8765", "a/b", "two\nlines", "-x", "x" * 64]
)
def test_bad_host_names_are_refused(name: object) -> None:
    with (
        wssim.Simulation() as sim,
        pytest.raises(ValueError, match="name must be a host name other than localhost"),
    ):
        sim.host(name)  # type: ignore[arg-type]


def test_host_names_may_have_dots_dashes_and_underscores() -> None:
    with wssim.Simulation() as sim:
        names = ["client-1", "lb.example", "edge_2", "A" * 63]
        assert [sim.host(name).name for name in names] == names


def test_links_have_their_own_latency() -> None:
    with wssim.Simulation(latency=0.010) as sim:
        sim.host("server").spawn(echo_server())
        sim.host("far").spawn(chatty_client(1))
        sim.host("near").spawn(chatty_client(1))
        assert sim.link("server", "far", latency=0.100) == wssim.Link(0.100, 0.0)
        assert sim.link("server", "near") == wssim.Link(0.010, 0.0)
        trace = sim.run(until=5)
    opened = {e.host: e.time for e in trace.filter(kind="log", side="client", contains="is OPEN")}
    assert opened == {"far": 0.4, "near": 0.04}


def test_a_kernel_and_a_script_give_the_same_trace() -> None:
    async def kernel_cell() -> wssim.Trace:
        return restart_scenario(5)  # runs in a worker thread: a loop is running here

    assert asyncio.run(kernel_cell()) == restart_scenario(5)


def test_the_callers_garbage_collector_settings_are_left_alone() -> None:
    import gc

    seen = []

    async def look() -> None:
        seen.append(gc.get_threshold())

    before = gc.get_threshold()
    with wssim.Simulation() as sim:
        sim.host("a").spawn(look())
        sim.run(until=1)
    assert gc.get_threshold() == before
    assert seen[0][0] >= 20_000


def test_a_connection_with_its_own_logger_keeps_it(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    async def client() -> None:
        mine = logging.getLogger("my.app.websocket")
        async with connect("ws://server:8765", logger=mine) as ws:
            await ws.send("hi")
            await ws.recv()

    with caplog.at_level(logging.DEBUG, logger="my.app.websocket"), wssim.Simulation() as sim:
        sim.host("server").spawn(echo_server())
        sim.host("client").spawn(client())
        trace = sim.run(until=1)
    assert "> TEXT 'hi' [2 bytes]" in [r.getMessage() for r in caplog.records]
    assert trace.filter(kind="log", side="client", contains="TEXT") == wssim.Trace()
    assert trace.first(kind="log", side="server", contains="< TEXT").text == "< TEXT 'hi' [2 bytes]"
