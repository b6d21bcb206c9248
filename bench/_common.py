"""Shared plumbing for the benchmarks: one measurement per process, machine facts, stats.

Every benchmark script measures one thing per process, in one of three modes:

- ``time``: wall time (``time.perf_counter``) of the scenario, and the process's peak
  resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) afterwards, next to
  the RSS measured just before the scenario started (interpreter and imports);
- ``tracemalloc``: the peak of Python allocations during the scenario (``tracemalloc`` is
  started after the imports, so the peak is the scenario's own). It slows Python down
  2-4x, so its wall time is never reported;
- ``profile``: cProfile of the scenario, top functions by cumulative and internal time.

``bench/run.py`` starts a fresh interpreter for every measurement, so a run never inherits
another's heap, caches or high-water mark. A script run by hand prints its result as text;
with ``--json`` it prints one JSON object on its last line for ``run.py`` to read.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

__all__ = [
    "add_common_arguments",
    "buckets",
    "emit",
    "machine",
    "measure",
    "print_profile",
    "rss_mb",
    "summary",
]


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident set size of this process now, in MiB (from /proc; 0.0 if unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except OSError:
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mode",
        choices=("time", "tracemalloc", "profile"),
        default="time",
        help="what to measure in this process (default: time)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON result line")


def measure(mode: str, scenario: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``scenario()`` once under ``mode``; return its own results plus the measurements.

    ``scenario`` returns a dict of facts (counts, virtual times, sub-timings) after checking
    its own result. If it reports ``wall_s`` itself (create, run, close; not its checks),
    that replaces the wall time of the whole call.
    """
    result: dict[str, Any] = {"mode": mode}
    if mode == "time":
        result["rss_before_mb"] = round(current_rss_mb(), 1)
        with GcTimer() as gc_timer:
            start = time.perf_counter()
            facts = scenario()
            # A scenario that times itself (from creating the simulation to closing it,
            # leaving out its checks of the result) reports wall_s; else the whole call counts.
            result["wall_s"] = time.perf_counter() - start
        result["maxrss_mb"] = round(rss_mb(), 1)
        result["gc_s"] = gc_timer.total
        result["gc_full_s"] = gc_timer.seconds[2]
        result["gc_full_count"] = gc_timer.count[2]
    elif mode == "tracemalloc":
        tracemalloc.start()
        tracemalloc.reset_peak()
        facts = scenario()
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result["tracemalloc_peak_mb"] = round(peak / 2**20, 1)
        result["tracemalloc_end_mb"] = round(current / 2**20, 1)
    elif mode == "profile":
        profiler = cProfile.Profile()
        profiler.enable()
        facts = scenario()
        profiler.disable()
        result["profile"] = profile_text(profiler)
        result["buckets"] = buckets(profiler)
    else:  # pragma: no cover - argparse restricts the choices
        raise ValueError(mode)
    if mode != "time":
        facts.pop("wall_s", None)
    result.update(facts)
    import wssim

    result["wssim_file"] = wssim.__file__  # which copy was measured (see run.py --at)
    return result


class GcTimer:
    """Time spent in the cyclic garbage collector, per generation, while the block runs."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            generation = info["generation"]
            self.seconds[generation] += time.perf_counter() - self._started
            self.count[generation] += 1

    @property
    def total(self) -> float:
        return sum(self.seconds)

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self._callback)


def emit(result: dict[str, Any], as_json: bool, describe: Callable[[dict[str, Any]], str]) -> None:
    if as_json:
        print(json.dumps(result))
    else:
        print(describe(result))
        if "profile" in result:
            print(result["profile"])
            print(format_buckets(result["buckets"]))


# Profiles


def profile_text(profiler: cProfile.Profile, top: int = 15) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs()
    for key, title in (("cumulative", "cumulative time"), ("tottime", "internal time (tottime)")):
        out.write(f"\n--- top {top} functions by {title} ---\n")
        stats.sort_stats(key).print_stats(top)
    # Keep only the table rows and headers: pstats prints a preamble each time.
    lines = [
        line.rstrip()
        for line in out.getvalue().splitlines()
        if line.strip()
        and "function calls" not in line
        and "Ordered by" not in line
        and "List reduced" not in line
    ]
    return "\n".join(lines)


def _bucket_of(filename: str, funcname: str) -> str:
    f = filename.replace("\\", "/")
    if "/wssim/" in f:
        return "wssim (simulator, recorder, wire tap)"
    if "/websockets/asyncio/" in f:
        return "websockets asyncio layer (Connection, client, server)"
    if "/websockets/" in f:
        return "websockets Sans-I/O (protocol, frames, http11, headers)"
    if "/logging/" in f or f in ("<frozen posixpath>", "<frozen genericpath>"):
        # os.path is called here by logging.LogRecord and Logger.findCaller only.
        return "logging (websockets' DEBUG records; with the os.path calls it makes)"
    if "/asyncio/" in f:
        return "asyncio (event loop, tasks, futures, timers)"
    if f == "~":
        if "heap" in funcname:
            return "asyncio (event loop, tasks, futures, timers)"
        return "builtins (C functions)"
    if "/bench/" in f:
        return "benchmark script"
    return "other Python (stdlib: random, uuid, contextvars...)"


def buckets(profiler: cProfile.Profile) -> dict[str, float]:
    """Internal time (tottime) summed per package: where the time really goes."""
    stats = pstats.Stats(profiler)
    total: dict[str, float] = {}
    for (filename, _line, funcname), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        key = _bucket_of(filename, funcname)
        total[key] = total.get(key, 0.0) + tottime
    return dict(sorted(total.items(), key=lambda kv: -kv[1]))


def format_buckets(totals: dict[str, float]) -> str:
    grand = sum(totals.values()) or 1.0
    lines = ["--- internal time by package ---"]
    for name, seconds in totals.items():
        lines.append(f"{seconds:8.3f} s  {100 * seconds / grand:5.1f} %  {name}")
    return "\n".join(lines)


def print_profile(result: dict[str, Any]) -> None:
    print(result["profile"])
    print(format_buckets(result["buckets"]))


# Machine and statistics


def machine() -> dict[str, Any]:
    """The facts that make a benchmark result comparable with another one."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ram_gb = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    ram_gb = round(int(line.split()[1]) / 2**20, 1)
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count()
    import websockets

    return {
        "cpu": cpu,
        "cores": cores,
        "ram_gb": ram_gb,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "websockets": websockets.__version__,
        "os": f"{platform.system()} {platform.release()}",
    }


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def check_backoff_environment() -> None:
    """websockets reads its backoff defaults from the environment: insist on the defaults."""
    for name in ("INITIAL_DELAY", "MIN_DELAY", "MAX_DELAY", "FACTOR"):
        variable = f"WEBSOCKETS_BACKOFF_{name}"
        if variable in os.environ:
            sys.exit(f"unset {variable}: the benchmarks measure websockets' default backoff")
