"""Reconnect storms: attempts per second and clients connected, strategy by strategy.

Draws what :mod:`wssim.lab.storm` returns.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from wssim.lab.storm import StormResult
from wssim.plot.style import COLORS, FAULT_ALPHA, OKABE_ITO, decorate

__all__ = ["attempts", "connected"]


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
    spare = ("blue", "orange", "bluish green", "reddish purple", "sky blue", "vermillion")
    return OKABE_ITO[spare[index % len(spare)]]


def _axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    _, new = plt.subplots(figsize=(9, 3.5))
    return new


def _shade_down(ax: Axes, result: StormResult, origin: float) -> None:
    ax.axvspan(
        result.crash_at - origin,
        result.restart_at - origin,
        color=COLORS["fault"],
        alpha=FAULT_ALPHA,
        lw=0,
    )


def attempts(
    results: Sequence[StormResult],
    *,
    ax: Axes | None = None,
    until: float | None = None,
    rate: float | None = None,
    title: str = "Connection attempts reaching the server",
) -> Axes:
    """Attempts reaching the server per second, one line per strategy, from the crash on.

    The shaded band is the time the server was down. ``until`` limits the x axis (seconds
    after the crash); ``rate``, if given, draws the server's admission rate as a dashed line.
    """
    ax = _axes(ax)
    for index, result in enumerate(results):
        seconds = range(len(result.attempts_per_second))
        ax.step(seconds, result.attempts_per_second, where="post", color=_color(result, index),
                label=result.strategy, lw=1.2)  # fmt: skip
    if results:
        _shade_down(ax, results[0], results[0].crash_at)
    if rate is not None:
        ax.axhline(rate, color=COLORS["text"], lw=0.8, ls="--")
    if until is not None:
        ax.set_xlim(0, until)
    ax.grid(True, color=COLORS["grid"], lw=0.6)
    return decorate(
        ax,
        title=title,
        xlabel="seconds after the crash",
        ylabel="attempts per second",
        legend=len(results) > 1,
    )


def connected(
    results: Sequence[StormResult],
    *,
    ax: Axes | None = None,
    until: float | None = None,
    title: str = "Clients connected",
) -> Axes:
    """Clients connected over time, one line per strategy, from the crash on."""
    ax = _axes(ax)
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
        ax.step(xs, ys, where="post", color=color, label=result.strategy, lw=1.2)
    if results:
        _shade_down(ax, results[0], results[0].crash_at)
    if until is not None:
        ax.set_xlim(0, until)
    ax.set_ylim(0, max((r.clients for r in results), default=1) * 1.05)
    ax.grid(True, color=COLORS["grid"], lw=0.6)
    return decorate(
        ax,
        title=title,
        xlabel="seconds after the crash",
        ylabel="clients connected",
    )
