"""Lesson 05's protocol errors, in the simulation and on real loopback TCP.

Every case of :data:`wssim.course.protocolerrors.CATALOGUE` runs twice over:

- in the simulation, as the lesson runs it (:func:`wssim.lab.protocol.run`): a raw endpoint
  of :mod:`wssim.raw` sends the case's bytes to a real websockets server (or, for the
  catalogue's client cases, answers a real websockets client), over simulated TCP in
  virtual time;
- for real: the same websockets server (or client) on 127.0.0.1, port 0, in a real asyncio
  event loop, and the same raw endpoint on a real socket.

Like is compared with like. The raw endpoint is wssim's own (:class:`~wssim.raw.RawClient`,
:class:`~wssim.raw.RawServerConnection`) with only its transport and its clock swapped for
real ones, driven by the lesson's own script (:func:`wssim.lab.protocol._drive`): after the
bytes it waits ``SETTLE`` (1 s) for a close frame, sends a close 1000 if none came, never
answers a close frame or a ping, closes TCP when it reads end-of-file, and a raw server
closes TCP once it has the client's close frame. Its masking and handshake keys come from
the same seed in both worlds, so the very same bytes are written. The library runs with its
defaults on both sides (``close_timeout=10``, ``ping_interval=20``, ``max_size=1 MiB``); a
case lasts at most :data:`~wssim.lab.protocol.LIMIT` (60) seconds.

What is compared, per case (:class:`Outcome`): the exception the library's connection ended
with (what ``recv()`` raised in the handler, or what ``connect()`` raised), the close code
it received and the one it sent (as the raw side read it in the library's close frame), the
close reason, the HTTP status of a server's handshake answer, the other frames the raw side
received (pongs, echoes, keepalive pings), how TCP ended for the raw side, and the time from
sending the bytes to the library's close frame.

Times: on loopback a round trip is tens of microseconds, and the simulation runs with a
loopback-like latency (:data:`SIM_LATENCY`), not the lesson's 10 ms, so both are close to 0
for an immediate answer and close to 1 s, 20 s or 40 s when a timer acts. They agree within
:data:`TOLERANCE` (50 ms): enough for a busy machine's scheduling (all real cases run at
once), far below any timer the cases exercise (1 s at least). Run it alone with::

    python -m reality.protocol
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import socket
import time as wallclock
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypedDict, cast

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Opcode
from websockets.protocol import State

from wssim.course.protocolerrors import CATALOGUE
from wssim.lab.protocol import LIMIT, PORT, Case, _drive
from wssim.net.transport import SimTransport
from wssim.raw import RawClient, RawConnection, RawServer, RawServerConnection
from wssim.simulation import Simulation
from wssim.trace.events import Table, microseconds

__all__ = [
    "CONCURRENCY",
    "KEYS",
    "SIM_LATENCY",
    "TIMES",
    "TOLERANCE",
    "Outcome",
    "Result",
    "compare",
    "main",
    "run",
    "run_real",
    "run_sim",
    "scenario",
    "summary",
    "table",
]

TOLERANCE = 0.050
"""Seconds by which a real time may differ from the simulated one."""

SIM_LATENCY = 0.00005
"""The simulation's one-way latency: loopback's order of magnitude (50 µs)."""

KEYS = ("exception", "code_received", "code_sent", "cause", "reason", "status", "frames")
"""What must be equal in both worlds."""

TIMES = ("time", "tcp_time")
"""What must agree within :data:`TOLERANCE` (or be None in both worlds)."""

CAUSES = {
    "FIN": "EOF",
    "RST": "ECONNRESET",
    "lost": "ETIMEDOUT",
    "closed": "raw closed",
    "aborted": "raw aborted",
}
"""How TCP ended for the raw side, from :attr:`wssim.raw.RawConnection.tcp`."""

# The library's logs would only repeat what the outcome says ("opening handshake failed").
_QUIET = logging.getLogger("reality.protocol.websockets")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


class Outcome(TypedDict):
    """What one side saw of one case.

    Attributes:
        exception: the class of the exception the library's connection ended with:
            ``ConnectionClosedOK``/``ConnectionClosedError`` (what ``recv()`` raises once
            it is closed), a handshake error raised by ``connect()`` (``InvalidStatus``),
            or None (no WebSocket connection, or still open at the end).
        code_received: the close code the library received (None: no close frame).
        code_sent: the close code the raw side read in the library's close frame (None:
            none came; 1005 for an empty one).
        cause: how TCP ended for the raw side: ``"EOF"`` (the library's FIN),
            ``"ECONNRESET"`` (its RST), ``"raw closed"`` (the raw side closed first), or
            None (still open at the end of the case).
        time: seconds from sending the case's bytes to the library's close frame.
        tcp_time: seconds from sending the case's bytes to the end of TCP for the raw side
            (``close_timeout`` and keepalive show here: 20 s when a client gives up).
        reason: the reason in the library's close frame.
        status: for server cases, the HTTP status the library answered the handshake with.
        frames: the other frames the raw side received, in order (``"PONG"``, ``"TEXT"``).
    """

    exception: str | None
    code_received: int | None
    code_sent: int | None
    cause: str | None
    time: float | None
    tcp_time: float | None
    reason: str | None
    status: int | None
    frames: list[str]


class Result(TypedDict):
    """One case in both worlds."""

    scenario: str
    group: str
    sim: Outcome
    real: list[Outcome]
    agree: bool
    note: str


def scenario(case: Case) -> str:
    """The case's name, with the side under test: ``"server: ping of 126 bytes"``."""
    return f"{case.side}: {case.name}"


# ---------------------------------------------------------------- one run of a case


@dataclass
class _Run:
    """What a run of a case leaves behind, in either world."""

    raw: RawConnection | None = None
    sent_at: float | None = None
    library: list[ServerConnection | ClientConnection] = field(default_factory=list)
    error: Exception | None = None  # raised by connect(): the handshake failed
    our_close: list[float] = field(default_factory=list)


def _echo_into(run: _Run) -> Callable[[ServerConnection], Awaitable[None]]:
    """The lesson's echo handler (it reads every message), keeping its connection."""

    async def handler(websocket: ServerConnection) -> None:
        run.library.append(websocket)
        async for message in websocket:
            await websocket.send(message)

    return handler


async def _library_client(uri: str, run: _Run, logger: logging.Logger | None = None) -> None:
    """The lesson's client: it reads every message until the connection ends."""
    try:
        async with connect(uri, logger=logger) as websocket:
            run.library.append(websocket)
            async for _ in websocket:
                pass
    except Exception as exc:
        if not run.library:
            run.error = exc  # else: the connection's own account is read below


def _opcode(opcode: int) -> str:
    try:
        return Opcode(opcode).name
    except ValueError:
        return f"OPCODE {opcode:#x}"


def _outcome(run: _Run) -> Outcome:
    exception: str | None = None
    code_received: int | None = None
    if run.error is not None:
        exception = type(run.error).__name__
    elif run.library and run.library[0].protocol.state is State.CLOSED:
        closed = run.library[0].protocol.close_exc
        exception = type(closed).__name__
        code_received = None if closed.rcvd is None else closed.rcvd.code
    raw = run.raw
    if raw is None:
        return Outcome(
            exception=exception,
            code_received=code_received,
            code_sent=None,
            cause=None,
            time=None,
            tcp_time=None,
            reason=None,
            status=None,
            frames=[],
        )
    close = raw.close_frame
    elapsed = ended = None
    if run.sent_at is not None:
        if close is not None:
            elapsed = round(close.time - run.sent_at, 6)
        if raw.tcp_at is not None:
            ended = round(raw.tcp_at - run.sent_at, 6)
    return Outcome(
        exception=exception,
        code_received=code_received,
        code_sent=raw.close_code,
        cause=None if raw.tcp is None else CAUSES[raw.tcp],
        time=elapsed,
        tcp_time=ended,
        reason=raw.close_reason,
        status=raw.status if isinstance(raw, RawClient) else None,
        frames=[_opcode(f.opcode) for f in raw.frames if f.opcode != Opcode.CLOSE],
    )


# ---------------------------------------------------------------- the simulation


def run_sim(case: Case, *, latency: float = SIM_LATENCY) -> Outcome:
    """Run ``case`` in the simulation, as :func:`wssim.lab.protocol.run` does."""
    run = _Run()

    async def library_server() -> None:
        async with serve(_echo_into(run), None, PORT) as server:
            await server.serve_forever()

    async def raw_client() -> None:
        raw = await RawClient.connect("server", PORT, request=case.handshake)
        run.raw, run.sent_at = raw, microseconds(asyncio.get_running_loop().time())
        await _drive(raw, case, run.our_close)

    async def raw_server() -> None:
        async with await RawServer.listen(PORT, response=case.handshake) as server:
            raw = await server.accept()
            run.raw, run.sent_at = raw, microseconds(asyncio.get_running_loop().time())
            await _drive(raw, case, run.our_close)

    with Simulation(seed=0, latency=latency) as sim:
        if case.side == "server":
            sim.host("server").spawn(library_server())
            sim.host("client").spawn(raw_client())
        else:
            sim.host("server").spawn(raw_server())
            sim.host("client").spawn(_library_client(f"ws://server:{PORT}", run))
        sim.run(until=LIMIT)
        return _outcome(run)


# ---------------------------------------------------------------- real loopback TCP


class _Loopback(RawConnection):
    """A wssim raw endpoint on a real socket: the same code, a real transport and clock.

    Of its transport it uses ``write()``, ``close()``, ``abort()`` and ``is_closing()``,
    which a real asyncio transport has too. Its masking and handshake keys come from the
    seed the simulation derives for the only connection of a run (``c1``).
    """

    _loop: asyncio.AbstractEventLoop

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(SimTransport, transport)
        self._loop = asyncio.get_running_loop()
        if self._seed is None:
            self.rng = random.Random(f"wssim.raw/{self.side}/c1")
        self.connected()

    @property
    def conn_id(self) -> str:
        return "loopback"

    def _time(self) -> float:
        return self._loop.time()


class _LoopbackClient(_Loopback, RawClient):
    pass


class _LoopbackServerConnection(_Loopback, RawServerConnection):
    pass


def _port(sockets: Iterable[socket.socket]) -> int:
    for sock in sockets:
        return int(sock.getsockname()[1])
    raise RuntimeError("the server listens on no socket")


async def _real_case(case: Case) -> Outcome:
    """Run ``case`` once on real loopback TCP."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LIMIT
    run = _Run()
    try:
        if case.side == "server":
            async with serve(_echo_into(run), "127.0.0.1", 0, logger=_QUIET) as server:
                port = _port(server.sockets)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(deadline):
                        raw = await _LoopbackClient.connect(
                            "127.0.0.1", port, request=case.handshake
                        )
                        run.raw, run.sent_at = raw, loop.time()
                        await _drive(raw, case, run.our_close)
                        # The simulation reads the library's account at the end of the
                        # run: here, once its connection is closed.
                        for websocket in run.library:
                            await websocket.wait_closed()
                outcome = _outcome(run)
                _release(run.raw)
            return outcome
        listening = RawServer(response=case.handshake, close_on_eof=True)
        listener = await loop.create_server(
            lambda: _LoopbackServerConnection(listening), "127.0.0.1", 0
        )
        port = _port(listener.sockets)
        client = asyncio.create_task(_library_client(f"ws://127.0.0.1:{port}", run, _QUIET))
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    accepted = await listening.accept()
                    run.raw, run.sent_at = accepted, loop.time()
                    await _drive(accepted, case, run.our_close)
                    await asyncio.shield(client)
            outcome = _outcome(run)
        finally:
            client.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await client
            _release(run.raw)
            listener.close()
            await listener.wait_closed()
        return outcome
    finally:
        _release(run.raw)


def _release(raw: RawConnection | None) -> None:
    """Close what is left open once the outcome is read."""
    if raw is not None:
        raw.close_tcp()


CONCURRENCY = 8
"""Real runs at most at once. They share one event loop: with every run of the catalogue
at once (210), the loop's backlog alone delays each answer by 100 ms."""


async def _real_all(
    cases: Sequence[Case], runs: int, expected: Sequence[float], concurrency: int
) -> list[list[Outcome]]:
    # Longest first: the keepalive cases (20 s, 40 s) sleep in their slots while the
    # others pass through the rest, so a run takes about as long as the longest case.
    slots = asyncio.Semaphore(concurrency)

    async def limited(case: Case) -> Outcome:
        async with slots:
            return await _real_case(case)

    order = sorted(range(len(cases)), key=lambda i: -expected[i])
    tasks: dict[int, list[asyncio.Task[Outcome]]] = {i: [] for i in order}
    for _ in range(runs):
        for i in order:
            tasks[i].append(asyncio.create_task(limited(cases[i])))
    outcomes = [list(await asyncio.gather(*tasks[i])) for i in range(len(cases))]
    # Let the transports closed last deliver their connection_lost() before the loop ends.
    await asyncio.sleep(0.01)
    return outcomes


def run_real(
    cases: Sequence[Case],
    runs: int = 1,
    *,
    expected: Sequence[float] | None = None,
    concurrency: int = CONCURRENCY,
) -> list[list[Outcome]]:
    """Run each case ``runs`` times on real loopback TCP, ``concurrency`` runs at once.

    Args:
        cases: the cases.
        runs: how many times to run each.
        expected: how long each case is expected to last, in seconds, to start the
            longest first (default: catalogue order).
        concurrency: how many runs at most at once.

    Returns:
        One list of ``runs`` outcomes per case, in the order of ``cases``.

    Raises:
        ValueError: if ``runs`` or ``concurrency`` is not a positive integer, or
            ``expected`` does not have one value per case.
    """
    for name, value in (("runs", runs), ("concurrency", concurrency)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    cases = list(cases)
    if expected is None:
        expected = [0.0] * len(cases)
    if len(expected) != len(cases):
        raise ValueError(f"expected has {len(expected)} values for {len(cases)} cases")
    return asyncio.run(_real_all(cases, runs, expected, concurrency))


def _duration(outcome: Outcome) -> float:
    """How long a case lasted: until the close frame or the end of TCP, whichever is last."""
    return max(outcome["time"] or 0.0, outcome["tcp_time"] or 0.0)


# ---------------------------------------------------------------- comparing


def compare(
    sim: Outcome, real: Sequence[Outcome], tolerance: float = TOLERANCE
) -> tuple[bool, str]:
    """Whether every real run agrees with the simulation, and a note saying how.

    They agree when each of :data:`KEYS` is equal and, for each of :data:`TIMES`, both
    are None or within ``tolerance`` seconds of each other. The note lists each difference
    once, with the runs it was seen in; when they agree, it gives the largest time
    difference.
    """
    if not real:
        return False, "no real run"
    seen: dict[str, list[int]] = {}
    for number, outcome in enumerate(real, 1):
        for key in KEYS:
            expected, got = _value(sim, key), _value(outcome, key)
            if expected != got:
                seen.setdefault(f"{key}: sim {expected!r}, real {got!r}", []).append(number)
    notes = [f"{text} ({_runs(numbers, len(real))})" for text, numbers in seen.items()]
    gaps: list[float] = []
    for key in TIMES:
        expected = _value(sim, key)
        values = [_value(outcome, key) for outcome in real]
        off = False
        for got in values:
            if isinstance(expected, float) and isinstance(got, float):
                gaps.append(abs(got - expected))
                off = off or abs(got - expected) > tolerance
            else:
                off = off or got != expected
        if off:
            shown = ", ".join(dict.fromkeys(_t(v) for v in values))
            notes.append(f"{key}: sim {_t(expected)}, real {shown}")
    if notes:
        return False, "; ".join(notes)
    return True, f"|Δt| ≤ {max(gaps) * 1000:.1f} ms" if gaps else ""


def _value(outcome: Outcome, key: str) -> object:
    return cast(Mapping[str, object], outcome)[key]


def _runs(numbers: Sequence[int], runs: int) -> str:
    if len(numbers) == runs:
        return "all runs"
    return ("run " if len(numbers) == 1 else "runs ") + ", ".join(map(str, numbers))


def _t(value: object) -> str:
    return f"{value:.3f} s" if isinstance(value, float) else "none"


def run(runs: int = 3, *, cases: Sequence[Case] = CATALOGUE) -> list[Result]:
    """Run every case of ``cases`` (default: lesson 05's whole catalogue) in the simulation
    once and ``runs`` times on real loopback TCP, and compare.

    Returns:
        One :class:`Result` per case, in catalogue order.
    """
    sims = [run_sim(case) for case in cases]
    real = run_real(cases, runs, expected=[_duration(sim) for sim in sims])
    results = []
    for case, sim, outcomes in zip(cases, sims, real, strict=True):
        agree, note = compare(sim, outcomes)
        results.append(
            Result(
                scenario=scenario(case),
                group="protocol",
                sim=sim,
                real=outcomes,
                agree=agree,
                note=note,
            )
        )
    return results


# ---------------------------------------------------------------- the table


def summary(outcome: Outcome) -> str:
    """One outcome in a few words, without its times: ``ConnectionClosedError PONG 1000/1002
    EOF`` (the exception, other frames received, the codes received/sent, how TCP ended)."""
    parts = [outcome["exception"] or "-"]
    if outcome["status"] not in (None, 101):
        parts.append(f"HTTP {outcome['status']}")
    if outcome["frames"]:
        parts.append("+".join(dict.fromkeys(outcome["frames"])))
    received, sent = outcome["code_received"], outcome["code_sent"]
    if received is not None or sent is not None:
        parts.append(f"{received or '-'}/{sent or '-'}")
    parts.append(outcome["cause"] or "open")
    return " ".join(parts)


def _times(sim: Outcome, real: Sequence[Outcome], key: str) -> str:
    expected = _value(sim, key)
    values = [v for v in (_value(o, key) for o in real) if isinstance(v, float)]
    shown = _t(expected).removesuffix(" s") + " / "
    if not values:
        return shown + "none"
    # A TCP end a hair before the send (a refused handshake) is shown as 0.000, not -0.000.
    low, high = max(min(values), 0.0), max(max(values), 0.0)
    return shown + (f"{low:.3f}" if high - low < 0.0005 else f"{low:.3f}–{high:.3f}")


def table(results: Iterable[Result]) -> Table:
    """The results as a text table: the case, both worlds in a few words (the library's
    exception, the close codes it received/sent, how TCP ended), the times of its close
    frame and of the end of TCP (sim / real), whether they agree."""
    rows = []
    for result in results:
        sim, real = result["sim"], result["real"]
        shown = list(dict.fromkeys(summary(o) for o in real))
        rows.append(
            [
                result["scenario"],
                summary(sim),
                " | ".join(shown) + ("" if len(shown) > 1 else f" ×{len(real)}"),
                _times(sim, real, "time"),
                _times(sim, real, "tcp_time"),
                "yes" if result["agree"] else "NO",
                result["note"],
            ]
        )
    columns = ["case", "simulation", "real loopback", "close frame at", "TCP ends at"]
    return Table([*columns, "agree", "note"], rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print its table; exit status 1 if any case disagrees."""
    parser = argparse.ArgumentParser(
        prog="python -m reality.protocol", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--runs", type=int, default=3, help="real runs per case (default 3)")
    args = parser.parse_args(argv)
    started = wallclock.monotonic()
    results = run(args.runs)
    took = wallclock.monotonic() - started
    print(table(results))
    disagree = [r for r in results if not r["agree"]]
    print(
        f"\n{len(results)} cases, {args.runs} real run(s) each, {took:.1f} s: "
        f"{len(results) - len(disagree)} agree, {len(disagree)} disagree"
    )
    return 1 if disagree else 0


if __name__ == "__main__":
    raise SystemExit(main())
