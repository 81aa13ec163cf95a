"""What S3 clients do by default, beyond the basics of `test_s3_boto3`: conditional writes and
the smaller corners of the protocol, with boto3 at its default settings (and the AWS CLI where
it exposes them) against a real `oscar serve`."""

from __future__ import annotations

import json
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


def test_put_if_none_match_creates_only_once(s3: Any) -> None:
    s3.create_bucket(Bucket="create-once")
    s3.put_object(Bucket="create-once", Key="k", Body=b"first", IfNoneMatch="*")

    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket="create-once", Key="k", Body=b"second", IfNoneMatch="*")

    assert error_code(raised) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket="create-once", Key="k")["Body"].read() == b"first"


def test_put_if_match_replaces_only_the_expected_version(s3: Any) -> None:
    s3.create_bucket(Bucket="swap")
    first = s3.put_object(Bucket="swap", Key="k", Body=b"v1")["ETag"]
    second = s3.put_object(Bucket="swap", Key="k", Body=b"v2", IfMatch=first)["ETag"]

    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket="swap", Key="k", Body=b"stale", IfMatch=first)
    assert error_code(raised) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket="swap", Key="missing", Body=b"x", IfMatch=first)
    assert error_code(raised) == ("NoSuchKey", 404)

    got = s3.get_object(Bucket="swap", Key="k")
    assert (got["ETag"], got["Body"].read()) == (second, b"v2")


def test_complete_multipart_upload_honours_if_none_match(s3: Any) -> None:
    s3.create_bucket(Bucket="mp-cond")
    s3.put_object(Bucket="mp-cond", Key="k", Body=b"already here")
    upload = s3.create_multipart_upload(Bucket="mp-cond", Key="k")["UploadId"]
    etag = s3.upload_part(Bucket="mp-cond", Key="k", UploadId=upload, PartNumber=1, Body=b"part")[
        "ETag"
    ]
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}

    with pytest.raises(ClientError) as raised:
        s3.complete_multipart_upload(
            Bucket="mp-cond", Key="k", UploadId=upload, MultipartUpload=parts, IfNoneMatch="*"
        )

    assert error_code(raised) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket="mp-cond", Key="k")["Body"].read() == b"already here"
    # The upload is still there: it completes without the condition.
    s3.complete_multipart_upload(Bucket="mp-cond", Key="k", UploadId=upload, MultipartUpload=parts)
    assert s3.get_object(Bucket="mp-cond", Key="k")["Body"].read() == b"part"


def test_the_aws_cli_puts_with_if_none_match(
    s3: Any,
    s3_server: RunningServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    s3.create_bucket(Bucket="cli-cond")
    body = tmp_path / "body.txt"
    body.write_text("from the cli")
    put = ["s3api", "put-object", "--bucket", "cli-cond", "--key", "k", "--body", str(body)]
    json.loads(aws(s3_server, tmp_path, *put, "--if-none-match", "*"))

    with pytest.raises(AssertionError, match="PreconditionFailed"):
        aws(s3_server, tmp_path, *put, "--if-none-match", "*")
