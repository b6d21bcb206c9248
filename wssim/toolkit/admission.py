"""Server admission control: what an overloaded server does, with websockets' own hooks.

A real server protects itself in two ways, and :class:`Admission` does both:

- it refuses new connections at the opening handshake, with ``HTTP 503 Service Unavailable``,
  past a **connection limit** (``max_connections``) and/or past an **accept rate** (a token
  bucket: ``rate`` handshakes per second on average, bursts of up to ``burst``);
- it **sheds** connections already open with close code 1013 (Try Again Later, from the
  IANA WebSocket close code registry) when told to: :meth:`Admission.shed`.

It plugs into ``serve(..., process_request=admission)``: websockets calls it with each
handshake request before answering it, and sends the response it returns (``None`` lets the
handshake go on). websockets' client retries a 503 (``websockets.client.process_exception``
treats 500, 502, 503 and 504 as transient), so refused clients come back after their next
reconnect delay. Time is the event loop's, so in a simulation the bucket refills in virtual
time and every decision is reproducible.

A connection counts against the limit from the moment it is admitted until its TCP
connection is gone. websockets' ``Server.connections`` is not enough for that: it lists only
connections whose handshake completed and that are not closing yet, so a burst of concurrent
handshakes would all see room for themselves.

Example::

    admission = Admission(max_connections=500, rate=100, burst=100, sim=sim)

    async def server():
        async with serve(handler, "server", 8765, process_request=admission) as srv:
            await srv.serve_forever()

    sim.host("server").spawn(server())
    sim.at(30, admission.shed, 200)  # at t=30 s, close 200 open connections with 1013
"""

from __future__ import annotations

import asyncio
import contextvars
import http
import math
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response
from websockets.protocol import State

from wssim.core.hosts import current_host

if TYPE_CHECKING:
    from wssim.simulation import Simulation

__all__ = ["TRY_AGAIN_LATER", "Admission"]

TRY_AGAIN_LATER = 1013
"""Close code 1013, Try Again Later (IANA WebSocket close code registry)."""


class Admission:
    """Refuse handshakes with HTTP 503 past a connection limit or an accept rate; shed with 1013.

    Pass it as ``process_request=`` to websockets' ``serve()``. One object may serve several
    boots of a server (for example across a simulated crash and restart): connections of a
    crashed process stop counting when their TCP connection is gone.

    Args:
        max_connections: most connections admitted at once (counting handshakes in progress);
            None for no limit.
        rate: average handshakes admitted per second (token bucket); None for no limit.
        burst: size of the bucket: how many handshakes may be admitted at once after a
            quiet period. Defaults to ``max(1, rate)`` (one second's worth). Needs ``rate``.
        retry_after: if given, 503 responses carry ``Retry-After: <retry_after>`` (whole
            seconds). Note that websockets' client ignores this header: its next attempt
            comes from its own reconnect delays.
        sim: if given, :meth:`shed` adds a mark to this simulation's trace. Refusals need no
            mark: each 503 appears in the trace as an ``http`` event with code 503.

    Attributes:
        admitted: handshakes let through so far.
        refused_full: handshakes refused because ``max_connections`` were open.
        refused_rate: handshakes refused because the bucket was empty.
        shed_count: connections closed by :meth:`shed`.

    Raises:
        ValueError: for a parameter out of its range (the message names it).
    """

    def __init__(
        self,
        *,
        max_connections: int | None = None,
        rate: float | None = None,
        burst: float | None = None,
        retry_after: int | None = None,
        sim: Simulation | None = None,
    ) -> None:
        if max_connections is not None and (
            isinstance(max_connections, bool)
            or not isinstance(max_connections, int)
            or max_connections < 1
        ):
            raise ValueError(
                f"max_connections must be an integer >= 1 or None, got {max_connections!r}"
            )
        if rate is not None and not _positive(rate):
            raise ValueError(f"rate must be a finite number > 0 (per second) or None, got {rate!r}")
        if burst is not None:
            if rate is None:
                raise ValueError("burst needs a rate: pass rate= too, or leave burst out")
            if not _positive(burst) or burst < 1:
                raise ValueError(f"burst must be a finite number >= 1, got {burst!r}")
        if retry_after is not None and (
            isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0
        ):
            raise ValueError(
                f"retry_after must be an integer >= 0 (seconds) or None, got {retry_after!r}"
            )
        self.max_connections = max_connections
        self.rate = None if rate is None else float(rate)
        self.burst = None if self.rate is None else float(burst or max(1.0, self.rate))
        self.retry_after = retry_after
        self.sim = sim
        self.admitted = 0
        self.refused_full = 0
        self.refused_rate = 0
        self.shed_count = 0
        self._tokens = self.burst or 0.0
        self._refilled_at: float | None = None
        # Admitted connections whose TCP connection is not gone yet, oldest first, each with
        # the context it was admitted in (so that shedding runs as part of the server
        # process, and dies with it if the host crashes).
        self._open: dict[ServerConnection, contextvars.Context] = {}
        self._shedding: dict[ServerConnection, None] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._host = ""

    def __repr__(self) -> str:
        return (
            f"<Admission max_connections={self.max_connections} rate={self.rate} "
            f"burst={self.burst} open={self.open}>"
        )

    @property
    def open(self) -> int:
        """Connections admitted whose TCP connection is not gone yet."""
        return len(self._open)

    @property
    def refused(self) -> int:
        """Handshakes refused with 503, for either reason."""
        return self.refused_full + self.refused_rate

    def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        """websockets' ``process_request`` hook: None admits; a 503 response refuses."""
        host = current_host()
        if host is not None:
            self._host = host.name
        if self.max_connections is not None and len(self._open) >= self.max_connections:
            self.refused_full += 1
            return self._refuse(connection, "Too many connections; try again later.\n")
        if self.rate is not None and not self._take_token(connection.loop.time()):
            self.refused_rate += 1
            return self._refuse(connection, "Too many new connections; try again later.\n")
        self.admitted += 1
        self._open[connection] = contextvars.copy_context()
        connection.connection_lost_waiter.add_done_callback(lambda _: self._gone(connection))
        return None

    def shed(self, n: int, reason: str = "server overloaded") -> int:
        """Close up to ``n`` open connections, oldest first, with 1013 (Try Again Later).

        Callable at a virtual time: ``sim.at(t, admission.shed, 10)``. Only connections that
        are OPEN and not already being shed are chosen. The closing handshake then runs as
        usual: the client receives ``CLOSE 1013``, and its ``ConnectionClosedError`` says so.

        Returns:
            how many connections it started closing.

        Raises:
            ValueError: if ``n`` is not an integer >= 0 or ``reason`` is longer than 123
                bytes in UTF-8 (a close frame's payload is at most 125 bytes).
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an integer >= 0, got {n!r}")
        if len(reason.encode()) > 123:
            raise ValueError("reason must be at most 123 bytes in UTF-8 (RFC 6455 section 5.5)")
        chosen = [
            (connection, context)
            for connection, context in self._open.items()
            if connection.state is State.OPEN and connection not in self._shedding
        ][:n]
        for connection, context in chosen:
            self._shedding[connection] = None
            task = connection.loop.create_task(
                connection.close(TRY_AGAIN_LATER, reason), context=context.copy()
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.shed_count += len(chosen)
        if self.sim is not None:
            self.sim.mark(
                f"admission: shed {len(chosen)} of {n} asked (close 1013, {reason})", self._host
            )
        return len(chosen)

    def _take_token(self, now: float) -> bool:
        assert self.rate is not None and self.burst is not None
        if self._refilled_at is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._refilled_at) * self.rate)
        self._refilled_at = now
        # A tiny tolerance: refills computed from float times must not miss a token that is
        # due at exactly this instant.
        if self._tokens >= 1 - 1e-9:
            self._tokens = max(0.0, self._tokens - 1)
            return True
        return False

    def _refuse(self, connection: ServerConnection, text: str) -> Response:
        response = connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, text)
        if self.retry_after is not None:
            response.headers["Retry-After"] = str(self.retry_after)
        return response

    def _gone(self, connection: ServerConnection) -> None:
        self._open.pop(connection, None)
        self._shedding.pop(connection, None)


def _positive(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and value > 0
    )
