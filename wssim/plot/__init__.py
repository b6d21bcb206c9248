"""Every figure, in one visual vocabulary; the only layer that imports matplotlib.

- :mod:`~wssim.plot.style`: colours, line styles and ``decorate``.
- :mod:`~wssim.plot.diagrams`: connection timelines and sequence diagrams of a trace.
- :mod:`~wssim.plot.storms`: reconnect storms (:mod:`wssim.lab.storm`).
- :mod:`~wssim.plot.heartbeats`: detection time against heartbeat cost
  (:mod:`wssim.lab.detection`).
- :mod:`~wssim.plot.resources`: resources held over time (:mod:`wssim.toolkit.resources`).
- :mod:`~wssim.plot.drawing`: what each figure drew, as data (:func:`drawn`), for tests
  that check a figure against the trace and the numbers a lesson prints.

Each figure is here by name: ``wssim.plot.timeline(trace)``, ``wssim.plot.sequence(trace)``,
``wssim.plot.storm_attempts(results)``, ``wssim.plot.storm_connected(results)``,
``wssim.plot.tradeoff(points, results)``, ``wssim.plot.held_over_time(trace, ledger)``,
``wssim.plot.attempts_over_time(runs)``. Each returns the axes it drew on;
``wssim.plot.drawn(ax)`` says what it drew there. ``wssim.plot.save_timeline(trace, path)``
writes a timeline straight to a file, without pyplot (the pytest plugin's reports).
"""

from __future__ import annotations

import matplotlib

from wssim.plot.diagrams import DETAIL_LANES, sequence, timeline
from wssim.plot.drawing import Drawing, collisions, drawn
from wssim.plot.files import save_timeline
from wssim.plot.heartbeats import tradeoff
from wssim.plot.resources import held_over_time
from wssim.plot.storms import attempts as storm_attempts
from wssim.plot.storms import attempts_over_time
from wssim.plot.storms import connected as storm_connected

__all__ = [
    "DETAIL_LANES",
    "Drawing",
    "attempts_over_time",
    "collisions",
    "draw_to_files",
    "drawn",
    "held_over_time",
    "save_timeline",
    "sequence",
    "storm_attempts",
    "storm_connected",
    "timeline",
    "tradeoff",
]


def draw_to_files() -> None:
    """Draw with a backend that writes files and never opens a window (``python -m wssim``).

    It changes this process's matplotlib only, not the environment that child processes
    (such as Jupyter kernels) inherit.
    """
    matplotlib.use("Agg")
