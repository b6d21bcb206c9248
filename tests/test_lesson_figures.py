"""Every figure of the lessons agrees with the numbers the lesson prints, and with its trace.

Each test runs the lesson's own cells (tests/lesson_cells.py), then reads what the figure
drew (:func:`wssim.plot.drawn`) and compares it with the objects the lesson printed from:
a figure that contradicts its numbers fails here, a printed number that changes fails in
nbval. :data:`CHECKED` lists every figure of every lesson; a new figure needs a check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import matplotlib.pyplot as plt
import pytest
from matplotlib.axes import Axes

from tests.lesson_cells import NOTEBOOKS, code_cells, run_cells
from wssim.lab.diagnose import Diagnosis
from wssim.plot import Drawing, collisions, drawn
from wssim.trace.lifecycle import endpoints

CHECKED = {
    "00": {"cell-17", "cell-19"},
    "01": {"cell-09", "cell-24", "cell-30"},
    "02": {"cell-08", "cell-13", "cell-20", "cell-30", "cell-40"},
    "03": {"cell-14", "cell-22", "cell-23", "cell-29"},
    "04": {"cell-06", "cell-12", "cell-22"},
    "05": {"cell-05", "cell-11", "cell-17"},
    "06": {
        "cell-12",
        "cell-16",
        "cell-21",
        "cell-24",
        "cell-29",
        "cell-37",
        "cell-45",
        "cell-49",
        "cell-53",
        "cell-54",
    },
    "07": {"cell-25"},
    "08": set(),
}
"""The cells of each lesson that draw a figure, each checked below."""

FIGURE_CALL = re.compile(r"\bplot\.\w+\(")


@pytest.fixture(autouse=True)
def close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def axes_of(ns: dict[str, Any]) -> list[Axes]:
    """The axes the last figure cell drew on: ``axes`` (a grid, or two panels) or ``ax``."""
    found = ns.get("axes")
    if found is not None and not isinstance(found, tuple):
        return list(found.flat)
    return list(found) if isinstance(found, tuple) else [ns["ax"]]


def honest(ax: Axes) -> Drawing:
    """What ``ax`` shows, after the checks every figure passes: no text over other text or
    over the legend, and a figure of a run spans it or says where it stops."""
    shown = drawn(ax)
    assert collisions(ax) == [], shown.title
    if shown.kind == "timeline" and shown.run_until is not None:
        assert shown.xlim[1] >= shown.run_until or shown.cut, shown.title
        for lane in shown.lanes:
            assert lane.open_end == (lane.closed_at is None or lane.closed_at > lane.end)
    return shown


def figure(prefix: str, cell: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run lesson ``prefix`` up to its figure ``cell``; return its namespace."""
    return run_cells(prefix, *code_cells(prefix, cell, skip=skip))


def go_on(prefix: str, ns: dict[str, Any], cell: str) -> dict[str, Any]:
    """Run lesson ``prefix`` on from the last cell run in ``ns`` up to ``cell``."""
    done = list(ns["__printed__"])
    todo = [c for c in code_cells(prefix, cell) if c not in done]
    return run_cells(prefix, *todo, namespace=ns)


def test_every_figure_of_every_lesson_is_checked() -> None:
    found: dict[str, set[str]] = {}
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        found[path.name[:2]] = {
            cell["id"]
            for cell in cells
            if cell["cell_type"] == "code" and FIGURE_CALL.search("".join(cell["source"]))
        }
    assert found == CHECKED


def agrees_with_diagnosis(shown: Drawing, d: Diagnosis) -> None:
    """The lanes of the diagnosed client, and its server, end when the report says."""
    [conn, *_] = [lane.conn for lane in reversed(shown.lanes) if lane.host == "client"]
    for side in ("client", "server"):
        seen = d.side(side)
        lane = shown.lane(conn, side)
        if seen.at is not None and seen.code is None:
            # No close code: a refused handshake, known when the response went out; the
            # connection object closes a moment later (the prose says so).
            assert lane.closed_at is not None and lane.start <= seen.at <= lane.closed_at
        elif seen.at is not None:
            assert lane.closed_at == seen.at, (d.cause, side)
            assert not lane.open_end
        else:
            assert lane.open_end or lane.outcome in ("crash", "power loss"), (d.cause, side)
        if seen.code is not None:
            assert lane.outcome == str(seen.code), (d.cause, side)


# Lessons 00 and 01


def test_lesson00_and_01_figures() -> None:
    ns = figure("00", "cell-17")
    shown = honest(ns["ax"])
    for e in endpoints(ns["trace"]):
        assert shown.lane(e.conn, e.side).closed_at == e.closed_at
    ns = run_cells("00", "cell-19", namespace=ns)
    assert [lane.outcome for lane in honest(ns["ax"]).lanes] == ["1000", "1000"]

    ns = figure("01", "cell-09")
    honest(ns["ax"])
    ns = go_on("01", ns, "cell-24")
    shown = honest(ns["ax"])
    assert [lane.outcome for lane in shown.lanes] == ["1006", "crash"]
    assert shown.band("server crashed").start == 1.0
    ns = go_on("01", ns, "cell-30")
    shown = honest(ns["ax"])
    assert {lane.outcome for lane in shown.lanes} == {"1006"}


# Lesson 02: each figure ends each lane when the printed report says that side knew


def test_lesson02_figures_end_each_lane_when_the_report_says() -> None:
    ns = figure("02", "cell-08")
    agrees_with_diagnosis(honest(ns["ax"]), ns["partition"])
    for cell, name in (("cell-13", "idle_drop"), ("cell-20", "flaky")):
        ns = go_on("02", ns, cell)
        agrees_with_diagnosis(honest(ns["ax"]), ns[name])
    ns = figure("02", "cell-40")
    for ax, d in zip(axes_of(ns), [ns["refused"], ns["shed"], ns["frozen"]], strict=True):
        agrees_with_diagnosis(honest(ax), d)
    ns = figure("02", "cell-30")
    diagnoses = [ns["tab"], ns["browser_crash"], ns["suspended"], ns["power"]]
    for ax, d in zip(axes_of(ns), diagnoses, strict=True):
        agrees_with_diagnosis(honest(ax), d)


def test_lesson02_frozen_loop_ends_the_servers_lane_when_it_knew() -> None:
    ns = figure("02", "cell-40")
    frozen = ns["frozen"]
    shown = honest(axes_of(ns)[2])
    server = shown.lane("c1", "server")
    assert frozen.server.at == server.closed_at == server.end == 61.0  # "at t=61.000 s"
    # The client's abort at 50.04 closed its socket with a FIN: the server's kernel only
    # half-closed, so the server's lane has no earlier kernel close to draw.
    assert server.kernel_closed_at is None
    assert frozen.trace.first(kind="tcp", side="client", contains="FIN").time == 50.04
    assert server.frozen == ((1.0, 61.0),)
    assert server.outcome == "1011"
    assert shown.lane("c1", "client").closed_at == frozen.client.at == 50.04


# Lesson 03


def test_lesson03_default_schedule_marks_the_restart() -> None:
    ns = figure("03", "cell-14")
    shown = honest(ns["ax"])
    crash = shown.band("server crashed")
    assert (crash.start, crash.end, crash.end_label) == (1.0, 60.0, "server back")
    opened = ns["default_schedule"].last(kind="log", side="client", contains="connection is OPEN")
    assert shown.lanes[-1].start <= opened.time and shown.lanes[-1].open_end


def test_lesson03_ride_through_marks_the_crash_and_the_restart() -> None:
    ns = figure("03", "cell-29", skip=("cell-21", "cell-22", "cell-23"))
    shown = honest(ns["ax"])
    crash = shown.band("server crashed")
    assert (crash.start, crash.end, crash.end_label) == (3.0, 5.0, "server back")
    assert shown.cut == f"cut at 8 s; the run went on to {ns['trace'].ran_until:g} s"


def test_lesson03_storm_figures_show_the_peaks_after_the_restart() -> None:
    ns = figure("03", "cell-23")
    results = ns["results"]
    grid = axes_of({"axes": ns["axes"]})
    for result, ax in zip(results, grid, strict=True):
        shown = honest(ax)
        down = shown.band("server down")
        assert (down.start, down.end) == (0.0, result.restart_at - result.crash_at)
        assert down.end_label == "server back"
        # The peak after the restart (the table's peak/s, 122 to 239 for the jittered
        # strategies) shows below the top, not squashed; one above it is written there.
        assert shown.ylim[1] <= 400
        if result.strategy != "exponential":
            assert result.peak_rate < shown.ylim[1], result.strategy
        else:
            assert f"{result.peak_rate:,}" in shown.notes
        assert [line.y for line in shown.lines] == [100]
        above = [y for x, y in zip(shown.series[0].x, shown.series[0].y, strict=True)
                 if y > shown.ylim[1] and x < shown.xlim[1]]  # fmt: skip
        if above:
            assert f"{int(max(above)):,}" in shown.notes, result.strategy
    connected = honest(ns["ax"])
    assert [s.label for s in connected.series] == [r.strategy for r in results]


# Lesson 04


def test_lesson04_power_loss_spans_the_hour_and_the_server_lane_stays_open() -> None:
    ns = figure("04", "cell-06")
    shown = honest(ns["ax"])
    found = ns["found"]
    assert shown.run_until == 3610.0
    assert shown.xlim[1] >= 3610.0 and shown.cut == ""
    server = shown.lane("c1", "server")
    assert found.learned is None  # "the server learned: None"
    assert server.closed_at is None and server.open_end and server.end == 3610.0
    client = shown.lane("c1", "client")
    assert client.closed_at == found.fault == 10.0 and client.outcome == "power loss"


def test_lesson04_keepalive_and_tradeoff() -> None:
    ns = figure("04", "cell-22")
    points, results = ns["points"], ns["results"]
    shown = honest(ns["ax"])
    # Each bar stands at the bytes/hour of its table (cell-18's sweep, cell-20's stacks),
    # bars of the same cost included: nothing is moved aside along the axis.
    sweep = shown.curve("websockets keepalive (interval/timeout)")
    drawn_points = [p for p in points if p.best is not None and p.worst is not None]
    assert list(zip(sweep.x, sweep.low, sweep.y, strict=True)) == [
        (p.bytes_per_hour, p.best, p.worst) for p in drawn_points
    ]
    assert sorted(set(sweep.x)) == [2880, 5760, 11520, 23040]
    stacks = [s for s in shown.series if s.label.startswith("default of a stack")]
    at = {x for s in stacks for x in s.x}
    assert sorted(at) == sorted(r.bytes_per_hour for r in results if r.server is not None)
    assert at == {1440, 5760, 7200, 12872}  # Socket.IO, websockets, SignalR, Phoenix


def test_lesson04_keepalive_timeline() -> None:
    ns = figure("04", "cell-12", skip=("cell-22",))
    shown = honest(ns["ax"])
    # The title says: 1011 sent at 80 s, closed (1006) at 90 s.
    client = shown.lane("c1", "client")
    assert client.closed_at == pytest.approx(90, abs=0.1) and client.outcome == "1006"


# Lesson 05


def test_lesson05_sequences_hold_their_notes() -> None:
    ns = figure("05", "cell-17")
    shown = honest(ns["ax"])
    assert shown.lane("c1", "client").closed_at == pytest.approx(20.04)  # aborts at 20 s


# Lesson 06


def test_lesson06_deploy_names_the_frozen_clients_and_releases_everything() -> None:
    ns = figure("06", "cell-54")
    trace, _ledger = ns["shutdown"]
    run_cells("06", "cell-53", namespace=ns)
    shown = honest(ns["ax"])
    named = {lane.peer: lane for lane in shown.lanes if lane.peer}
    assert set(named) == {"client07 frozen", "client42 frozen", "client77 frozen"}
    assert all(lane.closed_at == 25.0 for lane in named.values())  # "t=25.00 aborted 3"
    others = [lane for lane in shown.lanes if not lane.peer]
    assert len(others) == 97 and all(lane.closed_at and lane.closed_at < 21 for lane in others)
    assert shown.cut == f"19.8 s to 26 s of a run of {trace.ran_until:g} s"
    ns = run_cells("06", "cell-54", namespace=ns)
    top, bottom = (drawn(ax) for ax in ns["axes"])
    assert top.curve("connections open").y[-1] == 0
    for series in bottom.series:
        assert series.y[-1] == 0 and series.peak == 100  # "held 0, peak 100"
    assert collisions(ns["axes"][0]) == collisions(ns["axes"][1]) == []


def test_lesson06_resource_figures_end_at_what_the_ledger_holds() -> None:
    ns = figure("06", "cell-49", skip=("cell-53", "cell-54"))
    figures = {"cell-12": "leak1", "cell-16": "cure1", "cell-21": "leak2", "cell-24": "leak3"}
    figures |= {"cell-29": "leak4", "cell-37": "leak5"}
    for cell, name in figures.items():
        run_cells("06", cell, namespace=ns)
        _trace, ledger = ns[name]
        _top, bottom = (honest(ax) for ax in ns["axes"])
        held = {kind: ledger.series(kind).final for kind in ledger.kinds}
        assert {s.label: s.y[-1] for s in bottom.series} == held, name


# Lesson 07


def test_lesson07_names_each_server_fault_of_the_plan() -> None:
    ns = figure("07", "cell-25")
    shown = honest(ns["ax"])
    plan = ns["plan"]
    faults = plan.server_faults()
    assert [(b.start, b.end) for b in shown.bands] == [
        pytest.approx((f.at, f.until), abs=1e-6) for f in faults
    ]
    assert [b.label.removeprefix("server ") for b in shown.bands] == [f.kind.label for f in faults]
    naive = shown.curve("naive")
    assert naive.peak == 223  # "223 attempts in a second" after the crash
    assert [line.y for line in shown.lines] == [ns["capstone"].ADMISSION_RATE]
