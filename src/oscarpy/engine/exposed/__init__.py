"""Exposed services: long-running replicas of a service's image behind the platform's proxy."""

from __future__ import annotations

from oscarpy.config import Settings
from oscarpy.engine.exposed.containers import ExposedContainers
from oscarpy.engine.exposed.manager import DeploymentStatus, ExposedServices
from oscarpy.engine.runtimes.base import Runtime
from oscarpy.engine.runtimes.docker_api import DockerConnection
from oscarpy.services.registry import ServiceRegistry

__all__ = ["DeploymentStatus", "ExposedContainers", "ExposedServices", "for_runtime"]


def for_runtime(
    settings: Settings, registry: ServiceRegistry, runtime: Runtime, instance: str
) -> ExposedServices:
    """Exposed services on the Docker Engine the job runtime uses; reported unavailable with
    a runtime that has none (`process`, the tests' fake)."""
    connection = getattr(runtime, "connection", None)
    containers = None
    if isinstance(connection, DockerConnection):
        root = settings.data_dir / "exposed"
        containers = ExposedContainers(connection, instance, root, settings)
    return ExposedServices(
        registry,
        containers,
        settings.data_dir / "exposed-stopped.json",
        scale_interval=settings.exposed_scale_interval,
        startup_seconds=settings.exposed_startup_seconds,
        unavailable_reason=f"the {runtime.name} runtime runs no exposed services; use docker",
    )
