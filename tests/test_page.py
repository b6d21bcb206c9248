"""wssim.lab.page and wssim.course.pagecauses: what a page saw, at exact virtual times."""

from __future__ import annotations

import pytest

from wssim.course import pagecauses
from wssim.lab.diagnose import ServerPlan
from wssim.lab.page import PageEvent, PagePlan, page_experiment, summary


def test_a_server_close_reaches_the_page_with_its_code_reason_and_clean_flag() -> None:
    d = page_experiment(
        "server closes",
        server=ServerPlan(close_at=1, close_code=4000, close_reason="go away"),
        cause_at=1,
        until=5,
    )
    assert d.page.events == (
        PageEvent(0.04, "open"),
        PageEvent(1.03, "close", 4000, "go away", True),
    )
    assert d.page.sees == 'close 4000 "go away" true'
    assert (d.page.at, d.page.knows) == (1.03, "0.03 s")
    assert (d.server.sees, d.server.at) == ("ConnectionClosedError 4000", 1.04)


def test_each_cause_seen_from_the_page_and_the_server() -> None:
    table = summary(
        [
            pagecauses.partition(),
            pagecauses.idle_timeout(),
            pagecauses.tab_closed(),
            pagecauses.renderer_crash(),
            pagecauses.browser_crash(),
            pagecauses.suspended(),
            pagecauses.power_lost(),
            pagecauses.handshake_refused(),
            pagecauses.handshake_refused(status=403),
            pagecauses.load_shed(),
            pagecauses.frozen_loop(),
            pagecauses.deploy(code=1012),
            pagecauses.message_too_big(),
        ]
    )
    dead, too_big = (
        "nothing (the page is dead)",
        "frame with 1048577 bytes exceeds limit of 1048576",
    )
    failed, e1006, asleep = 'error, close 1006 "" false', "Error 1006", "keepalive ping timeout"
    assert table.rows == [
        ("network partition", "nothing (still open)", "never", "Error 1006", "49.03 s"),
        ("idle timeout (reset)", 'close 1006 "" false', "0.00 s", "Error 1006", "0.00 s"),
        ("tab closed", "nothing (the tab is closed)", "(gone)", "OK 1001", "0.03 s"),
        ("renderer crash", dead, "(gone)", "OK 1001", "0.03 s"),
        ("browser crash", dead, "(gone)", "Error 1006", "0.01 s"),
        ("laptop asleep", f'close 1011 "{asleep}" true', "131.68 s", e1006, "49.03 s"),
        ("power lost", dead, "(gone)", "Error 1006", "49.03 s"),
        ("handshake refused: HTTP 503", failed, "0.04 s", "HTTP 503 sent", "0.03 s"),
        ("handshake refused: HTTP 403", failed, "0.04 s", "HTTP 403 sent", "0.03 s"),
        ("overload: 1013 shed", 'close 1013 "server overloaded" true', "0.03 s", "Error 1013", "0.04 s"),  # noqa: E501
        ("overload: frozen loop", "nothing (still open)", "never", "nothing", "never"),
        ("server deploy (1012)", 'close 1012 "deploying" true', "0.03 s", "Error 1012", "0.04 s"),
        ("protocol error: 1009", f'close 1009 "{too_big} bytes" true', "0.02 s", e1006, "0.17 s"),
    ]  # fmt: skip


def test_the_page_cannot_tell_403_from_503_but_the_server_can() -> None:
    forbidden, busy = pagecauses.handshake_refused(status=403), pagecauses.handshake_refused()
    assert forbidden.page.events == busy.page.events
    assert [e.code for e in forbidden.trace.filter(kind="http", side="server")] == [403]


def test_a_renderer_crash_still_closes_with_1001_but_a_browser_crash_does_not() -> None:
    # The browser's network service closes a dead renderer's sockets (reality: tab-crash).
    d = pagecauses.renderer_crash(at=2)
    close = d.trace.first(kind="frame", host="client", since=1)
    assert close is not None and (close.time, close.text) == (
        2.0,
        "CLOSE 1001 (going away) [2 bytes]",
    )
    d = pagecauses.browser_crash(at=2)
    assert d.trace.first(kind="frame", host="client", since=1) is None
    fin = d.trace.first(kind="tcp", host="client", since=1)
    assert fin is not None and (fin.time, fin.text) == (2.0, "FIN")


def test_the_page_sends_at_its_times_and_the_summary_has_one_row_each() -> None:
    d = pagecauses.flaky_link(outages=[(10, 8)], every=5, until=30)
    received = [e.time for e in d.trace.filter(kind="log", side="server") if "TEXT" in e.text]
    assert received[:2] == [5.01, 24.1]
    table = summary([d, pagecauses.deploy()])
    assert [row[0] for row in table.rows] == ["flaky link", "server deploy (1001)"]
    assert table.rows[1][1:] == ('close 1001 "" true', "0.03 s", "OK 1001", "0.04 s")


def test_runs_are_deterministic() -> None:
    first, second = pagecauses.suspended(), pagecauses.suspended()
    assert str(first.trace.table()) == str(second.trace.table())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sends": [(1, 2)]}, "sends must be (time, text) pairs"),
        ({"sends": [(-1, "x")]}, "sends time must be >= 0 seconds"),
        ({"connect_at": 2, "sends": [(1, "x")]}, "sends must come after connect_at (2 s)"),
        (
            {"tab": [(1, "explode")]},
            "action one of close, navigate, navigate-uncached, back, reload, crash",
        ),
        ({"connect_at": "soon"}, "connect_at must be a finite number of seconds"),
    ],
)
def test_bad_plans_name_the_parameter(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PagePlan(**kwargs)  # type: ignore[arg-type]


def test_bad_experiment_parameters_name_the_parameter() -> None:
    with pytest.raises(ValueError, match="until must be >= cause_at"):
        page_experiment("x", cause_at=5, until=1)
    with pytest.raises(ValueError, match="crowd must be an integer >= 0"):
        page_experiment("x", crowd=-1)
    with pytest.raises(ValueError, match="status must be 503 or 403"):
        pagecauses.handshake_refused(status=404)
    with pytest.raises(ValueError, match="every must be a finite number"):
        pagecauses.flaky_link(every=0)


def test_a_page_left_by_navigation_stays_connected_until_evicted_or_back() -> None:
    cached = pagecauses.navigated_away(at=1)
    assert (cached.page.sees, cached.page.knows) == ("nothing (cached, still open)", "never")
    assert cached.server.at is None
    evicted = pagecauses.navigated_away(at=1, until=700)
    assert evicted.page.knows == "(gone)" and evicted.server.at == 601.03
    uncached = pagecauses.navigated_away(at=1, cached=False)
    assert uncached.page.sees == "nothing (the page is gone)" and uncached.server.at == 1.03
    back = pagecauses.navigated_away(at=1, back_at=30)
    assert back.page.sees == 'error, close 1006 "" false' and back.page.at == 30.0
    assert back.server.at == 30.03
    with pytest.raises(ValueError, match="back_at must come after at"):
        pagecauses.navigated_away(at=5, back_at=5)
