"""The protocol part of the reality suite: lesson 05's cases, simulated and on loopback.

The simulation side and the comparison run here in full; real loopback TCP only for a few
quick cases (a few milliseconds each): the whole catalogue takes 45 s, see
``python -m reality.protocol``.
"""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from reality import protocol
from reality.protocol import Outcome, compare, run_real, run_sim, scenario, summary, table
from wssim.course.protocolerrors import CATALOGUE, case
from wssim.lab import protocol as lab

IMMEDIATE = case("unmasked client frame")


def outcome(**changes: object) -> Outcome:
    base = Outcome(
        exception="ConnectionClosedError",
        code_received=None,
        code_sent=1002,
        cause="EOF",
        time=0.0001,
        tcp_time=0.0001,
        reason="incorrect masking",
        status=101,
        frames=[],
    )
    base.update(changes)  # type: ignore[typeddict-item]
    return base


# ---------------------------------------------------------------- comparing


def test_identical_outcomes_agree_and_the_note_gives_the_largest_time_gap() -> None:
    agree, note = compare(outcome(), [outcome(time=0.0011), outcome(tcp_time=0.0031)])
    assert agree
    assert note == "|Δt| ≤ 3.0 ms"


def test_times_within_the_tolerance_agree_beyond_it_do_not() -> None:
    assert compare(outcome(time=1.0), [outcome(time=1.049)])[0]
    agree, note = compare(outcome(time=1.0), [outcome(time=1.049), outcome(time=1.2)])
    assert not agree
    assert note == "time: sim 1.000 s, real 1.049 s, 1.200 s"


def test_a_time_on_one_side_only_disagrees() -> None:
    agree, note = compare(outcome(time=None), [outcome(time=0.0)])
    assert not agree
    assert note == "time: sim none, real 0.000 s"
    assert compare(outcome(time=None), [outcome(time=None)]) == (True, "|Δt| ≤ 0.0 ms")


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ({"exception": "ConnectionClosedOK"}, "exception: sim 'ConnectionClosedError', real"),
        ({"code_received": 1000}, "code_received: sim None, real 1000"),
        ({"code_sent": 1009}, "code_sent: sim 1002, real 1009"),
        ({"cause": "ECONNRESET"}, "cause: sim 'EOF', real 'ECONNRESET'"),
        ({"reason": ""}, "reason: sim 'incorrect masking', real ''"),
        ({"status": 400}, "status: sim 101, real 400"),
        ({"frames": ["PING"]}, "frames: sim [], real ['PING']"),
    ],
)
def test_every_key_must_be_equal(change: dict[str, object], text: str) -> None:
    agree, note = compare(outcome(), [outcome(), outcome(**change), outcome()])
    assert not agree
    assert note.startswith(text)
    assert note.endswith("(run 2)")


def test_a_difference_in_every_run_is_said_once() -> None:
    agree, note = compare(outcome(), [outcome(cause="ECONNRESET")] * 3)
    assert (agree, note) == (False, "cause: sim 'EOF', real 'ECONNRESET' (all runs)")
    assert compare(outcome(), []) == (False, "no real run")


# ---------------------------------------------------------------- the simulation side


def test_the_simulation_sees_an_immediate_protocol_error_after_one_round_trip() -> None:
    sim = run_sim(IMMEDIATE)
    assert sim == outcome(time=2 * protocol.SIM_LATENCY, tcp_time=2 * protocol.SIM_LATENCY)


def test_a_normal_close_is_a_connection_closed_ok_with_both_codes() -> None:
    sim = run_sim(case("a valid text message"))
    assert sim["exception"] == "ConnectionClosedOK"
    assert (sim["code_received"], sim["code_sent"], sim["frames"]) == (1000, 1000, ["TEXT"])
    assert sim["time"] == pytest.approx(1.0 + 2 * protocol.SIM_LATENCY)


def test_a_client_that_fails_is_timed_out_by_close_timeout_and_keepalive() -> None:
    sim = run_sim(case("RSV1 set; the server never closes TCP", "client"))
    assert (sim["exception"], sim["code_sent"], sim["cause"]) == (
        "ConnectionClosedError",
        1002,
        "EOF",  # abort() closes the socket: a FIN, as on Linux (nothing was left unread)
    )
    assert sim["tcp_time"] == pytest.approx(20.0, abs=0.01)


def test_handshake_failures_have_a_status_or_an_exception_and_no_close_frame() -> None:
    server = run_sim(case("Sec-WebSocket-Version: 8"))
    assert (server["status"], server["exception"], server["time"]) == (400, None, None)
    client = run_sim(case("200 OK instead of 101", "client"))
    assert (client["exception"], client["code_sent"]) == ("InvalidStatus", None)


# One case of each group: the lesson's own runner, at its own latency, sees the same.
ONE_PER_GROUP = list({(c.side, c.group): c for c in CATALOGUE}.values())


def test_the_simulation_side_is_the_lessons_experiment() -> None:
    for item in ONE_PER_GROUP:
        lesson = lab.run(item)
        ours = run_sim(item, latency=0.010)
        name = scenario(item)
        assert ours["code_sent"] == lesson.code, name
        assert ours["reason"] == lesson.reason, name
        others = [r.split(" ", 1)[0] for r in lesson.received if not r.startswith("CLOSE")]
        assert ours["frames"] == others, name
        assert ours["cause"] == (None if lesson.tcp == "open" else protocol.CAUSES[lesson.tcp])
        if item.handshake is None or item.side == "client":
            # The bytes leave once the handshake is over: 40 ms for a raw client, 30 for a
            # raw server.
            start = 0.040 if item.side == "server" else 0.030
            if lesson.close_at is not None:
                assert ours["time"] == pytest.approx(lesson.close_at - start), name
            assert ours["tcp_time"] == pytest.approx((lesson.tcp_at or 0.0) - start), name
        if lesson.library.startswith(("ConnectionClosed", "Invalid")):
            assert lesson.library.startswith(f"{ours['exception']}:"), name


def test_every_case_has_a_unique_scenario_name() -> None:
    names = [scenario(c) for c in CATALOGUE]
    assert len(set(names)) == len(names)
    assert names[0] == "server: a valid text message"


# ---------------------------------------------------------------- real loopback TCP


def test_real_loopback_agrees_on_an_immediate_protocol_error() -> None:
    cases = [IMMEDIATE, case("masked server frame", "client"), case("not HTTP at all")]
    real = run_real(cases, runs=1)
    for item, (outcome_,) in zip(cases, real, strict=True):
        agree, note = compare(run_sim(item), [outcome_])
        assert agree, f"{item.name}: {note}"
    assert real[0][0]["code_sent"] == 1002
    assert real[0][0]["time"] is not None and real[0][0]["time"] < protocol.TOLERANCE


def test_the_real_raw_client_tells_a_reset_from_a_close() -> None:
    """A server that resets (SO_LINGER 0): the raw client reads ECONNRESET, not EOF."""

    class Resetting(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()

    async def main() -> str | None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Resetting, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        raw = await protocol._LoopbackClient.connect("127.0.0.1", port, timeout=1.0)
        await raw.wait_closed(1.0)
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0)
        return raw.tcp

    assert asyncio.run(main()) == "RST"


def test_run_compares_each_case_and_says_so_in_a_table() -> None:
    results = protocol.run(runs=2, cases=[IMMEDIATE])
    (result,) = results
    assert result["scenario"] == "server: unmasked client frame"
    assert result["group"] == "protocol"
    assert len(result["real"]) == 2
    assert result["agree"], result["note"]
    text = str(table(results))
    assert "ConnectionClosedError -/1002 EOF ×2" in text
    assert summary(result["sim"]) == "ConnectionClosedError -/1002 EOF"


@pytest.mark.parametrize("runs", [0, -1, True, 1.5])
def test_run_real_wants_a_positive_number_of_runs(runs: object) -> None:
    with pytest.raises(ValueError, match="runs must be a positive integer"):
        run_real([IMMEDIATE], runs)  # type: ignore[arg-type]


def test_run_real_wants_one_expected_duration_per_case() -> None:
    with pytest.raises(ValueError, match="expected has 2 values for 1 cases"):
        run_real([IMMEDIATE], expected=[1.0, 2.0])
