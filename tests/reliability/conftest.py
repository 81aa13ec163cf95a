"""Fixtures of the reliability tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.server import RunningServer, start_server


@pytest.fixture(scope="module")
def process_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One `oscar serve` (process runtime: no container needed) shared by a module's attacks."""
    running = start_server(
        tmp_path_factory.mktemp("attacked") / "data", env={"OSCAR_RUNTIME": "process"}
    )
    yield running
    running.stop()
