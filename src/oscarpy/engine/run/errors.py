"""What can go wrong with a `/run` request before its script runs, in the engine's tree.

    EngineError
    └── InvocationError              the request cannot be run as sent
        ├── InvalidBody              neither JSON nor base64                       → 400
        └── BodyTooLarge             over the configured limit                     → 413
    InfrastructureError
    └── PoolExhausted                no warm container freed up within the timeout → 503

A script's failure is not an exception: it is the job's outcome, answered with 500 or 504.
Container trouble is the engine's `InfrastructureError` (`ContainerError`…) → 503.
"""

from __future__ import annotations

from oscarpy.engine.errors import EngineError, InfrastructureError


class InvocationError(EngineError):
    pass


class InvalidBody(InvocationError):
    pass


class BodyTooLarge(InvocationError):
    pass


class PoolExhausted(InfrastructureError):
    reason = "busy"
