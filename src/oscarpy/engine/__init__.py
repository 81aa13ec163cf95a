"""The job engine: every object created under a service's input becomes one job, run once in a
fresh container, its outputs uploaded and its state and log kept."""

from __future__ import annotations

from oscarpy.engine.core import Engine
from oscarpy.engine.errors import (
    ContainerError,
    EngineError,
    ImageUnavailable,
    InfrastructureError,
    InvalidJobOperation,
    JobNotFound,
    RuntimeUnavailable,
    StagingError,
)
from oscarpy.engine.records import JobStatus

__all__ = [
    "ContainerError",
    "Engine",
    "EngineError",
    "ImageUnavailable",
    "InfrastructureError",
    "InvalidJobOperation",
    "JobNotFound",
    "JobStatus",
    "RuntimeUnavailable",
    "StagingError",
]
