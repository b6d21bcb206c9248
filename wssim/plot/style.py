"""The course's one visual vocabulary: colours, font sizes, and :func:`decorate`.

Every figure of the course takes its looks from here, so a colour means the same thing in
every lesson: green is OPEN, orange is CLOSING, a red band is a fault. The palette is
Okabe and Ito's (2008), which stays distinct for the common forms of colour blindness.
Every figure ends with one :func:`decorate` call, as in ThinkDSP.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from matplotlib.axes import Axes

from wssim.trace.lifecycle import State

__all__ = [
    "COLORS",
    "FAULT_ALPHA",
    "FONT_SIZES",
    "OKABE_ITO",
    "STATE_COLORS",
    "decorate",
]

OKABE_ITO: Mapping[str, str] = MappingProxyType(
    {
        "black": "#000000",
        "orange": "#E69F00",
        "sky blue": "#56B4E9",
        "bluish green": "#009E73",
        "yellow": "#F0E442",
        "blue": "#0072B2",
        "vermillion": "#D55E00",
        "reddish purple": "#CC79A7",
    }
)
"""The eight colours of the Okabe-Ito palette, by name."""

COLORS: Mapping[str, str] = MappingProxyType(
    {
        # The states of a connection endpoint (wssim.trace.lifecycle.State).
        "CONNECTING": OKABE_ITO["sky blue"],
        "OPEN": OKABE_ITO["bluish green"],
        "CLOSING": OKABE_ITO["orange"],
        "CLOSED": "#7F7F7F",
        # What travels on the wire.
        "data": OKABE_ITO["blue"],  # TEXT, BINARY and CONT frames
        "ping": OKABE_ITO["reddish purple"],  # PING and PONG frames
        "close": OKABE_ITO["black"],  # CLOSE frames
        "http": OKABE_ITO["sky blue"],  # the opening handshake
        "tcp": "#7F7F7F",  # SYN, FIN, RST, retransmissions
        # What went wrong, and notes.
        "fault": OKABE_ITO["vermillion"],  # shaded bands: partitions, crashes
        "lost": OKABE_ITO["vermillion"],  # a segment that did not arrive
        "error": OKABE_ITO["vermillion"],  # an abnormal end: 1006, 1011, refused...
        "mark": "#444444",  # notes added with Simulation.mark()
        "text": "#333333",
        "grid": "#E5E5E5",
    }
)
"""Colours by meaning. States use their names (``COLORS["OPEN"]``); the rest are words."""

STATE_COLORS: Mapping[State, str] = MappingProxyType({state: COLORS[state.name] for state in State})
"""The colour of each :class:`~wssim.trace.lifecycle.State`."""

FAULT_ALPHA = 0.15
"""Opacity of the bands that shade a fault, so that what happens under them stays visible."""

FONT_SIZES: Mapping[str, float] = MappingProxyType(
    {
        "title": 12,
        "label": 10,  # axis labels
        "tick": 9,  # tick labels
        "legend": 9,
        "note": 8,  # text written on the figure: close codes, arrow labels, faults
    }
)
"""Font sizes in points, by use."""


def decorate(
    ax: Axes,
    *,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    legend: bool | Mapping[str, Any] | None = None,
) -> Axes:
    """Finish a figure the course's way: labels, a legend if it helps, a tight layout.

    Args:
        ax: the axes to finish.
        title: the title, if given.
        xlabel: the label of the x axis, if given.
        ylabel: the label of the y axis, if given.
        legend: None draws a legend only when something is labelled; False removes it;
            True or a mapping of :meth:`~matplotlib.axes.Axes.legend` arguments draws it
            (still only when something is labelled: an empty legend explains nothing). The
            mapping may give the ``handles`` to show instead of the labelled artists.

    Returns:
        ``ax``, for chaining.
    """
    if title is not None:
        ax.set_title(title, fontsize=FONT_SIZES["title"], loc="left")
    if xlabel is not None:
        ax.set_xlabel(xlabel, fontsize=FONT_SIZES["label"])
    if ylabel is not None:
        ax.set_ylabel(ylabel, fontsize=FONT_SIZES["label"])
    ax.tick_params(labelsize=FONT_SIZES["tick"])
    if legend is False:
        drawn = ax.get_legend()
        if drawn is not None:
            drawn.remove()
    else:
        handles, labels = ax.get_legend_handles_labels()
        if handles or isinstance(legend, Mapping):
            options: dict[str, Any] = {"fontsize": FONT_SIZES["legend"], "frameon": False}
            if isinstance(legend, Mapping):
                options.update(legend)
            if "handles" in options:
                handles = list(options.pop("handles"))
                labels = [handle.get_label() for handle in handles]
            if handles:
                ax.legend(handles, labels, **options)
    figure = ax.figure.figure  # the root figure, also for axes of a subfigure
    if figure is not None and figure.get_layout_engine() is None:
        with warnings.catch_warnings():
            # A figure too crowded for a tight layout keeps its layout: not worth an error.
            warnings.simplefilter("ignore", UserWarning)
            figure.tight_layout()
    return ax
