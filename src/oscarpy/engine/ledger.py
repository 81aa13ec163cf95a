"""The job ledger: every job, attempt and log line, in the state DB.

Every change of a job's state goes through `_transition`, and each is a committed write, so
that a restarted server resumes exactly where the last one stopped. Running jobs are leased to
the server instance that runs them (`oscarpy.instances`); a running job whose instance is dead
(its lease expired) is taken over by `take_over_orphans`, under a row lock so that one
survivor takes it, and then adopted or run again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, cast

from sqlalchemy import Table, case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from oscarpy.db import Database, utcnow
from oscarpy.engine.errors import InvalidJobOperation, JobNotFound
from oscarpy.engine.outcomes import AttemptOutcome, FinishedAttempt, OutcomeKind
from oscarpy.engine.records import (
    ExpiredObject,
    Job,
    JobAttempt,
    JobLogChunk,
    JobSource,
    JobStatus,
)
from oscarpy.engine.retries import Failures, RetryPolicy
from oscarpy.instances import new_instance_id

log = logging.getLogger(__name__)

DEFAULT_LOG_CAP = 10 * 1024 * 1024
ORPHAN_REASON = "abandoned"

_ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset(
        {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.PENDING, JobStatus.CANCELLED}
    ),
    JobStatus.FAILED: frozenset({JobStatus.PENDING}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}
_FINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
_UPLOAD_KEY = ["service", "bucket", "key", "upload"]
"""The columns of `uq_jobs_upload`: one job per upload."""


_JOBS = cast(Table, Job.__table__)
_INSERT_JOB = {
    postgres: (postgresql.insert if postgres else sqlite.insert)(_JOBS)
    # Another process (or an earlier delivery of the event) recorded the same upload.
    .on_conflict_do_nothing(index_elements=_UPLOAD_KEY)
    .returning(_JOBS.c.id)
    for postgres in (False, True)
}
"""`Ledger.add`'s statement, built once per dialect (on PostgreSQL or not): the values come as
parameters, so that each call reuses the compiled statement."""


@dataclass(frozen=True)
class NewJob:
    service: str
    source: JobSource
    event: str = ""
    provider: str | None = None
    bucket: str | None = None
    key: str | None = None
    etag: str | None = None
    body_path: str | None = None
    job_id: str | None = None
    upload: str | None = None
    """`engine.events.upload_identity` of the upload: one job per upload of an object."""
    """Given when something (a request body on disk) is named after the job before it exists."""


@dataclass(frozen=True)
class JobView:
    """A read-only snapshot of a job row."""

    id: str
    service: str
    status: JobStatus
    source: JobSource
    provider: str | None
    bucket: str | None
    key: str | None
    etag: str | None
    event: str
    body_path: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    exit_code: int | None
    reason: str | None
    message: str | None
    log_truncated: bool
    nodes: tuple[str | None, ...] = ()
    """The node of each attempt, in order (`None` where not known), where the reader asked for
    them (`Ledger.page`); empty otherwise."""

    @classmethod
    def of(cls, job: Job, nodes: tuple[str | None, ...] = ()) -> JobView:
        return cls(
            id=job.id,
            service=job.service,
            status=JobStatus(job.status),
            source=JobSource(job.source),
            provider=job.provider,
            bucket=job.bucket,
            key=job.key,
            etag=job.etag,
            event=job.event,
            body_path=job.body_path,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            attempts=job.attempts,
            exit_code=job.exit_code,
            reason=job.reason,
            message=job.message,
            log_truncated=job.log_truncated,
            nodes=nodes,
        )


@dataclass(frozen=True)
class AttemptView:
    """A read-only snapshot of one attempt at running a job."""

    number: int
    execution_id: str | None
    node: str | None
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None
    exit_code: int | None
    reason: str | None
    message: str | None

    @classmethod
    def of(cls, attempt: JobAttempt) -> AttemptView:
        return cls(
            number=attempt.number,
            execution_id=attempt.execution_id,
            node=attempt.node,
            started_at=attempt.started_at,
            finished_at=attempt.finished_at,
            outcome=attempt.outcome,
            exit_code=attempt.exit_code,
            reason=attempt.reason,
            message=attempt.message,
        )


class Successor(Protocol):
    """Who runs the next job of a service in the place of one that ends (the dispatcher)."""

    def service(self) -> str | None:
        """The service whose next ready job may take the place, or `None`; asked before the
        end's transaction begins (it may read the catalog: no second connection is taken
        while the transaction holds one)."""
        ...

    def take(self, claim: Claim) -> None:
        """Run `claim`, claimed in the ending attempt's transaction, in its place."""
        ...


@dataclass(frozen=True)
class ReadyJobs:
    """What the dispatcher may start: the services' ready jobs, and when to look again."""

    counts: dict[str, int]
    """Jobs ready to run now, by service."""
    wake_at: datetime | None
    """When the earliest job still waiting out a backoff becomes ready."""


@dataclass(frozen=True)
class Claim:
    """A job this process now runs (or adopts), and which attempt it is."""

    job: JobView
    attempt: int
    execution_id: str | None = None
    attempt_started_at: datetime | None = None


def _transition(job: Job, target: JobStatus, now: datetime) -> None:
    """The one place a job's status changes; refuses moves the lifecycle does not allow."""
    current = JobStatus(job.status)
    if target not in _ALLOWED[current]:
        raise InvalidJobOperation(
            f"job {job.id} is {current.oscar_name}; it cannot become {target.oscar_name}"
        )
    job.status = target
    if target is JobStatus.RUNNING:
        job.started_at = now
        job.finished_at = None
    elif target is JobStatus.PENDING:
        job.lease_owner = None
        job.lease_expires_at = None
        job.finished_at = None
    else:
        job.finished_at = now
        job.lease_owner = None
        job.lease_expires_at = None


def _finished_attempt(
    job: Job, record: JobAttempt, ready_at: datetime, now: datetime
) -> FinishedAttempt:
    return FinishedAttempt(
        job_id=job.id,
        service=job.service,
        source=job.source,
        attempt=record.number,
        outcome=record.outcome or "",
        reason=record.reason,
        status=job.status,
        ready_at=ready_at,
        started_at=record.started_at,
        finished_at=now,
    )


class Ledger:
    def __init__(
        self,
        database: Database,
        *,
        owner: str | None = None,
        alive: Callable[[str], bool] | None = None,
        lease_seconds: float = 60.0,
        log_cap: int = DEFAULT_LOG_CAP,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        """`owner` is this server instance's id; `alive` tells whether another instance holds
        a running lease (without it, every other instance is taken for dead)."""
        self.database = database
        self.owner = owner or new_instance_id()
        self._alive = alive or (lambda owner: owner == self.owner)
        self.lease = timedelta(seconds=lease_seconds)
        self.log_cap = log_cap
        self.retry_policy = retry_policy or RetryPolicy()
        self._finish_listeners: list[Callable[[FinishedAttempt], None]] = []

    def add_finish_listener(self, listener: Callable[[FinishedAttempt], None]) -> None:
        """Call `listener` after each attempt's end is committed (metrics, usage records); it
        must be quick and must not write to the state DB itself."""
        self._finish_listeners.append(listener)

    def is_alive(self, owner: str) -> bool:
        """Whether the server instance `owner` holds a running lease."""
        return owner == self.owner or self._alive(owner)

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A write transaction holding the write lock from its start (`Database.writing`), so
        a read-then-write never fails on a snapshot another writer made stale."""
        with self.database.writing() as session:
            yield session

    @contextmanager
    def _writing_in(self, session: Session | None) -> Iterator[Session]:
        """The caller's transaction if it passes one, else `writing()`."""
        if session is not None:
            yield session
            return
        with self.writing() as fresh:
            yield fresh

    # -- creating -------------------------------------------------------------------------

    def add(self, session: Session, new: NewJob) -> str | None:
        """Record a pending job in the caller's transaction; `None` if its upload has one.

        One statement (`INSERT … ON CONFLICT DO NOTHING` on the upload's unique key): the
        intake adds a job per event, and a lookup plus a savepoint per job cost it more than
        the rest of its transaction."""
        now = utcnow()
        job_id = new.job_id or str(uuid.uuid4())
        values = {
            "id": job_id,
            "service": new.service,
            "status": JobStatus.PENDING.value,
            "source": new.source.value,
            "provider": new.provider,
            "bucket": new.bucket,
            "key": new.key,
            "etag": new.etag,
            "upload": new.upload,
            "event": new.event,
            "body_path": new.body_path,
            "created_at": now,
            "next_attempt_at": now,
            "attempts": 0,
            "script_failures": 0,
            "infrastructure_failures": 0,
            "log_bytes": 0,
            "log_truncated": False,
        }
        insert = _INSERT_JOB[session.get_bind().dialect.name == "postgresql"]
        inserted = session.scalar(insert, values)
        return None if inserted is None else str(inserted)

    def add_job(self, new: NewJob) -> str | None:
        with self.writing() as session:
            return self.add(session, new)

    def find_job(
        self, service: str, bucket: str | None, key: str | None, etag: str | None
    ) -> str | None:
        """A job of an upload of that content, if there is one."""
        with self.database.session() as session:
            return session.scalar(
                select(Job.id)
                .where(Job.service == service, Job.bucket == bucket, Job.key == key)
                .where(Job.etag == etag)
                .limit(1)
            )

    def had_job(self, service: str, bucket: str, key: str, etag: str) -> bool:
        """Whether an upload of that content has a job, or had one that expired."""
        if self.find_job(service, bucket, key, etag) is not None:
            return True
        with self.database.session() as session:
            found = session.scalar(
                select(ExpiredObject.id).where(
                    ExpiredObject.service == service,
                    ExpiredObject.bucket == bucket,
                    ExpiredObject.key == key,
                    ExpiredObject.etag == etag,
                )
            )
            return found is not None

    def find_upload(
        self, service: str, bucket: str | None, key: str | None, upload: str
    ) -> str | None:
        """The job of that upload, if there is one."""
        with self.database.session() as session:
            return self._upload_job(session, service, bucket, key, upload)

    @staticmethod
    def _upload_job(
        session: Session, service: str, bucket: str | None, key: str | None, upload: str
    ) -> str | None:
        return session.scalar(
            select(Job.id)
            .where(Job.service == service, Job.bucket == bucket, Job.key == key)
            .where(Job.upload == upload)
        )

    # -- reading --------------------------------------------------------------------------

    def get(self, job_id: str, service: str | None = None) -> JobView:
        with self.database.session() as session:
            return JobView.of(self._load(session, job_id, service))

    @staticmethod
    def _load(session: Session, job_id: str, service: str | None) -> Job:
        job = session.get(Job, job_id)
        if job is None or (service is not None and job.service != service):
            where = f" of service {service}" if service else ""
            raise JobNotFound(f"no job {job_id}{where}")
        return job

    def page(self, service: str, offset: int = 0, limit: int = 100) -> tuple[list[JobView], int]:
        """A page of the service's jobs, newest first, and how many there are in all."""
        with self.database.session() as session:
            total = session.scalar(select(func.count()).where(Job.service == service)) or 0
            rows = session.scalars(
                select(Job)
                .where(Job.service == service)
                .order_by(Job.created_at.desc(), Job.id)
                .offset(offset)
                .limit(limit)
            ).all()
            nodes: dict[str, list[str | None]] = {}
            for job_id, node in session.execute(
                select(JobAttempt.job_id, JobAttempt.node)
                .where(JobAttempt.job_id.in_([job.id for job in rows]))
                .order_by(JobAttempt.job_id, JobAttempt.number)
            ):
                nodes.setdefault(job_id, []).append(node)
            return [JobView.of(job, tuple(nodes.get(job.id, ()))) for job in rows], total

    def attempts(self, job_id: str) -> list[AttemptView]:
        with self.database.session() as session:
            return [
                AttemptView.of(attempt)
                for attempt in session.scalars(
                    select(JobAttempt)
                    .where(JobAttempt.job_id == job_id)
                    .order_by(JobAttempt.number)
                )
            ]

    def count_by_status(self, service: str | None = None) -> dict[JobStatus, int]:
        with self.database.session() as session:
            query = select(Job.status, func.count()).group_by(Job.status)
            if service is not None:
                query = query.where(Job.service == service)
            return {JobStatus(status): count for status, count in session.execute(query).all()}

    # -- dispatching ----------------------------------------------------------------------

    def ready_services(self) -> ReadyJobs:
        """Services with jobs ready to run now, how many each has, and when the next job
        waiting out a backoff becomes ready: one query per dispatcher round."""
        now = utcnow()
        is_ready = Job.next_attempt_at <= now
        with self.database.session() as session:
            rows = session.execute(
                select(
                    Job.service,
                    func.sum(case((is_ready, 1), else_=0)),
                    func.min(case((is_ready, None), else_=Job.next_attempt_at)),
                )
                .where(Job.status == JobStatus.PENDING)
                .group_by(Job.service)
            ).all()
        counts = {str(service): int(ready) for service, ready, _ in rows if ready}
        return ReadyJobs(counts, min((at for _, _, at in rows if at is not None), default=None))

    def claim(self, job_id: str) -> Claim | None:
        """Take a pending job for this process: it becomes running under a new attempt."""
        with self.writing() as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or job.status != JobStatus.PENDING:
                return None
            return self._claim(session, job)

    def claim_next(self, service: str) -> Claim | None:
        """`claim` the service's oldest ready job, found and taken in one transaction (one
        commit per dispatched job); a job another process is taking is skipped."""
        with self.writing() as session:
            return self._claim_next(session, service)

    def _claim_next(self, session: Session, service: str, but: str | None = None) -> Claim | None:
        """`but`: a job that must not be taken (the one whose end hands over its place)."""
        job = session.scalar(
            select(Job)
            .where(Job.service == service, Job.status == JobStatus.PENDING)
            .where(Job.next_attempt_at <= utcnow(), Job.id != (but or ""))
            .order_by(Job.created_at, Job.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        return None if job is None else self._claim(session, job)

    def _claim(self, session: Session, job: Job) -> Claim:
        now = utcnow()
        _transition(job, JobStatus.RUNNING, now)
        job.attempts += 1
        job.lease_owner = self.owner
        job.lease_expires_at = now + self.lease
        session.add(
            JobAttempt(job_id=job.id, number=job.attempts, owner=self.owner, started_at=now)
        )
        return Claim(JobView.of(job), job.attempts, attempt_started_at=now)

    def start_running(
        self,
        new: NewJob,
        execution_id: str | None = None,
        *,
        at: datetime | None = None,
        session: Session | None = None,
    ) -> Claim:
        """Record a job that runs at once, outside the dispatcher (a `/run` request): it is
        created running (since `at`, else now), leased to this process, with its first attempt
        open. In `session` if given, else in a transaction of its own."""
        now = at or utcnow()
        job = self._running_job(new, now)
        with self._writing_in(session) as session:
            session.add(job)
            session.add(
                JobAttempt(
                    job_id=job.id,
                    number=1,
                    owner=self.owner,
                    started_at=now,
                    execution_id=execution_id,
                )
            )
            session.flush()
            return Claim(JobView.of(job), 1, execution_id, now)

    def running_view(self, new: NewJob, at: datetime) -> JobView:
        """The job `start_running(new, at=at)` records, before (or without) recording it."""
        return JobView.of(self._running_job(new, at))

    def _running_job(self, new: NewJob, now: datetime) -> Job:
        return Job(
            id=new.job_id or str(uuid.uuid4()),
            service=new.service,
            status=JobStatus.RUNNING,
            source=new.source,
            event=new.event,
            created_at=now,
            started_at=now,
            next_attempt_at=now,
            attempts=1,
            script_failures=0,
            infrastructure_failures=0,
            lease_owner=self.owner,
            lease_expires_at=now + self.lease,
            log_bytes=0,
            log_truncated=False,
        )

    def record_execution(
        self, job_id: str, attempt: int, execution_id: str, node: str | None = None
    ) -> None:
        """Note the container of an attempt, before it starts, so that a restart can adopt it,
        and the machine it runs on when that is known already (one write, not two)."""
        if node is None:
            self._update_attempt(job_id, attempt, execution_id=execution_id)
        else:
            self._update_attempt(job_id, attempt, execution_id=execution_id, node=node[:255])

    def record_node(self, job_id: str, attempt: int, node: str) -> None:
        """Note the machine that runs an attempt, once the runtime knows it."""
        self._update_attempt(job_id, attempt, node=node[:255])

    def _update_attempt(self, job_id: str, attempt: int, **values: str) -> None:
        with self.writing() as session:
            session.execute(
                update(JobAttempt)
                .where(JobAttempt.job_id == job_id, JobAttempt.number == attempt)
                .values(**values)
            )

    def renew_leases(self, job_ids: Sequence[str]) -> None:
        if not job_ids:
            return
        with self.writing() as session:
            session.execute(
                update(Job)
                .where(Job.id.in_(job_ids), Job.lease_owner == self.owner)
                .values(lease_expires_at=utcnow() + self.lease)
            )

    def record_run(
        self,
        new: NewJob,
        started_at: datetime,
        outcome: AttemptOutcome,
        log_lines: Sequence[tuple[datetime, str]] = (),
    ) -> JobStatus | None:
        """A `/run` call that ended before it was recorded as running (`start_running`): its
        job, attempt, log and outcome in one transaction, one commit for a short call."""
        finished: list[FinishedAttempt] = []
        job = self._running_job(new, started_at)
        record = JobAttempt(job_id=job.id, number=1, owner=self.owner, started_at=started_at)
        with self.writing() as session:
            # Concluded before anything is written: the job, its attempt and its log are each
            # inserted once, in their final state (no insert, read back, then update).
            session.add(job)
            session.add(record)
            status = self._conclude(session, job, record, outcome, 0, log_lines, {}, finished)
        self._report_finished(job.id, finished)
        return status

    def finish(
        self,
        job_id: str,
        attempt: int,
        outcome: AttemptOutcome,
        script_retries: int = 0,
        log_lines: Sequence[tuple[datetime, str]] = (),
        execution_id: str | None = None,
        node: str | None = None,
        successor: Successor | None = None,
    ) -> JobStatus | None:
        """Record how an attempt ended and decide what follows: done, failed, or run again.

        `log_lines`, the attempt's last lines, and the attempt's `execution_id` and `node` when
        they were not recorded yet, are stored in the same transaction (a short job costs one
        commit at its end, not four). Returns the job's new status, or `None` when the job is
        no longer this attempt's to finish (deleted or cancelled meanwhile).

        `successor` hands the attempt's place to the next ready job of the same service: it is
        claimed in the same transaction (no commit of its own), then given to `successor.take`.
        """
        finished: list[FinishedAttempt] = []
        started = {"execution_id": execution_id, "node": node and node[:255]}
        claimed: Claim | None = None
        next_of: str | None = None
        try:
            next_of = successor.service() if successor is not None else None
        except Exception:  # the end must be recorded whatever the hand-over's question met
            log.exception("job %s: cannot hand its place over; the dispatcher fills it", job_id)
        with self.writing() as session:
            status = self._finish(
                session, job_id, attempt, outcome, script_retries, log_lines, started, finished
            )
            if finished and next_of is not None:
                claimed = self._claim_next(session, next_of, but=job_id)
        if successor is not None and claimed is not None:
            successor.take(claimed)
        self._report_finished(job_id, finished)
        return status

    def _report_finished(self, job_id: str, finished: list[FinishedAttempt]) -> None:
        for report in finished:
            for listener in self._finish_listeners:
                try:
                    listener(report)
                except Exception:
                    log.exception("job %s: a finish listener failed", job_id)

    def _finish(
        self,
        session: Session,
        job_id: str,
        attempt: int,
        outcome: AttemptOutcome,
        script_retries: int,
        log_lines: Sequence[tuple[datetime, str]],
        started: dict[str, str | None],
        finished: list[FinishedAttempt],
    ) -> JobStatus | None:
        job = session.get(Job, job_id, with_for_update=True)
        record = session.scalar(
            select(JobAttempt).where(JobAttempt.job_id == job_id, JobAttempt.number == attempt)
        )
        if job is None or job.attempts != attempt:
            if job is not None:
                self._append_log(session, job, log_lines)
            self._close_attempt(record, outcome, started, utcnow())
            return None
        return self._conclude(
            session, job, record, outcome, script_retries, log_lines, started, finished
        )

    @staticmethod
    def _close_attempt(
        record: JobAttempt | None,
        outcome: AttemptOutcome,
        started: dict[str, str | None],
        now: datetime,
    ) -> None:
        if record is not None:
            for column, value in started.items():
                if value is not None:
                    setattr(record, column, value)
            record.finished_at = now
            record.outcome = outcome.kind
            record.exit_code = outcome.exit_code
            record.reason = outcome.reason
            record.message = outcome.message

    def _conclude(
        self,
        session: Session,
        job: Job,
        record: JobAttempt | None,
        outcome: AttemptOutcome,
        script_retries: int,
        log_lines: Sequence[tuple[datetime, str]],
        started: dict[str, str | None],
        finished: list[FinishedAttempt],
    ) -> JobStatus | None:
        """End the attempt `record` of `job` (both loaded, or new in this session): its log,
        its outcome, and the job's next state."""
        now = utcnow()
        self._append_log(session, job, log_lines)
        self._close_attempt(record, outcome, started, now)
        if job.status != JobStatus.RUNNING:
            return None
        job.exit_code = outcome.exit_code
        job.reason = outcome.reason
        job.message = outcome.message
        ready_at = job.next_attempt_at  # the retry below moves it
        if outcome.kind is OutcomeKind.SCRIPT_FAILED:
            job.script_failures += 1
        elif outcome.kind is OutcomeKind.INFRASTRUCTURE_FAILED:
            job.infrastructure_failures += 1
        delay = self.retry_policy.next_attempt(
            JobSource(job.source),
            outcome,
            Failures(job.script_failures, job.infrastructure_failures),
            script_retries,
        )
        if delay is not None:
            _transition(job, JobStatus.PENDING, now)
            job.next_attempt_at = now + timedelta(seconds=delay)
        elif outcome.kind is OutcomeKind.SUCCEEDED:
            _transition(job, JobStatus.SUCCEEDED, now)
        else:
            _transition(job, JobStatus.FAILED, now)
        if record is not None:
            finished.append(_finished_attempt(job, record, ready_at, now))
        return JobStatus(job.status)

    def take_over_orphans(self, alive: Callable[[str], bool] | None = None) -> list[Claim]:
        """Running jobs whose instance is dead, now leased to this one.

        Each job is taken under a row lock that other survivors skip (`FOR UPDATE SKIP
        LOCKED`), so exactly one takes it. The caller adopts each one's execution if the
        runtime still has it, else finishes the attempt as abandoned so that the job runs again.
        """
        alive = alive or self.is_alive
        with self.database.session() as session:
            owners = set(
                session.scalars(
                    select(Job.lease_owner)
                    .where(Job.status == JobStatus.RUNNING, Job.lease_owner != self.owner)
                    .distinct()
                )
            )
            orphaned_by_none = session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.status == JobStatus.RUNNING, Job.lease_owner.is_(None))
            )
        dead = [owner for owner in owners if owner is not None and not alive(owner)]
        if not dead and not orphaned_by_none:
            return []
        now = utcnow()
        claims: list[Claim] = []
        with self.writing() as session:
            owner_is_dead = Job.lease_owner.in_(dead) | Job.lease_owner.is_(None)
            running = session.scalars(
                select(Job)
                .where(Job.status == JobStatus.RUNNING, owner_is_dead)
                .with_for_update(skip_locked=True)
            ).all()
            for job in running:
                log.warning(
                    "taking over job %s of %s (instance %s is dead)",
                    job.id,
                    job.service,
                    job.lease_owner,
                )
                job.lease_owner = self.owner
                job.lease_expires_at = now + self.lease
                record = session.scalar(
                    select(JobAttempt).where(
                        JobAttempt.job_id == job.id, JobAttempt.number == job.attempts
                    )
                )
                claims.append(
                    Claim(
                        JobView.of(job),
                        job.attempts,
                        execution_id=record.execution_id if record else None,
                        attempt_started_at=record.started_at if record else job.started_at,
                    )
                )
        return claims

    def needed(self, job_ids: set[str]) -> set[str]:
        """Those of `job_ids` that run under a live instance (their executions and work
        directories are in use); the others' are leftovers."""
        if not job_ids:
            return set()
        with self.database.session() as session:
            rows = session.execute(
                select(Job.id, Job.lease_owner).where(
                    Job.id.in_(job_ids), Job.status == JobStatus.RUNNING
                )
            ).all()
        live = {owner for _, owner in rows if owner is not None and self.is_alive(owner)}
        return {job_id for job_id, owner in rows if owner in live}

    def deleted(self, job_ids: Collection[str]) -> set[str]:
        """Those of `job_ids` that are cancelled or gone: deleted, by another server maybe."""
        if not job_ids:
            return set()
        with self.database.session() as session:
            kept = session.scalars(
                select(Job.id).where(Job.id.in_(job_ids), Job.status != JobStatus.CANCELLED)
            )
            return set(job_ids) - set(kept)

    # -- operations from the API ----------------------------------------------------------

    def retry(self, service: str, job_id: str) -> JobView:
        """Run a failed job again, with a fresh retry budget."""
        now = utcnow()
        with self.writing() as session:
            job = self._load(session, job_id, service)
            if job.status != JobStatus.FAILED:
                raise InvalidJobOperation(
                    f"job {job_id} is {JobStatus(job.status).oscar_name}; "
                    "only a Failed job can be retried"
                )
            _transition(job, JobStatus.PENDING, now)
            job.next_attempt_at = now
            job.script_failures = 0
            job.infrastructure_failures = 0
            return JobView.of(job)

    def cancel(self, service: str, job_id: str) -> JobView:
        """Stop a pending or running job from going on; a finished one is left as it is."""
        with self.writing() as session:
            job = self._load(session, job_id, service)
            if JobStatus(job.status) not in _FINAL:
                _transition(job, JobStatus.CANCELLED, utcnow())
                job.reason = job.reason or "cancelled"
            return JobView.of(job)

    def delete(self, job_ids: Sequence[str]) -> list[JobView]:
        """Remove jobs with their attempts and logs; returns what was removed."""
        if not job_ids:
            return []
        with self.writing() as session:
            return self.delete_in(session, job_ids)

    @staticmethod
    def delete_in(session: Session, job_ids: Sequence[str]) -> list[JobView]:
        """`delete` in the caller's transaction."""
        removed = [
            JobView.of(job) for job in session.scalars(select(Job).where(Job.id.in_(job_ids)))
        ]
        session.execute(delete(JobLogChunk).where(JobLogChunk.job_id.in_(job_ids)))
        session.execute(delete(JobAttempt).where(JobAttempt.job_id.in_(job_ids)))
        session.execute(delete(Job).where(Job.id.in_(job_ids)))
        return removed

    def job_ids(self, service: str, statuses: Sequence[JobStatus] | None = None) -> list[str]:
        with self.database.session() as session:
            query = select(Job.id).where(Job.service == service)
            if statuses is not None:
                query = query.where(Job.status.in_([str(status) for status in statuses]))
            return list(session.scalars(query))

    # -- logs -----------------------------------------------------------------------------

    def append_log(self, job_id: str, lines: Sequence[tuple[datetime, str]]) -> None:
        """Store log lines, keeping the job's log within the cap; the cut is noted once."""
        if not lines:
            return
        with self.writing() as session:
            job = session.get(Job, job_id)
            if job is not None:
                self._append_log(session, job, lines)

    def _append_log(
        self, session: Session, job: Job, lines: Sequence[tuple[datetime, str]]
    ) -> None:
        if not lines or job.log_truncated:
            return
        budget = self.log_cap - job.log_bytes
        kept: list[str] = []
        for at, text in lines:
            entry = f"{at.strftime('%Y-%m-%dT%H:%M:%S.%fZ')} {text}\n"
            size = len(entry.encode())
            if size > budget:
                note = (
                    f"[oscar] log truncated: the limit of {self.log_cap} bytes per job "
                    "was reached; later output was dropped"
                )
                kept.append(f"{utcnow().strftime('%Y-%m-%dT%H:%M:%S.%fZ')} {note}\n")
                job.log_truncated = True
                break
            budget -= size
            kept.append(entry)
        text = "".join(kept)
        job.log_bytes += len(text.encode())
        session.add(JobLogChunk(job_id=job.id, text=text))

    def last_log_time(self, job_id: str) -> datetime | None:
        """When the newest stored line of the job's log was printed."""
        with self.database.session() as session:
            text = session.scalar(
                select(JobLogChunk.text)
                .where(JobLogChunk.job_id == job_id)
                .order_by(JobLogChunk.id.desc())
                .limit(1)
            )
        if not text:
            return None
        stamp = text.rstrip("\n").rpartition("\n")[2].partition(" ")[0]
        try:
            return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        except ValueError:
            return None

    def read_log(self, job_id: str, timestamps: bool = False) -> str:
        with self.database.session() as session:
            chunks = session.scalars(
                select(JobLogChunk.text)
                .where(JobLogChunk.job_id == job_id)
                .order_by(JobLogChunk.id)
            )
            text = "".join(chunks)
        if timestamps:
            return text
        return "".join(line.partition(" ")[2] for line in text.splitlines(keepends=True))
