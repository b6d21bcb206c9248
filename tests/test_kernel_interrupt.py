"""Interrupting a cell stops its simulation, in a real Jupyter kernel.

The kernel's stop button sends SIGINT to the kernel process; the simulation runs in the
kernel's main thread, so the KeyboardInterrupt lands in it wherever it is, even in a task
that never awaits. These tests drive a real ipykernel through jupyter_client. They wait
for the kernel's own messages (never a fixed sleep); the only real-time bound is the one
the promise makes: the run stops within a second of the interrupt.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

jupyter_client = pytest.importorskip("jupyter_client")

SETUP = """
import asyncio, gc, random, threading, time
import wssim
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async def server():
    async with serve(echo, "server", 8765) as s:
        await s.serve_forever()

def small_trace():
    sim = wssim.Simulation(seed=3)
    sim.host("server").spawn(server())
    async def client():
        async with connect("ws://server:8765") as ws:
            await ws.send("hi")
            await ws.recv()
    sim.host("client").spawn(client())
    text = str(sim.run(until=5).table())
    sim.close()
    return text

threads_before = sorted(t.name for t in threading.enumerate())
gc_before = gc.get_threshold()
"""

PING_PONG = """
async def client():
    async with connect("ws://server:8765") as ws:
        print("running", flush=True)
        while True:
            await ws.send("x")
            await ws.recv()
"""

BUSY_LOOP = """
async def client():
    await asyncio.sleep(1)
    print("running", flush=True)
    while True:
        pass
"""

START = """
sim = wssim.Simulation(seed=1)
sim.host("server").spawn(server())
sim.host("client").spawn(client())
random.seed(7)
try:
    sim.run(until=1e9)
finally:
    # The moment run() gave control back (both processes read the same monotonic clock).
    print("stopped at", time.monotonic())
"""

CHECK = """
print(sorted(t.name for t in threading.enumerate()) == threads_before)
print(gc.get_threshold() == gc_before)
print(random.random() == random.Random(7).random())
try:
    sim.run()
except RuntimeError as exc:
    print(exc)
print(sim)
"""


class Kernel:
    """A real kernel, and a way to run a cell in it and read what it printed."""

    def __init__(self) -> None:
        self.manager, self.client = jupyter_client.manager.start_new_kernel(
            kernel_name="python3", startup_timeout=60
        )

    def start(self, code: str) -> str:
        return str(self.client.execute(textwrap.dedent(code)))

    def collect(self, msg_id: str, *, until_text: str | None = None) -> tuple[str, str | None]:
        """Read the cell's output until it is idle (or prints ``until_text``)."""
        out: list[str] = []
        error = None
        while True:
            message: dict[str, Any] = self.client.get_iopub_msg(timeout=60)
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                out.append(content["text"])
                if until_text is not None and until_text in "".join(out):
                    return "".join(out), None
            elif kind == "error":
                error = content["ename"]
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(out), error

    def run(self, code: str) -> str:
        text, error = self.collect(self.start(code))
        assert error is None, (error, text)
        return text

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    k = Kernel()
    try:
        k.run(SETUP)
        yield k
    finally:
        k.close()


@pytest.mark.parametrize("client", [PING_PONG, BUSY_LOOP], ids=["ping-pong", "busy-loop"])
def test_an_interrupt_stops_the_simulation_and_leaves_the_kernel_clean(
    kernel: Kernel, client: str
) -> None:
    expected = kernel.run("print(small_trace())")  # as in a kernel that never interrupted
    kernel.run(client)
    msg_id = kernel.start(START)
    kernel.collect(msg_id, until_text="running")
    interrupted = time.monotonic()
    kernel.manager.interrupt_kernel()
    text, error = kernel.collect(msg_id)
    assert error == "KeyboardInterrupt"
    stopped = float(text.split("stopped at ")[1])
    # The simulation ended (tasks unwound, loop closed) within a second; IPython then takes
    # its own time to format the traceback.
    assert stopped - interrupted < 1.0
    lines = kernel.run(CHECK).splitlines()
    assert lines[:3] == ["True", "True", "True"]  # threads, GC threshold, random restored
    assert lines[3].startswith("this simulation was interrupted at t=")
    assert lines[3].endswith(" s and has ended: create a new Simulation")
    assert lines[4].startswith("<Simulation seed=1 interrupted at t=")
    assert kernel.run("print(small_trace())") == expected
