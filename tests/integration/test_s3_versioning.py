"""Bucket versioning with boto3 at its default settings against a real `oscar serve`:
Put/GetBucketVersioning, version ids on PUT, copy, multipart and DELETE, delete markers,
ListObjectVersions with markers, GET/HEAD/DELETE by version id."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.test_s3_awscli import aws
from tests.integration.test_s3_support import client, error_code, s3_server  # noqa: F401
from tests.support.server import RunningServer

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def s3(s3_server: RunningServer) -> Any:  # noqa: F811
    return client(s3_server)


def versioned(s3: Any, bucket: str) -> str:
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return bucket


def test_versioning_status(s3: Any) -> None:
    s3.create_bucket(Bucket="ver-status")
    assert "Status" not in s3.get_bucket_versioning(Bucket="ver-status")
    for status in ("Enabled", "Suspended"):
        s3.put_bucket_versioning(Bucket="ver-status", VersioningConfiguration={"Status": status})
        assert s3.get_bucket_versioning(Bucket="ver-status")["Status"] == status
    with pytest.raises(ClientError) as raised:
        s3.put_bucket_versioning(Bucket="ver-status", VersioningConfiguration={"Status": "On"})
    assert error_code(raised) == ("MalformedXML", 400)
    with pytest.raises(ClientError) as raised:
        s3.get_bucket_versioning(Bucket="ver-missing")
    assert error_code(raised) == ("NoSuchBucket", 404)


def test_every_write_is_a_version_readable_by_id(s3: Any) -> None:
    bucket = versioned(s3, "ver-writes")
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    second = s3.put_object(Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    copied = s3.copy_object(
        Bucket=bucket, Key="k", CopySource={"Bucket": bucket, "Key": "k", "VersionId": first}
    )
    assert copied["CopySourceVersionId"] == first
    third = copied["VersionId"]
    assert len({first, second, third}) == 3

    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"one"
    by_id = s3.get_object(Bucket=bucket, Key="k", VersionId=second)
    assert (by_id["Body"].read(), by_id["VersionId"]) == (b"two", second)
    assert s3.head_object(Bucket=bucket, Key="k", VersionId=first)["ContentLength"] == 3
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket=bucket, Key="k", VersionId="0" * 32)
    assert error_code(raised) == ("NoSuchVersion", 404)

    upload = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="k", UploadId=upload, PartNumber=1, Body=b"four")
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="k",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert [(v["VersionId"], v["IsLatest"]) for v in versions] == [
        (done["VersionId"], True),
        (third, False),
        (second, False),
        (first, False),
    ]


def test_delete_markers_and_deleting_versions(s3: Any) -> None:
    bucket = versioned(s3, "ver-delete")
    kept = s3.put_object(Bucket=bucket, Key="k", Body=b"kept")["VersionId"]

    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket=bucket, Key="k")
    assert error_code(raised) == ("NoSuchKey", 404)
    assert raised.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    with pytest.raises(ClientError) as raised:
        s3.head_object(Bucket=bucket, Key="k", VersionId=marker)
    assert error_code(raised) == ("405", 405)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    listed = s3.list_object_versions(Bucket=bucket)
    assert [(m["VersionId"], m["IsLatest"]) for m in listed["DeleteMarkers"]] == [(marker, True)]
    assert [(v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [(kept, False)]

    # Deleting the marker brings the object back; deleting the version removes it for good.
    s3.delete_object(Bucket=bucket, Key="k", VersionId=marker)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"kept"
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k", "VersionId": kept}]})
    assert "Versions" not in s3.list_object_versions(Bucket=bucket)
    s3.delete_bucket(Bucket=bucket)


def test_list_object_versions_pages_with_key_and_version_markers(s3: Any) -> None:
    bucket = versioned(s3, "ver-pages")
    made = [
        (key, s3.put_object(Bucket=bucket, Key=key, Body=os.urandom(10))["VersionId"])
        for key in ("a", "b")
        for _ in range(3)
    ]
    expected = [(key, version) for key in ("a", "b") for k, version in reversed(made) if k == key]
    seen: list[tuple[str, str]] = []
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": 2}):
        seen += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
    assert seen == expected


def test_suspended_versioning_writes_the_null_version(s3: Any) -> None:
    bucket = versioned(s3, "ver-suspend")
    kept = s3.put_object(Bucket=bucket, Key="k", Body=b"versioned")["VersionId"]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    s3.put_object(Bucket=bucket, Key="k", Body=b"null one")
    s3.put_object(Bucket=bucket, Key="k", Body=b"null two")
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert [v["VersionId"] for v in versions] == ["null", kept]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"null two"


def test_an_unversioned_bucket_answers_as_before(s3: Any) -> None:
    s3.create_bucket(Bucket="ver-never")
    put = s3.put_object(Bucket="ver-never", Key="k", Body=b"x")
    assert "VersionId" not in put
    assert s3.get_object(Bucket="ver-never", Key="k", VersionId="null")["Body"].read() == b"x"
    s3.delete_object(Bucket="ver-never", Key="k")
    assert "Versions" not in s3.list_object_versions(Bucket="ver-never")
    assert "DeleteMarkers" not in s3.list_object_versions(Bucket="ver-never")


def test_big_multipart_version(s3: Any) -> None:
    bucket = versioned(s3, "ver-big")
    body = os.urandom(9 * MiB)  # over upload_fileobj's 8 MiB multipart threshold
    s3.upload_fileobj(io.BytesIO(body), bucket, "big")
    version = s3.head_object(Bucket=bucket, Key="big")["VersionId"]
    assert s3.get_object(Bucket=bucket, Key="big", VersionId=version)["Body"].read() == body


def test_get_object_attributes_of_a_version(s3: Any) -> None:
    bucket = versioned(s3, "ver-attributes")
    old = s3.put_object(Bucket=bucket, Key="k", Body=b"old one")
    s3.put_object(Bucket=bucket, Key="k", Body=b"new")
    wanted = ["ETag", "ObjectSize", "Checksum"]
    found = s3.get_object_attributes(
        Bucket=bucket, Key="k", VersionId=old["VersionId"], ObjectAttributes=wanted
    )
    assert (found["VersionId"], found["ObjectSize"]) == (old["VersionId"], 7)
    assert found["ETag"] == old["ETag"].strip('"')
    assert found["Checksum"]["ChecksumCRC32"] == old["ChecksumCRC32"]

    marker = s3.delete_object(Bucket=bucket, Key="k")["VersionId"]
    with pytest.raises(ClientError) as raised:
        s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=wanted)
    assert error_code(raised) == ("NoSuchKey", 404)
    assert raised.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    with pytest.raises(ClientError) as raised:
        s3.get_object_attributes(Bucket=bucket, Key="k", VersionId=marker, ObjectAttributes=wanted)
    assert error_code(raised)[1] == 405
    with pytest.raises(ClientError) as raised:
        s3.get_object_attributes(
            Bucket=bucket, Key="k", VersionId="0" * 32, ObjectAttributes=wanted
        )
    assert error_code(raised) == ("NoSuchVersion", 404)


def test_list_object_versions_by_delimiter_pages_through_common_prefixes(
    s3: Any,
    s3_server: RunningServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    bucket = versioned(s3, "ver-folders")
    for key in ("docs/a", "docs/a", "docs/sub/b", "photos/c", "readme", "readme"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    readme = [
        v["VersionId"] for v in s3.list_object_versions(Bucket=bucket, Prefix="readme")["Versions"]
    ]
    for page_size in (1, 2, 1000):
        prefixes: list[str] = []
        versions: list[tuple[str, str]] = []
        paginator = s3.get_paginator("list_object_versions")
        pages = paginator.paginate(
            Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": page_size}
        )
        for page in pages:
            assert len(page.get("CommonPrefixes", [])) + len(page.get("Versions", [])) <= page_size
            prefixes += [common["Prefix"] for common in page.get("CommonPrefixes", [])]
            versions += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
        assert prefixes == ["docs/", "photos/"]
        assert versions == [("readme", version) for version in readme]

    inside = s3.list_object_versions(Bucket=bucket, Prefix="docs/", Delimiter="/")
    assert [common["Prefix"] for common in inside["CommonPrefixes"]] == ["docs/sub/"]
    assert [v["Key"] for v in inside["Versions"]] == ["docs/a", "docs/a"]

    listed = json.loads(
        aws(
            s3_server,
            tmp_path,
            "s3api",
            "list-object-versions",
            "--bucket",
            bucket,
            "--delimiter",
            "/",
            "--page-size",
            "1",
        )
    )
    assert [common["Prefix"] for common in listed["CommonPrefixes"]] == ["docs/", "photos/"]
    assert [v["VersionId"] for v in listed["Versions"]] == readme


def test_object_lock_on_a_versioned_bucket_gets_s3s_answers_without_object_lock(s3: Any) -> None:
    bucket = versioned(s3, "ver-no-lock")
    version = s3.put_object(Bucket=bucket, Key="k", Body=b"x")["VersionId"]
    with pytest.raises(ClientError) as raised:
        s3.put_object_lock_configuration(
            Bucket=bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}
        )
    assert error_code(raised) == ("InvalidBucketState", 409)
    with pytest.raises(ClientError) as raised:
        s3.get_object_lock_configuration(Bucket=bucket)
    assert error_code(raised) == ("ObjectLockConfigurationNotFoundError", 404)
    calls: list[Callable[[], Any]] = [
        lambda: s3.get_object_retention(Bucket=bucket, Key="k", VersionId=version),
        lambda: s3.put_object_legal_hold(
            Bucket=bucket, Key="k", VersionId=version, LegalHold={"Status": "ON"}
        ),
    ]
    for call in calls:
        with pytest.raises(ClientError) as raised:
            call()
        assert error_code(raised) == ("InvalidRequest", 400)

    # A write asking for retention or a legal hold is refused, not stored unprotected.
    for lock in (
        {"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": "2030-01-01T00:00:00Z"},
        {"ObjectLockLegalHoldStatus": "ON"},
    ):
        with pytest.raises(ClientError) as raised:
            s3.put_object(Bucket=bucket, Key="locked", Body=b"y", **lock)
        assert error_code(raised) == ("InvalidRequest", 400)
        with pytest.raises(ClientError) as raised:
            s3.create_multipart_upload(Bucket=bucket, Key="locked", **lock)
        assert error_code(raised) == ("InvalidRequest", 400)
    assert [v["Key"] for v in s3.list_object_versions(Bucket=bucket)["Versions"]] == ["k"]

    with pytest.raises(ClientError) as raised:
        s3.create_bucket(Bucket="ver-with-lock", ObjectLockEnabledForBucket=True)
    assert error_code(raised) == ("NotImplemented", 501)
    assert "ver-with-lock" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
