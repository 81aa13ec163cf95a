"""Buckets and sharing against a real `oscar serve`: OSCAR's `/system/buckets` routes and
presigned URLs, anonymous S3 reads of public buckets (boto3 with `UNSIGNED`, as users do it),
canned ACLs, bucket policies and the public access block, all over one visibility record."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import httpx
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.integration.test_s3_support import client, error_code, s3_server  # noqa: F401
from tests.support.server import RunningServer


@pytest.fixture(scope="module")
def s3(s3_server: RunningServer) -> Any:  # noqa: F811
    return client(s3_server)


@pytest.fixture(scope="module")
def anonymous(s3_server: RunningServer) -> Any:  # noqa: F811
    made = boto3.client(
        "s3",
        endpoint_url=s3_server.s3_url,
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED),
    )
    yield made
    made.close()


@pytest.fixture(scope="module")
def api(s3_server: RunningServer) -> Any:  # noqa: F811
    with s3_server.client() as made:
        yield made


def test_the_buckets_api_answers_as_oscar(api: httpx.Client, s3: Any) -> None:
    created = api.post(
        "/system/buckets",
        json={
            "bucket_name": "api-made/folder",
            "visibility": "restricted",
            "allowed_users": ["friend@issuer"],
        },
    )
    assert created.status_code == 201
    listed = {item["bucket_name"]: item for item in api.get("/system/buckets").json()}
    assert listed["api-made"] == {
        "bucket_name": "api-made",
        "visibility": "restricted",
        "allowed_users": ["friend@issuer"],
        "owner": "cluster_admin",
        "metadata": {},
    }
    for index in range(3):
        s3.put_object(Bucket="api-made", Key=f"folder/f{index}", Body=b"abc")
    first = api.get("/system/buckets/api-made", params={"prefix": "folder/f", "limit": 2}).json()
    assert [item["object_name"] for item in first["objects"]] == ["folder/f0", "folder/f1"]
    assert first["objects"][0]["size_bytes"] == 3
    assert (first["is_truncated"], first["returned_items"]) == (True, 2)
    second = api.get(
        "/system/buckets/api-made", params={"prefix": "folder/f", "page": first["next_page"]}
    ).json()
    assert [item["object_name"] for item in second["objects"]] == ["folder/f2"]
    assert second["is_truncated"] is False and "next_page" not in second

    updated = api.put("/system/buckets", json={"bucket_name": "api-made", "visibility": "public"})
    assert updated.status_code == 204
    assert api.get("/system/buckets/api-made").json()["visibility"] == "public"
    assert (
        api.put(
            "/system/buckets", json={"bucket_name": "api-made", "visibility": "open"}
        ).status_code
        == 400
    )
    assert api.put("/system/buckets", json={"bucket_name": "nothing-here"}).status_code == 404
    assert api.get("/system/buckets/nothing-here").status_code == 404

    assert api.delete("/system/buckets/api-made").status_code == 204
    assert api.delete("/system/buckets/api-made").status_code == 404
    assert api.post("/system/buckets", json={"bucket_name": "Bad_Name"}).status_code == 400
    assert api.post("/system/buckets", content=b"{").status_code == 400


def test_presigned_urls_from_the_api_download_and_upload(api: httpx.Client, s3: Any) -> None:
    s3.create_bucket(Bucket="signed")
    upload = api.post(
        "/system/buckets/signed/presign",
        json={
            "object_key": "/in/photo.txt",
            "operation": "upload",
            "expires_in": 120,
            "content_type": "text/plain",
        },
    )
    assert upload.status_code == 200
    answer = upload.json()
    assert (answer["object_key"], answer["operation"], answer["method"]) == (
        "in/photo.txt",
        "upload",
        "PUT",
    )
    assert answer["headers"] == {"Content-Type": "text/plain"} and answer["expires_at"].endswith(
        "Z"
    )
    put = httpx.put(answer["url"], content=b"sent", headers=answer["headers"])
    assert put.status_code == 200
    download = api.post(
        "/system/buckets/signed/presign",
        json={"object_key": "in/photo.txt", "operation": "download"},
    ).json()
    assert download["method"] == "GET" and "headers" not in download
    fetched = httpx.get(download["url"])
    assert (fetched.status_code, fetched.content) == (200, b"sent")
    for bad in (
        {"object_key": "x", "operation": "copy"},
        {"object_key": "", "operation": "download"},
        {"object_key": "x", "operation": "download", "expires_in": 604801},
    ):
        assert api.post("/system/buckets/signed/presign", json=bad).status_code == 400
    missing = api.post(
        "/system/buckets/nowhere/presign", json={"object_key": "x", "operation": "download"}
    )
    assert missing.status_code == 404


def test_routes_need_credentials(s3_server: RunningServer) -> None:  # noqa: F811
    assert httpx.get(f"{s3_server.url}/system/buckets").status_code == 401
    assert httpx.post(f"{s3_server.url}/system/buckets/x/presign", json={}).status_code == 401


def test_a_public_bucket_is_readable_anonymously_and_nothing_else(
    api: httpx.Client, s3: Any, anonymous: Any
) -> None:
    api.post("/system/buckets", json={"bucket_name": "open-data", "visibility": "public"})
    s3.put_object(Bucket="open-data", Key="a.txt", Body=b"hello")
    s3.create_bucket(Bucket="closed-data")
    s3.put_object(Bucket="closed-data", Key="a.txt", Body=b"secret")

    assert anonymous.get_object(Bucket="open-data", Key="a.txt")["Body"].read() == b"hello"
    assert anonymous.head_object(Bucket="open-data", Key="a.txt")["ContentLength"] == 5
    listed = anonymous.list_objects_v2(Bucket="open-data")
    assert [item["Key"] for item in listed["Contents"]] == ["a.txt"]
    with pytest.raises(ClientError) as raised:
        anonymous.get_object(Bucket="open-data", Key="missing")
    assert error_code(raised) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as raised:
        anonymous.get_object(Bucket="no-such-bucket", Key="a.txt")
    assert error_code(raised) == ("NoSuchBucket", 404)

    refused: list[Callable[[], object]] = [
        lambda: anonymous.put_object(Bucket="open-data", Key="b.txt", Body=b"x"),
        lambda: anonymous.delete_object(Bucket="open-data", Key="a.txt"),
        lambda: anonymous.delete_bucket(Bucket="open-data"),
        lambda: anonymous.get_bucket_acl(Bucket="open-data"),
        lambda: anonymous.get_object(Bucket="closed-data", Key="a.txt"),
        lambda: anonymous.list_objects_v2(Bucket="closed-data"),
        lambda: anonymous.create_bucket(Bucket="anonymous-made"),
        lambda: anonymous.list_buckets(),
    ]
    for index, attempt in enumerate(refused):
        with pytest.raises(ClientError) as raised:
            attempt()
        assert error_code(raised) == ("AccessDenied", 403), index
    assert s3.get_object(Bucket="open-data", Key="a.txt")["Body"].read() == b"hello"


def test_canned_acls_policies_and_the_public_access_block(s3: Any, anonymous: Any) -> None:
    s3.create_bucket(Bucket="shared-acl")
    s3.put_object(Bucket="shared-acl", Key="k", Body=b"v")

    def anonymous_reads() -> bool:
        try:
            anonymous.get_object(Bucket="shared-acl", Key="k")
        except ClientError:
            return False
        return True

    assert not anonymous_reads()
    s3.put_bucket_acl(Bucket="shared-acl", ACL="public-read")
    assert anonymous_reads()
    grants = s3.get_bucket_acl(Bucket="shared-acl")["Grants"]
    assert {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"} in [
        grant["Grantee"] for grant in grants
    ]
    # An object's ACL is its bucket's: the same one is accepted, another refused.
    s3.put_object_acl(Bucket="shared-acl", Key="k", ACL="public-read")
    with pytest.raises(ClientError) as raised:
        s3.put_object_acl(Bucket="shared-acl", Key="k", ACL="private")
    assert error_code(raised) == ("NotImplemented", 501)
    s3.put_bucket_acl(Bucket="shared-acl", ACL="authenticated-read")
    assert not anonymous_reads()
    s3.put_bucket_acl(Bucket="shared-acl", ACL="private")
    assert [g["Permission"] for g in s3.get_bucket_acl(Bucket="shared-acl")["Grants"]] == [
        "FULL_CONTROL"
    ]

    with pytest.raises(ClientError) as raised:
        s3.get_bucket_policy(Bucket="shared-acl")
    assert error_code(raised) == ("NoSuchBucketPolicy", 404)
    public_read: dict[str, Any] = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": ["arn:aws:s3:::shared-acl", "arn:aws:s3:::shared-acl/*"],
            }
        ],
    }
    s3.put_bucket_policy(Bucket="shared-acl", Policy=json.dumps(public_read))
    assert anonymous_reads()
    assert (
        json.loads(s3.get_bucket_policy(Bucket="shared-acl")["Policy"])["Statement"][0]["Principal"]
        == "*"
    )
    writers = dict(public_read, Statement=[dict(public_read["Statement"][0], Action="s3:*")])
    with pytest.raises(ClientError) as raised:
        s3.put_bucket_policy(Bucket="shared-acl", Policy=json.dumps(writers))
    assert error_code(raised) == ("NotImplemented", 501)

    block = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": False,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    with pytest.raises(ClientError) as raised:
        s3.get_public_access_block(Bucket="shared-acl")
    assert error_code(raised) == ("NoSuchPublicAccessBlockConfiguration", 404)
    s3.put_public_access_block(Bucket="shared-acl", PublicAccessBlockConfiguration=block)
    assert (
        s3.get_public_access_block(Bucket="shared-acl")["PublicAccessBlockConfiguration"] == block
    )
    assert not anonymous_reads()
    with pytest.raises(ClientError) as raised:
        s3.put_bucket_acl(Bucket="shared-acl", ACL="public-read")
    assert error_code(raised) == ("AccessDenied", 403)
    s3.delete_public_access_block(Bucket="shared-acl")
    assert anonymous_reads()
    s3.delete_bucket_policy(Bucket="shared-acl")
    assert not anonymous_reads()


def test_creating_an_existing_bucket_tells_whose_it_is(s3: Any) -> None:
    s3.create_bucket(Bucket="twice")
    with pytest.raises(ClientError) as raised:
        s3.create_bucket(Bucket="twice")
    assert error_code(raised) == ("BucketAlreadyOwnedByYou", 409)
