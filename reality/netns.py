"""Three network namespaces, client ↔ router ↔ server, and the faults a router can make.

::

    client (10.200.1.2) ── veth ── router (10.200.1.1 | 10.200.2.1) ── veth ── server (10.200.2.2)

The router forwards; faults on the path are nftables rules in its ``forward`` hook, one
table per fault, so that healing is deleting that table (:class:`reality.realside.Nft`).
Every name starts with :data:`PREFIX` and carries the driver's process id, so leftovers
of a driver that died are found and removed (:func:`remove_leftovers`) without touching
anyone else's.

The end hosts' TCP runs at ``scale`` (see :func:`kernel_settings`): what Linux lets a
network namespace scale is scaled; the rest is listed in reality/README.md.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "wsr"
"""Every namespace this suite makes is named ``wsr<pid>-<n>-<role>``."""

CLIENT_ADDR = "10.200.1.2"
ROUTER_CLIENT_ADDR = "10.200.1.1"
ROUTER_SERVER_ADDR = "10.200.2.1"
SERVER_ADDR = "10.200.2.2"

RTO_MIN = 0.200
"""Linux's minimum retransmission timeout (TCP_RTO_MIN), seconds."""
RTO_MAX = 120.0
"""Linux's maximum retransmission timeout (TCP_RTO_MAX), seconds."""
FIN_TIMEOUT = 60
"""Linux's ``tcp_fin_timeout`` (an orphaned FIN_WAIT2 socket's lifetime), seconds."""

_NAME = re.compile(rf"^{PREFIX}(\d+)-\d+-(client|router|server)$")
_counter = itertools.count(1)


class Missing(Exception):
    """Something this suite needs is not there (root, ``ip netns``, ``nft``)."""


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output; raise with its stderr if it fails."""
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr.strip()}")
    return result


def namespaces() -> list[str]:
    """The names of every network namespace."""
    out = sh("ip", "netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers() -> list[str]:
    """Delete the namespaces of drivers that are no longer running; return their names."""
    removed = []
    for name in namespaces():
        match = _NAME.match(name)
        if match and not _alive(int(match.group(1))):
            _kill_inside(name)
            sh("ip", "netns", "delete", name, check=False)
            removed.append(name)
    return removed


def _kill_inside(name: str) -> None:
    """SIGKILL the processes left in one of this suite's namespaces (its agents)."""
    pids = sh("ip", "netns", "pids", name, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), 9)


RETRIES2 = 15
"""Linux's default ``tcp_retries2``."""


def give_up_threshold(boundary: int, rto_max: float, rto_base: float = RTO_MIN) -> float:
    """Seconds of retransmissions after which Linux gives up: ``tcp_model_timeout()`` of
    net/ipv4/tcp_timer.c. Its ``rto_base`` is the constant TCP_RTO_MIN (200 ms), not the
    route's or the namespace's minimum RTO: this is what does not scale by itself."""
    thresh = int(math.log2(rto_max / rto_base))
    if boundary <= thresh:
        return ((2 << boundary) - 1) * rto_base
    return ((2 << thresh) - 1) * rto_base + (boundary - thresh) * rto_max


def give_up_expiry(boundary: int, rto_min: float, rto_max: float) -> int:
    """The number of the retransmission timer's expiry at which Linux gives up, for an
    RTO from ``rto_min`` doubling up to ``rto_max`` (a tiny round trip)."""
    threshold = give_up_threshold(boundary, rto_max) - 1e-9
    elapsed, rto, n = 0.0, rto_min, 0
    while elapsed < threshold:
        elapsed += rto
        rto = min(2 * rto, rto_max)
        n += 1
    return n


def scaled_retries2(scale: float) -> int:
    """The ``tcp_retries2`` that gives up, at ``scale``, at the same expiry of the
    retransmission timer as 15 does unscaled (the 16th: 924.6 s unscaled), so at
    ``scale`` × 924.6 s. 10 at scale 1/20; 15 at scale 1."""
    target = give_up_expiry(RETRIES2, RTO_MIN, RTO_MAX)
    rto_min, rto_max = RTO_MIN * scale, RTO_MAX * scale
    for boundary in range(1, 64):
        if give_up_expiry(boundary, rto_min, rto_max) >= target:
            return boundary
    return RETRIES2


def kernel_settings(scale: float) -> dict[str, str]:
    """The sysctls of an end host's namespace at time scale ``scale``.

    The RTO bounds are scaled (``tcp_rto_min_us`` here and ``rto_min`` on the routes,
    ``tcp_rto_max_ms``), so every retransmission waits ``scale`` times as long.
    ``tcp_retries2`` is not a time but Linux turns it into one with the constant 200 ms
    (:func:`give_up_threshold`): 15 would give up after 76.2 s at scale 1/20, 1524.6 s
    unscaled, not 924.6 s. :func:`scaled_retries2` is the count that gives up at the same
    retransmission as 15 unscaled. ``tcp_fin_timeout`` is scaled (whole seconds, at least
    1). Keys missing from this kernel are skipped (:meth:`Lab.planned`).
    """
    return {
        "net.ipv4.tcp_retries2": str(scaled_retries2(scale)),
        "net.ipv4.tcp_rto_min_us": str(round(RTO_MIN * scale * 1e6)),
        "net.ipv4.tcp_rto_max_ms": str(round(RTO_MAX * scale * 1e3)),
        "net.ipv4.tcp_fin_timeout": str(max(1, round(FIN_TIMEOUT * scale))),
    }


def _sysctl_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


@dataclass
class Lab:
    """One client ↔ router ↔ server set of namespaces, made by :meth:`setup`."""

    scale: float
    tag: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}-{next(_counter)}")
    _faults: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def client(self) -> str:
        return f"{self.tag}-client"

    @property
    def router(self) -> str:
        return f"{self.tag}-router"

    @property
    def server(self) -> str:
        return f"{self.tag}-server"

    def setup(self) -> None:
        c, r, s = self.client, self.router, self.server
        for ns in (c, r, s):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        # Interface names live inside each namespace: no clash between labs.
        sh(
            "ip",
            "link",
            "add",
            "eth0",
            "netns",
            c,
            "type",
            "veth",
            "peer",
            "name",
            "toc",
            "netns",
            r,
        )
        sh(
            "ip",
            "link",
            "add",
            "eth0",
            "netns",
            s,
            "type",
            "veth",
            "peer",
            "name",
            "tos",
            "netns",
            r,
        )
        sh("ip", "-n", c, "addr", "add", f"{CLIENT_ADDR}/24", "dev", "eth0")
        sh("ip", "-n", r, "addr", "add", f"{ROUTER_CLIENT_ADDR}/24", "dev", "toc")
        sh("ip", "-n", r, "addr", "add", f"{ROUTER_SERVER_ADDR}/24", "dev", "tos")
        sh("ip", "-n", s, "addr", "add", f"{SERVER_ADDR}/24", "dev", "eth0")
        for ns, dev in ((c, "eth0"), (r, "toc"), (r, "tos"), (s, "eth0")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        settings = self.planned()
        rto_min = settings.pop("route rto_min")
        sh("ip", "-n", c, "route", "add", "default", "via", ROUTER_CLIENT_ADDR, "rto_min", rto_min)
        sh("ip", "-n", s, "route", "add", "default", "via", ROUTER_SERVER_ADDR, "rto_min", rto_min)
        for ns in (c, s):
            for key, value in settings.items():
                sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"{key}={value}")

    def planned(self) -> dict[str, str]:
        """The end hosts' settings at this scale: the sysctls this kernel has, and the
        ``rto_min`` of their routes."""
        settings = {
            k: v for k, v in kernel_settings(self.scale).items() if Path(_sysctl_path(k)).exists()
        }
        settings["route rto_min"] = f"{max(1, round(RTO_MIN * self.scale * 1000))}ms"
        return settings

    def teardown(self) -> None:
        for ns in (self.client, self.router, self.server):
            _kill_inside(ns)
            sh("ip", "netns", "delete", ns, check=False)

    def exec_argv(self, ns: str, *argv: str) -> list[str]:
        """The command line that runs ``argv`` inside namespace ``ns``."""
        return ["ip", "netns", "exec", ns, *argv]


@contextlib.contextmanager
def lab(scale: float) -> Iterator[Lab]:
    """A fresh :class:`Lab`, torn down whatever happens."""
    made = Lab(scale)
    try:
        made.setup()
        yield made
    finally:
        made.teardown()


def missing() -> str | None:
    """What is missing to run the real side, as one sentence, or None."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return (
            "the real side of the reality suite needs root (network namespaces and nftables): "
            "run it as root, for example `sudo python3 dev.py reality`"
        )
    try:
        has_ip = sh("ip", "netns", "list", check=False).returncode == 0
    except FileNotFoundError:
        has_ip = False
    if not has_ip:
        return (
            "`ip netns` is missing: install iproute2 (`apt-get install -y iproute2`) and run again"
        )
    try:
        found = sh("nft", "--version", check=False).returncode == 0
    except FileNotFoundError:
        found = False
    if not found:
        return "`nft` is missing: install nftables (`apt-get install -y nftables`) and run again"
    return None
