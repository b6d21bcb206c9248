"""Benchmark: the reconnect storm of lesson 03, one strategy (or all six) per process.

Scenario (``wssim.lab.storm.storm``, the code lesson 03 runs): N clients, each on a host of its
own, join over 20 s; the server host crashes at t = 25 s and comes back at t = 35 s behind
admission control (100 handshakes per second, a bucket of 100, HTTP 503 past it); every
client reconnects with websockets' ``async for ws in connect(..., reconnect_delays=...)``
and the strategy under test. ``compression=None`` and ``ping_interval=None`` on both sides,
so the run ends as soon as every client is back.

What is checked (the run fails otherwise): every client came back; every attempt after the
crash was either refused while the server was down or reached the restarted server
(``attempts == refused_tcp + attempts_up``); every attempt reaching the restarted server
either got in (one per client) or got a 503 (``attempts_up == clients + refused_503``).
Reported: wall time, and the storm's own numbers (virtual, the same in every run).

Usage::

    .venv/bin/python -W error bench/bench_storm.py --clients 1000 --strategy "full jitter"
    .venv/bin/python -W error bench/bench_storm.py --clients 1000 --strategy all
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from _common import add_common_arguments, check_backoff_environment, emit, measure

from wssim.lab import storm
from wssim.toolkit import backoff

# The strategies of lesson 03, with its parameters.
LESSON = {
    "exponential": lambda: backoff.exponential(base=1, cap=60),
    "full jitter": lambda: backoff.full_jitter(base=1, cap=60),
    "equal jitter": lambda: backoff.equal_jitter(base=1, cap=60),
    "decorrelated jitter": lambda: backoff.decorrelated_jitter(base=1, cap=60),
    "RFC 6455": lambda: backoff.rfc6455(initial=5, base=1, cap=60),
    "websockets default": lambda: backoff.websockets_default(),
}


def scenario(n: int, seed: int, names: list[str]) -> dict[str, Any]:
    """Run the storm for each strategy in ``names``, check it, return facts."""
    facts: dict[str, Any] = {"clients": n, "strategies": len(names)}
    wall = 0.0
    events = 0
    for name in names:
        start = time.perf_counter()
        result = storm.storm(LESSON[name](), clients=n, seed=seed, rate=100)
        wall += time.perf_counter() - start
        assert result.all_back is not None, f"{name}: not every client came back"
        assert result.attempts == result.refused_tcp + result.attempts_up, name
        assert result.attempts_up == n + result.refused_503, name
        events += result.events
        if len(names) == 1:
            facts.update(
                attempts=result.attempts,
                attempts_up=result.attempts_up,
                refused_503=result.refused_503,
                peak_rate=result.peak_rate,
                all_back_s=result.all_back,
            )
    facts["events"] = events
    facts["wall_s"] = wall
    return facts


def describe(r: dict[str, Any]) -> str:
    lines = [f"storm, {r['clients']} clients, {r['strategies']} strategies: {r['events']} events"]
    if "attempts" in r:
        lines.append(
            f"{r['attempts']} attempts, {r['attempts_up']} at the restarted server "
            f"({r['refused_503']} refused with 503, peak {r['peak_rate']}/s); "
            f"all back {r['all_back_s']:.1f} s after the restart"
        )
    if r["mode"] == "time":
        lines.append(
            f"wall {r['wall_s']:.2f} s; peak RSS {r['maxrss_mb']:.0f} MiB "
            f"(before the scenario {r['rss_before_mb']:.0f} MiB)"
        )
    elif r["mode"] == "tracemalloc":
        lines.append(f"tracemalloc peak {r['tracemalloc_peak_mb']:.1f} MiB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000, help="number of clients (1000)")
    parser.add_argument("--seed", type=int, default=1, help="simulation seed (1)")
    parser.add_argument(
        "--strategy",
        default="full jitter",
        choices=[*LESSON, "all"],
        help="the strategy, or all six in turn as lesson 03 runs them (full jitter)",
    )
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    check_backoff_environment()
    names = list(LESSON) if args.strategy == "all" else [args.strategy]
    result = measure(args.mode, lambda: scenario(args.clients, args.seed, names))
    emit(result, args.json, describe)


if __name__ == "__main__":
    sys.exit(main())
