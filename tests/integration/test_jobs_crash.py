"""kill -9 of the server while jobs run: after a restart every job ends once, none is lost."""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.server import RunningServer, start_server

pytestmark = [pytest.mark.docker, pytest.mark.slow]

FILES = 100
SCRIPT = 'sleep 1\ncp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH").out"\n'


def _jobs(server: RunningServer, service: str) -> dict[str, dict[str, object]]:
    with server.client() as client:
        answer = client.get(f"/system/logs/{service}", params={"limit": 1000})
        answer.raise_for_status()
        jobs: dict[str, dict[str, object]] = answer.json()["jobs"]
        return jobs


def test_kill_9_while_jobs_run_loses_nothing_and_runs_nothing_twice(
    tmp_path: Path, docker_client: object
) -> None:
    data = tmp_path / "data"
    env = {"OSCAR_JOB_RETRY_BACKOFF": "0.05", "OSCAR_JOB_CPU": "2"}
    server = start_server(data, env=env)
    try:
        server.create_service(
            {
                "name": "crash",
                "image": "oscar-test/busybox:latest",
                "script": SCRIPT,
                "cpu": "0.1",
                "memory": "16Mi",
                "input": [{"path": "crash/in"}],
                "output": [{"path": "crash/out"}],
            }
        )
        s3 = server.s3_client()
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda index: s3.put_object(
                        Bucket="crash", Key=f"in/{index:03}.txt", Body=f"file {index}\n".encode()
                    ),
                    range(FILES),
                )
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            statuses = [job["status"] for job in _jobs(server, "crash").values()]
            if statuses.count("Running") >= 5 and statuses.count("Succeeded") >= 10:
                break
            time.sleep(0.1)
        server.kill()
    except BaseException:
        server.stop()
        raise

    server = start_server(data, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            jobs = _jobs(server, "crash")
            if len(jobs) == FILES and all(job["status"] == "Succeeded" for job in jobs.values()):
                break
            time.sleep(0.2)
        jobs = _jobs(server, "crash")
        assert len(jobs) == FILES
        assert {job["status"] for job in jobs.values()} == {"Succeeded"}
        s3 = server.s3_client()
        for index in range(FILES):
            body = s3.get_object(Bucket="crash", Key=f"out/{index:03}.txt.out")
            assert body["Body"].read() == f"file {index}\n".encode()
        database = sqlite3.connect(data / "oscar.db")
        succeeded = database.execute(
            "SELECT job_id, count(*) FROM job_attempts WHERE outcome = 'succeeded' GROUP BY job_id"
        ).fetchall()
        adopted_or_rerun = database.execute(
            "SELECT count(*) FROM jobs WHERE attempts > 1"
        ).fetchone()[0]
        instance = database.execute(
            "SELECT value FROM system_meta WHERE key = 'engine.instance'"
        ).fetchone()[0]
        database.close()
        assert len(succeeded) == FILES and {count for _, count in succeeded} == {1}
        log = server.log()
        assert "taking over job" in log  # the restart found jobs the killed process ran
        print(f"jobs re-run after the crash: {adopted_or_rerun}")
    finally:
        # Within the grace a service manager gives (systemd: 90 s), the server removes about
        # twenty network holders and the last jobs' containers before it exits.
        stopping_since = time.monotonic()
        exit_code = server.stop()
    assert exit_code == 0, f"killed after {time.monotonic() - stopping_since:.1f} s of stopping"
    leftovers = docker_client.containers.list(  # type: ignore[attr-defined]
        all=True, filters={"label": f"oscar.instance={instance}"}
    )
    assert leftovers == []
