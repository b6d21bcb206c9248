"""The network side of a page's ``WebSocket``: websockets' Sans-I/O client over simulated TCP.

One :class:`Socket` per ``new WebSocket(...)``. It speaks RFC 6455 through websockets'
:class:`~websockets.client.ClientProtocol` on a connection made with
``loop.create_connection`` on the tab's host, and tells the page what the WHATWG
WebSocket standard says it sees:

* *fail the WebSocket connection* (handshake refused, timed out, answered with anything
  but a valid 101; a protocol error or invalid UTF-8 from the server; ``close()`` while
  connecting): ``error``, then ``close`` with code 1006 and ``wasClean`` false, at once.
  The page never sees the HTTP status.
* a close frame from the server: ``close`` with its code and reason once TCP is closed,
  ``wasClean`` true when the closing handshake completed.
* TCP lost without a closing handshake: ``error``, then ``close`` 1006, ``wasClean`` false.

Choices where the specs leave room (Chromium's observed behaviour, to be checked by the
reality suite): on a protocol error the Sans-I/O protocol sends its close frame (1002 or
1007) before the page is told; a page-initiated ``close()`` with no code sends a close
frame without a code (the page then sees 1005); Chromium never sends pings, and answers
the server's with pongs (the Sans-I/O protocol does); after the page sent a close frame,
if TCP is not closed by the server within :data:`CLOSING_TIMEOUT` seconds, the socket is
closed (Chromium's ``kClosingHandshakeTimeout``, net/websockets/websocket_channel.cc).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidURI
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from wssim.core.hosts import Host

__all__ = ["CLOSING_TIMEOUT", "Socket", "check_url"]

CLOSING_TIMEOUT = 60.0
"""Seconds a closing handshake may take before the browser closes TCP itself."""

Notify = Callable[..., None]
"""How a socket tells the page: ``notify(what, *args)`` (see the prelude's ``__wssim_ws``)."""


def check_url(url: str) -> str | None:
    """Why ``url`` cannot be a WebSocket URL (the page's SyntaxError message), or None."""
    try:
        parsed = parse_uri(url)
    except InvalidURI as exc:
        return f"The URL '{url}' is invalid: {exc}"
    if parsed.secure:
        return "wss:// URLs are not simulated (no TLS): use ws://"
    return None


class Socket(asyncio.Protocol):
    """One WebSocket connection of a page, from the browser's network stack."""

    def __init__(
        self,
        host: Host,
        loop: asyncio.AbstractEventLoop,
        url: str,
        protocols: list[str],
        notify: Notify,
    ) -> None:
        self.host = host
        self._loop = loop
        self.url = url
        self._notify = notify
        self._client = ClientProtocol(
            parse_uri(url),
            subprotocols=[Subprotocol(p) for p in protocols] or None,
            max_size=None,
        )
        self._transport: asyncio.Transport | None = None
        self._fragments: list[bytes] = []
        self._fragment_text = False
        self._told_closed = False  # the page has had its close event (or is gone)
        self._failed = False
        self._gone = False  # the page is gone: nothing more is told
        self._timer: asyncio.TimerHandle | None = None
        self._task = host.spawn(self._connect(), name="browser WebSocket")

    # Opening

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        wsuri = parse_uri(self.url)
        try:
            await loop.create_connection(lambda: self, wsuri.host, wsuri.port)
        except (TimeoutError, OSError):
            self._fail()  # refused, unreachable, timed out

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if self._gone or self._failed:
            transport.abort()
            return
        self._client.send_request(self._client.connect())
        self._flush()

    # Receiving

    def data_received(self, data: bytes) -> None:
        self._client.receive_data(data)
        self._process()

    def eof_received(self) -> bool | None:
        self._client.receive_eof()
        self._process()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._transport = None
        client = self._client
        if self._told_closed or self._gone:
            return
        if client.close_rcvd is not None and client.close_sent is not None:
            # The closing handshake completed: a clean close, with the server's code.
            self._tell_closed(client.close_rcvd.code, client.close_rcvd.reason, True)
        elif client.close_rcvd is not None:
            self._tell_closed(client.close_rcvd.code, client.close_rcvd.reason, False)
        else:
            self._fail()

    def _process(self) -> None:
        client = self._client
        for event in client.events_received():
            if self._failed:
                break
            if isinstance(event, Response):
                if client.handshake_exc is not None:
                    self._fail()
                    return
                protocol = client.subprotocol or ""
                extensions = event.headers.get("Sec-WebSocket-Extensions", "")
                self._say("open", protocol, extensions)
            elif isinstance(event, Frame):
                self._frame(event)
        self._flush()
        if client.parser_exc is not None and not client.handshake_exc:
            self._fail()  # a protocol error or invalid UTF-8: Sans-I/O sent 1002/1007
        elif client.close_rcvd is not None and client.close_sent is not None:
            self._say("closing")

    def _frame(self, frame: Frame) -> None:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            self._fragments = [bytes(frame.data)]
            self._fragment_text = frame.opcode is Opcode.TEXT
        elif frame.opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
        else:
            return  # ping (answered by the protocol), pong, close
        if frame.fin:
            data = b"".join(self._fragments)
            self._fragments = []
            if self._fragment_text:
                try:
                    text = data.decode()
                except UnicodeDecodeError:
                    # As websockets' own connections do: the Sans-I/O protocol leaves
                    # UTF-8 to the layer above. RFC 6455, 8.1: fail the connection (1007).
                    self._client.fail(CloseCode.INVALID_DATA, "invalid UTF-8")
                    self._flush()
                    self._fail()
                    return
                self._say("message", json.dumps(text), "", False)
            else:
                self._say("message", data.hex(), "", True)

    # What the page does

    def send(self, data: str | bytes) -> None:
        """Send a message (the page checked the state: OPEN)."""
        if self._client.state is not State.OPEN:
            return
        if isinstance(data, str):
            self._client.send_text(data.encode())
        else:
            self._client.send_binary(data)
        self._flush()

    def close(self, code: int | None, reason: str) -> None:
        """``ws.close(code, reason)`` (arguments already checked by the page)."""
        client = self._client
        if client.state is State.CONNECTING:
            self._fail()  # WHATWG: close() while connecting fails the connection
        elif client.state is State.OPEN:
            client.send_close(code, reason)
            self._flush()
            self._arm_closing_timeout()

    @property
    def buffered_amount(self) -> int:
        """Bytes written but not yet handed to the network (``bufferedAmount``)."""
        return self._transport.get_write_buffer_size() if self._transport else 0

    # The page goes away

    def unload(self) -> None:
        """The page is unloaded: close with 1001 and an empty reason, as Chromium does."""
        self._gone = True
        client = self._client
        if client.state is State.OPEN:
            client.send_close(1001, "")
            self._flush()
            self._arm_closing_timeout()
        elif client.state is State.CONNECTING:
            self._abort()

    def kill(self) -> None:
        """The renderer died: no close frame; the OS closes the TCP connection."""
        self._gone = True
        self._abort()

    # Helpers

    def _fail(self) -> None:
        """Fail the WebSocket connection: error, then close 1006, not clean."""
        if self._failed:
            return
        self._failed = True
        if self._transport is not None and self._client.state is not State.CLOSING:
            self._abort()
        elif self._transport is not None:
            self._arm_closing_timeout()
        if not self._task.done():
            self._task.cancel()
        if not self._told_closed and not self._gone:
            self._say("error")
            self._tell_closed(1006, "", False)

    def _tell_closed(self, code: int, reason: str, clean: bool) -> None:
        self._told_closed = True
        self._say("close", code, json.dumps(reason), clean)

    def _say(self, what: str, *args: Any) -> None:
        if not self._gone and (not self._told_closed or what == "close"):
            self._notify(what, *args)

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        for data in self._client.data_to_send():
            if data:
                transport.write(data)
            else:
                transport.write_eof()
        if self._client.close_expected() and self._client.state is State.CLOSED:
            transport.close()

    def _arm_closing_timeout(self) -> None:
        if self._timer is None and self._transport is not None:
            self._timer = self._loop.call_later(CLOSING_TIMEOUT, self._abort)

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
