"""How jobs fail: the exit status decides, infrastructure failures are retried with backoff."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from oscarpy.engine.records import JobStatus
from tests.support.jobs import Harness, running_engine, unique

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, docker_client: object) -> Iterator[Harness]:
    with running_engine(tmp_path_factory.mktemp("fail") / "data", job_retry_limit=2) as harness:
        yield harness


def _one_job(platform: Harness, script: str, **fields: object) -> tuple[str, str]:
    name, bucket = platform.in_out_service(script, "fail", **fields)
    platform.put(bucket, "in/a.txt", b"data\n")
    return name, bucket


def test_a_non_zero_exit_fails_the_job_and_uploads_nothing(platform: Harness) -> None:
    name, bucket = _one_job(platform, 'echo partial > "$TMP_OUTPUT_DIR/x"\necho bad >&2\nexit 3\n')

    (job,) = platform.finished_jobs(name)
    assert job.status is JobStatus.FAILED
    assert (job.exit_code, job.reason, job.attempts) == (3, "exit", 1)
    assert job.message == "script exited with 3"
    assert platform.read(bucket, "out/x") is None
    log = platform.engine.ledger.read_log(job.id)
    assert "bad" in log and "outputs are not uploaded" in log


def test_a_service_with_retries_runs_a_failing_script_again(platform: Harness) -> None:
    name, _ = _one_job(platform, "exit 4\n", retries=2)

    (job,) = platform.finished_jobs(name)
    assert job.status is JobStatus.FAILED and job.attempts == 3
    attempts = platform.engine.ledger.attempts(job.id)
    assert [attempt.exit_code for attempt in attempts] == [4, 4, 4]


def test_a_job_over_its_timeout_is_killed(platform: Harness) -> None:
    started = time.monotonic()
    name, _ = _one_job(platform, "echo begin\nsleep 60\n", timeout=1.5)

    (job,) = platform.finished_jobs(name, timeout=30)
    assert time.monotonic() - started < 20
    assert job.status is JobStatus.FAILED and job.reason == "timeout"
    assert "timeout of 1.5 s" in (job.message or "")
    assert "begin" in platform.engine.ledger.read_log(job.id)


def test_out_of_memory_is_reported_distinctly_and_retried(platform: Harness) -> None:
    script = "head -c 300000000 /dev/zero | tail -c 200000000 > /dev/null\n"
    name, _ = _one_job(platform, script, memory="24Mi")

    (job,) = platform.finished_jobs(name, timeout=60)
    assert job.status is JobStatus.FAILED and job.reason == "oom"
    assert job.attempts == 3  # the first try and the two infrastructure retries
    assert {attempt.reason for attempt in platform.engine.ledger.attempts(job.id)} == {"oom"}


def test_a_missing_image_fails_clearly_after_retries(platform: Harness) -> None:
    name, _ = _one_job(platform, "true\n", image="oscar-test/absent-image:1")

    (job,) = platform.finished_jobs(name, timeout=60)
    assert job.status is JobStatus.FAILED and job.reason == "image"
    assert "oscar-test/absent-image:1 is not on this host and cannot be pulled" in (
        job.message or ""
    )
    assert job.attempts == 3


def test_a_failed_job_can_be_retried_through_the_api(platform: Harness) -> None:
    bucket = unique("retry")
    service = platform.service(
        script='test -e "/oscar-job/input/go" || exit 9\n', input=[{"path": f"{bucket}/in"}]
    )
    platform.put(bucket, "in/stop", b"x")
    (job,) = platform.finished_jobs(service.name)
    assert job.status is JobStatus.FAILED

    answer = platform.client.post(f"/system/logs/{service.name}/{job.id}/retry")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] in ("Pending", "Running", "Failed")
    platform.wait_for(
        lambda: (
            platform.engine.ledger.get(job.id).attempts == 2
            and platform.engine.ledger.get(job.id).status is JobStatus.FAILED
        ),
        what="the second attempt",
    )
    again = platform.client.post(f"/system/logs/{service.name}/{job.id}/retry")
    assert again.status_code == 200
    platform.wait_for(lambda: platform.engine.ledger.get(job.id).status is JobStatus.FAILED)
    succeeded = platform.client.post(f"/system/logs/{service.name}/nope/retry")
    assert succeeded.status_code == 404


def test_retrying_a_job_that_did_not_fail_is_refused(platform: Harness) -> None:
    name, _ = _one_job(platform, "true\n")
    (job,) = platform.finished_jobs(name)

    answer = platform.client.post(f"/system/logs/{name}/{job.id}/retry")
    assert answer.status_code == 409
    assert "only a Failed job can be retried" in answer.text


def test_the_log_is_cut_at_the_limit_with_a_note(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running_engine(tmp_path_factory.mktemp("cap") / "data", job_log_limit=4096) as small:
        name, _ = _one_job(small, "i=0\nwhile [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done\n")
        (job,) = small.finished_jobs(name)
        log = small.engine.ledger.read_log(job.id, timestamps=True)
        assert job.status is JobStatus.SUCCEEDED
        assert len(log.encode()) <= 4096 + 200
        assert "log truncated: the limit of 4096 bytes per job was reached" in log
        assert "line 0" in log and "line 1999" not in log


@pytest.mark.slow
def test_a_2_gib_output_is_uploaded_whole(platform: Harness) -> None:
    size = 2 * 1024**3
    name, bucket = _one_job(
        platform,
        'dd if=/dev/zero of="$TMP_OUTPUT_DIR/big" bs=1M count=2048 2>/dev/null\n',
        memory="512Mi",
    )

    (job,) = platform.finished_jobs(name, timeout=240)
    assert job.status is JobStatus.SUCCEEDED, job.message
    found = platform.store.head(bucket, "out/big")
    assert found is not None and found.size == size
    assert found.etag == "a981130cf2b7e09f4686dc273cf7187e"  # MD5 of 2 GiB of zeros
    platform.store.delete_object(bucket, "out/big")


def test_a_job_whose_remote_owner_stopped_renewing_is_taken_over(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from oscarpy.db import utcnow
    from oscarpy.engine.records import Job

    data = tmp_path_factory.mktemp("lease") / "data"
    with running_engine(data, job_lease_seconds=0.5) as platform:
        name, bucket = _one_job(platform, 'echo ran > "$TMP_OUTPUT_DIR/done"\n', max_concurrency=1)
        (job,) = platform.finished_jobs(name)
        with platform.engine.ledger.writing() as session:
            row = session.get(Job, job.id)
            assert row is not None
            # As if another server on another host had claimed it again and then vanished.
            row.status, row.lease_owner, row.lease_expires_at = "running", "elsewhere/1/x", utcnow()
        platform.store.delete_object(bucket, "out/done")

        platform.object_appears(bucket, "out/done", timeout=20)
        platform.wait_for(lambda: platform.engine.ledger.get(job.id).status is JobStatus.SUCCEEDED)
        assert platform.engine.ledger.get(job.id).attempts == 2
        assert platform.engine.ledger.attempts(job.id)[-1].outcome == "succeeded"
