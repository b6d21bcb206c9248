"""The resources figure: connections above, resources below, checked on the artists."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_rgba
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

import wssim
from wssim import plot
from wssim.plot.style import COLORS
from wssim.toolkit.resources import Ledger


@pytest.fixture(autouse=True)
def close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def leaky_run() -> tuple[wssim.Trace, Ledger]:
    """Two clients; the crashed one's session is never released (no try/finally)."""
    ledger = Ledger()

    async def handler(ws: ServerConnection) -> None:
        hold = ledger.acquire("session")
        async for _message in ws:
            pass
        hold.release()

    async def server() -> None:
        async with serve(handler, "server", 8765) as s:
            await s.serve_forever()

    async def client() -> None:
        async with connect("ws://server:8765"):
            await asyncio.sleep(5)

    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(server())
        sim.host("a").spawn(client())
        sim.host("b").spawn(client())
        sim.at(2, sim.host("b").crash)
        sim.at(3, sim.mark, "look")
        return sim.run(until=20), ledger


def test_two_panels_show_connections_and_what_is_left() -> None:
    trace, ledger = leaky_run()
    top, bottom = plot.held_over_time(trace, ledger, title="leak")
    assert top.get_title(loc="left") == "leak"
    connections = next(line for line in top.get_lines() if line.get_label() == "connections open")
    assert to_rgba(connections.get_color()) == to_rgba(COLORS["OPEN"])
    assert trace.end == 5.07
    assert list(connections.get_xdata()) == [0.0, 0.03, 2.01, 5.07]
    assert list(connections.get_ydata()) == [0, 2, 1, 0]
    session = next(line for line in bottom.get_lines() if line.get_label() == "session")
    assert list(session.get_xdata()) == [0.0, 0.03, 5.07]
    assert list(session.get_ydata()) == [0, 2, 1]
    # The last values are written at the right ends; a leak in the error colour.
    (top_final,) = top.texts
    (left,) = bottom.texts
    assert (top_final.get_text(), left.get_text()) == ("0", "1")
    assert to_rgba(left.get_color()) == to_rgba(COLORS["error"])
    # The crash that never ended is a line, the mark a dotted line, in both panels.
    for ax in (top, bottom):
        labels = [line.get_label() for line in ax.get_lines()]
        assert "crash" in labels and "mark" in labels
    assert [t.get_text() for t in bottom.get_legend().get_texts()] == ["session", "crash", "mark"]


def test_kinds_and_axes_are_checked() -> None:
    trace, ledger = leaky_run()
    with pytest.raises(ValueError, match="never acquired"):
        plot.held_over_time(trace, ledger, kinds="buffer")
    _figure, axes = plt.subplots(3)
    with pytest.raises(ValueError, match="two axes"):
        plot.held_over_time(trace, ledger, axes=list(axes))
