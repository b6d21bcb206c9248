"""``python -m wssim``: the scenarios of the course from the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wssim.__main__ import main
from wssim.course.scenarios import SCENARIOS


def test_list_names_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == list(SCENARIOS)


def test_run_prints_the_trace_and_writes_the_timeline(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # main() sets MPLBACKEND=Agg for its plot: undo it afterwards, or every notebook kernel
    # that nbval starts later in the session inherits it and draws no inline figure.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    plot = tmp_path / "crash.png"
    args = ["run", "crash", "--seed", "1", "--plot", str(plot), "--kind", "tcp,closed"]
    assert main([*args, "--by", "host"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("# crash (lesson 01, seed 1):")
    assert "1.010  c1    client           closed  ConnectionClosedError" in out
    assert "  frame  " not in out
    assert plot.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_scenario_runs_and_is_deterministic(name: str) -> None:
    run = SCENARIOS[name].run
    first, again = run(3), run(3)
    assert len(first) > 0
    assert str(first.table()) == str(again.table())


def test_an_unknown_scenario_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "nope"]) == 2
    assert "no scenario 'nope'; choose from: echo, crash" in capsys.readouterr().err


def test_an_unknown_kind_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "echo", "--kind", "tcp,nonsense"])
    assert "unknown kind(s) nonsense: choose from" in capsys.readouterr().err


def test_python_dash_m_works() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "wssim", "run", "echo", "--kind", "closed"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "ConnectionClosedOK" in result.stdout
    assert result.stderr == ""
