"""The reconnect storm: exact numbers for a small N, derived by hand where there is no jitter."""

from __future__ import annotations

import asyncio

import pytest

import wssim
from tests.helpers import echo_server
from wssim import plot
from wssim.lab import storm
from wssim.toolkit import backoff

SMALL = {"clients": 20, "rate": 2, "join_over": 10, "crash_at": 12, "down": 5}


def test_exponential_backoff_without_jitter_comes_back_in_waves_at_exact_times() -> None:
    """20 clients, 2 handshakes/s (bucket of 2), no jitter: every client retries at the same
    instants, so each wave after the restart lets exactly 2 in.

    Each client sees the crash (FIN) at 12.010 and retries at once; a refused attempt takes
    one round trip (20 ms), a 503 two (40 ms). Attempts: 12.010, 13.030, 15.050 (down:
    refused), then 19.070, 27.110, 43.150, 75.190, 135.230 and every 60.04 s: ten waves of
    20, 18, ..., 2, the last one admitted at 435.430 and open at 435.470.
    """
    result = storm.storm(backoff.exponential(base=1, cap=60), **SMALL)
    assert result.attempts == 3 * 20 + (20 + 18 + 16 + 14 + 12 + 10 + 8 + 6 + 4 + 2)
    assert (result.refused_tcp, result.refused_503, result.attempts_up) == (60, 90, 110)
    assert result.peak_rate == 20
    assert result.all_back == pytest.approx(435.47 - 17)
    assert result.half_back == pytest.approx(135.27 - 17)  # the 10th client: 5th wave
    assert result.longest_outage == pytest.approx(435.47 - 12.01)
    waves = [i for i, n in enumerate(result.attempts_per_second) if n]
    assert waves == [0, 1, 3, 7, 15, 31, 63, 123, 183, 243, 303, 363, 423]
    assert result.connected[-1] == (435.47, 20)
    assert min(n for t, n in result.connected if t >= 12.01) == 0


def test_full_jitter_spreads_the_same_storm_for_a_seed() -> None:
    result = storm.storm(backoff.full_jitter(base=1, cap=60), seed=1, **SMALL)
    assert result == storm.storm(backoff.full_jitter(base=1, cap=60), seed=1, **SMALL)
    assert (result.attempts, result.refused_tcp, result.refused_503) == (108, 82, 6)
    assert (result.attempts_up, result.peak_rate) == (26, 5)
    assert result.all_back == pytest.approx(18.802004)
    assert result.longest_outage == pytest.approx(23.792004)
    assert storm.storm(backoff.full_jitter(), seed=2, **SMALL) != result
    assert result.trace is None  # not kept unless asked for


@pytest.mark.parametrize("strategy", [backoff.equal_jitter(), backoff.websockets_default()])
def test_every_attempt_is_accounted_for(strategy: backoff.Backoff) -> None:
    """After the crash, an attempt is refused while the server is down or reaches it once it
    is back; there, it gets in (once per client) or gets a 503."""
    result = storm.storm(strategy, keep_trace=True, **SMALL)
    assert result.trace is not None and len(result.trace) == result.events
    assert result.attempts == result.refused_tcp + result.attempts_up
    assert result.attempts_up == result.clients + result.refused_503
    assert sum(result.attempts_per_second) == result.attempts


def test_the_comparison_table_shows_the_numbers() -> None:
    results = [
        storm.storm(backoff.exponential(), **SMALL),
        storm.storm(backoff.websockets_default(), seed=1, **SMALL),
    ]
    table = str(storm.compare(results))
    lines = table.splitlines()
    assert lines[0].split("  ")[0] == "strategy"
    assert lines[2].split() == [
        "exponential", "170", "60", "110", "90", "20", "118.3", "s", "418.5", "s", "423.5", "s"
    ]  # fmt: skip
    assert lines[3].startswith("websockets default")


def test_everyone_must_be_in_before_the_crash() -> None:
    with pytest.raises(ValueError, match="only 11 of 40 clients were connected before the crash"):
        storm.storm(backoff.full_jitter(), clients=40, rate=1, join_over=10, crash_at=11)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clients": 0}, "clients must be an integer >= 1, got 0"),
        ({"down": -1}, "down must be a finite number of seconds >= 0, got -1"),
        ({"crash_at": 5}, "crash_at must be a finite time after join_over=20.0 s, got 5"),
        ({"rate": 0}, "rate must be a finite number > 0"),
        ({"max_connections": 0}, "max_connections must be an integer >= 1"),
    ],
)
def test_bad_parameters_raise_a_clear_value_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        storm.storm(backoff.full_jitter(), **kwargs)  # type: ignore[arg-type]


def test_a_strategy_must_be_callable() -> None:
    with pytest.raises(ValueError, match="strategy must be callable"):
        storm.storm([1.0, 2.0])  # type: ignore[arg-type]


def test_reboot_restarts_the_host_and_starts_its_processes_again() -> None:
    with wssim.Simulation(seed=0, latency=0.010) as sim:
        server = sim.host("server")
        server.spawn(echo_server())
        sim.at(1, server.crash)
        sim.at(2, storm.reboot, server, echo_server)
        answers: list[float] = []

        async def client() -> None:
            from websockets.asyncio.client import connect

            await asyncio.sleep(3)
            async with connect("ws://server:8765") as ws:
                await ws.send("hi")
                await ws.recv()
                answers.append(asyncio.get_running_loop().time())

        sim.host("client").spawn(client())
        trace = sim.run(until=5)
    assert server.boot == 1
    assert [e.text for e in trace.filter(kind="host")] == ["restart"]
    assert answers == [pytest.approx(3.06)]


def test_plots_draw_one_line_per_strategy() -> None:
    results = [storm.storm(backoff.exponential(), **SMALL)]
    ax = plot.storm_attempts(results, until=60)
    # One line per strategy; the others (the server's return) are not in the legend.
    labels = [line.get_label() for line in ax.get_lines()]
    assert [label for label in labels if not label.startswith("_")] == ["exponential"]
    assert [s.label for s in plot.drawn(ax).series] == ["exponential"]
    assert ax.get_xlim() == (0, 60)
    ax = plot.storm_connected(results)
    assert ax.get_lines()[0].get_ydata()[-1] == 20
