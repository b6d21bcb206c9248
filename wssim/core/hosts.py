"""Hosts: where code runs.

A host is a named machine of the simulated network. Code runs *on* a host: each task the
host spawns carries the host in a context variable, so that ``connect()`` knows where a
connection comes from, and a crash of the host can stop exactly the tasks that ran there.
Every boot of a host is a new epoch; anything left over from an earlier epoch is dead.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from wssim.trace.events import HostEvent

__all__ = ["Host", "HostState", "HostWorld", "current_host"]

T = TypeVar("T")

# (host, boot epoch) of the code running now; None outside any host.
_running_on: contextvars.ContextVar[tuple[Host, int] | None] = contextvars.ContextVar(
    "wssim_running_on", default=None
)


def current_host() -> Host | None:
    """Return the host the calling code runs on, or None outside a simulated host.

    Code left over from before a crash (for example a ``finally`` clause of a cancelled
    task) is not running on the host any more: for it this returns None.
    """
    running = _running_on.get()
    if running is None:
        return None
    host, boot = running
    return host if host.boot == boot and host.state is _UP else None


def running_on() -> tuple[Host, int] | None:
    """Return ``(host, boot)`` of the calling code, even if that boot has ended."""
    return _running_on.get()


def owner_of(context: contextvars.Context) -> tuple[Host, int] | None:
    """Return ``(host, boot)`` of code that runs in ``context``, or None."""
    return context.get(_running_on)


class HostState(enum.Enum):
    """What a host is doing."""

    UP = "up"
    """Running: processes run, the network stack answers."""
    CRASHED = "crashed"
    """Its processes died; the OS closed their sockets and refuses new connections."""
    OFF = "off"
    """The power is gone: nothing runs, nothing answers, nothing is sent, not even a FIN."""


_UP = HostState.UP  # looked up for every log record: an enum member's lookup is 10x a global's


class HostWorld(Protocol):
    """What a host needs from the world it belongs to (:class:`wssim.world.World`).

    Named here, so that hosts sit below the world that holds them.
    """

    def spawn_task(
        self, host: Host, coro: Coroutine[Any, Any, T], name: str | None, context: Any
    ) -> asyncio.Task[T]:
        """Start ``coro`` as a process of ``host`` in ``context``."""

    def task_ended(self, host: Host, task: asyncio.Task[Any]) -> None:
        """A task that ran on ``host`` ended."""

    def crash_host(self, host: Host) -> None:
        """Kill every process of ``host``; the OS closes their sockets."""

    def record_host_event(self, host: Host, what: HostEvent) -> None:
        """Put a host event in the trace."""


class Host:
    """A machine on the simulated network. Create hosts with :meth:`Simulation.host`."""

    def __init__(self, world: HostWorld, name: str) -> None:
        self._world = world
        self.name = name
        self.state = HostState.UP
        self.boot = 0
        self.frozen = False
        """True while the host's processes are frozen (:class:`wssim.faults.Freeze`)."""
        self._tasks: dict[asyncio.Task[Any], None] = {}
        self._context = self._new_context()
        self._services: list[
            tuple[Callable[..., Coroutine[Any, Any, Any]], tuple[Any, ...], str | None]
        ] = []
        # What this host's code would have run while frozen, in order, for when it thaws.
        self.deferred: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def __repr__(self) -> str:
        frozen = " frozen" if self.frozen else ""
        return f"<Host {self.name} {self.state.value}{frozen}>"

    def _new_context(self) -> contextvars.Context:
        context = contextvars.copy_context()
        context.run(_running_on.set, (self, self.boot))
        return context

    @property
    def tasks(self) -> list[asyncio.Task[Any]]:
        """Tasks running on this host now, oldest first."""
        return [task for task in self._tasks if not task.done()]

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
        """Run ``coro`` as a process on this host and return its task.

        The task starts when the simulation runs. Inside it, ``websockets`` connects from
        and serves on this host. The task is named ``name``, or after the coroutine's
        function.

        Raises:
            ValueError: if the host has crashed (call :meth:`restart` first).
        """
        _check_coroutine(coro)
        if self.state is not HostState.UP:
            coro.close()
            what = "has crashed" if self.state is HostState.CRASHED else "has no power"
            raise ValueError(f"host {self.name!r} {what}: call restart() before spawning on it")
        if name is None:
            # Name the process after its coroutine function: errors then say which one.
            name = getattr(coro, "__name__", None)
        task = self._world.spawn_task(self, coro, name, self._context.copy())
        return task

    def service(
        self,
        factory: Callable[..., Coroutine[Any, Any, Any]],
        *args: Any,
        name: str | None = None,
    ) -> asyncio.Task[Any]:
        """Run ``factory(*args)`` as a process now, and again each time the host restarts.

        This is what an init system does for a server: after a crash or a power loss and a
        :meth:`restart`, the host comes back empty and starts its services again.

        Returns:
            The task of the process started now.
        """
        if not callable(factory):
            raise TypeError(f"factory must be a coroutine function, got {factory!r}")
        task = self.spawn(factory(*args), name=name)
        self._services.append((factory, args, name))
        return task

    def run_here(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` as code running on this host (network callbacks use this).

        While the host is frozen the call waits, in order, until it thaws.
        """
        if self.frozen:
            self.deferred.append((fn, args))
            return
        self._context.copy().run(fn, *args)

    def _adopt(self, task: asyncio.Task[Any]) -> None:
        self._tasks[task] = None
        task.add_done_callback(self._task_ended)

    def _task_ended(self, task: asyncio.Task[Any]) -> None:
        del self._tasks[task]
        self._world.task_ended(self, task)

    def crash(self) -> None:
        """Kill every process on this host now.

        As when a process dies, the operating system closes its sockets: peers receive a
        FIN, or an RST where data was waiting unread. Listening ports close, so new
        connections are refused until :meth:`restart` and a new :meth:`spawn`.
        """
        self._world.crash_host(self)

    def restart(self) -> None:
        """Reboot this host: it comes back empty and starts its :meth:`service` processes.

        A host that is still up is crashed first, as a reboot kills its processes. A host
        whose power was lost comes back with the power.
        """
        if self.state is HostState.UP:
            self._world.crash_host(self)
        self.state = HostState.UP
        self.boot += 1
        self._context = self._new_context()
        self._world.record_host_event(self, HostEvent.RESTART)
        for factory, args, name in self._services:
            self.spawn(factory(*args), name=name)

    def _kill_processes(self) -> None:
        """Cancel every task of the current boot; they are never awaited by anyone."""
        for task in list(self._tasks):
            if not task.done():
                task.cancel()
                task.add_done_callback(_swallow)


def _check_coroutine(coro: object) -> None:
    """Refuse, at the call, what a task could never run."""
    if inspect.iscoroutinefunction(coro):
        name = getattr(coro, "__name__", "function")
        raise TypeError(
            f"spawn() takes a coroutine, got the function {name}: did you mean {name}()?"
        )
    if not asyncio.iscoroutine(coro):
        raise TypeError(f"spawn() takes a coroutine, such as my_client(), got {coro!r}")
    if inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) != inspect.CORO_CREATED:
        raise ValueError(
            f"the coroutine {coro.__qualname__}() has already run (it was awaited or spawned "
            f"before): call the function again for a new one"
        )


def _swallow(task: asyncio.Task[Any]) -> None:
    # A process killed by a crash has nobody to report to: mark its outcome as retrieved
    # so asyncio does not log "exception was never retrieved" for it.
    if not task.cancelled():
        task.exception()
