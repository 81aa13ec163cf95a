"""Retention: finished jobs and their logs expire, as OSCAR's `TTL_JOB` makes Kubernetes
delete a finished Job and its pod's log.

A sweep runs every `job_expiry_interval` seconds and deletes the jobs that finished (succeeded,
failed or cancelled) longer ago than their service's `job_ttl`, or `job_ttl` of the settings
(30 days, OSCAR's default); 0 keeps them forever. Pending and running jobs never expire. The
content of an expired storage job is remembered (`ExpiredObject`), so that the reconcile pass
does not run its object again.

The same sweep removes `/job` bodies a crashed process left half-received (`.incoming-*` files
untouched for longer than `abandoned_after`): a live upload writes to its file at least every
`body_timeout` seconds, or its connection is closed and the file removed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from oscarpy.db import utcnow
from oscarpy.engine.ledger import JobView, Ledger
from oscarpy.engine.records import ExpiredObject, Job, JobStatus
from oscarpy.periodic import Periodic
from oscarpy.services.model import Service

log = logging.getLogger(__name__)

#: How a `/job` body being received is named in the bodies directory.
INCOMING_PREFIX = ".incoming-"
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
_BATCH = 500


class Retention:
    def __init__(
        self,
        ledger: Ledger,
        services: Callable[[], list[Service]],
        *,
        default_ttl: float,
        interval: float,
        bodies: Path | None = None,
        abandoned_after: float = 3600.0,
    ) -> None:
        self.ledger = ledger
        self._services = services
        self.default_ttl = default_ttl
        self.bodies = bodies
        self.abandoned_after = abandoned_after
        self._periodic = Periodic(
            "retention", interval, self._turn, first=self._remove_abandoned_bodies_safely
        )

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()

    def _turn(self) -> None:
        try:
            self.sweep()
        except Exception:
            log.exception("expiring finished jobs failed; trying again later")
        self._remove_abandoned_bodies_safely()

    def _remove_abandoned_bodies_safely(self) -> None:
        try:
            self.remove_abandoned_bodies()
        except OSError as error:
            log.warning("cannot remove abandoned /job bodies: %s", error)

    def remove_abandoned_bodies(self, now: float | None = None) -> int:
        """Delete the half-received `/job` bodies nobody has written to for `abandoned_after`
        seconds (their process died); returns how many."""
        if self.bodies is None or not self.bodies.is_dir():
            return 0
        cutoff = (now if now is not None else time.time()) - self.abandoned_after
        removed = 0
        for leftover in self.bodies.glob(f"{INCOMING_PREFIX}*"):
            try:
                if leftover.lstat().st_mtime < cutoff:
                    leftover.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # its upload finished meanwhile
        if removed:
            log.info("removed %d half-received /job bodies left by a stopped process", removed)
        return removed

    def sweep(self, now: datetime | None = None) -> int:
        """Delete every expired job with its attempts and log; returns how many."""
        now = now or utcnow()
        own = {
            service.name: service.job_ttl
            for service in self._services()
            if service.job_ttl is not None
        }
        removed: list[JobView] = []
        for name, ttl in own.items():
            if ttl > 0:
                removed += self._expire(Job.service == name, now - timedelta(seconds=ttl))
        if self.default_ttl > 0:
            cutoff = now - timedelta(seconds=self.default_ttl)
            removed += self._expire(Job.service.not_in(own), cutoff)
        for view in removed:
            if view.body_path:
                Path(view.body_path).unlink(missing_ok=True)
        if removed:
            log.info("%d finished job(s) expired with their logs", len(removed))
        return len(removed)

    def _expire(self, which: ColumnElement[bool], cutoff: datetime) -> list[JobView]:
        removed: list[JobView] = []
        while True:
            # Chosen and deleted in one write transaction: a job re-queued meanwhile (retry)
            # is no longer finished, and stays.
            with self.ledger.writing() as session:
                jobs = list(
                    session.scalars(
                        select(Job)
                        .where(which, Job.status.in_([str(status) for status in FINISHED]))
                        .where(Job.finished_at < cutoff)
                        .limit(_BATCH)
                        .with_for_update()
                    )
                )
                _remember(session, jobs)
                removed += self.ledger.delete_in(session, [job.id for job in jobs])
            if len(jobs) < _BATCH:
                return removed


def _remember(session: Session, jobs: Sequence[Job]) -> None:
    """Note the contents whose only record was these jobs, for the reconcile pass."""
    seen: set[tuple[str, str, str, str]] = set()
    for job in jobs:
        if job.bucket is None or job.key is None or job.etag is None:
            continue
        entry = (job.service, job.bucket, job.key, job.etag)
        if entry in seen:
            continue
        seen.add(entry)
        known = session.scalar(
            select(ExpiredObject.id).where(
                ExpiredObject.service == job.service,
                ExpiredObject.bucket == job.bucket,
                ExpiredObject.key == job.key,
                ExpiredObject.etag == job.etag,
            )
        )
        if known is None:
            session.add(
                ExpiredObject(service=job.service, bucket=job.bucket, key=job.key, etag=job.etag)
            )
