"""A browser tab on a simulated host: one page at a time, its JavaScript, its lifecycle.

Timers run on the simulation's loop in virtual time, on the tab's host: a frozen host
holds them, a crashed one kills the page. Rules modelled, where Chromium is the model:

* Hidden pages: a timer due while the page is hidden runs at the next whole second of
  virtual time (wake-ups aligned on 1 s, at most one per second: Chromium's
  ``kDefaultThrottledWakeUpInterval`` in
  third_party/blink/renderer/platform/scheduler/main_thread/page_scheduler_impl.cc, and
  https://developer.chrome.com/blog/timer-throttling-in-chrome-88). The "intensive"
  throttling of Chrome 88 (one wake-up a minute for chained timers after 5 minutes
  hidden), the budget-based throttling of Chrome 57 (from which pages with an open
  WebSocket are exempt) and the 4 ms clamp of nested timers are not modelled.
* Frozen pages (``tab.freeze()``, the Page Lifecycle API's freeze): no timer or event
  runs; what fell due runs, in order, on ``tab.resume()``. The network goes on meanwhile.
* The back/forward cache (Chromium's, content/browser/renderer_host/back_forward_cache_impl.cc;
  observed in the reality suite's tab-navigate, tab-navigate-no-store and tab-back
  scenarios): :meth:`Tab.navigate` keeps the page, frozen, with its WebSockets *open*
  (``pagehide`` with ``persisted`` true; the server sees nothing, its pings are still
  answered, what arrives is dropped). :meth:`Tab.back` brings it back: ``pageshow`` with
  ``persisted`` true, then every WebSocket of the page is closed by the browser: 1001 with
  an empty reason to the server, ``error`` then ``close`` 1006 to the page. A cached page
  is evicted (its sockets close with 1001) after :data:`BFCACHE_TTL` seconds, when more
  than :data:`BFCACHE_SIZE` pages are cached, or when the tab closes. ``navigate(bfcache=
  False)`` is a page Chromium does not cache (served with ``Cache-Control: no-store``): it
  is unloaded at once and its sockets close with 1001.
* A renderer crash (:meth:`Tab.crash`) closes the page's WebSockets with 1001 and an
  empty reason: the browser's network service holds the connections, not the renderer
  (the reality suite's tab-crash scenario kills the renderer process with chrome://crash).
* ``navigator.onLine`` is what the test says (``tab.go_offline()``/``tab.go_online()``),
  not derived from the network.
"""

from __future__ import annotations

import json
import math
import random
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from wssim.browser.events import PRELUDE
from wssim.browser.js import Engine
from wssim.browser.websocket import Socket, check_url
from wssim.core.hosts import Host, HostState

if TYPE_CHECKING:
    from wssim.world import World

__all__ = ["BFCACHE_SIZE", "BFCACHE_TTL", "EPOCH_MS", "HIDDEN_WAKE_UP", "Tab"]

EPOCH_MS = 1_767_225_600_000
"""``Date.now()`` at virtual time 0: 2026-01-01T00:00:00Z, in milliseconds."""

HIDDEN_WAKE_UP = 1.0
"""Seconds between the wake-ups of a hidden page's timers."""

BFCACHE_TTL = 600.0
"""Seconds a page stays in the back/forward cache before it is evicted (Chromium's
``kDefaultTimeToLiveInBackForwardCacheInSeconds``)."""

BFCACHE_SIZE = 6
"""Pages a tab's back/forward cache holds (Chromium's ``cache_size`` default)."""


def _from_js(text: str) -> str:
    """A string from the page, sent as JSON; lone surrogates become U+FFFD, as when a
    browser converts a string to a USVString (what ``send`` and ``close`` take)."""
    value = str(json.loads(text))
    return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


_tabs_on: weakref.WeakKeyDictionary[Host, int] = weakref.WeakKeyDictionary()


class _Page:
    """One document: its JavaScript realm, timers and sockets."""

    def __init__(self, tab: Tab) -> None:
        self.tab = tab
        self.engine = Engine()
        self.timers: dict[int, tuple[float, float, int]] = {}  # id: (due, ms, generation)
        self.sockets: dict[int, Socket] = {}
        self.alive = True
        self.cached = False  # in the back/forward cache: frozen, sockets open
        self.visits = 0  # times it went into the cache: which eviction timer is current
        self.held: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []  # timers while cached
        self.sources: list[str] = []  # the scripts it ran: what a reload or back runs again


class Tab:
    """A browser tab on ``host``, running a page's JavaScript (see :meth:`run_js`).

    Example::

        tab = wssim.browser.Tab(sim.host("laptop"))
        tab.run_js("const ws = new WebSocket('ws://server:8765');"
                   "ws.onopen = () => ws.send('hi');"
                   "ws.onmessage = (e) => console.log(e.data);")
        sim.at(5, tab.close)
        sim.run(until=10)
        print(tab.console)
    """

    def __init__(self, host: Host) -> None:
        if not isinstance(host, Host):
            raise TypeError(f"host must be a wssim Host (sim.host(name)), got {host!r}")
        self.host = host
        self._world = cast("World", host._world)
        self._boot = host.boot
        number = _tabs_on.get(host, 0)
        _tabs_on[host] = number + 1
        self._random = random.Random(f"wssim.browser:{self._world.seed}:{host.name}:{number}")
        self.console: list[tuple[float, str]] = []
        """Every line the page logged: ``(virtual time in seconds, text)``."""
        self._history: list[_Page] = []  # pages left by navigate(), most recent last
        self._hidden = False
        self._frozen = False
        self._online = True
        self._held: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._seq = 0
        self._closed = False
        self._crashed = False
        self._page = self._new_page()

    def __repr__(self) -> str:
        return f"<Tab on {self.host.name} {self.state}>"

    @property
    def state(self) -> str:
        """``"closed"``, ``"crashed"``, ``"frozen"``, ``"hidden"`` or ``"visible"``."""
        if self._crashed or self._dead():
            return "crashed"
        if self._closed:
            return "closed"
        return "frozen" if self._frozen else "hidden" if self._hidden else "visible"

    @property
    def cached(self) -> int:
        """How many pages this tab holds in its back/forward cache."""
        return sum(1 for page in self._history if page.cached)

    # Page code

    def run_js(self, source: str) -> Any:
        """Run ``source`` in the page now and return its completion value (if simple).

        Raises:
            JSError: if the script threw (its message and JS stack), a syntax error included.
            RuntimeError: if the tab is closed or crashed.
        """
        page = self._live_page("run_js")
        page.sources.append(source)
        return page.engine.eval(source)

    # Lifecycle

    def close(self) -> None:
        """The user closes the tab: ``pagehide``, then open sockets close with 1001; pages
        in the back/forward cache are evicted (their sockets close with 1001 too)."""
        self._unload()
        for page in self._history:
            self._evict(page)
        self._closed = True

    def navigate(self, *, bfcache: bool = True) -> None:
        """The page goes away; an empty page follows.

        With ``bfcache`` (Chromium's default for a page with an open WebSocket), the page
        goes to the back/forward cache: ``pagehide`` with ``persisted`` true, then it is
        frozen with its sockets open until :meth:`back` or eviction. ``bfcache=False`` is a
        page that is not cached (``Cache-Control: no-store``): ``pagehide``, then its sockets
        close with 1001, as when the tab closes.
        """
        page = self._page
        if page is None or self._closed or self._dead():
            raise RuntimeError(f"tab.navigate(): the tab is {self.state}")
        if bfcache and page.alive:
            page.engine.call("__wssim_pagehide", True)
            page.cached = True
            page.visits += 1
            self._held.clear()
            self._world.loop.call_later(BFCACHE_TTL, self._expire, page, page.visits)
            self._history.append(page)
            cached = [p for p in self._history if p.cached]
            if len(cached) > BFCACHE_SIZE:
                self._evict(cached[0])
        else:
            self._unload()
            self._history.append(page)
        self._page = self._new_page()

    def back(self) -> None:
        """Go back to the page :meth:`navigate` left. From the back/forward cache:
        ``pageshow`` with ``persisted`` true, then the browser closes each of its
        WebSockets (1001 to the server; ``error`` and ``close`` 1006 for the page), and its
        timers run again. A page that is no longer cached loads again: its scripts run
        again in a new page.

        Raises:
            RuntimeError: if there is no page to go back to, or the tab is closed.
        """
        if self._closed or self._dead():
            raise RuntimeError(f"tab.back(): the tab is {self.state}")
        if not self._history:
            raise RuntimeError("tab.back(): there is no page to go back to")
        previous = self._history.pop()
        self._unload()  # the page left now (forward history is not modelled)
        if previous.cached:
            previous.cached = False
            self._page = previous
            self._event("__wssim_pageshow", True)
            for socket in list(previous.sockets.values()):
                socket.close_on_restore()
            held, previous.held = previous.held, []
            for fn, args in held:
                self._run(fn, *args)
        else:
            self._page = self._new_page()
            for source in previous.sources:
                self.run_js(source)

    def reload(self) -> None:
        """The page goes away (not to the back/forward cache), then the same scripts run
        again in a new page."""
        page = self._live_page("reload")
        self._unload()
        self._page = self._new_page()
        for source in page.sources:
            self.run_js(source)

    def crash(self) -> None:
        """The renderer dies: no event runs in the page; the browser's network service
        closes its WebSockets with 1001 and an empty reason (as Chromium does when the
        renderer process is killed)."""
        page = self._page
        if page is not None and page.alive:
            page.alive = False
            for socket in page.sockets.values():
                socket.unload()
        self._held.clear()
        self._closed = True
        self._crashed = True

    def hide(self) -> None:
        """The tab goes to the background: ``visibilitychange``, timers throttled."""
        if not self._hidden:
            self._hidden = True
            self._event("__wssim_visibility", "hidden")
            self._reschedule()

    def show(self) -> None:
        """The tab comes back: ``visibilitychange``, timers at their own times again."""
        if self._hidden:
            self._hidden = False
            self._event("__wssim_visibility", "visible")
            self._reschedule()

    def freeze(self) -> None:
        """Freeze the page: no timer or event runs until :meth:`resume`."""
        self._frozen = True

    def resume(self) -> None:
        """Unfreeze the page: what fell due while frozen runs now, in order."""
        self._frozen = False
        held, self._held = self._held, []
        for fn, args in held:
            self._run(fn, *args)

    def go_offline(self) -> None:
        """``navigator.onLine`` becomes false and ``offline`` fires (the network is not
        touched: cut it with a fault)."""
        if self._online:
            self._online = False
            self._event("__wssim_online", False)

    def go_online(self) -> None:
        """``navigator.onLine`` becomes true and ``online`` fires."""
        if not self._online:
            self._online = True
            self._event("__wssim_online", True)

    # Inside

    def _dead(self) -> bool:
        host = self.host
        return host.boot != self._boot or host.state is not HostState.UP

    def _live_page(self, what: str) -> _Page:
        page = self._page
        if self._closed or page is None or not page.alive or self._dead():
            raise RuntimeError(f"tab.{what}(): the tab is {self.state}")
        return page

    def _unload(self) -> None:
        page = self._page
        if page is None or not page.alive or self._closed or self._dead():
            return
        page.engine.call("__wssim_pagehide", False)
        page.alive = False
        for socket in page.sockets.values():
            socket.unload()
        self._held.clear()

    def _expire(self, page: _Page, visit: int) -> None:
        if page.visits == visit:
            self._evict(page)

    def _evict(self, page: _Page) -> None:
        """Drop a page from the back/forward cache: it is gone, its sockets close (1001)."""
        if not page.cached or not page.alive:
            return
        page.cached = False
        page.alive = False
        page.held.clear()
        if not self._dead():
            for socket in page.sockets.values():
                socket.unload()

    def _new_page(self) -> _Page:
        page = _Page(self)
        engine = page.engine
        engine.expose("__py_log", lambda text: self._log(page, _from_js(text)))
        engine.expose("__py_now", lambda: round(self._world.loop.time() * 1000, 3))
        engine.expose("__py_random", self._random.random)
        engine.expose("__py_epoch", lambda: float(EPOCH_MS))  # an int would be cut to 32 bits
        engine.expose("__py_set_timer", lambda tid, ms: self._set_timer(page, int(tid), ms))
        engine.expose("__py_clear_timer", lambda tid: page.timers.pop(int(tid), None) and None)
        engine.expose("__py_ws_connect", lambda *a: self._connect(page, *a))
        engine.expose("__py_ws_send", lambda sid, data, binary: self._send(page, sid, data, binary))
        engine.expose(
            "__py_ws_close", lambda sid, code, reason: self._close(page, sid, code, reason)
        )
        engine.expose("__py_ws_buffered", lambda sid: self._buffered(page, sid))
        engine.expose("__py_utf8_length", lambda text: len(_from_js(text).encode()))
        engine.eval(PRELUDE)
        if self._hidden:
            engine.call("__wssim_visibility", "hidden", True)  # born hidden: no event
        return page

    def _log(self, page: _Page, text: str) -> None:
        if not page.alive:
            return
        self.console.append((round(self._world.loop.time(), 6), text))
        self._world.record("console", text, self.host.name)

    def _run(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run page work now, or hold it while the page is frozen."""
        if self._frozen:
            self._held.append((fn, args))
        else:
            fn(*args)

    def _event(self, name: str, *args: Any) -> None:
        page = self._page
        if page is not None and page.alive and not self._closed and not self._dead():
            self._run(self._call, page, name, *args)

    def _call(self, page: _Page, name: str, *args: Any) -> None:
        if page.alive and not self._dead():
            page.engine.call(name, *args)

    # Timers

    def _set_timer(self, page: _Page, tid: int, ms: float) -> None:
        now = self._world.loop.time()
        self._seq += 1
        page.timers[tid] = (now + float(ms) / 1000, float(ms), self._seq)
        self._schedule(page, tid)

    def _schedule(self, page: _Page, tid: int) -> None:
        due, _, generation = page.timers[tid]
        if self._hidden:
            due = math.ceil(round(due / HIDDEN_WAKE_UP, 9)) * HIDDEN_WAKE_UP
        due = max(due, self._world.loop.time())
        self._world.call_at(due, self._due, page, tid, generation)

    def _reschedule(self) -> None:
        page = self._page
        if page is None:
            return
        for tid, (due, ms, _) in list(page.timers.items()):
            self._seq += 1
            page.timers[tid] = (due, ms, self._seq)
            self._schedule(page, tid)

    def _due(self, page: _Page, tid: int, generation: int) -> None:
        timer = page.timers.get(tid)
        if timer is None or timer[2] != generation or not page.alive or self._dead():
            return
        if page.cached:  # frozen in the back/forward cache: runs if the page comes back
            page.held.append((self._fire, (page, tid, generation)))
            return
        self.host.run_here(self._run, self._fire, page, tid, generation)

    def _fire(self, page: _Page, tid: int, generation: int) -> None:
        timer = page.timers.get(tid)
        if timer is None or timer[2] != generation or not page.alive or self._dead():
            return
        del page.timers[tid]
        if page.engine.call("__wssim_timer", tid) and page.alive:
            self._set_timer(page, tid, timer[1])

    # WebSockets

    def _connect(self, page: _Page, sid: int, url: str, protocols: str) -> str:
        url = _from_js(url)
        error = check_url(url)
        if error is not None:
            return error
        sid = int(sid)

        def notify(what: str, *args: Any) -> None:
            self._event_on(page, "__wssim_ws", sid, what, *args)

        page.sockets[sid] = Socket(
            self.host, self._world.loop, url, list(json.loads(protocols)), notify
        )
        return ""

    def _event_on(self, page: _Page, name: str, *args: Any) -> None:
        # A cached page hears nothing: what arrives meanwhile is dropped (no message
        # reached the page after tab-back in Chromium).
        if page.alive and not page.cached and not self._dead():
            self._run(self._call, page, name, *args)

    def _send(self, page: _Page, sid: int, data: str, binary: bool) -> None:
        socket = page.sockets.get(int(sid))
        if socket is not None:
            socket.send(bytes.fromhex(data) if binary else _from_js(data))

    def _close(self, page: _Page, sid: int, code: int, reason: str) -> None:
        socket = page.sockets.get(int(sid))
        if socket is not None:
            socket.close(None if code == -1 else int(code), _from_js(reason))

    def _buffered(self, page: _Page, sid: int) -> int:
        socket = page.sockets.get(int(sid))
        return socket.buffered_amount if socket is not None else 0
