"""The job engine: every object created under a service's input becomes one job, run once in a
fresh container, its outputs uploaded and its state and log kept.

The edges use what this package exports: the `Engine`, the read models of jobs (`JobView`,
`AttemptView`, `JobStatus`, `JobSource`), how attempts end (`AttemptOutcome`, `OutcomeKind`),
the dispatcher's `Capacity`, the nodes jobs run on (`NodeStatus`), and the exception tree.
"""

from __future__ import annotations

from oscarpy.engine.core import Engine
from oscarpy.engine.dispatcher import Capacity
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
from oscarpy.engine.ledger import AttemptView, JobView
from oscarpy.engine.nodes import ClusterRuntime, NodeStatus
from oscarpy.engine.outcomes import AttemptOutcome, OutcomeKind
from oscarpy.engine.records import JobSource, JobStatus

__all__ = [
    "AttemptOutcome",
    "AttemptView",
    "Capacity",
    "ClusterRuntime",
    "ContainerError",
    "Engine",
    "EngineError",
    "ImageUnavailable",
    "InfrastructureError",
    "InvalidJobOperation",
    "JobNotFound",
    "JobSource",
    "JobStatus",
    "JobView",
    "NodeStatus",
    "OutcomeKind",
    "RuntimeUnavailable",
    "StagingError",
]
