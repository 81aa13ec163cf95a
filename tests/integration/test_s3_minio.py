"""minio-py (the client of MinIO and of OSCAR's tooling) against a real `oscar serve`."""

from __future__ import annotations

import io
import os
from typing import Any

import httpx
import pytest
from minio import Minio
from minio.commonconfig import CopySource
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from tests.integration.test_s3_support import s3_server  # noqa: F401
from tests.support.server import RunningServer

MiB = 1024 * 1024


@pytest.fixture
def minio(s3_server: RunningServer) -> Any:  # noqa: F811
    return Minio(
        s3_server.s3_url.removeprefix("http://"),
        access_key=s3_server.username,
        secret_key=s3_server.password,
        secure=False,
    )


def test_minio_client_operations(minio: Any) -> None:
    minio.make_bucket("minio-py")
    assert minio.bucket_exists("minio-py")
    assert not minio.bucket_exists("missing-bucket")
    assert "minio-py" in [bucket.name for bucket in minio.list_buckets()]
    minio.put_object(
        "minio-py",
        "folder/small.txt",
        io.BytesIO(b"small"),
        5,
        content_type="text/plain",
        metadata={"x-amz-meta-origin": "test"},
    )
    data = os.urandom(12 * MiB)
    minio.put_object("minio-py", "folder/big.bin", io.BytesIO(data), -1, part_size=5 * MiB)
    stat = minio.stat_object("minio-py", "folder/big.bin")
    assert stat.size == len(data) and stat.etag.endswith("-3")
    response = minio.get_object("minio-py", "folder/big.bin")
    try:
        assert response.read() == data
    finally:
        response.close()
        response.release_conn()
    small = minio.stat_object("minio-py", "folder/small.txt")
    assert small.content_type == "text/plain"
    assert small.metadata["x-amz-meta-origin"] == "test"
    top = [item.object_name for item in minio.list_objects("minio-py")]
    assert top == ["folder/"]
    everything = [item.object_name for item in minio.list_objects("minio-py", recursive=True)]
    assert everything == ["folder/big.bin", "folder/small.txt"]
    minio.copy_object("minio-py", "copied.txt", CopySource("minio-py", "folder/small.txt"))
    url = minio.presigned_get_object("minio-py", "copied.txt")
    assert httpx.get(url).content == b"small"
    errors = list(
        minio.remove_objects(
            "minio-py",
            [DeleteObject(name) for name in ["folder/big.bin", "folder/small.txt", "copied.txt"]],
        )
    )
    assert errors == []
    with pytest.raises(S3Error) as raised:
        minio.stat_object("minio-py", "copied.txt")
    assert raised.value.code == "NoSuchKey"
    minio.remove_bucket("minio-py")
    assert not minio.bucket_exists("minio-py")
