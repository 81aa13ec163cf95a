"""How a server removes its containers: ended jobs' several at once, running ones that own a
network namespace one at a time.

Removed one after the other, a stopping server's ended job containers and twenty network
holders outlived the test harness's grace on a loaded machine. But removing running holders
eight at a time overlapped their network teardowns, and Docker 20.10 (Debian's `docker.io`)
deadlocks its whole daemon on such an overlap (moby/moby#42545): a full test run hung on it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from oscarpy.engine.errors import InfrastructureError
from oscarpy.engine.runtimes import docker as docker_runtime
from oscarpy.engine.runtimes import docker_api, network_holders
from oscarpy.engine.runtimes.network_holders import NetworkHolder, NetworkHolders


class _Container:
    def __init__(self, name: str) -> None:
        self.id = name


def test_the_remover_removes_a_burst_at_once_and_keeps_failures_for_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every removal waits until four wait together: one at a time, the first would time out.
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


class _OverlapMeter:
    """Counts how many removals run at the same moment."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.removed: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, api: Any, container_id: str, what: str) -> None:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.02)  # long enough for another thread to start one
        with self._lock:
            self.running -= 1
            self.removed.append(container_id)


@pytest.mark.parametrize("how", ["close", "forget", "dead owner"])
def test_holders_are_removed_one_at_a_time(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    meter = _OverlapMeter()
    monkeypatch.setattr(network_holders, "remove_by_id", meter)
    connection: Any = type("Connection", (), {"api": None})()
    holders = NetworkHolders(connection, "installation")
    ids = [f"holder-{index}" for index in range(6)]
    holders._idle[("svc", "default")] = [NetworkHolder(id, ("svc", "default")) for id in ids]
    if how == "close":
        holders.close()
    elif how == "forget":
        holders.forget("svc")
    else:
        connection.api = type(
            "Api", (), {"containers": lambda self, **_: [{"Id": i} for i in ids]}
        )()
        holders.remove_owned_by("dead-process")
    assert sorted(meter.removed) == ids
    assert meter.most == 1


def test_removals_of_running_containers_never_overlap_across_threads() -> None:
    """The reaper, a service's change, a job's discard and the warm pools remove on threads of
    their own: all of them go through `remove_by_id`, which lets one through at a time."""
    meter = _OverlapMeter()
    api = type("Api", (), {"remove_container": lambda self, cid, force: meter(None, cid, "")})()
    threads = [
        threading.Thread(target=docker_api.remove_by_id, args=(api, f"c{index}", "container"))
        for index in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(meter.removed) == 6
    assert meter.most == 1
