"""What you take into your own application, tested in the simulation.

- :mod:`~wssim.toolkit.backoff`: reconnect strategies for ``connect(reconnect_delays=...)``.
- :mod:`~wssim.toolkit.admission`: admission control for ``serve(process_request=...)``.
- :mod:`~wssim.toolkit.heartbeat`: an application-level heartbeat, and other stacks'
  keepalive defaults.
- :mod:`~wssim.toolkit.resources`: a ledger of per-connection resources, and leak checks.
"""
