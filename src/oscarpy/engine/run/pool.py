"""The warm pools: per service, containers that wait for `/run` requests, one request each.

A pool keeps `synchronous.min_scale` containers running (created when the service is created or
updated, replaced when they die), grows under load up to `synchronous.max_scale` (0: as many as
the host's CPU and memory hold at the service's `cpu`/`memory`), and removes containers beyond
`min_scale` that stayed idle for the configured period. All container starts and removals that
no request waits for happen in one maintenance thread, never on a request's path.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from oscarpy.engine import contract
from oscarpy.engine.dispatcher import Capacity
from oscarpy.engine.errors import EngineError, InfrastructureError
from oscarpy.engine.run.errors import PoolExhausted
from oscarpy.engine.runtimes.base import Limits
from oscarpy.engine.runtimes.warm import RunRuntime, WarmContainer, WarmSpec, new_container_dir
from oscarpy.services.errors import ServiceNotFound
from oscarpy.services.model import Service

log = logging.getLogger(__name__)

_TICK_SECONDS = 1.0
_RETRY_AFTER_FAILURE_SECONDS = 10.0


class GaveUp(Exception):
    """The request stopped waiting for a container (cancelled)."""


@dataclass(eq=False)
class Member:
    """One warm container of a pool, and whether it can take the next request."""

    container: WarmContainer
    generation: int
    last_used: float = field(default_factory=time.monotonic)


def service_limits(service: Service) -> Limits:
    """The service's own cpu and memory; the engine adds the platform's (`Engine.limits`)."""
    return Limits(cpu_cores=service.cpu_cores, memory_bytes=service.memory_bytes)


def size_limit(service: Service, capacity: Capacity) -> int:
    """`max_scale`, or with 0 how many containers of the service the host holds."""
    if service.synchronous.max_scale:
        return max(service.synchronous.max_scale, service.synchronous.min_scale, 1)
    fits = []
    if service.cpu_cores > 0:
        fits.append(int(capacity.cpu / service.cpu_cores))
    if service.memory_bytes > 0:
        fits.append(int(capacity.memory / service.memory_bytes))
    return max(min(fits, default=1), service.synchronous.min_scale, 1)


class ServicePool:
    """The warm containers of one service; safe to use from many request threads."""

    def __init__(
        self,
        service: Service,
        capacity: Capacity,
        create: Callable[[WarmSpec], WarmContainer],
        discard: Callable[[WarmContainer], None],
        limits: Callable[[Service], Limits] = service_limits,
    ) -> None:
        self._create = create
        self._discard = discard
        self._limits = limits
        self._capacity = capacity
        self._condition = threading.Condition()
        self._idle: list[Member] = []
        self._busy: set[Member] = set()
        self._starting = 0
        self._closed = False
        self._failed_at = 0.0
        self.generation = 0
        self.service = service
        self.limit = size_limit(service, capacity)

    @property
    def spec(self) -> WarmSpec:
        service = self.service
        return WarmSpec(
            service.name,
            service.image,
            self._limits(service),
            user=contract.script_user(service),
            network=service.network,
        )

    def size(self) -> int:
        with self._condition:
            return len(self._idle) + len(self._busy) + self._starting

    def counts(self) -> tuple[int, int]:
        """(idle, busy), for tests and the status page."""
        with self._condition:
            return len(self._idle), len(self._busy)

    # -- requests -------------------------------------------------------------------------

    def acquire(
        self, timeout: float | None, given_up: Callable[[], bool] = lambda: False
    ) -> Member:
        """A container for one request: an idle one, else a new one if the pool may grow, else
        the first one released; raises `PoolExhausted` when none frees up within `timeout`, and
        `GaveUp` once `given_up()` (asked again on `wake_waiters`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while True:
                if self._closed:
                    raise ServiceNotFound(self.service.name)
                if given_up():
                    raise GaveUp
                if self._idle:
                    member = self._idle.pop()  # the most recently used: the others may idle out
                    self._busy.add(member)
                    return member
                if len(self._idle) + len(self._busy) + self._starting < self.limit:
                    self._starting += 1
                    generation, spec = self.generation, self.spec
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise PoolExhausted(
                        f"all {self.limit} warm container(s) of {self.service.name} stayed busy "
                        f"for {timeout:g} s; raise synchronous.max_scale or try again"
                    )
                self._condition.wait(remaining)
        try:
            container = self._create(spec)
        except BaseException:
            with self._condition:
                self._starting -= 1
                self._condition.notify()
            raise
        member = Member(container, generation)
        with self._condition:
            self._starting -= 1
            self._busy.add(member)
        return member

    def wake_waiters(self) -> None:
        """Have the requests waiting in `acquire` ask again whether they gave up."""
        with self._condition:
            self._condition.notify_all()

    def release(self, member: Member, healthy: bool) -> None:
        """Give the container back after a request; an unhealthy or outdated one is removed."""
        with self._condition:
            self._busy.discard(member)
            keep = healthy and not self._closed and member.generation == self.generation
            if keep:
                member.last_used = time.monotonic()
                self._idle.append(member)
            self._condition.notify()
        if not keep:
            self._discard(member.container)

    # -- maintenance (one thread) ---------------------------------------------------------

    def reconfigure(self, service: Service) -> None:
        """The service changed: its containers are replaced (busy ones once they finish)."""
        with self._condition:
            self.service = service
            self.limit = size_limit(service, self._capacity)
            self.generation += 1
            stale, self._idle = self._idle, []
            self._failed_at = 0.0
            self._condition.notify_all()
        for member in stale:
            self._discard(member.container)

    def close(self, *, busy_too: bool = False) -> None:
        """No more requests; idle containers go now, busy ones after their request, or now
        with `busy_too` (the server stops: their requests are cut short)."""
        with self._condition:
            self._closed = True
            stale, self._idle = self._idle, []
            if busy_too:
                stale += list(self._busy)
            self._condition.notify_all()
        for member in stale:
            self._discard(member.container)

    def maintain(self, running: set[str] | None, listed_at: float, idle_seconds: float) -> None:
        """Drop dead idle containers, shrink after the idle period, top up to `min_scale`.

        `running` lists the live containers as of `listed_at` (monotonic); a container
        released since then may be missing from it without being dead.
        """
        now = time.monotonic()
        dropped: list[Member] = []
        with self._condition:
            if self._closed:
                return
            if running is not None:
                alive = [
                    member
                    for member in self._idle
                    if member.container.id in running or member.last_used >= listed_at
                ]
                dropped += [member for member in self._idle if member not in alive]
                self._idle = alive
            minimum = self.service.synchronous.min_scale
            surplus = len(self._idle) + len(self._busy) - minimum
            # Oldest first: `_idle` is ordered by last use, acquire takes from the end.
            while surplus > 0 and self._idle and now - self._idle[0].last_used >= idle_seconds:
                dropped.append(self._idle.pop(0))
                surplus -= 1
            missing = minimum - (len(self._idle) + len(self._busy) + self._starting)
            if now - self._failed_at < _RETRY_AFTER_FAILURE_SECONDS:
                missing = 0
            self._starting += max(missing, 0)
            generation, spec = self.generation, self.spec
        for member in dropped:
            if running is not None and member.container.id not in running:
                log.warning(
                    "warm container %s of %s died; replacing it",
                    member.container.id[:12],
                    spec.service,
                )
            self._discard(member.container)
        for _ in range(max(missing, 0)):
            self._start_one(spec, generation)

    def _start_one(self, spec: WarmSpec, generation: int) -> None:
        try:
            container = self._create(spec)
        except EngineError as error:
            log.warning("cannot start a warm container of %s: %s", spec.service, error)
            with self._condition:
                self._starting -= 1
                self._failed_at = time.monotonic()
            return
        with self._condition:
            self._starting -= 1
            if self._closed or generation != self.generation:
                keep = False
            else:
                keep = True
                self._idle.insert(0, Member(container, generation))
                self._condition.notify()
        if not keep:
            self._discard(container)


class WarmPools:
    """Every service's pool, the registry listener that (re)builds them, and their upkeep."""

    def __init__(
        self,
        runtime: RunRuntime,
        root: Path,
        capacity: Capacity,
        services: Callable[[], list[Service]],
        *,
        idle_seconds: float,
        on_tick: Callable[[], None] | None = None,
        limits: Callable[[Service], Limits] = service_limits,
    ) -> None:
        self.runtime = runtime
        self._limits = limits
        self.root = root
        self.capacity = capacity
        self.idle_seconds = idle_seconds
        self._services = services
        self._on_tick = on_tick
        self._pools: dict[str, ServicePool] = {}
        self._lock = threading.Lock()
        self._discarded: list[WarmContainer] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        swept = self.runtime.sweep()
        if swept:
            log.info("removed %d warm container(s) left by an earlier server", swept)
        for entry in self.root.iterdir():
            shutil.rmtree(entry, ignore_errors=True)
        for service in self._services():
            self.configure(service)
        self._thread = threading.Thread(target=self._run, name="warm-pools", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close(busy_too=True)
        self._remove_discarded()

    def pool(self, service: Service) -> ServicePool:
        with self._lock:
            pool = self._pools.get(service.name)
            if pool is None:
                pool = ServicePool(
                    service, self.capacity, self._create, self._discard, self._limits
                )
                self._pools[service.name] = pool
                self._wake.set()
            return pool

    def counts(self, service_name: str) -> tuple[int, int] | None:
        """(idle, busy) warm containers of a service; `None` when it has no pool yet."""
        with self._lock:
            pool = self._pools.get(service_name)
        return None if pool is None else pool.counts()

    def configure(self, service: Service) -> None:
        with self._lock:
            pool = self._pools.get(service.name)
        if pool is None:
            self.pool(service)
        else:
            pool.reconfigure(service)
        self._wake.set()

    def on_service_change(self, event: str, service: Service) -> None:
        """The registry listener: build or rebuild the pool, or empty it for a deleted service."""
        if event == "deleted":
            with self._lock:
                pool = self._pools.pop(service.name, None)
            if pool is not None:
                pool.close()
            self._wake.set()
        else:
            self.configure(service)

    def _create(self, spec: WarmSpec) -> WarmContainer:
        host_dir = new_container_dir(self.root, spec.service)
        try:
            container = self.runtime.create(spec, host_dir)
        except BaseException:
            shutil.rmtree(host_dir, ignore_errors=True)
            raise
        log.debug("warm container %s of %s started", container.id[:12], spec.service)
        return container

    def _discard(self, container: WarmContainer) -> None:
        with self._lock:
            self._discarded.append(container)
        self._wake.set()

    def _remove_discarded(self) -> None:
        with self._lock:
            doomed, self._discarded = self._discarded, []
        # One after the other: each is running, and Docker 20.10 deadlocks when two network
        # teardowns overlap (`docker_api.remove_by_id`).
        for container in doomed:
            self._remove(container)

    @staticmethod
    def _remove(container: WarmContainer) -> None:
        try:
            container.remove()
        except InfrastructureError as error:
            log.warning("cannot remove warm container %s: %s", container.id[:12], error)
        shutil.rmtree(container.host_dir, ignore_errors=True)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(_TICK_SECONDS)
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                self._tick()
            except Exception:  # the upkeep must survive a bug in one round
                log.exception("warm pool upkeep failed")

    def _tick(self) -> None:
        self._remove_discarded()
        with self._lock:
            pools = list(self._pools.values())
        listed_at = time.monotonic()
        running = self.runtime.running_ids()
        for pool in pools:
            pool.maintain(running, listed_at, self.idle_seconds)
        self._remove_discarded()
        if self._on_tick is not None:
            self._on_tick()
