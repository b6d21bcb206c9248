"""The trace: what happened in a simulation, as typed events.

- :mod:`~wssim.trace.events`: :class:`Event` and its typed details, :class:`Trace`,
  :class:`Table`.
- :mod:`~wssim.trace.wiretap`: decodes the bytes on the wire into HTTP and frames.
- :mod:`~wssim.trace.recorder`: collects events from the network, the wire tap and
  websockets' own log.
- :mod:`~wssim.trace.lifecycle`: reads a trace back as connection lifecycles.

The event types are re-exported here: ``from wssim.trace.events import Event, Trace``.
"""

from __future__ import annotations

from wssim.trace import events
from wssim.trace.events import *  # noqa: F403  (the vocabulary, re-exported as it is)

__all__ = events.__all__
