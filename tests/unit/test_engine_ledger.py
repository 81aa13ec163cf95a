"""The ledger on SQLite and PostgreSQL: de-duplication, the lifecycle, retries, leases, logs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from oscarpy.db import Database, utcnow
from oscarpy.engine.errors import InvalidJobOperation, JobNotFound
from oscarpy.engine.ledger import Ledger, NewJob
from oscarpy.engine.outcomes import AttemptOutcome, OutcomeKind
from oscarpy.engine.records import JobSource, JobStatus
from oscarpy.engine.retries import RetryPolicy

SCRIPT_FAILURE = AttemptOutcome(OutcomeKind.SCRIPT_FAILED, "script exited with 2", "exit", 2)
INFRASTRUCTURE = AttemptOutcome(OutcomeKind.INFRASTRUCTURE_FAILED, "daemon gone", "runtime")


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    database = Database(database_url)
    database.migrate()
    yield Ledger(
        database, log_cap=2000, retry_policy=RetryPolicy(limit=2, base_seconds=60, jitter=0)
    )
    database.close()


def storage_job(
    key: str = "in/a", etag: str = "e1", service: str = "svc", upload: str = "e1@t1"
) -> NewJob:
    return NewJob(
        service, JobSource.STORAGE, "{}", "minio.default", "bucket", key, etag, upload=upload
    )


def run_once(ledger: Ledger, job_id: str, outcome: AttemptOutcome, retries: int = 0) -> JobStatus:
    claim = ledger.claim(job_id)
    assert claim is not None
    status = ledger.finish(job_id, claim.attempt, outcome, script_retries=retries)
    assert status is not None
    return status


def test_one_job_per_upload(ledger: Ledger) -> None:
    first = ledger.add_job(storage_job())

    assert first is not None
    assert ledger.add_job(storage_job()) is None
    # The same bytes uploaded again are another upload.
    again = ledger.add_job(storage_job(upload="e1@t2"))
    assert again is not None
    assert ledger.add_job(storage_job(etag="e2", upload="e2@t3")) is not None
    assert ledger.add_job(storage_job(service="other")) is not None
    assert ledger.find_upload("svc", "bucket", "in/a", "e1@t2") == again
    assert ledger.find_job("svc", "bucket", "in/a", "e1") in (first, again)


def test_a_claimed_job_runs_once_and_records_its_attempt(ledger: Ledger) -> None:
    job_id = ledger.add_job(storage_job())
    assert job_id is not None

    claim = ledger.claim(job_id)

    assert claim is not None and claim.attempt == 1
    assert claim.job.status is JobStatus.RUNNING
    assert ledger.claim(job_id) is None
    ledger.record_execution(job_id, 1, "container-1")
    status = ledger.finish(job_id, 1, AttemptOutcome.success())
    assert status is JobStatus.SUCCEEDED
    (attempt,) = ledger.attempts(job_id)
    assert (attempt.execution_id, attempt.outcome, attempt.exit_code) == (
        "container-1",
        "succeeded",
        0,
    )
    view = ledger.get(job_id)
    assert view.finished_at is not None and view.started_at is not None


def test_a_script_failure_is_final_unless_the_service_asks_for_retries(ledger: Ledger) -> None:
    once = ledger.add_job(storage_job("a"))
    twice = ledger.add_job(storage_job("b"))
    assert once is not None and twice is not None

    assert run_once(ledger, once, SCRIPT_FAILURE) is JobStatus.FAILED
    assert run_once(ledger, twice, SCRIPT_FAILURE, retries=1) is JobStatus.PENDING
    assert run_once(ledger, twice, SCRIPT_FAILURE, retries=1) is JobStatus.FAILED
    failed = ledger.get(once)
    assert (failed.exit_code, failed.reason, failed.message) == (2, "exit", "script exited with 2")


def test_infrastructure_failures_back_off_then_fail(ledger: Ledger) -> None:
    job_id = ledger.add_job(storage_job())
    assert job_id is not None

    assert run_once(ledger, job_id, INFRASTRUCTURE) is JobStatus.PENDING

    ready = ledger.ready_services()
    assert ready.counts == {}  # waiting out its backoff of 60 s
    wakeup = ready.wake_at
    assert wakeup is not None and timedelta(seconds=55) < wakeup - utcnow() <= timedelta(seconds=60)
    with ledger.writing() as session:
        from oscarpy.engine.records import Job

        job = session.get(Job, job_id)
        assert job is not None
        job.next_attempt_at = utcnow()
    assert run_once(ledger, job_id, INFRASTRUCTURE) is JobStatus.PENDING
    with ledger.writing() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.next_attempt_at = utcnow()
    assert run_once(ledger, job_id, INFRASTRUCTURE) is JobStatus.FAILED
    assert ledger.get(job_id).attempts == 3


def test_only_a_failed_job_can_be_retried(ledger: Ledger) -> None:
    job_id = ledger.add_job(storage_job())
    assert job_id is not None
    with pytest.raises(InvalidJobOperation, match="is Pending; only a Failed job"):
        ledger.retry("svc", job_id)
    run_once(ledger, job_id, SCRIPT_FAILURE)

    assert ledger.retry("svc", job_id).status is JobStatus.PENDING
    with pytest.raises(JobNotFound):
        ledger.retry("other-service", job_id)


def test_a_cancelled_job_is_not_finished_by_its_attempt(ledger: Ledger) -> None:
    job_id = ledger.add_job(storage_job())
    assert job_id is not None
    claim = ledger.claim(job_id)
    assert claim is not None

    ledger.cancel("svc", job_id)

    assert ledger.finish(job_id, claim.attempt, AttemptOutcome.success()) is None
    assert ledger.get(job_id).status is JobStatus.CANCELLED


def test_only_jobs_of_dead_instances_are_taken_over(ledger: Ledger) -> None:
    mine = ledger.add_job(storage_job("mine"))
    dead = ledger.add_job(storage_job("dead"))
    living = ledger.add_job(storage_job("living"))
    assert mine and dead and living
    for job_id in (mine, dead, living):
        ledger.claim(job_id)
    with ledger.writing() as session:
        from oscarpy.engine.records import Job

        # The living instance names a pid that does not exist: only its lease counts.
        for job_id, owner in ((dead, "host/1/dead"), (living, "host/999999999/living")):
            job = session.get(Job, job_id)
            assert job is not None
            job.lease_owner = owner
    verdicts = {"host/1/dead": False, "host/999999999/living": True}

    claims = ledger.take_over_orphans(lambda owner: verdicts[owner])

    assert [claim.job.id for claim in claims] == [dead]
    assert claims[0].attempt == 1
    assert ledger.take_over_orphans(lambda owner: verdicts.get(owner, True)) == []
    assert ledger.needed({mine, dead, living, "gone"}) == {mine, dead}


def test_the_log_is_capped_and_the_cut_noted(ledger: Ledger) -> None:
    job_id = ledger.add_job(storage_job())
    assert job_id is not None
    now = utcnow()

    ledger.append_log(job_id, [(now, f"line {index}") for index in range(80)])
    ledger.append_log(job_id, [(now, "after the cut")])

    plain = ledger.read_log(job_id)
    stamped = ledger.read_log(job_id, timestamps=True)
    assert plain.startswith("line 0\nline 1\n")
    assert "log truncated: the limit of 2000 bytes per job was reached" in plain
    assert "after the cut" not in plain and "line 79" not in plain
    assert len(stamped.encode()) <= 2000 + 200
    assert ledger.get(job_id).log_truncated
    assert ledger.last_log_time(job_id) is not None


def test_delete_removes_a_job_with_its_attempts_and_log(ledger: Ledger) -> None:
    job_id = ledger.add_job(storage_job())
    assert job_id is not None
    run_once(ledger, job_id, AttemptOutcome.success())
    ledger.append_log(job_id, [(utcnow(), "x")])

    (removed,) = ledger.delete([job_id])

    assert removed.id == job_id
    assert ledger.attempts(job_id) == [] and ledger.read_log(job_id) == ""
    with pytest.raises(JobNotFound):
        ledger.get(job_id)
    assert ledger.add_job(storage_job()) is not None  # the same version may run again


def test_pages_list_newest_first(ledger: Ledger) -> None:
    ids = [ledger.add_job(storage_job(f"k{index}")) for index in range(5)]

    page, total = ledger.page("svc", 0, 2)
    rest, _ = ledger.page("svc", 2, 10)

    assert total == 5 and len(page) == 2 and len(rest) == 3
    assert {view.id for view in page + rest} == set(ids)
    assert page[0].created_at >= rest[-1].created_at
