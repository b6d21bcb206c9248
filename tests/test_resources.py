"""Resource accounting: holds, registries, tasks, series over virtual time, leak checks."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

import wssim
from wssim.toolkit import resources
from wssim.toolkit.resources import Ledger, ResourceLeak, Series


def run(*processes: object, until: float = 60) -> wssim.Trace:
    with wssim.Simulation(seed=0, latency=0.010) as sim:
        for i, process in enumerate(processes):
            sim.host(f"host{i}").spawn(process)  # type: ignore[arg-type]
        return sim.run(until=until)


def test_acquire_and_release_are_counted_at_virtual_times() -> None:
    ledger = Ledger()

    async def process() -> None:
        a = ledger.acquire("buffer", 4096, owner="c1")
        await asyncio.sleep(2)
        b = ledger.acquire("buffer", 1024)
        session = ledger.acquire("db session")
        await asyncio.sleep(3)
        a.release()
        b.release()
        await asyncio.sleep(1)
        session.release()

    run(process())
    assert ledger.kinds == ["buffer", "db session"]
    assert ledger.series("buffer").times == (0.0, 2.0, 5.0)
    assert ledger.series("buffer").values == (4096, 5120, 0)
    assert list(ledger.series("db session")) == [(0.0, 0), (2.0, 1), (6.0, 0)]
    assert ledger.series().peak == 5121
    assert ledger.held() == 0
    assert ledger.acquired("buffer") == 5120
    assert ledger.last_change == 6.0
    ledger.check()
    assert str(ledger.table()).splitlines()[2:] == [
        "buffer          5120      5120     0  5120",
        "db session         1         1     0     1",
    ]


def test_a_hold_is_a_context_manager_that_releases_on_exceptions_and_cancellation() -> None:
    ledger = Ledger()

    async def failing() -> None:
        with ledger.acquire("session"):
            await asyncio.sleep(1)
            raise ValueError("boom")

    async def cancelled() -> None:
        async with ledger.acquire("session"):
            await asyncio.sleep(100)

    async def main() -> None:
        with pytest.raises(ValueError, match="boom"):
            await failing()
        task = asyncio.create_task(cancelled())
        await asyncio.sleep(2)
        assert ledger.held("session") == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    assert [(h.acquired_at, h.released_at) for h in ledger.holds] == [(0.0, 1.0), (1.0, 3.0)]
    ledger.check()


def test_check_names_what_is_left_and_who_holds_it() -> None:
    ledger = Ledger()

    async def process() -> None:
        ledger.acquire("subscription", owner="c1")
        ledger.acquire("subscription", owner="c2").release()
        ledger.acquire("subscription", owner="c3")
        ledger.acquire("buffer", 100)

    run(process())
    with pytest.raises(ResourceLeak) as caught:
        ledger.check()
    assert str(caught.value) == "still held: subscription 2 (c1, c3); buffer 100"
    assert [h.owner for h in caught.value.holds] == ["c1", "c3", ""]
    assert ledger.by_kind() == {"subscription": 2, "buffer": 100}


def test_a_tracked_task_is_held_while_it_runs() -> None:
    ledger = Ledger()

    async def worker(seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def main() -> None:
        ledger.track(asyncio.create_task(worker(3)), owner="c1")
        forever = ledger.track(asyncio.create_task(worker(1000)), "poller")
        await asyncio.sleep(5)
        forever.cancel()

    run(main())
    assert ledger.series("task").values == (1, 0)
    assert ledger.series("task").times == (0.0, 3.0)
    assert ledger.series("poller").times == (0.0, 5.0)
    ledger.check()


def test_a_registry_counts_its_entries() -> None:
    ledger = Ledger()
    registry = ledger.registry("subscription")

    async def process() -> None:
        registry.add("alice", owner="c1")
        registry.add("alice")  # already there: nothing changes
        registry.add("bob")
        await asyncio.sleep(1)
        assert list(registry) == ["alice", "bob"]
        for name in registry:  # removing while iterating is fine
            registry.discard(name)
        registry.discard("carol")
        with pytest.raises(KeyError):
            registry.remove("carol")

    run(process())
    assert len(registry) == 0 and "alice" not in registry
    assert list(ledger.series("subscription")) == [(0.0, 2), (1.0, 0)]


def test_bad_parameters_are_refused_clearly() -> None:
    ledger = Ledger()
    with pytest.raises(RuntimeError, match="code running in a simulation"):
        ledger.acquire("session")
    errors: list[str] = []

    async def process() -> None:
        for kind, amount in (("", 1), ("buffer", 0), ("buffer", 1.5), ("buffer", True)):
            with pytest.raises(ValueError) as caught:
                ledger.acquire(kind, amount)  # type: ignore[arg-type]
            errors.append(str(caught.value))
        hold = ledger.acquire("session")
        hold.release()
        with pytest.raises(ValueError, match="already released"):
            hold.release()
        with pytest.raises(ValueError, match="from this ledger"):
            Ledger().release(ledger.acquire("other"))

    run(process())
    assert errors == [
        "kind must be a non-empty string, got ''",
        "amount must be an integer >= 1, got 0",
        "amount must be an integer >= 1, got 1.5",
        "amount must be an integer >= 1, got True",
    ]


def test_series_steps_sum_changes_at_the_same_instant_and_stop_at_until() -> None:
    series = Series.from_changes([(2.0, 1), (1.0, 1), (2.0, -1), (5.0, -1), (9.0, 4)], until=6)
    assert series.times == (0.0, 1.0, 2.0, 5.0, 6.0)
    assert series.values == (0, 1, 1, 0, 0)
    assert (series.at(0.5), series.at(1.0), series.at(5.0), series.at(100)) == (0, 1, 0, 0)
    assert (series.peak, series.final) == (1, 0)


async def held_handler(ws: ServerConnection, ledger: Ledger) -> None:
    with ledger.acquire("session", owner=resources.conn_id(ws)):
        await ws.wait_closed()


def test_connections_open_follow_the_servers_view_and_handlers_release() -> None:
    ledger = Ledger()
    owners: list[str] = []

    async def server() -> None:
        async def handler(ws: ServerConnection) -> None:
            owners.append(resources.conn_id(ws))
            await held_handler(ws, ledger)

        async with serve(handler, "server", 8765) as s:
            await s.serve_forever()

    async def client(stay: float) -> None:
        async with connect("ws://server:8765"):
            await asyncio.sleep(stay)

    with wssim.Simulation(seed=0, latency=0.010) as sim:
        sim.host("server").spawn(server())
        sim.host("a").spawn(client(5))
        sim.host("b").spawn(client(100))
        sim.at(10, sim.host("b").crash)
        trace = sim.run(until=30)
    assert owners == ["c1", "c2"]
    opened = resources.connections_open(trace)
    # Open when the server sent 101 (0.03); the leaving client's close reaches it at 5.05
    # and its FIN at 5.07; the crash's FIN reaches the server at 10.01.
    assert list(opened) == [(0.0, 0), (0.03, 2), (5.07, 1), (10.01, 0)]
    assert list(resources.connections_open(trace, until=30))[-1] == (30.0, 0)
    assert resources.connections_open(trace, side="client").times[1] == 0.04
    assert list(ledger.series("session")) == [(0.0, 0), (0.03, 2), (5.07, 1), (10.01, 0)]
    ledger.check()
    with pytest.raises(ValueError, match="side must be"):
        resources.connections_open(trace, side="both")


def test_a_ledger_of_a_simulation_keeps_the_picture_at_the_end_of_the_run() -> None:
    with wssim.Simulation(seed=0) as sim:
        bound, unbound = Ledger(sim), Ledger()

        async def process() -> None:
            with bound.acquire("session"), unbound.acquire("session"):
                await asyncio.sleep(1000)

        sim.host("server").spawn(process())
        sim.run(until=10)
    # Closing the simulation killed the process, whose `with` released both holds.
    assert (bound.held(), unbound.held()) == (1, 0)
    assert unbound.series("session").times == (0.0, 10.0)
    with pytest.raises(ResourceLeak, match="still held: session 1"):
        bound.check()


def test_measured_kinds_share_the_time_axis_and_the_check() -> None:
    ledger = Ledger()

    async def process() -> None:
        ledger.measure("write buffer", 1000)
        await asyncio.sleep(1)
        ledger.measure("write buffer", 5000)
        with pytest.raises(ValueError, match="measure another kind"):
            ledger.acquire("session").release()
            ledger.measure("session", 1)
        with pytest.raises(ValueError, match="acquire another kind"):
            ledger.acquire("write buffer")
        with pytest.raises(ValueError, match="value must be an integer >= 0, got -1"):
            ledger.measure("write buffer", -1)
        await asyncio.sleep(1)

    run(process())
    assert list(ledger.series("write buffer")) == [(0.0, 1000), (1.0, 5000)]
    assert ledger.held() == 5000
    assert str(ledger.table()).splitlines()[2] == "write buffer         -         -  5000  5000"
    with pytest.raises(ResourceLeak, match=r"^still held: write buffer 5000 \(measured\)$"):
        ledger.check()


def test_a_hold_says_what_it_is_and_conn_id_needs_a_simulated_connection() -> None:
    ledger = Ledger()
    holds: list[resources.Hold] = []

    async def process() -> None:
        holds.append(ledger.acquire("buffer", 10, owner="c4"))
        await asyncio.sleep(1.5)
        holds[0].release()

    run(process())
    assert repr(holds[0]) == "<Hold 10 buffer for c4 since t=0, released at t=1.5>"
    assert repr(ledger) == "<Ledger: buffer=0 held>"
    assert resources.conn_id(object()) == ""
