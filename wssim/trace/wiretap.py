"""Decode the bytes of a connection into what a person wants to read.

A tap sits on one direction of a connection and turns the bytes written there into
descriptions: the HTTP upgrade request or response, then WebSocket frames in websockets'
own wording (``TEXT 'hi' [2 bytes]``, ``CLOSE 1000 (OK) [2 bytes]``). Masks and the
``Sec-WebSocket-Key`` never reach the description, so traces are deterministic. A tap never
raises: bytes it cannot decode are reported as such, and it stops decoding that direction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import WebSocketException
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Close, Frame, Opcode
from websockets.headers import parse_extension

from wssim.trace.events import MAX_DATA, FrameInfo
from wssim.wire import HttpHead, WireFrame, parse_frame

__all__ = ["ConnectionTap", "Decoded", "DirectionTap", "frame_info"]

MAX_HTTP_HEAD = 16384


@dataclass(frozen=True)
class Decoded:
    """One thing seen on the wire."""

    kind: str  # "http", "frame" or "bytes"
    text: str
    code: int | None = None  # the close code of a CLOSE frame, the status of a response
    frame: FrameInfo | None = None  # what a frame is, for code that reads the trace


@dataclass
class ConnectionTap:
    """What both directions of one connection share: the negotiated compression."""

    deflate_params: dict[str, str | None] | None = None
    to_server: DirectionTap = field(init=False)
    to_client: DirectionTap = field(init=False)

    def __post_init__(self) -> None:
        self.to_server = DirectionTap(self, from_client=True)
        self.to_client = DirectionTap(self, from_client=False)


class DirectionTap:
    """Decodes one direction of a connection, incrementally."""

    def __init__(self, connection: ConnectionTap, *, from_client: bool) -> None:
        self._connection = connection
        self._from_client = from_client
        self._buffer = bytearray()
        # "http", then "frames"; "body" skips a non-101 response's body; "raw" is a stream
        # that is not HTTP at all; "opaque" follows bytes that could not be decoded.
        self._state = "http"
        self._body_left = 0
        self._deflate: PerMessageDeflate | None = None

    def feed(self, data: bytes) -> list[Decoded]:
        """Add bytes written on this direction; return what they complete."""
        if self._state == "opaque":
            return []
        self._buffer += data
        out: list[Decoded] = []
        try:
            while True:
                item = self._next()
                if item is None:
                    break
                out.append(item)
        except Exception as exc:
            out.append(Decoded("bytes", f"undecodable bytes ({type(exc).__name__})"))
            self._state = "opaque"
            self._buffer.clear()
        return out

    def _raw(self) -> Decoded | None:
        if not self._buffer:
            return None
        size = len(self._buffer)
        self._buffer.clear()
        return Decoded("bytes", f"{size} bytes (not HTTP)")

    def _next(self) -> Decoded | None:
        if self._state == "raw":
            return self._raw()
        if self._state == "http":
            return self._http_head()
        if self._state == "body":
            taken = min(self._body_left, len(self._buffer))
            del self._buffer[:taken]
            self._body_left -= taken
            if self._body_left == 0:
                self._state = "http"
            return None if not self._buffer or self._state == "body" else self._next()
        return self._frame()

    def _http_head(self) -> Decoded | None:
        expected = b"GET " if self._from_client else b"HTTP/"
        prefix = bytes(self._buffer[: len(expected)])
        if not expected.startswith(prefix):
            self._state = "raw"
            return self._raw()
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HTTP_HEAD:
                raise ValueError("HTTP head too long")
            return None
        head = HttpHead.parse(bytes(self._buffer[:end]))
        del self._buffer[: end + 4]
        start, headers = head.start, head.headers
        if self._from_client:
            method, target, _version = start.split(" ", 2)
            upgrade = headers.get("upgrade", "")
            if upgrade.lower() == "websocket":
                self._state = "frames"
            suffix = f" (Upgrade: {upgrade})" if upgrade else ""
            return Decoded("http", f"{method} {target}{suffix}")
        _version, status, *reason = start.split(" ", 2)
        code = int(status)
        text = f"{code} {reason[0] if reason else ''}".rstrip()
        if code == 101:
            self._state = "frames"
            self._negotiate(headers.get("sec-websocket-extensions"))
        else:
            length = int(headers.get("content-length", "0") or 0)
            if length:
                text += f" [body {length} bytes]"
                self._state = "body"
                self._body_left = length
        return Decoded("http", text, code=code)

    def _negotiate(self, header: str | None) -> None:
        if not header:
            return
        for name, params in parse_extension(header):
            if name == "permessage-deflate":
                self._connection.deflate_params = dict(params)

    def _frame(self) -> Decoded | None:
        parsed = parse_frame(self._buffer)
        if parsed is None:
            return None
        frame, end = parsed
        del self._buffer[:end]
        return self._describe(frame)

    def _describe(self, wire: WireFrame) -> Decoded:
        payload, masked, fin = wire.payload, wire.masked, wire.fin
        rsv1, rsv2, rsv3 = (bool(bit) for bit in wire.rsv)
        opcode_value = wire.opcode
        notes = []
        if masked != self._from_client:
            notes.append("masked" if masked else "unmasked")
        wire_size = len(payload)
        try:
            opcode = Opcode(opcode_value)
        except ValueError:
            notes.append(f"reserved opcode {opcode_value:#x}")
            irregular = ", ".join(notes)
            info = FrameInfo(
                opcode_value, wire_size, wire_size, fin, masked, head=5, notes=irregular
            )
            return Decoded("frame", f"FRAME [{wire_size} bytes, {irregular}]", frame=info)
        frame = Frame(opcode, payload, fin, rsv1, rsv2, rsv3)
        is_data = opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)
        if is_data and self._connection.deflate_params is not None and not (rsv2 or rsv3):
            frame = self._inflate(frame, notes)
        elif rsv1 or rsv2 or rsv3:
            notes.append("reserved bits set")
        text = str(frame)
        # websockets ends its description with the size in brackets; the tap knows its
        # own sentence, so it says where the frame's description ends for the plots.
        head = text.rindex(" [")
        irregular = ""
        if notes:
            irregular = ", ".join(n for n in notes if not n.startswith("compressed"))
            text += f" ({', '.join(notes)})"
        info, code = frame_info(frame, wire_size, masked, head, irregular)
        return Decoded("frame", text, code=code, frame=info)

    def _inflate(self, frame: Frame, notes: list[str]) -> Frame:
        if self._deflate is None:
            params = self._connection.deflate_params
            assert params is not None
            client_nct = "client_no_context_takeover" in params
            server_nct = "server_no_context_takeover" in params
            client_bits = int(params.get("client_max_window_bits") or 15)
            server_bits = int(params.get("server_max_window_bits") or 15)
            if self._from_client:
                self._deflate = PerMessageDeflate(client_nct, server_nct, client_bits, server_bits)
            else:
                self._deflate = PerMessageDeflate(server_nct, client_nct, server_bits, client_bits)
        wire_size, compressed = len(frame.data), frame.rsv1
        frame = self._deflate.decode(frame)
        if compressed:
            notes.append(f"compressed to {wire_size} bytes")
        return frame


def frame_info(
    frame: Frame,
    wire_size: int | None,
    masked: bool | None,
    head: int,
    notes: str = "",
    *,
    sent: bool = True,
) -> tuple[FrameInfo, int | None]:
    """The :class:`~wssim.trace.FrameInfo` of a decoded frame, and its close code.

    Args:
        frame: the frame, decompressed.
        wire_size: its payload's size on the wire, or None if unknown (a log line).
        masked: whether it was masked on the wire, or None if unknown.
        head: the length of its description before the size.
        notes: what was irregular about it.
        sent: False for a frame an endpoint logged as received.
    """
    opcode = frame.opcode
    data = reason = None
    code = None
    if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
        if len(frame.data) <= MAX_DATA:
            try:
                data = bytes(frame.data).decode()
            except UnicodeDecodeError:
                data = None
    elif opcode is Opcode.CLOSE:
        try:
            if frame.data:
                close = Close.parse(frame.data)
                code, reason = close.code, close.reason
            else:
                code = 1005  # RFC 6455, 7.1.5: no status code was present
        except (WebSocketException, UnicodeDecodeError, ValueError):
            code = None
    key = (opcode, len(frame.data), wire_size, frame.fin, masked, data, reason, sent, head, notes)
    info = _INTERNED.get(key)
    if info is None:
        if len(_INTERNED) >= _INTERNED_MAX:
            _INTERNED.clear()
        info = _INTERNED[key] = FrameInfo(*key)
    return info, code


# Frames repeat (every keepalive PING of a connection is described alike): equal details
# are shared, as they are immutable, which saves an allocation per frame on the hot path
# and memory in long traces. Bounded, so that distinct messages are not all kept.
_INTERNED: dict[tuple[Any, ...], FrameInfo] = {}
_INTERNED_MAX = 4096
