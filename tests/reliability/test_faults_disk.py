"""A data directory that fills up (a 64 MiB tmpfs): uploads are refused with 507
`InsufficientStorage` (`/job` and `/run` bodies with a 507 too), no acknowledged object is lost,
reads keep working, and uploads work again once space is freed (and after a restart)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.conftest import require_service
from tests.support.server import start_server

pytestmark = [pytest.mark.slow]

SIZE = "64m"
BALLAST = 12 * 1024 * 1024
CHUNK = 3 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "data"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    require_service(mounted.returncode == 0, f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _content(index: int) -> bytes:
    seed = hashlib.sha256(str(index).encode()).digest()
    return seed * (CHUNK // len(seed))


def test_a_full_disk_refuses_uploads_with_507_and_loses_nothing(small_disk: Path) -> None:
    env = {"OSCAR_RUNTIME": "process", "OSCAR_PASSWORD": "disk-full-pw"}
    server = start_server(small_disk, env=env)
    ballast = small_disk / "ballast"
    ballast.write_bytes(os.urandom(BALLAST))  # what an operator can delete to free space
    acknowledged: dict[str, bytes] = {}
    refusals: list[tuple[int, str]] = []
    try:
        s3 = server.s3_client(retries={"max_attempts": 1})
        s3.create_bucket(Bucket="full")
        with server.client() as client:
            sink = {"name": "sink", "image": "unused", "script": 'cat "$INPUT_FILE_PATH"\n'}
            assert client.post("/system/services", json=sink).status_code == 201
        for index in range(64 * 1024 * 1024 // CHUNK + 5):
            body = _content(index)
            try:
                s3.put_object(Bucket="full", Key=f"f/{index:03}", Body=body)
            except ClientError as error:
                status = error.response["ResponseMetadata"]["HTTPStatusCode"]
                refusals.append((status, error.response["Error"]["Code"]))
                if len(refusals) >= 3:
                    break
                continue
            acknowledged[f"f/{index:03}"] = body
        assert refusals, "the disk never filled"
        assert set(refusals) == {(507, "InsufficientStorage")}, refusals
        # A multipart part is refused the same way.
        upload = s3.create_multipart_upload(Bucket="full", Key="multi")["UploadId"]
        with pytest.raises(ClientError) as part_error:
            s3.upload_part(
                Bucket="full", Key="multi", UploadId=upload, PartNumber=1, Body=_content(999)
            )
        assert part_error.value.response["Error"]["Code"] == "InsufficientStorage"

        # The REST API's writes say the same (a fresh connection each: the server closes one
        # whose request failed).
        for route in ("/job/sink", "/run/sink"):
            answer = httpx.post(
                f"{server.url}{route}", content=_content(1000), auth=server.auth, timeout=30
            )
            assert answer.status_code == 507, (route, answer.text)
            assert "full" in answer.text

        # Reads keep working while the disk is full.
        for key, body in acknowledged.items():
            assert s3.get_object(Bucket="full", Key=key)["Body"].read() == body
        listed = s3.list_objects_v2(Bucket="full", Prefix="f/")["KeyCount"]
        assert listed == len(acknowledged)
        assert httpx.get(f"{server.url}/health", timeout=5).text == "Ok"
        with server.client() as client:
            assert client.get("/system/services").status_code == 200

        # Space freed: uploads work again.
        ballast.unlink()
        s3.put_object(Bucket="full", Key="after", Body=b"room again")
        acknowledged["after"] = b"room again"
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()[-3000:]

    server = start_server(small_disk, env=env)
    try:
        s3 = server.s3_client(retries={"max_attempts": 1})
        for key, body in acknowledged.items():
            assert s3.get_object(Bucket="full", Key=key)["Body"].read() == body
    finally:
        server.stop()
    print(
        f"disk full: {len(acknowledged)} acknowledged objects kept, "
        f"{len(refusals)} uploads refused with 507, 0 lost"
    )
