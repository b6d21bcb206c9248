"""wssim: why WebSocket connections close, and how to survive it.

The real ``websockets`` library, running over a simulated network in virtual time::

    import wssim
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    sim = wssim.Simulation(seed=0)
    sim.host("server").spawn(my_server())
    sim.host("client").spawn(my_client())
    print(sim.run(until=10).table())

The map of the package, bottom up: each layer imports only from the layers listed before
it (``tests/test_layers.py`` checks it).

The engine
    ``trace.events``  the vocabulary of the trace: :class:`Event` and its typed details
    ``core``          parameters, virtual time (``core.clock``), hosts (``core.hosts``)
    ``wire``          the Sans-I/O codec of frames and HTTP on the wire
    ``net``           the simulated TCP network
    ``trace``         the recorder, the wire tap, lifecycles read from a trace
    ``faults``        the fault catalogue, injected with :meth:`Simulation.inject`
    ``raw``           endpoints that send what a correct peer never would
    ``world``         one simulation's loop, network, hosts and recorder
    ``simulation``    :class:`Simulation`, the public face of it all

Built on the engine
    ``toolkit``       for your own app: backoff, admission, heartbeats, resources
    ``browser``       a browser tab running a page's JavaScript (QuickJS) on a host
    ``lab``           experiment kits: diagnose, detection, storms, chaos, scorecards
    ``plot``          every figure; the only layer that imports matplotlib
    ``course``        lesson material: causes, catalogues, the capstone, exercise checks

The names below are the engine's public face; the layers built on it load on first use
(``wssim.plot`` after a plain ``import wssim``).
"""

from __future__ import annotations

from wssim import faults
from wssim.core.clock import TimeStuck
from wssim.core.hosts import Host, HostState, current_host
from wssim.net.link import Link
from wssim.simulation import Simulation
from wssim.trace.events import KINDS, Event, Table, Trace
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
    "current_host",
    "faults",
]

__version__ = "0.1.0"


_LAZY = ("browser", "core", "course", "lab", "net", "plot", "raw", "toolkit", "trace", "wire")
"""Layers loaded on first use: ``wssim.plot`` imports matplotlib, which is slow to import,
and a simulation needs none of them."""


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"wssim.{name}")
    raise AttributeError(f"module 'wssim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
