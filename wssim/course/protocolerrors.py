"""Lesson 05's catalogue of protocol errors, as data: what websockets does with each.

Every :class:`~wssim.lab.protocol.Case` here is run by :func:`~wssim.lab.protocol.run`;
:func:`table` runs the whole catalogue and prints what websockets answered to each.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from websockets.frames import Opcode

from wssim.lab.protocol import Case, Outcome, Role, run
from wssim.lab.protocol import run_all as _run_all
from wssim.lab.protocol import table as _table
from wssim.raw import RawFrame, close_payload
from wssim.trace.events import Table

__all__ = [
    "CATALOGUE",
    "CLIENT_CATALOGUE",
    "SERVER_CATALOGUE",
    "Case",
    "Outcome",
    "case",
    "run",
    "run_all",
    "table",
]

TEXT, BINARY, CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
CLOSE, PING, PONG = Opcode.CLOSE, Opcode.PING, Opcode.PONG


def _handshake_request(*lines: str) -> bytes:
    return ("\r\n".join(["GET / HTTP/1.1", "Host: server:8765", *lines]) + "\r\n\r\n").encode()


_KEY = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
_MIB = 2**20
_FAIL = "fail the connection (7.1.7)"


def _server_cases() -> list[Case]:
    def c(name: str, sends: Sequence[RawFrame | bytes], section: str, rfc: str, group: str) -> Case:
        return Case(name, tuple(sends), section, rfc, group)

    cases = [
        c("a valid text message", [RawFrame(TEXT, b"hello")], "5.6", "deliver it", "baseline"),
        c(
            "unmasked client frame",
            [RawFrame(TEXT, b"hello", mask=False)],
            "5.1",
            "close the connection; MAY send 1002",
            "header",
        ),
        c(
            "RSV1 set, no extension",
            [RawFrame(TEXT, b"hello", rsv=(1, 0, 0))],
            "5.2",
            _FAIL,
            "header",
        ),
        c("RSV2 and RSV3 set", [RawFrame(TEXT, b"hello", rsv=(0, 1, 1))], "5.2", _FAIL, "header"),
        c("reserved data opcode 0x3", [RawFrame(0x3, b"hello")], "5.2", _FAIL, "header"),
        c("reserved control opcode 0xB", [RawFrame(0xB, b"hello")], "5.2", _FAIL, "header"),
        c(
            "length in 64 bits, not minimal",
            [RawFrame(TEXT, b"hello", length_bits=64)],
            "5.2",
            "sender MUST use the minimal encoding; receiver: not said",
            "header",
        ),
        c(
            "64-bit length with its top bit set",
            [RawFrame(BINARY, b"", length=2**63 + 5)],
            "5.2",
            "the most significant bit MUST be 0",
            "header",
        ),
        c(
            "length says 100, 5 bytes sent",
            [RawFrame(TEXT, b"hello", length=100)],
            "5.2",
            "nothing: the receiver waits for the rest",
            "header",
        ),
        c(
            "ping of 125 bytes",
            [RawFrame(PING, b"p" * 125)],
            "5.5.2",
            "answer with a pong",
            "control",
        ),
        c(
            "ping of 126 bytes",
            [RawFrame(PING, b"p" * 126)],
            "5.5",
            "control payload <= 125 bytes",
            "control",
        ),
        c(
            "fragmented ping (FIN=0)",
            [RawFrame(PING, b"ping", fin=False), RawFrame(CONT, b"")],
            "5.5",
            "control frames MUST NOT be fragmented",
            "control",
        ),
        c(
            "unsolicited pong",
            [RawFrame(PONG, b"beat")],
            "5.5.3",
            "no response expected",
            "control",
        ),
        c(
            "continuation without a start",
            [RawFrame(CONT, b"lo")],
            "5.4",
            _FAIL,
            "fragmentation",
        ),
        c(
            "new text frame inside a fragmented message",
            [RawFrame(TEXT, b"hel", fin=False), RawFrame(TEXT, b"lo")],
            "5.4",
            "fragments MUST NOT be interleaved",
            "fragmentation",
        ),
        c(
            "ping between two fragments",
            [RawFrame(TEXT, b"hel", fin=False), RawFrame(PING, b"?"), RawFrame(CONT, b"lo")],
            "5.4",
            "control frames MAY be injected",
            "fragmentation",
        ),
        c(
            "close between two fragments",
            [RawFrame(TEXT, b"hel", fin=False), RawFrame(CLOSE, close_payload(1000))],
            "5.4",
            "control frames MAY be injected",
            "fragmentation",
        ),
        c(
            "invalid UTF-8 in a text message",
            [RawFrame(TEXT, b"caf\xe9!")],
            "8.1",
            _FAIL + ", 1007",
            "UTF-8",
        ),
        c(
            "a character split across fragments",
            [RawFrame(TEXT, b"caf\xc3", fin=False), RawFrame(CONT, b"\xa9")],
            "5.6",
            "the message is text: deliver it",
            "UTF-8",
        ),
        c(
            "a text message ending mid-character",
            [RawFrame(TEXT, b"caf\xc3", fin=False), RawFrame(CONT, b"")],
            "8.1",
            _FAIL + ", 1007",
            "UTF-8",
        ),
        c(
            "invalid UTF-8 in a binary message",
            [RawFrame(BINARY, b"caf\xe9!")],
            "5.6",
            "binary is not text: deliver it",
            "UTF-8",
        ),
        c(
            "invalid UTF-8 in a close reason",
            [RawFrame(CLOSE, close_payload(1000, b"caf\xe9!"))],
            "5.5.1",
            "the reason is UTF-8 (8.1: fail)",
            "UTF-8",
        ),
        c(
            "empty close frame",
            [RawFrame(CLOSE, b"")],
            "5.5.1",
            "a close MAY have no body: echo",
            "close frames",
        ),
        c(
            "close payload of one byte",
            [RawFrame(CLOSE, b"\x03")],
            "5.5.1",
            "a body starts with a 2-byte code",
            "close frames",
        ),
    ]
    never = {
        0: "7.4.2",
        999: "7.4.2",
        1004: "7.4.1",
        1005: "7.4.1",
        1006: "7.4.1",
        1015: "7.4.1",
        1016: "7.4.2",
        2999: "7.4.2",
        5000: "7.4.2",
    }
    for code, section in never.items():
        rule = "MUST NOT be sent" if section == "7.4.1" else "not a valid code"
        cases.append(
            c(
                f"close code {code}",
                [RawFrame(CLOSE, close_payload(code))],
                section,
                rule,
                "close codes",
            )
        )
    for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014):
        cases.append(
            c(
                f"close code {code}",
                [RawFrame(CLOSE, close_payload(code))],
                "7.4.1",
                "echo",
                "close codes",
            )
        )
    for code in (3000, 3999, 4000, 4999):
        cases.append(
            c(
                f"close code {code}",
                [RawFrame(CLOSE, close_payload(code))],
                "7.4.2",
                "echo",
                "close codes",
            )
        )
    cases += [
        c(
            "text message of 1 MiB (max_size)",
            [RawFrame(TEXT, b"x" * _MIB)],
            "10.4",
            "deliver it",
            "size",
        ),
        c(
            "text message of 1 MiB + 1 byte",
            [RawFrame(TEXT, b"x" * (_MIB + 1))],
            "10.4",
            "over the limit: 1009",
            "size",
        ),
        c(
            "fragments of 1 MiB + 1 byte in all",
            [RawFrame(TEXT, b"x" * (_MIB // 2 + 1), fin=False), RawFrame(CONT, b"x" * (_MIB // 2))],
            "10.4",
            "over the limit: 1009",
            "size",
        ),
        c(
            "header announcing 1 MiB + 1 byte, no payload",
            [RawFrame(TEXT, b"", length=_MIB + 1)],
            "10.4",
            "over the limit: 1009",
            "size",
        ),
        c(
            "ping after close",
            [RawFrame(CLOSE, close_payload(1000)), RawFrame(PING, b"?")],
            "5.5.1",
            "after a close: discard what follows (1.4)",
            "after close",
        ),
        c(
            "text after close",
            [RawFrame(CLOSE, close_payload(1000)), RawFrame(TEXT, b"late")],
            "5.5.1",
            "no data frames after a close",
            "after close",
        ),
    ]
    handshakes = {
        "request without Upgrade and Connection": (
            _handshake_request(_KEY, "Sec-WebSocket-Version: 13"),
            "4.2.1",
            "MUST have Upgrade and Connection",
        ),
        "request without Sec-WebSocket-Key": (
            _handshake_request(
                "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13"
            ),
            "4.2.1",
            "MUST have a key; else 400",
        ),
        "Sec-WebSocket-Version: 8": (
            _handshake_request(
                "Upgrade: websocket", "Connection: Upgrade", _KEY, "Sec-WebSocket-Version: 8"
            ),
            "4.4",
            "an error such as 426, and the versions it speaks",
        ),
        "not HTTP at all": (b"hello, server\r\n\r\n", "4.2.1", "not a valid handshake"),
    }
    for name, (request, section, rfc) in handshakes.items():
        cases.append(Case(name, (), section, rfc, "handshake", handshake=request))
    return cases


def _client_cases() -> list[Case]:
    def c(name: str, sends: Sequence[RawFrame | bytes], section: str, rfc: str, group: str) -> Case:
        return Case(name, tuple(sends), section, rfc, group, side="client")

    response_101 = (
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
    )
    return [
        c("a valid text message", [RawFrame(TEXT, b"hello")], "5.6", "deliver it", "baseline"),
        c(
            "masked server frame",
            [RawFrame(TEXT, b"hello", mask=True)],
            "5.1",
            "a client MUST close on a masked frame",
            "header",
        ),
        c(
            "RSV1 set, no extension",
            [RawFrame(TEXT, b"hello", rsv=(1, 0, 0))],
            "5.2",
            _FAIL,
            "header",
        ),
        c("reserved data opcode 0x3", [RawFrame(0x3, b"hello")], "5.2", _FAIL, "header"),
        c(
            "ping of 126 bytes",
            [RawFrame(PING, b"p" * 126)],
            "5.5",
            "control payload <= 125 bytes",
            "control",
        ),
        c(
            "invalid UTF-8 in a text message",
            [RawFrame(TEXT, b"caf\xe9!")],
            "8.1",
            _FAIL + ", 1007",
            "UTF-8",
        ),
        c(
            "close code 1005",
            [RawFrame(CLOSE, close_payload(1005))],
            "7.4.1",
            "MUST NOT be sent",
            "close codes",
        ),
        c(
            "text message of 1 MiB + 1 byte",
            [RawFrame(TEXT, b"x" * (_MIB + 1))],
            "10.4",
            "over the limit: 1009",
            "size",
        ),
        Case(
            "RSV1 set; the server never closes TCP",
            (RawFrame(TEXT, b"hello", rsv=(1, 0, 0)),),
            "7.1.1",
            "the server closes TCP first",
            "closing",
            side="client",
            server_closes_tcp=False,
        ),
        Case(
            "101 with a wrong Sec-WebSocket-Accept",
            (),
            "4.1",
            "the client MUST fail the connection",
            "handshake",
            side="client",
            handshake=(
                "\r\n".join([*response_101, "Sec-WebSocket-Accept: bm9wZQ=="]) + "\r\n\r\n"
            ).encode(),
        ),
        Case(
            "200 OK instead of 101",
            (),
            "4.1",
            "anything but 101: fail",
            "handshake",
            side="client",
            handshake=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
        ),
    ]


SERVER_CATALOGUE: tuple[Case, ...] = tuple(_server_cases())
"""Cases where a raw client sends to a websockets server."""

CLIENT_CATALOGUE: tuple[Case, ...] = tuple(_client_cases())
"""Cases where a raw server sends to a websockets client: where the client differs."""

CATALOGUE: tuple[Case, ...] = SERVER_CATALOGUE + CLIENT_CATALOGUE
"""Every case, the server's first."""


def case(name: str, side: Role = "server") -> Case:
    """The case of ``side`` called ``name``.

    Raises:
        ValueError: if there is none, listing the names there are.
    """
    if side not in ("server", "client"):
        raise ValueError(f"side must be 'server' or 'client', got {side!r}")
    for item in CATALOGUE:
        if item.name == name and item.side == side:
            return item
    names = ", ".join(repr(c.name) for c in CATALOGUE if c.side == side)
    raise ValueError(f"no {side} case called {name!r}; the cases are: {names}")


def run_all(cases: Iterable[Case] = CATALOGUE, **kwargs: Any) -> list[Outcome]:
    """Run every case of ``cases`` (default: the whole catalogue), each on its own world."""
    return _run_all(cases, **kwargs)


def table(outcomes: Iterable[Outcome] | None = None, *, rfc: bool = False) -> Table:
    """The outcomes as a text table (default: run the whole catalogue first); see
    :func:`wssim.lab.protocol.table`."""
    return _table(run_all() if outcomes is None else outcomes, rfc=rfc)
