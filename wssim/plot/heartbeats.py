"""Heartbeats: detection time against what a heartbeat costs.

Draws what :mod:`wssim.lab.detection` measures (its sweep points and stack results).
"""

from __future__ import annotations

from collections.abc import Iterable

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from wssim.lab.detection import CLIENT, SERVER, StackResult, SweepPoint
from wssim.plot.style import COLORS, FONT_SIZES, decorate

__all__ = ["tradeoff"]


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
    heartbeats, of data frames. A worst case of "never" is not drawn.
    """
    if side not in (SERVER, CLIENT):
        raise ValueError(f"side must be 'client' or 'server', got {side!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    note = FONT_SIZES["note"]
    drawn = False
    for p in points:
        if p.best is None or p.worst is None:
            continue
        ax.vlines(p.bytes_per_hour, p.best, p.worst, color=COLORS["ping"], linewidth=2)
        ax.plot(
            [p.bytes_per_hour] * 2,
            [p.best, p.worst],
            "o",
            color=COLORS["ping"],
            markersize=4,
            label=None if drawn else "websockets keepalive (interval/timeout)",
        )
        drawn = True
        ax.annotate(
            f"{p.ping_interval:g}/{p.ping_timeout:g}",
            (p.bytes_per_hour, p.worst),
            textcoords="offset points",
            xytext=(4, 2),
            fontsize=note,
            color=COLORS["text"],
        )
    labelled: set[str] = set()
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
        ax.vlines(r.bytes_per_hour, best, worst, color=color, linewidth=2, linestyle=":")
        ax.plot(
            [r.bytes_per_hour] * 2,
            [best, worst],
            "D",
            color=color,
            markersize=5,
            label=None if label in labelled else label,
        )
        labelled.add(label)
        # Stacks are named on the left, sweep points on the right: they may share an x.
        ax.annotate(
            r.stack.name,
            (r.bytes_per_hour, worst),
            textcoords="offset points",
            xytext=(-5, 2),
            ha="right",
            fontsize=note,
            color=color,
            fontweight="bold",
        )
    ax.set_xscale("log")
    ax.margins(x=0.12)  # room for the names written beside the outermost bars
    ax.grid(True, color=COLORS["grid"], linewidth=0.8)
    ax.set_axisbelow(True)
    ax.set_ylim(bottom=0)
    return decorate(
        ax,
        title=title,
        xlabel="heartbeat bytes per hour (both directions, log scale)",
        ylabel=f"seconds until the {side} learns",
    )
