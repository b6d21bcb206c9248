"""The pytest plugin: the ``sim`` and ``chaos`` fixtures, seeds, reports, determinism.

Registered through the ``pytest11`` entry point, so installing wssim is enough; this is the
only module of the package that imports pytest. docs/TESTING.md is its guide.

- ``sim``: a fresh :class:`~wssim.Simulation` per test, closed afterwards; its seed is
  ``--wssim-seed`` (default 0) or the marker's ``seed=``.
- ``chaos``: a :class:`~wssim.testing.chaos.Chaos` for the same seed.
- ``@pytest.mark.wssim(seeds=20)`` or ``--wssim-seeds=20``: the test runs once per seed,
  each seed its own test id (``test_x[seed7]``); ``--wssim-seed=7`` then runs seed 7
  alone, with the same id, which is how a failure is replayed.
- On failure: the seed, the command that replays the test, the last events of each
  simulation's trace, and the full trace and its timeline saved under ``--wssim-results``.
- ``--wssim-check-determinism``: each test runs twice and fails if a trace differs,
  naming the first event that diverged.

A test module or conftest that defines its own ``sim`` fixture overrides this one, as
pytest lets any closer fixture do; the plugin then leaves that test alone.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _pytest._code.code import ExceptionRepr

from wssim.simulation import Simulation
from wssim.testing.chaos import Chaos
from wssim.testing.determinism import traces_divergence
from wssim.testing.report import LAST_EVENTS, Reported, replay_command, safe_name, save, section
from wssim.trace.events import Trace

__all__ = ["chaos", "sim", "wssim_seed"]

MARKER = "wssim"
SEED = "wssim_seed"


@dataclass(frozen=True)
class _Recorded:
    label: str
    trace: Callable[[], Trace]
    report: bool


_RECORDED = pytest.StashKey[list[_Recorded]]()
"""Simulations of the current run of a test, in the order made."""
_TRACES = pytest.StashKey[list[tuple[_Recorded, Trace]]]()
"""Their traces, taken when the test's body ended."""
_FIRST_RUN = pytest.StashKey[list[Trace]]()
"""With --wssim-check-determinism: the traces of the first run."""


# ---------------------------------------------------------------- options and marker


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ``--wssim-*`` options."""
    group = parser.getgroup("wssim", "wssim: WebSocket code under simulated faults")
    group.addoption(
        "--wssim-seed",
        type=int,
        default=None,
        metavar="N",
        help="the seed of every simulation made by the sim and chaos fixtures (default 0); "
        "a test run over several seeds runs this one alone",
    )
    group.addoption(
        "--wssim-seeds",
        type=int,
        default=None,
        metavar="N",
        help="run every test that uses sim or chaos over seeds 0 to N-1, one test id each",
    )
    group.addoption(
        "--wssim-check-determinism",
        action="store_true",
        default=False,
        help="run each such test twice and fail if the traces differ",
    )
    group.addoption(
        "--wssim-results",
        default=None,
        metavar="DIR",
        help="where failing tests' traces and timelines go (default: wssim-results/ next "
        "to --junitxml's file, else in the root directory)",
    )
    group.addoption(
        "--wssim-last-events",
        type=int,
        default=LAST_EVENTS,
        metavar="N",
        help=f"events of the trace shown in a failure report (default {LAST_EVENTS})",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker and check the options' ranges."""
    config.addinivalue_line(
        "markers",
        "wssim(seeds=N, seed=S): run the test over seeds 0..N-1 (or the seeds listed), "
        "each its own test id; or with the one seed S",
    )
    seeds = config.getoption("wssim_seeds")
    if seeds is not None and seeds < 1:
        raise pytest.UsageError(f"--wssim-seeds must be an integer >= 1, got {seeds}")
    last = config.getoption("wssim_last_events")
    if last < 0:
        raise pytest.UsageError(f"--wssim-last-events must be an integer >= 0, got {last}")


def pytest_report_header(config: pytest.Config) -> list[str]:
    """One line in the session's header: the seed, and how to change it."""
    seed = config.getoption("wssim_seed")
    seeds = config.getoption("wssim_seeds")
    parts = ["seed 0" if seed is None else f"seed {seed} (--wssim-seed)"]
    if seeds is not None and seed is None:
        parts.append(f"seeds 0-{seeds - 1} per test (--wssim-seeds)")
    if config.getoption("wssim_check_determinism"):
        parts.append("each test runs twice (--wssim-check-determinism)")
    return ["wssim: " + ", ".join(parts)]


def _marker_seeds(marker: pytest.Mark | None) -> tuple[list[int] | None, int | None]:
    """The marker's ``seeds`` (as a list) and ``seed``; a clear error for anything else."""
    if marker is None:
        return None, None
    unknown = set(marker.kwargs) - {"seeds", "seed"}
    if marker.args or unknown:
        raise pytest.Collector.CollectError(
            f"@pytest.mark.wssim takes the keywords seeds= and seed= only, got "
            f"{', '.join(map(repr, marker.args)) or ', '.join(sorted(unknown))}"
        )
    seeds: Any = marker.kwargs.get("seeds")
    seed: Any = marker.kwargs.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise pytest.Collector.CollectError(
            f"@pytest.mark.wssim(seed=...) must be an integer, got {seed!r}"
        )
    if seeds is None:
        return None, seed
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise pytest.Collector.CollectError(
                f"@pytest.mark.wssim(seeds=...) must be an integer >= 1 or a list of "
                f"integers, got {seeds!r}"
            )
        return list(range(seeds)), seed
    listed = list(seeds) if isinstance(seeds, list | tuple | range) else None
    if not listed or not all(isinstance(s, int) and not isinstance(s, bool) for s in listed):
        raise pytest.Collector.CollectError(
            f"@pytest.mark.wssim(seeds=...) must be an integer >= 1 or a non-empty list of "
            f"integers, got {seeds!r}"
        )
    return list(dict.fromkeys(listed)), seed


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test id per seed, for tests that use ``sim`` or ``chaos`` over several seeds."""
    if SEED not in metafunc.fixturenames:
        return
    config = metafunc.config
    seeds, _ = _marker_seeds(metafunc.definition.get_closest_marker(MARKER))
    if config.getoption("wssim_seeds") is not None:
        seeds = list(range(config.getoption("wssim_seeds")))
    if seeds is None:
        return
    chosen = config.getoption("wssim_seed")
    if chosen is not None:
        # A replay: the one seed asked for, under the id it had among the others.
        seeds = [chosen]
    metafunc.parametrize(SEED, seeds, ids=[f"seed{s}" for s in seeds])


# ---------------------------------------------------------------- fixtures


def _record(item: pytest.Item, entry: _Recorded) -> None:
    item.stash.setdefault(_RECORDED, []).append(entry)


@pytest.fixture
def wssim_seed(request: pytest.FixtureRequest) -> int:
    """The seed of this test's simulations: ``--wssim-seed``, else the marker's ``seed=``,
    else 0 (or, over several seeds, this test id's seed)."""
    chosen = request.config.getoption("wssim_seed")
    if chosen is not None:
        return int(chosen)
    _, seed = _marker_seeds(request.node.get_closest_marker(MARKER))
    return 0 if seed is None else seed


@pytest.fixture
def sim(request: pytest.FixtureRequest, wssim_seed: int) -> Iterator[Simulation]:
    """A fresh :class:`~wssim.Simulation` with this test's seed, closed after the test.

    If the test fails, its report shows the seed, the command that replays it and the
    last events of the trace; the full trace and its timeline are saved as files.
    """
    simulation = Simulation(seed=wssim_seed)
    _record(request.node, _Recorded("sim", lambda: simulation.trace, True))
    request.node.user_properties.append(("wssim_seed", wssim_seed))
    try:
        yield simulation
    finally:
        simulation.close()


@pytest.fixture
def chaos(request: pytest.FixtureRequest, wssim_seed: int) -> Chaos:
    """A :class:`~wssim.testing.chaos.Chaos` for this test's seed: ``chaos.run(app, ...)``
    runs the application under the seed's chaos schedule and shrinks a failure."""
    item = request.node

    def record(label: str, trace: Trace, report: bool) -> None:
        _record(item, _Recorded(label, lambda: trace, report))

    request.node.user_properties.append(("wssim_seed", wssim_seed))
    return Chaos(wssim_seed, record=record)


# ---------------------------------------------------------------- running and reporting


def _uses_wssim(item: pytest.Item) -> bool:
    return SEED in getattr(item, "fixturenames", ())


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Each run of a test starts with no simulation recorded."""
    if _uses_wssim(item):
        item.stash[_RECORDED] = []
        item.stash[_TRACES] = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    """With --wssim-check-determinism: run the test once silently, keep its traces, and
    let pytest run it again as usual; the second run's report compares the two."""
    if not item.config.getoption("wssim_check_determinism") or not _uses_wssim(item):
        return None
    from _pytest.runner import runtestprotocol

    # Tear down this test's own fixtures after the first run, but not those of its
    # module or session, as if the same test came next. Only the item's own node leaves
    # the stack (SetupState.teardown_exact reads nextitem.listchain() alone).
    keep: Any = item.parent
    runtestprotocol(item, nextitem=keep, log=False)
    item.stash[_FIRST_RUN] = [trace for _, trace in item.stash.get(_TRACES, [])]
    # Fresh fixture values for the second run (the first run's are closed); the output the
    # first run captured is not the second run's.
    reset = getattr(item, "_initrequest", None)
    if reset is None:
        raise pytest.UsageError("--wssim-check-determinism works on test functions only")
    reset()
    if hasattr(item, "_report_sections"):
        item._report_sections.clear()
    return None


def _results_dir(config: pytest.Config) -> Path:
    chosen = config.getoption("wssim_results")
    if chosen:
        return Path(chosen).resolve()
    xml = getattr(config.option, "xmlpath", None)
    if xml:
        return Path(xml).resolve().parent / "wssim-results"
    return config.rootpath / "wssim-results"


def _node_for_shell(item: pytest.Item) -> str:
    """The test's id as the user types it from where pytest was started."""
    config = item.config
    path, _, rest = item.nodeid.partition("::")
    absolute = config.rootpath / path
    try:
        shown = absolute.relative_to(config.invocation_params.dir)
    except ValueError:
        shown = absolute
    return f"{shown.as_posix()}::{rest}" if rest else shown.as_posix()


def _add(report: pytest.TestReport, name: str, text: str) -> None:
    longrepr = report.longrepr
    if isinstance(longrepr, ExceptionRepr):  # a traceback: the section goes with it
        longrepr.addsection(name, text)
    else:
        report.sections.append((name, text))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Take the traces when the test's body ends; report a failure, or a divergence."""
    report: pytest.TestReport = yield
    if report.when != "call" or not _uses_wssim(item):
        return report
    taken = [(entry, entry.trace()) for entry in item.stash.get(_RECORDED, [])]
    item.stash[_TRACES] = taken
    config = item.config
    determinism = config.getoption("wssim_check_determinism")
    first = item.stash.get(_FIRST_RUN, None)
    divergence = None
    if determinism and first is not None:
        divergence = traces_divergence(first, [trace for _, trace in taken])
        if divergence is not None:
            message = (
                f"not deterministic: two runs with the same seed gave different traces; "
                f"{divergence}\n(threads, the wall clock, unseeded randomness or state left "
                f"over from an earlier run make a test depend on more than its seed)"
            )
            if report.passed:
                report.outcome = "failed"
                report.longrepr = message
            else:
                _add(report, "wssim: not deterministic", message)
    if not report.failed:
        return report
    seed = item.callspec.params.get(SEED) if hasattr(item, "callspec") else None
    if seed is None:
        seed = item.funcargs.get(SEED) if hasattr(item, "funcargs") else None
    if seed is None:
        return report
    extra = ["--wssim-check-determinism"] if determinism else []
    replay = replay_command(_node_for_shell(item), int(seed), extra=extra)
    shown = [(entry, trace) for entry, trace in taken if entry.report]
    where = _results_dir(config) / safe_name(item.nodeid)
    reported = []
    for n, (entry, trace) in enumerate(shown):
        stem = safe_name(entry.label) + (f"-{n + 1}" if len(shown) > 1 else "")
        files = save(trace, where, stem)
        reported.append(Reported(entry.label, trace, files))
    text = section(
        int(seed),
        replay,
        reported,
        last=config.getoption("wssim_last_events"),
        root=config.invocation_params.dir,
    )
    _add(report, "wssim", text)
    return report
