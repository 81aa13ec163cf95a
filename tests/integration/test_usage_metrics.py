"""OSCAR's usage routes (`/system/metrics`, `/breakdown`, `/{service}`) against a real
`oscar serve`: CPU and memory hours and invocations, per service and per user, over a range."""

from __future__ import annotations

import base64
import csv
import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.server import RunningServer, start_server

pytestmark = pytest.mark.usefixtures("docker_client")

IMAGE = "oscar-test/busybox:latest"
SCRIPT = "#!/bin/sh\nsleep 1\ncat $INPUT_FILE_PATH\n"
CPU = 0.5
MEMORY_GIB = 0.125  # 128Mi


def wait_for(condition: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.2)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("usage") / "data")
    try:
        running.began = datetime.now(UTC)  # type: ignore[attr-defined]
        _invoke(running)
        yield running
    finally:
        running.stop()


def _invoke(running: RunningServer) -> None:
    """Two /job calls by the admin, one /run with the service's token, one stored file."""
    token = running.create_service(
        {
            "name": "worker",
            "image": IMAGE,
            "script": SCRIPT,
            "cpu": str(CPU),
            "memory": "128Mi",
            "input": [{"storage_provider": "minio.default", "path": "usage/in"}],
        }
    )["token"]
    with running.client() as admin:
        for number in range(2):
            assert admin.post("/job/worker", json={"n": number}).status_code == 201
    bearer = {"Authorization": f"Bearer {token}"}
    answer = httpx.post(
        f"{running.url}/run/worker", content=base64.b64encode(b"x"), headers=bearer, timeout=60
    )
    assert answer.status_code == 200, answer.text
    running.s3_client().put_object(Bucket="usage", Key="in/file", Body=b"stored")

    def finished() -> bool:
        with running.client() as client:
            jobs = client.get("/system/logs/worker").json()["jobs"].values()
        return len([job for job in jobs if job["status"] == "Succeeded"]) == 4

    wait_for(finished)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def get(server: RunningServer, path: str, **params: Any) -> httpx.Response:
    with server.client() as client:
        return client.get(path, params=params)


def test_summary_totals(server: RunningServer) -> None:
    answer = get(server, "/system/metrics")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    totals = body["totals"]
    assert totals["requests_count_total"] == 3
    assert totals["requests_count_async"] == 2
    assert totals["requests_count_sync"] == 1
    assert totals["users"] == ["oscar", "service-token"]
    assert totals["users_count"] == 2
    assert totals["services_count_active"] == 1
    assert totals["services_count_total"] == 1
    assert totals["gpu_hours_total"] == 0
    # The four jobs' run times (whole seconds in the job list) at 0.5 cores.
    with server.client() as client:
        jobs = client.get("/system/logs/worker").json()["jobs"].values()
    seconds = sum(
        (_moment(job["finish_time"]) - _moment(job["start_time"])).total_seconds() for job in jobs
    )
    assert seconds >= 4
    assert totals["cpu_hours_total"] == pytest.approx(seconds * CPU / 3600, abs=4 * CPU / 3600)
    assert totals["memory_gib_hours_total"] == pytest.approx(
        totals["cpu_hours_total"] * MEMORY_GIB / CPU
    )
    assert {source["name"] for source in body["sources"]} == {"request-logs", "usage-metrics"}
    assert body["start"] < body["end"]


def test_breakdown_by_service_and_user(server: RunningServer) -> None:
    by_service = get(server, "/system/metrics/breakdown", group_by="service", include_users="true")
    assert by_service.status_code == 200, by_service.text
    [item] = by_service.json()["items"]
    assert item["key"] == "worker"
    assert (item["requests_count_total"], item["requests_count_sync"]) == (3, 1)
    assert item["requests_count_async"] == 2
    assert item["unique_users_count"] == 2
    assert item["users"] == ["oscar", "service-token"]
    by_user = {
        i["key"]: i
        for i in get(server, "/system/metrics/breakdown", group_by="user").json()["items"]
    }
    assert by_user["oscar"]["executions_count"] == 2
    assert by_user["service-token"]["executions_count"] == 1
    # The storage job counts for the admin, who signed the upload: three of the four attempts.
    oscar, token = by_user["oscar"]["cpu_hours"], by_user["service-token"]["cpu_hours"]
    assert oscar + token == pytest.approx(item["cpu_hours"])
    assert oscar > 2 * token
    by_country = get(server, "/system/metrics/breakdown", group_by="country").json()["items"]
    assert by_country == [
        {
            "key": "unknown",
            "executions_count": 3,
            "unique_users_count": 2,
            "countries": [{"country": "unknown", "request_count": 3}],
        }
    ]


def test_breakdown_as_csv(server: RunningServer) -> None:
    answer = get(server, "/system/metrics/breakdown", group_by="service", format="csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [row["key"] for row in rows] == ["worker"]
    assert rows[0]["requests_count_total"] == "3"
    assert float(rows[0]["cpu_hours"]) > 0
    users = list(
        csv.DictReader(
            io.StringIO(
                get(server, "/system/metrics/breakdown", group_by="user", format="csv").text
            )
        )
    )
    assert {row["key"]: row["executions_count"] for row in users} == {
        "oscar": "2",
        "service-token": "1",
    }


def test_one_service(server: RunningServer) -> None:
    answer = get(server, "/system/metrics/worker").json()
    assert answer["service_name"] == "worker"
    values = {metric["metric"]: metric for metric in answer["metrics"]}
    assert values["requests-async-per-service"]["value"] == 2
    assert values["requests-sync-per-service"]["value"] == 1
    assert values["users-per-service"]["value"] == 2
    assert values["cpu-hours"]["unit"] == "hours"
    assert values["memory-hours"]["unit"] == "GiB-hours"
    one = get(server, "/system/metrics/worker", metric="cpu-hours").json()
    assert one["service_id"] == "worker"
    assert one["value"] == pytest.approx(values["cpu-hours"]["value"])


def test_the_range_selects(server: RunningServer) -> None:
    before = server.began - timedelta(hours=1)  # type: ignore[attr-defined]
    early = get(server, "/system/metrics", start=before.isoformat(), end=server.began.isoformat())  # type: ignore[attr-defined]
    totals = early.json()["totals"]
    assert (totals["requests_count_total"], totals["cpu_hours_total"]) == (0, 0)


def test_usage_outlives_the_jobs(server: RunningServer) -> None:
    before = get(server, "/system/metrics").json()["totals"]
    with server.client() as client:
        assert client.delete("/system/logs/worker", params={"all": "true"}).status_code == 204
    after = get(server, "/system/metrics").json()["totals"]
    assert after["cpu_hours_total"] == pytest.approx(before["cpu_hours_total"])


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/system/metrics", {"start": "2030-01-01T00:00:00Z", "end": "2029-01-01T00:00:00Z"}),
        ("/system/metrics", {"start": "soon"}),
        ("/system/metrics/breakdown", {}),
        ("/system/metrics/breakdown", {"group_by": "planet"}),
        ("/system/metrics/breakdown", {"group_by": "user", "format": "xml"}),
        (
            "/system/metrics/breakdown",
            {"group_by": "service", "format": "csv", "include_users": "true"},
        ),
        ("/system/metrics/worker", {"metric": "countries-list"}),
        ("/system/metrics/worker", {"metric": "bogus"}),
    ],
)
def test_bad_requests_are_400(server: RunningServer, path: str, params: dict[str, str]) -> None:
    answer = get(server, path, **params)
    assert answer.status_code == 400, answer.text
    assert answer.text


def test_the_admin_only(server: RunningServer) -> None:
    assert httpx.get(f"{server.url}/system/metrics").status_code == 401
