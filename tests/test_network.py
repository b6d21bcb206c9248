"""The simulated network, exercised through the real websockets library and raw asyncio."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

import wssim
from tests.helpers import echo, echo_server


def times(trace: wssim.Trace, **criteria: object) -> list[tuple[float, str]]:
    return [(e.time, e.text) for e in trace.filter(**criteria)]  # type: ignore[arg-type]


def test_echo_exchange_has_exact_times_and_a_clean_close() -> None:
    replies = []

    async def client() -> None:
        async with connect("ws://server:8765") as ws:
            await ws.send("hello")
            replies.append(await ws.recv())

    with wssim.Simulation(seed=0, latency=0.010) as sim:
        sim.host("server").spawn(echo_server())
        sim.host("client").spawn(client())
        trace = sim.run(until=1)

    assert replies == ["hello"]
    assert times(trace, kind="tcp", conn="c1") == [
        (0.0, "SYN"),
        (0.01, "SYN-ACK"),
        (0.02, "connected"),
        (0.03, "accepted"),
        (0.07, "FIN"),  # the server closes TCP first (RFC 6455, 7.1.1)
        (0.08, "FIN"),
    ]
    assert [(e.time, e.where, e.text) for e in trace.filter(kind=["http", "frame"])] == [
        (0.02, "client → server", "GET / (Upgrade: websocket)"),
        (0.03, "server → client", "101 Switching Protocols"),
        (0.04, "client → server", "TEXT 'hello' [5 bytes] (compressed to 7 bytes)"),
        (0.05, "server → client", "TEXT 'hello' [5 bytes] (compressed to 7 bytes)"),
        (0.06, "client → server", "CLOSE 1000 (OK) [2 bytes]"),
        (0.07, "server → client", "CLOSE 1000 (OK) [2 bytes]"),
    ]
    closed = trace.filter(kind="closed")
    assert [(e.time, e.side, e.code, e.text) for e in closed] == [
        (0.08, "client", 1000, "ConnectionClosedOK: sent 1000 (OK); then received 1000 (OK)"),
        (0.09, "server", 1000, "ConnectionClosedOK: received 1000 (OK); then sent 1000 (OK)"),
    ]


def test_wire_events_know_when_they_arrive() -> None:
    async def client() -> None:
        async with connect("ws://server:8765", compression=None) as ws:
            await ws.send("x")
            await ws.recv()

    with wssim.Simulation(latency=0.025) as sim:
        sim.host("server").spawn(echo_server(compression=None))
        sim.host("client").spawn(client())
        trace = sim.run(until=1)
    for event in trace.filter(kind=["http", "frame"]):
        assert event.arrives == pytest.approx(event.time + 0.025)


def test_connecting_to_a_port_nobody_listens_on_is_refused_after_one_round_trip() -> None:
    outcome = []

    async def client() -> None:
        try:
            await connect("ws://server:8765")
        except ConnectionRefusedError as exc:
            outcome.append((asyncio.get_running_loop().time(), exc.errno))

    with wssim.Simulation(latency=0.010) as sim:
        sim.host("server")
        sim.host("client").spawn(client())
        trace = sim.run(until=1)
    assert outcome == [(0.02, errno.ECONNREFUSED)]
    assert times(trace, kind="tcp") == [(0.0, "SYN"), (0.01, "RST"), (0.02, "connection refused")]


def test_unreachable_host_sees_syn_retransmissions_then_a_timeout() -> None:
    outcome = []

    async def client() -> None:
        try:
            await connect("ws://server:8765", open_timeout=None)
        except TimeoutError as exc:
            # websockets wraps the socket's ETIMEDOUT in its own message.
            assert isinstance(exc.__cause__, TimeoutError)
            outcome.append((asyncio.get_running_loop().time(), exc.__cause__.errno))

    with wssim.Simulation() as sim:
        sim.host("server").spawn(echo_server())
        sim.host("client").spawn(client())
        sim.partition("client", "server")
        trace = sim.run(until=200)
    syns = [e for e in trace.filter(kind="tcp") if e.text.startswith("SYN")]
    assert [e.time for e in syns] == [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 63.0]
    assert all(e.arrives is None for e in syns)
    assert outcome == [(127.0, errno.ETIMEDOUT)]


def test_websockets_open_timeout_cuts_the_syn_retransmissions_short() -> None:
    outcome = []

    async def client() -> None:
        try:
            await connect("ws://server:8765")
        except TimeoutError as exc:
            outcome.append((asyncio.get_running_loop().time(), str(exc)))

    with wssim.Simulation() as sim:
        sim.host("server").spawn(echo_server())
        sim.host("client").spawn(client())
        sim.partition("client", "server")
        sim.run(until=60)
    assert outcome == [(10.0, "timed out during opening handshake")]


def test_a_partition_healed_in_time_loses_nothing_and_both_sides_stay_open() -> None:
    received: list[tuple[float, str]] = []
    states = []

    async def server_handler(ws) -> None:  # type: ignore[no-untyped-def]
        async for message in ws:
            received.append((asyncio.get_running_loop().time(), message))

    async def server() -> None:
        async with serve(server_handler, "server", 8765, ping_interval=None) as s:
            await s.serve_forever()

    async def client() -> None:
        async with connect("ws://server:8765", ping_interval=None) as ws:
            await asyncio.sleep(10 - asyncio.get_running_loop().time())
            await ws.send("sent during the partition")
            await asyncio.sleep(100)
            states.append(ws.state.name)

    with wssim.Simulation() as sim:
        sim.host("server").spawn(server())
        sim.host("client").spawn(client())
        sim.at(5, sim.partition, "client", "server")
        sim.at(20, sim.heal, "client", "server")
        trace = sim.run(until=120)
    # Sent at 10. The RTO is the round trip plus 200 ms: 0.22 s. A tail-loss probe at 10.22
    # (RFC 8985), then retransmissions 0.22, 0.44, 0.88, 1.76, 3.52 and 7.04 s apart (RTO
    # doubling): the first after the heal at 20 is at 24.08, delivered 10 ms later.
    assert received == [(24.09, "sent during the partition")]
    assert states == ["OPEN"]
    assert trace.first(kind="tcp", contains="retransmission").time == 24.08
    assert trace.filter(kind="closed", until=110) == wssim.Trace()


def test_an_idle_connection_across_a_partition_notices_nothing() -> None:
    async def server() -> None:
        async with serve(echo, "server", 8765, ping_interval=None) as s:
            await s.serve_forever()

    async def client() -> None:
        async with connect("ws://server:8765", ping_interval=None) as ws:
            await ws.wait_closed()

    with wssim.Simulation() as sim:
        sim.host("server").spawn(server())
        sim.host("client").spawn(client())
        sim.at(1, sim.partition, "client", "server")
        trace = sim.run(until=3600)
    assert trace.filter(kind=["closed", "frame"], since=1) == wssim.Trace()
    assert trace.filter(kind="tcp", since=1) == wssim.Trace()


def test_a_sender_gives_up_at_the_first_timer_past_tcp_retries2() -> None:
    seen = []

    async def server() -> None:
        async with serve(echo, "server", 8765, ping_interval=None) as s:
            await s.serve_forever()

    async def client() -> None:
        async with connect("ws://server:8765", ping_interval=None, close_timeout=None) as ws:
            await asyncio.sleep(10 - asyncio.get_running_loop().time())
            await ws.send("into the void")
            try:
                await ws.recv()
            except ConnectionClosed as exc:
                seen.append((asyncio.get_running_loop().time(), type(exc).__name__, str(exc)))

    with wssim.Simulation() as sim:
        sim.host("server").spawn(server())
        sim.host("client").spawn(client())
        sim.at(5, sim.partition, "client", "server")
        trace = sim.run(until=2000)
    # Sent at 10, RTO 0.22 s: tail-loss probe at 10.22, first retransmission at 10.44.
    # Linux allows 924.6 s from there (tcp_retries2 = 15) and checks it when a timer fires:
    # timers 0.44, 0.88, ... 112.64 s apart (224.84 s in all after nine), then every 120 s,
    # so the first past 924.6 s is at 10.44 + 944.84 = 955.28.
    gave_up = trace.first(kind="tcp", contains="gave up")
    assert gave_up.time == 955.28
    assert gave_up.text == "gave up retransmitting after 945.28 s: connection timed out"
    assert seen == [
        (pytest.approx(955.28), "ConnectionClosedError", "no close frame received or sent")
    ]
    # The server never learns: it has no data to send and no heartbeat.
    assert trace.filter(kind="closed", side="server") == wssim.Trace()


def test_a_crashed_peer_is_noticed_within_one_latency() -> None:
    seen = []

    async def client() -> None:
        async with connect("ws://server:8765") as ws:
            try:
                await ws.recv()
            except ConnectionClosed as exc:
                seen.append((asyncio.get_running_loop().time(), ws.close_code, str(exc)))

    with wssim.Simulation(latency=0.010) as sim:
        server = sim.host("server")
        server.spawn(echo_server())
        sim.host("client").spawn(client())
        sim.at(5, server.crash)
        trace = sim.run(until=10)
    assert seen == [(5.01, 1006, "no close frame received or sent")]
    assert times(trace, kind="tcp", since=5) == [(5.0, "FIN"), (5.01, "FIN")]
    # The dead server says nothing more: no log, no closed event.
    assert trace.filter(host="server", kind=["log", "closed"], since=5) == wssim.Trace()


def test_a_crash_with_unread_data_resets_the_connection() -> None:
    events = []

    class Stalled(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            transport.pause_reading()  # the application stops reading

    class Sender(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            transport.write(b"unread")

        def connection_lost(self, exc: Exception | None) -> None:
            events.append((asyncio.get_running_loop().time(), type(exc).__name__))

    async def server() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(Stalled, None, 9000)
        await asyncio.Event().wait()

    async def client() -> None:
        await asyncio.get_running_loop().create_connection(Sender, "server", 9000)

    with wssim.Simulation(latency=0.010) as sim:
        server_host = sim.host("server")
        server_host.spawn(server())
        sim.host("client").spawn(client())
        sim.at(1, server_host.crash)
        trace = sim.run(until=2)
    assert times(trace, kind="tcp", since=1) == [(1.0, "RST"), (1.01, "connection reset by peer")]
    assert events == [(1.01, "ConnectionResetError")]


def test_data_sent_to_a_closed_socket_is_answered_with_a_reset() -> None:
    events = []

    class CloseAtOnce(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transport.close()

    class LateWriter(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def eof_received(self) -> bool:
            # Half-closed by the peer: keep writing anyway.
            assert isinstance(self.transport, asyncio.Transport)
            self.transport.write(b"too late")
            return True

        def connection_lost(self, exc: Exception | None) -> None:
            events.append((asyncio.get_running_loop().time(), type(exc).__name__))

    async def server() -> None:
        await asyncio.get_running_loop().create_server(CloseAtOnce, None, 9000)
        await asyncio.Event().wait()

    async def client() -> None:
        await asyncio.get_running_loop().create_connection(LateWriter, "server", 9000)

    with wssim.Simulation(latency=0.010) as sim:
        sim.host("server").spawn(server())
        sim.host("client").spawn(client())
        trace = sim.run(until=1)
    # The server closes at once (FIN at 0.03); the client writes when the FIN arrives at
    # 0.04; the closed socket answers at 0.05 with an RST, which arrives at 0.06. The
    # client's socket had the FIN (CLOSE_WAIT): Linux reports EPIPE, not ECONNRESET
    # (tcp_reset in net/ipv4/tcp_input.c).
    assert times(trace, kind="tcp", host="server")[-1] == (0.05, "RST")
    assert events == [(0.06, "BrokenPipeError")]


def test_jitter_never_reorders_the_bytes_of_a_connection() -> None:
    received = []
    sent_count = 200

    async def server_handler(ws) -> None:  # type: ignore[no-untyped-def]
        async for message in ws:
            received.append(int(message))

    async def server() -> None:
        async with serve(server_handler, "server", 8765) as s:
            await s.serve_forever()

    async def client() -> None:
        async with connect("ws://server:8765") as ws:
            for i in range(sent_count):
                await ws.send(str(i))
                await asyncio.sleep(0.001)

    with wssim.Simulation(seed=4, latency=0.010, jitter=0.050) as sim:
        sim.host("server").spawn(server())
        sim.host("client").spawn(client())
        trace = sim.run(until=10)
    assert received == list(range(sent_count))
    frames = trace.filter(kind="frame", side="client", contains="TEXT")
    arrivals = [e.arrives for e in frames]
    assert arrivals == sorted(arrivals)
    delays = {round(e.arrives - e.time, 6) for e in frames}
    assert len(delays) > 10  # jitter really varies the delay
    assert all(0.010 <= d <= 0.060 + 0.2 for d in delays)


def test_unknown_host_names_fail_to_resolve_like_dns() -> None:
    errors = []

    async def client() -> None:
        try:
            await connect("ws://nowhere:8765")
        except OSError as exc:
            errors.append(type(exc))

    with wssim.Simulation() as sim:
        sim.host("client").spawn(client())
        sim.run(until=1)
    assert errors == [socket.gaierror]


def test_a_server_binds_only_to_its_own_host() -> None:
    errors = []

    async def wrong_host() -> None:
        try:
            await serve(echo, "server", 8765)
        except OSError as exc:
            errors.append(exc.errno)

    with wssim.Simulation() as sim:
        sim.host("server")
        sim.host("client").spawn(wrong_host())
        sim.run(until=1)
    assert errors == [errno.EADDRNOTAVAIL]


def test_two_servers_cannot_listen_on_the_same_port() -> None:
    errors = []

    async def second() -> None:
        try:
            await serve(echo, "server", 8765)
        except OSError as exc:
            errors.append(exc.errno)

    with wssim.Simulation() as sim:
        server = sim.host("server")
        server.spawn(echo_server())
        sim.at(1, server.spawn, second())
        sim.run(until=2)
    assert errors == [errno.EADDRINUSE]


def test_server_shutdown_closes_connections_with_1001() -> None:
    seen = []

    async def server() -> None:
        async with serve(echo, "server", 8765) as s:
            await asyncio.sleep(2)
            s.close()
            await s.wait_closed()

    async def client() -> None:
        async with connect("ws://server:8765") as ws:
            try:
                await ws.recv()
            except ConnectionClosed as exc:
                seen.append((asyncio.get_running_loop().time(), type(exc).__name__, str(exc)))

    with wssim.Simulation(latency=0.010) as sim:
        sim.host("server").spawn(server())
        sim.host("client").spawn(client())
        trace = sim.run(until=5)
    # The CLOSE arrives at 2.01 and the client answers; recv() raises once TCP is closed:
    # the server closes it when the answer arrives (2.02), its FIN arrives at 2.03.
    assert seen == [
        (2.03, "ConnectionClosedOK", "received 1001 (going away); then sent 1001 (going away)")
    ]
    assert trace.first(kind="frame", side="server", contains="CLOSE").code == 1001


def test_a_restarted_host_comes_back_empty() -> None:
    with wssim.Simulation() as sim:
        server = sim.host("server")
        task = server.spawn(echo_server())
        sim.run(until=1)
        server.crash()
        sim.run(until=2)
        assert task.cancelled()
        assert server.tasks == []
        assert server.state is wssim.HostState.CRASHED
        coro = echo_server()
        with pytest.raises(ValueError, match="host 'server' has crashed: call restart"):
            server.spawn(coro)
        server.restart()
        assert server.state is wssim.HostState.UP
        server.spawn(echo_server())
        trace = sim.run(until=3)
    assert [(e.time, e.kind, e.text) for e in trace.filter(kind=["fault", "host"])] == [
        (1.0, "fault", "crash: every process dies; the OS closes their sockets"),
        (2.0, "host", "restart"),
    ]
    listening = trace.filter(kind="log", contains="server listening")
    assert [e.time for e in listening] == [0.0, 2.0]


def test_restarting_a_running_host_kills_its_processes_first() -> None:
    with wssim.Simulation() as sim:
        server = sim.host("server")
        task = server.spawn(echo_server())
        sim.run(until=1)
        server.restart()
        sim.run(until=2)
        assert task.cancelled()
        assert server.state is wssim.HostState.UP


def test_proxy_settings_of_the_machine_do_not_apply_inside_a_simulation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, "http://proxy.invalid:3128")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    replies = []

    async def client() -> None:
        async with connect("ws://server:8765") as ws:
            await ws.send("direct")
            replies.append(await ws.recv())

    with wssim.Simulation() as sim:
        sim.host("server").spawn(echo_server())
        sim.host("client").spawn(client())
        sim.run(until=1)
    assert replies == ["direct"]


def test_a_crash_lets_the_dead_processes_unwind() -> None:
    async def client() -> None:
        async with connect("ws://server:8765") as ws:
            await ws.wait_closed()

    with wssim.Simulation() as sim:
        server = sim.host("server")
        task = server.spawn(echo_server())
        sim.host("client").spawn(client())
        sim.at(1, server.crash)
        trace = sim.run(until=2)
        # The server's handler and the server itself finished (cancelled), instead of
        # waiting for ever for their connection to be lost.
        assert task.cancelled()
        assert server.tasks == []
    assert trace.filter(host="server", kind=["log", "closed"], since=1) == wssim.Trace()
