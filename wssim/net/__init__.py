"""The simulated network: TCP-like connections between named hosts.

Bytes arrive in order, each direction after the link's latency; the model keeps what the
course needs from TCP (the handshake, refusals and timeouts, retransmission across a cut,
windows, FIN and RST) and nothing more. Bottom up, each module imports only those above
it in this list:

- :mod:`~wssim.net.link`: the path between two hosts: :class:`Link` (latency, jitter,
  bandwidth) and :class:`Segment`, what crosses it.
- :mod:`~wssim.net.delivery`: the one heap every arrival goes through, so that equal
  times resolve in the same order in every run.
- :mod:`~wssim.net.tcp`: a connection's two ends and its pipes: ordered delivery,
  retransmission, windows; and, as small protocols, what it needs from above
  (``Fabric``, ``EndTransport``, ``Listener``) and what it reports (:class:`NetworkObserver`).
- :mod:`~wssim.net.path`: :class:`PathEffect`, what acts on each segment on a path
  (the faults).
- :mod:`~wssim.net.transport`: what asyncio's protocols see: :class:`SimTransport`,
  :class:`SimServer`.
- :mod:`~wssim.net.fabric`: :class:`Network`: hosts, links, partitions, listeners,
  routing, the handshake, crashes.

It builds on :mod:`wssim.core` and the trace's vocabulary (:mod:`wssim.trace.events`)
only, and reports what happens through the observer, so it knows nothing of traces.
"""

from wssim.net.fabric import LOOPBACK_NAMES, Network
from wssim.net.link import MAX_DELAY, Link, Segment
from wssim.net.path import PathEffect
from wssim.net.tcp import ConnectionEnd, NetworkObserver, Pipe, TcpConnection
from wssim.net.transport import SimServer, SimTransport

__all__ = [
    "LOOPBACK_NAMES",
    "MAX_DELAY",
    "ConnectionEnd",
    "Link",
    "Network",
    "NetworkObserver",
    "PathEffect",
    "Pipe",
    "Segment",
    "SimServer",
    "SimTransport",
    "TcpConnection",
]
