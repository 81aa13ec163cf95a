"""Warm containers on Docker: the `RunRuntime` that answers `/run`.

A warm container runs `/bin/sh` reading a stdin that never closes (so any image with `/bin/sh`
works) under docker-init, with the same restrictions as a job container. Its host directory is
bind-mounted at `RUN_MOUNT` when it is created; each request gets a fresh subdirectory and
runs through `docker exec`, as the service's user (unprivileged unless `run_as_root`), with the
contract's environment given to that exec only, never to the container's configuration.

After each request `settle` looks at the container's processes (its cgroup, read on this host,
or `docker top`): anything beyond docker-init and the resident shell was started by the
request and survives it, so the container is removed before the request's outputs are read.

Labels: `oscar.instance` (the installation), `oscar.service`, `oscar.role=warm` and
`oscar.owner` (the server process, as the ledger names it), so that a restarted server removes
the warm containers its dead predecessor left, and never another live process's.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from docker.utils.socket import frames_iter

from oscarpy.engine.errors import (
    ContainerConflict,
    ContainerError,
    ContainerGone,
    ContainerMissing,
    ImageUnavailable,
    InfrastructureError,
    RuntimeUnavailable,
)
from oscarpy.engine.ledger import owner_is_alive
from oscarpy.engine.runtimes.base import OutputSink, RunResult, result_from_exit, timed_out
from oscarpy.engine.runtimes.docker import DockerRuntime
from oscarpy.engine.runtimes.docker_api import (
    LABEL_INSTANCE,
    LABEL_SERVICE,
    restricted_options,
    translated,
)
from oscarpy.engine.runtimes.warm import WarmSpec

if TYPE_CHECKING:
    from oscarpy.engine.runtimes.warm import RunRuntime

log = logging.getLogger(__name__)

RUN_MOUNT = PurePosixPath("/oscar-run")
LABEL_ROLE = "oscar.role"
LABEL_OWNER = "oscar.owner"
ROLE_WARM = "warm"
"""The role label's value, kept from before `/run` had one name (containers left by an older
server are still found and swept)."""
RESIDENT_PROCESSES = 2
"""docker-init and the shell that keeps the container alive."""
_RESIDENT_WAIT_SECONDS = 10.0
_SETTLE_CHECKS = 3
_SETTLE_INTERVAL = 0.02


class DockerWarmContainer:
    def __init__(
        self,
        runtime: DockerRunRuntime,
        container_id: str,
        host_dir: Path,
        spec: WarmSpec,
        resident: frozenset[int],
        procs_file: Path | None,
    ) -> None:
        self._runtime = runtime
        self._id = container_id
        self._host_dir = host_dir
        self._spec = spec
        self._resident = resident
        self._procs_file = procs_file
        self.timed_out = False

    @property
    def id(self) -> str:
        return self._id

    @property
    def host_dir(self) -> Path:
        return self._host_dir

    def path_of(self, host_path: Path) -> PurePosixPath:
        return RUN_MOUNT / host_path.relative_to(self._host_dir).as_posix()

    def run(
        self,
        work_dir: Path,
        script: str,
        environment: dict[str, str],
        timeout: float | None,
        on_output: OutputSink,
    ) -> RunResult:
        connection = self._runtime.connection
        mount = self.path_of(work_dir)
        try:
            with translated(f"cannot exec in {self._id[:12]}"):
                exec_id = connection.api.exec_create(
                    self._id,
                    ["/bin/sh", str(mount / script)],
                    stdout=True,
                    stderr=True,
                    environment=environment,
                    workdir=str(mount),
                    user=self._spec.user or "",
                )["Id"]
        except ContainerMissing as error:
            raise ContainerGone(f"warm container {self._id[:12]} is gone") from error
        except ContainerConflict as error:  # "container … is not running"
            raise ContainerGone(f"warm container {self._id[:12]} stopped") from error
        except RuntimeUnavailable as error:
            raise RuntimeUnavailable(f"Docker Engine error starting the script: {error}") from error
        timer = None
        if timeout is not None:
            # The Engine API cannot kill one exec: the container goes, and is replaced.
            timer = threading.Timer(max(timeout, 0.0), self._time_out)
            timer.daemon = True
            timer.start()
        try:
            with translated(f"lost the script in {self._id[:12]}"):
                self._stream(exec_id, on_output)
                state = connection.api.exec_inspect(exec_id)
        except (InfrastructureError, OSError) as error:
            if self.timed_out and timeout is not None:
                return timed_out(timeout)
            raise ContainerError(str(error)) from error
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

    def _stream(self, exec_id: str, on_output: OutputSink) -> None:
        connection = self._runtime.connection
        sock = connection.stream_socket(connection.api.exec_start(exec_id, socket=True))
        try:
            for _stream, chunk in frames_iter(sock, False):
                on_output(chunk)
        finally:
            _close_socket(sock)

    def _time_out(self) -> None:
        self.timed_out = True
        try:
            with translated(f"cannot kill warm container {self._id[:12]} after its timeout"):
                self._runtime.connection.api.kill(self._id)
        except InfrastructureError as error:
            log.warning("%s", error)

    def settle(self) -> bool:
        for check in range(_SETTLE_CHECKS):
            if check:
                time.sleep(_SETTLE_INTERVAL)  # an exec's process may still be on its way out
            processes = self.processes()
            if processes is None or not self._resident <= processes:
                return False  # unknown, or the resident shell died: the container goes
            if processes == self._resident:
                return True
        log.warning(
            "a /run request left processes behind in warm container %s; it is replaced",
            self._id[:12],
        )
        return False

    def processes(self) -> frozenset[int] | None:
        """The host ids of the container's processes; `None` if they cannot be known."""
        if self._procs_file is not None:
            try:
                return frozenset(int(line) for line in self._procs_file.read_text().split())
            except (OSError, ValueError):
                return None
        return self._runtime.top(self._id)

    def remove(self) -> None:
        self._runtime.remove(self._id)


class DockerRunRuntime:
    """Warm containers through the job runtime's Docker connection (one client per process)."""

    name = "docker"

    def __init__(self, jobs: DockerRuntime, owner: str) -> None:
        self.connection = jobs.connection
        self.instance = jobs.instance
        self.owner = owner
        # The job runtime's: pulls and their errors are handled in one place.
        self._prepare = jobs.prepare

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
            "volumes": {str(host_dir): {"bind": str(RUN_MOUNT), "mode": "rw"}},
            "name": host_dir.name,
            "detach": True,
            **restricted_options(spec.limits, network=spec.network),
        }
        if spec.user is not None:
            # The resident shell runs as root, out of reach of the requests' unprivileged
            # scripts (they cannot signal or trace it).
            options["user"] = "root"
        try:
            with translated("cannot start a warm container"):
                container = self.connection.client.containers.run(spec.image, **options)
        except ImageUnavailable as error:
            raise ImageUnavailable(f"image {spec.image} is not on this host") from error
        except ContainerError:
            self.remove(host_dir.name)
            raise
        container_id = str(container.id)
        try:
            resident, procs_file = self._resident(container_id)
        except InfrastructureError:
            self.remove(container_id)
            raise
        return DockerWarmContainer(self, container_id, host_dir, spec, resident, procs_file)

    def _resident(self, container_id: str) -> tuple[frozenset[int], Path | None]:
        """The processes that keep the container alive (docker-init and its shell), once both
        run, and the file of its cgroup that lists its processes, if this host has it."""
        with translated(f"cannot inspect warm container {container_id[:12]}"):
            init = int(self.connection.api.inspect_container(container_id)["State"]["Pid"])
        procs_file = _cgroup_procs_file(init)
        deadline = time.monotonic() + _RESIDENT_WAIT_SECONDS
        while True:
            if procs_file is not None:
                try:
                    found: frozenset[int] | None = frozenset(
                        int(line) for line in procs_file.read_text().split()
                    )
                except (OSError, ValueError):
                    found = None
            else:
                found = self.top(container_id)
            if found is not None and len(found) == RESIDENT_PROCESSES and init in found:
                return found, procs_file
            if time.monotonic() > deadline:
                raise ContainerError(
                    f"warm container {container_id[:12]} did not settle: processes {found}"
                )
            time.sleep(0.01)

    def top(self, container_id: str) -> frozenset[int] | None:
        try:
            with translated(f"cannot list the processes of {container_id[:12]}"):
                listing = self.connection.api.top(container_id)
        except InfrastructureError:
            return None
        column = listing["Titles"].index("PID")
        return frozenset(int(row[column]) for row in listing["Processes"] or [])

    def is_running(self, container_id: str) -> bool:
        try:
            with translated("inspect"):
                state = self.connection.api.inspect_container(container_id)["State"]
        except ContainerMissing:
            return False
        except InfrastructureError:
            return True  # unknown: let the pool's health check decide later
        return bool(state.get("Running")) and not state.get("Restarting")

    def _list(self, labels: list[str], running_only: bool) -> list[Any]:
        filters: dict[str, Any] = {"label": [f"{LABEL_INSTANCE}={self.instance}", *labels]}
        if running_only:
            filters["status"] = "running"
        with translated("cannot list warm containers"):
            return list(self.connection.api.containers(all=not running_only, filters=filters))

    def running_ids(self) -> set[str] | None:
        try:
            found = self._list([f"{LABEL_OWNER}={self.owner}"], running_only=True)
        except InfrastructureError as error:
            log.warning("%s", error)
            return None
        return {str(entry["Id"]) for entry in found}

    def sweep(self) -> int:
        try:
            found = self._list([f"{LABEL_ROLE}={ROLE_WARM}"], running_only=False)
        except InfrastructureError as error:
            log.warning("%s", error)
            return 0
        removed = 0
        for entry in found:
            owner = str((entry.get("Labels") or {}).get(LABEL_OWNER, ""))
            if owner != self.owner and owner_is_alive(owner, self.owner) is False:
                self.remove(str(entry["Id"]))
                removed += 1
        return removed

    def remove(self, container: str) -> None:
        try:
            with translated(f"cannot remove warm container {container[:12]}"):
                self.connection.api.remove_container(container, force=True)
        except ContainerMissing:
            pass
        except InfrastructureError as error:
            log.warning("%s", error)

    def close(self) -> None:
        """The connection is the job runtime's, closed with it."""


def _close_socket(sock: Any) -> None:
    """Close an exec's socket and the HTTP response it came with (which holds its descriptor
    until a garbage collection otherwise)."""
    response = getattr(sock, "_response", None)
    for closeable in (response, sock):
        try:
            if closeable is not None:
                closeable.close()
        except (OSError, ValueError) as error:
            log.debug("closing an exec stream: %s", error)


def _cgroup_procs_file(pid: int) -> Path | None:
    """The `cgroup.procs` of the cgroup `pid` is in (v2, or v1's pids controller), when this
    host shows it (the daemon is local and the server may read it)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    candidates = []
    for line in lines:
        _number, controllers, path = line.split(":", 2)
        if controllers == "pids":
            candidates.append(Path("/sys/fs/cgroup/pids") / path.lstrip("/") / "cgroup.procs")
        elif controllers == "" and _number == "0":
            candidates.append(Path("/sys/fs/cgroup") / path.lstrip("/") / "cgroup.procs")
    for candidate in candidates:
        try:
            if str(pid) in candidate.read_text().split():
                return candidate
        except OSError:
            continue
    return None


if TYPE_CHECKING:

    def _fits_protocol(runtime: DockerRunRuntime) -> RunRuntime:
        return runtime
