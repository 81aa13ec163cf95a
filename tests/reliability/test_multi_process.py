"""Several `oscar serve` processes on one PostgreSQL state DB and one data directory.

The attack (issue 13, item 4): a process that starts, or that recovers after another died,
must touch only what is provably orphaned. Here one process is killed with `kill -9` in the
middle of a batch and a new one starts while the survivors run jobs, answer `/run` and receive
an upload: no job may be lost or run twice, the survivors' `/run` must keep answering, and the
upload in flight must land whole.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from oscarpy.db import normalise_url
from tests.conftest import require_service
from tests.support import sigv4
from tests.support.databases import fresh_postgres_database, postgres_reachable
from tests.support.server import RunningServer, start_server

pytestmark = [pytest.mark.docker, pytest.mark.slow]

IMAGE = "oscar-test/busybox:latest"
PASSWORD = "several-processes-secret"
FILES = 24
# Each run writes an output with a random name: a job run twice leaves two outputs.
BATCH = (
    "sleep 3\n"
    'name="$(basename "$INPUT_FILE_PATH").$(od -An -N4 -tx4 /dev/urandom | tr -d " ")"\n'
    'cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/$name"\n'
)
ECHO = 'cat "$INPUT_FILE_PATH"\n'


@pytest.fixture
def postgres_url() -> Iterator[str]:
    reachable, reason = postgres_reachable()
    require_service(reachable, reason)
    with fresh_postgres_database() as url:
        yield url


def _query(url: str, sql: str) -> list[Any]:
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(sql)).all())
    finally:
        engine.dispose()


def _run(server: RunningServer, number: int) -> tuple[int, str]:
    with server.client() as client:
        answer = client.post(
            "/run/echo",
            content=f'{{"n":{number}}}'.encode(),
            headers={"Content-Type": "application/json"},
        )
    return answer.status_code, answer.text


def _slow_upload(server: RunningServer, key: str, parts: list[bytes], go: threading.Event) -> Any:
    """A PUT whose body arrives in two parts, the second only once `go` is set."""
    target = f"/batch/{key}"
    body_length = sum(len(part) for part in parts)
    headers = sigv4.signed_headers(
        "PUT",
        f"{server.s3_url}{target}",
        server.username,
        PASSWORD,
        content_sha256="UNSIGNED-PAYLOAD",
    )
    headers["Content-Length"] = str(body_length)

    def body() -> Iterator[bytes]:
        yield parts[0]
        go.wait(120)
        yield from parts[1:]

    return httpx.put(f"{server.s3_url}{target}", headers=headers, content=body(), timeout=120)


@pytest.mark.parametrize("processes", [2, 3])
def test_kill_9_of_one_process_breaks_none_of_the_others(
    processes: int, tmp_path: Path, postgres_url: str, docker_client: Any
) -> None:
    data = tmp_path / "data"
    env = {
        "OSCAR_DATABASE_URL": postgres_url,
        "OSCAR_PASSWORD": PASSWORD,
        "OSCAR_JOB_LEASE_SECONDS": "10",
        "OSCAR_JOB_RETRY_BACKOFF": "0.05",
        "OSCAR_JOB_CPU": "1",
    }
    servers = [start_server(data, env=env, log_name="p0", wait=120)]
    newcomer: RunningServer | None = None
    try:
        first = servers[0]
        first.create_service(
            {
                "name": "batch",
                "image": IMAGE,
                "script": BATCH,
                "cpu": "0.1",
                "memory": "16Mi",
                "input": [{"path": "batch/in"}],
                "output": [{"path": "batch/out"}],
            }
        )
        first.create_service(
            {
                "name": "echo",
                "image": IMAGE,
                "script": ECHO,
                "cpu": "0.1",
                "memory": "16Mi",
                "synchronous": {"min_scale": 1},
            }
        )
        servers += [
            start_server(data, env=env, log_name=f"p{index}", wait=120)
            for index in range(1, processes)
        ]
        for index, server in enumerate(servers):
            assert _run(server, index) == (200, f'{{"n":{index}}}')  # every one has a warm pool

        s3 = first.s3_client()
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda index: s3.put_object(
                        Bucket="batch", Key=f"in/{index:03}.txt", Body=f"file {index}\n".encode()
                    ),
                    range(FILES),
                )
            )

        # The victim is a process that runs jobs; the survivors must run some too.
        pids = {server.process.pid: server for server in servers}
        deadline = time.monotonic() + 90
        owners: set[int] = set()
        while time.monotonic() < deadline:
            rows = _query(postgres_url, "SELECT lease_owner FROM jobs WHERE status = 'running'")
            owners = {int(owner.split("/")[1]) for (owner,) in rows if owner}
            if len(owners & set(pids)) == processes:
                break
            time.sleep(0.1)
        assert len(owners & set(pids)) == processes, "not every process runs jobs"
        victim = servers[-1]
        survivors = servers[:-1]
        go = threading.Event()
        parts = [b"a" * 300_000, b"b" * 300_000]
        with ThreadPoolExecutor(1) as uploader:
            upload = uploader.submit(_slow_upload, survivors[0], "slow.bin", parts, go)
            time.sleep(2)  # the first part is in the survivor's incoming blob
            victim.kill()
            newcomer = start_server(data, env=env, log_name="newcomer", wait=120)
            # The newcomer has recovered; the survivors go on as if nothing happened.
            for number in range(5):
                for server in survivors:
                    assert _run(server, number) == (200, f'{{"n":{number}}}'), server.log()
            go.set()
            uploaded = upload.result(120)
        assert uploaded.status_code == 200, uploaded.text
        assert s3.get_object(Bucket="batch", Key="slow.bin")["Body"].read() == b"".join(parts)

        deadline = time.monotonic() + 180
        statuses: list[str] = []
        while time.monotonic() < deadline:
            # Only the batch's: the `/run` calls above are jobs too, and would make the count
            # pass FILES, so that the loop waited out its whole deadline.
            statuses = [
                row[0]
                for row in _query(postgres_url, "SELECT status FROM jobs WHERE service = 'batch'")
            ]
            if statuses.count("succeeded") == FILES or "failed" in statuses:
                break
            time.sleep(0.5)
        jobs = _query(postgres_url, "SELECT key, status, message FROM jobs WHERE service = 'batch'")
        assert len(jobs) == FILES
        assert [job for job in jobs if job[1] != "succeeded"] == [], "jobs were lost"
        succeeded = _query(
            postgres_url,
            "SELECT a.job_id, count(*) FROM job_attempts a JOIN jobs j ON j.id = a.job_id "
            "WHERE j.service = 'batch' AND a.outcome = 'succeeded' GROUP BY a.job_id",
        )
        assert len(succeeded) == FILES and {count for _, count in succeeded} == {1}
        outputs = [
            item["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket="batch", Prefix="out/")
            for item in page.get("Contents", [])
            if not item["Key"].endswith("/")  # the folder itself
        ]
        per_input: dict[str, int] = {}
        for key in outputs:
            name = re.sub(r"\.[0-9a-f]+$", "", key.rpartition("/")[2])
            per_input[name] = per_input.get(name, 0) + 1
        assert per_input == {f"{index:03}.txt": 1 for index in range(FILES)}, "a job ran twice"
        for server in survivors:
            assert _run(server, 99) == (200, '{"n":99}')
    finally:
        for server in [*servers, *([newcomer] if newcomer else [])]:
            server.stop()
    (installation,) = _query(
        postgres_url, "SELECT value FROM system_meta WHERE key = 'engine.instance'"
    )[0]
    leftovers = docker_client.containers.list(
        all=True, filters={"label": f"oscar.instance={installation}"}
    )
    assert [container.name for container in leftovers] == []
