"""Every case of the protocol-error catalogue, with the exact answer websockets gives."""

from __future__ import annotations

import re

import pytest
from websockets.asyncio.server import ServerConnection

from wssim.course import protocolerrors
from wssim.course.protocolerrors import CATALOGUE, Case, case, run, table
from wssim.raw import RawFrame
from wssim.trace import Table

# (side, case, websockets' answer, when its close frame arrived, how TCP ended, when).
# Latency is 10 ms each way: the handshake is over at t=0.040 for the raw client (0.030
# for the raw server), so a close frame sent at once in answer arrives 20 ms later. A case
# the library accepts is closed by the raw side itself (1000) one second later.
EXPECTED = [
    ("server", "a valid text message", "TEXT; 1000 (echo)", 1.06, "FIN", 1.06),
    ("server", "unmasked client frame", "1002 incorrect masking", 0.06, "FIN", 0.06),
    ("server", "RSV1 set, no extension", "1002 reserved bits must be 0", 0.06, "FIN", 0.06),
    ("server", "RSV2 and RSV3 set", "1002 reserved bits must be 0", 0.06, "FIN", 0.06),
    ("server", "reserved data opcode 0x3", "1002 invalid opcode", 0.06, "FIN", 0.06),
    ("server", "reserved control opcode 0xB", "1002 invalid opcode", 0.06, "FIN", 0.06),
    ("server", "length in 64 bits, not minimal", "TEXT; 1000 (echo)", 1.06, "FIN", 1.06),
    (
        "server",
        "64-bit length with its top bit set",
        "1009 frame with 9223372036854775813 bytes exceeds limit of 1048576 bytes",
        0.06,
        "FIN",
        0.06,
    ),
    # The server waits for 95 more bytes; its keepalive ping (t=20.03) goes unanswered.
    (
        "server",
        "length says 100, 5 bytes sent",
        "PING; 1011 keepalive ping timeout",
        40.04,
        "FIN",
        40.04,
    ),
    ("server", "ping of 125 bytes", "PONG; 1000 (echo)", 1.06, "FIN", 1.06),
    ("server", "ping of 126 bytes", "1002 control frame too long", 0.06, "FIN", 0.06),
    ("server", "fragmented ping (FIN=0)", "1002 fragmented control frame", 0.06, "FIN", 0.06),
    ("server", "unsolicited pong", "1000 (echo)", 1.06, "FIN", 1.06),
    (
        "server",
        "continuation without a start",
        "1002 unexpected continuation frame",
        0.06,
        "FIN",
        0.06,
    ),
    (
        "server",
        "new text frame inside a fragmented message",
        "1002 expected a continuation frame",
        0.06,
        "FIN",
        0.06,
    ),
    ("server", "ping between two fragments", "PONG, TEXT; 1000 (echo)", 1.06, "FIN", 1.06),
    (
        "server",
        "close between two fragments",
        "1002 incomplete fragmented message",
        0.06,
        "FIN",
        0.06,
    ),
    (
        "server",
        "invalid UTF-8 in a text message",
        "1007 invalid continuation byte at position 3",
        0.06,
        "FIN",
        0.06,
    ),
    ("server", "a character split across fragments", "TEXT; 1000 (echo)", 1.06, "FIN", 1.06),
    (
        "server",
        "a text message ending mid-character",
        "1007 unexpected end of data at position 3",
        0.06,
        "FIN",
        0.06,
    ),
    ("server", "invalid UTF-8 in a binary message", "BINARY; 1000 (echo)", 1.06, "FIN", 1.06),
    (
        "server",
        "invalid UTF-8 in a close reason",
        "1007 invalid continuation byte at position 3",
        0.06,
        "FIN",
        0.06,
    ),
    ("server", "empty close frame", "1005 (echo)", 0.06, "FIN", 0.06),
    ("server", "close payload of one byte", "1002 close frame too short", 0.06, "FIN", 0.06),
    *[
        ("server", f"close code {code}", "1002 invalid status code", 0.06, "FIN", 0.06)
        for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000)
    ],
    *[
        ("server", f"close code {code}", f"{code} (echo)", 0.06, "FIN", 0.06)
        for code in (*range(1000, 1004), *range(1007, 1015), 3000, 3999, 4000, 4999)
    ],
    ("server", "text message of 1 MiB (max_size)", "TEXT; 1000 (echo)", 1.06, "FIN", 1.06),
    (
        "server",
        "text message of 1 MiB + 1 byte",
        "1009 frame with 1048577 bytes exceeds limit of 1048576 bytes",
        0.06,
        "FIN",
        0.06,
    ),
    (
        "server",
        "fragments of 1 MiB + 1 byte in all",
        "1009 frame with 524288 bytes after reading 524289 bytes exceeds limit of 1048576 bytes",
        # Half a MiB goes through the server's 128 KiB receive window in four round trips
        # before the second fragment's header arrives.
        0.14,
        "FIN",
        0.14,
    ),
    (
        "server",
        "header announcing 1 MiB + 1 byte, no payload",
        "1009 frame with 1048577 bytes exceeds limit of 1048576 bytes",
        0.06,
        "FIN",
        0.06,
    ),
    ("server", "ping after close", "1000 (echo)", 0.06, "FIN", 0.06),
    ("server", "text after close", "1000 (echo)", 0.06, "FIN", 0.06),
    ("server", "request without Upgrade and Connection", "HTTP 426", None, "FIN", 0.04),
    ("server", "request without Sec-WebSocket-Key", "HTTP 400", None, "FIN", 0.04),
    ("server", "Sec-WebSocket-Version: 8", "HTTP 400", None, "FIN", 0.04),
    ("server", "not HTTP at all", "no HTTP response", None, "FIN", 0.04),
    # The raw server closes TCP ("closed") as soon as the client's close frame arrives.
    ("client", "a valid text message", "1000 (echo)", 1.05, "closed", 1.05),
    ("client", "masked server frame", "1002 incorrect masking", 0.05, "closed", 0.05),
    ("client", "RSV1 set, no extension", "1002 reserved bits must be 0", 0.05, "closed", 0.05),
    ("client", "reserved data opcode 0x3", "1002 invalid opcode", 0.05, "closed", 0.05),
    ("client", "ping of 126 bytes", "1002 control frame too long", 0.05, "closed", 0.05),
    (
        "client",
        "invalid UTF-8 in a text message",
        "1007 invalid continuation byte at position 3",
        0.05,
        "closed",
        0.05,
    ),
    ("client", "close code 1005", "1002 invalid status code", 0.05, "closed", 0.05),
    (
        "client",
        "text message of 1 MiB + 1 byte",
        "1009 frame with 1048577 bytes exceeds limit of 1048576 bytes",
        0.05,
        "closed",
        0.05,
    ),
    # The client waits for the server to close TCP; its keepalive, at t=20.04, finds the
    # close timeout long past and aborts.
    (
        "client",
        "RSV1 set; the server never closes TCP",
        "1002 reserved bits must be 0",
        0.05,
        "FIN",  # abort() closes the socket: nothing unread, so a FIN
        20.05,
    ),
    (
        "client",
        "101 with a wrong Sec-WebSocket-Accept",
        "InvalidHeaderValue: invalid Sec-WebSocket-Accept header: bm9wZQ==",
        None,
        "FIN",
        0.05,
    ),
    (
        "client",
        "200 OK instead of 101",
        "InvalidStatus: server rejected WebSocket connection: HTTP 200",
        None,
        "FIN",
        0.05,
    ),
]


def test_every_case_is_expected_once() -> None:
    assert [(side, name) for side, name, *_ in EXPECTED] == [(c.side, c.name) for c in CATALOGUE]


@pytest.mark.parametrize(
    ("side", "name", "answer", "close_at", "tcp", "tcp_at"),
    EXPECTED,
    ids=[f"{side}: {name}" for side, name, *_ in EXPECTED],
)
def test_case_gets_its_exact_answer(
    side: str, name: str, answer: str, close_at: float | None, tcp: str, tcp_at: float
) -> None:
    outcome = run(case(name, side))  # type: ignore[arg-type]
    assert outcome.answer == answer
    assert outcome.close_at == close_at
    assert (outcome.tcp, outcome.tcp_at) == (tcp, tcp_at)
    # The close code itself, not only its text: the code of the close frame received.
    codes = re.findall(r"(?:^|; )(\d{4}) ", answer + " ")
    assert outcome.code == (int(codes[0]) if codes else None)


def test_the_library_fails_the_connection_it_should() -> None:
    outcome = run(case("RSV1 set, no extension"))
    assert outcome.library == (
        "ConnectionClosedError: sent 1002 (protocol error) reserved bits must be 0; "
        "no close frame received"
    )
    closed = outcome.trace.last(kind="closed", side="server")
    assert closed is not None and (closed.time, closed.code) == (0.07, 1006)


def test_client_side_reports_what_the_client_raised() -> None:
    outcome = run(case("masked server frame", "client"))
    closed = outcome.trace.last(kind="closed", side="client")
    assert closed is not None
    assert (closed.time, closed.code) == (0.06, 1006)
    assert closed.text == (
        "ConnectionClosedError: sent 1002 (protocol error) incorrect masking; "
        "no close frame received"
    )


def test_options_reach_the_library() -> None:
    small = Case("a 11-byte message", (RawFrame(1, b"hello world"),), "10.4", "", "size")
    outcome = run(small, max_size=10)
    assert outcome.answer == "1009 frame with 11 bytes exceeds limit of 10 bytes"


def test_a_case_runs_the_same_every_time() -> None:
    first, second = run(case("ping of 125 bytes")), run(case("ping of 125 bytes"))
    assert first == second
    assert first.trace == second.trace


def test_latency_shifts_every_time() -> None:
    outcome = run(case("unmasked client frame"), latency=0.050)
    assert (outcome.close_at, outcome.tcp_at) == (0.3, 0.3)


def test_table_has_a_row_per_outcome() -> None:
    outcomes = [run(case("RSV1 set, no extension")), run(case("masked server frame", "client"))]
    text = str(table(outcomes, rfc=True))
    assert isinstance(table(outcomes), Table)
    lines = text.splitlines()
    assert lines[0].split() == [
        "case", "bytes", "sent", "RFC", "the", "RFC", "says", "websockets", "answers", "at", "TCP",
    ]  # fmt: skip
    assert "c1 85 +key 68 65 6c 6c 6f" in lines[2]
    assert lines[2].endswith("1002 reserved bits must be 0  0.060  FIN 0.060")
    assert lines[3].endswith("0.050  raw FIN 0.050")


def test_sent_shows_headers_keys_and_sizes() -> None:
    assert case("text message of 1 MiB + 1 byte").sent() == (
        "81 ff 00 00 00 00 00 10 00 01 +key …1048577 bytes"
    )
    assert case("masked server frame", "client").sent() == "81 85 +key 68 65 6c 6c 6f"
    assert case("not HTTP at all").sent() == "'hello, server' +4 bytes"


def test_unknown_cases_and_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="no server case called 'nope'"):
        case("nope")
    with pytest.raises(ValueError, match="side must be 'server' or 'client'"):
        case("ping of 126 bytes", "proxy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="case must be a Case"):
        run("ping of 126 bytes")  # type: ignore[arg-type]


def test_names_are_unique_per_side() -> None:
    keys = [(c.side, c.name) for c in protocolerrors.CATALOGUE]
    assert len(keys) == len(set(keys))


def test_a_handler_can_be_given_for_server_cases_only() -> None:
    async def deaf(websocket: ServerConnection) -> None:
        await websocket.wait_closed()

    # A handler that never reads never decodes the text, so never finds it invalid.
    outcome = run(case("invalid UTF-8 in a text message"), handler=deaf)
    assert (outcome.answer, outcome.close_at) == ("1000 (echo)", 1.06)
    with pytest.raises(ValueError, match="handler applies to server cases only"):
        run(case("masked server frame", "client"), handler=deaf)
