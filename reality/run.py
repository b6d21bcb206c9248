"""Run the reality suite: every scenario in the simulation and on real Linux TCP, compared.

    python3 dev.py reality                       # everything, 3 real runs each, scale 1/20
    python3 dev.py reality -- --only partition   # one scenario (repeat --only for more)
    python3 dev.py reality -- --runs 5 --scale 0.1
    python3 dev.py reality -- --group browser --record   # headless Chromium only, merged
    python3 dev.py reality -- --group browser --sim-only --record   # the simulated tab
        # against the Chromium runs recorded in results.json (no Chromium needed)

A full run writes ``reality/results.json`` and the generated part of ``docs/FIDELITY.md``;
a run with ``--only`` writes nothing unless ``--record``. It prints a table and exits 1 if
a result disagrees without a known reason, 0 otherwise (also when the real side cannot run
here: it says what is missing).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.metadata
import importlib.util
import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

# Run as a script (python reality/run.py): make the repository importable.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import wssim  # noqa: E402
from reality import (  # noqa: E402
    browser_scenarios,
    browser_sim,
    compare,
    fidelity,
    netns,
    realside,
    simside,
)
from reality.compare import Result  # noqa: E402
from reality.outcome import Outcome, short  # noqa: E402
from reality.scenarios import SCENARIOS, Scenario  # noqa: E402

RESULTS = ROOT / "reality" / "results.json"
FIDELITY = ROOT / "docs" / "FIDELITY.md"

NOT_REPRODUCED = {
    "machine suspended (lesson 02)": (
        "a laptop's whole kernel sleeps, its TCP timers included; a network namespace "
        "shares the running kernel of this machine, and SIGSTOP stops only processes "
        "(that is the freeze scenarios)"
    ),
    "load shed (1013), a crashed browser's host (lesson 02)": (
        "application-level closes, or the crash scenarios with the roles swapped: nothing "
        "in them depends on the network stack beyond what crash-idle and shutdown check; "
        "the browser's side of a 503, a closed tab and a crashed page is in the browser group"
    ),
}


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python3 dev.py reality --", description=__doc__)
    p.add_argument("--runs", type=int, default=3, help="real runs per scenario (default 3)")
    p.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="run only this scenario"
    )
    p.add_argument(
        "--scale", type=float, default=0.05, help="real time per simulated second (0.05)"
    )
    p.add_argument("--jobs", type=int, default=2, help="short real runs at once (default 2)")
    p.add_argument(
        "--record", action="store_true", help="write results.json and FIDELITY.md with --only"
    )
    p.add_argument(
        "--group",
        action="append",
        default=[],
        choices=GROUPS,
        help="run only this group (repeatable); with --record, its results replace that "
        "group's in the recorded results.json, the others' stay as they were",
    )
    p.add_argument(
        "--sim-only",
        action="store_true",
        help="browser group: re-run the simulation only and compare it with the recorded "
        "Chromium runs of results.json (no Chromium needed)",
    )
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be >= 1")
    if not 0 < args.scale <= 1:
        p.error("--scale must be in (0, 1]")
    return args


GROUPS = ("network", "protocol", "browser")


def chosen(only: Sequence[str]) -> list[Scenario]:
    names = {s.name for s in SCENARIOS}
    browser = {s.name for s in browser_scenarios.SCENARIOS}
    unknown = [n for n in only if n not in names | browser]
    if unknown:
        raise SystemExit(
            f"unknown scenario {', '.join(unknown)}; there are: {', '.join(names | browser)}"
        )
    return [s for s in SCENARIOS if not only or s.name in only]


def chosen_browser(only: Sequence[str]) -> list[str]:
    """The browser scenarios among ``only`` (all of them when ``only`` is empty)."""
    return [s.name for s in browser_scenarios.SCENARIOS if not only or s.name in only]


def wanted_groups(args: argparse.Namespace) -> list[str]:
    """The groups this run covers: those of --group, else those --only names, else all."""
    if args.group:
        return [g for g in GROUPS if g in args.group]
    if args.only:
        network = {s.name for s in SCENARIOS}
        return [
            g
            for g, hit in (
                ("network", any(n in network for n in args.only)),
                ("browser", bool(chosen_browser(args.only))),
            )
            if hit
        ]
    return list(GROUPS)


async def real_runs(
    scenarios: Sequence[Scenario], runs: int, scale: float, jobs: int
) -> dict[str, list[dict[str, Outcome]]]:
    """Every real run; long scenarios (tag ``long``) all at once, short ones ``jobs`` at a
    time (their timings are the sensitive ones)."""
    short_slots = asyncio.Semaphore(jobs)
    out: dict[str, list[dict[str, Outcome]]] = {s.name: [] for s in scenarios}

    async def one(scenario: Scenario, k: int) -> None:
        slots = None if "long" in scenario.tags else short_slots
        if slots is not None:
            await slots.acquire()
        try:
            for attempt in (1, 2):
                try:
                    got = await realside.run_once(scenario, scenario.scale or scale)
                except realside.RunFailed as exc:
                    print(f"   {scenario.name} run {k}: {exc}", flush=True)
                    if attempt == 2:
                        return
                    continue
                out[scenario.name].append(got)
                print(
                    f"   {scenario.name} run {k}: client {short(got['client'])}, "
                    f"server {short(got['server'])}",
                    flush=True,
                )
                return
        finally:
            if slots is not None:
                slots.release()

    ordered = sorted(scenarios, key=lambda s: "long" not in s.tags)
    await asyncio.gather(*(one(s, k) for s in ordered for k in range(1, runs + 1)))
    return out


def results_for(
    scenario: Scenario, sim: dict[str, Outcome], real: list[dict[str, Outcome]]
) -> list[Result]:
    return [
        compare.result(
            f"{scenario.name}/{side}",
            "network",
            sim[side],
            [r[side] for r in real],
            scenario.known.get(side, ""),
        )
        for side in ("client", "server")
    ]


def table(results: Sequence[Result]) -> str:
    rows = [("scenario", "simulation", "Linux (median, range)", "agree")]
    for r in results:
        rows.append(
            (
                r["scenario"],
                fidelity._cell(r["sim"]),
                fidelity._real_cell(r["real"]),
                fidelity._verdict(r).replace("*", ""),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def protocol_results(runs: int) -> list[Result]:
    """The protocol-error part: lesson 05's catalogue on loopback (reality/protocol.py)."""
    from reality import protocol

    return [cast(Result, result) for result in protocol.run(runs)]


def meta(args: argparse.Namespace, lab_settings: dict[str, str], wall: float) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "websockets": importlib.metadata.version("websockets"),
        "wssim": wssim.__version__,
        "scale": f"1/{round(1 / args.scale):g}" if args.scale < 1 else "1",
        "runs": args.runs,
        "tolerance": fidelity.tolerance_text(),
        "kernel_settings": ", ".join(f"{k}={v}" for k, v in lab_settings.items()),
        "wall": f"{wall:.0f} s",
        "sim_latency": simside.LATENCY,
    }


def browser_results(args: argparse.Namespace) -> tuple[list[Result], dict[str, Any]]:
    """The browser group: the simulated tab (reality/browser_sim.py) against headless
    Chromium (reality/chromium.py), or against its recorded runs with ``--sim-only``."""
    from reality import chromium

    started = time.monotonic()
    names = chosen_browser(args.only)
    if args.sim_only:
        return recorded_browser_results(names)
    print(f"reality: {len(names)} browser scenarios, headless Chromium {args.runs}×", flush=True)
    rows, version = chromium.results(args.runs, names)
    rows = [browser_sim.result(browser_scenarios.by_name(r["scenario"]), r["real"]) for r in rows]
    info = {
        "chromium": version,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "runs": args.runs,
        "wall": f"{time.monotonic() - started:.0f} s",
    }
    return rows, info


def recorded_browser_results(names: Sequence[str]) -> tuple[list[Result], dict[str, Any]]:
    """The browser group against the Chromium runs recorded in results.json: the
    simulation is run again, Chromium is not."""
    old = json.loads(RESULTS.read_text(encoding="utf-8"))
    real = {r["scenario"]: r["real"] for r in old["results"] if r["group"] == "browser"}
    print(f"reality: {len(names)} browser scenarios, simulated, against recorded Chromium runs")
    rows = [browser_sim.result(browser_scenarios.by_name(n), real[n]) for n in names if n in real]
    return rows, dict(old["meta"].get("browser", {}))


def merged(
    new: dict[str, Any],
    groups: Sequence[str],
    *,
    new_meta: bool = False,
    partial: bool = False,
) -> dict[str, Any]:
    """``new`` (a run of ``groups`` only, or with ``partial`` of some of their scenarios)
    put into the recorded results: the rows of the other groups and scenarios, the meta of
    their run (unless ``new_meta``) and the scenarios' titles stay as recorded."""
    if not RESULTS.exists():
        return new
    old = json.loads(RESULTS.read_text(encoding="utf-8"))
    ran = {r["scenario"] for r in new["results"]} if partial else None
    results = [
        r
        for r in old["results"]
        if r["group"] not in groups or (ran is not None and r["scenario"] not in ran)
    ] + new["results"]
    meta = dict(new["meta"] if new_meta else old["meta"])
    if "browser" in new["meta"]:
        meta["browser"] = new["meta"]["browser"]
    elif "browser" in old["meta"]:
        meta["browser"] = old["meta"]["browser"]
    return {
        "meta": meta,
        "results": results,
        "scenarios": {**old.get("scenarios", {}), **new["scenarios"]},
        "not_reproduced": old.get("not_reproduced", NOT_REPRODUCED),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.list:
        for s in SCENARIOS:
            print(f"{s.name:16} {s.title}")
        for b in browser_scenarios.SCENARIOS:
            print(f"{b.name:16} (browser) {b.title}")
        return 0
    scenarios = chosen(args.only)
    groups = wanted_groups(args)
    browser_skipped = False
    if "network" not in groups:
        scenarios = []
    if "network" in groups or "protocol" in groups:
        why = netns.missing()
        if why is not None:
            print(f"reality: skipped: {why}.")
            groups = [g for g in groups if g == "browser" and (args.group or args.only)]
            scenarios = []
    if "browser" in groups and not args.sim_only:
        from reality import chromium

        why = chromium.missing()
        if why is not None:
            print(f"reality: browser group skipped: {why}.")
            groups.remove("browser")
            browser_skipped = True
    if not groups:
        return 0
    started = time.monotonic()
    results: list[Result] = []
    if scenarios:
        removed = netns.remove_leftovers()
        if removed:
            print(f"reality: removed {len(removed)} namespaces left by an earlier run")
        print(
            f"reality: {len(scenarios)} scenarios, simulation once, Linux {args.runs}× at "
            f"scale {args.scale:g}",
            flush=True,
        )
        sims = {s.name: simside.run(s) for s in scenarios}
        try:
            reals = asyncio.run(real_runs(scenarios, args.runs, args.scale, args.jobs))
        finally:
            realside.teardown_all()
        results = [r for s in scenarios for r in results_for(s, sims[s.name], reals[s.name])]
    if "protocol" in groups and (args.group or not args.only):
        results += protocol_results(args.runs)
    browser_info: dict[str, Any] = {}
    if "browser" in groups:
        rows, browser_info = browser_results(args)
        results += rows
    wall = time.monotonic() - started
    print()
    print(table(results))
    bad = compare.failures(results)
    known = [r for r in results if not r["agree"] and compare.is_known(r)]
    only = [r for r in results if compare.is_real_only(r)]
    print()
    print(
        f"{len(results)} results: {sum(r['agree'] for r in results)} agree, {len(known)} "
        f"known differences, {len(only)} real only, {len(bad)} unexplained; {wall:.0f} s"
    )
    for r in [*known, *bad]:
        print(f"- {r['scenario']}: {r['note']}")
    if (not args.only and not args.group) or args.record:
        settings = netns.Lab(args.scale).planned()
        titles = {s.name: s.title for s in scenarios}
        if "browser" in groups:
            titles.update(
                {
                    b.name: f"(browser) {b.title}"
                    for b in browser_scenarios.SCENARIOS
                    if b.name in chosen_browser(args.only)
                }
            )
        data: dict[str, Any] = {
            "meta": meta(args, settings, wall),
            "results": results,
            "scenarios": titles,
            "not_reproduced": NOT_REPRODUCED,
        }
        if browser_info:
            data["meta"]["browser"] = browser_info
        if args.only:  # a few scenarios, recorded: the others' rows stay as they were
            data = merged(data, groups, partial=True)
        elif args.group:
            data = merged(data, groups)
        elif browser_skipped and not args.only:  # a full run without Chromium: keep its rows
            data = merged(data, [g for g in GROUPS if g != "browser"], new_meta=True)
        RESULTS.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        fidelity.write(FIDELITY, data)
        print(f"wrote {RESULTS.relative_to(ROOT)} and {FIDELITY.relative_to(ROOT)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
