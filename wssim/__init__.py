"""wssim: why WebSocket connections close, and how to survive it.

The real ``websockets`` library, running over a simulated network in virtual time::

    import wssim
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    sim = wssim.Simulation(seed=0)
    ...
"""

from __future__ import annotations

from wssim import closecodes, faults, lifecycle
from wssim.clock import TimeStuck
from wssim.hosts import Host, HostState, current_host
from wssim.network import Link
from wssim.simulation import Simulation
from wssim.trace import KINDS, Event, Table, Trace
from wssim.world import ProcessFailed

__all__ = [
    "KINDS",
    "Event",
    "Host",
    "HostState",
    "Link",
    "ProcessFailed",
    "Simulation",
    "Table",
    "TimeStuck",
    "Trace",
    "closecodes",
    "current_host",
    "faults",
    "lifecycle",
]

__version__ = "0.1.0"


_LAZY = (
    "admission",
    "backoff",
    "capstone",
    "capstone_examples",
    "causes",
    "chaos",
    "course",
    "detection",
    "diagnose",
    "exercises",
    "heartbeat",
    "plot",
    "protocolerrors",
    "raw",
    "resourceplot",
    "resources",
    "scenarios",
    "scorecard",
    "storm",
    "style",
)
"""Submodules loaded on first use (``wssim.backoff`` after a plain ``import wssim``): some
import matplotlib, which is slow to import, and a simulation needs none of them."""


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"wssim.{name}")
    raise AttributeError(f"module 'wssim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
