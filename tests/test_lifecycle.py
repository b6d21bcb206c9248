"""Endpoint lifecycles and fault intervals, read from the traces of real simulations."""

from __future__ import annotations

import contextlib

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import InvalidStatus
from websockets.http11 import Request, Response

import wssim
from tests.helpers import echo_server
from wssim import faults as faults_
from wssim.trace import FaultInfo, HostEvent, Phase
from wssim.trace.lifecycle import (
    RULES,
    TRANSITIONS,
    Endpoint,
    FaultSpan,
    Span,
    State,
    endpoints,
    faults,
    spans,
    summary,
)

CONNECTING, OPEN, CLOSING, CLOSED = State


async def say_hello() -> None:
    async with connect("ws://server:8765") as ws:
        await ws.send("hello")
        await ws.recv()


async def stay_connected() -> None:
    async with connect("ws://server:8765") as ws:
        await ws.wait_closed()


async def keep_reconnecting() -> None:
    async for ws in connect("ws://server:8765"):
        with contextlib.suppress(Exception):  # however it ends, reconnect
            async for _ in ws:
                pass


def echo_trace() -> wssim.Trace:
    with wssim.Simulation(seed=0, latency=0.010) as sim:
        sim.host("server").spawn(echo_server())
        sim.host("client").spawn(say_hello())
        return sim.run(until=1)


def crash_trace() -> wssim.Trace:
    """Three reconnecting clients; the server crashes at 5 s and restarts at 9 s."""
    with wssim.Simulation(seed=3) as sim:
        server = sim.host("server")
        server.spawn(echo_server())
        for i in range(3):
            sim.host(f"client{i}").spawn(keep_reconnecting())

        def reboot() -> None:
            server.restart()
            server.spawn(echo_server())

        sim.at(5, server.crash)
        sim.at(9, reboot)
        return sim.run(until=30)


# The lifecycle table


def test_closed_is_final_and_every_state_can_reach_it() -> None:
    assert TRANSITIONS[CLOSED] == frozenset()
    for state in (CONNECTING, OPEN, CLOSING):
        assert CLOSED in TRANSITIONS[state]
        assert state not in TRANSITIONS[state]
    assert {rule.to for rule in RULES} == set(State)


# Endpoints and spans


def test_echo_exchange_opens_and_closes_each_endpoint_at_exact_times() -> None:
    trace = echo_trace()

    assert endpoints(trace) == [
        Endpoint(
            conn="c1",
            side="client",
            host="client",
            peer="server",
            started_at=0.0,
            opened_at=0.04,
            closing_at=0.06,
            closed_at=0.08,
            close_code=1000,
            close_text="ConnectionClosedOK: sent 1000 (OK); then received 1000 (OK)",
            state=CLOSED,
        ),
        Endpoint(
            conn="c1",
            side="server",
            host="server",
            peer="client",
            started_at=0.03,
            opened_at=0.03,
            closing_at=0.07,
            closed_at=0.09,
            close_code=1000,
            close_text="ConnectionClosedOK: received 1000 (OK); then sent 1000 (OK)",
            state=CLOSED,
        ),
    ]


def test_echo_exchange_spans_leave_out_instants_and_closed() -> None:
    trace = echo_trace()

    # The server answers the handshake in the instant it accepts: no CONNECTING span.
    assert spans(trace) == [
        Span("c1", "client", "client", CONNECTING, 0.0, 0.04),
        Span("c1", "client", "client", OPEN, 0.04, 0.06),
        Span("c1", "client", "client", CLOSING, 0.06, 0.08),
        Span("c1", "server", "server", OPEN, 0.03, 0.07),
        Span("c1", "server", "server", CLOSING, 0.07, 0.09),
    ]
    assert spans(trace)[1].duration == 0.06 - 0.04


def test_spans_of_a_live_connection_end_at_until() -> None:
    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(echo_server())
        sim.host("client").spawn(stay_connected())
        trace = sim.run(until=5)

    client, _server = endpoints(trace)
    assert (client.state, client.closed_at, client.close_code) == (OPEN, None, None)
    assert client.outcome == ""
    assert not client.failed
    assert spans(trace, until=5.0)[-2:] == [
        Span("c1", "client", "client", OPEN, 0.04, 5.0),
        Span("c1", "server", "server", OPEN, 0.03, 5.0),
    ]
    # Without until, they stop at the trace's last event (the client's OPEN).
    assert trace.end == 0.04
    assert spans(trace) == [
        Span("c1", "client", "client", CONNECTING, 0.0, 0.04),
        Span("c1", "server", "server", OPEN, 0.03, 0.04),
    ]
    # An earlier until cuts them short and drops what starts later.
    assert spans(trace, until=0.035) == [
        Span("c1", "client", "client", CONNECTING, 0.0, 0.035),
        Span("c1", "server", "server", OPEN, 0.03, 0.035),
    ]
    assert spans(trace, until=0.025) == [Span("c1", "client", "client", CONNECTING, 0.0, 0.025)]


def test_a_trace_cut_after_the_start_begins_at_the_first_state_change() -> None:
    client, server = endpoints(echo_trace().filter(since=0.035))

    assert (client.started_at, client.opened_at, client.closed_at) == (0.04, 0.04, 0.08)
    assert (server.started_at, server.opened_at, server.closing_at) == (0.07, None, 0.07)
    assert not server.failed  # it was CLOSING, so it had opened


def test_refused_connection_is_a_failed_attempt_without_a_server_endpoint() -> None:
    async def refused() -> None:
        with contextlib.suppress(ConnectionRefusedError):
            await connect("ws://server:8765")

    with wssim.Simulation(seed=0) as sim:
        sim.host("server")
        sim.host("client").spawn(refused())
        trace = sim.run(until=1)

    [client] = endpoints(trace)  # the server's kernel answered RST: no server endpoint
    assert (client.side, client.started_at, client.opened_at, client.closed_at) == (
        "client",
        0.0,
        None,
        0.02,
    )
    assert client.failed
    assert (client.close_code, client.close_text, client.outcome) == (
        None,
        "connection refused",
        "refused",
    )
    assert spans(trace) == [Span("c1", "client", "client", CONNECTING, 0.0, 0.02)]


def test_unreachable_server_times_out_after_the_syn_retries() -> None:
    async def unreachable() -> None:
        with contextlib.suppress(TimeoutError):
            await connect("ws://server:8765", open_timeout=None)

    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(echo_server())
        sim.host("client")
        sim.partition("client", "server")
        sim.host("client").spawn(unreachable())
        trace = sim.run(until=200)

    [client] = endpoints(trace)
    assert (client.started_at, client.closed_at, client.outcome) == (0.0, 127.0, "timeout")
    assert client.close_text == "connect timed out (no SYN-ACK)"
    assert client.failed


def test_keepalive_timeout_across_a_partition_closes_both_ends_with_1006() -> None:
    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(echo_server())
        sim.host("client").spawn(stay_connected())
        sim.at(10, sim.partition, "client", "server")
        trace = sim.run(until=100)

    client, server = endpoints(trace)
    # Pings at 20 s are lost; after 20 more seconds each side gives up and sends a close
    # frame (1011) that is lost too; 10 s later (close_timeout) it aborts the connection.
    assert (client.opened_at, client.closing_at, client.closed_at) == (0.04, 40.04, 50.04)
    assert (server.opened_at, server.closing_at, server.closed_at) == (0.03, 40.03, 50.03)
    assert (client.close_code, server.close_code) == (1006, 1006)
    assert "keepalive ping timeout" in client.close_text
    assert (client.outcome, client.failed) == ("1006", False)


def test_rejected_handshake_fails_both_ends() -> None:
    def reject(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(403, "go away\n")

    async def rejected() -> None:
        with contextlib.suppress(InvalidStatus):
            await say_hello()

    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(echo_server(process_request=reject))
        sim.host("client").spawn(rejected())
        trace = sim.run(until=1)

    client, server = endpoints(trace)
    assert (client.failed, client.closed_at, client.close_code, client.outcome) == (
        True,
        0.04,
        None,
        "HTTP 403",
    )
    assert client.close_text.startswith("handshake failed: InvalidStatus")
    assert (server.failed, server.closed_at, server.close_code) == (True, 0.05, 1006)


def test_crash_ends_every_endpoint_on_the_host() -> None:
    trace = crash_trace()
    ends = endpoints(trace)

    assert [(e.conn, e.side) for e in ends[:8]] == [
        ("c1", "client"),
        ("c1", "server"),
        ("c2", "client"),
        ("c2", "server"),
        ("c3", "client"),
        ("c3", "server"),
        ("c4", "client"),
        ("c5", "client"),
    ]
    # The server's processes die with the host: no close code, just the crash.
    servers = [e for e in ends[:6] if e.side == "server"]
    assert {(e.closed_at, e.close_code, e.outcome) for e in servers} == {(5.0, None, "crash")}
    assert all(e.close_text.startswith("crash") for e in servers)
    # The clients read the FIN 10 ms later: abnormal closure.
    clients = [e for e in ends[:6] if e.side == "client"]
    assert {(e.closed_at, e.close_code) for e in clients} == {(5.01, 1006)}
    # Then they retry while nothing listens, and get through after the restart.
    refused = [e for e in ends if e.failed]
    assert [(e.conn, e.host, e.outcome) for e in refused] == [
        ("c4", "client0", "refused"),
        ("c5", "client1", "refused"),
        ("c6", "client2", "refused"),
        ("c7", "client0", "refused"),
        ("c8", "client2", "refused"),
        ("c9", "client1", "refused"),
    ]
    alive = [e for e in ends if e.state is OPEN]
    assert [(e.conn, e.side) for e in alive] == [
        ("c10", "client"),
        ("c10", "server"),
        ("c11", "client"),
        ("c11", "server"),
        ("c12", "client"),
        ("c12", "server"),
    ]
    assert all(e.opened_at is not None and e.opened_at > 9 for e in alive)


def test_client_crash_ends_its_endpoint_and_the_server_sees_1006() -> None:
    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(echo_server())
        client_host = sim.host("client")
        client_host.spawn(stay_connected())
        sim.at(1, client_host.crash)
        trace = sim.run(until=5)

    client, server = endpoints(trace)
    assert (client.closed_at, client.outcome) == (1.0, "crash")
    assert (server.closed_at, server.close_code) == (1.01, 1006)


def test_lifecycle_is_deterministic_and_reads_plain_event_lists() -> None:
    first, second = crash_trace(), crash_trace()

    assert endpoints(first) == endpoints(second)
    assert spans(first, until=30) == spans(second, until=30)
    assert endpoints(list(first)) == endpoints(first)
    assert spans(list(first), until=30) == spans(first, until=30)


# Faults


def test_partition_pairs_with_heal_and_an_unhealed_one_lasts_to_the_end() -> None:
    cut = faults_.Partition("client", "server")
    with wssim.Simulation(seed=0) as sim:
        sim.host("client")
        sim.host("server")
        sim.inject(cut, at=1, duration=2)
        sim.inject(faults_.Partition("client", "server"), at=5)
        sim.at(6, sim.mark, "end")
        trace = sim.run(until=10)

    started = FaultInfo(cut, Phase.START)
    text = "partition client ↔ server"
    assert faults(trace) == [
        FaultSpan("partition", text, "client", 1.0, 3.0, True, False, started),
        FaultSpan("partition", text, "client", 5.0, 6.0, False, False, started),
    ]
    assert faults(trace, until=10)[1].end == 10
    assert faults(trace)[0].duration == 2.0
    assert faults(trace)[0].hosts == ("client", "server")


def test_crash_pairs_with_the_restart_of_the_same_host() -> None:
    trace = crash_trace()

    assert faults(trace) == [
        FaultSpan(
            "crash",
            "crash: every process dies; the OS closes their sockets",
            "server",
            5.0,
            9.0,
            True,
            False,
            FaultInfo(faults_.Crash("server"), Phase.START),
        )
    ]


def test_unknown_faults_and_unmatched_ends_are_instants() -> None:
    crash = FaultInfo(faults_.Crash("b"), Phase.START)
    heal = FaultInfo(faults_.Partition("a", "b"), Phase.END)
    trace = wssim.Trace(
        [
            wssim.Event(1.0, "fault", "heal a ↔ b", host="a", detail=heal),
            wssim.Event(2.0, "fault", "latency +200 ms on a → b", host="a"),  # names no fault
            wssim.Event(3.0, "fault", "crash: every process dies", host="b", detail=crash),
            # Another host restarts: the crash of b goes on.
            wssim.Event(4.0, "host", "restart", host="a", detail=HostEvent.RESTART),
            wssim.Event(5.0, "mark", "done"),
        ]
    )

    assert faults(trace) == [
        FaultSpan("partition", "heal a ↔ b", "a", 1.0, 1.0, False, True, heal),
        FaultSpan("latency", "latency +200 ms on a → b", "a", 2.0, 2.0, False, True),
        FaultSpan("crash", "crash: every process dies", "b", 3.0, 5.0, False, False, crash),
    ]


def test_what_a_path_fault_did_to_a_connection_is_an_instant() -> None:
    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(echo_server(ping_interval=None))
        sim.host("client").spawn(stay_connected())
        sim.inject(faults_.IdleTimeout("client", "server", 5, action="reset"), at=0)
        trace = sim.run(until=10)

    lasting, forgot = faults(trace, until=10)
    assert (lasting.name, lasting.instant, lasting.end) == ("idle_timeout", False, 10.0)
    assert (forgot.name, forgot.instant, forgot.start) == ("idle_timeout", True, 5.03)
    assert forgot.info is not None and forgot.info.phase is Phase.ACT
    assert [e.outcome for e in endpoints(trace)] == ["1006", "1006"]


def test_summary_tells_what_each_side_saw() -> None:
    table = summary(echo_trace())
    assert table.columns == ("conn", "side", "host", "opened", "closed", "code", "what it saw")
    assert table.rows == [
        ("c1", "client", "client", "0.040", "0.080", "1000",
         "ConnectionClosedOK: sent 1000 (OK); then received 1000 (OK)"),
        ("c1", "server", "server", "0.030", "0.090", "1000",
         "ConnectionClosedOK: received 1000 (OK); then sent 1000 (OK)"),
    ]  # fmt: skip
    assert str(table).splitlines()[2].startswith("c1    client  client   0.040   0.080  1000  ")


def test_summary_marks_live_and_failed_connections() -> None:
    table = summary(crash_trace(), conns=["c4", "c10"])
    assert [row[:2] + row[3:] for row in table.rows] == [
        ("c4", "client", "-", "5.030", "-", "connection refused"),
        ("c10", "client", "9.380", "-", "-", "(still open)"),
        ("c10", "server", "9.370", "-", "-", "(still open)"),
    ]


def test_a_power_loss_ends_the_endpoints_of_its_host() -> None:
    from wssim import faults

    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(echo_server(ping_interval=None))
        sim.host("client").spawn(stay_connected())
        sim.inject(faults.PowerLoss("client"), at=2)
        trace = sim.run(until=5)
    ends = {e.side: (e.closed_at, e.outcome) for e in endpoints(trace)}
    assert ends == {"client": (2.0, "power loss"), "server": (None, "")}
