"""The bytes on a WebSocket connection's wire, parsed without judgement (Sans-I/O).

One codec for everyone who reads the wire as it is: the wire tap, which describes each
frame for the trace, and the raw endpoints, which must see whatever a broken peer sends.
Unlike websockets' own parser, nothing here is checked: reserved opcodes and bits, masks
in either direction, control frames of any size are all returned as they are, and the
parser never raises (RFC 6455, section 5.2 gives the layout).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from websockets.utils import apply_mask

__all__ = ["HttpHead", "WireFrame", "parse_frame"]


@dataclass(frozen=True, slots=True)
class WireFrame:
    """One frame as it crossed the wire, its payload unmasked.

    Attributes:
        opcode: 0 to 15, reserved values included.
        payload: the payload, unmasked.
        fin: the FIN bit.
        rsv: the three RSV bits.
        masked: whether it came masked.
    """

    opcode: int
    payload: bytes
    fin: bool
    rsv: tuple[int, int, int]
    masked: bool


def parse_frame(data: bytes | bytearray, offset: int = 0) -> tuple[WireFrame, int] | None:
    """Parse the frame that starts at ``offset`` of ``data``.

    Returns:
        The frame and the offset just after it, or None if ``data`` does not hold the
        whole frame yet.
    """
    size = len(data)
    if size - offset < 2:
        return None
    b0, b1 = data[offset], data[offset + 1]
    length = b1 & 0x7F
    at = offset + 2
    if length == 126:
        if size - at < 2:
            return None
        (length,) = struct.unpack_from("!H", data, at)
        at += 2
    elif length == 127:
        if size - at < 8:
            return None
        (length,) = struct.unpack_from("!Q", data, at)
        at += 8
    masked = bool(b1 & 0x80)
    key = b""
    if masked:
        if size - at < 4:
            return None
        key = bytes(data[at : at + 4])
        at += 4
    if size - at < length:
        return None
    payload = bytes(data[at : at + length])
    if masked:
        payload = apply_mask(payload, key)
    rsv = ((b0 >> 6) & 1, (b0 >> 5) & 1, (b0 >> 4) & 1)
    return WireFrame(b0 & 0x0F, payload, bool(b0 & 0x80), rsv, masked), at + length


@dataclass
class HttpHead:
    """An HTTP request or response head: its first line and its headers (names lowercased)."""

    start: str
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: bytes) -> HttpHead:
        """Parse a head, without its final blank line."""
        text = raw.decode("latin-1")
        start, *lines = text.split("\r\n")
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return cls(start, headers)
