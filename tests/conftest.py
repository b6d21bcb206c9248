"""Shared test set-up: headless plots, and no simulation may leave asyncio complaining."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from pathlib import Path

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


# The learner copies' variants (tests/test_learner_copies.py) take minutes of kernels: start
# them in a process of their own once the tests are collected, and read their verdicts at the
# end of the session, so that they run on the second core meanwhile.

_LEARNER_TESTS = "test_learner_copies.py"


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected what they deselect
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mine = [item for item in items if item.path.name == _LEARNER_TESTS]
    items[:] = [item for item in items if item.path.name != _LEARNER_TESTS] + mine


def pytest_collection_finish(session: pytest.Session) -> None:
    mine = [item for item in session.items if item.path.name == _LEARNER_TESTS]
    if not mine or len(mine) == len(session.items):
        return  # nothing to overlap with: the tests run the lessons themselves
    from tests import test_learner_copies

    lessons = [Path(item.callspec.params["lesson"]) for item in mine]  # type: ignore[attr-defined]
    test_learner_copies.BACKGROUND.append(test_learner_copies.Background(lessons))


def pytest_sessionfinish() -> None:
    import sys

    module = sys.modules.get("tests.test_learner_copies")
    for background in getattr(module, "BACKGROUND", []):
        background.stop()
