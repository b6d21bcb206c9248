"""The chaos schedule: deterministic for a seed, valid, and applied as planned."""

from __future__ import annotations

import itertools
import math

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from wssim import Simulation, faults
from wssim.course.capstone import BAD_INPUTS
from wssim.lab import chaos
from wssim.lab.scorecard import handler_failures

CLIENTS = [f"client{i:03d}" for i in range(50)]


def test_the_same_seed_gives_the_same_schedule() -> None:
    assert schedule(3, CLIENTS) == schedule(3, CLIENTS)
    assert schedule(3, CLIENTS) != schedule(4, CLIENTS)


def schedule(*args: object, **kwargs: object) -> chaos.Schedule:
    """A schedule with lesson 07's twelve bad inputs, unless told otherwise."""
    return chaos.schedule(*args, **{"bad_inputs": 12, "cases": BAD_INPUTS, **kwargs})  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("clients", [1, 7, 50])
def test_a_schedule_is_valid(seed: int, clients: int) -> None:
    names = CLIENTS[:clients]
    plan = schedule(seed, names, start=20, end=240, bad_inputs=12)
    assert plan.conflicts() == []
    # The server goes through each of its faults once, one at a time, within the window.
    server = plan.server_faults()
    assert sorted(i.name for i in server) == ["crash", "freeze", "freeze", "power loss"]
    for before, after in itertools.pairwise(server):
        assert before.until < after.at
    for injection in plan.injections:
        if injection.kind is faults.IdleTimeout:
            assert (injection.at, injection.duration) == (0.0, None)
            continue
        assert injection.at >= 20 and injection.until <= 240
    # A partition keeps clear of the server's faults by 20 s.
    for partition in (i for i in plan.injections if i.kind is faults.Partition):
        for fault in server:
            assert partition.until <= fault.at - 20 or partition.at >= fault.until + 20
    # Bad input: on hosts of their own, away from the server's faults.
    assert [b.host for b in plan.bad_inputs] == [f"raw{n:02d}" for n in range(12)]
    assert len({b.case.name for b in plan.bad_inputs}) == 12
    for item in plan.bad_inputs:
        assert 20 <= item.at <= 240
        for fault in server:
            assert not fault.at - 10 <= item.at <= fault.until + 15


def test_a_short_window_still_gives_a_valid_schedule() -> None:
    # Two minutes leave little room between the server's faults: bad input may come
    # closer to them, but nothing contradicts anything.
    for seed in range(12):
        plan = schedule(seed, CLIENTS[:7], start=20, end=140)
        assert plan.conflicts() == []
        assert all(20 <= b.at <= 140 for b in plan.bad_inputs)


def test_the_shares_of_clients_affected() -> None:
    plan = schedule(1, CLIENTS)
    kinds = [i.name for i in plan.injections]
    assert kinds.count("latency") == 5  # 10 % of 50
    assert kinds.count("idle_timeout") == 10  # 20 %
    assert kinds.count("partition") <= 5  # 10 %, less any that found no room
    assert str(plan.summary()).splitlines()[0].split() == [
        "fault",
        "count",
        "clients",
        "time",
        "in",
        "force",
    ]


def test_a_table_lists_what_was_asked_in_time_order() -> None:
    plan = schedule(1, CLIENTS)
    rows = str(plan.table(kinds=["crash", "power loss", "freeze"])).splitlines()[2:]
    assert [row.split()[2] for row in rows] == [i.name.split()[0] for i in plan.server_faults()]
    one = str(plan.table(host="raw03")).splitlines()[2:]
    assert len(one) == 1 and "bad input  raw03: " in one[0]
    mine = str(plan.table(host="client004")).splitlines()[2:]
    expected = [i.name for i in plan.injections if "client004" in i.args]
    assert [row.split()[2] for row in mine] == expected and expected[0] == "idle_timeout"


def test_a_conflict_is_found() -> None:
    plan = schedule(1, CLIENTS[:3])
    crash = chaos.ScheduledFault(30.0, 10.0, faults.Crash, ("server",))
    freeze = chaos.ScheduledFault(35.0, 1.0, faults.Freeze, ("server",))
    later = chaos.ScheduledFault(40.0, 1.0, faults.Freeze, ("server",))
    forged = chaos.Schedule(1, "server", plan.clients, 0, 100, (crash, freeze, later), ())
    assert forged.conflicts() == [(crash, freeze)]
    assert crash.until == 40.0 and not crash.overlaps(later)
    assert chaos.ScheduledFault(0.0, None, faults.Crash, ("server",)).until == math.inf


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": "1"}, "seed must be an integer"),
        ({"clients": []}, "clients must be a non-empty sequence"),
        ({"clients": "client"}, "clients must be a non-empty sequence"),
        ({"clients": ["a", "a"]}, "clients must be distinct"),
        ({"server": "a"}, "server must be a host name that is not a client"),
        ({"start": -1}, "start must be a finite number of seconds >= 0"),
        ({"end": math.inf}, "end must be a finite number of seconds >= 0"),
        ({"start": 50, "end": 100}, "end must be at least 60 s after start"),
        ({"bad_inputs": -1}, "bad_inputs must be an integer >= 0"),
        ({"bad_inputs": 2}, "cases must hold the bad input to send when bad_inputs > 0"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"seed": 1, "clients": ["a", "b"], **kwargs}
    with pytest.raises(ValueError, match=message):
        chaos.schedule(**arguments)  # type: ignore[arg-type]


async def _careful(websocket: ServerConnection) -> None:
    try:
        async for message in websocket:
            if isinstance(message, bytes):
                await websocket.close(1003, "text messages only")
                break
            await websocket.send("error: not understood")
    except ConnectionClosed:
        pass


async def _server() -> None:
    async with serve(_careful, "server", 8765, compression=None) as srv:
        await srv.serve_forever()


def test_applying_a_schedule_injects_its_faults_and_sends_its_bad_input() -> None:
    plan = schedule(2, ["client0", "client1"], start=10, end=100, bad_inputs=12)
    with Simulation(seed=2) as sim:
        sim.host("server").service(_server)
        delivered = plan.apply(sim)
        trace = sim.run(until=120)
    # Every fault started (and those that end, ended) as planned, in the trace.
    starts = trace.filter(kind="fault")
    for injection in plan.server_faults():
        assert starts.first(since=injection.at, host="server") is not None
    assert trace.first(kind="fault", contains="partition client") is not None or not any(
        i.kind is faults.Partition for i in plan.injections
    )
    # Every bad input reached the server (it was up) and the handler never failed.
    hosts = sorted(d.bad_input.host for d in delivered)
    assert hosts == [b.host for b in plan.bad_inputs]
    conns = [d.client.conn_id for d in delivered]
    assert handler_failures(trace, conns) == []
    binary = next(d for d in delivered if d.bad_input.case.name == "a binary message")
    assert binary.client.close_code == 1003
    rsv1 = next(d for d in delivered if d.bad_input.case.name == "RSV1 set, no extension")
    assert rsv1.client.close_code == 1002
    # A second run of the same schedule builds new faults: the same trace.
    with Simulation(seed=2) as sim:
        sim.host("server").service(_server)
        plan.apply(sim)
        again = sim.run(until=120)
    assert again == trace
