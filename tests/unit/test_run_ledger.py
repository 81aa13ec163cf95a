"""The ledger's part in `/run`: a run job starts running at once and is never retried."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from oscarpy.db import Database
from oscarpy.engine.ledger import Ledger, NewJob
from oscarpy.engine.outcomes import AttemptOutcome, OutcomeKind
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
