"""The one Docker adapter: the process's one client, and the one place Docker errors are named.

Every call to the Docker Engine goes through `DockerConnection.client` inside `translated`,
which turns docker-py's and requests' exceptions into the engine's own (as httpx's transport
maps httpcore's errors in one context manager):

    docker.errors.ImageNotFound                  → ImageUnavailable
    docker.errors.NotFound                       → ContainerMissing
    docker.errors.APIError 409                   → ContainerConflict
    docker.errors.APIError (any other)           → ContainerError
    requests ReadTimeout / ConnectionError       → RuntimeLost
    any other DockerException/RequestException   → RuntimeUnavailable

The job runtime (`docker`) and the `/run` runtime (`docker_warm`) share the connection, the
labels and the restrictions every container of ours gets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import Any

import docker
import docker.errors
import docker.types
import requests.exceptions

from oscarpy.engine.errors import (
    ContainerConflict,
    ContainerError,
    ContainerMissing,
    ImageUnavailable,
    InfrastructureError,
    RuntimeLost,
    RuntimeUnavailable,
)
from oscarpy.engine.runtimes.base import ImagePull, Limits, PullPolicy

log = logging.getLogger(__name__)

LABEL_SERVICE = "oscar.service"
LABEL_JOB = "oscar.job"
LABEL_ATTEMPT = "oscar.attempt"
LABEL_INSTANCE = "oscar.instance"
LABEL_ROLE = "oscar.role"
"""What a container that runs no job is for: `warm` (a warm container), `network` (a network
namespace holder)."""
LABEL_OWNER = "oscar.owner"
"""The server process (as the ledger names it) that made a warm container or a holder: a
restarted server removes those of dead processes, never another live one's."""

# Root inside the container keeps only what scripts that handle files need: no raw sockets,
# no mknod, no chroot, no audit, no setting file capabilities.
KEPT_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "SETUID", "SETGID", "KILL"]
API_TIMEOUT = 120
_POOL_SIZE = 128
#: What dockerd keeps of a container's output on its own disk (json-file, rotated): the job log
#: is read from the attached stream, the file only serves adoption after a restart, and a log
#: flood must not fill the disk under /var/lib/docker.
LOG_FILE_MAX_SIZE = "10m"
LOG_FILE_COUNT = "3"


def explain(error: BaseException) -> str:
    explanation = getattr(error, "explanation", None)
    return str(explanation or error)


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Run Docker calls; their errors leave as the engine's, their message led by `action`."""
    try:
        yield
    except docker.errors.ImageNotFound as error:
        raise ImageUnavailable(f"{action}: {explain(error)}") from error
    except docker.errors.NotFound as error:
        raise ContainerMissing(f"{action}: {explain(error)}") from error
    except docker.errors.APIError as error:
        if error.status_code == 409:
            raise ContainerConflict(f"{action}: {explain(error)}") from error
        raise ContainerError(f"{action}: {explain(error)}") from error
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as error:
        raise RuntimeLost(f"{action}: {error}") from error
    except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
        raise RuntimeUnavailable(f"{action}: {error}") from error


_TEARDOWNS = threading.Lock()
"""Held while a running container with a network of its own is removed: never two at once in
this process. Removing it tears its network down, and Docker 20.10 (Debian's `docker.io`)
deadlocks its whole daemon when two teardowns overlap (moby/moby#42545, fixed in later
releases only): network holders removed eight at a time hung a test machine's daemon."""


def remove_by_id(api: Any, container_id: str, what: str) -> None:
    """Force-remove a running container that is ours to remove (a network holder, a warm
    container; `what` names it in the log), one at a time (`_TEARDOWNS`); one already gone is
    fine, and a failure is logged, not raised: the caller's work goes on."""
    try:
        with _TEARDOWNS, translated(f"cannot remove {what} {container_id[:12]}"):
            api.remove_container(container_id, force=True)
    except ContainerMissing:
        pass
    except InfrastructureError as error:
        log.warning("%s", error)


class DockerConnection:
    """The process's one Docker client, connected on first use and again after a failure."""

    def __init__(self, client: Any | None = None) -> None:
        self._client: Any | None = client
        self._lock = threading.Lock()
        self._remapped_root: tuple[int, int] | None = None

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    with translated("no Docker Engine answers"):
                        self._client = docker.from_env(
                            timeout=API_TIMEOUT, max_pool_size=_POOL_SIZE
                        )
                except RuntimeUnavailable as error:
                    raise RuntimeUnavailable(
                        f"{error}; start dockerd, set DOCKER_HOST, or run scripts on the host "
                        "with --runtime process"
                    ) from error
            return self._client

    @property
    def api(self) -> Any:
        return self.client.api

    def ping(self) -> None:
        with translated("the Docker Engine does not answer"):
            self.client.ping()

    def remapped_root(self) -> tuple[int, int]:
        """The host uid and gid a container's root is: (0, 0), or, where the daemon remaps
        users (`userns-remap`), the start of its subordinate ranges, after which it names its
        data root (`/var/lib/docker/100000.100000`). A container's user u is host user
        root + u: what the server hands a container's user must be owned by that one."""
        if self._remapped_root is None:
            with translated("docker info"):
                info = self.client.info()
            remapped = any("name=userns" in str(o) for o in info.get("SecurityOptions") or [])
            root = PurePosixPath(str(info.get("DockerRootDir", ""))).name
            uid, _, gid = root.partition(".")
            if remapped and uid.isdigit() and gid.isdigit():
                self._remapped_root = (int(uid), int(gid))
            else:
                self._remapped_root = (0, 0)
        return self._remapped_root

    def stream_socket(self, response_socket: Any) -> Any:
        """A raw attach/exec socket without the API read timeout: a script may stay silent for
        longer than any API call may take."""
        self.api._disable_socket_timeout(response_socket)  # noqa: SLF001 (docker-py's own helper)
        return response_socket

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def restricted_options(limits: Limits, *, network: str = "default") -> dict[str, Any]:
    """Container options every container of ours gets, job or warm: no privileges, only the
    capabilities a shell script commonly needs, no privilege gain, the service's limits and
    network, a cap on each file's size and on what dockerd keeps of the output."""
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
    if network == "none":
        options["network_mode"] = "none"
    if limits.gpu:  # every GPU, through the NVIDIA Container Toolkit (OSCAR's nvidia.com/gpu)
        options["device_requests"] = [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
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


# -- images -----------------------------------------------------------------------------------

#: An image checked or pulled this recently is not looked at again: one API call less per job,
#: and `Always` does not pull once per job of a burst. A removed image is found by `start`.
IMAGE_CHECK_SECONDS = 30.0


def split_image(image: str) -> tuple[str, str | None]:
    """`repo[:tag]` → (repository, tag), the tag defaulting to `latest`; digests pass whole."""
    if "@" in image:
        return image, None
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = image.rsplit(":", 1)
        return repository, tag
    return image, "latest"


def default_pull_policy(image: str) -> PullPolicy:
    """Kubernetes' rule, which OSCAR's pods follow: `latest` or no tag → Always."""
    repository, tag = split_image(image)
    return "Always" if tag == "latest" else "IfNotPresent"


class ImagePuller:
    """Gets images as a service's pull policy says, with its registry login if any.

    `Always` pulls (at most once per `IMAGE_CHECK_SECONDS`); when the registry cannot be reached
    and the host has the image, the host's copy runs and the failure is logged, so that a host
    without a registry keeps working. `IfNotPresent` pulls only an absent image; `Never` never
    pulls.
    """

    def __init__(self, connection: DockerConnection) -> None:
        self.connection = connection
        self._lock = threading.Lock()
        self._checked: dict[str, float] = {}

    def forget(self, image: str) -> None:
        """`image` turned out absent: look again next time."""
        self._checked.pop(image, None)

    def ensure(self, image: str, pull: ImagePull | None = None) -> None:
        pull = pull or ImagePull()
        policy = pull.policy or default_pull_policy(image)
        if time.monotonic() - self._checked.get(image, -IMAGE_CHECK_SECONDS) < IMAGE_CHECK_SECONDS:
            return
        present = self._present(image)
        if policy == "Never" and not present:
            raise ImageUnavailable(
                f"image {image} is not on this host and its image_pull_policy is Never"
            )
        if policy == "Always" or (policy == "IfNotPresent" and not present):
            with self._lock:
                try:
                    self._pull(image, pull, present)
                except ImageUnavailable as error:
                    if not present:
                        raise
                    log.warning("%s; running the copy this host has", error)
        self._checked[image] = time.monotonic()

    def _present(self, image: str) -> bool:
        try:
            with translated(f"looking up {image}"):
                self.connection.client.images.get(image)
        except ImageUnavailable:
            return False
        return True

    def _pull(self, image: str, pull: ImagePull, present: bool) -> None:
        log.info("pulling image %s", image)
        repository, tag = split_image(image)
        login = {"username": pull.username, "password": pull.password} if pull.username else None
        try:
            where = "" if present else " is not on this host and"
            with translated(f"image {image}{where} cannot be pulled"):
                self.connection.client.images.pull(repository, tag=tag, auth_config=login)
        except InfrastructureError as error:
            raise ImageUnavailable(str(error)) from error
