"""Ways of running a job's script: `docker` (default) and `process` (on the host)."""

from __future__ import annotations

from oscarpy.engine.runtimes.base import (
    EndReason,
    Execution,
    Limits,
    OutputSink,
    RunResult,
    RunSpec,
    Runtime,
)

__all__ = ["EndReason", "Execution", "Limits", "OutputSink", "RunResult", "RunSpec", "Runtime"]
