"""The browser group's simulated side: a :class:`BrowserScenario` in :class:`wssim.Simulation`.

The scenario's server runs on host ``server`` (through a :class:`reality.scenarios.Context`,
as :mod:`reality.simside` does), a :class:`wssim.browser.Tab` on host ``laptop`` runs the
page with ``SERVER_URL = "ws://server:<port>/"``, the tab's actions happen at their times,
until ``until``; then, as :func:`reality.chromium.run_scenario` does, the tab is closed and
the server has :data:`AFTER` seconds more to see it. The outcome has the Chromium side's
form: the page's lines (times from ``connect``) and the server's outcome (times from
``connect`` too).

:func:`compare` holds the rules of the group: the page's event sequence equal to a real
run's (codes, reasons and ``wasClean`` included), the server's outcome equal in
:data:`SERVER_KEYS`, times within :func:`reality.compare.tolerance` of the median over the
real runs that match. Where Chromium varied from run to run, matching any observed variant
is agreement.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import wssim
from reality import compare as rcompare
from reality.browser_scenarios import BrowserScenario
from reality.chromium import normalise
from reality.scenarios import PORT, Context
from wssim.browser import Tab

SEED = 0
LATENCY = 0.001
"""One-way latency, as in :mod:`reality.simside`: Chromium and the server share a host."""
START = 0.1
"""When the page's script runs (the server listens from 0)."""
AFTER = 0.1
"""After ``until``: the tab is closed, and the server sees it for this long."""

SERVER_KEYS = ("exception", "code_received", "code_sent", "cause", "reason", "status")


def run(scenario: BrowserScenario, *, seed: int = SEED) -> dict[str, Any]:
    """One simulated run of ``scenario``: ``{"page": [...], "server": {...}}``, or
    ``{"not_simulated": why}``."""
    ctx = Context("server", host="server", bind="server", port=PORT)
    ctx.t0 = START
    try:
        with wssim.Simulation(seed=seed, latency=LATENCY) as sim:
            if scenario.server is not None:
                sim.host("server").spawn(ctx.run(scenario.server))
            tab = Tab(sim.host("laptop"))
            source = f"var SERVER_URL = {json.dumps(f'ws://server:{PORT}/')};\n{scenario.page_js}"
            sim.at(START, tab.run_js, source)
            for action in scenario.actions:
                if action.kind == "navigate" and scenario.no_store:
                    sim.at(START + action.at, lambda: tab.navigate(bfcache=False))
                else:
                    sim.at(START + action.at, getattr(tab, action.kind))

            def end() -> None:
                if tab.state not in ("closed", "crashed"):
                    tab.close()

            sim.at(START + scenario.until, end)
            sim.run(until=START + scenario.until + AFTER)
            # What the page logs as the runner closes the tab at ``until`` never reaches
            # DevTools in Chromium (the session ends with the target): not compared.
            lines = [(t, text) for t, text in tab.console if t < START + scenario.until]
    except Exception as exc:  # the simulation cannot do it: say so
        return {"not_simulated": f"{type(exc).__name__}: {exc}"}
    server: dict[str, Any] = dict(ctx.outcome or {"exception": None, "cause": "no connection"})
    connect_at = next((t for t, text in lines if text == "connect"), None)
    if connect_at is not None and server.get("time") is not None:
        server["time"] = round(float(server["time"]) - (connect_at - START), 3)
    return {"page": normalise(lines), "server": server}


def _times_ok(t_sim: float, real: Sequence[float], what: str) -> str:
    mid = rcompare.median(real)
    if abs(mid - t_sim) > rcompare.tolerance(t_sim):
        return (
            f"{what} at {t_sim:.3f} s, real median {mid:.3f} s "
            f"({min(real):.3f}–{max(real):.3f}), beyond ±{rcompare.tolerance(t_sim):.2f} s"
        )
    return ""


def _sequence(got: dict[str, Any]) -> list[str]:
    return [p["line"] for p in got["page"]]


def compare(sim: dict[str, Any], real: Sequence[dict[str, Any]]) -> tuple[bool, str]:
    """Does the simulated outcome agree with the real runs? And if not, why not."""
    if "not_simulated" in sim:
        return False, f"not simulated: {sim['not_simulated']}"
    if not real:
        return False, "no real run"
    problems = []
    seq = _sequence(sim)
    same = [r for r in real if _sequence(r) == seq]
    if not same:
        variants = sorted({", ".join(_sequence(r)) for r in real})
        problems.append(f"page: sim {', '.join(seq)}; real {' | '.join(variants)}")
    else:
        for i, p in enumerate(sim["page"]):
            why = _times_ok(p["t"], [r["page"][i]["t"] for r in same], f"page {p['line']!r}")
            if why:
                problems.append(why)
    key = [sim["server"].get(k) for k in SERVER_KEYS]
    alike = [r for r in real if [r["server"].get(k) for k in SERVER_KEYS] == key]
    if not alike:
        for k in SERVER_KEYS:
            values = sorted({str(r["server"].get(k)) for r in real})
            if values != [str(sim["server"].get(k))]:
                problems.append(f"server {k}: sim {sim['server'].get(k)}, real {', '.join(values)}")
    else:
        t_sim = sim["server"].get("time")
        times = [r["server"]["time"] for r in alike if r["server"].get("time") is not None]
        if t_sim is not None and len(times) == len(alike):
            why = _times_ok(t_sim, times, "server outcome")
            if why:
                problems.append(why)
    return not problems, "; ".join(problems)


def result(scenario: BrowserScenario, real: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The result dict (schema of :mod:`reality.compare`) of ``scenario`` against ``real``."""
    sim = run(scenario)
    agree, note = compare(sim, real)
    known = scenario.known
    if not agree and known:
        note = f"{note}. Known difference: {known}"
    elif agree and known:
        note = f"agrees now; was a known difference: {known}"
    return {
        "scenario": scenario.name,
        "group": "browser",
        "sim": sim,
        "real": list(real),
        "agree": agree,
        "note": note,
    }
