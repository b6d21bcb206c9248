"""Shared test set-up: headless plots, and no simulation may leave asyncio complaining."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator

import matplotlib
import pytest

matplotlib.use("Agg")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(autouse=True)
def asyncio_stays_quiet() -> Iterator[None]:
    """Fail a test after which asyncio logs anything (pending tasks destroyed, unretrieved
    exceptions, unclosed transports): every simulation must end cleanly."""
    handler = _Collect()
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    try:
        yield
        gc.collect()
    finally:
        logger.removeHandler(handler)
    assert handler.messages == []
