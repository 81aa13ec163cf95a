"""The services the engine runs jobs for, read from the registry once per change.

The intake asks for the service list at every batch and the dispatcher for a service's demand
at every turn; the registry is the state DB, so the catalog keeps a copy that a registry change
throws away.
"""

from __future__ import annotations

import threading

from oscarpy.engine.dispatcher import Demand
from oscarpy.services.errors import ServiceNotFound
from oscarpy.services.model import Service
from oscarpy.services.registry import ServiceRegistry


class ServiceCatalog:
    def __init__(self, registry: ServiceRegistry) -> None:
        self.registry = registry
        self._services: dict[str, Service] | None = None
        self._lock = threading.Lock()

    def list(self) -> list[Service]:
        with self._lock:
            if self._services is None:
                self._services = {service.name: service for service in self.registry.list()}
            return list(self._services.values())

    def get(self, name: str) -> Service | None:
        """The service as last read (`None` if it is gone)."""
        self.list()
        with self._lock:
            return (self._services or {}).get(name)

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
