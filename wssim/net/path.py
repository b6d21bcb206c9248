"""Path effects: what acts on each segment between two hosts (the faults on a path).

The fabric hands every segment between two hosts to the effects on their path, in the
order they were added; each returns the pieces to deliver.
"""

from __future__ import annotations

from wssim.net.link import Segment
from wssim.net.tcp import Pipe, TcpConnection

__all__ = ["PathEffect"]


class PathEffect:
    """Something on the path between two hosts that acts on each segment (a fault).

    Subclasses override what they need; the defaults let everything through unchanged.
    """

    def passing(self, pipe: Pipe, segment: Segment, delay: float) -> list[tuple[Segment, float]]:
        """Return the pieces to deliver for ``segment``, each with its extra delay."""
        return [(segment, delay)]

    def established(self, conn: TcpConnection) -> None:
        """A connection across this path was just established."""

    def forget(self, conn: TcpConnection) -> None:
        """``conn`` is over: let go of anything kept about it."""
