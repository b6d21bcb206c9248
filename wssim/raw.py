"""Raw WebSocket endpoints: hand-built frames, for experiments with malformed traffic.

A :class:`RawClient` runs on a simulated host and talks to a real websockets server; a
:class:`RawServer` accepts a real websockets client. Both do the opening handshake (or send
a hand-written one), then write whatever they are told: any opcode, FIN and the three RSV
bits, masked or not, any length encoding (including non-minimal ones and lengths that lie),
or arbitrary bytes. They answer nothing on their own (no pong, no close): what they receive
is kept, frame by frame, with the close code and reason and how TCP ended (FIN or RST).

Masking keys and handshake keys come from a generator seeded per connection, never from
``secrets``, so an experiment gives the same bytes every time. A raw endpoint also writes
its own view into the trace (``= connection is OPEN``, and a ``closed`` event with the
close code it received), so timelines and sequence diagrams show both ends.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import random
import socket
import struct
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State as WsState
from websockets.utils import apply_mask

from wssim.core.hosts import current_host
from wssim.net.transport import SimTransport
from wssim.trace.events import ClosedInfo, Detail, Event, microseconds
from wssim.trace.recorder import Recorder
from wssim.wire import HttpHead, parse_frame

__all__ = [
    "HttpHead",
    "RawClient",
    "RawConnection",
    "RawFrame",
    "RawServer",
    "RawServerConnection",
    "ReceivedFrame",
    "accept_value",
    "close_payload",
    "parse_frames",
]

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
"""The constant of the opening handshake (RFC 6455, 1.3)."""

MAX_HTTP_HEAD = 16384
LENGTH_BITS = (7, 16, 64)


def close_payload(code: int, reason: str | bytes = b"") -> bytes:
    """The payload of a close frame: a 2-byte code, then the reason (RFC 6455, 5.5.1).

    Any code from 0 to 65535 is accepted, and ``reason`` may be bytes that are not UTF-8:
    this is for building frames a correct endpoint would never send.

    Raises:
        ValueError: if ``code`` is not an integer from 0 to 65535.
    """
    if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 0xFFFF:
        raise ValueError(f"code must be an integer from 0 to 65535, got {code!r}")
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + bytes(reason)


def _opcode_name(opcode: int) -> str:
    try:
        return Opcode(opcode).name
    except ValueError:
        return f"OPCODE {opcode:#x}"


@dataclass(frozen=True)
class RawFrame:
    """A frame to send, exactly as written: nothing is checked against the RFC.

    Attributes:
        opcode: 0 to 15, reserved values included (``websockets.frames.Opcode`` has the
            defined ones).
        payload: the payload, unmasked.
        fin: the FIN bit.
        rsv: the RSV1, RSV2 and RSV3 bits, each 0 or 1.
        mask: True to mask with a key from the connection's seeded generator, False to
            send unmasked, 4 bytes to use that key; None: as the sender should (a client
            masks, a server does not; RFC 6455, 5.1).
        length: the payload length written in the header; None: the true one. A length
            that lies makes the receiver read the following bytes as payload, or wait.
        length_bits: how the length is encoded: 7 (in the second byte, up to 125), 16 or
            64 bits; None: the shortest, as RFC 6455, 5.2 requires.

    Raises:
        ValueError: if a field is out of range, naming it and the allowed values.
    """

    opcode: int
    payload: bytes = b""
    fin: bool = True
    rsv: tuple[int, int, int] = (0, 0, 0)
    mask: bool | bytes | None = None
    length: int | None = None
    length_bits: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.opcode, bool) or not isinstance(self.opcode, int):
            raise ValueError(f"opcode must be an integer from 0 to 15, got {self.opcode!r}")
        if not 0 <= self.opcode <= 15:
            raise ValueError(f"opcode must be an integer from 0 to 15, got {self.opcode!r}")
        if not isinstance(self.payload, bytes | bytearray):
            raise ValueError(f"payload must be bytes, got {type(self.payload).__name__}")
        if len(self.rsv) != 3 or any(bit not in (0, 1) for bit in self.rsv):
            raise ValueError(f"rsv must be three bits, each 0 or 1, got {self.rsv!r}")
        if isinstance(self.mask, bytes | bytearray) and len(self.mask) != 4:
            raise ValueError(f"mask must be True, False, None or 4 bytes, got {self.mask!r}")
        if self.length is not None and (
            isinstance(self.length, bool)
            or not isinstance(self.length, int)
            or not 0 <= self.length < 2**64
        ):
            raise ValueError(f"length must be an integer from 0 to 2**64 - 1, got {self.length!r}")
        if self.length_bits is not None:
            if self.length_bits not in LENGTH_BITS:
                raise ValueError(f"length_bits must be 7, 16, 64 or None, got {self.length_bits!r}")
            limit = {7: 125, 16: 0xFFFF, 64: 2**64 - 1}[self.length_bits]
            if self.declared_length > limit:
                raise ValueError(
                    f"length {self.declared_length} does not fit in length_bits="
                    f"{self.length_bits} (at most {limit})"
                )

    @property
    def declared_length(self) -> int:
        """The length written in the header."""
        return len(self.payload) if self.length is None else self.length

    def header(self, *, masked: bool) -> bytes:
        """The header without the masking key: first byte, second byte, extended length."""
        fin, (rsv1, rsv2, rsv3) = self.fin, self.rsv
        b0 = (0x80 if fin else 0) | rsv1 << 6 | rsv2 << 5 | rsv3 << 4 | self.opcode
        mask_bit = 0x80 if masked else 0
        length = self.declared_length
        bits = self.length_bits or _minimal_bits(length)
        if bits == 7:
            return struct.pack("!BB", b0, mask_bit | length)
        if bits == 16:
            return struct.pack("!BBH", b0, mask_bit | 126, length)
        return struct.pack("!BBQ", b0, mask_bit | 127, length)

    def encode(self, *, client: bool, rng: random.Random) -> bytes:
        """The bytes on the wire, as sent by a client (``client=True``) or a server."""
        mask = self.mask if self.mask is not None else client
        if mask is False:
            return self.header(masked=False) + bytes(self.payload)
        key = bytes(mask) if isinstance(mask, bytes | bytearray) else rng.randbytes(4)
        return self.header(masked=True) + key + apply_mask(bytes(self.payload), key)

    def __str__(self) -> str:
        """What the frame is, in websockets' words, with what is odd about it."""
        return _describe(self.opcode, bytes(self.payload), self.fin, self.rsv, notes=self._notes())

    def _notes(self) -> list[str]:
        notes = []
        if any(self.rsv):
            notes.append("RSV" + "".join(str(i + 1) for i, b in enumerate(self.rsv) if b))
        if self.mask is False:
            notes.append("unmasked")
        elif self.mask is True or isinstance(self.mask, bytes | bytearray):
            notes.append("masked")
        if self.length is not None and self.length != len(self.payload):
            notes.append(f"length says {self.length}")
        if self.length_bits is not None and self.length_bits != _minimal_bits(self.declared_length):
            notes.append(f"{self.length_bits}-bit length")
        return notes


def _minimal_bits(length: int) -> int:
    return 7 if length < 126 else 16 if length < 65536 else 64


def _describe(
    opcode: int, payload: bytes, fin: bool, rsv: Sequence[int], *, notes: Iterable[str] = ()
) -> str:
    notes = list(notes)
    try:
        text = str(Frame(Opcode(opcode), payload, fin))
    except ValueError:
        size = f"{len(payload)} byte{'' if len(payload) == 1 else 's'}"
        text = f"{_opcode_name(opcode)} [{size}{'' if fin else ', continued'}]"
    if notes:
        text += f" ({', '.join(notes)})"
    return text


@dataclass(frozen=True)
class ReceivedFrame:
    """A frame a raw endpoint received.

    Attributes:
        time: the virtual time it arrived.
        opcode: its opcode, 0 to 15.
        payload: its payload, unmasked.
        fin: the FIN bit.
        rsv: the three RSV bits.
        masked: whether it came masked.
    """

    time: float
    opcode: int
    payload: bytes
    fin: bool = True
    rsv: tuple[int, int, int] = (0, 0, 0)
    masked: bool = False

    @property
    def close(self) -> tuple[int, str] | None:
        """For a close frame: ``(code, reason)``; 1005 and "" for an empty one.

        A reason that is not UTF-8 is decoded with replacement characters. None for any
        other frame, or a close frame of one byte.
        """
        if self.opcode != 0x8 or len(self.payload) == 1:
            return None
        if not self.payload:
            return (1005, "")
        (code,) = struct.unpack("!H", self.payload[:2])
        return (code, self.payload[2:].decode(errors="replace"))

    def __str__(self) -> str:
        notes = ["RSV" + "".join(str(i + 1) for i, b in enumerate(self.rsv) if b)]
        return _describe(
            self.opcode,
            self.payload,
            self.fin,
            self.rsv,
            notes=(notes if any(self.rsv) else []) + (["masked"] if self.masked else []),
        )


def parse_frames(data: bytes, *, time: float = 0.0) -> tuple[list[ReceivedFrame], int]:
    """Parse as many whole frames as ``data`` holds, whatever their content.

    Nothing is checked (see :mod:`wssim.wire`). This parser never raises.

    Returns:
        The frames, and how many bytes of ``data`` they took (the rest is an incomplete
        frame).
    """
    frames: list[ReceivedFrame] = []
    offset = 0
    while (parsed := parse_frame(data, offset)) is not None:
        frame, offset = parsed
        frames.append(
            ReceivedFrame(time, frame.opcode, frame.payload, frame.fin, frame.rsv, frame.masked)
        )
    return frames, offset


def accept_value(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value that answers ``key`` (RFC 6455, 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


TcpEnd = Literal["FIN", "RST", "lost", "closed", "aborted"]


class RawConnection(asyncio.Protocol):
    """One raw endpoint of a TCP connection: the common part of clients and servers.

    Everything it receives is kept: :attr:`frames`, the first close frame
    (:attr:`close_code`, :attr:`close_reason`) and how TCP ended (:attr:`tcp`). It never
    answers by itself, except that it closes its side of TCP when the peer closes theirs
    (as any program does when it reads end-of-file), unless ``close_on_eof`` is false.

    Do not create one directly: use :meth:`RawClient.connect` or :meth:`RawServer.accept`.
    """

    side = "client"

    def __init__(self, *, seed: int | str | None = None, close_on_eof: bool = True) -> None:
        self._seed = seed
        self.rng = random.Random(seed)
        self.close_on_eof = close_on_eof
        self.transport: SimTransport | None = None
        self.frames: list[ReceivedFrame] = []
        self.http: HttpHead | None = None
        """The HTTP head received: the server's response, or the client's request."""
        self.body = b""
        """What came after the HTTP head, before frames (the body of an error response)."""
        self.opened_at: float | None = None
        self.tcp: TcpEnd | None = None
        """How TCP ended: ``"FIN"`` (the peer closed it), ``"RST"`` (reset by the peer),
        ``"lost"`` (TCP gave up retransmitting), ``"closed"`` or ``"aborted"`` (this side
        did); None while it is open."""
        self.tcp_at: float | None = None
        self.eof_at: float | None = None
        """When the peer's FIN arrived (None if it never did)."""
        self._buffer = bytearray()
        self._in_http = True
        self._new = asyncio.Event()
        self._ended = asyncio.Event()
        self._unread: deque[ReceivedFrame] = deque()
        self._opened = asyncio.Event()

    def __repr__(self) -> str:
        name = type(self).__name__
        conn = self.conn_id or "?"
        return f"<{name} {conn} frames={len(self.frames)} tcp={self.tcp or 'open'}>"

    # What it received

    @property
    def conn_id(self) -> str:
        """The connection's id in the trace (``"c1"``), or "" before it exists."""
        return self.transport.endpoint.conn.id if self.transport is not None else ""

    @property
    def close_frame(self) -> ReceivedFrame | None:
        """The first close frame received, or None."""
        return next((f for f in self.frames if f.opcode == 0x8), None)

    @property
    def close_code(self) -> int | None:
        """The code of the first close frame received (1005 if it had none), or None."""
        frame = self.close_frame
        if frame is None:
            return None
        parsed = frame.close
        return None if parsed is None else parsed[0]

    @property
    def close_reason(self) -> str | None:
        """The reason of the first close frame received, or None."""
        frame = self.close_frame
        if frame is None:
            return None
        parsed = frame.close
        return None if parsed is None else parsed[1]

    @property
    def ended(self) -> bool:
        """True once TCP is closed or reset, by either side."""
        return self.tcp is not None

    def summary(self) -> str:
        """How the connection ended, in one line: the close frame, then TCP."""
        frame = self.close_frame
        if frame is None:
            got = "no close frame"
        elif frame.close is None:
            got = f"a malformed close frame {frame.payload.hex(' ')}"
        else:
            got = str(Close(*frame.close)) if frame.close[0] != 1005 else "an empty close frame"
        return f"received {got}; {self._tcp_summary()}"

    def _tcp_summary(self) -> str:
        if self.tcp is None:
            return "TCP still open"
        if self.tcp in ("FIN", "RST", "lost"):
            return f"TCP {self.tcp} at t={self.tcp_at:.3f}"
        return f"TCP {self.tcp} by this side at t={self.tcp_at:.3f}"

    async def recv_frame(self, timeout: float | None = None) -> ReceivedFrame | None:
        """The next frame not yet returned by this method, waiting for it if needed.

        Returns:
            The frame, or None if TCP ended (or ``timeout`` seconds passed) first.
        """
        _check_timeout(timeout)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not self._unread and not self.ended:
                    self._new.clear()
                    await self._new.wait()
        return self._unread.popleft() if self._unread else None

    async def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until TCP ends (FIN, RST, or this side closed it).

        Returns:
            True if it ended, False if ``timeout`` seconds passed first.
        """
        _check_timeout(timeout)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._ended.wait()
        return self.ended

    # Sending

    def send_frame(
        self,
        opcode: int,
        payload: bytes = b"",
        *,
        fin: bool = True,
        rsv: tuple[int, int, int] = (0, 0, 0),
        mask: bool | bytes | None = None,
        length: int | None = None,
        length_bits: int | None = None,
    ) -> bytes:
        """Build a frame (see :class:`RawFrame` for the arguments) and send it.

        Returns:
            The bytes written.
        """
        return self.send(RawFrame(opcode, payload, fin, rsv, mask, length, length_bits))

    def send(self, *items: RawFrame | bytes) -> bytes:
        """Send frames and raw bytes, in order, in one write.

        Returns:
            The bytes written.

        Raises:
            ConnectionError: if TCP has already ended on this side (closed, or reset).
        """
        chunks = []
        for item in items:
            if isinstance(item, RawFrame):
                chunks.append(item.encode(client=self.side == "client", rng=self.rng))
            else:
                chunks.append(bytes(item))
        data = b"".join(chunks)
        self._write(data)
        # This side's own view, in websockets' words ("> TEXT ..."): the wire tap cannot
        # always show these frames (a length that lies hides what follows it).
        for item in items:
            self._record_log(f"> {item}" if isinstance(item, RawFrame) else _bytes_note(item))
        return data

    def send_bytes(self, data: bytes) -> None:
        """Write ``data`` as it is.

        Raises:
            ConnectionError: if TCP has already ended on this side (closed, or reset).
        """
        self._write(bytes(data))
        self._record_log(_bytes_note(data))

    def _write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionError(f"cannot send: TCP has ended ({self.tcp or 'closing'})")
        transport.write(data)

    def close_tcp(self) -> None:
        """Close this side of TCP in order (FIN), as a program that calls ``close()``."""
        if self.transport is not None and not self.transport.is_closing():
            self._end("closed")
            self.transport.close()

    def abort(self) -> None:
        """Reset the connection (RST), as a program does by closing its socket with
        ``SO_LINGER`` set to ``(1, 0)`` (without it, closing sends a FIN)."""
        if self.transport is not None and not self.transport.is_closing():
            self._end("aborted")
            sock = self.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()

    async def close(self, code: int = 1000, reason: str = "", timeout: float = 10.0) -> None:
        """Do the closing handshake: send a close frame, wait for TCP to end, close it.

        If the peer has not closed TCP after ``timeout`` seconds, close it from here.
        """
        _check_timeout(timeout)
        if self.transport is None or self.transport.is_closing():
            return
        self.send_frame(0x8, close_payload(code, reason))
        await self.wait_closed(timeout)
        self.close_tcp()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, SimTransport)
        self.transport = transport
        if self._seed is None:
            # Deterministic without a seed: the connection's own id is unique per run.
            self.rng = random.Random(f"wssim.raw/{self.side}/{transport.endpoint.conn.id}")
        self.connected()

    def connected(self) -> None:
        """Called when TCP is established (a client sends its request here)."""

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._in_http:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HTTP_HEAD:
                    self._in_http = False  # not HTTP: keep the bytes as they come
                return
            self.http = HttpHead.parse(bytes(self._buffer[:end]))
            del self._buffer[: end + 4]
            self._in_http = False
            self.head_received(self.http)
        if self.opened_at is None:
            # Not a WebSocket connection (yet): what follows is an HTTP body.
            self.body += bytes(self._buffer)
            self._buffer.clear()
            return
        now = self._time()
        frames, used = parse_frames(bytes(self._buffer), time=now)
        del self._buffer[:used]
        self.frames += frames
        self._unread.extend(frames)
        if frames:
            self._new.set()

    def head_received(self, head: HttpHead) -> None:
        """Called once the HTTP head has arrived."""

    def eof_received(self) -> bool:
        self.eof_at = self._time()
        self._end("FIN")
        # Returning False closes this side too, as a program that reads end-of-file does.
        return not self.close_on_eof

    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(exc, ConnectionResetError):
            self._end("RST", force=True)
        elif exc is not None:
            self._end("lost", force=True)  # TCP gave up: timed out
        self._end("closed")
        self._record_state(WsState.CLOSED)
        self._record_closed()
        self._new.set()

    # Internals

    def _time(self) -> float:
        return _time_of(self.transport)

    def _open(self) -> None:
        self.opened_at = self._time()
        self._record_state(WsState.OPEN)
        self._opened.set()

    def _end(self, how: TcpEnd, *, force: bool = False) -> None:
        if self.tcp is None or (force and self.tcp == "FIN"):
            self.tcp = how
            self.tcp_at = self._time()
        self._ended.set()
        self._new.set()

    def _recorder(self) -> Recorder | None:
        if self.transport is None or current_host() is None:
            return None
        observer = self.transport.endpoint.conn.network.observer
        return observer if isinstance(observer, Recorder) else None

    def _record(self, kind: str, text: str, code: int | None = None, detail: Detail = None) -> None:
        recorder = self._recorder()
        if recorder is None or self.transport is None:
            return
        endpoint = self.transport.endpoint
        event = Event(
            recorder.now(),
            kind,
            text,
            host=endpoint.host.name,
            conn=endpoint.conn.id,
            side=endpoint.side,
            code=code,
            detail=detail,
        )
        recorder.add(event, endpoint.conn.index)

    def _record_log(self, text: str) -> None:
        self._record("log", text)

    def _record_state(self, state: WsState) -> None:
        # In websockets' words, for a raw endpoint to read like a real one in the trace.
        self._record("log", f"= connection is {state.name}", detail=state)

    def _record_closed(self) -> None:
        name = type(self).__name__
        if self.opened_at is None:
            status = getattr(self, "status", None)
            answer = f"HTTP {status}" if status else "no HTTP response"
            message = f"handshake failed: {answer}; {self._tcp_summary()}"
            info = ClosedInfo(name, message, handshake=True, status=status or None)
            self._record("closed", f"{name}: {message}", detail=info)
            return
        # As websockets reports it: the code received, 1006 when no close frame came.
        code = self.close_code
        message = self.summary()
        info = ClosedInfo(name, message)
        self._record("closed", f"{name}: {message}", 1006 if code is None else code, info)


class RawClient(RawConnection):
    """A WebSocket client that sends whatever it is told. Connect with :meth:`connect`.

    Example, in a process spawned on a simulated host::

        client = await RawClient.connect("server", 8765)
        client.send_frame(Opcode.TEXT, b"hi", rsv=(1, 0, 0))   # RSV1 without extension
        await client.wait_closed()
        print(client.close_code, client.tcp)                  # 1002 FIN
    """

    side = "client"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        path: str = "/",
        request: bytes | None = None,
        seed: int | str | None = None,
        close_on_eof: bool = True,
    ) -> None:
        super().__init__(seed=seed, close_on_eof=close_on_eof)
        self._target = f"{host}:{port}"
        self._path = path
        self._request = request
        self._key = ""
        self._answered = asyncio.Event()

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int = 8765,
        *,
        path: str = "/",
        request: bytes | None = None,
        seed: int | str | None = None,
        close_on_eof: bool = True,
        timeout: float | None = 10.0,
    ) -> RawClient:
        """Connect to ``host:port`` and do the opening handshake.

        Args:
            host: the server's host name.
            port: its port.
            path: the request target of the handshake.
            request: bytes to send instead of the normal handshake request (a hand-written
                request, to see how a server rejects it).
            seed: seeds the masking keys and the handshake key. Default: derived from the
                connection's id, so every run sends the same bytes.
            close_on_eof: close this side of TCP when the peer closes theirs.
            timeout: seconds to wait for the server's response (None: for ever).

        Returns:
            The client, OPEN if the server answered ``101`` with the right accept key;
            otherwise :attr:`status` says what the server answered (None: nothing).

        Raises:
            OSError: if the TCP connection fails (refused, timed out).
            ValueError: if ``port`` or ``timeout`` is out of range.
        """
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"port must be an integer from 1 to 65535, got {port!r}")
        _check_timeout(timeout)
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: cls(
                host=host,
                port=port,
                path=path,
                request=request,
                seed=seed,
                close_on_eof=close_on_eof,
            ),
            host,
            port,
        )
        assert isinstance(protocol, RawClient)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await protocol._answered.wait()
        return protocol

    @property
    def status(self) -> int | None:
        """The HTTP status the server answered (101 when it accepted), or None."""
        if self.http is None:
            return None
        parts = self.http.start.split(" ")
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None

    @property
    def open(self) -> bool:
        """True if the opening handshake succeeded."""
        return self.opened_at is not None

    def connected(self) -> None:
        if self._request is not None:
            self._write(self._request)
            return
        self._key = base64.b64encode(self.rng.randbytes(16)).decode()
        request = (
            f"GET {self._path} HTTP/1.1\r\n"
            f"Host: {self._target}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self._key}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "\r\n"
        )
        self._write(request.encode())

    def head_received(self, head: HttpHead) -> None:
        accept = head.headers.get("sec-websocket-accept", "")
        if self.status == 101 and (self._request is not None or accept == accept_value(self._key)):
            self._open()
        self._answered.set()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._answered.set()


class RawServerConnection(RawConnection):
    """One connection accepted by a :class:`RawServer`; frames it sends are unmasked."""

    side = "server"

    def __init__(self, server: RawServer) -> None:
        super().__init__(seed=None, close_on_eof=server.close_on_eof)
        self._server = server

    def head_received(self, head: HttpHead) -> None:
        response = self._server.response
        if response is None:
            key = head.headers.get("sec-websocket-key", "")
            response = (
                "HTTP/1.1 101 Switching Protocols\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept_value(key)}\r\n"
                "\r\n"
            ).encode()
        self._write(response)
        self._open()
        self._server._accepted(self)


class RawServer:
    """A WebSocket server that sends whatever it is told, to test a real client.

    Start it with :meth:`listen` in a process spawned on a simulated host; each
    :meth:`accept` returns the next connection whose request has been answered.

    Example::

        async def bad_server():
            async with await RawServer.listen(8765) as server:
                conn = await server.accept()
                conn.send_frame(Opcode.TEXT, b"hi", mask=True)   # servers must not mask
                await conn.wait_closed()
    """

    def __init__(self, *, response: bytes | None, close_on_eof: bool) -> None:
        self.response = response
        self.close_on_eof = close_on_eof
        self.connections: list[RawServerConnection] = []
        self._queue: asyncio.Queue[RawServerConnection] = asyncio.Queue()
        self._listener: asyncio.AbstractServer | None = None

    @classmethod
    async def listen(
        cls, port: int = 8765, *, response: bytes | None = None, close_on_eof: bool = True
    ) -> RawServer:
        """Listen on ``port`` of the host this runs on.

        Args:
            port: the port.
            response: bytes to answer every request with, instead of a correct ``101``
                (a hand-written response, to see how a client rejects it).
            close_on_eof: close a connection's side of TCP when the client closes theirs.

        Raises:
            ValueError: if ``port`` is out of range.
        """
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"port must be an integer from 1 to 65535, got {port!r}")
        server = cls(response=response, close_on_eof=close_on_eof)
        loop = asyncio.get_running_loop()
        server._listener = await loop.create_server(lambda: RawServerConnection(server), None, port)
        return server

    async def accept(self, timeout: float | None = None) -> RawServerConnection:
        """The next connection whose handshake request has been answered.

        Raises:
            TimeoutError: if none comes within ``timeout`` seconds.
        """
        _check_timeout(timeout)
        async with asyncio.timeout(timeout):
            return await self._queue.get()

    def close(self) -> None:
        """Stop listening (open connections stay open)."""
        if self._listener is not None:
            self._listener.close()

    async def __aenter__(self) -> RawServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def _accepted(self, connection: RawServerConnection) -> None:
        self.connections.append(connection)
        self._queue.put_nowait(connection)


def _bytes_note(data: bytes) -> str:
    size = len(data)
    return f"> {size} raw byte{'' if size == 1 else 's'}"


def _now() -> float:
    return microseconds(asyncio.get_running_loop().time())


def _time_of(transport: SimTransport | None) -> float:
    """The network's virtual time (callbacks may run while no loop is current)."""
    if transport is None:
        return _now()
    return microseconds(transport.endpoint.conn.network.loop.time())


def _check_timeout(timeout: float | None) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0:
        raise ValueError(f"timeout must be a number of seconds >= 0 or None, got {timeout!r}")
