"""The browser scenarios (:mod:`reality.browser_scenarios`) in real headless Chromium.

One run of the group starts one fresh headless Chromium (its own temporary user-data
directory, ``--remote-debugging-port=0``: the port is read from ``DevToolsActivePort``) and
drives it over the DevTools protocol with the ``websockets`` library itself. Per scenario:
its own WebSocket server on 127.0.0.1 (its own port: Chromium lets one connection per
address and port be in the opening handshake at a time), a tab (``Target.createTarget``) on
a page of a tiny local HTTP server (an ``http://127.0.0.1`` origin), attached with
``flatten``, ``Runtime.enable``: every ``Runtime.consoleAPICalled`` is a log line with its
timestamp. ``Runtime.evaluate`` defines ``SERVER_URL`` and runs ``page_js``. The tab's
actions: ``Target.closeTarget``, ``Page.navigate`` to ``about:blank``, ``Page.reload``
(the script is also added with ``Page.addScriptToEvaluateOnNewDocument``, so that it runs
again), back in history (``Page.navigateToHistoryEntry``), and ``chrome://crash`` (the
renderer process dies). Scenarios of a run go in parallel, each in its own tab.

An outcome of one run of one scenario::

    {"page": [{"line": "open", "t": 0.003}, ...],   # times from the page's "connect" line
     "server": {...server_outcome...}, "chromium": "Chromium/..."}

Run it alone with ``python -m reality.chromium [--runs N] [NAME ...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from reality.browser_scenarios import SCENARIOS, BrowserScenario, parse_line
from reality.scenarios import Context

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    # A tab made with Target.createTarget is hidden: without these, its timers are
    # throttled to whole seconds (a 500 ms setTimeout fired at 1.2 s).
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
)

NAMES = ("chromium", "chromium-browser")

NO_STORE_PATH = "/no-store"
"""The page server answers this path with ``Cache-Control: no-store``."""

PAGE = b"<!doctype html><title>wssim</title><p>wssim browser scenario</p>\n"


def executable() -> str | None:
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def missing() -> str | None:
    """Why the browser group cannot run here, as one sentence, or None."""
    if executable() is None:
        return "headless Chromium is not installed (Debian: apt-get install -y chromium)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        if self.path.startswith(NO_STORE_PATH):
            # A page Chromium keeps out of its back/forward cache once it used a WebSocket
            # (kWebSocketSticky, content/browser/renderer_host/back_forward_cache_impl.cc).
            self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def page_server() -> Any:
    """The tiny HTTP server of the pages, on 127.0.0.1; yields its URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


class Browser:
    """A headless Chromium and its DevTools connection (flattened sessions)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="wssim-chromium-"))
        self.ws: ClientConnection | None = None
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.listeners: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.reader: asyncio.Task[None] | None = None
        self.version = ""
        self.port = 0

    async def start(self, timeout: float = 20.0) -> None:
        exe = executable()
        assert exe is not None
        self.proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={self.dir}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        active = self.dir / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while True:
            if active.exists():
                lines = active.read_text().split()
                if len(lines) >= 2:
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Chromium did not start (no DevToolsActivePort)")
            await asyncio.sleep(0.05)
        self.port = int(lines[0])
        info = await asyncio.to_thread(self._json, "/json/version")
        self.version = str(info.get("Browser", ""))
        self.ws = await connect(
            f"ws://127.0.0.1:{self.port}{lines[1]}", max_size=None, ping_interval=None
        )
        self.reader = asyncio.create_task(self._read())

    def _json(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return dict(json.load(r))

    async def _read(self) -> None:
        assert self.ws is not None
        async for raw in self.ws:
            msg = json.loads(raw)
            if "id" in msg:
                fut = self.pending.pop(msg["id"], None)
                if fut is not None and not fut.done():
                    if "error" in msg:
                        fut.set_exception(RuntimeError(str(msg["error"])))
                    else:
                        fut.set_result(msg.get("result", {}))
            else:
                queue = self.listeners.get(msg.get("sessionId", ""))
                if queue is not None:
                    queue.put_nowait(msg)

    async def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        assert self.ws is not None
        n = next(self.ids)
        msg: dict[str, Any] = {"id": n, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[n] = fut
        await self.ws.send(json.dumps(msg))
        return await asyncio.wait_for(fut, timeout)

    async def stop(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.send("Browser.close"), 3)
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


async def _serve(scenario: BrowserScenario, ctx: Context) -> None:
    if scenario.server is None:
        await asyncio.Future()
    else:
        await scenario.server(ctx)


async def run_scenario(
    browser: Browser, scenario: BrowserScenario, page_url: str, scale: float = 1.0
) -> dict[str, Any]:
    """One run of one scenario in its own tab of ``browser``."""
    port = free_port()
    ctx = Context("server", host="127.0.0.1", bind="127.0.0.1", port=port, scale=scale)
    loop = asyncio.get_running_loop()
    ctx.t0 = loop.time()
    server = asyncio.create_task(_serve(scenario, ctx))
    await asyncio.sleep(0.05)  # listening
    if scenario.no_store:
        page_url = page_url.rstrip("/") + NO_STORE_PATH
    target = (await browser.send("Target.createTarget", {"url": page_url}))["targetId"]
    session = (await browser.send("Target.attachToTarget", {"targetId": target, "flatten": True}))[
        "sessionId"
    ]
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    browser.listeners[session] = events
    lines: list[tuple[float, str]] = []
    closed = False
    t0_wall = time.time()
    try:
        await browser.send("Page.enable", session=session)
        await browser.send("Runtime.enable", session=session)
        # Wait for the page's document (an http:// origin), not the initial about:blank.
        for _ in range(100):
            href = await browser.send(
                "Runtime.evaluate",
                {"expression": "location.href + ' ' + document.readyState", "returnByValue": True},
                session=session,
            )
            value = str(href.get("result", {}).get("value", ""))
            if value.startswith(page_url) and value.endswith("complete"):
                break
            await asyncio.sleep(0.05)
        ctx.t0 = loop.time()
        t0_wall = time.time()  # the same instant on the console's clock (epoch seconds)
        source = f"var SERVER_URL = {json.dumps(f'ws://127.0.0.1:{port}/')};\n{scenario.page_js}"
        if any(a.kind == "reload" for a in scenario.actions):
            # A page's own scripts run again when it reloads; an evaluated one would not.
            await browser.send(
                "Page.addScriptToEvaluateOnNewDocument", {"source": source}, session=session
            )
        evaluated = await browser.send("Runtime.evaluate", {"expression": source}, session=session)
        started = loop.time()
        if "exceptionDetails" in evaluated:  # the page's script did not run: say so
            text = evaluated["exceptionDetails"].get("exception", {}).get("description", "")
            lines.append((time.time(), f"script failed: {text.splitlines()[0] if text else ''}"))

        async def act() -> None:
            nonlocal closed
            for action in scenario.actions:
                await asyncio.sleep(max(0.0, started + action.at * scale - loop.time()))
                if action.kind == "close":
                    closed = True
                    await browser.send("Target.closeTarget", {"targetId": target})
                elif action.kind == "navigate":
                    await browser.send("Page.navigate", {"url": "about:blank"}, session=session)
                elif action.kind == "reload":
                    await browser.send("Page.reload", {}, session=session)
                elif action.kind == "back":
                    history = await browser.send("Page.getNavigationHistory", session=session)
                    entry = history["entries"][history["currentIndex"] - 1]
                    await browser.send(
                        "Page.navigateToHistoryEntry", {"entryId": entry["id"]}, session=session
                    )
                elif action.kind == "crash":
                    # chrome://crash kills the tab's renderer process (Inspector.targetCrashed
                    # follows), as a renderer crash does; Page.crash only unloaded the page.
                    with contextlib.suppress(Exception):  # the answer may never come
                        await browser.send(
                            "Page.navigate", {"url": "chrome://crash"}, session=session, timeout=2
                        )

        actor = asyncio.create_task(act())
        end = started + scenario.until * scale
        while (left := end - loop.time()) > 0:
            try:
                msg = await asyncio.wait_for(events.get(), left)
            except TimeoutError:
                break
            if msg.get("method") == "Runtime.consoleAPICalled":
                p = msg["params"]
                text = " ".join(str(a.get("value", "")) for a in p.get("args", []))
                lines.append((float(p["timestamp"]) / 1000.0, text))
        await actor
    finally:
        browser.listeners.pop(session, None)
        if not closed:
            with contextlib.suppress(Exception):
                await browser.send("Target.closeTarget", {"targetId": target}, timeout=3)
        await asyncio.sleep(0.1 * scale)  # the server sees the tab's end, if it still could
        server.cancel()
        with contextlib.suppress(BaseException):
            await server
    server_seen: dict[str, Any] = dict(ctx.outcome or {"exception": None, "cause": "no connection"})
    connect_at = next((t for t, text in lines if text == "connect"), None)
    if connect_at is not None and server_seen.get("time") is not None:
        # Server times count from the script's start (ctx.t0); shown from the page's connect.
        shift = (t0_wall - connect_at) / scale
        server_seen["time"] = round(float(server_seen["time"]) + shift, 3)
    return {
        "page": normalise(lines, scale),
        "server": server_seen,
        "chromium": browser.version,
    }


def normalise(lines: Sequence[tuple[float, str]], scale: float = 1.0) -> list[dict[str, Any]]:
    """Log lines as ``{"line", "t"}``, ``t`` in unscaled seconds from the ``connect`` line,
    each line re-written in the fixed form (a line of another form is kept as ``raw``).

    A line seen twice with the same timestamp is one message reported twice: DevTools
    replays a page's earlier console messages when it comes back from the back/forward
    cache."""
    t0 = next((t for t, text in lines if text == "connect"), lines[0][0] if lines else 0.0)
    out = []
    for t, text in dict.fromkeys(lines):
        try:
            norm = parse_line(text).text()
        except ValueError:
            norm = f"raw {text}"
        out.append({"line": norm, "t": round((t - t0) / scale, 3)})
    return out


async def run_all(
    scenarios: Sequence[BrowserScenario], runs: int, *, jobs: int = 8, quiet: bool = False
) -> tuple[dict[str, list[dict[str, Any]]], str]:
    """Every scenario ``runs`` times: one fresh Chromium per run, scenarios in parallel tabs
    (``jobs`` at a time). Returns the outcomes per scenario and Chromium's version."""
    out: dict[str, list[dict[str, Any]]] = {s.name: [] for s in scenarios}
    version = ""
    with page_server() as url:
        for k in range(1, runs + 1):
            browser = Browser()
            try:
                await browser.start()
                version = browser.version
                slots = asyncio.Semaphore(jobs)

                async def one(
                    s: BrowserScenario,
                    k: int = k,
                    b: Browser = browser,
                    slots: asyncio.Semaphore = slots,
                ) -> None:
                    async with slots:
                        got = await run_scenario(b, s, url)
                    out[s.name].append(got)
                    if not quiet:
                        print(f"   {s.name} run {k}: {summary(got)}", flush=True)

                ordered = sorted(scenarios, key=lambda s: "long" not in s.tags)
                await asyncio.gather(*(one(s) for s in ordered))
            finally:
                await browser.stop()
    return out, version


def page_summary(page: Sequence[dict[str, Any]]) -> str:
    return ", ".join(p["line"] for p in page if p["line"] != "connect") or "(nothing)"


def server_summary(server: dict[str, Any]) -> str:
    parts = [str(server.get("exception") or server.get("cause") or "-")]
    if server.get("exception"):
        parts.append(f"{server.get('code_received')}/{server.get('code_sent')}")
        parts.append(str(server.get("cause")))
        if server.get("reason"):
            parts.append(json.dumps(server["reason"]))
    elif server.get("status") not in (None, 101):
        parts.append(f"HTTP {server['status']}")
    if "pong" in server:
        parts.append("pong")
    return " ".join(parts)


def summary(got: dict[str, Any]) -> str:
    return f"page {page_summary(got['page'])}; server {server_summary(got['server'])}"


def results(runs: int = 3, names: Sequence[str] = ()) -> tuple[list[dict[str, Any]], str]:
    """The group's result dicts (schema of :mod:`reality.compare`), and Chromium's version.
    Nothing is simulated yet: ``sim`` None, ``agree`` False, a note that says so."""
    chosen = [s for s in SCENARIOS if not names or s.name in names]
    out, version = asyncio.run(run_all(chosen, runs))
    return [
        {
            "scenario": s.name,
            "group": "browser",
            "sim": None,
            "real": out[s.name],
            "agree": False,
            "note": NOT_SIMULATED,
        }
        for s in chosen
    ], version


NOT_SIMULATED = "not simulated yet (wssim.browser)"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reality.chromium", description=__doc__)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("names", nargs="*")
    args = p.parse_args(argv)
    why = missing()
    if why:
        print(f"chromium: skipped: {why}.")
        return 0
    rows, version = results(args.runs, args.names)
    print(version)
    for r in rows:
        print(r["scenario"], json.dumps(r["real"], indent=None)[:2000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
