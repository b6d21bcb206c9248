"""Checking parameters, with one wording for every error.

A learner who passes a bad value gets a ValueError that names the parameter and the
allowed range, never a hang or a traceback from deep inside asyncio.
"""

from __future__ import annotations

import math

__all__ = ["count", "seconds"]


def seconds(value: object, parameter: str, *, positive: bool = False) -> float:
    """Return ``value`` as a finite number of seconds, >= 0 (or > 0 when ``positive``).

    Raises:
        ValueError: naming ``parameter`` and what it must be.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{parameter} must be a finite number of seconds, got {value!r}")
    if value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{parameter} must be {bound} seconds, got {value!r}")
    return float(value)


def count(value: object, parameter: str, *, minimum: int = 0) -> int:
    """Return ``value`` as an integer >= ``minimum``.

    Raises:
        ValueError: naming ``parameter`` and what it must be.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{parameter} must be an integer >= {minimum}, got {value!r}")
    return value
