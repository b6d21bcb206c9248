"""What a figure shows, as data: every figure of :mod:`wssim.plot` says what it drew.

A figure is checked on what it means, never on its pixels: each plotting function records a
:class:`Drawing` for the axes it drew on (its lanes with their spans and ends, its bands,
its reference lines, its curves, its axis ranges, and where it cut them), and
:func:`drawn` gives it back. Tests compare it with the trace and with the numbers a lesson
prints. :func:`collisions` finds text written over other text or over the legend.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

from matplotlib.axes import Axes
from matplotlib.text import Text

__all__ = [
    "Band",
    "Drawing",
    "Lane",
    "Line",
    "Series",
    "collisions",
    "drawn",
    "record",
]


@dataclass(frozen=True, slots=True)
class Lane:
    """One connection endpoint on a timeline, as drawn.

    Attributes:
        label: the label of its lane (several endpoints share a lane ``by="host"``).
        conn: its connection.
        side: ``"client"`` or ``"server"``.
        host: its host.
        start: where its bar starts.
        end: where its bar ends: where the application learned the connection ended, or
            the right edge of the figure if it was still open there.
        closed_at: when the application learned the connection ended (the exception it
            saw); when TCP or a fault ended it, if the application never saw it; None if it
            was still open at the end of the run.
        kernel_closed_at: when its host's TCP stack closed it, if earlier than
            ``closed_at`` (a frozen process learns late what its kernel knew); else None.
        outcome: what is written at its end (``"1011"``, ``"refused"``), or ``""``.
        open_end: True if it is still open at the right edge, drawn with an arrow.
        frozen: the spans during which its process was stopped (a freeze, a machine
            asleep), hatched on the lane.
        peer: what its label says of its peer, stopped while it lived (``"client07
            frozen"``), or ``""``.
        states: ``(state, start, end)`` of each stretch of its bar, in order.
    """

    label: str
    conn: str
    side: str
    host: str
    start: float
    end: float
    closed_at: float | None
    kernel_closed_at: float | None
    outcome: str
    open_end: bool
    frozen: tuple[tuple[float, float], ...] = ()
    peer: str = ""
    states: tuple[tuple[str, float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Band:
    """A shaded stretch of time (a fault), or an instant (a dashed line).

    Attributes:
        label: what is written at its start (``"server crashed"``).
        start: where it starts, as drawn.
        end: where it ends, as drawn.
        instant: True for a moment drawn as a line.
        end_label: what is written at its end (``"server back"``), or ``""``.
        on: where it is drawn: ``""`` across the figure; ``"lanes"`` hatched on the lanes
            of its host (a process stopped); ``"peers"`` named in the labels of the lanes
            connected to its host.
    """

    label: str
    start: float
    end: float
    instant: bool = False
    end_label: str = ""
    on: str = ""


@dataclass(frozen=True, slots=True)
class Line:
    """A reference line across the axes: ``x`` for a moment, ``y`` for a level.

    Attributes:
        label: what it is (``"admission rate"``, a mark's text).
        x: the time of a vertical line, or None.
        y: the level of a horizontal line, or None.
    """

    label: str
    x: float | None = None
    y: float | None = None


@dataclass(frozen=True, slots=True)
class Series:
    """A curve, or a set of bars or points, as drawn.

    Attributes:
        label: its name in the legend (or beside it).
        x: its x values.
        y: its y values (for ranges, the tops).
        low: for ranges (best to worst), the bottoms; else empty.
    """

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    low: tuple[float, ...] = ()

    @property
    def peak(self) -> float:
        """The largest y (0.0 for an empty series)."""
        return max(self.y, default=0.0)


@dataclass(frozen=True, slots=True)
class Drawing:
    """What one axes shows.

    Attributes:
        kind: which figure: ``"timeline"``, ``"sequence"``, ``"storm_attempts"``,
            ``"storm_connected"``, ``"tradeoff"``, ``"held_over_time"``,
            ``"attempts_over_time"``.
        title: its title.
        xlim: the x axis' range.
        ylim: the y axis' range (bottom, top as numbers: a timeline's lanes count down).
        run_until: how far the run went, for figures of a trace; else None.
        cut: where the figure stops short of what it draws, in words (``"the run goes on
            to 3610 s"``, ``"y axis cut at 400: peaks above it are written"``); ``""`` if
            nothing is cut.
        lanes: the endpoints of a timeline or a sequence diagram.
        bands: the faults shaded.
        lines: the reference lines (marks, rates, restarts).
        series: the curves, bars and points.
        notes: the other text written on the figure.
        legend: the legend's entries.
    """

    kind: str
    title: str
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    run_until: float | None = None
    cut: str = ""
    lanes: tuple[Lane, ...] = ()
    bands: tuple[Band, ...] = ()
    lines: tuple[Line, ...] = ()
    series: tuple[Series, ...] = ()
    notes: tuple[str, ...] = ()
    legend: tuple[str, ...] = field(default=())

    def lane(self, conn: str, side: str) -> Lane:
        """The lane of one endpoint.

        Raises:
            LookupError: if the figure has no such endpoint.
        """
        for lane in self.lanes:
            if (lane.conn, lane.side) == (conn, side):
                return lane
        raise LookupError(f"no lane of {conn} {side} in this {self.kind}")

    def band(self, label: str) -> Band:
        """The first band whose label contains ``label``.

        Raises:
            LookupError: if there is none.
        """
        for band in self.bands:
            if label in band.label:
                return band
        raise LookupError(f"no band labelled {label!r} in this {self.kind}")

    def curve(self, label: str) -> Series:
        """The series called ``label``.

        Raises:
            LookupError: if there is none.
        """
        for series in self.series:
            if series.label == label:
                return series
        raise LookupError(f"no series {label!r} in this {self.kind}")


_DRAWINGS: weakref.WeakKeyDictionary[Axes, Drawing] = weakref.WeakKeyDictionary()


def record(ax: Axes, drawing: Drawing) -> Axes:
    """Attach ``drawing`` to ``ax``, with the axes' final ranges and legend; return ``ax``."""
    legend = ax.get_legend()
    entries = () if legend is None else tuple(t.get_text() for t in legend.get_texts())
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    _DRAWINGS[ax] = Drawing(
        kind=drawing.kind,
        title=drawing.title or ax.get_title(loc="left"),
        xlim=(float(x0), float(x1)),
        ylim=(float(min(y0, y1)), float(max(y0, y1))),
        run_until=drawing.run_until,
        cut=drawing.cut,
        lanes=drawing.lanes,
        bands=drawing.bands,
        lines=drawing.lines,
        series=drawing.series,
        notes=drawing.notes,
        legend=drawing.legend or entries,
    )
    return ax


def drawn(ax: Axes) -> Drawing:
    """What a :mod:`wssim.plot` function drew on ``ax``.

    Raises:
        LookupError: if no function of :mod:`wssim.plot` drew on ``ax``.
    """
    try:
        return _DRAWINGS[ax]
    except KeyError:
        raise LookupError("wssim.plot drew nothing on these axes") from None


def collisions(ax: Axes) -> list[tuple[str, str]]:
    """Text of ``ax`` written over other text of ``ax``, or over its legend.

    Draws the figure, then compares the boxes of every visible, non-empty text (titles
    and tick labels apart) with each other and with the legend's box.

    Returns:
        The pairs that overlap, as ``(text, other)``; the legend is ``"legend"``.
    """
    figure = ax.figure.figure
    if figure is None:
        return []
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    texts = [t for t in ax.texts if isinstance(t, Text) and t.get_visible() and t.get_text()]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    found: list[tuple[str, str]] = []
    legend = ax.get_legend()
    if legend is not None:
        frame = legend.get_window_extent(renderer)
        found += [(text, "legend") for text, box in boxes if box.overlaps(frame)]
    for i, (text, box) in enumerate(boxes):
        for other, other_box in boxes[i + 1 :]:
            if box.overlaps(other_box):
                found.append((text, other))
    return found
