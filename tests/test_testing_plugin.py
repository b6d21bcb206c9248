"""The pytest plugin (wssim.testing.plugin), run on small test files through pytester.

Every inner run is in-process, but for pytest-xdist's, which needs worker processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Failure reports draw timelines with matplotlib. An in-process pytester run forgets the
# modules first imported during it; matplotlib imported half-anew breaks (its classes
# no longer match), so it is imported here, before any inner run.
import wssim.plot  # noqa: F401

ECHO = """
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


async def server():
    async with serve(echo, "", 8765) as running:
        await running.serve_forever()


async def client():
    async with connect("ws://server:8765") as websocket:
        await websocket.send("hello")
        assert await websocket.recv() == "hello"


def start(sim):
    sim.host("server").spawn(server())
    sim.host("client").spawn(client())
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-W", "error", *args)


def test_the_fixture_comes_with_the_package_and_reports_its_seed(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        ECHO
        + """
def test_echo(sim):
    start(sim)
    trace = sim.run(until=1)
    assert sim.seed == 0
    assert trace.last(kind="closed", side="client").code == 1000
    assert trace.last(kind="closed", side="client").time == 0.08
"""
    )
    result = run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["wssim: seed 0"])


def test_wssim_seed_sets_the_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_seed(sim):\n    assert sim.seed == 42\n")
    run(pytester, "--wssim-seed=42").assert_outcomes(passed=1)
    result = run(pytester)
    result.assert_outcomes(failed=1)


def test_the_marker_runs_a_test_once_per_seed_each_its_own_id(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

@pytest.mark.wssim(seeds=4)
def test_seeds(sim):
    pass

@pytest.mark.wssim(seeds=[5, 9])
def test_listed(sim):
    pass

@pytest.mark.wssim(seed=7)
def test_one(sim):
    assert sim.seed == 7
"""
    )
    result = run(pytester, "-v")
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines_random(
        [
            "*test_seeds?seed0? PASSED*",
            "*test_seeds?seed3? PASSED*",
            "*test_listed?seed5? PASSED*",
            "*test_listed?seed9? PASSED*",
            "*test_one PASSED*",
        ]
    )


def test_wssim_seeds_runs_every_sim_test_over_n_seeds(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
def test_a(sim):
    pass

def test_plain():
    pass
"""
    )
    result = run(pytester, "--wssim-seeds=3", "-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*test_a?seed2? PASSED*", "*test_plain PASSED*"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--wssim-seeds=0",), "*--wssim-seeds must be an integer >= 1, got 0*"),
        (("--wssim-last-events=-1",), "*--wssim-last-events must be an integer >= 0, got -1*"),
        (("--wssim-seed=x",), "*--wssim-seed: invalid int value: 'x'*"),
    ],
)
def test_bad_options_are_refused_by_name(
    pytester: pytest.Pytester, args: tuple[str, ...], message: str
) -> None:
    pytester.makepyfile("def test_a(sim):\n    pass\n")
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_a_bad_marker_is_a_collection_error_naming_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "import pytest\n\n@pytest.mark.wssim(seeds=0)\ndef test_a(sim):\n    pass\n"
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*wssim(seeds=...) must be an integer >= 1*got 0*"])


FAILING = (
    ECHO
    + """
@pytest.mark.wssim(seeds=3)
def test_echo(sim):
    start(sim)
    sim.run(until=1)
    assert sim.seed != 1, "seed 1 fails"
"""
)


def test_a_failure_reports_the_seed_the_replay_command_the_trace_and_saves_files(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(test_app=FAILING)
    results = tmp_path / "results"
    result = run(pytester, f"--wssim-results={results}", "--wssim-last-events=3")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- wssim -*",
            "seed 1; to replay this test:",
            "  pytest 'test_app.py::test_echo[seed1]' --wssim-seed=1",
            "sim: the last 3 of 42 events (the run reached t=1 s):",
            "*time*conn*where*kind*event",
            "*0.090*c1*server*closed*ConnectionClosedOK: received 1000 (OK); then sent 1000 (OK)",
            f"the full trace and its timeline: {results}/test_app.py-test_echo-seed1/sim.txt, "
            f"{results}/test_app.py-test_echo-seed1/sim.png",
        ]
    )
    folder = results / "test_app.py-test_echo-seed1"
    assert sorted(p.name for p in folder.iterdir()) == ["sim.png", "sim.txt"]
    text = (folder / "sim.txt").read_text(encoding="utf-8").splitlines()
    assert len(text) == 2 + 42  # the header, its rule, and every event
    assert (folder / "sim.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Only the failing test leaves files.
    assert [p.name for p in results.iterdir()] == ["test_app.py-test_echo-seed1"]


def test_results_go_next_to_the_junit_xml_by_default(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=FAILING)
    result = run(pytester, "--junitxml=out/junit.xml")
    result.assert_outcomes(passed=2, failed=1)
    assert (pytester.path / "out" / "wssim-results" / "test_app.py-test_echo-seed1").is_dir()
    xml = (pytester.path / "out" / "junit.xml").read_text(encoding="utf-8")
    assert 'name="wssim_seed" value="1"' in xml
    assert "--wssim-seed=1" in xml


def test_the_replay_command_runs_the_failing_seed_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=FAILING)
    result = run(pytester, "test_app.py::test_echo[seed1]", "--wssim-seed=1", "-v")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_echo?seed1? FAILED*"])
    run(pytester, "test_app.py::test_echo[seed2]", "--wssim-seed=2").assert_outcomes(passed=1)


def test_the_determinism_check_names_the_first_diverging_event(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import asyncio
import itertools

CALLS = itertools.count()  # state left over from one run to the next


async def wait():
    await asyncio.sleep(1)
    await asyncio.sleep(1 + next(CALLS))


def test_leftover(sim):
    sim.host("a").spawn(wait())
    sim.mark("start")
    sim.run()
    sim.mark("done")


def test_fine(sim):
    sim.host("a").spawn(asyncio.sleep(3))
    sim.run()
    sim.mark("done")
"""
    )
    run(pytester).assert_outcomes(passed=2)
    result = run(pytester, "--wssim-check-determinism")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "not deterministic: two runs with the same seed gave different traces; the traces "
            "differ from event 1 on:",
            "  first run:  t=2.000000  mark: done",
            "  second run: t=3.000000  mark: done",
            "  pytest test_*.py::test_leftover --wssim-seed=0 --wssim-check-determinism",
        ]
    )
    result.stdout.fnmatch_lines(["wssim: seed 0, each test runs twice (--wssim-check-determinism)"])


def test_a_deterministic_test_passes_the_check_and_runs_twice(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        ECHO
        + """
RUNS = []

@pytest.mark.wssim(seeds=2)
def test_echo(sim):
    start(sim)
    sim.run(until=1)
    RUNS.append(sim.seed)

def test_count():
    assert RUNS == [0, 0, 1, 1]
"""
    )
    run(pytester, "--wssim-check-determinism").assert_outcomes(passed=3)


# Chaos and shrinking: a robust app whose check fails whenever the server stays down
# for more than 3 s. The seed's schedule has one such crash; the smallest failing
# schedule is that crash alone, halved while it stays over 3 s.

CHAOS = """
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from wssim.trace.lifecycle import faults


class LongCrash(Exception):
    pass


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


async def server():
    async with serve(echo, "", 8765) as running:
        await running.serve_forever()


async def client():
    async for websocket in connect("ws://server:8765"):
        await websocket.wait_closed()


def app(sim):
    sim.host("server").service(server)
    for name in ("alice", "bob"):
        sim.host(name).spawn(client())


def check(sim, state):
    for fault in faults(sim.trace):
        if fault.name == "crash" and fault.duration > 3:
            raise LongCrash(f"the server was down for {fault.duration:g} s")


def test_chaos(chaos):
    chaos.run(app, clients=["alice", "bob"], check=check)
"""


def _expected_minimal(seed: int) -> tuple[float, float]:
    """The crash of the seed's schedule: when, and its duration halved while over 3 s."""
    from wssim.lab.chaos import schedule

    drawn = schedule(seed, ["alice", "bob"], start=10.0, end=130.0)  # Chaos.run's window
    (crash,) = [i for i in drawn.injections if i.name == "crash"]
    assert crash.duration is not None and crash.duration > 3  # the check fails at first
    duration = crash.duration
    while round(duration / 2, 1) > 3:
        duration = round(duration / 2, 1)
    return crash.at, duration


def test_shrinking_finds_the_known_smallest_failing_schedule(pytester: pytest.Pytester) -> None:
    seed = 2
    at, duration = _expected_minimal(seed)
    pytester.makepyfile(test_app=CHAOS)
    result = run(pytester, f"--wssim-seed={seed}", "--wssim-results=res")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert f"chaos run of seed {seed} failed: LongCrash: the server was down for " in out
    assert "fault(s) to 1 in " in out
    assert f"  t={at:g}  Crash(host='server') for {duration:g} s\n" in out
    assert f'ScheduledFault({at!r}, {duration!r}, faults.Crash, ("server",)),' in out
    assert "chaos.run(app, clients=['alice', 'bob'], schedule=SCHEDULE, ...)" in out
    assert f"Its failure:\nE       the server was down for {duration:g} s\n" in out
    result.stdout.fnmatch_lines(["the smallest failing chaos run: the last 20 of * events*"])
    assert (pytester.path / "res" / "test_app.py-test_chaos").is_dir()


def test_the_pasted_schedule_rebuilds_it_and_replays_the_failure() -> None:
    import dataclasses

    from wssim.lab.chaos import schedule
    from wssim.testing.chaos import Chaos, ChaosFailure, as_code

    namespace: dict[str, object] = {}
    drawn = schedule(4, ["alice", "bob"])
    exec(as_code(drawn), namespace)
    assert namespace["SCHEDULE"] == drawn

    # Shrinking is deterministic: the same failure shrinks to the same schedule, twice.
    source: dict[str, object] = {}
    exec(compile(CHAOS, "chaos_app", "exec"), source)
    found = []
    for _ in range(2):
        with pytest.raises(ChaosFailure) as failure:
            Chaos(2).run(source["app"], clients=["alice", "bob"], check=source["check"])  # type: ignore[arg-type]
        found.append(failure.value.minimal)
    assert found[0] == found[1]
    # Replaying the minimal schedule fails the same way, and halving its crash passes.
    minimal = found[0]
    again = Chaos(2).once(source["app"], minimal, clients=["alice", "bob"], check=source["check"])  # type: ignore[arg-type]
    assert type(again.error).__name__ == "LongCrash"
    (crash,) = minimal.injections
    assert crash.duration is not None
    shorter = dataclasses.replace(crash, duration=round(crash.duration / 2, 1))
    passing = Chaos(2).once(
        source["app"],  # type: ignore[arg-type]
        dataclasses.replace(minimal, injections=(shorter,)),
        clients=["alice", "bob"],
        check=source["check"],  # type: ignore[arg-type]
    )
    assert passing.error is None


# pytest-xdist: a seed gives the same trace whichever worker runs it.

XDIST = (
    ECHO
    + """
import asyncio
import hashlib
import json
import os
from pathlib import Path


async def stay():
    async with connect("ws://server:8765") as websocket:
        await asyncio.sleep(25)  # keepalive pings carry payloads drawn from the seed


@pytest.mark.wssim(seeds=6)
def test_digest(sim):
    start(sim)
    sim.host("other").spawn(stay())
    trace = sim.run(until=30)
    digest = hashlib.sha256(str(trace.table(digits=6)).encode()).hexdigest()
    out = Path(os.environ["DIGESTS"]) / f"{sim.seed}.json"
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    out.write_text(json.dumps({"digest": digest, "worker": worker}))
"""
)


def _digests(folder: Path) -> dict[str, dict[str, str]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.iterdir())}


def test_seeds_spread_over_xdist_workers_give_the_same_traces(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(test_app=XDIST)
    seen = {}
    for label, extra in (("alone", ["-p", "no:xdist"]), ("workers", ["-n", "2"])):
        folder = tmp_path / label
        folder.mkdir()
        completed = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-W", "error", *extra],
            cwd=pytester.path,
            env={**os.environ, "DIGESTS": str(folder)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr
        seen[label] = _digests(folder)
    assert sorted(seen["alone"]) == [str(s) for s in range(6)]
    assert {s: d["digest"] for s, d in seen["alone"].items()} == {
        s: d["digest"] for s, d in seen["workers"].items()
    }
    assert {d["worker"] for d in seen["workers"].values()} == {"gw0", "gw1"}
    assert len({d["digest"] for d in seen["alone"].values()}) == 6  # seeds do differ


def test_installing_wssim_registers_the_plugin_and_importing_it_does_not_import_pytest() -> None:
    from importlib.metadata import entry_points

    (plugin,) = [e for e in entry_points(group="pytest11") if e.name == "wssim"]
    assert plugin.value == "wssim.testing.plugin"
    code = (
        "import sys, wssim, wssim.testing, wssim.testing.chaos\n"
        "assert 'pytest' not in sys.modules and '_pytest' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_message_assertions_name_the_stream_and_the_ids() -> None:
    from wssim.lab.scorecard import MessageLog
    from wssim.testing import assert_in_order, assert_messages_intact, assert_none_duplicated

    log = MessageLog()
    for n in (1, 2, 3, 4):
        log.sent("alice", n)
    for n in (1, 3, 2, 3, 9):
        log.delivered("alice", n)
    with pytest.raises(AssertionError) as failure:
        assert_messages_intact(log)
    assert str(failure.value) == (
        "messages lost: alice: 1 of 4 lost (4)\n"
        "messages duplicated: alice: 3 delivered more than once\n"
        "messages out of order: alice: 2 delivered after later messages; "
        "alice: 9 delivered but never sent"
    )
    with pytest.raises(AssertionError, match="alice: 3 delivered more than once"):
        assert_none_duplicated(log, ["alice"])
    clean = MessageLog()
    clean.sent("bob", 1)
    clean.delivered("bob", 1)
    assert_messages_intact(clean)
    assert_in_order(clean)


def test_reconnected_sees_a_half_open_connection_and_refuses_a_time_not_reached() -> None:
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    from wssim import Simulation, faults
    from wssim.testing import assert_reconnected

    async def server() -> None:
        async with serve(lambda ws: ws.wait_closed(), "", 8765) as running:
            await running.serve_forever()

    async def client() -> None:
        async with connect("ws://server:8765", ping_interval=None) as websocket:
            await websocket.wait_closed()

    with Simulation() as sim:
        sim.host("server").spawn(server())
        sim.host("alice").spawn(client())
        sim.inject(faults.PowerLoss("server"), at=5, duration=5)
        trace = sim.run(until=20)
        with pytest.raises(AssertionError) as failure:
            assert_reconnected(trace, ["alice"], within=10)
        assert str(failure.value) == (
            "1 of 1 client(s) not reconnected 10 s after t=10:\n"
            "  alice: its connection c1 is half-open: the client's end is open, the "
            "server's end ended at t=5 (power loss)"
        )
        with pytest.raises(ValueError, match="run the simulation until at least t=30"):
            assert_reconnected(trace, ["alice"], within=20)
        with pytest.raises(ValueError, match="within must be a number of seconds >= 0"):
            assert_reconnected(trace, ["alice"], within=-1)
