"""Comparing the simulation's outcome with the real runs', and the result dicts.

A result (one per scenario and side here; the protocol part has its own) is::

    {"scenario": "partition/client", "group": "network",
     "sim": {...outcome...}, "real": [{...outcome...}, ...], "agree": bool, "note": str}

They agree when every real run got the simulation's exception, close codes and OS cause,
and the median of the real times is within :func:`tolerance` of the simulated time. A
disagreement that is understood says so in its note, which then contains
``"known difference"`` (:func:`is_known`): the suite fails only on the others.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from reality.outcome import Outcome

Result = dict[str, Any]

ABSOLUTE = 0.5
"""Seconds (unscaled) of timing tolerance, at least: 25 ms of wall time at scale 1/20."""
RELATIVE = 0.05
"""Share of the simulated time allowed as timing tolerance, when more than :data:`ABSOLUTE`."""

CATEGORIES = ("exception", "code_received", "code_sent", "cause")


def tolerance(t: float) -> float:
    """How far a real median time may be from the simulated time ``t``: max(5 %, 0.5 s)."""
    return max(RELATIVE * abs(t), ABSOLUTE)


def median(times: Sequence[float]) -> float:
    return float(statistics.median(times))


def compare(sim: Outcome, real: Sequence[Outcome]) -> tuple[bool, str]:
    """Do the real outcomes agree with the simulated one? And if not, why not."""
    if not real:
        return False, "no real run"
    problems = []
    for key in CATEGORIES:
        values = [r[key] for r in real]
        if any(v != sim[key] for v in values):
            shown = ", ".join(str(v) for v in values)
            problems.append(f"{key}: sim {sim[key]}, real {shown}")
    t_sim = sim["time"]
    times = [r["time"] for r in real if r["time"] is not None]
    if t_sim is not None and times and len(times) == len(real):
        mid = median(times)
        if abs(mid - t_sim) > tolerance(t_sim):
            problems.append(
                f"time: sim {t_sim:.3f} s, real median {mid:.3f} s "
                f"({min(times):.3f}–{max(times):.3f}), beyond ±{tolerance(t_sim):.2f} s"
            )
    elif (t_sim is None) != (not times) and not problems:
        problems.append(f"time: sim {t_sim}, real {[r['time'] for r in real]}")
    return not problems, "; ".join(problems)


def result(
    scenario: str, group: str, sim: Outcome, real: Sequence[Outcome], known: str = ""
) -> Result:
    """The result dict of one comparison; ``known`` explains an expected disagreement."""
    agree, note = compare(sim, real)
    if not agree and known:
        note = f"{note}. Known difference: {known}"
    elif agree and known:
        note = f"agrees now; was a known difference: {known}"
    return {
        "scenario": scenario,
        "group": group,
        "sim": sim,
        "real": list(real),
        "agree": agree,
        "note": note,
    }


def is_known(result: Result) -> bool:
    """Is this disagreement an understood one (its note says ``known difference``)?"""
    return "known difference" in str(result.get("note", "")).lower()


def is_real_only(result: Result) -> bool:
    """Was only the real side run (``sim`` None: not simulated yet)? Such a row records the
    reference the simulation must match; it is no failure."""
    return result.get("sim") is None


def failures(results: Sequence[Result]) -> list[Result]:
    """The disagreements nobody explained: these fail the suite (real-only rows do not)."""
    return [r for r in results if not r["agree"] and not is_known(r) and not is_real_only(r)]
