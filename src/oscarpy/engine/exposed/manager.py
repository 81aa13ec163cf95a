"""Exposed services: keep each one's replicas running, healthy and scaled, as OSCAR's
Deployment, probes and HorizontalPodAutoscaler do on Kubernetes.

One thread reconciles every `interval` seconds (and at once after a change of a service):
- a replica whose container ended, whose definition changed, or that failed its health check
  `FAILURES_BEFORE_RESTART` times in a row after it once answered (or never answered within
  `startup_seconds`) is removed, and a new one started in its place;
- every `scale_interval` seconds, the replicas' average CPU use, in percent of the service's
  `cpu`, decides one step up (over `cpu_threshold`) or down (under half of it), between
  `min_scale` and `max_scale`;
- a service whose replicas keep failing is started again after 2, 4, 8... (at most 60) seconds;
- `stop` keeps no replica until `start` (remembered across restarts of the server).

The proxy (the REST edge) asks `endpoint` for a ready replica's port, round-robin.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from oscarpy.engine.errors import InfrastructureError, NotExposed
from oscarpy.engine.exposed.containers import LOOPBACK, ExposedContainers, Replica, revision
from oscarpy.services.expose import ExposeSettings
from oscarpy.services.model import Service
from oscarpy.services.registry import ServiceRegistry

log = logging.getLogger(__name__)

FAILURES_BEFORE_RESTART = 3
MAX_RESTART_DELAY = 60.0
_PROBE_TIMEOUT = 2.0


@dataclass
class DeploymentStatus:
    """OSCAR's `ServiceDeploymentStatus` for an exposed service."""

    service_name: str
    state: str
    reason: str
    active_instances: int
    affected_instances: int
    last_transition_time: str | None = None
    resource_kind: str = "exposed_service"


@dataclass
class _Deployment:
    desired: int
    ready: set[str] = field(default_factory=set)
    failures: dict[str, int] = field(default_factory=dict)
    first_seen: dict[str, float] = field(default_factory=dict)
    replicas: list[Replica] = field(default_factory=list)
    trouble: str = ""
    """The last reason a replica was replaced or could not start; cleared once all are ready."""
    reason: str = ""
    state: str = "pending"
    changed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    scaled_at: float = field(default_factory=time.monotonic)
    crashes: int = 0
    """Replicas replaced in a row without one becoming ready: the next start waits 2^n s."""
    next_start: float = 0.0


class ExposedServices:
    """Background service (`start`/`stop`) running every exposed service's replicas."""

    def __init__(
        self,
        registry: ServiceRegistry,
        containers: ExposedContainers | None,
        state_file: Path,
        *,
        interval: float = 2.0,
        scale_interval: float = 15.0,
        startup_seconds: float = 120.0,
        unavailable_reason: str = "",
    ) -> None:
        """`containers` is `None` when the runtime has no Docker Engine (`unavailable_reason`
        says why): exposed services are then reported unavailable."""
        self.registry = registry
        self.containers = containers
        self.state_file = state_file
        self.interval = interval
        self.scale_interval = scale_interval
        self.startup_seconds = startup_seconds
        self.unavailable_reason = unavailable_reason or "exposed services need the docker runtime"
        self._pass = threading.RLock()
        """Serialises reconcile passes and lifecycle calls; the proxy never waits for it."""
        self._ready_ports: dict[str, list[int]] = {}
        self._deployments: dict[str, _Deployment] = {}
        self._stopped: dict[str, int] = self._load_stopped()
        self._turn = itertools.count()
        self._wake = threading.Event()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._probe = httpx.Client(timeout=_PROBE_TIMEOUT, follow_redirects=False, trust_env=False)
        registry.add_listener(lambda _event, _service: self._wake.set())

    # -- lifecycle of the background service ----------------------------------------------

    def start(self) -> None:
        if self.containers is None:
            return
        self._remove_all()  # a previous server's replicas: started again from the definitions
        self._halt.clear()
        self._thread = threading.Thread(target=self._loop, name="exposed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._halt.set()
        self._wake.set()
        self._thread.join(timeout=30)
        self._thread = None
        self._remove_all()
        self._probe.close()

    def _remove_all(self) -> None:
        assert self.containers is not None
        try:
            for replica in self.containers.list():
                self.containers.remove(replica.id)
        except InfrastructureError as error:
            log.warning("exposed services: %s", error)

    def _loop(self) -> None:
        while not self._halt.is_set():
            try:
                self.reconcile()
            except Exception:  # one bad pass must not end the exposed services for good
                log.exception("exposed services: reconcile pass failed")
            self._wake.wait(self.interval)
            self._wake.clear()

    # -- what the API asks ----------------------------------------------------------------

    def endpoint(self, service: str) -> tuple[str, int] | None:
        """Address of a ready replica of `service`, taking turns; `None` when none is ready."""
        ports = self._ready_ports.get(service)
        if not ports:
            return None
        return LOOPBACK, ports[next(self._turn) % len(ports)]

    def status(self, service: Service) -> DeploymentStatus:
        self._require_exposed(service)
        with self._pass:
            deployment = self._deployments.get(service.name)
            stopped = service.name in self._stopped
            if self.containers is None:
                return DeploymentStatus(service.name, "unavailable", self.unavailable_reason, 0, 0)
            if deployment is None:
                state = "stopped" if stopped else "pending"
                reason = "Deployment is stopped." if stopped else "starting"
                return DeploymentStatus(service.name, state, reason, 0, 0)
            active = len(deployment.replicas)
            return DeploymentStatus(
                service_name=service.name,
                state=deployment.state,
                reason=deployment.reason,
                active_instances=active,
                affected_instances=active - len(deployment.ready & _ids(deployment.replicas)),
                last_transition_time=deployment.changed_at.isoformat(timespec="seconds"),
            )

    def logs(self, service: Service, tail: int, timestamps: bool) -> list[tuple[str, str]]:
        """The last `tail` lines of each replica, oldest replica first."""
        self._require_exposed(service)
        if self.containers is None:
            return []
        with self._pass:
            deployment = self._deployments.get(service.name)
            replicas = list(deployment.replicas) if deployment else []
        entries: list[tuple[str, str]] = []
        for replica in replicas:
            entries += self.containers.logs(replica.id, tail, timestamps)
        return entries[-tail:] if tail else entries

    def stop_service(self, service: Service) -> None:
        """No replica until `start_service`; the count is remembered for it."""
        self._require_exposed(service)
        with self._pass:
            deployment = self._deployments.get(service.name)
            self._stopped[service.name] = deployment.desired if deployment else 0
            self._save_stopped()
        self.reconcile()

    def start_service(self, service: Service) -> None:
        """Back to the replica count before `stop_service`, or `min_scale`."""
        expose = self._require_exposed(service)
        with self._pass:
            previous = self._stopped.pop(service.name, 0)
            self._save_stopped()
            deployment = self._deployments.get(service.name)
            if deployment is not None:
                deployment.desired = _clamp(previous or expose.min_scale, expose)
                deployment.crashes, deployment.next_start = 0, 0.0
        self.reconcile()

    def restart_service(self, service: Service) -> None:
        """Replace every replica by a fresh one (in-memory state of the old ones is lost)."""
        self._require_exposed(service)
        with self._pass:
            deployment = self._deployments.get(service.name)
            if deployment is not None and self.containers is not None:
                deployment.crashes, deployment.next_start = 0, 0.0
                for replica in deployment.replicas:
                    self._forget_replica(deployment, replica.id)
                    self.containers.remove(replica.id)
            self.reconcile()

    def _require_exposed(self, service: Service) -> ExposeSettings:
        expose = service.expose_settings()
        if expose is None:
            raise NotExposed(f"service {service.name!r} is not exposed (it has no expose.api_port)")
        return expose

    # -- the reconcile pass ---------------------------------------------------------------

    def reconcile(self) -> None:
        """One pass over every exposed service (serialised: the API's lifecycle calls and the
        thread run it under the same lock)."""
        if self.containers is None:
            return
        with self._pass:
            services = {
                service.name: (service, expose)
                for service in self.registry.list()
                if (expose := service.expose_settings()) is not None
            }
            by_service: dict[str, list[Replica]] = {}
            for replica in self.containers.list():
                by_service.setdefault(replica.service, []).append(replica)
            for name in set(by_service) | set(self._deployments):
                if name not in services:
                    for replica in by_service.get(name, []):
                        self.containers.remove(replica.id)
                    self._deployments.pop(name, None)
                    self._ready_ports.pop(name, None)
                    self.containers.forget(name)
            for name, (service, expose) in services.items():
                self._reconcile_one(service, expose, by_service.get(name, []))

    def _reconcile_one(
        self, service: Service, expose: ExposeSettings, replicas: list[Replica]
    ) -> None:
        assert self.containers is not None
        deployment = self._deployments.setdefault(
            service.name, _Deployment(desired=_clamp(expose.min_scale, expose))
        )
        current = revision(service)
        deployment.desired = _clamp(deployment.desired, expose)
        desired = 0 if service.name in self._stopped else deployment.desired
        kept: list[Replica] = []
        for replica in replicas:
            trouble = self._trouble(replica, current, expose, deployment)
            if trouble:
                if trouble != "definition changed":
                    deployment.trouble = trouble
                    deployment.crashes += 1
                    deployment.next_start = time.monotonic() + min(
                        2.0**deployment.crashes, MAX_RESTART_DELAY
                    )
                    log.warning("exposed service %s: %s; replacing it", service.name, trouble)
                self._forget_replica(deployment, replica.id)
                self.containers.remove(replica.id)
            else:
                kept.append(replica)
        # Extra replicas go first among those not ready yet.
        kept.sort(key=lambda replica: replica.id in deployment.ready, reverse=True)
        for replica in kept[desired:]:
            self._forget_replica(deployment, replica.id)
            self.containers.remove(replica.id)
        kept = kept[:desired]
        try:
            while len(kept) < desired and time.monotonic() >= deployment.next_start:
                kept.append(self.containers.start(service, expose))
        except InfrastructureError as error:
            deployment.trouble = str(error)
            log.warning("exposed service %s: %s", service.name, error)
        self.containers.forget(service.name, keep=current)
        deployment.replicas = kept
        self._ready_ports[service.name] = [
            replica.host_port
            for replica in kept
            if replica.id in deployment.ready and replica.host_port is not None
        ]
        self._scale(deployment, expose)
        self._set_state(deployment, desired)

    def _trouble(
        self, replica: Replica, current: str, expose: ExposeSettings, deployment: _Deployment
    ) -> str:
        """Why `replica` must go, or "" when it stays (probing it on the way)."""
        if replica.revision != current:
            return "definition changed"
        if not replica.running:
            return f"an instance ended with exit code {replica.exit_code}"
        first_seen = deployment.first_seen.setdefault(replica.id, time.monotonic())
        if self._healthy(replica, expose):
            deployment.crashes = 0
            deployment.ready.add(replica.id)
            deployment.failures[replica.id] = 0
            return ""
        if replica.id in deployment.ready:
            failures = deployment.failures.get(replica.id, 0) + 1
            deployment.failures[replica.id] = failures
            if failures >= FAILURES_BEFORE_RESTART:
                return f"an instance failed its health check {expose.health_path} {failures} times"
            return ""
        if time.monotonic() - first_seen > self.startup_seconds:
            return (
                f"an instance did not answer on port {expose.api_port} within "
                f"{self.startup_seconds:g} s"
            )
        return ""

    def _healthy(self, replica: Replica, expose: ExposeSettings) -> bool:
        if replica.host_port is None:
            return False
        path = expose.health_path
        if expose.rewrite_target:  # as OSCAR: the probe goes through the prefixed path
            path = f"/system/services/{replica.service}/exposed{path}"
        url = httpx.URL(scheme="http", host=LOOPBACK, port=replica.host_port, path=path)
        try:
            return self._probe.get(url).status_code < 400
        except httpx.HTTPError:
            return False

    def _scale(self, deployment: _Deployment, expose: ExposeSettings) -> None:
        """One step towards `cpu_threshold`, once every `scale_interval`, when all are ready."""
        assert self.containers is not None
        if time.monotonic() - deployment.scaled_at < self.scale_interval:
            return
        replicas = [r for r in deployment.replicas if r.id in deployment.ready]
        if not replicas or len(replicas) < len(deployment.replicas):
            return
        deployment.scaled_at = time.monotonic()
        samples = [self.containers.cpu_percent(replica.id) for replica in replicas]
        known = [sample for sample in samples if sample is not None]
        if not known:
            return
        service = self.registry.get(replicas[0].service)
        cores = service.cpu_cores if service is not None else 1.0
        load = sum(known) / len(known) / max(cores, 0.001)
        if load > expose.cpu_threshold and deployment.desired < expose.max_scale:
            deployment.desired += 1
        elif load < expose.cpu_threshold / 2 and deployment.desired > max(expose.min_scale, 1):
            deployment.desired -= 1
        else:
            return
        log.info(
            "exposed service %s: CPU at %.0f%% of its limit; %d replica(s) wanted",
            replicas[0].service,
            load,
            deployment.desired,
        )

    def _set_state(self, deployment: _Deployment, desired: int) -> None:
        ready = len(deployment.ready & _ids(deployment.replicas))
        if desired == 0:
            state, reason = "stopped", "Deployment is stopped."
        elif ready >= desired:
            state, reason = "ready", "Deployment is ready."
        elif ready > 0:
            state = "degraded"
            reason = f"{desired - ready} of {desired} instances are affected."
        elif deployment.trouble:
            state, reason = "failed", deployment.trouble
        else:
            state, reason = "pending", "waiting for the instances to answer"
        if state in ("ready", "stopped"):
            deployment.trouble = ""
        if state != deployment.state:
            deployment.changed_at = datetime.now(UTC)
        deployment.state, deployment.reason = state, reason

    @staticmethod
    def _forget_replica(deployment: _Deployment, replica_id: str) -> None:
        deployment.ready.discard(replica_id)
        deployment.failures.pop(replica_id, None)
        deployment.first_seen.pop(replica_id, None)

    # -- stopped services, remembered across restarts -------------------------------------

    def _load_stopped(self) -> dict[str, int]:
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _save_stopped(self) -> None:
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(self._stopped))
        temporary.replace(self.state_file)


def _clamp(count: int, expose: ExposeSettings) -> int:
    return min(max(count, expose.min_scale, 1), expose.max_scale)


def _ids(replicas: list[Replica]) -> set[str]:
    return {replica.id for replica in replicas}
