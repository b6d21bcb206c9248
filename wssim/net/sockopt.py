"""Socket options on simulated sockets: what ``setsockopt`` can change, as Linux does.

Application code reaches a simulated socket the normal way,
``transport.get_extra_info("socket")`` (or ``server.sockets``), and sets options with
``setsockopt`` from the :mod:`socket` module's constants. The options that change what a
connection does are honoured:

==========================  ==========================================================
option                      effect in the simulation
==========================  ==========================================================
``SO_KEEPALIVE``            TCP keepalive probes after ``TCP_KEEPIDLE`` idle seconds
``TCP_KEEPIDLE``            seconds of silence before the first probe (Linux: 7200)
``TCP_KEEPINTVL``           seconds between unanswered probes (Linux: 75)
``TCP_KEEPCNT``             unanswered probes before the connection times out (Linux: 9)
``TCP_USER_TIMEOUT``        milliseconds unacknowledged data (or unanswered probes) may
                            wait before the connection times out; 0: Linux's default
``SO_LINGER``               ``(1, 0)``: closing or aborting sends an RST, not a FIN
``TCP_NODELAY``             kept and reported; the model has no Nagle delay to turn off
==========================  ==========================================================

Defaults and ranges are Linux's (tcp(7), socket(7); ``net.ipv4.tcp_keepalive_*``).
Accepted sockets inherit the options of the listening socket, as on Linux. Any other
option is refused with ``ENOPROTOOPT``, naming the ones that are simulated.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "KEEPALIVE_INTERVAL",
    "KEEPALIVE_PROBES",
    "KEEPALIVE_TIME",
    "SimSocket",
    "SocketOptions",
]

KEEPALIVE_TIME = 7200
"""Linux's ``net.ipv4.tcp_keepalive_time``: seconds idle before the first probe."""
KEEPALIVE_INTERVAL = 75
"""Linux's ``net.ipv4.tcp_keepalive_intvl``: seconds between probes."""
KEEPALIVE_PROBES = 9
"""Linux's ``net.ipv4.tcp_keepalive_probes``: unanswered probes before giving up."""

# Linux's limits (include/net/tcp.h: MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT).
_MAX_KEEPIDLE = 32767
_MAX_KEEPINTVL = 32767
_MAX_KEEPCNT = 127
_LINGER = struct.Struct("ii")


@dataclass(frozen=True)
class SocketOptions:
    """The options of one simulated socket (Linux's defaults; asyncio turns on
    ``TCP_NODELAY`` for every TCP transport it makes)."""

    keepalive: bool = False
    keepalive_idle: int = KEEPALIVE_TIME
    keepalive_interval: int = KEEPALIVE_INTERVAL
    keepalive_probes: int = KEEPALIVE_PROBES
    user_timeout_ms: int = 0
    linger: tuple[int, int] = (0, 0)
    nodelay: bool = True

    @property
    def user_timeout(self) -> float | None:
        """``TCP_USER_TIMEOUT`` in seconds, or None when unset (0)."""
        return self.user_timeout_ms / 1000 if self.user_timeout_ms else None

    @property
    def reset_on_close(self) -> bool:
        """``SO_LINGER`` on with a zero timeout: close and abort send an RST."""
        return bool(self.linger[0]) and self.linger[1] == 0


# (level, option) -> (field, name for messages, lowest, highest)
_INT_OPTIONS: dict[tuple[int, int], tuple[str, str, int, int]] = {
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE): ("keepalive", "SO_KEEPALIVE", 0, 2**31 - 1),
    (socket.IPPROTO_TCP, socket.TCP_NODELAY): ("nodelay", "TCP_NODELAY", 0, 2**31 - 1),
    (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE): (
        "keepalive_idle",
        "TCP_KEEPIDLE",
        1,
        _MAX_KEEPIDLE,
    ),
    (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL): (
        "keepalive_interval",
        "TCP_KEEPINTVL",
        1,
        _MAX_KEEPINTVL,
    ),
    (socket.IPPROTO_TCP, socket.TCP_KEEPCNT): (
        "keepalive_probes",
        "TCP_KEEPCNT",
        1,
        _MAX_KEEPCNT,
    ),
    (socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT): (
        "user_timeout_ms",
        "TCP_USER_TIMEOUT",
        0,
        2**31 - 1,
    ),
}
_BOOLEAN = {"keepalive", "nodelay"}
_SUPPORTED = (
    "SO_KEEPALIVE, SO_LINGER, TCP_NODELAY, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, "
    "TCP_USER_TIMEOUT"
)


class SimSocket:
    """Just enough of a socket for ``get_extra_info("socket")`` and ``server.sockets``:
    its address, and the options that change what its connection does.

    ``get`` reads the socket's options; ``put`` stores new ones and is told which field
    changed, so that the connection acts on it at once (turning keepalive on starts its
    timer).
    """

    family = socket.AF_INET
    type = socket.SOCK_STREAM
    proto = socket.IPPROTO_TCP

    def __init__(
        self,
        address: tuple[str, int],
        get: Callable[[], SocketOptions],
        put: Callable[[SocketOptions, str], None],
    ) -> None:
        self._address = address
        self._get = get
        self._put = put

    def __repr__(self) -> str:
        return f"<simulated socket {self._address[0]}:{self._address[1]}>"

    def getsockname(self) -> tuple[str, int]:
        return self._address

    def fileno(self) -> int:
        return -1  # no file descriptor: nothing outside the simulation can use it

    @property
    def options(self) -> SocketOptions:
        """All the simulated options of this socket, as one value."""
        return self._get()

    def setsockopt(self, level: int, option: int, value: int | bytes, *args: object) -> None:
        """Set ``option`` as ``socket.socket.setsockopt`` does, with Linux's ranges.

        Raises:
            OSError: ``ENOPROTOOPT`` for an option the simulation does not model,
                ``EINVAL`` for a value out of Linux's range.
        """
        if args:
            raise TypeError("setsockopt() takes a level, an option and a value")
        options = self._get()
        if (level, option) == (socket.SOL_SOCKET, socket.SO_LINGER):
            if not isinstance(value, bytes | bytearray) or len(value) != _LINGER.size:
                raise OSError(
                    errno.EINVAL,
                    "SO_LINGER takes struct.pack('ii', onoff, seconds), got " + repr(value),
                )
            onoff, seconds = _LINGER.unpack(value)
            self._put(replace(options, linger=(int(bool(onoff)), max(0, seconds))), "linger")
            return
        spec = _INT_OPTIONS.get((level, option))
        if spec is None:
            raise OSError(
                errno.ENOPROTOOPT,
                f"option {option} at level {level} is not simulated; simulated sockets "
                f"support {_SUPPORTED}",
            )
        field, name, low, high = spec
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} takes an integer, got {value!r}")
        new: bool | int = value != 0
        if field not in _BOOLEAN:
            if not low <= value <= high:
                raise OSError(errno.EINVAL, f"{name} must be from {low} to {high}, got {value}")
            new = value
        changes: dict[str, Any] = {field: new}
        self._put(replace(options, **changes), field)

    def getsockopt(self, level: int, option: int, buflen: int = 0) -> int | bytes:
        """Read ``option`` back, as ``socket.socket.getsockopt`` does."""
        options = self._get()
        if (level, option) == (socket.SOL_SOCKET, socket.SO_LINGER):
            packed = _LINGER.pack(*options.linger)
            return packed[:buflen] if buflen else packed
        spec = _INT_OPTIONS.get((level, option))
        if spec is None:
            raise OSError(
                errno.ENOPROTOOPT,
                f"option {option} at level {level} is not simulated; simulated sockets "
                f"support {_SUPPORTED}",
            )
        value = getattr(options, spec[0])
        return int(value)
