"""The wire tap turns bytes into readable, deterministic descriptions, and never raises."""

from __future__ import annotations

import random
import struct

from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode

from wssim.trace.wiretap import ConnectionTap

REQUEST = (
    b"GET /chat HTTP/1.1\r\nHost: server\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
)


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = False) -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if mask:
        key = b"\x01\x02\x03\x04"
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        head += key
    return head + payload


def texts(items: list) -> list[str]:
    return [item.text for item in items]


def test_handshake_and_frames_in_both_directions() -> None:
    tap = ConnectionTap()
    assert texts(tap.to_server.feed(REQUEST)) == ["GET /chat (Upgrade: websocket)"]
    assert texts(tap.to_client.feed(RESPONSE)) == ["101 Switching Protocols"]
    masked = frame(0x1, b"hello", mask=True)
    assert texts(tap.to_server.feed(masked)) == ["TEXT 'hello' [5 bytes]"]
    close = tap.to_client.feed(frame(0x8, struct.pack("!H", 1001) + b"bye"))
    assert texts(close) == ["CLOSE 1001 (going away) bye [5 bytes]"]
    assert close[0].code == 1001


def test_bytes_split_anywhere_decode_the_same() -> None:
    stream = frame(0x1, b"a" * 300, mask=True) + frame(0x9, b"", mask=True)
    whole = ConnectionTap()
    whole.to_server.feed(REQUEST)
    expected = texts(whole.to_server.feed(stream))
    split = ConnectionTap()
    split.to_server.feed(REQUEST)
    got = []
    for i in range(len(stream)):
        got += texts(split.to_server.feed(stream[i : i + 1]))
    assert got == expected
    assert expected[0].startswith("TEXT 'aaa") and expected[0].endswith("' [300 bytes]")
    assert expected[1] == "PING '' [0 bytes]"


def test_protocol_oddities_are_described_not_hidden() -> None:
    tap = ConnectionTap()
    tap.to_server.feed(REQUEST)
    assert texts(tap.to_server.feed(frame(0x1, b"x"))) == ["TEXT 'x' [1 byte] (unmasked)"]
    assert texts(tap.to_server.feed(frame(0x3, b"??", mask=True))) == [
        "FRAME [2 bytes, reserved opcode 0x3]"
    ]
    rsv = bytearray(frame(0x2, b"\x00", mask=True))
    rsv[0] |= 0x20
    assert texts(tap.to_server.feed(bytes(rsv))) == ["BINARY 00 [1 byte] (reserved bits set)"]


def test_a_refused_handshake_shows_the_status_and_skips_the_body() -> None:
    tap = ConnectionTap()
    body = b"Failed to open a WebSocket connection.\n"
    response = (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    decoded = tap.to_client.feed(response)
    assert texts(decoded) == [f"503 Service Unavailable [body {len(body)} bytes]"]
    assert decoded[0].code == 503


def test_compressed_messages_are_shown_decompressed() -> None:
    tap = ConnectionTap()
    tap.to_server.feed(REQUEST)
    tap.to_client.feed(
        RESPONSE[:-2] + b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12;"
        b" client_max_window_bits=12\r\n\r\n"
    )
    server = PerMessageDeflate(False, False, 12, 12)
    wire = server.encode(Frame(Opcode.TEXT, b"hello hello hello hello"))
    raw = frame(0x1, wire.data)
    raw = bytes([raw[0] | 0x40]) + raw[1:]  # RSV1: compressed
    assert texts(tap.to_client.feed(raw)) == [
        f"TEXT 'hello hello hello hello' [23 bytes] (compressed to {len(wire.data)} bytes)"
    ]


def test_non_http_streams_are_reported_as_bytes() -> None:
    tap = ConnectionTap()
    assert texts(tap.to_server.feed(b"\x00\x01binary protocol")) == ["17 bytes (not HTTP)"]
    assert texts(tap.to_server.feed(b"more")) == ["4 bytes (not HTTP)"]


def test_random_and_mutated_bytes_never_make_the_tap_raise() -> None:
    rng = random.Random(6455)
    valid = frame(0x1, b"hello", mask=True) + frame(0x8, struct.pack("!H", 1000), mask=True)
    for _ in range(2000):
        tap = ConnectionTap()
        tap.to_server.feed(REQUEST)
        tap.to_client.feed(RESPONSE)
        data = bytearray(valid)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        noise = bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
        for direction in (tap.to_server, tap.to_client):
            for item in direction.feed(bytes(data) + noise):
                assert item.kind in ("frame", "bytes")
                assert isinstance(item.text, str)
