"""The services the engine runs jobs for, as the registry (the state DB) has them.

The dispatcher asks for a service's demand at every turn, so the catalog keeps a copy: a
change made through this process throws it away at once, one made by another process sharing
the state DB is seen within `MAX_AGE_SECONDS` (or at once for a service not seen before). The
intake checks the registry for every batch (`fresh`): an event must never meet a list older
than itself, or the job of a service just created elsewhere would be lost. The check reads
each service's name and time of change, and the definitions only when those differ.
"""

from __future__ import annotations

import builtins
import threading
import time
from datetime import datetime

from oscarpy.engine.dispatcher import Demand
from oscarpy.services.errors import ServiceNotFound
from oscarpy.services.model import Service
from oscarpy.services.registry import ServiceRegistry

MAX_AGE_SECONDS = 2.0


class ServiceCatalog:
    def __init__(self, registry: ServiceRegistry) -> None:
        self.registry = registry
        self._services: dict[str, Service] | None = None
        self._read_at = 0.0
        self._versions: dict[str, datetime] | None = None
        self._lock = threading.Lock()

    def list(self) -> list[Service]:
        with self._lock:
            if self._services is None or time.monotonic() - self._read_at > MAX_AGE_SECONDS:
                self._read()
            return list(self._services.values()) if self._services else []

    def fresh(self) -> builtins.list[Service]:
        """The services as the registry has them now."""
        with self._lock:
            versions = self.registry.versions()
            if self._services is None or versions != self._versions:
                self._read()
                self._versions = versions
            else:
                self._read_at = time.monotonic()
            return list(self._services.values()) if self._services else []

    def _read(self) -> None:
        self._services = {service.name: service for service in self.registry.list()}
        self._versions = None  # unknown: the next `fresh` compares afresh
        self._read_at = time.monotonic()

    def get(self, name: str) -> Service | None:
        """The service as recently read (`None` if it is gone)."""
        self.list()
        with self._lock:
            found = (self._services or {}).get(name)
            if found is None and time.monotonic() - self._read_at > MAX_AGE_SECONDS / 4:
                self._read()  # perhaps created by another process
                found = (self._services or {}).get(name)
            return found

    def require(self, name: str) -> Service:
        """The service as the registry has it now; raises `ServiceNotFound`."""
        service = self.registry.get(name)
        if service is None:
            raise ServiceNotFound(name)
        return service

    def forget(self) -> None:
        """Read the registry again at the next question (it changed)."""
        with self._lock:
            self._services = None

    def script_retries(self, name: str) -> int:
        """How often the service asks a failed script to run again (0 once it is gone)."""
        service = self.get(name)
        return service.retries if service is not None else 0

    @staticmethod
    def demand_of(service: Service) -> Demand:
        return Demand(service.cpu_cores, service.memory_bytes, service.max_concurrency)

    def demand(self, name: str) -> Demand | None:
        service = self.get(name)
        return self.demand_of(service) if service is not None else None
