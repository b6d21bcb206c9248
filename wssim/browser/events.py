"""The page's side of the browser, in JavaScript: events, ``WebSocket``, timers, console.

:data:`PRELUDE` runs in every new page before the page's own code. It defines what the
page sees (``EventTarget``, ``Event``, ``MessageEvent``, ``CloseEvent``,
``PageTransitionEvent``, ``DOMException``,
``WebSocket``, timers, ``console``, ``performance``, ``document``, ``navigator``,
``window``) on top of a few functions the tab exposes from Python (their names start with
``__py_``). Argument checks that throw live here, in JavaScript; the network lives in
Python (:mod:`wssim.browser.websocket`). Python calls back through ``__wssim_*``.
"""

from __future__ import annotations

__all__ = ["PRELUDE"]

PRELUDE = r"""
(function () {
"use strict";
const g = globalThis;
const py = {
  log: g.__py_log, now: g.__py_now, random: g.__py_random, epoch: g.__py_epoch,
  setTimer: g.__py_set_timer, clearTimer: g.__py_clear_timer,
  connect: g.__py_ws_connect, send: g.__py_ws_send, close: g.__py_ws_close,
  buffered: g.__py_ws_buffered, utf8len: g.__py_utf8_length,
};
for (const k of Object.keys(g)) if (k.startsWith("__py_")) delete g[k];

class DOMException extends Error {
  constructor(message = "", name = "Error") { super(message); this.name = name; }
}

function format(v) {
  if (typeof v === "string") return v;
  if (v === undefined || v === null || typeof v === "number" || typeof v === "boolean"
      || typeof v === "bigint" || typeof v === "symbol") return String(v);
  if (typeof v === "function") return String(v);
  if (v instanceof Error) return v.stack ? `${v.name}: ${v.message}\n${v.stack}`.trimEnd()
                                        : `${v.name}: ${v.message}`;
  if (v instanceof ArrayBuffer) return `ArrayBuffer(${v.byteLength})`;
  try { const s = JSON.stringify(v); return s === undefined ? String(v) : s; }
  catch (e) { return String(v); }
}
function report(e) {
  // An exception escaping a handler or a timer: logged as the browser does, not raised.
  const text = e instanceof Error ? `${e.name}: ${e.message}` : format(e);
  py.log(J("Uncaught " + text));
}

class Event {
  constructor(type, init = {}) {
    this.type = String(type); this.target = null; this.currentTarget = null;
    this.bubbles = !!init.bubbles; this.cancelable = !!init.cancelable;
    this.defaultPrevented = false; this.timeStamp = py.now(); this._stop = false;
  }
  preventDefault() { if (this.cancelable) this.defaultPrevented = true; }
  stopImmediatePropagation() { this._stop = true; }
  stopPropagation() {}
}
class MessageEvent extends Event {
  constructor(type, init = {}) {
    super(type, init); this.data = init.data === undefined ? null : init.data;
    this.origin = init.origin || ""; this.lastEventId = ""; this.source = null; this.ports = [];
  }
}
class PageTransitionEvent extends Event {
  constructor(type, init = {}) { super(type, init); this.persisted = !!init.persisted; }
}
class CloseEvent extends Event {
  constructor(type, init = {}) {
    super(type, init); this.wasClean = !!init.wasClean;
    this.code = init.code || 0; this.reason = init.reason || "";
  }
}

const LISTENERS = Symbol("listeners");
class EventTarget {
  constructor() { this[LISTENERS] = new Map(); }
  addEventListener(type, fn, options) {
    if (fn == null) return;
    const once = typeof options === "object" && options !== null && !!options.once;
    const list = this[LISTENERS].get(type) || [];
    if (!list.some(l => l.fn === fn)) list.push({ fn, once });
    this[LISTENERS].set(type, list);
  }
  removeEventListener(type, fn) {
    const list = this[LISTENERS].get(type);
    if (list) this[LISTENERS].set(type, list.filter(l => l.fn !== fn));
  }
  dispatchEvent(event) {
    event.target = this; event.currentTarget = this;
    const handler = this["on" + event.type];
    const list = (this[LISTENERS].get(event.type) || []).slice();
    // The on<type> attribute's handler runs where it was set: modelled as first.
    const all = typeof handler === "function" ? [{ fn: handler, once: false }, ...list] : list;
    for (const l of all) {
      if (event._stop) break;
      if (l.once) this.removeEventListener(event.type, l.fn);
      try {
        if (typeof l.fn === "function") l.fn.call(this, event);
        else if (l.fn && typeof l.fn.handleEvent === "function") l.fn.handleEvent(event);
      } catch (e) { report(e); }
    }
    return !event.defaultPrevented;
  }
}

// Strings cross to Python as JSON and bytes as hex: QuickJS hands strings over as C
// strings, which a NUL character would cut short.
const J = JSON.stringify;
function toHex(data) {
  let bytes;
  if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
  else if (ArrayBuffer.isView(data))
    bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  else return null;
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
  return s;
}
function fromHex(s) {
  const bytes = new Uint8Array(s.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(s.substr(2 * i, 2), 16);
  return bytes.buffer;
}

const sockets = new Map();
let nextSocket = 1;
const STATE = Symbol("state");
class WebSocket extends EventTarget {
  constructor(url, protocols = []) {
    super();
    if (typeof protocols === "string") protocols = [protocols];
    protocols = Array.from(protocols, String);
    if (new Set(protocols).size !== protocols.length)
      throw new DOMException("The subprotocol is duplicated.", "SyntaxError");
    const id = nextSocket++;
    const error = py.connect(id, J(String(url)), J(protocols));
    if (error) throw new DOMException(error, "SyntaxError");
    this[STATE] = { id, readyState: 0, url: String(url), protocol: "", extensions: "" };
    this[STATE].binaryType = "blob";
    this.onopen = null; this.onmessage = null; this.onerror = null; this.onclose = null;
    sockets.set(id, this);
  }
  get readyState() { return this[STATE].readyState; }
  get binaryType() { return this[STATE].binaryType; }
  set binaryType(value) {
    // WHATWG: other values are ignored. Binary messages arrive as an ArrayBuffer either
    // way: Blob is not modelled.
    if (value === "blob" || value === "arraybuffer") this[STATE].binaryType = value;
  }
  get url() { return this[STATE].url; }
  get protocol() { return this[STATE].protocol; }
  get extensions() { return this[STATE].extensions; }
  get bufferedAmount() { return py.buffered(this[STATE].id); }
  send(data) {
    const st = this[STATE];
    if (st.readyState === 0)
      throw new DOMException("Still in CONNECTING state.", "InvalidStateError");
    const binary = toHex(data);
    if (st.readyState !== 1) return;  // CLOSING/CLOSED: dropped (WHATWG: bufferedAmount grows)
    if (binary !== null) py.send(st.id, binary, true);
    else py.send(st.id, J(String(data)), false);
  }
  close(code, reason) {
    const st = this[STATE];
    if (code !== undefined) {
      code = Number(code) & 0xffff;
      if (code !== 1000 && !(code >= 3000 && code <= 4999))
        throw new DOMException(
          `The close code must be either 1000, or between 3000 and 4999. ${code} is neither.`,
          "InvalidAccessError");
    }
    if (reason !== undefined) {
      reason = String(reason);
      if (py.utf8len(J(reason)) > 123)
        throw new DOMException(
          "The close reason must not be greater than 123 UTF-8 bytes.", "SyntaxError");
    }
    if (st.readyState === 2 || st.readyState === 3) return;
    st.readyState = 2;
    py.close(st.id, code === undefined ? -1 : code, J(reason === undefined ? "" : reason));
  }
}
for (const [name, value] of [["CONNECTING", 0], ["OPEN", 1], ["CLOSING", 2], ["CLOSED", 3]]) {
  Object.defineProperty(WebSocket, name, { value, enumerable: true });
  Object.defineProperty(WebSocket.prototype, name, { value, enumerable: true });
}

const timers = new Map();
let nextTimer = 1;
function addTimer(fn, ms, args, repeat) {
  const id = nextTimer++;
  ms = Math.max(0, Number(ms) || 0);
  timers.set(id, { fn, args, repeat, ms });
  py.setTimer(id, ms);
  return id;
}
function clearTimer(id) {
  id = Number(id);
  if (timers.delete(id)) py.clearTimer(id);
}

const win = new EventTarget();
const doc = new EventTarget();
let visibility = "visible";
let online = true;
Object.defineProperty(doc, "visibilityState", { get: () => visibility });
Object.defineProperty(doc, "hidden", { get: () => visibility === "hidden" });
const start = py.now();

Object.assign(g, {
  DOMException, Event, MessageEvent, CloseEvent, PageTransitionEvent, EventTarget, WebSocket,
  setTimeout: (fn, ms, ...args) => addTimer(fn, ms, args, false),
  setInterval: (fn, ms, ...args) => addTimer(fn, ms, args, true),
  clearTimeout: clearTimer, clearInterval: clearTimer,
  console: { log(...a) { py.log(J(a.map(format).join(" "))); } },
  performance: { now: () => py.now() - start },
  document: doc,
  navigator: { get onLine() { return online; }, userAgent: "wssim" },
  window: g,
  addEventListener: win.addEventListener.bind(win),
  removeEventListener: win.removeEventListener.bind(win),
  dispatchEvent: win.dispatchEvent.bind(win),
});
console.info = console.warn = console.error = console.debug = console.log;
Math.random = () => py.random();
const epoch = py.epoch();
Date.now = () => Math.floor(epoch + py.now());

// What the tab calls from Python.
g.__wssim_timer = function (id) {
  const t = timers.get(id);
  if (!t) return false;
  if (!t.repeat) timers.delete(id);
  try {
    if (typeof t.fn === "function") t.fn(...t.args);
    else (0, eval)(String(t.fn));
  } catch (e) { report(e); }
  return t.repeat && timers.has(id);
};
g.__wssim_ws = function (id, what, a, b, c) {
  const ws = sockets.get(id);
  if (!ws) return;
  const st = ws[STATE];
  if (what === "open") {
    st.readyState = 1; st.protocol = a; st.extensions = b;
    ws.dispatchEvent(new Event("open"));
  } else if (what === "message") {
    if (st.readyState !== 1) return;
    // Binary data is an ArrayBuffer whatever binaryType says: Blob is not modelled.
    const data = c ? fromHex(a) : JSON.parse(a);
    const origin = st.url.replace(/^(wss?:\/\/[^/]*).*$/, "$1");
    ws.dispatchEvent(new MessageEvent("message", { data, origin }));
  } else if (what === "closing") {
    st.readyState = 2;
  } else if (what === "error") {
    st.readyState = 3;
    ws.dispatchEvent(new Event("error"));
  } else if (what === "close") {
    st.readyState = 3; sockets.delete(id);
    ws.dispatchEvent(new CloseEvent("close", { code: a, reason: JSON.parse(b), wasClean: c }));
  }
};
g.__wssim_visibility = function (state, quiet) {
  visibility = state;
  if (!quiet) doc.dispatchEvent(new Event("visibilitychange"));
};
g.__wssim_online = function (value) {
  online = value;
  win.dispatchEvent(new Event(value ? "online" : "offline"));
};
g.__wssim_pagehide = function (persisted) {
  win.dispatchEvent(new PageTransitionEvent("pagehide", { persisted }));
};
g.__wssim_pageshow = function (persisted) {
  win.dispatchEvent(new PageTransitionEvent("pageshow", { persisted }));
};
})();
"""
