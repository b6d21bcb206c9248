"""Admission control: 503 at the handshake past a limit or a rate, 1013 when shedding."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

import wssim
from wssim.toolkit import backoff
from wssim.toolkit.admission import Admission

URI = "ws://server:8765"


async def hold(ws: ServerConnection) -> None:
    await ws.wait_closed()


def start_server(sim: wssim.Simulation, admission: Admission, servers: list[Server]) -> None:
    async def server() -> None:
        async with serve(hold, "server", 8765, process_request=admission) as srv:
            servers.append(srv)
            await srv.serve_forever()

    sim.host("server").spawn(server())


def start_client(
    sim: wssim.Simulation, name: str, at: float, outcome: dict[str, Any], close_at: float = 0
) -> None:
    """One attempt at ``at``; ``outcome[name]`` becomes 'open', the close code, or the 503."""

    async def client() -> None:
        await asyncio.sleep(at)
        try:
            async with connect(URI) as ws:
                outcome[name] = "open"
                if close_at:
                    await asyncio.sleep(close_at - at)
                    return
                await ws.wait_closed()
                outcome[name] = ws.close_code
        except InvalidStatus as exc:
            outcome[name] = exc.response.status_code
            outcome[name + " headers"] = exc.response.headers

    sim.host(name).spawn(client())


def http_responses(trace: wssim.Trace) -> list[tuple[float, str, int | None]]:
    return [(e.time, e.peer, e.code) for e in trace.filter(kind="http", side="server")]


def test_the_limit_counts_handshakes_in_progress_not_only_open_connections() -> None:
    outcome: dict[str, Any] = {}
    servers: list[Server] = []
    seen: list[int] = []
    with wssim.Simulation(seed=0, latency=0.010) as sim:
        admission = Admission(max_connections=1)
        start_server(sim, admission, servers)
        start_client(sim, "a", 0, outcome)
        start_client(sim, "b", 0, outcome)
        # Both requests arrive at 0.020; websockets' Server.connections is still empty then.
        sim.at(0.020, lambda: seen.append(len(servers[0].connections)))
        trace = sim.run(until=1)
        assert admission.open == 1
    assert seen == [0]
    assert http_responses(trace) == [(0.03, "a", 101), (0.03, "b", 503)]
    assert outcome == {"a": "open", "b": 503, "b headers": outcome["b headers"]}
    assert "Retry-After" not in outcome["b headers"]
    assert (admission.admitted, admission.refused_full, admission.refused_rate) == (1, 1, 0)


def test_a_slot_is_free_again_once_the_connection_is_gone() -> None:
    outcome: dict[str, Any] = {}
    with wssim.Simulation(seed=0, latency=0.010) as sim:
        admission = Admission(max_connections=1)
        start_server(sim, admission, [])
        start_client(sim, "a", 0, outcome, close_at=2)
        start_client(sim, "b", 1, outcome)
        start_client(sim, "c", 3, outcome)
        trace = sim.run(until=5)
        assert admission.open == 1
    assert http_responses(trace) == [(0.03, "a", 101), (1.03, "b", 503), (3.03, "c", 101)]


def test_the_token_bucket_admits_a_burst_then_the_rate_in_virtual_time() -> None:
    outcome: dict[str, Any] = {}
    with wssim.Simulation(seed=0, latency=0.010) as sim:
        admission = Admission(rate=2, burst=2, retry_after=3)
        start_server(sim, admission, [])
        for name in ("a", "b", "c"):
            start_client(sim, name, 0, outcome)
        # Requests arrive 20 ms after each start. At 0.520 one token has come back
        # (0.5 s x 2/s); at 0.580 only 0.12 of one.
        start_client(sim, "d", 0.5, outcome)
        start_client(sim, "e", 0.56, outcome)
        trace = sim.run(until=2)
    assert http_responses(trace) == [
        (0.03, "a", 101),
        (0.03, "b", 101),
        (0.03, "c", 503),
        (0.53, "d", 101),
        (0.59, "e", 503),
    ]
    assert outcome["c headers"]["Retry-After"] == "3"
    assert (admission.admitted, admission.refused_rate, admission.refused) == (3, 2, 2)


def test_shed_closes_the_oldest_open_connections_with_1013() -> None:
    outcome: dict[str, Any] = {}
    with wssim.Simulation(seed=0, latency=0.010) as sim:
        admission = Admission(sim=sim)
        start_server(sim, admission, [])
        for name, at in (("a", 0), ("b", 0.1), ("c", 0.2)):
            start_client(sim, name, at, outcome)
        shed: list[int] = []
        sim.at(5, lambda: shed.append(admission.shed(2)))
        sim.at(6, lambda: shed.append(admission.shed(5)))  # only one left
        trace = sim.run(until=10)
    assert shed == [2, 1]
    assert outcome == {"a": 1013, "b": 1013, "c": 1013}
    closes = trace.filter(kind="frame", side="server", contains="CLOSE")
    assert [(e.time, e.peer, e.code) for e in closes] == [
        (5.0, "a", 1013),
        (5.0, "b", 1013),
        (6.0, "c", 1013),
    ]
    client_ends = trace.filter(kind="closed", side="client")
    assert [(e.time, e.host, e.code) for e in client_ends] == [
        (5.03, "a", 1013),
        (5.03, "b", 1013),
        (6.03, "c", 1013),
    ]
    marks = trace.filter(kind="mark")
    assert [(e.time, e.host, e.text) for e in marks] == [
        (5.0, "server", "admission: shed 2 of 2 asked (close 1013, server overloaded)"),
        (6.0, "server", "admission: shed 1 of 5 asked (close 1013, server overloaded)"),
    ]
    assert admission.shed_count == 3 and admission.open == 0


def test_connections_of_a_crashed_server_stop_counting() -> None:
    outcome: dict[str, Any] = {}
    open_counts: list[int] = []
    with wssim.Simulation(seed=0, latency=0.010) as sim:
        admission = Admission(max_connections=2)
        start_server(sim, admission, [])
        start_client(sim, "a", 0, outcome)
        start_client(sim, "b", 0, outcome)
        server = sim.host("server")
        sim.at(1, lambda: open_counts.append(admission.open))
        sim.at(2, server.crash)
        sim.at(2.5, lambda: open_counts.append(admission.open))

        def reboot() -> None:
            server.restart()
            start_server(sim, admission, [])

        sim.at(3, reboot)
        # One millisecond apart, so that the order of arrival is plain.
        start_client(sim, "c", 4, outcome)
        start_client(sim, "d", 4.001, outcome)
        start_client(sim, "e", 4.002, outcome)
        trace = sim.run(until=5)
    assert open_counts == [2, 0]
    assert outcome["a"] == outcome["b"] == 1006
    assert [r for r in http_responses(trace) if r[0] > 3] == [
        (4.03, "c", 101),
        (4.031, "d", 101),
        (4.032, "e", 503),
    ]


def test_websockets_reconnect_loop_retries_a_503_after_its_delay() -> None:
    """websockets treats 503 as transient: the client retries after each delay (1 s here),
    and gets in once the slot holder leaves at t=2.5."""
    opened: list[float] = []
    with wssim.Simulation(seed=0, latency=0.010) as sim:
        admission = Admission(max_connections=1)
        start_server(sim, admission, [])
        start_client(sim, "holder", 0, {}, close_at=2.5)

        async def patient() -> None:
            await asyncio.sleep(0.1)
            loop = asyncio.get_running_loop()
            async for ws in connect(URI, reconnect_delays=backoff.constant(1)):
                opened.append(loop.time())
                await ws.close()
                return

        sim.host("patient").spawn(patient())
        trace = sim.run(until=10)
    patient_responses = [(t, code) for t, peer, code in http_responses(trace) if peer == "patient"]
    # An attempt: SYN 0.10, request 0.12 (at the server 0.13), 503 back at 0.14; + 1 s...
    assert patient_responses == [(0.13, 503), (1.17, 503), (2.21, 503), (3.25, 101)]
    assert opened == [pytest.approx(3.26)]


def test_the_shed_connection_is_a_close_the_client_can_recognise() -> None:
    codes: list[int | None] = []
    with wssim.Simulation(seed=0, latency=0.010) as sim:
        admission = Admission()
        start_server(sim, admission, [])

        async def client() -> None:
            async with connect(URI) as ws:
                try:
                    await ws.recv()
                except ConnectionClosed as exc:
                    codes.append(exc.rcvd.code if exc.rcvd else None)

        sim.host("client").spawn(client())
        sim.at(1, admission.shed, 1)
        sim.run(until=3)
    assert codes == [1013]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_connections": 0}, "max_connections must be an integer >= 1 or None, got 0"),
        ({"max_connections": 2.5}, "max_connections must be an integer >= 1"),
        ({"rate": 0}, r"rate must be a finite number > 0 \(per second\) or None, got 0"),
        ({"rate": -3}, "rate must be a finite number > 0"),
        ({"rate": math.inf}, "rate must be a finite number > 0"),
        ({"burst": 5}, "burst needs a rate"),
        ({"rate": 10, "burst": 0.5}, "burst must be a finite number >= 1, got 0.5"),
        ({"retry_after": -1}, r"retry_after must be an integer >= 0 \(seconds\)"),
    ],
)
def test_bad_parameters_raise_a_clear_value_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Admission(**kwargs)


def test_shed_checks_its_arguments() -> None:
    admission = Admission()
    with pytest.raises(ValueError, match="n must be an integer >= 0, got -1"):
        admission.shed(-1)
    with pytest.raises(ValueError, match="reason must be at most 123 bytes"):
        admission.shed(1, "x" * 124)
    assert admission.shed(3) == 0  # nothing open: nothing to shed


def test_default_burst_is_one_second_of_rate() -> None:
    assert Admission(rate=50).burst == 50
    assert Admission(rate=0.2).burst == 1
