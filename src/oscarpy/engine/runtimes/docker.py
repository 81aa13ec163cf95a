"""The default runtime: one fresh container per job attempt, through the Docker Engine API.

Docker is reached only through the adapter (`docker_api`: one client, one error translation).
Containers carry the labels `oscar.service`, `oscar.job`, `oscar.attempt` and `oscar.instance`
(the installation), so that a restarted server finds and adopts its own containers and never
touches another's.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from docker.utils.socket import frames_iter

from oscarpy.engine.errors import (
    ContainerConflict,
    ContainerError,
    ContainerMissing,
    ImageUnavailable,
    InfrastructureError,
    RuntimeLost,
    RuntimeUnavailable,
)
from oscarpy.engine.runtimes.base import (
    ImagePull,
    OutputSink,
    RunResult,
    RunSpec,
    Runtime,
    result_from_exit,
    timed_out,
)
from oscarpy.engine.runtimes.docker_api import (
    LABEL_ATTEMPT,
    LABEL_INSTANCE,
    LABEL_JOB,
    LABEL_SERVICE,
    DockerConnection,
    ImagePuller,
    restricted_options,
    translated,
)
from oscarpy.engine.runtimes.network_holders import NetworkHolder, NetworkHolders, joined
from oscarpy.engine.safefs import open_dir, write_new_at

log = logging.getLogger(__name__)

WORK_MOUNT = PurePosixPath("/oscar-job")
"""Where the job's work directory appears inside the container."""
ENVIRONMENT_FILE = ".oscar-environment"
"""In the work directory: the contract's variables, read by the script's shell."""
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LOG_DRAIN_SECONDS = 10
_SIGKILL_EXIT = 137
_OOM_RECHECKS = 10
_OOM_RECHECK_INTERVAL = 0.2


class DockerExecution:
    """One container of one job attempt.

    `output` is the container's attached output stream, opened before it started: attached
    output holds the container back when the reader falls behind, so a flood cannot outrun the
    supervisor's count, and nothing is lost to log rotation. An adopted container has none and
    is followed through its logs. `holder` is the network namespace it joined, given back to
    `networks` once the container has exited (no process of it is left there), else removed.
    """

    def __init__(
        self,
        container: Any,
        output: AttachedOutput | None = None,
        remover: Remover | None = None,
        holder: tuple[NetworkHolders, NetworkHolder] | None = None,
    ) -> None:
        self._container = container
        self._output = output
        self._remover = remover
        self._holder = holder
        self._exited = False

    @property
    def id(self) -> str:
        return str(self._container.id)

    def wait(
        self, timeout: float | None, on_output: OutputSink, *, follow_from: float | None = None
    ) -> RunResult:
        reader = threading.Thread(
            target=self._stream_output,
            args=(on_output, follow_from),
            name=f"logs-{self.id[:12]}",
            daemon=True,
        )
        reader.start()
        result = self._wait_exit(timeout)
        reader.join(_LOG_DRAIN_SECONDS)
        return result

    def _wait_exit(self, timeout: float | None) -> RunResult:
        if timeout is not None and timeout <= 0:
            self.kill()
            return timed_out(timeout)
        try:
            with translated("waiting for the container"):
                status = self._container.wait(timeout=timeout)
        except RuntimeLost:
            if timeout is None:
                raise
            self.kill()
            return timed_out(timeout)
        except ContainerMissing as error:
            raise ContainerError(f"container {self.id[:12]} vanished while running") from error
        self._exited = True
        exit_code = int(status.get("StatusCode", -1))
        return result_from_exit(exit_code, oom=self._was_oom_killed(exit_code))

    def _was_oom_killed(self, exit_code: int) -> bool:
        """Whether the kernel's OOM killer ended the container.

        containerd reports the OOM event asynchronously: on a loaded host the exit can be
        seen before `OOMKilled` is set, so a SIGKILL exit is looked at again for a moment.
        """
        checks = _OOM_RECHECKS if exit_code == _SIGKILL_EXIT else 1
        for check in range(checks):
            if check:
                time.sleep(_OOM_RECHECK_INTERVAL)
            try:
                with translated("inspecting the container"):
                    self._container.reload()
            except InfrastructureError:
                return False  # the daemon went away after the exit: the exit code stands
            if self._container.attrs.get("State", {}).get("OOMKilled", False):
                return True
        return False

    def _stream_output(self, on_output: OutputSink, follow_from: float | None) -> None:
        try:
            with translated("reading the output"):
                chunks: Iterable[bytes]
                if self._output is not None:
                    chunks = self._output
                else:
                    options: dict[str, Any] = {"stream": True, "follow": True}
                    if follow_from is not None:
                        options["since"] = float(follow_from)
                    chunks = self._container.logs(**options)
                for chunk in chunks:
                    on_output(chunk)
        except (InfrastructureError, OSError) as error:
            log.warning("stopped reading the output of %s: %s", self.id[:12], error)

    def kill(self) -> None:
        try:
            with translated(f"cannot kill container {self.id[:12]}"):
                self._container.kill()
        except ContainerMissing:
            pass
        except RuntimeUnavailable:
            raise
        except ContainerError as error:
            # "is not running" is the race we expect when the script ends on its own.
            log.debug("%s", error)

    def writable_layer(self) -> Path | None:
        if "GraphDriver" not in self._container.attrs:  # created here: not inspected yet
            try:
                with translated("inspecting the container"):
                    self._container.reload()
            except InfrastructureError as error:
                log.warning("cannot find the writable layer of %s: %s", self.id[:12], error)
                return None
        data = self._container.attrs.get("GraphDriver", {}).get("Data") or {}
        upper = data.get("UpperDir")
        if not upper or not os.access(upper, os.R_OK | os.X_OK):
            return None  # another storage driver, a remote daemon, or not root on this host
        return Path(upper)

    def remove(self) -> None:
        """Remove the container: in the background when the runtime started it (its removal
        no longer holds the attempt's slot), at once otherwise."""
        if self._output is not None:
            self._output.close()
        if self._holder is not None:
            (networks, holder), self._holder = self._holder, None
            if self._exited:
                networks.give_back(holder)
            else:
                networks.discard(holder)
        if self._remover is not None:
            self._remover.submit(self._container)
        else:
            remove_container(self._container)


def remove_container(container: Any) -> None:
    try:
        with translated(f"cannot remove container {str(container.id)[:12]}"):
            container.remove(force=True)
    except (ContainerMissing, ContainerConflict):
        pass  # gone already, or its removal is in progress


_RETRY = object()
_CLOSE = object()
PARALLEL_REMOVALS = 8
"""Ended jobs' containers removed at once. They have exited, so their network was released
then; a running container with a network of its own is removed alone (`network_holders`)."""


class Remover:
    """Removes the containers of ended attempts on a thread of its own.

    A removal (unmounting and deleting the container's layer) takes the daemon tens of
    milliseconds, hundreds under load; made in the job's thread, it held the attempt's slot
    and kept the next job from starting. A removal that fails is tried again every
    `RETRY_SECONDS`; `close` waits for every removal; what a stopped daemon kept is swept at the
    next start (`recovery`).
    """

    RETRY_SECONDS = 5.0
    CLOSE_SECONDS = 60.0

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, container: Any) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="docker-remover", daemon=True
                )
                self._thread.start()
        self._queue.put(container)

    def _run(self) -> None:
        failed: list[Any] = []
        while True:
            try:
                first = self._queue.get(timeout=self.RETRY_SECONDS if failed else None)
            except queue.Empty:
                first = _RETRY
            received = [first, *self._waiting()]
            containers = [item for item in received if item is not _RETRY and item is not _CLOSE]
            failed = self._remove(failed + containers)
            if any(item is _CLOSE for item in received):
                return  # what a stopped daemon kept is swept at the next start

    def _waiting(self) -> list[Any]:
        """What else was submitted meanwhile: removed together, several at once (a burst of
        ended jobs, or a stopping server, must not wait for one removal after the other)."""
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    @staticmethod
    def _remove(containers: list[Any]) -> list[Any]:
        """Remove the containers; returns those to try again."""
        failed: list[Any] = []

        def remove(container: Any) -> None:
            try:
                remove_container(container)
            except InfrastructureError as error:
                log.warning("%s (tried again in %g s)", error, Remover.RETRY_SECONDS)
                failed.append(container)
            except Exception:  # a bug must not stop the removals of the next jobs
                log.exception("removing container %s", str(container.id)[:12])

        if len(containers) > 1:
            with ThreadPoolExecutor(min(len(containers), PARALLEL_REMOVALS)) as executor:
                list(executor.map(remove, containers))
        elif containers:
            remove(containers[0])
        return failed

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_CLOSE)
            thread.join(self.CLOSE_SECONDS)


class AttachedOutput:
    """A container's attached stdout and stderr, as the chunks the script printed.

    Attached through the low-level API: docker-py's `attach` inspects the container first to
    learn whether it has a TTY, which ours never have.
    """

    def __init__(self, connection: DockerConnection, container_id: str) -> None:
        params = {"stdout": 1, "stderr": 1, "stream": 1}
        self._socket = connection.stream_socket(
            connection.api.attach_socket(container_id, params=params)
        )

    def __iter__(self) -> Iterator[bytes]:
        for _stream, chunk in frames_iter(self._socket, False):
            yield chunk

    def close(self) -> None:
        """Close the stream, waking a reader blocked on it (shutting the socket down does; the
        HTTP response it came with holds the descriptor until a garbage collection otherwise)."""
        underlying = getattr(self._socket, "_sock", self._socket)
        try:
            underlying.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError) as error:
            log.debug("closing an output stream: %s", error)
        for closeable in (getattr(self._socket, "_response", None), self._socket):
            try:
                if closeable is not None:
                    closeable.close()
            except (OSError, ValueError) as error:
                log.debug("closing an output stream: %s", error)


class DockerRuntime:
    """Runs each job attempt in a new container of the service's image."""

    name = "docker"

    def __init__(
        self, instance: str, connection: DockerConnection | None = None, *, owner: str = ""
    ) -> None:
        self.instance = instance
        self.connection = connection or DockerConnection()
        """Shared with the `/run` runtime (`docker_warm.DockerRunRuntime`)."""
        self.images = ImagePuller(self.connection)
        self.remover = Remover()
        self.networks = NetworkHolders(self.connection, instance, owner)
        try:
            self.connection.ping()
        except RuntimeUnavailable as error:
            # Not fatal: the API and storage work without it, and jobs are retried with
            # backoff until the engine answers.
            log.warning("%s", error)

    @property
    def _client(self) -> Any:
        return self.connection.client

    def work_path(self, work_dir: Path) -> PurePosixPath:
        return WORK_MOUNT

    def prepare(self, image: str, pull: ImagePull | None = None) -> None:
        self.images.ensure(image, pull)

    def start(self, spec: RunSpec) -> DockerExecution:
        # The contract's variables (the service's token and secrets among them) reach the
        # script through a file its shell reads, not the container's configuration, which
        # `docker inspect` shows to anyone who may use the Docker Engine.
        shown = write_environment_file(
            spec.work_dir / ENVIRONMENT_FILE,
            spec.environment,
            spec.user,
            self.connection.remapped_root(),
        )
        holder = self.networks.lend(spec)
        try:
            return self._start(spec, shown, holder)
        except ContainerError:
            if holder is None:
                raise
            # The holder may have gone (removed by hand, its daemon restarted): once more
            # without it, and it is not lent again.
            self.networks.discard(holder, failed=True)
            return self._start(spec, shown, None)
        except BaseException:
            if holder is not None:
                self.networks.discard(holder)
            raise

    def _start(
        self, spec: RunSpec, environment: dict[str, str], holder: NetworkHolder | None
    ) -> DockerExecution:
        name = f"oscar-job-{spec.job_id}-{spec.attempt}"
        try:
            with translated("cannot create the container"):
                container = self._create(spec, name, environment, holder)
        except ImageUnavailable as error:
            self.images.forget(spec.image)
            raise ImageUnavailable(f"image {spec.image} is not on this host") from error
        except ContainerConflict:  # a container of this attempt survived a crash
            self._remove_named(name)
            return self._start(spec, environment, holder)
        try:
            # Attached before it starts, so that no output is missed.
            with translated("cannot attach to the container"):
                output = AttachedOutput(self.connection, container.id)
        except InfrastructureError:
            DockerExecution(container).remove()
            raise
        try:
            with translated("cannot start the container"):
                container.start()
        except InfrastructureError as error:
            DockerExecution(container, output).remove()
            raise ContainerError(str(error)) from error
        lent = None if holder is None else (self.networks, holder)
        return DockerExecution(container, output, self.remover, lent)

    def _create(
        self,
        spec: RunSpec,
        name: str,
        environment: dict[str, str],
        holder: NetworkHolder | None,
    ) -> Any:
        """Create the attempt's container through the low-level API: docker-py's
        `containers.create` inspects the new container before returning it, a round trip
        before the script starts that only `writable_layer` needs (it inspects later, while the
        script runs)."""
        api = self.connection.api
        binds = {
            str(spec.work_dir): {"bind": str(WORK_MOUNT), "mode": "rw"},
            **_mounted(spec.work_dir),
        }
        options = restricted_options(spec.limits, network=spec.network)
        if holder is not None:
            binds.update(holder.binds)
            options = joined(options, holder)
        host_config = api.create_host_config(binds=binds, **options)
        created = api.create_container(
            spec.image,
            command=script_command(spec.script),
            environment=environment,
            labels={
                LABEL_SERVICE: spec.service,
                LABEL_JOB: spec.job_id,
                LABEL_ATTEMPT: str(spec.attempt),
                LABEL_INSTANCE: self.instance,
            },
            name=name,
            user=spec.user,
            host_config=host_config,
        )
        return self._client.containers.prepare_model({"Id": created["Id"]})

    def _remove_named(self, name: str) -> None:
        try:
            with translated(f"cannot remove the stale container {name}"):
                self._client.containers.get(name).remove(force=True)
        except ContainerMissing:
            pass
        except InfrastructureError as error:
            raise ContainerError(str(error)) from error

    def _containers(self, job_id: str | None = None, attempt: int | None = None) -> list[Any]:
        labels = [f"{LABEL_INSTANCE}={self.instance}"]
        if job_id is not None:
            labels.append(f"{LABEL_JOB}={job_id}")
        if attempt is not None:
            labels.append(f"{LABEL_ATTEMPT}={attempt}")
        try:
            # A container removed between the listing and its inspection (a job ending
            # meanwhile) is left out, not a failure of the whole listing.
            with translated("cannot list containers"):
                found = self._client.containers.list(
                    all=True, filters={"label": labels}, ignore_removed=True
                )
            return list(found)
        except InfrastructureError as error:
            raise RuntimeUnavailable(str(error)) from error

    def find(self, job_id: str, attempt: int) -> DockerExecution | None:
        containers = self._containers(job_id, attempt)
        if not containers:
            return None
        execution = DockerExecution(containers[0])
        if containers[0].status == "created":
            # Created but never started (the server died in between): nothing to adopt, and
            # waiting on it would report a success that never ran.
            execution.remove()
            return None
        return execution

    def job_ids(self) -> set[str]:
        return {c.labels[LABEL_JOB] for c in self._containers() if LABEL_JOB in c.labels}

    def remove_job(self, job_id: str) -> None:
        """Kill and remove every container of a job (used when the job is deleted)."""
        for container in self._containers(job_id):
            DockerExecution(container).remove()

    def remove_left_by(self, owner: str) -> None:
        self.networks.remove_owned_by(owner)

    def forget_service(self, service: str) -> None:
        self.networks.forget(service)

    def close(self) -> None:
        self.networks.close()
        self.remover.close()
        self.connection.close()


def _mounted(work_dir: Path) -> dict[str, dict[str, str]]:
    """OSCAR's `mount`, staged in `mnt/` of the work directory: read-only at `/mnt`."""
    staged = work_dir / "mnt"  # contract.MOUNT_DIR
    return {str(staged): {"bind": "/mnt", "mode": "ro"}} if staged.is_dir() else {}


def script_command(script: str) -> list[str]:
    """The container's command: source the environment file, then run the script, so that
    secrets reach the script without being in the container's configuration."""
    return [
        "/bin/sh",
        "-c",
        '. "$1" && exec /bin/sh "$2"',
        "sh",
        str(WORK_MOUNT / ENVIRONMENT_FILE),
        str(WORK_MOUNT / script),
    ]


def write_environment_file(
    path: Path,
    environment: dict[str, str],
    user: str | None,
    remapped_root: tuple[int, int] = (0, 0),
) -> dict[str, str]:
    """Write the variables whose names a shell can export to `path` as `export NAME='value'`
    lines, readable by the script's `user` only where this process may give it the file (the
    host's uid and gid of that user are offset by `remapped_root` under userns-remap); returns
    the others (names such as `my.var`, which only the container's configuration can carry)."""
    lines = []
    shown = {}
    for name, value in environment.items():
        if _SHELL_NAME.fullmatch(name):
            quoted = value.replace("'", "'\\''")
            lines.append(f"export {name}='{quoted}'\n")
        else:
            shown[name] = value
    directory = open_dir(path.parent)
    try:
        try:
            os.unlink(path.name, dir_fd=directory)  # left by a container of a crashed start
        except FileNotFoundError:
            pass
        write_new_at(directory, path.name, "".join(lines).encode(), 0o444)
        if user is not None and os.geteuid() == 0:
            uid, _, gid = user.partition(":")
            descriptor = os.open(path.name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=directory)
            try:
                os.fchown(
                    descriptor,
                    remapped_root[0] + int(uid),
                    remapped_root[1] + int(gid or uid),
                )
                os.fchmod(descriptor, 0o400)
            finally:
                os.close(descriptor)
    finally:
        os.close(directory)
    return shown


if TYPE_CHECKING:

    def _fits_protocol(runtime: DockerRuntime) -> Runtime:
        return runtime
