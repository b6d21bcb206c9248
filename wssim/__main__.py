"""``python -m wssim``: run a scenario of the course without Jupyter.

Examples::

    python -m wssim list
    python -m wssim run partition --seed 1 --plot partition.png
    python -m wssim run crash --kind tcp,closed --until 3
"""

from __future__ import annotations

import argparse
import os
import sys

from wssim.course.scenarios import SCENARIOS
from wssim.trace.events import KINDS


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(
            f"unknown kind(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(KINDS)}"
        )
    return kinds


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m wssim",
        description="Run a scenario of the wssim course: print its trace, draw its timeline.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sub.add_parser("list", help="list the scenarios")
    run = sub.add_parser("run", help="run one scenario")
    run.add_argument("name", help="the scenario's name (see: python -m wssim list)")
    run.add_argument("--seed", type=int, default=0, help="the simulation's seed (default 0)")
    run.add_argument("--plot", metavar="FILE", help="write the timeline to FILE (.png, .svg, .pdf)")
    run.add_argument(
        "--kind",
        type=_kinds,
        metavar="KINDS",
        help=f"comma-separated kinds of events to show (from: {', '.join(KINDS)})",
    )
    run.add_argument("--until", type=float, metavar="T", help="show events up to T seconds only")
    run.add_argument(
        "--by",
        choices=("endpoint", "host"),
        default="endpoint",
        help="timeline lanes: one per endpoint (default), or one per host",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "list":
        width = max(len(name) for name in SCENARIOS)
        for s in SCENARIOS.values():
            print(f"{s.name:<{width}}  lesson {s.lesson}  {s.summary}")
        return 0
    chosen = SCENARIOS.get(args.name)
    if chosen is None:
        names = ", ".join(SCENARIOS)
        print(f"python -m wssim: no scenario {args.name!r}; choose from: {names}", file=sys.stderr)
        return 2
    trace = chosen.run(args.seed)
    kinds = list(args.kind or chosen.kinds)
    print(f"# {chosen.name} (lesson {chosen.lesson}, seed {args.seed}): {chosen.summary}")
    print(trace.table(kind=kinds, until=args.until))
    if args.plot:
        from wssim import plot

        plot.draw_to_files()  # never to a window

        title = f"{chosen.name} (seed {args.seed})"
        ax = plot.timeline(trace, until=args.until, by=args.by, title=title)
        figure = ax.get_figure(root=True)
        assert figure is not None
        figure.savefig(args.plot, dpi=120, bbox_inches="tight")
        print(f"timeline written to {args.plot}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        # The reader went away (`python -m wssim run ... | head`): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
