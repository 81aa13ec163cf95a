"""Network namespaces for fresh job containers: made once, lent to one job at a time.

Making and tearing down a container's network namespace (its loopback, a veth pair on the
bridge and the firewall rules, then the kernel's clean-up of the namespace) is about half of
what a whole container costs the machine (`docs/benchmarks.md`: a loop of `docker run` that
joins an existing namespace costs half the CPU of one that makes its own). So a job container
joins the namespace of a *holder*: a container of the service's image whose only process is a
shell waiting on a stdin that never closes, as the service's `network` asks (`default` or
`none`).

What one job could leave there for the next is closed off:
- a holder serves one job at a time, so concurrent jobs never share a namespace (two jobs that
  listen on the same fixed port work as they did in namespaces of their own);
- it goes back to its pool only once its job's container has exited: no process of the job is
  left in the namespace, and with it went its sockets, abstract ones included;
- scripts have no `NET_ADMIN` or `NET_RAW` (`docker_api.KEPT_CAPABILITIES`), so they cannot
  change the namespace's addresses, routes or firewall, and `/proc/sys` is read-only;
- the holder's `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname`, which Docker would share
  writable with every container that joins it, are mounted read-only into each job.

Holders carry the labels `oscar.instance`, `oscar.role=network`, `oscar.network-of` (the
service) and `oscar.owner` (the server process); the engine removes a dead process's holders
(`remove_owned_by`), and a holder idle for `IDLE_SECONDS` is removed. A job container that
joined a holder keeps working if the holder goes away: the kernel keeps the namespace while a
process is in it.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from oscarpy.engine.errors import InfrastructureError
from oscarpy.engine.runtimes.base import Limits, RunSpec
from oscarpy.engine.runtimes.docker_api import (
    LABEL_INSTANCE,
    LABEL_OWNER,
    LABEL_ROLE,
    DockerConnection,
    remove_by_id,
    restricted_options,
    translated,
)
from oscarpy.periodic import Periodic

log = logging.getLogger(__name__)

ROLE_NETWORK = "network"
LABEL_NETWORK_OF = "oscar.network-of"
"""The service whose jobs a holder serves; not `oscar.service`, which names the containers that
run a service's scripts (jobs and warm containers)."""
IDLE_SECONDS = 120.0
"""An idle holder is removed after this long (a deleted service's, the spares of a burst)."""
_REAP_INTERVAL = 30.0
HOLDER_LIMITS = Limits(cpu_cores=0.05, memory_bytes=16 * 1024 * 1024, pids=4)
"""All a shell blocked on `read` needs."""
NOBODY = "65534:65534"
_SHARED_FILES = {
    "HostsPath": "/etc/hosts",
    "ResolvConfPath": "/etc/resolv.conf",
    "HostnamePath": "/etc/hostname",
}


@dataclass
class NetworkHolder:
    """One holder container, and the files a job that joins it mounts read-only."""

    id: str
    key: tuple[str, str]
    """(service, network): what the holder may be lent for."""
    binds: dict[str, dict[str, str]] = field(default_factory=dict)
    idle_since: float = 0.0
    generation: int = 0
    """The service's generation it was made in (`NetworkHolders.forget`): an older one is
    removed when its job gives it back."""

    @property
    def network_mode(self) -> str:
        return f"container:{self.id}"


class NetworkHolders:
    """The holders of one server process, idle ones pooled by (service, network)."""

    def __init__(self, connection: DockerConnection, instance: str, owner: str = "") -> None:
        """`owner`: the server process (the engine's instance id); "" (a runtime made alone, in
        tests and benchmarks): holders without the owner label, removed by this process only."""
        self.connection = connection
        self.instance = instance
        self.owner = owner
        self._idle: dict[tuple[str, str], list[NetworkHolder]] = {}
        self._lent: dict[str, NetworkHolder] = {}
        self._failed: dict[tuple[str, str], float] = {}
        """When making a holder for a key last failed."""
        self._generations: dict[str, int] = {}
        self._lock = threading.Lock()
        self._reaper = Periodic("network-holders", _REAP_INTERVAL, self.reap_idle)
        self._reaper_started = False
        self._closed = False

    def lend(self, spec: RunSpec) -> NetworkHolder | None:
        """An idle holder for the spec's service and network, or a new one; `None` if none can
        be made (the job then makes its own namespace, as without holders)."""
        key = (spec.service, spec.network)
        with self._lock:
            failed_at = self._failed.get(key)
            if self._closed or (
                failed_at is not None and time.monotonic() - failed_at < IDLE_SECONDS
            ):
                return None
            idle = self._idle.get(key)
            if idle:
                holder = idle.pop()
                self._lent[holder.id] = holder
                return holder
            generation = self._generations.get(spec.service, 0)
        try:
            holder = self._create(spec, key, generation)
        except InfrastructureError as error:
            # Not tried again for a while: an image without /bin/sh would fail at every job.
            log.warning("cannot make a network holder for %s: %s", spec.service, error)
            with self._lock:
                self._failed[key] = time.monotonic()
            return None
        with self._lock:
            self._lent[holder.id] = holder
            start_reaper, self._reaper_started = not self._reaper_started, True
        if start_reaper:
            self._reaper.start()
        return holder

    def give_back(self, holder: NetworkHolder) -> None:
        """Return a holder whose job's container has exited: it serves the next job."""
        with self._lock:
            if self._lent.pop(holder.id, None) is None:
                return
            if not self._closed and holder.generation == self._generations.get(holder.key[0], 0):
                holder.idle_since = time.monotonic()
                self._idle.setdefault(holder.key, []).append(holder)
                return
        self._remove(holder.id)

    def discard(self, holder: NetworkHolder, *, failed: bool = False) -> None:
        """Remove a holder that may still hold a process of its job; `failed`: a job could not
        join it, and its key gets no holder for a while (an image whose shell does not stay
        up would otherwise cost every job a holder and a second start)."""
        with self._lock:
            self._lent.pop(holder.id, None)
            if failed:
                self._failed[holder.key] = time.monotonic()
        self._remove(holder.id)

    def forget(self, service: str) -> None:
        """A service was changed or deleted: its idle holders go now, its lent ones when their
        jobs end, so that none keeps its old image in use (`docker rmi` refuses an image a
        container has); a service whose image could not hold a namespace may try again."""
        with self._lock:
            self._generations[service] = self._generations.get(service, 0) + 1
            self._failed = {key: at for key, at in self._failed.items() if key[0] != service}
            keys = [key for key in self._idle if key[0] == service]
            doomed = [holder.id for key in keys for holder in self._idle.pop(key)]
        for holder_id in doomed:
            self._remove(holder_id)

    def _create(self, spec: RunSpec, key: tuple[str, str], generation: int) -> NetworkHolder:
        api = self.connection.api
        labels = {
            LABEL_INSTANCE: self.instance,
            LABEL_ROLE: ROLE_NETWORK,
            LABEL_NETWORK_OF: spec.service,
        }
        if self.owner:
            labels[LABEL_OWNER] = self.owner
        options = restricted_options(HOLDER_LIMITS, network=spec.network)
        options["cap_add"] = []
        options["read_only"] = True
        options["log_config"] = {"Type": "none", "Config": {}}
        with translated("cannot make a network holder"):
            created = api.create_container(
                spec.image,
                command=["/bin/sh"],
                stdin_open=True,
                user=NOBODY,
                labels=labels,
                name=f"oscar-network-{spec.service}-{secrets.token_hex(4)}",
                host_config=api.create_host_config(**options),
            )
        holder_id = str(created["Id"])
        try:
            with translated("cannot start a network holder"):
                api.start(holder_id)
                attributes = api.inspect_container(holder_id)
        except InfrastructureError:
            self._remove(holder_id)
            raise
        if not attributes.get("State", {}).get("Running"):
            self._remove(holder_id)
            raise InfrastructureError(f"the network holder of {spec.service} did not stay up")
        binds = {
            str(attributes[name]): {"bind": target, "mode": "ro"}
            for name, target in _SHARED_FILES.items()
            if attributes.get(name)
        }
        return NetworkHolder(holder_id, key, binds, generation=generation)

    def reap_idle(self) -> None:
        """Remove the holders idle for longer than `IDLE_SECONDS`."""
        deadline = time.monotonic() - IDLE_SECONDS
        with self._lock:
            expired = [h for pool in self._idle.values() for h in pool if h.idle_since < deadline]
            for pool in self._idle.values():
                pool[:] = [h for h in pool if h.idle_since >= deadline]
        for holder in expired:
            self._remove(holder.id)

    def remove_owned_by(self, owner: str) -> None:
        """Remove the holders a dead server process left (an engine's recovery cleaner)."""
        filters = {
            "label": [
                f"{LABEL_INSTANCE}={self.instance}",
                f"{LABEL_ROLE}={ROLE_NETWORK}",
                f"{LABEL_OWNER}={owner}",
            ]
        }
        try:
            with translated("cannot list network holders"):
                found = self.connection.api.containers(all=True, filters=filters)
        except InfrastructureError as error:
            log.warning("%s", error)
            return
        for entry in found:
            self._remove(str(entry["Id"]))

    def _remove(self, holder_id: str) -> None:
        """One at a time, whichever thread asks (`docker_api.remove_by_id`)."""
        remove_by_id(self.connection.api, holder_id, "network holder")

    def close(self) -> None:
        """Remove every holder (a job container still running keeps its namespace)."""
        self._reaper.stop()
        with self._lock:
            self._closed = True
            holders = [h for pool in self._idle.values() for h in pool]
            holders.extend(self._lent.values())
            self._idle.clear()
            self._lent.clear()
        for holder in holders:
            self._remove(holder.id)


def joined(options: dict[str, Any], holder: NetworkHolder) -> dict[str, Any]:
    """A job container's host options, with its network namespace the holder's."""
    joined_options = {key: value for key, value in options.items() if key != "network_mode"}
    joined_options["network_mode"] = holder.network_mode
    return joined_options
