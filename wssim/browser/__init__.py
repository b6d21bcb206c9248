"""A browser tab on a simulated host, running a page's real JavaScript.

``wssim.browser.Tab(sim.host("laptop"))`` is a tab: :meth:`Tab.run_js` runs page code in
QuickJS (the ``quickjs`` package, in this thread, so runs stay deterministic; mini-racer
is not used, as its callbacks into Python run on a thread of its own). The page has the
WHATWG ``WebSocket`` (over websockets' Sans-I/O client on the simulated network), timers
in virtual time, ``console.log`` (into :attr:`Tab.console` and the trace, kind
``console``), a seeded ``Math.random``, a virtual ``Date.now()`` and
``performance.now()``, ``document.visibilityState`` and ``navigator.onLine``.

Layers: :mod:`~wssim.browser.js` the engine bridge, :mod:`~wssim.browser.events` the
page's JavaScript side, :mod:`~wssim.browser.websocket` the WebSocket's network side,
:mod:`~wssim.browser.tab` the tab and its lifecycle.

An exception thrown by page code run with :meth:`Tab.run_js` raises :class:`JSError`; one
thrown by an event handler or a timer is logged as a browser does (``Uncaught Error:
...`` on the console) and the simulation goes on. Unhandled promise rejections are not
reported.
"""

from __future__ import annotations

from wssim.browser.js import JSError
from wssim.browser.tab import BFCACHE_SIZE, BFCACHE_TTL, EPOCH_MS, HIDDEN_WAKE_UP, Tab

__all__ = ["BFCACHE_SIZE", "BFCACHE_TTL", "EPOCH_MS", "HIDDEN_WAKE_UP", "JSError", "Tab"]
