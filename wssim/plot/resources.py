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

from wssim.plot.diagrams import fault_label
from wssim.plot.drawing import Band, Drawing, Line, record
from wssim.plot.drawing import Series as Drawn
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


def step(
    ax: Axes,
    series: Series,
    *,
    color: str,
    label: str,
    fill: bool = False,
    linewidth: float = 1.6,
    linestyle: str | tuple[float, tuple[float, ...]] = "-",
    below: int = 0,
) -> Drawn:
    """Draw ``series`` on ``ax`` as steps, and write its last value at its right end,
    ``below`` lines under the point (when other curves end at the same value)."""
    ax.step(series.times, series.values, where="post", color=color, linewidth=linewidth,
            linestyle=linestyle, label=label)  # fmt: skip
    if fill:
        ax.fill_between(
            series.times, series.values, step="post", color=color, alpha=0.25, linewidth=0
        )
    final = series.final
    ax.annotate(
        f"{final}",
        (series.times[-1], final),
        xytext=(4, -FONT_SIZES["note"] * 1.2 * below),
        textcoords="offset points",
        va="center",
        fontsize=FONT_SIZES["note"],
        color=COLORS["error"] if final and not fill else color,
    )
    return Drawn(label, tuple(map(float, series.times)), tuple(map(float, series.values)))


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
    opened = step(
        top,
        connections_open(trace, host=host, until=end),
        color=COLORS["OPEN"],
        label="connections open",
        fill=True,
    )
    # Curves that coincide must all stay visible: each kind is drawn thinner than the one
    # before, on top of it, and dashed after the first; equal last values are stacked.
    held = []
    finals: dict[int, int] = {}
    for i, kind in enumerate(wanted):
        color = KIND_COLORS[i % len(KIND_COLORS)]
        series = ledger.series(kind, until=end)
        below = finals.get(series.final, 0)
        finals[series.final] = below + 1
        held.append(
            step(
                bottom,
                series,
                color=color,
                label=kind,
                linewidth=max(3.2 - 1.2 * i, 1.2),
                linestyle="-" if i == 0 else (0, (4.0, 2.0)),
                below=below,
            )
        )
    bands = []
    for ax in (top, bottom):
        bands = _shade(ax, trace, end)
        ax.set_xlim(0, end * 1.04 if end > 0 else 1)
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no half connections
        ax.grid(axis="both", color=COLORS["grid"], linewidth=0.8)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    legend = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)}
    decorate(top, title=title, ylabel="connections", legend=legend)
    cut = ""
    if end < trace.ran_until:
        what = "nothing changes after" if until is None else "cut at"
        cut = f"{what} {end:g} s; the run went on to {trace.ran_until:g} s"
    xlabel = "virtual time (s)" + (f": {cut}" if cut else "")
    decorate(bottom, xlabel=xlabel, ylabel="held", legend=legend)
    marks = tuple(Line(mark.text, x=mark.time) for mark in trace.filter(kind="mark", until=end))
    for ax, drawn_series in ((top, (opened,)), (bottom, tuple(held))):
        record(
            ax,
            Drawing(
                kind="held_over_time",
                title=title or "",
                xlim=(0, 0),
                ylim=(0, 0),
                run_until=trace.ran_until,
                cut=cut,
                bands=tuple(bands),
                lines=marks,
                series=drawn_series,
                notes=tuple(t.get_text() for t in ax.texts if t.get_text()),
            ),
        )
    return top, bottom


def _shade(ax: Axes, trace: Trace, end: float) -> list[Band]:
    """Faults that ended as shaded bands, others as thin lines; marks as dotted lines.

    A churn crashes many clients for good: a band from each crash to the end of the figure
    would cover everything, so a fault that never ended is a line where it began.
    """
    styles: dict[str, str] = {}  # a line style per kind of fault, in order of appearance
    bands = []
    for fault in faults(trace, until=end):
        label = "_nolegend_" if fault.name in styles else fault.name
        style = styles.setdefault(fault.name, _FAULT_STYLES[len(styles) % len(_FAULT_STYLES)])
        instant = fault.instant or not fault.ended or fault.end <= fault.start
        bands.append(
            Band(fault_label(fault), fault.start, fault.start if instant else fault.end, instant)
        )
        if instant:
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
    return bands
