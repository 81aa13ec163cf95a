"""What the API may do with the jobs of a service: read them, run a failed one again, delete.

Every operation first checks that the service exists, so that an unknown service is a 404
whatever the job id. Deleting a running job stops it first: a dispatcher job through its
runtime, a `/run` call through `calls` (set by the `/run` runner).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path
from typing import Protocol

from oscarpy.engine.catalog import ServiceCatalog
from oscarpy.engine.dispatcher import Dispatcher
from oscarpy.engine.errors import InfrastructureError, JobNotFound
from oscarpy.engine.ledger import AttemptView, JobView, Ledger
from oscarpy.engine.records import JobStatus
from oscarpy.engine.runtimes.base import Runtime

log = logging.getLogger(__name__)

_CANCEL_WAIT_SECONDS = 15


class Calls(Protocol):
    """The jobs this process runs outside the dispatcher: `/run` calls, whose client waits."""

    def running_calls(self, service: str) -> list[str]:
        """The ids of the service's calls running here, recorded in the ledger yet or not."""
        ...

    def delete_calls(self, job_ids: Collection[str]) -> None:
        """Stop those of `job_ids` that run here, at once; nothing of them is recorded after."""
        ...


class _NoCalls:
    def running_calls(self, service: str) -> list[str]:
        return []

    def delete_calls(self, job_ids: Collection[str]) -> None:
        pass


class JobOperations:
    def __init__(
        self, ledger: Ledger, catalog: ServiceCatalog, dispatcher: Dispatcher, runtime: Runtime
    ) -> None:
        self.ledger = ledger
        self.catalog = catalog
        self.dispatcher = dispatcher
        self.runtime = runtime
        self.calls: Calls = _NoCalls()

    # -- reading --------------------------------------------------------------------------

    def jobs(self, service_name: str, offset: int, limit: int) -> tuple[list[JobView], int]:
        self.catalog.require(service_name)
        return self.ledger.page(service_name, offset, limit)

    def job(self, service_name: str, job_id: str) -> JobView:
        self.catalog.require(service_name)
        return self.ledger.get(job_id, service_name)

    def job_log(self, service_name: str, job_id: str, timestamps: bool = False) -> str:
        self.job(service_name, job_id)
        return self.ledger.read_log(job_id, timestamps)

    def attempts(self, service_name: str, job_id: str) -> list[AttemptView]:
        self.job(service_name, job_id)
        return self.ledger.attempts(job_id)

    # -- changing -------------------------------------------------------------------------

    def retry(self, service_name: str, job_id: str) -> JobView:
        self.catalog.require(service_name)
        view = self.ledger.retry(service_name, job_id)
        self.dispatcher.wake()
        return view

    def delete_job(self, service_name: str, job_id: str) -> None:
        """Delete a job and its log; a running job is stopped first."""
        if job_id not in self.calls.running_calls(service_name):  # else maybe not recorded yet
            self.job(service_name, job_id)
        self._remove([job_id])

    def delete_jobs(
        self, service_name: str, everything: bool = False, check_service: bool = True
    ) -> int:
        """Delete the service's succeeded jobs, or with `everything` all its jobs."""
        if check_service:
            self.catalog.require(service_name)
        if not everything:
            return self._remove(self.ledger.job_ids(service_name, [JobStatus.SUCCEEDED]))
        calls = self.calls.running_calls(service_name)
        return self._remove(list({*self.ledger.job_ids(service_name), *calls}))

    def _remove(self, job_ids: list[str]) -> int:
        self.calls.delete_calls(job_ids)
        for job_id in job_ids:
            try:
                view = self.ledger.get(job_id)
            except JobNotFound:  # a call not recorded yet, or a job deleted meanwhile
                continue
            if view.status is JobStatus.RUNNING or self.dispatcher.cancel(job_id):
                self.ledger.cancel(view.service, job_id)
                self.dispatcher.cancel(job_id)
                try:
                    self.runtime.remove_job(job_id)
                except InfrastructureError as error:
                    log.warning("cannot stop the execution of job %s: %s", job_id, error)
                self.dispatcher.wait_for(job_id, _CANCEL_WAIT_SECONDS)
        removed = self.ledger.delete(job_ids)
        for view in removed:
            if view.body_path:
                Path(view.body_path).unlink(missing_ok=True)
        return len(removed)
