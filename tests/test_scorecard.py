"""The scorecard's measurements, on hand-built scenarios with exact counts and times."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from wssim import Simulation
from wssim.lab.scorecard import (
    Line,
    MessageCounts,
    MessageLog,
    Scorecard,
    Targets,
    attempts_per_second,
    disconnections,
    handler_failures,
    score,
)
from wssim.raw import RawClient
from wssim.toolkit.resources import Ledger, conn_id


def log_of(sent: list[int], delivered: list[int]) -> MessageLog:
    log = MessageLog()
    for n in sent:
        log.sent("s", n)
    for n in delivered:
        log.delivered("s", n)
    return log


@pytest.mark.parametrize(
    ("delivered", "lost", "duplicated", "reordered"),
    [
        ([1, 2, 3, 4], 0, 0, 0),
        ([1, 2, 4], 1, 0, 0),  # 3 lost; 4 after 2 is no reorder
        ([1, 2, 2, 3, 4], 0, 1, 0),
        ([1, 3, 2, 4], 0, 0, 1),
        ([2, 1, 2, 4], 1, 1, 1),  # 1 after 2: reordered; 2 again: duplicated; 3 lost
        ([], 4, 0, 0),
    ],
)
def test_messages_are_counted_by_id(
    delivered: list[int], lost: int, duplicated: int, reordered: int
) -> None:
    counts = log_of([1, 2, 3, 4], delivered).counts()
    assert counts == MessageCounts(4, len(delivered), lost, duplicated, reordered, 0)


def test_streams_are_counted_apart_and_unknown_ids_set_aside() -> None:
    log = MessageLog()
    for stream in ("a", "b"):
        for n in (1, 2):
            log.sent(stream, n)
    for stream, n in [("a", 2), ("b", 1), ("a", 1), ("b", 9)]:
        log.delivered(stream, n)
    assert log.counts() == MessageCounts(4, 4, 1, 0, 1, 1)
    assert log.counts(["b"]) == MessageCounts(2, 2, 1, 0, 0, 1)
    assert log.lost_ids("b") == [2]
    assert log.streams == ["a", "b"]


def test_a_message_id_is_sent_once() -> None:
    log = log_of([1], [])
    with pytest.raises(ValueError, match="message_id 1 was already sent on stream 's'"):
        log.sent("s", 1)


def test_the_longest_silence_counts_from_the_window_edges() -> None:
    log = MessageLog()
    for t in (1.0, 3.0, 10.0, 20.0):
        log.delivered("s", int(t), at=t)
    assert log.silence("s", since=0.0, until=12.0) == (7.0, 3.0)
    assert log.silence("s", since=0.0, until=31.0) == (11.0, 20.0)  # the end counts too
    assert log.silence("s", since=0.0, until=30.0) == (10.0, 10.0)  # a tie: the first one
    assert log.silence("nothing", since=5.0, until=8.0) == (3.0, 5.0)
    with pytest.raises(ValueError, match="until must be >= since"):
        log.silence("s", since=2.0, until=1.0)


def test_targets_check_their_values() -> None:
    with pytest.raises(ValueError, match="disconnected must be a finite number of seconds > 0"):
        Targets(disconnected=0)
    with pytest.raises(ValueError, match="attempts_per_second must be an integer >= 1"):
        Targets(attempts_per_second=2.5)  # type: ignore[arg-type]


def test_a_scorecard_prints_a_line_per_measurement_and_names_its_failures() -> None:
    card = Scorecard(
        (
            Line("messages lost", 0, "0 of 10", "0", True),
            Line("peak reconnect rate", 80, "80/s", "<= 50/s", False, "at t=3-4 s"),
        )
    )
    assert str(card).splitlines() == [
        "line                 measured  target   result  detail",
        "-------------------  --------  -------  ------  ----------",
        "messages lost         0 of 10  0        pass",
        "peak reconnect rate      80/s  <= 50/s  FAIL    at t=3-4 s",
    ]
    assert not card.passed and card.failed == ["peak reconnect rate"]
    assert card["peak reconnect rate"].value == 80
    with pytest.raises(KeyError, match="no line 'nope'"):
        card["nope"]


def test_a_hand_built_run_has_one_loss_duplicate_reorder_leak_and_crash() -> None:
    # The client sends 1, 3, 2, 3 of four messages (4 never goes) on a first connection;
    # the handler leaks a session on it. A second connection sends "boom": the handler
    # raises. Latency 10 ms: the first connection is OPEN at 0.040 s, its messages are
    # delivered at 0.050 s; the second one's SYN leaves when the first is closed (0.080 s).
    log = MessageLog()
    for n in (1, 2, 3, 4):
        log.sent("up", n)
    with Simulation(seed=0, latency=0.010) as sim:
        ledger = Ledger(sim)

        async def handler(websocket: ServerConnection) -> None:
            loop = asyncio.get_running_loop()
            async for message in websocket:
                if message == "boom":
                    raise ValueError("boom")
                if message == "1":
                    ledger.acquire("session", owner=conn_id(websocket))  # never released
                log.delivered("up", int(message), at=loop.time())

        async def server() -> None:
            async with serve(handler, "server", 8765) as srv:
                await srv.serve_forever()

        async def client() -> None:
            async with connect("ws://server:8765") as websocket:
                for message in ("1", "3", "2", "3"):
                    await websocket.send(message)
            with contextlib.suppress(ConnectionClosed):
                async with connect("ws://server:8765") as websocket:
                    await websocket.send("boom")
                    await websocket.recv()

        sim.host("server").spawn(server())
        sim.host("client").spawn(client())
        trace = sim.run(until=2)
        card = score(
            log,
            trace,
            ledger,
            clients=["client"],
            server="server",
            since=0.0,
            until=1.0,
            news={"client": "up"},
            news_until=1.0,
            bad_input_conns=["c2"],
        )
    assert [(line.name, line.value, line.passed, line.detail) for line in card.lines] == [
        ("messages lost", 1, False, ""),
        ("messages duplicated", 1, False, ""),
        ("messages reordered", 1, False, ""),
        ("worst time disconnected", 0.95, True, "client, from t=0.1 s"),
        ("peak reconnect rate", 2, True, "at t=0-1 s"),
        ("resources left at the end", 1, False, "session 1"),
        ("protocol errors survived", 0, False, "handler failed on c2"),
    ]
    assert card["messages lost"].measured == "1 of 4"
    assert card["worst time disconnected"].measured == "0.9 s"  # 0.95 s, printed to 0.1 s
    assert card["protocol errors survived"].measured == "0 of 1"
    assert trace.last(kind="closed", side="client").code == 1011  # the crash, as seen


def test_attempts_count_where_they_arrive_including_refused_ones() -> None:
    # No server listens: each attempt is refused after one round trip (20 ms), and the
    # next one leaves at once. SYNs arrive at 0.01, 0.03 and 0.05 s; then one at 1.0 s.
    async def knocker() -> None:
        for _ in range(3):
            with contextlib.suppress(OSError):
                await RawClient.connect("server", 8765)
        await asyncio.sleep(1.0 - asyncio.get_running_loop().time() - 0.01)
        with contextlib.suppress(OSError):
            await RawClient.connect("server", 8765)

    with Simulation(seed=0, latency=0.010) as sim:
        sim.host("server")
        sim.host("knocker").spawn(knocker())
        trace = sim.run(until=3)
    assert attempts_per_second(trace, server="server", since=0.0, until=3.0) == [3, 1, 0]
    assert attempts_per_second(trace, server="server", since=0.5, until=1.5) == [1]
    assert attempts_per_second(trace, server="server", since=0, until=3, hosts=["x"]) == [0] * 3
    with pytest.raises(ValueError, match="until must be >= since"):
        attempts_per_second(trace, server="server", since=2.0, until=1.0)


def test_disconnections_follow_what_the_client_saw() -> None:
    # OPEN at 0.040 s; the server host crashes at 1 s: the client sees the FIN at 1.010 s
    # and is closed; it connects again at 3 s and is OPEN at 3.040 s: out for 2.030 s.
    async def server() -> None:
        async with serve(_hold, "server", 8765) as srv:
            await srv.serve_forever()

    async def client() -> None:
        async with connect("ws://server:8765") as websocket:
            await websocket.wait_closed()
        await asyncio.sleep(3.0 - asyncio.get_running_loop().time())
        async with connect("ws://server:8765") as websocket:
            await websocket.wait_closed()

    with Simulation(seed=0, latency=0.010) as sim:
        host = sim.host("server")
        host.service(server)
        sim.host("client").spawn(client())
        sim.host("idle")
        sim.at(1.0, host.crash)
        sim.at(2.0, host.restart)
        trace = sim.run(until=5)
    out = disconnections(trace, ["client", "idle"], since=0.0, until=5.0)
    assert out == {"client": 2.03, "idle": 5.0}
    assert handler_failures(trace) == []


async def _hold(websocket: ServerConnection) -> None:
    await websocket.wait_closed()
