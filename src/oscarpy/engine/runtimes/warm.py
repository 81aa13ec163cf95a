"""What `/run` needs from a runtime: warm containers, started once per pool slot, then running
one request's script at a time (`RunRuntime`, `WarmContainer`).

Each warm container has a host directory, visible to it from its creation on; each request
gets a fresh subdirectory there and runs the contract's script in it. `docker_warm` is the
Docker implementation; `ProcessRunRuntime` here stands in for the `process` runtime.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from oscarpy.engine.runtimes.base import (
    Execution,
    Limits,
    OutputSink,
    RunResult,
    RunSpec,
    Runtime,
)

T = TypeVar("T")

RUN_MOUNT = PurePosixPath("/oscar-run")
"""Where a warm container sees its host directory (and so each call's work directory)."""


@dataclass(frozen=True)
class WarmSpec:
    """What every warm container of one service generation is made from."""

    service: str
    image: str
    limits: Limits = field(default_factory=Limits)
    user: str | None = None
    """Who requests' scripts run as (`uid:gid`); `None`: the image's user."""
    network: str = "default"


class WarmContainer(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def host_dir(self) -> Path:
        """Mounted into the container when it was created; requests work under it."""
        ...

    def path_of(self, host_path: Path) -> PurePosixPath:
        """Where the script sees `host_path`, a path under `host_dir`."""
        ...

    def run(
        self,
        work_dir: Path,
        script: str,
        environment: dict[str, str],
        timeout: float | None,
        on_output: OutputSink,
    ) -> RunResult:
        """Run `/bin/sh work_dir/script` in the container and stream its output; raises
        `ContainerGone` if the container is dead before the script starts."""
        ...

    def settle(self) -> bool:
        """After a request: whether nothing it started runs any more. `False` means something
        may survive: the container must be removed before the request's outputs are read, and
        never take another request."""
        ...

    def stop(self) -> None:
        """Kill everything that runs in the container now (a cancelled call), from any thread:
        the call's `run` returns or raises at once; the container takes no other call and is
        removed (`remove`) afterwards."""
        ...

    def remove(self) -> None: ...


class RunRuntime(Protocol):
    name: str

    def create(self, spec: WarmSpec, host_dir: Path) -> WarmContainer: ...

    def running_ids(self) -> set[str] | None:
        """Ids of this process's warm containers that run; `None` when that is unknown."""
        ...

    def sweep(self) -> int:
        """Remove the warm containers that dead server processes left; returns how many."""
        ...

    def close(self) -> None: ...


class StopSwitch(Generic[T]):
    """Stops, from another thread, what runs now (`watch`ed), or what would start next."""

    def __init__(self, stop: Callable[[T], None]) -> None:
        self._stop = stop
        self._lock = threading.Lock()
        self._running: T | None = None
        self.requested = False

    def __call__(self) -> None:
        with self._lock:
            self.requested = True
            running = self._running
        if running is not None:
            self._stop(running)

    def watch(self, running: T | None) -> bool:
        """Note what runs now (`None`: it has ended); `False` if it must not run (stopped)."""
        with self._lock:
            self._running = running
            return running is None or not self.requested


class ProcessWarmContainer:
    """The `process` runtime's stand-in: nothing stays warm, each script is a host process
    started by the engine's own runtime (development only, like that runtime)."""

    def __init__(self, runtime: Runtime, spec: WarmSpec, host_dir: Path) -> None:
        self._runtime = runtime
        self._spec = spec
        self._host_dir = host_dir
        self._id = f"host-{uuid.uuid4().hex[:12]}"
        self._stop = StopSwitch[Execution](lambda execution: execution.kill())

    @property
    def id(self) -> str:
        return self._id

    @property
    def host_dir(self) -> Path:
        return self._host_dir

    def path_of(self, host_path: Path) -> PurePosixPath:
        return PurePosixPath(host_path)

    def run(
        self,
        work_dir: Path,
        script: str,
        environment: dict[str, str],
        timeout: float | None,
        on_output: OutputSink,
    ) -> RunResult:
        spec = RunSpec(
            job_id=work_dir.name,
            service=self._spec.service,
            attempt=1,
            image=self._spec.image,
            work_dir=work_dir,
            script=script,
            environment=environment,
            limits=self._spec.limits,
            user=self._spec.user,
            network=self._spec.network,
        )
        execution = self._runtime.start(spec)
        try:
            if not self._stop.watch(execution):
                execution.kill()
            return execution.wait(timeout, on_output)
        finally:
            self._stop.watch(None)
            execution.remove()  # kills the script's whole process group

    def stop(self) -> None:
        self._stop()

    def settle(self) -> bool:
        return True

    def remove(self) -> None:
        pass


class ProcessRunRuntime:
    name = "process"

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def create(self, spec: WarmSpec, host_dir: Path) -> ProcessWarmContainer:
        return ProcessWarmContainer(self._runtime, spec, host_dir)

    def running_ids(self) -> set[str] | None:
        return None

    def sweep(self) -> int:
        return 0

    def close(self) -> None:
        pass


def new_container_dir(root: Path, service: str) -> Path:
    """A fresh host directory for one warm container; its name is also the container's."""
    path = root / f"oscar-run-{service}-{uuid.uuid4().hex[:10]}"
    path.mkdir(parents=True)
    # Mounted as the container's working root: its (unprivileged) user must pass it, whatever
    # the server's umask; the private data directory keeps other host users out.
    os.chmod(path, 0o755)
    return path


if TYPE_CHECKING:

    def _fits_process(runtime: ProcessRunRuntime) -> RunRuntime:
        return runtime
