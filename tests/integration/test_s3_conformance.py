"""What S3 clients do by default, beyond the basics of `test_s3_boto3`: conditional writes and
the smaller corners of the protocol, with boto3 at its default settings (and the AWS CLI where
it exposes them) against a real `oscar serve`."""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError
from minio import Minio

from tests.integration.test_s3_awscli import aws
from tests.integration.test_s3_support import client, error_code, s3_server  # noqa: F401
from tests.support.server import RunningServer, start_server

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def s3(s3_server: RunningServer) -> Any:  # noqa: F811
    return client(s3_server)


def test_put_if_none_match_creates_only_once(s3: Any) -> None:
    s3.create_bucket(Bucket="conf-create-once")
    s3.put_object(Bucket="conf-create-once", Key="k", Body=b"first", IfNoneMatch="*")

    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket="conf-create-once", Key="k", Body=b"second", IfNoneMatch="*")

    assert error_code(raised) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket="conf-create-once", Key="k")["Body"].read() == b"first"


def test_put_if_match_replaces_only_the_expected_version(s3: Any) -> None:
    s3.create_bucket(Bucket="conf-swap")
    first = s3.put_object(Bucket="conf-swap", Key="k", Body=b"v1")["ETag"]
    second = s3.put_object(Bucket="conf-swap", Key="k", Body=b"v2", IfMatch=first)["ETag"]

    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket="conf-swap", Key="k", Body=b"stale", IfMatch=first)
    assert error_code(raised) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket="conf-swap", Key="missing", Body=b"x", IfMatch=first)
    assert error_code(raised) == ("NoSuchKey", 404)

    got = s3.get_object(Bucket="conf-swap", Key="k")
    assert (got["ETag"], got["Body"].read()) == (second, b"v2")


def test_complete_multipart_upload_honours_if_none_match(s3: Any) -> None:
    s3.create_bucket(Bucket="conf-mp-cond")
    s3.put_object(Bucket="conf-mp-cond", Key="k", Body=b"already here")
    upload = s3.create_multipart_upload(Bucket="conf-mp-cond", Key="k")["UploadId"]
    etag = s3.upload_part(
        Bucket="conf-mp-cond", Key="k", UploadId=upload, PartNumber=1, Body=b"part"
    )["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}

    with pytest.raises(ClientError) as raised:
        s3.complete_multipart_upload(
            Bucket="conf-mp-cond", Key="k", UploadId=upload, MultipartUpload=parts, IfNoneMatch="*"
        )

    assert error_code(raised) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket="conf-mp-cond", Key="k")["Body"].read() == b"already here"
    # The upload is still there: it completes without the condition.
    s3.complete_multipart_upload(
        Bucket="conf-mp-cond", Key="k", UploadId=upload, MultipartUpload=parts
    )
    assert s3.get_object(Bucket="conf-mp-cond", Key="k")["Body"].read() == b"part"


def test_the_aws_cli_puts_with_if_none_match(
    s3: Any,
    s3_server: RunningServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    s3.create_bucket(Bucket="conf-cli-cond")
    body = tmp_path / "body.txt"
    body.write_text("from the cli")
    put = ["s3api", "put-object", "--bucket", "conf-cli-cond", "--key", "k", "--body", str(body)]
    json.loads(aws(s3_server, tmp_path, *put, "--if-none-match", "*"))

    with pytest.raises(AssertionError, match="PreconditionFailed"):
        aws(s3_server, tmp_path, *put, "--if-none-match", "*")


def test_get_and_head_one_part_of_a_multipart_object(s3: Any) -> None:
    s3.create_bucket(Bucket="conf-parts")
    first, second = os.urandom(5 * MiB), os.urandom(1000)
    upload = s3.create_multipart_upload(Bucket="conf-parts", Key="mp")["UploadId"]
    etags = [
        s3.upload_part(Bucket="conf-parts", Key="mp", UploadId=upload, PartNumber=n, Body=body)[
            "ETag"
        ]
        for n, body in ((1, first), (2, second))
    ]
    s3.complete_multipart_upload(
        Bucket="conf-parts",
        Key="mp",
        UploadId=upload,
        MultipartUpload={
            "Parts": [{"PartNumber": n, "ETag": e} for n, e in zip((1, 2), etags, strict=True)]
        },
    )

    got = s3.get_object(Bucket="conf-parts", Key="mp", PartNumber=2)
    assert (got["Body"].read(), got["PartsCount"]) == (second, 2)
    assert got["ContentRange"] == f"bytes {5 * MiB}-{5 * MiB + 999}/{5 * MiB + 1000}"
    head = s3.head_object(Bucket="conf-parts", Key="mp", PartNumber=1)
    assert (head["ContentLength"], head["PartsCount"]) == (5 * MiB, 2)
    assert s3.get_object(Bucket="conf-parts", Key="mp", PartNumber=1)["Body"].read() == first
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket="conf-parts", Key="mp", PartNumber=3)
    assert error_code(raised) == ("InvalidPartNumber", 416)
    s3.put_object(Bucket="conf-parts", Key="whole", Body=b"one piece")
    assert (
        s3.get_object(Bucket="conf-parts", Key="whole", PartNumber=1)["Body"].read() == b"one piece"
    )
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket="conf-parts", Key="whole", PartNumber=2)
    assert error_code(raised) == ("InvalidPartNumber", 416)


def test_list_buckets_in_pages(s3: Any) -> None:
    names = [f"conf-paged-{n}" for n in range(5)]
    for name in names:
        s3.create_bucket(Bucket=name)
    seen: list[str] = []
    arguments: dict[str, Any] = {"MaxBuckets": 2, "Prefix": "conf-paged-"}
    while True:
        page = s3.list_buckets(**arguments)
        assert len(page["Buckets"]) <= 2
        seen += [bucket["Name"] for bucket in page["Buckets"]]
        if "ContinuationToken" not in page:
            break
        arguments["ContinuationToken"] = page["ContinuationToken"]
    assert seen == names
    assert set(names) <= {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}


def test_get_bucket_location_answers_the_configured_region(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", env={"OSCAR_REGION": "eu-central-1"})
    try:
        s3 = client(server)
        s3.create_bucket(
            Bucket="located", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
        )
        assert s3.get_bucket_location(Bucket="located")["LocationConstraint"] == "eu-central-1"
    finally:
        server.stop()


def test_list_objects_v1_echoes_the_prefix_as_sent_with_url_encoding(s3: Any) -> None:
    s3.create_bucket(Bucket="conf-echo")
    s3.put_object(Bucket="conf-echo", Key="line\nbreak/x y", Body=b"")

    listed = s3.list_objects(Bucket="conf-echo", Prefix="line\nbreak/", Delimiter="/")
    listed_v2 = s3.list_objects_v2(Bucket="conf-echo", Prefix="line\nbreak/")

    assert listed["Prefix"] == listed_v2["Prefix"] == "line\nbreak/"
    assert [entry["Key"] for entry in listed["Contents"]] == ["line\nbreak/x y"]


def test_non_ascii_metadata_sent_as_utf8_is_stored_and_returned_as_s3_does(
    s3: Any,
    s3_server: RunningServer,  # noqa: F811
) -> None:
    """boto3 refuses non-ASCII metadata; other SDKs (Go, Java) send it as UTF-8 bytes and sign
    those bytes, as done here with botocore's signer."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    s3.create_bucket(Bucket="conf-unicode-meta")
    url = f"{s3_server.s3_url}/conf-unicode-meta/k"
    request = AWSRequest(
        method="PUT", url=url, data=b"body", headers={"x-amz-meta-city": "Zürich 日本"}
    )
    S3SigV4Auth(Credentials(s3_server.username, s3_server.password), "s3", "us-east-1").add_auth(
        request
    )
    headers = [(name, value.encode()) for name, value in request.headers.items()]

    answer = httpx.put(url, headers=headers, content=b"body")

    assert answer.status_code == 200, answer.text
    returned = s3.head_object(Bucket="conf-unicode-meta", Key="k")["Metadata"]["city"]
    assert returned.startswith("=?UTF-8?B?")  # RFC 2047, as S3 answers
    assert str(make_header(decode_header(returned))) == "Zürich 日本"


def test_minio_py_metadata_with_latin1_characters_round_trips(
    s3_server: RunningServer,  # noqa: F811
) -> None:
    minio = Minio(
        s3_server.s3_url.removeprefix("http://"),
        access_key=s3_server.username,
        secret_key=s3_server.password,
        secure=False,
    )
    minio.make_bucket("conf-minio-meta")
    minio.put_object(
        "conf-minio-meta", "k", io.BytesIO(b"x"), 1, metadata={"x-amz-meta-who": "José"}
    )

    stat = minio.stat_object("conf-minio-meta", "k")

    assert stat.metadata is not None
    assert str(make_header(decode_header(stat.metadata["x-amz-meta-who"]))) == "José"


def test_upload_part_copy_with_an_invalid_range_answers_s3s_errors(s3: Any) -> None:
    s3.create_bucket(Bucket="conf-copy-range")
    s3.put_object(Bucket="conf-copy-range", Key="source", Body=b"0123456789")
    upload = s3.create_multipart_upload(Bucket="conf-copy-range", Key="dest")["UploadId"]

    def copy(source_range: str) -> Any:
        return s3.upload_part_copy(
            Bucket="conf-copy-range",
            Key="dest",
            UploadId=upload,
            PartNumber=1,
            CopySource={"Bucket": "conf-copy-range", "Key": "source"},
            CopySourceRange=source_range,
        )

    for malformed in ["bytes=-5", "bytes=5-", "5-9", "bytes=1-x", "bytes=0-1,3-4"]:
        with pytest.raises(ClientError) as raised:
            copy(malformed)
        assert error_code(raised) == ("InvalidArgument", 400), malformed
    for outside in ["bytes=5-2", "bytes=0-10", "bytes=10-10"]:
        with pytest.raises(ClientError) as raised:
            copy(outside)
        assert error_code(raised) == ("InvalidRange", 416), outside
    copied = copy("bytes=2-5")
    assert copied["CopyPartResult"]["ETag"] == f'"{hashlib.md5(b"2345").hexdigest()}"'


def test_object_lock_calls_get_s3s_answers_for_a_bucket_without_object_lock(s3: Any) -> None:
    s3.create_bucket(Bucket="conf-no-lock")
    s3.put_object(Bucket="conf-no-lock", Key="k", Body=b"x")

    with pytest.raises(ClientError) as raised:
        s3.get_object_lock_configuration(Bucket="conf-no-lock")
    assert error_code(raised) == ("ObjectLockConfigurationNotFoundError", 404)
    with pytest.raises(ClientError) as raised:
        s3.put_object_lock_configuration(
            Bucket="conf-no-lock", ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}
        )
    assert error_code(raised) == ("InvalidBucketState", 409)
    calls: list[Callable[[], Any]] = [
        lambda: s3.get_object_retention(Bucket="conf-no-lock", Key="k"),
        lambda: s3.get_object_legal_hold(Bucket="conf-no-lock", Key="k"),
        lambda: s3.put_object_legal_hold(
            Bucket="conf-no-lock", Key="k", LegalHold={"Status": "ON"}
        ),
        lambda: s3.put_object_retention(
            Bucket="conf-no-lock",
            Key="k",
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": "2030-01-01T00:00:00Z"},
        ),
    ]
    for call in calls:
        with pytest.raises(ClientError) as raised:
            call()
        assert error_code(raised) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as raised:
        s3.get_object_lock_configuration(Bucket="no-such-lock-bucket")
    assert error_code(raised) == ("NoSuchBucket", 404)
    assert s3.get_object(Bucket="conf-no-lock", Key="k")["Body"].read() == b"x"  # connection fine
