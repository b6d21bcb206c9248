"""Run every benchmark, each measurement in a fresh interpreter, and print medians.

Usage::

    .venv/bin/python bench/run.py            # the full set (tens of minutes, see README)
    .venv/bin/python bench/run.py --quick    # a fast subset (about a minute)
    .venv/bin/python bench/run.py --only restart --save bench/results.json
    .venv/bin/python bench/run.py --at HEAD  # wssim as committed, not the working tree

Every measurement runs as ``python -W error bench/<script>.py --json ...`` in a subprocess of
its own, so runs never share a heap, a cache or a peak-RSS high-water mark, and any warning
fails the run. Wall time and peak RSS come from ``--mode time`` runs; the tracemalloc peak
from separate ``--mode tracemalloc`` runs (tracemalloc slows Python 2-4x). A measurement
that takes longer than ``--timeout`` seconds is killed and reported as such; the remaining
repeats of that configuration are skipped.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine, summary  # noqa: E402


@dataclass
class Config:
    """One benchmark configuration, measured ``repeat`` times per mode."""

    name: str
    script: str
    args: list[str]
    repeat_time: int
    repeat_tracemalloc: int
    targets: dict[str, tuple[str, float]] = field(default_factory=dict)
    """metric -> ("<" or "<=", bound): what DESIGN.md asks for."""


def plan(quick: bool) -> list[Config]:
    if quick:
        return [
            Config(
                "keepalive 24 h",
                "bench_keepalive.py",
                ["--hours", "24"],
                3,
                1,
                {"wall_s": ("<", 1.0)},
            ),
            Config("restart 300 clients", "bench_restart.py", ["--clients", "300"], 3, 1),
            Config("storm 300 clients, full jitter", "bench_storm.py", ["--clients", "300"], 3, 0),
            Config(
                "handshake",
                "bench_handshake.py",
                ["--count", "500", "--rounds", "3"],
                3,
                0,
                {"ratio": ("<=", 2.0)},
            ),
        ]
    return [
        Config(
            "keepalive 24 h", "bench_keepalive.py", ["--hours", "24"], 5, 3, {"wall_s": ("<", 1.0)}
        ),
        Config(
            "handshake",
            "bench_handshake.py",
            ["--count", "2000", "--rounds", "3"],
            5,
            0,
            {"ratio": ("<=", 2.0)},
        ),
        Config("restart 1,000 clients", "bench_restart.py", ["--clients", "1000"], 5, 1),
        Config("restart 3,000 clients", "bench_restart.py", ["--clients", "3000"], 3, 1),
        Config(
            "restart 10,000 clients",
            "bench_restart.py",
            ["--clients", "10000"],
            3,
            1,
            {"wall_s": ("<", 30.0), "maxrss_mb": ("<", 1024.0)},
        ),
        Config(
            "storm 1,000 clients, full jitter",
            "bench_storm.py",
            ["--clients", "1000", "--strategy", "full jitter"],
            3,
            1,
        ),
        Config(
            "storm 1,000 clients, exponential",
            "bench_storm.py",
            ["--clients", "1000", "--strategy", "exponential"],
            3,
            0,
        ),
        Config(
            "storm 1,000 clients, all six strategies (lesson 03)",
            "bench_storm.py",
            ["--clients", "1000", "--strategy", "all"],
            3,
            0,
        ),
    ]


# What to print for each script: (metric, label, format)
METRICS: dict[str, list[tuple[str, str, str]]] = {
    "bench_keepalive.py": [
        ("wall_s", "wall time, s", "{:.3f}"),
        ("gc_s", "  of which cyclic GC, s", "{:.3f}"),
        ("maxrss_mb", "peak RSS, MiB", "{:.0f}"),
        ("rss_before_mb", "RSS before the scenario, MiB", "{:.0f}"),
        ("tracemalloc_peak_mb", "tracemalloc peak, MiB", "{:.1f}"),
        ("pings", "PING frames (checked)", "{:.0f}"),
        ("events", "trace events", "{:.0f}"),
    ],
    "bench_restart.py": [
        ("wall_s", "wall time, s", "{:.2f}"),
        ("run_s", "  of which sim.run() + trace, s", "{:.2f}"),
        ("close_s", "  of which sim.close(), s", "{:.2f}"),
        ("gc_s", "  of which cyclic GC, s", "{:.2f}"),
        ("gc_full_count", "  full (gen 2) collections", "{:.0f}"),
        ("maxrss_mb", "peak RSS, MiB", "{:.0f}"),
        ("rss_before_mb", "RSS before the scenario, MiB", "{:.0f}"),
        ("tracemalloc_peak_mb", "tracemalloc peak, MiB", "{:.1f}"),
        ("last_back_at", "last client back at (virtual s)", "{:.3f}"),
        ("back_median_s", "median time back after restart, s", "{:.3f}"),
        ("refused", "refused connection attempts", "{:.0f}"),
        ("events", "trace events", "{:.0f}"),
    ],
    "bench_storm.py": [
        ("wall_s", "wall time, s", "{:.2f}"),
        ("gc_s", "  of which cyclic GC, s", "{:.2f}"),
        ("maxrss_mb", "peak RSS, MiB", "{:.0f}"),
        ("tracemalloc_peak_mb", "tracemalloc peak, MiB", "{:.1f}"),
        ("attempts", "attempts after the crash", "{:.0f}"),
        ("attempts_up", "  of which at the restarted server", "{:.0f}"),
        ("refused_503", "  of which refused with 503", "{:.0f}"),
        ("peak_rate", "peak attempts/s at the restarted server", "{:.0f}"),
        ("all_back_s", "all back after the restart (virtual s)", "{:.1f}"),
        ("events", "trace events", "{:.0f}"),
    ],
    "bench_handshake.py": [
        ("sansio_open_us", "(a) Sans-I/O opening handshake, us", "{:.1f}"),
        ("sansio_open_close_us", "(a) Sans-I/O open + close, us", "{:.1f}"),
        ("wssim_us", "(b) wssim connect+open+close, us", "{:.1f}"),
        ("loopback_us", "(c) real loopback TCP, us", "{:.1f}"),
        ("ratio", "ratio (b)/(a) open+close", "{:.1f}"),
        ("ratio_open_only", "ratio (b)/(a) opening only", "{:.1f}"),
        ("ratio_loopback", "ratio (c)/(a) open+close", "{:.1f}"),
        ("ratio_wssim_loopback", "ratio (b)/(c) wssim / loopback", "{:.2f}"),
        ("events_per_conn", "trace events per connection", "{:.0f}"),
    ],
}


def run_one(
    config: Config, mode: str, timeout: float, snapshot: Path | None = None
) -> tuple[dict[str, Any] | None, str]:
    cmd = [
        sys.executable,
        "-W",
        "error",
        str(HERE / config.script),
        *config.args,
        "--mode",
        mode,
        "--json",
    ]
    env = dict(os.environ, PYTHONHASHSEED="0")
    if snapshot is not None:
        # The snapshot's wssim comes first on the path, ahead of the editable install.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(snapshot), env.get("PYTHONPATH")]))
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None, f"killed after {timeout:g} s (timeout)"
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or proc.stderr.strip():
        # -W error turns warnings into failures; anything on stderr is a failure too.
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-15:]
        return None, "failed:\n      " + "\n      ".join(tail)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_s"] = elapsed
    if snapshot is not None and not result["wssim_file"].startswith(str(snapshot)):
        return None, f"measured {result['wssim_file']}, not the snapshot in {snapshot}"
    return result, ""


def measure_config(config: Config, timeout: float, snapshot: Path | None) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"time": [], "tracemalloc": []}
    problems: list[str] = []
    for mode, repeat in (("time", config.repeat_time), ("tracemalloc", config.repeat_tracemalloc)):
        if mode == "tracemalloc" and problems:
            # tracemalloc runs are 2-4x slower: after a failed or timed-out time run, skip.
            problems.append("tracemalloc runs skipped")
            break
        for i in range(repeat):
            print(f"  {config.name}: {mode} run {i + 1}/{repeat} ...", end="", flush=True)
            result, problem = run_one(config, mode, timeout, snapshot)
            if result is None:
                print(f" {problem}")
                problems.append(f"{mode} run {i + 1}: {problem}")
                break  # the next repeats would fail or time out the same way
            shown = result.get("wall_s", result.get("tracemalloc_peak_mb"))
            unit = "s" if "wall_s" in result else "MiB"
            print(f" {shown:.3f} {unit} (process {result['process_s']:.1f} s)")
            runs[mode].append(result)
    stats: dict[str, dict[str, float]] = {}
    for metric, _label, _fmt in METRICS[config.script]:
        # Timings from the time runs only (tracemalloc slows everything down); facts that
        # both modes report (counts, virtual times) from the time runs when there are any.
        for mode in ("time", "tracemalloc"):
            values = [r[metric] for r in runs[mode] if metric in r]
            if values:
                stats[metric] = summary(values)
                break
    return {
        "config": config.name,
        "args": config.args,
        "stats": stats,
        "problems": problems,
        "runs": runs,
    }


def verdict(config: Config, stats: dict[str, dict[str, float]]) -> dict[str, str]:
    out = {}
    for metric, (op, bound) in config.targets.items():
        if metric not in stats:
            out[metric] = f"target {op} {bound:g}: not measured"
            continue
        value = stats[metric]["median"]
        ok = value < bound if op == "<" else value <= bound
        out[metric] = f"target {op} {bound:g}: {'met' if ok else 'MISSED'}"
    return out


def print_table(config: Config, measured: dict[str, Any]) -> None:
    stats = measured["stats"]
    verdicts = verdict(config, stats)
    print(f"\n{config.name}  ({config.script} {' '.join(config.args)})")
    header = f"  {'metric':38} {'median':>10} {'min':>10} {'max':>10} {'n':>3}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for metric, label, fmt in METRICS[config.script]:
        if metric not in stats:
            continue
        s = stats[metric]
        line = (
            f"  {label:38} {fmt.format(s['median']):>10} {fmt.format(s['min']):>10} "
            f"{fmt.format(s['max']):>10} {s['n']:>3}"
        )
        if metric in verdicts:
            line += f"   {verdicts[metric]}"
        print(line)
    for problem in measured["problems"]:
        print(f"  ! {problem}")


def snapshot_of(commit: str) -> tuple[Path, str]:
    """Extract wssim/ as of ``commit`` into a temporary directory; return it and the commit."""
    root = HERE.parent
    full = subprocess.run(
        ["git", "rev-parse", "--short", f"{commit}^{{commit}}"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = Path(tempfile.mkdtemp(prefix=f"wssim-{full}-"))
    archive = subprocess.run(
        ["git", "archive", "--format=tar", full, "wssim"], cwd=root, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target, full


def wssim_revision() -> str:
    """The commit the benchmarked wssim comes from, marked dirty if wssim/ has local edits."""
    root = HERE.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "wssim"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown revision"
    return f"{commit}{' + uncommitted changes in wssim/' if dirty else ''}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the wssim benchmarks.")
    parser.add_argument("--quick", action="store_true", help="a fast subset")
    parser.add_argument("--only", help="only configurations whose name contains this")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds before a measurement is killed (300)"
    )
    parser.add_argument("--save", type=Path, help="write all results as JSON to this file")
    parser.add_argument(
        "--at",
        metavar="COMMIT",
        help="benchmark wssim/ as of this commit (extracted to a temporary directory), "
        "not the working tree, which others may be editing meanwhile",
    )
    args = parser.parse_args(argv)

    info = machine()
    snapshot = None
    if args.at:
        snapshot, commit = snapshot_of(args.at)
        info["wssim"] = f"{commit} (snapshot, not the working tree)"
    else:
        info["wssim"] = wssim_revision()
    when = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    print(f"wssim benchmarks, {when}")
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['ram_gb']} GiB RAM, {info['os']}")
    print(f"python: {info['python']}; websockets {info['websockets']}; wssim {info['wssim']}")
    configs = [c for c in plan(args.quick) if not args.only or args.only in c.name]
    results = []
    started = time.perf_counter()
    for config in configs:
        print(f"\n{config.name}")
        measured = measure_config(config, args.timeout, snapshot)
        results.append((config, measured))
    total = time.perf_counter() - started
    if snapshot is None and wssim_revision() != info["wssim"]:
        print(f"\n!!! wssim/ changed during the run: {info['wssim']} -> {wssim_revision()};")
        print("!!! the results mix revisions: re-run, or use --at COMMIT")
        info["wssim_after"] = wssim_revision()
    elif snapshot is not None:
        shutil.rmtree(snapshot, ignore_errors=True)
    print(f"\n=== results (medians of fresh processes; total {total:.0f} s)")
    failed = False
    for config, measured in results:
        print_table(config, measured)
        failed |= bool(measured["problems"])
    if args.save:
        args.save.write_text(
            json.dumps(
                {
                    "date": when,
                    "machine": info,
                    "quick": args.quick,
                    "results": [m for _c, m in results],
                },
                indent=1,
            )
            + "\n"
        )
        print(f"\nsaved to {args.save}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
