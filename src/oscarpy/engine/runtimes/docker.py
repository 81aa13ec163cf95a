"""The default runtime: one fresh container per job attempt, through the Docker Engine API.

This module is the only place that sees `docker.errors`; they leave it as the engine's own
exceptions (`RuntimeUnavailable`, `ImageUnavailable`, `ContainerError`). Containers carry the
labels `oscar.service`, `oscar.job`, `oscar.attempt` and `oscar.instance` (the installation),
so that a restarted server finds and adopts its own containers and never touches another's.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
import docker.types
import requests.exceptions

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

log = logging.getLogger(__name__)

WORK_MOUNT = PurePosixPath("/oscar-job")
"""Where the job's work directory appears inside the container."""

LABEL_SERVICE = "oscar.service"
LABEL_JOB = "oscar.job"
LABEL_ATTEMPT = "oscar.attempt"
LABEL_INSTANCE = "oscar.instance"

# Root inside the container keeps only what scripts that handle files need: no raw sockets,
# no mknod, no chroot, no audit, no setting file capabilities.
KEPT_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "SETUID", "SETGID", "KILL"]
_API_TIMEOUT = 120
_POOL_SIZE = 64
_LOG_DRAIN_SECONDS = 10
#: What dockerd keeps of a container's output on its own disk (json-file, rotated): the job log
#: is read from the attached stream, the file only serves adoption after a restart, and a log
#: flood must not fill the disk under /var/lib/docker.
LOG_FILE_MAX_SIZE = "10m"
LOG_FILE_COUNT = "3"
_IMAGE_CHECK_SECONDS = 30.0
_SIGKILL_EXIT = 137
_OOM_RECHECKS = 10
_OOM_RECHECK_INTERVAL = 0.2


def _explain(error: BaseException) -> str:
    explanation = getattr(error, "explanation", None)
    return str(explanation or error)


class DockerExecution:
    """One container of one job attempt.

    `output` is the container's attached output stream, opened before it started: attached
    output holds the container back when the reader falls behind, so a flood cannot outrun the
    supervisor's count, and nothing is lost to log rotation. An adopted container has none and
    is followed through its logs.
    """

    def __init__(self, client: Any, container: Any, output: Any | None = None) -> None:
        self._client = client
        self._container = container
        self._output = output

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
        try:
            if timeout is not None and timeout <= 0:
                raise requests.exceptions.ReadTimeout("no time left")
            status = self._container.wait(timeout=timeout if timeout is not None else None)
        except requests.exceptions.RequestException as error:
            if timeout is not None and isinstance(
                error, requests.exceptions.ReadTimeout | requests.exceptions.ConnectionError
            ):
                self.kill()
                return timed_out(timeout)
            raise RuntimeUnavailable(f"lost the Docker Engine while waiting: {error}") from error
        except docker.errors.NotFound as error:
            raise ContainerError(f"container {self.id[:12]} vanished while running") from error
        except docker.errors.DockerException as error:
            raise RuntimeUnavailable(f"Docker Engine error while waiting: {error}") from error
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
                self._container.reload()
            except (docker.errors.DockerException, requests.exceptions.RequestException):
                return False  # the daemon went away after the exit: the exit code stands
            if self._container.attrs.get("State", {}).get("OOMKilled", False):
                return True
        return False

    def _stream_output(self, on_output: OutputSink, follow_from: float | None) -> None:
        try:
            if self._output is not None:
                chunks = self._output
            else:
                options: dict[str, Any] = {"stream": True, "follow": True}
                if follow_from is not None:
                    options["since"] = float(follow_from)
                chunks = self._container.logs(**options)
            for chunk in chunks:
                on_output(chunk)
        except (
            docker.errors.DockerException,
            requests.exceptions.RequestException,
            OSError,
        ) as error:
            log.warning("stopped reading the output of %s: %s", self.id[:12], error)

    def kill(self) -> None:
        try:
            self._container.kill()
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as error:
            # "is not running" is the race we expect when the script ends on its own.
            log.debug("kill %s: %s", self.id[:12], _explain(error))
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            raise RuntimeUnavailable(f"cannot kill container {self.id[:12]}: {error}") from error

    def writable_layer(self) -> Path | None:
        data = self._container.attrs.get("GraphDriver", {}).get("Data") or {}
        upper = data.get("UpperDir")
        if not upper or not os.access(upper, os.R_OK | os.X_OK):
            return None  # another storage driver, a remote daemon, or not root on this host
        return Path(upper)

    def remove(self) -> None:
        if self._output is not None:
            _close_stream(self._output)
        try:
            self._container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as error:
            if error.status_code == 409:  # removal already in progress
                return
            raise ContainerError(
                f"cannot remove container {self.id[:12]}: {_explain(error)}"
            ) from error
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            raise RuntimeUnavailable(f"cannot remove container {self.id[:12]}: {error}") from error


def _close_stream(stream: Any) -> None:
    """Close an attached output stream, waking a reader blocked on it.

    docker-py's `CancellableStream.close` shuts the socket down, but the socket file of its
    HTTP response keeps the descriptor open until a garbage collection: close that too.
    """
    try:
        stream.close()
    except (docker.errors.DockerException, OSError) as error:
        log.debug("closing an output stream: %s", error)
    response = getattr(stream, "_response", None)
    if response is not None:
        response.close()


def restricted_options(limits: Limits) -> dict[str, Any]:
    """Container options every container of ours gets, job or warm: no privileges, only the
    capabilities a shell script commonly needs, no privilege gain, the service's limits, a cap
    on each file's size and on what dockerd keeps of the output."""
    options: dict[str, Any] = {
        "privileged": False,
        "cap_drop": ["ALL"],
        "cap_add": KEPT_CAPABILITIES,
        "security_opt": ["no-new-privileges"],
        "pids_limit": limits.pids,
        "log_config": docker.types.LogConfig(
            type="json-file", config={"max-size": LOG_FILE_MAX_SIZE, "max-file": LOG_FILE_COUNT}
        ),
    }
    if limits.disk_bytes:
        # No single file larger than the disk limit: a write past it fails (SIGXFSZ/EFBIG)
        # instead of filling the disk between two of the supervisor's checks.
        options["ulimits"] = [
            docker.types.Ulimit(name="fsize", soft=limits.disk_bytes, hard=limits.disk_bytes)
        ]
    if limits.cpu_cores:
        options["nano_cpus"] = int(limits.cpu_cores * 1e9)
    if limits.memory_bytes:
        # Equal swap limit: no swap, so a container over its memory is OOM-killed, not slowed.
        options["mem_limit"] = limits.memory_bytes
        options["memswap_limit"] = limits.memory_bytes
    return options


class DockerRuntime:
    """Runs each job attempt in a new container of the service's image."""

    name = "docker"

    def __init__(self, instance: str, client: Any | None = None) -> None:
        self.instance = instance
        self._connected: Any | None = client
        self._connect_lock = threading.Lock()
        self._pull_lock = threading.Lock()
        self._present: dict[str, float] = {}
        try:
            self._client.ping()
        except RuntimeUnavailable as error:
            # Not fatal: the API and storage work without it, and jobs are retried with
            # backoff until the engine answers.
            log.warning("%s", error)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            log.warning("the Docker Engine does not answer: %s", error)

    @property
    def _client(self) -> Any:
        """The Docker client, connected on first use and again after a failed connection."""
        with self._connect_lock:
            if self._connected is None:
                try:
                    self._connected = docker.from_env(
                        timeout=_API_TIMEOUT, max_pool_size=_POOL_SIZE
                    )
                except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
                    raise RuntimeUnavailable(
                        f"no Docker Engine answers ({e}); start dockerd, set DOCKER_HOST, "
                        "or run scripts on the host with --runtime process"
                    ) from e
            return self._connected

    def work_path(self, work_dir: Path) -> PurePosixPath:
        return WORK_MOUNT

    def prepare(self, image: str) -> None:
        # An image seen recently is not looked up again (one API call less per job); if it was
        # removed meanwhile, `start` finds out, and a retry of the job pulls it.
        if (
            time.monotonic() - self._present.get(image, -_IMAGE_CHECK_SECONDS)
            < _IMAGE_CHECK_SECONDS
        ):
            return
        try:
            self._client.images.get(image)
            self._present[image] = time.monotonic()
            return
        except docker.errors.ImageNotFound:
            pass
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            raise RuntimeUnavailable(f"Docker Engine error looking up {image}: {error}") from error
        with self._pull_lock:
            log.info("pulling image %s", image)
            repository, tag = _split_image(image)
            try:
                self._client.images.pull(repository, tag=tag)
            except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
                raise ImageUnavailable(
                    f"image {image} is not on this host and cannot be pulled: {_explain(error)}"
                ) from error
            self._present[image] = time.monotonic()

    def start(self, spec: RunSpec) -> DockerExecution:
        options: dict[str, Any] = {
            "command": ["/bin/sh", str(WORK_MOUNT / spec.script)],
            "environment": spec.environment,
            "labels": {
                LABEL_SERVICE: spec.service,
                LABEL_JOB: spec.job_id,
                LABEL_ATTEMPT: str(spec.attempt),
                LABEL_INSTANCE: self.instance,
            },
            "volumes": {str(spec.work_dir): {"bind": str(WORK_MOUNT), "mode": "rw"}},
            "name": f"oscar-job-{spec.job_id}-{spec.attempt}",
            "detach": True,
            **restricted_options(spec.limits),
        }
        try:
            container = self._client.containers.create(spec.image, **options)
        except docker.errors.ImageNotFound as error:
            self._present.pop(spec.image, None)
            raise ImageUnavailable(f"image {spec.image} is not on this host") from error
        except docker.errors.APIError as error:
            if error.status_code == 409:  # a container of this attempt survived a crash
                self._remove_named(options["name"])
                return self.start(spec)
            raise ContainerError(f"cannot create the container: {_explain(error)}") from error
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            raise RuntimeUnavailable(
                f"Docker Engine error creating a container: {error}"
            ) from error
        try:
            # Attached before it starts, so that no output is missed.
            output = container.attach(stdout=True, stderr=True, stream=True, logs=False)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            DockerExecution(self._client, container).remove()
            raise RuntimeUnavailable(f"cannot attach to the container: {error}") from error
        execution = DockerExecution(self._client, container, output)
        try:
            container.start()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            execution.remove()
            raise ContainerError(f"cannot start the container: {_explain(error)}") from error
        return execution

    def _remove_named(self, name: str) -> None:
        try:
            self._client.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            raise ContainerError(f"cannot remove the stale container {name}: {error}") from error

    def _containers(self, job_id: str | None = None, attempt: int | None = None) -> list[Any]:
        labels = [f"{LABEL_INSTANCE}={self.instance}"]
        if job_id is not None:
            labels.append(f"{LABEL_JOB}={job_id}")
        if attempt is not None:
            labels.append(f"{LABEL_ATTEMPT}={attempt}")
        try:
            # A container removed between the listing and its inspection (a job ending
            # meanwhile) is left out, not a failure of the whole listing.
            found = self._client.containers.list(
                all=True, filters={"label": labels}, ignore_removed=True
            )
            return list(found)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            raise RuntimeUnavailable(f"cannot list containers: {error}") from error

    def find(self, job_id: str, attempt: int) -> DockerExecution | None:
        containers = self._containers(job_id, attempt)
        if not containers:
            return None
        execution = DockerExecution(self._client, containers[0])
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
            DockerExecution(self._client, container).remove()

    def close(self) -> None:
        with self._connect_lock:
            if self._connected is not None:
                self._connected.close()
                self._connected = None


def _split_image(image: str) -> tuple[str, str | None]:
    """`repo[:tag]` → (repository, tag), the tag defaulting to `latest`; digests pass whole."""
    if "@" in image:
        return image, None
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = image.rsplit(":", 1)
        return repository, tag
    return image, "latest"


if TYPE_CHECKING:

    def _fits_protocol(runtime: DockerRuntime) -> Runtime:
        return runtime
