"""What-if: how much could a cheaper version of a cost save at most?

A diagnostic, not a benchmark of wssim as it is: it removes one cost entirely, in this
process only, then runs a benchmark scenario, so that a suggestion in bench/README.md comes
with an upper bound. (The first suggestions of this analysis, one pump timer for the
delivery heap and letting go of finished connections, are in wssim since cb46d73 and
e1647af; they needed no what-if any more.)

Patches (comma-separated, ``--patches``):

- ``nolog``  websockets' DEBUG records are not captured at all: the trace loses its ``log``
             events (a ceiling for a faster capture, not a proposal).
- ``nogc``   the cyclic garbage collector is disabled (a ceiling for GC tuning).

Examples::

    .venv/bin/python -W error bench/whatif.py --patches nolog keepalive
    .venv/bin/python -W error bench/whatif.py --patches nogc restart --clients 10000
    .venv/bin/python -W error bench/whatif.py --patches nolog,nogc handshake --no-loopback

Arguments after the benchmark's name go to its script.
"""

from __future__ import annotations

import argparse
import gc
import sys

import wssim.trace.recorder as recorder


def _patch_nolog() -> None:
    # Outside the capture, websockets' loggers are not enabled for DEBUG. Warnings and
    # errors would reach stderr through logging's last resort: the benchmarks check that
    # none happens (run.py fails a run that writes to stderr).
    recorder.Recorder.start_capture = lambda self: None  # type: ignore[method-assign]
    recorder.Recorder.stop_capture = lambda self: None  # type: ignore[method-assign]


def _patch_nogc() -> None:
    gc.disable()


PATCHES = {"nolog": _patch_nolog, "nogc": _patch_nogc}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patches", default="", help="comma-separated: " + ", ".join(PATCHES))
    parser.add_argument("bench", choices=("keepalive", "restart", "handshake"))
    args, rest = parser.parse_known_args(argv)
    names = [p for p in args.patches.split(",") if p]
    for name in names:
        if name not in PATCHES:
            parser.error(f"unknown patch {name!r}; known: {', '.join(PATCHES)}")
        PATCHES[name]()
    print(f"what-if with patches: {', '.join(names) or 'none'}")
    module = __import__(f"bench_{args.bench}")
    module.main(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
