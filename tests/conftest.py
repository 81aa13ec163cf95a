"""Fixtures shared by every test tier.

Tests that need a real Docker Engine or PostgreSQL are skipped with a visible reason when
none answers on a developer's machine, and fail in CI (CI=true), where `scripts/test` starts
them: a missing service must never turn into a silently green run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oscarpy.db import Database
from tests.support.server import RunningServer, start_server

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_service(available: bool, reason: str) -> None:
    if available:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI must provide it: scripts/test starts it)")
    pytest.skip(reason)


#: Modules whose cases each run for minutes and share nothing: the parallel pass spreads their
#: cases over the workers instead of running a module on one worker.
SPREAD_MODULES = {"tests/reliability/test_multi_process.py"}
#: Modules that use the same host-wide resources (the Swarm test nodes' network namespaces,
#: bridges and node sockets): the parallel pass runs them on one worker, one after the other.
SAME_WORKER = {
    "tests/reliability/test_swarm_cluster.py": "swarm",
    "tests/reliability/test_swarm_scaling.py": "swarm",
}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile` (scripts/test's parallel pass): a module runs on one worker, so that
    its module-scoped servers start once, except for the cases of `SPREAD_MODULES`; the modules
    of one `SAME_WORKER` group share a worker."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ModuleScheduling(LoadFileScheduling):  # type: ignore[misc]  # xdist has no types
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::")[0]
            if module in SAME_WORKER:
                return SAME_WORKER[module]
            return nodeid if module in SPREAD_MODULES else module

    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a pytest-xdist worker, `slow` tests come first: with `--no-loadscope-reorder` the
    parallel pass hands out modules in this order, so it starts its longest work at once
    instead of ending on it."""
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read OSCAR_* variables: a developer's own must not leak into tests."""
    for name in list(os.environ):
        if name.startswith("OSCAR_") and not name.startswith("OSCAR_TEST_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[object]:
    import docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as error:  # any failure to reach the daemon means "not available"
        require_service(False, f"no Docker Engine answers ({error.__class__.__name__})")
        raise
    yield client
    client.close()


@pytest.fixture(scope="session")
def wire_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One `oscar serve` (generated password) for the wire tests of several modules (S3 and
    `oscar` CLI clients, `oscar serve` itself): a start costs seconds. Each test uses service
    and bucket names of its own and checks what it made, not the whole server's state."""
    running = start_server(tmp_path_factory.mktemp("wire") / "data")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def server(wire_server: RunningServer) -> RunningServer:
    """A running `oscar serve`; a module that needs one of its own overrides this fixture."""
    return wire_server


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty state DB, once for SQLite and once for PostgreSQL."""
    from tests.support.databases import fresh_postgres_database, postgres_reachable, sqlite_url

    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    reachable, reason = postgres_reachable()
    require_service(reachable, reason)
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A migrated state DB at `database_url` (SQLite, then PostgreSQL)."""
    opened = Database(database_url)
    opened.migrate()
    yield opened
    opened.close()
