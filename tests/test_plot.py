"""Figures of real simulations: what they show, checked on the artists, never on pixels."""

from __future__ import annotations

from collections.abc import Iterator

import matplotlib.pyplot as plt
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.text import Annotation
from websockets.asyncio.client import connect

import wssim
from tests.helpers import echo_server
from tests.test_lifecycle import crash_trace, echo_trace, stay_connected
from wssim.plot import DETAIL_LANES, sequence, timeline
from wssim.plot.style import COLORS, FONT_SIZES, OKABE_ITO, STATE_COLORS, decorate


@pytest.fixture(autouse=True)
def close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def keepalive_trace() -> wssim.Trace:
    """A partition at 10 s: keepalive pings at 20 s are lost, both ends give up at 40 s."""
    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(echo_server())
        sim.host("client").spawn(stay_connected())
        sim.at(10, sim.partition, "client", "server")
        return sim.run(until=100)


def by_gid(ax: Axes, gid: str) -> list:  # type: ignore[type-arg]
    return [a for a in ax.get_children() if a.get_gid() == gid]


def texts(ax: Axes, gid: str) -> list[str]:
    return [t.get_text() for t in ax.texts if t.get_gid() == gid]


def x_extents(collection: PolyCollection) -> list[tuple[float, float]]:
    boxes = [path.get_extents() for path in collection.get_paths()]
    return [(round(box.x0, 6), round(box.x1, 6)) for box in boxes]


def lanes(ax: Axes) -> list[str]:
    return [label.get_text() for label in ax.get_yticklabels()]


# Style


def test_states_have_distinct_okabe_ito_colours() -> None:
    assert set(STATE_COLORS.values()) == {COLORS[s.name] for s in STATE_COLORS}
    assert len(set(STATE_COLORS.values())) == 4
    assert {COLORS["CONNECTING"], COLORS["OPEN"], COLORS["CLOSING"]} <= set(OKABE_ITO.values())
    with pytest.raises(TypeError):
        COLORS["OPEN"] = "red"  # type: ignore[index]


def test_decorate_draws_a_legend_only_when_something_is_labelled() -> None:
    _figure, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    decorate(ax, title="t", xlabel="x", ylabel="y")
    assert ax.get_legend() is None
    assert (ax.get_title(loc="left"), ax.get_xlabel(), ax.get_ylabel()) == ("t", "x", "y")

    ax.plot([0, 1], [1, 0], label="down")
    assert decorate(ax) is ax
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["down"]
    decorate(ax, legend=False)
    assert ax.get_legend() is None


# Timeline


def test_timeline_draws_a_lane_per_endpoint_coloured_by_state() -> None:
    ax = timeline(echo_trace(), title="An echo")

    assert isinstance(ax, Axes)
    assert ax.get_title(loc="left") == "An echo"
    assert lanes(ax) == ["client (c1)", "server (c1)"]
    states = {c.get_gid(): c for c in ax.collections if isinstance(c, PolyCollection)}
    assert set(states) == {"state:CONNECTING", "state:OPEN", "state:CLOSING"}
    for gid, collection in states.items():
        colour = to_rgba(COLORS[gid.removeprefix("state:")])
        assert [tuple(fc) for fc in collection.get_facecolor()] == [colour]
    # Lane 0 is the client, lane 1 the server: spans in trace order.
    assert x_extents(states["state:CONNECTING"]) == [(0.0, 0.04)]
    assert x_extents(states["state:OPEN"]) == [(0.04, 0.06), (0.03, 0.07)]
    assert x_extents(states["state:CLOSING"]) == [(0.06, 0.08), (0.07, 0.09)]
    # The close codes, where each endpoint ended.
    outcomes = [t for t in ax.texts if t.get_gid() == "outcome"]
    assert [(t.get_text(), t.xy) for t in outcomes if isinstance(t, Annotation)] == [
        ("1000", (0.08, 0)),
        ("1000", (0.09, 1)),
    ]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [
        "CONNECTING",
        "OPEN",
        "CLOSING",
        "CLOSED",
        "data frame",
        "CLOSE frame",
    ]


def test_timeline_ticks_frames_on_the_senders_lane() -> None:
    ax = timeline(echo_trace())

    ticks = {c.get_gid(): c for c in ax.collections if isinstance(c, LineCollection)}
    assert set(ticks) == {"state:CLOSED", "frames:data", "frames:close"}

    def at(gid: str) -> list[tuple[float, int]]:
        return [(seg[0][0], round(seg[:, 1].mean())) for seg in ticks[gid].get_segments()]

    assert at("frames:data") == [(0.04, 0), (0.05, 1)]  # the client's hello, the echo
    assert at("frames:close") == [(0.06, 0), (0.07, 1)]
    assert at("state:CLOSED") == [(0.08, 0), (0.09, 1)]
    assert tuple(ticks["frames:data"].get_color()[0]) == to_rgba(COLORS["data"])


def test_timeline_shades_faults_and_labels_failed_attempts() -> None:
    ax = timeline(crash_trace(), until=30)

    assert len(lanes(ax)) == 18
    assert lanes(ax)[:3] == ["client0 (c1)", "server (c1)", "client1 (c2)"]
    [band] = by_gid(ax, "fault")
    assert band.get_facecolor()[:3] == to_rgba(COLORS["fault"])[:3]
    assert texts(ax, "fault-label") == ["server crashed"]
    outcomes = texts(ax, "outcome")
    assert outcomes.count("1006") == 3
    assert outcomes.count("crash") == 3
    assert outcomes.count("refused") == 6
    [crosses] = by_gid(ax, "failed")
    assert len(crosses.get_offsets()) == 6
    assert ax.get_xlim()[1] > 30


def test_timeline_by_host_puts_each_clients_story_on_one_lane() -> None:
    ax = timeline(crash_trace(), until=30, by="host")

    assert lanes(ax) == ["client0", "client1", "client2", "server #1", "server #2", "server #3"]
    # Failed attempts show as crosses only; the codes of the connections that opened stay.
    assert sorted(texts(ax, "outcome")) == ["1006", "1006", "1006", "crash", "crash", "crash"]
    with pytest.raises(ValueError, match="by must be"):
        timeline(crash_trace(), by="conn")


def test_timeline_filters_connections_and_hosts() -> None:
    trace = crash_trace()

    assert lanes(timeline(trace, conns="c10")) == ["client0 (c10)", "server (c10)"]
    assert lanes(timeline(trace, hosts=["client1"])) == [
        "client1 (c2)",
        "client1 (c5)",
        "client1 (c9)",
        "client1 (c12)",
    ]
    assert lanes(timeline(trace, since=20, until=30, hosts="client1")) == ["client1 (c12)"]


def test_timeline_labels_marks_and_partitions_above_the_lanes() -> None:
    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(echo_server())
        sim.host("client").spawn(stay_connected())
        sim.at(1, sim.mark, "start")
        sim.at(10, sim.partition, "client", "server")
        trace = sim.run(until=100)

    ax = timeline(trace)
    assert texts(ax, "fault-label") == ["partition client ↔ server"]
    assert texts(ax, "mark-label") == ["start"]
    assert len(by_gid(ax, "fault")) == 1
    assert len(by_gid(ax, "mark")) == 1
    assert texts(ax, "outcome") == ["1006", "1006"]
    # Pings at 20 s and close frames at 40 s, on both lanes.
    ticks = {c.get_gid(): c for c in ax.collections}
    assert len(ticks["frames:ping"].get_segments()) == 2
    assert len(ticks["frames:close"].get_segments()) == 2


def test_timeline_of_hundreds_of_lanes_leaves_out_the_details() -> None:
    async def client(i: int) -> None:
        async with connect("ws://server:8765", compression=None) as ws:
            await ws.send(f"hello {i}")
            await ws.recv()

    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(echo_server(compression=None))
        for i in range(100):
            sim.host(f"client{i}").spawn(client(i))
        trace = sim.run(until=5)

    ax = timeline(trace)
    assert DETAIL_LANES < 200
    assert texts(ax, "outcome") == []
    assert not [c for c in ax.collections if (c.get_gid() or "").startswith("frames:")]
    assert len(lanes(ax)) <= 60
    assert lanes(ax)[0] == "client0 (c1)"
    assert ax.get_ylabel() == "200 lanes, one in 4 labelled"
    [opened] = [c for c in ax.collections if c.get_gid() == "state:OPEN"]
    assert len(opened.get_paths()) == 200
    # Details can still be asked for.
    assert texts(timeline(trace, details=True), "outcome") == ["1000"] * 200


def test_timeline_draws_on_the_given_axes_even_when_empty() -> None:
    _figure, (left, right) = plt.subplots(1, 2)

    assert timeline(echo_trace(), ax=left) is left
    assert timeline(wssim.Trace(), ax=right) is right
    assert lanes(right) == []
    assert [t.get_text() for t in right.texts] == ["no connections"]


# Sequence diagram


def test_sequence_draws_each_wire_event_as_a_slanted_arrow() -> None:
    ax = sequence(echo_trace(), "c1")

    assert ax.get_title(loc="left") == "c1: client → server"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["client", "server"]
    arrows = [a for a in by_gid(ax, "arrow") if isinstance(a, Annotation)]
    # Each arrow leaves its sender (x 0: client, 1: server) and arrives 10 ms later.
    assert [(a.xyann, a.xy) for a in arrows[:3]] == [
        ((0.0, 0.0), (1.0, 0.01)),
        ((1.0, 0.01), (0.0, 0.02)),
        ((0.0, 0.02), (1.0, 0.03)),
    ]
    assert texts(ax, "arrow-label") == [
        "SYN",
        "SYN-ACK",
        "GET / (Upgrade: websocket)",
        "101 Switching Protocols",
        "TEXT 'hello'",
        "TEXT 'hello'",
        "CLOSE 1000 (OK)",
        "CLOSE 1000 (OK) + FIN",  # sent together, arriving together: one arrow
        "FIN",
    ]
    assert len(arrows) == 9
    assert by_gid(ax, "lost") == []
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"0.0{i}0" for i in range(10)]
    notes = texts(ax, "note")
    assert notes[:2] == ["connected", "accepted"]
    assert notes[2].startswith("ConnectionClosedOK:\nsent 1000 (OK);")
    assert notes[3].startswith("ConnectionClosedOK:\nreceived 1000 (OK);")
    # The lifelines are coloured by state.
    bars = by_gid(ax, "state:OPEN")
    assert [tuple(bar.get_facecolor()) for bar in bars] == [to_rgba(COLORS["OPEN"])] * 2


def test_sequence_shows_lost_segments_and_cuts_quiet_stretches() -> None:
    ax = sequence(keepalive_trace(), "c1")

    # The pings at 20 s, the close frames at 40 s, the client's FIN at 50 s (its abort closes
    # the socket; the server's FIN went with its close frame): all lost.
    assert texts(ax, "arrow-label")[4:] == [
        "PING d8 2c 07 cd",
        "PING 62 9f 6f be",
        "CLOSE 1011 + FIN",  # shortened to fit the short arrow
        "CLOSE 1011",
        "FIN",
    ]
    assert len(by_gid(ax, "arrow")) == 4
    assert len(by_gid(ax, "lost")) == 5
    assert len(by_gid(ax, "lost-cross")) == 5
    assert texts(ax, "cut-label") == [
        "9.96 s later",
        "10.03 s later",
        "19.99 s later",
        "9.99 s later",
    ]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "0.000",
        "0.010",
        "0.020",
        "0.030",
        "0.040",
        "10.000",  # the partition
        "20.030",
        "20.040",
        "40.030",
        "40.040",
        "50.030",
        "50.040",
    ]
    assert texts(ax, "fault-label") == ["partition client ↔ server"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "not delivered" in legend and "fault" in legend
    assert {t.get_fontsize() for t in ax.texts if t.get_text()} == {FONT_SIZES["note"]}


def test_sequence_of_a_refused_connection() -> None:
    ax = sequence(crash_trace(), "c4")

    assert ax.get_title(loc="left") == "c4: client0 → server"
    assert texts(ax, "arrow-label") == ["SYN", "RST"]
    assert texts(ax, "note") == ["connection refused"]
    assert texts(ax, "fault-label") == ["server crashed"]


def test_sequence_of_an_unknown_connection_raises() -> None:
    with pytest.raises(ValueError, match=r"no events of connection 'c9'.*connections: c1"):
        sequence(echo_trace(), "c9")


def test_timeline_shows_only_the_faults_of_the_chosen_hosts() -> None:
    from wssim import faults

    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(echo_server())
        for name in ("a", "b"):
            sim.host(name)
        sim.inject(faults.Freeze("a"), at=1, duration=1)
        sim.inject(faults.Partition("b", "server"), at=2, duration=1)
        sim.inject(faults.Crash("server"), at=4)
        trace = sim.run(until=5)
    assert texts(timeline(trace), "fault-label") == [
        "a frozen",
        "partition b ↔ server",
        "server crashed",
    ]
    assert texts(timeline(trace, hosts=["a"]), "fault-label") == ["a frozen"]
    assert texts(timeline(trace, hosts="b"), "fault-label") == ["partition b ↔ server"]
    assert by_gid(timeline(trace, show_faults=False), "fault") == []


def test_timeline_marks_what_a_path_fault_did_and_when() -> None:
    from tests.test_faults import Chat
    from wssim import faults

    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(echo_server(ping_interval=None))
        sim.host("client").spawn(Chat([1.0], ping_interval=None)())
        sim.inject(faults.IdleTimeout("client", "server", timeout=60))
        trace = sim.run(until=100)
    ax = timeline(trace)
    assert texts(ax, "fault-label") == ["idle_timeout client ↔ server", "flow forgotten"]
