"""Ways of running a job's script: `docker` (default), `process` (on the host), and `fake` (a
test double), `swarm` (cluster mode); `warm` holds the containers that answer `/run`."""

from __future__ import annotations

import logging

from oscarpy.engine.runtimes.base import (
    EndReason,
    Execution,
    Limits,
    OutputSink,
    RunResult,
    RunSpec,
    Runtime,
)

log = logging.getLogger(__name__)

__all__ = [
    "EndReason",
    "Execution",
    "Limits",
    "OutputSink",
    "RunResult",
    "RunSpec",
    "Runtime",
    "make_runtime",
]


def make_runtime(name: str, instance: str, owner: str = "") -> Runtime:
    """The runtime `oscar serve --runtime` names (`docker`, `process` or `swarm`); `owner` is
    the server process, named on what a runtime leaves between jobs."""
    if name == "process":
        from oscarpy.engine.runtimes.process import WARNING, ProcessRuntime

        log.warning(WARNING)
        return ProcessRuntime()
    if name == "swarm":
        from oscarpy.engine.runtimes.swarm import SwarmRuntime

        return SwarmRuntime(instance)
    from oscarpy.engine.runtimes.docker import DockerRuntime

    return DockerRuntime(instance, owner=owner)
