"""TCP as Linux does it: closing, resets, retransmission, window probes, keepalive, options.

Each test pins one behaviour of Linux's TCP, with its source, at exact virtual times. The
reality suite (``reality/``) runs the same scenarios on real sockets.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

import wssim
from wssim import faults
from wssim.net.sockopt import SimSocket
from wssim.net.tcp import GIVE_UP_AFTER, give_up_after

# ---------------------------------------------------------------- helpers


def tcp(trace: wssim.Trace, **criteria: Any) -> list[tuple[float, str, str]]:
    return [(e.time, e.side, e.text) for e in trace.filter(kind="tcp", **criteria)]


class Recorder(asyncio.Protocol):
    """A raw protocol that records what reaches it, and when."""

    def __init__(self, log: list[tuple[float, str, str]], name: str) -> None:
        self.log = log
        self.name = name
        self.transport: asyncio.Transport | None = None

    def _now(self) -> float:
        return round(asyncio.get_running_loop().time(), 6)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.log.append((self._now(), self.name, f"data {data.decode()}"))

    def eof_received(self) -> bool:
        self.log.append((self._now(), self.name, "EOF"))
        return True  # keep our side open: the test decides

    def connection_lost(self, exc: Exception | None) -> None:
        what = type(exc).__name__ if exc is not None else "None"
        self.log.append((self._now(), self.name, f"lost {what}"))


def raw_pair(
    server_side: Any, client_side: Any, *, until: float, latency: float = 0.010, **inject: Any
) -> tuple[wssim.Trace, list[tuple[float, str, str]]]:
    """Run a raw asyncio server and client; ``server_side(proto)`` and
    ``client_side(proto)`` are coroutines acting on the connected protocols."""
    log: list[tuple[float, str, str]] = []

    async def server() -> None:
        connected: asyncio.Future[Recorder] = asyncio.get_running_loop().create_future()

        def factory() -> Recorder:
            proto = Recorder(log, "server")
            connected.set_result(proto)
            return proto

        await asyncio.get_running_loop().create_server(factory, None, 9000)
        await server_side(await connected)

    async def client() -> None:
        _, proto = await asyncio.get_running_loop().create_connection(
            lambda: Recorder(log, "client"), "server", 9000
        )
        await client_side(proto)

    with wssim.Simulation(seed=0, latency=latency) as sim:
        sim.host("server").spawn(server())
        sim.host("client").spawn(client())
        for at, fault, *duration in inject.get("faults", []):
            sim.inject(fault, at=at, duration=duration[0] if duration else None)
        trace = sim.run(until=until)
    return trace, log


def seen_by(log: list[tuple[float, str, str]], side: str, before: float) -> list[Any]:
    """What ``side`` saw before ``before`` (the end of the run closes everything)."""
    return [entry for entry in log if entry[1] == side and entry[0] < before]


async def idle(_: Recorder) -> None:
    await asyncio.Event().wait()


def sleep_until(t: float) -> Any:
    return asyncio.sleep(t - asyncio.get_running_loop().time())


def sock(proto: Recorder) -> SimSocket:
    assert proto.transport is not None
    s = proto.transport.get_extra_info("socket")
    assert isinstance(s, SimSocket)
    return s


# ---------------------------------------------------------------- closing


def test_abort_closes_the_socket_with_a_fin_when_nothing_is_unread() -> None:
    # A real asyncio transport.abort() closes the socket; the kernel sends a FIN unless
    # received data is unread (tcp_close in net/ipv4/tcp.c; socket(7), SO_LINGER).
    async def client(proto: Recorder) -> None:
        await sleep_until(1)
        assert proto.transport is not None
        proto.transport.abort()

    trace, log = raw_pair(idle, client, until=2)
    assert tcp(trace, since=1) == [(1.0, "client", "FIN")]
    assert seen_by(log, "server", 2) == [(1.01, "server", "EOF")]


def test_abort_resets_when_received_data_is_unread() -> None:
    async def server(proto: Recorder) -> None:
        await sleep_until(1)
        assert proto.transport is not None
        proto.transport.write(b"unread")

    async def client(proto: Recorder) -> None:
        assert proto.transport is not None
        proto.transport.pause_reading()
        await sleep_until(2)
        proto.transport.abort()

    trace, log = raw_pair(server, client, until=3)
    assert tcp(trace, since=2) == [
        (2.0, "client", "RST"),
        (2.01, "server", "connection reset by peer"),
    ]
    assert seen_by(log, "server", 3)[-1] == (2.01, "server", "lost ConnectionResetError")


def test_so_linger_zero_makes_close_send_a_reset() -> None:
    async def client(proto: Recorder) -> None:
        sock(proto).setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await sleep_until(1)
        assert proto.transport is not None
        proto.transport.close()

    trace, log = raw_pair(idle, client, until=2)
    assert tcp(trace, since=1)[0] == (1.0, "client", "RST")
    assert seen_by(log, "server", 2) == [(1.01, "server", "lost ConnectionResetError")]


def test_a_reset_after_the_peers_fin_is_a_broken_pipe() -> None:
    # tcp_reset (net/ipv4/tcp_input.c): in CLOSE_WAIT the error is EPIPE, not ECONNRESET.
    async def server(proto: Recorder) -> None:
        await sleep_until(1)
        assert proto.transport is not None
        proto.transport.close()  # FIN at 1.0

    async def client(proto: Recorder) -> None:
        await sleep_until(2)
        assert proto.transport is not None
        proto.transport.write(b"too late")  # the closed socket answers with an RST

    _, log = raw_pair(server, client, until=3)
    assert seen_by(log, "client", 3) == [
        (1.01, "client", "EOF"),
        (2.02, "client", "lost BrokenPipeError"),
    ]


# ---------------------------------------------------------------- retransmission


def test_tcp_retries2_is_linux_tcp_model_timeout() -> None:
    # tcp_model_timeout (net/ipv4/tcp_timer.c): 200 ms doubling, capped at 120 s.
    assert GIVE_UP_AFTER == 924.6
    assert give_up_after(3) == pytest.approx(3.0)  # tcp_retries1: about 3 s
    assert give_up_after(9) == pytest.approx(204.6)
    assert give_up_after(10) == pytest.approx(324.6)


def test_a_tail_loss_probe_then_backed_off_retransmissions() -> None:
    # RTO = round trip (2 x 50 ms) + 200 ms = 0.3 s. The tail-loss probe goes one RTO after
    # the send (RFC 8985; Linux caps its probe timeout at the RTO), the first RTO
    # retransmission one RTO after the probe, then the RTO doubles (RFC 6298 5.5).
    async def client(proto: Recorder) -> None:
        await sleep_until(1)
        assert proto.transport is not None
        proto.transport.write(b"x")

    heal = 1 + 0.3 + 0.3 + 0.6 + 1.2 + 0.01  # just after the third RTO retransmission
    trace, log = raw_pair(
        idle,
        client,
        until=10,
        latency=0.05,
        faults=[(0.5, faults.Partition("client", "server"), heal - 0.5)],
    )
    # The retransmission after the heal comes 2.4 s after the previous one, at 5.8.
    assert tcp(trace, contains="retransmission") == [(5.8, "client", "retransmission (1 bytes)")]
    assert seen_by(log, "server", 10) == [(5.85, "server", "data x")]


def test_tcp_user_timeout_counts_from_the_first_retransmission() -> None:
    # TCP_USER_TIMEOUT (tcp(7)): Linux counts it from retrans_stamp, the first RTO
    # retransmission, and clamps the timer so it fires exactly then.
    async def client(proto: Recorder) -> None:
        sock(proto).setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 30_000)
        await sleep_until(10)
        assert proto.transport is not None
        proto.transport.write(b"into the void")

    trace, log = raw_pair(
        idle, client, until=100, faults=[(5, faults.Partition("client", "server"))]
    )
    # Sent at 10, RTO 0.22 s: probe at 10.22, first retransmission at 10.44, gives up at 40.44.
    assert tcp(trace, contains="timed out") == [
        (40.44, "client", "gave up retransmitting after 30.44 s: connection timed out")
    ]
    assert seen_by(log, "client", 100) == [(40.44, "client", "lost TimeoutError")]


# ---------------------------------------------------------------- zero-window probes


def stalled_reader(
    power_off_at: float | None, user_timeout_ms: int = 0
) -> tuple[wssim.Trace, list[Any]]:
    """A server that stops reading; a client that writes until its buffer fills."""
    log: list[Any] = []

    async def server() -> None:
        async def handler(ws: ServerConnection) -> None:
            assert ws.transport is not None
            ws.transport.pause_reading()
            await asyncio.Event().wait()

        async with serve(handler, "server", 8765, ping_interval=None):
            await asyncio.Event().wait()

    async def client() -> None:
        async with connect("ws://server:8765", ping_interval=None, max_queue=None) as ws:
            if user_timeout_ms:
                sock = ws.transport.get_extra_info("socket")
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, user_timeout_ms)
            try:
                while True:
                    await ws.send(b"x" * 65536)
            except ConnectionClosed as exc:
                log.append((asyncio.get_running_loop().time(), type(exc.__cause__).__name__))

    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(server())
        sim.host("client").spawn(client())
        if power_off_at is not None:
            sim.inject(faults.PowerLoss("server"), at=power_off_at)
        trace = sim.run(until=5000)
    return trace, log


def test_a_peer_that_stops_reading_keeps_the_sender_waiting_for_ever() -> None:
    # RFC 1122 4.2.2.17: the sender stays open as long as the receiver answers its probes.
    trace, log = stalled_reader(power_off_at=None)
    assert seen_by(log, "client", 1000) == []
    probes = trace.filter(kind="tcp", contains="zero-window probe")
    assert len(probes) > 15  # answered, again and again, 120 s apart once backed off
    assert probes[-1].time - probes[-2].time == pytest.approx(120)


def test_a_peer_that_stops_reading_then_loses_power_times_out() -> None:
    # tcp_probe_timer (net/ipv4/tcp_timer.c): tcp_retries2 = 15 unanswered probes.
    trace, log = stalled_reader(power_off_at=1000)
    timed_out = trace.first(kind="tcp", contains="zero-window probes unanswered")
    assert timed_out is not None
    assert log == [(timed_out.time, "TimeoutError")]
    # Backed off to 120 s before the power went: 15 more probes, 120 s apart.
    assert 1000 + 15 * 120 <= timed_out.time <= 1000 + 16 * 120


def test_tcp_user_timeout_ends_a_window_closed_too_long_even_if_the_peer_answers() -> None:
    # tcp_probe_timer: with TCP_USER_TIMEOUT, the time since the first zero-window probe
    # counts whether or not the probes are answered; only an opening window resets it.
    trace, log = stalled_reader(power_off_at=None, user_timeout_ms=30_000)
    first = trace.first(kind="tcp", contains="zero-window probe")
    timed_out = trace.first(kind="tcp", contains="window closed for")
    assert first is not None and timed_out is not None
    assert timed_out.time == pytest.approx(first.time + 30)
    assert timed_out.text == "window closed for 30 s: connection timed out"
    assert log == [(pytest.approx(first.time + 30), "TimeoutError")]


# ---------------------------------------------------------------- keepalive


def keepalive_run(
    fault: faults.Fault, *, options: dict[int, int] | None = None, until: float = 9000
) -> tuple[wssim.Trace, list[tuple[float, str, str]]]:
    async def client(proto: Recorder) -> None:
        s = sock(proto)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in (options or {}).items():
            s.setsockopt(socket.IPPROTO_TCP, option, value)
        await asyncio.Event().wait()

    return raw_pair(idle, client, until=until, faults=[(100, fault)])


def test_keepalive_at_linux_defaults_gives_up_after_two_hours_and_eleven_minutes() -> None:
    # tcp(7): tcp_keepalive_time 7200, tcp_keepalive_intvl 75, tcp_keepalive_probes 9. The
    # last segment heard is the handshake's SYN-ACK at 0.02.
    trace, log = keepalive_run(faults.PowerLoss("server"))
    probes = tcp(trace, contains="keepalive probe")
    assert [t for t, _, _ in probes] == [round(7200.02 + 75 * k, 2) for k in range(9)]
    assert tcp(trace, contains="keepalive:") == [
        (
            7875.02,
            "client",
            "keepalive: 9 probes unanswered after 7875 s of silence: connection timed out",
        )
    ]
    assert seen_by(log, "client", 9000) == [(7875.02, "client", "lost TimeoutError")]


def test_keepalive_tuned_detects_a_dead_peer_in_ninety_seconds() -> None:
    tuned = {socket.TCP_KEEPIDLE: 60, socket.TCP_KEEPINTVL: 10, socket.TCP_KEEPCNT: 3}
    trace, log = keepalive_run(faults.PowerLoss("server"), options=tuned, until=400)
    # Probes at 60, 70, 80 s after the SYN-ACK (0.02), answered until the power goes at 100,
    # so silence counts from the answer to the probe at 80.02 (back at 80.04).
    assert [t for t, _, _ in tcp(trace, contains="keepalive probe")] == [
        60.02,
        120.04,
        130.04,
        140.04,
    ]
    assert seen_by(log, "client", 400) == [(150.04, "client", "lost TimeoutError")]


def test_keepalive_to_a_rebooted_peer_is_answered_with_a_reset() -> None:
    tuned = {socket.TCP_KEEPIDLE: 60, socket.TCP_KEEPINTVL: 10, socket.TCP_KEEPCNT: 3}

    async def client(proto: Recorder) -> None:
        s = sock(proto)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in tuned.items():
            s.setsockopt(socket.IPPROTO_TCP, option, value)
        await asyncio.Event().wait()

    # The server reboots while the network is cut: its FIN never gets out, and after the
    # reboot its kernel knows nothing of the connection. The probe at 60.02 is lost in the
    # cut; the one at 70.02 reaches the new kernel, which answers with an RST (RFC 9293
    # 3.10.7.1: a segment for a connection that does not exist).
    trace, log = raw_pair(
        idle,
        client,
        until=400,
        faults=[
            (30, faults.Partition("client", "server"), 40),
            (40, faults.Crash("server"), 5),
        ],
    )
    assert [t for t, _, _ in tcp(trace, contains="keepalive probe")] == [60.02, 70.02]
    assert seen_by(log, "client", 400) == [(70.04, "client", "lost ConnectionResetError")]


def test_keepalive_probes_keep_an_idle_nat_flow_alive() -> None:
    tuned = {socket.TCP_KEEPIDLE: 30, socket.TCP_KEEPINTVL: 10, socket.TCP_KEEPCNT: 3}
    trace, log = keepalive_run(
        faults.IdleTimeout("client", "server", timeout=60), options=tuned, until=1000
    )
    assert trace.first(kind="tcp", contains="idle_timeout:") is None
    assert seen_by(log, "client", 1000) == []


# ---------------------------------------------------------------- socket options


def test_socket_options_read_back_with_linux_defaults() -> None:
    seen: dict[str, Any] = {}

    async def client(proto: Recorder) -> None:
        s = sock(proto)
        seen["defaults"] = (
            s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            s.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
            s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
            s.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8),
        )
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 45)
        seen["set"] = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
        with pytest.raises(OSError) as bad:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 0)
        seen["bad"] = (bad.value.errno, str(bad.value))
        with pytest.raises(OSError) as unknown:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        seen["unknown"] = unknown.value.errno

    raw_pair(idle, client, until=1)
    assert seen["defaults"] == (0, 7200, 75, 9, 0, 1, struct.pack("ii", 0, 0))
    assert seen["set"] == 45
    assert seen["bad"] == (errno.EINVAL, "[Errno 22] TCP_KEEPCNT must be from 1 to 127, got 0")
    assert seen["unknown"] == errno.ENOPROTOOPT


def test_accepted_sockets_inherit_the_listening_sockets_options() -> None:
    seen = []

    async def server() -> None:
        async def handler(ws: ServerConnection) -> None:
            s = ws.transport.get_extra_info("socket")
            seen.append(s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))
            seen.append(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE))

        async with serve(handler, "server", 8765) as listener:
            (listening,) = listener.sockets
            listening.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 120)
            await asyncio.Event().wait()

    async def client() -> None:
        async with connect("ws://server:8765"):
            pass

    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(server())
        sim.host("client").spawn(client())
        sim.run(until=5)
    assert seen == [1, 120]


# ---------------------------------------------------------------- a frozen process resumes


def test_a_thawed_process_runs_its_overdue_timers_before_it_reads() -> None:
    # CPython after SIGCONT: the interrupted epoll_wait returns no events, so the loop runs
    # the due timers (and the tasks they wake) before it reads the sockets.
    async def server(proto: Recorder) -> None:
        await sleep_until(5)  # due at 5, while frozen
        proto.log.append((round(asyncio.get_running_loop().time(), 6), "server", "timer"))

    async def client(proto: Recorder) -> None:
        await sleep_until(3)
        assert proto.transport is not None
        proto.transport.write(b"hello")  # arrives at 3.01, while frozen

    _, log = raw_pair(server, client, until=12, faults=[(1, faults.Freeze("server"), 9)])
    assert seen_by(log, "server", 12) == [
        (10.0, "server", "timer"),
        (10.0, "server", "data hello"),
    ]
