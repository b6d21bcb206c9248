"""Application-level heartbeats and the stacks' keepalives, in virtual time."""

from __future__ import annotations

import asyncio
import socket

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

import wssim
from wssim import faults
from wssim.lab.detection import detect, run_stack
from wssim.toolkit.heartbeat import (
    NO_HEARTBEAT,
    STACKS,
    Heartbeat,
    Side,
    Stack,
    TcpKeepalive,
    connect_stack,
    serve_stack,
)

JSON_CLIENT = Heartbeat(interval=10, timeout=5, answer=False)
JSON_SERVER = Heartbeat(silence=25)
JSON = Stack("json", Side(None, None, 10, JSON_SERVER), Side(None, None, 10, JSON_CLIENT))


# Settings


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval": 0}, "interval must be > 0 seconds or None"),
        ({"interval": float("nan")}, "interval must be a finite number"),
        ({"silence": -1}, "silence must be > 0 seconds or None"),
        ({"timeout": 5}, "timeout needs pings to time"),
        ({"interval": 5, "timeout": 5, "pong": None, "answer": False}, "timeout needs pings"),
        ({"pong": None}, "answer=True needs a pong message"),
        ({"answer": False}, "this heartbeat does nothing"),
        ({"ping": ""}, "ping must be a non-empty string"),
        ({"pong": '{"type": "ping"}'}, "ping and pong must be different"),
        ({"code": 1006}, "code must be 1000, 1001, 1008, 1011 or in 3000-4999"),
        ({"code": True}, "code must be an integer close code"),
    ],
)
def test_bad_heartbeat_settings_name_the_parameter(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Heartbeat(**kwargs)  # type: ignore[arg-type]


def test_bad_side_settings_name_the_parameter() -> None:
    with pytest.raises(ValueError, match="ping_interval must be > 0"):
        Side(ping_interval=-1)
    with pytest.raises(ValueError, match="close_timeout must be a finite number of seconds > 0"):
        Side(close_timeout=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="heartbeat must be a Heartbeat"):
        Side(heartbeat="ping")  # type: ignore[arg-type]


def test_messages_with_a_ref_match_any_counter() -> None:
    phoenix = STACKS["Phoenix"].client.heartbeat
    assert phoenix is not None
    assert phoenix.is_ping('[null,"12","phoenix","heartbeat",{}]')
    assert not phoenix.is_ping('[null,"x","phoenix","heartbeat",{}]')
    assert phoenix.is_pong('[null,"3","phoenix","phx_reply",{"status":"ok","response":{}}]')
    assert not phoenix.matches('[null,"3","room:1","new_msg",{}]')
    assert not phoenix.matches(b'[null,"3","phoenix","heartbeat",{}]')


def test_stack_periods_and_horizons() -> None:
    assert [(s.period, s.horizon()) for s in STACKS.values()] == [
        (20.0, 50.0),  # 20 + 20 + 10
        (25.0, 55.0),  # server: 25 + 20 + 10; the client: 45 + 10
        (15.0, 55.0),  # 15 + 30 + 10
        (30.0, 70.0),  # client: 30 + 30 + 10; server: 60 + 10
    ]
    assert (NO_HEARTBEAT.period, NO_HEARTBEAT.horizon()) == (0.0, 0.0)


# On the wire


def test_phoenix_heartbeats_count_up_and_replies_echo_the_ref() -> None:
    trace = run_stack(STACKS["Phoenix"], until=61)
    frames = [(e.time, e.side, e.text) for e in trace.filter(kind="frame", since=1)]
    assert frames == [
        (30.04, "client", """TEXT '[null,"1","phoenix","heartbeat",{}]' [35 bytes]"""),
        (
            30.05,
            "server",
            """TEXT '[null,"1","phoenix","phx_reply",{"status":"ok","response":{}}]' [62 bytes]""",
        ),
        (60.04, "client", """TEXT '[null,"2","phoenix","heartbeat",{}]' [35 bytes]"""),
        (
            60.05,
            "server",
            """TEXT '[null,"2","phoenix","phx_reply",{"status":"ok","response":{}}]' [62 bytes]""",
        ),
    ]


def test_socketio_server_pings_and_the_client_answers() -> None:
    trace = run_stack(STACKS["Socket.IO"], until=51)
    frames = [(e.time, e.side, e.text) for e in trace.filter(kind="frame", since=1)]
    assert frames == [
        (25.03, "server", "TEXT '2' [1 byte]"),
        (25.04, "client", "TEXT '3' [1 byte]"),
        (50.03, "server", "TEXT '2' [1 byte]"),
        (50.04, "client", "TEXT '3' [1 byte]"),
    ]


def test_an_hour_of_healthy_heartbeats_closes_nothing() -> None:
    for stack in (JSON, *STACKS.values()):
        trace = run_stack(stack, until=3600)
        assert trace.filter(kind="closed") == wssim.Trace(), stack.name
        assert trace.filter(kind="log", contains="timeout") == wssim.Trace(), stack.name


# Giving up on a dead peer


def test_the_client_gives_up_when_no_pong_comes() -> None:
    # Client pings at 10.04, 20.04, 30.04...; the server loses power at 25.
    trace = run_stack(JSON, fault=faults.PowerLoss("server"), at=25, until=60)
    gave_up = trace.first(kind="log", side="client", contains="heartbeat timeout")
    assert gave_up is not None
    assert (gave_up.time, gave_up.text) == (35.04, "- heartbeat timeout: no pong within 5 s")
    close = trace.first(kind="frame", side="client", contains="CLOSE")
    assert close is not None
    assert (close.time, close.text, close.arrives) == (
        35.04,
        "CLOSE 4000 (private use) heartbeat timeout [19 bytes]",
        None,
    )
    found = detect(trace, "client")
    assert (found.fault, found.noticed, found.learned, found.code) == (25.0, 35.04, 45.04, 1006)
    assert found.how == (
        "ConnectionClosedError: sent 4000 (private use) heartbeat timeout; no close frame received"
    )


def test_the_server_gives_up_after_a_silence() -> None:
    # The client's last ping arrived at 20.05: 25 s of silence later, the server gives up.
    trace = run_stack(JSON, fault=faults.PowerLoss("client"), at=25, until=70)
    found = detect(trace, "server")
    assert (found.noticed, found.learned, found.code) == (45.05, 55.05, 1006)
    assert trace.first(kind="log", side="server", contains="heartbeat timeout").text == (  # type: ignore[union-attr]
        "- heartbeat timeout: nothing received for 25 s"
    )


def test_websockets_keepalive_sends_1011_and_ends_with_1006_after_close_timeout() -> None:
    trace = run_stack(
        STACKS["websockets"], fault=faults.Partition("client", "server"), at=45, until=100
    )
    server = trace.filter(side="server", since=45)
    assert [(e.time, e.kind, e.text) for e in server if e.kind != "log" or "%" in e.text] == [
        (60.03, "frame", "PING 6b aa 94 55 [binary, 4 bytes]"),
        (60.03, "log", "% sent keepalive ping"),
        (80.03, "frame", "CLOSE 1011 (internal error) keepalive ping timeout [24 bytes]"),
        (80.03, "tcp", "FIN"),
        # close_timeout later websockets aborts: the socket closes, its FIN already sent, so
        # nothing more goes out (a real abort() closes the socket; it is not an RST).
        (
            90.03,
            "closed",
            "ConnectionClosedError: sent 1011 (internal error) keepalive ping timeout; "
            "no close frame received",
        ),
    ]
    assert trace.last(kind="closed", side="server").code == 1006  # type: ignore[union-attr]
    assert detect(trace, "client").learned == 90.04


# Running the heartbeat by hand


def test_run_hands_other_messages_to_the_application() -> None:
    got: list[tuple[float, str | bytes]] = []

    async def on_message(message: str | bytes) -> None:
        got.append((asyncio.get_running_loop().time(), message))

    async def handler(ws: ServerConnection) -> None:
        await Heartbeat(silence=30).run(ws, on_message)

    async def server() -> None:
        async with serve(handler, None, 8765, ping_interval=None) as s:
            await s.serve_forever()

    async def client() -> None:
        async with connect("ws://server:8765", ping_interval=None) as ws:
            await ws.send('{"type": "ping"}')
            await ws.send("hello")
            assert await ws.recv() == '{"type": "pong"}'
            await asyncio.sleep(35)

    with wssim.Simulation() as sim:
        sim.host("server").spawn(server())
        sim.host("client").spawn(client())
        trace = sim.run(until=60)
    assert [(round(t, 6), m) for t, m in got] == [(0.05, "hello")]
    # Silence from 0.05: the server gives up at 30.05; the client echoes the CLOSE (30.07),
    # the server sends its FIN, and it is closed when the client's FIN comes back (30.09).
    gave_up = trace.first(kind="log", side="server", contains="heartbeat timeout")
    assert gave_up is not None
    assert gave_up.time == 30.05
    closed = trace.first(kind="closed", side="server")
    assert closed is not None
    assert (closed.time, closed.code) == (30.09, 4000)


def test_serve_and_connect_stack_hold_until_closed() -> None:
    with wssim.Simulation() as sim:
        sim.host("server").spawn(serve_stack(NO_HEARTBEAT))
        sim.host("client").spawn(connect_stack(NO_HEARTBEAT))
        sim.inject(faults.Crash("server"), at=5)
        trace = sim.run(until=10)
    closed = trace.first(kind="closed", side="client")
    assert closed is not None
    assert (closed.time, closed.code) == (5.01, 1006)


# TCP keepalive, the kernel's


def test_tcp_keepalive_defaults_are_linuxs_and_its_silence_follows_tcp7() -> None:
    # tcp(7): tcp_keepalive_time 7200, tcp_keepalive_intvl 75, tcp_keepalive_probes 9.
    assert TcpKeepalive() == TcpKeepalive(idle=7200, interval=75, count=9)
    assert TcpKeepalive().silence == 7875
    assert TcpKeepalive(30, 10, 3).silence == 60


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"idle": 0}, "idle must be an integer from 1 to 32767, got 0"),
        ({"interval": 32768}, "interval must be an integer from 1 to 32767"),
        ({"count": 128}, "count must be an integer from 1 to 127, got 128"),
        ({"count": 2.5}, "count must be an integer from 1 to 127, got 2.5"),
        ({"idle": True}, "idle must be an integer"),
    ],
)
def test_bad_tcp_keepalive_settings_name_the_option(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TcpKeepalive(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tcp_keepalive must be a TcpKeepalive or None"):
        Side(tcp_keepalive=(30, 10, 3))  # type: ignore[arg-type]


def test_tcp_keepalive_sets_the_sockets_options() -> None:
    calls: list[tuple[int, int, int]] = []

    class Sock:
        def setsockopt(self, level: int, option: int, value: int) -> None:
            calls.append((level, option, value))

    TcpKeepalive(30, 10, 3).apply(Sock())
    assert calls == [
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
        (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30),
        (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10),
        (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3),
    ]


TCP_ONLY = Stack(
    "tcp",
    Side(None, None),
    Side(None, None, tcp_keepalive=TcpKeepalive(30, 10, 3)),
    "TCP keepalive",
)


def test_a_stack_with_tcp_keepalive_alone_has_its_idle_as_period() -> None:
    assert (TCP_ONLY.period, TCP_ONLY.horizon()) == (30.0, 60.0)
    # With pings, the pings set the rhythm: the connection is never idle for 30 s.
    both = Stack("both", Side(), Side(tcp_keepalive=TcpKeepalive(30, 10, 3)))
    assert (both.period, both.horizon()) == (20.0, 60.0)
    linux = Stack("linux", Side(None, None), Side(None, None, tcp_keepalive=TcpKeepalive()))
    assert (linux.period, linux.horizon()) == (7200.0, 7875.0)


def test_connect_stack_turns_tcp_keepalive_on_and_a_dead_server_times_out() -> None:
    trace = run_stack(TCP_ONLY, fault=faults.PowerLoss("server"), at=60, until=300)
    # The 101 response arrives at 0.04: a probe 30 s later, answered at 30.06; the server
    # is dead by the next (60.06), and two more 10 s apart go unanswered: 60 s of silence.
    probes = trace.filter(kind="tcp", contains="keepalive probe")
    assert [(e.time, e.arrives) for e in probes] == [
        (30.04, 30.05),
        (60.06, None),
        (70.06, None),
        (80.06, None),
    ]
    gave_up = trace.first(kind="tcp", contains="keepalive:")
    assert gave_up is not None
    assert (gave_up.time, gave_up.side, gave_up.text) == (
        90.06,
        "client",
        "keepalive: 3 probes unanswered after 60 s of silence: connection timed out",
    )
    client = detect(trace, "client")
    assert (client.noticed, client.learned, client.code) == (90.06, 90.06, 1006)
    # The server's side has no keepalive: it sends no probe.
    assert all(e.side == "client" for e in probes)
