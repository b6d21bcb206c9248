"""The bottom layer: what every other layer stands on.

- :mod:`~wssim.core.params`: checking parameters, with one wording for every error.
- :mod:`~wssim.core.clock`: virtual time for asyncio.
- :mod:`~wssim.core.hosts`: hosts, where code runs.

Nothing here imports from another wssim layer.
"""
