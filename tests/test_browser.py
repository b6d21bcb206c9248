"""wssim.browser: a tab's page code, its WebSocket and its lifecycle, at exact virtual times."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

import wssim
from wssim.browser import JSError, Tab, websocket

PAGE = """
const ws = new WebSocket("ws://server:8765");
ws.onopen = () => { console.log("open", performance.now()); ws.send("hello"); };
ws.onmessage = (e) => console.log("message", e.data, performance.now());
ws.onerror = () => console.log("error", ws.readyState, performance.now());
ws.onclose = (e) => console.log("close", e.code, JSON.stringify(e.reason), e.wasClean,
                                performance.now());
"""


@pytest.fixture
def sim() -> Iterator[wssim.Simulation]:
    with wssim.Simulation(seed=0, latency=0.010) as s:
        yield s


def start_server(sim: wssim.Simulation, seen: list[Any] | None = None, **kwargs: Any) -> None:
    """An echo server on host "server"; what each connection ended with goes to ``seen``."""

    async def echo(ws: ServerConnection) -> None:
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass
        if seen is not None:
            seen.append((round(sim.now, 6), ws.close_code, ws.close_reason))

    async def server() -> None:
        async with serve(echo, "server", 8765, **kwargs) as s:
            await s.serve_forever()

    sim.host("server").spawn(server())


def lines(tab: Tab) -> list[tuple[float, str]]:
    return list(tab.console)


def test_echo_then_page_close_is_clean(sim: wssim.Simulation) -> None:
    seen: list[Any] = []
    start_server(sim, seen)
    tab = Tab(sim.host("laptop"))
    tab.run_js(PAGE + 'ws.addEventListener("message", () => ws.close(1000, "done"));')
    sim.run(until=5)
    assert tab.console == [
        (0.04, "open 40"),
        (0.06, "message hello 60"),
        (0.08, 'close 1000 "done" true 80'),
    ]
    assert seen == [(0.09, 1000, "done")]
    assert sim.host("laptop").tasks == []  # nothing of the tab is left running
    console = sim.trace.filter(kind="console")
    assert [(e.time, e.host, e.text) for e in console[:1]] == [(0.04, "laptop", "open 40")]


def test_server_closes_1001_with_reason(sim: wssim.Simulation) -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.close(1001, "going away now")

    async def server() -> None:
        async with serve(handler, "server", 8765) as s:
            await s.serve_forever()

    sim.host("server").spawn(server())
    tab = Tab(sim.host("laptop"))
    tab.run_js(PAGE)
    sim.run(until=5)
    assert tab.console == [(0.04, "open 40"), (0.08, 'close 1001 "going away now" true 80')]


def test_server_host_crash_is_1006_without_error(sim: wssim.Simulation) -> None:
    # TCP lost once open, no close frame: close 1006 and no error event, as Chromium in the
    # reality suite (server-rst, server-killed).
    start_server(sim)
    tab = Tab(sim.host("laptop"))
    tab.run_js(PAGE)
    sim.at(1, sim.host("server").crash)
    sim.run(until=5)
    assert tab.console[2:] == [(1.01, 'close 1006 "" false 1010')]


def test_refused_handshake_is_error_then_1006(sim: wssim.Simulation) -> None:
    sim.host("server")  # up, nothing listening: the SYN is answered with an RST
    tab = Tab(sim.host("laptop"))
    tab.run_js(PAGE)
    sim.run(until=5)
    assert tab.console == [(0.02, "error 3 20"), (0.02, 'close 1006 "" false 20')]


def test_http_503_is_error_then_1006_without_the_status(sim: wssim.Simulation) -> None:
    def busy(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(503, "busy\n")

    start_server(sim, process_request=busy)
    tab = Tab(sim.host("laptop"))
    tab.run_js(PAGE)
    sim.run(until=5)
    assert tab.console == [(0.04, "error 3 40"), (0.04, 'close 1006 "" false 40')]
    assert [e.code for e in sim.trace.filter(kind="http")] == [None, 503]


def test_close_and_send_argument_errors(sim: wssim.Simulation) -> None:
    start_server(sim)
    tab = Tab(sim.host("laptop"))
    tab.run_js("""
    const ws = new WebSocket("ws://server:8765");
    const name = (f) => { try { f(); return "ok"; } catch (e) { return e.name; } };
    console.log(name(() => ws.send("x")), ws.readyState);
    ws.onopen = () => {
      console.log(name(() => ws.close(1001)), name(() => ws.close(1000, "é".repeat(62))),
                  name(() => ws.close(1000, "é".repeat(61))), ws.readyState);
    };
    ws.onclose = (e) => console.log("close", e.code, e.wasClean);
    console.log(WebSocket.CONNECTING, WebSocket.OPEN, WebSocket.CLOSING, WebSocket.CLOSED,
                ws.CLOSED, ws.url, ws.protocol === "", ws.bufferedAmount);
    """)
    sim.run(until=5)
    assert tab.console == [
        (0.0, "InvalidStateError 0"),
        (0.0, "0 1 2 3 3 ws://server:8765 true 0"),
        (0.04, "InvalidAccessError SyntaxError ok 2"),
        (0.06, "close 1000 true"),
    ]


def test_close_while_connecting_fails_the_connection(sim: wssim.Simulation) -> None:
    start_server(sim)
    tab = Tab(sim.host("laptop"))
    tab.run_js(PAGE + "ws.close();")
    sim.run(until=5)
    assert tab.console == [(0.0, "error 3 0"), (0.0, 'close 1006 "" false 0')]


def test_tab_close_sends_1001_with_an_empty_reason(sim: wssim.Simulation) -> None:
    seen: list[Any] = []
    start_server(sim, seen)
    tab = Tab(sim.host("laptop"))
    tab.run_js(PAGE + 'addEventListener("pagehide", () => console.log("pagehide"));')
    sim.at(1, tab.close)
    sim.run(until=5)
    assert tab.console[-1] == (1.0, "pagehide")  # and no close event: the page is gone
    assert seen == [(1.03, 1001, "")]
    assert tab.state == "closed"


def test_tab_crash_closes_the_sockets_with_1001(sim: wssim.Simulation) -> None:
    # Chromium's network service closes a dead renderer's WebSockets (reality: tab-crash).
    seen: list[Any] = []
    start_server(sim, seen)
    tab = Tab(sim.host("laptop"))
    tab.run_js(PAGE + 'addEventListener("pagehide", () => console.log("pagehide"));')
    sim.at(2, tab.crash)
    sim.run(until=5)
    assert seen == [(2.03, 1001, "")]
    assert tab.state == "crashed"
    assert tab.console[-1] == (0.06, "message hello 60")  # no event ran in the page
    close = sim.trace.first(kind="frame", host="laptop", since=1)
    assert close is not None and close.time == 2.0 and "1001" in close.text
    assert sim.host("laptop").tasks == []


def test_reload_runs_the_page_again(sim: wssim.Simulation) -> None:
    seen: list[Any] = []
    start_server(sim, seen)
    tab = Tab(sim.host("laptop"))
    tab.run_js(PAGE)
    sim.at(1, tab.reload)
    sim.run(until=5)
    assert tab.console == [
        (0.04, "open 40"),
        (0.06, "message hello 60"),
        (1.04, "open 40"),
        (1.06, "message hello 60"),
    ]
    assert seen == [(1.03, 1001, "")]


LIFECYCLE = """
addEventListener("pagehide", (e) => console.log("pagehide", e.persisted));
addEventListener("pageshow", (e) => console.log("pageshow", e.persisted, ws.readyState));
"""


def test_navigate_keeps_the_page_and_its_socket_in_the_back_forward_cache(
    sim: wssim.Simulation,
) -> None:
    seen: list[Any] = []
    start_server(sim, seen)
    tab = Tab(sim.host("laptop"))
    tab.run_js(PAGE + LIFECYCLE + "setInterval(() => console.log('tick'), 700);")
    sim.at(1, tab.navigate)
    sim.run(until=100)
    assert tab.console[-1] == (1.0, "pagehide true")  # then frozen: no tick
    assert seen == []  # the connection is still open
    tab.close()  # the cached page is evicted with the tab
    sim.run(until=101)
    assert seen == [(100.03, 1001, "")]


def test_a_cached_page_still_answers_pings_and_is_evicted_after_600_s(
    sim: wssim.Simulation,
) -> None:
    seen: list[Any] = []
    start_server(sim, seen, ping_interval=20, ping_timeout=20)
    tab = Tab(sim.host("laptop"))
    tab.run_js(PAGE)
    sim.at(1, tab.navigate)
    sim.run(until=700)
    assert seen == [(601.03, 1001, "")]  # browser.BFCACHE_TTL after the navigation
    pongs = sim.trace.filter(kind="frame", side="client", contains="PONG")
    assert [e.time for e in pongs][:2] == [20.04, 40.04]


def test_back_restores_the_page_then_closes_its_socket(sim: wssim.Simulation) -> None:
    seen: list[Any] = []
    start_server(sim, seen)
    tab = Tab(sim.host("laptop"))
    tab.run_js(PAGE + LIFECYCLE + "setTimeout(() => console.log('late timer'), 1500);")
    sim.at(1, tab.navigate)
    sim.at(1.5, sim.host("server").spawn, asyncio.sleep(0))  # nothing reaches the page
    sim.at(2, tab.back)
    sim.run(until=5)
    assert tab.console[2:] == [
        (1.0, "pagehide true"),
        (2.0, "pageshow true 1"),
        (2.0, "error 3 2000"),
        (2.0, 'close 1006 "" false 2000'),
        (2.0, "late timer"),  # due at 1.5 s while frozen: runs on the way back
    ]
    assert seen == [(2.03, 1001, "")]


def test_navigate_without_the_cache_closes_at_once_and_back_loads_again(
    sim: wssim.Simulation,
) -> None:
    seen: list[Any] = []
    start_server(sim, seen)
    tab = Tab(sim.host("laptop"))
    tab.run_js(PAGE + LIFECYCLE)
    sim.at(1, lambda: tab.navigate(bfcache=False))
    sim.at(2, tab.back)
    sim.run(until=5)
    assert tab.console[2:] == [
        (1.0, "pagehide false"),
        (2.04, "open 40"),
        (2.06, "message hello 60"),
    ]
    assert seen == [(1.03, 1001, "")]


def test_back_with_no_history_says_so(sim: wssim.Simulation) -> None:
    tab = Tab(sim.host("laptop"))
    with pytest.raises(RuntimeError, match="no page to go back to"):
        tab.back()


def test_the_cache_holds_six_pages(sim: wssim.Simulation) -> None:
    seen: list[Any] = []
    start_server(sim, seen)
    tab = Tab(sim.host("laptop"))
    for k in range(7):
        sim.at(k, tab.run_js, PAGE)
        sim.at(k + 0.5, tab.navigate)
    sim.run(until=10)
    assert seen == [(6.53, 1001, "")]  # the seventh evicts the first


TIMERS = """
const t0 = performance.now();
let n = 0;
const id = setInterval(() => {
  console.log("tick", performance.now());
  if (++n === 5) clearInterval(id);
}, 300);
setTimeout((a, b) => console.log("once", a + b, performance.now()), 1250, 1, 2);
const never = setTimeout(() => console.log("never"), 10); clearTimeout(never);
"""


def test_timers_run_in_virtual_milliseconds(sim: wssim.Simulation) -> None:
    tab = Tab(sim.host("laptop"))
    tab.run_js(TIMERS)
    sim.run(until=5)
    assert tab.console == [
        (0.3, "tick 300"),
        (0.6, "tick 600"),
        (0.9, "tick 900"),
        (1.2, "tick 1200"),
        (1.25, "once 3 1250"),
        (1.5, "tick 1500"),
    ]


def test_hidden_tab_timers_wake_at_most_once_a_second(sim: wssim.Simulation) -> None:
    tab = Tab(sim.host("laptop"))
    tab.run_js(
        'document.addEventListener("visibilitychange", () => '
        "console.log(document.visibilityState, performance.now()));" + TIMERS
    )
    sim.at(0.5, tab.hide)
    sim.at(2.5, tab.show)
    sim.run(until=5)
    assert tab.console == [
        (0.3, "tick 300"),
        (0.5, "hidden 500"),
        (1.0, "tick 1000"),  # due at 0.6: the next whole second
        (2.0, "once 3 2000"),  # due at 1.25, set before the interval's next turn
        (2.0, "tick 2000"),  # due at 1.3
        (2.5, "visible 2500"),
        (2.5, "tick 2500"),  # due at 2.3: overdue, runs as the page becomes visible
        (2.8, "tick 2800"),
    ]


def test_freeze_holds_timers_and_events_until_resume(sim: wssim.Simulation) -> None:
    start_server(sim)
    tab = Tab(sim.host("laptop"))
    tab.run_js(PAGE + 'setTimeout(() => console.log("timer", performance.now()), 50);')
    sim.at(0.035, tab.freeze)
    sim.at(3, tab.resume)
    sim.run(until=5)
    # The open event (0.04) and the timer (0.05) wait for resume; the echo follows.
    assert tab.console == [
        (3.0, "open 3000"),
        (3.0, "timer 3000"),
        (3.02, "message hello 3020"),
    ]


def run_page(seed: int) -> list[tuple[float, str]]:
    with wssim.Simulation(seed=seed) as s:
        start_server(s)
        tab = Tab(s.host("laptop"))
        tab.run_js(PAGE + "console.log(Math.random(), Math.random(), Date.now());")
        s.run(until=2)
        return tab.console


def test_same_seed_same_console() -> None:
    first = run_page(7)
    assert first == run_page(7)
    assert first != run_page(8)  # Math.random follows the seed
    assert first[0][1].endswith(" 1767225600000")  # Date.now(): the epoch + virtual time


def test_a_syntax_error_raises_jserror(sim: wssim.Simulation) -> None:
    tab = Tab(sim.host("laptop"))
    with pytest.raises(JSError, match="SyntaxError") as info:
        tab.run_js("const = 1;")
    assert info.value.message.startswith("SyntaxError")
    with pytest.raises(JSError, match="Error: boom") as info:
        tab.run_js("function f() { throw new Error('boom'); }\nf();")
    assert "at f" in info.value.stack


def test_an_exception_in_a_handler_is_logged_not_raised(sim: wssim.Simulation) -> None:
    tab = Tab(sim.host("laptop"))
    tab.run_js(
        "setTimeout(() => { throw new TypeError('bad'); }, 5);"
        "setTimeout(() => console.log('still here', {a: [1, true]}, null), 6);"
    )
    sim.run(until=1)
    assert tab.console == [
        (0.005, "Uncaught TypeError: bad"),
        (0.006, 'still here {"a":[1,true]} null'),
    ]


def test_online_offline(sim: wssim.Simulation) -> None:
    tab = Tab(sim.host("laptop"))
    tab.run_js(
        'for (const t of ["online", "offline"]) '
        "addEventListener(t, () => console.log(t, navigator.onLine));"
    )
    sim.at(1, tab.go_offline)
    sim.at(2, tab.go_online)
    sim.run(until=3)
    assert tab.console == [(1.0, "offline false"), (2.0, "online true")]


def test_invalid_utf8_from_the_server_fails_the_connection(sim: wssim.Simulation) -> None:
    from websockets.frames import Opcode

    from wssim.raw import RawServer

    got: list[Any] = []

    async def bad_server() -> None:
        async with await RawServer.listen(8765) as server:
            conn = await server.accept()
            await asyncio.sleep(0.1)
            conn.send_frame(Opcode.TEXT, b"\xff\xfe")
            await conn.wait_closed(timeout=5)
            got.append((round(sim.now, 6), conn.close_code))

    sim.host("server").spawn(bad_server())
    tab = Tab(sim.host("laptop"))
    tab.run_js(PAGE.replace('ws.send("hello");', ""))
    sim.run(until=10)
    # The frame arrives at 0.14: error, then close 1006 at once; the browser's close frame
    # says 1002, as Chromium's did in the reality suite (invalid-utf8), not RFC 6455's 1007.
    assert tab.console == [
        (0.04, "open 40"),
        (0.14, "error 3 140"),
        (0.14, 'close 1006 "" false 140'),
    ]
    assert got and got[0][1] == 1002


def test_a_crash_of_the_tabs_host_kills_the_page(sim: wssim.Simulation) -> None:
    seen: list[Any] = []
    start_server(sim, seen)
    tab = Tab(sim.host("laptop"))
    tab.run_js(PAGE + 'setInterval(() => console.log("tick"), 500);')
    sim.at(1.2, sim.host("laptop").crash)
    sim.run(until=5)
    assert tab.console[-2:] == [(0.5, "tick"), (1.0, "tick")]
    assert tab.state == "crashed"
    assert seen == [(1.21, 1006, "")]
    with pytest.raises(RuntimeError, match="crashed"):
        tab.run_js("1")


def test_binary_messages_arrive_as_arraybuffers(sim: wssim.Simulation) -> None:
    start_server(sim)
    tab = Tab(sim.host("laptop"))
    tab.run_js("""
    const ws = new WebSocket("ws://server:8765");
    ws.binaryType = "nonsense";
    console.log(ws.binaryType);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => { ws.send(new Uint8Array([0, 255, 7])); ws.send("a\\0b"); };
    ws.onmessage = (e) => console.log(typeof e.data === "string" ? J(e.data)
                                      : [...new Uint8Array(e.data)]);
    const J = JSON.stringify;
    """)
    sim.run(until=1)
    assert tab.console == [(0.0, "blob"), (0.06, "[0,255,7]"), (0.06, '"a\\u0000b"')]


def _raw_server(sim: wssim.Simulation, then: Any, got: list[Any]) -> None:
    from wssim.raw import RawServer

    async def server() -> None:
        async with await RawServer.listen(8765) as srv:
            conn = await srv.accept()
            await then(conn)
            await conn.wait_closed(timeout=100)
            got.append((round(sim.now, 6), conn.close_code, conn.close_reason))

    sim.host("server").spawn(server())


def test_protocol_errors_close_with_chromiums_reasons(sim: wssim.Simulation) -> None:
    from websockets.frames import Opcode

    got: list[Any] = []

    async def then(conn: Any) -> None:
        await asyncio.sleep(0.1)
        conn.send_frame(Opcode.TEXT, b"\xff\xfe")

    _raw_server(sim, then, got)
    tab = Tab(sim.host("laptop"))
    tab.run_js(PAGE.replace('ws.send("hello");', ""))
    sim.run(until=70)  # the browser waits for the server to close TCP: 60 s at most
    assert got[0][1:] == (1002, "Invalid UTF-8 in text frame")
    assert websocket.REASONS["reserved bits must be 0"] == "Invalid reserved bit"


def test_close_answered_but_tcp_kept_is_clean_two_seconds_later(sim: wssim.Simulation) -> None:
    # Chromium (reality suite, close-answered-tcp-kept): close 1000 true 2 s after the
    # server's close frame, not after the 60 s closing timeout.
    from websockets.frames import Opcode

    got: list[Any] = []

    async def then(conn: Any) -> None:
        await asyncio.sleep(1.0)
        conn.send_frame(Opcode.CLOSE, b"\x03\xe8")
        await asyncio.sleep(50)

    _raw_server(sim, then, got)
    tab = Tab(sim.host("laptop"))
    tab.run_js(PAGE.replace('ws.send("hello");', "setTimeout(() => ws.close(), 500);"))
    sim.run(until=10)
    # The server's close frame leaves at 1.03 (1 s after accepting), arrives at 1.04.
    assert tab.console == [(0.04, "open 40"), (3.04, 'close 1000 "" true 3040')]


def test_close_never_answered_is_1006_at_the_closing_timeout(sim: wssim.Simulation) -> None:
    got: list[Any] = []

    async def then(conn: Any) -> None:
        await asyncio.sleep(100)

    _raw_server(sim, then, got)
    tab = Tab(sim.host("laptop"))
    tab.run_js(PAGE.replace('ws.send("hello");', "setTimeout(() => ws.close(), 500);"))
    sim.run(until=70)
    # close() at 0.54 (0.5 s after open), no answer: the 60 s closing timeout, no error.
    assert tab.console == [(0.04, "open 40"), (60.54, 'close 1006 "" false 60540')]


def test_the_tab_counts_its_cached_pages(sim: wssim.Simulation) -> None:
    start_server(sim)
    tab = Tab(sim.host("laptop"))
    tab.run_js(PAGE)
    sim.at(1, tab.navigate)
    sim.run(until=2)
    assert tab.cached == 1
    tab.back()
    assert tab.cached == 0
