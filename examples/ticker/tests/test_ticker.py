"""The ticker under faults: a server restart, clients that leave, a dropped connection,
and a seeded chaos schedule.

Each test runs the real server and client modules on simulated hosts (the ``sim`` fixture
of wssim's pytest plugin), in virtual time: a minute of ticks takes a fraction of a second.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from wssim import Simulation, faults
from wssim.lab.scorecard import MessageLog
from wssim.testing import (
    assert_messages_intact,
    assert_no_handler_failed,
    assert_nothing_held,
    assert_reconnected,
)
from wssim.testing.chaos import Chaos
from wssim.toolkit.resources import Ledger

URI = "ws://server:8765"
CLIENTS = ("alice", "bob", "carol")


class Running(SimpleNamespace):
    market: Any
    log: MessageLog
    clients: dict[str, Any]


def start(sim: Simulation, app: SimpleNamespace, *, subscribers: Any = None) -> Running:
    """The ticker on host "server" (restarted with its host), a client on each of CLIENTS;
    every tick a client shows is logged as delivered on its stream."""
    market = app.server.Market()
    # A new Ticker each boot: what the process held in memory dies with it.
    sim.host("server").service(
        lambda: app.server.Ticker(market, subscribers=subscribers).run(), name="ticker"
    )
    log = MessageLog()
    clients = {}
    for name in CLIENTS:

        def show(tick: dict[str, Any], name: str = name) -> None:
            log.delivered(name, tick["id"])

        clients[name] = app.client.TickerClient(URI, show)
        sim.host(name).spawn(clients[name].run(), name="ticker-client")
    return Running(market=market, log=log, clients=clients)


def every_tick_sent(running: Running) -> None:
    """Each client should show every tick published (they all subscribe before the first)."""
    for name in CLIENTS:
        for tick in running.market.ticks:
            running.log.sent(name, tick["id"])


def test_clients_reconnect_after_a_server_restart(sim: Simulation, app: SimpleNamespace) -> None:
    start(sim, app)
    sim.inject(faults.Crash("server"), at=10, duration=5)  # back at t=15
    sim.run(until=45)
    assert_reconnected(sim.trace, CLIENTS, within=30)


def test_subscriptions_end_when_clients_leave(sim: Simulation, app: SimpleNamespace) -> None:
    ledger = Ledger(sim)
    running = start(sim, app, subscribers=ledger.registry("subscription"))
    for name, client in running.clients.items():
        sim.at(10, lambda name=name, client=client: sim.host(name).spawn(client.stop()))
    sim.run(until=15)
    assert_nothing_held(ledger, sim.trace, server="server")


def test_no_tick_lost_across_a_dropped_connection(sim: Simulation, app: SimpleNamespace) -> None:
    running = start(sim, app)
    # A middlebox resets alice's connection (both ends get an RST): she reconnects.
    sim.inject(faults.ResetPeer("alice", "server"), at=10.5, duration=0.5)
    sim.at(30, running.market.close)
    sim.run(until=40)
    every_tick_sent(running)
    assert_messages_intact(running.log)


@pytest.mark.wssim(seeds=3)
def test_survives_chaos(chaos: Chaos, app: SimpleNamespace) -> None:
    def ticker(sim: Simulation) -> Running:
        running = start(sim, app)
        sim.at(180, running.market.close)  # ten seconds before the end of the quiet phase
        return running

    def check(sim: Simulation, running: Running) -> None:
        every_tick_sent(running)
        assert_messages_intact(running.log)
        assert_no_handler_failed(sim.trace)

    chaos.run(ticker, clients=CLIENTS, start=10, end=130, quiet=60, check=check)
