"""Measuring detection time and heartbeat bytes, from traces and from runs."""

from __future__ import annotations

import dataclasses

import matplotlib.pyplot as plt
import pytest
from websockets.frames import Opcode

from wssim import faults
from wssim.lab.detection import (
    Detection,
    DetectionRange,
    compare,
    compare_table,
    detect,
    frame_size,
    heartbeat_bytes,
    hourly_bytes,
    hourly_probes,
    keepalive_stack,
    measure,
    run_stack,
    sweep,
    sweep_table,
    tcp_keepalive_stack,
)
from wssim.plot import tradeoff
from wssim.toolkit.heartbeat import NO_HEARTBEAT, STACKS, Heartbeat, Side, Stack, TcpKeepalive
from wssim.trace import Event, FrameInfo, Tcp, Trace


def frame(
    opcode: Opcode, wire_size: int, *, masked: bool = False, data: str | None = None
) -> Event:
    info = FrameInfo(opcode, wire_size, wire_size, masked=masked, data=data)
    return Event(1.0, "frame", f"{opcode.name} ...", host="h", peer="x", arrives=1.01, detail=info)


# Bytes on the wire


@pytest.mark.parametrize(
    ("event", "size"),
    [
        (frame(Opcode.PING, 4), 2 + 4),
        (frame(Opcode.PONG, 4, masked=True), 2 + 4 + 4),
        (frame(Opcode.PING, 0), 2),
        (frame(Opcode.TEXT, 1), 3),
        (frame(Opcode.BINARY, 125), 2 + 125),
        (frame(Opcode.BINARY, 126), 2 + 2 + 126),
        (frame(Opcode.BINARY, 65535, masked=True), 2 + 2 + 65535 + 4),
        (frame(Opcode.BINARY, 70000), 2 + 8 + 70000),
    ],
)
def test_frame_size_adds_the_header_to_the_payload(event: Event, size: int) -> None:
    assert frame_size(event) == size


def test_frame_size_counts_the_compressed_payload() -> None:
    info = FrameInfo(Opcode.TEXT, 5, 7, masked=True, data="hello")
    event = Event(1.0, "frame", "TEXT 'hello' [5 bytes] (compressed to 7 bytes)", detail=info)
    assert frame_size(event) == 2 + 7 + 4


def test_frame_size_refuses_what_is_not_a_frame_on_the_wire() -> None:
    with pytest.raises(ValueError, match="event must be a frame on the wire"):
        frame_size(Event(1.0, "tcp", "FIN", detail=Tcp.FIN))
    logged = Event(1.0, "log", "> TEXT 'hi' [2 bytes]", detail=FrameInfo(Opcode.TEXT, 2, None))
    with pytest.raises(ValueError, match="event must be a frame on the wire"):
        frame_size(logged)


def test_frame_size_reads_what_the_wire_tap_saw() -> None:
    trace = run_stack(STACKS["websockets"], until=21)
    sizes = {e.side: frame_size(e) for e in trace.filter(kind="frame", contains="PING")}
    assert sizes == {"server": 2 + 4, "client": 2 + 4 + 4}


def test_heartbeat_bytes_counts_pings_pongs_and_heartbeat_messages_only() -> None:
    def at(t: float, event: Event) -> Event:
        return dataclasses.replace(event, time=t)

    trace = Trace(
        [
            at(1.0, frame(Opcode.PING, 4)),
            at(1.0, frame(Opcode.TEXT, 4, data="news")),
            at(2.0, frame(Opcode.TEXT, 16, masked=True, data='{"type": "ping"}')),
            at(2.0, frame(Opcode.TEXT, 4, masked=True, data='{"t\x1e')),
            at(2.5, frame(Opcode.BINARY, 2000, masked=True)),  # too large to keep: no data
            at(3.0, frame(Opcode.PONG, 4, masked=True)),
        ]
    )
    assert heartbeat_bytes(trace) == 6 + 10
    assert heartbeat_bytes(trace, messages=['{"type": "ping"}']) == 6 + 22 + 10
    assert heartbeat_bytes(trace, messages=['{"t\x1e']) == 6 + 10 + 10
    assert heartbeat_bytes(trace, messages=['{"type": "<ref>"}']) == 6 + 10
    assert heartbeat_bytes(trace, since=2.0, until=3.0) == 0
    assert heartbeat_bytes(trace, since=1.0, until=3.0, messages=['{"type": "ping"}']) == 6 + 22


@pytest.mark.parametrize(
    ("stack", "expected"),
    [
        # Each side: a 6-byte PING and a 6-byte PONG from the server, 10 each from the
        # (masking) client; 180 of each per hour.
        (STACKS["websockets"], 180 * 32),
        (keepalive_stack(20, 20, client_pings=False), 180 * 16),
        (STACKS["Socket.IO"], 144 * (3 + 7)),  # "2" from the server, "3" from the client
        (STACKS["SignalR"], 240 * (13 + 17)),  # 11 bytes each way, every 15 s
        (NO_HEARTBEAT, 0),
    ],
)
def test_hourly_bytes(stack: Stack, expected: int) -> None:
    assert hourly_bytes(stack) == expected


def test_hourly_bytes_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="hours must be a number > 0"):
        hourly_bytes(NO_HEARTBEAT, hours=0)
    with pytest.raises(ValueError, match=r"stack must be a wssim\.toolkit\.heartbeat\.Stack"):
        hourly_bytes("websockets")  # type: ignore[arg-type]


# When each side learned


def test_detect_reads_the_fault_and_the_closed_event() -> None:
    trace = run_stack(STACKS["websockets"], fault=faults.PowerLoss("client"), at=45, until=100)
    server = detect(trace, "server")
    assert server == Detection(
        "server",
        45.0,
        80.03,
        90.03,
        "ConnectionClosedError: sent 1011 (internal error) keepalive ping timeout; "
        "no close frame received",
        1006,
    )
    assert (server.delay, server.notice_delay) == (45.03, 35.03)
    # The client lost power: it never learned anything.
    assert detect(trace, "client") == Detection("client", 45.0, None, None, "", None)


def test_detect_takes_a_tcp_failure() -> None:
    # No heartbeat, but the server has something to send across a partition: TCP gives
    # up after 924.6 s of retransmissions.
    trace = run_stack(NO_HEARTBEAT, fault=faults.ResetPeer("client", "server"), at=10, until=20)
    found = detect(trace, "server")
    assert (found.learned, found.how, found.code) == (10.0, "connection reset by peer", 1006)


def test_detect_refuses_traces_without_a_fault_or_a_side() -> None:
    trace = run_stack(NO_HEARTBEAT, until=1)
    with pytest.raises(ValueError, match="the trace has no fault"):
        detect(trace, "server")
    with pytest.raises(ValueError, match="side must be 'client' or 'server'"):
        detect(trace, "proxy")


def test_measure_finds_the_best_and_worst_case_of_websockets_defaults() -> None:
    found = measure(STACKS["websockets"], faults.PowerLoss("client"))
    # The pong leaves the client at 60.04: a fault just before it is caught by the
    # ping of 60.03 (timeout 80.03, closed 90.03), one just after by the next one.
    assert [d.fault for d in found.samples] == [60.039999, 60.040001, 60.049999, 60.050001]
    assert found.delays() == (29.990001, 49.989999)
    assert found.delays(noticed=True) == (19.990001, 39.989999)
    assert (found.best.learned, found.worst.learned) == (90.03, 110.03)
    assert found == measure(STACKS["websockets"], faults.PowerLoss("client"))


def test_without_heartbeats_the_dead_peer_is_never_noticed() -> None:
    found = measure(NO_HEARTBEAT, faults.PowerLoss("client"), horizon=3600)
    assert found.delays() == (None, None)
    assert found.samples[0].fault == 1.0


def test_measure_checks_its_arguments() -> None:
    fault = faults.PowerLoss("client")
    with pytest.raises(ValueError, match="side must be 'client' or 'server'"):
        measure(NO_HEARTBEAT, fault, "proxy")
    with pytest.raises(ValueError, match=r"fault must be a wssim\.faults\.Fault"):
        measure(NO_HEARTBEAT, "power loss")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="horizon must be a number of seconds > 0"):
        measure(NO_HEARTBEAT, fault, horizon=-1)


def test_a_detection_range_with_a_never_has_no_worst() -> None:
    found = DetectionRange(
        "server",
        (
            Detection("server", 1.0, None, 31.0, "closed", 1006),
            Detection("server", 2.0, None, None, "", None),
        ),
    )
    assert found.delays() == (30.0, None)
    assert found.delays(noticed=True) == (None, None)
    assert found.worst.learned is None


# Sweeps and stacks


def test_sweep_measures_each_setting() -> None:
    points = sweep([20, 60], [5])
    assert [(p.ping_interval, p.best, p.worst, p.bytes_per_hour) for p in points] == [
        (20.0, 14.990001, 34.989999, 5760),  # 5 + 10 (- 10 ms) to 20 + 5 + 10 (- 10 ms)
        (60.0, 14.990001, 74.989999, 1920),
    ]
    table = str(sweep_table(points)).splitlines()
    assert table[2].split() == ["20", "5", "10", "14.990", "34.990", "5,760"]
    with pytest.raises(ValueError, match="at least one value"):
        sweep([], [5])
    with pytest.raises(ValueError, match="ping_timeout must be > 0"):
        sweep([20], [0])


def test_compare_stacks_on_a_partition() -> None:
    results = compare([STACKS["SignalR"], STACKS["Phoenix"]], faults.Partition("client", "server"))
    signalr, phoenix = results
    assert signalr.server is not None and signalr.client is not None
    # 30 s of silence: after 15 s if the next ping was about to arrive, 30 s if one just did
    # (a microsecond either way: the fault comes just before or just after an arrival).
    assert signalr.server.delays(noticed=True) == (15.000001, 29.999999)
    assert signalr.client.delays() == (25.000001, 39.999999)
    assert phoenix.server is not None and phoenix.client is not None
    assert phoenix.server.delays(noticed=True) == (30.000001, 59.999999)
    # The reply is lost in flight just before it lands (29.98) or the next heartbeat is.
    assert phoenix.client.delays(noticed=True) == (29.980001, 59.979999)
    assert (signalr.bytes_per_hour, phoenix.bytes_per_hour) == (7200, 12872)
    lines = str(compare_table(results)).splitlines()
    assert lines[2].split("  ")[0] == "SignalR"
    assert "15.00 - 30.00" in lines[2] and "25.00 - 40.00" in lines[2]


def test_an_application_heartbeat_measured_like_the_others() -> None:
    json = Stack(
        "json",
        Side(None, None, 5, Heartbeat(silence=25)),
        Side(None, None, 5, Heartbeat(interval=10, timeout=5, answer=False)),
        "application message",
    )
    found = measure(json, faults.PowerLoss("client"))
    # The client's ping leaves at 30.04 and arrives at 30.05. The power goes just before
    # it leaves: the server last heard at 20.05 and gives up at 45.05; just after: the
    # ping still lands, the server gives up at 55.05. Closing takes close_timeout more.
    assert found.delays(noticed=True) == (15.010001, 25.009999)
    assert found.delays() == (20.010001, 30.009999)
    assert [d.noticed for d in found.samples] == [45.05, 55.05, 55.05, 55.05]


def test_plot_tradeoff_draws_points_and_stacks() -> None:
    points = sweep([20], [5, 20])
    results = compare([STACKS["SignalR"]], faults.PowerLoss("client"), sides=["server"])
    ax = tradeoff(points, results)
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["20/5", "20/20", "SignalR"]
    assert ax.get_xscale() == "log"
    assert ax.get_ylabel() == "seconds until the server learns"
    plt.close(ax.figure)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="side must be"):
        tradeoff(points, side="proxy")


def test_a_frozen_server_drops_a_healthy_client() -> None:
    # The server's loop is blocked from 45 to 90 s: the client's ping of 60.04 is not
    # answered in time, the client gives up at 80.04; the thawed server answers too late.
    trace = run_stack(
        STACKS["websockets"], fault=faults.Freeze("server"), at=45, duration=45, until=120
    )
    client, server = detect(trace, "client"), detect(trace, "server")
    assert (client.noticed, client.learned, client.code) == (80.04, 90.01, 1006)
    assert (server.noticed, server.learned, server.code) == (None, 90.02, 1011)


# TCP keepalive


LINUX = tcp_keepalive_stack(TcpKeepalive())
TUNED = tcp_keepalive_stack(TcpKeepalive(30, 10, 3))


def test_tcp_keepalive_stack_turns_pings_off_and_keepalive_on_for_the_client() -> None:
    assert TUNED.name == "TCP keepalive 30/10/3"
    assert TUNED.client.tcp_keepalive == TcpKeepalive(30, 10, 3)
    assert TUNED.server.tcp_keepalive is None
    assert TUNED.server.ping_interval is None and TUNED.client.ping_interval is None
    with pytest.raises(ValueError, match="keepalive must be a TcpKeepalive"):
        tcp_keepalive_stack((30, 10, 3))  # type: ignore[arg-type]


def test_measure_tcp_keepalive_at_linux_defaults() -> None:
    found = measure(LINUX, faults.PowerLoss("server"), "client")
    # Healthy probes go at 7200.04, 14400.06, 21600.08 (each 7200 s after the last answer);
    # the last one lands at 21600.09. A power loss just before the answer leaves makes
    # that probe the first of nine unanswered: 9 x 75 s later (22275.08). Just after:
    # 7875 s after the answer lands (21600.10), at 29475.10.
    assert [d.fault for d in found.samples] == [
        21600.079999,
        21600.080001,
        21600.089999,
        21600.090001,
    ]
    assert [d.learned for d in found.samples] == [22275.08, 22275.08, 22275.08, 29475.1]
    assert found.delays() == (674.990001, 7875.009999)
    assert found.delays(noticed=True) == found.delays()  # the kernel gives up and closes
    assert found.worst.how == (
        "keepalive: 9 probes unanswered after 7875 s of silence: connection timed out"
    )
    assert found.worst.code == 1006


def test_measure_tcp_keepalive_tuned() -> None:
    found = measure(TUNED, faults.PowerLoss("server"), "client")
    # count x interval - 10 ms at best, idle + count x interval + 10 ms at worst.
    assert found.delays() == (29.990001, 60.009999)
    assert (found.best.learned, found.worst.learned) == (120.08, 150.1)


def test_tcp_keepalive_never_notices_a_frozen_process_and_pings_do() -> None:
    # The frozen server's kernel answers every probe.
    assert measure(TUNED, faults.Freeze("server"), "client").delays() == (None, None)
    pings = measure(STACKS["websockets"], faults.Freeze("server"), "client")
    assert pings.delays() == (29.990001, 49.989999)


def test_hourly_probes() -> None:
    # One probe per idle period plus a round trip (30.02 s): 479 in 4 hours.
    assert hourly_probes(TUNED, hours=4) == 119.75
    assert hourly_probes(TUNED) == 119
    assert hourly_probes(LINUX, hours=4) == 0.5
    assert hourly_probes(STACKS["websockets"]) == 0  # pings keep the connection busy
    both = Stack("both", Side(), Side(tcp_keepalive=TcpKeepalive(30, 10, 3)))
    assert hourly_probes(both) == 0
    with pytest.raises(ValueError, match="hours must be a number > 0"):
        hourly_probes(TUNED, hours=0)
