"""The job engine's exceptions, one tree, so that callers decide by kind and never by message.

    EngineError
    ├── InfrastructureError          the platform could not run the job: retried with backoff
    │   ├── RuntimeUnavailable       the container engine does not answer
    │   │   └── RuntimeLost          the connection broke or timed out mid-call
    │   ├── ImageUnavailable         the image is absent and cannot be pulled
    │   ├── StagingError             the input could not be staged in or the outputs out
    │   └── ContainerError           the engine refused or lost the container
    │       ├── ContainerMissing     no such container (any more)
    │       └── ContainerConflict    its state forbids the call (409: not running, being removed)
    ├── ContainerGone                a warm container died before a `/run` script started in it
    ├── JobNotFound                  no such job (for that service)
    ├── EventNotAllowed              a caller's event names an object it may not have processed
    ├── InvalidJobOperation          the job's state does not allow the operation
    └── NotExposed                   an exposed service's route called on a service without `expose`

A script's own failure (non-zero exit, timeout, OOM) is not an exception: it is an outcome,
recorded on the attempt. Foreign errors (`docker.errors`, `botocore`) are translated into this
tree where they are caught, in their adapters.

The HTTP status of each class (and of the `/run` errors) is in `oscarpy/errors.py`.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error the job engine raises."""


class InfrastructureError(EngineError):
    """The platform, not the script, failed; the job is retried with backoff up to a limit."""

    reason = "infrastructure"


class RuntimeUnavailable(InfrastructureError):
    reason = "runtime"


class RuntimeLost(RuntimeUnavailable):
    pass


class ImageUnavailable(InfrastructureError):
    reason = "image"


class StagingError(InfrastructureError):
    reason = "staging"


class ContainerError(InfrastructureError):
    reason = "container"


class ContainerMissing(ContainerError):
    pass


class ContainerConflict(ContainerError):
    pass


class Cancelled(EngineError):
    """The job was cancelled (deleted) before its execution started: nothing of it runs."""


class ContainerGone(EngineError):
    """A warm container died before the request's script started in it: another one is used."""


class JobNotFound(EngineError):
    pass


class InvalidJobOperation(EngineError):
    pass


class NotExposed(EngineError):
    """The service has no `expose` section (no `api_port`)."""


class EventNotAllowed(EngineError):
    """A service's token sent an event for an object outside that service's inputs."""


class ScalingError(EngineError):
    """A node provider or the cluster refused a scaling step; the scaler logs it and goes on
    (it never reaches a caller)."""
