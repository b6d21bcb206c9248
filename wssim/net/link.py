"""The path between two hosts: its properties (a :class:`Link`) and what crosses it (a
:class:`Segment`).

Plain values: nothing here knows about connections, time or hosts.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_DELAY", "Link", "Segment"]

MAX_DELAY = 86_400.0
"""The longest one-way latency or jitter a link may have: one day, in seconds."""


@dataclass(frozen=True)
class Link:
    """Properties of the path between two hosts.

    Attributes:
        latency: one-way delay in seconds.
        jitter: extra one-way delay, uniform in ``[0, jitter]`` seconds, drawn per segment.
            Bytes of one connection never overtake each other: a segment never arrives
            before the one sent ahead of it.
        bandwidth: bytes per second each connection can send in each direction, or None
            for no limit. Bytes wait in the sender's buffer until their turn on the wire,
            so a fast writer fills its buffer and flow control engages.
    """

    latency: float = 0.010
    jitter: float = 0.0
    bandwidth: float | None = None

    def __post_init__(self) -> None:
        for name in ("latency", "jitter"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (0 <= value <= MAX_DELAY)
            ):
                raise ValueError(
                    f"{name} must be a number of seconds from 0 to {MAX_DELAY:g}, got {value!r}"
                )
        bandwidth = self.bandwidth
        if bandwidth is not None and (
            isinstance(bandwidth, bool)
            or not isinstance(bandwidth, int | float)
            or not (0 < bandwidth < float("inf"))
        ):
            raise ValueError(
                f"bandwidth must be None (unlimited) or a finite number of bytes per second "
                f"> 0, got {bandwidth!r}"
            )


class Segment:
    """What travels on the wire: a TCP segment, as much of it as the model needs."""

    __slots__ = ("data", "kind")

    def __init__(self, kind: str, data: bytes = b"") -> None:
        self.kind = kind  # "SYN-ACK", "ACK", "DATA", "FIN" or "RST"
        self.data = data
