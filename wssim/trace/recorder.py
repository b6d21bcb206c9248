"""Recording a simulation: the network's reports and websockets' own logs become events.

The network reports segments and TCP outcomes; a :class:`~wssim.trace.wiretap.ConnectionTap`
decodes the bytes; websockets' DEBUG log (``websockets.client`` and ``websockets.server``)
gives each endpoint's own view. Log records produced inside the simulation go to the trace
and nowhere else, so a simulation never prints; records from outside pass through untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from typing import TYPE_CHECKING, Any

from websockets.asyncio.connection import Connection
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame
from websockets.protocol import State as WsState

from wssim.core.hosts import current_host
from wssim.trace.events import ClosedInfo, Detail, Event, FaultInfo, Tcp, Trace, microseconds
from wssim.trace.wiretap import ConnectionTap, frame_info

if TYPE_CHECKING:
    from wssim.net.tcp import ConnectionEnd, Pipe, TcpConnection

__all__ = ["Recorder"]

LOGGERS = ("websockets.client", "websockets.server")

# websockets logs every HTTP header of the handshake. They hold the random
# Sec-WebSocket-Key and the wall-clock Date, and the wire tap already shows the request
# and the status line: the trace leaves them out.
HEADER_LINES = frozenset({"> %s: %s", "< %s: %s"})

# The lines in which websockets logs a frame it sent or received, and a change of state:
# the trace gives them typed details, read from the log call's arguments.
_SENT, _RECEIVED, _STATE = "> %s", "< %s", "= connection is %s"
_STATES = {state.name: state for state in WsState}


_NOTHING: tuple[Detail, int | None] = (None, None)


def _log_detail(msg: object, args: tuple[object, ...], text: str) -> tuple[Detail, int | None]:
    """The detail of a websockets log line and its close code, from its format, arguments
    and text."""
    if not args:
        return _NOTHING
    if msg == _STATE:
        return _STATES.get(args[0]), None  # type: ignore[call-overload]
    frame = args[0]
    if isinstance(frame, Frame) and msg in (_SENT, _RECEIVED):
        # The text is "> " and websockets' description, which ends with the size.
        return frame_info(frame, None, None, text.rindex(" ["), sent=msg == _SENT)
    return _NOTHING


class Recorder(logging.Filter):
    """Collects events for one simulation (implements the network's observer)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self._events: list[tuple[float, int, int, Event]] = []
        self._seq = 0
        # Keyed by connection number, so that a finished connection can be let go of.
        self._taps: dict[int, ConnectionTap] = {}
        self._saved_levels: dict[str, int] = {}
        self.recording = True
        # The endpoint whose protocol is being created: websockets logs its first state
        # before the connection object exists.
        self.constructing: ConnectionEnd | None = None

    # Output

    def trace(self, *, ran_until: float | None = None) -> Trace:
        """All events so far, ordered by time, then connection, then occurrence.

        ``ran_until`` is how far the run went (see :attr:`Trace.ran_until`).
        """
        # (time, connection, sequence) are unique: the events themselves are never compared.
        return Trace((entry[3] for entry in sorted(self._events)), ran_until=ran_until)

    def add(self, event: Event, conn_index: int = 0) -> None:
        if not self.recording:
            return
        self._seq += 1
        self._events.append((event.time, conn_index, self._seq, event))

    def now(self) -> float:
        return microseconds(self._loop.time())

    # The network's reports

    def tcp(
        self,
        conn: TcpConnection | None,
        side: str,
        host: str,
        text: str,
        detail: Tcp | FaultInfo,
        *,
        peer: str = "",
        arrives: float | None = None,
    ) -> None:
        self.add(
            Event(
                self.now(),
                "tcp",
                text,
                host=host,
                peer=peer,
                conn=conn.id if conn else "",
                side=side,
                arrives=None if arrives is None else microseconds(arrives),
                detail=detail,
            ),
            conn.index if conn else 0,
        )

    def data(self, pipe: Pipe, data: bytes, arrives: float | None) -> None:
        conn = pipe.conn
        tap = self._taps.get(conn.index)
        if tap is None:
            tap = self._taps[conn.index] = ConnectionTap()
        direction = tap.to_server if pipe.src.side == "client" else tap.to_client
        for item in direction.feed(data):
            self.add(
                Event(
                    self.now(),
                    item.kind,
                    item.text,
                    host=pipe.src.host.name,
                    peer=pipe.dst.host.name,
                    conn=conn.id,
                    side=pipe.src.side,
                    arrives=None if arrives is None else microseconds(arrives),
                    code=item.code,
                    detail=item.frame,
                ),
                conn.index,
            )

    def constructed(self, endpoint: ConnectionEnd, protocol: asyncio.BaseProtocol) -> None:
        """A websockets connection was made for ``endpoint``: record its log directly.

        Going through :mod:`logging` costs a full ``LogRecord`` per line (with a walk up
        the stack to find the caller), for a dozen lines per keepalive period: it was half
        the time of a long simulation. A connection built with websockets' default logger
        gets an :class:`EndpointLog` instead. One built with the learner's own ``logger=``
        keeps it: its lines go where the learner sends them, not to the trace.
        """
        if not isinstance(protocol, Connection):
            return
        current = protocol.logger
        if not (isinstance(current, logging.LoggerAdapter) and current.logger.name in LOGGERS):
            return
        log = EndpointLog(self, endpoint, current.logger)
        protocol.logger = protocol.protocol.logger = log

    def forget(self, conn: TcpConnection) -> None:
        self._taps.pop(conn.index, None)

    def connection_lost(self, endpoint: ConnectionEnd, protocol: asyncio.BaseProtocol) -> None:
        if not isinstance(protocol, Connection):
            return
        sansio = protocol.protocol
        if sansio.handshake_exc is not None:
            exc: BaseException = sansio.handshake_exc
            text = f"handshake failed: {type(exc).__name__}: {exc}"
            code = None
            status = exc.response.status_code if isinstance(exc, InvalidStatus) else None
            info = ClosedInfo(type(exc).__name__, str(exc), handshake=True, status=status)
        else:
            exc = sansio.close_exc
            text = f"{type(exc).__name__}: {exc}"
            code = sansio.close_code
            info = ClosedInfo(type(exc).__name__, str(exc))
        self.add(
            Event(
                self.now(),
                "closed",
                text,
                host=endpoint.host.name,
                conn=endpoint.conn.id,
                side=endpoint.side,
                code=code,
                detail=info,
            ),
            endpoint.conn.index,
        )

    # websockets' logs

    def start_capture(self) -> None:
        """Route websockets' log records from this simulation into the trace."""
        for name in LOGGERS:
            logger = logging.getLogger(name)
            self._saved_levels[name] = logger.level
            logger.setLevel(logging.DEBUG)
            logger.addFilter(self)

    def stop_capture(self) -> None:
        for name, level in self._saved_levels.items():
            logger = logging.getLogger(name)
            logger.removeFilter(self)
            logger.setLevel(level)
        self._saved_levels.clear()

    def filter(self, record: logging.LogRecord) -> bool:
        # The low-level form: no exception to raise and catch when no loop runs here.
        if asyncio._get_running_loop() is not self._loop:
            return True
        host = current_host()
        if host is None:
            # Code left over from a crashed boot: the process is dead, its logs are not.
            return False
        if record.msg in HEADER_LINES:
            return False
        conn, side = "", "client" if record.name.endswith("client") else "server"
        index = 0
        endpoint = self.constructing
        websocket = getattr(record, "websocket", None)
        if websocket is not None:
            # A weak proxy to the connection; its transport may not be ours or may be gone.
            with contextlib.suppress(AttributeError, ReferenceError):
                endpoint = websocket.transport.endpoint
        if endpoint is not None:
            conn, side, index = endpoint.conn.id, endpoint.side, endpoint.conn.index
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += f" ({type(exc).__name__}: {exc})"
        args = record.args
        detail, code = _log_detail(record.msg, args, text) if isinstance(args, tuple) else _NOTHING
        event = Event(
            self.now(), "log", text, host=host.name, conn=conn, side=side, code=code, detail=detail
        )
        self.add(event, index)
        return False


class EndpointLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """What websockets logs for one connection endpoint, straight into the trace.

    A :class:`logging.LoggerAdapter`, as websockets expects, whose :meth:`log` records the
    line as an event instead of making a ``LogRecord``. Every level is enabled: inside a
    simulation the trace is where logs go.
    """

    def __init__(self, recorder: Recorder, endpoint: ConnectionEnd, logger: logging.Logger) -> None:
        super().__init__(logger, {})
        self._recorder = recorder
        self._endpoint = endpoint

    def isEnabledFor(self, level: int) -> bool:
        return True

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if msg in HEADER_LINES or current_host() is None:
            return  # header lines are left out; a dead process says nothing
        text = str(msg) % args if args else str(msg)
        exc_info = kwargs.get("exc_info")
        exc = sys.exc_info()[1] if exc_info is True else exc_info
        if isinstance(exc, BaseException):
            text += f" ({type(exc).__name__}: {exc})"
        endpoint = self._endpoint
        recorder = self._recorder
        detail, code = _log_detail(msg, args, text)
        recorder.add(
            Event(
                recorder.now(), "log", text, host=endpoint.host.name,
                conn=endpoint.conn.id, side=endpoint.side, code=code, detail=detail,
            ),
            endpoint.conn.index,
        )  # fmt: skip
