"""Lesson 06's scenarios, checked on their ledgers: with the cure, nothing is left at the end;
without it, exactly the leak the lesson prints.

The scenarios are the lesson's own code: the notebook's code cells run here once, in one
namespace, and the tests read the results they left behind (nbval checks the printed text).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import nbformat
import pytest

from wssim.toolkit.resources import Ledger, ResourceLeak
from wssim.trace import Trace

NOTEBOOK = (
    Path(__file__).resolve().parent.parent / "notebooks" / "06-releasing-server-resources.ipynb"
)
BUFFERED = "write buffers (bytes)"


@pytest.fixture(scope="module")
def lesson() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "lesson06"}
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    with contextlib.redirect_stdout(io.StringIO()):
        for cell in notebook.cells:
            if cell.cell_type == "code":
                exec(compile(cell.source, f"{NOTEBOOK.name}:{cell.id}", "exec"), namespace)
    plt.close("all")
    return namespace


def ledger(lesson: dict[str, Any], name: str) -> Ledger:
    trace, result = lesson[name]
    assert isinstance(trace, Trace)
    assert isinstance(result, Ledger)
    return result


@pytest.mark.parametrize(
    ("leak", "cure", "left"),
    [
        ("leak1", "cure1", {"db session": 30}),
        ("leak2", "cure2", {"task": 60, "db session": 0}),
        ("leak3", "cure3", {"subscription": 60}),
        ("leak4", "cure1", {"db session": 18}),
        ("leak5", "cure5", {"db session": 4}),
        ("exercise1_leaky", "exercise1", {"subscription": 30, "task": 60}),
    ],
)
def test_each_cure_leaves_nothing_and_each_leak_is_the_number_printed(
    lesson: dict[str, Any], leak: str, cure: str, left: dict[str, int]
) -> None:
    leaky, cured = ledger(lesson, leak), ledger(lesson, cure)
    assert leaky.by_kind() == left
    with pytest.raises(ResourceLeak):
        leaky.check()
    assert cured.held() == 0
    assert set(cured.kinds) == set(leaky.kinds)
    assert cured.acquired() == leaky.acquired()  # the same crowd, the same resources
    cured.check()


def test_the_leaks_are_the_clients_the_lesson_names(lesson: dict[str, Any]) -> None:
    leaked_by_fate = lesson["leaked_by_fate"]
    assert leaked_by_fate(*lesson["leak1"]) == {"vanishes": 18, "crashes": 12}
    assert leaked_by_fate(*lesson["leak4"]) == {"vanishes": 18}
    assert leaked_by_fate(*lesson["leak5"]) == {"freezes": 4}


def test_the_heartbeat_releases_half_open_connections_within_its_bound(
    lesson: dict[str, Any],
) -> None:
    delays = lesson["release_delays"](*lesson["cure1"])
    assert (len(delays), min(delays), max(delays)) == (18, 33.46, 45.02)
    # At most ping_interval + ping_timeout + close_timeout after the cut.
    assert all(30 <= d <= 50 for d in delays)


def test_a_slow_consumer_grows_the_buffer_until_the_server_drops_it(
    lesson: dict[str, Any],
) -> None:
    no_heartbeat, default, dropping = (ledger(lesson, n) for n in ("slow0", "slow1", "slow2"))
    # The slow client's receive buffer holds exactly 128 KiB: a write that does not fit is
    # sent in part (the last 812 bytes of a 2004-byte frame: 131072 = 65 * 2004 + 812),
    # and only the rest waits in the server's write buffer. The window closes once, when
    # the reader is behind, and never opens again: the client never reads.
    slow = lesson["slow0"][0].filter(kind="tcp", host="slow", contains="window")
    assert [e.text for e in slow if "probe" not in e.text] == [
        "receive buffer full (130260 bytes unread): zero window, the sender waits"
    ]
    # The server's TCP probes the closed window; the slow client's kernel answers every
    # probe, so the server waits for ever (RFC 1122 4.2.2.17), backing off to 120 s.
    probes = lesson["slow0"][0].filter(kind="tcp", host="server", contains="zero-window probe")
    assert len(probes) >= 8
    assert lesson["slow0"][0].first(kind="tcp", contains="timed out") is None
    assert no_heartbeat.by_kind() == {"subscription": 1, BUFFERED: 2356488}
    # The keepalive does not help: its ping (6 bytes) waits for the buffer to drain.
    assert default.by_kind() == {"subscription": 1, BUFFERED: 2356494}
    assert default.series(BUFFERED).at(50) > default.series(BUFFERED).at(30) > 0
    assert dropping.by_kind() == {"subscription": 0, BUFFERED: 0}
    assert dropping.series(BUFFERED).peak == 252288
    dropping.check()
    trace = lesson["slow2"][0]
    closed = trace.first(kind="closed", side="server", contains="too slow")
    assert closed is not None and closed.time == 22.53
    assert "sent 1013 (try again later) too slow; no close frame received" in closed.text


def test_a_deploy_closes_everything_with_1012_and_leaves_nothing(lesson: dict[str, Any]) -> None:
    trace, result = lesson["shutdown"]
    result.check()
    assert result.acquired() == 200
    assert lesson["outcomes"](trace, "server") == {"1012": 97, "1006": 3}
    # The three frozen clients never learn anything while frozen: their kernels receive the
    # server's close frame and, close_timeout later, its FIN (abort() closes the socket; with
    # nothing unread that sends a FIN, not an RST).
    assert lesson["outcomes"](trace, "client") == {"1012": 97, "still open": 3, "refused": 1}
    assert result.last_change == 25.2
    longer = ledger(lesson, "longer")
    longer.check()
    assert longer.last_change == 30.2
    ledger(lesson, "exercise3").check()


def test_the_exercises_check_themselves_on_the_lesson_s_crowd(lesson: dict[str, Any]) -> None:
    checks = lesson["lesson06"]
    # The checks run their own copy of the crowd: it leaves what the lesson's leaves.
    leaky = ledger(lesson, "exercise1_leaky").by_kind()
    assert checks.leaky_leftovers() == leaky == lesson["predicted_left"]
    assert checks.no_leaks(lesson["no_leaks"], lesson["predicted_left"]).passed
    assert not checks.no_leaks(lesson["two_leaks"], lesson["predicted_left"]).passed
    assert checks.longer_grace(lesson["longer"], lesson["server_closed_at"]).passed
    assert checks.idle_close(lesson["idle_timeout"]).passed
    assert not checks.idle_close(lesson["with_finally"]).passed
