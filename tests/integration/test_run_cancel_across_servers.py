"""A `/run` call's job deleted through another server than the one running the call: two
`oscar serve` processes on one PostgreSQL state DB and one data directory, the real Docker
Engine. The server running the call finds out through the ledger and stops the script."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import require_service
from tests.integration.test_run_answers import IMAGE, SLEEPER, b64, wait_for, warm_containers
from tests.support.databases import fresh_postgres_database, postgres_reachable
from tests.support.server import RunningServer, start_server

pytestmark = [pytest.mark.docker, pytest.mark.postgres]


@pytest.fixture
def servers(tmp_path: Path, docker_client: Any) -> Iterator[tuple[RunningServer, RunningServer]]:
    reachable, reason = postgres_reachable()
    require_service(reachable, reason)
    with fresh_postgres_database() as url:
        env = {"OSCAR_DATABASE_URL": url, "OSCAR_PASSWORD": "across-servers-secret"}
        data = tmp_path / "data"
        running = start_server(data, env=env, log_name="running")
        try:
            other = start_server(data, env=env, log_name="other")
            try:
                yield running, other
            finally:
                other.stop()
        finally:
            running.stop()


def _run(server: RunningServer, seconds: str) -> httpx.Response:
    with server.client() as client:
        return client.post("/run/sleeper", content=b64(seconds))


def test_a_call_deleted_through_another_server_stops_within_seconds(
    servers: tuple[RunningServer, RunningServer], docker_client: Any
) -> None:
    running, other = servers
    running.create_service(
        {
            "name": "sleeper",
            "image": IMAGE,
            "script": SLEEPER,
            "cpu": "0.1",
            "synchronous": {"min_scale": 1, "max_scale": 1},
        }
    )
    (container,) = [found.id for found in wait_for(lambda: warm_containers(docker_client, running))]
    with ThreadPoolExecutor(1) as caller:
        call = caller.submit(_run, running, "300")
        wait_for(lambda: "sleep 300" in str(docker_client.api.top(container)["Processes"]))
        with other.client() as client:
            (job_id,) = wait_for(lambda: list(client.get("/system/logs/sleeper").json()["jobs"]))

            asked = time.monotonic()
            assert client.delete(f"/system/logs/sleeper/{job_id}").status_code == 204
            answer = call.result(timeout=15)
            answered = time.monotonic() - asked

    assert answered < 5, answered
    assert answer.status_code == 409, answer.text
    assert "the job was deleted" in answer.json()["detail"]
    wait_for(
        lambda: container not in [found.id for found in warm_containers(docker_client, running)],
        timeout=5,
    )
    with running.client() as client:
        assert client.get(f"/system/logs/sleeper/{job_id}").status_code == 404
    fine = _run(running, "0")
    assert (fine.status_code, fine.text) == (200, "woke up\n")
