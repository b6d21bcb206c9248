"""Which version of the ticker the tests run: ``--ticker=v1`` (the first version, with
its bugs) or ``--ticker=v2`` (the fixed one, the default)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

HERE = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--ticker", choices=("v1", "v2"), default="v2", help="the version of the app to test"
    )


def _load(version: str, name: str) -> ModuleType:
    # A distinct module name per version: both can be loaded in one process.
    spec = importlib.util.spec_from_file_location(
        f"{name}_{version}", HERE / version / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def app(request: pytest.FixtureRequest) -> SimpleNamespace:
    """The server and client modules of the version under test."""
    version = request.config.getoption("ticker")
    return SimpleNamespace(
        server=_load(version, "ticker_server"), client=_load(version, "ticker_client")
    )
