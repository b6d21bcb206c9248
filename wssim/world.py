"""The world of one simulation: its event loop, network, hosts and recorder.

:class:`SimLoop` is the virtual-time loop with its network calls routed to the simulated
network, so that websockets' ``connect()`` and ``serve()`` work unchanged. Every task it
creates belongs to the host whose code created it.
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import functools
import gc
import random
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextvars import Context
from typing import Any, TypeVar

import websockets.asyncio.client

from wssim.core.clock import MAX_TIME, VirtualClockLoop
from wssim.core.hosts import Host, HostState, owner_of, running_on
from wssim.faults import Crash, Fault, Freeze, PowerLoss
from wssim.net.fabric import Network
from wssim.net.transport import SimServer, SimTransport
from wssim.trace.events import Detail, Event, HostEvent, Phase
from wssim.trace.recorder import Recorder

__all__ = ["ProcessFailed", "SimLoop", "World"]

T = TypeVar("T")

GC_THRESHOLD = 20_000
"""The garbage collector's first threshold while a simulation runs (see World.run)."""

_UNREFERENCED = 3
"""sys.getrefcount of a task that only SimLoop._report_unhandled still holds."""

SHUTDOWN_GRACE = 3600.0
"""Virtual seconds that killed processes get to unwind when a simulation ends."""


class ProcessFailed(Exception):
    """A process spawned on a host raised an exception that nobody caught.

    The run stops at that instant and :meth:`Simulation.run` raises this; the original
    exception is its ``__cause__``, and the trace so far is still available as
    ``sim.trace``. Calling ``run`` again continues the world from there.
    """


class SimLoop(VirtualClockLoop):
    """A virtual-time loop whose TCP goes over a simulated :class:`~wssim.net.fabric.Network`.

    While a host is frozen, callbacks its code schedules wait until it thaws: every step
    of a task, every wake-up of a future it awaits, goes through ``call_soon`` with the
    task's context, so holding those back holds the host's processes still, exactly.
    """

    network: Network

    def __init__(self) -> None:
        super().__init__()
        self._frozen: dict[Host, list[asyncio.Handle]] = {}
        # Tasks on hosts (not processes) that ended with an exception nobody has retrieved
        # yet: whoever awaits them may still do so later in the same instant.
        self.unretrieved: list[tuple[Host, asyncio.Task[Any]]] = []
        self.on_unhandled: Callable[[Host, asyncio.Task[Any]], None] | None = None

    def task_ended(self, host: Host, task: asyncio.Task[Any]) -> None:
        """A task on ``host`` ended: remember it if its exception is not retrieved yet."""
        if not task.cancelled() and task._log_traceback:
            self.unretrieved.append((host, task))

    def _wait(self, timeout: float | None) -> None:
        if self.unretrieved and self._report_unhandled():
            self.stop()  # stop at this instant, before time moves on
            return
        super()._wait(timeout)

    def _report_unhandled(self) -> bool:
        """At the end of an instant: report tasks whose exception nobody can retrieve.

        asyncio says "Task exception was never retrieved" when such a task is garbage
        collected, at a moment that depends on the collector. Here the same condition is
        checked deterministically, when the instant ends: the exception is still
        unretrieved and nothing but this list holds the task (a task kept in a variable or
        a set may still be awaited later, and is checked again at the next instant).
        """
        reported = False
        keep = []
        for host, task in self.unretrieved:
            if not task._log_traceback:
                continue  # someone retrieved it
            # References: the list's tuple, this loop's variable, getrefcount's argument.
            if sys.getrefcount(task) > _UNREFERENCED:
                keep.append((host, task))
                continue
            if self.on_unhandled is not None:
                self.on_unhandled(host, task)
            task.exception()  # reported here: asyncio need not log it again
            reported = True
        self.unretrieved = keep
        return reported

    def freeze(self, host: Host) -> None:
        """Hold back every callback of ``host``'s code from now on."""
        self._frozen[host] = []
        # Only while something is frozen does call_soon pay for the check.
        self.call_soon = self._call_soon_unless_frozen  # type: ignore[method-assign, assignment]

    def thaw(self, host: Host) -> None:
        """Run what ``host``'s code was held back from, in the order it was scheduled."""
        held = self._frozen.pop(host, [])
        if not self._frozen:
            del self.call_soon
        # The handles were made by call_soon and handed to their callers, who may cancel
        # them: queue the same objects (the loop skips cancelled ones).
        self._ready.extend(held)  # type: ignore[attr-defined]

    def _call_soon_unless_frozen(
        self, callback: Callable[..., Any], *args: Any, context: Context | None = None
    ) -> asyncio.Handle:
        owner = owner_of(context) if context is not None else running_on()
        if owner is not None:
            host, boot = owner
            held = self._frozen.get(host)
            if held is not None and host.boot == boot:
                handle = asyncio.Handle(callback, args, self, context)
                held.append(handle)
                return handle
        return super().call_soon(callback, *args, context=context)

    def run_in_executor(  # type: ignore[override]
        self, executor: Any, func: Callable[..., Any], *args: Any
    ) -> Any:
        """Refused: virtual time cannot wait for a real thread.

        The clock jumps as soon as every task waits, so a thread's result would arrive at
        a virtual time that depends on the machine's speed, or after the simulation ended.
        """
        name = _callable_name(func)
        raise RuntimeError(
            f"run_in_executor({name}) (or asyncio.to_thread) cannot be used in a "
            f"simulation: virtual time does not wait for real threads, so the result would "
            f"arrive at a random virtual time or never. Call {name} directly (it takes no "
            f"virtual time), and `await asyncio.sleep(seconds)` if the work should take time."
        )

    def _describe_task(self, task: asyncio.Task[Any]) -> str:
        hosts = [host.name for host in self.network.hosts.values() if task in host._tasks]
        where = f" on host {hosts[0]!r}" if hosts else ""
        return super()._describe_task(task) + where

    def create_task(  # type: ignore[override]
        self,
        coro: Coroutine[Any, Any, Any],
        *,
        name: str | None = None,
        context: Context | None = None,
    ) -> asyncio.Task[Any]:
        task = super().create_task(coro, name=name, context=context)
        owner = owner_of(context) if context is not None else running_on()
        if owner is not None:
            host, boot = owner
            if host.boot == boot:
                host._adopt(task)
        return task

    async def create_connection(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | None = None,
        port: int | None = None,
        *,
        ssl: Any = None,
        sock: Any = None,
        **kwargs: Any,
    ) -> tuple[SimTransport, asyncio.BaseProtocol]:
        if ssl:
            raise NotImplementedError("TLS is not simulated: use ws:// URIs")
        if sock is not None:
            raise NotImplementedError("sock= is not supported on the simulated network")
        if host is None or port is None:
            raise ValueError("host and port are required on the simulated network")
        return await self.network.connect(protocol_factory, host, port)

    async def create_server(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | None = None,
        port: int | None = None,
        *,
        ssl: Any = None,
        start_serving: bool = True,
        **kwargs: Any,
    ) -> SimServer:
        if ssl:
            raise NotImplementedError("TLS is not simulated: serve without ssl=")
        if isinstance(host, list | tuple):
            raise NotImplementedError("serve on one host name at a time")
        return self.network.listen(protocol_factory, host, port, start_serving=start_serving)

    async def getaddrinfo(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("name resolution happens inside the simulated network")


def _callable_name(func: Any) -> str:
    """The name of what is called, seen through asyncio.to_thread's wrapping."""
    while isinstance(func, functools.partial):
        if isinstance(getattr(func.func, "__self__", None), Context) and func.args:
            func = func.args[0]  # to_thread calls context.run(func, ...)
        else:
            func = func.func
    return str(getattr(func, "__qualname__", None) or type(func).__name__)


def _no_proxy_in_simulations(get_proxy: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap websockets' proxy lookup so that proxy variables never apply in a simulation.

    The simulated network has no proxy; a learner's ``HTTPS_PROXY`` must not send
    ``connect()`` looking for one. Outside a simulation the lookup is unchanged.
    """
    if getattr(get_proxy, "_wssim", False):
        return get_proxy

    def lookup(*args: Any, **kwargs: Any) -> Any:
        try:
            if isinstance(asyncio.get_running_loop(), SimLoop):
                return None
        except RuntimeError:
            pass
        return get_proxy(*args, **kwargs)

    lookup._wssim = True  # type: ignore[attr-defined]
    return lookup


websockets.asyncio.client.get_proxy = _no_proxy_in_simulations(websockets.asyncio.client.get_proxy)


FORCE_INTERRUPT_AFTER = 0.5
"""Real seconds after Ctrl-C before the interrupt is forced into whatever code runs."""


@contextlib.contextmanager
def _interrupts_between_rounds(loop: VirtualClockLoop) -> Iterator[None]:
    """Make Ctrl-C (SIGINT, a kernel's stop button) stop the loop between two rounds.

    A KeyboardInterrupt raised at whatever line happens to run could land inside
    websockets' parser or the simulated TCP and leave them half-updated; between two rounds
    of the loop, everything is whole. Code that never returns to the loop (``while True:
    pass``) is interrupted where it is, after :data:`FORCE_INTERRUPT_AFTER` seconds or at a
    second Ctrl-C. Only in the main thread, and only where Python's own handler is set
    (a program with its own SIGINT handler keeps it).
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    force: threading.Timer | None = None
    done = False

    def on_sigint(signum: int, frame: object) -> None:
        nonlocal force
        if done:
            return  # the forcing timer fired just as the run ended
        if force is not None:
            raise KeyboardInterrupt
        loop.interrupting = True
        force = threading.Timer(FORCE_INTERRUPT_AFTER, _thread.interrupt_main)
        force.daemon = True
        force.start()

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        done = True
        loop.interrupting = False
        if force is not None:
            force.cancel()
            force.join()
        signal.signal(signal.SIGINT, signal.default_int_handler)


class World:
    """Everything one simulation owns. :class:`~wssim.Simulation` is its public face."""

    def __init__(self, *, seed: int, latency: float) -> None:
        self.seed = seed
        self.loop = SimLoop()
        self.recorder = Recorder(self.loop)
        self.network = Network(self.loop, self.recorder, seed=seed, latency=latency)
        self.loop.network = self.network
        self.loop.on_unhandled = self.task_unhandled
        self.hosts = self.network.hosts
        # websockets draws reconnect delays and ping payloads from the global `random`:
        # give it a stream of its own, derived from the seed, kept across runs.
        self.global_random_state = random.Random(seed).getstate()
        self.closed = False
        self.failures: list[ProcessFailed] = []
        # Calls scheduled with Simulation.at (and faults), by time, in the order scheduled;
        # one timer per instant, which ending the world cancels.
        self.scheduled: dict[
            float, tuple[asyncio.TimerHandle, list[tuple[Callable[..., Any], tuple[Any, ...]]]]
        ] = {}

    def spawn_task(
        self, host: Host, coro: Coroutine[Any, Any, T], name: str | None, context: Context
    ) -> asyncio.Task[T]:
        """Start a process on ``host``: a task whose failure stops the run."""
        task = self.loop.create_task(coro, name=name, context=context)
        task.add_done_callback(functools.partial(self.process_done, host))
        return task

    def task_ended(self, host: Host, task: asyncio.Task[Any]) -> None:
        """A task on ``host`` ended (see :meth:`SimLoop.task_ended`)."""
        self.loop.task_ended(host, task)

    def process_done(self, host: Host, task: asyncio.Task[Any]) -> None:
        """A spawned process ended: keep its exception, if any, for :meth:`run` to raise."""
        if task.cancelled():
            return
        exc = task.exception()  # retrieved, even when ending: asyncio must not log it later
        if exc is None or self.closed:
            return
        self._failed(host, task, exc, "process")

    def task_unhandled(self, host: Host, task: asyncio.Task[Any]) -> None:
        """A task a process started failed, and nothing can retrieve its exception any more."""
        exc = task.exception()
        if exc is not None and not self.closed:
            self._failed(host, task, exc, "task")

    def _failed(self, host: Host, task: asyncio.Task[Any], exc: BaseException, what: str) -> None:
        where = host.name
        failure = ProcessFailed(
            f"{what} {task.get_name()!r} on host {where!r} failed at "
            f"t={self.loop.time():g} s: {type(exc).__name__}: {exc}"
        )
        failure.__cause__ = exc
        self.record(
            "host",
            f"{what} {task.get_name()} failed: {type(exc).__name__}: {exc}",
            where,
            HostEvent.PROCESS_FAILED,
        )
        self.failures.append(failure)
        self.loop.stop()

    def call_at(self, t: float, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` at ``t``; if it raises, the run stops as for a failed process.

        Calls due at the same instant run in the order they were scheduled (asyncio's timer
        heap does not keep that order): a fault that ends at t ends before one that starts
        at t, if it was injected first.
        """
        due = self.scheduled.get(t)
        if due is None:
            handle = self.loop.call_at(t, self._call_due, t, context=self.network.quiet)
            due = self.scheduled[t] = (handle, [])
        due[1].append((fn, args))

    def _call_due(self, t: float) -> None:
        _, calls = self.scheduled.pop(t)
        for fn, args in calls:
            try:
                fn(*args)
            except Exception as exc:
                name = getattr(fn, "__name__", repr(fn))
                failure = ProcessFailed(
                    f"call {name}() at t={self.loop.time():g} s failed: {type(exc).__name__}: {exc}"
                )
                failure.__cause__ = exc
                self.failures.append(failure)
                self.loop.stop()

    def host(self, name: str) -> Host:
        existing = self.hosts.get(name)
        if existing is None:
            existing = self.hosts[name] = Host(self, name)
        return existing

    def known_host(self, name: str, parameter: str) -> Host:
        if not isinstance(name, str):
            raise TypeError(f"{parameter} must be a host name (str), got {name!r}")
        host = self.hosts.get(name)
        if host is None:
            known = ", ".join(repr(h) for h in self.hosts) or "none yet"
            raise ValueError(
                f"{parameter}={name!r} is not a host of this simulation (hosts: {known})"
            )
        return host

    def record(self, kind: str, text: str, host: str = "", detail: Detail = None) -> None:
        self.recorder.add(Event(self.recorder.now(), kind, text, host=host, detail=detail))

    def record_host_event(self, host: Host, what: HostEvent) -> None:
        self.record("host", what.value, host.name, what)

    def crash_host(self, host: Host, cause: Fault | None = None) -> None:
        """Kill the host's processes; ``cause`` is the fault recorded (default: a crash)."""
        if host.state is not HostState.UP:
            return
        # A frozen process dies without reading what waited for it: the OS then resets
        # those connections (RST), as it does for any socket closed with unread data.
        self.thaw_host(host, read=False)
        if self.recorder.recording:  # not while the world shuts down, host by host
            (cause or Crash(host.name)).record(self, Phase.START)
        self.network.crash(host)
        host._kill_processes()
        host.state = HostState.CRASHED

    def power_off_host(self, host: Host, cause: Fault | None = None) -> None:
        """The power goes: processes stop, and nothing at all leaves the host any more."""
        if host.state is HostState.OFF:
            return
        self.thaw_host(host, read=False)
        (cause or PowerLoss(host.name)).record(self, Phase.START)
        host.state = HostState.OFF
        self.network.power_off(host)
        host._kill_processes()

    def freeze_host(self, host: Host, *, record: bool = True, cause: Fault | None = None) -> None:
        """Stop running the host's processes; its network stack still receives."""
        if host.frozen or host.state is not HostState.UP:
            return
        if record:
            (cause or Freeze(host.name)).record(self, Phase.START)
        host.frozen = True
        self.loop.freeze(host)

    def thaw_host(
        self, host: Host, *, quietly: bool = False, read: bool = True, cause: Fault | None = None
    ) -> None:
        """Let a frozen host run again: what waited runs now, in the order it came.

        First its tasks' own steps, those its overdue timers woke among them, then the data
        its kernel received and the calls its process missed (accepts, connections lost).
        That is CPython's order after SIGCONT: the interrupted ``epoll_wait`` returns no
        events, so the loop runs the due timers first and finds the sockets readable on its
        next pass. With ``read`` false (a process that dies frozen) nothing is read.
        """
        if not host.frozen:
            return
        if not quietly:
            (cause or Freeze(host.name)).record(self, Phase.END)
        host.frozen = False
        if not read:
            self._run_deferred(host)
            self.loop.thaw(host)
            return
        self.loop.thaw(host)
        self.loop.call_soon(self._read_after_thaw, host, host.boot, context=self.network.quiet)

    def _read_after_thaw(self, host: Host, boot: int) -> None:
        if host.frozen or host.boot != boot:
            return  # frozen again, or dead: what waits stays unread
        for transport in self.network.transports_of(host):
            transport._flush_unread()
        self._run_deferred(host)

    @staticmethod
    def _run_deferred(host: Host) -> None:
        deferred, host.deferred = host.deferred, []
        for fn, args in deferred:
            host.run_here(fn, *args)

    @contextlib.contextmanager
    def _running(self) -> Iterator[None]:
        """While the loop runs: the world's own randomness, GC setting and log capture.

        Whatever the caller had (``random`` state, GC threshold, logger levels) comes back
        afterwards.
        """
        saved_random = random.getstate()
        random.setstate(self.global_random_state)
        saved_gc = gc.get_threshold()
        # A simulation allocates a great many short-lived objects (futures, handles, log
        # records) while it holds many long-lived ones (every connection's state): with
        # Python's default first threshold (700), full collections over the long-lived
        # objects come so often that they took 40% of a 10,000-client run. Collecting the
        # youngest generation less often lets short-lived objects die uncollected.
        gc.set_threshold(max(saved_gc[0], GC_THRESHOLD), *saved_gc[1:])
        self.recorder.start_capture()
        try:
            with _interrupts_between_rounds(self.loop):
                yield
        finally:
            self.recorder.stop_capture()
            gc.set_threshold(*saved_gc)
            self.global_random_state = random.getstate()
            random.setstate(saved_random)

    def run(self, until: float | None) -> None:
        """Run the loop up to ``until``."""
        with self._running():
            self.loop.run_until(until)

    def shutdown(self) -> None:
        """End the world: kill every process, let them unwind, close the loop.

        Nothing after this point is recorded; the network is dead, so unwinding code
        cannot reach anyone and its timers finish in virtual time.
        """
        if self.closed:
            return
        self.closed = True
        self.recorder.recording = False
        for handle, _ in self.scheduled.values():
            handle.cancel()
        self.scheduled.clear()
        for host in self.hosts.values():
            self.crash_host(host)
        try:
            with self._running():
                self._unwind()
        finally:
            self.loop.close()

    def _unwind(self) -> None:
        """Let killed processes unwind in virtual time (close timeouts and the like): a
        bounded span, then cancel whatever still runs, three rounds at most."""
        for _ in range(3):
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            if not pending:
                break
            for task in pending:
                task.cancel()
            self.loop.run_until(min(self.loop.time() + SHUTDOWN_GRACE, MAX_TIME))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
