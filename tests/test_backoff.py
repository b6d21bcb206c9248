"""Reconnect strategies: formulas, bounds, caps, exact sequences, and websockets' retry loop."""

from __future__ import annotations

import asyncio
import math
import random

import pytest
import websockets.client
from websockets.asyncio.client import connect

import wssim
from tests.helpers import echo_server
from wssim.toolkit import backoff


def test_constant_repeats_its_delay_and_zero_is_the_naive_loop() -> None:
    assert backoff.constant(2.5).take(4) == [2.5] * 4
    assert backoff.constant(0).take(3) == [0.0, 0.0, 0.0]


def test_exponential_doubles_up_to_the_cap_and_stays_there() -> None:
    assert backoff.exponential(base=0.5, cap=6).take(7) == [0.5, 1, 2, 4, 6, 6, 6]


def test_exponential_never_overflows_after_many_attempts() -> None:
    delays = backoff.exponential(base=1, cap=30)()
    for _ in range(5000):
        last = next(delays)
    assert last == 30.0


@pytest.mark.parametrize("make", [backoff.full_jitter, backoff.equal_jitter])
def test_jitter_stays_within_its_exponential_envelope(make: type) -> None:
    delays = make(base=1, cap=20, rng=random.Random(7)).take(400)
    for n, delay in enumerate(delays):
        t = min(20.0, 2.0**n)
        low = 0.0 if make is backoff.full_jitter else t / 2
        assert low <= delay <= t
    # Late delays sit under the cap and spread over the whole allowed range.
    late = delays[10:]
    assert max(late) > 19 and min(late) < (1 if make is backoff.full_jitter else 10.5)


def test_decorrelated_jitter_stays_between_base_and_cap_and_within_three_times_previous() -> None:
    delays = backoff.decorrelated_jitter(base=0.5, cap=10, rng=random.Random(3)).take(500)
    previous = 0.5
    for delay in delays:
        assert 0.5 <= delay <= 10
        assert delay <= 3 * previous
        previous = delay
    assert delays.count(10.0) > 0  # the cap is reached and applied


def test_exact_sequences_for_a_seed() -> None:
    stream = random.Random(1)
    r = [stream.random() for _ in range(3)]  # 0.134364, 0.847434, 0.763775
    full = backoff.full_jitter(rng=random.Random(1)).take(3)
    assert full == [1 * r[0], 2 * r[1], 4 * r[2]]
    decorrelated = backoff.decorrelated_jitter(rng=random.Random(1)).take(2)
    first = 1 + (3 - 1) * r[0]
    assert decorrelated == [first, 1 + (3 * first - 1) * r[1]]
    rounded = [round(d, 6) for d in backoff.full_jitter(rng=random.Random(1)).take(5)]
    assert rounded == [0.134364, 1.694867, 3.055098, 2.040552, 7.926961]
    rounded = [round(d, 6) for d in backoff.equal_jitter(rng=random.Random(1)).take(5)]
    assert rounded == [0.567182, 1.847434, 3.527549, 5.020276, 11.963481]
    rounded = [round(d, 6) for d in backoff.decorrelated_jitter(rng=random.Random(1)).take(5)]
    assert rounded == [1.268728, 3.378056, 7.976446, 6.848564, 10.683622]
    rounded = [round(d, 6) for d in backoff.rfc6455(rng=random.Random(1)).take(5)]
    assert rounded == [0.671821, 1.0, 2.0, 4.0, 8.0]


def test_rfc6455_waits_a_random_0_to_initial_first_then_doubles_to_the_cap() -> None:
    firsts = [backoff.rfc6455(initial=5, rng=random.Random(s)).take(1)[0] for s in range(200)]
    assert all(0 <= f <= 5 for f in firsts)
    assert min(firsts) < 0.2 and max(firsts) > 4.8
    assert backoff.rfc6455(base=2, cap=10, rng=random.Random(0)).take(6)[1:] == [2, 4, 8, 10, 10]


def test_websockets_default_is_the_library_schedule() -> None:
    random.seed(42)
    library = list(zip(range(12), websockets.client.backoff(), strict=False))
    random.seed(42)
    ours_global = backoff.websockets_default().take(12)
    ours_rng = backoff.websockets_default(rng=random.Random(42)).take(12)
    assert ours_global == [d for _, d in library] == ours_rng
    assert ours_rng[1:4] == [3.1, 3.1 * 1.618, 3.1 * 1.618 * 1.618]
    assert ours_rng[-1] == 90.0


def test_without_rng_the_global_random_is_read_at_each_draw() -> None:
    strategy = backoff.full_jitter(base=1, cap=8)
    delays = strategy()  # made before the seed: the draws still follow it
    random.seed(5)
    first = [next(delays) for _ in range(4)]
    random.seed(5)
    assert first == strategy.take(4)


def test_take_can_draw_from_another_generator() -> None:
    strategy = backoff.full_jitter(rng=random.Random(1))
    assert strategy.take(3, rng=random.Random(9)) == backoff.full_jitter().take(
        3, rng=random.Random(9)
    )
    assert strategy.take(3) == backoff.full_jitter(rng=random.Random(1)).take(3)
    assert backoff.websockets_default().take(2, rng=random.Random(1))[1] == 3.1


def test_each_call_starts_a_fresh_generator_from_the_first_delay() -> None:
    strategy = backoff.exponential(base=1, cap=8)
    one = strategy()
    assert [next(one) for _ in range(3)] == [1, 2, 4]
    assert next(strategy()) == 1


def test_names_and_formulas_are_printable() -> None:
    assert str(backoff.full_jitter(base=0.5, cap=30)) == "full jitter (base 0.5 s, cap 30 s)"
    assert str(backoff.websockets_default()) == (
        "websockets default (initial_delay 5 s, min_delay 3.1 s, max_delay 90 s, factor ×1.618)"
    )
    assert backoff.decorrelated_jitter().formula == "min(cap, uniform(base, 3·previous))"
    assert set(backoff.STRATEGIES) == {s().name for s in backoff.STRATEGIES.values()}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: backoff.exponential(cap=0), "cap must be > 0 seconds, got 0"),
        (lambda: backoff.full_jitter(cap=-1), "cap must be > 0 seconds, got -1"),
        (lambda: backoff.equal_jitter(base=0), "base must be > 0 seconds, got 0"),
        (lambda: backoff.decorrelated_jitter(base=10, cap=5), "base must be <= cap"),
        (lambda: backoff.rfc6455(base=100), "base must be <= cap"),
        (lambda: backoff.constant(math.inf), "delay must be a finite number of seconds"),
        (lambda: backoff.constant(-1), "delay must be >= 0 seconds, got -1"),
        (lambda: backoff.exponential(base=math.nan), "base must be a finite number"),
        (lambda: backoff.rfc6455(initial=-5), "initial must be >= 0 seconds"),
        (lambda: backoff.websockets_default(factor=1), "factor must be a finite number > 1"),
        (lambda: backoff.websockets_default(min_delay=9, max_delay=3), "max_delay must be >="),
        (lambda: backoff.full_jitter(rng=42), "rng must be a random.Random or None"),  # type: ignore[arg-type]
        (lambda: backoff.full_jitter().take(-1), "n must be an integer >= 0"),
    ],
)
def test_bad_parameters_raise_a_clear_value_error(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        call()  # type: ignore[operator]


def test_a_strategy_plugs_into_websockets_reconnect_loop_at_exact_times() -> None:
    """The server is down until t=10: the client's attempts follow the strategy exactly.

    Each refused attempt takes one round trip (20 ms); websockets then sleeps the next delay.
    """
    with wssim.Simulation(seed=0, latency=0.010) as sim:
        server = sim.host("server")
        opened: list[float] = []

        async def client() -> None:
            loop = asyncio.get_running_loop()
            strategy = backoff.exponential(base=1, cap=4)
            async for ws in connect("ws://server:8765", reconnect_delays=strategy):
                opened.append(loop.time())
                await ws.close()
                break

        sim.host("client").spawn(client())
        sim.at(10, server.spawn, echo_server())
        trace = sim.run(until=30)
    attempts = [e.time for e in trace.filter(kind="tcp", side="client") if e.text == "SYN"]
    # 0, then +0.02 (refused) +1, +0.02 +2, +0.02 +4, +0.02 +4 -> 11.08 s, after the restart
    assert attempts == pytest.approx([0.0, 1.02, 3.04, 7.06, 11.08])
    assert len(trace.filter(kind="tcp", contains="connection refused")) == 4
    assert opened == pytest.approx([11.08 + 0.04])
