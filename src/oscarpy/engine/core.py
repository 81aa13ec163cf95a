"""The job engine assembled: the object the server starts and the API calls.

Each role lives in its own module: the intake turns events into jobs (`intake`), the
dispatcher claims and runs them (`dispatcher`), the supervisor runs one attempt and reports to
the ledger (`reporting`), `recovery` takes over what a stopped server left, and `operations`
is what the API may do with jobs. `Engine` wires them together; besides, it turns a service
and a job row into the `JobSpec` the supervisor runs, and records `/job` submissions.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select

from oscarpy.config import Settings
from oscarpy.db import Database, SystemMeta
from oscarpy.engine import activity, contract
from oscarpy.engine.catalog import ServiceCatalog
from oscarpy.engine.dispatcher import Capacity, Dispatcher, host_capacity
from oscarpy.engine.errors import EngineError, EventNotAllowed, InfrastructureError, JobNotFound
from oscarpy.engine.events import ObjectReference, parse_object_event, upload_identity
from oscarpy.engine.intake import Intake
from oscarpy.engine.ledger import AttemptView, Claim, JobView, Ledger, NewJob
from oscarpy.engine.logstream import LogLine
from oscarpy.engine.nodes import ClusterRuntime, NodeStatus
from oscarpy.engine.operations import JobOperations
from oscarpy.engine.outcomes import AttemptOutcome, OutcomeKind
from oscarpy.engine.providers import Providers
from oscarpy.engine.records import JobSource, JobStatus
from oscarpy.engine.recovery import Recovery
from oscarpy.engine.reporting import LedgerReporter
from oscarpy.engine.retention import INCOMING_PREFIX, Retention
from oscarpy.engine.retries import RetryPolicy
from oscarpy.engine.runtimes import make_runtime
from oscarpy.engine.runtimes.base import LOCAL_NODE, KeepsContainers, Limits, Runtime
from oscarpy.engine.scaler import scaler_from_environment
from oscarpy.engine.spec import JobSpec
from oscarpy.engine.supervisor import Supervisor
from oscarpy.engine.watcher import StorageWatcher
from oscarpy.instances import Instances
from oscarpy.services.isolation import watched_inputs
from oscarpy.services.model import DEFAULT_PROVIDER, Service
from oscarpy.services.registry import ServiceRegistry
from oscarpy.storage.blobs import private_opener
from oscarpy.storage.providers.base import StorageProvider
from oscarpy.storage.store import ObjectStore

__all__ = ["Engine", "host_capacity"]

log = logging.getLogger(__name__)

INSTANCE_KEY = "engine.instance"


def instance_id(database: Database) -> str:
    """This installation's id, labelled on its containers so that it never touches another's."""
    with database.session() as session:
        found = session.scalar(select(SystemMeta.value).where(SystemMeta.key == INSTANCE_KEY))
        if found:
            return str(found)
        value = uuid.uuid4().hex[:16]
        session.add(SystemMeta(key=INSTANCE_KEY, value=value))
        return value


def _under_an_input(service: Service, reference: ObjectReference) -> bool:
    return any(
        path.bucket == reference.bucket and reference.key.startswith(path.key_prefix())
        for path in watched_inputs(service)
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
        instances: Instances | None = None,
    ) -> None:
        """`instances` is this server instance, started before the engine (by the server);
        without it the engine makes and starts its own."""
        self.settings = settings
        self.store = store
        self.registry = registry
        self.instance = instance_id(database)
        self._owns_instances = instances is None
        self.instances = instances or Instances(database, settings.job_lease_seconds)
        self.catalog = ServiceCatalog(registry)
        self.ledger = Ledger(
            database,
            owner=self.instances.id,
            alive=self.instances.is_alive,
            lease_seconds=settings.job_lease_seconds,
            log_cap=settings.job_log_limit,
            retry_policy=RetryPolicy(
                limit=settings.job_retry_limit,
                base_seconds=settings.job_retry_backoff,
                max_seconds=max(300.0, settings.job_retry_backoff),
            ),
        )
        self.runtime = runtime or make_runtime(settings.runtime, self.instance, self.instances.id)
        try:
            self.scaler = scaler_from_environment(self.runtime)
        except ValueError as error:
            raise EngineError(f"cannot scale the cluster: {error}") from error
        self.providers = Providers(store)
        self.bodies = settings.data_dir / "job-bodies"
        self.reporter = LedgerReporter(self.ledger, self.catalog.script_retries)
        self.supervisor = Supervisor(self.runtime, self.reporter, settings.data_dir / "jobs")
        self.warm_jobs: Runtime | None = None
        """Runs the jobs of services with `warm_jobs` (set by the `/run` runner, whose warm
        pools they share); `None`: they run in fresh containers like the others."""
        self.dispatcher = Dispatcher(
            self.ledger,
            host_capacity(settings),
            self.catalog.demand,
            self._execute,
            maintenance=self._maintain,
        )
        self.reporter.successor = self.dispatcher.successor
        self.recovery = Recovery(
            self.ledger,
            self.runtime,
            self.supervisor,
            self.catalog,
            self.dispatcher.launch,
            instances=self.instances,
            store=store,
            data_dir=settings.data_dir,
        )
        if isinstance(self.runtime, KeepsContainers):
            self.recovery.add_cleaner(self.runtime.remove_left_by)
        self.intake = Intake(
            self.ledger, self.catalog.fresh, self.dispatcher.wake, region=settings.region
        )
        self.retention = Retention(
            self.ledger,
            self.catalog.list,
            default_ttl=settings.job_ttl,
            interval=settings.job_expiry_interval,
            bodies=self.bodies,
            abandoned_after=max(3600.0, 10 * settings.body_timeout),
        )
        self.watcher = StorageWatcher(
            settings.storage_watch_interval,
            self.catalog.list,
            self._reconcile_service,
        )
        self.operations = JobOperations(self.ledger, self.catalog, self.dispatcher, self.runtime)
        store.add_commit_listener(self.intake.wake)
        registry.add_listener(self._on_service_change)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._owns_instances:
            self.instances.start()
        self.supervisor.work_root.mkdir(parents=True, exist_ok=True)
        self.bodies.mkdir(parents=True, exist_ok=True)
        self.recovery.recover()
        self.intake.start()
        self.dispatcher.start()
        self.retention.start()
        self.watcher.start()
        if self.scaler is not None:
            self.scaler.start()
        log.info(
            "job engine started (runtime %s, capacity %.2f CPU / %d MiB)",
            self.runtime.name,
            self.dispatcher.capacity.cpu,
            self.dispatcher.capacity.memory // 2**20,
        )

    def stop(self) -> None:
        self.watcher.stop()
        self.retention.stop()
        self.intake.stop()
        left = self.dispatcher.stop(self.settings.job_shutdown_grace)
        if left:
            log.warning("%d job(s) still running are adopted on the next start", len(left))
        if self.scaler is not None:
            self.scaler.stop()
        self.runtime.close()
        self.providers.close()
        if self._owns_instances:
            self.instances.stop()

    def _maintain(self) -> None:
        self.recovery.maintain()

    def _on_service_change(self, event: str, service: Service) -> None:
        self.catalog.forget()
        if event != "created" and isinstance(self.runtime, KeepsContainers):
            # Docker calls, kept off the request that changed the service.
            threading.Thread(
                target=self.runtime.forget_service,
                args=(service.name,),
                name="forget-service",
                daemon=True,
            ).start()
        if event == "deleted":
            removed = self.operations.delete_jobs(
                service.name, everything=True, check_service=False
            )
            log.info("service %s deleted: %d job(s) and their logs removed", service.name, removed)
        elif service.image_prefetch:
            threading.Thread(
                target=self._prefetch, args=(service,), name="prefetch", daemon=True
            ).start()
        self.dispatcher.wake()

    def _prefetch(self, service: Service) -> None:
        """`image_prefetch`: get the image now, so that the first job does not wait for it."""
        try:
            self.runtime.prepare(service.image, contract.image_pull(service))
            log.info("service %s: image %s prefetched", service.name, service.image)
        except InfrastructureError as error:
            log.warning("service %s: image_prefetch failed: %s", service.name, error)

    # -- running (worker threads) ---------------------------------------------------------

    def _execute(self, claim: Claim, cancelled: threading.Event) -> None:
        job = claim.job
        service = self.catalog.get(job.service)
        adoption = self.recovery.adoption(job.id)
        if service is None:
            outcome = AttemptOutcome(
                OutcomeKind.SCRIPT_FAILED, f"service {job.service} no longer exists", "service"
            )
            self.ledger.finish(job.id, claim.attempt, outcome)
            return
        spec = self.job_spec(service, job, claim.attempt)

        def lookup(name: str) -> StorageProvider:
            return self.providers.resolve(service, name)

        if adoption is not None:  # a warm job is never adopted: it runs again
            self.supervisor.run(
                spec,
                lookup,
                adopt=adoption.execution,
                attempt_started=adoption.attempt_started,
                follow_from=adoption.follow_from,
                cancelled=cancelled,
            )
        else:
            warm = self.warm_jobs if service.warm_jobs else None
            self.supervisor.run(spec, lookup, cancelled=cancelled, runtime=warm)

    def limits(self, service: Service) -> Limits:
        return contract.limits(service, self.settings)

    def job_spec(self, service: Service, job: JobView, attempt: int) -> JobSpec:
        return contract.job_spec(service, job, attempt, self.settings)

    def log(self, job_id: str, lines: Sequence[LogLine]) -> None:
        """Store a job's log lines (for runs outside the dispatcher, such as `/run`)."""
        self.reporter.log(job_id, lines)

    # -- submissions ----------------------------------------------------------------------

    def new_body_path(self) -> Path:
        """Where the API streams a `/job` body before `submit` (which moves or removes it)."""
        self.bodies.mkdir(parents=True, exist_ok=True)
        return self.bodies / f"{INCOMING_PREFIX}{uuid.uuid4().hex}"

    def submit(self, service_name: str, body: bytes | Path, *, inputs_only: bool = False) -> str:
        """A `/job` request: a MinIO/S3 event names an object to stage; any other body is
        the input itself. `body` is the bytes, or a file from `new_body_path` that this takes
        over (never read whole: a body may be larger than memory). With `inputs_only` (a caller
        holding only the service's token) an event must name an object under one of the
        service's inputs, else `EventNotAllowed`. The job is committed before this returns."""
        service = self.catalog.require(service_name)
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
        with open(path, "wb", opener=private_opener) as handle:
            handle.write(body)
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
        return self._reconcile_service(self.catalog.require(service_name))

    def _reconcile_service(self, service: Service) -> int:
        return self.intake.reconcile(service, lambda name: self.providers.resolve(service, name))

    # -- reading and changing jobs (see `JobOperations`) ----------------------------------

    @property
    def capacity(self) -> Capacity:
        """What the dispatcher hands out to running jobs in all."""
        return self.dispatcher.capacity

    def nodes(self) -> list[NodeStatus]:
        """The machines jobs run on: the cluster's nodes, or this one machine."""
        if isinstance(self.runtime, ClusterRuntime):
            return self.runtime.nodes()
        database = self.ledger.database
        running = activity.running_by_service(database)
        cpu, memory = activity.reserved(self.registry.list(), running)
        capacity = self.dispatcher.capacity
        return [
            NodeStatus(
                LOCAL_NODE, capacity.cpu, capacity.memory, cpu, memory, sum(running.values())
            )
        ]

    def jobs(self, service_name: str, offset: int, limit: int) -> tuple[list[JobView], int]:
        return self.operations.jobs(service_name, offset, limit)

    def job(self, service_name: str, job_id: str) -> JobView:
        return self.operations.job(service_name, job_id)

    def job_log(self, service_name: str, job_id: str, timestamps: bool = False) -> str:
        return self.operations.job_log(service_name, job_id, timestamps)

    def attempts(self, service_name: str, job_id: str) -> list[AttemptView]:
        return self.operations.attempts(service_name, job_id)

    def counts(self, service_name: str | None = None) -> dict[JobStatus, int]:
        """How many jobs are in each state, of one service or of all."""
        return self.ledger.count_by_status(service_name)

    def retry(self, service_name: str, job_id: str) -> JobView:
        return self.operations.retry(service_name, job_id)

    def delete_job(self, service_name: str, job_id: str) -> None:
        self.operations.delete_job(service_name, job_id)

    def delete_jobs(self, service_name: str, everything: bool = False) -> int:
        return self.operations.delete_jobs(service_name, everything)
