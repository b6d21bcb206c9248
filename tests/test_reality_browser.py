"""The browser group of the reality suite: scenarios, the log format, real-only rows.

Fast and without Chromium, except :func:`test_one_scenario_in_chromium`, which runs one
scenario end to end in headless Chromium (a few seconds: it starts a browser) and is
skipped unless Chromium is installed and ``WSSIM_CHROMIUM=1`` is set.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reality import browser_scenarios, browser_sim, chromium, compare, fidelity
from reality.browser_scenarios import SCENARIOS, Line, frame, parse_line

ROOT = Path(__file__).resolve().parent.parent
LOGGED = re.compile(
    r'log\("(connect|open|error|close |message |exception |called |pagehide |pageshow )'
)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenarios_are_well_formed(scenario: browser_scenarios.BrowserScenario) -> None:
    assert re.fullmatch(r"[a-z0-9-]+", scenario.name) and scenario.title
    assert scenario.until > 0
    assert "SERVER_URL" in scenario.page_js and scenario.page_js.startswith(
        browser_scenarios.PRELUDE
    )
    # Every line the page logs goes through the prelude's log(), in the fixed format.
    body = scenario.page_js[len(browser_scenarios.PRELUDE) :]
    assert "console.log" not in body
    assert all(
        m[1]
        in (
            "connect",
            "open",
            "error",
            "close ",
            "message ",
            "exception ",
            "called ",
            "pagehide ",
            "pageshow ",
        )
        for m in LOGGED.finditer(scenario.page_js)
    )
    for action in scenario.actions:
        assert action.kind in browser_scenarios.ACTIONS and 0 <= action.at < scenario.until
    assert scenario.server is None or callable(scenario.server)


def test_scenario_names_are_unique_and_cover_the_brief() -> None:
    names = [s.name for s in SCENARIOS]
    assert len(names) == len(set(names))
    for wanted in (
        "server-1000",
        "server-1001",
        "server-1011",
        "server-4000-reason",
        "server-empty-close",
        "server-rst",
        "server-killed",
        "handshake-403",
        "handshake-503",
        "refused",
        "never-answered",
        "page-close",
        "page-close-1000-bye",
        "page-close-4000",
        "page-close-1001",
        "page-close-long-reason",
        "server-ping",
        "invalid-utf8",
        "reserved-bits",
        "masked-frame",
        "close-unanswered",
        "close-answered-tcp-kept",
        "tab-close",
        "tab-navigate",
        "tab-navigate-no-store",
        "tab-back",
        "tab-reload",
        "tab-crash",
    ):
        assert wanted in names


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_page_js_parses() -> None:
    """Each page is valid JavaScript (node --check; SERVER_URL is defined by the runner)."""
    for s in SCENARIOS:
        done = subprocess.run(
            ["node", "--check"], input=s.page_js, text=True, capture_output=True, check=False
        )
        assert done.returncode == 0, (s.name, done.stderr)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("connect", Line("connect")),
        ("open", Line("open")),
        ("error", Line("error")),
        ('close 1000 "" true', Line("close", 1000, "", True)),
        ('close 4000 "a \\"b\\" c" false', Line("close", 4000, 'a "b" c', False)),
        ('message "hi there"', Line("message", data="hi there")),
        ("exception InvalidAccessError", Line("exception", name="InvalidAccessError")),
        ('called close(1000, "bye")', Line("called", name='close(1000, "bye")')),
    ],
)
def test_parse_line(text: str, line: Line) -> None:
    assert parse_line(text) == line
    assert parse_line(line.text()) == line


@pytest.mark.parametrize("text", ["", "close", "close 1000 true", 'close x "" true', "hello"])
def test_parse_line_refuses_other_lines(text: str) -> None:
    with pytest.raises(ValueError):
        parse_line(text)


def test_frames() -> None:
    assert frame(0x8) == b"\x88\x00"
    assert frame(0x1, b"hi", rsv=2) == b"\xa1\x02hi"
    masked = frame(0x1, b"hi", mask=b"\x01\x02\x03\x04")
    assert masked[:2] == b"\x81\x82" and masked[2:6] == b"\x01\x02\x03\x04"
    assert masked[6:] == bytes([ord("h") ^ 1, ord("i") ^ 2])
    assert frame(0x2, b"x" * 200)[1:4] == b"\x7e\x00\xc8"


def test_normalise_times_from_connect() -> None:
    got = chromium.normalise(
        [(10.0, "connect"), (10.25, "open"), (11.0, 'close 1000 "" true'), (11.5, "what")]
    )
    assert got == [
        {"line": "connect", "t": 0.0},
        {"line": "open", "t": 0.25},
        {"line": 'close 1000 "" true', "t": 1.0},
        {"line": "raw what", "t": 1.5},
    ]


def _run(lines: list[tuple[str, float]], server: dict[str, Any]) -> dict[str, Any]:
    page = [{"line": "connect", "t": 0.0}] + [{"line": t, "t": w} for t, w in lines]
    return {"page": page, "server": server, "chromium": "Chrome/1.2.3"}


SERVER = {
    "exception": "ConnectionClosedOK",
    "code_received": 1001,
    "code_sent": 1001,
    "cause": "EOF",
    "time": 1.01,
    "reason": "",
    "status": 101,
}


def test_real_only_rows_render_and_do_not_fail() -> None:
    runs = [
        _run([("open", 0.01), ('close 1000 "" true', 0.5)], SERVER),
        _run([("open", 0.03), ('close 1000 "" true', 0.6)], SERVER),
        _run([("open", 0.02), ("error", 0.7), ('close 1006 "" false', 0.7)], SERVER),
    ]
    row = {
        "scenario": "x",
        "group": "browser",
        "sim": None,
        "real": runs,
        "agree": False,
        "note": chromium.NOT_SIMULATED,
    }
    assert compare.is_real_only(row) and compare.failures([row]) == []
    assert fidelity._verdict(row) == fidelity.REAL_ONLY
    page = fidelity.page_cell(runs)
    # Two variants, each with its count; times as median (range).
    assert page.startswith('2×: open @ 0.020 (0.010–0.030), close 1000 "" true @ 0.550')
    assert '1×: open @ 0.020, error @ 0.700, close 1006 "" false @ 0.700' in page
    assert fidelity.server_cell(runs) == "ConnectionClosedOK 1001/1001 EOF @ 1.010"
    data = {
        "meta": {
            "date": "d",
            "browser": {"chromium": "Chrome/1.2.3", "date": "d", "runs": 3, "wall": "9 s"},
        },
        "results": [row],
    }
    text = fidelity.render(data)
    assert "Chrome/1.2.3" in text and "| x | 2×: open" in text and "real only |" in text
    assert "1 real only, 0 unexplained" in text and "## Disagreements" not in text


@pytest.mark.skipif(
    chromium.missing() is not None or os.environ.get("WSSIM_CHROMIUM") != "1",
    reason="needs headless Chromium (apt-get install chromium) and WSSIM_CHROMIUM=1: it "
    "starts a browser, which takes seconds",
)
def test_one_scenario_in_chromium() -> None:
    out, version = asyncio.run(
        chromium.run_all([browser_scenarios.by_name("server-4000-reason")], 1, quiet=True)
    )
    assert version.startswith(("Chrome/", "HeadlessChrome/"))
    (run,) = out["server-4000-reason"]
    lines = [p["line"] for p in run["page"]]
    assert lines == ["connect", "open", 'close 4000 "session expired" true']
    assert run["server"]["code_received"] == 4000 and run["server"]["reason"] == "session expired"


# The simulated side (reality/browser_sim.py): each scenario's outcome, pinned. A change
# here is a change of wssim.browser's behaviour: re-record the comparison with
# `python3 dev.py reality -- --group browser --sim-only --record`.

PINNED = {
    "server-1000": (
        'connect @ 0.000 | open @ 0.004 | close 1000 "" true @ 0.503',
        "ConnectionClosedOK 1000/1000 EOF @ 0.504",
    ),
    "server-1001": (
        'connect @ 0.000 | open @ 0.004 | close 1001 "restart" true @ 0.503',
        'ConnectionClosedOK 1001/1001 EOF "restart" @ 0.504',
    ),
    "server-1011": (
        'connect @ 0.000 | open @ 0.004 | close 1011 "oops" true @ 0.503',
        'ConnectionClosedError 1011/1011 EOF "oops" @ 0.504',
    ),
    "server-4000-reason": (
        'connect @ 0.000 | open @ 0.004 | close 4000 "session expired" true @ 0.503',
        'ConnectionClosedError 4000/4000 EOF "session expired" @ 0.504',
    ),
    "server-empty-close": (
        'connect @ 0.000 | open @ 0.004 | close 1005 "" true @ 0.503',
        "ConnectionClosedOK 1005/1005 EOF @ 0.504",
    ),
    "server-rst": (
        'connect @ 0.000 | open @ 0.004 | close 1006 "" false @ 0.501',
        "RST sent @ 0.500",
    ),
    "server-killed": (
        'connect @ 0.000 | open @ 0.004 | close 1006 "" false @ 0.501',
        "FIN sent @ 0.500",
    ),
    "handshake-403": (
        'connect @ 0.000 | error @ 0.004 | close 1006 "" false @ 0.004',
        "HTTP HTTP 403 @ 0.003",
    ),
    "handshake-503": (
        'connect @ 0.000 | error @ 0.004 | close 1006 "" false @ 0.004',
        "HTTP HTTP 503 @ 0.003",
    ),
    "refused": (
        'connect @ 0.000 | error @ 0.000 | close 1006 "" false @ 0.000',
        "no connection",
    ),
    "never-answered": (
        "connect @ 0.000",
        "EOF (never answered) @ 10.001",
    ),
    "page-close": (
        'connect @ 0.000 | open @ 0.004 | called close() @ 0.500 | close 1005 "" true @ 0.502',
        "ConnectionClosedOK 1005/1005 EOF @ 0.503",
    ),
    "page-close-1000-bye": (
        "connect @ 0.000 | open @ 0.004 | "
        'called close(1000, "bye") @ 0.500 | close 1000 "bye" true @ 0.502',
        'ConnectionClosedOK 1000/1000 EOF "bye" @ 0.503',
    ),
    "page-close-4000": (
        'connect @ 0.000 | open @ 0.004 | called close(4000) @ 0.500 | close 4000 "" true @ 0.502',
        "ConnectionClosedError 4000/4000 EOF @ 0.503",
    ),
    "page-close-1001": (
        "connect @ 0.000 | open @ 0.004 | exception InvalidAccessError @ 0.500 | "
        'called close() @ 1.000 | close 1005 "" true @ 1.002',
        "ConnectionClosedOK 1005/1005 EOF @ 1.003",
    ),
    "page-close-long-reason": (
        "connect @ 0.000 | open @ 0.004 | "
        'exception SyntaxError @ 0.500 | called close() @ 1.000 | close 1005 "" true @ 1.002',
        "ConnectionClosedOK 1005/1005 EOF @ 1.003",
    ),
    "server-ping": (
        'connect @ 0.000 | open @ 0.004 | close 1000 "" true @ 1.003',
        "ConnectionClosedOK 1000/1000 EOF pong @ 1.004",
    ),
    "invalid-utf8": (
        'connect @ 0.000 | open @ 0.004 | error @ 0.501 | close 1006 "" false @ 0.501',
        'ConnectionClosedError 1002/1002 EOF "Invalid UTF-8 in text frame" @ 0.504',
    ),
    "reserved-bits": (
        'connect @ 0.000 | open @ 0.004 | error @ 0.501 | close 1006 "" false @ 0.501',
        'ConnectionClosedError 1002/1002 EOF "Invalid reserved bit" @ 0.504',
    ),
    "masked-frame": (
        'connect @ 0.000 | open @ 0.004 | error @ 0.501 | close 1006 "" false @ 0.501',
        'ConnectionClosedError 1002/1002 EOF "Masked frame from server" @ 0.504',
    ),
    "close-unanswered": (
        'connect @ 0.000 | open @ 0.004 | called close() @ 0.500 | close 1006 "" false @ 60.500',
        "never read @ 0.003",
    ),
    "close-answered-tcp-kept": (
        'connect @ 0.000 | open @ 0.004 | called close() @ 0.500 | close 1000 "" true @ 3.001',
        "close frame written, TCP kept @ 1.000",
    ),
    "tab-close": (
        "connect @ 0.000 | open @ 0.004",
        "ConnectionClosedOK 1001/1001 EOF @ 1.003",
    ),
    "tab-navigate": (
        "connect @ 0.000 | open @ 0.004",
        "ConnectionClosedOK 1001/1001 EOF @ 3.003",
    ),
    "tab-navigate-no-store": (
        "connect @ 0.000 | open @ 0.004",
        "ConnectionClosedOK 1001/1001 EOF @ 1.003",
    ),
    "tab-back": (
        "connect @ 0.000 | open @ 0.004 | pagehide true @ 1.000 | pageshow true @ 2.000 | "
        'error @ 2.000 | close 1006 "" false @ 2.000',
        "ConnectionClosedOK 1001/1001 EOF @ 2.003",
    ),
    "tab-reload": (
        "connect @ 0.000 | open @ 0.004 | connect @ 1.000 | open @ 1.004",
        "ConnectionClosedOK 1001/1001 EOF @ 1.003",
    ),
    "tab-crash": (
        "connect @ 0.000 | open @ 0.004",
        "ConnectionClosedOK 1001/1001 EOF @ 1.003",
    ),
}


def _pinned(got: dict[str, Any]) -> tuple[str, str]:
    page = " | ".join(f"{p['line']} @ {p['t']:.3f}" for p in got["page"])
    server = chromium.server_summary(got["server"])
    if got["server"].get("time") is not None:
        server += f" @ {got['server']['time']:.3f}"
    return page, server


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_simulated_outcome_is_pinned(scenario: browser_scenarios.BrowserScenario) -> None:
    assert _pinned(browser_sim.run(scenario)) == PINNED[scenario.name]


def test_recorded_rows_agree_or_are_known() -> None:
    data = json.loads((ROOT / "reality" / "results.json").read_text())
    rows = {r["scenario"]: r for r in data["results"] if r["group"] == "browser"}
    assert set(rows) == {s.name for s in SCENARIOS}
    for s in SCENARIOS:
        row = rows[s.name]
        assert _pinned(row["sim"]) == PINNED[s.name]
        assert row["agree"] == browser_sim.compare(row["sim"], row["real"])[0]
        assert row["agree"] or (s.known and compare.is_known(row)), s.name
        assert bool(s.known) == (not row["agree"]), s.name


def test_compare_accepts_any_observed_variant() -> None:
    rst = {**SERVER, "cause": "ECONNRESET"}
    runs = [
        _run([("open", 0.01), ('close 1000 "" true', 0.5)], rst),
        _run([("open", 0.03), ('close 1000 "" true', 0.6)], SERVER),
        _run([("open", 0.02), ("error", 0.7), ('close 1006 "" false', 0.7)], SERVER),
    ]
    sim = {"page": runs[2]["page"], "server": SERVER}
    assert browser_sim.compare(sim, runs) == (True, "")
    late = {"page": runs[2]["page"], "server": {**SERVER, "time": 2.0}}
    agree, why = browser_sim.compare(late, runs)
    assert not agree and "server outcome at 2.000 s" in why
    other = {"page": runs[0]["page"][:2], "server": SERVER}
    assert not browser_sim.compare(other, runs)[0]
    assert browser_sim.compare({"not_simulated": "why"}, runs) == (False, "not simulated: why")
