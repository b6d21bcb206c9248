"""The real side: a scenario on Linux TCP, each side in its own process and namespace.

One run (:func:`run_once`) makes a fresh :class:`~reality.netns.Lab`, starts both sides'
agents, tells them, once both are ready, the start time ``t0`` (:data:`LEAD` ahead), applies
the fault schedule at ``t0 + at * scale`` (nftables rules in the router, SIGKILL, SIGSTOP/SIGCONT,
commands to the server's application), and collects each side's outcome. Times come back
unscaled. Runs are coroutines: several may run at once, each in its own namespaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reality import outcome
from reality.netns import SERVER_ADDR, Lab
from reality.outcome import Outcome
from reality.scenarios import (
    Forget,
    Freeze,
    Kill,
    Partition,
    PowerLoss,
    Scenario,
    Signal,
)

ROOT = Path(__file__).resolve().parent.parent

STARTUP = 60.0
"""Wall seconds an agent may take to start (import websockets, listen)."""

LEAD = 0.05
"""Wall seconds between telling both agents ``t0`` and ``t0``."""

LABS: dict[str, Lab] = {}
"""The labs set up and not torn down yet, for :func:`teardown_all`."""


class RunFailed(Exception):
    """The harness, not the scenario, went wrong (an agent did not start...)."""


@dataclass
class Agent:
    """One side's process, and what it said."""

    role: str
    proc: asyncio.subprocess.Process
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: Outcome | None = None
    recorded: asyncio.Event = field(default_factory=asyncio.Event)
    stderr: bytes = b""
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            try:
                message: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            if message.get("ready"):
                self.ready.set()
            if "outcome" in message and self.outcome is None:
                self.outcome = message["outcome"]
                self.recorded.set()
        # The process ended (or was killed): nothing more will come.
        self.recorded.set()
        self.ready.set()

    def send(self, line: str) -> None:
        if self.proc.stdin is not None and self.proc.returncode is None:
            with contextlib.suppress(Exception):
                self.proc.stdin.write(line.encode() + b"\n")

    def signal(self, signum: int) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signum)


async def start_agent(lab: Lab, ns: str, role: str, scenario: Scenario, scale: float) -> Agent:
    argv = lab.exec_argv(
        ns,
        sys.executable,
        "-m",
        "reality.agent",
        f"--scenario={scenario.name}",
        f"--role={role}",
        f"--scale={scale!r}",
        f"--host={SERVER_ADDR}",
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    agent = Agent(role, proc)
    agent.reader = asyncio.create_task(agent.read())
    return agent


LATE = 0.5
"""Unscaled seconds a fault may be applied late; a run whose faults were later fails
(and is tried again): its outcomes would answer another schedule."""


class Nft:
    """One ``nft -i`` in the router's namespace for the whole run: a rule then takes about
    a millisecond to apply, where a new ``nft`` process can take tens under load (a
    second and more of scenario time at scale 1/20)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.proc: asyncio.subprocess.Process | None = None
        self.tables = 0

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.lab.exec_argv(self.lab.router, "nft", "-i"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )

    async def block(self, verdict: str) -> str:
        """Apply ``verdict`` to every TCP segment the router forwards; return once it is
        in force, with the name of its table."""
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        self.tables += 1
        table = f"f{self.tables}"
        self.proc.stdin.write(
            f"add table inet {table}\n"
            f"add chain inet {table} filt {{ type filter hook forward priority 0 ; }}\n"
            f"add rule inet {table} filt meta l4proto tcp {verdict}\n"
            f"list table inet {table}\n".encode()
        )
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), 10.0)
            if not line:
                raise RunFailed("nft -i in the router ended")
            if f"table inet {table}" in line.decode():
                return table

    async def unblock(self, table: str) -> None:
        assert self.proc is not None and self.proc.stdin
        self.proc.stdin.write(f"delete table inet {table}\n".encode())

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 2.0)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


Action = Callable[[], Awaitable[None]]


def actions(fault: object, nft: Nft, server: Agent) -> list[tuple[float, Action]]:
    """What the real side does for one abstract fault: ``(unscaled time, action)``."""
    tables: dict[str, str] = {}

    async def block(verdict: str) -> None:
        tables["t"] = await nft.block(verdict)

    async def unblock() -> None:
        if "t" in tables:
            await nft.unblock(tables.pop("t"))

    async def kill() -> None:
        server.signal(signal.SIGKILL)

    async def stop() -> None:
        server.signal(signal.SIGSTOP)

    async def cont() -> None:
        server.signal(signal.SIGCONT)

    match fault:
        case Partition(at=at, duration=duration):
            out: list[tuple[float, Action]] = [(at, lambda: block("drop"))]
            if duration is not None:
                out.append((at + duration, unblock))
            return out
        case Forget(at=at, action=action):
            verdict = "drop" if action == "drop" else "reject with tcp reset"
            return [(at, lambda: block(verdict))]
        case Kill(at=at):
            return [(at, kill)]
        case Freeze(at=at, duration=duration):
            out = [(at, stop)]
            if duration is not None:
                out.append((at + duration, cont))
            return out
        case Signal(at=at, name=name):

            async def fire() -> None:
                server.send(f"fire {name}")

            return [(at, fire)]
        case PowerLoss(at=at):

            async def power_off() -> None:
                await block("drop")  # silence first: nothing the dying kernel sends gets out
                await kill()

            return [(at, power_off)]
        case _:
            raise TypeError(f"unknown fault {fault!r}")


async def run_once(scenario: Scenario, scale: float) -> dict[str, Outcome]:
    """One real run of ``scenario`` at ``scale``; each side's outcome (unscaled times)."""
    lab = Lab(scale)
    LABS[lab.tag] = lab
    await asyncio.to_thread(lab.setup)
    agents: list[Agent] = []
    nft = Nft(lab)
    try:
        await nft.start()
        return await _run(scenario, scale, lab, agents, nft)
    finally:
        await nft.stop()
        for agent in agents:
            agent.send("stop")
        for agent in agents:
            try:
                await asyncio.wait_for(agent.proc.wait(), 2.0)
            except TimeoutError:
                agent.signal(signal.SIGKILL)
                await agent.proc.wait()
            if agent.reader is not None:
                await agent.reader
        await asyncio.to_thread(lab.teardown)
        LABS.pop(lab.tag, None)


def teardown_all() -> None:
    """Tear down every lab still set up (after an interruption)."""
    for lab in list(LABS.values()):
        lab.teardown()
        LABS.pop(lab.tag, None)


async def _run(
    scenario: Scenario, scale: float, lab: Lab, agents: list[Agent], nft: Nft
) -> dict[str, Outcome]:
    loop = asyncio.get_running_loop()
    server = await start_agent(lab, lab.server, "server", scenario, scale)
    agents.append(server)
    client = await start_agent(lab, lab.client, "client", scenario, scale)
    agents.append(client)
    for agent in (server, client):
        try:
            await asyncio.wait_for(agent.ready.wait(), STARTUP)
        except TimeoutError:
            raise RunFailed(f"the {agent.role}'s agent did not start in {STARTUP:g} s") from None
        if agent.proc.returncode is not None:
            raise RunFailed(f"the {agent.role}'s agent exited: {await _stderr(agent)}")
    t0 = loop.time() + LEAD
    for agent in (server, client):
        agent.send(f"t0 {t0!r}")

    schedule = sorted(
        (at, action) for fault in scenario.faults for at, action in actions(fault, nft, server)
    )

    async def apply() -> None:
        for at, action in schedule:
            await asyncio.sleep(max(0.0, t0 + at * scale - loop.time()))
            await action()
            late = (loop.time() - t0) / scale - at
            if late > LATE:
                raise RunFailed(f"a fault due at {at:g} s was in force at {at + late:.2f} s")

    faults = asyncio.create_task(apply())

    async def settled() -> None:
        # Every fault has happened (a late one fails the run at once) and every side has
        # learned its fate: nothing to wait for.
        await faults
        await client.recorded.wait()
        if not scenario.killed:
            await server.recorded.wait()

    deadline = t0 + scenario.until * scale
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(settled(), max(0.0, deadline - loop.time()))
    if not faults.done():
        faults.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await faults
    elif faults.exception() is not None:
        raise RunFailed(f"the fault schedule failed: {faults.exception()}")
    return {
        "client": client.outcome or outcome.nothing("open"),
        "server": server.outcome or outcome.nothing("killed" if scenario.killed else "open"),
    }


async def _stderr(agent: Agent) -> str:
    if agent.proc.stderr is None:
        return ""
    data = await agent.proc.stderr.read()
    return data.decode(errors="replace").strip()[-2000:]
