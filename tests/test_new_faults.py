"""A new fault is one new class: lifecycle, plots and diagnoses learn of it from the class.

The two faults below exist only in this file. Nothing else in wssim names them, yet the
lifecycle pairs their starts and ends, the plots label them, and a diagnosis says what
each side saw: all of it read from the typed events each fault records.
"""

from __future__ import annotations

from collections.abc import Iterator

import matplotlib.pyplot as plt
import pytest
from websockets.asyncio.client import connect

import wssim
from tests.helpers import echo_server
from wssim import faults, plot
from wssim.lab import diagnose
from wssim.trace import Phase, lifecycle
from wssim.world import World


class Meteor(faults.HostFault):
    """A meteor hits the host: it is gone at once, in silence, until it restarts."""

    name = "meteor"
    label = "hit by a meteor"
    kills = True

    def describe(self) -> str:
        return "the host is gone, not even a FIN"

    def start(self, world: World) -> None:
        world.power_off_host(world.hosts[self.host], cause=self)

    def stop(self, world: World) -> None:
        world.hosts[self.host].restart()


class Guillotine(faults.PathFault):
    """Every connection between ``a`` and ``b`` is reset the moment the fault starts."""

    name = "guillotine"
    acted = "cut"

    def start(self, world: World) -> None:
        self.record(world, Phase.START)
        network = world.network
        for conn in network.connections_between(self.a, self.b):
            network.reset_both_ends(conn, "guillotine: the path cuts the connection", self.acting())

    def stop(self, world: World) -> None:
        self.record(world, Phase.END)


async def stay_connected() -> None:
    async with connect("ws://server:8765") as ws:
        await ws.wait_closed()


def run(fault: faults.Fault, *, at: float, duration: float, until: float) -> wssim.Trace:
    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(echo_server())
        sim.host("client").spawn(stay_connected())
        sim.inject(fault, at=at, duration=duration)
        return sim.run(until=until)


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def test_a_new_host_fault_kills_its_endpoints_and_names_itself() -> None:
    trace = run(Meteor("client"), at=2, duration=3, until=70)

    assert [e.text for e in trace.filter(kind=["fault", "host"])] == [
        "meteor: the host is gone, not even a FIN",
        "restart",
    ]
    # The lifecycle: the client's endpoint ends with its host, the fault at the restart.
    client, server = lifecycle.endpoints(trace)
    assert (client.closed_at, client.outcome, client.close_code) == (2.0, "meteor", None)
    assert server.closed_at is not None and server.closed_at > 2.0  # keepalive notices
    [span] = lifecycle.faults(trace)
    assert (span.name, span.start, span.end, span.ended, span.instant) == (
        "meteor",
        2.0,
        5.0,
        True,
        False,
    )
    # The plot labels its band after the host, in the fault's own words.
    ax = plot.timeline(trace)
    assert [t.get_text() for t in ax.texts if t.get_gid() == "fault-label"] == [
        "client hit by a meteor"
    ]
    # The diagnosis: dead code sees nothing, and the fault says how it died.
    seen = diagnose.seen(trace, "client", cause_at=2)
    assert (seen.saw, seen.code, seen.knows) == ("hit by a meteor", None, "(dead)")
    assert diagnose.seen(trace, "server", cause_at=2).sees.startswith("ConnectionClosedError")


def test_a_new_path_fault_and_what_it_did_appear_in_lifecycle_plot_and_diagnosis() -> None:
    trace = run(Guillotine("client", "server"), at=1, duration=2, until=4)

    assert [e.text for e in trace.filter(kind=["fault", "tcp"], since=1, until=3)][:2] == [
        "guillotine client ↔ server",
        "guillotine: the path cuts the connection",
    ]
    # The lifecycle: a band from start to end, and an instant where it acted.
    band, cut = lifecycle.faults(trace)
    assert (band.name, band.start, band.end, band.instant) == ("guillotine", 1.0, 3.0, False)
    assert band.hosts == ("client", "server")
    assert (cut.name, cut.start, cut.instant) == ("guillotine", 1.0, True)
    assert [(e.side, e.closed_at, e.outcome) for e in lifecycle.endpoints(trace)] == [
        ("client", 1.0, "1006"),
        ("server", 1.0, "1006"),
    ]
    # The plots: the band after the fault's name and path, the instant after what it did.
    labels = [t.get_text() for t in plot.timeline(trace).texts if t.get_gid() == "fault-label"]
    assert labels == ["guillotine client ↔ server", "cut"]
    sequence = plot.sequence(trace, "c1")
    assert "guillotine client ↔ server" in [
        t.get_text() for t in sequence.texts if t.get_gid() == "fault-label"
    ]
    # The diagnosis: each side's exception, at once.
    for side in ("client", "server"):
        seen = diagnose.seen(trace, side, cause_at=1)
        assert (seen.sees, seen.after) == ("ConnectionClosedError 1006", 0.0)


def test_a_new_fault_compares_by_its_parameters() -> None:
    assert Guillotine("a", "b") == Guillotine("a", "b")
    assert Guillotine("a", "b") != Guillotine("a", "c")
    assert Meteor("a") != faults.PowerLoss("a")
    assert (Meteor.label, Meteor.acted, Guillotine.label) == (
        "hit by a meteor",
        "meteor",
        "guillotine",
    )
