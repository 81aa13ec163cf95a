"""The job engine assembled: intake, ledger, dispatcher, supervisor and runtime in one object.

`Engine` is what the server starts and what the jobs and logs routes call. It is the only part
that knows both the service registry and the ledger: it turns a service and a job row into the
plain `JobSpec` the supervisor runs, and implements the `JobReporter` the supervisor reports to.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select

from oscarpy.config import Settings
from oscarpy.db import Database, SystemMeta, utcnow
from oscarpy.engine import contract
from oscarpy.engine.dispatcher import Capacity, Demand, Dispatcher
from oscarpy.engine.errors import EventNotAllowed, InfrastructureError, JobNotFound
from oscarpy.engine.events import (
    ObjectReference,
    parse_object_event,
    storage_event,
    upload_identity,
)
from oscarpy.engine.intake import Intake, path_contains
from oscarpy.engine.ledger import Claim, JobView, Ledger, NewJob
from oscarpy.engine.logstream import LogLine
from oscarpy.engine.outcomes import LIMIT_REASONS, AttemptOutcome, OutcomeKind
from oscarpy.engine.providers import Providers
from oscarpy.engine.records import JobSource, JobStatus
from oscarpy.engine.retention import Retention
from oscarpy.engine.retries import RetryPolicy
from oscarpy.engine.runtimes import make_runtime
from oscarpy.engine.runtimes.base import Execution, Limits, Runtime
from oscarpy.engine.spec import JobSpec
from oscarpy.engine.supervisor import Supervisor
from oscarpy.services import quantities
from oscarpy.services.errors import ServiceNotFound
from oscarpy.services.model import DEFAULT_PROVIDER, Service
from oscarpy.services.registry import ServiceRegistry
from oscarpy.storage.providers.base import StorageProvider
from oscarpy.storage.store import ObjectStore

log = logging.getLogger(__name__)

INSTANCE_KEY = "engine.instance"
_CANCEL_WAIT_SECONDS = 15


def instance_id(database: Database) -> str:
    """This installation's id, labelled on its containers so that it never touches another's."""
    with database.session() as session:
        found = session.scalar(select(SystemMeta.value).where(SystemMeta.key == INSTANCE_KEY))
        if found:
            return str(found)
        value = uuid.uuid4().hex[:16]
        session.add(SystemMeta(key=INSTANCE_KEY, value=value))
        return value


def host_capacity(settings: Settings) -> Capacity:
    cpu = settings.job_cpu or float(os.cpu_count() or 1)
    if settings.job_memory:
        memory = quantities.memory_bytes(settings.job_memory)
    else:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return Capacity(cpu=cpu, memory=memory)


def _under_an_input(service: Service, reference: ObjectReference) -> bool:
    return any(
        path.bucket == reference.bucket and reference.key.startswith(path.key_prefix())
        for path in service.input
    )


def _event_upload(reference: ObjectReference) -> str | None:
    """The upload a MinIO/S3 event names: its sequencer (the same in each delivery of that
    event), else its time; an event with neither is one per ETag, as before uploads counted."""
    if reference.sequencer is not None:
        return upload_identity(reference.etag or "", f"sequencer:{reference.sequencer}")
    return upload_identity(reference.etag, reference.event_time)


class Engine:
    """Runs every job of every service; `start()`/`stop()` as a background service."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        store: ObjectStore,
        registry: ServiceRegistry,
        *,
        runtime: Runtime | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.instance = instance_id(database)
        self.ledger = Ledger(
            database,
            lease_seconds=settings.job_lease_seconds,
            log_cap=settings.job_log_limit,
            retry_policy=RetryPolicy(
                limit=settings.job_retry_limit,
                base_seconds=settings.job_retry_backoff,
                max_seconds=max(300.0, settings.job_retry_backoff),
            ),
        )
        self.runtime = runtime or make_runtime(settings.runtime, self.instance)
        self.providers = Providers(store)
        self.work_root = settings.data_dir / "jobs"
        self.bodies = settings.data_dir / "job-bodies"
        self.supervisor = Supervisor(self.runtime, self, self.work_root)
        self.dispatcher = Dispatcher(
            self.ledger,
            host_capacity(settings),
            self._demand,
            self._execute,
            maintenance=self.take_over,
        )
        self.intake = Intake(
            self.ledger, self._service_list, self.dispatcher.wake, region=settings.region
        )
        self.retention = Retention(
            self.ledger,
            self._service_list,
            default_ttl=settings.job_ttl,
            interval=settings.job_expiry_interval,
        )
        self._services: dict[str, Service] | None = None
        self._services_lock = threading.Lock()
        self._adoptions: dict[str, tuple[Execution, float | None, float | None]] = {}
        store.add_commit_listener(self.intake.wake)
        registry.add_listener(self._on_service_change)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.work_root.mkdir(parents=True, exist_ok=True)
        self.bodies.mkdir(parents=True, exist_ok=True)
        self.recover()
        self.intake.start()
        self.dispatcher.start()
        self.retention.start()
        log.info(
            "job engine started (runtime %s, capacity %.2f CPU / %d MiB)",
            self.runtime.name,
            self.dispatcher.capacity.cpu,
            self.dispatcher.capacity.memory // 2**20,
        )

    def stop(self) -> None:
        self.retention.stop()
        self.intake.stop()
        left = self.dispatcher.stop(self.settings.job_shutdown_grace)
        if left:
            log.warning("%d job(s) still running are adopted on the next start", len(left))
        self.runtime.close()

    def recover(self) -> None:
        """Adopt or re-run the jobs an earlier process left running; sweep its leftovers."""
        self._sweep(self.take_over())

    def take_over(self) -> set[str]:
        """Adopt or re-run running jobs whose owner is gone; returns the adopted job ids.

        Run at start, then every lease period (for the jobs of another server sharing the
        state DB that stopped renewing its leases). Also retries the removal of containers that
        could not be removed when their job ended."""
        self.supervisor.retry_removals()
        adopted: set[str] = set()
        for claim in self.ledger.take_over_orphans():
            execution: Execution | None = None
            try:
                execution = self.runtime.find(claim.job.id, claim.attempt)
            except InfrastructureError as error:
                log.warning("cannot look for the execution of job %s: %s", claim.job.id, error)
            service = self._service(claim.job.service)
            if execution is None or service is None:
                self.ledger.finish(
                    claim.job.id,
                    claim.attempt,
                    AttemptOutcome(
                        OutcomeKind.INFRASTRUCTURE_FAILED,
                        "the server stopped while this attempt ran; it runs again",
                        "abandoned",
                    ),
                )
                continue
            started = claim.attempt_started_at.timestamp() if claim.attempt_started_at else None
            last_line = self.ledger.last_log_time(claim.job.id)
            follow = last_line.timestamp() if last_line else started
            self._adoptions[claim.job.id] = (execution, started, follow)
            adopted.add(claim.job.id)
            self.dispatcher.launch(claim, self._demand_of(service))
        return adopted

    def _sweep(self, keep: set[str]) -> None:
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
        if self.work_root.is_dir():
            for entry in self.work_root.iterdir():
                if entry.name.partition(".")[0] not in keep:
                    shutil.rmtree(entry, ignore_errors=True)

    # -- services -------------------------------------------------------------------------

    def _service_list(self) -> list[Service]:
        with self._services_lock:
            if self._services is None:
                self._services = {service.name: service for service in self.registry.list()}
            return list(self._services.values())

    def _service(self, name: str) -> Service | None:
        self._service_list()
        with self._services_lock:
            return (self._services or {}).get(name)

    def _on_service_change(self, event: str, service: Service) -> None:
        with self._services_lock:
            self._services = None
        if event == "deleted":
            removed = self.delete_jobs(service.name, everything=True, check_service=False)
            log.info("service %s deleted: %d job(s) and their logs removed", service.name, removed)
        self.dispatcher.wake()

    @staticmethod
    def _demand_of(service: Service) -> Demand:
        return Demand(service.cpu_cores, service.memory_bytes, service.max_concurrency)

    def _demand(self, name: str) -> Demand | None:
        service = self._service(name)
        return self._demand_of(service) if service is not None else None

    def _require_service(self, name: str) -> Service:
        service = self.registry.get(name)
        if service is None:
            raise ServiceNotFound(name)
        return service

    # -- running (worker threads) ---------------------------------------------------------

    def _execute(self, claim: Claim, cancelled: threading.Event) -> None:
        job = claim.job
        service = self._service(job.service)
        adoption = self._adoptions.pop(job.id, None)
        if service is None:
            outcome = AttemptOutcome(
                OutcomeKind.SCRIPT_FAILED, f"service {job.service} no longer exists", "service"
            )
            self.ledger.finish(job.id, claim.attempt, outcome)
            return
        spec = self.job_spec(service, job, claim.attempt)

        def lookup(name: str) -> StorageProvider:
            return self.providers.resolve(service, name)

        if adoption is not None:
            execution, started, follow = adoption
            self.supervisor.run(
                spec,
                lookup,
                adopt=execution,
                attempt_started=started,
                follow_from=follow,
                cancelled=cancelled,
            )
        else:
            self.supervisor.run(spec, lookup, cancelled=cancelled)

    def limits(self, service: Service) -> Limits:
        return contract.limits(service, self.settings)

    def job_spec(self, service: Service, job: JobView, attempt: int) -> JobSpec:
        return contract.job_spec(service, job, attempt, self.settings)

    # JobReporter, called by the supervisor

    def started(self, job_id: str, attempt: int, execution_id: str) -> None:
        self.ledger.record_execution(job_id, attempt, execution_id)

    def log(self, job_id: str, lines: Sequence[LogLine]) -> None:
        try:
            self.ledger.append_log(job_id, lines)
        except Exception:  # a lost log batch must not fail the job that printed it
            log.exception("job %s: cannot store %d log line(s)", job_id, len(lines))

    def finished(self, job_id: str, attempt: int, outcome: AttemptOutcome) -> None:
        job = self.ledger.get(job_id) if outcome.kind is OutcomeKind.SCRIPT_FAILED else None
        service = self._service(job.service) if job is not None else None
        retries = service.retries if service is not None else 0
        if outcome.reason in LIMIT_REASONS:
            retries = 0  # a script that wrote or printed too much would do it again
        status = self.ledger.finish(job_id, attempt, outcome, script_retries=retries)
        if status is not None:
            log.info("job %s: %s (%s)", job_id, status.oscar_name, outcome.message)

    # -- operations for the API -----------------------------------------------------------

    def new_body_path(self) -> Path:
        """Where the API streams a `/job` body before `submit` (which moves or removes it)."""
        self.bodies.mkdir(parents=True, exist_ok=True)
        return self.bodies / f".incoming-{uuid.uuid4().hex}"

    def submit(self, service_name: str, body: bytes | Path, *, inputs_only: bool = False) -> str:
        """A `/job` request: a MinIO/S3 event names an object to stage; any other body is
        the input itself. `body` is the bytes, or a file from `new_body_path` that this takes
        over (never read whole: a body may be larger than memory). With `inputs_only` (a caller
        holding only the service's token) an event must name an object under one of the
        service's inputs, else `EventNotAllowed`. The job is committed before this returns."""
        service = self._require_service(service_name)
        raw = body if isinstance(body, Path) else self._spool(body)
        try:
            if raw.stat().st_size <= contract.MAX_EVENT_TEXT:
                event = raw.read_bytes()
                reference = parse_object_event(event)
                if reference is not None:
                    if inputs_only and not _under_an_input(service, reference):
                        raise EventNotAllowed(
                            f"the event names {reference.bucket}/{reference.key}, which is not "
                            f"under an input of {service.name}; its token may send events for "
                            "its own inputs only"
                        )
                    return self._submit_event(service, reference, event)
            return self._submit_invocation(service, raw)
        finally:
            raw.unlink(missing_ok=True)

    def _spool(self, body: bytes) -> Path:
        path = self.new_body_path()
        path.write_bytes(body)
        return path

    def _submit_event(self, service: Service, reference: ObjectReference, body: bytes) -> str:
        provider = DEFAULT_PROVIDER
        for input_path in service.input:
            if input_path.bucket == reference.bucket:
                provider = input_path.storage_provider
                break
        etag, upload = reference.etag, _event_upload(reference)
        if self.providers.is_embedded(service, provider):
            # The object as stored names its upload exactly as the intake does, so an
            # event for an upload that already ran returns that job.
            found = self.store.head(reference.bucket, reference.key)
            if found is not None and etag in (None, found.etag):
                etag, upload = found.etag, upload_identity(found.etag, found.last_modified)
        new = NewJob(
            service=service.name,
            source=JobSource.EVENT,
            event=body.decode("utf-8", errors="replace"),
            provider=provider,
            bucket=reference.bucket,
            key=reference.key,
            etag=etag,
            upload=upload,
        )
        created = self.ledger.add_job(new)
        if created is None:
            # Only a job with an upload identity is ever refused as a duplicate.
            existing = upload and self.ledger.find_upload(
                service.name, reference.bucket, reference.key, upload
            )
            if existing:
                return existing
            raise JobNotFound("the job of this event vanished; send it again")
        self.dispatcher.wake()
        return created

    def _submit_invocation(self, service: Service, raw: Path) -> str:
        job_id = str(uuid.uuid4())
        path = self.bodies / job_id
        contract.decode_body_file(raw, path)
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
        new = NewJob(
            service=service.name,
            source=JobSource.INVOCATION,
            event=contract.event_text_of_file(path),
            body_path=str(path),
            job_id=job_id,
        )
        try:
            self.ledger.add_job(new)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self.dispatcher.wake()
        return job_id

    def reconcile(self, service_name: str) -> int:
        """Create jobs for the objects under the service's inputs that have none yet."""
        service = self._require_service(service_name)
        created = 0
        for path in service.input:
            provider = self.providers.resolve(service, path.storage_provider)
            for found in provider.list_objects(path.bucket, path.key_prefix()):
                if not path_contains(path, found.bucket, found.key):
                    continue
                if self.ledger.had_job(service.name, found.bucket, found.key, found.etag):
                    continue
                new = NewJob(
                    service=service.name,
                    source=JobSource.RECONCILE,
                    event=storage_event(
                        found.bucket,
                        found.key,
                        found.size,
                        found.etag,
                        utcnow(),
                        self.settings.region,
                    ),
                    provider=path.storage_provider,
                    bucket=found.bucket,
                    key=found.key,
                    etag=found.etag,
                    upload=upload_identity(found.etag, found.last_modified),
                )
                if self.ledger.add_job(new) is not None:
                    created += 1
        if created:
            self.dispatcher.wake()
        return created

    def jobs(self, service_name: str, offset: int, limit: int) -> tuple[list[JobView], int]:
        self._require_service(service_name)
        return self.ledger.page(service_name, offset, limit)

    def job(self, service_name: str, job_id: str) -> JobView:
        self._require_service(service_name)
        return self.ledger.get(job_id, service_name)

    def job_log(self, service_name: str, job_id: str, timestamps: bool = False) -> str:
        self.job(service_name, job_id)
        return self.ledger.read_log(job_id, timestamps)

    def retry(self, service_name: str, job_id: str) -> JobView:
        self._require_service(service_name)
        view = self.ledger.retry(service_name, job_id)
        self.dispatcher.wake()
        return view

    def delete_job(self, service_name: str, job_id: str) -> None:
        """Delete a job and its log; a running job is stopped first."""
        self.job(service_name, job_id)
        self._remove([job_id])

    def delete_jobs(
        self, service_name: str, everything: bool = False, check_service: bool = True
    ) -> int:
        """Delete the service's succeeded jobs, or with `everything` all its jobs."""
        if check_service:
            self._require_service(service_name)
        statuses = None if everything else [JobStatus.SUCCEEDED]
        return self._remove(self.ledger.job_ids(service_name, statuses))

    def _remove(self, job_ids: list[str]) -> int:
        for job_id in job_ids:
            view = self.ledger.get(job_id)
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
