"""Taking over the work a stopped server left: its running jobs, containers and work dirs.

At start, and then every lease period (for another server sharing the state DB that stopped),
running jobs whose owner is gone are taken over: adopted when their execution still runs, else
finished as abandoned so that they run again. Executions and work directories no job needs any
more are removed.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from oscarpy.engine.catalog import ServiceCatalog
from oscarpy.engine.dispatcher import Demand
from oscarpy.engine.errors import InfrastructureError
from oscarpy.engine.ledger import ORPHAN_REASON, Claim, Ledger
from oscarpy.engine.outcomes import AttemptOutcome, OutcomeKind
from oscarpy.engine.runtimes.base import Execution, Runtime
from oscarpy.engine.supervisor import Supervisor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Adoption:
    """A running execution taken over from a stopped server, and where its log stopped."""

    execution: Execution
    attempt_started: float | None
    follow_from: float | None


class Recovery:
    def __init__(
        self,
        ledger: Ledger,
        runtime: Runtime,
        supervisor: Supervisor,
        catalog: ServiceCatalog,
        launch: Callable[[Claim, Demand], None],
    ) -> None:
        self.ledger = ledger
        self.runtime = runtime
        self.supervisor = supervisor
        self.catalog = catalog
        self._launch = launch
        self._adoptions: dict[str, Adoption] = {}

    def adoption(self, job_id: str) -> Adoption | None:
        """The execution to follow instead of starting one, once, for a taken-over job."""
        return self._adoptions.pop(job_id, None)

    def recover(self) -> None:
        """Adopt or re-run the jobs an earlier process left running; sweep its leftovers."""
        self.sweep(self.take_over())

    def take_over(self) -> set[str]:
        """Adopt or re-run running jobs whose owner is gone; returns the adopted job ids.

        Also retries the removal of containers that could not be removed when their job ended.
        """
        self.supervisor.retry_removals()
        adopted: set[str] = set()
        for claim in self.ledger.take_over_orphans():
            execution: Execution | None = None
            try:
                execution = self.runtime.find(claim.job.id, claim.attempt)
            except InfrastructureError as error:
                log.warning("cannot look for the execution of job %s: %s", claim.job.id, error)
            service = self.catalog.get(claim.job.service)
            if execution is None or service is None:
                self.ledger.finish(
                    claim.job.id,
                    claim.attempt,
                    AttemptOutcome(
                        OutcomeKind.INFRASTRUCTURE_FAILED,
                        "the server stopped while this attempt ran; it runs again",
                        ORPHAN_REASON,
                    ),
                )
                continue
            started = claim.attempt_started_at.timestamp() if claim.attempt_started_at else None
            last_line = self.ledger.last_log_time(claim.job.id)
            follow = last_line.timestamp() if last_line else started
            self._adoptions[claim.job.id] = Adoption(execution, started, follow)
            adopted.add(claim.job.id)
            self._launch(claim, self.catalog.demand_of(service))
        return adopted

    def sweep(self, keep: set[str]) -> None:
        """Remove the executions and work directories of every job but those in `keep`."""
        try:
            leftovers = self.runtime.job_ids() - keep
        except InfrastructureError as error:
            log.warning("cannot list leftover executions: %s", error)
            leftovers = set()
        for job_id in leftovers:
            try:
                self.runtime.remove_job(job_id)
            except InfrastructureError as error:
                log.warning("cannot remove the leftover execution of %s: %s", job_id, error)
        work_root: Path = self.supervisor.work_root
        if work_root.is_dir():
            for entry in work_root.iterdir():
                if entry.name.partition(".")[0] not in keep:
                    shutil.rmtree(entry, ignore_errors=True)
