"""The fault catalogue: each fault's semantics at exact virtual times, and bad input."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

import wssim
from tests.helpers import echo_server
from wssim import faults
from wssim.trace import lifecycle

NO_PINGS: dict[str, Any] = {"ping_interval": None}


def closed(trace: wssim.Trace) -> list[tuple[float, str, int | None]]:
    return [(e.time, e.side, e.code) for e in trace.filter(kind="closed")]


def tcp(trace: wssim.Trace, **criteria: Any) -> list[tuple[float, str, str]]:
    return [(e.time, e.side, e.text) for e in trace.filter(kind="tcp", **criteria)]


def world(**kwargs: Any) -> wssim.Simulation:
    sim = wssim.Simulation(seed=0, latency=0.010, **kwargs)
    sim.host("server")
    sim.host("client")
    return sim


class Chat:
    """A client that sends a message at given times and records when each echo returns."""

    def __init__(self, at: list[float], **kwargs: Any) -> None:
        self.at = at
        self.kwargs = kwargs
        self.replies: list[tuple[float, str]] = []
        self.error: BaseException | None = None
        self.ws: ClientConnection | None = None

    async def __call__(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with connect("ws://server:8765", **self.kwargs) as ws:
                self.ws = ws
                for i, t in enumerate(self.at):
                    await asyncio.sleep(max(0.0, t - loop.time()))
                    await ws.send(f"m{i}")
                    reply = await ws.recv()
                    self.replies.append((round(loop.time(), 6), str(reply)))
                await ws.wait_closed()
        except (ConnectionClosed, OSError) as exc:
            self.error = exc


# Partition


def test_a_partition_healed_in_time_loses_nothing_and_both_stay_open() -> None:
    chat = Chat([2.0], **NO_PINGS)
    with world() as sim:
        sim.host("server").spawn(echo_server(ping_interval=None))
        sim.host("client").spawn(chat())
        sim.inject(faults.Partition("client", "server"), at=1, duration=4)
        trace = sim.run(until=60)
    # Sent at 2.0 into the cut; RTO 0.22 s (round trip + 200 ms): a tail-loss probe at 2.22,
    # retransmissions at 2.44, 2.88, 3.76 in vain, then at 5.52 (RTO doubling), after the
    # heal: arrives at 5.53, echoed back at 5.54.
    assert chat.replies == [(5.54, "m0")]
    assert tcp(trace, contains="retransmission") == [(5.52, "client", "retransmission (10 bytes)")]
    assert closed(trace) == []
    assert [(f.name, f.start, f.end, f.ended) for f in lifecycle.faults(trace)] == [
        ("partition", 1.0, 5.0, True)
    ]


def test_a_sender_gives_up_after_tcp_retries2() -> None:
    chat = Chat([2.0], **NO_PINGS)
    with world() as sim:
        sim.host("server").spawn(echo_server(ping_interval=None))
        sim.host("client").spawn(chat())
        sim.inject(faults.Partition("client", "server"), at=1)
        trace = sim.run(until=2000)
    # First retransmission at 2.44; the first timer past 924.6 s after it fires 944.84 s later.
    assert tcp(trace, contains="gave up") == [
        (947.28, "client", "gave up retransmitting after 945.28 s: connection timed out")
    ]
    assert closed(trace) == [(947.28, "client", 1006)]
    assert isinstance(chat.error, ConnectionClosed)
    assert isinstance(chat.error.__cause__, TimeoutError)


def test_an_idle_connection_across_a_partition_notices_nothing() -> None:
    chat = Chat([], **NO_PINGS)
    with world() as sim:
        sim.host("server").spawn(echo_server(ping_interval=None))
        sim.host("client").spawn(chat())
        sim.inject(faults.Partition("client", "server"), at=1)
        trace = sim.run(until=3600)
    assert closed(trace) == []
    assert [(e.side, e.state.name) for e in lifecycle.endpoints(trace)] == [
        ("client", "OPEN"),
        ("server", "OPEN"),
    ]


# Host faults


def test_a_process_crash_gives_the_peer_1006_within_one_trip() -> None:
    chat = Chat([], **NO_PINGS)
    with world() as sim:
        sim.host("server").spawn(echo_server(ping_interval=None))
        sim.host("client").spawn(chat())
        sim.inject(faults.Crash("server"), at=5)
        trace = sim.run(until=10)
    assert tcp(trace, side="server", contains="FIN") == [(5.0, "server", "FIN")]
    assert closed(trace) == [(5.01, "client", 1006)]


def test_a_crash_with_unread_data_sends_rst() -> None:
    async def deaf(ws: ServerConnection) -> None:
        await asyncio.sleep(3600)  # never reads what arrives

    async def server() -> None:
        async with serve(deaf, "server", 8765, ping_interval=None, max_queue=1) as s:
            await s.serve_forever()

    async def client() -> None:
        async with connect("ws://server:8765", ping_interval=None) as ws:
            for _ in range(4):
                await ws.send("x")
            await ws.wait_closed()

    with world() as sim:
        sim.host("server").spawn(server())
        sim.host("client").spawn(client())
        sim.inject(faults.Crash("server"), at=5)
        trace = sim.run(until=10)
    assert tcp(trace, contains="RST") == [(5.0, "server", "RST")]
    assert tcp(trace, side="client", contains="reset") == [
        (5.01, "client", "connection reset by peer")
    ]


def test_a_crash_with_a_duration_restarts_the_host_and_its_services() -> None:
    chat = Chat([1.0, 20.0], **NO_PINGS)
    with world() as sim:
        server = sim.host("server")
        server.service(echo_server, 8765)
        sim.host("client").spawn(chat())
        sim.inject(faults.Crash("server"), at=5, duration=3)
        trace = sim.run(until=30)
        assert [t.get_name() for t in server.tasks] == ["echo_server"]
    assert [(e.time, e.host, e.text) for e in trace.filter(kind="host")] == [
        (8.0, "server", "restart")
    ]
    assert tcp(trace, side="server", contains="listening") == [
        (0.0, "server", "listening on server:8765"),
        (8.0, "server", "listening on server:8765"),
    ]
    assert chat.replies == [(1.02, "m0")]
    assert [(f.name, f.start, f.end) for f in lifecycle.faults(trace)] == [("crash", 5.0, 8.0)]


def test_a_power_loss_is_silent_until_the_peer_sends() -> None:
    with world() as sim:
        sim.host("server").spawn(echo_server(ping_interval=None))
        sim.host("client").spawn(Chat([], **NO_PINGS)())
        sim.inject(faults.PowerLoss("client"), at=5)
        trace = sim.run(until=3600)
    # Nothing at all leaves the dead host: the server never learns.
    assert tcp(trace, since=1) == []
    assert closed(trace) == []
    ends = {e.side: (e.closed_at, e.close_text) for e in lifecycle.endpoints(trace)}
    assert ends["client"][0] == 5.0
    assert ends["server"] == (None, "")


def test_a_power_loss_is_found_by_the_peers_keepalive() -> None:
    with world() as sim:
        sim.host("server").spawn(echo_server())  # websockets' default keepalive: 20 s, 20 s
        sim.host("client").spawn(Chat([], **NO_PINGS)())
        sim.inject(faults.PowerLoss("client"), at=5)
        trace = sim.run(until=3600)
    # The server pings at 20.03 (20 s after opening); no pong by 40.03: it fails the
    # connection with 1011, then gives up on the closing handshake after close_timeout
    # (10 s) and aborts: close code 1006, nothing having been received.
    pings = trace.filter(kind="frame", side="server", contains="PING")
    assert [(e.time, e.arrives) for e in pings] == [(20.03, None)]
    assert [e.text for e in trace.filter(kind="frame", contains="CLOSE")] == [
        "CLOSE 1011 (internal error) keepalive ping timeout [24 bytes]"
    ]
    assert closed(trace) == [(50.03, "server", 1006)]


def test_after_a_power_loss_and_reboot_old_connections_get_rst() -> None:
    chat = Chat([1.0, 30.0], **NO_PINGS)
    with world() as sim:
        sim.host("server").service(echo_server, 8765)
        sim.host("client").spawn(chat())
        sim.inject(faults.PowerLoss("server"), at=5, duration=10)
        trace = sim.run(until=60)
    # The message at 30 s reaches a host that rebooted at 15 s and knows nothing of it.
    assert tcp(trace, since=15, contains="RST") == [(30.01, "server", "RST")]
    assert closed(trace) == [(30.02, "client", 1006)]
    assert [(f.name, f.start, f.end) for f in lifecycle.faults(trace)] == [
        ("power loss", 5.0, 15.0)
    ]


def test_a_frozen_server_answers_nothing_then_everything() -> None:
    chat = Chat([10.0], **NO_PINGS)
    with world() as sim:
        sim.host("server").spawn(echo_server(ping_interval=None))
        sim.host("client").spawn(chat())
        sim.inject(faults.Freeze("server"), at=5, duration=20)
        trace = sim.run(until=60)
    # Sent at 10, in the server's kernel at 10.01, read when the freeze ends at 25.
    assert chat.replies == [(25.01, "m0")]
    assert closed(trace) == []
    assert [(f.name, f.start, f.end) for f in lifecycle.faults(trace)] == [("freeze", 5.0, 25.0)]


def test_a_freeze_longer_than_ping_timeout_drops_a_healthy_client() -> None:
    with world() as sim:
        sim.host("server").spawn(echo_server(ping_interval=None))
        sim.host("client").spawn(Chat([])())  # default keepalive on the client
        sim.inject(faults.Freeze("server"), at=5, duration=60)
        trace = sim.run(until=120)
    # The client pings at 20.04; the frozen server cannot answer; at 40.04 the client
    # fails the connection (1011) and, with nothing coming back, aborts 10 s later.
    assert closed(trace)[0] == (50.04, "client", 1006)


def test_a_suspended_machine_is_cut_off_and_wakes_up_to_an_rst() -> None:
    with world() as sim:
        sim.host("server").spawn(echo_server())
        sim.host("client").spawn(Chat([])())
        sim.inject(faults.Suspend("client"), at=5, duration=60)
        trace = sim.run(until=120)
    assert closed(trace) == [(50.03, "server", 1006), (65.02, "client", 1006)]
    assert [(f.name, f.start, f.end) for f in lifecycle.faults(trace)] == [("suspend", 5.0, 65.0)]


# Path faults


def test_latency_applies_for_its_duration_then_the_link_comes_back() -> None:
    chat = Chat([1.0, 10.0, 30.0], **NO_PINGS)
    with world() as sim:
        sim.host("server").spawn(echo_server(ping_interval=None))
        sim.host("client").spawn(chat())
        sim.inject(faults.Latency("client", "server", latency=0.5), at=5, duration=20)
        sim.run(until=60)
        assert sim.link("client", "server").latency == 0.010
    assert chat.replies == [(1.02, "m0"), (11.0, "m1"), (30.02, "m2")]


def test_bandwidth_makes_a_fast_writer_wait() -> None:
    sent: list[float] = []

    async def producer(ws: ServerConnection) -> None:
        for _ in range(10):
            await ws.send(b"x" * 10_000)
            sent.append(round(asyncio.get_running_loop().time(), 6))

    async def server() -> None:
        async with serve(producer, "server", 8765, compression=None) as s:
            await s.serve_forever()

    received: list[float] = []

    async def client() -> None:
        async with connect("ws://server:8765", compression=None) as ws:
            async for _ in ws:
                received.append(round(asyncio.get_running_loop().time(), 6))

    with world() as sim:
        sim.host("server").spawn(server())
        sim.host("client").spawn(client())
        sim.inject(faults.Bandwidth("client", "server", rate=10_000))
        sim.run(until=60)
    # 10,000-byte messages (plus a 4-byte header) at 10,000 bytes/s: one a second.
    # 10,000-byte messages (plus a 4-byte header) at 10,000 bytes/s: one each 1.0004 s,
    # after the handshake's own bytes took their turn on the wire.
    assert received == pytest.approx([1.0798 + 1.0004 * i for i in range(10)], abs=1e-9)
    # The kernel's send buffer (64 KiB) and websockets' write buffer (write_limit, 32 KiB)
    # absorb the first messages; then flow control holds the writer until the wire has
    # drained enough, so the last send() returns at 3.07 s, not at once.
    assert sent[:2] == [0.0491, 0.0491]
    assert sent[-1] == 3.0706


def test_a_reader_that_stops_reading_closes_the_window_and_blocks_the_writer() -> None:
    sent: list[float] = []

    async def producer(ws: ServerConnection) -> None:
        for _ in range(100):
            await ws.send(b"x" * 10_000)
            sent.append(round(asyncio.get_running_loop().time(), 6))

    async def server() -> None:
        async with serve(producer, "server", 8765, compression=None) as s:
            await s.serve_forever()

    got: list[int] = []

    async def client() -> None:
        async with connect("ws://server:8765", compression=None, max_queue=4) as ws:
            await asyncio.sleep(30)  # busy elsewhere: reads nothing for 30 s
            async for _ in ws:
                got.append(1)

    with world() as sim:
        sim.host("server").spawn(server())
        sim.host("client").spawn(client())
        trace = sim.run(until=60)
    assert len(got) == 100
    zero = tcp(trace, contains="zero window")
    assert zero and zero[0][0] < 1
    blocked = [t for t in sent if t >= 30]
    # Some sends waited until the client read again at 30 s: flow control worked.
    assert 0 < len(blocked) < 100
    assert max(sent) < 31


def test_reset_peer_resets_both_ends() -> None:
    with world() as sim:
        sim.host("server").spawn(echo_server())
        sim.host("client").spawn(Chat([])())
        sim.inject(faults.ResetPeer("client", "server", timeout=1.0), at=5)
        trace = sim.run(until=20)
    assert closed(trace) == [(6.0, "client", 1006), (6.0, "server", 1006)]
    assert tcp(trace, contains="reset by peer") == [
        (6.0, "client", "connection reset by peer"),
        (6.0, "server", "connection reset by peer"),
    ]


def test_slow_close_delays_the_fins() -> None:
    async def client() -> None:
        async with connect("ws://server:8765", ping_interval=None) as ws:
            await ws.send("bye")
            await ws.recv()

    with world() as sim:
        sim.host("server").spawn(echo_server(ping_interval=None))
        sim.host("client").spawn(client())
        sim.inject(faults.SlowClose("client", "server", delay=3.0))
        trace = sim.run(until=60)
    # The closing handshake ends at 0.07; the server's FIN, sent then, lands at 3.08.
    fins = trace.filter(kind="tcp", contains="FIN")
    assert [(e.time, e.side, e.arrives) for e in fins] == [
        (0.07, "server", 3.08),
        (3.08, "client", 6.09),
    ]
    assert closed(trace) == [(3.08, "client", 1000), (6.09, "server", 1000)]


def test_limit_data_closes_both_ends_after_the_limit() -> None:
    chat = Chat([1.0, 2.0, 3.0], **NO_PINGS, compression=None)
    with world() as sim:
        sim.host("server").spawn(echo_server(ping_interval=None, compression=None))
        sim.host("client").spawn(chat())
        # The opening handshake takes about 200 bytes each way; a message 8 bytes.
        handshake = 300
        sim.inject(faults.LimitData("client", "server", limit=handshake), at=0.5)
        trace = sim.run(until=10)
    assert chat.replies == [(1.02, "m0"), (2.02, "m1"), (3.02, "m2")]  # counted from 0.5
    assert closed(trace) == []
    with world() as sim:
        chat = Chat([1.0, 2.0, 3.0], **NO_PINGS, compression=None)
        sim.host("server").spawn(echo_server(ping_interval=None, compression=None))
        sim.host("client").spawn(chat())
        sim.inject(faults.LimitData("client", "server", limit=12), at=0.5)
        trace = sim.run(until=10)
    # m0 (8 bytes) passes each way; m1 would bring the client's side to 16 > 12 bytes.
    assert chat.replies == [(1.02, "m0")]
    assert tcp(trace, contains="limit_data") == [
        (2.0, "client", "limit_data: 12 bytes passed; the proxy closes both ends")
    ]
    assert isinstance(chat.error, ConnectionClosed)


def test_the_slicer_cuts_writes_and_websockets_reassembles_them() -> None:
    chat = Chat([1.0], **NO_PINGS, compression=None)
    with world() as sim:
        sim.host("server").spawn(echo_server(ping_interval=None, compression=None))
        sim.host("client").spawn(chat())
        sim.inject(faults.Slicer("client", "server", average_size=2, delay=0.001), at=0.5)
        sim.run(until=10)
    # The client's frame is 8 bytes (masked): 4 pieces, the last 3 ms late; the server's
    # is 4 bytes: 2 pieces, 1 ms late.
    assert chat.replies == [(1.024, "m0")]


def test_the_slicer_is_deterministic() -> None:
    def run() -> str:
        chat = Chat([1.0, 2.0], **NO_PINGS)
        with world() as sim:
            sim.host("server").spawn(echo_server(ping_interval=None))
            sim.host("client").spawn(chat())
            sim.inject(faults.Slicer("client", "server", 5, size_variation=4, delay=0.002))
            return str(sim.run(until=10).table())

    assert run() == run()


def test_an_idle_timeout_drops_an_idle_flow_silently() -> None:
    chat = Chat([1.0, 100.0], **NO_PINGS)
    with world() as sim:
        sim.host("server").spawn(echo_server(ping_interval=None))
        sim.host("client").spawn(chat())
        sim.inject(faults.IdleTimeout("client", "server", timeout=60))
        trace = sim.run(until=2000)
    # Last segment sent at 1.01 (the echo); forgotten at 61.01; the message at 100 vanishes and TCP
    # retransmits in vain until it gives up 945.28 s later. The server never knows.
    assert tcp(trace, contains="idle_timeout")[0][0] == 61.01
    assert closed(trace) == [(1045.28, "client", 1006)]


def test_an_idle_timeout_can_reset_both_ends() -> None:
    with world() as sim:
        sim.host("server").spawn(echo_server(ping_interval=None))
        sim.host("client").spawn(Chat([1.0], **NO_PINGS)())
        sim.inject(faults.IdleTimeout("client", "server", timeout=60, action="reset"))
        trace = sim.run(until=200)
    assert closed(trace) == [(61.01, "client", 1006), (61.01, "server", 1006)]


def test_heartbeats_keep_a_flow_alive_through_an_idle_timeout() -> None:
    with world() as sim:
        sim.host("server").spawn(echo_server())  # pings every 20 s
        sim.host("client").spawn(Chat([1.0, 500.0])())
        sim.inject(faults.IdleTimeout("client", "server", timeout=60, action="reset"))
        trace = sim.run(until=600)
    assert closed(trace) == []


# Bad input


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: faults.Partition("a", "a"), "two different hosts"),
        (lambda: faults.Latency("a", "b", latency=-1), "latency must be >= 0"),
        (lambda: faults.Latency("a", "b", latency=math.nan), "latency must be a finite"),
        (lambda: faults.Bandwidth("a", "b", rate=0), "rate must be a finite number"),
        (lambda: faults.SlowClose("a", "b", delay=0), "delay must be > 0"),
        (lambda: faults.Slicer("a", "b", average_size=0), "average_size must be an integer >= 1"),
        (lambda: faults.Slicer("a", "b", 4, size_variation=4), "size_variation must be below"),
        (lambda: faults.LimitData("a", "b", limit=-1), "limit must be an integer >= 0"),
        (lambda: faults.ResetPeer("a", "b", timeout=-0.5), "timeout must be >= 0"),
        (lambda: faults.IdleTimeout("a", "b", timeout=0), "timeout must be > 0"),
        (lambda: faults.IdleTimeout("a", "b", 60, action="fin"), "action must be 'drop'"),  # type: ignore[arg-type]
        (lambda: faults.Crash(""), "host must be a host name"),
    ],
)
def test_bad_parameters_name_the_parameter(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_inject_checks_hosts_times_and_contradictions() -> None:
    with world() as sim:
        with pytest.raises(ValueError, match=r"b='nowhere' is not a host"):
            sim.inject(faults.Partition("client", "nowhere"))
        with pytest.raises(ValueError, match="host='nowhere' is not a host"):
            sim.inject(faults.Crash("nowhere"))
        with pytest.raises(ValueError, match="duration must be >= 0"):
            sim.inject(faults.Crash("server"), duration=-1)
        with pytest.raises(ValueError, match="duration must be > 0"):
            sim.inject(faults.Crash("server"), duration=0)
        with pytest.raises(ValueError, match="at must be a finite"):
            sim.inject(faults.Crash("server"), at=math.inf)
        with pytest.raises(TypeError, match=r"fault must be a wssim\.faults\.Fault"):
            sim.inject("crash")  # type: ignore[arg-type]
        sim.inject(faults.Partition("client", "server"), at=10, duration=10)
        with pytest.raises(ValueError, match="overlaps Partition"):
            sim.inject(faults.Partition("server", "client"), at=15)
        sim.inject(faults.Partition("server", "client"), at=20)  # right after: fine
        sim.inject(faults.Freeze("server"), at=10, duration=5)
        with pytest.raises(ValueError, match=r"overlaps Freeze\(host='server'\)"):
            sim.inject(faults.Crash("server"), at=12)
        sim.run(until=1)
        with pytest.raises(ValueError, match=r"at=0\.5 is in the past"):
            sim.inject(faults.Crash("server"), at=0.5)


# Freezes, and faults at the same instant


def test_a_reset_reaching_a_frozen_host_is_reported_when_it_thaws() -> None:
    chat = Chat([], **NO_PINGS)
    with world() as sim:
        sim.host("server").spawn(echo_server(ping_interval=None))
        sim.host("client").spawn(chat())
        sim.inject(faults.Freeze("server"), at=1, duration=5)
        sim.inject(faults.ResetPeer("client", "server"), at=2)
        trace = sim.run(until=10)
    # The kernel is reset at 2 s; the frozen process learns it when it runs again, at 6 s.
    assert tcp(trace, contains="reset by peer") == [
        (2.0, "client", "connection reset by peer"),
        (2.0, "server", "connection reset by peer"),
    ]
    assert closed(trace) == [(2.0, "client", 1006), (6.0, "server", 1006)]


def test_a_thaw_keeps_the_bytes_in_order() -> None:
    chat = Chat([1.5, 1.99], **NO_PINGS)
    with world() as sim:
        sim.host("server").spawn(echo_server(ping_interval=None))
        sim.host("client").spawn(chat())
        sim.inject(faults.Freeze("server"), at=1, duration=1)
        sim.run(until=10)
    # m0 waited in the server's kernel from 1.51 s; it is read first, at the thaw; m1 is
    # sent only after m0's reply (the client waits for each reply).
    assert chat.replies == [(2.01, "m0"), (2.03, "m1")]


def test_data_a_frozen_host_received_survives_a_partition_that_follows() -> None:
    received: list[tuple[float, str]] = []

    async def recorder(ws: ServerConnection) -> None:
        async for message in ws:
            received.append((round(asyncio.get_running_loop().time(), 6), str(message)))

    async def server() -> None:
        async with serve(recorder, "server", 8765, ping_interval=None) as s:
            await s.serve_forever()

    async def client() -> None:
        async with connect("ws://server:8765", ping_interval=None) as ws:
            await asyncio.sleep(2 - 0.04)
            await ws.send("m0")
            await asyncio.sleep(2)
            await ws.send("m1")
            await ws.wait_closed()

    with world() as sim:
        sim.host("server").spawn(server())
        sim.host("client").spawn(client())
        sim.inject(faults.Freeze("server"), at=1, duration=4)
        sim.inject(faults.Partition("client", "server"), at=3, duration=3)
        sim.run(until=20)
    # m0 reached the server's kernel before the cut: read at the thaw (5 s); m1, sent into
    # the cut at 4 s, is retransmitted after the heal.
    assert [m for _, m in received] == ["m0", "m1"]
    assert received[0][0] == 5.0


def test_a_crash_of_a_frozen_host_with_unread_data_sends_rst() -> None:
    chat = Chat([2.0], **NO_PINGS)
    with world() as sim:
        sim.host("server").spawn(echo_server(ping_interval=None))
        sim.host("client").spawn(chat())
        sim.inject(faults.Freeze("server"), at=1, duration=10)
        sim.at(5, sim.host("server").crash)
        trace = sim.run(until=20)
    assert tcp(trace, side="server", since=1) == [(5.0, "server", "RST")]
    # The freeze ends where the crash begins: the band does not run on past it.
    assert [(f.name, f.start, f.end) for f in lifecycle.faults(trace, until=20)] == [
        ("freeze", 1.0, 5.0),
        ("crash", 5.0, 20.0),
    ]


def test_faults_at_one_instant_run_in_the_order_injected() -> None:
    with world() as sim:
        sim.host("server").spawn(echo_server())
        sim.host("client").spawn(Chat([])())
        sim.inject(faults.Freeze("server"), at=1, duration=1)
        sim.inject(faults.Freeze("server"), at=2, duration=1)
        trace = sim.run(until=5)
    assert [(e.time, e.text.split(":")[0]) for e in trace.filter(kind="fault")] == [
        (1.0, "freeze"),
        (2.0, "thaw"),
        (2.0, "freeze"),
        (3.0, "thaw"),
    ]


def test_reset_peer_leaves_closed_connections_alone() -> None:
    async def brief() -> None:
        async with connect("ws://server:8765", ping_interval=None):
            pass

    with world() as sim:
        sim.host("server").spawn(echo_server(ping_interval=None))
        sim.host("client").spawn(brief())
        sim.inject(faults.ResetPeer("client", "server", timeout=30))
        trace = sim.run(until=60)
    assert tcp(trace, contains="reset") == []


def test_a_fault_injected_twice_starts_afresh() -> None:
    slicer = faults.Slicer("client", "server", 5, size_variation=4, delay=0.002)

    def run() -> str:
        chat = Chat([1.0, 2.0], **NO_PINGS)
        with world() as sim:
            sim.host("server").spawn(echo_server(ping_interval=None))
            sim.host("client").spawn(chat())
            sim.inject(slicer)
            return str(sim.run(until=10).table())

    assert run() == run()


def test_changing_a_link_keeps_its_bandwidth() -> None:
    with world() as sim:
        sim.inject(faults.Bandwidth("client", "server", rate=1000))
        sim.run(until=1)
        assert sim.link("client", "server", latency=0.05).bandwidth == 1000


def test_an_idle_timeout_that_rejects_answers_the_next_sender_with_a_reset() -> None:
    # A firewall's `reject with tcp reset`, or AWS's Network Load Balancer: the flow is
    # forgotten in silence; the next segment is answered with an RST to its sender only.
    seen: list[tuple[float, str, str]] = []

    async def server() -> None:
        async def push(ws: ServerConnection) -> None:
            await asyncio.sleep(90 - asyncio.get_running_loop().time())
            try:
                await ws.send("news")
                await ws.recv()
            except ConnectionClosed as exc:
                now = asyncio.get_running_loop().time()
                seen.append((now, "server", type(exc.__cause__).__name__))

        async with serve(push, "server", 8765, ping_interval=None):
            await asyncio.Future()

    async def client() -> None:
        async with connect("ws://server:8765", ping_interval=None) as ws:
            await ws.recv()

    with world() as sim:
        sim.host("server").spawn(server())
        sim.host("client").spawn(client())
        sim.inject(faults.IdleTimeout("client", "server", 60, "reject"), at=0)
        trace = sim.run(until=200)
    assert tcp(trace, since=1) == [
        (
            60.03,
            "client",
            "idle_timeout: the middlebox forgot this flow after 60 s idle; it will answer "
            "the next segment with an RST",
        ),
        (90.01, "server", "idle_timeout: the middlebox does not know this flow; RST to the sender"),
        (90.01, "server", "connection reset by peer"),
    ]
    assert seen == [(90.01, "server", "ConnectionResetError")]
    assert closed(trace) == [(90.01, "server", 1006)]  # the client never learns
