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


SLEEPER = 'case "$(cat "$INPUT_FILE_PATH")" in\n  sleep) sleep 300 ;;\n  *) echo fine ;;\nesac\n'


def running_warm_job(platform: InProcessServer, service: str, docker: Any) -> tuple[str, str]:
    """The running job of `service` and its warm container, once its `sleep 300` runs."""
    ledger = platform.platform.engine.ledger
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for job in ledger.page(service, 0, 10)[0]:
            attempts = ledger.attempts(job.id)
            execution = attempts[0].execution_id if attempts else None
            if job.status is JobStatus.RUNNING and execution:
                container = warm_container(docker, service, execution.removeprefix("warm-"))
                if container and "sleep 300" in str(docker.api.top(container)["Processes"]):
                    return job.id, container
        time.sleep(0.05)
    raise AssertionError(f"no job of {service} started its script")


def warm_container(docker: Any, service: str, prefix: str) -> str | None:
    found = docker.api.containers(filters={"label": [f"oscar.service={service}"]})
    return next((str(c["Id"]) for c in found if str(c["Id"]).startswith(prefix)), None)


def is_running(docker: Any, container: str) -> bool:
    found = docker.api.containers(filters={"id": container, "status": "running"})
    return bool(found)


@pytest.mark.parametrize("how", ["job", "all", "service"])
def test_deleting_a_running_warm_job_kills_its_script_at_once(
    platform: InProcessServer, docker_client: Any, how: str
) -> None:
    service = f"warm-cancel-{how}"
    create(platform, service, SLEEPER)
    put(platform, service, "in/1", b"sleep")
    job_id, container = running_warm_job(platform, service, docker_client)

    started = time.monotonic()
    with platform.client() as client:
        if how == "job":
            response = client.delete(f"/system/logs/{service}/{job_id}")
        elif how == "all":
            response = client.delete(f"/system/logs/{service}", params={"all": "true"})
        else:
            response = client.delete(f"/system/services/{service}")
    took = time.monotonic() - started

    assert response.status_code == 204, response.text
    # Today's fresh containers stop as fast; a script left running would hold the delete for
    # the engine's whole wait (15 s) and run on until its timeout.
    assert took < 10, f"the delete took {took:.1f} s"
    assert not is_running(docker_client, container), "the script's container still runs"
    ledger = platform.platform.engine.ledger
    assert ledger.job_ids(service, None) == []
    if how != "service":  # the pool serves the next job, in another container
        put(platform, service, "in/2", b"fine")
        (job,) = finished(platform, service, 1)
        assert job.status is JobStatus.SUCCEEDED
        assert not (ledger.attempts(job.id)[0].execution_id or "").endswith(container[:12])


def test_deleting_a_warm_job_that_waits_for_a_busy_container_gives_its_place_back_at_once(
    platform: InProcessServer, docker_client: Any
) -> None:
    service = "warm-waiting"
    create(platform, service, SLEEPER)  # max_scale 1: the second job waits for the first
    put(platform, service, "in/1", b"sleep")
    running_id, container = running_warm_job(platform, service, docker_client)
    put(platform, service, "in/2", b"fine")
    dispatcher = platform.platform.engine.dispatcher
    deadline = time.monotonic() + 30
    waiting: list[str] = []
    while not waiting and time.monotonic() < deadline:
        waiting = [job for job in dispatcher.running_job_ids() if job != running_id]
        time.sleep(0.05)
    assert waiting, "the second job never waited for the container"
    (waiting_id,) = waiting

    started = time.monotonic()
    with platform.client() as client:
        response = client.delete(f"/system/logs/{service}/{waiting_id}")
    took = time.monotonic() - started
    assert response.status_code == 204, response.text
    assert took < 10, f"the delete waited {took:.1f} s for the job to end"
    # Its place on the host is free again while the first job still holds the container; it
    # was held until that job ended (here `sleep 300`).
    deadline = time.monotonic() + 10
    while waiting_id in dispatcher.running_job_ids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert waiting_id not in dispatcher.running_job_ids(), "the deleted job still holds a place"
    assert dispatcher.running_job_ids() == [running_id]
    assert is_running(docker_client, container)
    ledger = platform.platform.engine.ledger
    assert ledger.job_ids(service, None) == [running_id]
    with platform.client() as client:
        assert client.delete(f"/system/services/{service}").status_code == 204
