"""Reconnect delay strategies for websockets' ``connect(..., reconnect_delays=...)``.

websockets 17 reconnects with ``async for websocket in connect(uri, ...)``. When an attempt
fails with a retryable error it calls ``reconnect_delays()`` once, with no argument, and then
takes ``next()`` of the generator it got before each new attempt; after a connection that
opened, it forgets that generator and starts a fresh one at the next failure. So a strategy is
a callable that takes nothing and returns a generator of delays in seconds. Each function
here checks its parameters at once (a clear ValueError, never a surprise deep in the retry
loop) and returns a :class:`Backoff`, which is exactly that callable::

    async for ws in connect("ws://server:8765", reconnect_delays=backoff.full_jitter(cap=30)):
        ...

Randomness comes from ``rng`` (a :class:`random.Random`) when one is given, otherwise from
the global :mod:`random` module at the moment of each draw, as websockets' own ``backoff``
does; inside a simulation that generator is seeded from the simulation's seed, so every run
with the same seed draws the same delays.

The jittered strategies are the ones of "Exponential Backoff And Jitter" (Marc Brooker, AWS
Architecture Blog, 2015). With attempt ``n`` counted from 0, base ``b`` and cap ``c``:

=====================  ===========================================================
strategy               delay before attempt ``n + 1``
=====================  ===========================================================
constant               ``d``
exponential            ``min(c, b * 2**n)``
full jitter            ``uniform(0, min(c, b * 2**n))``
equal jitter           ``t/2 + uniform(0, t/2)`` with ``t = min(c, b * 2**n)``
decorrelated jitter    ``min(c, uniform(b, 3 * previous))``, ``previous`` starting at ``b``
rfc6455                ``uniform(0, initial)``, then ``min(c, b * 2**(n-1))``
websockets_default     ``uniform(0, 5)``, then 3.1 s growing by 1.618 up to 90 s
=====================  ===========================================================
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Generator, Iterator
from typing import Protocol

import websockets.client

from wssim.core.params import seconds

__all__ = [
    "STRATEGIES",
    "Backoff",
    "constant",
    "decorrelated_jitter",
    "equal_jitter",
    "exponential",
    "full_jitter",
    "rfc6455",
    "websockets_default",
]


class _Uniform(Protocol):
    def __call__(self, a: float, b: float) -> float: ...


Delays = Generator[float, None, None]


class Backoff:
    """A reconnect strategy: call it to get a fresh generator of delays, in seconds.

    Pass it as ``connect(..., reconnect_delays=strategy)``. ``str(strategy)`` names it with
    its parameters, ``strategy.formula`` gives its formula, and ``strategy.take(n)`` lists
    its first ``n`` delays (``strategy.take(n, rng=random.Random(1))`` for a reproducible
    sample).

    Build one with the functions of this module (:func:`full_jitter` and friends) rather
    than directly: they check their parameters.
    """

    def __init__(
        self,
        name: str,
        formula: str,
        params: dict[str, float],
        generate: Callable[[_Uniform], Delays],
        rng: random.Random | None,
    ) -> None:
        self.name = name
        self.formula = formula
        self.params = dict(params)
        self.rng = rng
        self._generate = generate

    def __call__(self) -> Delays:
        """A new generator of delays, from the first one."""
        return self._generate(self._uniform(None))

    def take(self, n: int, rng: random.Random | None = None) -> list[float]:
        """The first ``n`` delays of a fresh generator.

        Args:
            n: how many delays.
            rng: draw from this generator instead of the strategy's own (handy for printing
                a reproducible sample outside a simulation).

        Raises:
            ValueError: if ``n`` is not a non-negative integer.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an integer >= 0, got {n!r}")
        return list(itertools.islice(self._generate(self._uniform(_check_rng(rng))), n))

    def _uniform(self, rng: random.Random | None) -> _Uniform:
        chosen = rng if rng is not None else self.rng
        # The global generator is looked up at each draw, not now: inside a simulation it
        # is the simulation's seeded stream only while the simulation runs.
        return chosen.uniform if chosen is not None else _global_uniform

    def __str__(self) -> str:
        if not self.params:
            return self.name
        params = ", ".join(
            f"{key} ×{value:g}" if key == "factor" else f"{key} {value:g} s"
            for key, value in self.params.items()
        )
        return f"{self.name} ({params})"

    def __repr__(self) -> str:
        params = ", ".join(f"{key}={value!r}" for key, value in self.params.items())
        return f"<Backoff {self.name}({params})>"


def _global_uniform(a: float, b: float) -> float:
    return random.uniform(a, b)


# Checking parameters


def _base_and_cap(base: object, cap: object) -> tuple[float, float]:
    b, c = seconds(base, "base", positive=True), seconds(cap, "cap", positive=True)
    if b > c:
        raise ValueError(f"base must be <= cap, got base={b:g} s above cap={c:g} s")
    return b, c


def _check_rng(rng: object) -> random.Random | None:
    if rng is not None and not isinstance(rng, random.Random):
        raise ValueError(f"rng must be a random.Random or None, got {rng!r}")
    return rng


def _doubling(base: float, cap: float) -> Iterator[float]:
    """``min(cap, base * 2**n)`` for n = 0, 1, 2...; stops doubling at the cap, so it never
    overflows however long the retries go on."""
    t = base
    while True:
        yield min(cap, t)
        if t < cap:
            t *= 2


# The strategies


def constant(delay: float = 1.0) -> Backoff:
    """The same delay before every attempt: ``delay``.

    ``constant(0)`` is the naive ``while True: connect()`` loop: it retries as fast as the
    network answers.

    Raises:
        ValueError: if ``delay`` is negative or not finite.
    """
    d = seconds(delay, "delay")

    def generate(uniform: _Uniform) -> Delays:
        while True:
            yield d

    return Backoff("constant", "d", {"delay": d}, generate, None)


def exponential(base: float = 1.0, cap: float = 60.0) -> Backoff:
    """Capped exponential backoff without jitter: ``min(cap, base * 2**n)``.

    Every client that lost its connection at the same instant retries at the same instants:
    the AWS study's clear loser.

    Raises:
        ValueError: if ``base`` or ``cap`` is not > 0 and finite, or ``base > cap``.
    """
    b, c = _base_and_cap(base, cap)

    def generate(uniform: _Uniform) -> Delays:
        yield from _doubling(b, c)

    return Backoff("exponential", "min(cap, base·2^n)", {"base": b, "cap": c}, generate, None)


def full_jitter(
    base: float = 1.0, cap: float = 60.0, *, rng: random.Random | None = None
) -> Backoff:
    """Full jitter: ``uniform(0, min(cap, base * 2**n))``.

    In the AWS study, the strategy that does the least work (fewest calls) for about the same
    completion time as the others.

    Raises:
        ValueError: if ``base`` or ``cap`` is not > 0 and finite, or ``base > cap``.
    """
    b, c = _base_and_cap(base, cap)

    def generate(uniform: _Uniform) -> Delays:
        for t in _doubling(b, c):
            yield uniform(0.0, t)

    formula = "uniform(0, min(cap, base·2^n))"
    return Backoff("full jitter", formula, {"base": b, "cap": c}, generate, _check_rng(rng))


def equal_jitter(
    base: float = 1.0, cap: float = 60.0, *, rng: random.Random | None = None
) -> Backoff:
    """Equal jitter: half the exponential delay, plus a random half: ``t/2 + uniform(0, t/2)``
    with ``t = min(cap, base * 2**n)``. Never retries sooner than ``t/2``.

    Raises:
        ValueError: if ``base`` or ``cap`` is not > 0 and finite, or ``base > cap``.
    """
    b, c = _base_and_cap(base, cap)

    def generate(uniform: _Uniform) -> Delays:
        for t in _doubling(b, c):
            yield t / 2 + uniform(0.0, t / 2)

    formula = "t/2 + uniform(0, t/2), t = min(cap, base·2^n)"
    return Backoff("equal jitter", formula, {"base": b, "cap": c}, generate, _check_rng(rng))


def decorrelated_jitter(
    base: float = 1.0, cap: float = 60.0, *, rng: random.Random | None = None
) -> Backoff:
    """Decorrelated jitter: ``min(cap, uniform(base, 3 * previous))``, ``previous`` starting
    at ``base``. Each delay depends on the one before, not on the attempt number.

    Raises:
        ValueError: if ``base`` or ``cap`` is not > 0 and finite, or ``base > cap``.
    """
    b, c = _base_and_cap(base, cap)

    def generate(uniform: _Uniform) -> Delays:
        delay = b
        while True:
            delay = min(c, uniform(b, delay * 3))
            yield delay

    formula = "min(cap, uniform(base, 3·previous))"
    return Backoff("decorrelated jitter", formula, {"base": b, "cap": c}, generate, _check_rng(rng))


def rfc6455(
    initial: float = 5.0,
    base: float = 1.0,
    cap: float = 60.0,
    *,
    rng: random.Random | None = None,
) -> Backoff:
    """RFC 6455 section 7.2.3: a random first delay, then truncated binary exponential backoff.

    The RFC asks that the first reconnect after an abnormal closure wait a random time ("a
    value chosen randomly between 0 and 5 seconds is a reasonable initial delay") and that
    later ones wait "increasingly longer amounts of time, using a method such as truncated
    binary exponential backoff"; it leaves the parameters to the client. Here: first
    ``uniform(0, initial)``, then ``min(cap, base * 2**(n-1))`` (``base``, ``2·base``...,
    truncated at ``cap``). The random first delay spreads the clients once; the doubling
    after it keeps that spread without adding more.

    Raises:
        ValueError: if ``initial`` is negative or not finite, ``base`` or ``cap`` not > 0
            and finite, or ``base > cap``.
    """
    first = seconds(initial, "initial")
    b, c = _base_and_cap(base, cap)

    def generate(uniform: _Uniform) -> Delays:
        yield uniform(0.0, first)
        yield from _doubling(b, c)

    formula = "uniform(0, initial), then min(cap, base·2^(n-1))"
    params = {"initial": first, "base": b, "cap": c}
    return Backoff("RFC 6455", formula, params, generate, _check_rng(rng))


def websockets_default(
    initial_delay: float = websockets.client.BACKOFF_INITIAL_DELAY,
    min_delay: float = websockets.client.BACKOFF_MIN_DELAY,
    max_delay: float = websockets.client.BACKOFF_MAX_DELAY,
    factor: float = websockets.client.BACKOFF_FACTOR,
    *,
    rng: random.Random | None = None,
) -> Backoff:
    """websockets' own default, ``websockets.client.backoff``, for comparison.

    ``random.random() * initial_delay`` first (the RFC 6455 random delay), then
    ``min_delay``, multiplied by ``factor`` while it stays below ``max_delay``, then
    ``max_delay`` for ever. Defaults are the library's (5 s, 3.1 s, 90 s, 1.618, or the
    ``WEBSOCKETS_BACKOFF_*`` environment variables read when websockets was imported).

    Without ``rng`` this calls the library's own generator, so it is the library's
    behaviour by construction; with ``rng`` it reproduces it drawing from ``rng``.

    Raises:
        ValueError: if a delay is negative or not finite, ``min_delay`` is not > 0,
            ``max_delay < min_delay``, or ``factor`` is not > 1.
    """
    initial = seconds(initial_delay, "initial_delay")
    low = seconds(min_delay, "min_delay", positive=True)
    high = seconds(max_delay, "max_delay", positive=True)
    if high < low:
        raise ValueError(f"max_delay must be >= min_delay, got {high:g} s < {low:g} s")
    if isinstance(factor, bool) or not isinstance(factor, int | float) or not factor > 1:
        raise ValueError(f"factor must be a finite number > 1, got {factor!r}")
    if not math.isfinite(factor):
        raise ValueError(f"factor must be a finite number > 1, got {factor!r}")
    library_backoff = websockets.client.backoff

    def generate(uniform: _Uniform) -> Delays:
        if uniform is _global_uniform:
            yield from library_backoff(initial, low, high, factor)
            return
        # websockets draws random.random() * initial_delay; uniform(0, x) is 0 + x * random()
        yield uniform(0.0, initial)
        delay = low
        while delay < high:
            yield delay
            delay *= factor
        while True:
            yield high

    params = {"initial_delay": initial, "min_delay": low, "max_delay": high, "factor": factor}
    formula = "uniform(0, initial_delay), then min_delay·factor^k up to max_delay"
    return Backoff("websockets default", formula, params, generate, _check_rng(rng))


STRATEGIES: dict[str, Callable[..., Backoff]] = {
    "constant": constant,
    "exponential": exponential,
    "full jitter": full_jitter,
    "equal jitter": equal_jitter,
    "decorrelated jitter": decorrelated_jitter,
    "RFC 6455": rfc6455,
    "websockets default": websockets_default,
}
"""Every strategy of this module, by the name its :class:`Backoff` carries."""
