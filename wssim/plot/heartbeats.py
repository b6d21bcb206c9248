"""Heartbeats: detection time against what a heartbeat costs.

Draws what :mod:`wssim.lab.detection` measures (its sweep points and stack results).
"""

from __future__ import annotations

from collections.abc import Iterable

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from wssim.lab.detection import CLIENT, SERVER, StackResult, SweepPoint
from wssim.plot.drawing import Drawing, Series, record
from wssim.plot.style import COLORS, FONT_SIZES, decorate

__all__ = ["tradeoff"]

_DODGE = 0.035
"""How far apart, in decades of the log x axis, bars that share an x are drawn."""


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
    heartbeats, of data frames. Bars that cost the same bytes per hour are drawn side by
    side, a little apart, rather than on top of each other. A worst case of "never" is
    not drawn.
    """
    if side not in (SERVER, CLIENT):
        raise ValueError(f"side must be 'client' or 'server', got {side!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 4.5))
    note = FONT_SIZES["note"]
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
    # In a group, stacks come first, then sweep points from the worst worst case down; the
    # first is named on its left, the last on its right, those between above their bar.
    shift = [1.0] * len(bars)
    place = ["right"] * len(bars)
    for group in groups:
        group.sort(key=lambda i: (not bars[i][4], -bars[i][2]))
        for j, i in enumerate(group):
            shift[i] = 10 ** (_DODGE * (j - (len(group) - 1) / 2))
            if len(group) == 1:
                place[i] = "left" if bars[i][4] else "right"
            else:
                place[i] = "left" if j == 0 else "right" if j == len(group) - 1 else "above"
    labelled: set[str] = set()
    series: dict[str, list[tuple[float, float, float]]] = {}
    for i, (at, best, worst, label, stack, color, name) in enumerate(bars):
        x = at * shift[i]  # as drawn, moved aside from the bars at the same cost
        ax.vlines(x, best, worst, color=color, linewidth=2, linestyle=":" if stack else "-")
        marker, size = ("D", 5) if stack else ("o", 4)
        legend = None if label in labelled else label
        ax.plot([x] * 2, [best, worst], marker, color=color, markersize=size, label=legend)
        labelled.add(label)
        series.setdefault(label, []).append((x, best, worst))
        offset, ha = {"left": ((-5, 2), "right"), "right": ((4, 2), "left")}.get(
            place[i], ((0, 6), "center")
        )
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
