"""The reality suite's parts that need no root and no real time: the simulated side of
every scenario, the comparison and its tolerance, the rendering of docs/FIDELITY.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reality import compare, fidelity, netns, outcome, scenarios, simside
from reality.outcome import Outcome

ROOT = Path(__file__).resolve().parent.parent


def closed(exc: str | None, rcvd: int | None, sent: int | None, cause: str, t: float | None):
    return {
        "exception": exc,
        "code_received": rcvd,
        "code_sent": sent,
        "cause": cause,
        "time": t,
    }


ERR = "ConnectionClosedError"
OK = "ConnectionClosedOK"
OPEN = closed(None, None, None, "open", None)
KILLED = closed(None, None, None, "killed", None)

# What the simulation gives today (seed 0, 1 ms one way): stable, since it is deterministic.
SIM: dict[str, dict[str, Outcome]] = {
    "partition": {
        "client": closed(ERR, None, 1011, "close_timeout", 50.004),
        "server": closed(ERR, None, 1011, "close_timeout", 50.003),
    },
    "idle-drop": {"client": OPEN, "server": closed(ERR, None, None, "ETIMEDOUT", 1016.848)},
    # The middlebox answers the server's push at 90 with an RST; the client never learns.
    "idle-reject": {"client": OPEN, "server": closed(ERR, None, None, "ECONNRESET", 90.001)},
    "crash-idle": {"client": closed(ERR, None, None, "EOF", 1.001), "server": KILLED},
    "crash-unread": {"client": closed(ERR, None, None, "ECONNRESET", 3.001), "server": KILLED},
    "freeze-short": {"client": OPEN, "server": OPEN},
    "freeze-long": {
        "client": closed(ERR, None, 1011, "close_timeout", 50.004),
        "server": closed(ERR, 1011, 1011, "EOF", 61.0),
    },
    "shutdown": {
        "client": closed(OK, 1001, 1001, "EOF", 1.003),
        "server": closed(OK, 1001, 1001, "EOF", 1.004),
    },
    "too-big": {
        "client": closed(ERR, 1009, 1009, "EOF", 1.002),
        "server": closed(ERR, None, 1009, "PayloadTooBig", 1.003),
    },
    "power-keepalive": {
        "client": closed(ERR, None, 1011, "close_timeout", 50.004),
        "server": KILLED,
    },
    "power-silent": {"client": closed(ERR, None, None, "ETIMEDOUT", 928.848), "server": KILLED},
    # Sent at 10 into the cut (RTO 0.202 s at 1 ms one way): a tail-loss probe at 10.202,
    # then retransmissions at 10.404, 10.808, 11.616, 13.232, 16.464 and 22.928.
    "flaky-link": {"client": OPEN, "server": closed(None, None, None, "delivered", 22.929)},
    # The window closes at 1.0; the first zero-window probe one RTO (0.202 s) later; the user
    # timeout ends it 30 s after that probe, though the server answered every probe.
    "zero-window": {"client": closed(ERR, None, None, "ETIMEDOUT", 31.202), "server": OPEN},
    "give-up": {"client": closed(ERR, None, None, "ETIMEDOUT", 928.848), "server": OPEN},
    "tcp-keepalive": {"client": closed(ERR, None, None, "ETIMEDOUT", 100.004), "server": OPEN},
    "user-timeout": {"client": closed(ERR, None, None, "ETIMEDOUT", 32.404), "server": OPEN},
}


def test_every_scenario_is_pinned() -> None:
    assert [s.name for s in scenarios.SCENARIOS] == list(SIM)


@pytest.mark.parametrize("scenario", scenarios.SCENARIOS, ids=lambda s: s.name)
def test_sim_side(scenario: scenarios.Scenario) -> None:
    got = simside.run(scenario)
    assert set(got) == {"client", "server"}
    for seen in got.values():
        assert tuple(seen) == outcome.KEYS
        # A closed side says when; so does a delivery; an open or killed side has no time.
        timed = seen["exception"] is not None or seen["cause"] == "delivered"
        assert timed == (seen["time"] is not None)
    assert got == SIM[scenario.name]


def test_known_differences_name_sides() -> None:
    for s in scenarios.SCENARIOS:
        assert set(s.known) <= {"client", "server"}, s.name
        assert all(s.known.values()), s.name


def test_context_scales_durations() -> None:
    ctx = scenarios.Context("client", host="h", bind="h", scale=0.05)
    assert ctx.options(scenarios.KEEPALIVE) == {
        "ping_interval": pytest.approx(1.0),
        "ping_timeout": pytest.approx(1.0),
        "close_timeout": pytest.approx(0.5),
    }
    assert ctx.options(scenarios.NO_KEEPALIVE)["ping_interval"] is None
    assert ctx.whole(40) == 2
    assert ctx.whole(30, 0.001) == 1500
    with pytest.raises(ValueError, match="whole"):
        ctx.whole(30)  # 1.5 s is not whole seconds


def test_os_cause() -> None:
    import errno

    assert outcome.os_cause(None) == "EOF"
    assert outcome.os_cause(EOFError()) == "EOF"
    assert outcome.os_cause(ConnectionResetError(errno.ECONNRESET, "reset")) == "ECONNRESET"
    assert outcome.os_cause(BrokenPipeError(errno.EPIPE, "pipe")) == "EPIPE"
    assert outcome.os_cause(TimeoutError(errno.ETIMEDOUT, "timed out")) == "ETIMEDOUT"
    assert outcome.os_cause(TimeoutError("timed out while closing connection")) == "close_timeout"


def test_scaled_kernel() -> None:
    # Linux's give-up: 924.6 s unscaled, at the 16th expiry of the retransmission timer.
    assert netns.give_up_threshold(15, 120.0) == pytest.approx(924.6)
    assert netns.give_up_expiry(15, 0.2, 120.0) == 16
    # At 1/20, 15 would give up after 72.2 s (1444 s unscaled) of a 200 ms-based model;
    # 10 gives up at the same, 16th, expiry: 46.23 s, 924.6 s unscaled.
    assert netns.give_up_threshold(15, 6.0) == pytest.approx(72.2)
    assert netns.scaled_retries2(0.05) == 10
    assert netns.scaled_retries2(1.0) == 15
    assert netns.kernel_settings(0.05) == {
        "net.ipv4.tcp_retries2": "10",
        "net.ipv4.tcp_rto_min_us": "10000",
        "net.ipv4.tcp_rto_max_ms": "6000",
        "net.ipv4.tcp_fin_timeout": "3",
    }


# The comparison


def test_agree_within_tolerance() -> None:
    sim = closed(ERR, None, 1011, "close_timeout", 50.004)
    real = [dict(sim, time=t) for t in (50.2, 50.3, 51.0)]
    assert compare.compare(sim, real) == (True, "")
    assert compare.tolerance(50.0) == pytest.approx(2.5)  # 5 %
    assert compare.tolerance(1.0) == pytest.approx(0.5)  # at least 0.5 s


def test_disagree_on_time() -> None:
    sim = closed(ERR, None, None, "ETIMEDOUT", 926.6)
    real = [dict(sim, time=t) for t in (1526.6, 1527.7, 1528.0)]
    agree, note = compare.compare(sim, real)
    assert not agree
    assert "real median 1527.700 s (1526.600–1528.000)" in note


def test_disagree_on_cause_in_one_run() -> None:
    sim = closed(ERR, 1011, 1011, "ECONNRESET", 61.0)
    real = [dict(sim), dict(sim, cause="EPIPE"), dict(sim)]
    agree, note = compare.compare(sim, real)
    assert not agree
    assert note == "cause: sim ECONNRESET, real ECONNRESET, EPIPE, ECONNRESET"


def test_open_against_closed() -> None:
    agree, note = compare.compare(OPEN, [closed(ERR, None, None, "ECONNRESET", 90.0)])
    assert not agree
    assert "exception: sim None" in note
    assert compare.compare(OPEN, [OPEN, OPEN]) == (True, "")
    assert compare.compare(OPEN, []) == (False, "no real run")


def test_known_and_failures() -> None:
    sim = closed(ERR, None, None, "ECONNRESET", 60.0)
    real = [OPEN]
    known = compare.result("x/client", "network", sim, real, "a model difference")
    unknown = compare.result("x/server", "network", sim, real)
    fine = compare.result("y/client", "network", sim, [sim])
    assert set(known) == {"scenario", "group", "sim", "real", "agree", "note"}
    assert compare.is_known(known) and not compare.is_known(unknown)
    assert compare.failures([known, unknown, fine]) == [unknown]
    healed = compare.result("y/client", "network", sim, [sim], "a model difference")
    assert healed["agree"] and healed["note"].startswith("agrees now")


# docs/FIDELITY.md

CANNED = {
    "meta": {
        "date": "2026-01-01 00:00 UTC",
        "kernel": "6.18.0",
        "python": "3.11.7",
        "websockets": "17.4",
        "wssim": "0.1.0",
        "scale": "1/20",
        "runs": 3,
    },
    "results": [
        compare.result(
            "crash-idle/client",
            "network",
            closed(ERR, None, None, "EOF", 1.001),
            [closed(ERR, None, None, "EOF", t) for t in (1.1, 1.2, 1.15)],
        ),
        compare.result(
            "freeze-long/server",
            "network",
            closed(ERR, 1011, 1011, "ECONNRESET", 61.0),
            [closed(ERR, 1011, 1011, "EPIPE", 61.05)],
            "abort sends RST in the simulation",
        ),
        {
            "scenario": "ping of 126 bytes",
            "group": "protocol",
            "sim": closed(ERR, None, 1002, "EOF", 0.0),
            "real": [closed(ERR, None, 1002, "EOF", 0.0)],
            "agree": False,
            "note": "something new",
        },
    ],
    "not_reproduced": {"machine suspended": "the kernel does not sleep"},
}


def test_fidelity_rendering(tmp_path: Path) -> None:
    text = fidelity.render(CANNED)
    assert text.startswith(fidelity.BEGIN) and text.rstrip().endswith(fidelity.END)
    assert "- kernel (`uname -r`): 6.18.0" in text
    assert "- results: 3; 1 agree, 1 known differences, 1 unexplained" in text
    assert (
        "| crash-idle/client | Error rcvd -/sent - EOF @ 1.001 | "
        "Error rcvd -/sent - EOF @ 1.150 (1.100–1.200) | yes |"
    ) in text
    assert "| freeze-long/server |" in text and "| no (known) |" in text
    assert "### protocol" in text and "| **no** |" in text
    assert "- **ping of 126 bytes** (unexplained):\n  something new" in text
    assert "- **machine suspended**: the kernel does not sleep" in text

    path = tmp_path / "FIDELITY.md"
    fidelity.write(path, CANNED)
    assert path.read_text().startswith("# Fidelity")
    path.write_text("# Hand-written\n\nkept\n\n" + fidelity.BEGIN + "\nold\n" + fidelity.END)
    fidelity.write(path, CANNED)
    written = path.read_text()
    assert written.startswith("# Hand-written\n\nkept\n\n")
    assert "old" not in written and written.count(fidelity.BEGIN) == 1


def test_recorded_results_are_well_formed() -> None:
    path = ROOT / "reality" / "results.json"
    if not path.exists():
        pytest.skip("no recorded results yet")
    data = json.loads(path.read_text())
    for r in data["results"]:
        assert set(r) == {"scenario", "group", "sim", "real", "agree", "note"}
        if r["group"] == "browser":  # simulated tab vs Chromium (tests/test_reality_browser.py)
            assert set(r["sim"]) == {"page", "server"}
            assert all(set(o) == {"page", "server", "chromium"} for o in r["real"])
            continue
        for o in [r["sim"], *r["real"]]:
            # The protocol cases record more (status, reason, frames, when TCP ended).
            if r["group"] == "protocol":
                assert set(outcome.KEYS) <= set(o)
            else:
                assert tuple(o) == outcome.KEYS
    assert fidelity.render(data) in (ROOT / "docs" / "FIDELITY.md").read_text()


def test_recording_a_few_scenarios_keeps_every_other_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reality import run

    def row(name: str, group: str, agree: bool) -> dict[str, object]:
        return {"scenario": name, "group": group, "agree": agree}

    old = {
        "meta": {"date": "old", "browser": {"version": "old"}},
        "results": [
            row("a", "browser", False),
            row("b", "browser", True),
            row("n", "network", True),
        ],
        "scenarios": {"a": "A", "b": "B", "n": "N"},
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(old))
    monkeypatch.setattr(run, "RESULTS", path)
    new = {
        "meta": {"date": "new"},
        "results": [row("a", "browser", True)],
        "scenarios": {"a": "A2"},
    }
    partial = run.merged(new, ["browser"], partial=True)
    assert [(r["scenario"], r["agree"]) for r in partial["results"]] == [
        ("b", True),
        ("n", True),
        ("a", True),
    ]
    assert partial["meta"]["date"] == "old" and partial["scenarios"]["a"] == "A2"
    whole = run.merged(new, ["browser"])
    assert [r["scenario"] for r in whole["results"]] == ["n", "a"]
