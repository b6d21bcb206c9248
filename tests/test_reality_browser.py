"""The browser group of the reality suite: scenarios, the log format, real-only rows.

Fast and without Chromium, except :func:`test_one_scenario_in_chromium`, which runs one
scenario end to end in headless Chromium (a few seconds: it starts a browser) and is
skipped unless Chromium is installed and ``WSSIM_CHROMIUM=1`` is set.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from typing import Any

import pytest

from reality import browser_scenarios, chromium, compare, fidelity
from reality.browser_scenarios import SCENARIOS, Line, frame, parse_line

LOGGED = re.compile(r'log\("(connect|open|error|close |message |exception |called )')


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
        m[1] in ("connect", "open", "error", "close ", "message ", "exception ", "called ")
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
