"""Testing your own WebSocket application under faults, deterministically.

The pytest plugin (:mod:`wssim.testing.plugin`, loaded by pytest when wssim is installed)
gives tests a ``sim`` fixture, seeds, failure reports with the trace, and a determinism
check; docs/TESTING.md walks through it. What it builds on needs no pytest:

    ``assertions``   assertions that read a trace, a message log or a ledger
    ``chaos``        a seeded chaos schedule, a quiet phase, liveness, and shrinking
    ``shrink``       shrinking a failing schedule
    ``determinism``  the first event at which two traces of one seed differ
    ``report``       what a failing test leaves behind: replay command, trace files

Importing this package does not import pytest.
"""

from __future__ import annotations

from wssim.testing.assertions import (
    assert_in_order,
    assert_messages_intact,
    assert_no_handler_failed,
    assert_none_duplicated,
    assert_none_lost,
    assert_nothing_held,
    assert_reconnected,
    last_fault_end,
)
from wssim.testing.chaos import Chaos, ChaosFailure, as_code
from wssim.testing.determinism import first_divergence
from wssim.testing.shrink import shrink

__all__ = [
    "Chaos",
    "ChaosFailure",
    "as_code",
    "assert_in_order",
    "assert_messages_intact",
    "assert_no_handler_failed",
    "assert_none_duplicated",
    "assert_none_lost",
    "assert_nothing_held",
    "assert_reconnected",
    "first_divergence",
    "last_fault_end",
    "shrink",
]
