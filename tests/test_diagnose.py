"""Experiments of one server and one client, and what each side saw, read from the trace."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import wssim
from wssim import faults
from wssim.lab.diagnose import (
    LESSONS,
    ClientPlan,
    Injection,
    ServerPlan,
    deliveries,
    diagnose,
    experiment,
    seen,
    summary,
)


def test_a_quiet_experiment_sees_nothing() -> None:
    d = experiment("nothing", until=30)
    for s in (d.client, d.server):
        assert (s.saw, s.code, s.at, s.after, s.knows) == ("nothing", None, None, None, "never")
        assert s.detail == "still OPEN at the end"
    # Both keepalive pings went through: websockets' default ping_interval is 20 s.
    assert len(d.trace.filter(kind="frame", contains="PONG")) == 2


def test_client_plan_sends_and_closes_at_virtual_times() -> None:
    d = experiment(
        "client leaves",
        client=ClientPlan(
            sends=[(2, "b"), (1, "a")], close_at=3, close_code=4000, close_reason="bye"
        ),
        cause_at=3,
        until=10,
    )
    assert [(m.text, m.sender, m.sent_at, m.received_at, m.delay) for m in d.messages] == [
        ("a", "client", 1.0, 1.01, 0.01),
        ("b", "client", 2.0, 2.01, 0.01),
    ]
    assert (d.client.sees, d.client.at, d.client.after) == (
        "ConnectionClosedError 4000",
        3.02,
        0.02,
    )
    assert d.server.detail == "received 4000 (private use) bye; then sent 4000 (private use) bye"


def test_server_plan_pushes_and_closes_each_connection() -> None:
    d = experiment(
        "server sheds",
        server=ServerPlan(pushes=[(1, "news")], close_at=2, close_code=1013),
        cause_at=2,
        until=10,
    )
    assert [(m.text, m.sender, m.received_at) for m in d.messages] == [("news", "server", 1.01)]
    assert (d.client.sees, d.client.at) == ("ConnectionClosedError 1013", 2.03)


def test_server_plan_shuts_down() -> None:
    d = experiment("deploy", server=ServerPlan(shutdown_at=1, shutdown_code=1012), until=10)
    assert (d.client.sees, d.server.sees) == ("ConnectionClosedError 1012",) * 2


def test_a_crashed_server_restarts_as_a_service() -> None:
    d = experiment(
        "server crash",
        faults=[(faults.Crash("server"), 1.0, 2.0)],
        cause_at=1,
        until=10,
    )
    assert (d.server.saw, d.server.knows) == ("crashed", "(dead)")
    assert (d.client.sees, d.client.after) == ("ConnectionClosedError 1006", 0.01)
    assert d.trace.first(kind="tcp", contains="listening", since=2.0).time == 3.0


def test_only_the_client_hosts_connection_is_diagnosed() -> None:
    d = experiment(
        "late client",
        client=ClientPlan(connect_at=2, close_at=3),
        crowd=2,
        cause_at=3,
        until=10,
    )
    # The crowd connected at t=0 (c1, c2) and stays; the client's connection is c3.
    assert [e.time for e in d.trace.filter(kind="tcp", contains="SYN-ACK")] == [0.01, 0.01, 2.01]
    assert (d.client.sees, d.client.at) == ("ConnectionClosedOK 1000", 3.02)
    assert (d.server.sees, d.server.at) == ("ConnectionClosedOK 1000", 3.03)


def test_calls_run_at_their_virtual_times() -> None:
    calls: list[float] = []

    def call() -> None:
        calls.append(asyncio.get_running_loop().time())

    experiment("calls", calls=[(2.5, call)], until=5)
    assert calls == [pytest.approx(2.5, abs=1e-9)]


def test_injections_accept_named_tuples_and_plain_tuples() -> None:
    cut = faults.Partition("client", "server")
    a = experiment("cut", faults=[Injection(cut, 1.0)], until=60)
    b = experiment("cut", faults=[(faults.Partition("client", "server"), 1.0, None)], until=60)
    assert a.trace == b.trace


def test_seen_reads_any_trace() -> None:
    with wssim.Simulation() as sim:
        sim.host("server").spawn(ServerPlan().run())
        sim.host("client").spawn(ClientPlan(close_at=1).run())
        trace = sim.run(until=5)
    s = seen(trace, "server", cause_at=1)
    assert (s.sees, s.at, s.after) == ("ConnectionClosedOK 1000", 1.03, 0.03)
    assert seen(wssim.Trace(), "client").detail == "no connection"
    with pytest.raises(ValueError, match="side must be 'client' or 'server'"):
        seen(trace, "browser")


def test_deliveries_of_an_empty_trace() -> None:
    assert deliveries(wssim.Trace()) == []


def test_report_answers_the_three_questions() -> None:
    d = experiment(
        "client leaves",
        client=ClientPlan(close_at=1),
        cause_at=1,
        until=5,
        remedy="nothing",
        advice="Nothing to do.",
        lessons=("06",),
    )
    assert d.report() == "\n".join(
        [
            "client leaves (at t=1.000 s)",
            "1. What does each side see?",
            "   client  ConnectionClosedOK 1000: sent 1000 (OK); then received 1000 (OK)",
            "   server  ConnectionClosedOK 1000: received 1000 (OK); then sent 1000 (OK)",
            "2. After how long does each side know?",
            "   client  at t=1.020 s: 0.02 s after the cause",
            "   server  at t=1.030 s: 0.03 s after the cause",
            "3. What should the code do?",
            "   Nothing to do.",
            "   (lesson 06 releasing server resources)",
        ]
    )
    assert d.side("client") is d.client
    with pytest.raises(ValueError, match="name must be"):
        d.side("proxy")


def test_summary_has_a_row_per_diagnosis() -> None:
    quiet = experiment("quiet", until=1, remedy="none", lessons=("04", "03"))
    table = str(summary([quiet, quiet]))
    lines = table.splitlines()
    assert lines[0].split() == [
        "cause", "client", "sees", "server", "sees", "client", "knows", "server", "knows",
        "remedy", "lesson",
    ]  # fmt: skip
    assert len(lines) == 4
    assert lines[2].split() == [
        "quiet",
        "nothing",
        "nothing",
        "never",
        "never",
        "none",
        "04,",
        "03",
    ]


def test_diagnose_names_lessons() -> None:
    d = diagnose(wssim.Trace(), "x", lessons=["03", "04"])
    assert d.lesson == f"{LESSONS['03']}, {LESSONS['04']}"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ClientPlan(close_code=1006), "close_code must be a close code allowed"),
        (lambda: ClientPlan(close_code=True), "close_code must be an integer"),
        (lambda: ClientPlan(close_at=-1), "close_at must be >= 0"),
        (lambda: ClientPlan(connect_at=-1), "connect_at must be >= 0"),
        (lambda: experiment("x", crowd=-1), "crowd must be an integer >= 0"),
        (lambda: experiment("x", calls=[(-1, print)]), "calls time must be >= 0"),
        (lambda: ClientPlan(sends=[(1, 2)]), "sends must be"),
        (lambda: ClientPlan(sends=[(float("nan"), "a")]), "sends time must be a finite"),
        (lambda: ServerPlan(shutdown_code=1005), "shutdown_code must be"),
        (lambda: ServerPlan(close_at="soon"), "close_at must be a finite"),
        (lambda: experiment("x", cause_at=10, until=5), "until must be >= cause_at"),
        (lambda: experiment("x", until=-1), "until must be >= 0"),
        (lambda: diagnose(wssim.Trace(), "x", lessons=["07"]), "lessons must be among"),
        (lambda: diagnose(wssim.Trace(), "x", cause_at=-2), "cause_at must be >= 0"),
    ],
)
def test_bad_parameters_raise_value_error(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_report_without_a_remedy_answers_two_questions() -> None:
    report = experiment("quiet", until=1).report()
    assert report.splitlines()[-3:] == [
        "2. After how long does each side know?",
        "   client  never: still OPEN at the end",
        "   server  never: still OPEN at the end",
    ]
