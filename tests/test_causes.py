"""The key numbers of lesson 02, one cause at a time: close codes and exact virtual times.

Client and server are 10 ms apart with websockets' defaults: a keepalive ping every 20 s,
a pong expected within 20 s, then 10 s (close_timeout) for the closing handshake.
"""

from __future__ import annotations

import pytest

from wssim.course import causes
from wssim.lab.diagnose import Diagnosis


def sides(d: Diagnosis) -> tuple[tuple[str, int | None, float | None], ...]:
    return tuple((s.sees, s.code, s.at) for s in (d.client, d.server))


# Network issues


def test_partition_is_noticed_only_by_keepalive_after_49_seconds() -> None:
    d = causes.partition()
    # Ping at 20 s, no pong by 40 s: CLOSE 1011 into the void, 10 s later TCP is aborted.
    assert sides(d) == (
        ("ConnectionClosedError 1006", 1006, 50.04),
        ("ConnectionClosedError 1006", 1006, 50.03),
    )
    assert d.client.after == 49.04
    assert d.server.after == 49.03
    for s in (d.client, d.server):
        assert (
            s.detail == "sent 1011 (internal error) keepalive ping timeout; no close frame received"
        )


def test_partition_healed_before_the_keepalive_gives_up_closes_nothing() -> None:
    d = causes.partition(at=1, duration=30)
    assert (d.client.saw, d.server.saw) == ("nothing", "nothing")
    assert d.client.knows == d.server.knows == "never"


def test_idle_proxy_reset_tells_both_sides_at_once() -> None:
    d = causes.idle_timeout(timeout=60, action="reset")
    assert d.cause_at == 60.03  # 60 s after the last segment of the handshake
    assert sides(d) == (
        ("ConnectionClosedError 1006", 1006, 60.03),
        ("ConnectionClosedError 1006", 1006, 60.03),
    )
    assert d.client.detail == "no close frame received or sent"
    assert d.absent == ""
    assert d.report().startswith("idle timeout (reset) (at t=60.030 s)\n")


def test_idle_nat_drop_leaves_a_half_open_connection() -> None:
    d = causes.idle_timeout(timeout=60, action="drop", push_at=90)
    # The server's push vanishes; its TCP gives up at the first timer 924.6 s past its first
    # retransmission (90.44): 944.84 s later. The client never knows.
    assert d.server.sees == "ConnectionClosedError 1006"
    assert d.server.at == 1035.28
    assert d.client.saw == "nothing"
    assert [(m.text, m.sent_at, m.received_at) for m in d.messages] == [("news", 90.0, None)]


def test_keepalive_pings_keep_an_idle_flow_alive() -> None:
    d = causes.idle_timeout(timeout=60, action="drop", ping_interval=20, until=300)
    assert (d.client.saw, d.server.saw) == ("nothing", "nothing")
    assert d.trace.first(kind="tcp", contains="idle_timeout:") is None
    assert [(m.text, m.received_at) for m in d.messages] == [("news", 90.01)]
    # The flow is never forgotten: the report claims no time for a cause that did not happen.
    assert d.absent == "the flow was never forgotten"
    assert d.report().startswith("idle timeout (drop) (the flow was never forgotten)\n")
    assert "at t=60.000" not in d.report()


def test_flaky_link_delays_messages_and_loses_none() -> None:
    d = causes.flaky_link()
    assert (d.client.saw, d.server.saw) == ("nothing", "nothing")
    delays = [m.delay for m in d.messages]
    assert len(delays) == 12
    # Sent at 10 s in an 8 s outage: a tail-loss probe at 10.22 s, then retransmissions
    # with the RTO (0.22 s) doubling: 10.44, 10.88, 11.76, 13.52, 17.04, then 24.08 s, the
    # first after the heal at 18 s.
    assert delays[:5] == [0.01, 14.09, 9.09, 4.09, 0.01]
    assert max(d for d in delays if d is not None) == 14.09


# Browser crash


def test_tab_closed_is_a_normal_1001() -> None:
    d = causes.tab_closed(at=1)
    assert sides(d) == (
        ("ConnectionClosedOK 1001", 1001, 1.02),
        ("ConnectionClosedOK 1001", 1001, 1.03),
    )
    # As a browser does when the page goes away: 1001 and no reason.
    assert d.server.detail == "received 1001 (going away); then sent 1001 (going away)"


def test_browser_crash_gives_the_server_1006_within_one_trip() -> None:
    d = causes.browser_crash(at=1)
    assert d.client.saw == "crashed"
    assert d.client.knows == "(dead)"
    assert (d.server.sees, d.server.at, d.server.after) == (
        "ConnectionClosedError 1006",
        1.01,
        0.01,
    )
    assert d.server.detail == "no close frame received or sent"


def test_suspended_laptop_server_knows_by_keepalive_client_on_wake_up() -> None:
    d = causes.suspended(at=1, duration=120)
    assert sides(d) == (
        ("ConnectionClosedError 1006", 1006, 121.02),
        ("ConnectionClosedError 1006", 1006, 50.03),
    )
    # On wake-up the client pings a server that forgot the connection: RST.
    assert d.trace.first(kind="tcp", side="client", contains="reset by peer").time == 121.02


def test_power_loss_gives_the_server_nothing_until_keepalive() -> None:
    d = causes.power_lost(at=1)
    assert d.client.saw == "lost power"
    assert (d.server.sees, d.server.at) == ("ConnectionClosedError 1006", 50.03)
    # Silence: after the power loss, the client sends nothing at all, not even a FIN.
    assert [e for e in d.trace.filter(since=1.0) if e.host == "client" and e.peer] == []


# Server overload


def test_handshake_refused_with_503_when_the_server_is_full() -> None:
    d = causes.handshake_refused(at=1)
    # Admission(max_connections=1): the crowd's connection at t=0 fills the server.
    assert (d.client.sees, d.client.at) == ("InvalidStatus (HTTP 503)", 1.04)
    assert d.client.detail == "server rejected WebSocket connection: HTTP 503"
    assert (d.server.sees, d.server.at) == ("HTTP 503 sent", 1.03)
    assert d.trace.first(kind="http", host="crowd1").text == "GET / (Upgrade: websocket)"
    assert d.trace.first(kind="http", side="server", conn="c1").code == 101


def test_load_shed_with_1013() -> None:
    d = causes.load_shed(at=1)
    assert sides(d) == (
        ("ConnectionClosedError 1013", 1013, 1.03),
        ("ConnectionClosedError 1013", 1013, 1.04),
    )
    assert d.client.detail == (
        "received 1013 (try again later) server overloaded; "
        "then sent 1013 (try again later) server overloaded"
    )


def test_frozen_server_loop_fails_the_clients_keepalive() -> None:
    d = causes.frozen_loop(at=1, duration=60)
    assert sides(d) == (
        ("ConnectionClosedError 1006", 1006, 50.04),
        # Thawed at 61 s, the server reads the client's CLOSE 1011 queued since 40 s.
        ("ConnectionClosedError 1011", 1011, 61.0),
    )
    assert d.server.detail.startswith("received 1011 (internal error) keepalive ping timeout")


def test_a_short_freeze_is_survived() -> None:
    d = causes.frozen_loop(at=1, duration=15)
    assert (d.client.saw, d.server.saw) == ("nothing", "nothing")


# Server restart or deploy


def test_deploy_with_1001_is_ok_and_with_1012_an_error() -> None:
    going = causes.deploy(at=1)
    assert sides(going) == (
        ("ConnectionClosedOK 1001", 1001, 1.03),
        ("ConnectionClosedOK 1001", 1001, 1.04),
    )
    restart = causes.deploy(at=1, code=1012)
    assert sides(restart) == (
        ("ConnectionClosedError 1012", 1012, 1.03),
        ("ConnectionClosedError 1012", 1012, 1.04),
    )
    assert "deploying" in restart.client.detail


# Protocol errors


def test_message_too_big_fails_the_connection_with_1009() -> None:
    d = causes.message_too_big(at=1)
    assert sides(d) == (
        ("ConnectionClosedError 1009", 1009, 1.02),
        # RFC 6455 7.1.7: after failing, the server reads nothing more, not even the
        # client's CLOSE: it reports 1006.
        ("ConnectionClosedError 1006", 1006, 1.03),
    )
    assert d.server.detail == (
        "sent 1009 (message too big) frame exceeds limit of 1048576 bytes; no close frame received"
    )
    assert d.messages[0].received_at is None


def test_every_cause_has_a_remedy_and_a_lesson() -> None:
    for cause in causes.ALL:
        d = cause()
        assert d.remedy and d.advice and d.lessons, cause.__name__


def test_same_cause_same_trace() -> None:
    assert causes.suspended().trace == causes.suspended().trace


def test_bad_parameters_raise_value_error() -> None:
    with pytest.raises(ValueError, match="every must be a finite number of seconds > 0"):
        causes.flaky_link(every=0)
    with pytest.raises(ValueError, match="action must be 'drop', 'reset' or 'reject'"):
        causes.idle_timeout(action="close")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="duration must be > 0"):
        causes.suspended(duration=0)
    with pytest.raises(ValueError, match="shutdown_code must be a close code"):
        causes.deploy(code=1006)
