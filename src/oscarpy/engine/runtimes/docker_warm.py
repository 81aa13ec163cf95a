"""Warm containers on Docker: the `RunRuntime` that answers `/run`.

A warm container runs the agent (`agent.c`, mounted read-only at `AGENT_MOUNT`) under
docker-init, with the same restrictions as a job container plus a read-only root and a tmpfs
`/tmp`. Its host directory is bind-mounted at `RUN_MOUNT` when it is created; each request gets
a fresh subdirectory, and the agent runs the script there as the service's unprivileged user,
with the contract's environment given to that call only, never to the container's
configuration. Without the agent (no C compiler, or `run_as_root`), the container runs
`/bin/sh` reading a stdin that never closes and each request runs through `docker exec`.

After each request `settle` looks at the container's processes (its cgroup, read on this host,
or `docker top`): anything beyond docker-init and the resident shell was started by the
request and survives it, so the container is removed before the request's outputs are read.

Labels: `oscar.instance` (the installation), `oscar.service`, `oscar.role=warm` and
`oscar.owner` (the server process, as the ledger names it), so that a restarted server removes
the warm containers its dead predecessor left, and never another live process's.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
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
from oscarpy.engine.runtimes import agent
from oscarpy.engine.runtimes.base import OutputSink, RunResult, result_from_exit, timed_out
from oscarpy.engine.runtimes.docker import DockerRuntime
from oscarpy.engine.runtimes.docker_api import (
    LABEL_INSTANCE,
    LABEL_OWNER,
    LABEL_ROLE,
    LABEL_SERVICE,
    remove_by_id,
    restricted_options,
    translated,
)
from oscarpy.engine.runtimes.warm import RUN_MOUNT, WarmSpec

if TYPE_CHECKING:
    from oscarpy.engine.runtimes.warm import RunRuntime

log = logging.getLogger(__name__)

AGENT_MOUNT = PurePosixPath("/oscar-agent")
AGENT_DIR = ".agent"
"""Under a container's host directory, root's only (the scripts run unprivileged): the
agent's socket."""
TMP_SIZE = 64 * 1024 * 1024
"""The size of `/tmp` (a tmpfs, counted in the container's memory) when no disk limit is set."""
ROLE_WARM = "warm"
"""The role label's value, kept from before `/run` had one name (containers left by an older
server are still found and swept)."""
RESIDENT_PROCESSES = 2
"""docker-init and the shell (or the agent) that keeps the container alive."""
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
        agent_socket: agent.AgentAddress | None = None,
    ) -> None:
        self._runtime = runtime
        self._id = container_id
        self._host_dir = host_dir
        self._spec = spec
        self._resident = resident
        self._procs_file = procs_file
        self._agent_socket = agent_socket
        self._oom_file = None if agent_socket is None else _cgroup_file(min(resident), "memory")
        self.timed_out = False

    @property
    def through_agent(self) -> bool:
        """Whether calls go through the agent (else through `docker exec`)."""
        return self._agent_socket is not None

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
        if self._agent_socket is not None:
            return self._run_through_agent(
                self._agent_socket, work_dir, script, environment, timeout, on_output
            )
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

    def _run_through_agent(
        self,
        socket_path: agent.AgentAddress,
        work_dir: Path,
        script: str,
        environment: dict[str, str],
        timeout: float | None,
        on_output: OutputSink,
    ) -> RunResult:
        uid, _, gid = (self._spec.user or "").partition(":")
        ooms = self._oom_kills()
        mount = self.path_of(work_dir)
        end = agent.call(
            socket_path,
            (int(uid), int(gid or uid)),
            timeout,
            str(mount),
            str(mount / script),
            environment,
            on_output,
        )
        if end.timed_out and timeout is not None:
            return timed_out(timeout)
        oom = ooms is not None and (self._oom_kills() or 0) > ooms
        return result_from_exit(end.exit_code, oom=oom)

    def _oom_kills(self) -> int | None:
        """How often the kernel killed a process of the container for memory (`oom_kill` of
        its memory cgroup); `None` where that cannot be read."""
        if self._oom_file is None:
            return None
        try:
            for line in self._oom_file.read_text().splitlines():
                name, _, count = line.partition(" ")
                if name == "oom_kill":
                    return int(count)
        except (OSError, ValueError):
            return None
        return None

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
        self._kill("after its timeout")

    def stop(self) -> None:
        # A kill, not a removal: the agent's socket stays open until `remove`, so that a call
        # on its way never reaches another container through a reused descriptor.
        self._kill("to stop its call")

    def _kill(self, why: str) -> None:
        try:
            with translated(f"cannot kill warm container {self._id[:12]} {why}"):
                self._runtime.connection.api.kill(self._id)
        except ContainerMissing:
            pass
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
        if self._agent_socket is not None:
            self._agent_socket.close()


class DockerRunRuntime:
    """Warm containers through the job runtime's Docker connection (one client per process)."""

    name = "docker"

    def __init__(
        self,
        jobs: DockerRuntime,
        owner: str,
        alive: Callable[[str], bool],
        agent_root: Path | None = None,
    ) -> None:
        """`alive` tells whether a server instance holds a running lease; `agent_root` is where
        the agent is built (`None`: no agent, calls go through `docker exec`)."""
        self.connection = jobs.connection
        self.instance = jobs.instance
        self.owner = owner
        self._alive = alive
        # The job runtime's: pulls and their errors are handled in one place.
        self._prepare = jobs.prepare
        self._agent_root = agent_root
        self._agent_dir: Path | None = None
        self._agent_lock = threading.Lock()

    def _agent(self) -> Path | None:
        """The built agent's directory, built at the first warm container that uses it."""
        with self._agent_lock:
            if self._agent_root is not None and self._agent_dir is None:
                self._agent_dir = agent.build(self._agent_root)
                self._agent_root = None  # built, or failed: not tried again
            return self._agent_dir

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
        # The agent runs root's calls' scripts as the service's unprivileged user, out of their
        # reach; a service whose scripts run as root keeps `docker exec`.
        agent_dir = self._agent() if spec.user is not None else None
        control = None
        if agent_dir is not None:
            control = host_dir / AGENT_DIR
            control.mkdir(mode=0o700)
            remapped_root = self.connection.remapped_root()
            if remapped_root != (0, 0) and os.geteuid() == 0:
                os.chown(control, *remapped_root)  # the agent, root inside, makes its socket
            options["command"] = [
                str(AGENT_MOUNT / agent.BINARY),
                str(RUN_MOUNT / AGENT_DIR / agent.AgentAddress.SOCKET),
            ]
            options["stdin_open"] = False
            options["volumes"][str(agent_dir)] = {"bind": str(AGENT_MOUNT), "mode": "ro"}
            # Nothing writable survives a call: the root file system is read-only, /tmp a
            # tmpfs the agent empties (with /dev/shm) after each call.
            options["read_only"] = True
            size = spec.limits.disk_bytes or TMP_SIZE
            options["tmpfs"] = {"/tmp": f"rw,nosuid,nodev,mode=1777,size={size}"}
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
        agent_socket = None if control is None else agent.AgentAddress(control)
        try:
            if agent_socket is not None:
                agent.wait_until_listening(agent_socket)
            resident, procs_file = self._resident(container_id)
        except InfrastructureError:
            self.remove(container_id)
            if agent_socket is not None:
                agent_socket.close()
            raise
        return DockerWarmContainer(
            self, container_id, host_dir, spec, resident, procs_file, agent_socket
        )

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
            if owner != self.owner and not self._alive(owner):
                self.remove(str(entry["Id"]))
                removed += 1
        return removed

    def remove(self, container: str) -> None:
        remove_by_id(self.connection.api, container, "warm container")

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
    return _cgroup_file(pid, "pids")


_CONTROLLER_FILES = {
    "pids": ("cgroup.procs", "cgroup.procs"),
    "memory": ("memory.oom_control", "memory.events"),
}
"""Per controller, the file read under cgroup v1 and under v2 (both `oom_kill N` for memory)."""


def _cgroup_file(pid: int, controller: str) -> Path | None:
    """A file of the cgroup `pid` is in for `controller` (v2, or v1's), when this host shows
    it; for `pids`, only one that lists `pid`."""
    v1_name, v2_name = _CONTROLLER_FILES[controller]
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    candidates = []
    for line in lines:
        _number, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            candidates.append(Path("/sys/fs/cgroup", controller, path.lstrip("/"), v1_name))
        elif controllers == "" and _number == "0":
            candidates.append(Path("/sys/fs/cgroup") / path.lstrip("/") / v2_name)
    for candidate in candidates:
        try:
            text = candidate.read_text()
        except OSError:
            continue
        if controller != "pids" or str(pid) in text.split():
            return candidate
    return None


if TYPE_CHECKING:

    def _fits_protocol(runtime: DockerRunRuntime) -> RunRuntime:
        return runtime
