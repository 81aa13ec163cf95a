"""Staging through an external S3-compatible provider (`minio.<id>`) with boto3.

The "external" endpoint is the platform's own S3 front-end reached over HTTP, so that the
`S3Provider` talks to a real S3 server; the service sees it only as `minio.outside`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from oscarpy.engine.records import JobStatus
from oscarpy.log import redact
from oscarpy.storage.providers.base import ObjectNotFound, StorageError
from oscarpy.storage.providers.s3 import S3Provider
from tests.support.jobs import ADMIN, Harness, running_engine, unique

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, docker_client: object) -> Iterator[Harness]:
    with running_engine(tmp_path_factory.mktemp("external") / "data") as harness:
        yield harness


def outside(platform: Harness) -> dict[str, Any]:
    return {
        "minio": {
            "outside": {
                "endpoint": platform.s3_url,
                "verify": False,
                "access_key": ADMIN.username,
                "secret_key": ADMIN.password,
            }
        }
    }


def test_a_job_stages_in_and_out_through_an_external_provider(platform: Harness) -> None:
    bucket = unique("ext")
    platform.put(bucket, "in/data.txt", b"external bytes\n")
    service = platform.service(
        script='tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/result.txt"\n',
        storage_providers=outside(platform),
        input=[{"storage_provider": "minio.outside", "path": f"{bucket}/in"}],
        output=[{"storage_provider": "minio.outside", "path": f"{bucket}/out"}],
    )

    created = platform.client.post(f"/system/services/{service.name}/reconcile")

    assert created.json() == {"created": 1}
    (job,) = platform.finished_jobs(service.name)
    assert job.status is JobStatus.SUCCEEDED, job.message
    assert job.provider == "minio.outside"
    assert platform.read(bucket, "out/result.txt") == b"EXTERNAL BYTES\n"
    assert "minio.outside" in platform.engine.ledger.read_log(job.id)


def test_an_unreachable_provider_is_an_infrastructure_failure(platform: Harness) -> None:
    service = platform.service(
        script="true\n",
        storage_providers={
            "minio": {
                "down": {
                    "endpoint": "http://127.0.0.1:9",
                    "access_key": "a",
                    "secret_key": "secret-of-down",
                }
            }
        },
        input=[{"storage_provider": "minio.down", "path": "nowhere/in"}],
    )
    event = {"Records": [{"s3": {"bucket": {"name": "nowhere"}, "object": {"key": "in/x"}}}]}

    answer = platform.client.post(f"/job/{service.name}", json=event)

    assert answer.status_code == 201
    (job,) = platform.finished_jobs(service.name, timeout=90)
    assert job.status is JobStatus.FAILED and job.reason == "staging"
    assert job.attempts == 2  # one infrastructure retry in these tests


def test_the_provider_reports_missing_objects_and_masks_its_secret(platform: Harness) -> None:
    provider = S3Provider(
        endpoint=platform.s3_url,
        access_key=ADMIN.username,
        secret_key=ADMIN.password,
        name="minio.outside",
    )
    bucket = unique("prov")
    provider.ensure_bucket(bucket)
    provider.ensure_bucket(bucket)

    with pytest.raises(ObjectNotFound):
        provider.download(bucket, "absent", platform.settings.data_dir / "never")
    assert [item.key for item in provider.list_objects(bucket)] == []
    assert ADMIN.password not in redact(f"key {ADMIN.password}")
    wrong = S3Provider(endpoint=platform.s3_url, access_key="x", secret_key="wrong-secret")
    with pytest.raises(StorageError):
        list(wrong.list_objects(bucket))


def test_oscar_python_storage_client_uses_the_owners_external_provider(
    platform: Harness, tmp_path: Path
) -> None:
    """oscar_python reads a provider's credentials from the service's answer: the owner must
    get them (as OSCAR answers them) for its storage client to reach `minio.<id>`."""
    from oscar_python.client import Client

    bucket = unique("pyext")
    platform.store.ensure_bucket(bucket)
    service = platform.service(
        script="true\n",
        storage_providers=outside(platform),
        output=[{"storage_provider": "minio.outside", "path": f"{bucket}/out"}],
    )
    (tmp_path / "note.txt").write_bytes(b"through oscar_python\n")
    client = Client(
        {
            "cluster_id": "here",
            "endpoint": str(platform.client.base_url).rstrip("/"),
            "user": ADMIN.username,
            "password": ADMIN.password,
            "ssl": "False",
        }
    )

    storage = client.create_storage_client(service.name)
    storage.upload_file("minio.outside", str(tmp_path / "note.txt"), f"{bucket}/out")

    assert platform.read(bucket, "out/note.txt") == b"through oscar_python\n"


def minio_event(bucket: str, key: str, etag: str, sequencer: str) -> dict[str, Any]:
    """A notification as MinIO's webhook target posts it (one record per request)."""
    return {
        "EventName": "s3:ObjectCreated:Put",
        "Key": f"{bucket}/{key}",
        "Records": [
            {
                "eventVersion": "2.0",
                "eventSource": "minio:s3",
                "awsRegion": "",
                "eventTime": "2026-12-01T12:00:00.000Z",
                "eventName": "s3:ObjectCreated:Put",
                "userIdentity": {"principalId": "minio"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "Config",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {
                        "key": key.replace(" ", "+"),
                        "size": 9,
                        "eTag": etag,
                        "contentType": "text/plain",
                        "sequencer": sequencer,
                    },
                },
                "source": {"host": "127.0.0.1", "port": "", "userAgent": "MinIO (linux; amd64)"},
            }
        ],
    }


def test_a_minio_webhook_with_the_service_token_starts_one_job_per_upload(
    platform: Harness,
) -> None:
    """An external MinIO's webhook target set to `/job/<service>` with the service's token as
    `auth_token` (as OSCAR configures it) starts the job; a redelivery starts none."""
    bucket = unique("hook")
    etag = platform.put(bucket, "in/a file.txt", b"by a hook")
    service = platform.service(
        script='cat "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/copy.txt"\n',
        storage_providers=outside(platform),
        input=[{"storage_provider": "minio.outside", "path": f"{bucket}/in"}],
        output=[{"storage_provider": "minio.outside", "path": f"{bucket}/out"}],
    )
    event = minio_event(bucket, "in/a file.txt", etag, "17C3A8F2B1D0E9A4")
    hook = httpx.Client(base_url=platform.client.base_url, timeout=30)

    first = hook.post(
        f"/job/{service.name}", json=event, headers={"Authorization": f"Bearer {service.token}"}
    )
    again = hook.post(
        f"/job/{service.name}", json=event, headers={"Authorization": f"Bearer {service.token}"}
    )
    wrong = hook.post(f"/job/{service.name}", json=event, headers={"Authorization": "Bearer x"})
    hook.close()

    assert first.status_code == 201 and again.status_code == 201
    assert first.json()["job_id"] == again.json()["job_id"]
    assert wrong.status_code == 401
    (job,) = platform.finished_jobs(service.name)
    assert job.status is JobStatus.SUCCEEDED, job.message
    assert (job.provider, job.key) == ("minio.outside", "in/a file.txt")
    assert platform.read(bucket, "out/copy.txt") == b"by a hook"
