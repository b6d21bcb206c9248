"""examples/ticker: its suite finds the three bugs of the first version and passes on the
fixed one, with a fixed seed, as a user would run it (in-process through pytester)."""

from __future__ import annotations

from pathlib import Path

import pytest

import wssim.plot  # noqa: F401  (imported before the inner runs: see test_testing_plugin.py)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ticker"


def run(pytester: pytest.Pytester, version: str, *args: str) -> pytest.RunResult:
    # From the example's folder, as its README says to run it; nothing is written there.
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(EXAMPLE)
        return _run(pytester, version, *args)


def _run(pytester: pytest.Pytester, version: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        "-W",
        "error",
        f"--ticker={version}",
        f"--wssim-results={pytester.path / 'results'}",
        *args,
    )


def test_the_fixed_version_passes(pytester: pytest.Pytester) -> None:
    result = run(pytester, "v2", "--wssim-seeds=2")
    result.assert_outcomes(passed=8)


def test_the_first_version_fails_with_three_readable_reports(pytester: pytest.Pytester) -> None:
    result = run(pytester, "v1", "--wssim-seed=0", "-k", "not chaos")
    result.assert_outcomes(failed=3)
    out = result.stdout.str()
    # Bug 1: no reconnect after a restart.
    assert "AssertionError: 3 of 3 client(s) not reconnected 30 s after t=15:\n" in out
    assert (
        "E         alice: not connected at t=45; its last connection c1 opened at t=0.04 "
        "and closed at t=10.01 (1006); 1 attempt(s) since: c5 refused at t=12.01\n"
    ) in out
    # Bug 2: subscriptions left behind when clients leave.
    assert "ResourceLeak: still held: subscription 3 (c1, c2, c3)" in out
    # Bug 3: ticks lost across a reconnect.
    assert "AssertionError: messages lost: alice: 2 of 29 lost (11, 12)" in out
    # Each report says how to replay it and where the trace went.
    assert (
        "pytest tests/test_ticker.py::test_no_tick_lost_across_a_dropped_connection --wssim-seed=0"
    ) in out
    saved = sorted(p.name for p in (pytester.path / "results").iterdir())
    assert saved == [
        "tests-test_ticker.py-test_clients_reconnect_after_a_server_restart",
        "tests-test_ticker.py-test_no_tick_lost_across_a_dropped_connection",
        "tests-test_ticker.py-test_subscriptions_end_when_clients_leave",
    ]


def test_chaos_finds_the_first_bug_and_shrinks_it_to_one_crash(pytester: pytest.Pytester) -> None:
    result = run(pytester, "v1", "--wssim-seed=0", "-k", "chaos")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "chaos run of seed 0 failed: AssertionError: 3 of 3 client(s) not reconnected" in out
    assert "shrunk from 6 fault(s) to 1 in 8 run(s):" in out
    assert "t=49  Crash(host='server') for 2.2 s" in out
    assert 'ScheduledFault(49.0, 2.2, faults.Crash, ("server",)),' in out
