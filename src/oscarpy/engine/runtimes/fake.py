"""A test double of the `Runtime` protocol: executions whose outcome the test chooses.

Not a way to run jobs (`oscar serve` never offers it): it lets the supervisor's staging, limits,
cancellation and outcome mapping be tested in milliseconds, as dramatiq's stub broker serves
its tests. Each `start` takes the next `Behaviour` from the queue (a default success when it is
empty): what the "script" prints and writes into its work directory, how it ends (exit code,
OOM, hanging until killed or timed out), or which infrastructure error the runtime raises. With
`Behaviour(run_script=True)` the real script runs on the host through the `process` runtime.
Every call is recorded for the test to inspect.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from oscarpy.engine.errors import InfrastructureError
from oscarpy.engine.runtimes.base import (
    Execution,
    ImagePull,
    OutputSink,
    RunResult,
    RunSpec,
    result_from_exit,
    timed_out,
)

if TYPE_CHECKING:
    from oscarpy.engine.runtimes.base import Runtime

_ids = itertools.count(1)
_SIGKILL_EXIT = 137


@dataclass
class Behaviour:
    """What one execution does, in order: `writes` its files, prints `output`, runs `action`,
    then ends with `exit_code` (or `oom`), or with `hang` waits until it is killed or timed
    out."""

    exit_code: int = 0
    output: bytes = b""
    writes: dict[str, bytes] = field(default_factory=dict)
    """Files to create, relative to the work directory (`output/result.txt`, `tmp/big`)."""
    action: Callable[[RunSpec], None] | None = None
    """Anything else the "script" does (plant a link, block on an event…)."""
    hang: bool = False
    oom: bool = False
    prepare_error: InfrastructureError | None = None
    start_error: InfrastructureError | None = None
    wait_error: InfrastructureError | None = None
    remove_error: InfrastructureError | None = None
    """Raised by the first `remove` only (a later retry succeeds)."""
    run_script: bool = False
    """Run the real script with `/bin/sh` on this host instead (the `process` runtime)."""


class FakeExecution:
    def __init__(self, runtime: FakeRuntime, spec: RunSpec, behaviour: Behaviour) -> None:
        self.runtime = runtime
        self.spec = spec
        self.behaviour = behaviour
        self._id = f"fake-{next(_ids)}"
        self.killed = threading.Event()
        self.removed = False
        self.kills = 0
        self.removals = 0

    @property
    def id(self) -> str:
        return self._id

    def wait(
        self, timeout: float | None, on_output: OutputSink, *, follow_from: float | None = None
    ) -> RunResult:
        behaviour = self.behaviour
        if behaviour.wait_error is not None:
            raise behaviour.wait_error
        for relative, content in behaviour.writes.items():
            path = self.spec.work_dir / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        if behaviour.output:
            on_output(behaviour.output)
        if behaviour.action is not None:
            behaviour.action(self.spec)
        if behaviour.hang or self.killed.is_set():
            if not self.killed.wait(timeout):
                return timed_out(timeout or 0.0)
            return result_from_exit(_SIGKILL_EXIT)
        return result_from_exit(
            _SIGKILL_EXIT if behaviour.oom else behaviour.exit_code, oom=behaviour.oom
        )

    def kill(self) -> None:
        self.kills += 1
        self.killed.set()

    def writable_layer(self) -> Path | None:
        return None

    def remove(self) -> None:
        self.removals += 1
        if self.behaviour.remove_error is not None and self.removals == 1:
            raise self.behaviour.remove_error
        self.killed.set()
        self.removed = True


class FakeRuntime:
    """Runs nothing (unless asked): each execution follows the next queued `Behaviour`."""

    name = "fake"

    def __init__(self, *behaviours: Behaviour) -> None:
        self._queue: deque[Behaviour] = deque(behaviours)
        self._lock = threading.Lock()
        self.started: list[RunSpec] = []
        self.executions: list[Execution] = []
        self.prepared: list[str] = []
        self.closed = False

    def queue(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self._queue.extend(behaviours)

    def _next(self) -> Behaviour:
        with self._lock:
            return self._queue[0] if self._queue else Behaviour()

    def work_path(self, work_dir: Path) -> PurePosixPath:
        return PurePosixPath(work_dir)

    def prepare(self, image: str, pull: ImagePull | None = None) -> None:
        self.prepared.append(image)
        error = self._next().prepare_error
        if error is not None:
            with self._lock:
                self._queue.popleft()
            raise error

    def start(self, spec: RunSpec) -> Execution:
        with self._lock:
            behaviour = self._queue.popleft() if self._queue else Behaviour()
        self.started.append(spec)
        if behaviour.start_error is not None:
            raise behaviour.start_error
        execution: Execution
        if behaviour.run_script:
            from oscarpy.engine.runtimes.process import ProcessRuntime

            execution = ProcessRuntime().start(spec)
        else:
            execution = FakeExecution(self, spec, behaviour)
        self.executions.append(execution)
        return execution

    def find(self, job_id: str, attempt: int) -> Execution | None:
        return None

    def remove_job(self, job_id: str) -> None:
        for execution in self.executions:
            if isinstance(execution, FakeExecution) and execution.spec.job_id == job_id:
                execution.remove()

    def job_ids(self) -> set[str]:
        return {
            execution.spec.job_id
            for execution in self.executions
            if isinstance(execution, FakeExecution) and not execution.removed
        }

    def close(self) -> None:
        self.closed = True


if TYPE_CHECKING:

    def _fits_protocol(runtime: FakeRuntime) -> Runtime:
        return runtime
