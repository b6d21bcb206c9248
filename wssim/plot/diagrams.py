"""Figures drawn from traces: every connection on a timeline, one connection as a sequence.

:func:`timeline` gives each connection endpoint a lane coloured by its state, with the
frames it sent, the faults that hit it and the close code it ended with. :func:`sequence`
draws one connection as a sequence diagram, time flowing down, each segment, HTTP message
and frame an arrow slanted by the latency. Both read only a :class:`~wssim.trace.Trace`
(through :mod:`wssim.trace.lifecycle`), take their looks from :mod:`wssim.plot.style`, return the
:class:`~matplotlib.axes.Axes` they drew on and never call ``plt.show()``.
"""

from __future__ import annotations

import itertools
import math
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from websockets.frames import Opcode

from wssim.plot.drawing import Band, Drawing, Lane, Line, record
from wssim.plot.style import COLORS, FAULT_ALPHA, FONT_SIZES, STATE_COLORS, decorate
from wssim.trace.events import KINDS, Event, Phase, Tcp, Trace
from wssim.trace.lifecycle import Endpoint, FaultSpan, Span, State, endpoints, faults, spans

__all__ = ["DETAIL_LANES", "sequence", "timeline"]

DETAIL_LANES = 40
"""Beyond this many lanes, a timeline leaves out frame ticks and close codes."""

LABELLED_LANES = 60
"""Beyond this many lanes, a timeline labels only some of them."""

_DRAWN_STATES = (State.CONNECTING, State.OPEN, State.CLOSING)
_FRAME_KINDS = {
    "data": "data frame",
    "ping": "PING / PONG",
    "close": "CLOSE frame",
}
_NORMAL_CLOSES = ("1000", "1001")
_BAR = 0.56  # height of a lane's state bar, in lanes
_TICK = 0.40  # half the height of a frame tick, in lanes


def _as_set(value: str | Iterable[str] | None) -> set[str] | None:
    if value is None:
        return None
    return {value} if isinstance(value, str) else set(value)


def _frame_kind(event: Event) -> str:
    """``"data"``, ``"ping"`` or ``"close"``, from the opcode of a frame."""
    frame = event.frame
    opcode = None if frame is None else frame.opcode
    if opcode is Opcode.PING or opcode is Opcode.PONG:
        return "ping"
    if opcode is Opcode.CLOSE:
        return "close"
    return "data"  # TEXT, BINARY, CONT, or a frame with a reserved opcode


def _lane_label(endpoint: Endpoint) -> str:
    """``client0 (c1)``; the side too when the host's name does not say it."""
    if endpoint.host.startswith(endpoint.side):
        return f"{endpoint.host} ({endpoint.conn})"
    return f"{endpoint.host} ({endpoint.conn} {endpoint.side})"


def _touches(fault: FaultSpan, hosts: set[str]) -> bool:
    """Does ``fault`` act on one of ``hosts`` (its own host, or an end of its path)?"""
    return fault.host in hosts or not hosts.isdisjoint(fault.hosts)


def fault_label(span: FaultSpan) -> str:
    """What a fault's band or marker says: each fault names itself (its ``label``)."""
    info = span.info
    if info is None:
        # A fault event that names no fault: its text up to the details.
        return _shorten(span.text.split(":")[0], 32)
    fault = info.fault
    if info.phase is Phase.ACT:
        return fault.acted  # what it did to a connection, at that moment
    if fault.path is None:
        return f"{span.host} {fault.label}"
    return _shorten(f"{fault.label} {fault.path}", 32)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _new_axes(width: float, height: float) -> Axes:
    _figure, ax = plt.subplots(figsize=(width, height))
    return ax


def _figure(ax: Axes) -> Figure:
    """The figure of ``ax``, whose size in inches gives the axes' size in points.

    Axes of a subfigure are refused: their position is in the subfigure's coordinates and a
    subfigure has no size in inches of its own.
    """
    figure = ax.figure
    if not isinstance(figure, Figure):
        raise TypeError("wssim draws on the axes of a figure, not of a subfigure")
    return figure


def _points_per_unit(ax: Axes, span: float, *, vertical: bool) -> float:
    """How many points one data unit takes on ``ax``, if the axis covers ``span`` units."""
    figure = _figure(ax)
    box = ax.get_position()
    size = box.height * figure.get_figheight() if vertical else box.width * figure.get_figwidth()
    return size * 72 / span


# The timeline


@dataclass(frozen=True)
class _Lane:
    label: str
    members: tuple[Endpoint, ...]


def _lanes(
    chosen: list[Endpoint], by: str, ends: dict[tuple[str, str], float | None]
) -> list[_Lane]:
    """Group endpoints into lanes: one each, or one per host with no overlap in a lane."""
    if by == "endpoint":
        return [_Lane(_lane_label(e), (e,)) for e in chosen]
    # Per host and side, sub-lanes; an endpoint takes the first one free when it starts.
    free_at: dict[tuple[str, str], list[float]] = {}
    members: dict[tuple[str, str, int], list[Endpoint]] = {}
    for e in sorted(chosen, key=lambda e: e.started_at):
        frees = free_at.setdefault((e.host, e.side), [])
        k = next((i for i, free in enumerate(frees) if free <= e.started_at), len(frees))
        if k == len(frees):
            frees.append(0.0)
        learned = ends[e.conn, e.side]
        frees[k] = math.inf if learned is None else learned
        members.setdefault((e.host, e.side, k), []).append(e)
    order = {key: i for i, key in enumerate(free_at)}
    lanes = []
    for host, side, k in sorted(members, key=lambda key: (order[key[:2]], key[2])):
        name = host if host.startswith(side) else f"{host} ({side})"
        if len(free_at[host, side]) > 1:
            name += f" #{k + 1}"
        lanes.append(_Lane(name, tuple(members[host, side, k])))
    return lanes


def timeline(
    trace: Trace,
    *,
    conns: str | Iterable[str] | None = None,
    hosts: str | Iterable[str] | None = None,
    since: float | None = None,
    until: float | None = None,
    by: str = "endpoint",
    details: bool | None = None,
    show_faults: bool = True,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Draw connection endpoints as lanes coloured by their state.

    Each lane is one end of one connection (``client0 (c1)``), connections in the order
    they first appear, the client above the server. A lane's bar is coloured CONNECTING,
    OPEN, CLOSING; a grey stroke marks where the application learned it was CLOSED and is
    followed by how it ended: the close code websockets reported (``1000``, ``1006``) or
    what went wrong (``refused``, ``timeout``, ``crash``). An attempt that never opened
    ends with a cross; an endpoint still open at the right edge ends with an arrow. When
    the kernel closed a connection before its application could learn it (a frozen
    process), a dashed stroke marks the kernel's moment. Ticks show the frames the endpoint
    sent: data, PING/PONG, CLOSE. Shaded bands are faults (a partition until it heals, a
    crash until the restart, whose end says the host is back); a hatched lane is a process
    that was stopped (frozen, asleep); dotted lines are marks added with
    :meth:`~wssim.Simulation.mark`. The figure spans the run, from its first connection
    to :attr:`~wssim.Trace.ran_until`; when ``since`` or ``until`` cut it shorter, the x
    axis' label says so. :func:`~wssim.plot.drawn` gives what was drawn.

    Args:
        trace: what to draw.
        conns: only these connections (``"c1"`` or several).
        hosts: only the endpoints on these hosts, and only the faults that touch them or
            the hosts they are connected to.
        since: the left edge, in virtual seconds. Default: the first thing drawn.
        until: the right edge; endpoints still alive stop here. Default: the end of the
            run (:attr:`~wssim.Trace.ran_until`).
        by: ``"endpoint"`` for a lane per endpoint; ``"host"`` to put the successive
            connections of a host on one lane (a reconnecting client's whole story on one
            line; a server gets as many lanes as it had connections at once).
        details: draw frame ticks and how each endpoint ended. Default: when there are at
            most :data:`DETAIL_LANES` lanes, so that hundreds of lanes stay fast and legible.
        show_faults: shade the faults (default); False leaves them out.
        ax: the axes to draw on. Default: a new figure sized for the lanes.
        title: the figure's title.

    Returns:
        The axes drawn on.

    Raises:
        ValueError: if ``by`` is neither ``"endpoint"`` nor ``"host"``.
    """
    if by not in ("endpoint", "host"):
        raise ValueError(f"by must be 'endpoint' or 'host', got {by!r}")
    conn_set, host_set = _as_set(conns), _as_set(hosts)
    ran_until = trace.ran_until
    chosen = [
        e
        for e in endpoints(trace)
        if (conn_set is None or e.conn in conn_set) and (host_set is None or e.host in host_set)
    ]
    if until is not None:
        end = float(until)
    elif chosen and all(_learned_at(e) is not None for e in chosen):
        end = trace.end  # every lane has ended, and nothing happens after the last event
    else:
        end = ran_until  # a lane still open at the end of the run spans the run
    fault_list = faults(trace, until=end) if show_faults else []
    if host_set is not None:
        # The faults of the chosen hosts, and of the hosts they talk to: a client's
        # timeline shows its server's crash and its return.
        involved = host_set | {e.peer for e in chosen if e.peer}
        fault_list = [f for f in fault_list if _touches(f, involved)]
    first = min([e.started_at for e in chosen] + [f.start for f in fault_list], default=0.0)
    start = first if since is None else float(since)
    start = min(start, end)
    ends = {(e.conn, e.side): _learned_at(e) for e in chosen}
    chosen = [e for e in chosen if e.started_at <= end and _alive_at(ends[e.conn, e.side], start)]
    lanes = _lanes(chosen, by, ends)
    n = len(lanes)
    if details is None:
        details = n <= DETAIL_LANES
    if ax is None:
        ax = _new_axes(10, min(max(1.6 + 0.34 * n, 2.6), 12))
    width = max(end - start, 1e-9)
    # Room on the right for what is written at the ends of the lanes that end near it.
    margin = 0.01
    if details and n:
        available = _figure(ax).get_figwidth() * ax.get_position().width * 72
        room_needed = [
            len(e.outcome) * FONT_SIZES["note"] * 0.62 + 12
            for e in chosen
            if (t := ends[e.conn, e.side]) is not None and t >= end - 0.2 * width
        ]
        room_needed.append(24.0)  # an arrow, or a short code
        margin = max(0.03, min(max(room_needed) / max(available - max(room_needed), 1.0), 0.4))
    view = _View(
        ax=ax,
        row={(e.conn, e.side): y for y, lane in enumerate(lanes) for e in lane.members},
        start=start,
        end=end,
        left=start - 0.01 * width,
        right=end + margin * width,
        # Many lanes are thin: full-height bars keep them legible.
        bar=_BAR if n <= DETAIL_LANES else 1.0,
    )
    ended = [e for e in chosen if (t := ends[e.conn, e.side]) is not None and start <= t <= end]
    # A fault that stops a host's processes (a freeze) is hatched on that host's lanes, or
    # named on the lanes of its peers when the host has none here; else it is a band.
    lane_hosts = {e.host for e in chosen}
    stopped = [f for f in fault_list if _stops_processes(f) and f.host in lane_hosts]
    on_peers = [
        f
        for f in fault_list
        if _stops_processes(f)
        and f.host not in lane_hosts
        and any(e.peer == f.host for e in chosen)
    ]

    drawn_spans = _app_spans(spans(trace, until=end), chosen, ends, end)
    _draw_states(view, drawn_spans)
    _draw_ends(view, ended, ends, cross=24 if n <= DETAIL_LANES else 6)
    still_open = [e for e in chosen if (t := ends[e.conn, e.side]) is None or t > end]
    _draw_open_ends(view, still_open)
    _draw_kernel_ends(view, chosen, ends)
    frozen = _draw_stopped(view, chosen, ends, stopped)
    written: dict[tuple[str, str], str] = {}
    if details:
        _draw_frames(view, trace.filter(kind="frame", since=start, until=end))
        written = _draw_outcomes(view, ended, ends, above=by == "host")
    peer_notes = _peer_notes(view, chosen, ends, on_peers)
    shown_faults = [
        f
        for f in fault_list
        if f.end >= start and f.start <= end and not any(f is g for g in on_peers)
    ]
    notes, bands = _draw_faults_and_marks(
        view,
        shown_faults,
        trace.filter(kind="mark", since=start, until=end),
        on_lanes=stopped,
    )
    bands += [
        Band(fault_label(f), max(f.start, start), min(f.end, end), on="peers") for f in on_peers
    ]

    # Room above the first lane for the labels of faults and marks, one line per level.
    headroom = 0.0
    if notes:
        room = 12.0 * notes + 4
        available = ax.get_position().height * _figure(ax).get_figheight() * 72
        headroom = room * max(n, 1) / max(available - room, room)
    ax.set_xlim(view.left, view.right)
    ax.set_ylim(max(n, 1) - 0.5, -0.5 - headroom)
    step = 1 if n <= LABELLED_LANES else math.ceil(n / LABELLED_LANES)
    shown = set(range(0, n, step))
    # Lanes with something to see (a hatched, stopped process) keep their label, in the
    # colour of faults.
    stopped_rows = {view.row[key] for key in frozen} | {view.row[key] for key in peer_notes}
    # ... and their neighbours make way for them.
    shown = {i for i in shown if all(abs(i - row) >= step for row in stopped_rows)}
    ticks = sorted(shown | stopped_rows)
    row_notes = {view.row[key]: note for key, note in peer_notes.items()}
    ax.set_yticks(
        ticks,
        [lanes[i].label + (f": {row_notes[i]}" if i in row_notes else "") for i in ticks],
    )
    ax.tick_params(axis="y", length=0)
    for row, label in zip(ticks, ax.get_yticklabels(), strict=True):
        if row in stopped_rows:
            label.set_color(COLORS["fault"])
    ax.grid(axis="x", color=COLORS["grid"], linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    if n == 0:
        ax.text(
            0.5,
            0.5,
            "no connections",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color=COLORS["text"],
            fontsize=FONT_SIZES["label"],
        )
    cut = _cut(start, end, first, ran_until, since is not None, until is None)
    xlabel = "virtual time (s)" + (f": {cut}" if cut else "")
    decorate(
        ax,
        title=title,
        xlabel=xlabel,
        ylabel=_lanes_label(n, step, extra=bool(stopped_rows)),
        legend={"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)},
    )
    lane_of = {(e.conn, e.side): lane.label for lane in lanes for e in lane.members}
    return record(
        ax,
        Drawing(
            kind="timeline",
            title=title or "",
            xlim=(view.left, view.right),
            ylim=(0, 0),
            run_until=ran_until,
            cut=cut,
            lanes=tuple(
                _drawn_lane(
                    e, lane_of[e.conn, e.side], ends, view, drawn_spans, frozen, written, peer_notes
                )
                for e in chosen
            ),
            bands=tuple(bands),
            lines=tuple(
                Line(mark.text, x=mark.time)
                for mark in trace.filter(kind="mark", since=start, until=end)
            ),
            notes=tuple(t.get_text() for t in ax.texts if t.get_text()),
        ),
    )


def _lanes_label(n: int, step: int, *, extra: bool) -> str | None:
    """The y axis' label when only some lanes are labelled, else None."""
    if step == 1:
        return None
    return f"{n} lanes, one in {step} labelled" + (", and those a fault touched" if extra else "")


def _alive_at(learned: float | None, t: float) -> bool:
    return learned is None or learned >= t


def _learned_at(e: Endpoint) -> float | None:
    """When the application learned that ``e`` ended: the exception it saw, if it saw one
    after its kernel closed the connection (a frozen process learns late); else when the
    endpoint closed. None while it is alive."""
    if e.closed_at is None:
        return None
    ended_by = e.ended_by
    if ended_by is not None and ended_by.closed is not None and ended_by.time > e.closed_at:
        return ended_by.time
    return e.closed_at


def _stops_processes(fault: FaultSpan) -> bool:
    """A fault on one host that stops its processes without killing them (a freeze, a
    machine asleep): its endpoints live on, and learn nothing until it ends."""
    info = fault.info
    return (
        info is not None
        and info.fault.path is None
        and not info.fault.kills
        and not fault.instant
        and fault.end > fault.start
    )


def _cut(start: float, end: float, first: float, ran_until: float, since: bool, auto: bool) -> str:
    """What the x axis' label says when the figure shows less than the run, or ``""``."""
    cut_left = since and start > first + 1e-9
    if end >= ran_until - 1e-9:
        return f"{start:g} s to the end of the run, {ran_until:g} s" if cut_left else ""
    if cut_left:
        return f"{start:g} s to {end:g} s of a run of {ran_until:g} s"
    if auto:
        return f"nothing happens after {end:g} s; the run went on to {ran_until:g} s"
    return f"cut at {end:g} s; the run went on to {ran_until:g} s"


def _app_spans(
    all_spans: Iterable[Span],
    chosen: list[Endpoint],
    ends: dict[tuple[str, str], float | None],
    end: float,
) -> list[Span]:
    """The spans, each endpoint's last one stretched to where its application learned it
    ended (after its kernel knew: a frozen process)."""
    out = list(all_spans)
    last: dict[tuple[str, str], int] = {}
    for index, span in enumerate(out):
        last[span.conn, span.side] = index
    for e in chosen:
        learned = ends[e.conn, e.side]
        at = last.get((e.conn, e.side))
        if learned is None or at is None or e.closed_at is None or learned <= e.closed_at:
            continue
        span = out[at]
        stop = min(learned, end)
        if stop > span.end:
            out[at] = Span(span.conn, span.side, span.host, span.state, span.start, stop)
    return out


def _drawn_lane(
    e: Endpoint,
    label: str,
    ends: dict[tuple[str, str], float | None],
    view: _View,
    drawn_spans: list[Span],
    frozen: dict[tuple[str, str], list[tuple[float, float]]],
    written: dict[tuple[str, str], str],
    peer_notes: dict[tuple[str, str], str],
) -> Lane:
    learned = ends[e.conn, e.side]
    mine = [s for s in drawn_spans if (s.conn, s.side) == (e.conn, e.side) and s.end >= view.start]
    bar_end = view.end if learned is None else min(learned, view.end)
    kernel = e.closed_at if learned is not None and e.closed_at != learned else None
    return Lane(
        label=label,
        conn=e.conn,
        side=e.side,
        host=e.host,
        start=max(e.started_at, view.start),
        end=bar_end,
        closed_at=learned,
        kernel_closed_at=kernel,
        outcome=written.get((e.conn, e.side), ""),
        open_end=learned is None or learned > view.end,
        frozen=tuple(frozen.get((e.conn, e.side), ())),
        peer=peer_notes.get((e.conn, e.side), ""),
        states=tuple((s.state.name, max(s.start, view.start), s.end) for s in mine),
    )


@dataclass(frozen=True)
class _View:
    """Where a timeline draws: its axes, the row of each endpoint, its time range."""

    ax: Axes
    row: dict[tuple[str, str], int]
    start: float
    end: float
    left: float
    right: float
    bar: float

    def y(self, e: Endpoint | Event | Span) -> int | None:
        return self.row.get((e.conn, e.side))


def _draw_states(view: _View, all_spans: Iterable[Span]) -> None:
    """One collection per state, however many lanes."""
    boxes: dict[State, list[list[tuple[float, float]]]] = {s: [] for s in _DRAWN_STATES}
    for span in all_spans:
        y = view.y(span)
        if y is None or span.end < view.start:
            continue
        left, right = max(span.start, view.start), span.end
        top, bottom = y - view.bar / 2, y + view.bar / 2
        boxes[span.state].append([(left, top), (left, bottom), (right, bottom), (right, top)])
    for state, verts in boxes.items():
        if verts:
            collection = PolyCollection(
                verts,
                facecolors=STATE_COLORS[state],
                edgecolors="none",
                label=state.name,
                zorder=2,
            )
            collection.set_gid(f"state:{state.name}")
            view.ax.add_collection(collection)


def _draw_ends(
    view: _View,
    ended: list[Endpoint],
    ends: dict[tuple[str, str], float | None],
    *,
    cross: float,
) -> None:
    """CLOSED: a stroke where each application learned its endpoint ended; a cross for
    attempts that never opened."""
    strokes = []
    failed = []
    for e in ended:
        y = view.row[e.conn, e.side]
        t = ends[e.conn, e.side]
        if t is None:
            continue
        if e.failed:
            failed.append((t, y))
        else:
            strokes.append([(t, y - view.bar / 2), (t, y + view.bar / 2)])
    if strokes:
        closed = LineCollection(
            strokes, colors=STATE_COLORS[State.CLOSED], linewidths=2.5, zorder=4, label="CLOSED"
        )
        closed.set_gid(f"state:{State.CLOSED.name}")
        view.ax.add_collection(closed)
    if failed:
        crosses = view.ax.scatter(
            [x for x, _ in failed],
            [y for _, y in failed],
            marker="x",
            s=cross,
            linewidths=1.8,
            color=COLORS["error"],
            zorder=4,
            label="failed attempt",
        )
        crosses.set_gid("failed")


def _draw_open_ends(view: _View, still_open: list[Endpoint]) -> None:
    """An arrow at the right edge of each lane still open there: it goes on."""
    points = [(view.end, view.row[e.conn, e.side]) for e in still_open]
    if not points:
        return
    size = 7 if view.bar < 1 else 4
    (arrows,) = view.ax.plot(
        [x for x, _ in points],
        [y for _, y in points],
        marker=">",
        linestyle="none",
        markersize=size,
        color=COLORS["text"],
        zorder=4,
        label="still open",
        clip_on=False,
    )
    arrows.set_gid("open-end")


def _draw_kernel_ends(
    view: _View, chosen: list[Endpoint], ends: dict[tuple[str, str], float | None]
) -> None:
    """A dashed stroke where the kernel closed a connection its application learned of
    only later (a frozen process)."""
    strokes = []
    for e in chosen:
        learned = ends[e.conn, e.side]
        if e.closed_at is None or learned is None or learned <= e.closed_at:
            continue
        if view.start <= e.closed_at <= view.end:
            y = view.row[e.conn, e.side]
            strokes.append(
                [(e.closed_at, y - view.bar / 2 - 0.12), (e.closed_at, y + view.bar / 2 + 0.12)]
            )
    if strokes:
        kernel = LineCollection(
            strokes,
            colors=COLORS["tcp"],
            linewidths=1.6,
            linestyles=(0, (2, 1.5)),
            zorder=4,
            label="closed by the kernel",
        )
        kernel.set_gid("kernel-closed")
        view.ax.add_collection(kernel)


def _peer_notes(
    view: _View,
    chosen: list[Endpoint],
    ends: dict[tuple[str, str], float | None],
    on_peers: list[FaultSpan],
) -> dict[tuple[str, str], str]:
    """For each endpoint whose peer was stopped while it lived: what its label adds."""
    notes: dict[tuple[str, str], str] = {}
    for fault in on_peers:
        for e in chosen:
            learned = ends[e.conn, e.side]
            life_end = view.end if learned is None else learned
            if e.peer == fault.host and fault.start <= life_end and fault.end >= e.started_at:
                notes.setdefault((e.conn, e.side), fault_label(fault))
    return notes


def _draw_stopped(
    view: _View,
    chosen: list[Endpoint],
    ends: dict[tuple[str, str], float | None],
    stopped: list[FaultSpan],
) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """Hatch each lane while its process was stopped; return the spans, by endpoint."""
    frozen: dict[tuple[str, str], list[tuple[float, float]]] = {}
    boxes = []
    for fault in stopped:
        for e in chosen:
            if fault.host != e.host:
                continue
            learned = ends[e.conn, e.side]
            life_end = view.end if learned is None else min(learned, view.end)
            left = max(fault.start, e.started_at, view.start)
            right = min(fault.end, life_end)
            if right <= left:
                continue
            frozen.setdefault((e.conn, e.side), []).append((left, right))
            y = view.row[e.conn, e.side]
            boxes.append(
                [
                    (left, y - view.bar / 2),
                    (left, y + view.bar / 2),
                    (right, y + view.bar / 2),
                    (right, y - view.bar / 2),
                ]
            )
    if boxes:
        hatch = PolyCollection(
            boxes,
            facecolors="none",
            edgecolors=COLORS["fault"],
            hatch="///",
            linewidths=0,
            zorder=3,
            label="process stopped (frozen)",
        )
        hatch.set_gid("stopped")
        view.ax.add_collection(hatch)
    return frozen


def _draw_frames(view: _View, frames: Iterable[Event]) -> None:
    """Frames, as ticks on the lane of their sender: one collection per kind of frame."""
    ticks: dict[str, list[list[tuple[float, float]]]] = {k: [] for k in _FRAME_KINDS}
    for event in frames:
        y = view.y(event)
        if y is not None:
            t = event.time
            ticks[_frame_kind(event)].append([(t, y - _TICK), (t, y + _TICK)])
    for kind, segments in ticks.items():
        if not segments:
            continue
        collection = LineCollection(
            segments, colors=COLORS[kind], linewidths=1.3, zorder=3, label="_nolegend_"
        )
        collection.set_gid(f"frames:{kind}")
        view.ax.add_collection(collection)
        # The legend shows a tick, as drawn, rather than the collection's line.
        view.ax.add_line(
            Line2D(
                [],
                [],
                color=COLORS[kind],
                marker="|",
                linestyle="none",
                markersize=11,
                markeredgewidth=1.5,
                label=_FRAME_KINDS[kind],
            )
        )


def _draw_outcomes(
    view: _View,
    ended: list[Endpoint],
    ends: dict[tuple[str, str], float | None],
    *,
    above: bool,
) -> dict[tuple[str, str], str]:
    """How each endpoint ended, unless it would cover the previous one on its lane; return
    what was written, by endpoint.

    With ``above``, on lanes shared by successive connections, the text goes above the end
    of the bar, clear of the crosses of the attempts that follow, and failed attempts get
    none: their cross says enough.
    """
    points = _points_per_unit(view.ax, view.right - view.left, vertical=False)
    taken: dict[int, float] = {}
    written: dict[tuple[str, str], str] = {}
    for e in sorted(ended, key=lambda e: ends[e.conn, e.side] or 0.0):
        t = ends[e.conn, e.side]
        if t is None or (above and e.failed):
            continue
        y = view.row[e.conn, e.side]
        x = (t - view.left) * points + 5
        outcome = e.outcome
        if x < taken.get(y, -math.inf):
            continue
        taken[y] = x + len(outcome) * FONT_SIZES["note"] * 0.62 + 4
        if above:
            where, offset, va = (t, y - view.bar / 2), (2, 1), "bottom"
        else:
            where, offset, va = (t, y), (5, 0), "center"
        label = view.ax.annotate(
            outcome,
            where,
            xytext=offset,
            textcoords="offset points",
            ha="left",
            va=va,
            fontsize=FONT_SIZES["note"],
            color=COLORS["text"] if outcome in _NORMAL_CLOSES else COLORS["error"],
            zorder=5,
        )
        label.set_gid("outcome")
        written[e.conn, e.side] = outcome
    return written


def _draw_faults_and_marks(
    view: _View,
    fault_list: list[FaultSpan],
    marks: Iterable[Event],
    *,
    on_lanes: list[FaultSpan],
) -> tuple[int, list[Band]]:
    """Shade faults (but those hatched ``on_lanes``), draw marks, label both above the
    lanes; return the lines of labels and the bands drawn."""
    ax = view.ax
    notes: list[tuple[float, str, str]] = []
    bands: list[Band] = []
    in_legend = False
    for fault in fault_list:
        color = COLORS["fault"]
        left, right = max(fault.start, view.start), min(fault.end, view.end)
        instant = fault.instant or fault.end <= fault.start
        hatched = any(fault is f for f in on_lanes)
        if not hatched:
            label = "_nolegend_" if in_legend else "fault"
            in_legend = True
            artist: Line2D | Rectangle
            if instant:
                artist = ax.axvline(
                    fault.start, linestyle="--", linewidth=1.2, zorder=1, color=color, label=label
                )
            else:
                artist = ax.axvspan(
                    left, right, alpha=FAULT_ALPHA, linewidth=0, zorder=0, color=color, label=label
                )
            artist.set_gid("fault")
        text = fault_label(fault)
        notes.append((left, text, "fault"))
        back = ""
        info = fault.info
        if (
            info is not None
            and info.fault.kills
            and fault.ended
            and view.start <= fault.end <= view.end
        ):
            # The restart ends the band: say so, where it happens.
            back = f"{fault.host} back"
            line = ax.axvline(fault.end, color=color, linewidth=1.2, zorder=1)
            line.set_gid("restart")
            notes.append((fault.end, back, "fault"))
        where = "lanes" if hatched else ""
        bands.append(Band(text, left, right if not instant else left, instant, back, on=where))
    for i, mark in enumerate(marks):
        line = ax.axvline(
            mark.time,
            color=COLORS["mark"],
            linestyle=":",
            linewidth=1.2,
            zorder=1,
            label="_nolegend_" if i else "mark",
        )
        line.set_gid("mark")
        notes.append((mark.time, _shorten(mark.text, 32), "mark"))
    notes.sort(key=lambda note: note[0])
    placed = _stack(notes, ax, view.left, view.right)
    for (x, text, what), (level, right_aligned) in zip(notes, placed, strict=True):
        note = ax.annotate(
            text,
            (x, -0.5),
            xytext=(-2 if right_aligned else 2, 3 + 12 * level),
            textcoords="offset points",
            ha="right" if right_aligned else "left",
            va="bottom",
            fontsize=FONT_SIZES["note"],
            color=COLORS[what],
            zorder=5,
        )
        gid = "restart-label" if text.endswith(" back") and what == "fault" else f"{what}-label"
        note.set_gid(gid)
    levels = [level for level, _ in placed]
    return (max(levels) + 1 if levels else 0), bands


def _stack(
    notes: list[tuple[float, str, str]], ax: Axes, left: float, right: float
) -> list[tuple[int, bool]]:
    """Give each label a level so that labels on the same level do not overlap, and say
    whether it ends at its x (near the right edge, so as to stay inside the axes)."""
    points = _points_per_unit(ax, right - left, vertical=False)
    char = FONT_SIZES["note"] * 0.6  # average width of a character, in points
    width = (right - left) * points
    ends: list[float] = []  # per level, where its last label ends (in points)
    placed = []
    for x, text, _color in notes:
        here = (x - left) * points
        size = len(text) * char
        right_aligned = here + size > width and here - size >= 0
        begin, finish = (here - size, here) if right_aligned else (here, here + size)
        for level, taken in enumerate(ends):
            if begin > taken + 6:
                ends[level] = finish
                placed.append((level, right_aligned))
                break
        else:
            ends.append(finish)
            placed.append((len(ends) - 1, right_aligned))
    return placed


# The sequence diagram


@dataclass
class _Arrow:
    side: str
    time: float
    arrives: float | None
    texts: list[str]
    kind: str  # a colour of COLORS


def _arrow_kind(event: Event) -> str:
    if event.kind == "frame":
        return _frame_kind(event)
    if event.kind == "http":
        return "http"
    if event.detail is Tcp.RST:
        return "error"
    return "tcp"


_ARROW_LABELS = {
    "tcp": "TCP segment",
    "error": "TCP reset (RST)",
    "http": "HTTP handshake",
    "data": "data frame",
    "ping": "PING / PONG",
    "close": "CLOSE frame",
}


def _arrow_text(event: Event) -> str:
    """The label of an arrow: a frame without its size and compression, what the wire tap
    found irregular in it; else the event's text."""
    frame = event.frame
    if frame is None or not frame.head:
        return event.text
    head = event.text[: frame.head]
    return f"{head} ({frame.notes})" if frame.notes else head


def _without_parentheses(text: str) -> str:
    """``text`` without its parenthesised parts (and the space before each)."""
    out: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            if depth == 0 and out and out[-1] == " ":
                out.pop()
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out)


def _fit(text: str, limit: int) -> str:
    """Make ``text`` at most ``limit`` characters.

    First drop what is in brackets, then keep only the opcode or segment and a close
    code (``CLOSE 1011``), then cut.
    """
    if len(text) > limit:
        text = _without_parentheses(text)
    if len(text) > limit:
        parts = []
        for part in text.split(" + "):
            words = part.split()
            keep = words[:2] if words[:1] == ["CLOSE"] else words[:1]
            parts.append(" ".join(keep))
        text = " + ".join(parts)
    return _shorten(text, max(limit, 4))


def _digits(times: Iterable[float]) -> int:
    for digits in range(3, 7):
        if all(abs(round(t, digits) - t) < 1e-9 for t in times):
            return digits
    return 6


def sequence(
    trace: Trace,
    conn: str,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    kinds: Iterable[str] = ("http", "frame", "tcp"),
) -> Axes:
    """Draw one connection as a sequence diagram: client left, server right, time down.

    Each thing sent on the wire (of ``kinds``) is an arrow from the sender at the time it
    left to the receiver at the time it arrived, so latency slants it; things sent at the
    same instant that arrive together share one arrow (``CLOSE 1000 (OK) + FIN``). What
    did not arrive (lost, or waiting for TCP to retransmit it) stops halfway, at a cross.
    The endpoints' own events (``connected``, the exception a connection ended with) are
    written beside their lifeline, which is coloured by the endpoint's state. Long quiet
    stretches are cut short, and the cut says how much time it hides; the axis gives the
    true times.

    Args:
        trace: the trace holding the connection.
        conn: the connection to draw (``"c1"``).
        ax: the axes to draw on. Default: a new figure sized for the exchange.
        title: the figure's title. Default: the connection and its hosts.
        kinds: which kinds of events to draw (arrows for those sent on the wire, notes
            for those that stay on an endpoint). ``closed`` events are always noted.

    Returns:
        The axes drawn on.

    Raises:
        ValueError: if the trace has no events of ``conn``, or ``kinds`` holds an unknown
            kind.
    """
    wanted = set(kinds)
    if not wanted <= set(KINDS):
        raise ValueError(f"kinds must be among {', '.join(KINDS)}; got {sorted(wanted)}")
    events = trace.filter(conn=conn)
    if not events:
        known = ", ".join(trace.connections) or "none"
        raise ValueError(f"no events of connection {conn!r} in the trace (connections: {known})")
    hosts, arrows, notes = _exchange(events, wanted)
    first = events[0].time
    last = max([events.end] + [a.arrives for a in arrows if a.arrives is not None])
    conn_spans = spans(events, until=last)
    conn_faults = [
        f
        for f in faults(trace, until=last)
        if f.end >= first and f.start <= last and _touches(f, {h for h in hosts.values() if h})
    ]
    knots = {first, last}
    knots.update(a.time for a in arrows)
    knots.update(a.arrives for a in arrows if a.arrives is not None)
    knots.update(note.time for note in notes)
    knots.update(t for s in conn_spans for t in (s.start, s.end))
    knots.update(min(max(t, first), last) for f in conn_faults for t in (f.start, f.end))
    time = _TimeAxis(sorted(knots), _latency(arrows, trace, last - first))
    if ax is None:
        rows = (time.bottom - time.top) / time.latency
        ax = _new_axes(9, min(max(1.8 + 0.42 * rows, 3.5), 16))
    ax.set_xlim(-0.75, 1.75)
    ax.set_ylim(time.bottom, time.top)

    seen = _draw_lifelines(ax, time, conn_spans)
    for fault in conn_faults:
        _draw_fault_band(ax, time, fault, first, last)
    _draw_cuts(ax, time)
    for arrow in arrows:
        _draw_arrow(ax, time, arrow)
    lowest = _draw_notes(ax, time, notes)
    if lowest > time.bottom:
        # Notes pushed down below the last moment: the axis grows to hold them.
        ax.set_ylim(lowest + time.latency / 4, time.top)

    # Axes: hosts on top, true times on the left.
    ax.xaxis.tick_top()
    names = [
        hosts[side]
        if hosts[side].startswith(side) or not hosts[side]
        else f"{hosts[side]}\n({side})"
        for side in _X
    ]
    ax.set_xticks(list(_X.values()), names, fontsize=FONT_SIZES["label"], fontweight="bold")
    ax.tick_params(axis="x", length=0)
    ticks = sorted(
        {a.time for a in arrows}
        | {a.arrives for a in arrows if a.arrives is not None}
        | {note.time for note in notes}
        | {f.start for f in conn_faults if first <= f.start}
    )
    digits = _digits(ticks)
    shown: list[float] = []
    min_gap = (FONT_SIZES["tick"] * 1.3) / _points_per_unit(
        ax, time.bottom - time.top, vertical=True
    )
    for t in ticks:
        if not shown or time.y(t) - time.y(shown[-1]) >= min_gap:
            shown.append(t)
    ax.set_yticks([time.y(t) for t in shown], [f"{t:.{digits}f}" for t in shown])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(side == "left")
    ax.grid(False)

    # Legend: states, what the arrows are, faults.
    drawn = {a.kind for a in arrows}
    handles: list[Artist] = [
        Patch(color=STATE_COLORS[s], label=s.name) for s in _DRAWN_STATES if s in seen
    ]
    handles += [
        Line2D([], [], color=COLORS[k], linewidth=1.5, label=label)
        for k, label in _ARROW_LABELS.items()
        if k in drawn
    ]
    if any(a.arrives is None for a in arrows):
        handles.append(
            Line2D(
                [],
                [],
                color=COLORS["lost"],
                marker="x",
                linestyle="none",
                markeredgewidth=2,
                label="not delivered",
            )
        )
    if conn_faults:
        handles.append(Patch(color=COLORS["fault"], alpha=FAULT_ALPHA, label="fault"))
    if title is None:
        title = f"{conn}: {hosts['client'] or '?'} → {hosts['server'] or '?'}"
    decorate(
        ax,
        title=title,
        ylabel="virtual time (s)",
        legend={"handles": handles, "loc": "upper left", "bbox_to_anchor": (1.0, 1.0)},
    )
    ends = {e.side: e for e in endpoints(events)}
    return record(
        ax,
        Drawing(
            kind="sequence",
            title=title,
            xlim=(0, 0),
            ylim=(0, 0),
            run_until=trace.ran_until,
            cut=", ".join(f"{hidden:.4g} s hidden" for _, _, hidden in time.cuts),
            lanes=tuple(
                Lane(
                    label=hosts[side],
                    conn=conn,
                    side=side,
                    host=e.host,
                    start=e.started_at,
                    end=max((s.end for s in conn_spans if s.side == side), default=e.started_at),
                    closed_at=_learned_at(e),
                    kernel_closed_at=None,
                    outcome=e.outcome,
                    open_end=e.closed_at is None,
                    states=tuple(
                        (s.state.name, s.start, s.end) for s in conn_spans if s.side == side
                    ),
                )
                for side, e in ends.items()
            ),
            bands=tuple(
                Band(fault_label(f), f.start, f.end, f.instant or f.end <= f.start)
                for f in conn_faults
            ),
            notes=tuple(t.get_text() for t in ax.texts if t.get_text()),
        ),
    )


_X = {"client": 0.0, "server": 1.0}  # where each side's lifeline is


@dataclass(frozen=True)
class _Note:
    side: str
    time: float
    text: str
    color: str


def _exchange(events: Trace, wanted: set[str]) -> tuple[dict[str, str], list[_Arrow], list[_Note]]:
    """The hosts of each side, the arrows and the notes of one connection's events."""
    ends = {e.side: e for e in endpoints(events)}
    hosts = {side: ends[side].host if side in ends else "" for side in _X}
    arrows: list[_Arrow] = []
    by_key: dict[tuple[str, float, float | None], _Arrow] = {}
    notes: list[_Note] = []
    for event in events:
        if event.side not in _X:
            continue
        if event.peer:
            other = "server" if event.side == "client" else "client"
            hosts[event.side] = hosts[event.side] or event.host
            hosts[other] = hosts[other] or event.peer
        if event.peer and event.kind in wanted:
            key = (event.side, event.time, event.arrives)
            arrow = by_key.get(key)
            if arrow is None:
                arrow = _Arrow(event.side, event.time, event.arrives, [], _arrow_kind(event))
                by_key[key] = arrow
                arrows.append(arrow)
            arrow.texts.append(_arrow_text(event))
        elif not event.peer and event.kind == "closed":
            text = event.text.replace(": ", ":\n", 1).replace("; ", ";\n")
            normal = event.code in (1000, 1001)
            notes.append(_Note(event.side, event.time, text, COLORS["text" if normal else "error"]))
        elif not event.peer and event.kind in wanted:
            # A TCP failure, or a fault acting on the connection, is an error.
            what = event.tcp
            failure = (what is not None and what.failure) or event.fault is not None
            color = COLORS["error" if failure else "tcp"]
            notes.append(_Note(event.side, event.time, event.text, color))
    return hosts, arrows, notes


def _latency(arrows: list[_Arrow], trace: Trace, duration: float) -> float:
    """The typical one-way latency: of this connection, else of the network."""
    latencies = [a.arrives - a.time for a in arrows if a.arrives is not None and a.arrives > a.time]
    if not latencies:
        latencies = [
            e.arrives - e.time for e in trace if e.arrives is not None and e.arrives > e.time
        ]
    return float(np.median(latencies)) if latencies else max(duration / 20, 0.001)


class _TimeAxis:
    """Virtual time to a position downwards, with quiet stretches cut short.

    A gap between two moments worth drawing longer than three latencies becomes a cut of
    two latencies; shorter gaps keep their true length, so arrows slant by the latency.
    """

    def __init__(self, times: list[float], latency: float) -> None:
        self.latency = latency
        self.times = times
        self.ys = [0.0]
        self.cuts: list[tuple[float, float, float]] = []  # y before, y after, time hidden
        for a, b in itertools.pairwise(times):
            gap = b - a
            if gap > 3 * latency:
                self.cuts.append((self.ys[-1], self.ys[-1] + 2 * latency, gap))
                self.ys.append(self.ys[-1] + 2 * latency)
            else:
                self.ys.append(self.ys[-1] + gap)
        self.top = -latency
        self.bottom = self.ys[-1] + latency

    def y(self, t: float) -> float:
        return float(np.interp(t, self.times, self.ys))


def _draw_lifelines(ax: Axes, time: _TimeAxis, conn_spans: list[Span]) -> set[State]:
    """Both lifelines, coloured by the state of their endpoint; return the states seen."""
    for x in _X.values():
        ax.plot([x, x], [time.top, time.bottom], color=COLORS["grid"], linewidth=1.5, zorder=1)
    seen: set[State] = set()
    width = 0.035
    for span in conn_spans:
        y0, y1 = time.y(span.start), time.y(span.end)
        bar = Rectangle(
            (_X[span.side] - width / 2, y0),
            width,
            y1 - y0,
            facecolor=STATE_COLORS[span.state],
            edgecolor="none",
            zorder=2,
            label="_nolegend_",
        )
        bar.set_gid(f"state:{span.state.name}")
        seen.add(span.state)
        ax.add_patch(bar)
    return seen


def _draw_fault_band(
    ax: Axes, time: _TimeAxis, fault: FaultSpan, first: float, last: float
) -> None:
    """A fault as a band across both lifelines, labelled on the left."""
    y0, y1 = time.y(max(fault.start, first)), time.y(min(fault.end, last))
    artist: Line2D | Rectangle
    if fault.instant or y1 <= y0:
        artist = ax.axhline(y0, color=COLORS["fault"], linestyle="--", linewidth=1)
    else:
        artist = ax.axhspan(y0, y1, color=COLORS["fault"], alpha=FAULT_ALPHA, linewidth=0, zorder=0)
    artist.set_gid("fault")
    text = ax.text(
        -0.73,
        y0,
        fault_label(fault),
        ha="left",
        va="bottom",
        fontsize=FONT_SIZES["note"],
        color=COLORS["fault"],
        zorder=5,
    )
    text.set_gid("fault-label")


def _draw_cuts(ax: Axes, time: _TimeAxis) -> None:
    """Dotted lines around each cut, and how much time it hides."""
    for y0, y1, hidden in time.cuts:
        for y in (y0, y1):
            line = ax.axhline(
                y, color=COLORS["tcp"], linestyle=(0, (1, 3)), linewidth=0.8, zorder=2.6
            )
            line.set_gid("cut")
        text = ax.text(
            0.5,
            y0 + (y1 - y0) * 0.65,  # clear of the crosses of lost segments above
            f"{hidden:.4g} s later",
            ha="center",
            va="center",
            fontsize=FONT_SIZES["note"],
            color=COLORS["tcp"],
            style="italic",
            zorder=6,
        )
        text.set_gid("cut-label")


def _draw_arrow(ax: Axes, time: _TimeAxis, arrow: _Arrow) -> None:
    """An arrow from sender to receiver, labelled along its length."""
    x0, y0 = _X[arrow.side], time.y(arrow.time)
    color = COLORS[arrow.kind]
    if arrow.arrives is None:
        # Lost, or waiting for a retransmission: it stops halfway, at a cross.
        x1, y1 = 0.5, y0 + time.latency / 2
        style, gid = "-", "lost"
        (cross,) = ax.plot(
            [x1],
            [y1],
            marker="x",
            color=COLORS["lost"],
            markersize=7,
            markeredgewidth=2,
            zorder=4,
        )
        cross.set_gid("lost-cross")
    else:
        x1, y1 = 1.0 - x0, time.y(arrow.arrives)
        style, gid = "-|>", "arrow"
    line = ax.annotate(
        "",
        xy=(x1, y1),
        xytext=(x0, y0),
        arrowprops={
            "arrowstyle": style,
            "mutation_scale": 11,
            "color": color,
            "linewidth": 1.3,
            "shrinkA": 0,
            "shrinkB": 0 if arrow.arrives is None else 1,
        },
        zorder=3,
    )
    line.set_gid(gid)
    # The label runs along the arrow, never upside down.
    x_points = _points_per_unit(ax, 2.5, vertical=False)
    y_points = _points_per_unit(ax, time.bottom - time.top, vertical=True)
    angle = math.degrees(math.atan2(-(y1 - y0) * y_points, (x1 - x0) * x_points))
    if angle > 90:
        angle -= 180
    elif angle < -90:
        angle += 180
    length = math.hypot((x1 - x0) * x_points, (y1 - y0) * y_points)
    if arrow.arrives is None:
        # A short arrow: its label starts near the sender and may run past the cross.
        where = (x0 + (x1 - x0) * 0.15, y0 + (y1 - y0) * 0.15)
        align = "left" if x1 > x0 else "right"
        length *= 1.7
    else:
        where, align = ((x0 + x1) / 2, (y0 + y1) / 2), "center"
    label = ax.annotate(
        _fit(" + ".join(arrow.texts), int((length - 36) / (FONT_SIZES["note"] * 0.62))),
        where,
        xytext=(0, 2),
        textcoords="offset points",
        ha=align,
        va="bottom",
        rotation=angle,
        rotation_mode="anchor",
        fontsize=FONT_SIZES["note"],
        color=color if arrow.kind not in ("http", "tcp") else COLORS["text"],
        zorder=5,
    )
    label.set_gid("arrow-label")


def _draw_notes(ax: Axes, time: _TimeAxis, notes: list[_Note]) -> float:
    """Notes beside each lifeline, pushed down when they would overlap; return where the
    lowest one ends."""
    line_height = (
        FONT_SIZES["note"] * 1.25 / _points_per_unit(ax, time.bottom - time.top, vertical=True)
    )
    merged: list[_Note] = []
    for note in notes:
        last = merged[-1] if merged else None
        if last and (last.side, last.time, last.color) == (note.side, note.time, note.color):
            merged[-1] = _Note(note.side, note.time, f"{last.text}\n{note.text}", note.color)
        else:
            merged.append(note)
    next_free = {"client": time.top, "server": time.top}
    for note in merged:
        wrapped = "\n".join(
            textwrap.fill(part, 28, break_long_words=False, break_on_hyphens=False)
            for part in note.text.split("\n")
        )
        y = max(time.y(note.time) - line_height / 2, next_free[note.side])
        next_free[note.side] = y + (wrapped.count("\n") + 1) * line_height
        client = note.side == "client"
        text = ax.text(
            _X[note.side] + (-0.05 if client else 0.05),
            y,
            wrapped,
            ha="right" if client else "left",
            va="top",
            fontsize=FONT_SIZES["note"],
            color=note.color,
            zorder=5,
            linespacing=1.1,
        )
        text.set_gid("note")
    return max(next_free.values())
