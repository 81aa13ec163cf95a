"""`GET /metrics` against a real `oscar serve` on the real Docker Engine, scraped with
Prometheus' own parser while storage jobs, `/job` and `/run` calls and S3 traffic run; every
counter is checked against what the test did."""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import RunningServer, start_server

pytestmark = pytest.mark.usefixtures("docker_client")

IMAGE = "oscar-test/busybox:latest"
TOKEN = "scrape-token-0123456789"
METRIC = re.compile(r"\boscar_[a-z0-9_]*[a-z0-9]")
ASYNC_SCRIPT = """#!/bin/sh
case "$(head -c 4 "$INPUT_FILE_PATH")" in
  fail) echo "failing on purpose"; exit 3 ;;
esac
cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/copy"
"""
RUN_SCRIPT = """#!/bin/sh
case "$(head -c 4 "$INPUT_FILE_PATH")" in
  fail) exit 5 ;;
esac
cat "$INPUT_FILE_PATH"
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[RunningServer]:
    data = tmp_path_factory.mktemp("metrics") / "data"
    running = start_server(data, env={"OSCAR_METRICS_TOKEN": TOKEN})
    yield running
    running.stop()


def scrape(server: RunningServer, **options: Any) -> str:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    response = httpx.get(f"{server.url}/metrics", headers=headers, timeout=30, **options)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


def samples(text: str) -> Samples:
    """Every sample of the exposition, parsed by Prometheus' client: (name, labels) -> value."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def wait_for(condition: Any, timeout: float = 60, step: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


def jobs_done(server: RunningServer, service: str, expected: int) -> bool:
    with server.client() as client:
        jobs = client.get(f"/system/logs/{service}").json()["jobs"]
    finals = [job for job in jobs.values() if job["status"] in ("Succeeded", "Failed")]
    return len(finals) == expected


class Scraper(threading.Thread):
    """Scrapes while the traffic runs: every scrape must parse, and no counter may go down."""

    def __init__(self, server: RunningServer) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.stopping = threading.Event()
        self.scrapes = 0
        self.problems: list[str] = []

    def run(self) -> None:
        last: Samples = {}
        while not self.stopping.is_set():
            try:
                current = samples(scrape(self.server))
            except Exception as error:  # reported by the test, not lost in the thread
                self.problems.append(repr(error))
                return
            for key, number in current.items():
                if key[0].endswith(("_total", "_count", "_bucket")) and number < last.get(key, 0):
                    self.problems.append(f"{key} went down from {last[key]} to {number}")
            last = current
            self.scrapes += 1
            time.sleep(0.05)


def test_metrics_count_what_happened(server: RunningServer) -> None:
    bucket = "metrics-in"
    server.create_service(
        {
            "name": "counted",
            "image": IMAGE,
            "script": ASYNC_SCRIPT,
            "cpu": "0.25",
            "memory": "64Mi",
            "input": [{"storage_provider": "minio.default", "path": f"{bucket}/in"}],
            "output": [{"storage_provider": "minio.default", "path": f"{bucket}/out"}],
        }
    )
    server.create_service({"name": "answering", "image": IMAGE, "script": RUN_SCRIPT, "cpu": "0.1"})
    s3 = server.s3_client()
    scraper = Scraper(server)
    scraper.start()
    try:
        # Storage jobs: three succeed, one fails; then one /job invocation that succeeds.
        for name in ("a.txt", "b.txt", "c.txt"):
            s3.put_object(Bucket=bucket, Key=f"in/{name}", Body=b"fine")
        s3.put_object(Bucket=bucket, Key="in/secret-object-key.txt", Body=b"fail")
        with server.client() as client:
            submitted = client.post("/job/counted", json={"hello": "world"})
            assert submitted.status_code == 201, submitted.text
            job_id = submitted.json()["job_id"]
            # /run: two answers and one failure.
            for body, status in ((b"one", 200), (b"two", 200), (b"fail", 500)):
                answer = client.post("/run/answering", content=base64.b64encode(body))
                assert answer.status_code == status, answer.text
        # Plain S3 traffic in a bucket of its own.
        s3.create_bucket(Bucket="plain")
        sizes = [10, 200, 3000, 40_000, 5]
        for index, size in enumerate(sizes):
            s3.put_object(Bucket="plain", Key=f"object-{index}", Body=b"x" * size)
        s3.get_object(Bucket="plain", Key="object-2")["Body"].read()
        s3.get_object(Bucket="plain", Key="object-3")["Body"].read()
        s3.head_object(Bucket="plain", Key="object-0")
        s3.list_objects_v2(Bucket="plain")
        with pytest.raises(s3.exceptions.NoSuchKey):
            s3.get_object(Bucket="plain", Key="missing")
        wait_for(lambda: jobs_done(server, "counted", 5))
    finally:
        scraper.stopping.set()
        scraper.join(30)
    assert scraper.problems == []
    assert scraper.scrapes >= 2

    text = scrape(server)
    found = samples(text)
    # Jobs by state, from the ledger.
    assert value(found, "oscar_jobs", service="counted", status="succeeded") == 4
    assert value(found, "oscar_jobs", service="counted", status="failed") == 1
    assert value(found, "oscar_jobs", service="counted", status="pending") == 0
    assert ("oscar_jobs", frozenset({"service": "counted", "status": "running"}.items())) in found
    assert value(found, "oscar_jobs", service="answering", status="succeeded") == 2
    assert value(found, "oscar_jobs", service="answering", status="failed") == 1
    # Attempts, outcomes and reasons; wait and run times.
    finished = "oscar_jobs_finished_total"
    assert value(found, finished, service="counted", status="succeeded") == 4
    assert value(found, finished, service="counted", status="failed") == 1
    attempts = "oscar_job_attempts_total"
    assert value(found, attempts, service="counted", outcome="succeeded", reason="none") == 4
    assert value(found, attempts, service="counted", outcome="script_failed", reason="exit") == 1
    assert value(found, attempts, service="answering", outcome="script_failed", reason="exit") == 1
    assert value(found, "oscar_job_queue_wait_seconds_count", service="counted") == 5
    assert value(found, "oscar_job_run_seconds_count", service="counted", kind="async") == 5
    assert value(found, "oscar_job_run_seconds_count", service="answering", kind="sync") == 3
    assert value(found, "oscar_job_run_seconds_sum", service="counted", kind="async") > 0
    # /run latency, by status.
    latency = "oscar_run_request_duration_seconds_count"
    assert value(found, latency, service="answering", code="200") == 2
    assert value(found, latency, service="answering", code="500") == 1
    assert value(found, "oscar_warm_containers", service="answering", state="busy") == 0
    assert value(found, "oscar_warm_containers", service="answering", state="idle") >= 1
    # This machine, the one node of local mode.
    host = socket.gethostname()
    assert value(found, "oscar_node_cpu_cores", node=host) >= 1
    assert value(found, "oscar_node_memory_bytes", node=host) > 0
    assert value(found, "oscar_node_cpu_reserved_cores", node=host) == 0  # all done
    assert value(found, "oscar_node_jobs_running", node=host) == 0
    assert value(found, "oscar_node_ready", node=host) == 1
    # S3: operations by status, latency, bytes.
    requests = "oscar_s3_requests_total"
    assert value(found, requests, operation="PutObject", code="200") == 4 + len(sizes)
    assert value(found, requests, operation="GetObject", code="200") == 2
    assert value(found, requests, operation="GetObject", code="404") == 1
    assert value(found, requests, operation="HeadObject", code="200") == 1
    assert value(found, requests, operation="ListObjectsV2", code="200") == 1
    assert value(found, requests, operation="CreateBucket", code="200") == 1
    assert value(found, "oscar_s3_request_duration_seconds_count", operation="GetObject") == 3
    assert value(found, "oscar_s3_sent_bytes_total", operation="GetObject") >= 3000 + 40_000
    assert value(found, "oscar_s3_received_bytes_total", operation="PutObject") >= sum(sizes)
    # Stored data and free space.
    assert value(found, "oscar_bucket_objects", bucket="plain") == len(sizes)
    assert value(found, "oscar_bucket_bytes", bucket="plain") == sum(sizes)
    assert value(found, "oscar_data_dir_free_bytes") > 0
    assert value(found, "oscar_state_db_bytes") > 0
    assert value(found, "oscar_state_db_free_bytes") > 0
    # Bounded labels: no object key, no job id.
    assert "secret-object-key" not in text
    assert "object-3" not in text
    assert job_id not in text


def test_metrics_need_the_token_or_the_admin(server: RunningServer) -> None:
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert httpx.get(f"{server.url}/metrics", headers=wrong).status_code == 401
    service_token = {"Authorization": f"Bearer {TOKEN}x"}
    assert httpx.get(f"{server.url}/metrics", headers=service_token).status_code == 401
    with server.client() as client:
        assert client.get("/metrics").status_code == 200


def test_invented_run_names_do_not_grow_the_labels(server: RunningServer) -> None:
    for index in range(5):
        httpx.post(f"{server.url}/run/invented-{index}", content=b"x")
    text = scrape(server)
    assert "invented-" not in text
    found = samples(text)
    refused = value(found, "oscar_run_request_duration_seconds_count", service="other", code="401")
    assert refused >= 5


def test_job_counts_survive_a_restart(tmp_path: Path, docker_client: Any) -> None:
    """The jobs gauge is read from the ledger: a restarted server reports the same numbers."""
    first = start_server(tmp_path / "data")
    try:
        first.create_service(
            {"name": "kept", "image": IMAGE, "script": "#!/bin/sh\necho done\n", "cpu": "0.1"}
        )
        with first.client() as client:
            for _ in range(3):
                assert client.post("/job/kept", json={}).status_code == 201
        wait_for(lambda: jobs_done(first, "kept", 3))
        with first.client() as client:
            before = samples(client.get("/metrics").text)
    finally:
        first.stop()
    assert value(before, "oscar_jobs", service="kept", status="succeeded") == 3
    second = start_server(tmp_path / "data")
    try:
        with second.client() as client:
            after = samples(client.get("/metrics").text)
    finally:
        second.stop()
    assert value(after, "oscar_jobs", service="kept", status="succeeded") == 3
    # What happened in this process starts again from zero, as Prometheus expects of counters.
    assert value(after, "oscar_jobs_finished_total", service="kept", status="succeeded") == 0


def test_metrics_off(tmp_path: Path) -> None:
    running = start_server(tmp_path / "data", env={"OSCAR_METRICS": "false"})
    try:
        with running.client() as client:
            assert client.get("/metrics").status_code == 404
        s3 = running.s3_client()
        s3.create_bucket(Bucket="still-works")
        s3.put_object(Bucket="still-works", Key="k", Body=b"v")
        assert s3.get_object(Bucket="still-works", Key="k")["Body"].read() == b"v"
    finally:
        running.stop()


DOCS = Path(__file__).resolve().parents[2] / "docs"
_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def family_name(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def test_the_dashboard_and_the_docs_name_what_is_exported(server: RunningServer) -> None:
    """Every metric the Grafana dashboard queries, and every one the docs list, is served; and
    every served metric is documented."""
    text = scrape(server)
    assert "_created" not in text
    # From the HELP lines: the parser leaves out families that have no sample yet.
    exported = {family_name(name) for name in re.findall(r"^# HELP (\S+)", text, re.MULTILINE)}
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    queried = {family_name(name) for expr in expressions for name in METRIC.findall(expr)}
    assert queried and queried <= exported, queried - exported
    documented = {
        family_name(name) for name in METRIC.findall((DOCS / "operations.md").read_text())
    }
    assert exported <= documented, exported - documented
    assert documented <= exported, documented - exported
