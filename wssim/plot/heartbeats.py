"""Heartbeats: detection time against what a heartbeat costs.

Draws what :mod:`wssim.lab.detection` measures (its sweep points and stack results).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.markers import TICKLEFT, TICKRIGHT
from matplotlib.ticker import FuncFormatter
from matplotlib.transforms import offset_copy

from wssim.lab.detection import CLIENT, SERVER, StackResult, SweepPoint
from wssim.plot.drawing import Drawing, Series, record
from wssim.plot.style import COLORS, FONT_SIZES, decorate

__all__ = ["tradeoff"]

_STEP = 6.0
"""How far apart, in points, the brackets of bars that share an x are drawn."""


def tradeoff(
    points: Iterable[SweepPoint],
    results: Iterable[StackResult] = (),
    *,
    side: str = SERVER,
    ax: Axes | None = None,
    title: str | None = "Detection time versus heartbeat overhead",
) -> Axes:
    """Detection time (best to worst, a vertical bar) against heartbeat bytes per hour.

    Sweep points are drawn in the colour of pings, labelled ``interval/timeout``; stacks
    (``results``) as diamonds, in the colour of WebSocket pings or, for application-level
    heartbeats, of data frames. Every marker is drawn at its true bytes per hour, which
    :func:`wssim.plot.drawn` reports. Bars that cost the same (within 2 %) share that x: their
    markers stay on it, and each range is joined by a bracket drawn a few points to the
    left or right (left and right in turn, further out as the worst case is lower), with
    its name beside the bracket's top. A worst case of "never" is not drawn.
    """
    if side not in (SERVER, CLIENT):
        raise ValueError(f"side must be 'client' or 'server', got {side!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 4.5))
    note = FONT_SIZES["note"]
    root = ax.figure.figure  # the root figure, also for axes of a subfigure
    # (x, best, worst, label, is a stack, colour, name)
    bars: list[tuple[float, float, float, str, bool, str, str]] = []
    for p in points:
        if p.best is None or p.worst is None:
            continue
        name = f"{p.ping_interval:g}/{p.ping_timeout:g}"
        label = "websockets keepalive (interval/timeout)"
        bars.append((p.bytes_per_hour, p.best, p.worst, label, False, COLORS["ping"], name))
    for r in results:
        rng = r.server if side == SERVER else r.client
        if rng is None:
            continue
        best, worst = rng.delays()
        if best is None or worst is None:
            continue
        ping = r.stack.mechanism == "WebSocket ping"
        color = COLORS["ping"] if ping else COLORS["data"]
        label = f"default of a stack: {'WebSocket ping' if ping else 'application message'}"
        bars.append((r.bytes_per_hour, best, worst, label, True, color, r.stack.name))
    # Bars at the same x (within 2 %) go side by side, in the order they came.
    groups: list[list[int]] = []
    for i, bar in enumerate(bars):
        for group in groups:
            if abs(bars[group[0]][0] / bar[0] - 1) < 0.02:
                group.append(i)
                break
        else:
            groups.append([i])
    # In a group, from the worst worst case down (a stack before a sweep point at the same
    # worst), brackets go left and right in turn, one step further out each time round: on
    # each side a bracket's name, written at its top and outwards, then clears the brackets
    # outside it, which are lower. A bar alone is a plain line, named on its left (a
    # stack) or right.
    dx = [0.0] * len(bars)  # the bracket's offset from the true x, in points
    place = ["right"] * len(bars)
    for group in groups:
        group.sort(key=lambda i: (-bars[i][2], not bars[i][4]))
        for j, i in enumerate(group):
            if len(group) == 1:
                place[i] = "left" if bars[i][4] else "right"
            else:
                place[i] = "left" if j % 2 == 0 else "right"
                dx[i] = _STEP * (j // 2 + 1) * (-1 if j % 2 == 0 else 1)
    labelled: set[str] = set()
    series: dict[str, list[tuple[float, float, float]]] = {}
    for i, (x, best, worst, label, stack, color, name) in enumerate(bars):
        style = ":" if stack else "-"
        if dx[i]:
            # The range is joined beside its markers, which stay at the true x: a vertical
            # line dx[i] points aside, and a tick from each marker out to it.
            aside = offset_copy(ax.transData, fig=root, x=dx[i], y=0, units="points")
            ax.vlines(x, best, worst, color=color, linewidth=2, linestyle=style, transform=aside)
            tick = TICKRIGHT if dx[i] > 0 else TICKLEFT
            ax.plot([x] * 2, [best, worst], linestyle="", marker=tick, color=color,
                    markersize=abs(dx[i]), markeredgewidth=1.5)  # fmt: skip
        else:
            ax.vlines(x, best, worst, color=color, linewidth=2, linestyle=style)
        legend = None if label in labelled else label
        if stack:  # a hollow diamond: a sweep point at the same place shows inside it
            ax.plot([x] * 2, [best, worst], "D", color=color, markersize=7, label=legend,
                    markerfacecolor="white", markeredgewidth=1.5, zorder=3)  # fmt: skip
        else:
            ax.plot([x] * 2, [best, worst], "o", color=color, markersize=4, label=legend,
                    zorder=4)  # fmt: skip
        labelled.add(label)
        series.setdefault(label, []).append((x, best, worst))
        offset, ha = {
            "left": ((dx[i] - 5, 2), "right"),
            "right": ((dx[i] + 4, 2), "left"),
        }[place[i]]
        ax.annotate(
            name,
            (x, worst),
            textcoords="offset points",
            xytext=offset,
            ha=ha,
            fontsize=note,
            color=color if stack else COLORS["text"],
            fontweight="bold" if stack else "normal",
        )
    ax.set_xscale("log")
    # Bytes written out (1,000, 2,000, 5,000, 10,000...), so that a bar's x can be read.
    ax.xaxis.set_major_formatter(FuncFormatter(_bytes))
    ax.xaxis.set_minor_formatter(FuncFormatter(_bytes_at_2_and_5))
    ax.margins(x=0.15)  # room for the names written beside the outermost bars
    ax.grid(True, color=COLORS["grid"], linewidth=0.8)
    ax.set_axisbelow(True)
    ax.set_ylim(bottom=0, top=max((b[2] for b in bars), default=1.0) * 1.1)
    decorate(
        ax,
        title=title,
        xlabel="heartbeat bytes per hour (both directions, log scale)",
        ylabel=f"seconds until the {side} learns",
        legend={"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)},
    )
    return record(
        ax,
        Drawing(
            kind="tradeoff",
            title=title or "",
            xlim=(0, 0),
            ylim=(0, 0),
            series=tuple(
                Series(
                    label,
                    tuple(x for x, _, _ in rows),
                    tuple(w for _, _, w in rows),
                    tuple(b for _, b, _ in rows),
                )
                for label, rows in series.items()
            ),
            notes=tuple(t.get_text() for t in ax.texts if t.get_text()),
        ),
    )


def _bytes(value: float, _position: object = None) -> str:
    """A tick label: bytes with thousands separated (``5,000``)."""
    return f"{value:,.0f}"


def _bytes_at_2_and_5(value: float, _position: object = None) -> str:
    """A minor tick label, written only at 2 and 5 times a power of ten."""
    if value <= 0:
        return ""
    mantissa = value / 10 ** math.floor(math.log10(value))
    return _bytes(value) if round(mantissa, 6) in (2.0, 5.0) else ""
