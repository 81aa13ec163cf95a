"""Warm containers: started once per pool slot, then running one `/run` script at a time.

A warm container runs `/bin/sh` reading a stdin that never closes (so any image with `/bin/sh`
works) under docker-init, with the same restrictions as a job container. Its host directory is
bind-mounted at `WARM_MOUNT` when it is created; each request gets a fresh subdirectory and
runs through `docker exec`. This module and the engine's Docker adapter are the only places
that see `docker.errors`.

Labels: `oscar.instance` (the installation), `oscar.service`, `oscar.role=warm` and
`oscar.owner` (the server instance, as the ledger names it), so that a server removes the warm
containers a dead instance left (its lease expired), and never another live instance's.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

import docker
import docker.errors
import requests.exceptions

from oscarpy.engine.access import open_to_script
from oscarpy.engine.errors import ContainerError, ImageUnavailable, RuntimeUnavailable
from oscarpy.engine.runtimes.base import (
    Limits,
    OutputSink,
    RunResult,
    RunSpec,
    Runtime,
    result_from_exit,
    timed_out,
)
from oscarpy.engine.runtimes.docker import (
    LABEL_INSTANCE,
    LABEL_SERVICE,
    restricted_options,
)
from oscarpy.engine.sync.errors import ContainerGone

log = logging.getLogger(__name__)

WARM_MOUNT = PurePosixPath("/oscar-run")
LABEL_ROLE = "oscar.role"
LABEL_OWNER = "oscar.owner"
ROLE_WARM = "warm"
_API_TIMEOUT = 60


@dataclass(frozen=True)
class WarmSpec:
    """What every warm container of one service generation is made from."""

    service: str
    image: str
    limits: Limits = field(default_factory=Limits)


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

    def remove(self) -> None: ...


class WarmRuntime(Protocol):
    name: str

    def create(self, spec: WarmSpec, host_dir: Path) -> WarmContainer: ...

    def running_ids(self) -> set[str] | None:
        """Ids of this process's warm containers that run; `None` when that is unknown."""
        ...

    def sweep(self) -> int:
        """Remove the warm containers that dead server processes left; returns how many."""
        ...

    def close(self) -> None: ...


class DockerWarmContainer:
    def __init__(self, runtime: DockerWarmRuntime, container_id: str, host_dir: Path) -> None:
        self._runtime = runtime
        self._id = container_id
        self._host_dir = host_dir
        self.timed_out = False

    @property
    def id(self) -> str:
        return self._id

    @property
    def host_dir(self) -> Path:
        return self._host_dir

    def path_of(self, host_path: Path) -> PurePosixPath:
        return WARM_MOUNT / host_path.relative_to(self._host_dir).as_posix()

    def run(
        self,
        work_dir: Path,
        script: str,
        environment: dict[str, str],
        timeout: float | None,
        on_output: OutputSink,
    ) -> RunResult:
        api = self._runtime.streaming.api
        mount = self.path_of(work_dir)
        try:
            exec_id = api.exec_create(
                self._id,
                ["/bin/sh", str(mount / script)],
                stdout=True,
                stderr=True,
                environment=environment,
                workdir=str(mount),
            )["Id"]
        except docker.errors.NotFound as error:
            raise ContainerGone(f"warm container {self._id[:12]} is gone") from error
        except docker.errors.APIError as error:
            if error.status_code == 409:  # "container … is not running"
                raise ContainerGone(f"warm container {self._id[:12]} stopped") from error
            raise ContainerError(f"cannot exec in {self._id[:12]}: {error.explanation}") from error
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            raise RuntimeUnavailable(f"Docker Engine error starting the script: {error}") from error
        timer = None
        if timeout is not None:
            # The Engine API cannot kill one exec: the container goes, and is replaced.
            timer = threading.Timer(max(timeout, 0.0), self._time_out)
            timer.daemon = True
            timer.start()
        try:
            for chunk in api.exec_start(exec_id, stream=True, demux=False):
                on_output(chunk)
            state = api.exec_inspect(exec_id)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            if self.timed_out and timeout is not None:
                return timed_out(timeout)
            raise ContainerError(f"lost the script in {self._id[:12]}: {error}") from error
        finally:
            if timer is not None:
                timer.cancel()
        if self.timed_out and timeout is not None:
            return timed_out(timeout)
        exit_code = state.get("ExitCode")
        if state.get("Running") or exit_code is None:
            raise ContainerError(f"the script in {self._id[:12]} ended without an exit status")
        if exit_code != 0 and not self._runtime.is_running(self._id):
            raise ContainerError(f"warm container {self._id[:12]} died while the script ran")
        return result_from_exit(int(exit_code))

    def _time_out(self) -> None:
        self.timed_out = True
        try:
            self._runtime.control.api.kill(self._id)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            log.warning("cannot kill warm container %s after its timeout: %s", self._id[:12], error)

    def remove(self) -> None:
        self._runtime.remove(self._id)


class DockerWarmRuntime:
    name = "docker"

    def __init__(
        self,
        instance: str,
        owner: str,
        prepare: Callable[[str], None],
        alive: Callable[[str], bool],
    ) -> None:
        """`prepare` makes an image available: the engine runtime's, so that pulls and their
        errors are handled in one place; `alive` tells whether a server instance lives."""
        self.instance = instance
        self.owner = owner
        self._alive = alive
        self._prepare = prepare
        try:
            self.control = docker.from_env(timeout=_API_TIMEOUT)
            # Output streams stay open as long as a script runs: no read timeout there (the
            # service's timeout kills the container instead).
            self.streaming = docker.from_env(timeout=None, max_pool_size=64)
        except docker.errors.DockerException as error:
            raise RuntimeUnavailable(f"no Docker Engine answers ({error})") from error

    def create(self, spec: WarmSpec, host_dir: Path) -> DockerWarmContainer:
        self._prepare(spec.image)
        options: dict[str, Any] = {
            "command": ["/bin/sh"],
            "stdin_open": True,
            "init": True,
            "labels": {
                LABEL_INSTANCE: self.instance,
                LABEL_SERVICE: spec.service,
                LABEL_ROLE: ROLE_WARM,
                LABEL_OWNER: self.owner,
            },
            "volumes": {str(host_dir): {"bind": str(WARM_MOUNT), "mode": "rw"}},
            "name": host_dir.name,
            "detach": True,
            **restricted_options(spec.limits),
        }
        try:
            container = self.control.containers.run(spec.image, **options)
        except docker.errors.ImageNotFound as error:
            raise ImageUnavailable(f"image {spec.image} is not on this host") from error
        except docker.errors.APIError as error:
            self.remove(host_dir.name)
            raise ContainerError(f"cannot start a warm container: {error.explanation}") from error
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            raise RuntimeUnavailable(
                f"Docker Engine error starting a container: {error}"
            ) from error
        return DockerWarmContainer(self, str(container.id), host_dir)

    def is_running(self, container_id: str) -> bool:
        try:
            state = self.control.api.inspect_container(container_id)["State"]
        except docker.errors.NotFound:
            return False
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return True  # unknown: let the pool's health check decide later
        return bool(state.get("Running")) and not state.get("Restarting")

    def _list(self, labels: list[str], running_only: bool) -> list[Any]:
        filters: dict[str, Any] = {"label": [f"{LABEL_INSTANCE}={self.instance}", *labels]}
        if running_only:
            filters["status"] = "running"
        return list(self.control.api.containers(all=not running_only, filters=filters))

    def running_ids(self) -> set[str] | None:
        try:
            found = self._list([f"{LABEL_OWNER}={self.owner}"], running_only=True)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            log.warning("cannot list warm containers: %s", error)
            return None
        return {str(entry["Id"]) for entry in found}

    def sweep(self) -> int:
        try:
            found = self._list([f"{LABEL_ROLE}={ROLE_WARM}"], running_only=False)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            log.warning("cannot list leftover warm containers: %s", error)
            return 0
        removed = 0
        for entry in found:
            owner = str((entry.get("Labels") or {}).get(LABEL_OWNER, ""))
            if owner != self.owner and not self._alive(owner):
                self.remove(str(entry["Id"]))
                removed += 1
        return removed

    def remove(self, container: str) -> None:
        try:
            self.control.api.remove_container(container, force=True)
        except docker.errors.NotFound:
            pass
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            log.warning("cannot remove warm container %s: %s", container[:12], error)

    def close(self) -> None:
        self.control.close()
        self.streaming.close()


class HostWarmContainer:
    """The `process` runtime's stand-in: nothing stays warm, each script is a host process
    started by the engine's own runtime (development only, like that runtime)."""

    def __init__(self, runtime: Runtime, spec: WarmSpec, host_dir: Path) -> None:
        self._runtime = runtime
        self._spec = spec
        self._host_dir = host_dir
        self._id = f"host-{uuid.uuid4().hex[:12]}"

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
        )
        execution = self._runtime.start(spec)
        try:
            return execution.wait(timeout, on_output)
        finally:
            execution.remove()

    def remove(self) -> None:
        pass


class HostWarmRuntime:
    name = "process"

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def create(self, spec: WarmSpec, host_dir: Path) -> HostWarmContainer:
        return HostWarmContainer(self._runtime, spec, host_dir)

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
    open_to_script(path)  # the container's user works in it
    return path


if TYPE_CHECKING:

    def _fits_docker(runtime: DockerWarmRuntime) -> WarmRuntime:
        return runtime

    def _fits_host(runtime: HostWarmRuntime) -> WarmRuntime:
        return runtime
