"""Taking over the work of dead server instances: running jobs, containers, work directories,
warm directories and uncommitted blobs.

Several `oscar serve` processes may share one state DB and data directory, each a server
instance with a lease (`oscarpy.instances`). Only what a dead instance (its lease expired)
left is touched, never a live one's: its running jobs are taken under row locks, one survivor
each, and adopted when their execution still runs, else finished as abandoned so that they
run again; its warm directories, warm containers and blobs are removed by the survivor that
locked its instance row. Runs at start, then every lease period.
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
from oscarpy.instances import Instances, token_of
from oscarpy.storage.store import ObjectStore

log = logging.getLogger(__name__)


def run_root(data_dir: Path, instance_id: str) -> Path:
    """The `/run` directory of one server instance (requests, answers, warm containers)."""
    return data_dir / "run" / token_of(instance_id)


@dataclass(frozen=True)
class Adoption:
    """A running execution taken over from a dead instance, and where its log stopped."""

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
        *,
        instances: Instances,
        store: ObjectStore,
        data_dir: Path,
    ) -> None:
        self.ledger = ledger
        self.runtime = runtime
        self.supervisor = supervisor
        self.catalog = catalog
        self.instances = instances
        self.store = store
        self.data_dir = data_dir
        self._launch = launch
        self._adoptions: dict[str, Adoption] = {}
        self._cleaners: list[Callable[[str], object]] = []

    def add_cleaner(self, clean: Callable[[str], object]) -> None:
        """Also call `clean(instance_id)` for each dead instance (the warm pools remove its
        warm containers)."""
        self._cleaners.append(clean)

    def adoption(self, job_id: str) -> Adoption | None:
        """The execution to follow instead of starting one, once, for a taken-over job."""
        return self._adoptions.pop(job_id, None)

    def recover(self) -> None:
        """At start: take over dead instances' jobs, then remove everything no one needs."""
        self.take_over()
        self.sweep()
        self.reap()
        self._remove_orphaned_files()

    def maintain(self) -> None:
        """Every lease period: the same for the instances that died since."""
        if self.take_over() or self.reap():
            self.sweep()

    def take_over(self) -> set[str]:
        """Adopt or re-run the running jobs of dead instances; returns the job ids taken.

        Also retries the removal of containers that could not be removed when their job ended.
        """
        self.supervisor.retry_removals()
        taken: set[str] = set()
        for claim in self.ledger.take_over_orphans():
            taken.add(claim.job.id)
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
                self.supervisor.discard(claim.job.id, claim.attempt)
                continue
            started = claim.attempt_started_at.timestamp() if claim.attempt_started_at else None
            last_line = self.ledger.last_log_time(claim.job.id)
            follow = last_line.timestamp() if last_line else started
            self._adoptions[claim.job.id] = Adoption(execution, started, follow)
            self._launch(claim, self.catalog.demand_of(service))
        return taken

    def sweep(self) -> None:
        """Remove the executions and work directories of jobs that no live instance runs.

        Listed before the ledger is read: an execution or directory exists only after its job
        was claimed, so one that a live instance has just started is seen running."""
        try:
            executions = self.runtime.job_ids()
        except InfrastructureError as error:
            log.warning("cannot list leftover executions: %s", error)
            executions = set()
        work_root = self.supervisor.work_root
        directories = list(work_root.iterdir()) if work_root.is_dir() else []
        listed = executions | {entry.name.partition(".")[0] for entry in directories}
        needed = self.ledger.needed(listed)
        for job_id in executions - needed:
            try:
                self.runtime.remove_job(job_id)
            except InfrastructureError as error:
                log.warning("cannot remove the leftover execution of %s: %s", job_id, error)
        for entry in directories:
            if entry.name.partition(".")[0] not in needed:
                shutil.rmtree(entry, ignore_errors=True)

    def reap(self) -> list[str]:
        """Clean up after each dead instance whose row this one locks; returns their ids."""
        reaped = self.instances.reap(self._clean)
        for instance_id in reaped:
            log.info("cleaned up after dead server instance %s", instance_id)
        return reaped

    def _clean(self, instance_id: str) -> None:
        shutil.rmtree(run_root(self.data_dir, instance_id), ignore_errors=True)
        for clean in self._cleaners:
            try:
                clean(instance_id)
            except Exception:  # one failed cleaner must not stop the others
                log.exception("cannot clean up after instance %s", instance_id)
        self.store.recover(self.instances.live_tokens())

    def _remove_orphaned_files(self) -> None:
        """What instances without a row left (rows are deleted once cleaned up after, and an
        older server had none): `/run` directories and blobs of no live instance."""
        live = self.instances.live_tokens()
        runs = self.data_dir / "run"
        if runs.is_dir():
            for entry in runs.iterdir():
                if entry.name not in live:
                    shutil.rmtree(entry, ignore_errors=True)
        self.store.recover(live)
