"""What goes wrong in real deployments, one small piece per fault.

Inject a fault with :meth:`wssim.Simulation.inject`, at a virtual time and, for a fault
that lasts, for a duration::

    from wssim import faults

    sim.inject(faults.Partition("client", "server"), at=10, duration=30)
    sim.inject(faults.PowerLoss("client"), at=60)
    sim.inject(faults.Freeze("server"), at=90, duration=5)

Every fault appears in the trace (kind ``fault``) when it starts and when it ends, and
:func:`wssim.plot.timeline` draws it as a band. Where toxiproxy has a toxic with the same
meaning, the fault has its name (``latency``, ``bandwidth``, ``reset_peer``,
``slow_close``, ``limit_data``, ``slicer``), with parameters in seconds and bytes.

A fault declares what the readers of a trace need (its :attr:`~Fault.name`,
:attr:`~Fault.label`, :attr:`~Fault.acted`, whether it :attr:`~Fault.kills`, its
:attr:`~Fault.hosts` and :attr:`~Fault.path`) and records its own typed events
(:meth:`Fault.record`): a new fault is one new class, subclassing :class:`PathFault` or
:class:`HostFault`, and nothing else changes.

Faults on the path between two hosts act on every connection between them, both ways
(toxiproxy's toxics choose a direction and a toxicity, the share of connections they act
on; here a fault acts on all of them).
Host faults act on one host: its processes crash (:class:`Crash`), lose power
(:class:`PowerLoss`), stop running for a while (:class:`Freeze`), or the whole machine
sleeps (:class:`Suspend`).
"""

from __future__ import annotations

import abc
import asyncio
import math
import random
from typing import ClassVar, Literal, Protocol

from wssim.core.hosts import Host
from wssim.core.params import count, seconds
from wssim.net.fabric import Network
from wssim.net.link import Link, Segment
from wssim.net.path import PathEffect
from wssim.net.tcp import Pipe, TcpConnection
from wssim.trace.events import Detail, FaultInfo, Path, Phase

__all__ = [
    "Bandwidth",
    "Crash",
    "Fault",
    "Freeze",
    "HostFault",
    "IdleTimeout",
    "Latency",
    "LimitData",
    "Partition",
    "PathFault",
    "PowerLoss",
    "ResetPeer",
    "Slicer",
    "SlowClose",
    "Suspend",
]


def _host_name(value: object, parameter: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{parameter} must be a host name, got {value!r}")
    return value


class World(Protocol):
    """What a fault acts on: the world of one simulation (:class:`wssim.world.World`).

    Named here, so that the fault catalogue sits below the world that runs it.
    """

    @property
    def seed(self) -> int:
        """The simulation's seed."""

    @property
    def hosts(self) -> dict[str, Host]:
        """Its hosts, by name."""

    @property
    def network(self) -> Network:
        """Its network."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """Its virtual-time loop."""

    def record(self, kind: str, text: str, host: str = "", detail: Detail = None) -> None:
        """Put an event in the trace."""

    def crash_host(self, host: Host, cause: Fault | None = None) -> None:
        """Kill the host's processes."""

    def power_off_host(self, host: Host, cause: Fault | None = None) -> None:
        """Cut the host's power."""

    def freeze_host(self, host: Host, *, record: bool = True, cause: Fault | None = None) -> None:
        """Stop running the host's processes."""

    def thaw_host(
        self, host: Host, *, quietly: bool = False, read: bool = True, cause: Fault | None = None
    ) -> None:
        """Let a frozen host run again."""


class Fault(abc.ABC):
    """Something that goes wrong. Give it to :meth:`wssim.Simulation.inject`.

    Two faults are equal when they are of the same class with the same parameters: the
    same fault in two runs of a simulation gives equal traces.
    """

    name: ClassVar[str]
    """The fault's name in the trace (toxiproxy's, where it has one)."""
    label: ClassVar[str] = ""
    """How figures and diagnoses name it: a host fault after its host (``"crashed"``), a
    path fault before its path (default: its name)."""
    acted: ClassVar[str] = ""
    """How figures name the moment it acts on one connection (``"flow forgotten"``);
    default: its name."""
    kills: ClassVar[bool] = False
    """True if every process of its host dies when it starts: every connection endpoint
    there ends, and the fault lasts until the host restarts."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name is not None:
            if not cls.__dict__.get("label"):
                cls.label = name
            if not cls.__dict__.get("acted"):
                cls.acted = name

    def _parameters(self) -> tuple[tuple[str, object], ...]:
        return tuple(
            (k, v) for k, v in vars(self).items() if not k.startswith("_") and k != "world"
        )

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self._parameters())
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fault) and (
            type(other) is type(self) and self._parameters() == other._parameters()
        )

    def __hash__(self) -> int:
        return hash((type(self), self._parameters()))

    @property
    @abc.abstractmethod
    def hosts(self) -> tuple[str, ...]:
        """The hosts it involves (they must exist when it is injected)."""

    @property
    def path(self) -> Path | None:
        """The path it acts on, or None for a fault on one host."""
        return None

    @property
    def key(self) -> tuple[object, ...]:
        """Faults with the same key contradict each other: they must not overlap in time."""
        return (type(self).name, tuple(sorted(self.hosts)))

    def describe(self) -> str:
        """What the fault does, for the trace (after its name and path)."""
        return ""

    def start_text(self) -> str:
        """What the trace says when it starts: ``"name path: what it does"``."""
        where = "" if self.path is None else f" {self.path}"
        details = self.describe()
        return f"{self.name}{where}" + (f": {details}" if details else "")

    def end_text(self) -> str:
        """What the trace says when it ends: ``"end of name path"``."""
        where = "" if self.path is None else f" {self.path}"
        return f"end of {self.name}{where}"

    def record(self, world: World, phase: Phase) -> None:
        """Record its start or its end in the trace, as a ``fault`` event."""
        text = self.start_text() if phase is Phase.START else self.end_text()
        world.record("fault", text, self.hosts[0], FaultInfo(self, phase))

    @abc.abstractmethod
    def start(self, world: World) -> None:
        """Make it happen (at the injection time)."""

    @abc.abstractmethod
    def stop(self, world: World) -> None:
        """Undo it (at the end of its duration)."""


class PathFault(Fault):
    """A fault on the path between hosts ``a`` and ``b`` (both directions).

    Subclasses say what happens in :meth:`start` and :meth:`stop`, and call
    :meth:`record` there.
    """

    def __init__(self, a: str, b: str) -> None:
        self.a = _host_name(a, "a")
        self.b = _host_name(b, "b")
        if self.a == self.b:
            raise ValueError(f"a and b must be two different hosts, got {a!r} twice")

    @property
    def hosts(self) -> tuple[str, ...]:
        return (self.a, self.b)

    @property
    def path(self) -> Path:
        """The hosts at either end."""
        return Path(self.a, self.b)

    def acting(self) -> FaultInfo:
        """The detail of a ``tcp`` event that says what it did to one connection."""
        return FaultInfo(self, Phase.ACT)


class _EffectFault(PathFault, PathEffect):
    """A path fault that acts on each segment while it lasts."""

    def start(self, world: World) -> None:
        self.world = world
        world.network.add_effect(self.a, self.b, self)
        self.record(world, Phase.START)

    def stop(self, world: World) -> None:
        world.network.remove_effect(self.a, self.b, self)
        self.record(world, Phase.END)


# Path faults


class Partition(PathFault):
    """The network between ``a`` and ``b`` is cut, both ways.

    Nothing gets through while it lasts. TCP retransmits what it sent (a tail-loss probe,
    then retransmissions from the round trip + 200 ms, doubling up to 120 s) and delivers it
    once the partition heals, unless the sender gives up first: at the first timer 924.6 s
    after its first retransmission, as Linux does with ``tcp_retries2 = 15``.
    A connection that sends nothing notices nothing: it is half-open.
    """

    name = "partition"

    def end_text(self) -> str:
        return f"heal {self.path}"

    def start(self, world: World) -> None:
        world.network.partition(self.a, self.b)
        self.record(world, Phase.START)

    def stop(self, world: World) -> None:
        world.network.heal(self.a, self.b)
        self.record(world, Phase.END)


class Latency(PathFault):
    """The one-way latency between ``a`` and ``b`` becomes ``latency`` (plus ``jitter``).

    Args:
        latency: one-way delay in seconds.
        jitter: extra delay per segment, uniform in ``[0, jitter]`` seconds (it never
            reorders a connection).

    When it ends the link's earlier latency and jitter come back.
    """

    name = "latency"

    def __init__(self, a: str, b: str, latency: float, jitter: float = 0.0) -> None:
        super().__init__(a, b)
        self.latency = seconds(latency, "latency")
        self.jitter = seconds(jitter, "jitter")

    def describe(self) -> str:
        jitter = f" + up to {self.jitter * 1000:g} ms jitter" if self.jitter else ""
        return f"{self.latency * 1000:g} ms one way{jitter}"

    def start(self, world: World) -> None:
        network = world.network
        self._before = network.link(self.a, self.b)
        before = self._before
        network.set_link(self.a, self.b, Link(self.latency, self.jitter, before.bandwidth))
        self.record(world, Phase.START)

    def stop(self, world: World) -> None:
        network = world.network
        now = network.link(self.a, self.b)
        network.set_link(
            self.a, self.b, Link(self._before.latency, self._before.jitter, now.bandwidth)
        )
        self.record(world, Phase.END)


class Bandwidth(PathFault):
    """Each connection between ``a`` and ``b`` carries at most ``rate`` bytes per second
    each way.

    Bytes wait in the sender's buffer for their turn on the wire: a writer faster than the
    link fills its buffer, and websockets' flow control makes ``send()`` wait.
    """

    name = "bandwidth"

    def __init__(self, a: str, b: str, rate: float) -> None:
        super().__init__(a, b)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not (0 < rate < math.inf):
            raise ValueError(f"rate must be a finite number of bytes per second > 0, got {rate!r}")
        self.rate = float(rate)

    def describe(self) -> str:
        return f"{self.rate:g} bytes/s each way"

    def start(self, world: World) -> None:
        network = world.network
        link = network.link(self.a, self.b)
        self._before = link.bandwidth
        network.set_link(self.a, self.b, Link(link.latency, link.jitter, self.rate))
        self.record(world, Phase.START)

    def stop(self, world: World) -> None:
        network = world.network
        link = network.link(self.a, self.b)
        network.set_link(self.a, self.b, Link(link.latency, link.jitter, self._before))
        self.record(world, Phase.END)


class SlowClose(_EffectFault):
    """FINs between ``a`` and ``b`` arrive ``delay`` seconds late (toxiproxy's
    ``slow_close``): the closing handshake of TCP drags on."""

    name = "slow_close"

    def __init__(self, a: str, b: str, delay: float) -> None:
        super().__init__(a, b)
        self.delay = seconds(delay, "delay", positive=True)

    def describe(self) -> str:
        return f"FIN delayed by {self.delay:g} s"

    def passing(self, pipe: Pipe, segment: Segment, delay: float) -> list[tuple[Segment, float]]:
        if segment.kind == "FIN":
            return [(segment, delay + self.delay)]
        return [(segment, delay)]


class Slicer(_EffectFault):
    """Writes between ``a`` and ``b`` are cut into small segments (toxiproxy's ``slicer``).

    Args:
        average_size: the mean size of a piece, in bytes.
        size_variation: pieces vary in size by up to this many bytes either way.
        delay: seconds between two pieces of the same write.

    A WebSocket frame then arrives in several reads: the receiver must reassemble it, as
    websockets does.
    """

    name = "slicer"

    def __init__(
        self, a: str, b: str, average_size: int, size_variation: int = 0, delay: float = 0.0
    ) -> None:
        super().__init__(a, b)
        self.average_size = count(average_size, "average_size", minimum=1)
        self.size_variation = count(size_variation, "size_variation", minimum=0)
        if self.size_variation >= self.average_size:
            raise ValueError(
                f"size_variation must be below average_size ({self.average_size}), "
                f"got {size_variation!r}"
            )
        self.delay = seconds(delay, "delay")
        self._rngs: dict[tuple[str, int], random.Random] = {}

    def start(self, world: World) -> None:
        self._rngs = {}  # each injection draws afresh: same seed, same pieces
        super().start(world)

    def forget(self, conn: TcpConnection) -> None:
        for direction in (0, 1):
            self._rngs.pop((conn.id, direction), None)

    def describe(self) -> str:
        spread = f" ± {self.size_variation}" if self.size_variation else ""
        pause = f", {self.delay * 1000:g} ms apart" if self.delay else ""
        return f"writes cut into {self.average_size}{spread} byte pieces{pause}"

    def passing(self, pipe: Pipe, segment: Segment, delay: float) -> list[tuple[Segment, float]]:
        data = segment.data
        if segment.kind != "DATA" or len(data) <= self.average_size - self.size_variation:
            return [(segment, delay)]
        key = (pipe.conn.id, pipe.direction)
        rng = self._rngs.get(key)
        if rng is None:
            # Each direction draws from its own seeded stream: same seed, same pieces.
            rng = self._rngs[key] = random.Random(f"{self.world.seed}/slicer/{key}")
        pieces: list[tuple[Segment, float]] = []
        start = 0
        while start < len(data):
            variation = rng.randint(-self.size_variation, self.size_variation)
            size = self.average_size + variation
            pieces.append(
                (Segment("DATA", data[start : start + size]), delay + len(pieces) * self.delay)
            )
            start += size
        return pieces


class LimitData(_EffectFault):
    """A proxy between ``a`` and ``b`` closes each connection once ``limit`` bytes went one
    way (toxiproxy's ``limit_data``).

    Bytes up to the limit get through; then both ends receive a FIN, and anything either
    end sends afterwards is answered with an RST, as by a proxy whose sockets are closed.
    """

    name = "limit_data"
    acted = "limit reached"

    def __init__(self, a: str, b: str, limit: int) -> None:
        super().__init__(a, b)
        self.limit = count(limit, "limit", minimum=0)
        self._passed: dict[tuple[TcpConnection, int], int] = {}
        self._closed: dict[TcpConnection, None] = {}

    def start(self, world: World) -> None:
        self._passed, self._closed = {}, {}  # each injection counts afresh
        super().start(world)

    def forget(self, conn: TcpConnection) -> None:
        for direction in (0, 1):
            self._passed.pop((conn, direction), None)
        self._closed.pop(conn, None)

    def describe(self) -> str:
        return f"connections closed after {self.limit} bytes one way"

    def passing(self, pipe: Pipe, segment: Segment, delay: float) -> list[tuple[Segment, float]]:
        conn = pipe.conn
        network = self.world.network
        if conn in self._closed:
            if segment.kind == "DATA":
                # The proxy's socket is closed: the sender gets an RST.
                back = conn.to_client if pipe is conn.to_server else conn.to_server
                assert back is not None
                network.put_on_wire(back, Segment("RST"), delay)
            return []
        if segment.kind != "DATA":
            return [(segment, delay)]
        passed = self._passed.get((conn, pipe.direction), 0)
        room = self.limit - passed
        if len(segment.data) <= room:
            self._passed[conn, pipe.direction] = passed + len(segment.data)
            return [(segment, delay)]
        self._closed[conn] = None
        network.observer.tcp(
            conn,
            pipe.src.side,
            pipe.src.host.name,
            f"limit_data: {self.limit} bytes passed; the proxy closes both ends",
            self.acting(),
        )
        back = conn.to_client if pipe is conn.to_server else conn.to_server
        assert back is not None
        network.put_on_wire(back, Segment("FIN"), delay)
        out = [(Segment("DATA", segment.data[:room]), delay)] if room else []
        return [*out, (Segment("FIN"), delay)]


class ResetPeer(_EffectFault):
    """Connections between ``a`` and ``b`` are reset (toxiproxy's ``reset_peer``).

    Each connection open when the fault starts, or opened while it lasts, is reset
    ``timeout`` seconds later: both ends receive an RST, as from a middlebox that drops the
    flow. websockets reports it as close code 1006.
    """

    name = "reset_peer"
    acted = "reset"

    def __init__(self, a: str, b: str, timeout: float = 0.0) -> None:
        super().__init__(a, b)
        self.timeout = seconds(timeout, "timeout")
        self._timers: dict[asyncio.TimerHandle, None] = {}

    def describe(self) -> str:
        return (
            f"connections reset {self.timeout:g} s after they open"
            if self.timeout
            else "connections reset"
        )

    def start(self, world: World) -> None:
        self._timers = {}
        super().start(world)
        for conn in world.network.connections_between(self.a, self.b):
            if conn.server is not None and conn.server.transport is not None:
                self.established(conn)  # still in the handshake: established() comes later

    def stop(self, world: World) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        super().stop(world)

    def established(self, conn: TcpConnection) -> None:
        network = self.world.network
        timer = network.loop.call_at(
            network.loop.time() + self.timeout, self._reset, conn, context=network.quiet
        )
        self._timers[timer] = None

    def _reset(self, conn: TcpConnection) -> None:
        self._timers = {
            t: None for t in self._timers if not t.cancelled() and t.when() > self.world.loop.time()
        }
        network = self.world.network
        ends = [e for e in (conn.client, conn.server) if e is not None and not e.closed]
        if conn in network.connections and ends:
            network.reset_both_ends(
                conn, "reset_peer: the path resets the connection", self.acting()
            )


class IdleTimeout(_EffectFault):
    """A NAT or proxy between ``a`` and ``b`` forgets a flow idle for ``timeout`` seconds.

    Args:
        timeout: seconds without a segment either way before the flow is forgotten
            (nginx's ``proxy_read_timeout`` and AWS ALB: 60 s by default).
        action: ``"drop"``: later segments vanish, so the sender retransmits in vain and
            times out after about 15 minutes; ``"reset"``: both ends receive an RST when
            the flow is forgotten (as Azure Load Balancer's "TCP reset on idle");
            ``"reject"``: the next segment either end sends is answered with an RST, as a
            firewall rule ``reject with tcp reset`` or AWS's Network Load Balancer do; the
            other end learns only when it sends.

    Any traffic, data or WebSocket ping, counts as activity: heartbeats keep a flow alive.
    So do TCP keepalive probes (``SO_KEEPALIVE``): they are segments on the path.
    """

    name = "idle_timeout"
    acted = "flow forgotten"

    def __init__(
        self,
        a: str,
        b: str,
        timeout: float,
        action: Literal["drop", "reset", "reject"] = "drop",
    ) -> None:
        super().__init__(a, b)
        self.timeout = seconds(timeout, "timeout", positive=True)
        if action not in ("drop", "reset", "reject"):
            raise ValueError(f"action must be 'drop', 'reset' or 'reject', got {action!r}")
        self.action = action
        self._last: dict[TcpConnection, float] = {}
        self._timers: dict[TcpConnection, asyncio.TimerHandle] = {}
        self._rejected: dict[TcpConnection, None] = {}

    @property
    def key(self) -> tuple[object, ...]:
        return ("idle_timeout", tuple(sorted(self.hosts)))

    def describe(self) -> str:
        what = {
            "drop": "later segments vanish",
            "reset": "RST to both ends",
            "reject": "the next segment is answered with an RST",
        }[self.action]
        return f"flows idle for {self.timeout:g} s are forgotten ({what})"

    def start(self, world: World) -> None:
        self._last, self._timers, self._rejected = {}, {}, {}
        super().start(world)
        for conn in world.network.connections_between(self.a, self.b):
            self._touch(conn)

    def forget(self, conn: TcpConnection) -> None:
        timer = self._timers.pop(conn, None)
        if timer is not None:
            timer.cancel()
        self._last.pop(conn, None)
        self._rejected.pop(conn, None)

    def stop(self, world: World) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._last.clear()
        self._rejected.clear()
        super().stop(world)

    def passing(self, pipe: Pipe, segment: Segment, delay: float) -> list[tuple[Segment, float]]:
        if pipe.conn in self._rejected:
            if segment.kind != "RST":
                self._reject(pipe)
            return []
        self._touch(pipe.conn)
        return [(segment, delay)]

    def _reject(self, pipe: Pipe) -> None:
        """The middlebox answers a segment of a forgotten flow with an RST to its sender.

        It sits in the middle of the path: the RST is back one one-way latency after the
        segment left.
        """
        network = self.world.network
        sender = pipe.src
        back = network.link(pipe.src.host.name, pipe.dst.host.name).latency
        why = "idle_timeout: the middlebox does not know this flow; RST to the sender"
        network.loop.call_at(
            network.loop.time() + back,
            network.reset_from_path,
            sender,
            why,
            self.acting(),
            context=network.quiet,
        )

    def _touch(self, conn: TcpConnection) -> None:
        loop = self.world.loop
        self._last[conn] = loop.time()
        if conn not in self._timers:
            self._arm(conn, loop.time() + self.timeout)

    def _arm(self, conn: TcpConnection, when: float) -> None:
        network = self.world.network
        self._timers[conn] = network.loop.call_at(when, self._check, conn, context=network.quiet)

    def _check(self, conn: TcpConnection) -> None:
        del self._timers[conn]
        last = self._last.get(conn)
        if last is None or conn not in self.world.network.connections:
            self._last.pop(conn, None)
            return
        expires = last + self.timeout
        if expires > self.world.loop.time() + 1e-9:
            self._arm(conn, expires)  # there was traffic since: look again later
            return
        del self._last[conn]
        network = self.world.network
        why = f"idle_timeout: the middlebox forgot this flow after {self.timeout:g} s idle"
        if self.action == "reset":
            network.reset_both_ends(conn, why + "; RST to both ends", self.acting())
        elif self.action == "reject":
            self._rejected[conn] = None
            network.observer.tcp(
                conn,
                "client",
                conn.client.host.name,
                why + "; it will answer the next segment with an RST",
                self.acting(),
            )
        else:
            conn.blackholed = True
            network.observer.tcp(
                conn,
                "client",
                conn.client.host.name,
                why + "; what either end sends vanishes",
                self.acting(),
            )


# Host faults


class HostFault(Fault):
    """A fault on one host: its processes, or the whole machine."""

    def __init__(self, host: str) -> None:
        self.host = _host_name(host, "host")

    @property
    def hosts(self) -> tuple[str, ...]:
        return (self.host,)

    @property
    def key(self) -> tuple[object, ...]:
        # A host can be crashed, powered off, frozen or suspended, one at a time.
        return ("host", self.host)


class Crash(HostFault):
    """The host's processes crash; with a duration, it restarts when the duration ends.

    The operating system closes their sockets: peers receive a FIN, or an RST where data
    was waiting unread, and new connections are refused. After the restart the host starts
    its services again (:meth:`wssim.Host.service`).
    """

    name = "crash"
    label = "crashed"
    kills = True

    def describe(self) -> str:
        return "every process dies; the OS closes their sockets"

    def start(self, world: World) -> None:
        world.crash_host(world.hosts[self.host], cause=self)

    def stop(self, world: World) -> None:
        world.hosts[self.host].restart()


class PowerLoss(HostFault):
    """The host loses power (or its cable is cut for good): silence.

    Nothing is sent, not even a FIN: peers learn nothing until they send and their TCP
    gives up, or until a heartbeat goes unanswered. New connections to it time out. With a
    duration, the power comes back when it ends and the host boots empty; segments for its
    old connections are then answered with RST.
    """

    name = "power loss"
    label = "lost power"
    kills = True

    def describe(self) -> str:
        return "everything stops; nothing is sent, not even a FIN"

    def start(self, world: World) -> None:
        world.power_off_host(world.hosts[self.host], cause=self)

    def stop(self, world: World) -> None:
        world.hosts[self.host].restart()


class Freeze(HostFault):
    """The host's processes stop running (a blocked event loop, a long GC pause, SIGSTOP).

    Its kernel still receives: data queues for the process, which sees it all when the
    freeze ends, and its timers fire late. Peers see a connection that answers nothing,
    pings included.
    """

    name = "freeze"
    label = "frozen"

    def describe(self) -> str:
        return "the processes stop running; data waits"

    def end_text(self) -> str:
        return "thaw: the processes run again"

    def start(self, world: World) -> None:
        world.freeze_host(world.hosts[self.host], cause=self)

    def stop(self, world: World) -> None:
        world.thaw_host(world.hosts[self.host], cause=self)


class Suspend(HostFault):
    """The whole machine sleeps (a laptop lid closed): processes and kernel stop.

    Nothing it is sent gets through (peers retransmit), nothing runs; when it wakes up,
    retransmissions arrive and its processes' overdue timers fire at once. A model, not a
    kernel: the sleeping host's own TCP timers keep counting in virtual time, so its
    retransmissions may give up while it sleeps, where a real kernel's clock stops.
    """

    name = "suspend"
    label = "asleep"

    def describe(self) -> str:
        return "the machine sleeps; nothing runs or answers"

    def end_text(self) -> str:
        return "resume: the machine wakes up"

    def start(self, world: World) -> None:
        host = world.hosts[self.host]
        self.record(world, Phase.START)
        world.network.isolate(host)
        world.freeze_host(host, record=False)

    def stop(self, world: World) -> None:
        host = world.hosts[self.host]
        self.record(world, Phase.END)
        world.network.unisolate(host)
        world.thaw_host(host, quietly=True)
