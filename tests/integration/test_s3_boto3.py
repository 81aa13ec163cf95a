"""boto3 with its default settings against a real `oscar serve`: every S3 operation we claim."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from tests.integration.test_s3_support import client, error_code, s3_server  # noqa: F401
from tests.support.server import RunningServer

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def s3(s3_server: RunningServer) -> Any:  # noqa: F811
    return client(s3_server)


def test_bucket_lifecycle_and_the_answers_of_an_unversioned_bucket(s3: Any) -> None:
    s3.create_bucket(Bucket="life")
    with pytest.raises(ClientError) as raised:
        s3.create_bucket(Bucket="life")
    assert error_code(raised) == ("BucketAlreadyOwnedByYou", 409)
    assert "life" in [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket="life")
    assert s3.get_bucket_location(Bucket="life").get("LocationConstraint") is None
    assert "Status" not in s3.get_bucket_versioning(Bucket="life")
    acl = s3.get_bucket_acl(Bucket="life")
    assert [grant["Permission"] for grant in acl["Grants"]] == ["FULL_CONTROL"]
    assert acl["Grants"][0]["Grantee"]["ID"] == acl["Owner"]["ID"]
    s3.put_object(Bucket="life", Key="x", Body=b"x")
    assert s3.get_object_acl(Bucket="life", Key="x")["Grants"][0]["Permission"] == "FULL_CONTROL"
    with pytest.raises(ClientError) as raised:
        s3.delete_bucket(Bucket="life")
    assert error_code(raised) == ("BucketNotEmpty", 409)
    s3.delete_object(Bucket="life", Key="x")
    s3.delete_bucket(Bucket="life")
    with pytest.raises(ClientError) as raised:
        s3.head_bucket(Bucket="life")
    assert error_code(raised) == ("404", 404)
    with pytest.raises(ClientError) as raised:
        s3.create_bucket(Bucket="Not_Valid")
    assert error_code(raised) == ("InvalidBucketName", 400)


def test_put_get_head_with_metadata_ranges_and_conditions(s3: Any) -> None:
    s3.create_bucket(Bucket="objects")
    body = os.urandom(100_000)
    put = s3.put_object(
        Bucket="objects",
        Key="data.bin",
        Body=body,
        ContentType="application/x-test",
        Metadata={"origin": "camera-1"},
        CacheControl="max-age=60",
        ContentDisposition='attachment; filename="d.bin"',
    )
    etag = put["ETag"]
    assert etag == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket="objects", Key="data.bin")
    assert got["Body"].read() == body
    assert (got["ContentType"], got["Metadata"], got["CacheControl"]) == (
        "application/x-test",
        {"origin": "camera-1"},
        "max-age=60",
    )
    assert got["ContentDisposition"] == 'attachment; filename="d.bin"'
    head = s3.head_object(Bucket="objects", Key="data.bin")
    assert (head["ContentLength"], head["ETag"]) == (100_000, etag)
    ranged = s3.get_object(Bucket="objects", Key="data.bin", Range="bytes=10-19")
    assert (ranged["Body"].read(), ranged["ContentRange"]) == (body[10:20], "bytes 10-19/100000")
    assert (
        s3.get_object(Bucket="objects", Key="data.bin", Range="bytes=-5")["Body"].read()
        == (body[-5:])
    )
    assert (
        s3.get_object(Bucket="objects", Key="data.bin", Range="bytes=99990-")["Body"].read()
        == (body[99990:])
    )
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket="objects", Key="data.bin", Range="bytes=100000-")
    assert error_code(raised) == ("InvalidRange", 416)
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket="objects", Key="data.bin", IfNoneMatch=etag)
    assert error_code(raised) == ("304", 304)
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket="objects", Key="data.bin", IfMatch='"0123"')
    assert error_code(raised) == ("PreconditionFailed", 412)
    future = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket="objects", Key="data.bin", IfModifiedSince=future)
    assert error_code(raised) == ("304", 304)
    matched = s3.get_object(Bucket="objects", Key="data.bin", IfMatch=etag)
    assert (matched["ETag"], matched["Body"].read()) == (etag, body)
    overridden = s3.get_object(
        Bucket="objects",
        Key="data.bin",
        ResponseContentType="text/plain",
        ResponseContentDisposition="inline",
    )
    overridden["Body"].close()
    assert (overridden["ContentType"], overridden["ContentDisposition"]) == ("text/plain", "inline")
    s3.put_object(Bucket="objects", Key="empty", Body=b"")
    assert s3.get_object(Bucket="objects", Key="empty")["Body"].read() == b""
    s3.delete_object(Bucket="objects", Key="data.bin")
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket="objects", Key="data.bin")
    assert error_code(raised) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket="no-such-bucket", Key="data.bin")
    assert error_code(raised) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket="no-such-bucket", Key="k", Body=b"lost")
    assert error_code(raised) == ("NoSuchBucket", 404)


def test_listing_v1_v2_with_delimiters_paging_and_url_encoding(s3: Any) -> None:
    s3.create_bucket(Bucket="listing")
    keys = ["a/1", "a/2", "b/c/3", "b/4", "top", "with space+plus", "ünï/ç"]
    for key in keys:
        s3.put_object(Bucket="listing", Key=key, Body=key.encode())
    ordered = sorted(keys, key=str.encode)
    v2 = s3.list_objects_v2(Bucket="listing")
    assert [item["Key"] for item in v2["Contents"]] == ordered
    folders = s3.list_objects_v2(Bucket="listing", Delimiter="/")
    assert [prefix["Prefix"] for prefix in folders["CommonPrefixes"]] == ["a/", "b/", "ünï/"]
    assert [item["Key"] for item in folders["Contents"]] == ["top", "with space+plus"]
    nested = s3.list_objects_v2(Bucket="listing", Prefix="b/", Delimiter="/")
    assert [item["Key"] for item in nested["Contents"]] == ["b/4"]
    assert [prefix["Prefix"] for prefix in nested["CommonPrefixes"]] == ["b/c/"]
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket="listing", PaginationConfig={"PageSize": 2}
    )
    listed = [item["Key"] for page in pages for item in page.get("Contents", [])]
    assert listed == ordered
    grouped = s3.get_paginator("list_objects_v2").paginate(
        Bucket="listing", Delimiter="/", PaginationConfig={"PageSize": 1}
    )
    entries = [
        entry.get("Key") or entry.get("Prefix")
        for page in grouped
        for entry in page.get("Contents", []) + page.get("CommonPrefixes", [])
    ]
    assert entries == ["a/", "b/", "top", "with space+plus", "ünï/"]
    under = s3.list_objects_v2(Bucket="listing", Prefix="a/", Delimiter="/", StartAfter="a/")
    assert [item["Key"] for item in under["Contents"]] == ["a/1", "a/2"]
    after = s3.list_objects_v2(Bucket="listing", StartAfter="b/4")
    assert [item["Key"] for item in after["Contents"]] == ordered[ordered.index("b/4") + 1 :]
    v1_pages = s3.get_paginator("list_objects").paginate(
        Bucket="listing", PaginationConfig={"PageSize": 3}
    )
    assert [item["Key"] for page in v1_pages for item in page.get("Contents", [])] == ordered
    versions = s3.list_object_versions(Bucket="listing", Prefix="a/")
    assert [
        (item["Key"], item["VersionId"], item["IsLatest"]) for item in versions["Versions"]
    ] == [
        ("a/1", "null", True),
        ("a/2", "null", True),
    ]
    version_pages = s3.get_paginator("list_object_versions").paginate(
        Bucket="listing", PaginationConfig={"PageSize": 2}
    )
    assert [item["Key"] for page in version_pages for item in page.get("Versions", [])] == ordered


def test_delete_objects_in_one_batch(s3: Any) -> None:
    s3.create_bucket(Bucket="batch")
    for number in range(5):
        s3.put_object(Bucket="batch", Key=f"k{number}", Body=b".")
    result = s3.delete_objects(
        Bucket="batch",
        Delete={"Objects": [{"Key": "k0"}, {"Key": "k1"}, {"Key": "missing"}]},
    )
    assert sorted(item["Key"] for item in result["Deleted"]) == ["k0", "k1", "missing"]
    quiet = s3.delete_objects(
        Bucket="batch", Delete={"Objects": [{"Key": "k2", "VersionId": "null"}], "Quiet": True}
    )
    assert "Deleted" not in quiet
    assert [item["Key"] for item in s3.list_objects_v2(Bucket="batch")["Contents"]] == ["k3", "k4"]


def test_copy_object_with_metadata_directive(s3: Any) -> None:
    s3.create_bucket(Bucket="copies")
    s3.put_object(
        Bucket="copies", Key="src", Body=b"original", ContentType="text/plain", Metadata={"a": "1"}
    )
    s3.copy_object(Bucket="copies", Key="same-meta", CopySource={"Bucket": "copies", "Key": "src"})
    copied = s3.get_object(Bucket="copies", Key="same-meta")
    assert (copied["Body"].read(), copied["Metadata"], copied["ContentType"]) == (
        b"original",
        {"a": "1"},
        "text/plain",
    )
    s3.copy_object(
        Bucket="copies",
        Key="new-meta",
        CopySource="copies/src",
        MetadataDirective="REPLACE",
        Metadata={"b": "2"},
        ContentType="image/png",
    )
    replaced = s3.head_object(Bucket="copies", Key="new-meta")
    assert (replaced["Metadata"], replaced["ContentType"]) == ({"b": "2"}, "image/png")
    with pytest.raises(ClientError) as raised:
        s3.copy_object(Bucket="copies", Key="src", CopySource="copies/src")
    assert error_code(raised) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as raised:
        s3.copy_object(Bucket="copies", Key="x", CopySource="copies/missing")
    assert error_code(raised) == ("NoSuchKey", 404)


def test_multipart_operations_and_their_errors(s3: Any) -> None:
    s3.create_bucket(Bucket="parts")
    s3.put_object(Bucket="parts", Key="source", Body=b"0123456789" * 100)
    upload = s3.create_multipart_upload(Bucket="parts", Key="joined", ContentType="text/csv")
    upload_id = upload["UploadId"]
    first = os.urandom(5 * MiB)
    part1 = s3.upload_part(
        Bucket="parts", Key="joined", UploadId=upload_id, PartNumber=1, Body=first
    )
    part2 = s3.upload_part_copy(
        Bucket="parts",
        Key="joined",
        UploadId=upload_id,
        PartNumber=2,
        CopySource="parts/source",
        CopySourceRange="bytes=10-29",
    )["CopyPartResult"]
    listed = s3.list_parts(Bucket="parts", Key="joined", UploadId=upload_id)
    assert [(part["PartNumber"], part["Size"]) for part in listed["Parts"]] == [
        (1, 5 * MiB),
        (2, 20),
    ]
    uploads = s3.list_multipart_uploads(Bucket="parts")["Uploads"]
    assert [(item["Key"], item["UploadId"]) for item in uploads] == [("joined", upload_id)]
    with pytest.raises(ClientError) as raised:
        s3.complete_multipart_upload(
            Bucket="parts",
            Key="joined",
            UploadId=upload_id,
            MultipartUpload={
                "Parts": [{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}]
            },
        )
    assert error_code(raised) == ("InvalidPart", 400)
    parts = [{"PartNumber": 1, "ETag": part1["ETag"]}, {"PartNumber": 2, "ETag": part2["ETag"]}]
    with pytest.raises(ClientError) as raised:
        s3.complete_multipart_upload(
            Bucket="parts", Key="joined", UploadId=upload_id, MultipartUpload={"Parts": parts[::-1]}
        )
    assert error_code(raised) == ("InvalidPartOrder", 400)
    done = s3.complete_multipart_upload(
        Bucket="parts", Key="joined", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    digests = hashlib.md5(first).digest() + hashlib.md5(b"0123456789" * 2).digest()
    assert done["ETag"] == f'"{hashlib.md5(digests).hexdigest()}-2"'
    got = s3.get_object(Bucket="parts", Key="joined")
    assert (got["Body"].read(), got["ContentType"]) == (first + b"0123456789" * 2, "text/csv")
    assert s3.get_object(Bucket="parts", Key="joined", PartNumber=1)["Body"].read() == first
    whole = s3.get_object(Bucket="parts", Key="source", PartNumber=1)  # a single-part object
    assert whole["Body"].read() == b"0123456789" * 100
    small = s3.create_multipart_upload(Bucket="parts", Key="small")["UploadId"]
    tags = [
        s3.upload_part(Bucket="parts", Key="small", UploadId=small, PartNumber=n, Body=b"tiny")[
            "ETag"
        ]
        for n in (1, 2)
    ]
    with pytest.raises(ClientError) as raised:
        s3.complete_multipart_upload(
            Bucket="parts",
            Key="small",
            UploadId=small,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": tags[n - 1]} for n in (1, 2)]},
        )
    assert error_code(raised) == ("EntityTooSmall", 400)
    s3.abort_multipart_upload(Bucket="parts", Key="small", UploadId=small)
    with pytest.raises(ClientError) as raised:
        s3.list_parts(Bucket="parts", Key="small", UploadId=small)
    assert error_code(raised) == ("NoSuchUpload", 404)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket="parts")


def test_a_100_mib_multipart_round_trip_is_byte_for_byte(s3: Any, tmp_path: Path) -> None:
    s3.create_bucket(Bucket="big")
    source = tmp_path / "source.bin"
    with source.open("wb") as handle:
        for _ in range(100):
            handle.write(os.urandom(MiB))
    config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=16 * MiB)
    s3.upload_file(str(source), "big", "blob.bin", Config=config)
    assert s3.head_object(Bucket="big", Key="blob.bin")["ETag"].endswith('-7"')
    target = tmp_path / "target.bin"
    s3.download_file("big", "blob.bin", str(target), Config=config)
    assert _sha256(target) == _sha256(source)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def test_keys_that_look_like_paths_round_trip_as_data(
    s3: Any,
    s3_server: RunningServer,  # noqa: F811
) -> None:
    s3.create_bucket(Bucket="keys")
    keys = ["../../escape.txt", "a//b", "/leading", "dots/./x/../y", "日本語/ファイル", "k" * 1024]
    for key in keys:
        s3.put_object(Bucket="keys", Key=key, Body=key.encode())
    for key in keys:
        assert s3.get_object(Bucket="keys", Key=key)["Body"].read() == key.encode()
    listed = [item["Key"] for item in s3.list_objects_v2(Bucket="keys")["Contents"]]
    assert sorted(listed) == sorted(keys)
    assert not (s3_server.data_dir.parent / "escape.txt").exists()
    assert not list(s3_server.data_dir.parent.rglob("escape.txt"))
    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket="keys", Key="k" * 1025, Body=b"")
    assert error_code(raised) == ("KeyTooLongError", 400)


def test_authentication_errors(s3_server: RunningServer) -> None:  # noqa: F811
    with pytest.raises(ClientError) as raised:
        client(s3_server, secret="wrong-secret").list_buckets()
    assert error_code(raised) == ("SignatureDoesNotMatch", 403)
    stranger = client(s3_server)
    stranger._request_signer._credentials.access_key = "nobody"  # an unknown key id
    with pytest.raises(ClientError) as raised:
        stranger.list_buckets()
    assert error_code(raised) == ("InvalidAccessKeyId", 403)
    anonymous = httpx.get(f"{s3_server.s3_url}/")
    assert anonymous.status_code == 403
    assert "<Code>AccessDenied</Code>" in anonymous.text


def test_unimplemented_operations_answer_501_in_xml(s3: Any, s3_server: RunningServer) -> None:  # noqa: F811
    s3.create_bucket(Bucket="unimplemented")
    with pytest.raises(ClientError) as raised:
        s3.get_bucket_tagging(Bucket="unimplemented")
    assert error_code(raised) == ("NotImplemented", 501)
    with pytest.raises(ClientError) as raised:
        s3.put_bucket_tagging(
            Bucket="unimplemented", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}
        )
    assert error_code(raised) == ("NotImplemented", 501)
    with pytest.raises(ClientError) as raised:
        s3.get_object_tagging(Bucket="unimplemented", Key="k")
    assert error_code(raised) == ("NotImplemented", 501)
    assert "Traceback" not in s3_server.log()


def test_presigned_urls_work_with_plain_http_and_expire(s3_server: RunningServer) -> None:  # noqa: F811
    s3 = client(s3_server, signature_version="s3v4")
    s3.create_bucket(Bucket="presigned")
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": "presigned", "Key": "up load.txt"}, ExpiresIn=60
    )
    assert httpx.put(put_url, content=b"uploaded by url").status_code == 200
    get_url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "presigned", "Key": "up load.txt"}, ExpiresIn=60
    )
    fetched = httpx.get(get_url)
    assert (fetched.status_code, fetched.content) == (200, b"uploaded by url")
    tampered = httpx.get(get_url.replace("up%20load", "other"))
    assert tampered.status_code == 403 and "SignatureDoesNotMatch" in tampered.text
    short = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "presigned", "Key": "up load.txt"}, ExpiresIn=1
    )
    time.sleep(2.1)
    expired = httpx.get(short)
    assert expired.status_code == 403
    assert "<Code>AccessDenied</Code>" in expired.text and "expired" in expired.text


def test_virtual_host_style_addressing(s3_server: RunningServer) -> None:  # noqa: F811
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    s3 = client(s3_server)
    s3.create_bucket(Bucket="virtual")
    s3.put_object(Bucket="virtual", Key="dir/file.txt", Body=b"by host name")
    host = f"virtual.localhost:{s3_server.s3_port}"
    request = AWSRequest(method="GET", url=f"http://{host}/dir/file.txt")
    S3SigV4Auth(Credentials(s3_server.username, s3_server.password), "s3", "us-east-1").add_auth(
        request
    )
    response = httpx.get(
        f"{s3_server.s3_url}/dir/file.txt", headers={**dict(request.headers.items()), "Host": host}
    )
    assert (response.status_code, response.content) == (200, b"by host name")


def _force_trailing_checksum(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """boto3 sends aws-chunked bodies with trailing checksums only over TLS; this makes it do so
    over plain HTTP, exactly as it would over HTTPS."""
    algorithm = context.get("checksum", {}).get("request_algorithm")
    if isinstance(algorithm, dict):
        algorithm["in"] = "trailer"


def test_aws_chunked_bodies_with_trailing_checksums(s3_server: RunningServer) -> None:  # noqa: F811
    s3 = client(s3_server)
    s3.meta.events.register("before-call.s3.PutObject", _force_trailing_checksum)
    s3.meta.events.register("before-call.s3.UploadPart", _force_trailing_checksum)
    s3.create_bucket(Bucket="chunked")
    sent: list[bytes] = []  # botocore sends header values as bytes
    s3.meta.events.register(
        "before-send.s3.PutObject",
        lambda request, **_: sent.append(request.headers.get("x-amz-content-sha256", b"")),
    )
    body = os.urandom(3 * MiB + 17)
    s3.put_object(Bucket="chunked", Key="trailer", Body=body)
    assert sent and b"STREAMING-UNSIGNED-PAYLOAD-TRAILER" in sent[-1]
    assert s3.get_object(Bucket="chunked", Key="trailer")["Body"].read() == body
    for algorithm in ("CRC32", "SHA256", "SHA1"):
        s3.put_object(
            Bucket="chunked", Key=algorithm, Body=body[:1000], ChecksumAlgorithm=algorithm
        )
        assert s3.get_object(Bucket="chunked", Key=algorithm)["Body"].read() == body[:1000]
    plain = client(s3_server)
    with pytest.raises(ClientError) as raised:
        plain.put_object(Bucket="chunked", Key="bad", Body=b"data", ChecksumCRC32="AAAAAA==")
    assert error_code(raised) == ("BadDigest", 400)
    with pytest.raises(ClientError) as raised:
        plain.head_object(Bucket="chunked", Key="bad")
    assert error_code(raised) == ("404", 404)
