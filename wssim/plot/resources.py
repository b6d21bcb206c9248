"""Figures of resources held over time, next to the connections open.

:func:`held_over_time` draws two panels sharing the time axis: above, how many connections
the server had open (from the trace); below, how much of each kind of resource a
:class:`~wssim.toolkit.resources.Ledger` counted as held. A server that releases what it holds
shows two curves that rise and fall together and both end at zero; a leak shows as a
bottom curve that stays up while the top one falls. Looks come from :mod:`wssim.plot.style`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from wssim.plot.style import COLORS, FAULT_ALPHA, FONT_SIZES, decorate
from wssim.toolkit.resources import Ledger, Series, connections_open
from wssim.trace.events import Trace
from wssim.trace.lifecycle import faults

__all__ = ["KIND_COLORS", "held_over_time", "step"]

KIND_COLORS = (
    COLORS["data"],
    COLORS["ping"],
    COLORS["CLOSING"],
    COLORS["CONNECTING"],
    COLORS["close"],
)
"""Colours given to the kinds of resource, in the order the ledger first saw them."""


_FAULT_STYLES = ("-", "--", "-.")


def step(ax: Axes, series: Series, *, color: str, label: str, fill: bool = False) -> None:
    """Draw ``series`` on ``ax`` as steps, and write its last value at its right end."""
    ax.step(series.times, series.values, where="post", color=color, linewidth=1.6, label=label)
    if fill:
        ax.fill_between(
            series.times, series.values, step="post", color=color, alpha=0.25, linewidth=0
        )
    final = series.final
    ax.annotate(
        f"{final}",
        (series.times[-1], final),
        xytext=(4, 0),
        textcoords="offset points",
        va="center",
        fontsize=FONT_SIZES["note"],
        color=COLORS["error"] if final and not fill else color,
    )


def held_over_time(
    trace: Trace,
    ledger: Ledger,
    *,
    kinds: str | Iterable[str] | None = None,
    host: str | None = "server",
    until: float | None = None,
    title: str | None = None,
    axes: Sequence[Axes] | None = None,
) -> tuple[Axes, Axes]:
    """Draw the connections open (above) and the resources held (below) over virtual time.

    Faults of the trace (partitions, crashes) are shaded on both panels; marks added with
    :meth:`~wssim.Simulation.mark` are dotted lines. The last value of each curve is written
    at its right end: a resource still held at the end is written in the error colour.

    Args:
        trace: the simulation's trace (for the connections and the faults).
        ledger: what the server's code acquired and released.
        kinds: only these kinds of resource (default: every kind the ledger saw).
        host: count the connections of this host (default ``"server"``; None: all hosts),
            as the server side saw them.
        until: the right edge (default: the end of the trace, or the ledger's last change
            if later).
        title: the figure's title.
        axes: two axes to draw on (default: a new figure).

    Returns:
        The two axes: connections, then resources.

    Raises:
        ValueError: if ``axes`` is not two axes, or a kind was never acquired.
    """
    end = max(trace.end, ledger.last_change) if until is None else float(until)
    wanted = ledger.kinds if kinds is None else [kinds] if isinstance(kinds, str) else list(kinds)
    unknown = [k for k in wanted if k not in ledger.kinds]
    if unknown:
        raise ValueError(f"kinds {unknown} were never acquired; the ledger knows {ledger.kinds}")
    if axes is None:
        _figure, (top, bottom) = plt.subplots(
            2, 1, figsize=(10, 4.2), sharex=True, gridspec_kw={"height_ratios": (1, 1.3)}
        )
    else:
        if len(axes) != 2:
            raise ValueError(f"axes must be two axes, got {len(axes)}")
        top, bottom = axes
    step(
        top,
        connections_open(trace, host=host, until=end),
        color=COLORS["OPEN"],
        label="connections open",
        fill=True,
    )
    for i, kind in enumerate(wanted):
        color = KIND_COLORS[i % len(KIND_COLORS)]
        step(bottom, ledger.series(kind, until=end), color=color, label=kind)
    for ax in (top, bottom):
        _shade(ax, trace, end)
        ax.set_xlim(0, end * 1.04 if end > 0 else 1)
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no half connections
        ax.grid(axis="both", color=COLORS["grid"], linewidth=0.8)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    legend = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)}
    decorate(top, title=title, ylabel="connections", legend=legend)
    decorate(bottom, xlabel="virtual time (s)", ylabel="held", legend=legend)
    return top, bottom


def _shade(ax: Axes, trace: Trace, end: float) -> None:
    """Faults that ended as shaded bands, others as thin lines; marks as dotted lines.

    A churn crashes many clients for good: a band from each crash to the end of the figure
    would cover everything, so a fault that never ended is a line where it began.
    """
    styles: dict[str, str] = {}  # a line style per kind of fault, in order of appearance
    for fault in faults(trace, until=end):
        label = "_nolegend_" if fault.name in styles else fault.name
        style = styles.setdefault(fault.name, _FAULT_STYLES[len(styles) % len(_FAULT_STYLES)])
        if fault.instant or not fault.ended or fault.end <= fault.start:
            ax.axvline(
                fault.start,
                color=COLORS["fault"],
                alpha=0.6,
                linewidth=0.9,
                linestyle=style,
                label=label,
                zorder=0,
            )
        else:
            ax.axvspan(
                fault.start,
                fault.end,
                color=COLORS["fault"],
                alpha=FAULT_ALPHA,
                linewidth=0,
                label=label,
                zorder=0,
            )
    for i, mark in enumerate(trace.filter(kind="mark", until=end)):
        ax.axvline(
            mark.time,
            color=COLORS["mark"],
            linestyle=":",
            linewidth=1.2,
            label="mark" if i == 0 else "_nolegend_",
        )
