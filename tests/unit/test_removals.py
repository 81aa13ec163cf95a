"""A stopping server removes its containers several at once, within a service manager's grace.

Each removal waits on the container engine (hundreds of milliseconds under load); removed one
after the other, a server with twenty network holders outlived `docker stop`'s ten seconds on
a loaded machine and was killed with its holders still there.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from oscarpy.engine.errors import InfrastructureError
from oscarpy.engine.runtimes import docker as docker_runtime
from oscarpy.engine.runtimes.base import PARALLEL_REMOVALS, remove_all


def test_removals_run_at_once() -> None:
    # Every call waits until PARALLEL_REMOVALS calls wait together: one at a time, the first
    # would time out.
    barrier = threading.Barrier(PARALLEL_REMOVALS, timeout=10)
    removed: list[int] = []

    def remove(item: int) -> None:
        barrier.wait()
        removed.append(item)

    remove_all(remove, range(3 * PARALLEL_REMOVALS))
    assert sorted(removed) == list(range(3 * PARALLEL_REMOVALS))


def test_a_single_removal_needs_no_thread() -> None:
    callers: list[str] = []
    remove_all(lambda _: callers.append(threading.current_thread().name), ["only"])
    assert callers == [threading.current_thread().name]


class _Container:
    def __init__(self, name: str) -> None:
        self.id = name


def test_the_remover_removes_a_burst_at_once_and_keeps_failures_for_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    barrier = threading.Barrier(4, timeout=10)
    removed: list[str] = []

    def remove_container(container: Any) -> None:
        if container.id == "broken":
            raise InfrastructureError("the daemon is busy")
        barrier.wait()
        removed.append(container.id)

    monkeypatch.setattr(docker_runtime, "remove_container", remove_container)
    containers = [_Container(f"c{index}") for index in range(4)] + [_Container("broken")]
    failed = docker_runtime.Remover._remove(containers)
    assert sorted(removed) == ["c0", "c1", "c2", "c3"]
    assert [container.id for container in failed] == ["broken"]
