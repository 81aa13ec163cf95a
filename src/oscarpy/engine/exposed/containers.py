"""The Docker side of exposed services: one long-running container per replica.

Each replica is a container of the service's image with the restrictions of every container of
ours (`docker_api.restricted_options`), its API port published on the loopback address only
(the platform's proxy is the one way in), and labels naming the service and the definition's
revision, so that a changed definition replaces its replicas.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oscarpy.config import Settings
from oscarpy.engine import contract
from oscarpy.engine.errors import ContainerConflict, ContainerMissing, InfrastructureError
from oscarpy.engine.runtimes.docker import (
    ENVIRONMENT_FILE,
    WORK_MOUNT,
    script_command,
    write_environment_file,
)
from oscarpy.engine.runtimes.docker_api import (
    LABEL_INSTANCE,
    LABEL_SERVICE,
    DockerConnection,
    ImagePuller,
    restricted_options,
    translated,
)
from oscarpy.services.expose import ExposeSettings
from oscarpy.services.model import Service

LABEL_EXPOSED = "oscar.exposed"
LABEL_REVISION = "oscar.exposed.revision"
SCRIPT_NAME = "script.sh"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Replica:
    """One container of an exposed service, as Docker last reported it."""

    id: str
    service: str
    revision: str
    running: bool
    exit_code: int
    host_port: int | None


def revision(service: Service) -> str:
    """A digest of everything a replica is made from: a change replaces the replicas."""
    parts = [
        service.image,
        service.script,
        service.token,
        service.cpu,
        service.memory,
        service.network,
        str(service.run_as_root),
        json.dumps(service.environment.model_dump(), sort_keys=True),
        repr(service.expose_settings()),
    ]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


class ExposedContainers:
    """Starts, lists, measures and removes the replicas of this installation (`instance`)."""

    def __init__(
        self, connection: DockerConnection, instance: str, root: Path, settings: Settings
    ) -> None:
        self.connection = connection
        self.instance = instance
        self.root = root
        self.settings = settings
        self._samples: dict[str, tuple[float, float, int]] = {}
        self.images = ImagePuller(connection)

    def start(self, service: Service, expose: ExposeSettings) -> Replica:
        """Create and start one replica; its published port is read back from Docker."""
        tag = revision(service)
        variables = {
            **service.environment.variables,
            **service.script_secrets(),
            "OSCAR_SERVICE_NAME": service.name,
            "OSCAR_SERVICE_TOKEN": service.token,
            "OSCAR_SERVICE_BASE_PATH": service.exposed_base_path(),
            "RESOURCE_ID": os.uname().nodename,
        }
        user = contract.script_user(service)
        options: dict[str, Any] = {
            "labels": {
                LABEL_SERVICE: service.name,
                LABEL_EXPOSED: service.name,
                LABEL_REVISION: tag,
                LABEL_INSTANCE: self.instance,
            },
            "ports": {f"{expose.api_port}/tcp": (LOOPBACK, None)},
            "name": f"oscar-exposed-{service.name}-{secrets.token_hex(4)}",
            "detach": True,
            **restricted_options(contract.limits(service, self.settings), network=service.network),
        }
        if user is not None:
            options["user"] = user
        if expose.default_command:
            # The image's own command: no shell reads a file, so the variables (secrets too,
            # as in OSCAR's pods) travel in the container's configuration.
            options["environment"] = variables
        else:
            directory = self._script_dir(service, tag)
            shown = write_environment_file(directory / ENVIRONMENT_FILE, variables, user)
            options["environment"] = shown
            options["command"] = script_command(SCRIPT_NAME)
            options["volumes"] = {str(directory): {"bind": str(WORK_MOUNT), "mode": "ro"}}
        self.images.ensure(service.image, contract.image_pull(service))
        with translated(f"cannot start a replica of the exposed service {service.name}"):
            container = self.connection.client.containers.run(service.image, **options)
            container.reload()
        return _replica(container)

    def _script_dir(self, service: Service, tag: str) -> Path:
        """`<root>/<service>/<revision>/`: the script and the variables' file, read-only in
        every replica of the revision; replaced whole when it was left half-written."""
        directory = self.root / service.name / tag
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, mode=0o755)
        directory.chmod(0o755)  # the umask is private; the script's user must read it
        script = directory / SCRIPT_NAME
        script.write_text(service.script)
        script.chmod(0o444)
        return directory

    def forget(self, service_name: str, keep: str | None = None) -> None:
        """Delete the script directories of a service, but the revision `keep`."""
        folder = self.root / service_name
        if not folder.is_dir():
            return
        for entry in folder.iterdir():
            if entry.name != keep:
                shutil.rmtree(entry, ignore_errors=True)
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)

    def list(self) -> list[Replica]:
        labels = [f"{LABEL_INSTANCE}={self.instance}", LABEL_EXPOSED]
        with translated("cannot list the exposed services' containers"):
            found = self.connection.client.containers.list(
                all=True, filters={"label": labels}, ignore_removed=True
            )
        return [_replica(container) for container in found]

    def remove(self, replica_id: str) -> None:
        self._samples.pop(replica_id, None)
        try:
            with translated(f"cannot remove the replica {replica_id[:12]}"):
                self.connection.client.containers.get(replica_id).remove(force=True)
        except (ContainerMissing, ContainerConflict):  # gone, or being removed already
            pass

    def cpu_percent(self, replica_id: str) -> float | None:
        """CPU used since the previous call for this replica, in percent of one core; `None`
        on the first call or when unknown. One-shot samples: Docker's own two-sample read
        blocks for a second or two, which would hold up the reconcile pass."""
        try:
            with translated("cannot read a replica's CPU use"):
                stats = self.connection.api.stats(replica_id, stream=False, one_shot=True)
        except InfrastructureError:
            return None
        cpu = stats.get("cpu_stats") or {}
        sample = (
            float((cpu.get("cpu_usage") or {}).get("total_usage", 0)),
            float(cpu.get("system_cpu_usage", 0)),
            int(cpu.get("online_cpus") or 1),
        )
        before = self._samples.get(replica_id)
        self._samples[replica_id] = sample
        if before is None:
            return None
        used, elapsed = sample[0] - before[0], sample[1] - before[1]
        if elapsed <= 0 or used < 0:
            return None
        return 100.0 * used / elapsed * sample[2]

    def logs(self, replica_id: str, tail: int, timestamps: bool) -> builtins.list[tuple[str, str]]:
        """The last `tail` lines a replica printed, each with its time ("" without)."""
        try:
            with translated("cannot read a replica's output"):
                raw = self.connection.api.logs(
                    replica_id, stdout=True, stderr=True, tail=tail, timestamps=timestamps
                )
        except InfrastructureError:
            return []
        entries = []
        for line in raw.decode(errors="replace").splitlines():
            stamp, message = "", line
            if timestamps:
                stamp, _, message = line.partition(" ")
            entries.append((stamp, message))
        return entries


def _replica(container: Any) -> Replica:
    labels = container.labels
    state = container.attrs.get("State") or {}
    port = None
    for bindings in (container.attrs.get("NetworkSettings") or {}).get("Ports", {}).values():
        for binding in bindings or []:
            if binding.get("HostIp") in (LOOPBACK, "") and binding.get("HostPort"):
                port = int(binding["HostPort"])
    return Replica(
        id=container.id,
        service=labels.get(LABEL_EXPOSED, ""),
        revision=labels.get(LABEL_REVISION, ""),
        running=bool(state.get("Running")),
        exit_code=int(state.get("ExitCode") or 0),
        host_port=port,
    )
