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
import time as wallclock
from collections.abc import Awaitable, Callable, Iterable, Sequence
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
    "KEYS",
    "SIM_LATENCY",
    "TOLERANCE",
    "Outcome",
    "Result",
    "compare",
    "main",
    "run",
    "run_real",
    "run_sim",
    "scenario",
]

TOLERANCE = 0.050
"""Seconds by which a real time may differ from the simulated one."""

SIM_LATENCY = 0.00005
"""The simulation's one-way latency: loopback's order of magnitude (50 µs)."""

KEYS = ("exception", "code_received", "code_sent", "cause", "reason", "status", "frames")
"""What must be equal in both worlds (``time`` is compared within :data:`TOLERANCE`)."""

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
        reason: the reason in the library's close frame.
        status: for server cases, the HTTP status the library answered the handshake with.
        frames: the other frames the raw side received, in order (``"PONG"``, ``"TEXT"``).
    """

    exception: str | None
    code_received: int | None
    code_sent: int | None
    cause: str | None
    time: float | None
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


def _outcome(case: Case, run: _Run) -> Outcome:
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
            reason=None,
            status=None,
            frames=[],
        )
    close = raw.close_frame
    elapsed = None
    if close is not None and run.sent_at is not None:
        elapsed = round(close.time - run.sent_at, 6)
    return Outcome(
        exception=exception,
        code_received=code_received,
        code_sent=raw.close_code,
        cause=None if raw.tcp is None else CAUSES[raw.tcp],
        time=elapsed,
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
        return _outcome(case, run)


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


def _port(sockets: Iterable[object]) -> int:
    for sock in sockets:
        name = sock.getsockname()  # type: ignore[attr-defined]
        return int(name[1])
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
                outcome = _outcome(case, run)
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
            outcome = _outcome(case, run)
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


async def _real_all(cases: Sequence[Case], runs: int) -> list[list[Outcome]]:
    # Every run of every case at once, each on its own server and ports: the run takes
    # as long as the longest case (about 40 s: the keepalive timeout).
    tasks = [[asyncio.create_task(_real_case(case)) for _ in range(runs)] for case in cases]
    outcomes = [await asyncio.gather(*row) for row in tasks]
    # Let the transports closed last deliver their connection_lost() before the loop ends.
    await asyncio.sleep(0.01)
    return outcomes


def run_real(cases: Sequence[Case], runs: int = 1) -> list[list[Outcome]]:
    """Run each case ``runs`` times on real loopback TCP, all at once.

    Returns:
        One list of ``runs`` outcomes per case, in the order of ``cases``.

    Raises:
        ValueError: if ``runs`` is not a positive integer.
    """
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"runs must be a positive integer, got {runs!r}")
    return asyncio.run(_real_all(list(cases), runs))


# ---------------------------------------------------------------- comparing


def compare(
    sim: Outcome, real: Sequence[Outcome], tolerance: float = TOLERANCE
) -> tuple[bool, str]:
    """Whether every real run agrees with the simulation, and a note saying how.

    They agree when each of :data:`KEYS` is equal and both times are None or within
    ``tolerance`` seconds of each other. The note lists each difference once, with the
    runs it was seen in; when they agree, it gives the largest time difference.
    """
    if not real:
        return False, "no real run"
    seen: dict[str, list[int]] = {}
    gaps: list[float] = []
    for number, outcome in enumerate(real, 1):
        for key in KEYS:
            if sim[key] != outcome[key]:  # type: ignore[literal-required]
                text = f"{key}: sim {sim[key]!r}, real {outcome[key]!r}"  # type: ignore[literal-required]
                seen.setdefault(text, []).append(number)
        ts, tr = sim["time"], outcome["time"]
        if ts is None or tr is None:
            if ts != tr:
                seen.setdefault(f"time: sim {_t(ts)}, real {_t(tr)}", []).append(number)
        else:
            gaps.append(abs(tr - ts))
            if abs(tr - ts) > tolerance:
                text = f"time: sim {ts:.3f} s, real {tr:.3f} s (> {tolerance * 1000:g} ms)"
                seen.setdefault(text, []).append(number)
    if seen:
        notes = []
        for text, numbers in seen.items():
            runs = (
                "all runs" if len(numbers) == len(real) else "run " + ", ".join(map(str, numbers))
            )
            notes.append(f"{text} ({runs})")
        return False, "; ".join(notes)
    return True, f"|Δt| ≤ {max(gaps) * 1000:.1f} ms" if gaps else ""


def _t(value: float | None) -> str:
    return "none" if value is None else f"{value:.3f} s"


def run(runs: int = 3, *, cases: Sequence[Case] = CATALOGUE) -> list[Result]:
    """Run every case of ``cases`` (default: lesson 05's whole catalogue) in the simulation
    once and ``runs`` times on real loopback TCP, and compare.

    Returns:
        One :class:`Result` per case, in catalogue order.
    """
    real = run_real(cases, runs)
    results = []
    for case, outcomes in zip(cases, real, strict=True):
        sim = run_sim(case)
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
    """One outcome in a few words: ``ConnectionClosedError 1002→ →1002 EOF 0.000 s``."""
    parts = [outcome["exception"] or "-"]
    if outcome["status"] not in (None, 101):
        parts.append(f"HTTP {outcome['status']}")
    if outcome["frames"]:
        parts.append("+".join(dict.fromkeys(outcome["frames"])))
    received = "-" if outcome["code_received"] is None else outcome["code_received"]
    sent = "-" if outcome["code_sent"] is None else outcome["code_sent"]
    parts.append(f"rcvd {received} sent {sent}")
    parts.append(outcome["cause"] or "open")
    if outcome["time"] is not None:
        parts.append(f"@{outcome['time']:.3f}")
    return " ".join(parts)


def table(results: Iterable[Result]) -> Table:
    """The results as a text table: the case, both worlds in a few words, agreement."""
    rows = []
    for result in results:
        sim = summary(result["sim"])
        reals = [summary(o) for o in result["real"]]
        untimed = {s.rsplit(" @", 1)[0] for s in reals}
        if len(untimed) == 1:
            times = [o["time"] for o in result["real"] if o["time"] is not None]
            shown = untimed.pop()
            if times:
                shown += f" @{min(times):.3f}" + (
                    f"–{max(times):.3f}" if max(times) > min(times) else ""
                )
            real = f"{shown} ×{len(reals)}"
        else:
            real = " | ".join(reals)
        rows.append(
            [result["scenario"], sim, real, "yes" if result["agree"] else "NO", result["note"]]
        )
    return Table(["case", "simulation", "real loopback", "agree", "note"], rows)


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
