"""Retention on SQLite and PostgreSQL: finished jobs expire with their logs, per service too;
pending and running jobs never do, and the reconcile pass still knows what ran."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from oscarpy.db import Database, utcnow
from oscarpy.engine.ledger import Ledger, NewJob
from oscarpy.engine.outcomes import AttemptOutcome
from oscarpy.engine.records import Job, JobSource, JobStatus
from oscarpy.engine.retention import INCOMING_PREFIX, Retention
from oscarpy.services.model import Service, parse_service

DAY = 24 * 3600


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    database = Database(database_url)
    database.migrate()
    yield Ledger(database, log_cap=2000)
    database.close()


def job(ledger: Ledger, service: str, key: str, *, status: JobStatus, age_days: float) -> str:
    """A job of `service` for `bucket/key` in `status`, finished (or started) that long ago."""
    new = NewJob(service, JobSource.STORAGE, "{}", "minio.default", "bucket", key, f"etag-{key}")
    job_id = ledger.add_job(new)
    assert job_id is not None
    if status is not JobStatus.PENDING:
        claim = ledger.claim(job_id)
        assert claim is not None
        ledger.append_log(job_id, [(utcnow(), f"log of {key}")])
        if status is JobStatus.SUCCEEDED:
            ledger.finish(job_id, claim.attempt, AttemptOutcome.success())
    when = utcnow() - timedelta(days=age_days)
    with ledger.writing() as session:
        finished = when if status is JobStatus.SUCCEEDED else None
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(created_at=when, started_at=when, finished_at=finished)
        )
    return job_id


def service(name: str, **fields: object) -> Service:
    return parse_service({"name": name, "image": "busybox", "script": "true", **fields})


def test_finished_jobs_expire_with_their_logs_and_others_stay(ledger: Ledger) -> None:
    old = job(ledger, "svc", "old", status=JobStatus.SUCCEEDED, age_days=31)
    recent = job(ledger, "svc", "recent", status=JobStatus.SUCCEEDED, age_days=29)
    running = job(ledger, "svc", "running", status=JobStatus.RUNNING, age_days=40)
    pending = job(ledger, "svc", "pending", status=JobStatus.PENDING, age_days=40)
    kept = job(ledger, "forever", "kept", status=JobStatus.SUCCEEDED, age_days=400)
    short = job(ledger, "short", "short", status=JobStatus.SUCCEEDED, age_days=2)
    services = [service("svc"), service("forever", job_ttl=0), service("short", job_ttl=DAY)]
    retention = Retention(ledger, lambda: services, default_ttl=30 * DAY, interval=1)

    assert retention.sweep() == 2

    left = {view.id for name in ("svc", "forever", "short") for view in ledger.page(name, 0, 50)[0]}
    assert left == {recent, running, pending, kept}
    assert old not in left and short not in left
    assert ledger.get(running).status is JobStatus.RUNNING
    assert ledger.read_log(running) != ""
    # The reconcile pass still knows the expired content ran.
    assert ledger.had_job("svc", "bucket", "old", "etag-old")
    assert not ledger.had_job("svc", "bucket", "old", "another-etag")
    assert retention.sweep() == 0


def test_a_default_ttl_of_zero_keeps_everything(ledger: Ledger) -> None:
    job(ledger, "svc", "ancient", status=JobStatus.SUCCEEDED, age_days=3650)
    retention = Retention(ledger, lambda: [service("svc")], default_ttl=0, interval=1)
    assert retention.sweep() == 0


def test_half_received_job_bodies_of_a_dead_process_are_removed_and_live_ones_kept(
    ledger: Ledger, tmp_path: Path
) -> None:
    bodies = tmp_path / "job-bodies"
    bodies.mkdir()
    abandoned = bodies / f"{INCOMING_PREFIX}dead"
    live = bodies / f"{INCOMING_PREFIX}live"
    queued = bodies / "a-job-body"  # a submitted job's body: only its job's expiry removes it
    for path in (abandoned, live, queued):
        path.write_bytes(b"part of a body")
    hour_ago = time.time() - 3601
    os.utime(abandoned, (hour_ago, hour_ago))
    os.utime(queued, (hour_ago, hour_ago))
    retention = Retention(
        ledger, list, default_ttl=0, interval=1, bodies=bodies, abandoned_after=3600
    )

    assert retention.remove_abandoned_bodies() == 1

    assert not abandoned.exists() and live.exists() and queued.exists()
