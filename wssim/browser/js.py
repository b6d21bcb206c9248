"""The JavaScript engine of a tab: QuickJS (the ``quickjs`` package), in this thread.

QuickJS runs in the calling thread and only when called: page code, timers and events run
exactly when the simulation's loop says so, which keeps a run deterministic. (mini-racer,
V8 in a library, is not used: its callbacks into Python run on a thread of its own, whose
timing would break determinism.)

Python callables exposed to the page must never raise (QuickJS would report a Python
error as a ``SystemError``): :class:`Engine` wraps them, keeps the first Python exception
and raises it once the JavaScript call that hit it returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:
    import quickjs
except ImportError as missing:  # pyproject.toml installs it only where a wheel exists
    raise ImportError(
        "wssim.browser needs the quickjs package (its JavaScript engine), which is not "
        "installed. quickjs 1.19.4 has wheels for CPython 3.11 and 3.12 on Linux x86-64, "
        "macOS and Windows x86-64: use one of those (for example `python3.12 -m venv .venv`), "
        "or build it from source with a C compiler: `pip install quickjs`. The rest of the "
        "course runs without it."
    ) from missing

__all__ = ["Engine", "JSError"]


class JSError(Exception):
    """JavaScript code threw: ``message`` is the JS error's ``name: message`` line and
    ``stack`` the JS stack QuickJS reports."""

    def __init__(self, message: str, stack: str = "") -> None:
        super().__init__(f"{message}\n{stack}".rstrip())
        self.message = message
        self.stack = stack


def _js_error(exc: Exception) -> JSError:
    text = str(exc)
    message, _, stack = text.partition("\n")
    return JSError(message, stack)


class Engine:
    """One JavaScript realm: a QuickJS context with page globals installed by the tab."""

    def __init__(self) -> None:
        self._context = quickjs.Context()
        self._failure: BaseException | None = None

    def expose(self, name: str, fn: Callable[..., Any]) -> None:
        """Make ``fn`` callable from JavaScript as the global function ``name``."""

        def safe(*args: Any) -> Any:
            try:
                return fn(*args)
            except Exception as exc:  # reported after the JS call returns
                if self._failure is None:
                    self._failure = exc
                return None

        self._context.add_callable(name, safe)

    def eval(self, source: str) -> Any:
        """Run ``source`` as a script, then the promise jobs it queued.

        Raises:
            JSError: if the script threw (a syntax error included).
        """
        try:
            result = self._context.eval(source)
        except quickjs.JSException as exc:
            raise _js_error(exc) from None
        finally:
            self._check()
        self.run_jobs()
        return result

    def call(self, name: str, *args: Any) -> Any:
        """Call the global JavaScript function ``name`` with ``args``, then promise jobs."""
        fn = self._context.get(name)
        try:
            result = fn(*args)
        except quickjs.JSException as exc:
            raise _js_error(exc) from None
        finally:
            self._check()
        self.run_jobs()
        return result

    def run_jobs(self) -> None:
        """Run the promise jobs (microtasks) queued so far, until none is left."""
        while True:
            try:
                if not self._context.execute_pending_job():
                    break
            except quickjs.JSException as exc:
                raise _js_error(exc) from None
            finally:
                self._check()

    def _check(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure
