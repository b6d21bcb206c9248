"""The simulated side: a scenario in :class:`wssim.Simulation`, unscaled, in virtual time.

Hosts ``client`` and ``server``, :data:`LATENCY` apart; the simulation's TCP has Linux's
defaults (RTO from 200 ms to 120 s, ``tcp_retries2 = 15``). It is deterministic: one run
says it all.
"""

from __future__ import annotations

import wssim
from reality import outcome
from reality.outcome import Outcome
from reality.scenarios import (
    Context,
    Forget,
    Freeze,
    Kill,
    Partition,
    PowerLoss,
    Scenario,
    Signal,
)
from wssim import faults

LATENCY = 0.001
"""One-way latency in the simulation, seconds: about what two veth hops through a router
namespace take (tens of microseconds) once multiplied back by 20."""

SEED = 0


def run(scenario: Scenario, *, seed: int = SEED) -> dict[str, Outcome]:
    """Run ``scenario`` in a simulation; return each side's outcome."""
    client = Context("client", host="server", bind="server")
    server = Context("server", host="server", bind="server")
    with wssim.Simulation(seed=seed, latency=LATENCY) as sim:
        sim.host("server").spawn(server.run(scenario.server))
        sim.host("client").spawn(client.run(scenario.client))
        for fault in scenario.faults:
            apply(sim, fault, server)
        sim.run(until=scenario.until)
    return {
        "client": client.outcome or outcome.nothing("open"),
        "server": server.outcome or outcome.nothing("killed" if scenario.killed else "open"),
    }


def apply(sim: wssim.Simulation, fault: object, server: Context) -> None:
    """Schedule one abstract fault in ``sim``."""
    match fault:
        case Partition(at=at, duration=duration):
            sim.inject(faults.Partition("client", "server"), at=at, duration=duration)
        case Forget(at=at, action=action):
            # Flows idle for `at` seconds are forgotten: the scenarios are idle from the
            # handshake on, so the flow is forgotten at about `at`.
            sim.inject(faults.IdleTimeout("client", "server", timeout=at, action=action), at=0)
        case Kill(at=at):
            # Host.crash, not inject(Crash): it must also kill a frozen process, which then
            # dies without reading what waits for it.
            sim.at(at, sim.host("server").crash)
        case Freeze(at=at, duration=duration):
            sim.inject(faults.Freeze("server"), at=at, duration=duration)
        case Signal(at=at, name=name):
            sim.at(at, server.fire, name)
        case PowerLoss(at=at):
            sim.inject(faults.PowerLoss("server"), at=at)
        case _:
            raise TypeError(f"unknown fault {fault!r}")
