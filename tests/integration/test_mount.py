"""OSCAR's `mount` against a real `oscar serve` and real containers: the folder is in the
container, read-only, at `/mnt/<bucket>/<folder>` before the script starts."""

from __future__ import annotations

import time

import pytest

from tests.support.cli import TEST_IMAGE
from tests.support.server import RunningServer

pytestmark = pytest.mark.docker

SCRIPT = """
cat /mnt/mounted-models/weights/a.txt /mnt/mounted-models/weights/sub/b.txt
ls /mnt/mounted-models/weights
touch /mnt/mounted-models/weights/new 2>/dev/null && echo writable || echo read-only
"""


def test_a_mounted_folder_is_there_read_only(server: RunningServer) -> None:
    s3 = server.s3_client()
    s3.create_bucket(Bucket="mounted-models")
    s3.put_object(Bucket="mounted-models", Key="weights/a.txt", Body=b"first\n")
    s3.put_object(Bucket="mounted-models", Key="weights/sub/b.txt", Body=b"second\n")
    s3.put_object(Bucket="mounted-models", Key="other/c.txt", Body=b"not mounted\n")
    created = server.create_service(
        {
            "name": "mounting",
            "image": TEST_IMAGE,
            "script": SCRIPT,
            "mount": {"storage_provider": "minio.default", "path": "mounted-models/weights"},
        }
    )
    assert created["warnings"] == []
    with server.client() as client:
        job = client.post("/job/mounting", json={}).json()["job_id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = client.get("/system/logs/mounting").json()["jobs"][job]["status"]
            if status in ("Succeeded", "Failed"):
                break
            time.sleep(0.2)
        log = client.get(f"/system/logs/mounting/{job}").text
    assert status == "Succeeded", log
    assert "first\nsecond\n" in log, log
    assert "a.txt\nsub\n" in log
    assert "read-only" in log


def test_a_mount_on_an_undefined_provider_is_refused(server: RunningServer) -> None:
    with server.client() as client:
        answer = client.post(
            "/system/services",
            json={
                "name": "bad-mount",
                "image": TEST_IMAGE,
                "script": "true",
                "mount": {"storage_provider": "s3.nowhere", "path": "some-bucket/f"},
            },
        )
    assert answer.status_code == 400
    assert "mount.storage_provider" in answer.text
