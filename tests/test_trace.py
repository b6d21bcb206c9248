"""Trace filters, records and the text table."""

from __future__ import annotations

import pytest
from websockets.frames import Opcode

import wssim
from wssim import Event, Table, Trace, faults
from wssim.trace import ClosedInfo, FaultInfo, FrameInfo, Path, Phase, Tcp

CUT = FaultInfo(faults.Partition("client", "server"), Phase.START)
HI = FrameInfo(Opcode.TEXT, 2, 2, masked=True, data="hi", head=9)
CLOSED = ClosedInfo("ConnectionClosedError", "no close frame received or sent")

EVENTS = [
    Event(
        0.0,
        "tcp",
        "SYN",
        host="client",
        peer="server",
        conn="c1",
        side="client",
        arrives=0.01,
        detail=Tcp.SYN,
    ),
    Event(
        0.01,
        "tcp",
        "SYN-ACK",
        host="server",
        peer="client",
        conn="c1",
        side="server",
        arrives=0.02,
        detail=Tcp.SYN_ACK,
    ),
    Event(0.5, "fault", "partition client ↔ server", host="client", detail=CUT),
    Event(
        1.25,
        "frame",
        "TEXT 'hi' [2 bytes]",
        host="client",
        peer="server",
        conn="c1",
        side="client",
        arrives=None,
        detail=HI,
    ),
    Event(
        2.0,
        "closed",
        "ConnectionClosedError: no close frame received or sent",
        host="client",
        conn="c1",
        side="client",
        code=1006,
        detail=CLOSED,
    ),
    Event(3.0, "tcp", "SYN", host="other", peer="server", conn="c2", side="client", arrives=3.01),
]


def test_filters_combine() -> None:
    trace = Trace(EVENTS)
    assert len(trace.filter(conn="c1")) == 4
    assert [e.text for e in trace.filter(kind="tcp", host="server")] == ["SYN", "SYN-ACK", "SYN"]
    assert len(trace.filter(kind=["fault", "closed"])) == 2
    assert [e.time for e in trace.filter(since=0.5, until=2.0)] == [0.5, 1.25, 2.0]
    assert trace.filter(side="server").first().text == "SYN-ACK"  # type: ignore[union-attr]
    assert trace.first(kind="closed").code == 1006  # type: ignore[union-attr]
    assert trace.last(kind="tcp").conn == "c2"  # type: ignore[union-attr]
    assert trace.first(kind="mark") is None
    assert trace.filter(contains="partition")[0].kind == "fault"


def test_bad_filters_are_refused() -> None:
    trace = Trace(EVENTS)
    with pytest.raises(ValueError, match="kind must be among"):
        trace.filter(kind="frames")
    with pytest.raises(ValueError, match="side must be 'client' or 'server'"):
        trace.filter(side="browser")


def test_connections_end_and_records() -> None:
    trace = Trace(EVENTS)
    assert trace.connections == ["c1", "c2"]
    assert trace.end == 3.0
    assert Trace().end == 0.0
    records = trace.records()
    assert records[0] == {
        "time": 0.0,
        "kind": "tcp",
        "text": "SYN",
        "host": "client",
        "peer": "server",
        "conn": "c1",
        "side": "client",
        "arrives": 0.01,
        "code": None,
        # The detail, spread over columns every record has.
        "tcp": "SYN",
        "opcode": None,
        "size": None,
        "wire_size": None,
        "data": None,
        "reason": None,
        "exception": None,
        "status": None,
        "fault": None,
        "phase": None,
        "path": None,
        "host_event": None,
        "state": None,
    }
    assert {len(r) for r in records} == {22}
    fault, frame, closed = records[2], records[3], records[4]
    assert (fault["fault"], fault["phase"], fault["path"]) == (
        "partition",
        "start",
        "client ↔ server",
    )
    assert (frame["opcode"], frame["size"], frame["data"], frame["tcp"]) == ("TEXT", 2, "hi", None)
    assert (closed["exception"], closed["code"]) == ("ConnectionClosedError", 1006)


def test_details_are_read_through_typed_accessors() -> None:
    syn, _, cut, hi, closed, _ = EVENTS
    assert (syn.tcp, syn.frame, syn.fault, syn.closed) == (Tcp.SYN, None, None, None)
    assert cut.fault is CUT and cut.tcp is None
    assert hi.frame is HI and hi.text[: HI.head] == "TEXT 'hi'"
    assert closed.closed is CLOSED
    assert Tcp.RESET.failure and Tcp.REFUSED.failure and not Tcp.SYN.failure


def test_a_path_is_a_pair_of_hosts_in_either_order() -> None:
    path = Path("client", "server")
    assert path == Path("server", "client")
    assert hash(path) == hash(Path("server", "client"))
    assert path != Path("client", "proxy")
    assert str(path) == "client ↔ server"
    assert "server" in path and "proxy" not in path
    assert path.hosts == ("client", "server")


def test_equal_faults_give_equal_events_across_runs() -> None:
    def run() -> Trace:
        with wssim.Simulation(seed=0) as sim:
            sim.host("client")
            sim.host("server")
            sim.inject(faults.Latency("client", "server", 0.05), at=1, duration=1)
            return sim.run(until=3)

    first, second = run(), run()
    assert first == second and hash(first) == hash(second)
    started = first.first(kind="fault")
    assert started is not None and started.fault is not None
    assert started.fault.fault == faults.Latency("client", "server", 0.05)
    assert started.fault.fault != faults.Latency("client", "server", 0.06)


def test_slicing_returns_a_trace() -> None:
    trace = Trace(EVENTS)
    assert isinstance(trace[1:3], Trace)
    assert trace[1:3] == Trace(EVENTS[1:3])
    assert trace[-1] is EVENTS[-1]


def test_the_table_is_aligned_and_marks_what_did_not_arrive() -> None:
    table = Trace(EVENTS).table(conn="c1", kind=["tcp", "frame"])
    assert str(table) == "\n".join(
        [
            " time  conn  where            kind   event",
            "-----  ----  ---------------  -----  -------------------",
            "0.000  c1    client → server  tcp    SYN",
            "0.010  c1    server → client  tcp    SYN-ACK",
            "1.250  c1    client ↛ server  frame  TEXT 'hi' [2 bytes]",
        ]
    )
    assert repr(table) == str(table)
    assert len(table) == 3


def test_table_rows_must_match_columns() -> None:
    with pytest.raises(ValueError, match="has 1 cells, expected 2"):
        Table(("a", "b"), [("only one",)])


def test_a_simulation_trace_is_ordered_by_time_then_connection() -> None:
    with wssim.Simulation() as sim:
        sim.host("server")
        for name in ("a", "b"):
            sim.host(name)
        sim.mark("start")
        trace = sim.run(until=1)
    assert [(e.time, e.kind) for e in trace] == [(0.0, "mark")]
