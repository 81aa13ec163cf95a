"""Warm pool bookkeeping: growth, waiting, shrinking, replacement, service updates.

The containers here are a fake (`FakeWarmContainer`): these tests are about the pool's decisions
and timing, which the real-Docker tests in tests/integration/test_run_answers.py cannot pin down
without waiting minutes; those tests cover the same behaviour with real containers.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from oscarpy.engine.dispatcher import Capacity
from oscarpy.engine.run.errors import PoolExhausted
from oscarpy.engine.run.pool import ServicePool, size_limit
from oscarpy.engine.runtimes.base import OutputSink, RunResult, result_from_exit
from oscarpy.engine.runtimes.warm import WarmContainer, WarmSpec
from oscarpy.services.model import Service, parse_service

CAPACITY = Capacity(cpu=2.0, memory=8 * 2**30)
_ids = itertools.count()


class FakeWarmContainer:
    def __init__(self, spec: WarmSpec) -> None:
        self.spec = spec
        self._id = f"fake-{next(_ids)}"

    @property
    def id(self) -> str:
        return self._id

    @property
    def host_dir(self) -> Path:
        return Path("/nonexistent") / self._id

    def path_of(self, host_path: Path) -> PurePosixPath:
        return PurePosixPath(host_path)

    def run(
        self,
        work_dir: Path,
        script: str,
        environment: dict[str, str],
        timeout: float | None,
        on_output: OutputSink,
    ) -> RunResult:
        return result_from_exit(0)

    def stop(self) -> None:
        pass

    def settle(self) -> bool:
        return True

    def remove(self) -> None:
        pass


class Harness:
    def __init__(self, **synchronous: Any) -> None:
        self.created: list[FakeWarmContainer] = []
        self.discarded: list[WarmContainer] = []
        self.pool = ServicePool(
            service(**synchronous), CAPACITY, self.create, self.discarded.append
        )

    def create(self, spec: WarmSpec) -> WarmContainer:
        container = FakeWarmContainer(spec)
        self.created.append(container)
        return container

    def alive(self) -> set[str]:
        gone = {c.id for c in self.discarded}
        return {c.id for c in self.created} - gone


def service(script: str = "echo", cpu: str = "0.5", **synchronous: Any) -> Service:
    return parse_service(
        {
            "name": "svc",
            "image": "img",
            "script": script,
            "cpu": cpu,
            "synchronous": synchronous,
        }
    )


def test_the_pool_grows_to_max_scale_then_requests_wait() -> None:
    harness = Harness(min_scale=0, max_scale=2)
    first, second = harness.pool.acquire(None), harness.pool.acquire(None)

    with pytest.raises(PoolExhausted, match="all 2 warm container"):
        harness.pool.acquire(0.05)

    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(harness.pool.acquire(5)))
    waiter.start()
    time.sleep(0.05)
    harness.pool.release(first, healthy=True)
    waiter.join(5)
    assert got == [first]  # the released container, not a third one
    assert len(harness.created) == 2
    harness.pool.release(second, healthy=True)


def test_an_unhealthy_container_is_discarded_and_frees_its_slot() -> None:
    harness = Harness(max_scale=1)
    member = harness.pool.acquire(None)

    harness.pool.release(member, healthy=False)

    assert harness.discarded == [member.container]
    assert harness.pool.acquire(0.1).container is not member.container


def test_upkeep_keeps_min_scale_and_replaces_dead_containers() -> None:
    harness = Harness(min_scale=2)
    harness.pool.maintain(harness.alive(), time.monotonic(), idle_seconds=300)
    assert harness.pool.counts() == (2, 0)

    dead = harness.created[0]
    listed_at = time.monotonic()
    harness.pool.maintain(harness.alive() - {dead.id}, listed_at, idle_seconds=300)

    assert dead in harness.discarded
    assert harness.pool.counts() == (2, 0)
    assert len(harness.created) == 3


def test_a_container_released_after_the_listing_is_not_taken_for_dead() -> None:
    harness = Harness(min_scale=0, max_scale=1)
    listed_at = time.monotonic()
    member = harness.pool.acquire(None)  # created after the listing
    harness.pool.release(member, healthy=True)

    harness.pool.maintain(set(), listed_at, idle_seconds=300)

    assert harness.discarded == []


def test_idle_containers_beyond_min_scale_go_after_the_idle_period() -> None:
    harness = Harness(min_scale=1, max_scale=3)
    members = [harness.pool.acquire(None) for _ in range(3)]
    for member in members:
        harness.pool.release(member, healthy=True)

    harness.pool.maintain(harness.alive(), time.monotonic(), idle_seconds=300)
    assert harness.pool.counts() == (3, 0)

    time.sleep(0.05)
    harness.pool.maintain(harness.alive(), time.monotonic(), idle_seconds=0.01)
    assert harness.pool.counts() == (1, 0)
    assert harness.pool.acquire(None).container is members[-1].container  # the last used stays


def test_an_update_replaces_idle_containers_now_and_busy_ones_after_their_request() -> None:
    harness = Harness(min_scale=2)
    harness.pool.maintain(harness.alive(), time.monotonic(), idle_seconds=300)
    busy = harness.pool.acquire(None)

    harness.pool.reconfigure(service(script="echo two", min_scale=2))
    assert len(harness.discarded) == 1  # the idle one
    harness.pool.release(busy, healthy=True)
    assert busy.container in harness.discarded

    harness.pool.maintain(harness.alive(), time.monotonic(), idle_seconds=300)
    assert harness.pool.counts() == (2, 0)
    assert all(c.spec.service == "svc" for c in harness.created)


def test_max_scale_zero_means_what_the_host_holds() -> None:
    assert size_limit(service(cpu="0.5"), CAPACITY) == 4
    assert size_limit(service(cpu="0.5", max_scale=3), CAPACITY) == 3
    assert size_limit(service(cpu="4"), CAPACITY) == 1  # one always fits
    assert size_limit(service(cpu="4", min_scale=2), CAPACITY) == 2
