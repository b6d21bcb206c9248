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
* TCP lost without a close frame once open: ``close`` 1006, ``wasClean`` false, and no
  ``error`` event (Chromium in the reality suite's server-rst, server-killed and
  close-unanswered scenarios).

Choices where the specs leave room (Chromium's behaviour, observed by the reality suite's
browser group, reality/browser_sim.py): on a protocol error the Sans-I/O protocol sends its
close frame before the page is told, with Chromium's code and reason (:data:`REASONS`:
invalid UTF-8 in a text frame is 1002 "Invalid UTF-8 in text frame", not 1007); a
page-initiated ``close()`` with no code sends a close frame without a code (the page then
sees 1005); Chromium never sends pings, and answers the server's with pongs (the Sans-I/O
protocol does); after the page sent a close frame,
if TCP is not closed by the server within :data:`CLOSING_TIMEOUT` seconds, the socket is
closed (Chromium's ``kClosingHandshakeTimeout``, net/websockets/websocket_channel.cc);
once the closing handshake completed, if the server keeps TCP open, the socket is closed
:data:`UNDERLYING_CLOSE_TIMEOUT` seconds later and the page sees a clean close (Chromium's
``kUnderlyingConnectionCloseTimeout``; the reality suite's close-answered-tcp-kept scenario:
``close 1000 "" true`` 2 s after the server's close frame).
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

__all__ = ["CLOSING_TIMEOUT", "REASONS", "UNDERLYING_CLOSE_TIMEOUT", "Socket", "check_url"]

CLOSING_TIMEOUT = 60.0
"""Seconds a closing handshake may take before the browser closes TCP itself."""

UNDERLYING_CLOSE_TIMEOUT = 2.0
"""Seconds the browser waits for the server to close TCP once both close frames went."""

REASONS = {
    "reserved bits must be 0": "Invalid reserved bit",
    "incorrect masking": "Masked frame from server",
}
"""websockets' reasons for failing a connection, as Chromium words them in its close frame
(the reality suite's reserved-bits and masked-frame scenarios: what the server received)."""


class _Client(ClientProtocol):
    """websockets' Sans-I/O client, failing with Chromium's reasons (:data:`REASONS`)."""

    def fail(self, code: int, reason: str = "") -> None:
        super().fail(code, REASONS.get(reason, reason))


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
        self._client = _Client(
            parse_uri(url),
            subprotocols=[Subprotocol(p) for p in protocols] or None,
            max_size=None,
        )
        self._transport: asyncio.Transport | None = None
        self._fragments: list[bytes] = []
        self._fragment_text = False
        self._told_closed = False  # the page has had its close event (or is gone)
        self._failed = False
        self._opened = False  # the handshake completed
        self._gone = False  # the page is gone: nothing more is told
        self._timer: asyncio.TimerHandle | None = None
        self._underlying_armed = False
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
            # Chromium: no error event when TCP is lost after the opening handshake, only
            # close 1006 (reality suite: server-rst, server-killed, close-unanswered).
            self._fail(error=not self._opened)

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
                self._opened = True
                self._say("open", protocol, extensions)
            elif isinstance(event, Frame):
                self._frame(event)
        self._flush()
        if isinstance(client.parser_exc, EOFError) and not client.handshake_exc:
            # A FIN without a close frame: TCP lost, no error event once open (Chromium in
            # the reality suite's server-killed scenario).
            self._fail(error=not self._opened)
        elif client.parser_exc is not None and not client.handshake_exc:
            self._fail()  # a protocol error or invalid UTF-8: Sans-I/O sent its close frame
        elif client.close_rcvd is not None and client.close_sent is not None:
            self._say("closing")
            self._arm_underlying_close_timeout()

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
                    # UTF-8 to the layer above. RFC 6455, 8.1 says 1007; Chromium sends
                    # 1002 "Invalid UTF-8 in text frame" (the server's record in the
                    # reality suite's invalid-utf8 scenario).
                    self._client.fail(CloseCode.PROTOCOL_ERROR, "Invalid UTF-8 in text frame")
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

    def close_on_restore(self) -> None:
        """The page came back from the back/forward cache: Chromium closes the connection
        (1001, empty reason, to the server) and the page sees ``error``, then ``close``
        1006, not clean (the reality suite's tab-back scenario)."""
        client = self._client
        if client.state is State.OPEN:
            client.send_close(1001, "")
            self._flush()
            self._arm_closing_timeout()
        elif client.state is State.CONNECTING:
            self._abort()
        if not self._told_closed:
            self._say("error")
            self._tell_closed(1006, "", False)

    # Helpers

    def _fail(self, *, error: bool = True) -> None:
        """Fail the WebSocket connection: error (unless not ``error``), then close 1006,
        not clean."""
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
            if error:
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

    def _arm_underlying_close_timeout(self) -> None:
        if self._transport is None or self._underlying_armed:
            return
        self._underlying_armed = True
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(UNDERLYING_CLOSE_TIMEOUT, self._abort)

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
