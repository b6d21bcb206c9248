"""Reconnect storms: attempts per second and clients connected, strategy by strategy.

Draws what :mod:`wssim.lab.storm` returns, and attempts per second measured on any trace
(:func:`attempts_over_time`, with the trace's faults shaded and named).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from wssim.lab.storm import StormResult
from wssim.plot.diagrams import fault_label
from wssim.plot.drawing import Band, Drawing, Line, Series, record
from wssim.plot.style import COLORS, FAULT_ALPHA, FONT_SIZES, OKABE_ITO, decorate
from wssim.trace.events import Trace
from wssim.trace.lifecycle import faults

__all__ = ["attempts", "attempts_over_time", "connected"]


_BEHIND_TEXT = {"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 0.6}
"""A box that keeps a label legible over the curves it is written on."""


LEGEND_OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)}
"""Where the storm figures put a legend of several strategies: beside the axes."""


def _finish(
    ax: Axes, drawing: Drawing, *, xlabel: str, ylabel: str, legend: bool | Mapping[str, Any]
) -> Axes:
    """Grid, labels and legend as every storm figure has them; then say what was drawn."""
    ax.grid(True, color=COLORS["grid"], lw=0.6)
    decorate(ax, title=drawing.title, xlabel=xlabel, ylabel=ylabel, legend=legend)
    return record(ax, drawing)


def _color(result: StormResult, index: int) -> str:
    """One colour per strategy, the same in every figure; others by position."""
    by_name = {
        "exponential": "vermillion",
        "full jitter": "blue",
        "equal jitter": "bluish green",
        "decorrelated jitter": "orange",
        "RFC 6455": "reddish purple",
        "websockets default": "sky blue",
        "constant": "black",
    }
    name = by_name.get(result.strategy)
    if name is not None:
        return OKABE_ITO[name]
    return _spare(index)


def _spare(index: int) -> str:
    spare = ("blue", "orange", "bluish green", "reddish purple", "sky blue", "vermillion")
    return OKABE_ITO[spare[index % len(spare)]]


def _axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    _, new = plt.subplots(figsize=(9, 3.5))
    return new


def _shade_down(ax: Axes, result: StormResult, origin: float) -> Band:
    """The server's outage as a band; its return as a line, named."""
    down, back = result.crash_at - origin, result.restart_at - origin
    ax.axvspan(down, back, color=COLORS["fault"], alpha=FAULT_ALPHA, lw=0, label="server down")
    ax.axvline(back, color=COLORS["fault"], lw=1.0)
    ax.annotate(
        "server back",
        (back, 0.55),
        xycoords=("data", "axes fraction"),
        xytext=(2, 0),
        textcoords="offset points",
        ha="left",
        va="center",
        rotation=90,
        fontsize=FONT_SIZES["note"],
        color=COLORS["fault"],
        bbox=_BEHIND_TEXT,
    )
    return Band("server down", down, back, end_label="server back")


def _rate_line(ax: Axes, rate: float) -> Line:
    """The admission rate, dashed, named at its right end."""
    ax.axhline(rate, color=COLORS["text"], lw=0.8, ls="--")
    ax.annotate(
        f"admits {rate:g}/s",
        (1.0, rate),
        xycoords=("axes fraction", "data"),
        xytext=(-3, 2),
        textcoords="offset points",
        ha="right",
        va="bottom",
        fontsize=FONT_SIZES["note"],
        color=COLORS["text"],
    )
    return Line("admission rate", y=rate)


def _room(a: int, b: int) -> float:
    """Points needed between the centres of two labels of counts ``a`` and ``b``."""
    return (len(f"{a:,}") + len(f"{b:,}")) * FONT_SIZES["note"] * 0.31 + 4


def _clip(ax: Axes, xs: Sequence[float], ys: Sequence[int], top: float, color: str) -> list[str]:
    """Write the peak of each run of values above ``top`` at the top of the axes (runs too
    close for two labels share one, the highest); return what was written."""
    left, right = ax.get_xlim()
    box = ax.get_position()
    figure = ax.figure.figure
    width = box.width * (figure.get_figwidth() if figure is not None else 6.0) * 72
    per_second = width / max(right - left, 1e-9)  # points per second of the x axis
    peaks: list[tuple[float, int]] = []  # one per run above the top
    inside = False
    for x, y in zip(xs, ys, strict=True):
        if not left <= x + 0.5 <= right:
            inside = False
            continue
        if y > top:
            if inside and y > peaks[-1][1]:
                peaks[-1] = (x, y)
            elif not inside:
                peaks.append((x, y))
            inside = True
        else:
            inside = False
    merged: list[tuple[float, int]] = []
    for x, y in peaks:
        if merged and (x - merged[-1][0]) * per_second < _room(y, merged[-1][1]):
            merged[-1] = max(merged[-1], (x, y), key=lambda peak: peak[1])
        else:
            merged.append((x, y))
    written = []
    for x, y in merged:
        text = f"{y:,}"
        ax.annotate(
            text,
            (x + 0.5, top),
            xytext=(0, -2),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=FONT_SIZES["note"],
            color=color,
            bbox=_BEHIND_TEXT,
        )
        written.append(text)
    return written


def attempts(
    results: Sequence[StormResult],
    *,
    ax: Axes | None = None,
    until: float | None = None,
    rate: float | None = None,
    ymax: float | None = None,
    title: str = "Connection attempts reaching the server",
) -> Axes:
    """Attempts reaching the server per second, one line per strategy, from the crash on.

    The shaded band is the time the server was down, and a line marks its return.
    ``until`` limits the x axis (seconds after the crash); ``rate``, if given, draws the
    server's admission rate as a dashed line. ``ymax`` cuts the y axis there, so that
    the peaks after the restart are not squashed by those of the outage: the y axis'
    label says so, and each peak above it is written at the top.
    """
    ax = _axes(ax)
    drawn_series = []
    written: list[str] = []
    for index, result in enumerate(results):
        seconds = [float(s) for s in range(len(result.attempts_per_second))]
        color = _color(result, index)
        ax.step(seconds, result.attempts_per_second, where="post", color=color,
                label=result.strategy, lw=1.2)  # fmt: skip
        drawn_series.append(
            Series(result.strategy, tuple(seconds), tuple(map(float, result.attempts_per_second)))
        )
    if until is not None:
        ax.set_xlim(0, until)
    if ymax is not None:
        ax.set_ylim(0, ymax)
        for index, result in enumerate(results):
            seconds = [float(s) for s in range(len(result.attempts_per_second))]
            color = _color(result, index)
            written += _clip(ax, seconds, result.attempts_per_second, ymax, color)
    bands = []
    if results:
        bands.append(_shade_down(ax, results[0], results[0].crash_at))
    lines = []
    if rate is not None:
        lines.append(_rate_line(ax, rate))
    cut = ""
    ylabel = "attempts per second"
    if ymax is not None:
        cut = f"y axis cut at {ymax:g}: higher peaks are written at the top"
        ylabel = f"attempts per second\n(cut at {ymax:g})"
    return _finish(
        ax,
        Drawing(
            kind="storm_attempts",
            title=title,
            xlim=(0, 0),
            ylim=(0, 0),
            cut=cut,
            bands=tuple(bands),
            lines=tuple(lines),
            series=tuple(drawn_series),
            notes=tuple(written),
        ),
        xlabel="seconds after the crash",
        ylabel=ylabel,
        legend=len(results) > 1,
    )


def connected(
    results: Sequence[StormResult],
    *,
    ax: Axes | None = None,
    until: float | None = None,
    title: str = "Clients connected",
) -> Axes:
    """Clients connected over time, one line per strategy, from the crash on.

    Each strategy's line is drawn thinner than the one before, on top of it, so that a line
    that follows another stays visible.
    """
    ax = _axes(ax)
    drawn_series = []
    widths = [2.8 - 1.6 * i / max(len(results) - 1, 1) for i in range(len(results))]
    for index, result in enumerate(results):
        color = _color(result, index)
        origin = result.crash_at
        points = [(t - origin, n) for t, n in result.connected if t >= origin]
        before = [n for t, n in result.connected if t < origin]
        xs = [0.0] + [t for t, _ in points]
        ys = [before[-1] if before else 0] + [n for _, n in points]
        end = until if until is not None else max(xs[-1], 1.0)
        xs.append(max(end, xs[-1]))
        ys.append(ys[-1])
        ax.step(xs, ys, where="post", color=color, label=result.strategy, lw=widths[index],
                zorder=2 + index)  # fmt: skip
        drawn_series.append(Series(result.strategy, tuple(xs), tuple(map(float, ys))))
    bands = []
    if results:
        bands.append(_shade_down(ax, results[0], results[0].crash_at))
    if until is not None:
        ax.set_xlim(0, until)
    ax.set_ylim(0, max((r.clients for r in results), default=1) * 1.05)
    return _finish(
        ax,
        Drawing(
            kind="storm_connected",
            title=title,
            xlim=(0, 0),
            ylim=(0, 0),
            bands=tuple(bands),
            series=tuple(drawn_series),
        ),
        xlabel="seconds after the crash",
        ylabel="clients connected",
        legend=LEGEND_OUTSIDE,
    )


def attempts_over_time(
    rates: Mapping[str, Sequence[int]],
    *,
    trace: Trace | None = None,
    server: str = "server",
    since: float = 0.0,
    rate: float | None = None,
    colors: Mapping[str, str] | None = None,
    ax: Axes | None = None,
    title: str = "Connection attempts reaching the server",
) -> Axes:
    """Attempts per second reaching a server, one line per run, with its faults named.

    Args:
        rates: for each run's name, the attempts in each second from ``since``
            (:func:`wssim.lab.scorecard.attempts_per_second`).
        trace: a trace whose faults on host ``server`` are shaded, each named above its
            band (``server crashed``); None: no bands.
        server: the host whose faults are shown.
        since: the time of the first second of ``rates``.
        rate: the server's admission rate, dashed and named, if given.
        colors: a colour of :mod:`wssim.plot.style` for each run (default: in turn).
        ax: the axes to draw on. Default: a new figure.
        title: the figure's title.

    Returns:
        The axes drawn on.
    """
    ax = _axes(ax)
    drawn_series = []
    peak = 1.0
    longest = 0
    for index, (name, counts) in enumerate(rates.items()):
        color = colors[name] if colors is not None and name in colors else _spare(index)
        xs = [since + s for s in range(len(counts))]
        ax.step(xs, counts, where="post", label=name, color=color, lw=1.2)
        drawn_series.append(Series(name, tuple(map(float, xs)), tuple(map(float, counts))))
        peak = max(peak, *counts) if counts else peak
        longest = max(longest, len(counts))
    end = since + max(longest, 1)
    bands = []
    if trace is not None:
        spans = [f for f in faults(trace, until=end) if f.host == server and not f.instant]
        for i, span in enumerate(spans):
            left, right = max(span.start, since), min(span.end, end)
            if right < left:
                continue
            label = fault_label(span)
            ax.axvspan(left, right, color=COLORS["fault"], alpha=FAULT_ALPHA, lw=0,
                       label="server fault" if i == 0 else "_nolegend_")  # fmt: skip
            bands.append(Band(label, left, right))
    # Room above the curves for the bands' names, on two levels if they are close.
    ax.set_ylim(0, peak * 1.35)
    ax.set_xlim(since, end)
    width = end - since
    last_x = -float("inf")
    level = 0
    for band in bands:
        level = 1 - level if band.start - last_x < 0.12 * width else 0
        last_x = band.start
        ax.annotate(
            band.label.removeprefix(f"{server} "),
            (band.start, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(1, -2 - 11 * level),
            textcoords="offset points",
            ha="left",
            va="top",
            fontsize=FONT_SIZES["note"],
            color=COLORS["fault"],
        )
    lines = [] if rate is None else [_rate_line(ax, rate)]
    return _finish(
        ax,
        Drawing(
            kind="attempts_over_time",
            title=title,
            xlim=(0, 0),
            ylim=(0, 0),
            run_until=None if trace is None else trace.ran_until,
            bands=tuple(bands),
            lines=tuple(lines),
            series=tuple(drawn_series),
        ),
        xlabel="virtual time (s)",
        ylabel="attempts per second",
        legend=LEGEND_OUTSIDE,
    )
