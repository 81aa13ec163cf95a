"""File jobs in warm containers (a service's `warm_jobs`): the `Runtime` the supervisor uses
for them, taking its containers from the service's `/run` pool.

The supervisor stages the job as for any runtime, in a work directory no container reaches;
`start` takes a container from the pool and moves that directory into the container's mounted
directory with one rename, exactly as a `/run` request's. When the script has ended, the
container is checked (`settle`) and removed if anything of the job may still run, then the
directory is moved back, out of every container's reach, before the supervisor reads a single
output. Logs, the timeout, limits, retries, outputs and the ledger's records are the
supervisor's, as for a fresh container. A warm job is never adopted after a restart: its
container goes with the server that ran it (the agent kills the script when the server hangs
up), and the job runs again.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from oscarpy.engine.errors import (
    Cancelled,
    ContainerError,
    ContainerGone,
    InfrastructureError,
    StagingError,
)
from oscarpy.engine.run.errors import PoolExhausted
from oscarpy.engine.run.pool import GaveUp, Member, ServicePool, WarmPools
from oscarpy.engine.runtimes.base import (
    EndReason,
    ImagePull,
    OutputSink,
    RunResult,
    RunSpec,
    result_from_exit,
)
from oscarpy.engine.runtimes.warm import RUN_MOUNT
from oscarpy.services.errors import ServiceNotFound
from oscarpy.services.model import Service

log = logging.getLogger(__name__)

KILLED_EXIT = 128 + 9
CANCEL_CHECK_SECONDS = 1.0
"""How often a job waiting for a busy pool's container looks whether it was deleted."""


class WarmJobExecution:
    """One job attempt in a warm container, from the move in to the move back."""

    def __init__(self, pool: ServicePool, member: Member, spec: RunSpec, inside: Path) -> None:
        self._pool = pool
        self._member = member
        self._spec = spec
        self._inside = inside
        self._killed = False
        self._released = False
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        return f"warm-{self._member.container.id[:12]}"

    def wait(
        self, timeout: float | None, on_output: OutputSink, *, follow_from: float | None = None
    ) -> RunResult:
        container = self._member.container
        healthy = False
        try:
            try:
                result = container.run(
                    self._inside, self._spec.script, self._spec.environment, timeout, on_output
                )
            except InfrastructureError as error:
                if self._killed:  # the container was killed under the script, as asked
                    result = result_from_exit(KILLED_EXIT)
                elif isinstance(error, ContainerGone):
                    raise ContainerError(str(error)) from error
                else:
                    raise
            healthy = (
                not self._killed
                and result.reason not in (EndReason.TIMEOUT, EndReason.OOM)
                and container.settle()
            )
            return result
        finally:
            if not healthy:
                # Something of the job may still run: the container goes before the work
                # directory comes back and a single output is read.
                container.remove()
            self._move_back()
            self._release(healthy)

    def _move_back(self) -> None:
        try:
            os.rename(self._inside, self._spec.work_dir)
        except OSError as error:
            raise StagingError(f"cannot take the work directory back: {error}") from error

    def _release(self, healthy: bool) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        try:
            self._pool.release(self._member, healthy)
        except Exception:
            log.exception("cannot release warm container %s", self._member.container.id[:12])

    def kill(self) -> None:
        """Stop the job now (a limit, a cancel), from any thread: its container is killed with
        all it runs, and is removed once `wait` returns, never reused."""
        self._killed = True
        self._member.container.stop()

    def writable_layer(self) -> Path | None:
        """The work directory where it is while the script runs: watched for the disk limit."""
        return self._inside

    def remove(self) -> None:
        if not self._released:  # never waited for (the attempt failed before): not reusable
            self._member.container.remove()
            if self._inside.exists():
                self._move_back()
            self._release(False)


class WarmJobRuntime:
    """The `Runtime` of services with `warm_jobs`: their `/run` pools' containers."""

    name = "warm"

    def __init__(self, pools: WarmPools, service: Callable[[str], Service | None]) -> None:
        self._pools = pools
        self._service = service

    def work_path(self, work_dir: Path) -> PurePosixPath:
        return RUN_MOUNT / work_dir.name

    def prepare(self, image: str, pull: ImagePull | None = None) -> None:
        """The pool prepares the image when it starts a container."""

    def start(self, spec: RunSpec) -> WarmJobExecution:
        service = self._service(spec.service)
        if service is None:
            raise StagingError(f"service {spec.service} no longer exists")
        pool = self._pools.pool(service)
        try:
            member = _acquire(pool, spec)
        except ServiceNotFound as error:
            raise StagingError(f"service {spec.service} no longer exists") from error
        inside = member.container.host_dir / spec.work_dir.name
        try:
            os.rename(spec.work_dir, inside)
        except OSError as error:
            pool.release(member, True)
            raise StagingError(f"cannot move the work directory in: {error}") from error
        return WarmJobExecution(pool, member, spec, inside)

    def find(self, job_id: str, attempt: int) -> None:
        return None

    def remove_job(self, job_id: str) -> None:
        """A running warm job is stopped by its supervisor, which kills the execution once the
        job is cancelled (see `kill`)."""

    def job_ids(self) -> set[str]:
        return set()

    def close(self) -> None:
        """The pools are the runner's, closed with it."""


def _acquire(pool: ServicePool, spec: RunSpec) -> Member:
    """A container of the pool, waited for as long as it stays busy, but not once the job is
    deleted: the job then gives its place on this host back at once, instead of holding it
    until another call frees a container."""
    cancelled = spec.cancelled or threading.Event()
    while True:
        try:
            return pool.acquire(CANCEL_CHECK_SECONDS, given_up=cancelled.is_set)
        except PoolExhausted:
            continue
        except GaveUp as error:
            raise Cancelled(f"job {spec.job_id} was deleted while it waited") from error
