"""kill -9 of the server while a warm job runs: the job runs again on the next server and ends
Succeeded exactly once with its output, and the dead server's warm container is removed."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import RunningServer, free_port, start_server

# serial: a 3 s job lease, and the warm container looked for while the job runs.
pytestmark = [pytest.mark.docker, pytest.mark.serial]

SCRIPT = 'echo started; sleep 2; cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/copy.txt"\n'


def _jobs(server: RunningServer) -> dict[str, Any]:
    with server.client() as client:
        found: dict[str, Any] = client.get("/system/logs/warmkill").json()["jobs"]
        return found


def _wait(server: RunningServer, status: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(job["status"] == status for job in _jobs(server).values()):
            return
        time.sleep(0.05)
    raise AssertionError(f"no job became {status}: {_jobs(server)}")


def _warm_containers(docker_client: Any, data: Path) -> list[str]:
    """This installation's warm containers (another run's leftovers on the daemon are not)."""
    with sqlite3.connect(data / "oscar.db") as db:
        (installation,) = db.execute(
            "SELECT value FROM system_meta WHERE key = 'engine.instance'"
        ).fetchone()
    labels = ["oscar.service=warmkill", f"oscar.instance={installation}"]
    found = docker_client.containers.list(all=True, filters={"label": labels})
    return [container.id for container in found]


def test_a_warm_job_cut_by_kill_9_runs_again_once(tmp_path: Path, docker_client: Any) -> None:
    data = tmp_path / "data"
    env = {"OSCAR_JOB_LEASE_SECONDS": "3", "OSCAR_PASSWORD": "warm-kill-pw"}
    port, s3_port = free_port(), free_port()
    server = start_server(data, port=port, s3_port=s3_port, env=env)
    try:
        server.create_service(
            {
                "name": "warmkill",
                "image": "oscar-test/busybox:latest",
                "script": SCRIPT,
                "cpu": "0.1",
                "memory": "32Mi",
                "warm_jobs": True,
                "synchronous": {"min_scale": 1, "max_scale": 1},
                "input": [{"path": "warmkill/in"}],
                "output": [{"path": "warmkill/out"}],
            }
        )
        server.s3_client().put_object(Bucket="warmkill", Key="in/a.txt", Body=b"payload")
        _wait(server, "Running")
        # A job is Running once claimed; its warm container may still be starting.
        deadline = time.monotonic() + 60
        while not (first_containers := set(_warm_containers(docker_client, data))):
            assert time.monotonic() < deadline, "no warm container ever ran the job"
            time.sleep(0.1)
        server.kill()

        server = start_server(data, port=port, s3_port=s3_port, env=env)
        _wait(server, "Succeeded")
        copy = server.s3_client().get_object(Bucket="warmkill", Key="out/copy.txt")
        assert copy["Body"].read() == b"payload"
        server.stop()
    finally:
        server.kill()
    with sqlite3.connect(data / "oscar.db") as db:
        rows = db.execute("SELECT status, attempts FROM jobs WHERE service = 'warmkill'").fetchall()
    assert rows == [("succeeded", 2)], rows  # one job; the cut attempt, then the one that ran
    assert first_containers and not first_containers & set(_warm_containers(docker_client, data))
