"""Raw endpoints: frames built byte for byte, a tolerant parser, and both raw peers."""

from __future__ import annotations

import asyncio
import random
import struct

import pytest
from websockets.asyncio.client import connect
from websockets.frames import Opcode

import wssim
from tests.helpers import echo_server
from wssim.raw import (
    RawClient,
    RawFrame,
    RawServer,
    ReceivedFrame,
    close_payload,
    parse_frames,
)
from wssim.trace import lifecycle

KEY = b"\x01\x02\x03\x04"


# Building frames


def test_a_masked_text_frame_is_built_byte_for_byte() -> None:
    frame = RawFrame(Opcode.TEXT, b"hi", mask=KEY)
    masked = bytes([ord("h") ^ 1, ord("i") ^ 2])
    assert frame.encode(client=True, rng=random.Random(0)) == b"\x81\x82" + KEY + masked


def test_fin_rsv_and_reserved_opcodes_go_in_the_first_byte() -> None:
    frame = RawFrame(0xB, b"", fin=False, rsv=(1, 0, 1), mask=False)
    assert frame.encode(client=True, rng=random.Random(0)) == bytes([0b0101_1011, 0])


def test_lengths_can_be_non_minimal_or_lie() -> None:
    rng = random.Random(0)
    wide = RawFrame(Opcode.BINARY, b"abc", length_bits=64, mask=False)
    assert wide.encode(client=False, rng=rng) == b"\x82\x7f" + struct.pack("!Q", 3) + b"abc"
    mid = RawFrame(Opcode.BINARY, b"abc", length_bits=16, mask=False)
    assert mid.encode(client=False, rng=rng) == b"\x82\x7e\x00\x03abc"
    liar = RawFrame(Opcode.BINARY, b"abc", length=100, mask=False)
    assert liar.encode(client=False, rng=rng) == b"\x82\x64abc"
    assert str(liar) == "BINARY 'abc' [text, 3 bytes] (unmasked, length says 100)"
    assert str(wide) == "BINARY 'abc' [text, 3 bytes] (unmasked, 64-bit length)"


def test_the_sender_decides_masking_by_default() -> None:
    frame = RawFrame(Opcode.PING, b"")
    assert frame.encode(client=False, rng=random.Random(0)) == b"\x89\x00"
    client = frame.encode(client=True, rng=random.Random(0))
    assert client[:2] == b"\x89\x80" and client[2:] == random.Random(0).randbytes(4)


def test_close_payload_takes_any_code_and_reason_bytes() -> None:
    assert close_payload(1005) == b"\x03\xed"
    assert close_payload(1000, "bye") == b"\x03\xe8bye"
    assert close_payload(0, b"\xff") == b"\x00\x00\xff"
    with pytest.raises(ValueError, match="code must be an integer from 0 to 65535"):
        close_payload(70000)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"opcode": 16}, "opcode must be an integer from 0 to 15"),
        ({"opcode": 1, "rsv": (2, 0, 0)}, "rsv must be three bits"),
        ({"opcode": 1, "mask": b"abc"}, "mask must be True, False, None or 4 bytes"),
        ({"opcode": 1, "length": -1}, "length must be an integer from 0 to 2\\*\\*64 - 1"),
        ({"opcode": 1, "length_bits": 32}, "length_bits must be 7, 16, 64 or None"),
        ({"opcode": 1, "payload": b"x" * 200, "length_bits": 7}, "does not fit in length_bits=7"),
        ({"opcode": 1, "payload": "text"}, "payload must be bytes"),
    ],
)
def test_bad_fields_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RawFrame(**kwargs)  # type: ignore[arg-type]


# Parsing frames


def test_parser_returns_whole_frames_and_what_they_used() -> None:
    data = RawFrame(0x3, b"odd", rsv=(0, 1, 0), mask=KEY).encode(client=True, rng=random.Random())
    data += b"\x89\x05pi"  # a ping cut short
    frames, used = parse_frames(data, time=1.5)
    assert used == 2 + 4 + 3
    assert frames == [ReceivedFrame(1.5, 0x3, b"odd", True, (0, 1, 0), True)]
    assert str(frames[0]) == "OPCODE 0x3 [3 bytes] (RSV2, masked)"


def test_received_close_frames_are_read_tolerantly() -> None:
    assert ReceivedFrame(0, 8, b"\x03\xe8caf\xe9").close == (1000, "caf\ufffd")
    assert ReceivedFrame(0, 8, b"").close == (1005, "")
    assert ReceivedFrame(0, 8, b"\x03").close is None
    assert ReceivedFrame(0, 1, b"hi").close is None


def test_parser_never_raises_on_random_bytes() -> None:
    rng = random.Random(6455)
    for _ in range(2000):
        data = rng.randbytes(rng.randrange(0, 40))
        frames, used = parse_frames(data)
        assert 0 <= used <= len(data)
        assert all(0 <= f.opcode <= 15 for f in frames)


# Raw client against a websockets server


def run_client(script, until: float = 60.0):  # type: ignore[no-untyped-def]
    """Run ``script(client)`` on a raw client against an echo server; return (client, trace)."""
    clients: list[RawClient] = []

    async def client() -> None:
        raw = await RawClient.connect("server", 8765)
        clients.append(raw)
        await script(raw)

    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(echo_server())
        sim.host("client").spawn(client())
        trace = sim.run(until=until)
    return clients[0], trace


def test_echo_and_closing_handshake_at_exact_times() -> None:
    async def script(raw: RawClient) -> None:
        assert raw.open and raw.opened_at == 0.04 and raw.status == 101
        raw.send_frame(Opcode.TEXT, b"hello")
        echo = await raw.recv_frame()
        assert echo is not None and (echo.time, echo.payload, echo.masked) == (
            0.06,
            b"hello",
            False,
        )
        await raw.close(1000, "bye")

    raw, trace = run_client(script)
    assert (raw.close_code, raw.close_reason) == (1000, "bye")
    assert (raw.tcp, raw.tcp_at, raw.eof_at) == ("FIN", 0.08, 0.08)
    assert raw.summary() == "received 1000 (OK) bye; TCP FIN at t=0.080"
    server = trace.last(kind="closed", side="server")
    assert server is not None and (server.time, server.code) == (0.09, 1000)


def test_the_raw_client_appears_in_the_lifecycle() -> None:
    async def script(raw: RawClient) -> None:
        raw.send_frame(Opcode.TEXT, b"hi", mask=False)
        await raw.wait_closed()

    _, trace = run_client(script)
    client, server = lifecycle.endpoints(trace)
    assert (client.side, client.opened_at, client.closed_at, client.close_code) == (
        "client",
        0.04,
        0.06,
        1002,
    )
    assert client.close_text == (
        "RawClient: received 1002 (protocol error) incorrect masking; TCP FIN at t=0.060"
    )
    assert (server.close_code, server.closed_at) == (1006, 0.07)


def test_no_pong_by_itself_so_keepalive_ends_it() -> None:
    async def script(raw: RawClient) -> None:
        ping = await raw.recv_frame()
        assert ping is not None and (ping.opcode, ping.time) == (Opcode.PING, 20.04)
        await raw.wait_closed()

    raw, _ = run_client(script)
    assert (raw.close_code, raw.close_reason) == (1011, "keepalive ping timeout")
    assert (raw.tcp, raw.tcp_at) == ("FIN", 40.04)


def test_waits_time_out_in_virtual_time() -> None:
    async def script(raw: RawClient) -> None:
        assert await raw.recv_frame(timeout=2) is None
        assert not await raw.wait_closed(timeout=3)
        assert asyncio.get_running_loop().time() == pytest.approx(5.04)
        raw.abort()
        assert raw.tcp == "aborted"
        with pytest.raises(ConnectionError, match="TCP has ended"):
            raw.send_frame(Opcode.TEXT, b"too late")

    raw, trace = run_client(script)
    assert trace.first(kind="tcp", contains="RST") is not None
    assert raw.tcp_at == 5.04


def test_a_hand_written_request_gets_the_servers_answer() -> None:
    clients: list[RawClient] = []

    async def client() -> None:
        clients.append(await RawClient.connect("server", 8765, request=b"GET / HTTP/1.1\r\n\r\n"))

    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(echo_server())
        sim.host("client").spawn(client())
        trace = sim.run(until=10)
    raw = clients[0]
    assert (raw.open, raw.status, raw.tcp, raw.tcp_at) == (False, 426, "FIN", 0.04)
    assert raw.body.startswith(b"Failed to open a WebSocket connection")
    ended = trace.last(kind="closed", side="client")
    assert ended is not None
    assert ended.text == "RawClient: handshake failed: HTTP 426; TCP FIN at t=0.040"


def test_connect_gives_up_waiting_for_a_response() -> None:
    clients: list[RawClient] = []

    async def silent() -> None:
        async with await RawServer.listen(8765, response=b"") as server:
            await server.accept()
            await asyncio.sleep(100)

    async def client() -> None:
        clients.append(await RawClient.connect("server", 8765, timeout=3))
        assert asyncio.get_running_loop().time() == pytest.approx(3.02)  # connected at 0.02

    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(silent())
        sim.host("client").spawn(client())
        sim.run(until=10)
        raw = clients[0]
        assert (raw.open, raw.status, raw.tcp) == (False, None, None)
        assert sim.trace.last(kind="log", side="client") is None  # it never opened


def test_bad_arguments_are_named() -> None:
    async def client() -> None:
        with pytest.raises(ValueError, match="port must be an integer from 1 to 65535"):
            await RawClient.connect("server", 0)
        with pytest.raises(ValueError, match="timeout must be a number of seconds >= 0"):
            await RawClient.connect("server", 8765, timeout=-1)
        with pytest.raises(ValueError, match="port must be an integer from 1 to 65535"):
            await RawServer.listen(70000)

    with wssim.Simulation(seed=0) as sim:
        sim.host("client").spawn(client())
        sim.run(until=1)


def test_masks_and_keys_are_the_same_every_run() -> None:
    def wire() -> list[bytes]:
        sent: list[bytes] = []

        async def script(raw: RawClient) -> None:
            sent.append(raw.send_frame(Opcode.TEXT, b"hello"))
            sent.append(raw.send_frame(Opcode.PING, b"x"))
            await raw.close()

        run_client(script)
        return sent

    first, second = wire(), wire()
    assert first == second
    assert first[0][2:6] != first[1][2:6]  # a fresh key per frame


# Raw server against a websockets client


def test_a_raw_server_sends_a_masked_frame_to_a_real_client() -> None:
    seen: list[str] = []

    async def server() -> None:
        async with await RawServer.listen(8765) as raw_server:
            conn = await raw_server.accept(timeout=5)
            assert conn.opened_at == 0.03 and conn.http is not None
            assert conn.http.start == "GET / HTTP/1.1"
            conn.send_frame(Opcode.TEXT, b"hi", mask=True)
            close = await conn.recv_frame()
            assert close is not None and close.close == (1002, "incorrect masking")
            conn.close_tcp()

    async def client() -> None:
        try:
            async with connect("ws://server:8765") as ws:
                await ws.recv()
        except Exception as exc:
            seen.append(f"{type(exc).__name__}: {exc}")

    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(server())
        sim.host("client").spawn(client())
        trace = sim.run(until=30)
    assert seen == [
        "ConnectionClosedError: sent 1002 (protocol error) incorrect masking; "
        "no close frame received"
    ]
    closed = trace.last(kind="closed", side="client")
    assert closed is not None and (closed.time, closed.code) == (0.06, 1006)


def test_accept_times_out() -> None:
    async def server() -> None:
        async with await RawServer.listen(8765) as raw_server:
            with pytest.raises(TimeoutError):
                await raw_server.accept(timeout=2)
            assert asyncio.get_running_loop().time() == 2

    with wssim.Simulation(seed=0) as sim:
        sim.host("server").spawn(server())
        sim.run(until=5)


def test_what_the_raw_side_sends_is_in_its_own_log() -> None:
    async def script(raw: RawClient) -> None:
        raw.send(RawFrame(Opcode.TEXT, b"hello", length=100), b"\x00\x01")
        await raw.wait_closed()

    _, trace = run_client(script)
    sent = trace.filter(kind="log", side="client", contains="> ")
    assert [(e.time, e.text) for e in sent] == [
        (0.04, "> TEXT 'hello' [5 bytes] (length says 100)"),
        (0.04, "> 2 raw bytes"),
    ]
    # The wire tap reads the header's length too: it waits for 100 bytes, as the server does.
    assert trace.first(kind="frame", side="client") is None
