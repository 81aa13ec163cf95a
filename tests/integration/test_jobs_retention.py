"""Retention against a real `oscar serve` and real containers: a finished job and its log
expire after the service's `job_ttl`; a running job is never touched, however old."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.cli import TEST_IMAGE
from tests.support.server import RunningServer, start_server

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, docker_client: object
) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("retention") / "data",
        env={"OSCAR_JOB_EXPIRY_INTERVAL": "0.3", "OSCAR_JOB_TTL": "1"},
    )
    yield running
    running.stop()
    assert "Traceback" not in running.log()


def _jobs(client: httpx.Client, service: str) -> dict[str, Any]:
    answer = client.get(f"/system/logs/{service}")
    assert answer.status_code == 200, answer.text
    jobs: dict[str, Any] = answer.json()["jobs"]
    return jobs


def _wait(condition: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_finished_jobs_expire_and_running_ones_stay(server: RunningServer) -> None:
    for name, script in (("expires", "echo done\n"), ("runs-long", "sleep 6\necho done\n")):
        server.create_service(
            {
                "name": name,
                "image": TEST_IMAGE,
                "script": script,
                "job_ttl": 2,
                "input": [{"path": f"{name}/in"}],
            }
        )
        server.s3_client().put_object(Bucket=name, Key="in/file.txt", Body=b"x")
    with server.client() as client:
        finished = _wait(
            lambda: [
                job_id
                for job_id, job in _jobs(client, "expires").items()
                if job["status"] == "Succeeded"
            ]
        )
        assert "done" in client.get(f"/system/logs/expires/{finished[0]}").text
        (running,) = _wait(
            lambda: [
                job_id
                for job_id, job in _jobs(client, "runs-long").items()
                if job["status"] == "Running"
            ]
        )
        _wait(lambda: _jobs(client, "expires") == {}, timeout=30)
        assert client.get(f"/system/logs/expires/{finished[0]}").status_code == 404
        # Older than its TTL by now, still running: never expired.
        assert _jobs(client, "runs-long")[running]["status"] == "Running"
        _wait(lambda: _jobs(client, "runs-long").get(running, {}).get("status") == "Succeeded")
        _wait(lambda: _jobs(client, "runs-long") == {}, timeout=30)
        # The expired file does not run again on a reconcile pass.
        reconciled = client.post("/system/services/expires/reconcile")
        assert reconciled.json() == {"created": 0}
