"""What each figure says it drew (wssim.plot.drawn), checked against the trace it drew."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import matplotlib.pyplot as plt
import pytest
from matplotlib.axes import Axes
from websockets.asyncio.client import connect

import wssim
from tests.helpers import echo_server
from tests.test_lifecycle import crash_trace, echo_trace, stay_connected
from wssim import faults
from wssim.lab.detection import Detection, DetectionRange, StackResult, SweepPoint
from wssim.lab.storm import StormResult
from wssim.plot import collisions, drawn, storm_attempts, storm_connected, timeline, tradeoff
from wssim.plot.storms import attempts_over_time
from wssim.toolkit.heartbeat import STACKS
from wssim.trace.lifecycle import endpoints


@pytest.fixture(autouse=True)
def close_figures() -> Iterator[None]:
    yield
    plt.close("all")


async def stay_connected_resetting() -> None:
    """A client whose socket closes with an RST (``SO_LINGER`` on, zero timeout)."""
    async with connect("ws://server:8765") as ws:
        sock = ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await ws.wait_closed()


def frozen_server_trace() -> wssim.Trace:
    """The server's loop is frozen from 1 s to 61 s; the client gives up meanwhile, and
    its socket resets the connection, which the server's kernel learns at once."""
    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(echo_server())
        sim.host("client").spawn(stay_connected_resetting())
        sim.inject(faults.Freeze("server"), at=1, duration=60)
        return sim.run(until=120)


def power_loss_trace() -> wssim.Trace:
    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(echo_server(ping_interval=None))
        sim.host("client").spawn(stay_connected())
        sim.inject(faults.PowerLoss("client"), at=10)
        return sim.run(until=3610)


def test_a_trace_knows_how_far_its_run_went() -> None:
    trace = power_loss_trace()
    assert trace.end == 10.0  # the last event
    assert trace.ran_until == 3610.0  # the run
    assert trace.filter(kind="fault").ran_until == 3610.0
    assert trace[:3].ran_until == 3610.0
    assert wssim.Trace(list(trace)).ran_until == 10.0  # events alone end with the last one
    assert wssim.Trace(list(trace)) == trace  # traces compare by their events


def test_nothing_drawn_is_a_lookup_error() -> None:
    _figure, ax = plt.subplots()
    with pytest.raises(LookupError):
        drawn(ax)


def test_a_lane_open_at_the_end_spans_the_run_and_ends_open() -> None:
    trace = power_loss_trace()
    shown = drawn(timeline(trace))

    assert shown.kind == "timeline"
    assert shown.run_until == 3610.0
    assert shown.xlim[1] >= 3610.0
    assert shown.cut == ""
    client, server = shown.lane("c1", "client"), shown.lane("c1", "server")
    assert (client.end, client.closed_at, client.open_end) == (10.0, 10.0, False)
    assert client.outcome == "power loss"
    assert (server.end, server.closed_at, server.open_end) == (3610.0, None, True)
    assert shown.band("lost power").start == 10.0


def test_a_timeline_cut_short_says_where() -> None:
    shown = drawn(timeline(power_loss_trace(), until=100))
    assert shown.cut == "cut at 100 s; the run went on to 3610 s"
    assert shown.lane("c1", "server").open_end
    assert shown.lane("c1", "server").end == 100.0
    ax = timeline(crash_trace(), since=20, until=25)
    assert drawn(ax).cut == "20 s to 25 s of a run of 30 s"
    assert ax.get_xlabel() == "virtual time (s): 20 s to 25 s of a run of 30 s"


def test_a_run_whose_lanes_all_ended_stops_at_its_last_event_and_says_so() -> None:
    trace = echo_trace()
    shown = drawn(timeline(trace))
    assert shown.cut == f"nothing happens after {trace.end:g} s; the run went on to 1 s"
    assert all(not lane.open_end for lane in shown.lanes)
    assert [lane.outcome for lane in shown.lanes] == ["1000", "1000"]


def test_a_frozen_server_learns_late_and_the_lane_says_both() -> None:
    trace = frozen_server_trace()
    shown = drawn(timeline(trace))
    server = shown.lane("c1", "server")
    [end] = endpoints(trace.filter(conn="c1", side="server"))
    seen = trace.last(kind="closed", side="server")
    assert seen is not None and seen.closed is not None
    # The application learned it when its loop ran again; its kernel knew before.
    assert server.closed_at == seen.time == 61.0
    assert server.end == 61.0
    assert server.kernel_closed_at == end.closed_at
    assert end.closed_at is not None and end.closed_at < 61.0
    assert server.frozen == ((1.0, 61.0),)
    assert server.outcome == "1011"
    band = shown.band("server frozen")
    assert (band.start, band.end, band.on) == (1.0, 61.0, "lanes")
    client = shown.lane("c1", "client")
    assert client.frozen == () and client.kernel_closed_at is None
    assert "process stopped (frozen)" in shown.legend
    assert "closed by the kernel" in shown.legend


def test_a_clients_timeline_shows_its_servers_crash_and_return() -> None:
    ax = timeline(crash_trace(), hosts="client0", by="host")
    shown = drawn(ax)
    crash = shown.band("server crashed")
    assert (crash.start, crash.end, crash.end_label) == (5.0, 9.0, "server back")
    assert "server back" in shown.notes


def test_a_freeze_of_a_peer_is_named_on_the_lanes_it_touches() -> None:
    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(echo_server())
        for i in range(3):
            sim.host(f"client{i}").spawn(stay_connected())
        sim.inject(faults.Freeze("client1"), at=1)
        trace = sim.run(until=5)
    ax = timeline(trace, hosts="server")
    shown = drawn(ax)
    assert [lane.peer for lane in shown.lanes] == ["", "client1 frozen", ""]
    assert shown.band("client1 frozen").on == "peers"
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "server (c2): client1 frozen" in labels


def test_labels_near_the_right_edge_stay_clear_of_the_legend() -> None:
    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(echo_server())
        sim.host("client").spawn(stay_connected())
        sim.at(1, sim.host("server").crash)
        trace = sim.run(until=120)
    ax = timeline(trace)
    assert collisions(ax) == []
    assert collisions(timeline(power_loss_trace())) == []


def test_collisions_finds_text_written_over_text() -> None:
    _figure, ax = plt.subplots()
    ax.text(0.5, 0.5, "one")
    ax.text(0.5, 0.5, "two")
    ax.plot([0, 1], [0, 1], label="line")
    ax.legend(loc="center")
    found = collisions(ax)
    assert ("one", "two") in found
    assert ("one", "legend") in found


def storm_result(name: str, per_second: list[int]) -> StormResult:
    return StormResult(
        strategy=name,
        clients=1000,
        crash_at=25.0,
        restart_at=35.0,
        attempts=sum(per_second),
        refused_tcp=0,
        refused_503=0,
        attempts_up=0,
        peak_rate=max(per_second[10:]),
        half_back=5.0,
        all_back=20.0,
        longest_outage=30.0,
        attempts_per_second=per_second,
        connected=[(0.0, 1000), (25.0, 0), (40.0, 500), (60.0, 1000)],
        events=0,
        trace=None,
    )


def test_storm_attempts_marks_the_restart_and_cuts_the_y_axis_where_asked() -> None:
    per_second = [2000, 700, 0, 0, 0, 0, 0, 0, 0, 0, 122, 90, 40, 0]
    ax = storm_attempts([storm_result("full jitter", per_second)], rate=100, ymax=300)
    shown = drawn(ax)
    assert shown.ylim == (0.0, 300.0)
    assert shown.cut == "y axis cut at 300: higher peaks are written at the top"
    assert shown.notes == ("2,000",)  # the clipped peak, written
    assert shown.curve("full jitter").peak == 2000
    assert max(per_second[10:]) < shown.ylim[1]  # the peaks after the restart show
    down = shown.band("server down")
    assert (down.start, down.end, down.end_label) == (0.0, 10.0, "server back")
    assert [line.y for line in shown.lines] == [100]
    assert collisions(ax) == []


def test_storm_connected_draws_every_strategy() -> None:
    results = [storm_result(n, [10] * 14) for n in ("full jitter", "equal jitter")]
    shown = drawn(storm_connected(results, until=60))
    assert [s.label for s in shown.series] == ["full jitter", "equal jitter"]
    assert shown.band("server down").end == 10.0


def test_attempts_over_time_names_each_fault_of_the_server() -> None:
    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(echo_server())
        sim.host("client").spawn(stay_connected())
        sim.inject(faults.Freeze("server"), at=2, duration=3)
        sim.inject(faults.Crash("server"), at=8, duration=2)
        trace = sim.run(until=12)
    ax = attempts_over_time({"one": [1, 0, 0, 2] * 3}, trace=trace, rate=50)
    shown = drawn(ax)
    assert [(b.label, b.start, b.end) for b in shown.bands] == [
        ("server frozen", 2.0, 5.0),
        ("server crashed", 8.0, 10.0),
    ]
    assert [t.get_text() for t in ax.texts][:2] == ["frozen", "crashed"]
    assert shown.lines[0].y == 50
    assert collisions(ax) == []


def test_timelines_of_the_tests_traces_never_collide() -> None:
    for trace in (echo_trace(), crash_trace(), frozen_server_trace()):
        ax: Axes = timeline(trace)
        assert collisions(ax) == [], trace


def test_tradeoff_draws_every_bar_at_its_bytes_per_hour() -> None:
    # Three bars cost 5,760 bytes/hour, two of them with overlapping ranges: they share
    # that x, told apart by brackets beside them; none is moved along the axis.
    points = [
        SweepPoint(20, 5, 10, 14.99, 34.99, 5760),
        SweepPoint(20, 20, 10, 29.99, 49.99, 5760),
        SweepPoint(40, 20, 10, 29.99, 69.99, 2880),
    ]

    def dead_at(fault: float, learned: float) -> Detection:
        return Detection("server", fault, None, learned, "closed", 1006)

    stack = StackResult(
        STACKS["websockets"],
        DetectionRange("server", (dead_at(45, 74.98), dead_at(45, 94.98))),
        None,
        5760,
    )
    ax = tradeoff(points, [stack])
    shown = drawn(ax)
    sweep = shown.curve("websockets keepalive (interval/timeout)")
    assert sweep.x == (5760, 5760, 2880)
    assert (sweep.low, sweep.y) == ((14.99, 29.99, 29.99), (34.99, 49.99, 69.99))
    pings = shown.curve("default of a stack: WebSocket ping")
    assert (pings.x, pings.low, pings.y) == ((5760,), (29.98,), (49.98,))
    assert shown.notes == ("20/5", "20/20", "40/20", "websockets")
    assert collisions(ax) == []
