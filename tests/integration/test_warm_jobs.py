"""`warm_jobs: true`: a service's file jobs run in its warm containers (the `/run` pool), with
every guarantee of file jobs, on the real Docker Engine through the platform `oscar serve`
builds (in process)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from oscarpy.engine.records import JobStatus
from tests.reliability.test_warm_agent import LEAVE_BEHIND, LOOK
from tests.support.inprocess import InProcessServer, in_process_server

IMAGE = "oscar-test/busybox:latest"
FINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED)


@pytest.fixture(scope="module")
def platform(
    docker_client: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessServer]:
    data = tmp_path_factory.mktemp("warm-jobs") / "data"
    with in_process_server(data, job_retry_backoff=0.01) as server:
        yield server


def create(platform: InProcessServer, name: str, script: str, **fields: Any) -> None:
    definition = {
        "name": name,
        "image": IMAGE,
        "script": script,
        "cpu": "0.1",
        "memory": "48Mi",
        "warm_jobs": True,
        "synchronous": {"min_scale": 1, "max_scale": 1},
        "input": [{"path": f"{name}/in"}],
        "output": [{"path": f"{name}/out"}],
        **fields,
    }
    with platform.client() as client:
        response = client.post("/system/services", json=definition)
        assert response.status_code == 201, response.text


def finished(platform: InProcessServer, service: str, count: int) -> list[Any]:
    ledger = platform.platform.engine.ledger
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        jobs = ledger.page(service, 0, 1000)[0]
        done = [job for job in jobs if job.status in FINAL]
        if len(done) >= count:
            return sorted(done, key=lambda job: job.created_at)
        time.sleep(0.05)
    raise AssertionError(f"{count} job(s) of {service} did not finish")


def put(platform: InProcessServer, bucket: str, key: str, data: bytes) -> None:
    store = platform.platform.store
    store.ensure_bucket(bucket)
    store.put_bytes(bucket, key, data)


def output(platform: InProcessServer, bucket: str, key: str) -> bytes:
    store = platform.platform.store
    return store.blob_path(bucket, key).read_bytes()


def test_file_jobs_run_once_each_in_the_same_warm_container(platform: InProcessServer) -> None:
    create(
        platform,
        "warm-copy",
        'echo "copying $(cat "$INPUT_FILE_PATH")"\ncp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/"\n',
    )
    for index in range(4):
        put(platform, "warm-copy", f"in/{index}.txt", f"file {index}".encode())
    jobs = finished(platform, "warm-copy", 4)
    ledger = platform.platform.engine.ledger

    assert [job.status for job in jobs] == [JobStatus.SUCCEEDED] * 4
    assert len(ledger.page("warm-copy", 0, 100)[0]) == 4  # one job per upload, no more
    for index in range(4):
        assert output(platform, "warm-copy", f"out/{index}.txt") == f"file {index}".encode()
    executions = {ledger.attempts(job.id)[0].execution_id or "" for job in jobs}
    assert len(executions) == 1 and executions.pop().startswith("warm-")
    log = ledger.read_log(jobs[0].id)
    assert "(warm)" in log and "copying file" in log


def test_nothing_a_warm_job_leaves_behind_is_there_for_the_next(
    platform: InProcessServer,
) -> None:
    create(
        platform,
        "warm-attacker",
        'if [ "$(cat "$INPUT_FILE_PATH")" = look ]; then\n'
        + LOOK
        + "else\n"
        + LEAVE_BEHIND
        + "fi\n",
    )
    put(platform, "warm-attacker", "in/1-leave", b"leave")
    first = finished(platform, "warm-attacker", 1)
    put(platform, "warm-attacker", "in/2-look", b"look")
    jobs = finished(platform, "warm-attacker", 2)
    ledger = platform.platform.engine.ledger

    left = ledger.read_log(first[0].id)
    assert "wrote /tmp" in left and "survivors started" in left  # the attack ran
    looked = ledger.read_log(jobs[1].id)
    assert "found" not in looked, looked
    # The same container took both: what it kept would have been seen.
    assert (
        ledger.attempts(jobs[0].id)[0].execution_id == ledger.attempts(jobs[1].id)[0].execution_id
    )


def test_exit_codes_timeouts_and_retries_hold_for_warm_jobs(platform: InProcessServer) -> None:
    create(
        platform,
        "warm-fail",
        'case "$(cat "$INPUT_FILE_PATH")" in\n'
        "  fail) echo failing; exit 7 ;;\n"
        "  slow) sleep 30 ;;\n"
        "  *) echo fine ;;\n"
        "esac\n",
        timeout=2,
        retries=1,
    )
    put(platform, "warm-fail", "in/a-fail", b"fail")
    put(platform, "warm-fail", "in/b-slow", b"slow")
    put(platform, "warm-fail", "in/c-fine", b"fine")
    jobs = {job.key: job for job in finished(platform, "warm-fail", 3)}

    failed = jobs["in/a-fail"]
    assert failed.status is JobStatus.FAILED and failed.exit_code == 7
    assert failed.attempts == 2  # `retries: 1` ran it again
    slow = jobs["in/b-slow"]
    assert slow.status is JobStatus.FAILED and "timeout" in (slow.message or "")
    assert jobs["in/c-fine"].status is JobStatus.SUCCEEDED
