"""The ledger's part in `/run`: a run job starts running at once and is never retried."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from oscarpy.db import Database, utcnow
from oscarpy.engine.ledger import Ledger, NewJob
from oscarpy.engine.outcomes import AttemptOutcome, FinishedAttempt, OutcomeKind
from oscarpy.engine.records import JobSource, JobStatus
from oscarpy.engine.retries import RetryPolicy


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    database = Database(database_url)
    database.migrate()
    yield Ledger(database, retry_policy=RetryPolicy(limit=3, base_seconds=0, jitter=0))
    database.close()


def test_a_run_job_is_running_leased_and_never_dispatched(ledger: Ledger) -> None:
    claim = ledger.start_running(NewJob("svc", JobSource.RUN, '{"a": 1}', job_id="j-1"))

    assert (claim.job.id, claim.attempt, claim.job.status) == ("j-1", 1, JobStatus.RUNNING)
    assert ledger.ready_services().counts == {}  # the dispatcher never sees it
    assert [a.number for a in ledger.attempts("j-1")] == [1]
    assert ledger.take_over_orphans() == []  # leased to this living process


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (AttemptOutcome.success(), JobStatus.SUCCEEDED),
        (AttemptOutcome(OutcomeKind.SCRIPT_FAILED, "exit 3", "exit", 3), JobStatus.FAILED),
        (AttemptOutcome(OutcomeKind.INFRASTRUCTURE_FAILED, "gone", "runtime"), JobStatus.FAILED),
    ],
)
def test_a_run_job_ends_with_its_one_attempt(
    ledger: Ledger, outcome: AttemptOutcome, expected: JobStatus
) -> None:
    claim = ledger.start_running(NewJob("svc", JobSource.RUN, job_id="j-2"))

    status = ledger.finish(claim.job.id, claim.attempt, outcome, script_retries=5)

    assert status is expected
    assert ledger.get("j-2").source is JobSource.RUN


def test_a_short_run_is_recorded_whole_in_one_transaction(ledger: Ledger) -> None:
    reports: list[FinishedAttempt] = []
    ledger.add_finish_listener(reports.append)
    started = utcnow() - timedelta(seconds=2)
    commits = 0

    def count(_session: object) -> None:
        nonlocal commits
        commits += 1

    event.listen(Session, "after_commit", count)
    try:
        status = ledger.record_run(
            NewJob("svc", JobSource.RUN, job_id="j-3"),
            started,
            AttemptOutcome(OutcomeKind.SCRIPT_FAILED, "exit 3", "exit", 3),
            [(started, "about to fail")],
        )
    finally:
        event.remove(Session, "after_commit", count)

    assert (status, commits) == (JobStatus.FAILED, 1)
    job = ledger.get("j-3")
    assert (job.source, job.exit_code, job.started_at) == (JobSource.RUN, 3, started)
    assert [a.number for a in ledger.attempts("j-3")] == [1]
    assert "about to fail" in ledger.read_log("j-3")
    assert [(r.job_id, r.status) for r in reports] == [("j-3", "failed")]
