"""Figures written straight to files, for reports outside a notebook.

Drawn on a figure of their own, never through pyplot: no window opens, no backend is
chosen for the process, and no global figure is left behind.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from wssim.plot.diagrams import timeline
from wssim.trace.events import Trace

__all__ = ["save_timeline"]


def save_timeline(trace: Trace, path: Path, *, title: str | None = None) -> Path:
    """Draw the connection timeline of ``trace``, one lane per host, into ``path`` (PNG).

    Returns:
        ``path``.
    """
    figure = Figure(figsize=(11, 4.5))
    timeline(trace, ax=figure.subplots(), by="host", title=title)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    return path
