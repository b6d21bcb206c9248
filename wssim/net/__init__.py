"""The simulated network: TCP-like connections between named hosts.

- :mod:`~wssim.net.network`: links, segments, the TCP state of each connection, the
  transports asyncio's protocols see, and the network that routes between hosts.

It builds on :mod:`wssim.core` only, and reports what happens through a small observer
interface, so it knows nothing of traces.
"""
