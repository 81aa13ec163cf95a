"""`GET /system/logs`: the request log of `/job` and `/run`, against a real `oscar serve`."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import RunningServer, start_server

pytestmark = pytest.mark.usefixtures("docker_client")

IMAGE = "oscar-test/busybox:latest"
LATENCY = re.compile(r"^\d+(\.\d+)?(s|ms|µs)$")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("requests") / "data")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def calls(server: RunningServer) -> dict[str, Any]:
    """What the tests below find in the log: four calls by three kinds of caller."""
    token = server.create_service(
        {"name": "echo", "image": IMAGE, "script": "#!/bin/sh\ncat $INPUT_FILE_PATH\n"}
    )["token"]
    with server.client() as admin:
        job = admin.post("/job/echo", json={"n": 1})
        missing = admin.post("/job/no-such-service", json={})
    bearer = {"Authorization": f"Bearer {token}"}
    run = httpx.post(
        f"{server.url}/run/echo", content=base64.b64encode(b"hi"), headers=bearer, timeout=60
    )
    refused = httpx.post(
        f"{server.url}/run/echo", content=b"x", headers={"Authorization": "Bearer no"}
    )
    assert (job.status_code, missing.status_code, run.status_code) == (201, 404, 200)
    assert refused.status_code == 401
    return {"job_id": job.json()["job_id"], "run_id": run.headers["X-Oscar-Job-Id"]}


def entries(server: RunningServer, **params: Any) -> dict[str, Any]:
    with server.client() as client:
        response = client.get("/system/logs", params=params)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_the_log_says_who_called_what_when(server: RunningServer, calls: dict[str, Any]) -> None:
    logs = entries(server)["logs"]
    assert [(e["method"], e["path"], e["status"], e["user"]) for e in logs] == [
        ("POST", "/job/echo", 201, "oscar"),
        ("POST", "/job/no-such-service", 404, "oscar"),
        ("POST", "/run/echo", 200, "service-token"),
        ("POST", "/run/echo", 401, ""),
    ]
    assert [e["job_id"] for e in logs] == [calls["job_id"], None, calls["run_id"], None]
    assert [e["kind"] for e in logs] == ["async", "async", "sync", "sync"]
    for entry in logs:
        assert entry["client_ip"] == "127.0.0.1"
        assert LATENCY.match(entry["latency"]), entry["latency"]
        assert entry["raw"].startswith("[GIN-EXECUTIONS-LOGGER] " + entry["timestamp"])
        assert entry["timestamp"].endswith("Z")
    # Other routes are not invocations.
    assert all(e["path"].startswith(("/job/", "/run/")) for e in logs)


def test_pages_follow_each_other_without_gaps(server: RunningServer, calls: dict[str, Any]) -> None:
    seen: list[str] = []
    page = ""
    for _ in range(10):
        answer = entries(server, limit=1, page=page)
        seen += [entry["path"] + str(entry["status"]) for entry in answer["logs"]]
        page = answer["next_page"]
        if not page:
            break
    assert seen == ["/job/echo201", "/job/no-such-service404", "/run/echo200", "/run/echo401"]


def test_filters(server: RunningServer, calls: dict[str, Any]) -> None:
    assert len(entries(server, service="echo")["logs"]) == 3
    assert entries(server, end="2000-01-01T00:00:00Z")["logs"] == []
    assert len(entries(server, start="2000-01-01T00:00:00+00:00")["logs"]) == 4


@pytest.mark.parametrize(
    "params",
    [{"page": "abc"}, {"start": "yesterday"}, {"end": "2024-01-01T00:00:00"}, {"limit": 0}],
)
def test_bad_parameters_are_400(server: RunningServer, params: dict[str, Any]) -> None:
    with server.client() as client:
        response = client.get("/system/logs", params=params)
    assert response.status_code == 400, response.text
    assert response.text


def test_only_the_admin_reads_the_log(server: RunningServer, calls: dict[str, Any]) -> None:
    assert httpx.get(f"{server.url}/system/logs").status_code == 401
    with server.client() as client:
        token = client.get("/system/services/echo").json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{server.url}/system/logs", headers=bearer).status_code == 401


def test_the_log_outlives_a_restart_and_ends_after_the_retention(
    tmp_path: Path, docker_client: Any
) -> None:
    first = start_server(tmp_path / "data")
    try:
        with first.client() as client:
            assert client.post("/job/none", json={}).status_code == 404
    finally:
        first.stop()
    kept = start_server(tmp_path / "data")
    try:
        assert [e["path"] for e in entries(kept)["logs"]] == ["/job/none"]
    finally:
        kept.stop()
    time.sleep(1.5)
    # A retention of about 0.9 s: the restarted server prunes the entry on its first pass.
    pruned = start_server(tmp_path / "data", env={"OSCAR_REQUEST_LOG_RETENTION_DAYS": "0.00001"})
    try:
        deadline = time.monotonic() + 10
        while entries(pruned)["logs"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert entries(pruned)["logs"] == []
    finally:
        pruned.stop()
