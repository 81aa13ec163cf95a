"""What an operator and a user can see of a running platform: Prometheus metrics (`/metrics`),
the request log (`/system/logs`) and usage totals (`/system/metrics`).

`Observability` is built by the server from the components it watches. The engine reports each
finished attempt through the ledger's finish listener; the REST and S3 edges report requests
through their middleware; everything else is read at scrape or query time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta

from oscarpy.config import Settings
from oscarpy.db import Database
from oscarpy.engine.nodes import NodeStatus
from oscarpy.engine.outcomes import FinishedAttempt
from oscarpy.observability.collectors import (
    DiskCollector,
    LedgerCollector,
    NodeCollector,
    StoreCollector,
    WarmPoolCollector,
)
from oscarpy.observability.history import History, RequestRecord, UsageRecord
from oscarpy.observability.metrics import PlatformMetrics
from oscarpy.services.model import Service
from oscarpy.services.registry import ServiceRegistry

__all__ = ["History", "Observability", "PlatformMetrics", "RequestRecord", "WarmCounts"]

WarmCounts = Callable[[str], tuple[int, int] | None]
"""(idle, busy) warm containers of a service; `None` when it has no pool."""


class Observability:
    """The metrics (when `settings.metrics` is on) and the history, for one platform."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        registry: ServiceRegistry,
        warm_counts: WarmCounts | None = None,
        nodes: Callable[[], Iterable[NodeStatus]] | None = None,
    ) -> None:
        self.registry = registry
        self.warm_counts = warm_counts
        self.history = History(database, timedelta(days=settings.request_log_retention_days))
        self.metrics: PlatformMetrics | None = PlatformMetrics() if settings.metrics else None
        self._resources: dict[str, tuple[float, int]] = {}
        self._resources_lock = threading.Lock()
        registry.add_listener(self._forget_service)
        if self.metrics is not None:
            self.metrics.add_collector(LedgerCollector(database, self._service_names))
            self.metrics.add_collector(WarmPoolCollector(self._warm_pools))
            self.metrics.add_collector(StoreCollector(database))
            self.metrics.add_collector(DiskCollector(database, settings.data_dir))
            if nodes is not None:
                self.metrics.add_collector(NodeCollector(nodes))

    def start(self) -> None:
        self.history.start()

    def stop(self) -> None:
        self.history.stop()

    def attempt_finished(self, attempt: FinishedAttempt) -> None:
        """The ledger's finish listener: count it, and keep what it used."""
        if self.metrics is not None:
            self.metrics.attempt_finished(attempt)
        cpu, memory = self._resources_of(attempt.service)
        self.history.record_usage(
            UsageRecord(
                job_id=attempt.job_id,
                service=attempt.service,
                source=attempt.source,
                attempt=attempt.attempt,
                outcome=attempt.outcome,
                started_at=attempt.started_at,
                finished_at=attempt.finished_at,
                cpu_cores=cpu,
                memory_bytes=memory,
            )
        )

    def _resources_of(self, name: str) -> tuple[float, int]:
        with self._resources_lock:
            found = self._resources.get(name)
        if found is None:
            service = self.registry.get(name)
            found = (service.cpu_cores, service.memory_bytes) if service is not None else (0.0, 0)
            with self._resources_lock:
                self._resources[name] = found
        return found

    def _forget_service(self, _event: str, service: Service) -> None:
        with self._resources_lock:
            self._resources.pop(service.name, None)

    def _service_names(self) -> list[str]:
        return [service.name for service in self.registry.list()]

    def _warm_pools(self) -> Iterator[tuple[str, int, int]]:
        if self.warm_counts is None:
            return
        for name in self._service_names():
            counts = self.warm_counts(name)
            if counts is not None:
                idle, busy = counts
                yield name, idle, busy
